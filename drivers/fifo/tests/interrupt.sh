#!/bin/sh
# interrupt: blocked readers and writers sleep interruptibly, so a signal ends them at once,
. "$(dirname "$0")/lib.sh"
rw0=$(fifo_stat read_waits); ww0=$(fifo_stat write_waits)
dd if="$DEV" of=/dev/null bs=1 count=1 status=none >>"$T/bg.log" 2>&1 &
pid=$!; bg="$bg $pid"
wait_stat read_waits $((rw0 + 1)) 10 || fail "read of the empty FIFO did not block"
wait_sleeping "$pid" || fail "blocked reader is in state '$(state "$pid")', expected S"
kill -TERM "$pid"
wait_gone "$pid" 3 || fail "blocked reader survived SIGTERM for 3 s"
echo "blocked reader died on SIGTERM"

cap=$(fifo_stat capacity)
timeout 5 dd if=/dev/zero of="$DEV" bs="$cap" count=1 status=none || fail "could not fill the FIFO"
dd if=/dev/zero of="$DEV" bs=1 count=1 status=none >>"$T/bg.log" 2>&1 &
pid=$!; bg="$bg $pid"
wait_stat write_waits $((ww0 + 1)) 10 || fail "write to the full FIFO did not block"
wait_sleeping "$pid" || fail "blocked writer is in state '$(state "$pid")', expected S"
kill -TERM "$pid"
wait_gone "$pid" 3 || fail "blocked writer survived SIGTERM for 3 s"
[ "$(fifo_stat fill)" -eq "$cap" ] || fail "fill is $(fifo_stat fill) after the interrupted write, expected $cap"
echo "blocked writer died on SIGTERM without storing anything"

timeout 5 dd if="$DEV" of=/dev/null bs="$cap" count=1 iflag=fullblock status=none || fail "drain failed"
printf 'x' > "$DEV"
[ "$(timeout 5 dd if="$DEV" bs=1 count=1 status=none)" = x ] || fail "FIFO unusable after the interruptions"
echo "FIFO still works afterwards"
