// SPDX-License-Identifier: GPL-2.0

//! kforge_edu: a PCI driver for QEMU's educational `edu` device (`1234:11e8`, see QEMU's
//! `docs/specs/edu.rst`), exposed to user space as the misc device `/dev/kforge-edu`.
//!
//! At probe the driver maps BAR 0, checks the identification register (`0x010000ed`, anything
//! else fails the probe with `ENODEV`) and the liveness register, sets up DMA, requests the
//! interrupt (MSI when the kernel and platform offer it, else legacy INTx) and raises one
//! interrupt through the device's raise register as a self-test (no interrupt within 5 s fails the
//! probe with `ETIMEDOUT`).
//!
//! # Text protocol
//!
//! Every open file has its own command and reply buffers. Write commands, one per line (`\n`
//! terminated; a line may arrive in several writes); each complete line runs synchronously inside
//! the `write(2)` that completes it, and its reply is appended to the file's reply buffer, which
//! `read(2)` drains (a read with nothing pending returns 0, i.e. end of file). A failing command
//! makes that `write(2)` fail with its errno and produces no reply; earlier commands of the same
//! write have run, later ones are discarded. A signal stops a batch of commands between two of
//! them (`EINTR`), never in the middle of one. Numbers may be decimal, `0x` hex, `0o` octal or
//! `0b` binary.
//!
//! ```text
//! id                  -> 0x010000ed             identification register
//! liveness V          -> 0x........             writes V to 0x04, replies what reads back (~V)
//! factorial N         -> N! mod 2^32 (decimal)  N <= 1048576; completion signalled by interrupt
//! dma HEX             -> HEX'                   1..=4096 bytes (2 hex digits each): RAM -> device
//!                                               buffer -> another RAM buffer, both legs by
//!                                               interrupt; replies the bytes that came back
//! dmacheck LEN SEED   -> ok LEN | mismatch ...  the same with a pseudo-random pattern, compared
//!                                               in the kernel
//! raise BITS          -> 0x........             raises an interrupt with BITS (not 0x1 or 0x100,
//!                                               which belong to factorial and DMA) and replies
//!                                               the status bits the handler acknowledged
//! stats               -> key value lines        interrupt mode and counters (see `Edu::stats`)
//! ```
//!
//! Errors: `EINVAL` for unknown commands, bad numbers or out-of-range arguments, and for a write
//! that would buffer more than 16 KiB of command text; `EOPNOTSUPP` for DMA when no DMA buffer
//! could be set up; `ETIMEDOUT` when the device does not finish within 5 s; `ENODEV` once the
//! device has been unbound; `ENOSPC` when more than 64 KiB of replies are left unread.
//!
//! # Interrupts
//!
//! The hard handler reads the interrupt status register, acknowledges exactly those bits (which
//! lowers INTx; the device needs the acknowledgement with MSI too), latches them in an atomic and
//! wakes the handler thread; the thread publishes them under a mutex and notifies a `CondVar`
//! that operations wait on. The thread exists because 7.2's kernel crate has no interrupt-safe
//! spinlock: a plain `SpinLock` taken in hard-irq context would deadlock against process context,
//! and waking a `CondVar` without holding the waiter's lock can lose the wake-up. (7.2's
//! `Completion` only has `complete_all`/`wait_for_completion`, with no re-arm and no timeout, so
//! it cannot serve repeated operations.)
//!
//! Waits are bounded (5 s) and not cut short by signals, so an operation always leaves the device
//! idle for the next one; they end in microseconds (factorial) or ~100 ms (a DMA leg).
//!
//! # DMA addressing
//!
//! The device masks DMA addresses to 28 bits unless QEMU is given `-device edu,dma_mask=...`.
//! The `dma_bits` parameter (28..=64, default 28; out of range fails every probe with `EINVAL`)
//! is the mask the driver programs. It must not be wider than the device's mask, or the device
//! clamps the addresses and reads and writes the wrong memory. If the kernel cannot honour the
//! mask (it cannot place memory below 256 MiB when RAM extends beyond that and there is no
//! ZONE_DMA, as on kforge's machines), the driver binds without DMA and `dma` fails with
//! `EOPNOTSUPP`. kforge runs the device with a 32-bit mask and loads the module with
//! `dma_bits=32`.
//!
//! The coherent buffers live as long as the device state, which an open file can keep past
//! unbind; the device is quiesced at unbind (no DMA running) before that can happen.
//!
//! # Kernel versions
//!
//! Kernel API differences between the releases it builds on (7.2, 7.3: the PCI table, probe's ID
//! info, the BAR's `Devres`, interrupt vectors and threaded handlers, DMA addresses, module
//! parameters, the module reference) and raw `bindings::` calls live in
//! `drivers/common/compat.rs`, compiled into this module as `compat`.
//!
//! # In-kernel tests
//!
//! The KUnit suite `kforge_edu` at the end of this file tests what needs no device: the command
//! parser (`parse`), hex encoding, number parsing, the `dmacheck` pattern and comparison, the
//! interrupt event bookkeeping and the parameter checks. It is compiled in when the kernel has
//! `CONFIG_KUNIT=y` and runs each time the module is loaded (whether or not a device is
//! present); its results are in `/sys/kernel/debug/kunit/kforge_edu/results`.

use core::fmt::Write;

#[path = "../common/compat.rs"]
mod compat;

use compat::{Decimal, ModuleRef};
use kernel::{
    device::{self, Bound, Core},
    dma::{Coherent, Device as _, DmaMask},
    fs::{File, Kiocb},
    io::{Io, poll::read_poll_timeout},
    iov::{IovIterDest, IovIterSource},
    irq::{self, IrqReturn, ThreadedIrqReturn},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_condvar, new_mutex, pci,
    prelude::*,
    str::{BStr, parse_int::ParseInt},
    sync::{
        Arc, CondVar, CondVarTimeoutResult, Mutex,
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
    },
    time::{Delta, Instant, Monotonic, delay::fsleep, msecs_to_jiffies},
};

/// BAR 0 register offsets and bits (QEMU `docs/specs/edu.rst`).
mod regs {
    /// Identification, `0xRRrr00ed`: major `RR`, minor `rr`.
    pub(super) const ID: usize = 0x00;
    /// Liveness check: reads back the bitwise inverse of what was written.
    pub(super) const LIVENESS: usize = 0x04;
    /// Factorial: write n, read n! (computed in 32 bits) once `STATUS_COMPUTING` clears.
    pub(super) const FACTORIAL: usize = 0x08;
    /// Status register.
    pub(super) const STATUS: usize = 0x20;
    /// Interrupt status: the bits that raised the pending interrupt.
    pub(super) const IRQ_STATUS: usize = 0x24;
    /// Interrupt raise: ORs the written bits into `IRQ_STATUS` and raises the interrupt.
    pub(super) const IRQ_RAISE: usize = 0x60;
    /// Interrupt acknowledge: clears the written bits from `IRQ_STATUS`.
    pub(super) const IRQ_ACK: usize = 0x64;
    /// DMA source address.
    pub(super) const DMA_SRC: usize = 0x80;
    /// DMA destination address.
    pub(super) const DMA_DST: usize = 0x88;
    /// DMA transfer count in bytes.
    pub(super) const DMA_COUNT: usize = 0x90;
    /// DMA command.
    pub(super) const DMA_CMD: usize = 0x98;
    /// End of the registers we use (the BAR itself is 1 MiB).
    pub(super) const END: usize = 0xa0;

    /// `STATUS`: a factorial is being computed (read-only).
    pub(super) const STATUS_COMPUTING: u32 = 0x01;
    /// `STATUS`: raise `IRQ_FACTORIAL` when a factorial is done.
    pub(super) const STATUS_IRQ_FACTORIAL: u32 = 0x80;

    /// `IRQ_STATUS` bit raised by a finished factorial.
    pub(super) const IRQ_FACTORIAL: u32 = 0x001;
    /// `IRQ_STATUS` bit raised by a finished DMA transfer.
    pub(super) const IRQ_DMA: u32 = 0x100;

    /// `DMA_CMD`: start the transfer (cleared by the device when it is done).
    pub(super) const DMA_START: u32 = 0x1;
    /// `DMA_CMD`: direction device buffer -> RAM (clear: RAM -> device buffer).
    pub(super) const DMA_TO_RAM: u32 = 0x2;
    /// `DMA_CMD`: raise `IRQ_DMA` when the transfer is done.
    pub(super) const DMA_IRQ: u32 = 0x4;

    /// Device address of the device's DMA buffer.
    pub(super) const DMA_BUF_ADDR: u64 = 0x40000;
    /// Size of the device's DMA buffer.
    pub(super) const DMA_BUF_SIZE: usize = 4096;
}

/// The identification value this driver supports (version 1.0).
const EDU_ID: u32 = 0x0100_00ed;
/// Interrupt bit used by the probe-time self-test (any bit the device does not use itself).
const SELFTEST_IRQ: u32 = 0x8000_0000;
/// Largest accepted factorial argument; keeps the device's computation well under the timeout.
const MAX_FACTORIAL_ARG: u32 = 1 << 20;
/// Upper bound for every wait on the device.
const OP_TIMEOUT: Delta = Delta::from_secs(5);
/// Longest accepted command line, enough for `dma` with 4096 bytes in hex.
const MAX_LINE: usize = 16 * 1024;
/// Most reply bytes a file may hold unread.
const MAX_REPLY: usize = 64 * 1024;

/// BAR 0, mapped as far as the registers we use, for the lifetime `'a` of a binding.
type EduBar<'a> = pci::Bar<'a, { regs::END }>;

/// The mapped BAR as `Edu` keeps it, revoked when the device is unbound.
type EduBarDevres = compat::DevresBar<{ regs::END }>;

/// `1234:11e8`. QEMU's vendor ID 0x1234 is not in `include/linux/pci_ids.h`.
const EDU_PCI_ID: pci::DeviceId = compat::pci_device_id(0x1234, 0x11e8);

compat::pci_device_table!(PCI_TABLE, <EduDriver as pci::Driver>::IdInfo, [(EDU_PCI_ID, ())]);

kernel::module_pci_driver! {
    type: EduDriver,
    name: "kforge_edu",
    authors: ["kforge"],
    description: "PCI driver for QEMU's edu device",
    license: "GPL",
    params: {
        dma_bits: u32 {
            default: 28,
            description: "DMA address width the device supports (28..=64; QEMU's default is 28)",
        },
    },
}

/// How the device interrupts us.
#[derive(Clone, Copy)]
enum IrqMode {
    Msi,
    Intx,
}

impl IrqMode {
    fn name(self) -> &'static str {
        match self {
            IrqMode::Msi => "msi",
            IrqMode::Intx => "intx",
        }
    }
}

/// The two coherent buffers used for the DMA round trip: RAM -> device, device -> RAM.
struct DmaBuffers {
    src: Coherent<[u8]>,
    dst: Coherent<[u8]>,
    bits: u32,
}

/// State of device operations, protected by `Edu::op`, which serialises them.
struct OpState {
    /// Set at unbind: no further operations.
    removed: bool,
    factorials: u64,
    dma_round_trips: u64,
}

/// Interrupt events, protected by `Edu::events`; written by the interrupt thread.
#[derive(Clone, Copy, Default)]
struct Events {
    /// Acknowledged interrupt status bits not yet consumed by a waiter.
    pending: u32,
    factorial_irqs: u64,
    dma_irqs: u64,
    other_irqs: u64,
}

impl Events {
    /// Records one interrupt that acknowledged `bits` (nonzero): they become pending, and each
    /// kind of interrupt among them (factorial, DMA, anything else) is counted once.
    fn record(&mut self, bits: u32) {
        self.pending |= bits;
        if bits & regs::IRQ_FACTORIAL != 0 {
            self.factorial_irqs += 1;
        }
        if bits & regs::IRQ_DMA != 0 {
            self.dma_irqs += 1;
        }
        if bits & !(regs::IRQ_FACTORIAL | regs::IRQ_DMA) != 0 {
            self.other_irqs += 1;
        }
    }
}

/// The device, shared by the driver data, the interrupt handler and every open file.
#[pin_data]
struct Edu {
    pdev: ARef<pci::Device>,
    /// Revoked when the device is unbound.
    bar: EduBarDevres,
    /// `None` when the kernel could not provide buffers the device can address.
    dma: Option<DmaBuffers>,
    irq_mode: IrqMode,
    irq: u32,
    #[pin]
    op: Mutex<OpState>,
    #[pin]
    events: Mutex<Events>,
    /// Notified (with `events` held) whenever `events.pending` gains bits.
    #[pin]
    event_cv: CondVar,
    /// Status bits acknowledged by the hard handler, not yet published by the thread.
    latched: Atomic<u32>,
    /// Hard interrupts that were ours (nonzero interrupt status).
    irqs_handled: Atomic<u64>,
    /// Hard interrupts with a zero interrupt status (shared INTx line, spurious).
    irqs_not_ours: Atomic<u64>,
}

/// Checks a `factorial` argument: at most `MAX_FACTORIAL_ARG`, else `EINVAL`.
fn check_factorial_arg(n: u32) -> Result<u32> {
    if n > MAX_FACTORIAL_ARG {
        return Err(EINVAL);
    }
    Ok(n)
}

/// Checks the bits of a `raise` command: nonzero and none of those the factorial and DMA
/// completions use (their waiters would take them), else `EINVAL`.
fn check_raise_bits(bits: u32) -> Result<u32> {
    if bits == 0 || bits & (regs::IRQ_FACTORIAL | regs::IRQ_DMA) != 0 {
        return Err(EINVAL);
    }
    Ok(bits)
}

/// Atomically ORs `bits` into `atomic`.
fn atomic_or(atomic: &Atomic<u32>, bits: u32) {
    let mut old = atomic.load(Relaxed);
    while let Err(current) = atomic.cmpxchg(old, old | bits, Full) {
        old = current;
    }
}

impl Edu {
    /// Runs `f` on the mapped BAR, or fails with `ENODEV` once the device is unbound.
    ///
    /// `f` runs in an RCU read-side critical section and must not sleep.
    fn with_bar<R>(&self, f: impl FnOnce(&EduBar<'_>) -> R) -> Result<R> {
        self.bar.try_access_with(f).ok_or(ENODEV)
    }

    /// Takes the operation lock, failing once the device is unbound.
    fn begin(&self) -> Result<kernel::sync::MutexGuard<'_, OpState>> {
        let op = self.op.lock();
        if op.removed {
            return Err(ENODEV);
        }
        Ok(op)
    }

    /// Reads a register with `read` until `done(value)`, sleeping 100 us between reads; bounded
    /// by `OP_TIMEOUT`.
    fn poll_until(&self, read: impl Fn(&EduBar<'_>) -> u32, done: impl Fn(u32) -> bool) -> Result {
        read_poll_timeout(|| self.with_bar(&read), |value: &u32| done(*value), Delta::from_micros(100), OP_TIMEOUT)
            .map(|_| ())
    }

    /// Forgets pending `bits`, before starting an operation that raises them.
    fn clear_events(&self, bits: u32) {
        self.events.lock().pending &= !bits;
    }

    /// Waits until the interrupt thread has published any of `bits`; consumes and returns them.
    ///
    /// Bounded by `OP_TIMEOUT`. A pending signal does not end the wait (the device would be left
    /// busy for the next operation); the wait then sleeps in 1 ms steps instead.
    fn wait_events(&self, bits: u32) -> Result<u32> {
        let start = Instant::<Monotonic>::now();
        let mut events = self.events.lock();
        loop {
            let hit = events.pending & bits;
            if hit != 0 {
                events.pending &= !hit;
                return Ok(hit);
            }
            let left = OP_TIMEOUT - start.elapsed();
            if left.is_negative() || left.is_zero() {
                dev_err!(
                    self.pdev,
                    "no interrupt for status bits {bits:#x} within {} ms\n",
                    Decimal(OP_TIMEOUT.as_millis().unsigned_abs())
                );
                return Err(ETIMEDOUT);
            }
            let millis = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
            let jiffies = msecs_to_jiffies(millis).saturating_add(1);
            if let CondVarTimeoutResult::Signal { .. } = self.event_cv.wait_interruptible_timeout(&mut events, jiffies)
            {
                drop(events);
                fsleep(Delta::from_millis(1));
                events = self.events.lock();
            }
        }
    }

    /// Reads the identification register.
    fn identification(&self) -> Result<u32> {
        let _op = self.begin()?;
        self.with_bar(|bar| bar.read32(regs::ID))
    }

    /// Writes `value` to the liveness register and returns what reads back.
    fn liveness(&self, value: u32) -> Result<u32> {
        let _op = self.begin()?;
        self.with_bar(|bar| {
            bar.write32(value, regs::LIVENESS);
            bar.read32(regs::LIVENESS)
        })
    }

    /// Computes `n!` (modulo 2^32, as the device does), waiting for its completion interrupt.
    fn factorial(&self, n: u32) -> Result<u32> {
        check_factorial_arg(n)?;
        let mut op = self.begin()?;
        // The device ignores a new argument while it is computing (only after a timed-out
        // operation can it still be busy here).
        self.poll_until(|bar| bar.read32(regs::STATUS), |status| status & regs::STATUS_COMPUTING == 0)?;
        self.clear_events(regs::IRQ_FACTORIAL);
        self.with_bar(|bar| {
            bar.write32(regs::STATUS_IRQ_FACTORIAL, regs::STATUS);
            bar.write32(n, regs::FACTORIAL);
        })?;
        self.wait_events(regs::IRQ_FACTORIAL)?;
        // The device stores the result before it clears `COMPUTING` and raises the interrupt.
        let result = self.with_bar(|bar| bar.read32(regs::FACTORIAL))?;
        op.factorials += 1;
        Ok(result)
    }

    /// Raises an interrupt with `bits` through the raise register and returns the bits the
    /// handler acknowledged.
    fn raise(&self, bits: u32) -> Result<u32> {
        check_raise_bits(bits)?;
        let _op = self.begin()?;
        self.clear_events(bits);
        self.with_bar(|bar| bar.write32(bits, regs::IRQ_RAISE))?;
        // One write raises one interrupt with all of `bits`, acknowledged together.
        self.wait_events(bits)
    }

    /// Runs one DMA transfer and waits for its completion interrupt.
    fn dma_transfer(&self, src: u64, dst: u64, len: usize, direction: u32) -> Result {
        self.clear_events(regs::IRQ_DMA);
        // `len <= DMA_BUF_SIZE`, checked by the caller.
        let count = u32::try_from(len)?;
        self.with_bar(|bar| -> Result {
            write_dma_addr(bar, src, dst)?;
            bar.write32(count, regs::DMA_COUNT);
            // writel() orders the CPU's earlier stores to the coherent buffers before the device
            // can see the command.
            bar.write32(regs::DMA_START | regs::DMA_IRQ | direction, regs::DMA_CMD);
            Ok(())
        })??;
        self.wait_events(regs::IRQ_DMA)?;
        // The device clears START before raising the interrupt. readl() also orders this read
        // before the CPU's later reads of the buffer the device wrote.
        let cmd = self.with_bar(|bar| bar.read32(regs::DMA_CMD))?;
        if cmd & regs::DMA_START != 0 {
            dev_err!(self.pdev, "DMA interrupt arrived with the transfer still running\n");
            return Err(EIO);
        }
        Ok(())
    }

    /// Copies `data` to the device's buffer and back into a second RAM buffer by DMA, and
    /// appends what came back to `out`.
    fn dma_round_trip(&self, data: &[u8], out: &mut KVec<u8>) -> Result {
        let bufs = self.dma.as_ref().ok_or_else(compat::eopnotsupp)?;
        let len = data.len();
        if len == 0 || len > regs::DMA_BUF_SIZE {
            return Err(EINVAL);
        }
        let mut op = self.begin()?;
        self.poll_until(|bar| bar.read32(regs::DMA_CMD), |cmd| cmd & regs::DMA_START == 0)?;

        {
            // SAFETY: The DMA engine is idle (checked just above) and `op` serialises every user
            // of the buffers, so neither the device nor another thread accesses them while these
            // references live (they end with this block, before the transfers start).
            let (src, dst) = unsafe { (bufs.src.as_mut(), bufs.dst.as_mut()) };
            src[..len].copy_from_slice(data);
            // Poison the destination, so data that was never transferred cannot pass for a copy.
            for (d, s) in dst[..len].iter_mut().zip(data) {
                *d = !*s;
            }
        }

        let src_addr = compat::dma_address(&bufs.src);
        let dst_addr = compat::dma_address(&bufs.dst);
        self.dma_transfer(src_addr, regs::DMA_BUF_ADDR, len, 0)?;
        self.dma_transfer(regs::DMA_BUF_ADDR, dst_addr, len, regs::DMA_TO_RAM)?;

        // SAFETY: Both transfers are complete (the engine is idle) and `op` is still held.
        let dst = unsafe { bufs.dst.as_ref() };
        out.extend_from_slice(&dst[..len], GFP_KERNEL)?;
        op.dma_round_trips += 1;
        Ok(())
    }

    /// Writes the counters as `key value` lines.
    fn stats(&self, w: &mut Reply<'_>) -> core::fmt::Result {
        let (factorials, dma_round_trips) = {
            let op = self.op.lock();
            (op.factorials, op.dma_round_trips)
        };
        let events = *self.events.lock();
        writeln!(w, "irq_mode {}", self.irq_mode.name())?;
        writeln!(w, "irq {}", self.irq)?;
        match &self.dma {
            Some(bufs) => writeln!(w, "dma_mask_bits {}", bufs.bits)?,
            None => writeln!(w, "dma_mask_bits none")?,
        }
        // `Decimal`, not the `u64`s themselves: core's `u64` formatting BUGs on 32-bit ARM.
        writeln!(w, "irqs_handled {}", Decimal(self.irqs_handled.load(Relaxed)))?;
        writeln!(w, "irqs_not_ours {}", Decimal(self.irqs_not_ours.load(Relaxed)))?;
        writeln!(w, "factorial_irqs {}", Decimal(events.factorial_irqs))?;
        writeln!(w, "dma_irqs {}", Decimal(events.dma_irqs))?;
        writeln!(w, "other_irqs {}", Decimal(events.other_irqs))?;
        writeln!(w, "factorials {}", Decimal(factorials))?;
        writeln!(w, "dma_round_trips {}", Decimal(dma_round_trips))?;
        Ok(())
    }

    /// Quiesces the device at unbind: no more operations, no factorial interrupts, DMA idle
    /// (the coherent buffers may only be freed once the engine no longer uses them).
    fn shut_down(&self, dev: &device::Device<Bound>) {
        let mut op = self.op.lock();
        op.removed = true;
        let Ok(bar) = self.bar.access(dev) else {
            return;
        };
        bar.write32(0, regs::STATUS);
        let idle = read_poll_timeout(
            || Ok(bar.read32(regs::DMA_CMD)),
            |cmd: &u32| cmd & regs::DMA_START == 0,
            Delta::from_micros(100),
            OP_TIMEOUT,
        );
        if idle.is_err() {
            dev_err!(self.pdev, "DMA engine still busy at unbind\n");
        }
    }
}

/// Programs the DMA source and destination registers (64-bit registers; 4-byte writes store the
/// zero-extended value, which is all a 32-bit kernel can address anyway).
///
/// The 64-bit writes are checked at run time: Linux 7.3 only knows a BAR to be 4-byte aligned at
/// compile time and refuses `write64`; the BAR is page-aligned, so the check always passes.
#[cfg(CONFIG_64BIT)]
fn write_dma_addr(bar: &EduBar<'_>, src: u64, dst: u64) -> Result {
    bar.try_write64(src, regs::DMA_SRC)?;
    bar.try_write64(dst, regs::DMA_DST)?;
    Ok(())
}

#[cfg(not(CONFIG_64BIT))]
fn write_dma_addr(bar: &EduBar<'_>, src: u64, dst: u64) -> Result {
    bar.write32(u32::try_from(src)?, regs::DMA_SRC);
    bar.write32(u32::try_from(dst)?, regs::DMA_DST);
    Ok(())
}

/// The interrupt handler.
struct EduIrq {
    edu: Arc<Edu>,
}

impl EduIrq {
    /// The hard handler, on the mapped BAR.
    fn handle_hard(&self, bar: &EduBar<'_>) -> ThreadedIrqReturn {
        let edu = &self.edu;
        let status = bar.read32(regs::IRQ_STATUS);
        if status == 0 {
            edu.irqs_not_ours.add(1, Relaxed);
            return ThreadedIrqReturn::None;
        }
        // Acknowledge exactly what we saw: lowers INTx, and is required with MSI as well.
        bar.write32(status, regs::IRQ_ACK);
        atomic_or(&edu.latched, status);
        edu.irqs_handled.add(1, Relaxed);
        ThreadedIrqReturn::WakeThread
    }

    /// The handler thread.
    fn handle_thread(&self) -> IrqReturn {
        let edu = &self.edu;
        let bits = edu.latched.xchg(0, Full);
        if bits != 0 {
            let mut events = edu.events.lock();
            events.record(bits);
            // Notified with the lock held, so a waiter cannot miss it between its check of
            // `pending` and going to sleep.
            edu.event_cv.notify_all();
        }
        IrqReturn::Handled
    }
}

/// The hard handler reaches the BAR through its revocable `Devres` (an RCU read-side section,
/// which hard-irq context allows): from Linux 7.3 on, handlers no longer get the device.
impl compat::ThreadedHandler for EduIrq {
    fn handle(&self) -> ThreadedIrqReturn {
        self.edu.with_bar(|bar| self.handle_hard(bar)).unwrap_or(ThreadedIrqReturn::None)
    }

    fn handle_threaded(&self) -> IrqReturn {
        self.handle_thread()
    }
}

/// The PCI driver.
struct EduDriver;

/// Per-device driver data; `'bound` is the time the device is bound to the driver.
#[pin_data]
struct EduBinding<'bound> {
    // Dropped first: no new opens once teardown starts.
    #[pin]
    miscdev: MiscDeviceRegistration<EduFile>,
    // Then the interrupt is freed (waiting for a running handler).
    #[pin]
    irq: compat::ThreadedIrq<'bound, EduIrq>,
    edu: Arc<Edu>,
}

/// Checks a `dma_bits` parameter value: `28..=64`, else `EINVAL`.
fn check_dma_bits(bits: u32) -> Result<u32> {
    if !(28..=64).contains(&bits) {
        return Err(EINVAL);
    }
    Ok(bits)
}

/// Validates the `dma_bits` parameter.
fn dma_bits_param() -> Result<u32> {
    let bits = compat::param!(dma_bits);
    check_dma_bits(bits).inspect_err(|_| {
        pr_err!("dma_bits={bits} is out of range (28..=64)\n");
    })
}

/// Sets the DMA mask and allocates the two buffers; `None` (with a warning) if impossible.
fn setup_dma(pdev: &pci::Device<Core<'_>>, bits: u32) -> Option<DmaBuffers> {
    let mask = DmaMask::try_new(bits).ok()?;
    // SAFETY: Called once from probe, before any DMA allocation or mapping for this device.
    if let Err(err) = unsafe { pdev.dma_set_mask_and_coherent(mask) } {
        dev_warn!(
            pdev,
            "the kernel cannot provide {bits}-bit DMA addresses (errno {}); DMA disabled (see dma_bits)\n",
            err.to_errno()
        );
        return None;
    }
    let alloc = || Coherent::<u8>::zeroed_slice(pdev.as_ref(), regs::DMA_BUF_SIZE, GFP_KERNEL);
    match (alloc(), alloc()) {
        (Ok(src), Ok(dst)) => Some(DmaBuffers { src, dst, bits }),
        _ => {
            dev_warn!(pdev, "cannot allocate the DMA buffers; DMA disabled\n");
            None
        }
    }
}

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduBinding<'bound>;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: compat::ProbeIdInfo<'bound, ()>,
    ) -> impl PinInit<EduBinding<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let dma_bits = dma_bits_param()?;
            pdev.enable_device_mem()?;
            pdev.set_master();

            let bar = pdev.iomap_region_sized::<{ regs::END }>(0, c"kforge_edu")?;
            let id = bar.read32(regs::ID);
            if id != EDU_ID {
                dev_err!(pdev, "identification is {id:#010x}, expected {EDU_ID:#010x}\n");
                return Err(ENODEV);
            }
            let probe_value = 0x5a5a_0f0f;
            bar.write32(probe_value, regs::LIVENESS);
            let back = bar.read32(regs::LIVENESS);
            if back != !probe_value {
                dev_err!(pdev, "liveness check failed: wrote {probe_value:#x}, read {back:#x}\n");
                return Err(EIO);
            }
            // Nothing pending from an earlier driver; factorial interrupts only on request.
            bar.write32(0, regs::STATUS);
            bar.write32(u32::MAX, regs::IRQ_ACK);
            let bar = bar.into_devres()?;

            let dma = setup_dma(pdev, dma_bits);

            // The edu device has one MSI vector and no MSI-X; without CONFIG_PCI_MSI (or without
            // an MSI controller) the first allocation fails and INTx is used.
            let msi = pci::IrqTypes::default().with(pci::IrqType::Msi);
            let (irq_mode, vectors) = match pdev.alloc_irq_vectors(1, 1, msi) {
                Ok(vectors) => (IrqMode::Msi, vectors),
                Err(_) => {
                    let intx = pci::IrqTypes::default().with(pci::IrqType::Intx);
                    (IrqMode::Intx, pdev.alloc_irq_vectors(1, 1, intx)?)
                }
            };
            let irq_number = compat::irq_number(&vectors)?;

            let edu = Arc::pin_init(
                try_pin_init!(Edu {
                    pdev: pdev.into(),
                    bar,
                    dma,
                    irq_mode,
                    irq: irq_number,
                    op <- new_mutex!(OpState {
                        removed: false,
                        factorials: 0,
                        dma_round_trips: 0,
                    }),
                    events <- new_mutex!(Events::default()),
                    event_cv <- new_condvar!("kforge_edu::event_cv"),
                    latched: Atomic::new(0),
                    irqs_handled: Atomic::new(0),
                    irqs_not_ours: Atomic::new(0),
                }),
                GFP_KERNEL,
            )?;
            let handler = EduIrq { edu: edu.clone() };

            Ok(try_pin_init!(EduBinding {
                edu,
                // An INTx line may be shared; the handler checks the status register.
                irq <- compat::ThreadedIrq::request(pdev, vectors, irq::Flags::SHARED, c"kforge_edu", handler),
                miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                    name: c"kforge-edu",
                }),
            })
            .pin_chain(move |this| {
                // Prove the interrupt path works before declaring the device usable.
                let edu = &this.edu;
                let seen = edu.raise(SELFTEST_IRQ).inspect_err(|err| {
                    dev_err!(pdev, "interrupt self-test failed (errno {}), irq {irq_number}\n", err.to_errno());
                })?;
                let version = id >> 16;
                dev_info!(
                    pdev,
                    "edu {}.{} bound: irq {} ({}), self-test status {:#x}, DMA {}\n",
                    version >> 8,
                    version & 0xff,
                    irq_number,
                    edu.irq_mode.name(),
                    seen,
                    if edu.dma.is_some() { "on" } else { "off" }
                );
                Ok(())
            }))
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // 7.2's `pci::Device` has `enable_device_mem()` and `set_master()` but no counterparts,
        // so the device stays enabled; quiescing it is what makes the teardown safe.
        this.edu.shut_down(pdev.as_ref());
        dev_info!(pdev, "unbound\n");
    }
}

/// An output buffer for replies.
struct Reply<'a>(&'a mut KVec<u8>);

impl Write for Reply<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes(), GFP_KERNEL).map_err(|_| core::fmt::Error)
    }
}

/// Maps a reply formatting failure, which can only be an allocation failure.
fn fmt_err(_: core::fmt::Error) -> Error {
    ENOMEM
}

/// Parses a number (decimal, or `0x`/`0o`/`0b` prefixed).
fn number<T: ParseInt>(word: Option<&[u8]>) -> Result<T> {
    T::from_str(BStr::from_bytes(word.ok_or(EINVAL)?))
}

/// Decodes hex digits (an even, nonzero count) into bytes.
fn decode_hex(hex: &[u8]) -> Result<KVec<u8>> {
    fn digit(c: u8) -> Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(EINVAL),
        }
    }
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(EINVAL);
    }
    let mut bytes = KVec::with_capacity(hex.len() / 2, GFP_KERNEL)?;
    for pair in hex.chunks_exact(2) {
        bytes.push((digit(pair[0])? << 4) | digit(pair[1])?, GFP_KERNEL)?;
    }
    Ok(bytes)
}

/// Appends `bytes` as lowercase hex digits.
fn encode_hex(bytes: &[u8], out: &mut KVec<u8>) -> Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2, GFP_KERNEL)?;
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)], GFP_KERNEL)?;
        out.push(DIGITS[usize::from(b & 0xf)], GFP_KERNEL)?;
    }
    Ok(())
}

/// The `dmacheck` pattern: xorshift32 from `seed` (0 is replaced, xorshift would stay at 0).
fn pattern(len: usize, seed: u32) -> Result<KVec<u8>> {
    let mut state = if seed == 0 { 0x9e37_79b9 } else { seed };
    let mut bytes = KVec::with_capacity(len, GFP_KERNEL)?;
    for _ in 0..len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        bytes.push((state >> 24) as u8, GFP_KERNEL)?;
    }
    Ok(bytes)
}

/// One command line, parsed and checked as far as that needs no device.
enum Command {
    Id,
    Liveness(u32),
    /// The argument, at most `MAX_FACTORIAL_ARG`.
    Factorial(u32),
    /// The bytes to send (at least one; the device's limit is checked when it runs).
    Dma(KVec<u8>),
    /// `len` is `1..=DMA_BUF_SIZE`.
    DmaCheck {
        len: usize,
        seed: u32,
    },
    /// Valid bits (see `check_raise_bits`).
    Raise(u32),
    Stats,
}

/// Parses one command line: `Ok(None)` for an empty (or blank) line, `EINVAL` for an unknown
/// command, a missing, malformed or out-of-range argument, or one argument too many.
fn parse(line: &[u8]) -> Result<Option<Command>> {
    let mut words = line.split(|c| matches!(c, b' ' | b'\t' | b'\r')).filter(|word| !word.is_empty());
    let Some(command) = words.next() else {
        return Ok(None); // An empty line.
    };
    // Arguments are consumed in order; leftovers are an error.
    let mut arg = || words.next();
    let command = match command {
        b"id" => Command::Id,
        b"liveness" => Command::Liveness(number(arg())?),
        b"factorial" => Command::Factorial(check_factorial_arg(number(arg())?)?),
        b"dma" => Command::Dma(decode_hex(arg().ok_or(EINVAL)?)?),
        b"dmacheck" => {
            let len: usize = number(arg())?;
            let seed: u32 = number(arg())?;
            if len == 0 || len > regs::DMA_BUF_SIZE {
                return Err(EINVAL);
            }
            Command::DmaCheck { len, seed }
        }
        b"raise" => Command::Raise(check_raise_bits(number(arg())?)?),
        b"stats" => Command::Stats,
        _ => return Err(EINVAL),
    };
    no_more(arg())?;
    Ok(Some(command))
}

/// Writes the `dmacheck` verdict for `data` sent and `back` received: `ok LEN`, or where they
/// differ first.
fn check_round_trip(w: &mut impl Write, data: &[u8], back: &[u8]) -> core::fmt::Result {
    let len = data.len();
    match data.iter().zip(back.iter()).position(|(a, b)| a != b) {
        None if back.len() == len => writeln!(w, "ok {len}"),
        None => writeln!(w, "mismatch: {} bytes came back, expected {len}", back.len()),
        Some(at) => writeln!(w, "mismatch at {at}: wrote {:#04x}, read back {:#04x}", data[at], back[at]),
    }
}

/// Runs one command line, appending its reply to `out`.
fn execute(edu: &Edu, line: &[u8], out: &mut KVec<u8>) -> Result {
    let Some(command) = parse(line)? else {
        return Ok(());
    };
    let mut w = Reply(out);
    match command {
        Command::Id => {
            let id = edu.identification()?;
            writeln!(w, "{id:#010x}").map_err(fmt_err)?;
        }
        Command::Liveness(value) => {
            let back = edu.liveness(value)?;
            writeln!(w, "{back:#010x}").map_err(fmt_err)?;
        }
        Command::Factorial(n) => {
            let result = edu.factorial(n)?;
            writeln!(w, "{result}").map_err(fmt_err)?;
        }
        Command::Dma(data) => {
            let mut back = KVec::new();
            edu.dma_round_trip(&data, &mut back)?;
            encode_hex(&back, w.0)?;
            w.0.push(b'\n', GFP_KERNEL)?;
        }
        Command::DmaCheck { len, seed } => {
            let data = pattern(len, seed)?;
            let mut back = KVec::new();
            edu.dma_round_trip(&data, &mut back)?;
            check_round_trip(&mut w, &data, &back).map_err(fmt_err)?;
        }
        Command::Raise(bits) => {
            let seen = edu.raise(bits)?;
            writeln!(w, "{seen:#010x}").map_err(fmt_err)?;
        }
        Command::Stats => edu.stats(&mut w).map_err(fmt_err)?,
    }
    Ok(())
}

/// Fails with `EINVAL` if a command got more arguments than it takes.
fn no_more(extra: Option<&[u8]>) -> Result {
    match extra {
        Some(_) => Err(EINVAL),
        None => Ok(()),
    }
}

/// Per-open-file buffers.
struct FileIo {
    /// Bytes of an incomplete command line.
    line: KVec<u8>,
    /// Replies not yet read.
    reply: KVec<u8>,
    /// How much of `reply` has been read.
    reply_read: usize,
}

/// An open `/dev/kforge-edu`.
#[pin_data]
struct EduFile {
    edu: Arc<Edu>,
    #[pin]
    io: Mutex<FileIo>,
    /// Keeps this module loaded while the file is open (see `compat::ModuleRef`).
    _module: ModuleRef,
}

#[vtable]
impl MiscDevice for EduFile {
    type Ptr = Pin<KBox<EduFile>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<EduFile>>> {
        let misc = core::ptr::from_ref(misc).cast_mut();
        // SAFETY: Every `MiscDeviceRegistration<EduFile>` is the `miscdev` field of a pinned
        // `EduBinding` (the driver data of a bound device). It stays alive during `open`:
        // `misc_open()` holds `misc_mtx`, which `misc_deregister()` (run when `EduBinding` is
        // dropped, before its other fields) also takes.
        let driver = unsafe { &*kernel::container_of!(misc, EduBinding<'_>, miscdev) };

        KBox::pin_init(
            try_pin_init!(EduFile {
                edu: driver.edu.clone(),
                io <- new_mutex!(FileIo {
                    line: KVec::new(),
                    reply: KVec::new(),
                    reply_read: 0,
                }),
                _module: ModuleRef::get()?,
            }),
            GFP_KERNEL,
        )
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let file = kiocb.file();
        let len = iov.len();
        if len == 0 {
            return Ok(0);
        }
        let mut io = file.io.lock();
        if io.line.len() + len > MAX_LINE {
            io.line.clear();
            return Err(EINVAL);
        }
        let copied = iov.copy_from_iter_vec(&mut io.line, GFP_KERNEL)?;
        if copied == 0 {
            return Err(EFAULT);
        }

        // Run every complete line; keep an incomplete tail for the next write.
        let buffered = core::mem::take(&mut io.line);
        let mut rest: &[u8] = &buffered;
        let mut result = Ok(copied);
        let mut ran_any = false;
        while let Some(end) = rest.iter().position(|&c| c == b'\n') {
            let line = &rest[..end];
            rest = &rest[end + 1..];
            // Commands are not interrupted, but a signal stops a batch between two of them. Not
            // ERESTARTSYS: a restarted write would run the commands done so far again.
            if ran_any && kernel::current!().signal_pending() {
                result = Err(EINTR);
                break;
            }
            ran_any = true;
            if io.reply.len() - io.reply_read > MAX_REPLY {
                result = Err(ENOSPC);
                break;
            }
            let FileIo { reply, .. } = &mut *io;
            let before = reply.len();
            if let Err(err) = execute(&file.edu, line, reply) {
                reply.truncate(before);
                result = Err(err);
                break;
            }
        }
        if result.is_ok() {
            io.line.extend_from_slice(rest, GFP_KERNEL)?;
        }
        result
    }

    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let file = kiocb.file();
        let mut io = file.io.lock();
        let FileIo { reply, reply_read, .. } = &mut *io;
        let pending = &reply[*reply_read..];
        if pending.is_empty() || iov.is_empty() {
            return Ok(0);
        }
        let copied = iov.copy_to_iter(pending);
        if copied == 0 {
            return Err(EFAULT);
        }
        *reply_read += copied;
        if *reply_read == reply.len() {
            reply.clear();
            *reply_read = 0;
        }
        Ok(copied)
    }
}

#[kunit_tests(kforge_edu)]
mod tests {
    use super::*;

    /// `true` if `line` parses to an error `EINVAL`.
    fn refused(line: &[u8]) -> bool {
        matches!(parse(line), Err(err) if err == EINVAL)
    }

    /// `number` on one word.
    fn num<T: ParseInt>(word: &[u8]) -> Result<T> {
        number(Some(word))
    }

    /// The reply `check_round_trip` writes for `data` sent and `back` received.
    fn verdict(data: &[u8], back: &[u8]) -> Result<KVec<u8>> {
        let mut out = KVec::new();
        check_round_trip(&mut Reply(&mut out), data, back).map_err(fmt_err)?;
        Ok(out)
    }

    #[test]
    fn hex_decode() -> Result {
        assert!(decode_hex(b"00")?[..] == [0x00]);
        assert!(decode_hex(b"00ff7Fa5")?[..] == [0x00, 0xff, 0x7f, 0xa5]);
        assert!(
            decode_hex(b"0123456789abcdefABCDEF")?[..]
                == [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef]
        );
        Ok(())
    }

    #[test]
    fn hex_decode_rejects_bad_input() {
        // Empty, odd lengths, non-hex digits (each position), prefixes and signs.
        for bad in [&b""[..], b"a", b"abc", b"zz", b"0g", b"g0", b"0x00", b" 0", b"0 ", b"-1", b"+1", b"\xc3\xa9"] {
            assert!(matches!(decode_hex(bad), Err(err) if err == EINVAL));
        }
    }

    #[test]
    fn hex_encode_round_trip() -> Result {
        let mut all = KVec::with_capacity(256, GFP_KERNEL)?;
        for byte in 0..=u8::MAX {
            all.push(byte, GFP_KERNEL)?;
        }
        // Appends to what is there, two lowercase digits per byte.
        let mut hex = KVec::new();
        hex.extend_from_slice(b"p:", GFP_KERNEL)?;
        encode_hex(&all, &mut hex)?;
        assert_eq!(hex.len(), 2 + 512);
        assert!(hex[..8] == *b"p:000102");
        assert!(hex[2 + 2 * 0xa9..2 + 2 * 0xb0] == *b"a9aaabacadaeaf");
        assert!(hex[hex.len() - 4..] == *b"feff");
        assert!(decode_hex(&hex[2..])?[..] == all[..]);
        // Nothing to encode appends nothing.
        encode_hex(&[], &mut hex)?;
        assert_eq!(hex.len(), 2 + 512);
        Ok(())
    }

    #[test]
    fn numbers() {
        // Decimal, and the prefixes (either case) the protocol documents.
        assert!(num::<u32>(b"42") == Ok(42));
        assert!(num::<u32>(b"0x2a") == Ok(42));
        assert!(num::<u32>(b"0X2A") == Ok(42));
        assert!(num::<u32>(b"0o52") == Ok(42));
        assert!(num::<u32>(b"0b101010") == Ok(42));
        // As with kstrtoul(), a leading 0 alone means octal.
        assert!(num::<u32>(b"052") == Ok(42));
        assert!(num::<u32>(b"0") == Ok(0));
        assert!(num::<u32>(b"4294967295") == Ok(u32::MAX));
        assert!(num::<usize>(b"4096") == Ok(4096));
        // Missing, empty, negative, too large, trailing garbage, bad digits.
        for bad in [&b""[..], b"-1", b"4294967296", b"0x100000000", b"12a", b"0x", b"0b2", b"089", b"1 "] {
            assert!(num::<u32>(bad) == Err(EINVAL));
        }
        // A missing argument.
        assert!(number::<u32>(None) == Err(EINVAL));
    }

    #[test]
    fn dmacheck_pattern() -> Result {
        // xorshift32 (13, 17, 5), top byte of each state.
        assert!(pattern(8, 1)?[..] == [0x00, 0x04, 0x9d, 0x12, 0x8e, 0x2c, 0x25, 0x19]);
        assert!(pattern(8, 0xdead_beef)?[..] == [0x47, 0x8e, 0xba, 0xfe, 0x68, 0xa4, 0x62, 0x1c]);
        // Seed 0 would stay 0 forever; it is replaced by 0x9e3779b9.
        assert!(pattern(8, 0)?[..] == [0x51, 0xe0, 0x7b, 0x01, 0xe6, 0xf9, 0xba, 0xfc]);
        assert!(pattern(64, 0)?[..] == pattern(64, 0x9e37_79b9)?[..]);
        // Deterministic, a prefix of any longer pattern, and of the requested length.
        let long = pattern(regs::DMA_BUF_SIZE, 7)?;
        assert_eq!(long.len(), regs::DMA_BUF_SIZE);
        assert!(pattern(100, 7)?[..] == long[..100]);
        assert!(pattern(0, 7)?.is_empty());
        // Not degenerate: many distinct bytes over a buffer.
        let mut seen = [false; 256];
        for &byte in long.iter() {
            seen[usize::from(byte)] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() > 200);
        Ok(())
    }

    #[test]
    fn parse_commands() -> Result {
        assert!(matches!(parse(b"id")?, Some(Command::Id)));
        assert!(matches!(parse(b"liveness 0x12345678")?, Some(Command::Liveness(0x1234_5678))));
        assert!(matches!(parse(b"factorial 10")?, Some(Command::Factorial(10))));
        assert!(matches!(parse(b"dma 00fF10")?, Some(Command::Dma(data)) if data[..] == [0x00, 0xff, 0x10]));
        assert!(matches!(parse(b"dmacheck 4096 0xffffffff")?, Some(Command::DmaCheck { len: 4096, seed: u32::MAX })));
        assert!(matches!(parse(b"dmacheck 1 0")?, Some(Command::DmaCheck { len: 1, seed: 0 })));
        assert!(matches!(parse(b"raise 0x80000000")?, Some(Command::Raise(0x8000_0000))));
        assert!(matches!(parse(b"raise 0b10")?, Some(Command::Raise(2))));
        assert!(matches!(parse(b"stats")?, Some(Command::Stats)));
        // The largest accepted factorial argument.
        assert!(matches!(parse(b"factorial 1048576")?, Some(Command::Factorial(1_048_576))));
        Ok(())
    }

    #[test]
    fn parse_whitespace_and_empty_lines() -> Result {
        assert!(parse(b"")?.is_none());
        assert!(parse(b" \t\r  ")?.is_none());
        // Spaces, tabs and a CR (from CRLF) separate words, in any number.
        assert!(matches!(parse(b"  factorial\t \t10\r")?, Some(Command::Factorial(10))));
        assert!(matches!(parse(b"stats\r")?, Some(Command::Stats)));
        assert!(matches!(parse(b"\tdmacheck  16\t3 ")?, Some(Command::DmaCheck { len: 16, seed: 3 })));
        Ok(())
    }

    #[test]
    fn parse_rejects_bad_commands() {
        // The same refusals tests/protocol.sh checks through the device, and more.
        for bad in [
            &b"bogus"[..],
            b"ID",
            b"id extra",
            b"factorial",
            b"factorial x",
            b"factorial -1",
            b"factorial 1048577",
            b"factorial 5 5",
            b"liveness",
            b"liveness 0x100000000",
            b"dma",
            b"dma abc",
            b"dma zz",
            b"dma 00 11",
            b"dmacheck 0 1",
            b"dmacheck 4097 1",
            b"dmacheck 10",
            b"dmacheck 10 0x100000000",
            b"raise",
            b"raise 0",
            b"raise 1",
            b"raise 0x100",
            b"raise 0x102",
            b"stats now",
        ] {
            assert!(refused(bad));
        }
    }

    #[test]
    fn dmacheck_verdict() -> Result {
        assert!(verdict(b"abc", b"abc")?[..] == *b"ok 3\n");
        assert!(verdict(&[1, 2, 3, 4], &[1, 2, 0xfc, 4])?[..] == *b"mismatch at 2: wrote 0x03, read back 0xfc\n");
        assert!(verdict(&[0x10, 2], &[0xef, 2])?[..] == *b"mismatch at 0: wrote 0x10, read back 0xef\n");
        assert!(verdict(b"abc", b"ab")?[..] == *b"mismatch: 2 bytes came back, expected 3\n");
        Ok(())
    }

    #[test]
    fn interrupt_events() {
        let mut events = Events::default();
        events.record(regs::IRQ_FACTORIAL);
        events.record(regs::IRQ_DMA);
        // One interrupt with several kinds of bits counts once per kind.
        events.record(regs::IRQ_DMA | 0x8000_0000 | 0x2);
        events.record(0x8000_0000);
        assert_eq!(events.pending, regs::IRQ_FACTORIAL | regs::IRQ_DMA | 0x8000_0002);
        assert_eq!((events.factorial_irqs, events.dma_irqs, events.other_irqs), (1, 2, 2));
        // The hard handler's latch accumulates bits until the thread takes them.
        let latched = Atomic::new(0u32);
        atomic_or(&latched, 0x0101);
        atomic_or(&latched, 0x8000_0001);
        assert_eq!(latched.xchg(0, Full), 0x8000_0101);
        assert_eq!(latched.load(Relaxed), 0);
    }

    #[test]
    fn parameters_and_limits() {
        assert!(check_dma_bits(27) == Err(EINVAL));
        assert!(check_dma_bits(28) == Ok(28));
        assert!(check_dma_bits(32) == Ok(32));
        assert!(check_dma_bits(64) == Ok(64));
        assert!(check_dma_bits(65) == Err(EINVAL));
        assert!(check_factorial_arg(MAX_FACTORIAL_ARG) == Ok(MAX_FACTORIAL_ARG));
        assert!(check_factorial_arg(MAX_FACTORIAL_ARG + 1) == Err(EINVAL));
        assert!(check_raise_bits(SELFTEST_IRQ) == Ok(SELFTEST_IRQ));
        assert!(check_raise_bits(regs::IRQ_FACTORIAL) == Err(EINVAL));
        // The longest command line fits `dma` with a full device buffer in hex.
        assert!(MAX_LINE >= "dma ".len() + 2 * regs::DMA_BUF_SIZE + 1);
    }
}
