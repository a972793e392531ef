//! Building one arch's packages for a distro kernel: its kernel build (the regenerated Rust metadata), the drivers (signed when asked), the package plan, dpkg-deb and lintian. `cargo xtask package` and `cargo xtask dist` both come here.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::{PackagedDriver, deb, tools};
use crate::arch::Arch;
use crate::driver::Driver;
use crate::jobserver::Parallel;
use crate::pipeline::{self, ReadyKernel};
use crate::project::{DebianImage, DebianImageArch, KernelEntry};
use crate::secureboot::SigningKey;
use crate::{error, modsign, package, progress};

/// What one arch's packages are built from.
pub struct Request<'a> {
    pub repo: &'a Path,
    /// Where each cell's work directory goes (`<work>/<kernel>-<arch>`).
    pub work: &'a Path,
    pub kernel: &'a KernelEntry,
    pub image: &'a DebianImage,
    pub debian: &'a DebianImageArch,
    pub arch: &'static Arch,
    pub drivers: &'a [Driver],
    pub ready: &'a ReadyKernel,
    pub tools_root: &'a tools::ToolsRoot,
    /// Sign the modules packages' modules with this key.
    pub signing: Option<&'a SigningKey>,
    /// linux-librust's Maintainer (`package::maintainer`).
    pub maintainer: &'a str,
    /// `--maintainer`, which also overrides each driver's own (`package::driver_maintainer`).
    pub given_maintainer: Option<&'a str>,
    pub epoch: u64,
    /// Where the .deb files go.
    pub out: &'a Path,
}

/// One arch's built packages.
pub struct ArchPackages {
    /// `<kernel>-<arch>`.
    pub cell: String,
    /// `KERNELRELEASE` of the distro's kernel.
    pub release: String,
    pub work: PathBuf,
    pub planned: Vec<deb::DebPackage>,
    /// The .deb files, in the order of `planned`.
    pub debs: Vec<PathBuf>,
    pub packaged: Vec<PackagedDriver>,
}

/// Builds the kernel metadata and drivers of one arch and its packages (not yet lintian-checked).
pub fn build_arch(request: &Request<'_>) -> Result<ArchPackages> {
    let Request { repo, kernel, image, debian, arch, drivers, ready, tools_root, signing, maintainer, epoch, .. } =
        *request;
    let (active, skipped) = pipeline::ready_arch(repo, kernel, arch, ready, drivers)?;
    let (toolchain, source) = (&ready.toolchain, &ready.source);
    for (driver, reason) in skipped {
        progress::status("Skipping", format!("{} on {}: {reason}", driver.name, arch.name));
    }
    let plan = pipeline::kernel_plan(repo, kernel, arch, toolchain, &active)?;
    let cell = format!("{}-{}", kernel.id, arch.name);
    let log = request.work.join("logs").join(format!("kernel-{cell}.log"));
    let parallel = Parallel::Jobs(pipeline::default_jobs());
    let build = pipeline::build_kernel(&plan, toolchain, source, &log, parallel)?;
    let release = build
        .make_vars
        .iter()
        .find_map(|var| var.strip_prefix("KERNELRELEASE="))
        .map(str::to_string)
        .ok_or_else(|| error::user(format!("the build of {cell} records no KERNELRELEASE")))?;
    let work = request.work.join(&cell);
    let built = pipeline::build_drivers(&active, arch, toolchain, source, &build, &work.join("drivers"), parallel)?;
    let built = match signing {
        Some(key) => {
            progress::status("Signing", format!("the modules of {cell} with {}", key.cert.display()));
            modsign::sign_drivers(toolchain, &build, key, &built, &work.join("signed"))?.0
        }
        None => built,
    };
    let mut packaged = Vec::new();
    for item in &built {
        let Some(module) = item.driver.meta.module.as_ref() else { continue };
        let ko = item.modules.iter().find(|file| &file.name == module).map(|file| file.ko.clone());
        let ko = ko.ok_or_else(|| error::user(format!("driver {} built no {module}.ko", item.driver.name)))?;
        packaged.push(PackagedDriver {
            description: cargo_description(&item.driver.dir)?,
            maintainer: package::driver_maintainer(request.given_maintainer, &item.driver)?,
            driver: item.driver.clone(),
            ko,
        });
    }
    let sandbox = tools_root.sandbox()?;
    let refusal = package::librust_refusal(arch, toolchain);
    let proc_macros = if package::is_native(arch) {
        package::strip_proc_macros(&sandbox, &build.dir, &work.join("proc-macros"))?
    } else if refusal.is_none() {
        progress::status("Building", format!("the proc-macro libraries of {cell} for {} machines", arch.name));
        package::cross::proc_macros(toolchain, &source.dir, &build, arch, &work.join("cross-proc-macros"))?
    } else {
        Vec::new()
    };
    // The root's own C library (a multi-arch root records `libc6:amd64`): the proc macros link it.
    let installed = toolchain.installed_packages()?;
    // For another arch, that arch's C library (`libc6:arm64`, which its rustc std pulls in).
    let own = format!("libc6:{}", arch.debian_arch);
    let libc = installed.iter().find(|(name, _)| **name == own).or_else(|| {
        installed.iter().find(|(name, _)| package::is_native(arch) && (*name == "libc6" || name.starts_with("libc6:")))
    });
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
        maintainer: maintainer.to_string(),
        epoch,
        kforge_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut planned = package::plan(&inputs)?;
    if let Some(reason) = refusal {
        progress::warn(format!("{cell}: no linux-librust and no DKMS packages: {reason}"));
        planned.retain(|item| item.name.starts_with("kforge-") && !item.name.ends_with("-dkms"));
    }
    let mut debs = Vec::new();
    for item in &planned {
        let path = deb::build(&sandbox, item, request.out, epoch)?;
        progress::status("Packaged", path.display().to_string());
        debs.push(path);
    }
    Ok(ArchPackages { cell, release, work, planned, debs, packaged })
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
