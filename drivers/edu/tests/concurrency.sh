#!/bin/sh
# concurrency: four processes use the device at once (two factorial loops, DMA, liveness); the
# driver serialises them and every result is right.
. "$(dirname "$0")/lib.sh"
f0=$(edu_stat factorial_irqs); n0=$(edu_stat factorials); d0=$(edu_stat dma_irqs)
worker_factorial() { # N EXPECTED
	for i in $(seq 1 25); do
		got=$(edu factorial "$1") || { echo "factorial $1 failed: $(cat "$T/err")"; exit 1; }
		[ "$got" = "$2" ] || { echo "factorial($1) = $got, expected $2"; exit 1; }
	done
}
worker_dma() {
	for seed in 1 2 3 4 5; do
		got=$(edu dmacheck 4096 "$seed") || { echo "dmacheck failed: $(cat "$T/err")"; exit 1; }
		[ "$got" = "ok 4096" ] || { echo "dmacheck 4096 $seed: $got"; exit 1; }
	done
}
worker_liveness() {
	for v in $(seq 1000 1040); do
		got=$(edu liveness "$v") || { echo "liveness failed"; exit 1; }
		[ "$got" = "$(printf '0x%08x' $((~v & 0xffffffff)))" ] || { echo "liveness $v: $got"; exit 1; }
	done
}
# Each worker gets its own $T (edu() keeps its error file there).
(T=$T/a; mkdir -p "$T"; worker_factorial 10 3628800) >>"$T/bg.log" 2>&1 & pa=$!
(T=$T/b; mkdir -p "$T"; worker_factorial 12 479001600) >>"$T/bg.log" 2>&1 & pb=$!
(T=$T/c; mkdir -p "$T"; worker_dma) >>"$T/bg.log" 2>&1 & pc=$!
(T=$T/d; mkdir -p "$T"; worker_liveness) >>"$T/bg.log" 2>&1 & pd=$!
bg="$pa $pb $pc $pd"
for p in $bg; do
	wait_gone "$p" 90 || fail "worker $p still running after 90 s (deadlock or lost wake-up?)"
	wait "$p" || fail "worker $p failed"
done
f1=$(edu_stat factorial_irqs); n1=$(edu_stat factorials); d1=$(edu_stat dma_irqs)
[ $((n1 - n0)) -eq 50 ] || fail "factorials grew by $((n1 - n0)), expected 50"
[ $((f1 - f0)) -eq 50 ] || fail "factorial_irqs grew by $((f1 - f0)), expected 50"
[ $((d1 - d0)) -eq 10 ] || fail "dma_irqs grew by $((d1 - d0)), expected 10"
echo "4 concurrent workers: 50 factorials, 5 DMA round trips, 41 liveness checks, all correct"
echo "interrupts: +$((f1 - f0)) factorial, +$((d1 - d0)) DMA"
