//! `cargo xtask drivers build | list`: our out-of-tree Rust drivers, built against a kforge kernel or an exported SDK.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};

use super::selection::{Selection, by_kernel};
use super::{Context, GlobalArgs};
use crate::driver::KernelTree;
use crate::jobserver::Parallel;
use crate::toolchain::Toolchain;
use crate::{pipeline, sdk, ui};

#[derive(Debug, Args)]
pub struct DriversArgs {
    #[command(subcommand)]
    pub command: DriversCommand,
}

#[derive(Debug, Subcommand)]
pub enum DriversCommand {
    /// List the drivers found in the workspace and their metadata.
    List,
    /// Build the drivers as modules for a kernel (building the kernel first if needed),
    /// or only their modules against an SDK from `cargo xtask sdk`.
    Build {
        /// The cells to build for (with --sdk, only `--driver`: default and `all` then mean
        /// every driver with a module of its own).
        #[command(flatten)]
        selection: Selection,
        /// Build against this SDK tarball instead of a kernel tree (its kernel, arch and
        /// profile: `--profile` and KFORGE_PROFILE do not apply).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "arch", "cell", "suite"])]
        sdk: Option<PathBuf>,
        /// With --sdk: the toolchain to build with (default: the one the SDK records; its versions must match).
        #[arg(long, requires = "sdk")]
        toolchain: Option<String>,
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
        DriversCommand::Build { sdk: Some(file), selection, toolchain } => {
            build_with_sdk(&context, &file, selection.driver.as_deref(), toolchain.as_deref(), global)
        }
        DriversCommand::Build { selection, sdk: None, toolchain: _ } => {
            let drivers = selection.drivers(&context)?;
            for group in by_kernel(&selection.cells(&context)?) {
                let kernel = &group.kernel;
                let ready = pipeline::ready_kernel(&context.repo, kernel, &group.arches, &global.install_options())?;
                for &arch in &group.arches {
                    let cell = group.cell(arch);
                    let prepared = pipeline::prepare_cell(&pipeline::CellRequest {
                        repo: &context.repo,
                        kernel,
                        arch,
                        profile: cell.profile,
                        ready: &ready,
                        drivers: &drivers,
                        keys: None,
                        dir: &context.output.join("drivers").join(cell.id()),
                        initramfs: None,
                        strip_modules: false,
                        through: pipeline::Through::Drivers,
                    })?;
                    for (driver, reason) in &prepared.skipped {
                        ui::status("Skipping", format!("{} on {}: {reason}", driver.name, cell.label()));
                    }
                    for built in &prepared.drivers {
                        for module in &built.modules {
                            println!("{}", module.ko.display());
                        }
                    }
                }
            }
            Ok(0)
        }
    }
}

/// `drivers build --sdk FILE`: unpack (verified), check the toolchain is the
/// kernel's own, then build each driver's module against the SDK.
fn build_with_sdk(
    context: &Context,
    file: &Path,
    list: Option<&str>,
    toolchain_id: Option<&str>,
    global: &GlobalArgs,
) -> Result<i32> {
    let unpacked = sdk::unpack(file)?;
    let manifest = &unpacked.manifest;
    let arch = unpacked.arch()?;
    let drivers = match list {
        None | Some("all") => {
            crate::driver::discover(&context.repo)?.into_iter().filter(|driver| driver.meta.module.is_some()).collect()
        }
        Some(_) => context.drivers(list)?,
    };
    let active = sdk::buildable(&unpacked, drivers)?;
    let id = toolchain_id.unwrap_or(&manifest.toolchain.id);
    sdk::check_spec(&unpacked, &Toolchain::load(&context.repo, id)?)?;
    let toolchain = pipeline::ready_toolchain(&context.repo, id, &global.install_options())?;
    sdk::check_installed(&unpacked, &toolchain)?;
    let source_dir = unpacked.source_dir();
    let build_dir = unpacked.build_dir();
    let tree = KernelTree { source: &source_dir, build: &build_dir, make_vars: &[] };
    let out = context.output.join("drivers").join(format!("sdk-{}-{}", manifest.kernel.id, arch.name));
    for driver in &active {
        ui::status("Compiling", format!("driver {} for {} against the SDK", driver.name, arch.name));
        let parallel = Parallel::Jobs(pipeline::default_jobs());
        let module = crate::driver::build_module(driver, arch, &toolchain, &tree, &out, parallel)?;
        println!("{}", module.ko.display());
    }
    Ok(0)
}
