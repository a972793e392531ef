//! `cargo xtask kernel build`: configure and build one kernel for one arch (cached; a repeat compiles nothing).

use anyhow::Result;
use clap::{Args, Subcommand};

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
        #[arg(long)]
        kernel: Option<String>,
        /// Comma-separated arches or `all` (default: the default matrix's).
        #[arg(long)]
        arch: Option<String>,
    },
    /// Build a kernel (config fragments merged, LLVM=1, out of tree, cached).
    Build {
        /// Kernel id from kforge.toml (default: the default matrix's first).
        #[arg(long)]
        kernel: Option<String>,
        /// Architecture (kernel name or alias, e.g. x86_64, arm64, aarch64).
        #[arg(long)]
        arch: String,
        /// Parallel make jobs (default: KFORGE_JOBS or the number of CPUs).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Print the plan (cache entry and commands) instead of building.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: KernelArgs, global: &GlobalArgs) -> Result<i32> {
    let (kernel, arch, jobs, dry_run) = match args.command {
        KernelCommand::Build { kernel, arch, jobs, dry_run } => (kernel, arch, jobs, dry_run),
        KernelCommand::Config { kernel, arch } => return configure(kernel, arch, global),
    };
    let context = Context::load()?;
    let kernel = context.kernel(kernel.as_deref())?;
    let arch = crate::arch::Arch::find(&arch)?;
    let drivers = context.drivers(None)?;
    let (active, _) = pipeline::split_drivers(&drivers, arch, &kernel);
    let jobs = jobs.unwrap_or_else(pipeline::default_jobs);
    if dry_run {
        let toolchain = crate::toolchain::Toolchain::load(&context.repo, &kernel.toolchain)?;
        let plan = pipeline::kernel_plan(&context.repo, &kernel, arch, &toolchain, &active)?;
        println!("# kernel {}/{} with toolchain {}", kernel.id, arch.name, toolchain.id());
        println!("# cache entry: {} (key {})", plan.entry.display(), plan.key);
        for fragment in &plan.fragments {
            println!("# fragment {}: {}", fragment.name, fragment.origin);
        }
        for argv in kbuild::config_commands(&plan) {
            println!("{}", argv.join(" "));
        }
        println!("{}", kbuild::build_command(&plan, Parallel::Jobs(jobs)).join(" "));
        return Ok(0);
    }
    let ready = pipeline::ready_kernel(&context.repo, &kernel, &[arch], &global.install_options())?;
    let (active, _) = pipeline::ready_arch(&context.repo, &kernel, arch, &ready, &drivers)?;
    let pipeline::ReadyKernel { toolchain, source } = ready;
    let plan = pipeline::kernel_plan(&context.repo, &kernel, arch, &toolchain, &active)?;
    let log = context.output.join("logs").join(format!("kernel-{}-{}.log", kernel.id, arch.name));
    let build = pipeline::build_kernel(&plan, &toolchain, &source, &log, Parallel::Jobs(jobs))?;
    println!("{}", build.image.display());
    if !build.image.is_file() {
        return Err(error::user(format!("the kernel image {} is missing", build.image.display())));
    }
    Ok(0)
}

/// `kernel config`: configure each arch and report the `.config` it produced.
fn configure(kernel: Option<String>, arch: Option<String>, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let kernel = context.kernel(kernel.as_deref())?;
    let drivers = context.drivers(None)?;
    let arches = context.arches(arch.as_deref())?;
    let ready = pipeline::ready_kernel(&context.repo, &kernel, &arches, &global.install_options())?;
    let mut failed = 0;
    for arch in arches {
        let (active, _) = pipeline::ready_arch(&context.repo, &kernel, arch, &ready, &drivers)?;
        let plan = pipeline::kernel_plan(&context.repo, &kernel, arch, &ready.toolchain, &active)?;
        let log = context.output.join("logs").join(format!("kernel-{}-{}.log", kernel.id, arch.name));
        match kbuild::configure_only(&plan, &ready.toolchain, &ready.source, &log) {
            Ok(config) => {
                ui::status("Configured", format!("kernel {}/{}: every requested option is set", kernel.id, arch.name));
                println!("{}", config.display());
            }
            Err(err) => {
                failed += 1;
                ui::error(&error::render(&err));
            }
        }
    }
    Ok(if failed == 0 { 0 } else { error::EXIT_INFRA })
}
