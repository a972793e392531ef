//! `cargo xtask image`: the initramfs for a cell (busybox, /init, modules, tests), deterministic.

use anyhow::Result;
use clap::Args;

use super::selection::{Selection, by_kernel};
use super::{Context, GlobalArgs};
use crate::jobserver::Parallel;
use crate::pipeline;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub selection: Selection,
}

pub fn run(args: ImageArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let drivers = args.selection.drivers(&context)?;
    for group in by_kernel(&args.selection.cells(&context)?) {
        let kernel = &group.kernel;
        let ready = pipeline::ready_kernel(&context.repo, kernel, &group.arches, &global.install_options())?;
        let (toolchain, source) = (&ready.toolchain, &ready.source);
        for &arch in &group.arches {
            let cell = group.cell(arch);
            let (active, _) = pipeline::ready_arch(&context.repo, kernel, arch, &ready, &drivers)?;
            let plan = pipeline::profile_kernel_plan(&context.repo, kernel, arch, cell.profile, toolchain, &active)?;
            let dir = context.output.join("images").join(cell.id());
            let parallel = Parallel::Jobs(pipeline::default_jobs());
            let build = pipeline::build_kernel(&plan, toolchain, source, &dir.join("kernel-build.log"), parallel)?;
            let built =
                pipeline::build_drivers(&active, arch, toolchain, source, &build, &dir.join("drivers"), parallel)?;
            let image = pipeline::build_image(toolchain, arch, &context.repo, built, &dir.join("initramfs.cpio.gz"))?;
            println!("{}", image.display());
        }
    }
    Ok(0)
}
