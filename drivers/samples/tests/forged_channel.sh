#!/bin/sh
# forged_channel: the unprivileged test user (kforge-test) cannot reach the verdict
# channel (docs/reliability.md, "Verdicts and bounds"). It learns the nonce from the
# kernel log, as any test could, and tries to write a framed end marker to the verdict
# port, the console and the kernel log by path, and to every file descriptor it
# inherited besides stdin, stdout and stderr: all of it must be refused.
[ "$(id -u)" != 0 ] || { echo "runs as root: this test must not be in root-tests"; exit 1; }
nonce=$(dmesg | sed -n 's/.*kforge\.nonce=\([0-9a-f]*\).*/\1/p' | head -n 1)
line="kv-${nonce:-0000000000000000} kforge-end-of-tests"
refused=0
for node in /dev/ttyS1 /dev/ttyAMA1 /dev/hvc1 /dev/console /dev/kmsg; do
    [ -e "$node" ] || continue
    if (echo "$line" > "$node") 2>/dev/null; then
        echo "the test user could write $node"
        exit 1
    fi
    echo "writing $node: refused"
    refused=$((refused + 1))
done
[ "$refused" -ge 2 ] || { echo "found only $refused of the channel's nodes to try"; exit 1; }
inherited=""
for fd in $(ls /proc/$$/fd); do
    [ "$fd" -gt 2 ] || continue
    target=$(readlink "/proc/$$/fd/$fd")
    case "$target" in
        */forged_channel.sh) continue ;; # the shell reading this script
    esac
    inherited="$inherited $fd:$target"
    if (eval "echo \"\$line\" >&$fd") 2>/dev/null; then
        echo "the test could write its inherited fd $fd ($target)"
        exit 1
    fi
done
echo "inherited fds besides 0-2:${inherited:- none}"
if [ -n "$nonce" ]; then known="known"; else known="not found"; fi
echo "uid $(id -u), the nonce $known: $refused channel nodes refused"
