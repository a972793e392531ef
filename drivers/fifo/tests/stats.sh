#!/bin/sh
# stats: the fdinfo counters track exactly what this test does.
. "$(dirname "$0")/lib.sh"
echo "fdinfo of an open /dev/kforge-fifo:"
sed 's/^/  /' /proc/self/fdinfo/9 9<"$DEV"
for k in capacity fill bytes_written bytes_read read_waits write_waits; do
	v=$(fifo_stat "$k")
	[ -n "$v" ] || fail "fdinfo has no fifo_$k line"
done
# Cargo.toml's module-params load the module with capacity=64.
[ "$(fifo_stat capacity)" -eq 64 ] || fail "capacity is $(fifo_stat capacity), expected 64"

w0=$(fifo_stat bytes_written); r0=$(fifo_stat bytes_read)
rw0=$(fifo_stat read_waits); ww0=$(fifo_stat write_waits)
check() { # check FILL WRITTEN READ
	[ "$(fifo_stat fill)" -eq "$1" ] || fail "fill is $(fifo_stat fill), expected $1"
	[ "$(fifo_stat bytes_written)" -eq $((w0 + $2)) ] || fail "bytes_written grew by $(($(fifo_stat bytes_written) - w0)), expected $2"
	[ "$(fifo_stat bytes_read)" -eq $((r0 + $3)) ] || fail "bytes_read grew by $(($(fifo_stat bytes_read) - r0)), expected $3"
}
printf '0123456789' > "$DEV"; check 10 10 0
printf 'abcdefghijklmnopqrst' > "$DEV"; check 30 30 0
timeout 5 dd if="$DEV" of=/dev/null bs=7 count=1 iflag=fullblock status=none || fail "read 7 failed"
check 23 30 7
timeout 5 dd if="$DEV" of=/dev/null bs=23 count=1 iflag=fullblock status=none || fail "read 23 failed"
check 0 30 30
[ "$(fifo_stat read_waits)" -eq "$rw0" ] || fail "read_waits changed although no read had to wait"
[ "$(fifo_stat write_waits)" -eq "$ww0" ] || fail "write_waits changed although no write had to wait"
echo "fill, bytes_written, bytes_read and the wait counters match"
