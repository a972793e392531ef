//! `cargo xtask new-driver NAME`: scaffold an out-of-tree Rust driver that passes `test` as generated.

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::{scaffold, ui};

#[derive(Debug, Args)]
pub struct NewDriverArgs {
    /// Package name (lowercase letters, digits, `-`, `_`); the module is `kforge_<name>`.
    pub name: String,
}

pub fn run(args: NewDriverArgs) -> Result<i32> {
    let context = Context::load()?;
    let (dir, names) = scaffold::new_driver(&context.repo, &args.name)?;
    ui::status(
        "Created",
        format!("driver {} in {} (module {}, /dev/{})", names.name, dir.display(), names.module, names.device),
    );
    if scaffold::join_matrix(&context.repo, &names.name)? {
        ui::status("Added", format!("{} to [matrix] drivers in kforge.toml", names.name));
    }
    ui::info("next: cargo xtask test --arch x86_64");
    Ok(0)
}
