#!/bin/sh
# driver_pci: rust_driver_pci bound QEMU's pci-testdev (1b36:0005), ran its data-match test and read config space.
drv=/sys/bus/pci/drivers/rust_driver_pci
[ -d "$drv" ] || { echo "$drv is missing: the driver did not register"; exit 1; }
bound=$(ls "$drv" | grep -E '^[0-9a-f]{4}:' | head -n 1)
[ -n "$bound" ] || { echo "no device bound to rust_driver_pci (is -device pci-testdev attached?)"; exit 1; }
echo "bound to $bound ($(cat "$drv/$bound/vendor"):$(cat "$drv/$bound/device"))"
[ "$(cat "$drv/$bound/vendor")" = 0x1b36 ] || { echo "vendor is not 0x1b36"; exit 1; }
log=$(dmesg)
printf '%s\n' "$log" | grep -qE 'pci-testdev data-match count: [1-9]' ||
    { echo "no 'pci-testdev data-match count: N' (N >= 1) in dmesg"; exit 1; }
printf '%s\n' "$log" | grep -qF 'pci-testdev config space read16 vendor ID: 1b36' ||
    { echo "config space read of the vendor ID is missing from dmesg"; exit 1; }
echo "data-match test and config space reads reported in dmesg"
