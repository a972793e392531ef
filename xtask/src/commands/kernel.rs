//! `cargo xtask kernel build`: configure and build one kernel for one arch (cached; a repeat compiles nothing).

use anyhow::Result;
use clap::{Args, Subcommand};

use super::selection::{Selection, by_kernel};
use super::{Context, GlobalArgs};
use crate::jobserver::Parallel;
use crate::kernel::build as kbuild;
use crate::{error, pipeline, ui};

#[derive(Debug, Args)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub command: KernelCommand,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Configure a kernel and check every requested option survived, without building it.
    Config {
        #[command(flatten)]
        selection: Selection,
    },
    /// Build a kernel (config fragments merged, LLVM=1, out of tree, cached): one cell.
    Build {
        #[command(flatten)]
        selection: Selection,
        /// Print the plan (cache entry and commands) instead of building.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: KernelArgs, global: &GlobalArgs) -> Result<i32> {
    let (selection, dry_run) = match args.command {
        KernelCommand::Build { selection, dry_run } => (selection, dry_run),
        KernelCommand::Config { selection } => return configure(&selection, global),
    };
    let context = Context::load()?;
    let cell = selection.one_cell(&context, "kernel build")?;
    let (kernel, arch) = (&cell.kernel, cell.arch);
    let drivers = selection.drivers(&context)?;
    let jobs = pipeline::default_jobs();
    if dry_run {
        pipeline::refuse_skipped_cells(&context.repo, kernel, &[arch])?;
        let (active, _) = pipeline::split_drivers(&drivers, arch, kernel);
        let toolchain = crate::toolchain::Toolchain::load(&context.repo, &kernel.toolchain)?;
        let plan = pipeline::profile_kernel_plan(&context.repo, kernel, arch, cell.profile, &toolchain, &active)?;
        println!("# kernel {}/{} ({}) with toolchain {}", kernel.id, arch.name, cell.profile, toolchain.id());
        println!("# cache entry: {} (key {})", plan.entry.display(), plan.key);
        for fragment in plan.fragments() {
            println!("# fragment {}: {}", fragment.name, fragment.origin);
        }
        for argv in kbuild::config_commands(&plan) {
            println!("{}", argv.join(" "));
        }
        println!("{}", kbuild::build_command(&plan, Parallel::Jobs(jobs)).join(" "));
        return Ok(0);
    }
    let ready = pipeline::ready_kernel(&context.repo, kernel, &[arch], &global.install_options())?;
    let build = pipeline::prepare_cell(&pipeline::CellRequest {
        repo: &context.repo,
        kernel,
        arch,
        profile: cell.profile,
        ready: &ready,
        drivers: &drivers,
        keys: None,
        dir: &context.output.join("kernels").join(cell.id()),
        initramfs: None,
        strip_modules: false,
        through: pipeline::Through::Kernel,
    })?
    .kernel;
    println!("{}", build.image.display());
    if !build.image.is_file() {
        return Err(error::user(format!("the kernel image {} is missing", build.image.display())));
    }
    Ok(0)
}

/// `kernel config`: configure each selected cell and report the `.config` it produced.
fn configure(selection: &Selection, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let drivers = selection.drivers(&context)?;
    let mut failed = 0;
    for group in by_kernel(&selection.cells(&context)?) {
        let kernel = &group.kernel;
        let ready = pipeline::ready_kernel(&context.repo, kernel, &group.arches, &global.install_options())?;
        for &arch in &group.arches {
            let cell = group.cell(arch);
            let (active, _) = pipeline::ready_arch(&context.repo, kernel, arch, &ready, &drivers)?;
            let plan =
                pipeline::profile_kernel_plan(&context.repo, kernel, arch, cell.profile, &ready.toolchain, &active)?;
            let log = context.output.join("logs").join(format!("kernel-{}.log", cell.id()));
            match kbuild::configure_only(&plan, &ready.toolchain, &ready.source, &log) {
                Ok(config) => {
                    ui::status("Configured", format!("kernel {}: every requested option is set", cell.label()));
                    println!("{}", config.display());
                }
                Err(err) => {
                    failed += 1;
                    ui::error(&error::render(&err));
                }
            }
        }
    }
    Ok(if failed == 0 { 0 } else { error::EXIT_INFRA })
}
