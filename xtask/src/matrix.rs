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
use crate::project::{BootSettings, KernelEntry, Profile};
use crate::qemu::{self, BootEnd, BootSpec};
use crate::report::{CellResult, Results, RunSummary, Status, TestRecord, Timings, Totals};
use crate::stage::{self, Category};
use crate::toolchain::Toolchain;
use crate::toolchain::install::InstallOptions;
use crate::{error, ktap, pipeline, process, progress};

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
    pub fn boot_spec<'a>(&self, boot: &'a BootSettings, devices: &'a [String], interactive: bool) -> BootSpec<'a> {
        BootSpec {
            arch: self.arch,
            memory: self.profile.memory(boot),
            cpus: self.arch.boot_cpus(self.profile == Profile::Debug),
            devices,
            interactive,
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
    pub install: InstallOptions,
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
        Ok(Some(prepared)) => boot_and_evaluate(prepared, Duration::from_secs(options.boot.timeout_seconds)),
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

fn empty_result(cell: &Cell, dir: &Path) -> CellResult {
    CellResult {
        id: cell.id(),
        profile: cell.profile.as_str().to_string(),
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
    let mut result = empty_result(cell, &dir);
    let started = Instant::now();
    if let Err(err) = crate::cache::remove_dir_if_exists(&dir).and_then(|_| Ok(fs_err::create_dir_all(&dir)?)) {
        return Err(fail_cell(result, err, None));
    }
    progress::status("Preparing", format!("cell {}", cell.label()));

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

    if let Some(reason) = pipeline::cell_skip_reason(&cell.kernel, cell.arch, &toolchain) {
        progress::status("Skipped", format!("{}: {reason}", cell.id()));
        result.status = Status::Skip;
        result.message = Some(reason);
        return Err(Failed(Box::new(result)));
    }

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
            });
        }
    }

    let kernel_log = dir.join("kernel-build.log");
    let drivers_dir = dir.join("drivers");
    let staged = (|| -> Result<(PathBuf, PathBuf, Vec<String>)> {
        let plan =
            pipeline::profile_kernel_plan(&options.repo, &cell.kernel, cell.arch, cell.profile, &toolchain, &active)?;
        for missing in kconfig::missing_detectors(&plan.fragments) {
            result.tests.push(TestRecord {
                name: format!("kforge.detector.{}", missing.detector),
                status: Status::Skip,
                reason: Some(format!("{} (declared in {})", missing.reason, missing.origin)),
                diagnostics: vec![],
            });
        }
        let kernel = pipeline::build_kernel(&plan, &toolchain, &source, &kernel_log, parallel)?;
        result.timings.build_cpu_seconds = kernel.cpu_seconds;
        let (runnable, kunit_skips) = pipeline::without_missing_kunit(&cell.kernel, &kernel, &active);
        for (name, reason) in kunit_skips {
            result.tests.push(TestRecord { name, status: Status::Skip, reason: Some(reason), diagnostics: vec![] });
        }
        let built =
            pipeline::build_drivers(&runnable, cell.arch, &toolchain, &source, &kernel, &drivers_dir, parallel)?;
        let initrd =
            pipeline::build_image(&toolchain, cell.arch, &options.repo, built, &dir.join("initramfs.cpio.gz"))?;
        let mut devices: Vec<String> = Vec::new();
        for driver in &active {
            for device in &driver.meta.qemu_devices {
                if !devices.contains(device) {
                    devices.push(device.clone());
                }
            }
        }
        Ok((kernel.image, initrd, devices))
    })();
    result.timings.build_seconds = started.elapsed().as_secs_f64();
    result.build_log = Some(kernel_log.display().to_string());
    let (kernel_image, initrd, devices) = match staged {
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
    let spec = cell.boot_spec(&options.boot, &devices, false);
    let boot = match toolchain.sandbox().and_then(|sandbox| qemu::command(&sandbox, &spec, &kernel_image, &initrd)) {
        Ok(boot) => boot,
        Err(err) => return Err(fail_cell(result, err, None)),
    };
    Ok(Some(Prepared { arch: cell.arch, result, boot, active }))
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
    let Prepared { arch, mut result, boot, active } = prepared;
    let console_log = PathBuf::from(&result.log);
    let runner = match arch.runner {
        crate::arch::Runner::Qemu(_) => "in QEMU",
        crate::arch::Runner::Uml => "as a User Mode Linux process",
    };
    progress::status("Booting", format!("{}/{} {runner}", result.kernel, result.arch));
    let booted = match qemu::boot(&boot, &console_log, timeout) {
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
    let console = String::from_utf8_lossy(&fs_err::read(&console_log)?).into_owned();
    let (main, dmesg) = qemu::split_dmesg(&console);
    let dir = console_log.parent().map(Path::to_path_buf).unwrap_or_default();
    fs_err::write(dir.join("dmesg.log"), &dmesg)?;
    let report = ktap::parse(&main);
    let ktap_path = dir.join("ktap.json");
    fs_err::write(&ktap_path, serde_json::to_string_pretty(&report)? + "\n")?;
    result.ktap = Some(ktap_path.display().to_string());
    evaluate(&mut result, &report, &active, booted.end, booted.seconds, &booted.last_line);
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

/// Turns the parsed console into tests, a status and a category.
pub fn evaluate(
    result: &mut CellResult,
    report: &ktap::Report,
    active: &[Driver],
    end: BootEnd,
    seconds: f64,
    last_line: &str,
) {
    // Only our init's document counts (its top-level tests are the packages);
    // KTAP the kernel printed at boot is reported through the owning package's
    // KUnit suites instead, and stays in ktap.json.
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
            });
        }
    }
    let crash = report.events.iter().find(|event| event.kind != ktap::EventKind::Warning);
    let warning = report.events.iter().find(|event| event.kind == ktap::EventKind::Warning);
    let describe = |event: &ktap::ConsoleEvent| {
        let mut text = format!("console line {}: {}", event.line_number, event.line.trim());
        for line in event.context.iter().take(10) {
            text.push_str(&format!("\n  {}", line.trim_end()));
        }
        text
    };
    let (status, category, message) = match (end, crash) {
        (BootEnd::Crashed, _) | (BootEnd::Exited, Some(_)) | (BootEnd::Finished, Some(_)) => {
            let text = crash.map(describe).unwrap_or_else(|| format!("kernel crash: {last_line}"));
            let status = if result.tests.is_empty() { Status::Error } else { Status::Fail };
            (status, Some(Category::Panic), Some(format!("kernel crashed: {text}")))
        }
        (BootEnd::TimedOut, _) => (
            Status::Error,
            Some(Category::BootTimeout),
            Some(format!("no end marker within {seconds:.0}s; last console line: {last_line}")),
        ),
        (BootEnd::Exited, None) => (
            Status::Error,
            Some(Category::Infrastructure),
            Some(format!("QEMU exited before the end marker; last line: {last_line}")),
        ),
        (BootEnd::Finished, None) => {
            if result.tests.iter().any(|test| matches!(test.status, Status::Fail | Status::Error)) {
                (Status::Fail, Some(Category::TestFail), None)
            } else if let Some(event) = warning {
                (
                    Status::Fail,
                    Some(Category::TestFail),
                    Some(format!("kernel warning during the tests: {}", describe(event))),
                )
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
