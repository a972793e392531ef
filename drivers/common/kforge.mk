# kforge.mk: the kernel version test every kforge driver's Kbuild includes
# (`include $(src)/../common/kforge.mk`).
#
# Sets rustc cfgs from the kernel's VERSION/PATCHLEVEL, which compat.rs (next to
# this file, compiled into each driver) matches on; drivers never test them
# themselves:
#   kforge_linux_7_3  the kernel crate's API as of Linux 7.3 (THIS_MODULE in
#                     kernel::ModuleMetadata, the PCI table macro, probe's ID
#                     info, PCI interrupt vectors and IRQ registrations, handler
#                     signatures, DevresBar, dma_address, module parameters).
# Supporting a newer kernel: add its cfg here and its variants in compat.rs.
# Every driver build (kforge's sandbox) sees this directory at /common, next to
# the driver's copy at /drv.

kforge_version_at_least = $(shell [ $(VERSION) -gt $(1) ] || [ $(VERSION) -eq $(1) -a $(PATCHLEVEL) -ge $(2) ] && echo y)

ifeq ($(call kforge_version_at_least,7,3),y)
rustflags-y += --cfg kforge_linux_7_3
endif
