#!/bin/sh
# blocking_read: a read of the empty FIFO sleeps (interruptibly) until a writer supplies data.
. "$(dirname "$0")/lib.sh"
rw0=$(fifo_stat read_waits); r0=$(fifo_stat bytes_read)
dd if="$DEV" of="$T/out" bs=5 count=1 iflag=fullblock status=none >>"$T/bg.log" 2>&1 &
pid=$!; bg="$bg $pid"
wait_stat read_waits $((rw0 + 1)) 10 || fail "reader never blocked (read_waits stayed at $(fifo_stat read_waits))"
sleep 0.5 # a broken driver gets the chance to return early
alive "$pid" || fail "read of the empty FIFO returned instead of blocking"
wait_sleeping "$pid" || fail "blocked reader is in state '$(state "$pid")', expected S"
[ "$(fifo_stat read_waits)" -eq $((rw0 + 1)) ] || fail "read_waits grew by more than 1"
[ "$(fifo_stat bytes_read)" -eq "$r0" ] || fail "bytes_read changed while the reader was blocked"
[ -s "$T/out" ] && fail "reader produced output before any write"
echo "reader is blocked (state S)"

printf 'hello' > "$DEV" || fail "write failed"
wait_gone "$pid" 5 || fail "reader did not wake up within 5 s of the write"
wait "$pid" || fail "reader exited with status $?"
[ "$(cat "$T/out")" = hello ] || fail "reader got '$(cat "$T/out")', expected 'hello'"
[ "$(fifo_stat fill)" -eq 0 ] || fail "fill is $(fifo_stat fill) after the reader finished"
echo "reader woke up with exactly the written data"
