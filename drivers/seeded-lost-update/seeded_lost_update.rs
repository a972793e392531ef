// SPDX-License-Identifier: GPL-2.0

//! Lost update: every write(2) to /dev/kforge-seeded-race adds one to a counter with a plain
//! load, a short busy window and a store, with no lock. On one CPU nothing runs inside the
//! window; on two, writers on both CPUs overwrite each other's increments and
//! tests/race.sh counts fewer than it wrote (test-fail, only on SMP).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile must catch (category in Cargo.toml). Never load it elsewhere.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    str::CString,
};

module! {
    type: SeededLostUpdate,
    name: "seeded_lost_update",
    authors: ["kforge"],
    description: "kforge seeded bug: lost update between two CPUs",
    license: "GPL",
}

/// Writes seen. Relaxed loads and stores: no data race in Rust's sense, but the
/// read-modify-write below is not atomic.
static COUNT: AtomicU64 = AtomicU64::new(0);

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

struct Counter;

#[vtable]
impl MiscDevice for Counter {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(Counter, GFP_KERNEL)?)
    }

    fn write_iter(_kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        // BUG: load, then store, with nothing keeping another CPU out in between.
        let seen = COUNT.load(Ordering::Relaxed);
        for _ in 0..core::hint::black_box(2000u32) {
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
