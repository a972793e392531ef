//! `cargo xtask fetch`: puts everything a matrix needs (toolchain packages, busybox, kernel sources) into the store, for `--offline`.

use std::collections::BTreeSet;

use anyhow::Result;
use clap::Args;

use super::{Context, GlobalArgs};
use crate::toolchain::mirror;
use crate::{fetch, kernel, pipeline, ui};

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Comma-separated kernel ids or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub kernel: Option<String>,
}

pub fn run(args: FetchArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let kernels = context.project.select_kernels(args.kernel.as_deref())?;
    let options = global.install_options();
    let mut toolchains_done = BTreeSet::new();
    let mut packages = 0;
    let mut sources = 0;
    for kernel in kernels {
        // Every arch's packages (busybox included) are in one root, so the arch list does not matter here.
        let toolchain = pipeline::ready_toolchain(&context.repo, &kernel.toolchain, &options)?;
        let first_use = toolchains_done.insert(toolchain.id().to_string());
        if first_use && toolchain.spec.debian.is_none() {
            ui::status(
                "Skipping",
                format!(
                    "toolchain {}: provider {} has no packages to fetch (its tools are on the host)",
                    toolchain.id(),
                    toolchain.spec.provider.name()
                ),
            );
        } else if first_use {
            let debs = mirror::populate(&toolchain)?;
            ui::status("Stored", format!("{} packages of toolchain {}", debs.len(), toolchain.id()));
            packages += debs.len();
        }
        if let Some(archive) = kernel::source::fetch_archive(kernel, &toolchain)? {
            ui::status("Stored", format!("kernel {} source: {}", kernel.id, archive.display()));
            sources += 1;
        }
    }
    let store = fetch::store_root()?;
    ui::info(format!(
        "{packages} packages and {sources} kernel source(s) are in {}; copy that directory to another machine's \
         kforge cache (KFORGE_CACHE_DIR or ~/.cache/kforge) and run with --offline",
        store.display()
    ));
    Ok(0)
}
