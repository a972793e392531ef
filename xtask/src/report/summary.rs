//! The summary table printed after a run, rendered from the result model (the commands print it).

use std::path::Path;

use crate::report::model::{Results, Status};
use crate::stage::Category;

/// The summary table: a line on the run's use of the machine (when timed),
/// then one row per cell with its failed tests and their last diagnostics.
/// `color` paints statuses with ANSI colours (the terminal's choice, made by the caller).
pub fn render(results: &Results, color: bool) -> String {
    let status = |word: &str| colored_status(word, color);
    let mut out = String::new();
    if results.run.wall_seconds > 0.0 {
        out.push_str(&format!(
            "{} cell(s) in {:.0}s on {} cores; kernel builds used {:.0} CPU-seconds (core utilisation {:.0}%)\n",
            results.cells.len(),
            results.run.wall_seconds,
            results.run.jobs,
            results.run.build_cpu_seconds,
            results.run.core_utilisation * 100.0
        ));
        if let Some(counts) = &results.run.ccache {
            out.push_str(&format!("ccache: {}\n", counts.describe()));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{:<22} {:<6} {:<15} {:<18} {}\n",
        "cell", "status", "category", "pass/fail/skip/err", "log"
    ));
    for cell in &results.cells {
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
            status(cell.status.as_str()),
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
            out.push_str(&format!("    {} {}\n", status(test.status.as_str()), test.name));
            for line in test.diagnostics.iter().rev().take(8).rev() {
                out.push_str(&format!("        # {line}\n"));
            }
        }
    }
    out
}

/// A status word, green/red/yellow when `color`.
fn colored_status(word: &str, color: bool) -> String {
    let code = match word {
        "pass" => "32",
        "fail" | "error" => "1;31",
        "skip" => "33",
        _ => return word.to_string(),
    };
    if color { format!("\x1b[{code}m{word}\x1b[0m") } else { word.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::tests::cell;

    #[test]
    fn summary_lists_cells_and_failed_tests_with_their_diagnostics() {
        let results = Results::new(vec![cell(Status::Fail, Some(Category::TestFail))]);
        expect_test::expect![[r#"
            cell                   status category        pass/fail/skip/err log
            7.2/x86_64             fail   test-fail       1/1/0/0            target/kforge/cells/7.2-x86_64/console.log
                fail fifo.roundtrip
                    # expected 40 bytes, got 39
        "#]]
        .assert_eq(&render(&results, false));
    }

    #[test]
    fn a_timed_run_shows_its_machine_use_and_the_ccache_hit_rate_of_its_kernel_builds() {
        let mut cells = vec![cell(Status::Pass, None), cell(Status::Pass, None)];
        cells[0].timings.build_cpu_seconds = 300.0;
        cells[0].timings.ccache = Some(crate::ccache::Counts { hits: 900, misses: 100, remote_hits: 850 });
        cells[1].timings.build_cpu_seconds = 100.0;
        let run = Results::with_summary(cells.clone(), crate::report::model::RunSummary::new(200.0, 2));
        let text = render(&run, false);
        assert!(
            text.starts_with(
                "2 cell(s) in 200s on 2 cores; kernel builds used 400 CPU-seconds (core utilisation 100%)\n\
                 ccache: 900 of 1000 C compilations hit (90%), 850 from remote storage\n\ncell "
            ),
            "{text}"
        );
        cells[0].timings.ccache = None;
        let without = render(&Results::with_summary(cells, crate::report::model::RunSummary::new(200.0, 2)), false);
        assert!(!without.contains("ccache"), "{without}");
        assert!(without.contains("(core utilisation 100%)\n\ncell "), "{without}");
    }

    #[test]
    fn color_paints_only_the_status_words() {
        let results = Results::new(vec![cell(Status::Fail, Some(Category::TestFail))]);
        let painted = render(&results, true);
        assert!(painted.contains("\x1b[1;31mfail\x1b[0m fifo.roundtrip"), "{painted:?}");
        assert!(!painted.contains("\x1b[32m"), "{painted:?}");
    }
}
