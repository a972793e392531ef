#!/bin/sh
# params: an open file pins the module; capacity=0 and >1 MiB are refused at load; 1 MiB and the
. "$(dirname "$0")/lib.sh"
mod=${KFORGE_MODULE:-kforge_fifo}
# rmmod as another user is refused for the wrong reason: this test needs root (root-tests).
[ "$(id -u)" = 0 ] || { echo "needs root: list it in root-tests"; exit 4; }
ko=$(dirname "$(dirname "$0")")/$mod.ko
[ -f "$ko" ] || { echo "module file $ko not found, cannot reload"; exit 4; }
orig=$(fifo_stat capacity)
# Whatever happens, leave the module loaded as the harness loaded it.
trap '[ -c "$DEV" ] || insmod "$ko" capacity="$orig"; rm -rf "$T"' EXIT

exec 8<"$DEV"
rmmod "$mod" 2>/dev/null && fail "rmmod succeeded while the device was open"
exec 8<&-
echo "rmmod refused while the device was open"
rmmod "$mod" || fail "rmmod failed with the device closed"
[ -e "$DEV" ] && fail "$DEV still exists after rmmod"

for bad in 0 1048577 4294967295 -1 x; do
	if insmod "$ko" capacity="$bad" 2>/dev/null; then
		rmmod "$mod"
		fail "insmod accepted capacity=$bad"
	fi
	[ -e "$DEV" ] && fail "$DEV exists after a failed insmod capacity=$bad"
done
echo "capacity=0, 1048577, 4294967295, -1, x all refused"

insmod "$ko" capacity=1048576 || fail "insmod capacity=1048576 failed"
[ "$(fifo_stat capacity)" -eq 1048576 ] || fail "capacity is $(fifo_stat capacity), expected 1048576"
seq 1 9999999 | head -c 300000 > "$T/in"
timeout 10 dd if="$T/in" of="$DEV" bs=300000 count=1 status=none || fail "300000-byte write blocked or failed"
[ "$(fifo_stat fill)" -eq 300000 ] || fail "fill is $(fifo_stat fill), expected 300000"
timeout 10 dd if="$DEV" of="$T/out" bs=300000 count=1 iflag=fullblock status=none || fail "read back failed"
cmp "$T/in" "$T/out" || fail "300000 bytes differ"
rmmod "$mod" || fail "rmmod failed"
echo "capacity=1048576 works (300000 bytes in one write)"

insmod "$ko" || fail "insmod without parameters failed"
[ "$(fifo_stat capacity)" -eq 4096 ] || fail "default capacity is $(fifo_stat capacity), expected 4096"
rmmod "$mod" || fail "rmmod failed"
echo "default capacity is 4096"

insmod "$ko" capacity="$orig" || fail "reloading with capacity=$orig failed"
[ "$(fifo_stat capacity)" -eq "$orig" ] || fail "capacity is $(fifo_stat capacity) after reload"
[ "$(fifo_stat bytes_written)" -eq 0 ] || fail "counters not reset by the reload"
echo "reloaded with capacity=$orig"
