//! `cargo xtask package`: Debian packages for a distro kernel (linux-librust, DKMS and prebuilt-module packages), lintian-checked, and with `--prove` installed with apt and built with DKMS in a fresh root.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;

use super::{Context, GlobalArgs};
use crate::jobserver::Parallel;
use crate::package::{self, PackagedDriver, deb, proof, tools};
use crate::project::{KernelEntry, KernelSource};
use crate::{error, pipeline, ui};

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// A distro kernel id from kforge.toml (e.g. debian-7.2).
    #[arg(long)]
    pub kernel: String,
    /// Comma-separated arches (default: every arch the kernel lists Debian packages for).
    #[arg(long)]
    pub arch: Option<String>,
    /// Comma-separated drivers (default: every driver with a module of its own that runs on the kernel).
    #[arg(long)]
    pub driver: Option<String>,
    /// Where the .deb files go.
    #[arg(long)]
    pub out: PathBuf,
    /// The Maintainer field, `Full Name <address>` (default: DEBFULLNAME and DEBEMAIL, else kforge's).
    #[arg(long)]
    pub maintainer: Option<String>,
    /// Then prove the install: in a fresh Debian root, apt installs Debian's headers,
    /// linux-librust and the first driver's DKMS package, and `dkms install` builds it.
    #[arg(long)]
    pub prove: bool,
}

pub fn run(args: PackageArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let kernel = context.kernel(Some(&args.kernel))?;
    let KernelSource::DebianImage(image) = &kernel.source else {
        return Err(not_a_distro_kernel(&kernel));
    };
    let maintainer = package::maintainer(args.maintainer.as_deref())?;
    let epoch = package::source_date_epoch(&context.repo)?;
    let arches = match &args.arch {
        Some(list) => crate::arch::Arch::parse_list(list)?,
        None => crate::arch::Arch::parse_list(&image.arches.keys().cloned().collect::<Vec<_>>().join(","))?,
    };
    let all = crate::driver::discover(&context.repo)?;
    let drivers = match &args.driver {
        Some(_) => context.drivers(args.driver.as_deref())?,
        None => all.into_iter().filter(|driver| driver.meta.module.is_some()).collect(),
    };
    let options = global.install_options();
    let pins = tools::ToolPins::load(&context.repo)?;
    let tools_root = tools::ready(&pins, &options)?;
    let ready = pipeline::ready_kernel(&context.repo, &kernel, &arches, &options)?;
    fs_err::create_dir_all(&args.out)?;
    let mut errors = 0;
    let mut proven = false;
    for arch in arches {
        let Some(debian) = image.arches.get(arch.name) else {
            return Err(error::user(format!(
                "kernel {} lists Debian packages for {} only, not {}",
                kernel.id,
                image.arches.keys().cloned().collect::<Vec<_>>().join(", "),
                arch.name
            )));
        };
        let (active, skipped) = pipeline::ready_arch(&context.repo, &kernel, arch, &ready, &drivers)?;
        let (toolchain, source) = (&ready.toolchain, &ready.source);
        for (driver, reason) in skipped {
            ui::status("Skipping", format!("{} on {}: {reason}", driver.name, arch.name));
        }
        let plan = pipeline::kernel_plan(&context.repo, &kernel, arch, toolchain, &active)?;
        let cell = format!("{}-{}", kernel.id, arch.name);
        let log = context.output.join("logs").join(format!("kernel-{cell}.log"));
        let parallel = Parallel::Jobs(pipeline::default_jobs());
        let build = pipeline::build_kernel(&plan, toolchain, source, &log, parallel)?;
        let release = build
            .make_vars
            .iter()
            .find_map(|var| var.strip_prefix("KERNELRELEASE="))
            .map(str::to_string)
            .ok_or_else(|| error::user(format!("the build of {cell} records no KERNELRELEASE")))?;
        let work = context.output.join("package").join(&cell);
        let built = pipeline::build_drivers(&active, arch, toolchain, source, &build, &work.join("drivers"), parallel)?;
        let mut packaged = Vec::new();
        for item in &built {
            let Some(module) = item.driver.meta.module.as_ref() else { continue };
            let ko = item.modules.iter().find(|file| &file.name == module).map(|file| file.ko.clone());
            let ko = ko.ok_or_else(|| error::user(format!("driver {} built no {module}.ko", item.driver.name)))?;
            packaged.push(PackagedDriver {
                description: cargo_description(&item.driver.dir)?,
                driver: item.driver.clone(),
                ko,
            });
        }
        let sandbox = tools_root.sandbox()?;
        let proc_macros = package::strip_proc_macros(&sandbox, &build.dir, &work.join("proc-macros"))?;
        // The root's own C library (a multi-arch root records `libc6:amd64`): the proc macros link it.
        let installed = toolchain.installed_packages()?;
        let libc = installed.iter().find(|(name, _)| *name == "libc6" || name.starts_with("libc6:"));
        let libc = libc.map(|(_, version)| version.clone()).ok_or_else(|| {
            error::user(format!("toolchain {} records no libc6 version (opt/kforge/packages.txt)", toolchain.id()))
        })?;
        let libc_upstream = libc.split(['-', '+']).next().unwrap_or(&libc).to_string();
        let inputs = package::Inputs {
            arch,
            source: &image.source,
            debian,
            release: release.clone(),
            build_dir: &build.dir,
            rustc_pin: package::pin_of(&toolchain.spec.rustc.packages, "rustc")?,
            bindgen_pin: package::pin_of(&toolchain.spec.bindgen.packages, "bindgen")?,
            libc_dependency: format!("libc6 (>= {libc_upstream})"),
            proc_macros,
            drivers: packaged.clone(),
            maintainer: maintainer.clone(),
            epoch,
            kforge_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut planned = package::plan(&inputs)?;
        if let Some(reason) = package::librust_refusal(arch) {
            ui::warn(format!("{cell}: no linux-librust and no DKMS packages: {reason}"));
            planned.retain(|item| item.name.starts_with("kforge-") && !item.name.ends_with("-dkms"));
        }
        let mut debs = Vec::new();
        for item in &planned {
            let path = deb::build(&sandbox, item, &args.out, epoch)?;
            ui::status("Packaged", path.display().to_string());
            debs.push(path);
        }
        let findings = tools::lintian(&tools_root, &debs)?;
        let (errors_here, warnings) = report_findings(&cell, &findings);
        errors += errors_here;
        ui::status(
            "Checked",
            format!("{cell}: lintian on {} packages: {errors_here} errors, {warnings} warnings", debs.len()),
        );
        for path in &debs {
            println!("{}", path.display());
        }
        if args.prove && !proven && package::librust_refusal(arch).is_none() {
            proven = true;
            let Some(first) = packaged.first() else {
                return Err(error::user("--prove needs a driver with a module of its own (--driver fifo)"));
            };
            prove(&pins, &options, debian, &release, &planned, &debs, first, &work)?;
        }
    }
    if errors > 0 {
        return Err(error::user_hint(
            format!("lintian found {errors} error(s) in the packages (listed above)"),
            "fix the package plan in xtask/src/package/ and build again",
        ));
    }
    Ok(0)
}

/// Runs the install proof for one driver and prints what it found.
#[allow(clippy::too_many_arguments)]
fn prove(
    pins: &tools::ToolPins,
    options: &crate::toolchain::install::InstallOptions,
    debian: &crate::project::DebianImageArch,
    release: &str,
    planned: &[deb::DebPackage],
    debs: &[PathBuf],
    driver: &PackagedDriver,
    work: &Path,
) -> Result<()> {
    let find = |name: &str| -> Result<PathBuf> {
        planned
            .iter()
            .zip(debs)
            .find(|(item, _)| item.name == name)
            .map(|(_, path)| path.clone())
            .ok_or_else(|| error::user(format!("no package {name} was built")))
    };
    let librust_name = package::librust_name(release);
    let (module, module_version) = package::dkms_module(&driver.driver);
    let ko_name = driver.driver.meta.module.clone().unwrap_or_default();
    let plan = proof::ProofPlan::new(
        pins,
        format!("{}={}", debian.headers.package, debian.headers.version),
        release,
        (find(&librust_name)?, librust_name.clone()),
        find(&package::dkms_name(&driver.driver))?,
        (module, module_version, ko_name),
    );
    let result = proof::run(&plan, &work.join("proof"), options)?;
    let kforge = fs_err::read(&driver.ko)?;
    let comparison = proof::compare(&result.module, &kforge);
    if !result.vermagic.starts_with(&format!("{release} ")) {
        return Err(error::user(format!(
            "the DKMS-built {} has vermagic `{}`, not Debian's kernel release {release}",
            result.module_path.display(),
            result.vermagic
        )));
    }
    ui::status(
        "Proven",
        format!(
            "apt + dkms built {} in {:.0} s; vermagic `{}`; {comparison}; logs in {}",
            plan.ko_name,
            result.seconds,
            result.vermagic.trim(),
            result.results.display()
        ),
    );
    let summary = format!(
        "release: {release}\nmodule: {}\nvermagic: {}\ncomparison: {comparison}\nseconds: {:.0}\n",
        result.module_path.display(),
        result.vermagic.trim(),
        result.seconds
    );
    fs_err::write(result.results.join("summary.txt"), summary)?;
    Ok(())
}

/// Prints lintian's findings: errors and warnings as such, the rest as details. Returns (errors, warnings).
fn report_findings(cell: &str, findings: &[tools::Finding]) -> (usize, usize) {
    let (mut errors, mut warnings) = (0, 0);
    for finding in findings {
        match finding.severity {
            'E' => {
                errors += 1;
                ui::error(&format!("{cell}: lintian: {}", finding.line));
            }
            'W' => {
                warnings += 1;
                ui::warn(format!("{cell}: lintian: {}", finding.line));
            }
            _ => ui::detail(format!("{cell}: lintian: {}", finding.line)),
        }
    }
    (errors, warnings)
}

fn not_a_distro_kernel(kernel: &KernelEntry) -> anyhow::Error {
    error::user_hint(
        format!(
            "kernel {} is built by kforge, not a distro kernel: packages are for distro kernels (a \
             `source = {{ debian-image = ... }}` entry in kforge.toml), whose headers package lacks the Rust metadata",
            kernel.id
        ),
        "for kforge's own kernels use `cargo xtask dist` (release archives) or `cargo xtask sdk`",
    )
}

/// The `description` of a driver's Cargo.toml.
fn cargo_description(dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let value: toml::Value = toml::from_str(&fs_err::read_to_string(&manifest)?)
        .with_context(|| format!("cannot parse {}", manifest.display()))?;
    value
        .get("package")
        .and_then(|package| package.get("description"))
        .and_then(|description| description.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            error::user(format!("{} has no package.description (the packages' description)", manifest.display()))
        })
}
