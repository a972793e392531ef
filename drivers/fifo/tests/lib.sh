# lib.sh: shared set-up for the fifo guest tests, sourced first by every test.
# Tests run as `sh tests/<name>.sh` inside the guest; kforge ships this file next to them.
DEV=/dev/kforge-fifo
T=${TMPDIR:-/tmp}/kforge-fifo.$$
mkdir -p "$T" || exit 1
# Background processes ($bg) are killed on exit so a failed test never leaves the device busy.
bg=
trap 'for p in $bg; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
# Background processes write to $T/bg.log, never to our stdout: a stuck one must not keep the
# harness waiting for EOF on the output pipe.
fail() { [ -s "$T/bg.log" ] && sed "s/^/bg: /" "$T/bg.log"; echo "FAIL: $*"; exit 1; }
# fifo_stat NAME: one of the driver's fdinfo counters (fd 9 is opened on the device for awk only).
fifo_stat() { awk -v k="fifo_$1:" '$1 == k { print $2 }' /proc/self/fdinfo/9 9<"$DEV"; }
# state PID: the process state letter (S = interruptible sleep); empty once it is gone.
state() { awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
alive() { s=$(state "$1"); [ -n "$s" ] && [ "$s" != Z ]; }
# wait_gone PID SECS: wait until PID has exited; on timeout kill it and return 1.
wait_gone() {
	i=0
	while alive "$1"; do
		[ "$i" -ge $(($2 * 10)) ] && { kill -KILL "$1" 2>/dev/null; return 1; }
		sleep 0.1; i=$((i + 1))
	done
}
# wait_stat NAME VALUE SECS: poll until counter NAME equals VALUE; return 1 on timeout.
wait_stat() {
	i=0
	while [ "$(fifo_stat "$1")" != "$2" ]; do
		[ "$i" -ge $(($3 * 10)) ] && return 1
		sleep 0.1; i=$((i + 1))
	done
}
# wait_sleeping PID: within 2 s PID is in interruptible sleep (S), as a blocked reader/writer is.
wait_sleeping() {
	i=0
	while [ "$(state "$1")" != S ]; do
		[ "$i" -ge 20 ] && return 1
		sleep 0.1; i=$((i + 1))
	done
}
[ -c "$DEV" ] || fail "$DEV is missing (is ${KFORGE_MODULE:-kforge_fifo} loaded?)"
# Start from an empty FIFO even if an earlier test stopped half-way.
n=$(fifo_stat fill)
[ "${n:-0}" -eq 0 ] || timeout 5 dd if="$DEV" of=/dev/null bs="$n" count=1 iflag=fullblock status=none
