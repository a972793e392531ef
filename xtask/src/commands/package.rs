//! `cargo xtask package`: Debian packages for a distro kernel (linux-librust, DKMS and prebuilt-module packages), lintian-checked, and with `--prove` installed with apt and built with DKMS in a fresh root.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::{Context, GlobalArgs};
use crate::installed::InstalledModules;
use crate::matrix::{self, Cell, RunOptions};
use crate::package::{self, PackagedDriver, build, deb, proof, tools};
use crate::project::{BootMethod, BootMode, KernelEntry, KernelSource, Profile};
use crate::report::model::Status;
use crate::secureboot::{self, SigningKey};
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
    /// The Maintainer field, `Full Name <address>` (default: a driver's `[package.metadata.kforge]
    /// maintainer` for its packages, else DEBFULLNAME and DEBEMAIL, else kforge's).
    #[arg(long)]
    pub maintainer: Option<String>,
    /// Then prove the install: in a fresh Debian root, apt installs Debian's headers,
    /// linux-librust and the first driver's DKMS package, and `dkms install` builds it.
    #[arg(long)]
    pub prove: bool,
    /// Sign the modules of the `kforge-<driver>-modules-<release>` packages with the kernel's
    /// sign-file and the project key: Secure Boot's db key (`KFORGE_SECURE_BOOT_KEYS`, else
    /// kforge.toml's `[boot] secure-boot-keys`, else the generated one).
    #[arg(long, conflicts_with = "sign_key")]
    pub sign_modules: bool,
    /// Sign them with this private key instead (a MOK key of your own; with --sign-cert).
    #[arg(long, requires = "sign_cert", value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// The certificate of --sign-key (PEM), the one to enrol with `mokutil --import`.
    #[arg(long, requires = "sign_key", value_name = "CERT")]
    pub sign_cert: Option<PathBuf>,
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
    if args.prove && !arches.iter().any(|arch| package::is_native(arch)) {
        return Err(error::user(format!(
            "--prove installs and boots the packages of this machine's architecture, and --arch leaves it out; add --arch {}",
            crate::arch::Arch::host().map(|arch| arch.name).unwrap_or("<this machine's arch>")
        )));
    }
    let all = crate::driver::discover(&context.repo)?;
    let drivers = match &args.driver {
        Some(_) => context.drivers(args.driver.as_deref())?,
        None => all.into_iter().filter(|driver| driver.meta.module.is_some()).collect(),
    };
    let options = global.install_options();
    let signing = signing_key(&args, &context, &options)?;
    let pins = tools::ToolPins::load(&context.repo)?;
    let tools_root = tools::ready(&pins, &options)?;
    let ready = pipeline::ready_kernel(&context.repo, &kernel, &arches, &options)?;
    if let Some(key) = &signing {
        // Before any build: the key must open and belong to the certificate.
        secureboot::check_pair(&ready.toolchain.sandbox()?, key)?;
    }
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
        let request = build::Request {
            repo: &context.repo,
            work: &context.output.join("package"),
            kernel: &kernel,
            image,
            debian,
            arch,
            drivers: &drivers,
            ready: &ready,
            tools_root: &tools_root,
            signing: signing.as_ref(),
            maintainer: &maintainer,
            given_maintainer: args.maintainer.as_deref(),
            epoch,
            out: &args.out,
        };
        let built = build::build_arch(&request)?;
        let build::ArchPackages { cell, release, work, planned, debs, packaged } = built;
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
        // The proof root is the build machine's architecture.
        if args.prove && !proven && package::is_native(arch) {
            proven = true;
            let Some(first) = packaged.first() else {
                return Err(error::user("--prove needs a driver with a module of its own (--driver fifo)"));
            };
            let sandbox = ready.toolchain.sandbox()?;
            let proof =
                Proof { pins: &pins, options: &options, debian, release: &release, work: &work, sandbox: &sandbox };
            prove(&context, &kernel, arch, &proof, (&planned, &debs), first)?;
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

/// The key the modules packages are signed with, if signing was asked for:
/// `--sign-key`/`--sign-cert` (checked readable here, before anything is
/// built), or with `--sign-modules` the project's Secure Boot db key.
fn signing_key(
    args: &PackageArgs,
    context: &Context,
    options: &crate::toolchain::install::InstallOptions,
) -> Result<Option<SigningKey>> {
    if let (Some(key), Some(cert)) = (&args.sign_key, &args.sign_cert) {
        let pair = SigningKey { key: key.clone(), cert: cert.clone() };
        pair.check_readable()?;
        return Ok(Some(pair));
    }
    if !args.sign_modules {
        return Ok(None);
    }
    let keys = pipeline::check_secure_boot(&context.repo, true, &context.project.boot, options)?
        .ok_or_else(|| error::user("the project's Secure Boot key set could not be made ready"))?;
    Ok(Some(keys.signing_key()))
}

/// What the install proof of one arch works with.
struct Proof<'a> {
    pins: &'a tools::ToolPins,
    options: &'a crate::toolchain::install::InstallOptions,
    debian: &'a crate::project::DebianImageArch,
    release: &'a str,
    work: &'a Path,
    /// The toolchain's sandbox: its binutils normalise the modules for the comparison.
    sandbox: &'a crate::sandbox::Sandbox,
}

/// Runs the install proof for one driver, then boots the distro's kernel with
/// the module DKMS built and installed, and prints what it found.
fn prove(
    context: &Context,
    kernel: &KernelEntry,
    arch: &'static crate::arch::Arch,
    proof: &Proof<'_>,
    (planned, debs): (&[deb::DebPackage], &[PathBuf]),
    driver: &PackagedDriver,
) -> Result<()> {
    let Proof { pins, options, debian, release, work, sandbox } = *proof;
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
    // DKMS may have installed it compressed: compare the decompressed bytes.
    let dkms_module = work.join("dkms-module.ko");
    fs_err::write(&dkms_module, &result.module)?;
    let normalized = proof::normalized_comparison(sandbox, &dkms_module, &driver.ko, &work.join("compare"))?;
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
            "apt + dkms built {} in {:.0} s; vermagic `{}`; {comparison}; {normalized}; logs in {}",
            plan.ko_name,
            result.seconds,
            result.vermagic.trim(),
            result.results.display()
        ),
    );
    let summary = format!(
        "release: {release}\nmodule: {}\nvermagic: {}\ncomparison: {comparison}\nnormalized: {normalized}\nseconds: {:.0}\n",
        result.module_path.display(),
        result.vermagic.trim(),
        result.seconds
    );
    fs_err::write(result.results.join("summary.txt"), &summary)?;
    let booted = boot_installed(context, kernel, arch, driver, release, &result.tree, options, &work.join("boot"))?;
    fs_err::write(result.results.join("summary.txt"), summary + &booted)?;
    Ok(())
}

/// Boots the distro's own kernel with the modules the proof installed
/// (`tree`): /init loads the driver's module with modprobe from
/// /lib/modules/<release> and runs the driver's tests. A failed or errored
/// test, or a load that did not pass, is an error (skips, such as KUnit
/// suites on a kernel without CONFIG_KUNIT, are not). Returns the summary's boot line.
#[allow(clippy::too_many_arguments)]
fn boot_installed(
    context: &Context,
    kernel: &KernelEntry,
    arch: &'static crate::arch::Arch,
    driver: &PackagedDriver,
    release: &str,
    tree: &Path,
    options: &crate::toolchain::install::InstallOptions,
    out: &Path,
) -> Result<String> {
    let cell = Cell { kernel: kernel.clone(), arch, profile: Profile::Release };
    let run_options = RunOptions {
        repo: context.repo.clone(),
        output: out.to_path_buf(),
        drivers: vec![driver.driver.clone()],
        jobs: pipeline::default_jobs(),
        boot: context.project.boot.clone(),
        boot_mode: BootMode { method: BootMethod::Direct, secure_boot: false },
        install: options.clone(),
        installed_modules: Some(InstalledModules { release: release.to_string(), tree: tree.to_path_buf() }),
    };
    ui::status(
        "Booting",
        format!(
            "{} with {} from the installed packages (modprobe from /lib/modules/{release})",
            cell.label(),
            driver.driver.name
        ),
    );
    let results = matrix::run(std::slice::from_ref(&cell), &run_options)?;
    let [json, ..] = results.write(out)?;
    let Some(booted) = results.cells.first() else {
        return Err(error::user(format!("the boot of {} with the installed modules gave no result", cell.label())));
    };
    let load = format!("{}.load", driver.driver.name);
    let not_passed: Vec<String> = booted
        .tests
        .iter()
        .filter(|test| matches!(test.status, Status::Fail | Status::Error))
        .map(|test| format!("{} {}", test.name, test.status.as_str()))
        .collect();
    let loaded = booted.tests.iter().any(|test| test.name == load && test.status == Status::Pass);
    if booted.status != Status::Pass || !not_passed.is_empty() || !loaded {
        return Err(error::user_hint(
            format!(
                "{} with the DKMS-built {} did not pass: {}{}",
                cell.label(),
                driver.driver.name,
                booted.message.clone().unwrap_or_else(|| booted.status.as_str().to_string()),
                if not_passed.is_empty() { String::new() } else { format!(" ({})", not_passed.join(", ")) }
            ),
            format!("see {} and the console log {}", json.display(), booted.log),
        ));
    }
    let line = format!(
        "boot: {} with the installed modules: {} passed (modprobe loaded {} from /lib/modules/{release}), boot {:.1} s\n",
        cell.label(),
        booted.totals.pass,
        driver.driver.meta.module.clone().unwrap_or_default(),
        booted.timings.boot_seconds
    );
    ui::status("Booted", line.trim_end().trim_start_matches("boot: "));
    Ok(line)
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
