// SPDX-License-Identifier: GPL-2.0

//! DMA after free: a coherent buffer freed while QEMU's edu device is about to write it (dma).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.
//!
//! Probe starts a device-to-RAM transfer into a freshly allocated coherent buffer and drops
//! the buffer at once. edu runs a transfer 100 ms after its command (`hw/misc/edu.c`), so the
//! device writes a page the kernel has already freed. `kernel::dma::Coherent`'s contract
//! ("the device must be halted before this object is dropped") is what is broken here.
//!
//! Nothing in the guest's CPU touches the freed page, so KASAN cannot see this; only an IOMMU
//! can. Under the debug profile the freed page's IOVA is unmapped synchronously (strict mode),
//! and the device's write faults: `DMAR: [DMA Write NO_PASID] ...` (VT-d) or
//! `arm-smmu-v3 ...: event 0x10 received:` (SMMUv3). Without an IOMMU the write lands in
//! freed memory and nothing is reported.
//!
//! Bus mastering stays on (clearing it would drop the write silently), and probe waits for
//! the transfer to finish before returning, so the fault falls inside the `load` test.

#[path = "../common/compat.rs"]
mod compat;

use kernel::{
    device::Core,
    dma::{Coherent, Device as _, DmaMask},
    io::Io,
    pci,
    prelude::*,
    time::{Delta, delay::fsleep},
};

/// BAR 0 register offsets and bits (QEMU `docs/specs/edu.rst`).
mod regs {
    /// Identification, `0xRRrr00ed`.
    pub(super) const ID: usize = 0x00;
    /// DMA source address.
    pub(super) const DMA_SRC: usize = 0x80;
    /// DMA destination address.
    pub(super) const DMA_DST: usize = 0x88;
    /// DMA transfer count in bytes.
    pub(super) const DMA_COUNT: usize = 0x90;
    /// DMA command.
    pub(super) const DMA_CMD: usize = 0x98;
    /// End of the registers used.
    pub(super) const END: usize = 0xa0;
    /// `DMA_CMD`: start the transfer (cleared by the device when it is done).
    pub(super) const DMA_START: u32 = 0x1;
    /// `DMA_CMD`: direction device buffer -> RAM.
    pub(super) const DMA_TO_RAM: u32 = 0x2;
    /// Device address of the device's own DMA buffer.
    pub(super) const DMA_BUF_ADDR: u64 = 0x40000;
    /// Size of that buffer, and of the transfer.
    pub(super) const DMA_BUF_SIZE: usize = 4096;
}

/// The identification value of edu 1.0.
const EDU_ID: u32 = 0x0100_00ed;

/// `1234:11e8`, QEMU's edu device.
const EDU_PCI_ID: pci::DeviceId = compat::pci_device_id(0x1234, 0x11e8);

compat::pci_device_table!(PCI_TABLE, <SeededDmaAfterFree as pci::Driver>::IdInfo, [(EDU_PCI_ID, ())]);

kernel::module_pci_driver! {
    type: SeededDmaAfterFree,
    name: "seeded_dma_after_free",
    authors: ["kforge"],
    description: "kforge seeded bug: DMA into a freed coherent buffer",
    license: "GPL",
}

struct SeededDmaAfterFree;

impl pci::Driver for SeededDmaAfterFree {
    type IdInfo = ();
    type Data<'bound> = ();
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: compat::ProbeIdInfo<'bound, ()>,
    ) -> impl PinInit<(), Error> + 'bound {
        // A `Result` is an initializer of its `Ok` value: this driver keeps no data.
        start_dma_then_free(pdev)
    }
}

/// Starts a device-to-RAM transfer into a new coherent buffer, frees the buffer (the bug),
/// and waits until the device has written it.
fn start_dma_then_free(pdev: &pci::Device<Core<'_>>) -> Result {
    pdev.enable_device_mem()?;
    pdev.set_master();
    let bar = pdev.iomap_region_sized::<{ regs::END }>(0, c"seeded_dma_after_free")?;
    let id = bar.read32(regs::ID);
    if id != EDU_ID {
        dev_err!(pdev, "identification is {id:#010x}, expected {EDU_ID:#010x}\n");
        return Err(ENODEV);
    }
    // SAFETY: Called once from probe, before any DMA allocation or mapping for this device.
    unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<32>())? };
    let buf = Coherent::<u8>::zeroed_slice(pdev.as_ref(), regs::DMA_BUF_SIZE, GFP_KERNEL)?;
    let dst = compat::dma_address(&buf);
    write_dma_addr(&bar, regs::DMA_BUF_ADDR, dst)?;
    bar.write32(u32::try_from(regs::DMA_BUF_SIZE)?, regs::DMA_COUNT);
    bar.write32(regs::DMA_START | regs::DMA_TO_RAM, regs::DMA_CMD);
    // BUG: the device writes `buf` 100 ms from now, and it is freed (and unmapped) here.
    drop(buf);
    // Wait (at most 2 s) for the device to finish its write, so that what the write causes
    // is reported while this module loads. Bus mastering stays on.
    let mut waited_ms = 0;
    while bar.read32(regs::DMA_CMD) & regs::DMA_START != 0 && waited_ms < 2000 {
        fsleep(Delta::from_millis(50));
        waited_ms += 50;
    }
    // The IOMMU's fault interrupt follows the write; give its report time to be printed.
    fsleep(Delta::from_millis(300));
    dev_info!(pdev, "seeded_dma_after_free: the device wrote a freed buffer ({waited_ms} ms)\n");
    Ok(())
}

/// Writes the transfer's addresses (64-bit registers; two 32-bit halves on 32-bit kernels).
#[cfg(CONFIG_64BIT)]
fn write_dma_addr(bar: &pci::Bar<'_, { regs::END }>, src: u64, dst: u64) -> Result {
    bar.try_write64(src, regs::DMA_SRC)?;
    bar.try_write64(dst, regs::DMA_DST)?;
    Ok(())
}

/// See the other `write_dma_addr`.
#[cfg(not(CONFIG_64BIT))]
fn write_dma_addr(bar: &pci::Bar<'_, { regs::END }>, src: u64, dst: u64) -> Result {
    bar.write32(u32::try_from(src)?, regs::DMA_SRC);
    bar.write32(u32::try_from(dst)?, regs::DMA_DST);
    Ok(())
}
