#!/bin/sh
# kforge guest init (busybox sh), packed as /init into every initramfs.
#
# For each driver package under /kforge/drivers/<name>/ (sorted): insmod its
# modules with their parameters (modprobe from /lib/modules for the ones its
# `modprobe` file lists: modules installed from packages), report its KUnit suites (from debugfs), run
# its tests, rmmod the modules, and print the results as nested KTAP.
# Then dump dmesg between markers and print the end marker the harness waits
# for, all on the verdict channel (below). A test exits 0 to pass, 4 to skip (its last output line is the
# reason), anything else to fail; its output becomes KTAP diagnostics.
# With `kforge.interactive` on the kernel command line it then opens a shell.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# KUnit keeps each suite's results in debugfs (when the kernel has it).
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# From here only warnings and worse reach the console, so kernel messages
# cannot split KTAP lines; everything is in the dmesg dump at the end.
echo 5 > /proc/sys/kernel/printk

# The verdict channel (docs/reliability.md, "Verdicts and bounds"): everything this
# script prints goes, each line framed with this boot's nonce, to the port named by
# kforge.verdicts= (a second serial port only /init opens), else to the console. The
# harness counts no other line, so what a test writes to /dev/console is only output.
# The nonce never enters the environment, and the command line is hidden from tests.
cmdline=$(cat /proc/cmdline)
nonce=""
verdicts=console
for arg in $cmdline; do
    case "$arg" in
        kforge.nonce=*) nonce=${arg#kforge.nonce=} ;;
        kforge.verdicts=*) verdicts=${arg#kforge.verdicts=} ;;
    esac
done
mount -o bind /dev/null /proc/cmdline 2>/dev/null
[ -c "/dev/$verdicts" ] || verdicts=console
frame() {
    while IFS= read -r line; do
        printf 'kv-%s %s\n' "$nonce" "$line"
    done
}
mkfifo -m 600 /tmp/.kforge-verdicts
frame < /tmp/.kforge-verdicts > "/dev/$verdicts" &
framer=$!
exec 3>&1 4>&2 > /tmp/.kforge-verdicts 2>&1
rm -f /tmp/.kforge-verdicts
# Only root may write the verdict port and the console; tests run as the
# unprivileged kforge-test (below) unless their package lists them in root-tests.
chmod 600 "/dev/$verdicts" /dev/console

# The test user, and a /tmp every test can write. Tests may read the kernel
# log (drivers' messages are what they check): the nonce in it is no use
# without a way to write the verdict port.
mkdir -p /etc
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo 'kforge-test:x:1000:1000:kforge tests:/tmp:/bin/sh' >> /etc/passwd
printf 'root:x:0:\nkforge-test:x:1000:\n' > /etc/group
chmod 1777 /tmp
echo 0 > /proc/sys/kernel/dmesg_restrict 2>/dev/null
# A shared /tmp: root never follows the test user's links or writes into its files there.
echo 1 > /proc/sys/fs/protected_symlinks 2>/dev/null
echo 1 > /proc/sys/fs/protected_hardlinks 2>/dev/null
echo 2 > /proc/sys/fs/protected_regular 2>/dev/null
echo 2 > /proc/sys/fs/protected_fifos 2>/dev/null
# Root tests get a temporary directory of their own (TMPDIR, and their working directory).
ROOT_TMP=/root/tmp
mkdir -p "$ROOT_TMP"
chmod 700 /root "$ROOT_TMP"

# mark start|end PACKAGE TEST: a test window in the kernel log (level 5: not on the
# console), ordered against the kernel's own reports; the harness attributes every
# report between a start and its end to that test. Only markers with the nonce count.
mark() {
    echo "<5>kforge: test-$1 $nonce $2 $3" > /dev/kmsg
}

# kmemleak (debug profile): leaks are scanned for after each package unloads
# (the kernel's periodic scan is off); objects from boot are cleared first.
KMEMLEAK=/sys/kernel/debug/kmemleak
if [ -w "$KMEMLEAK" ]; then
    echo scan > "$KMEMLEAK"
    echo clear > "$KMEMLEAK"
fi

TEST_TIMEOUT=${KFORGE_TEST_TIMEOUT:-120}

# diag PREFIX: prints stdin as KTAP diagnostic lines.
diag() {
    while IFS= read -r line; do
        echo "$1# $line"
    done
}

# find_orphans: sets $orphans to the live processes a test left behind
# (reparented to init). Runs in this shell, so it never lists itself.
find_orphans() {
    orphans=""
    for status in /proc/[0-9]*/status; do
        pid=${status#/proc/}
        pid=${pid%/status}
        [ "$pid" = 1 ] && continue
        [ "$pid" = "$framer" ] && continue
        ppid=""
        state=""
        {
            while read -r key value rest; do
                case "$key" in
                    State:) state=$value ;;
                    PPid:) ppid=$value; break ;;
                esac
            done < "$status"
        } 2>/dev/null
        if [ "$ppid" = 1 ] && [ -n "$state" ] && [ "$state" != Z ]; then
            orphans="$orphans $pid"
        fi
    done
}

# settle: before modules are unloaded, wait up to 5 s for whatever the tests
# left running to exit, then kill it (printed as diagnostics). busybox's
# `timeout` leaves a watcher process for up to a second that holds the test's
# open files, and a Rust misc device does not pin its module while a file is
# open: unloading it then oopses when that file is finally closed.
settle() {
    end_timeout_watchers
    wait_orphans
    for pid in $orphans; do
        echo "    # a test left process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) running; killed it before unloading"
        kill -KILL "$pid" 2>/dev/null
    done
    wait_orphans
}

# end_timeout_watchers: busybox `timeout` forks a watcher that checks on its
# command once a second, so it lingers for up to a second after the command
# ended, holding the command's open files. Watchers are orphans (ppid 1) with
# the name `timeout`: the command itself has exec'd and has its own name.
# Ending them at once spares settle that second; a command still running
# loses only its bound, and settle ends it below like any leftover.
end_timeout_watchers() {
    find_orphans
    for pid in $orphans; do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = timeout ] && kill -KILL "$pid" 2>/dev/null
    done
}

# wait_orphans: polls find_orphans for up to 5 s, until there are none.
wait_orphans() {
    tries=0
    find_orphans
    while [ -n "$orphans" ] && [ "$tries" -lt 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
        find_orphans
    done
}

# UEFI boots: report the firmware's Secure Boot state (efivarfs's SecureBoot
# variable: 4 attribute bytes, then 1 for enabled) on the verdict channel; the
# harness checks it against how it booted (`kforge.secure-boot`). A direct boot
# has no /sys/firmware/efi and prints nothing.
# Firmware without Secure Boot support has no SecureBoot variable: disabled.
if [ -d /sys/firmware/efi ]; then
    secure_boot=unknown
    if mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null; then
        secure_boot=disabled
        var=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
        # Read whole: efivarfs files cannot seek.
        # shellcheck disable=SC2046 # one word per byte, on purpose
        [ -r "$var" ] && set -- $(od -An -t u1 "$var")
        [ "${5:-0}" = 1 ] && secure_boot=enabled
    fi
    echo "kforge-efi secure-boot=$secure_boot"
fi

# UEFI boots: the disk's root partition (erofs, GPT partition 2 of the virtio
# disk) holds /lib/modules/<release>/ with modules.dep; modprobe must load a
# module from it, kforge_fifo when it is there (`kforge.rootfs.modprobe`).
if [ -d /sys/firmware/efi ]; then
    tries=0
    while [ ! -b /dev/vda2 ] && [ "$tries" -lt 50 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    mkdir -p /sysroot /lib/modules
    if ! out=$(mount -t erofs -o ro /dev/vda2 /sysroot 2>&1); then
        echo "kforge-rootfs failed: mount -t erofs /dev/vda2: $out" | tr '\n' ' '
        echo
    else
        mount -o bind /sysroot/lib/modules /lib/modules
        dep=/lib/modules/$(uname -r)/modules.dep
        name=$(sed -n 's|^extra/\(kforge_fifo\)\.ko:.*|\1|p' "$dep" 2>/dev/null)
        [ -n "$name" ] || name=$(sed -n '1s|^\(.*/\)\{0,1\}\([^/]*\)\.ko:.*|\2|p' "$dep" 2>/dev/null)
        if [ -z "$name" ]; then
            echo "kforge-rootfs failed: no module in $dep"
        elif out=$(modprobe "$name" 2>&1) && grep -q "^$name " /proc/modules; then
            echo "kforge-rootfs ok $name"
            rmmod "$name"
        else
            echo "kforge-rootfs failed: modprobe $name: $out" | tr '\n' ' '
            echo
        fi
        umount /lib/modules
        umount /sysroot
    fi
fi

# Secure Boot cells: before any package loads, prove that the kernel enforces
# module signatures. /kforge/modsig/ holds one module signed with the
# project's db key, the same module unsigned, and the signed one with a byte
# changed; the harness turns these lines into kforge.module-signature.* tests.
# The bad copies go first, so one that wrongly loads is unloaded before the
# signed one is tried.
if [ -d /kforge/modsig ]; then
    read -r probe_module probe_params < /kforge/modsig/module
    echo "kforge-modsig enforce=$(cat /sys/module/module/parameters/sig_enforce 2>/dev/null || echo missing)"
    for probe in unsigned tampered signed; do
        # shellcheck disable=SC2086 # params are word-split on purpose
        if out=$(insmod "/kforge/modsig/$probe.ko" $probe_params 2>&1); then
            echo "kforge-modsig $probe=loaded"
            rmmod "$probe_module"
        else
            echo "kforge-modsig $probe=refused: $out" | tr '\n' ' '
            echo
        fi
    done
fi

drivers=""
if [ -d /kforge/drivers ]; then
    drivers=$(ls /kforge/drivers)
fi
count=0
for driver in $drivers; do count=$((count + 1)); done

echo "KTAP version 1"
echo "1..$count"
index=0
for driver in $drivers; do
    index=$((index + 1))
    dir=/kforge/drivers/$driver
    tests=$(wc -l < "$dir/test-list")
    suites=$(cat "$dir/kunit-suites")
    for suite in $suites; do tests=$((tests + 1)); done
    echo "    KTAP version 1"
    echo "    # Subtest: $driver"
    echo "    1..$((tests + 2))"
    failed=0
    number=1
    started=$(date +%s)
    # Load every module of the package in order (`<name> <params...>` lines).
    loaded=1
    unload=""
    mark start "$driver" load
    # One line, padded, computed once: a command substitution per /dev node
    # costs a fork each, which under TCG added 3-4 s to every package.
    devices_before=" $(echo $(ls /dev)) "
    while read -r module params; do
        # Installed from packages: loaded the way the system loads it, by
        # modprobe from /lib/modules/<release> (modules.dep).
        # shellcheck disable=SC2086 # params are word-split on purpose
        if grep -qx "$module" "$dir/modprobe" 2>/dev/null; then
            if out=$(modprobe "$module" $params 2>&1) && grep -q "^$module " /proc/modules; then
                out="$out
modprobe loaded $module from /lib/modules/$(uname -r)"
                unload="$module $unload"
            else
                out="modprobe $module failed: $out"
                loaded=0
            fi
        elif out=$(insmod "$dir/$module.ko" $params 2>&1); then
            unload="$module $unload"
        else
            loaded=0
        fi
        printf '%s\n' "$out" | grep -v '^$' | diag "    "
        [ "$loaded" = 1 ] || break
    done < "$dir/modules"
    mark end "$driver" load
    # The device nodes the package's modules made are the test user's to open.
    granted=""
    for node in $(ls /dev); do
        case "$devices_before" in *" $node "*) ;; *) [ -c "/dev/$node" ] && granted="$granted $node" ;; esac
    done
    if [ "$loaded" = 1 ]; then
        echo "    ok $number load"
    else
        failed=1
        echo "    not ok $number load"
    fi
    first_module=$(head -n 1 "$dir/modules" | cut -d ' ' -f 1)
    # KUnit suites ran when their module loaded (or at boot, if built in):
    # nest each suite's debugfs results as one test of this package.
    for suite in $suites; do
        number=$((number + 1))
        results=/sys/kernel/debug/kunit/$suite/results
        if [ "$loaded" != 1 ]; then
            echo "    ok $number $suite # SKIP the module did not load"
        elif [ ! -r "$results" ]; then
            echo "    # no KUnit results at $results (CONFIG_KUNIT and CONFIG_DEBUG_FS set? suite name right?)"
            echo "    not ok $number $suite"
            failed=1
        else
            # Drop the file's own KTAP header (2 lines) and its final result line.
            sed '1,2d;$d' "$results" | sed 's/^/    /'
            if tail -n 1 "$results" | grep -q '^not ok'; then
                echo "    not ok $number $suite"
                failed=1
            else
                echo "    ok $number $suite"
            fi
        fi
    done
    while read -r name file user; do
        number=$((number + 1))
        if [ "$loaded" != 1 ]; then
            echo "    ok $number $name # SKIP the module did not load"
            continue
        fi
        case "$file" in
            *.sh) runner="sh" ;;
            *) runner="" ;;
        esac
        # A root test may have remade the nodes (reload): grant them again.
        for node in $granted; do
            [ -c "/dev/$node" ] && chmod 666 "/dev/$node"
        done
        mark start "$driver" "$name"
        # Tests get stdin from /dev/null and stdout/stderr into $out, and
        # nothing else of /init's: fds 3 and 4 (the console) are closed.
        if [ "$user" = root ]; then
            out=$(cd "$ROOT_TMP" && TMPDIR=$ROOT_TMP KFORGE_DRIVER=$driver KFORGE_MODULE=$first_module \
                timeout "$TEST_TIMEOUT" $runner "$dir/tests/$file" </dev/null 2>&1 3>&- 4>&-)
            status=$?
            out="ran as root (the package's root-tests)
$out"
        else
            # shellcheck disable=SC2016 # expanded by the test user's shell
            out=$(cd /tmp && TMPDIR=/tmp KFORGE_DRIVER=$driver KFORGE_MODULE=$first_module \
                KFORGE_TEST="$dir/tests/$file" KFORGE_RUNNER=$runner timeout "$TEST_TIMEOUT" \
                su -m -s /bin/sh "${user:-kforge-test}" -c 'exec $KFORGE_RUNNER "$KFORGE_TEST"' \
                </dev/null 2>&1 3>&- 4>&-)
            status=$?
        fi
        mark end "$driver" "$name"
        printf '%s\n' "$out" | grep -v '^$' | diag "    "
        if [ "$status" = 0 ]; then
            echo "    ok $number $name"
        elif [ "$status" = 4 ]; then
            reason=$(printf '%s\n' "$out" | grep -v '^$' | tail -n 1)
            echo "    ok $number $name # SKIP ${reason:-skipped}"
        else
            [ "$status" = 143 ] && echo "    # timed out after ${TEST_TIMEOUT}s"
            echo "    # exit status $status"
            echo "    not ok $number $name"
            failed=1
        fi
    done < "$dir/test-list"
    number=$((number + 1))
    mark start "$driver" unload
    settle
    # Unload in reverse order, even after a failed load (what did load).
    unload_failed=0
    for module in $unload; do
        if ! out=$(rmmod "$module" 2>&1); then
            printf '%s\n' "$out" | grep -v '^$' | diag "    "
            unload_failed=1
        fi
    done
    # kmemleak: scan now that the package is gone. kmemleak reports an object
    # only when it is older than 5 s and unchanged over two scans. Leaks are
    # printed as diagnostics and into dmesg ("unreferenced object ..."), and
    # fail the unload.
    if [ -w "$KMEMLEAK" ]; then
        age=$(( $(date +%s) - started ))
        [ "$age" -lt 6 ] && sleep $((6 - age))
        echo scan > "$KMEMLEAK"
        echo scan > "$KMEMLEAK"
        leaks=$(cat "$KMEMLEAK")
        if [ -n "$leaks" ]; then
            echo "    # kmemleak: memory leaked by $driver (found after unloading it):"
            printf '%s\n' "$leaks" | diag "    "
            printf '%s\n' "$leaks" | while IFS= read -r line; do echo "kmemleak: $line" > /dev/kmsg; done
            echo clear > "$KMEMLEAK"
            unload_failed=1
        fi
    fi
    mark end "$driver" unload
    if [ "$loaded" != 1 ]; then
        echo "    ok $number unload # SKIP the module did not load"
    elif [ "$unload_failed" = 0 ]; then
        echo "    ok $number unload"
    else
        echo "    not ok $number unload"
        failed=1
    fi
    if [ "$failed" = 0 ]; then
        echo "ok $index $driver"
    else
        echo "not ok $index $driver"
    fi
done

# Raw (`<facility*8+level>` prefixes): tells the kernel's own reports from lines user
# space wrote to /dev/kmsg.
echo "kforge-dmesg-begin"
dmesg -r
echo "kforge-dmesg-end"
echo "kforge-end-of-tests"
exec 1>&3 2>&4 3>&- 4>&-
wait "$framer"

case " $cmdline " in *" kforge.interactive "*) interactive=1 ;; *) interactive=0 ;; esac
if [ "$interactive" = 1 ]; then
    echo "kforge: interactive shell (leave with: poweroff -f)"
    setsid cttyhack sh
fi
poweroff -f
