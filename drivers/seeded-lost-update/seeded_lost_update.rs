// SPDX-License-Identifier: GPL-2.0

//! Lost update: every write(2) to /dev/kforge-seeded-race adds one to a counter shared by all
//! open files with a plain load, a short busy window and a store, under a spinlock that
//! belongs to the open file: the wrong lock. Holding it keeps the window free of preemption,
//! so on one CPU nothing runs inside it; on two, writers through two files run the window
//! at the same time, overwrite each other's increments, and tests/race.sh counts fewer than
//! it wrote (test-fail, only on SMP).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile must catch (category in Cargo.toml). Never load it elsewhere.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    new_spinlock,
    prelude::*,
    str::CString,
    sync::SpinLock,
};

module! {
    type: SeededLostUpdate,
    name: "seeded_lost_update",
    authors: ["kforge"],
    description: "kforge seeded bug: lost update between two CPUs",
    license: "GPL",
}

/// Writes seen. Relaxed loads and stores: no data race in Rust's sense, but the
/// read-modify-write below is not atomic. 32 bits: formatting a `u64` on 32-bit arm
/// calls `__aeabi_uldivmod`, which the kernel defines as a panic (`BUG()`).
static COUNT: AtomicU32 = AtomicU32::new(0);

#[pin_data]
struct SeededLostUpdate {
    #[pin]
    _miscdev: MiscDeviceRegistration<Counter>,
}

impl kernel::InPlaceModule for SeededLostUpdate {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        COUNT.store(0, Ordering::Relaxed);
        let options = MiscDeviceOptions { name: c"kforge-seeded-race" };
        try_pin_init!(Self { _miscdev <- MiscDeviceRegistration::register(options) })
    }
}

/// One open file.
#[pin_data]
struct Counter {
    /// BUG: one lock per open file cannot protect `COUNT`, which every file shares.
    #[pin]
    lock: SpinLock<()>,
}

#[vtable]
impl MiscDevice for Counter {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(try_pin_init!(Counter { lock <- new_spinlock!((), "seeded_file_lock") }), GFP_KERNEL)
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let me = kiocb.file();
        let _guard = me.lock.lock();
        // Load, then store: another CPU writing through another file runs this same window.
        let seen = COUNT.load(Ordering::Relaxed);
        // `black_box` keeps the loop: `spin_loop` emits nothing on some arches (s390), and
        // an empty loop would be deleted, closing the window.
        for turn in 0..core::hint::black_box(2000u32) {
            core::hint::black_box(turn);
            core::hint::spin_loop();
        }
        COUNT.store(seen + 1, Ordering::Relaxed);
        Ok(iov.len())
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let text = CString::try_from_fmt(fmt!("{}\n", COUNT.load(Ordering::Relaxed)))?;
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), text.to_bytes())
    }
}
