#!/bin/sh
# dma: data goes RAM -> device buffer -> another RAM buffer by DMA (coherent buffers, completion
# interrupt per leg) and comes back unchanged, for several sizes and patterns.
. "$(dirname "$0")/lib.sh"
[ "$(edu_stat dma_mask_bits)" != none ] || fail "the driver has no DMA (see dmesg)"
d0=$(edu_stat dma_irqs); r0=$(edu_stat dma_round_trips)
count=0
tohex() { od -An -v -tx1 | tr -d ' \n'; }
roundtrip() { # roundtrip WHAT HEX
	back=$(edu dma "$2") || fail "dma of $1 failed: $(cat "$T/err")"
	if [ "$back" != "$2" ]; then
		echo "sent: $(echo "$2" | head -c 64)..."
		echo "got:  $(echo "$back" | head -c 64)..."
		fail "$1: the data came back different"
	fi
	count=$((count + 1))
}
for size in 1 7 64 100 1000 4095 4096; do
	roundtrip "$size random bytes" "$(head -c "$size" /dev/urandom | tohex)"
done
echo "random data, 1 7 64 100 1000 4095 4096 bytes: unchanged"
roundtrip "4096 zero bytes" "$(head -c 4096 /dev/zero | tohex)"
roundtrip "4096 0xff bytes" "$(head -c 4096 /dev/zero | tr '\0' '\377' | tohex)"
roundtrip "0x00..0xff ascending x16" "$(awk 'BEGIN { for (i = 0; i < 4096; i++) printf "%02x", i % 256 }')"
roundtrip "0x55/0xaa alternating" "$(awk 'BEGIN { for (i = 0; i < 2048; i++) printf "55aa" }')"
echo "zeros, 0xff, ascending and 0x55/0xaa, 4096 bytes each: unchanged"
for spec in "1 1" "513 0xdeadbeef" "4096 0" "4096 12345" "3000 0x80000000"; do
	# shellcheck disable=SC2086 # LEN SEED
	got=$(edu dmacheck $spec) || fail "dmacheck $spec failed: $(cat "$T/err")"
	[ "$got" = "ok ${spec%% *}" ] || fail "dmacheck $spec: $got"
	count=$((count + 1))
done
echo "kernel-side pattern check (dmacheck) for 5 length/seed pairs: ok"

d1=$(edu_stat dma_irqs); r1=$(edu_stat dma_round_trips)
[ $((r1 - r0)) -eq "$count" ] || fail "dma_round_trips grew by $((r1 - r0)), expected $count"
[ $((d1 - d0)) -eq $((2 * count)) ] ||
	fail "dma_irqs grew by $((d1 - d0)) for $count round trips, expected $((2 * count)) (one per leg)"
echo "$count round trips, $((d1 - d0)) DMA completion interrupts"
