#!/bin/sh
# signal: a signal never leaves the device half-way: a batch of 20 DMA round trips written in one
# write(2) and interrupted by SIGTERM stops between two commands, every started round trip gets
# both of its completion interrupts, and the device works afterwards.
. "$(dirname "$0")/lib.sh"
r0=$(edu_stat dma_round_trips); d0=$(edu_stat dma_irqs)
for seed in $(seq 1 20); do echo "dmacheck 4096 $seed"; done > "$T/batch"
# One write(2) of the whole batch (dd writes its block at once) on a file opened by dd itself.
dd if="$T/batch" of="$DEV" bs=4096 count=1 status=none >>"$T/bg.log" 2>&1 &
pid=$!; bg="$bg $pid"
i=0
while [ "$(edu_stat dma_round_trips)" -le "$r0" ]; do
	[ "$i" -ge 100 ] && fail "the batch did not start within 10 s"
	sleep 0.1; i=$((i + 1))
done
alive "$pid" || fail "the batch finished before it could be interrupted"
kill -TERM "$pid"
wait_gone "$pid" 10 || fail "the writer survived SIGTERM for 10 s"
r1=$(edu_stat dma_round_trips); d1=$(edu_stat dma_irqs)
done_=$((r1 - r0))
[ "$done_" -lt 20 ] || fail "all 20 round trips ran although SIGTERM came after the first"
[ $((d1 - d0)) -eq $((2 * done_)) ] ||
	fail "dma_irqs grew by $((d1 - d0)) for $done_ round trips: an operation was cut in half"
echo "SIGTERM stopped the batch after $done_ of 20 round trips, each with both interrupts"
got=$(edu dmacheck 4096 77)
[ "$got" = "ok 4096" ] || fail "dmacheck 4096 77 after the interrupted batch: '$got'"
got=$(edu factorial 9)
[ "$got" = 362880 ] || fail "factorial(9) after the interrupted batch: '$got', expected 362880"
echo "the device works afterwards"
