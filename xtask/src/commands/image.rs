//! `cargo xtask image`: the initramfs for a cell (busybox, /init, modules, tests), deterministic.

use anyhow::Result;
use clap::Args;

use super::{Context, GlobalArgs};
use crate::jobserver::Parallel;
use crate::pipeline;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[arg(long)]
    pub kernel: Option<String>,
    /// Comma-separated arches or `all` (default: the default matrix's).
    #[arg(long)]
    pub arch: Option<String>,
    /// Comma-separated driver names or `all` (default: the default matrix's).
    #[arg(long)]
    pub driver: Option<String>,
}

pub fn run(args: ImageArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let kernel = context.kernel(args.kernel.as_deref())?;
    let drivers = context.drivers(args.driver.as_deref())?;
    let arches = context.arches(args.arch.as_deref())?;
    let ready = pipeline::ready_kernel(&context.repo, &kernel, &arches, &global.install_options())?;
    let (toolchain, source) = (&ready.toolchain, &ready.source);
    for arch in arches {
        let (active, _) = pipeline::ready_arch(&context.repo, &kernel, arch, &ready, &drivers)?;
        let plan = pipeline::kernel_plan(&context.repo, &kernel, arch, toolchain, &active)?;
        let cell = format!("{}-{}", kernel.id, arch.name);
        let dir = context.output.join("images").join(&cell);
        let build = pipeline::build_kernel(
            &plan,
            toolchain,
            source,
            &dir.join("kernel-build.log"),
            Parallel::Jobs(pipeline::default_jobs()),
        )?;
        let built = pipeline::build_drivers(
            &active,
            arch,
            toolchain,
            source,
            &build,
            &dir.join("drivers"),
            Parallel::Jobs(pipeline::default_jobs()),
        )?;
        let image = pipeline::build_image(toolchain, arch, &context.repo, built, &dir.join("initramfs.cpio.gz"))?;
        println!("{}", image.display());
    }
    Ok(0)
}
