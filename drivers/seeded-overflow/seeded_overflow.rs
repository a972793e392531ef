// SPDX-License-Identifier: GPL-2.0

//! Arithmetic overflow: 255u8 + 1 (CONFIG_RUST_OVERFLOW_CHECKS panics: overflow).
//!
//! A seeded bug for `cargo xtask test --suite seeded-bugs`: exactly one planted bug, which
//! the debug profile's detectors must catch (category in Cargo.toml). Never load it elsewhere.

use kernel::prelude::*;

module! {
    type: SeededOverflow,
    name: "seeded_overflow",
    authors: ["kforge"],
    description: "kforge seeded bug: arithmetic overflow",
    license: "GPL",
}

struct SeededOverflow;

impl kernel::Module for SeededOverflow {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let full = core::hint::black_box(255u8);
        // BUG: overflows (a wrapped length or index in real code).
        let next = full + core::hint::black_box(1u8);
        pr_info!("seeded_overflow: 255 + 1 = {next}\n");
        Ok(SeededOverflow)
    }
}
