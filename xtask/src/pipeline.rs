//! The stages every command shares: a verified toolchain, a source tree, a configured and built kernel, built drivers, an image.
//!
//! Every command but `test` goes through `ready_kernel` then `prepare_cell`;
//! `matrix` runs the same stages per cell. Each stage tags its errors with the
//! category a failed cell reports.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::arch::Arch;
use crate::driver::{self, BuiltDriver, Driver};
use crate::jobserver::Parallel;
use crate::kernel::build::{self as kbuild, KernelBuild, KernelPlan, PlanKind};
use crate::kernel::config;
use crate::kernel::distro;
use crate::kernel::source::{self, SourceTree};
use crate::project::{BootSettings, KernelEntry, KernelSource, Profile};
use crate::stage::{Category, StageContext};
use crate::toolchain::install::InstallOptions;
use crate::toolchain::{Provider, Toolchain, resolve, verify};
use crate::toolroot::ToolRoot;
use crate::{disk, error, image, lock, modsign, progress, qemu, secureboot};

/// Loads the toolchain, installs it if missing, and verifies every pin.
pub fn ready_toolchain(repo: &Path, id: &str, options: &InstallOptions) -> Result<Toolchain> {
    let toolchain = Toolchain::load(repo, id)?;
    lock::check_inputs_if_locked(repo).stage(Category::Toolchain, "refused by --locked")?;
    toolchain
        .provider()
        .install(&toolchain, options)
        .stage(Category::Toolchain, format!("toolchain {id} could not be installed"))?;
    let report =
        verify::verify(&toolchain).stage(Category::Toolchain, format!("toolchain {id} could not be verified"))?;
    if !report.ok {
        let message = format!("toolchain {id} does not match its pins:\n  {}", report.mismatches().join("\n  "));
        let hint = match toolchain.spec.provider {
            Provider::Debian => format!("reinstall it: cargo xtask toolchain install --force {id}"),
            _ => format!("fix each line as it says, then check again: cargo xtask toolchain verify {id}"),
        };
        return Err(error::user_hint(message, hint))
            .stage(Category::Toolchain, format!("toolchain {id} failed verification"));
    }
    lock::check_root_if_locked(repo, &toolchain)
        .stage(Category::Toolchain, format!("toolchain {id} differs from kforge.lock"))?;
    progress::detail(format!("toolchain {id} verified ({} checks)", report.checks.len()));
    Ok(toolchain)
}

/// Fetches/unpacks the kernel's source.
pub fn ready_source(kernel: &KernelEntry, toolchain: &Toolchain) -> Result<SourceTree> {
    source::prepare(kernel, toolchain)
        .stage(Category::Infrastructure, format!("source of kernel {} is unavailable", kernel.id))
}

/// Why a whole cell cannot run, if it cannot: its toolchain cannot serve the
/// arch (`[unsupported-arches]`), or a distro kernel has no packages for it.
fn cell_skip_reason(kernel: &KernelEntry, arch: &Arch, toolchain: &Toolchain) -> Option<String> {
    if let Some(reason) = toolchain.spec.unsupported_arches.get(arch.name) {
        return Some(format!("toolchain {} cannot serve {}: {reason}", toolchain.id(), arch.name));
    }
    distro::arch_skip_reason(kernel, arch)
}

/// What every command that builds a kernel needs before it builds: a ready
/// toolchain and source, reached the same way by every command.
pub struct ReadyKernel {
    pub toolchain: Toolchain,
    pub source: SourceTree,
}

/// The one prepare path of every command that builds a kernel (`test`/`run`
/// through `matrix`, and `kernel`, `image`, `drivers`, `sdk`, `dist`,
/// `package`, `rust-analyzer`): first refuse any of `arches` whose cell is a
/// skip (from the toolchain's spec alone, before anything is installed), then
/// ready the toolchain (`--locked` included) and the source. Each arch then
/// goes through `ready_arch`.
pub fn ready_kernel(
    repo: &Path,
    kernel: &KernelEntry,
    arches: &[&'static Arch],
    options: &InstallOptions,
) -> Result<ReadyKernel> {
    refuse_skipped_cells(repo, kernel, arches)?;
    let toolchain = ready_toolchain(repo, &kernel.toolchain, options)?;
    let source = ready_source(kernel, &toolchain)?;
    Ok(ReadyKernel { toolchain, source })
}

/// The first refusal of the prepare path, which needs nothing installed: an
/// arch whose cell `test` reports as a skip is refused with the same reason.
/// `kernel build --dry-run` takes only this step.
pub fn refuse_skipped_cells(repo: &Path, kernel: &KernelEntry, arches: &[&'static Arch]) -> Result<()> {
    for arch in arches {
        if let Some(reason) = planned_skip_reason(repo, kernel, arch)? {
            return Err(error::user_hint(
                format!("kernel {} cannot be built for {}: {reason}", kernel.id, arch.name),
                "`cargo xtask test` reports this cell as a skip for the same reason; choose another --arch or --kernel",
            ))
            .stage(Category::Toolchain, format!("kernel {} on {} is refused", kernel.id, arch.name));
        }
    }
    Ok(())
}

/// The second step of the prepare path, per arch: the toolchain rules (the
/// same refusal `test` makes), then the drivers that can run on this cell and
/// the skip reasons of those that cannot.
pub fn ready_arch(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &Arch,
    ready: &ReadyKernel,
    drivers: &[Driver],
) -> Result<DriverSplit> {
    check_toolchain_rules(repo, kernel, arch, &ready.toolchain, &ready.source)?;
    Ok(split_drivers(drivers, arch, kernel))
}

/// How far [`prepare_cell`] takes a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Through {
    /// The built kernel (`kernel build`, `sdk`, `rust-analyzer`).
    Kernel,
    /// The kernel and the packages' modules, unsigned (`drivers build`).
    Drivers,
    /// The kernel, the modules (signed for Secure Boot) and the initramfs
    /// (`run`, `image`, `dist`).
    Initramfs,
}

/// One cell for [`prepare_cell`]: which, with what, into where, how far.
pub struct CellRequest<'a> {
    pub repo: &'a Path,
    pub kernel: &'a KernelEntry,
    pub arch: &'static Arch,
    pub profile: Profile,
    /// From [`ready_kernel`], which refused the cell's planned skips.
    pub ready: &'a ReadyKernel,
    /// The selected packages; those that cannot run on this cell are skipped.
    pub drivers: &'a [Driver],
    /// A Secure Boot cell's key set: its kernel trusts the db certificate and
    /// its modules are signed with the db key.
    pub keys: Option<&'a secureboot::KeySet>,
    /// The cell's work directory: `kernel-build.log`, `drivers/`, `signed/`
    /// and, unless `initramfs` names another file, `initramfs.cpio.gz`.
    pub dir: &'a Path,
    /// Where the initramfs goes instead of `dir/initramfs.cpio.gz`.
    pub initramfs: Option<&'a Path>,
    /// Strip the modules' debug information (`dist` without `--keep-debug`),
    /// before signing, which stripping would undo.
    pub strip_modules: bool,
    pub through: Through,
}

/// What [`prepare_cell`] made.
pub struct PreparedCell {
    /// The packages that run on this cell, and why each other one does not.
    pub active: Vec<Driver>,
    pub skipped: Vec<(Driver, String)>,
    pub plan: KernelPlan,
    pub kernel: KernelBuild,
    /// The packages' builds (signed for Secure Boot); empty through `Kernel`.
    pub drivers: Vec<BuiltDriver>,
    /// The initramfs, through `Initramfs`.
    pub initramfs: Option<PathBuf>,
}

/// The one path from a ready toolchain and source to a cell's kernel, modules
/// and initramfs, for every command but `test` (whose `matrix` runs the same
/// stages per cell, on one jobserver): the toolchain rules and the packages'
/// skips ([`ready_arch`]), the cell's kernel plan (the Secure Boot sibling
/// with `keys`), then each stage up to `through`.
pub fn prepare_cell(request: &CellRequest<'_>) -> Result<PreparedCell> {
    let (repo, kernel, arch, ready) = (request.repo, request.kernel, request.arch, request.ready);
    let (toolchain, source) = (&ready.toolchain, &ready.source);
    let (active, skipped) = ready_arch(repo, kernel, arch, ready, request.drivers)?;
    let plan = cell_kernel_plan(repo, kernel, arch, request.profile, toolchain, &active, request.keys)?;
    let parallel = Parallel::Jobs(default_jobs());
    let kernel_build = build_kernel(&plan, toolchain, source, &request.dir.join("kernel-build.log"), parallel)?;
    let mut prepared =
        PreparedCell { active, skipped, plan, kernel: kernel_build, drivers: Vec::new(), initramfs: None };
    if request.through == Through::Kernel {
        return Ok(prepared);
    }
    let mut built = build_drivers(
        &prepared.active,
        arch,
        toolchain,
        source,
        &prepared.kernel,
        &request.dir.join("drivers"),
        parallel,
    )?;
    if request.strip_modules {
        crate::dist::strip_modules(toolchain, &mut built, &request.dir.join("stripped"))?;
    }
    if request.through == Through::Drivers {
        prepared.drivers = built;
        return Ok(prepared);
    }
    let (built, probes) = sign_modules(toolchain, &prepared.kernel, request.keys, built, request.dir)?;
    let out = request.initramfs.map(Path::to_path_buf).unwrap_or_else(|| request.dir.join("initramfs.cpio.gz"));
    prepared.initramfs = Some(build_image(toolchain, arch, repo, built.clone(), probes.as_ref(), &out)?);
    prepared.drivers = built;
    Ok(prepared)
}

/// Why the cell of `kernel` on `arch` is a skip, read from the toolchain's
/// spec alone (nothing is installed).
pub fn planned_skip_reason(repo: &Path, kernel: &KernelEntry, arch: &Arch) -> Result<Option<String>> {
    let toolchain = Toolchain::load(repo, &kernel.toolchain)?;
    Ok(cell_skip_reason(kernel, arch, &toolchain))
}

/// Refuses a kernel/toolchain/arch triple that breaks a rule of
/// `toolchains/rules.toml` (min-tool-version.sh included), before anything is built.
pub fn check_toolchain_rules(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &Arch,
    toolchain: &Toolchain,
    source: &SourceTree,
) -> Result<()> {
    resolve::check_pair(repo, &source.dir, arch, &toolchain.spec, &format!("--kernel {}", kernel.id)).stage(
        Category::Toolchain,
        format!("kernel {} with toolchain {} on {} is refused before building", kernel.id, toolchain.id(), arch.name),
    )
}

/// The `release` kernel plan for `kernel` on `arch` (see `profile_kernel_plan`).
pub fn kernel_plan(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &'static Arch,
    toolchain: &Toolchain,
    drivers: &[Driver],
) -> Result<KernelPlan> {
    profile_kernel_plan(repo, kernel, arch, Profile::Release, toolchain, drivers)
}

/// The kernel plan for `kernel` on `arch` in `profile`, with the packages'
/// config needs merged last. Those needs are the union of every package the
/// default matrix runs and of `drivers` (that can run on this cell), so that
/// selecting drivers (`--driver`, `--suite`) never changes the kernel; only a
/// package outside the matrix whose kconfig adds options (kernel-doctests)
/// makes a different kernel.
pub fn profile_kernel_plan(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &'static Arch,
    profile: Profile,
    toolchain: &Toolchain,
    drivers: &[Driver],
) -> Result<KernelPlan> {
    plan_with_trust(repo, kernel, arch, profile, toolchain, drivers, None)
}

/// The kernel of a Secure Boot cell: `profile_kernel_plan`'s kernel that also
/// trusts the key set's db certificate for module signatures
/// (CONFIG_SYSTEM_TRUSTED_KEYS). It is a sibling of the plain kernel in the
/// same lineage, so it is built from a copy of that one: Kbuild remakes the
/// certificate list and relinks.
pub fn secure_boot_kernel_plan(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &'static Arch,
    profile: Profile,
    toolchain: &Toolchain,
    drivers: &[Driver],
    keys: &secureboot::KeySet,
) -> Result<KernelPlan> {
    if let KernelSource::DebianImage(_) = &kernel.source {
        return Err(error::user(format!(
            "kernel {} is a distribution's built kernel: it cannot be made to trust the project's module-signing certificate, so it has no Secure Boot cell",
            kernel.id
        )));
    }
    let certificate = fs_err::read_to_string(keys.file("db.crt"))?;
    plan_with_trust(repo, kernel, arch, profile, toolchain, drivers, Some(certificate))
}

fn plan_with_trust(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &'static Arch,
    profile: Profile,
    toolchain: &Toolchain,
    drivers: &[Driver],
    trusted_certificate: Option<String>,
) -> Result<KernelPlan> {
    if let KernelSource::DebianImage(image) = &kernel.source {
        return distro::plan(repo, kernel, image, arch, toolchain);
    }
    let mut extras = Vec::new();
    let mut needing: Vec<Driver> = matrix_drivers(repo, arch, kernel)?;
    for driver in drivers {
        if !needing.iter().any(|known| known.name == driver.name) {
            needing.push(driver.clone());
        }
    }
    needing.retain(|driver| !driver.meta.kconfig.is_empty());
    if !needing.is_empty() {
        let lines: Vec<String> = needing.iter().flat_map(|driver| driver.meta.kconfig.iter().cloned()).collect();
        let names: Vec<&str> = needing.iter().map(|driver| driver.name.as_str()).collect();
        extras.push(config::fragment_from_lines("drivers.config", &format!("drivers {}", names.join(", ")), &lines));
    }
    if trusted_certificate.is_some() {
        let line = format!("CONFIG_SYSTEM_TRUSTED_KEYS=\"{}\"", kbuild::TRUSTED_CERT_PATH);
        extras.push(config::fragment_from_lines(
            "secure-boot.config",
            "the Secure Boot key set's db certificate",
            &[line],
        ));
    }
    let fragments = config::fragments(repo, arch, profile, &extras)?;
    let identity = source::identity(&kernel.source)?;
    kbuild::plan(&kernel.id, arch, profile, toolchain, &identity, fragments, trusted_certificate)
}

/// The default matrix's packages (`[matrix] drivers`) that can run on this cell.
fn matrix_drivers(repo: &Path, arch: &Arch, kernel: &KernelEntry) -> Result<Vec<Driver>> {
    let project = crate::project::Project::load(repo)?;
    if project.matrix.drivers.is_empty() {
        return Ok(Vec::new());
    }
    let all = driver::discover(repo)?;
    let chosen = driver::select(&all, &project.matrix.drivers)
        .with_context(|| format!("in [matrix] drivers of {}", project.path.display()))?;
    Ok(split_drivers(&chosen, arch, kernel).0)
}

/// Configures and builds the kernel; prints whether anything was compiled.
pub fn build_kernel(
    plan: &KernelPlan,
    toolchain: &Toolchain,
    source: &SourceTree,
    log: &Path,
    parallel: Parallel<'_>,
) -> Result<KernelBuild> {
    progress::status("Building", format!("kernel {}/{} (log: {})", plan.kernel_id, plan.arch.name, log.display()));
    let started = std::time::Instant::now();
    let build = match &plan.kind {
        PlanKind::Distro(distro_plan) => distro::build(plan, distro_plan, toolchain, source, log, parallel)?,
        PlanKind::Own(own) => kbuild::build(plan, own, toolchain, source, log, parallel)?,
    };
    let wall = started.elapsed().as_secs_f64();
    if build.compiled_steps == 0 {
        progress::status(
            "Fresh",
            format!(
                "kernel {}/{}: up to date, nothing compiled ({})",
                plan.kernel_id,
                plan.arch.name,
                build.dir.display()
            ),
        );
    } else {
        progress::status(
            "Built",
            format!(
                "kernel {}/{}: {} steps in {wall:.0} s wall, {:.0} s CPU ({})",
                plan.kernel_id,
                plan.arch.name,
                build.compiled_steps,
                build.cpu_seconds,
                build.dir.display()
            ),
        );
    }
    if let Some(counts) = &build.ccache {
        progress::status("ccache", format!("kernel {}/{}: {}", plan.kernel_id, plan.arch.name, counts.describe()));
    }
    Ok(build)
}

/// Builds each driver for a kernel (or reuses its cached build); the first failure stops (category build).
pub fn build_drivers(
    drivers: &[Driver],
    arch: &Arch,
    toolchain: &Toolchain,
    source: &SourceTree,
    kernel: &KernelBuild,
    out_dir: &Path,
    parallel: Parallel<'_>,
) -> Result<Vec<BuiltDriver>> {
    let mut built = Vec::new();
    for item in drivers {
        built.push(driver::build(item, arch, toolchain, source, kernel, out_dir, parallel)?);
    }
    Ok(built)
}

/// Writes the initramfs for a cell; `probes` (a Secure Boot cell's) go in as `/kforge/modsig/`.
pub fn build_image(
    toolchain: &Toolchain,
    arch: &Arch,
    repo: &Path,
    drivers: Vec<BuiltDriver>,
    probes: Option<&modsign::Probes>,
    out: &Path,
) -> Result<PathBuf> {
    build_image_with(
        toolchain,
        arch,
        repo,
        drivers,
        probes.map(modsign::Probes::initramfs_files).unwrap_or_default(),
        out,
    )
}

/// `build_image` with more files for the base segment (the probes, a tree of installed modules).
pub fn build_image_with(
    toolchain: &Toolchain,
    arch: &Arch,
    repo: &Path,
    drivers: Vec<BuiltDriver>,
    extra_files: Vec<(String, Vec<u8>)>,
    out: &Path,
) -> Result<PathBuf> {
    let input =
        image::ImageInput { busybox: toolchain.busybox(arch), init: repo.join("images/init.sh"), drivers, extra_files };
    image::write_initramfs(&input, out)
        .with_context(|| format!("failed to write {}", out.display()))
        .stage(Category::Image, format!("initramfs for {} could not be built", arch.name))?;
    Ok(out.to_path_buf())
}

/// Before anything is built: with Secure Boot on, the disk-image tools are
/// installed and the key set is readable and consistent (a bad key must not
/// cost a kernel build first). Returns the key set.
pub fn check_secure_boot(
    repo: &Path,
    secure_boot: bool,
    boot: &BootSettings,
    install: &InstallOptions,
) -> Result<Option<secureboot::KeySet>> {
    if !secure_boot {
        return Ok(None);
    }
    let tools = disk::ready_tools(repo, install)?;
    let user = secureboot::user_keys(repo, std::env::var_os(secureboot::KEYS_ENV), boot.secure_boot_keys.as_deref());
    Ok(Some(secureboot::ready_keys(&tools, user)?))
}

/// The kernel plan of a cell: `secure_boot_kernel_plan` when it boots under
/// Secure Boot (`keys`), else `profile_kernel_plan`.
pub fn cell_kernel_plan(
    repo: &Path,
    kernel: &KernelEntry,
    arch: &'static Arch,
    profile: Profile,
    toolchain: &Toolchain,
    drivers: &[Driver],
    keys: Option<&secureboot::KeySet>,
) -> Result<KernelPlan> {
    match keys {
        Some(keys) => secure_boot_kernel_plan(repo, kernel, arch, profile, toolchain, drivers, keys),
        None => profile_kernel_plan(repo, kernel, arch, profile, toolchain, drivers),
    }
}

/// For a Secure Boot cell (`keys`): the packages' modules signed into
/// `dir/signed` and the signature probes for /init. Otherwise the builds as they are.
pub fn sign_modules(
    toolchain: &Toolchain,
    kernel: &KernelBuild,
    keys: Option<&secureboot::KeySet>,
    built: Vec<BuiltDriver>,
    dir: &Path,
) -> Result<(Vec<BuiltDriver>, Option<modsign::Probes>)> {
    let Some(keys) = keys else { return Ok((built, None)) };
    let count: usize = built.iter().map(|build| build.modules.len()).sum();
    progress::status("Signing", format!("{count} modules with the Secure Boot db key ({})", keys.dir.display()));
    modsign::sign_drivers(toolchain, kernel, &keys.signing_key(), &built, &dir.join("signed"))
        .stage(Category::Build, "the modules could not be signed for Secure Boot")
}

/// What a cell's UEFI disk is made of: its kernel, initramfs and package
/// builds (signed ones for Secure Boot), and the key set to sign the UKI
/// with (`check_secure_boot`'s), if any.
pub struct DiskRequest<'a> {
    pub repo: &'a Path,
    pub arch: &'a Arch,
    pub kernel: &'a KernelBuild,
    pub initrd: &'a Path,
    pub drivers: &'a [BuiltDriver],
    pub keys: Option<&'a secureboot::KeySet>,
    pub install: &'a InstallOptions,
}

/// Builds the cell's UEFI disk image at `out` (its UKI signed when the
/// request has keys); returns the disk-image tools root it used.
pub fn build_disk(request: &DiskRequest<'_>, out: &Path) -> Result<ToolRoot> {
    let tools = disk::ready_tools(request.repo, request.install)
        .stage(Category::Toolchain, "the disk-image tools are not usable")?;
    let input = disk::DiskInput {
        repo: request.repo,
        arch: request.arch,
        kernel_image: &request.kernel.image,
        initramfs: request.initrd,
        release: disk::kernel_release(&request.kernel.dir)?,
        drivers: request.drivers,
        signing: request.keys,
    };
    let work = out.with_extension("work");
    disk::build(&tools, &input, &work, out)
        .stage(Category::Image, format!("the disk image for {} could not be built", request.arch.name))?;
    crate::cache::remove_dir_if_exists(&work)?;
    Ok(tools)
}

/// Builds the cell's disk (`build_disk`, as `<dir>/disk.raw`) and this boot's
/// firmware variable store (the keys enrolled, for Secure Boot): the media of
/// a UEFI boot.
pub fn efi_media(request: &DiskRequest<'_>, dir: &Path) -> Result<qemu::EfiMedia> {
    let spec = disk::efi_spec(request.arch)?;
    let disk_path = dir.join("disk.raw");
    let tools = build_disk(request, &disk_path)?;
    let secure_boot = request.keys.is_some();
    let firmware = disk::firmware(&tools, spec, secure_boot).stage(Category::Toolchain, "UEFI firmware is missing")?;
    let vars = dir.join("efi-vars.fd");
    let vars = match (request.keys, &firmware.vars) {
        (Some(keys), Some(empty)) => {
            secureboot::enroll(&tools.sandbox()?, keys, empty, &vars)
                .stage(Category::Image, "the Secure Boot keys could not be enrolled")?;
            Some(vars)
        }
        (None, Some(empty)) => {
            fs_err::copy(empty, &vars)?;
            Some(vars)
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(error::user(format!(
                "{} has no firmware variable store to enrol Secure Boot keys into",
                request.arch.name
            )));
        }
    };
    Ok(qemu::EfiMedia {
        code: firmware.code,
        vars,
        disk: disk_path,
        machine_args: spec.args.iter().chain(if secure_boot { spec.secure_args } else { &[] }).copied().collect(),
    })
}

/// The drivers of a cell that can run, and those that cannot with the reason.
pub type DriverSplit = (Vec<Driver>, Vec<(Driver, String)>);

/// Drivers for a cell: those that can run, and skip reasons for those that cannot.
pub fn split_drivers(drivers: &[Driver], arch: &Arch, kernel: &KernelEntry) -> DriverSplit {
    let mut active = Vec::new();
    let mut skipped = Vec::new();
    for item in drivers {
        match item.skip_reason(arch, &kernel.version).or_else(|| distro_driver_skip_reason(item, kernel)) {
            Some(reason) => skipped.push((item.clone(), reason)),
            None => active.push(item.clone()),
        }
    }
    (active, skipped)
}

/// Why a driver cannot run on a distro kernel, if it cannot: modules the
/// kernel build itself makes, and options built into the kernel, do not
/// exist for a kernel kforge did not configure.
fn distro_driver_skip_reason(driver: &Driver, kernel: &KernelEntry) -> Option<String> {
    if !matches!(kernel.source, KernelSource::DebianImage(_)) {
        return None;
    }
    if !driver.meta.in_tree_modules.is_empty() {
        return Some(format!(
            "{} loads modules of a kforge kernel build ({}); kernel {} is Debian's image, used as built",
            driver.name,
            driver.meta.in_tree_modules.join(", "),
            kernel.id
        ));
    }
    if driver.meta.module.is_none() {
        return Some(format!(
            "{} has no module of its own (it needs options built into the kernel: {}); kernel {} is Debian's image, used as built",
            driver.name,
            driver.meta.kconfig.join(" "),
            kernel.id
        ));
    }
    None
}

/// Drivers as they can run on a built kernel: when its config has no
/// CONFIG_KUNIT (a distro's kernel), their KUnit suites are dropped and
/// returned as `(test name, skip reason)`.
pub fn without_missing_kunit(
    kernel: &KernelEntry,
    build: &KernelBuild,
    drivers: &[Driver],
) -> (Vec<Driver>, Vec<(String, String)>) {
    let mut drivers = drivers.to_vec();
    let mut skipped = Vec::new();
    if let Some(reason) = distro::kunit_off_reason(kernel, build) {
        for driver in &mut drivers {
            for suite in driver.meta.kunit_suites.drain(..) {
                skipped.push((format!("{}.{suite}", driver.name), reason.clone()));
            }
        }
    }
    (drivers, skipped)
}

/// Number of parallel make jobs: the session's `--jobs` (`KFORGE_JOBS`), else the number of CPUs.
pub fn default_jobs() -> usize {
    crate::session::current().jobs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_that_need_a_kforge_kernel_build_skip_on_a_distro_kernel() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let project = crate::project::Project::load(&repo).unwrap();
        let debian = project.kernel("debian-7.2").unwrap();
        let own = project.kernel("7.2").unwrap();
        let drivers = driver::discover(&repo).unwrap();
        let reason = |name: &str, kernel: &KernelEntry| {
            distro_driver_skip_reason(drivers.iter().find(|driver| driver.name == name).unwrap(), kernel)
        };
        assert_eq!(reason("fifo", debian), None);
        assert_eq!(reason("samples", own), None);
        let samples = reason("samples", debian).unwrap();
        assert!(samples.contains("loads modules of a kforge kernel build (samples/rust/rust_minimal.ko"), "{samples}");
        let doctests = reason("kernel-doctests", debian).unwrap();
        assert!(doctests.contains("has no module of its own"), "{doctests}");
    }
}
