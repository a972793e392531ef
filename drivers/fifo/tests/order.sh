#!/bin/sh
# order: separate writes are read back in order, also when the ring wraps around its end.
. "$(dirname "$0")/lib.sh"
printf 'first:' > "$DEV" || fail "first write failed"
printf 'second' > "$DEV" || fail "second write failed"
a=$(timeout 5 dd if="$DEV" bs=6 count=1 iflag=fullblock status=none) || fail "first read failed"
b=$(timeout 5 dd if="$DEV" bs=6 count=1 iflag=fullblock status=none) || fail "second read failed"
[ "$a" = "first:" ] && [ "$b" = "second" ] || fail "read '$a' then '$b', expected 'first:' then 'second'"
echo "two writes came back in order"

# Moving 3/4 of the capacity per round pushes head and tail across the end of the buffer.
cap=$(fifo_stat capacity)
n=$((cap * 3 / 4)); [ "$n" -ge 1 ] || n=1
for round in 1 2 3 4 5; do
	seq "$round" 9999999 | head -c "$n" > "$T/in"
	timeout 5 dd if="$T/in" of="$DEV" bs="$n" count=1 status=none || fail "round $round: write failed"
	timeout 5 dd if="$DEV" of="$T/out" bs="$n" count=1 iflag=fullblock status=none ||
		fail "round $round: read failed"
	cmp "$T/in" "$T/out" || fail "round $round: data differs after wrap-around"
done
[ "$(fifo_stat fill)" -eq 0 ] || fail "FIFO not empty at the end"
echo "5 rounds of $n bytes through a $cap-byte ring kept their order"
