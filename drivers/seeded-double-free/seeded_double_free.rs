// SPDX-License-Identifier: GPL-2.0

//! Double free: one KBox rebuilt from its raw pointer and dropped twice (kasan).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededDoubleFree,
    name: "seeded_double_free",
    authors: ["kforge"],
    description: "kforge seeded bug: double free",
    license: "GPL",
}

struct SeededDoubleFree;

impl kernel::Module for SeededDoubleFree {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let raw = KBox::into_raw(KBox::new([5u8; 64], GFP_KERNEL)?);
        // SAFETY: `raw` came from `KBox::into_raw` just above.
        drop(unsafe { KBox::from_raw(raw) });
        // BUG: the second free of the same object.
        // SAFETY: none; this free is the planted bug.
        drop(unsafe { KBox::from_raw(core::hint::black_box(raw)) });
        pr_info!("seeded_double_free: freed twice\n");
        Ok(SeededDoubleFree)
    }
}
