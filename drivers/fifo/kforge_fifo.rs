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
//! Kernel API differences between the releases it builds on (7.2, 7.3) and raw `bindings::` calls
//! live in `drivers/common/compat.rs`, compiled into this module as `compat`.
//!
//! (Module parameters in 7.2's Rust API are not visible in sysfs, and misc devices have no
//! sysfs attribute helpers in Rust yet, so fdinfo is the best-supported read-out.)
//!
//! Locking: one kernel `Mutex` protects the ring and counters; two `CondVar`s (wait queues)
//! signal "data available" and "space available". Copies to and from user space happen with
//! the mutex held, which is fine because it is a sleeping lock.
//!
//! In-kernel tests: the KUnit suite `kforge_fifo` at the end of this file tests the ring buffer
//! (`Ring`) and the parameter check. It is compiled in when the kernel has `CONFIG_KUNIT=y` and
//! runs each time the module is loaded; its results are in
//! `/sys/kernel/debug/kunit/kforge_fifo/results`.

#[path = "../common/compat.rs"]
mod compat;

use compat::{Decimal, ModuleRef};
use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_condvar, new_mutex,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{Arc, CondVar, Mutex},
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
///
/// Everything here is plain memory manipulation, independent of files and user space, so the
/// KUnit suite at the end of this file tests it directly.
struct Ring {
    buf: KVVec<u8>,
    /// Index of the oldest stored byte.
    head: usize,
    /// Number of stored bytes.
    len: usize,
    stats: Stats,
}

impl Ring {
    /// An empty ring of `capacity` bytes; `EINVAL` for a zero capacity.
    fn new(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(EINVAL);
        }
        // kvmalloc-backed, so a 1 MiB buffer does not need contiguous pages.
        let buf = KVVec::from_elem(0u8, capacity, GFP_KERNEL)?;
        Ok(Ring { buf, head: 0, len: 0, stats: Stats::default() })
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_full(&self) -> bool {
        self.len == self.capacity()
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

    /// Marks `n` bytes (`n <=` the length of `free_run()`) at the start of the free run as stored.
    fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Removes bytes from the front, in order, through `copy`.
    ///
    /// `copy` is given each contiguous run of stored bytes (at most two: up to the end of the
    /// buffer, then from its start) and returns how many of them it took (at most all); taking
    /// fewer ends the read (the destination is full or faulted). Returns the number of bytes
    /// removed, which is also added to `bytes_read`.
    fn read_with(&mut self, mut copy: impl FnMut(&[u8]) -> usize) -> usize {
        let mut total = 0;
        while !self.is_empty() {
            let (start, n) = self.filled_run();
            let copied = copy(&self.buf[start..start + n]);
            self.consume(copied);
            total += copied;
            if copied < n {
                break;
            }
        }
        self.stats.bytes_read += total as u64;
        total
    }

    /// Stores bytes after the newest one through `copy`, as many as fit.
    ///
    /// `copy` is given each contiguous run of free space (at most two) to fill from its start and
    /// returns how many bytes it stored (at most the run's length); storing fewer ends the write
    /// (the source is exhausted or faulted). Returns the number of bytes stored, which is also
    /// added to `bytes_written`.
    fn write_with(&mut self, mut copy: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut total = 0;
        while !self.is_full() {
            let (start, n) = self.free_run();
            let copied = copy(&mut self.buf[start..start + n]);
            self.commit(copied);
            total += copied;
            if copied < n {
                break;
            }
        }
        self.stats.bytes_written += total as u64;
        total
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
        let ring = Ring::new(capacity)?;
        Arc::pin_init(
            pin_init!(Fifo {
                ring <- new_mutex!(ring),
                data_ready <- new_condvar!("kforge_fifo::data_ready"),
                space_ready <- new_condvar!("kforge_fifo::space_ready"),
            }),
            GFP_KERNEL,
        )
    }
}

/// An open `/dev/kforge-fifo`: the shared FIFO, and a reference that keeps this module loaded
/// while the file is open (see `compat::ModuleRef`).
struct FifoFile {
    fifo: Arc<Fifo>,
    _module: ModuleRef,
}

#[vtable]
impl MiscDevice for FifoFile {
    type Ptr = KBox<FifoFile>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<FifoFile>> {
        let misc = core::ptr::from_ref(misc).cast_mut();
        // SAFETY: The only `MiscDeviceRegistration<FifoFile>` ever created is the `miscdev` field of
        // the (pinned, module-lifetime) `FifoModule`, so the containing struct exists. It stays
        // alive during `open`: `misc_open()` holds `misc_mtx`, which `misc_deregister()` (run from
        // `FifoModule`'s drop, before the rest of it is dropped) also takes.
        let module = unsafe { &*kernel::container_of!(misc, FifoModule, miscdev) };

        // The module reference keeps `rmmod` from unloading us while the file is open.
        Ok(KBox::new(FifoFile { fifo: module.fifo.clone(), _module: ModuleRef::get()? }, GFP_KERNEL)?)
    }

    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        if iov.is_empty() {
            return Ok(0);
        }
        let fifo = &*kiocb.file().fifo;
        let nonblocking = compat::is_nonblocking(&kiocb);

        let mut ring = fifo.ring.lock();
        let mut waited = false;
        while ring.is_empty() {
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

        // Stops early once the destination is full (or faulted).
        let total = ring.read_with(|run| if iov.is_empty() { 0 } else { iov.copy_to_iter(run) });
        if total == 0 {
            // Nothing could be copied although data was there: bad user pointer.
            return Err(EFAULT);
        }
        drop(ring);

        fifo.space_ready.notify_all();
        Ok(total)
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        if iov.is_empty() {
            return Ok(0);
        }
        let fifo = &*kiocb.file().fifo;
        let nonblocking = compat::is_nonblocking(&kiocb);

        let mut ring = fifo.ring.lock();
        let mut waited = false;
        while ring.is_full() {
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

        // Store as much as fits now (a short write if the FIFO fills up); stops early once the
        // source is exhausted (or faulted).
        let total = ring.write_with(|run| if iov.is_empty() { 0 } else { iov.copy_from_iter(run) });
        if total == 0 {
            return Err(EFAULT);
        }
        drop(ring);

        fifo.data_ready.notify_all();
        Ok(total)
    }

    fn show_fdinfo(file: &FifoFile, m: &SeqFile, _file: &File) {
        // Snapshot under the lock, print without it.
        let ring = file.fifo.ring.lock();
        let (capacity, fill, stats) = (ring.capacity(), ring.len, ring.stats);
        drop(ring);

        // `usize` -> `u64` is lossless on every Linux architecture.
        let lines: [(&str, u64); 6] = [
            ("fifo_capacity", capacity as u64),
            ("fifo_fill", fill as u64),
            ("fifo_bytes_written", stats.bytes_written),
            ("fifo_bytes_read", stats.bytes_read),
            ("fifo_read_waits", stats.read_waits),
            ("fifo_write_waits", stats.write_waits),
        ];
        // `Decimal`, not the `u64` itself: core's `u64` formatting BUGs on 32-bit ARM.
        for (key, value) in lines {
            seq_print!(m, "{key}:\t{}\n", Decimal(value));
        }
    }
}

#[pin_data]
struct FifoModule {
    // Declared first so that it is dropped first: the device node disappears (and no new
    // `open` can start) before the FIFO itself is released.
    #[pin]
    miscdev: MiscDeviceRegistration<FifoFile>,
    fifo: Arc<Fifo>,
}

/// Checks a `capacity` parameter value: `1..=MAX_CAPACITY`, else `EINVAL`.
fn check_capacity(capacity: u32) -> Result<usize> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(EINVAL);
    }
    usize::try_from(capacity).map_err(|_| EINVAL)
}

/// Validates the `capacity` parameter.
fn capacity_param() -> Result<usize> {
    let capacity = compat::param!(capacity);
    check_capacity(capacity).inspect_err(|_| {
        pr_err!("capacity={capacity} is out of range (1..={MAX_CAPACITY})\n");
    })
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

#[kunit_tests(kforge_fifo)]
mod tests {
    use super::*;

    /// The runs a `read_with`/`write_with` offered: how many, and the lengths of the first four.
    #[derive(Default)]
    struct Runs {
        count: usize,
        lengths: [usize; 4],
    }

    impl Runs {
        fn record(&mut self, len: usize) {
            if let Some(slot) = self.lengths.get_mut(self.count) {
                *slot = len;
            }
            self.count += 1;
        }
    }

    /// Writes as much of `data` as fits, recording the runs; returns how much was stored.
    fn push_runs(ring: &mut Ring, data: &[u8], runs: &mut Runs) -> usize {
        let mut rest = data;
        ring.write_with(|run| {
            runs.record(run.len());
            let n = run.len().min(rest.len());
            run[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            n
        })
    }

    /// Reads up to `out.len()` bytes into `out`, recording the runs; returns how many were read.
    fn pop_runs(ring: &mut Ring, out: &mut [u8], runs: &mut Runs) -> usize {
        let mut at = 0;
        ring.read_with(|run| {
            runs.record(run.len());
            let n = run.len().min(out.len() - at);
            out[at..at + n].copy_from_slice(&run[..n]);
            at += n;
            n
        })
    }

    fn push(ring: &mut Ring, data: &[u8]) -> usize {
        push_runs(ring, data, &mut Runs::default())
    }

    fn pop(ring: &mut Ring, out: &mut [u8]) -> usize {
        pop_runs(ring, out, &mut Runs::default())
    }

    /// `true` if the ring's invariants hold.
    fn consistent(ring: &Ring) -> bool {
        ring.capacity() > 0 && ring.head < ring.capacity() && ring.len <= ring.capacity()
    }

    #[test]
    fn empty_ring() -> Result {
        let mut ring = Ring::new(8)?;
        assert_eq!(ring.capacity(), 8);
        assert!(ring.is_empty() && !ring.is_full());
        assert_eq!(ring.filled_run(), (0, 0));
        assert_eq!(ring.free_run(), (0, 8));
        // Reading an empty ring never calls the copy function.
        let mut runs = Runs::default();
        let mut out = [0u8; 4];
        assert_eq!(pop_runs(&mut ring, &mut out, &mut runs), 0);
        assert_eq!(runs.count, 0);
        assert!(Ring::new(0).err() == Some(EINVAL));
        Ok(())
    }

    #[test]
    fn fill_to_capacity_and_drain() -> Result {
        let mut ring = Ring::new(8)?;
        // Only what fits is stored: a short write.
        assert_eq!(push(&mut ring, b"0123456789"), 8);
        assert!(ring.is_full() && !ring.is_empty());
        assert_eq!(ring.free_run(), (0, 0));
        assert_eq!(ring.filled_run(), (0, 8));
        // A full ring never calls the copy function.
        let mut runs = Runs::default();
        assert_eq!(push_runs(&mut ring, b"x", &mut runs), 0);
        assert_eq!(runs.count, 0);
        let mut out = [0u8; 16];
        assert_eq!(pop(&mut ring, &mut out), 8);
        assert_eq!(&out[..8], b"01234567");
        // Consuming up to the very end wraps the head back to 0.
        assert!(ring.is_empty());
        assert_eq!(ring.head, 0);
        assert_eq!(ring.free_run(), (0, 8));
        Ok(())
    }

    #[test]
    fn runs_split_at_end_of_buffer() -> Result {
        let mut ring = Ring::new(8)?;
        let mut out = [0u8; 8];
        assert_eq!(push(&mut ring, b"abcdef"), 6);
        assert_eq!(pop(&mut ring, &mut out[..4]), 4);
        assert_eq!(&out[..4], b"abcd");
        assert_eq!((ring.head, ring.len), (4, 2));
        assert_eq!(ring.free_run(), (6, 2));

        // Five more bytes: two up to the end of the buffer, then three at its start (where the
        // free run is 4 long: it ends at the head).
        let mut runs = Runs::default();
        assert_eq!(push_runs(&mut ring, b"ghijk", &mut runs), 5);
        assert_eq!(runs.count, 2);
        assert_eq!((runs.lengths[0], runs.lengths[1]), (2, 4));
        assert_eq!((ring.head, ring.len), (4, 7));
        assert_eq!(ring.filled_run(), (4, 4));
        assert_eq!(ring.free_run(), (3, 1));

        // Reading everything also takes two runs, in order: 4 bytes to the end, then 3.
        let mut runs = Runs::default();
        let mut got = [0u8; 8];
        assert_eq!(pop_runs(&mut ring, &mut got, &mut runs), 7);
        assert_eq!(runs.count, 2);
        assert_eq!((runs.lengths[0], runs.lengths[1]), (4, 3));
        assert_eq!(&got[..7], b"efghijk");
        assert!(ring.is_empty());
        assert_eq!(ring.head, 3);
        // Empty but not at 0: the free run goes from the head to the end.
        assert_eq!(ring.free_run(), (3, 5));
        Ok(())
    }

    #[test]
    fn runs_at_exact_end() -> Result {
        let mut ring = Ring::new(8)?;
        // Head in the middle, tail exactly at the end of the buffer (wraps to 0).
        ring.head = 3;
        ring.len = 5;
        assert_eq!(ring.filled_run(), (3, 5));
        assert_eq!(ring.free_run(), (0, 3));
        // Head at the last byte, full: filled run of 1, no free space.
        ring.head = 7;
        ring.len = 8;
        assert_eq!(ring.filled_run(), (7, 1));
        assert_eq!(ring.free_run(), (7, 0));
        // Consuming the last byte of the buffer wraps the head to 0.
        ring.consume(1);
        assert_eq!((ring.head, ring.len), (0, 7));
        assert_eq!(ring.filled_run(), (0, 7));
        assert_eq!(ring.free_run(), (7, 1));
        // Consuming across the end of the buffer wraps too.
        ring.head = 6;
        ring.len = 5;
        ring.consume(4);
        assert_eq!((ring.head, ring.len), (2, 1));
        assert!(consistent(&ring));
        Ok(())
    }

    #[test]
    fn capacity_one() -> Result {
        let mut ring = Ring::new(1)?;
        let mut out = [0u8; 4];
        for byte in [b'a', b'b', b'c'] {
            assert_eq!(ring.free_run(), (ring.head, 1));
            assert_eq!(push(&mut ring, &[byte, b'x']), 1);
            assert!(ring.is_full());
            assert_eq!(ring.filled_run(), (0, 1));
            assert_eq!(ring.free_run(), (0, 0));
            assert_eq!(push(&mut ring, b"y"), 0);
            assert_eq!(pop(&mut ring, &mut out), 1);
            assert_eq!(out[0], byte);
            assert!(ring.is_empty());
            assert_eq!(ring.head, 0);
        }
        Ok(())
    }

    #[test]
    fn short_copies_stop_early() -> Result {
        let mut ring = Ring::new(8)?;
        let mut out = [0u8; 8];
        assert_eq!(push(&mut ring, b"012345"), 6);
        assert_eq!(pop(&mut ring, &mut out[..5]), 5);
        assert_eq!(push(&mut ring, b"6789ab"), 6);
        // Stored: "56789ab", head 5. A destination of 2 bytes takes only the front.
        assert_eq!(pop(&mut ring, &mut out[..2]), 2);
        assert_eq!(&out[..2], b"56");
        // A faulting destination (takes nothing) removes nothing and stops at once.
        let mut runs = Runs::default();
        assert_eq!(pop_runs(&mut ring, &mut [], &mut runs), 0);
        assert_eq!(runs.count, 1);
        assert_eq!(ring.len, 5);
        // A source that runs dry stores what it had and stops, although more would fit.
        let mut runs = Runs::default();
        assert_eq!(push_runs(&mut ring, b"c", &mut runs), 1);
        assert_eq!((runs.count, runs.lengths[0]), (1, 3));
        assert_eq!(pop(&mut ring, &mut out), 6);
        assert_eq!(&out[..6], b"789abc");
        Ok(())
    }

    #[test]
    fn counters() -> Result {
        let mut ring = Ring::new(4)?;
        let mut out = [0u8; 8];
        assert_eq!(push(&mut ring, b"abc"), 3);
        assert_eq!(push(&mut ring, b"def"), 1);
        assert_eq!(push(&mut ring, b"ghi"), 0);
        assert_eq!(pop(&mut ring, &mut out[..3]), 3);
        assert_eq!(pop(&mut ring, &mut out), 1);
        assert_eq!(pop(&mut ring, &mut out), 0);
        assert_eq!(push(&mut ring, b""), 0);
        assert_eq!(ring.stats.bytes_written, 4);
        assert_eq!(ring.stats.bytes_read, 4);
        // Only the blocking paths count waits.
        assert_eq!((ring.stats.read_waits, ring.stats.write_waits), (0, 0));
        Ok(())
    }

    #[test]
    fn random_traffic_matches_model() -> Result {
        // Pseudo-random write and read sizes (0..=cap+2) against a model: bytes are a running
        // counter, so every read must continue the sequence and the fill level must match.
        const CAP: usize = 7;
        let mut ring = Ring::new(CAP)?;
        let mut state: u32 = 0x1234_5678;
        let (mut next_in, mut next_out, mut fill) = (0u8, 0u8, 0usize);
        let mut data = [0u8; CAP + 2];
        let mut out = [0u8; CAP + 2];
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let size = (state >> 8) as usize % (CAP + 3);
            if state & 1 == 0 {
                for byte in &mut data[..size] {
                    *byte = next_in;
                    next_in = next_in.wrapping_add(1);
                }
                let stored = push(&mut ring, &data[..size]);
                assert_eq!(stored, size.min(CAP - fill));
                // Bytes that did not fit are offered again next time.
                next_in = next_in.wrapping_sub((size - stored) as u8);
                fill += stored;
            } else {
                let read = pop(&mut ring, &mut out[..size]);
                assert_eq!(read, size.min(fill));
                for &byte in &out[..read] {
                    assert_eq!(byte, next_out);
                    next_out = next_out.wrapping_add(1);
                }
                fill -= read;
            }
            assert_eq!(ring.len, fill);
            assert!(consistent(&ring));
        }
        assert_eq!(ring.stats.bytes_written - ring.stats.bytes_read, fill as u64);
        Ok(())
    }

    #[test]
    fn capacity_parameter() {
        assert!(check_capacity(0) == Err(EINVAL));
        assert!(check_capacity(1) == Ok(1));
        assert!(check_capacity(4096) == Ok(4096));
        assert!(check_capacity(MAX_CAPACITY) == Ok(1 << 20));
        assert!(check_capacity(MAX_CAPACITY + 1) == Err(EINVAL));
        assert!(check_capacity(u32::MAX) == Err(EINVAL));
    }

    /// A fixed buffer `Decimal` formats into.
    struct Text {
        bytes: [u8; 24],
        len: usize,
    }

    impl core::fmt::Write for Text {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    /// `true` if `Decimal(value)` formats as `expected`.
    fn formats_as(value: u64, expected: &str) -> bool {
        let mut text = Text { bytes: [0; 24], len: 0 };
        let written = core::fmt::Write::write_fmt(&mut text, format_args!("{}", Decimal(value)));
        written.is_ok() && text.bytes[..text.len] == *expected.as_bytes()
    }

    /// The u64 formatting fdinfo uses (compat's `Decimal`), which on 32-bit ARM must not reach
    /// the kernel's 64-bit division stub: every group boundary, zeros inside, and the extremes.
    #[test]
    fn counters_format_without_64_bit_division() {
        assert!(formats_as(0, "0"));
        assert!(formats_as(7, "7"));
        assert!(formats_as(9999, "9999"));
        assert!(formats_as(10000, "10000"));
        assert!(formats_as(10001, "10001"));
        assert!(formats_as(65535, "65535"));
        assert!(formats_as(65536, "65536"));
        assert!(formats_as(100_000_007, "100000007"));
        assert!(formats_as(u64::from(u32::MAX), "4294967295"));
        assert!(formats_as(1 << 32, "4294967296"));
        assert!(formats_as(10_000_000_000_000_000, "10000000000000000"));
        assert!(formats_as(1_234_000_000_000_005_678, "1234000000000005678"));
        assert!(formats_as(u64::MAX, "18446744073709551615"));
    }
}
