#!/bin/sh
# roundtrip: 40 bytes of binary-ish data written in one write(2) come back byte for byte.
. "$(dirname "$0")/lib.sh"
printf 'KFORGE\000\001\002\003\177\200\201\376\377\n\r\t end-of-line\n\000\0001234567' > "$T/in"
[ "$(wc -c < "$T/in")" -eq 40 ] || fail "test data is $(wc -c < "$T/in") bytes, not 40"
w0=$(fifo_stat bytes_written); r0=$(fifo_stat bytes_read)

timeout 5 dd if="$T/in" of="$DEV" bs=40 count=1 status=none || fail "write of 40 bytes failed"
[ "$(fifo_stat fill)" -eq 40 ] || fail "fill is $(fifo_stat fill) after writing 40 bytes"
timeout 5 dd if="$DEV" of="$T/out" bs=40 count=1 iflag=fullblock status=none ||
	fail "reading 40 bytes failed or blocked"
cmp "$T/in" "$T/out" || { od -An -tx1 "$T/out"; fail "data read back differs"; }

[ "$(fifo_stat fill)" -eq 0 ] || fail "fill is $(fifo_stat fill) after reading everything"
[ "$(fifo_stat bytes_written)" -eq $((w0 + 40)) ] || fail "bytes_written did not grow by 40"
[ "$(fifo_stat bytes_read)" -eq $((r0 + 40)) ] || fail "bytes_read did not grow by 40"
echo "40 bytes (NUL, 0x7f-0xff, CR/LF/TAB) came back unchanged"
