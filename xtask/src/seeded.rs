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
    /// Why the variant cannot be caught on this cell, when it cannot: the
    /// detector its category needs is declared missing there (a
    /// `# kforge-no-detector:` line), or the variant could not run there (its
    /// cell or every test of it skipped, with the tree's reason). Such a row
    /// is neither a catch nor a miss.
    pub not_applicable: Option<String>,
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

/// Why `declared` cannot be caught on `cell`, if it cannot (see `Row::not_applicable`).
fn not_applicable(cell: &CellResult, declared: &Declared) -> Option<String> {
    let detector = format!("kforge.detector.{}", declared.expect);
    if let Some(missing) = cell.tests.iter().find(|test| test.name == detector && test.status == Status::Skip) {
        let reason = missing.reason.clone().unwrap_or_default();
        return Some(format!("no {} detector on {}: {reason}", declared.expect, cell.arch));
    }
    if matches!(cell.status, Status::Fail | Status::Error) {
        return None;
    }
    let ran = cell.tests.iter().filter(|test| !test.name.starts_with("kforge.detector."));
    let skipped: Vec<_> = ran.clone().filter(|test| test.status == Status::Skip).collect();
    let every_test_skipped = !skipped.is_empty() && skipped.len() == ran.count();
    if cell.status == Status::Skip || every_test_skipped {
        let reason = cell.message.clone().or_else(|| skipped.first().and_then(|test| test.reason.clone()));
        return Some(format!("cannot run on {}: {}", cell.arch, reason.unwrap_or_else(|| "skipped".into())));
    }
    None
}

/// The catch table: one row per (variant, cell). A variant is caught on a
/// cell when that cell failed with the declared category; a variant that
/// passes (or fails otherwise) is not, unless it is not applicable there.
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
                not_applicable: if caught { None } else { not_applicable(cell, declared) },
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
            match (&row.not_applicable, row.caught) {
                (_, true) => "caught".to_string(),
                (Some(reason), false) => format!("n/a: {reason}"),
                (None, false) => "MISSED".to_string(),
            }
        ));
    }
    let caught = rows.iter().filter(|row| row.caught).count();
    let applicable = rows.iter().filter(|row| row.caught || row.not_applicable.is_none()).count();
    out.push_str(&format!("{caught}/{applicable} planted bugs caught with the declared category"));
    match rows.len() - applicable {
        0 => out.push('\n'),
        others => out.push_str(&format!(" ({others} not applicable: no detector, or cannot run there)\n")),
    }
    out
}

/// Names every miss (class and arch), for the error a failed suite ends with.
pub fn misses(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|row| !row.caught && row.not_applicable.is_none())
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
    use crate::report::{TestRecord, Timings, Totals};
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
        // The error is a miss; the skip is not applicable.
        assert_eq!(rows[1].not_applicable, None);
        assert_eq!(misses(&rows).len(), 1);
    }

    fn record(name: &str, status: Status, reason: Option<&str>) -> TestRecord {
        TestRecord { name: name.into(), status, reason: reason.map(Into::into), diagnostics: vec![], category: None }
    }

    #[test]
    fn a_variant_whose_detector_is_missing_or_that_cannot_run_is_not_applicable_but_a_pass_is_a_miss() {
        let mut no_kasan = cell("arm", Status::Pass, None);
        no_kasan.tests = vec![
            record(
                "kforge.detector.kasan",
                Status::Skip,
                Some("HAVE_RUST depends on !KASAN (declared in debug-arm.config)"),
            ),
            record("seeded-uaf.load", Status::Pass, None),
        ];
        let mut no_pci = cell("um", Status::Pass, None);
        no_pci.tests = vec![record("seeded-dma.load", Status::Skip, Some("needs PCI, which um has not"))];
        // lockdep is missing on this cell, but the variant expects kasan: a pass stays a miss.
        let mut other_missing = cell("riscv", Status::Pass, None);
        other_missing.tests = vec![
            record("kforge.detector.lockdep", Status::Skip, Some("why")),
            record("seeded-uaf.load", Status::Pass, None),
        ];
        let runs = vec![(
            "seeded-uaf".to_string(),
            declared("use-after-free", "kasan"),
            vec![no_kasan, no_pci, other_missing, cell("x86_64", Status::Fail, Some(Category::Kasan))],
        )];
        let rows = catch_table(&runs);
        assert_eq!(
            rows[0].not_applicable.as_deref(),
            Some("no kasan detector on arm: HAVE_RUST depends on !KASAN (declared in debug-arm.config)")
        );
        assert_eq!(rows[1].not_applicable.as_deref(), Some("cannot run on um: needs PCI, which um has not"));
        assert_eq!(rows[2].not_applicable, None);
        assert!(rows[3].caught);
        assert_eq!(misses(&rows).len(), 1, "{:?}", misses(&rows));
        assert!(misses(&rows)[0].starts_with("use-after-free on riscv: expected kasan, got pass"));
        let text = render(&rows);
        assert!(text.contains("n/a: no kasan detector on arm"), "{text}");
        assert!(text.ends_with("1/2 planted bugs caught with the declared category (2 not applicable: no detector, or cannot run there)\n"), "{text}");
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
