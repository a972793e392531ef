// SPDX-License-Identifier: GPL-2.0

//! kforge_fifo: a bounded FIFO misc character device at `/dev/kforge-fifo`.
//!
//! All opens share one byte FIFO of `capacity` bytes (module parameter, default 4096,
//! 1..=1048576; anything else makes `insmod` fail with `EINVAL`).
//!
//! - `write(2)` appends bytes. When the FIFO is full it sleeps (interruptibly: a signal gives
//!   `ERESTARTSYS`, i.e. a restart or `EINTR`) until a reader frees space, then stores as many
//!   bytes as fit and returns that count (short writes are normal, as with pipes).
//! - `read(2)` removes bytes in order. When the FIFO is empty it sleeps (interruptibly) until a
//!   writer adds data, then returns what is there (up to the requested length).
//! - With `O_NONBLOCK` (set at open time or later with `fcntl(F_SETFL)`) a read of an empty FIFO
//!   or a write to a full one fails with `EAGAIN` instead of sleeping. Linux 7.2's `Kiocb` has no
//!   flags accessor, so the driver reads the file's `f_flags` through `LocalFile` on every call.
//!
//! Statistics are exposed through `show_fdinfo`: while the device is open on fd N,
//! `/proc/<pid>/fdinfo/N` (e.g. `/proc/self/fdinfo/N`) contains, after the generic lines:
//!
//! ```text
//! fifo_capacity:      capacity in bytes
//! fifo_fill:          bytes currently stored
//! fifo_bytes_written: total bytes accepted by write(2) since load
//! fifo_bytes_read:    total bytes returned by read(2) since load
//! fifo_read_waits:    read(2) calls that had to sleep because the FIFO was empty
//! fifo_write_waits:   write(2) calls that had to sleep because the FIFO was full
//! ```
//!
//! (Module parameters in 7.2's Rust API are not visible in sysfs, and misc devices have no
//! sysfs attribute helpers in Rust yet, so fdinfo is the best-supported read-out.)
//!
//! Locking: one kernel `Mutex` protects the ring and counters; two `CondVar`s (wait queues)
//! signal "data available" and "space available". Copies to and from user space happen with
//! the mutex held, which is fine because it is a sleeping lock.

use kernel::{
    bindings,
    fs::{File, Kiocb, LocalFile},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_condvar, new_mutex,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{Arc, ArcBorrow, CondVar, Mutex},
};

/// Largest accepted `capacity` (1 MiB).
const MAX_CAPACITY: u32 = 1 << 20;

module! {
    type: FifoModule,
    name: "kforge_fifo",
    authors: ["kforge"],
    description: "Bounded FIFO misc character device",
    license: "GPL",
    params: {
        capacity: u32 {
            default: 4096,
            description: "FIFO capacity in bytes (1..=1048576)",
        },
    },
}

/// Counters reported through fdinfo. `u64` everywhere so 32-bit arches do not wrap early.
#[derive(Clone, Copy, Default)]
struct Stats {
    bytes_written: u64,
    bytes_read: u64,
    read_waits: u64,
    write_waits: u64,
}

/// The ring buffer proper; only ever accessed with `Fifo::ring` locked.
///
/// Invariants: `buf.len() == capacity > 0`, `head < capacity`, `len <= capacity`.
struct Ring {
    buf: KVVec<u8>,
    /// Index of the oldest stored byte.
    head: usize,
    /// Number of stored bytes.
    len: usize,
    stats: Stats,
}

impl Ring {
    fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The longest contiguous run of stored bytes, starting at the oldest one: `(start, len)`.
    fn filled_run(&self) -> (usize, usize) {
        (self.head, self.len.min(self.capacity() - self.head))
    }

    /// The longest contiguous run of free space, starting right after the newest byte.
    fn free_run(&self) -> (usize, usize) {
        let cap = self.capacity();
        // `head + len < 2 * cap <= 2 MiB`: no overflow, even with a 32-bit `usize`.
        let mut tail = self.head + self.len;
        if tail >= cap {
            tail -= cap;
        }
        (tail, (cap - self.len).min(cap - tail))
    }

    /// Drops `n` bytes (`n <= len`) from the front.
    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head >= self.capacity() {
            self.head -= self.capacity();
        }
        self.len -= n;
    }
}

/// The shared FIFO. One instance per module load; every open file holds an `Arc` to it.
#[pin_data]
struct Fifo {
    #[pin]
    ring: Mutex<Ring>,
    /// Notified when bytes are added (wakes blocked readers).
    #[pin]
    data_ready: CondVar,
    /// Notified when bytes are removed (wakes blocked writers).
    #[pin]
    space_ready: CondVar,
}

impl Fifo {
    fn new(capacity: usize) -> Result<Arc<Self>> {
        // kvmalloc-backed, so a 1 MiB buffer does not need contiguous pages.
        let buf = KVVec::from_elem(0u8, capacity, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Fifo {
                ring <- new_mutex!(Ring {
                    buf,
                    head: 0,
                    len: 0,
                    stats: Stats::default(),
                }),
                data_ready <- new_condvar!("kforge_fifo::data_ready"),
                space_ready <- new_condvar!("kforge_fifo::space_ready"),
            }),
            GFP_KERNEL,
        )
    }
}

/// Whether the file behind `kiocb` is in non-blocking mode.
///
/// 7.2's `Kiocb` only exposes the private data and `ki_pos`, so go through the raw `kiocb`.
/// `f_flags` is re-read on every call because `fcntl(F_SETFL)` can change it after `open`.
/// (`IOCB_NOWAIT` cannot be set for this file: it lacks `FMODE_NOWAIT`, so `preadv2(RWF_NOWAIT)`
/// and io_uring are refused before reaching us.)
fn is_nonblocking(kiocb: &Kiocb<'_, Arc<Fifo>>) -> bool {
    // SAFETY: `kiocb` is valid for the duration of this read/write call and its `ki_filp` is the
    // file being read or written, which stays alive at least that long. The only `fdget_pos` that
    // may be active for it is the one taken by this very syscall, on the current thread.
    let file = unsafe { LocalFile::from_raw_file((*kiocb.as_raw()).ki_filp) };
    file.flags() & kernel::fs::file::flags::O_NONBLOCK != 0
}

#[vtable]
impl MiscDevice for Fifo {
    type Ptr = Arc<Fifo>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Fifo>> {
        let misc = core::ptr::from_ref(misc).cast_mut();
        // SAFETY: The only `MiscDeviceRegistration<Fifo>` ever created is the `miscdev` field of
        // the (pinned, module-lifetime) `FifoModule`, so the containing struct exists. It stays
        // alive during `open`: `misc_open()` holds `misc_mtx`, which `misc_deregister()` (run from
        // `FifoModule`'s drop, before the rest of it is dropped) also takes.
        let module = unsafe { &*kernel::container_of!(misc, FifoModule, miscdev) };

        // 7.2's Rust `MiscDeviceOptions` leaves `file_operations.owner` NULL, so the VFS does not
        // pin the module while the device is open and `rmmod` would succeed with files open,
        // leaving them pointing at freed code. Take the reference ourselves (dropped in
        // `release`), so rmmod fails with EBUSY instead.
        //
        // SAFETY: `THIS_MODULE` is this module (or NULL when built in, which both functions
        // accept); it is alive since we are running its code.
        if !unsafe { bindings::try_module_get(THIS_MODULE.as_ptr()) } {
            return Err(ENODEV);
        }
        Ok(module.fifo.clone())
    }

    fn release(fifo: Arc<Fifo>, _file: &File) {
        drop(fifo);
        // This leaves a window of a few instructions (returning from here) in which a racing
        // rmmod could free our code; only `file_operations.owner` closes it completely, and
        // that has to be set by the kernel crate. It is far better than no reference at all.
        //
        // SAFETY: Balances the successful `try_module_get` in `open`.
        unsafe { bindings::module_put(THIS_MODULE.as_ptr()) };
    }

    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        if iov.is_empty() {
            return Ok(0);
        }
        let fifo = kiocb.file();
        let nonblocking = is_nonblocking(&kiocb);

        let mut ring = fifo.ring.lock();
        let mut waited = false;
        while ring.len == 0 {
            if nonblocking {
                return Err(EAGAIN);
            }
            if !waited {
                waited = true;
                ring.stats.read_waits += 1;
            }
            // Drops the lock while asleep; wakeups may be spurious, hence the loop.
            if fifo.data_ready.wait_interruptible(&mut ring) {
                return Err(ERESTARTSYS);
            }
        }

        // At most two runs: up to the end of the buffer, then from its start.
        let mut total = 0;
        while ring.len > 0 && !iov.is_empty() {
            let (start, n) = ring.filled_run();
            let copied = iov.copy_to_iter(&ring.buf[start..start + n]);
            ring.consume(copied);
            total += copied;
            if copied < n {
                break; // The destination is full or faulted.
            }
        }
        if total == 0 {
            // Nothing could be copied although data was there: bad user pointer.
            return Err(EFAULT);
        }
        ring.stats.bytes_read += total as u64;
        drop(ring);

        fifo.space_ready.notify_all();
        Ok(total)
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        if iov.is_empty() {
            return Ok(0);
        }
        let fifo = kiocb.file();
        let nonblocking = is_nonblocking(&kiocb);

        let mut ring = fifo.ring.lock();
        let mut waited = false;
        while ring.len == ring.capacity() {
            if nonblocking {
                return Err(EAGAIN);
            }
            if !waited {
                waited = true;
                ring.stats.write_waits += 1;
            }
            if fifo.space_ready.wait_interruptible(&mut ring) {
                return Err(ERESTARTSYS);
            }
        }

        // Store as much as fits now (a short write if the FIFO fills up).
        let mut total = 0;
        while ring.len < ring.capacity() && !iov.is_empty() {
            let (start, n) = ring.free_run();
            let ring = &mut *ring;
            let copied = iov.copy_from_iter(&mut ring.buf[start..start + n]);
            ring.len += copied;
            total += copied;
            if copied < n {
                break; // The source is exhausted or faulted.
            }
        }
        if total == 0 {
            return Err(EFAULT);
        }
        ring.stats.bytes_written += total as u64;
        drop(ring);

        fifo.data_ready.notify_all();
        Ok(total)
    }

    fn show_fdinfo(fifo: ArcBorrow<'_, Fifo>, m: &SeqFile, _file: &File) {
        // Snapshot under the lock, print without it.
        let ring = fifo.ring.lock();
        let (capacity, fill, stats) = (ring.capacity(), ring.len, ring.stats);
        drop(ring);

        // `usize` -> `u64` is lossless on every Linux architecture.
        let lines: [(&CStr, u64); 6] = [
            (c"fifo_capacity:\t", capacity as u64),
            (c"fifo_fill:\t", fill as u64),
            (c"fifo_bytes_written:\t", stats.bytes_written),
            (c"fifo_bytes_read:\t", stats.bytes_read),
            (c"fifo_read_waits:\t", stats.read_waits),
            (c"fifo_write_waits:\t", stats.write_waits),
        ];
        for (key, value) in lines {
            show_u64(m, key, value);
        }
    }
}

/// Prints `<key><value>\n` into a seq_file.
///
/// Deliberately not `seq_print!(m, "{}", value)`: core's `u64` `Display` divides by 10000 with
/// 64-bit division, which the kernel leaves unimplemented on 32-bit ARM (`__aeabi_uldivmod` is a
/// panicking stub in `rust/compiler_builtins.rs`), so a counter >= 10000 would BUG there. The C
/// helper formats with `do_div()`.
fn show_u64(m: &SeqFile, key: &CStr, value: u64) {
    // CAST: `SeqFile` is a `#[repr(transparent)]` wrapper around `struct seq_file`, and 7.2 has
    // no accessor for the raw pointer.
    let raw = core::ptr::from_ref(m).cast_mut().cast::<bindings::seq_file>();
    // SAFETY: `raw` is the valid seq_file being filled by this `show_fdinfo` call (used only by
    // this thread meanwhile); `key` is NUL-terminated.
    unsafe { bindings::seq_put_decimal_ull(raw, key.as_char_ptr(), value) };
    seq_print!(m, "\n");
}

#[pin_data]
struct FifoModule {
    // Declared first so that it is dropped first: the device node disappears (and no new
    // `open` can start) before the FIFO itself is released.
    #[pin]
    miscdev: MiscDeviceRegistration<Fifo>,
    fifo: Arc<Fifo>,
}

/// Validates the `capacity` parameter.
fn capacity_param() -> Result<usize> {
    let capacity = *module_parameters::capacity.value();
    if capacity == 0 || capacity > MAX_CAPACITY {
        pr_err!("capacity={capacity} is out of range (1..={MAX_CAPACITY})\n");
        return Err(EINVAL);
    }
    usize::try_from(capacity).map_err(|_| EINVAL)
}

impl kernel::InPlaceModule for FifoModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // Fields are initialised in the order written here (the FIFO must exist before the
        // device node appears), independent of the declaration order above.
        try_pin_init!(Self {
            fifo: Fifo::new(capacity_param()?)?,
            miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"kforge-fifo",
            }),
        })
    }
}
