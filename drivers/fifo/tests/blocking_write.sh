#!/bin/sh
# blocking_write: writing capacity+36 bytes stores `capacity` bytes and then blocks until a
. "$(dirname "$0")/lib.sh"
cap=$(fifo_stat capacity); total=$((cap + 36))
seq 1 9999999 | head -c "$total" > "$T/in"
w0=$(fifo_stat bytes_written); r0=$(fifo_stat bytes_read); ww0=$(fifo_stat write_waits)

dd if="$T/in" of="$DEV" bs="$total" count=1 status=none >>"$T/bg.log" 2>&1 &
pid=$!; bg="$bg $pid"
wait_stat write_waits $((ww0 + 1)) 10 || fail "writer never blocked (write_waits stayed at $(fifo_stat write_waits))"
sleep 0.5
alive "$pid" || fail "writing $total bytes into a $cap-byte FIFO did not block"
wait_sleeping "$pid" || fail "blocked writer is in state '$(state "$pid")', expected S"
[ "$(fifo_stat fill)" -eq "$cap" ] || fail "fill is $(fifo_stat fill), expected $cap (full)"
[ "$(fifo_stat bytes_written)" -eq $((w0 + cap)) ] || fail "bytes_written grew by $(($(fifo_stat bytes_written) - w0)), expected $cap"
[ "$(fifo_stat write_waits)" -eq $((ww0 + 1)) ] || fail "write_waits grew by more than 1"
echo "writer blocked after $cap of $total bytes"

timeout 10 dd if="$DEV" of="$T/out" bs="$total" count=1 iflag=fullblock status=none ||
	fail "reader could not drain $total bytes"
wait_gone "$pid" 5 || fail "writer still blocked after the reader drained the FIFO"
wait "$pid" || fail "writer exited with status $?"
cmp "$T/in" "$T/out" || fail "drained data differs from what was written"
[ "$(fifo_stat fill)" -eq 0 ] || fail "fill is $(fifo_stat fill) at the end"
[ "$(fifo_stat bytes_written)" -eq $((w0 + total)) ] || fail "bytes_written did not grow by $total"
[ "$(fifo_stat bytes_read)" -eq $((r0 + total)) ] || fail "bytes_read did not grow by $total"
echo "reader drained all $total bytes in order and the writer completed"
