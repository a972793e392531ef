#!/bin/sh
# nonblock: O_NONBLOCK reads/writes return EAGAIN instead of sleeping (runs tests/nonblock,
. "$(dirname "$0")/lib.sh"
bin=$(dirname "$0")/nonblock
[ -x "$bin" ] || { echo "$bin is not built (static nolibc build of tests/nonblock.c)"; exit 4; }
rw0=$(fifo_stat read_waits); ww0=$(fifo_stat write_waits)
# Bounded: a driver that ignores O_NONBLOCK would otherwise hang here forever.
timeout 20 "$bin" "$DEV" "$(fifo_stat capacity)"
rc=$?
[ "$rc" -eq 4 ] && exit 4
[ "$rc" -eq 0 ] || fail "nonblock exited with status $rc (143 = killed by timeout: a call blocked)"
[ "$(fifo_stat read_waits)" -eq "$rw0" ] || fail "a non-blocking read slept (read_waits changed)"
[ "$(fifo_stat write_waits)" -eq "$ww0" ] || fail "a non-blocking write slept (write_waits changed)"
[ "$(fifo_stat fill)" -eq 0 ] || fail "fill is $(fifo_stat fill) at the end"
echo "no non-blocking call slept"
