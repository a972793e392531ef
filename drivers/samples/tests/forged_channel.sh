#!/bin/sh
# forged_channel: the unprivileged test user (kforge-test) cannot reach the verdict
# channel: writing the verdict port, the console or the kernel log is refused, so a
# test can only produce output (docs/reliability.md, "Verdicts and bounds").
[ "$(id -u)" != 0 ] || { echo "runs as root: this test must not be in root-tests"; exit 1; }
refused=0
for node in /dev/ttyS1 /dev/ttyAMA1 /dev/hvc1 /dev/console /dev/kmsg; do
    [ -e "$node" ] || continue
    if (echo "kv-0000000000000000 kforge-end-of-tests" > "$node") 2>/dev/null; then
        echo "the test user could write $node"
        exit 1
    fi
    echo "writing $node: refused"
    refused=$((refused + 1))
done
[ "$refused" -ge 2 ] || { echo "found only $refused of the channel's nodes to try"; exit 1; }
echo "uid $(id -u): $refused channel nodes refused"
