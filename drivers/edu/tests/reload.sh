#!/bin/sh
# reload: an open file pins the module; unbinding with a file open removes the device node and
# the interrupt and makes the file's commands fail with ENODEV; rebinding, rmmod and insmod (with
# the harness's parameters) work and start from fresh counters.
. "$(dirname "$0")/lib.sh"
mod=${KFORGE_MODULE:-kforge_edu}
# rmmod as another user is refused for the wrong reason: this test needs root (root-tests).
[ "$(id -u)" = 0 ] || { echo "needs root: list it in root-tests"; exit 4; }
dir=$(dirname "$(dirname "$0")")
ko=$dir/$mod.ko
[ -f "$ko" ] || { echo "module file $ko not found, cannot reload"; exit 4; }
# The harness lists each module as `<name> <params...>` in $dir/modules.
params=$(awk -v m="$mod" '$1 == m { $1 = ""; sub(/^ +/, ""); print }' "$dir/modules" 2>/dev/null)
drv=/sys/bus/pci/drivers/kforge_edu
pdev=$(basename "$(ls -d "$drv"/0* | head -n 1)")
# Whatever happens, leave the module loaded and bound as the harness loaded it.
# shellcheck disable=SC2086 # params are word-split on purpose
trap 'exec 8<&-; [ -d "$drv" ] || insmod "$ko" $params; [ -c "$DEV" ] || echo "$pdev" > "$drv/bind"; rm -rf "$T"' EXIT

exec 8<>"$DEV"
rmmod "$mod" 2>/dev/null && fail "rmmod succeeded while the device was open"
echo "rmmod refused while the device was open"

echo "$pdev" > "$drv/unbind" || fail "unbinding $pdev failed"
[ -e "$DEV" ] && fail "$DEV still exists after unbind"
grep -q ' kforge_edu$' /proc/interrupts && fail "the interrupt is still registered after unbind"
echo "factorial 5" >&8 2>"$T/err" && fail "factorial on a file of the unbound device succeeded"
grep -q "No such device" "$T/err" || fail "expected ENODEV from the unbound device, got '$(cat "$T/err")'"
exec 8<&-
echo "unbind with a file open: $DEV and the interrupt are gone, the open file gets ENODEV"

echo "$pdev" > "$drv/bind" || fail "rebinding $pdev failed"
[ -c "$DEV" ] || fail "$DEV missing after rebind"
got=$(edu factorial 8)
[ "$got" = 40320 ] || fail "factorial(8) after rebind: '$got', expected 40320"
echo "rebound: factorial(8) = 40320"

rmmod "$mod" || fail "rmmod failed with the device closed"
[ -e "$DEV" ] && fail "$DEV still exists after rmmod"
[ -d "$drv" ] && fail "$drv still exists after rmmod"
grep -q ' kforge_edu$' /proc/interrupts && fail "the interrupt is still registered after rmmod"
echo "rmmod removed $DEV, the PCI driver and the interrupt"

# shellcheck disable=SC2086
insmod "$ko" $params || fail "insmod $params failed"
[ -c "$DEV" ] || fail "$DEV missing after insmod"
[ "$(edu_stat factorials)" = 0 ] || fail "counters not reset by the reload"
got=$(edu factorial 10)
[ "$got" = 3628800 ] || fail "factorial(10) after reload: '$got', expected 3628800"
got=$(edu dmacheck 4096 7)
[ "$got" = "ok 4096" ] || fail "dmacheck 4096 7 after reload: '$got'"
echo "reloaded (${params:-no parameters}): factorial(10) and a 4096-byte DMA work"
