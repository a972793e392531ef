// SPDX-License-Identifier: GPL-2.0

//! Lock-order inversion: two mutexes taken as A then B, later as B then A (lockdep).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededLockOrder,
    name: "seeded_lock_order",
    authors: ["kforge"],
    description: "kforge seeded bug: lock-order inversion",
    license: "GPL",
}

struct SeededLockOrder;

impl kernel::Module for SeededLockOrder {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let a = KBox::pin_init(kernel::new_mutex!(0u32, "seeded_lock_a"), GFP_KERNEL)?;
        let b = KBox::pin_init(kernel::new_mutex!(0u32, "seeded_lock_b"), GFP_KERNEL)?;
        {
            let mut first = a.lock();
            let mut second = b.lock();
            *first += 1;
            *second += 1;
        }
        // BUG: the opposite order; with two threads this deadlocks, lockdep reports it at once.
        {
            let mut second = b.lock();
            let mut first = a.lock();
            *second += 1;
            *first += 1;
        }
        pr_info!("seeded_lock_order: took the locks in both orders\n");
        Ok(SeededLockOrder)
    }
}
