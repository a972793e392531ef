// SPDX-License-Identifier: GPL-2.0

//! kforge driver compat: every difference between the kernel crate APIs our drivers build against
//! (Linux 7.2 and 7.3), and every raw `bindings::` call they need, in one place.
//!
//! Each driver compiles this file into its own module (its crate root has
//! `#[path = "../common/compat.rs"] mod compat;`), so `crate::` below is the driver's crate and
//! items the `module!` macro generates there (`THIS_MODULE`, `LocalModule`,
//! `module_parameters`) are reachable. The cfg `kforge_linux_7_3` is set by `kforge.mk` (next to
//! this file), which each driver's Kbuild includes, from the kernel's `VERSION`/`PATCHLEVEL`.
//!
//! Drivers use these wrappers and never `bindings::` or `kforge_linux_7_3` themselves (the tidy
//! test `xtask/tests/tidy_drivers.rs` enforces both, and a `// SAFETY:` comment on every `unsafe`
//! block under `drivers/`). Supporting the next kernel means adding its cfg to `kforge.mk` and
//! its variants here.
//!
//! Not every driver uses every item (fifo has no PCI device), hence unused items, re-exports and
//! macros are allowed here.

#![allow(dead_code, unused_imports, unused_macros)]

use kernel::{bindings, fs::Kiocb, prelude::*, types::ForeignOwnable};

// ---------------------------------------------------------------------------------------------
// The module reference.

/// This module's `struct module` (NULL when built in).
///
/// Linux 7.3 moved `THIS_MODULE` from a static that `module!` generates into the
/// `kernel::ModuleMetadata` trait, implemented for the `LocalModule` alias `module!` generates.
#[cfg(kforge_linux_7_3)]
fn this_module() -> *mut bindings::module {
    <crate::LocalModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr()
}

/// This module's `struct module` (NULL when built in): before 7.3, `module!` generates a
/// `THIS_MODULE` static in the crate root.
#[cfg(not(kforge_linux_7_3))]
fn this_module() -> *mut bindings::module {
    crate::THIS_MODULE.as_ptr()
}

/// A reference on this module, held while a file of a misc device is open.
///
/// 7.2's (and 7.3's) Rust `MiscDeviceOptions` leave `file_operations.owner` NULL, so the VFS does
/// not pin the module while the device is open, and `rmmod` would succeed with files open,
/// leaving them pointing at freed code. Keep a `ModuleRef` in the per-open-file data (taken in
/// `open`, dropped with the data in `release`) and `rmmod` fails with `EBUSY` instead.
///
/// A window of a few instructions remains (returning from `release` after the drop) in which a
/// racing `rmmod` could free the code; only `file_operations.owner` closes it completely, and
/// that has to be set by the kernel crate.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference on this module; `ENODEV` if it is being unloaded.
    pub(crate) fn get() -> Result<Self> {
        // SAFETY: `this_module()` is this module (or NULL when built in, which `try_module_get`
        // accepts); it is alive since we are running its code.
        if unsafe { bindings::try_module_get(this_module()) } { Ok(ModuleRef(())) } else { Err(ENODEV) }
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: Balances the successful `try_module_get` in `ModuleRef::get` that created
        // `self` (a `ModuleRef` cannot be created or cloned any other way).
        unsafe { bindings::module_put(this_module()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Module parameters.

/// A module parameter's value: `compat::param!(capacity)`.
///
/// `module_parameters::NAME.value()` is `&T` before 7.3 and `T` from 7.3 on.
macro_rules! param {
    ($name:ident) => {
        $crate::compat::param_value(crate::module_parameters::$name.value())
    };
}
pub(crate) use param;

/// See `param!`.
#[cfg(kforge_linux_7_3)]
pub(crate) fn param_value<T: Copy>(value: T) -> T {
    value
}

/// See `param!`.
#[cfg(not(kforge_linux_7_3))]
pub(crate) fn param_value<T: Copy>(value: &T) -> T {
    *value
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Whether the file behind `kiocb` is in non-blocking mode (`O_NONBLOCK`).
///
/// 7.2's `Kiocb` only exposes the private data and `ki_pos`, so this goes through the raw
/// `kiocb`. `f_flags` is re-read on every call because `fcntl(F_SETFL)` can change it after
/// `open`. (`IOCB_NOWAIT` cannot be set for a misc device without `FMODE_NOWAIT`, so
/// `preadv2(RWF_NOWAIT)` and io_uring are refused before reaching the driver.)
pub(crate) fn is_nonblocking<T: ForeignOwnable>(kiocb: &Kiocb<'_, T>) -> bool {
    // SAFETY: `kiocb` is valid for the duration of this read/write call and its `ki_filp` is the
    // file being read or written, which stays alive at least that long. The only `fdget_pos` that
    // may be active for it is the one taken by this very syscall, on the current thread.
    let file = unsafe { kernel::fs::LocalFile::from_raw_file((*kiocb.as_raw()).ki_filp) };
    file.flags() & kernel::fs::file::flags::O_NONBLOCK != 0
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// `EOPNOTSUPP`, which 7.2's `kernel::error::code` does not declare (its `ENOTSUPP` is the
/// kernel-internal 524, which user space cannot decode).
pub(crate) fn eopnotsupp() -> Error {
    // CAST: errno constants are small positive numbers.
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

// ---------------------------------------------------------------------------------------------
// Formatting.

/// A `u64` formatted in decimal without 64-bit division: `{}` with `Decimal(counter)`.
///
/// Core's `u64` `Display` divides by 10000 with 64-bit division once a value reaches 10000,
/// which the kernel leaves unimplemented on 32-bit ARM (`__aeabi_uldivmod` is a panicking stub
/// in `rust/compiler_builtins.rs`), so printing a counter would BUG there. `Decimal` divides the
/// value as four 16-bit limbs by 10000 with 32-bit arithmetic, on every arch (one code path, so
/// the KUnit tests on any arch check what 32-bit ARM runs). Use it for every `u64` (and `i64`
/// made non-negative) a driver prints. Width and fill flags are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimal(pub(crate) u64);

impl Decimal {
    /// The value in base-10000 digits, least significant first, and how many there are (1..=5).
    fn groups(self) -> ([u32; 5], usize) {
        let value = self.0;
        // CAST: each limb is masked to 16 bits.
        let mut limbs =
            [(value >> 48) as u32, (value >> 32) as u32 & 0xffff, (value >> 16) as u32 & 0xffff, value as u32 & 0xffff];
        let mut groups = [0u32; 5];
        let mut count = 0;
        // u64::MAX < 10000^5, so at most five rounds bring every limb to zero.
        while count < groups.len() {
            let mut rem = 0u32;
            for limb in limbs.iter_mut() {
                // `rem < 10000 < 2^14`, so `(rem << 16) | limb < 2^30`: no overflow.
                let current = (rem << 16) | *limb;
                *limb = current / 10000;
                rem = current % 10000;
            }
            groups[count] = rem;
            count += 1;
            if limbs.iter().all(|&limb| limb == 0) {
                break;
            }
        }
        (groups, count)
    }

    fn write(self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (groups, count) = self.groups();
        let (most, rest) = groups[..count].split_last().ok_or(core::fmt::Error)?;
        core::fmt::Write::write_fmt(f, format_args!("{most}"))?;
        for group in rest.iter().rev() {
            core::fmt::Write::write_fmt(f, format_args!("{group:04}"))?;
        }
        Ok(())
    }
}

/// For `pr_info!`, `dev_info!`, `seq_print!` and other macros built on the kernel's `fmt!`.
impl kernel::fmt::Display for Decimal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.write(f)
    }
}

/// For `write!` into a `core::fmt::Write`.
impl core::fmt::Display for Decimal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.write(f)
    }
}

// ---------------------------------------------------------------------------------------------
// PCI, interrupts, DMA (only where the kernel has PCI; drivers that need it say `needs-pci`).

#[cfg(CONFIG_PCI)]
pub(crate) use pci_compat::*;

#[cfg(CONFIG_PCI)]
mod pci_compat {
    use kernel::{
        bindings,
        device::Bound,
        dma::Coherent,
        irq::{self, IrqReturn, ThreadedIrqReturn},
        pci,
        prelude::*,
    };

    /// A `PCI_DEVICE(vendor, device)` ID table entry (any subsystem IDs).
    ///
    /// 7.2's `pci::Vendor` can only be one of the IDs in `include/linux/pci_ids.h`
    /// (`Vendor::from_raw` is private), so `DeviceId::from_id` cannot express e.g. QEMU's 0x1234;
    /// this builds the entry directly.
    pub(crate) const fn pci_device_id(vendor: u16, device: u16) -> pci::DeviceId {
        // `!0` is PCI_ANY_ID (any subsystem IDs).
        let raw = bindings::pci_device_id {
            vendor: vendor as u32,
            device: device as u32,
            subvendor: !0,
            subdevice: !0,
            class: 0,
            class_mask: 0,
            driver_data: 0,
            override_only: 0,
        };
        // SAFETY: `pci::DeviceId` is a `#[repr(transparent)]` wrapper of `struct pci_device_id`
        // with no further invariants (its own `RawDeviceId` impl relies on the same), and `raw`
        // is what `DeviceId::from_id` would build for this vendor and device.
        unsafe { core::mem::transmute::<bindings::pci_device_id, pci::DeviceId>(raw) }
    }

    /// `compat::pci_device_table!(TABLE, IdInfo, [(id, info), ...])`: the PCI ID table and its
    /// modpost alias. Linux 7.3's `kernel::pci_device_table!` names the alias itself; before, it
    /// took its name as the second argument.
    #[cfg(kforge_linux_7_3)]
    macro_rules! pci_device_table {
        ($table:ident, $id_info:ty, $($entries:tt)+) => {
            kernel::pci_device_table!($table, $id_info, $($entries)+);
        };
    }

    /// See the other `pci_device_table!`.
    #[cfg(not(kforge_linux_7_3))]
    macro_rules! pci_device_table {
        ($table:ident, $id_info:ty, $($entries:tt)+) => {
            kernel::pci_device_table!($table, MODULE_PCI_TABLE, $id_info, $($entries)+);
        };
    }
    pub(crate) use pci_device_table;

    /// What `pci::Driver::probe` gets for the matched ID table entry: Linux 7.3 passes `None`
    /// for an entry without driver data (a dynamic ID).
    #[cfg(kforge_linux_7_3)]
    pub(crate) type ProbeIdInfo<'bound, T> = Option<&'bound T>;
    /// See the other `ProbeIdInfo`.
    #[cfg(not(kforge_linux_7_3))]
    pub(crate) type ProbeIdInfo<'bound, T> = &'bound T;

    /// A mapped BAR as the driver data keeps it, revoked when the device is unbound. Linux 7.3
    /// returns it as `pci::DevresBar` (a `DevresLt`, which lends the BAR out with the borrower's
    /// lifetime); before, it was a `Devres` of the BAR with a `'static` lifetime. Both are used
    /// the same way (`try_access_with`, `access`).
    #[cfg(kforge_linux_7_3)]
    pub(crate) type DevresBar<const SIZE: usize> = pci::DevresBar<SIZE>;
    /// See the other `DevresBar`.
    #[cfg(not(kforge_linux_7_3))]
    pub(crate) type DevresBar<const SIZE: usize> = kernel::devres::Devres<pci::Bar<'static, SIZE>>;

    /// A coherent buffer's device address (Linux 7.3 renamed `dma_handle` to `dma_address`).
    #[cfg(kforge_linux_7_3)]
    pub(crate) fn dma_address(buf: &Coherent<[u8]>) -> u64 {
        u64::from(buf.dma_address())
    }

    /// See the other `dma_address`.
    #[cfg(not(kforge_linux_7_3))]
    pub(crate) fn dma_address(buf: &Coherent<[u8]>) -> u64 {
        u64::from(buf.dma_handle())
    }

    /// Allocated interrupt vectors (`pci::Device::alloc_irq_vectors`). Linux 7.3 returns an owned
    /// `IrqVectorRegistration` that frees them when dropped (`ThreadedIrq` keeps it); before, a
    /// range of vectors whose allocation devres frees at unbind.
    #[cfg(kforge_linux_7_3)]
    pub(crate) type IrqVectors<'bound> = pci::IrqVectorRegistration<'bound>;
    /// See the other `IrqVectors`.
    #[cfg(not(kforge_linux_7_3))]
    pub(crate) type IrqVectors<'bound> = core::ops::RangeInclusive<pci::IrqVector<'bound>>;

    /// The interrupt number of the first vector.
    #[cfg(kforge_linux_7_3)]
    pub(crate) fn irq_number(vectors: &IrqVectors<'_>) -> Result<u32> {
        Ok(irq::IrqRequest::from(vectors.index(0)?).irq())
    }

    /// See the other `irq_number`.
    #[cfg(not(kforge_linux_7_3))]
    pub(crate) fn irq_number(vectors: &IrqVectors<'_>) -> Result<u32> {
        let request: irq::IrqRequest<'_> = (*vectors.start()).try_into()?;
        Ok(request.irq())
    }

    /// A threaded interrupt handler, with the same signatures on every kernel.
    ///
    /// Linux 7.3's handlers no longer get the bound device; before, both got it. Neither method
    /// gets it here: reach device resources through their revocable `Devres` (`try_access_with`
    /// is an RCU read-side section, which hard-irq context allows).
    pub(crate) trait ThreadedHandler: Send + Sync + 'static {
        /// The hard handler (interrupt context): acknowledge, and `WakeThread` for the rest.
        fn handle(&self) -> ThreadedIrqReturn;
        /// The handler thread (process context).
        fn handle_threaded(&self) -> IrqReturn;
    }

    /// Adapts a `ThreadedHandler` to the kernel's `irq::ThreadedHandler`.
    pub(crate) struct Handler<H>(H);

    #[cfg(kforge_linux_7_3)]
    impl<H: ThreadedHandler> irq::ThreadedHandler for Handler<H> {
        fn handle(&self) -> ThreadedIrqReturn {
            self.0.handle()
        }

        fn handle_threaded(&self) -> IrqReturn {
            self.0.handle_threaded()
        }
    }

    #[cfg(not(kforge_linux_7_3))]
    impl<H: ThreadedHandler> irq::ThreadedHandler for Handler<H> {
        fn handle(&self, _dev: &kernel::device::Device<Bound>) -> ThreadedIrqReturn {
            self.0.handle()
        }

        fn handle_threaded(&self, _dev: &kernel::device::Device<Bound>) -> IrqReturn {
            self.0.handle_threaded()
        }
    }

    /// A requested threaded interrupt of the first of `vectors`: the handler registration and,
    /// from Linux 7.3 on, the vectors it was requested from. 7.3's `ThreadedRegistration` borrows
    /// the vector allocation for as long as it lives, so both live here, and the registration
    /// (which frees the interrupt, waiting for a running handler) is dropped first. Keep it in
    /// the driver data; dropping it frees the interrupt.
    #[cfg(kforge_linux_7_3)]
    #[pin_data]
    pub(crate) struct ThreadedIrq<'bound, H: ThreadedHandler> {
        #[pin]
        registration: irq::ThreadedRegistration<'bound, Handler<H>>,
        vectors: IrqVectors<'bound>,
    }

    /// See the other `ThreadedIrq`: before 7.3 the vectors are devres-managed and the
    /// registration borrows nothing; `_bound` gives the type the same lifetime parameter.
    #[cfg(not(kforge_linux_7_3))]
    #[pin_data]
    pub(crate) struct ThreadedIrq<'bound, H: ThreadedHandler> {
        #[pin]
        registration: irq::ThreadedRegistration<Handler<H>>,
        _bound: core::marker::PhantomData<&'bound pci::Device<Bound>>,
    }

    impl<'bound, H: ThreadedHandler> ThreadedIrq<'bound, H> {
        /// Requests the interrupt of the first of `vectors` for `handler`.
        ///
        /// Linux 7.3 removed `pci::Device::request_threaded_irq`: the request now comes from
        /// `IrqVectorRegistration::index`, and `ThreadedRegistration::new` is `unsafe` (it must
        /// not be leaked).
        #[cfg(kforge_linux_7_3)]
        pub(crate) fn request(
            _pdev: &'bound pci::Device<Bound>,
            vectors: IrqVectors<'bound>,
            flags: irq::Flags,
            name: &'static CStr,
            handler: H,
        ) -> impl PinInit<Self, Error> + 'bound {
            try_pin_init!(&this in Self {
                vectors,
                registration <- {
                    // SAFETY: `this` points to the `ThreadedIrq` being initialised in place,
                    // which is pinned (it never moves), and its `vectors` field is initialised
                    // (fields are initialised in the order written here). The reference only
                    // serves to request the interrupt, which makes `registration` borrow
                    // `vectors`; `registration` is declared before `vectors`, so it is dropped
                    // first (when the `ThreadedIrq` is, or by pin-init's guard if a later
                    // initialiser fails). `vectors` is not accessed mutably until it is dropped.
                    let allocation: &'bound IrqVectors<'bound> = unsafe { &(*this.as_ptr()).vectors };
                    pin_init::pin_init_scope(move || {
                        let request = irq::IrqRequest::from(allocation.index(0)?);
                        // SAFETY: The registration is a field of this `ThreadedIrq`, which is
                        // pinned and documented to live in the driver data, which the driver
                        // core drops at unbind (or pin-init drops if probe fails); it is never
                        // leaked.
                        Ok(unsafe {
                            irq::ThreadedRegistration::new(request, flags, name, Ok::<_, Error>(Handler(handler)))
                        })
                    })
                },
            })
        }

        /// Requests the interrupt of the first of `vectors` for `handler` (before 7.3, through
        /// `pci::Device::request_threaded_irq`).
        #[cfg(not(kforge_linux_7_3))]
        pub(crate) fn request(
            pdev: &'bound pci::Device<Bound>,
            vectors: IrqVectors<'bound>,
            flags: irq::Flags,
            name: &'static CStr,
            handler: H,
        ) -> impl PinInit<Self, Error> + 'bound {
            try_pin_init!(Self {
                registration <- pdev.request_threaded_irq(
                    *vectors.start(),
                    flags,
                    name,
                    Ok::<_, Error>(Handler(handler)),
                ),
                _bound: core::marker::PhantomData,
            })
        }
    }
}
