//! `cargo xtask toolchain list | install | verify | shell`: pinned toolchain roots.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{Context, GlobalArgs};
use crate::toolchain::{Toolchain, install, spec, verify};
use crate::{error, kernel, pipeline, ui};

#[derive(Debug, Args)]
pub struct ToolchainArgs {
    #[command(subcommand)]
    pub command: ToolchainCommand,
}

#[derive(Debug, Subcommand)]
pub enum ToolchainCommand {
    /// List the pinned toolchains and whether each is installed.
    List,
    /// Build a toolchain's hermetic root with mmdebstrap (cached outside the repo).
    Install {
        /// Toolchain id (a file in toolchains/); default: the default kernel's.
        id: Option<String>,
        /// Remove the existing root first and build it again.
        #[arg(long)]
        force: bool,
        /// Print the mmdebstrap command instead of running it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every pinned version inside the root, exactly.
    Verify {
        id: Option<String>,
        /// Print a machine-readable report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Open an interactive shell inside the root, with the kernel tree at /src.
    Shell {
        id: Option<String>,
        /// Kernel whose source is mounted at /src (default: the default kernel).
        #[arg(long)]
        kernel: Option<String>,
        /// Also mount this arch's kernel build directory at /build, if built.
        #[arg(long)]
        arch: Option<String>,
    },
}

fn default_id(context: &Context, id: Option<String>) -> Result<String> {
    match id {
        Some(id) => Ok(id),
        None => Ok(context.kernel(None)?.toolchain),
    }
}

pub fn run(args: ToolchainArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    match args.command {
        ToolchainCommand::List => {
            for id in spec::list_ids(&context.repo)? {
                let toolchain = Toolchain::load(&context.repo, &id)?;
                let state = if toolchain.is_installed() { "installed" } else { "not installed" };
                println!("{id:<14} {state:<14} {}", toolchain.spec.description);
            }
            Ok(0)
        }
        ToolchainCommand::Install { id, force, dry_run } => {
            let toolchain = Toolchain::load(&context.repo, &default_id(&context, id)?)?;
            let mut options = global.install_options();
            options.force = force;
            if dry_run {
                println!("{}", install::mmdebstrap_command(&toolchain, &toolchain.root, &options)?.display());
                return Ok(0);
            }
            if !install::install(&toolchain, &options)? {
                ui::status(
                    "Fresh",
                    format!("toolchain {} is already installed at {}", toolchain.id(), toolchain.root.display()),
                );
            }
            let report = verify::verify(&toolchain)?;
            ui::info(report.render());
            if !report.ok {
                return Err(error::user(format!(
                    "toolchain {} was installed but does not match its pins:\n  {}",
                    toolchain.id(),
                    report.mismatches().join("\n  ")
                )));
            }
            crate::lock::check_root_if_locked(&context.repo, &toolchain)?;
            ui::status("Installed", format!("toolchain {} at {}", toolchain.id(), toolchain.root.display()));
            Ok(0)
        }
        ToolchainCommand::Verify { id, json } => {
            let toolchain = Toolchain::load(&context.repo, &default_id(&context, id)?)?;
            let report = verify::verify(&toolchain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                ui::info(report.render());
            }
            if report.ok {
                ui::status("Verified", format!("toolchain {}: every pin matches", toolchain.id()));
                Ok(0)
            } else {
                Err(error::user(format!(
                    "toolchain {} does not match its pins:\n  {}",
                    toolchain.id(),
                    report.mismatches().join("\n  ")
                )))
            }
        }
        ToolchainCommand::Shell { id, kernel: kernel_id, arch } => {
            let kernel_entry = context.kernel(kernel_id.as_deref())?;
            let id = id.unwrap_or_else(|| kernel_entry.toolchain.clone());
            let toolchain = pipeline::ready_toolchain(&context.repo, &id, &global.install_options())?;
            let source = kernel::source::prepare(&kernel_entry, &toolchain)?;
            let sandbox = toolchain.sandbox()?;
            let mut jail = sandbox.jail().interactive();
            jail.ro(&source.dir, "/src");
            let mut banner = format!("kforge: toolchain {id}; kernel {} source at /src (read-only)", kernel_entry.id);
            if let Some(arch) = arch {
                let arch = crate::arch::Arch::find(&arch)?;
                let drivers = context.drivers(None)?;
                let (active, _) = pipeline::split_drivers(&drivers, arch, &kernel_entry);
                let plan = pipeline::kernel_plan(&context.repo, &kernel_entry, arch, &toolchain, &active)?;
                if plan.entry.is_dir() {
                    jail.rw(&plan.entry, "/build");
                    banner.push_str(&format!("; {} build at /build", arch.name));
                } else {
                    ui::warn(format!(
                        "kernel {}/{} is not built yet; /build is not mounted",
                        kernel_entry.id, arch.name
                    ));
                }
            }
            ui::info(banner);
            let cmd = jail.cwd("/src").command(&["bash", "-i"])?;
            let status = cmd.run_interactive()?;
            Ok(status.code().unwrap_or(error::EXIT_INFRA))
        }
    }
}
