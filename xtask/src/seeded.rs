//! The seeded-bugs suite: packages with one planted bug each, booted one at a time, and the catch table that says whether each failed with the category it declares.
//!
//! A variant is a package of suite `seeded-bugs` whose Cargo.toml has
//! `[package.metadata.seeded-bug]` with `class` (the bug) and `expect` (the
//! category its cell must fail with). Each variant boots alone, so one bug's
//! report (a panic, KASAN's first-report-only default) cannot hide another's.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::driver::Driver;
use crate::matrix::{self, Cell, RunOptions};
use crate::report::{CellResult, Results, Status};
use crate::{error, progress, project};

/// The suite's name (`cargo xtask test --suite seeded-bugs`).
pub const SUITE: &str = "seeded-bugs";

/// What a variant declares.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// The bug class, e.g. "use-after-free (unsafe raw pointer)".
    pub class: String,
    /// The category the cell must fail with, e.g. "kasan".
    pub expect: String,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    package: ManifestPackage,
}

#[derive(Debug, Deserialize)]
struct ManifestPackage {
    #[serde(default)]
    metadata: Option<ManifestMetadata>,
}

#[derive(Debug, Deserialize)]
struct ManifestMetadata {
    #[serde(rename = "seeded-bug")]
    seeded_bug: Option<Declared>,
}

/// Reads a variant's `[package.metadata.seeded-bug]`.
pub fn declared(driver: &Driver) -> Result<Declared> {
    let path = driver.dir.join("Cargo.toml");
    let manifest: Manifest = project::load_toml(&path)?;
    manifest.package.metadata.and_then(|metadata| metadata.seeded_bug).ok_or_else(|| {
        error::user(format!(
            "{}: a package of suite {SUITE} needs [package.metadata.seeded-bug] with `class` and `expect`",
            path.display()
        ))
    })
}

/// One row of the catch table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub package: String,
    pub class: String,
    pub arch: String,
    pub expected: String,
    /// What the cell produced: its failure category, or its status when it has none.
    pub got: String,
    pub caught: bool,
    /// The cell's own account (its message, or the first lines of its primary finding) and
    /// its console log, so a miss in CI output says why without the results directory.
    pub evidence: String,
}

/// What a variant's cell produced, in the terms variants declare.
pub fn outcome(cell: &CellResult) -> String {
    match (cell.status, cell.category) {
        (_, Some(category)) => category.as_str().to_string(),
        (status, None) => status.as_str().to_string(),
    }
}

/// The cell's message, else its first failing test's first diagnostics, and its console log.
fn evidence(cell: &CellResult) -> String {
    let failing = cell.tests.iter().find(|test| matches!(test.status, Status::Fail | Status::Error));
    let account = match (&cell.message, failing) {
        (Some(message), _) => message.clone(),
        (None, Some(test)) if !test.diagnostics.is_empty() => {
            format!("{}: {}", test.name, test.diagnostics.iter().take(3).cloned().collect::<Vec<_>>().join("\n"))
        }
        (None, Some(test)) => format!("{} failed without diagnostics", test.name),
        (None, None) => "no failing test and no kernel report".to_string(),
    };
    format!("{account}\nconsole: {}", cell.log)
}

/// The catch table: one row per (variant, cell). A variant is caught on a
/// cell when that cell failed with the declared category; a variant that
/// passes (or fails otherwise) is not.
pub fn catch_table(runs: &[(String, Declared, Vec<CellResult>)]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (package, declared, cells) in runs {
        for cell in cells {
            let got = outcome(cell);
            let caught = matches!(cell.status, Status::Fail | Status::Error) && got == declared.expect;
            rows.push(Row {
                package: package.clone(),
                class: declared.class.clone(),
                arch: cell.arch.clone(),
                expected: declared.expect.clone(),
                got,
                caught,
                evidence: evidence(cell),
            });
        }
    }
    rows
}

/// The table as text, with an `N/M caught` line.
pub fn render(rows: &[Row]) -> String {
    let width = rows.iter().map(|row| row.class.len()).max().unwrap_or(0).max("bug class".len());
    let mut out = format!("{:<width$}  {:<9}  {:<13}  {:<13}  result\n", "bug class", "arch", "expected", "got");
    for row in rows {
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:<13}  {:<13}  {}\n",
            row.class,
            row.arch,
            row.expected,
            row.got,
            if row.caught { "caught" } else { "MISSED" }
        ));
    }
    let caught = rows.iter().filter(|row| row.caught).count();
    out.push_str(&format!("{caught}/{} planted bugs caught with the declared category\n", rows.len()));
    out
}

/// Names every miss (class and arch), for the error a failed suite ends with.
pub fn misses(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|row| !row.caught)
        .map(|row| {
            let evidence = row.evidence.lines().map(|line| format!("\n      {line}")).collect::<String>();
            format!("{} on {}: expected {}, got {}{evidence}", row.class, row.arch, row.expected, row.got)
        })
        .collect()
}

/// Boots each variant alone on every cell (same kernel as the default
/// matrix: selecting packages never changes it) and returns the catch table.
/// Each variant's results go to `<output>/seeded-bugs/<package>/`.
pub fn run(cells: &[Cell], options: &RunOptions, variants: &[Driver]) -> Result<Vec<Row>> {
    let mut runs = Vec::new();
    for variant in variants {
        let declared = declared(variant)?;
        progress::status("Seeded", format!("{} ({}), expecting {}", variant.name, declared.class, declared.expect));
        let output = options.output.join(SUITE).join(&variant.name);
        let variant_options = RunOptions { output: output.clone(), drivers: vec![variant.clone()], ..options.clone() };
        let results = matrix::run(cells, &variant_options)?;
        write(&results, &output).with_context(|| format!("failed to write the results of {}", variant.name))?;
        runs.push((variant.name.clone(), declared, results.cells));
    }
    Ok(catch_table(&runs))
}

fn write(results: &Results, dir: &Path) -> Result<()> {
    results.write(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Timings, Totals};
    use crate::stage::Category;

    fn cell(arch: &str, status: Status, category: Option<Category>) -> CellResult {
        CellResult {
            id: format!("7.2-{arch}-debug"),
            profile: "debug".into(),
            boot: "direct".into(),
            arch: arch.into(),
            kernel: "7.2".into(),
            toolchain: "sid".into(),
            status,
            category,
            message: None,
            log: String::new(),
            build_log: None,
            ktap: None,
            tests: vec![],
            totals: Totals::default(),
            timings: Timings::default(),
        }
    }

    fn declared(class: &str, expect: &str) -> Declared {
        Declared { class: class.into(), expect: expect.into() }
    }

    #[test]
    fn a_variant_is_caught_only_by_failing_with_its_category() {
        let runs = vec![
            (
                "seeded-overflow".to_string(),
                declared("arithmetic overflow", "panic"),
                vec![cell("x86_64", Status::Fail, Some(Category::Panic)), cell("arm64", Status::Pass, None)],
            ),
            (
                "seeded-lost-update".to_string(),
                declared("lost update", "test-fail"),
                vec![cell("x86_64", Status::Fail, Some(Category::Panic))],
            ),
        ];
        let rows = catch_table(&runs);
        let summary: Vec<(&str, &str, bool)> =
            rows.iter().map(|row| (row.arch.as_str(), row.got.as_str(), row.caught)).collect();
        assert_eq!(summary, [("x86_64", "panic", true), ("arm64", "pass", false), ("x86_64", "panic", false)]);
        assert_eq!(
            misses(&rows),
            [
                "arithmetic overflow on arm64: expected panic, got pass\n      no failing test and no kernel report\n      console: ",
                "lost update on x86_64: expected test-fail, got panic\n      no failing test and no kernel report\n      console: "
            ]
        );
        let text = render(&rows);
        assert!(text.contains("arithmetic overflow  x86_64     panic          panic          caught"), "{text}");
        assert!(text.contains("arm64      panic          pass           MISSED"), "{text}");
        assert!(text.ends_with("1/3 planted bugs caught with the declared category\n"), "{text}");
    }

    #[test]
    fn a_skipped_or_errored_cell_is_not_a_catch() {
        let runs = vec![(
            "seeded-x".to_string(),
            declared("x", "kasan"),
            vec![cell("arm", Status::Skip, None), cell("x86_64", Status::Error, Some(Category::Build))],
        )];
        let rows = catch_table(&runs);
        assert!(rows.iter().all(|row| !row.caught));
        assert_eq!(rows[1].got, "build");
    }

    #[test]
    fn every_committed_variant_declares_class_and_category() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let variants: Vec<Driver> =
            crate::driver::discover(&repo).unwrap().into_iter().filter(|driver| driver.suite() == SUITE).collect();
        assert!(variants.len() >= 9, "{} variants", variants.len());
        let known = ["lockdep", "kasan", "atomic-sleep", "rust-panic", "overflow", "memleak", "dma", "warning", "hang"];
        for variant in &variants {
            let declared = super::declared(variant).unwrap();
            assert!(!declared.class.is_empty(), "{}", variant.name);
            assert!(
                known.contains(&declared.expect.as_str()) || declared.expect == "test-fail",
                "{}: {}",
                variant.name,
                declared.expect
            );
        }
    }
}
