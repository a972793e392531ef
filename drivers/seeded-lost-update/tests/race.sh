#!/bin/sh
# Two writers, one write(2) per byte, at the same time: the count must be the sum.
dev=/dev/kforge-seeded-race
n=3000
[ -c "$dev" ] || { echo "$dev missing"; exit 1; }
dd if=/dev/zero of="$dev" bs=1 count="$n" 2>/dev/null &
dd if=/dev/zero of="$dev" bs=1 count="$n" 2>/dev/null &
wait
got=$(cat "$dev")
echo "counted $got writes of $((2 * n)) ($(grep -c ^processor /proc/cpuinfo) CPUs)"
[ "$got" = "$((2 * n))" ]
