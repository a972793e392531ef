// SPDX-License-Identifier: GPL-2.0

//! Use-after-free: a KBox read through a raw pointer after it was dropped (kasan).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededUseAfterFree,
    name: "seeded_use_after_free",
    authors: ["kforge"],
    description: "kforge seeded bug: use-after-free",
    license: "GPL",
}

struct SeededUseAfterFree;

impl kernel::Module for SeededUseAfterFree {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let raw = KBox::into_raw(KBox::new([7u8; 64], GFP_KERNEL)?);
        // SAFETY: `raw` came from `KBox::into_raw` just above and is freed exactly once here.
        drop(unsafe { KBox::from_raw(raw) });
        // BUG: `raw` is dangling now.
        // SAFETY: none; this read is the planted bug.
        let value = unsafe { core::ptr::read_volatile(raw.cast::<u8>().add(8)) };
        pr_info!("seeded_use_after_free: read {value} from freed memory\n");
        Ok(SeededUseAfterFree)
    }
}
