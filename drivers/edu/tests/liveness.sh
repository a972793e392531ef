#!/bin/sh
# liveness: the liveness register reads back the bitwise inverse of what was written.
. "$(dirname "$0")/lib.sh"
values="0 1 0x12345678 0xffffffff 0x80000000 0x7fffffff 0xdeadbeef 0x0f0f0f0f 305419896"
for i in 1 2 3 4 5; do
	values="$values $(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
done
n=0
for v in $values; do
	got=$(edu liveness "$v") || fail "liveness $v failed: $(cat "$T/err")"
	want=$(printf '0x%08x' $((~v & 0xffffffff)))
	[ "$got" = "$want" ] || fail "liveness $v read back $got, expected $want"
	n=$((n + 1))
done
echo "$n values (incl. 5 random) read back inverted, e.g. 0x12345678 -> $(edu liveness 0x12345678)"
