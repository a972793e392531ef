// SPDX-License-Identifier: GPL-2.0

//! Leaked allocation: a KBox forgotten at load, never freed (memleak).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededMemleak,
    name: "seeded_memleak",
    authors: ["kforge"],
    description: "kforge seeded bug: leaked allocation",
    license: "GPL",
}

struct SeededMemleak;

impl kernel::Module for SeededMemleak {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let buffer = KBox::new([3u8; 256], GFP_KERNEL)?;
        // BUG: the only pointer to it is dropped without freeing it.
        core::mem::forget(buffer);
        pr_info!("seeded_memleak: leaked 256 bytes\n");
        Ok(SeededMemleak)
    }
}
