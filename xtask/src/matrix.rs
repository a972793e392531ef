//! Runs a matrix of cells (kernel x arch) concurrently on one shared jobserver, boots each as soon as it is built, and evaluates KTAP into results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::arch::Arch;
use crate::driver::Driver;
use crate::jobserver::{Jobserver, Parallel};
use crate::kernel::config as kconfig;
use crate::kernel::source::SourceTree;
use crate::project::{BootMethod, BootMode, BootSettings, KernelEntry, Profile};
use crate::qemu::{self, BootEnd, BootSpec};
use crate::report::{CellResult, Results, RunSummary, Status, TestRecord, Timings, Totals};
use crate::stage::{self, Category};
use crate::toolchain::Toolchain;
use crate::toolchain::install::InstallOptions;
use crate::{console, disk, error, ktap, pipeline, process, progress};

/// One cell to run: a kernel on an arch, built and booted in a profile.
#[derive(Debug, Clone)]
pub struct Cell {
    pub kernel: KernelEntry,
    pub arch: &'static Arch,
    pub profile: Profile,
}

impl Cell {
    /// `<kernel>-<arch>-<profile>` (e.g. `7.2-x86_64-debug`): directory names and `--cell` ids.
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.kernel.id, self.arch.name, self.profile)
    }

    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.kernel.id, self.arch.name, self.profile)
    }

    /// The boot: CPUs (2, where the profile's kernel can start them) and memory.
    pub fn boot_spec<'a>(
        &self,
        boot: &'a BootSettings,
        devices: &'a [String],
        interactive: bool,
        nonce: &'a str,
    ) -> BootSpec<'a> {
        BootSpec {
            arch: self.arch,
            memory: self.profile.memory(boot),
            cpus: self.arch.boot_cpus(self.profile == Profile::Debug),
            devices,
            interactive,
            nonce,
            profile_words: self.profile.kernel_words(),
            profile_args: self.profile.qemu_args(self.arch),
        }
    }
}

/// Everything `run` needs besides the cells.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub repo: PathBuf,
    pub output: PathBuf,
    pub drivers: Vec<Driver>,
    /// Cores to keep busy: the jobserver's token count.
    pub jobs: usize,
    pub boot: BootSettings,
    /// Direct or through UEFI firmware (with or without Secure Boot).
    pub boot_mode: BootMode,
    pub install: InstallOptions,
    /// Modules installed from packages: loaded with modprobe from this tree
    /// instead of kforge's builds (`package --prove`'s boot).
    pub installed_modules: Option<crate::installed::InstalledModules>,
}

/// What cells of a run share: ready toolchains and source trees (or why not).
struct Shared {
    toolchains: BTreeMap<String, Result<Toolchain, String>>,
    sources: BTreeMap<String, Result<SourceTree, String>>,
}

/// A cell built and ready to boot.
struct Prepared {
    arch: &'static crate::arch::Arch,
    result: CellResult,
    boot: process::Cmd,
    active: Vec<Driver>,
    /// This boot's verdict-channel nonce.
    nonce: String,
    /// The CPUs the kernel must bring up (the debug profile's SMP guests), if any.
    required_cpus: Option<u32>,
    /// For a UEFI boot: whether the guest must see Secure Boot enabled.
    expect_secure_boot: Option<bool>,
    /// Under Secure Boot: the boot of the same disk with one byte of the UKI
    /// changed, which the firmware must refuse.
    tampered_boot: Option<process::Cmd>,
    /// Whether /init got the module-signature probes (a Secure Boot cell).
    module_probes: bool,
}

/// Runs every cell. Toolchains and sources are made ready first, one at a
/// time (they are mostly network and disk). Then every cell runs in its own
/// thread: a cell whose kernel must be built holds one jobserver token for its
/// build (a cell whose kernel is cached does not wait for one), its makes borrow more, so
/// builds of different cells fill each other's serial phases (linking, the
/// Rust core crate) and the machine's cores stay busy. A boot starts as soon
/// as its cell is built, alongside the other builds.
pub fn run(cells: &[Cell], options: &RunOptions) -> Result<Results> {
    let started = Instant::now();
    let mut shared = Shared { toolchains: BTreeMap::new(), sources: BTreeMap::new() };
    for cell in cells {
        process::check_interrupt()?;
        if pipeline::planned_skip_reason(&options.repo, &cell.kernel, cell.arch).is_ok_and(|reason| reason.is_some())
            || boot_skip_reason(cell.arch, options.boot_mode).is_some()
        {
            // A skip needs nothing installed; `prepare` records its reason.
            continue;
        }
        let toolchain = shared
            .toolchains
            .entry(cell.kernel.toolchain.clone())
            .or_insert_with(|| {
                pipeline::ready_toolchain(&options.repo, &cell.kernel.toolchain, &options.install)
                    .map_err(|err| error::render(&err))
            })
            .clone();
        if let (Ok(toolchain), false) = (toolchain, shared.sources.contains_key(&cell.kernel.id)) {
            let source = pipeline::ready_source(&cell.kernel, &toolchain);
            if source.as_ref().is_err_and(error::is_interrupted) {
                return Err(anyhow::Error::new(error::Interrupted));
            }
            shared.sources.insert(cell.kernel.id.clone(), source.map_err(|err| error::render(&err)));
        }
    }
    let jobserver = Jobserver::new(&options.output, options.jobs)?;
    let results = std::thread::scope(|scope| -> Result<Vec<CellResult>> {
        let handles: Vec<_> =
            cells.iter().map(|cell| scope.spawn(|| run_cell(cell, options, &shared, &jobserver))).collect();
        let mut results = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(Ok(result)) => results.push(result),
                Ok(Err(err)) if error::is_interrupted(&err) => {}
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(anyhow::anyhow!("a cell's thread panicked")),
            }
        }
        Ok(results)
    })?;
    process::check_interrupt()?;
    let wall_seconds = started.elapsed().as_secs_f64();
    Ok(Results::with_summary(results, RunSummary::new(wall_seconds, options.jobs)))
}

/// One cell, start to end. `Err` only for an interruption.
fn run_cell(cell: &Cell, options: &RunOptions, shared: &Shared, jobserver: &Jobserver) -> Result<CellResult> {
    let prepared = if kernel_cached(cell, options, shared) {
        // Only its drivers to compile: it need not queue behind other cells' kernel builds.
        prepare(cell, options, shared, Parallel::Shared(jobserver))
    } else {
        let _token = jobserver.acquire()?;
        prepare(cell, options, shared, Parallel::Shared(jobserver))
    };
    match prepared {
        Ok(Some(prepared)) => {
            // A fault in this cell's own output (full disk) fails this cell only.
            let fallback = prepared.result.clone();
            boot_and_evaluate(prepared, cell.profile.boot_timeout(&options.boot))
                .or_else(|err| crate::outdir::contain_cell_fault(fallback, err))
        }
        Ok(None) => Err(anyhow::Error::new(error::Interrupted)),
        Err(Failed(result)) => Ok(*result),
    }
}

/// Whether the cell's kernel build is already published in the cache.
fn kernel_cached(cell: &Cell, options: &RunOptions, shared: &Shared) -> bool {
    let Some(Ok(toolchain)) = shared.toolchains.get(&cell.kernel.toolchain) else {
        return false;
    };
    let (active, _) = pipeline::split_drivers(&options.drivers, cell.arch, &cell.kernel);
    pipeline::profile_kernel_plan(&options.repo, &cell.kernel, cell.arch, cell.profile, toolchain, &active)
        .is_ok_and(|plan| plan.entry.is_dir())
}

/// A cell that failed before booting, already turned into its result.
struct Failed(Box<CellResult>);

fn empty_result(cell: &Cell, dir: &Path, boot: BootMode) -> CellResult {
    CellResult {
        id: cell.id(),
        profile: cell.profile.as_str().to_string(),
        boot: boot.label().to_string(),
        arch: cell.arch.name.to_string(),
        kernel: cell.kernel.id.clone(),
        toolchain: cell.kernel.toolchain.clone(),
        status: Status::Pass,
        category: None,
        message: None,
        log: dir.join("console.log").display().to_string(),
        build_log: None,
        ktap: None,
        tests: Vec::new(),
        totals: Totals::default(),
        timings: Timings::default(),
    }
}

/// Why `arch` cannot boot the way `mode` asks (no UEFI firmware, or none
/// with Secure Boot): the cell is a skip, decided before anything is installed.
fn boot_skip_reason(arch: &Arch, mode: BootMode) -> Option<String> {
    match (mode.method, arch.efi) {
        (BootMethod::Efi, Err(reason)) => Some(reason.to_string()),
        (BootMethod::Efi, Ok(spec)) if mode.secure_boot && spec.secure_code.is_none() => Some(format!(
            "no Secure Boot on {}: Debian's {} has no Secure Boot build of the firmware",
            arch.name, spec.firmware_package
        )),
        _ => None,
    }
}

/// Turns a stage error into a failed cell (or passes an interruption up).
fn fail_cell(mut result: CellResult, err: anyhow::Error, log: Option<&Path>) -> Failed {
    let category = stage::category_of(&err).unwrap_or(Category::Infrastructure);
    result.status = Status::Error;
    result.category = Some(category);
    let rendered = error::render(&err);
    result.message = Some(rendered.trim_start_matches("error: ").to_string());
    if let Some(log) = log {
        result.build_log = Some(log.display().to_string());
    }
    progress::status("Failed", format!("{} ({})", result.id, category.as_str()));
    Failed(Box::new(result))
}

fn prepare(
    cell: &Cell,
    options: &RunOptions,
    shared: &Shared,
    parallel: Parallel<'_>,
) -> Result<Option<Prepared>, Failed> {
    let dir = options.output.join("cells").join(cell.id());
    let mut result = empty_result(cell, &dir, options.boot_mode);
    let started = Instant::now();
    if let Err(err) = crate::cache::remove_dir_if_exists(&dir).and_then(|_| Ok(fs_err::create_dir_all(&dir)?)) {
        return Err(fail_cell(result, err, None));
    }
    progress::status("Preparing", format!("cell {}", cell.label()));

    match pipeline::planned_skip_reason(&options.repo, &cell.kernel, cell.arch) {
        Ok(Some(reason)) => {
            progress::status("Skipped", format!("{}: {reason}", cell.id()));
            result.status = Status::Skip;
            result.message = Some(reason);
            return Err(Failed(Box::new(result)));
        }
        Ok(None) => {}
        Err(err) => return Err(fail_cell(result, err, None)),
    }
    if let Some(reason) = boot_skip_reason(cell.arch, options.boot_mode) {
        progress::status("Skipped", format!("{}: {reason}", cell.id()));
        result.status = Status::Skip;
        result.message = Some(reason);
        return Err(Failed(Box::new(result)));
    }

    let toolchain = match shared.toolchains.get(&cell.kernel.toolchain) {
        Some(Ok(toolchain)) => toolchain.clone(),
        other => {
            let message = match other {
                Some(Err(message)) => message.clone(),
                _ => "it was not prepared".to_string(),
            };
            let err = anyhow::anyhow!(message).context(stage::StageFailed {
                category: Category::Toolchain,
                message: format!("toolchain {} is not usable", cell.kernel.toolchain),
            });
            return Err(fail_cell(result, err, None));
        }
    };
    let source = match shared.sources.get(&cell.kernel.id) {
        Some(Ok(source)) => source.clone(),
        other => {
            let message = match other {
                Some(Err(message)) => message.clone(),
                _ => "it was not prepared".to_string(),
            };
            let err = anyhow::anyhow!(message).context(stage::StageFailed {
                category: Category::Infrastructure,
                message: format!("source of kernel {} is unavailable", cell.kernel.id),
            });
            return Err(fail_cell(result, err, None));
        }
    };

    if let Err(err) = pipeline::check_toolchain_rules(&options.repo, &cell.kernel, cell.arch, &toolchain, &source) {
        return Err(fail_cell(result, err, None));
    }

    let (active, skipped) = pipeline::split_drivers(&options.drivers, cell.arch, &cell.kernel);
    for (driver, reason) in &skipped {
        for test in ["load".to_string()].into_iter().chain(driver.test_names()).chain(["unload".to_string()]) {
            result.tests.push(TestRecord {
                name: format!("{}.{test}", driver.name),
                status: Status::Skip,
                reason: Some(reason.clone()),
                diagnostics: vec![],
                category: None,
            });
        }
    }

    let kernel_log = dir.join("kernel-build.log");
    let drivers_dir = dir.join("drivers");
    // `runnable`: the active drivers without the KUnit suites the kernel cannot run (their skips are recorded).
    let staged = (|| -> Result<(qemu::Media, Vec<String>, bool, Vec<Driver>)> {
        let keys =
            pipeline::check_secure_boot(&options.repo, options.boot_mode.secure_boot, &options.boot, &options.install)?;
        let plan = pipeline::cell_kernel_plan(
            &options.repo,
            &cell.kernel,
            cell.arch,
            cell.profile,
            &toolchain,
            &active,
            keys.as_ref(),
        )?;
        for missing in kconfig::missing_detectors(plan.fragments()) {
            result.tests.push(TestRecord {
                name: format!("kforge.detector.{}", missing.detector),
                status: Status::Skip,
                reason: Some(format!("{} (declared in {})", missing.reason, missing.origin)),
                diagnostics: vec![],
                category: None,
            });
        }
        let kernel = pipeline::build_kernel(&plan, &toolchain, &source, &kernel_log, parallel)?;
        result.timings.build_cpu_seconds = kernel.cpu_seconds;
        result.timings.ccache = kernel.ccache;
        let (runnable, kunit_skips) = pipeline::without_missing_kunit(&cell.kernel, &kernel, &active);
        for (name, reason) in kunit_skips {
            let skip =
                TestRecord { name, status: Status::Skip, reason: Some(reason), diagnostics: vec![], category: None };
            result.tests.push(skip);
        }
        let built =
            pipeline::build_drivers(&runnable, cell.arch, &toolchain, &source, &kernel, &drivers_dir, parallel)?;
        let (built, probes) = pipeline::sign_modules(&toolchain, &kernel, keys.as_ref(), built, &dir)?;
        let mut extra_files = probes.as_ref().map(crate::modsign::Probes::initramfs_files).unwrap_or_default();
        let built = match &options.installed_modules {
            Some(installed) => {
                let (built, tree) = crate::installed::substitute(built, installed, &dir.join("installed"))?;
                extra_files.extend(tree);
                built
            }
            None => built,
        };
        let initrd = pipeline::build_image_with(
            &toolchain,
            cell.arch,
            &options.repo,
            built.clone(),
            extra_files,
            &dir.join("initramfs.cpio.gz"),
        )?;
        let media = match options.boot_mode.method {
            BootMethod::Direct => qemu::Media::Direct { kernel: kernel.image.clone(), initrd },
            BootMethod::Efi => {
                let request = pipeline::DiskRequest {
                    repo: &options.repo,
                    arch: cell.arch,
                    kernel: &kernel,
                    initrd: &initrd,
                    drivers: &built,
                    keys: keys.as_ref(),
                    install: &options.install,
                };
                qemu::Media::Efi(pipeline::efi_media(&request, &dir)?)
            }
        };
        let mut devices: Vec<String> = Vec::new();
        for driver in &active {
            for device in &driver.meta.qemu_devices {
                if !devices.contains(device) {
                    devices.push(device.clone());
                }
            }
        }
        Ok((media, devices, probes.is_some(), runnable))
    })();
    result.timings.build_seconds = started.elapsed().as_secs_f64();
    result.build_log = Some(kernel_log.display().to_string());
    let (media, devices, module_probes, active) = match staged {
        Ok(staged) => staged,
        Err(err) if error::is_interrupted(&err) => return Ok(None),
        Err(err) => {
            let log = failed_log(&err, &kernel_log, &drivers_dir);
            return Err(fail_cell(result, err, Some(&log)));
        }
    };

    if let Some(qemu) = cell.arch.qemu() {
        let firmware_missing = qemu.bios.filter(|bios| !toolchain.root.join(bios.trim_start_matches('/')).is_file());
        if let Some(bios) = firmware_missing {
            let message = format!(
                "firmware {bios} for {} is missing from toolchain {}: add the package that ships it to toolchains/{}.toml and reinstall",
                cell.arch.name,
                toolchain.id(),
                toolchain.id()
            );
            let err = anyhow::Error::new(stage::StageFailed { category: Category::Toolchain, message });
            return Err(fail_cell(result, err, None));
        }
        if !toolchain.root.join("usr/bin").join(qemu.binary).is_file() {
            let message = format!(
                "{} is missing from toolchain {}: add the {} package to toolchains/{}.toml [qemu] and reinstall",
                qemu.binary,
                toolchain.id(),
                qemu.package,
                toolchain.id()
            );
            let err = anyhow::Error::new(stage::StageFailed { category: Category::Toolchain, message });
            return Err(fail_cell(result, err, None));
        }
    }
    let nonce = match qemu::new_nonce() {
        Ok(nonce) => nonce,
        Err(err) => return Err(fail_cell(result, err, None)),
    };
    let spec = cell.boot_spec(&options.boot, &devices, false, &nonce);
    let boot = match toolchain.sandbox().and_then(|sandbox| qemu::command(&sandbox, &spec, &media)) {
        Ok(boot) => boot,
        Err(err) => return Err(fail_cell(result, err, None)),
    };
    let required_cpus = (cell.profile == Profile::Debug).then_some(spec.cpus);
    let expect_secure_boot = matches!(media, qemu::Media::Efi(_)).then_some(options.boot_mode.secure_boot);
    let tampered_boot = match &media {
        qemu::Media::Efi(efi) if options.boot_mode.secure_boot => {
            let tampered = qemu::EfiMedia {
                disk: dir.join("disk-tampered.raw"),
                vars: efi.vars.as_ref().map(|_| dir.join("efi-vars-tampered.fd")),
                ..efi.clone()
            };
            let made = disk::tamper_uki(&efi.disk, &tampered.disk)
                .and_then(|_| match (&efi.vars, &tampered.vars) {
                    (Some(vars), Some(copy)) => Ok(fs_err::copy(vars, copy).map(drop)?),
                    _ => Ok(()),
                })
                .and_then(|_| toolchain.sandbox())
                .and_then(|sandbox| qemu::command(&sandbox, &spec, &qemu::Media::Efi(tampered)));
            match made {
                Ok(cmd) => Some(cmd),
                Err(err) => return Err(fail_cell(result, err, None)),
            }
        }
        _ => None,
    };
    Ok(Some(Prepared {
        arch: cell.arch,
        result,
        boot,
        active,
        nonce,
        required_cpus,
        expect_secure_boot,
        tampered_boot,
        module_probes,
    }))
}

/// The log that explains a failed stage: the driver's build log, else the kernel's.
fn failed_log(err: &anyhow::Error, kernel_log: &Path, drivers_dir: &Path) -> PathBuf {
    for cause in err.chain() {
        if let Some(process_error) = cause.downcast_ref::<error::ProcessError>()
            && let Some(log) = &process_error.log
        {
            return log.clone();
        }
    }
    if drivers_dir.exists() { drivers_dir.to_path_buf() } else { kernel_log.to_path_buf() }
}

fn boot_and_evaluate(prepared: Prepared, timeout: Duration) -> Result<CellResult> {
    let Prepared {
        arch,
        mut result,
        boot,
        active,
        nonce,
        required_cpus,
        expect_secure_boot,
        tampered_boot,
        module_probes,
    } = prepared;
    let console_log = PathBuf::from(&result.log);
    let runner = match arch.runner {
        crate::arch::Runner::Qemu(_) => "in QEMU",
        crate::arch::Runner::Uml => "as a User Mode Linux process",
    };
    progress::status("Booting", format!("{}/{} {runner}", result.kernel, result.arch));
    let booted = match qemu::boot(&boot, &console_log, timeout, &nonce) {
        Ok(booted) => booted,
        Err(err) if error::is_interrupted(&err) => return Err(err),
        Err(err) => {
            result.status = Status::Error;
            result.category = Some(Category::Infrastructure);
            result.message = Some(error::render(&err));
            return Ok(result);
        }
    };
    result.timings.boot_seconds = booted.seconds;
    result.timings.kernel_start_seconds = booted.kernel_start_seconds;
    let console = String::from_utf8_lossy(&fs_err::read(&console_log)?).into_owned();
    let split = qemu::split_console(&console, Some(&nonce));
    let dir = console_log.parent().map(Path::to_path_buf).unwrap_or_default();
    fs_err::write(dir.join("dmesg.log"), &split.dmesg)?;
    let mut report = ktap::parse(&split.verdicts);
    let findings = Findings::of(&split, &nonce);
    report.events = findings.all();
    let ktap_path = dir.join("ktap.json");
    fs_err::write(&ktap_path, serde_json::to_string_pretty(&report)? + "\n")?;
    result.ktap = Some(ktap_path.display().to_string());
    if let Some(record) = required_cpus.and_then(|cpus| missing_cpus(&split.dmesg, cpus)) {
        result.tests.push(record);
    }
    if let Some(secure) = expect_secure_boot {
        result.tests.push(secure_boot_record(&split.verdicts, secure));
        result.tests.push(rootfs_record(&split.verdicts));
    }
    if module_probes {
        result.tests.extend(module_signature_records(&split.verdicts));
    }
    if let Some(tampered) = tampered_boot {
        result.tests.push(tampered_uki_record(&tampered, &dir.join("console-tampered.log"))?);
    }
    evaluate(&mut result, &report, &findings, &active, &booted);
    result.recount();
    let verb = match result.status {
        Status::Pass => "Passed",
        Status::Skip => "Skipped",
        Status::Fail => "Failed",
        Status::Error => "Errored",
    };
    progress::status(
        verb,
        format!(
            "{}/{}: {} passed, {} failed, {} skipped, {} errors (boot {:.1}s)",
            result.kernel,
            result.arch,
            result.totals.pass,
            result.totals.fail,
            result.totals.skip,
            result.totals.error,
            booted.seconds
        ),
    );
    Ok(result)
}

/// A failed `kforge.smp` when the kernel brought up fewer CPUs than the cell
/// asked for: the debug profile's tests are only worth their name on SMP, so
/// a guest that silently ran on one CPU must not be green.
fn missing_cpus(dmesg: &str, required: u32) -> Option<TestRecord> {
    let (cpus, line) = console::cpus_brought_up(dmesg)?;
    (cpus < required).then(|| TestRecord {
        name: "kforge.smp".to_string(),
        status: Status::Fail,
        reason: None,
        diagnostics: vec![
            format!("the cell asked for {required} CPUs and the kernel brought up {cpus}: `{line}`"),
            "the kernel did not find the other CPUs: check the kernel config (ACPI, where the firmware lists CPUs there) and the machine".to_string(),
        ],
        category: None,
    })
}

/// `kforge.secure-boot`: the Secure Boot state the guest read from efivarfs
/// (/init's nonce-framed `kforge-efi` line) must be what the boot asked for.
fn secure_boot_record(verdicts: &str, expect_secure: bool) -> TestRecord {
    let reported = verdicts.lines().find_map(|line| line.trim().strip_prefix("kforge-efi secure-boot="));
    let expected = if expect_secure { "enabled" } else { "disabled" };
    let (status, diagnostics) = match reported {
        Some(state) if state == expected => (Status::Pass, vec![format!("the guest reads Secure Boot as {state} from efivarfs")]),
        Some(state) => (
            Status::Fail,
            vec![format!("the boot asked for Secure Boot {expected}, and the guest reads it as {state} from efivarfs")],
        ),
        None => (
            Status::Fail,
            vec!["the guest reported no UEFI state: it did not boot through the firmware, or /init did not reach its check".to_string()],
        ),
    };
    TestRecord { name: "kforge.secure-boot".to_string(), status, reason: None, diagnostics, category: None }
}

/// `kforge.rootfs.modprobe`: /init mounted the disk's root partition and
/// modprobe loaded a module from its /lib/modules (`kforge-rootfs` line).
fn rootfs_record(verdicts: &str) -> TestRecord {
    let reported = verdicts.lines().find_map(|line| line.trim().strip_prefix("kforge-rootfs "));
    let (status, diagnostics) = match reported {
        Some(outcome) => match outcome.strip_prefix("ok ") {
            Some(module) => {
                (Status::Pass, vec![format!("modprobe loaded {module} from the disk's root partition (/lib/modules)")])
            }
            None => (Status::Fail, vec![format!("the root partition's modules did not load: {}", outcome.trim())]),
        },
        None => (
            Status::Fail,
            vec!["the guest reported nothing about the root partition: /init did not reach its check".to_string()],
        ),
    };
    TestRecord { name: "kforge.rootfs.modprobe".to_string(), status, reason: None, diagnostics, category: None }
}

/// What insmod prints for EKEYREJECTED, the kernel's answer to a module whose
/// signature is missing or wrong under `module.sig_enforce=1`.
const KEY_REJECTED: &str = "Key was rejected by service";

/// `kforge.module-signature.*`: from /init's `kforge-modsig` lines, the
/// kernel enforces signatures, loads the signed probe, and refuses the
/// unsigned and the tampered copy with EKEYREJECTED.
fn module_signature_records(verdicts: &str) -> Vec<TestRecord> {
    let reported = |key: &str| {
        let prefix = format!("kforge-modsig {key}=");
        verdicts
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix.as_str()).map(|value| value.trim().to_string()))
    };
    let record = |name: &str, passed: bool, diagnostic: String| TestRecord {
        name: format!("kforge.module-signature.{name}"),
        status: if passed { Status::Pass } else { Status::Fail },
        reason: None,
        diagnostics: vec![diagnostic],
        category: None,
    };
    let missing = "the guest reported nothing: /init did not reach its signature probes".to_string();
    let mut records = Vec::new();
    records.push(match reported("enforce") {
        Some(value) => record(
            "enforced",
            value == "Y",
            format!("/sys/module/module/parameters/sig_enforce reads {value} (Y: module.sig_enforce=1 took effect)"),
        ),
        None => record("enforced", false, missing.clone()),
    });
    records.push(match reported("signed") {
        Some(value) => record("signed-loads", value == "loaded", format!("the module signed with the db key: {value}")),
        None => record("signed-loads", false, missing.clone()),
    });
    for (probe, name) in [("unsigned", "unsigned-refused"), ("tampered", "tampered-refused")] {
        records.push(match reported(probe) {
            Some(value) => record(
                name,
                value.starts_with("refused") && value.contains(KEY_REJECTED),
                format!("the {probe} copy: {value} (expected: refused, {KEY_REJECTED})"),
            ),
            None => record(name, false, missing.clone()),
        });
    }
    records
}

/// How long the firmware gets to refuse a tampered UKI.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(120);

/// `kforge.secure-boot.tampered-uki`: boots the disk whose UKI has one byte
/// changed; the firmware must refuse it (a signature error on the console),
/// and the kernel must never start.
fn tampered_uki_record(cmd: &process::Cmd, console_log: &Path) -> Result<TestRecord> {
    progress::status("Booting", "the same disk with a tampered UKI (the firmware must refuse it)");
    let mut refusal: Option<String> = None;
    let mut started: Option<String> = None;
    let outcome = cmd.stream(console_log, Some(REFUSAL_TIMEOUT), &mut |line| {
        if console::is_firmware_refusal(line) {
            refusal = Some(line.trim().to_string());
            return process::Control::Stop;
        }
        if console::is_kernel_start(line) {
            started = Some(line.trim().to_string());
            return process::Control::Stop;
        }
        process::Control::Continue
    })?;
    let log = console_log.display();
    let (status, diagnostics) = match (refusal, started) {
        (_, Some(line)) => (Status::Fail, vec![format!("the kernel of the tampered UKI started: `{line}` ({log})")]),
        (Some(line), None) => (Status::Pass, vec![format!("the firmware refused the tampered UKI: `{line}`")]),
        (None, None) => (
            Status::Fail,
            vec![format!("the firmware neither refused the tampered UKI nor started it ({outcome:?}; console: {log})")],
        ),
    };
    Ok(TestRecord {
        name: "kforge.secure-boot.tampered-uki".to_string(),
        status,
        reason: None,
        diagnostics,
        category: None,
    })
}

/// The kernel reports a boot produced, placed in test windows where possible.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    /// Whether /init's raw dmesg dump arrived (else reports come from the console alone).
    pub dmesg_dumped: bool,
    pub attribution: console::Attribution,
}

impl Findings {
    /// From the dmesg dump when /init sent one (kernel-origin lines only, attributed by the
    /// nonce's test markers); else from the console's printk-timestamped lines, all outside
    /// any test (the guest died before it could dump its log; an untimestamped line is a
    /// program's output, not the kernel's).
    pub fn of(split: &qemu::SplitConsole, nonce: &str) -> Findings {
        if split.dumped {
            return Findings { dmesg_dumped: true, attribution: console::attribute(&split.dmesg, nonce) };
        }
        let kernel_lines: Vec<&str> =
            split.console.lines().filter(|line| console::split_timestamp(line).0.is_some()).collect();
        let outside = console::scan(&kernel_lines.join("\n"));
        Findings { dmesg_dumped: false, attribution: console::Attribution { in_tests: vec![], outside } }
    }

    pub fn all(&self) -> Vec<console::Finding> {
        self.attribution.all()
    }
}

/// The tests a package must report, each exactly once: `load`, its tests, `unload` (KUnit
/// suites report their own cases, checked for presence only).
fn expected_tests(driver: &Driver) -> Vec<String> {
    let names = ["load".to_string()].into_iter().chain(driver.test_names()).chain(["unload".to_string()]);
    names.map(|test| format!("{}.{test}", driver.name)).collect()
}

/// Why a boot timed out: whether the kernel ever started (no kernel line means the
/// firmware or boot loader never handed over), and the console's last lines.
fn timeout_message(booted: &qemu::Boot) -> String {
    let seconds = booted.seconds;
    let head = match booted.kernel_start_seconds {
        None => format!(
            "the kernel never started within {seconds:.0}s (no kernel line on the console: the firmware or boot loader did not hand over)"
        ),
        Some(_) => format!("no end marker within {seconds:.0}s"),
    };
    if booted.last_lines.is_empty() {
        return format!("{head}; the console stayed empty");
    }
    format!("{head}; last console lines:\n  {}", booted.last_lines.join("\n  "))
}

/// Turns the parsed verdict channel and the kernel's reports into tests, a status and a
/// category.
pub fn evaluate(
    result: &mut CellResult,
    report: &ktap::Report,
    findings: &Findings,
    active: &[Driver],
    booted: &qemu::Boot,
) {
    let (end, last_line) = (booted.end, booted.last_line());
    // Only our init's document counts (its top-level tests are the packages);
    // KTAP the kernel printed at boot is reported through the owning package's
    // KUnit suites instead, and stays in ktap.json.
    let first_new = result.tests.len();
    for (name, case) in report.leaves() {
        let package = name.split('.').next().unwrap_or_default();
        if !active.iter().any(|driver| driver.name == package) {
            continue;
        }
        result.tests.push(TestRecord {
            name,
            status: case.status,
            reason: case.directive.clone(),
            diagnostics: case.diagnostics.clone(),
            category: None,
        });
    }
    for driver in active {
        let prefix = format!("{}.", driver.name);
        if !result.tests.iter().any(|test| test.name.starts_with(&prefix)) {
            result.tests.push(TestRecord {
                name: format!("{}.load", driver.name),
                status: Status::Error,
                reason: None,
                diagnostics: vec!["the guest never reported this driver's tests".to_string()],
                category: None,
            });
            continue;
        }
        check_expected(result, first_new, driver);
    }
    // A kernel report inside a test's window fails that test with the detector's category.
    for (test_name, finding) in &findings.attribution.in_tests {
        match result.tests.iter_mut().find(|test| &test.name == test_name) {
            Some(test) => {
                if matches!(test.status, Status::Pass | Status::Skip) {
                    test.status = Status::Fail;
                    test.reason = None;
                }
                // A named detector beats a generic crash, which beats a warning; else the first.
                let rank = |category: Category| match category {
                    Category::Warning => 2,
                    Category::Panic => 1,
                    _ => 0,
                };
                let new = finding.detector.category();
                if test.category.is_none_or(|known| rank(new) < rank(known)) {
                    test.category = Some(new);
                }
                test.diagnostics.extend(finding.describe().lines().map(str::to_string));
            }
            None => result.tests.push(TestRecord {
                name: test_name.clone(),
                status: Status::Fail,
                reason: None,
                diagnostics: finding.describe().lines().map(str::to_string).collect(),
                category: Some(finding.detector.category()),
            }),
        }
    }
    let all = findings.all();
    let primary = console::primary(&all);
    // The guest died before its dump: no windows. The crash belongs to the first test that
    // never reported (the one running when the kernel went down).
    if !findings.dmesg_dumped
        && let Some(finding) = primary
        && let Some(test) = result.tests[first_new..].iter_mut().find(|test| test.status == Status::Error)
    {
        test.category = Some(finding.detector.category());
        test.diagnostics.extend(finding.describe().lines().map(str::to_string));
    }
    let outside = console::primary(&findings.attribution.outside);
    let cap = match end {
        BootEnd::Capped(cap) => Some(cap),
        _ => report.cap,
    };
    let (status, category, message) = match (end, primary) {
        _ if cap.is_some() => (
            Status::Error,
            Some(Category::Infrastructure),
            cap.map(|cap| format!("the guest's output hit the {}; the cell's results are incomplete", cap.describe())),
        ),
        (BootEnd::Crashed, _) | (BootEnd::Exited, Some(_)) => {
            let category = primary.map_or(Category::Panic, |f| f.detector.category());
            let text = primary.map(console::Finding::describe).unwrap_or_else(|| format!("kernel crash: {last_line}"));
            let status = if result.tests.is_empty() { Status::Error } else { Status::Fail };
            (status, Some(category), Some(format!("kernel crashed: {text}")))
        }
        (BootEnd::TimedOut, _) => (Status::Error, Some(Category::BootTimeout), Some(timeout_message(booted))),
        (BootEnd::Exited, None) => (
            Status::Error,
            Some(Category::Infrastructure),
            Some(format!("QEMU exited before the end marker; last line: {last_line}")),
        ),
        (BootEnd::Finished | BootEnd::Capped(_), _) => {
            let failing = result.tests.iter().find(|test| matches!(test.status, Status::Fail | Status::Error));
            if let Some(finding) = outside {
                let text = finding.describe();
                (
                    Status::Fail,
                    Some(finding.detector.category()),
                    Some(format!("kernel report outside any test: {text}")),
                )
            } else if let Some(test) = failing {
                let category = primary.map(|f| f.detector.category()).or(test.category).unwrap_or(Category::TestFail);
                (Status::Fail, Some(category), None)
            } else if !result.tests.is_empty() && result.tests.iter().all(|test| test.status == Status::Skip) {
                (Status::Skip, None, None)
            } else {
                (Status::Pass, None, None)
            }
        }
    };
    result.status = status;
    result.category = category;
    result.message = message;
}

/// Checks `driver`'s reported tests (from index `first` on) against its expected list:
/// each expected test exactly once (a missing one is an error), and every KUnit suite present.
fn check_expected(result: &mut CellResult, first: usize, driver: &Driver) {
    for name in expected_tests(driver) {
        let count = result.tests[first..].iter().filter(|test| test.name == name).count();
        if count == 0 {
            result.tests.push(TestRecord {
                name,
                status: Status::Error,
                reason: None,
                diagnostics: vec![
                    "missing: this expected test never reported (checked against the package's test list)".into(),
                ],
                category: None,
            });
        } else if count > 1 {
            for test in result.tests[first..].iter_mut().filter(|test| test.name == name) {
                test.status = Status::Error;
                test.diagnostics.push(format!("reported {count} times; every test must report exactly once"));
            }
        }
    }
    for suite in &driver.meta.kunit_suites {
        let prefix = format!("{}.{suite}", driver.name);
        let present = result.tests[first..]
            .iter()
            .any(|test| test.name == prefix || test.name.starts_with(&format!("{prefix}.")));
        if !present {
            result.tests.push(TestRecord {
                name: prefix,
                status: Status::Error,
                reason: None,
                diagnostics: vec!["missing: this KUnit suite never reported".into()],
                category: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_cannot_boot_as_asked_are_skips_with_the_reason() {
        let efi = BootMode { method: BootMethod::Efi, secure_boot: false };
        let secure = BootMode { method: BootMethod::Efi, secure_boot: true };
        let direct = BootMode { method: BootMethod::Direct, secure_boot: false };
        let find = |name| Arch::find(name).unwrap();
        assert_eq!(boot_skip_reason(find("s390"), direct), None);
        assert!(boot_skip_reason(find("s390"), efi).unwrap().contains("IPLs"));
        assert!(boot_skip_reason(find("um"), efi).unwrap().contains("no firmware"));
        assert_eq!(boot_skip_reason(find("riscv"), efi), None);
        assert!(boot_skip_reason(find("riscv"), secure).unwrap().contains("qemu-efi-riscv64 has no Secure Boot build"));
        assert_eq!(boot_skip_reason(find("x86_64"), secure), None);
        assert_eq!(boot_skip_reason(find("arm64"), secure), None);
        assert_eq!(boot_skip_reason(find("arm"), efi), None);
        assert!(boot_skip_reason(find("arm"), secure).unwrap().contains("u-boot-qemu has no Secure Boot build"));
    }

    #[test]
    fn module_signature_probes_pass_only_when_the_kernel_refuses_the_bad_copies() {
        let statuses = |verdicts: &str| -> Vec<(String, Status)> {
            module_signature_records(verdicts).into_iter().map(|record| (record.name, record.status)).collect()
        };
        let rejected = "refused: insmod: can't insert '/kforge/modsig/x.ko': Key was rejected by service";
        let good = format!(
            "kforge-modsig enforce=Y\nkforge-modsig unsigned={rejected}\nkforge-modsig tampered={rejected}\nkforge-modsig signed=loaded\n"
        );
        assert!(statuses(&good).iter().all(|(_, status)| *status == Status::Pass), "{:?}", statuses(&good));
        assert_eq!(statuses(&good).len(), 4);
        // An unsigned module that loads, a refusal for another reason, no
        // enforcement, and silence each fail their own test.
        let bad =
            "kforge-modsig enforce=N\nkforge-modsig unsigned=loaded\nkforge-modsig tampered=refused: No such file\n";
        for (name, status) in statuses(bad) {
            assert_eq!(status, Status::Fail, "{name}");
        }
        assert!(statuses("").iter().all(|(_, status)| *status == Status::Fail));
    }

    #[test]
    fn the_rootfs_test_passes_only_on_the_guests_ok() {
        assert_eq!(rootfs_record("kforge-rootfs ok kforge_fifo\n").status, Status::Pass);
        let failed = rootfs_record("kforge-rootfs failed: mount -t erofs /dev/vda2: No such device\n");
        assert_eq!(failed.status, Status::Fail);
        assert!(failed.diagnostics[0].contains("No such device"), "{:?}", failed.diagnostics);
        assert_eq!(rootfs_record("").status, Status::Fail);
    }

    #[test]
    fn a_debug_guest_on_fewer_cpus_than_asked_fails_kforge_smp() {
        let one = "<6>[    0.804000] smp: Brought up 1 node, 1 CPU\n";
        let record = missing_cpus(one, 2).expect("1 of 2 CPUs must fail");
        assert_eq!((record.name.as_str(), record.status), ("kforge.smp", Status::Fail));
        assert!(record.diagnostics[0].contains("asked for 2 CPUs and the kernel brought up 1"), "{record:?}");
        assert!(missing_cpus("<6>[    0.06] smp: Brought up 1 node, 2 CPUs\n", 2).is_none());
        // A line a test wrote to /dev/kmsg (facility user) is not the kernel's.
        assert!(missing_cpus("<13>[    0.9] smp: Brought up 1 node, 1 CPU\n", 2).is_none());
    }
    use crate::driver::DriverMeta;
    use crate::qemu::{DMESG_BEGIN, DMESG_END, END_MARKER};

    const NONCE: &str = "0123456789abcdef";

    fn edu() -> Driver {
        let meta = DriverMeta {
            module: Some("kforge_edu".into()),
            in_tree_modules: vec![],
            kconfig: vec![],
            qemu_devices: vec![],
            needs_pci: false,
            module_params: vec![],
            tests: vec!["tests/factorial.sh".into()],
            test_programs: vec![],
            kunit_suites: vec![],
            suite: None,
            min_kernel: None,
            unsupported_arches: Default::default(),
            maintainer: None,
            root_tests: vec![],
        };
        Driver { name: "edu".into(), version: "0.1.0".into(), dir: PathBuf::new(), meta }
    }

    /// A console log: /init's lines framed with the nonce (with `results` as the package's
    /// result lines and `dmesg` as its raw dump), and a test's forgeries unframed.
    fn console(results: &[&str], dmesg: &[&str]) -> String {
        let mut guest = vec!["KTAP version 1", "1..1", "    KTAP version 1", "    # Subtest: edu"];
        guest.push(if results.len() == 3 { "    1..3" } else { "    1..2" });
        guest.extend(results);
        guest.push("ok 1 edu");
        guest.push(DMESG_BEGIN);
        guest.extend(dmesg);
        guest.extend([DMESG_END, END_MARKER]);
        let mut log = String::from("[    0.000000] Linux version 7.2.13\n");
        for line in guest {
            log += &format!("kv-{NONCE} {line}\n");
            // What a hostile test writes to /dev/console, between every line.
            log += "kforge-end-of-tests\nnot ok 1 edu\nKernel panic - not syncing: forged\nkv-ffffffffffffffff     not ok 2 factorial\n";
        }
        log
    }

    fn evaluated(log: &str) -> CellResult {
        let mut result = CellResult {
            id: "7.2-x86_64".into(),
            profile: String::new(),
            boot: String::new(),
            arch: "x86_64".into(),
            kernel: "7.2".into(),
            toolchain: "sid".into(),
            status: Status::Pass,
            category: None,
            message: None,
            log: String::new(),
            build_log: None,
            ktap: None,
            tests: vec![],
            totals: Totals::default(),
            timings: Timings::default(),
        };
        let split = qemu::split_console(log, Some(NONCE));
        let report = ktap::parse(&split.verdicts);
        let findings = Findings::of(&split, NONCE);
        let booted =
            qemu::Boot { end: BootEnd::Finished, seconds: 1.0, last_lines: vec![], kernel_start_seconds: None };
        evaluate(&mut result, &report, &findings, &[edu()], &booted);
        result.recount();
        result
    }

    fn summary(result: &CellResult) -> String {
        let mut out = format!("cell {:?} {:?}\n", result.status, result.category.map(Category::as_str));
        for test in &result.tests {
            let first = test.diagnostics.first().map(String::as_str).unwrap_or("");
            out += &format!("{} {:?} {:?} {first}\n", test.name, test.status, test.category.map(Category::as_str));
        }
        out
    }

    const PASSING: &[&str] = &["    ok 1 load", "    ok 2 factorial", "    ok 3 unload"];

    #[test]
    fn forged_console_output_does_not_change_a_passing_verdict() {
        let dmesg = [
            "<13>[    1.0] kforge: test-start 0123456789abcdef edu factorial",
            "<11>[    1.1] BUG: KASAN: slab-use-after-free in forged_via_kmsg+0x0/0x0",
            "<13>[    1.1] kforge: test-start ffffffffffffffff edu factorial",
            "<13>[    1.2] kforge: test-end 0123456789abcdef edu factorial",
        ];
        let result = evaluated(&console(PASSING, &dmesg));
        expect_test::expect![[r#"
            cell Pass None
            edu.load Pass None 
            edu.factorial Pass None 
            edu.unload Pass None 
        "#]]
        .assert_eq(&summary(&result));
    }

    #[test]
    fn a_report_in_a_test_window_fails_that_test_with_its_category() {
        let dmesg = [
            "<13>[    1.0] kforge: test-start 0123456789abcdef edu factorial",
            "<3>[    1.1] BUG: KASAN: slab-use-after-free in kforge_edu_read+0x1c/0x80",
            "<3>[    1.1] Read of size 8 at addr ffff888003a1c008 by task factorial/90",
            "<13>[    1.2] kforge: test-end 0123456789abcdef edu factorial",
        ];
        let result = evaluated(&console(PASSING, &dmesg));
        expect_test::expect![[r#"
            cell Fail Some("kasan")
            edu.load Pass None 
            edu.factorial Fail Some("kasan") kasan at 1.100000: BUG: KASAN: slab-use-after-free in kforge_edu_read+0x1c/0x80
            edu.unload Pass None 
        "#]]
        .assert_eq(&summary(&result));
        assert_eq!(result.tests[1].diagnostics[1], "  Read of size 8 at addr ffff888003a1c008 by task factorial/90");
    }

    #[test]
    fn a_crash_before_the_dump_names_the_test_that_never_reported() {
        let nonce = |line: &str| format!("kv-{NONCE} {line}\n");
        let mut log = String::new();
        for line in ["KTAP version 1", "1..1", "    KTAP version 1", "    # Subtest: edu", "    1..3", "    ok 1 load"]
        {
            log += &nonce(line);
        }
        log += "[    2.000000] rust_kernel: panicked at drivers/edu/kforge_edu.rs:10:5:\n";
        log += "[    2.000000] attempt to multiply with overflow\n";
        log += "[    2.000100] Kernel panic - not syncing: Fatal exception\n";
        let mut result = evaluated(&log);
        let split = qemu::split_console(&log, Some(NONCE));
        let booted = qemu::Boot { end: BootEnd::Crashed, seconds: 1.0, last_lines: vec![], kernel_start_seconds: None };
        result.tests.clear();
        evaluate(&mut result, &ktap::parse(&split.verdicts), &Findings::of(&split, NONCE), &[edu()], &booted);
        assert_eq!((result.status, result.category), (Status::Fail, Some(Category::Overflow)));
        let crashed = result.tests.iter().find(|test| test.category.is_some()).unwrap();
        assert_eq!(crashed.name, "edu.missing-tests-2..3");
        assert!(crashed.diagnostics.iter().any(|line| line.contains("attempt to multiply with overflow")));
    }

    #[test]
    fn a_timed_out_boot_says_whether_the_kernel_started_and_shows_the_last_lines() {
        let firmware = ["BdsDxe: loading Boot0001", "BdsDxe: starting Boot0001"].map(String::from).to_vec();
        let stuck =
            qemu::Boot { end: BootEnd::TimedOut, seconds: 120.4, last_lines: firmware, kernel_start_seconds: None };
        let mut result = evaluated("");
        evaluate(&mut result, &ktap::parse(""), &Findings::default(), &[edu()], &stuck);
        assert_eq!((result.status, result.category), (Status::Error, Some(Category::BootTimeout)));
        let message = result.message.unwrap();
        assert!(message.starts_with("the kernel never started within 120s"), "{message}");
        assert!(
            message.ends_with("last console lines:\n  BdsDxe: loading Boot0001\n  BdsDxe: starting Boot0001"),
            "{message}"
        );
        let kernel = ["[    3.0] Run /init as init process".to_string()].to_vec();
        let hung =
            qemu::Boot { end: BootEnd::TimedOut, seconds: 900.0, last_lines: kernel, kernel_start_seconds: Some(0.2) };
        assert_eq!(
            timeout_message(&hung),
            "no end marker within 900s; last console lines:\n  [    3.0] Run /init as init process"
        );
        let silent = qemu::Boot { last_lines: vec![], ..hung };
        assert_eq!(timeout_message(&silent), "no end marker within 900s; the console stayed empty");
    }

    #[test]
    fn a_report_outside_every_test_fails_the_cell_and_a_missing_test_is_an_error() {
        let dmesg = ["<4>[    0.5] WARNING: CPU: 0 PID: 1 at init/main.c:1 boot_thing+0x1/0x2"];
        let result = evaluated(&console(PASSING, &dmesg));
        assert_eq!((result.status, result.category), (Status::Fail, Some(Category::Warning)));
        assert!(result.message.as_deref().unwrap().starts_with("kernel report outside any test: warning at 0.500000"));
        assert!(result.tests.iter().all(|test| test.status == Status::Pass));
        let result = evaluated(&console(&["    ok 1 load", "    ok 2 unload"], &[]));
        expect_test::expect![[r#"
            cell Fail Some("test-fail")
            edu.load Pass None 
            edu.unload Pass None 
            edu.factorial Error None missing: this expected test never reported (checked against the package's test list)
        "#]]
        .assert_eq(&summary(&result));
    }
}
