//! `cargo xtask drivers build | list`: our out-of-tree Rust drivers, built against a kforge kernel.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{Context, GlobalArgs};
use crate::jobserver::Parallel;
use crate::{pipeline, ui};

#[derive(Debug, Args)]
pub struct DriversArgs {
    #[command(subcommand)]
    pub command: DriversCommand,
}

#[derive(Debug, Subcommand)]
pub enum DriversCommand {
    /// List the drivers found in the workspace and their metadata.
    List,
    /// Build the drivers as modules for a kernel (building the kernel first if needed).
    Build {
        #[arg(long)]
        kernel: Option<String>,
        /// Comma-separated arches or `all` (default: the default matrix's).
        #[arg(long)]
        arch: Option<String>,
        /// Comma-separated driver names or `all` (default: the default matrix's).
        #[arg(long)]
        driver: Option<String>,
    },
}

pub fn run(args: DriversArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    match args.command {
        DriversCommand::List => {
            for driver in crate::driver::discover(&context.repo)? {
                let mut modules: Vec<String> = driver.meta.module.iter().cloned().collect();
                modules.extend(driver.meta.in_tree_modules.iter().map(|path| format!("{path} (in-tree)")));
                println!("{} (suite {})", driver.name, driver.suite());
                println!("    modules: {}", if modules.is_empty() { "-".to_string() } else { modules.join(", ") });
                if !driver.meta.kunit_suites.is_empty() {
                    println!("    kunit:   {}", driver.meta.kunit_suites.join(", "));
                }
                println!("    tests:   {}", driver.test_names().join(", "));
            }
            Ok(0)
        }
        DriversCommand::Build { kernel, arch, driver } => {
            let kernel = context.kernel(kernel.as_deref())?;
            let drivers = context.drivers(driver.as_deref())?;
            let toolchain = pipeline::ready_toolchain(&context.repo, &kernel.toolchain, &global.install_options())?;
            let source = pipeline::ready_source(&kernel, &toolchain)?;
            for arch in context.arches(arch.as_deref())? {
                let (active, skipped) = pipeline::split_drivers(&drivers, arch, &kernel);
                for (driver, reason) in skipped {
                    ui::status("Skipping", format!("{} on {}: {reason}", driver.name, arch.name));
                }
                let plan = pipeline::kernel_plan(&context.repo, &kernel, arch, &toolchain, &active)?;
                let cell = format!("{}-{}", kernel.id, arch.name);
                let log = context.output.join("logs").join(format!("kernel-{cell}.log"));
                let build =
                    pipeline::build_kernel(&plan, &toolchain, &source, &log, Parallel::Jobs(pipeline::default_jobs()))?;
                let out = context.output.join("drivers").join(&cell);
                for built in pipeline::build_drivers(
                    &active,
                    arch,
                    &toolchain,
                    &source,
                    &build,
                    &out,
                    Parallel::Jobs(pipeline::default_jobs()),
                )? {
                    for module in &built.modules {
                        println!("{}", module.ko.display());
                    }
                }
            }
            Ok(0)
        }
    }
}
