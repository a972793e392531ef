# lib.sh: shared set-up for the edu guest tests, sourced first by every test.
# Tests run as `sh tests/<name>.sh` inside the guest; kforge ships this file next to them.
DEV=/dev/kforge-edu
T=${TMPDIR:-/tmp}/kforge-edu.$$
mkdir -p "$T" || exit 1
# Background processes ($bg) are killed on exit so a failed test never leaves the device busy.
bg=
trap 'for p in $bg; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
# Background processes write to $T/bg.log, never to our stdout: a stuck one must not keep the
# harness waiting for EOF on the output pipe.
fail() { [ -s "$T/bg.log" ] && sed "s/^/bg: /" "$T/bg.log"; echo "FAIL: $*"; exit 1; }
# edu COMMAND [ARGS...]: runs one command on a fresh open of the device and prints its reply.
# Returns 1 if the command failed (its write(2) error, e.g. "Invalid argument", is in $T/err).
edu() {
	exec 3<>"$DEV" || return 1
	if ! echo "$*" >&3 2>"$T/err"; then
		exec 3<&-
		return 1
	fi
	cat <&3
	exec 3<&-
}
# edu_fails COMMAND...: the command is refused; prints nothing, returns 1 if it was accepted.
edu_fails() { ! edu "$@" >/dev/null 2>&1; }
# edu_stat NAME: one `key value` line of the `stats` command.
edu_stat() { edu stats | awk -v k="$1" '$1 == k { print $2 }'; }
# proc_irqs: how often the kforge_edu interrupt fired, summed over CPUs (/proc/interrupts).
proc_irqs() {
	awk '/ kforge_edu$/ { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' \
		/proc/interrupts
}
# state PID: the process state letter; empty once it is gone.
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
[ -c "$DEV" ] || fail "$DEV is missing (is ${KFORGE_MODULE:-kforge_edu} loaded and bound?)"
