//! Merges per-cell results.json files (one per CI job) into one run: results.json, junit.xml and summary.md.
//!
//! Nothing is dropped silently: an input that cannot be read or parsed, a
//! partial one (`complete: false`), an empty one and an expected cell that
//! no input holds each become a problem line naming the file or cell, and
//! make the merged run incomplete (exit code 2).
//!
//! A cell's own verdict is not trusted either: its status and totals are
//! recomputed from its tests ([`inconsistency`]). A cell whose claim
//! disagrees (`pass` with a failing test, totals that do not add up) is
//! kept as `error` with the reason, and is a problem naming the cell and
//! its file, so the merge exits 2.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::report::{CellResult, Results, RunSummary, Status, Totals};
use crate::stage::Category;
use crate::{cache, error};

/// The Markdown summary's file name, next to results.json and junit.xml.
pub const SUMMARY_FILE: &str = "summary.md";

/// At most this many failing tests are listed per cell in summary.md.
const MAX_FAILURES_PER_CELL: usize = 50;

/// The merged run and what was wrong with its inputs.
#[derive(Debug)]
pub struct Merged {
    pub results: Results,
    /// One line per problem, starting with the file (or cell) it is about.
    pub problems: Vec<String>,
}

/// An input is a directory holding results.json (one CI job's output) or the file itself.
pub fn results_file(input: &Path) -> PathBuf {
    if input.is_dir() { input.join("results.json") } else { input.to_path_buf() }
}

/// Merges the results in `inputs`. Cells keep the inputs' order, or the
/// order of `expect` (cell ids) when it is given; every id of `expect` that
/// no input holds is a problem. The only error is a cell found twice, since
/// then no one result of it can be trusted.
pub fn merge(inputs: &[PathBuf], expect: &[String]) -> Result<Merged> {
    let mut cells: Vec<CellResult> = Vec::new();
    // The file each cell came from, index for index.
    let mut origins: Vec<PathBuf> = Vec::new();
    let mut problems = Vec::new();
    for input in inputs {
        let path = results_file(input);
        let results = match read(&path) {
            Ok(results) => results,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if !results.complete {
            problems.push(format!(
                "{}: partial results (`complete: false`): the run that wrote it did not finish",
                path.display()
            ));
        }
        if results.cells.is_empty() {
            problems.push(format!("{}: holds no cells", path.display()));
        }
        for mut cell in results.cells {
            if let Some(reason) = inconsistency(&cell) {
                problems.push(format!("{}: cell {}: {reason}; refusing its verdict", path.display(), cell.id));
                cell.status = Status::Error;
                cell.category = Some(Category::Infrastructure);
                cell.message = Some(format!("inconsistent results.json ({}): {reason}", path.display()));
                cell.recount();
            }
            if let Some(index) = cells.iter().position(|known| known.id == cell.id) {
                let message = if origins[index] == path {
                    format!("cell {} appears twice in {}", cell.id, path.display())
                } else {
                    format!("cell {} appears in both {} and {}", cell.id, origins[index].display(), path.display())
                };
                return Err(error::user_hint(message, "give each cell's results to `ci merge` once"));
            }
            cells.push(cell);
            origins.push(path.clone());
        }
    }
    for id in expect {
        if !cells.iter().any(|cell| &cell.id == id) {
            problems.push(format!("cell {id}: no input holds its results (it is in --expect)"));
        }
    }
    if !expect.is_empty() {
        // Stable: cells outside `expect` stay at the end, in input order.
        cells.sort_by_key(|cell| expect.iter().position(|id| id == &cell.id).unwrap_or(expect.len()));
    }
    // The cells ran on different machines: the run has no one wall time or
    // core count, only the sum of the cells' build CPU time.
    let mut results = Results::with_summary(cells, RunSummary::default());
    results.complete = problems.is_empty();
    Ok(Merged { results, problems })
}

/// What is wrong with a cell's own status and totals, judged against its
/// tests the way `matrix::evaluate` derives them: any failing or errored
/// test makes the cell `fail` or `error`; `pass` needs a test and only
/// passing or skipped tests; `skip` only skipped tests; `fail` and `error`
/// need a failing test or a category saying why; `pass` and `skip` carry
/// no category; the totals are the counts of the tests.
pub fn inconsistency(cell: &CellResult) -> Option<String> {
    let count = |status: Status| cell.tests.iter().filter(|test| test.status == status).count();
    let recounted = Totals {
        pass: count(Status::Pass),
        fail: count(Status::Fail),
        skip: count(Status::Skip),
        error: count(Status::Error),
    };
    let failing = cell.tests.iter().find(|test| matches!(test.status, Status::Fail | Status::Error));
    let passing = cell.tests.iter().find(|test| test.status == Status::Pass);
    let claimed = cell.status.as_str();
    match (cell.status, failing, cell.category) {
        (Status::Pass | Status::Skip, Some(test), _) => {
            return Some(format!("says `{claimed}` but test {} says `{}`", test.name, test.status.as_str()));
        }
        (Status::Pass | Status::Skip, None, Some(category)) => {
            return Some(format!("says `{claimed}` but has failure category `{}`", category.as_str()));
        }
        (Status::Pass, None, None) if cell.tests.is_empty() => {
            return Some("says `pass` but holds no tests".to_string());
        }
        (Status::Fail | Status::Error, None, None) => {
            return Some(format!("says `{claimed}` but no test failed and no category says why"));
        }
        _ => {}
    }
    if let (Status::Skip, Some(test)) = (cell.status, passing) {
        return Some(format!("says `skip` but test {} says `pass`", test.name));
    }
    if cell.totals != recounted {
        let show = |totals: Totals| {
            format!("pass {} fail {} skip {} error {}", totals.pass, totals.fail, totals.skip, totals.error)
        };
        return Some(format!("totals ({}) disagree with its tests ({})", show(cell.totals), show(recounted)));
    }
    None
}

/// Reads one results.json; the error is the problem line.
fn read(path: &Path) -> Result<Results, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: cannot read it: {err}", path.display()))?;
    serde_json::from_str(&text).map_err(|err| format!("{}: not a kforge results.json: {err}", path.display()))
}

/// Writes results.json, junit.xml and summary.md into `out`.
pub fn write(merged: &Merged, out: &Path) -> Result<()> {
    merged.results.write(out)?;
    cache::write_atomic(&out.join(SUMMARY_FILE), markdown(merged))?;
    Ok(())
}

/// The Markdown summary (for `$GITHUB_STEP_SUMMARY`): the input problems,
/// a table of cells, then what failed in each failing cell.
pub fn markdown(merged: &Merged) -> String {
    let results = &merged.results;
    let count = |status: Status| results.cells.iter().filter(|cell| cell.status == status).count();
    let mut out = String::from("## kforge results\n\n");
    out.push_str(&format!(
        "{} cell(s): {} passed, {} failed, {} errored, {} skipped.\n\n",
        results.cells.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Error),
        count(Status::Skip)
    ));
    if !merged.problems.is_empty() {
        out.push_str("**Incomplete:** these results are missing or broken:\n\n");
        for problem in &merged.problems {
            out.push_str(&format!("- {}\n", escape(problem)));
        }
        out.push('\n');
    }
    out.push_str("| cell | arch | kernel | status | category | pass | fail | skip | error |\n");
    out.push_str("|---|---|---|---|---|---:|---:|---:|---:|\n");
    for cell in &results.cells {
        let totals = cell.totals;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            escape(&cell.id),
            escape(&cell.arch),
            escape(&cell.kernel),
            cell.status.as_str(),
            cell.category.map(|category| category.as_str()).unwrap_or("-"),
            totals.pass,
            totals.fail,
            totals.skip,
            totals.error
        ));
    }
    let failing: Vec<&CellResult> =
        results.cells.iter().filter(|cell| matches!(cell.status, Status::Fail | Status::Error)).collect();
    if !failing.is_empty() {
        out.push_str("\n### Failures\n");
    }
    for cell in failing {
        let category = cell.category.map(|category| category.as_str()).unwrap_or("-");
        out.push_str(&format!("\n#### {} ({}, {category})\n\n", escape(&cell.id), cell.status.as_str()));
        if let Some(message) = &cell.message {
            out.push_str(&fenced(message.lines().take(12)));
        }
        let tests: Vec<_> =
            cell.tests.iter().filter(|test| matches!(test.status, Status::Fail | Status::Error)).collect();
        for test in tests.iter().take(MAX_FAILURES_PER_CELL) {
            out.push_str(&format!("- `{}` ({})\n", test.name.replace('`', "'"), test.status.as_str()));
            let start = test.diagnostics.len().saturating_sub(8);
            if start < test.diagnostics.len() {
                out.push('\n');
                out.push_str(&fenced(test.diagnostics[start..].iter().map(String::as_str)));
            }
        }
        if tests.len() > MAX_FAILURES_PER_CELL {
            out.push_str(&format!("- and {} more (see junit.xml)\n", tests.len() - MAX_FAILURES_PER_CELL));
        }
    }
    out
}

/// Text safe in a table cell or list item: no `|`, no line breaks.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A fenced code block longer than any run of backticks inside it.
fn fenced<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let lines: Vec<&str> = lines.collect();
    let longest = lines.iter().flat_map(|line| line.split(|c| c != '`')).map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{}\n{fence}\n\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{TestRecord, Timings};

    fn test(name: &str, status: Status, diagnostics: &[&str]) -> TestRecord {
        TestRecord {
            name: name.to_string(),
            status,
            reason: (status == Status::Skip).then(|| "needs PCI".to_string()),
            diagnostics: diagnostics.iter().map(|line| line.to_string()).collect(),
            category: None,
        }
    }

    fn cell(arch: &str, status: Status, category: Option<Category>, tests: Vec<TestRecord>) -> CellResult {
        let id = format!("7.2-{arch}");
        let mut cell = CellResult {
            log: format!("target/kforge/cells/{id}/console.log"),
            id,
            profile: String::new(),
            boot: String::new(),
            arch: arch.to_string(),
            kernel: "7.2".to_string(),
            toolchain: "sid".to_string(),
            status,
            category,
            message: (status == Status::Error).then(|| "kernel build for 7.2/riscv failed".to_string()),
            build_log: None,
            ktap: None,
            tests,
            totals: Totals::default(),
            timings: Timings {
                build_seconds: 400.0,
                build_cpu_seconds: 700.0,
                boot_seconds: 3.0,
                kernel_start_seconds: None,
                ccache: Some(crate::ccache::Counts { hits: 9, misses: 1, remote_hits: 0 }),
            },
        };
        cell.recount();
        cell
    }

    /// What one `cargo xtask test` over four cells would report.
    fn cells() -> Vec<CellResult> {
        vec![
            cell("x86_64", Status::Pass, None, vec![test("fifo.load", Status::Pass, &[])]),
            cell(
                "arm64",
                Status::Fail,
                Some(Category::TestFail),
                vec![
                    test("fifo.load", Status::Pass, &[]),
                    test("fifo.roundtrip", Status::Fail, &["expected 40 bytes, got 39"]),
                ],
            ),
            cell("um", Status::Pass, None, vec![test("edu.load", Status::Skip, &[])]),
            cell("riscv", Status::Error, Some(Category::Build), vec![]),
        ]
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kforge-merge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes each cell as its own run (one CI job's output) and returns the directories.
    fn per_cell_dirs(base: &Path, cells: &[CellResult]) -> Vec<PathBuf> {
        cells
            .iter()
            .map(|cell| {
                let dir = base.join(format!("kforge-results-{}", cell.id));
                Results::new(vec![cell.clone()]).write(&dir).unwrap();
                dir
            })
            .collect()
    }

    fn ids(results: &Results) -> Vec<&str> {
        results.cells.iter().map(|cell| cell.id.as_str()).collect()
    }

    #[test]
    fn merging_per_cell_runs_gives_what_one_run_over_the_cells_gives() {
        let base = scratch("same");
        // One run over the four cells, as `cargo xtask test` writes it.
        let combined = Results::with_summary(cells(), RunSummary::new(1800.0, 2));
        let mut inputs = per_cell_dirs(&base, &combined.cells);
        inputs.reverse();
        // A results.json may also be named directly.
        inputs[0] = inputs[0].join("results.json");
        let expect: Vec<String> = combined.cells.iter().map(|cell| cell.id.clone()).collect();

        let merged = merge(&inputs, &expect).unwrap();
        assert!(merged.problems.is_empty(), "{:?}", merged.problems);
        assert_eq!(merged.results.cells, combined.cells);
        assert!(merged.results.complete);
        assert_eq!(merged.results.run.build_cpu_seconds, combined.run.build_cpu_seconds);
        assert_eq!(merged.results.run.ccache, combined.run.ccache);
        assert_eq!(merged.results.run.ccache.map(|counts| counts.hits), Some(9 * combined.cells.len() as u64));
        assert_eq!(merged.results.exit_code(), combined.exit_code());
        assert_eq!(merged.results.exit_code(), 2, "the riscv build error makes the run exit 2");
        assert_eq!(merged.results.junit().unwrap(), combined.junit().unwrap());

        // Without --expect the inputs' order is kept; the cells are the same.
        let unordered = merge(&inputs, &[]).unwrap();
        assert_eq!(ids(&unordered.results), ["7.2-riscv", "7.2-um", "7.2-arm64", "7.2-x86_64"]);

        let out = base.join("merged");
        write(&merged, &out).unwrap();
        let written: Results =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(written, merged.results);
        assert!(out.join("junit.xml").is_file() && out.join(SUMMARY_FILE).is_file());
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn exit_code_follows_the_cells() {
        let base = scratch("exit");
        let inputs = per_cell_dirs(&base, &cells()[..3]);
        let merged = merge(&inputs, &[]).unwrap();
        assert!(merged.results.complete);
        assert_eq!(merged.results.exit_code(), 1, "a failed test and no infrastructure error");
        let passing = merge(&[inputs[0].clone(), inputs[2].clone()], &[]).unwrap();
        assert_eq!(passing.results.exit_code(), 0);
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn broken_partial_and_missing_inputs_are_reported_by_path() {
        let base = scratch("broken");
        let good = per_cell_dirs(&base, &cells()[..1]);
        let corrupt = base.join("corrupt.json");
        std::fs::write(&corrupt, "{\"kforge_version\": \"0.1.0\", \"cells\": [").unwrap();
        let wrong_shape = base.join("wrong.json");
        std::fs::write(&wrong_shape, "{\"cells\": 3}").unwrap();
        let mut partial = Results::new(vec![cells()[1].clone()]);
        partial.complete = false;
        let partial_dir = base.join("partial");
        partial.write(&partial_dir).unwrap();
        let empty_dir = base.join("empty");
        Results::new(vec![]).write(&empty_dir).unwrap();
        let no_results = base.join("no-results");
        std::fs::create_dir_all(&no_results).unwrap();

        let inputs = vec![
            good[0].clone(),
            corrupt.clone(),
            wrong_shape.clone(),
            partial_dir.clone(),
            empty_dir.clone(),
            no_results.clone(),
        ];
        let expect = vec!["7.2-x86_64".to_string(), "7.2-arm64".to_string(), "7.2-s390".to_string()];
        let merged = merge(&inputs, &expect).unwrap();

        let problems = merged.problems.join("\n");
        assert_eq!(merged.problems.len(), 6, "{problems}");
        assert!(problems.contains(&format!("{}: not a kforge results.json: EOF", corrupt.display())), "{problems}");
        assert!(problems.contains(&format!("{}: not a kforge results.json", wrong_shape.display())), "{problems}");
        assert!(
            problems.contains(&format!("{}: partial results", partial_dir.join("results.json").display())),
            "{problems}"
        );
        assert!(
            problems.contains(&format!("{}: holds no cells", empty_dir.join("results.json").display())),
            "{problems}"
        );
        assert!(
            problems.contains(&format!("{}: cannot read it", no_results.join("results.json").display())),
            "{problems}"
        );
        assert!(problems.contains("cell 7.2-s390: no input holds its results"), "{problems}");
        // The usable cells are kept, in --expect's order; the run is incomplete.
        assert_eq!(ids(&merged.results), ["7.2-x86_64", "7.2-arm64"]);
        assert!(!merged.results.complete);
        assert_eq!(merged.results.exit_code(), 2);
        let summary = markdown(&merged);
        assert!(summary.contains("**Incomplete:**") && summary.contains(&corrupt.display().to_string()), "{summary}");
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn a_cell_in_two_inputs_is_an_error_naming_both() {
        let base = scratch("duplicate");
        let dirs = per_cell_dirs(&base, &cells()[..1]);
        let copy = base.join("copy");
        Results::new(vec![cells()[0].clone()]).write(&copy).unwrap();
        let err = merge(&[dirs[0].clone(), copy.clone()], &[]).unwrap_err();
        let message = format!("{err}");
        assert!(message.contains("cell 7.2-x86_64 appears in both"), "{message}");
        assert!(message.contains(&dirs[0].join("results.json").display().to_string()), "{message}");
        assert!(message.contains(&copy.join("results.json").display().to_string()), "{message}");
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn summary_has_the_table_and_the_failing_tests() {
        let merged = Merged { results: Results::new(cells()), problems: vec![] };
        let summary = markdown(&merged);
        assert!(
            summary.contains("| cell | arch | kernel | status | category | pass | fail | skip | error |"),
            "{summary}"
        );
        assert!(summary.contains("| 7.2-arm64 | arm64 | 7.2 | fail | test-fail | 1 | 1 | 0 | 0 |"), "{summary}");
        assert!(summary.contains("| 7.2-um | um | 7.2 | pass | - | 0 | 0 | 1 | 0 |"), "{summary}");
        assert!(summary.contains("#### 7.2-arm64 (fail, test-fail)"), "{summary}");
        assert!(summary.contains("- `fifo.roundtrip` (fail)\n\n```text\nexpected 40 bytes, got 39\n```"), "{summary}");
        assert!(
            summary.contains("#### 7.2-riscv (error, build)\n\n```text\nkernel build for 7.2/riscv failed\n```"),
            "{summary}"
        );
        assert!(!summary.contains("#### 7.2-x86_64"), "{summary}");
        assert!(!summary.contains("Incomplete"), "{summary}");
    }

    #[test]
    fn a_cell_whose_claim_disagrees_with_its_tests_is_refused() {
        let consistent = cells();
        for cell in &consistent {
            assert_eq!(inconsistency(cell), None, "{}", cell.id);
        }
        let forged = |edit: &dyn Fn(&mut CellResult)| {
            let mut cell = consistent[1].clone();
            edit(&mut cell);
            inconsistency(&cell).expect("a forged cell is caught")
        };
        let pass_with_failure = forged(&|cell| {
            cell.status = Status::Pass;
            cell.category = None;
        });
        assert_eq!(pass_with_failure, "says `pass` but test fifo.roundtrip says `fail`");
        assert!(forged(&|cell| cell.totals.fail = 0).starts_with("totals (pass 1 fail 0 skip 0 error 0) disagree"));
        let unexplained = forged(&|cell| {
            cell.tests[1].status = Status::Pass;
            cell.category = None;
        });
        assert_eq!(unexplained, "says `fail` but no test failed and no category says why");
        let mut skip = consistent[2].clone();
        skip.status = Status::Pass;
        assert_eq!(inconsistency(&skip), None, "a pass with skipped tests only is allowed");
        skip.status = Status::Skip;
        skip.tests.push(test("edu.io", Status::Pass, &[]));
        skip.recount();
        assert_eq!(inconsistency(&skip).unwrap(), "says `skip` but test edu.io says `pass`");
        let mut empty = consistent[0].clone();
        empty.tests.clear();
        empty.recount();
        assert_eq!(inconsistency(&empty).unwrap(), "says `pass` but holds no tests");

        let base = scratch("forged");
        let mut cells = cells();
        cells[1].status = Status::Pass;
        cells[1].category = None;
        let inputs = per_cell_dirs(&base, &cells);
        let merged = merge(&inputs, &[]).unwrap();
        assert_eq!(merged.problems.len(), 1, "{:?}", merged.problems);
        let expected = format!(
            "{}: cell 7.2-arm64: says `pass` but test fifo.roundtrip says `fail`",
            inputs[1].join("results.json").display()
        );
        assert!(merged.problems[0].starts_with(&expected), "{:?}", merged.problems);
        let arm64 = &merged.results.cells[1];
        assert_eq!((arm64.status, arm64.category), (Status::Error, Some(Category::Infrastructure)));
        assert_eq!(merged.results.exit_code(), 2);
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn code_fences_outgrow_backticks_in_the_text() {
        assert_eq!(fenced(["a ```` b"].into_iter()), "`````text\na ```` b\n`````\n\n");
        assert_eq!(escape("a|b\nc"), "a\\|b c");
    }
}
