#!/bin/sh
# concurrency: 4 writers (each a distinct letter, 4000 times, in 500-byte writes) and 2 readers
. "$(dirname "$0")/lib.sh"
per=4000; letters="a b c d"; total=$((per * 4))
for c in $letters; do head -c "$per" /dev/zero | tr '\0' "$c" > "$T/in_$c"; done
w0=$(fifo_stat bytes_written); r0=$(fifo_stat bytes_read)
rw0=$(fifo_stat read_waits); ww0=$(fifo_stat write_waits)

for c in $letters; do
	dd if="$T/in_$c" of="$DEV" bs=500 status=none >>"$T/bg.log" 2>&1 &
	bg="$bg $!"
done
for k in 1 2; do
	dd if="$DEV" of="$T/out$k" bs=$((total / 2)) count=1 iflag=fullblock status=none >>"$T/bg.log" 2>&1 &
	bg="$bg $!"
done
for p in $bg; do
	wait_gone "$p" 60 || fail "process $p still running after 60 s (deadlock or lost wakeup?)"
done

got=$(cat "$T/out1" "$T/out2" | wc -c)
[ "$got" -eq "$total" ] || fail "readers got $got bytes, expected $total"
for c in $letters; do
	m=$(cat "$T/out1" "$T/out2" | tr -cd "$c" | wc -c)
	[ "$m" -eq "$per" ] || fail "letter $c arrived $m times, expected $per"
done
[ "$(fifo_stat fill)" -eq 0 ] || fail "fill is $(fifo_stat fill) at the end"
[ "$(fifo_stat bytes_written)" -eq $((w0 + total)) ] || fail "bytes_written did not grow by $total"
[ "$(fifo_stat bytes_read)" -eq $((r0 + total)) ] || fail "bytes_read did not grow by $total"
echo "$total bytes from 4 writers through 2 readers, each letter $per times" \
	"(read_waits +$(($(fifo_stat read_waits) - rw0)), write_waits +$(($(fifo_stat write_waits) - ww0)))"
