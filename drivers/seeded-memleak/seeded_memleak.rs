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

/// How many allocations the module leaks.
const LEAKS: usize = 16;

#[inline(never)]
fn leak_one() -> Result {
    let buffer = KBox::new([3u8; 256], GFP_KERNEL)?;
    core::mem::forget(buffer);
    Ok(())
}

impl kernel::Module for SeededMemleak {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // BUG: the only pointer to each buffer is dropped without freeing it.
        // Several of them: a stale copy of the last pointer can survive in a
        // (cached, still scanned) kernel stack and keep that one "referenced".
        for _ in 0..LEAKS {
            leak_one()?;
        }
        pr_info!("seeded_memleak: leaked {LEAKS} buffers of 256 bytes\n");
        Ok(SeededMemleak)
    }
}
