// SPDX-License-Identifier: GPL-2.0

//! Out-of-bounds: a read 8 bytes past the end of a 40-byte allocation (kasan).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededOutOfBounds,
    name: "seeded_out_of_bounds",
    authors: ["kforge"],
    description: "kforge seeded bug: out-of-bounds access",
    license: "GPL",
}

struct SeededOutOfBounds;

impl kernel::Module for SeededOutOfBounds {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let buffer = KBox::new([1u8; 40], GFP_KERNEL)?;
        let index = core::hint::black_box(48usize);
        // BUG: index 48 of a 40-byte object (inside its 64-byte slab slot, outside the object).
        // SAFETY: none; this read is the planted bug.
        let value = unsafe { core::ptr::read_volatile(buffer.as_ptr().cast::<u8>().add(index)) };
        pr_info!("seeded_out_of_bounds: read {value} past the end\n");
        drop(buffer);
        Ok(SeededOutOfBounds)
    }
}
