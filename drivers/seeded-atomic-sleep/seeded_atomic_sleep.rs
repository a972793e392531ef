// SPDX-License-Identifier: GPL-2.0

//! Sleeping in atomic context: a GFP_KERNEL allocation (which may sleep) under a spinlock (atomic-sleep).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededAtomicSleep,
    name: "seeded_atomic_sleep",
    authors: ["kforge"],
    description: "kforge seeded bug: sleeping under a spinlock",
    license: "GPL",
}

struct SeededAtomicSleep;

impl kernel::Module for SeededAtomicSleep {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let lock = KBox::pin_init(kernel::new_spinlock!(0usize, "seeded_spinlock"), GFP_KERNEL)?;
        {
            let mut guard = lock.lock();
            // BUG: GFP_KERNEL may sleep, and a spinlock is held.
            let buffer = KBox::new([0u8; 64], GFP_KERNEL)?;
            *guard += buffer.len();
        }
        pr_info!("seeded_atomic_sleep: allocated under a spinlock\n");
        Ok(SeededAtomicSleep)
    }
}
