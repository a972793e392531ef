//! `cargo xtask toolchain list | install | verify | shell | resolve`: pinned toolchain roots, and which one a kernel needs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{Context, GlobalArgs};
use crate::arch::Arch;
use crate::project::KernelSource;
use crate::toolchain::{Provider, Toolchain, resolve, spec, verify};
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
    /// Install a toolchain: its hermetic Debian root with mmdebstrap (cached outside the repo), or
    /// for provider rustup the rustup toolchain and bindgen; provider host installs nothing.
    Install {
        /// Toolchain id (a file in toolchains/); default: the default kernel's.
        id: Option<String>,
        /// Remove the existing root first and build it again.
        #[arg(long)]
        force: bool,
        /// Print the install commands (mmdebstrap, or rustup and cargo) instead of running them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every pinned version inside the root (or on the host), exactly.
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
    /// Which pinned toolchain can build a kernel: reads the tree's
    /// scripts/min-tool-version.sh and Makefile, applies toolchains/rules.toml
    /// to every toolchain, and picks one per arch (the kernel's own when it
    /// satisfies every rule) or explains which rule each one breaks.
    Resolve {
        /// Kernel id from kforge.toml; its source is fetched and unpacked if
        /// needed (default: the default kernel).
        #[arg(long, conflicts_with = "source")]
        kernel: Option<String>,
        /// A kernel source tree on this machine instead.
        #[arg(long, value_name = "PATH")]
        source: Option<PathBuf>,
        /// Arches to resolve for: a comma list or `all` (default: all).
        #[arg(long, default_value = "all")]
        arch: String,
        /// Check only this toolchain: fail, naming the rule, if it cannot build the kernel.
        #[arg(long, value_name = "ID")]
        toolchain: Option<String>,
        /// Print a machine-readable report on stdout.
        #[arg(long)]
        json: bool,
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
                let state = match toolchain.spec.provider {
                    Provider::Host => "host tools",
                    _ if toolchain.is_installed() => "installed",
                    _ => "not installed",
                };
                println!("{id:<14} {state:<14} {}", toolchain.spec.description);
            }
            Ok(0)
        }
        ToolchainCommand::Install { id, force, dry_run } => {
            let toolchain = Toolchain::load(&context.repo, &default_id(&context, id)?)?;
            let mut options = global.install_options();
            options.force = force;
            if dry_run {
                let plan = toolchain.provider().plan(&toolchain, &options)?;
                if plan.is_empty() {
                    ui::info(format!("toolchain {} uses provider host: kforge installs nothing", toolchain.id()));
                }
                for cmd in plan {
                    println!("{}", cmd.display());
                }
                return Ok(0);
            }
            if !toolchain.provider().install(&toolchain, &options)? {
                if toolchain.spec.provider == Provider::Host {
                    ui::status(
                        "Checking",
                        format!(
                            "toolchain {}: provider host installs nothing, only verifies the host's tools",
                            toolchain.id()
                        ),
                    );
                } else {
                    ui::status(
                        "Fresh",
                        format!("toolchain {} is already installed ({})", toolchain.id(), toolchain.location()),
                    );
                }
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
            ui::status("Installed", format!("toolchain {} ({})", toolchain.id(), toolchain.location()));
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
            let mut banner = format!("kforge: toolchain {id}; kernel {} source at /src (read-only)", kernel_entry.id);
            let mut build = None;
            if let Some(arch) = arch {
                let arch = crate::arch::Arch::find(&arch)?;
                let drivers = context.drivers(None)?;
                let (active, _) = pipeline::split_drivers(&drivers, arch, &kernel_entry);
                let plan = pipeline::kernel_plan(&context.repo, &kernel_entry, arch, &toolchain, &active)?;
                if plan.entry.is_dir() {
                    banner.push_str(&format!("; {} build at /build", arch.name));
                    build = Some(plan.entry);
                } else {
                    ui::warn(format!(
                        "kernel {}/{} is not built yet; /build is not mounted",
                        kernel_entry.id, arch.name
                    ));
                }
            }
            ui::info(banner);
            let status = toolchain.shell(&source.dir, build.as_deref())?;
            Ok(status.code().unwrap_or(error::EXIT_INFRA))
        }
        ToolchainCommand::Resolve { kernel, source, arch, toolchain, json } => {
            run_resolve(&context, kernel, source, &arch, toolchain, json)
        }
    }
}

fn run_resolve(
    context: &Context,
    kernel_id: Option<String>,
    source: Option<PathBuf>,
    arch: &str,
    only: Option<String>,
    json: bool,
) -> Result<i32> {
    let arches = Arch::parse_list(arch)?;
    let rules = resolve::load_rules(&context.repo)?;
    // The tree, and the kforge.toml kernel it belongs to (whose toolchain is preferred).
    let (tree, entry, target) = match source {
        Some(path) => {
            let dir = fs_err::canonicalize(&path)
                .map_err(|err| error::user(format!("kernel source {} does not exist: {err}", path.display())))?;
            let tree = resolve::read_tree(&dir)?;
            let entry = resolve::kernel_entry_for(&context.project.kernels, &tree.version).cloned();
            (tree, entry, format!("--source {}", path.display()))
        }
        None => {
            let entry = context.kernel(kernel_id.as_deref())?;
            let fetcher = Toolchain::load(&context.repo, &entry.toolchain)?;
            let unpacked = kernel::source::cache_entry(&entry)?.is_none_or(|(_, dir)| dir.is_dir());
            if !unpacked && matches!(entry.source, KernelSource::Debian { .. }) && !fetcher.is_installed() {
                return Err(error::user_hint(
                    format!(
                        "kernel {}'s source is not unpacked yet, and fetching it needs toolchain {} (its apt)",
                        entry.id, entry.toolchain
                    ),
                    format!(
                        "run: cargo xtask toolchain install {}; or pass --source PATH with a tree you have",
                        entry.toolchain
                    ),
                ));
            }
            let tree = resolve::read_tree(&pipeline::ready_source(&entry, &fetcher)?.dir)?;
            let target = format!("--kernel {}", entry.id);
            (tree, Some(entry), target)
        }
    };
    let ids = match &only {
        Some(id) => vec![id.clone()],
        None => spec::list_ids(&context.repo)?,
    };
    let specs = ids.iter().map(|id| spec::load(&context.repo, id)).collect::<Result<Vec<_>>>()?;
    let preferred = match &only {
        Some(id) => Some(resolve::Preferred { id, why: "the toolchain asked for" }),
        None => {
            entry.as_ref().map(|entry| resolve::Preferred { id: &entry.toolchain, why: "the kernel's own toolchain" })
        }
    };
    let entry_id = entry.as_ref().map(|entry| entry.id.as_str());
    // A distro kernel is already built: only the compilers its config records can build modules for it.
    let mut packaged = BTreeMap::new();
    if let Some(entry) = &entry
        && let KernelSource::DebianImage(image) = &entry.source
    {
        let fetcher = Toolchain::load(&context.repo, &entry.toolchain)?;
        for arch in &arches {
            if let Some(packages) = image.arches.get(arch.name) {
                packaged.insert(arch.name, kernel::distro::packaged_compilers(&fetcher, packages, arch)?);
            }
        }
    }
    let distro_check = |arch: &Arch, spec: &spec::ToolchainSpec| -> Option<resolve::Failure> {
        let entry = entry.as_ref()?;
        match packaged.get(arch.name) {
            Some(texts) => kernel::distro::compiler_failure(spec, texts),
            None => kernel::distro::arch_skip_reason(entry, arch).map(|detail| resolve::Failure {
                rule: "distro-arch".to_string(),
                explanation: "a distro kernel runs only on the arches it has packages for".to_string(),
                detail,
            }),
        }
    };
    let resolution = resolve::resolve(&rules, &tree, &specs, &arches, entry_id, preferred, &distro_check)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&resolution)?);
    } else {
        print!("{}", resolution.render());
    }
    if let Some(id) = &only {
        let failures = resolution.failures_of(id);
        if !failures.is_empty() {
            return Err(resolve::refusal(&resolution.kernel_version, id, &failures, &target));
        }
        ui::status("Resolved", format!("toolchain {id} satisfies every rule for kernel {}", resolution.kernel_version));
        return Ok(0);
    }
    let missing: Vec<&str> =
        resolution.arches.iter().filter(|choice| choice.chosen.is_none()).map(|choice| choice.arch.as_str()).collect();
    if !missing.is_empty() {
        return Err(error::user_hint(
            format!(
                "no pinned toolchain can build kernel {} for {}; each one breaks a rule listed above",
                resolution.kernel_version,
                missing.join(", ")
            ),
            format!("pin a toolchain that satisfies them in toolchains/ (rules: {})", resolve::RULES_FILE),
        ));
    }
    Ok(0)
}
