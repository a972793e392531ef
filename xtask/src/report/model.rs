//! The result model of a run: per-cell records, totals, timings and the exit code; it never prints (the renderers are `json`, `junit`, `summary` and `html`).

use serde::{Deserialize, Serialize};

use crate::error;
use crate::stage::Category;

pub use crate::ktap::Status;

/// One test of a cell: `<driver>.<test>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    pub name: String,
    pub status: Status,
    /// Skip reason, if skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Diagnostic lines the test printed (kept for failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    /// The kernel detector that failed this test (`lockdep`, `kasan`, ...), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
}

/// Leaf counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub error: usize,
}

/// Seconds spent per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Wall time from the start of the cell's build to its image.
    pub build_seconds: f64,
    /// CPU time (user + system) of the cell's kernel build.
    #[serde(default)]
    pub build_cpu_seconds: f64,
    /// QEMU start to the end marker (or crash, or timeout).
    pub boot_seconds: f64,
    /// QEMU start to the kernel's start: the firmware's (and boot loader's) share of the boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_start_seconds: Option<f64>,
    /// What ccache did in the cell's kernel build, when it was on (`--ccache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccache: Option<crate::ccache::Counts>,
}

/// One cell of the matrix: a kernel on an arch with a toolchain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub id: String,
    /// The test profile the cell's kernel was built and booted in (`debug`, `release`).
    #[serde(default)]
    pub profile: String,
    /// How the cell booted: `direct`, `efi` or `efi+secure-boot`.
    #[serde(default)]
    pub boot: String,
    pub arch: String,
    pub kernel: String,
    pub toolchain: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// What went wrong, in one or a few lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The console log (may not exist when the cell failed before booting).
    pub log: String,
    /// The log of the stage that failed, or the kernel build log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_log: Option<String>,
    /// Parsed KTAP (JSON), when the cell booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ktap: Option<String>,
    pub tests: Vec<TestRecord>,
    pub totals: Totals,
    pub timings: Timings,
}

impl CellResult {
    pub fn recount(&mut self) {
        let mut totals = Totals::default();
        for test in &self.tests {
            match test.status {
                Status::Pass => totals.pass += 1,
                Status::Fail => totals.fail += 1,
                Status::Skip => totals.skip += 1,
                Status::Error => totals.error += 1,
            }
        }
        self.totals = totals;
    }
}

/// How the run used the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub wall_seconds: f64,
    /// Jobserver tokens: the cores kforge kept busy.
    pub jobs: usize,
    /// CPU time of every kernel build of the run.
    pub build_cpu_seconds: f64,
    /// build_cpu_seconds / (wall_seconds x jobs).
    pub core_utilisation: f64,
    /// ccache's counts over every cell's kernel build, when it was on (`--ccache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccache: Option<crate::ccache::Counts>,
}

impl RunSummary {
    pub fn new(wall_seconds: f64, jobs: usize) -> RunSummary {
        RunSummary { wall_seconds, jobs, build_cpu_seconds: 0.0, core_utilisation: 0.0, ccache: None }
    }
}

/// The whole run (results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub kforge_version: String,
    /// False when some cells are missing (interrupted run, broken per-cell files).
    pub complete: bool,
    #[serde(default)]
    pub run: RunSummary,
    pub cells: Vec<CellResult>,
}

impl Results {
    pub fn new(cells: Vec<CellResult>) -> Results {
        Results {
            kforge_version: env!("CARGO_PKG_VERSION").to_string(),
            complete: true,
            run: RunSummary::default(),
            cells,
        }
    }

    /// Results with the run's timing; utilisation is computed from the cells.
    pub fn with_summary(cells: Vec<CellResult>, mut run: RunSummary) -> Results {
        run.build_cpu_seconds = cells.iter().map(|cell| cell.timings.build_cpu_seconds).sum();
        run.ccache = cells.iter().filter_map(|cell| cell.timings.ccache).reduce(crate::ccache::Counts::add);
        if run.wall_seconds > 0.0 && run.jobs > 0 {
            run.core_utilisation = run.build_cpu_seconds / (run.wall_seconds * run.jobs as f64);
        }
        Results { run, ..Results::new(cells) }
    }

    /// 0 all passed (or skipped), 1 a test failed, 2 something before the tests failed.
    pub fn exit_code(&self) -> i32 {
        if !self.complete || self.cells.iter().any(|cell| cell.status == Status::Error) {
            error::EXIT_INFRA
        } else if self.cells.iter().any(|cell| cell.status == Status::Fail) {
            error::EXIT_TEST_FAILED
        } else {
            error::EXIT_OK
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 7.2 x86_64 cell with two tests; the second fails when `status` is `Fail`.
    pub(crate) fn cell(status: Status, category: Option<Category>) -> CellResult {
        let mut cell = CellResult {
            id: "7.2-x86_64".into(),
            profile: String::new(),
            boot: String::new(),
            arch: "x86_64".into(),
            kernel: "7.2".into(),
            toolchain: "sid".into(),
            status,
            category,
            message: None,
            log: "target/kforge/cells/7.2-x86_64/console.log".into(),
            build_log: None,
            ktap: None,
            tests: vec![
                TestRecord {
                    name: "fifo.load".into(),
                    status: Status::Pass,
                    reason: None,
                    diagnostics: vec![],
                    category: None,
                },
                TestRecord {
                    name: "fifo.roundtrip".into(),
                    status: if status == Status::Fail { Status::Fail } else { Status::Pass },
                    reason: None,
                    diagnostics: vec!["expected 40 bytes, got 39".into()],
                    category: None,
                },
            ],
            totals: Totals::default(),
            timings: Timings::default(),
        };
        cell.recount();
        cell
    }

    #[test]
    fn exit_codes_separate_test_failures_from_infrastructure() {
        assert_eq!(Results::new(vec![cell(Status::Pass, None)]).exit_code(), 0);
        assert_eq!(
            Results::new(vec![cell(Status::Pass, None), cell(Status::Fail, Some(Category::TestFail))]).exit_code(),
            1
        );
        assert_eq!(
            Results::new(vec![
                cell(Status::Fail, Some(Category::TestFail)),
                cell(Status::Error, Some(Category::Build))
            ])
            .exit_code(),
            2
        );
        let mut incomplete = Results::new(vec![cell(Status::Pass, None)]);
        incomplete.complete = false;
        assert_eq!(incomplete.exit_code(), 2);
    }

    #[test]
    fn results_json_has_the_documented_fields() {
        let json = serde_json::to_value(Results::new(vec![cell(Status::Fail, Some(Category::TestFail))])).unwrap();
        let first = &json["cells"][0];
        for key in ["arch", "kernel", "toolchain", "status", "category", "log", "tests"] {
            assert!(first.get(key).is_some(), "missing {key}");
        }
        assert_eq!(first["category"], "test-fail");
        assert_eq!(first["tests"][1]["name"], "fifo.roundtrip");
        assert_eq!(first["totals"]["fail"], 1);
    }
}
