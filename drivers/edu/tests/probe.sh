#!/bin/sh
# probe: the driver bound the edu device (1234:11e8), created /dev/kforge-edu, registered its
# interrupt and handled the probe-time self-test interrupt.
. "$(dirname "$0")/lib.sh"
drv=/sys/bus/pci/drivers/kforge_edu
[ -d "$drv" ] || fail "$drv is missing (PCI driver not registered)"
n=0
for d in "$drv"/0*; do
	[ -e "$d" ] || continue
	n=$((n + 1)); pdev=$d
done
[ "$n" -eq 1 ] || fail "the driver is bound to $n devices, expected 1"
id="$(cat "$pdev/vendor"):$(cat "$pdev/device")"
[ "$id" = "0x1234:0x11e8" ] || fail "bound device is $id, expected 0x1234:0x11e8"
echo "bound to $(basename "$pdev") ($id)"

mode=$(edu_stat irq_mode); irq=$(edu_stat irq)
case "$mode" in msi | intx) ;; *) fail "irq_mode is '$mode'" ;; esac
line=$(grep "^ *$irq:" /proc/interrupts)
case "$line" in *" kforge_edu") ;; *) fail "irq $irq is not kforge_edu's in /proc/interrupts: '$line'" ;; esac
echo "interrupt: irq $irq ($mode), /proc/interrupts:$(echo "$line" | tr -s ' ')"
[ "$(proc_irqs)" -ge 1 ] || fail "the interrupt never fired (the probe self-test raises one)"
[ "$(edu_stat other_irqs)" -eq 1 ] || fail "other_irqs is $(edu_stat other_irqs), expected 1 (the self-test)"
bits=$(edu_stat dma_mask_bits)
[ "$bits" = 32 ] || fail "dma_mask_bits is '$bits', expected 32 (module-params dma_bits=32)"
msg=$(dmesg | grep 'kforge_edu.*edu 1\.0 bound' | tail -n 1)
[ -n "$msg" ] || fail "no 'edu 1.0 bound' message in dmesg"
echo "dmesg: ${msg#*] }"
