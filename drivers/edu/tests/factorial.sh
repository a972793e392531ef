#!/bin/sh
# factorial: the device computes n! (in 32 bits) and the driver waits for its completion
# interrupt: each factorial adds exactly one factorial interrupt.
. "$(dirname "$0")/lib.sh"
f0=$(edu_stat factorial_irqs); h0=$(edu_stat irqs_handled); n0=$(edu_stat factorials)
p0=$(proc_irqs)
count=0
check() { # check N EXPECTED
	got=$(edu factorial "$1") || fail "factorial $1 failed: $(cat "$T/err")"
	[ "$got" = "$2" ] || fail "factorial($1) = $got, expected $2"
	count=$((count + 1))
}
check 0 1
check 1 1
check 5 120
check 10 3628800
check 12 479001600
echo "0! = 1, 1! = 1, 5! = 120, 10! = 3628800, 12! = 479001600"
# The device multiplies in 32 bits: 13! wraps, 33! = 2^31 * odd, 34! has 32 factors of 2.
check 13 1932053504
check 33 2147483648
check 34 0
check 100 0
echo "13! = 1932053504, 33! = 2147483648, 34! = 100! = 0 (mod 2^32, as the device computes)"
r=1
for n in $(seq 1 20); do
	r=$(((r * n) & 0xffffffff))
	check "$n" "$r"
done
echo "1..20 match n! mod 2^32 computed by the shell"

f1=$(edu_stat factorial_irqs); h1=$(edu_stat irqs_handled); n1=$(edu_stat factorials)
p1=$(proc_irqs)
[ $((n1 - n0)) -eq "$count" ] || fail "factorials grew by $((n1 - n0)), expected $count"
[ $((f1 - f0)) -eq "$count" ] ||
	fail "factorial_irqs grew by $((f1 - f0)) for $count factorials (completion interrupts missing?)"
[ $((h1 - h0)) -ge "$count" ] || fail "irqs_handled grew by $((h1 - h0)), expected >= $count"
[ $((p1 - p0)) -ge "$count" ] || fail "/proc/interrupts count grew by $((p1 - p0)), expected >= $count"
echo "$count factorials, $((f1 - f0)) completion interrupts; /proc/interrupts $p0 -> $p1"
