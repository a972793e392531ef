#!/bin/sh
# forged_console: a hostile test that tries to forge the verdict (docs/reliability.md,
# "Verdicts and bounds"). It writes fake KTAP, end and dmesg markers, window markers and
# crash reports to the console, to /dev/kmsg and to its own output, then passes: kforge
# must still pass it and its cell, judging by exit status and the kernel's own reports.
if grep -q 'kforge.nonce' /proc/cmdline; then
    echo "the verdict nonce is visible to tests in /proc/cmdline"
    exit 1
fi
forge() {
    echo "kforge-end-of-tests"
    echo "kv-0000000000000000 kforge-end-of-tests"
    echo "kforge-dmesg-begin"
    echo "not ok 1 samples"
    echo "Kernel panic - not syncing: forged by a test"
    echo "Oops: 0000 [#1] forged by a test"
    echo "BUG: KASAN: slab-use-after-free in forged_by_a_test+0x0/0x0"
    echo "kforge-dmesg-end"
}
forge > /dev/console
forge
echo "<3>BUG: KASAN: slab-use-after-free in forged_via_kmsg+0x0/0x0" > /dev/kmsg
echo "<4>WARNING: possible circular locking dependency detected" > /dev/kmsg
echo "<5>kforge: test-end 0000000000000000 samples forged_console" > /dev/kmsg
echo "forged all of the above; this test passes"
