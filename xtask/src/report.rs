//! Results of a run: per-cell records, results.json, junit.xml, the summary table and the exit code (report.html is `html`'s).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::stage::Category;
use crate::{error, ui};

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
}

/// One cell of the matrix: a kernel on an arch with a toolchain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub id: String,
    /// The test profile the cell's kernel was built and booted in (`debug`, `release`).
    #[serde(default)]
    pub profile: String,
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
}

impl RunSummary {
    pub fn new(wall_seconds: f64, jobs: usize) -> RunSummary {
        RunSummary { wall_seconds, jobs, build_cpu_seconds: 0.0, core_utilisation: 0.0 }
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

    /// Writes results.json, junit.xml and report.html into `dir`; returns
    /// their paths in that order.
    pub fn write(&self, dir: &Path) -> Result<[PathBuf; 3]> {
        let paths = [dir.join("results.json"), dir.join("junit.xml"), dir.join("report.html")];
        crate::cache::write_atomic(&paths[0], serde_json::to_string_pretty(self)? + "\n")?;
        crate::cache::write_atomic(&paths[1], self.junit()?)?;
        crate::html::write(self, &paths[2])?;
        Ok(paths)
    }

    /// Reads a results.json (as `write` left it).
    pub fn read(path: &Path) -> Result<Results> {
        let bytes = std::fs::read(path).map_err(|err| {
            error::user_hint(
                format!("cannot read results {}: {err}", path.display()),
                "run `cargo xtask test` first, or give the path of a results.json",
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|err| {
            error::user_hint(
                format!("{} is not a kforge results.json: {err}", path.display()),
                "give a results.json written by `cargo xtask test`",
            )
        })
    }

    /// JUnit XML: one suite per cell, one case per test; a cell that failed
    /// before its tests is one errored case named after the stage.
    pub fn junit(&self) -> Result<String> {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("kforge");
        for cell in &self.cells {
            let mut suite = TestSuite::new(format!("{}/{}", cell.kernel, cell.arch));
            if (cell.tests.is_empty() || cell.status == Status::Error)
                && let Some(category) = cell.category
            {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(cell.message.clone().unwrap_or_default());
                status.set_type(category.as_str());
                suite.add_test_case(TestCase::new(format!("{}.{}", cell.id, category.as_str()), status));
            }
            for test in &cell.tests {
                let status = match test.status {
                    Status::Pass => TestCaseStatus::success(),
                    Status::Skip => {
                        let mut status = TestCaseStatus::skipped();
                        if let Some(reason) = &test.reason {
                            status.set_message(reason.clone());
                        }
                        status
                    }
                    Status::Fail | Status::Error => {
                        let kind =
                            if test.status == Status::Fail { NonSuccessKind::Failure } else { NonSuccessKind::Error };
                        let mut status = TestCaseStatus::non_success(kind);
                        status.set_description(test.diagnostics.join("\n"));
                        status
                    }
                };
                let mut case = TestCase::new(test.name.clone(), status);
                case.set_classname(cell.id.clone());
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        Ok(report.to_string()?)
    }

    /// The summary table printed after a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if self.run.wall_seconds > 0.0 {
            out.push_str(&format!(
                "{} cell(s) in {:.0}s on {} cores; kernel builds used {:.0} CPU-seconds (core utilisation {:.0}%)\n\n",
                self.cells.len(),
                self.run.wall_seconds,
                self.run.jobs,
                self.run.build_cpu_seconds,
                self.run.core_utilisation * 100.0
            ));
        }
        out.push_str(&format!(
            "{:<22} {:<6} {:<15} {:<18} {}\n",
            "cell", "status", "category", "pass/fail/skip/err", "log"
        ));
        for cell in &self.cells {
            let totals = cell.totals;
            let counts = format!("{}/{}/{}/{}", totals.pass, totals.fail, totals.skip, totals.error);
            let category = cell.category.map(Category::as_str).unwrap_or("-");
            let log = match cell.status {
                Status::Pass | Status::Skip => cell.log.clone(),
                _ if Path::new(&cell.log).exists() && cell.category != Some(Category::Build) => cell.log.clone(),
                _ => cell.build_log.clone().unwrap_or_else(|| cell.log.clone()),
            };
            out.push_str(&format!(
                "{:<22} {:<6} {:<15} {:<18} {}\n",
                [cell.kernel.as_str(), &cell.arch, &cell.profile]
                    .iter()
                    .filter(|part| !part.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/"),
                ui::colored_status(cell.status.as_str()),
                category,
                counts,
                log
            ));
            if let Some(message) = &cell.message {
                for line in message.lines().take(12) {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            for test in cell.tests.iter().filter(|test| matches!(test.status, Status::Fail | Status::Error)) {
                out.push_str(&format!("    {} {}\n", ui::colored_status(test.status.as_str()), test.name));
                for line in test.diagnostics.iter().rev().take(8).rev() {
                    out.push_str(&format!("        # {line}\n"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(status: Status, category: Option<Category>) -> CellResult {
        let mut cell = CellResult {
            id: "7.2-x86_64".into(),
            profile: String::new(),
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
                TestRecord { name: "fifo.load".into(), status: Status::Pass, reason: None, diagnostics: vec![] },
                TestRecord {
                    name: "fifo.roundtrip".into(),
                    status: if status == Status::Fail { Status::Fail } else { Status::Pass },
                    reason: None,
                    diagnostics: vec!["expected 40 bytes, got 39".into()],
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

    #[test]
    fn write_leaves_json_junit_and_html_side_by_side_and_read_gets_the_results_back() {
        let dir = std::env::temp_dir().join(format!("kforge-report-write-{}", std::process::id()));
        let results = Results::new(vec![cell(Status::Fail, Some(Category::TestFail))]);
        let [json, junit, html] = results.write(&dir).unwrap();
        assert_eq!(
            [json.file_name(), junit.file_name(), html.file_name()].map(|name| name.unwrap().to_owned()),
            ["results.json", "junit.xml", "report.html"]
        );
        assert!(fs_err::read_to_string(&html).unwrap().contains("id=\"cell-7.2-x86_64\""));
        assert_eq!(Results::read(&json).unwrap(), results);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn junit_lists_failures_with_diagnostics() {
        let xml = Results::new(vec![cell(Status::Fail, Some(Category::TestFail))]).junit().unwrap();
        assert!(xml.contains("fifo.roundtrip"), "{xml}");
        assert!(xml.contains("<failure"), "{xml}");
        assert!(xml.contains("expected 40 bytes, got 39"), "{xml}");
    }
}
