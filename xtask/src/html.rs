//! The HTML report (report.html): one self-contained page with the matrix at a glance and every test of every cell.
//!
//! The page has inline CSS and nothing else: no scripts, no fonts, no images.
//! Its Content-Security-Policy forbids everything but that inline style, so
//! even a mistake in escaping could not run anything; test names and
//! diagnostics come from guest consoles and are escaped all the same.
//!
//! Links to a cell's logs are relative when the log lies under the report's
//! directory (so the directory can be moved or archived whole) and `file://`
//! URLs otherwise. Only files that exist when the report is written get a link.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;

use crate::error;
use crate::report::{CellResult, Results, Status, TestRecord, Totals};

/// Matrix cell backgrounds. `xtask/tests/html_report.rs` looks for these
/// colours in a screenshot; change both together.
const PASS_COLOUR: &str = "#1a7f37";
const FAIL_COLOUR: &str = "#cf222e";
const SKIP_COLOUR: &str = "#8c959f";

/// Writes the report for `results` to `path`, linking logs relative to its directory.
pub fn write(results: &Results, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs_err::create_dir_all(dir)?;
    crate::cache::write_atomic(path, render(results, dir))
}

/// The whole page. `dir` is where it will live: links to logs are relative to it.
pub fn render(results: &Results, dir: &Path) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape(&title(results))));
    out.push_str("<style>\n");
    out.push_str(&stylesheet());
    out.push_str("</style>\n</head>\n<body>\n");
    out.push_str(&format!("<h1>{}</h1>\n", escape(&title(results))));
    if !results.complete {
        out.push_str(
            "<p class=\"banner incomplete\" id=\"incomplete\"><strong>Incomplete run.</strong> \
             Some cells are missing from these results (the run was interrupted, or a cell's \
             results could not be read); the matrix shows only what finished.</p>\n",
        );
    }
    out.push_str(&summary(results));
    out.push_str(&matrix(results, dir));
    out.push_str(&failures(results));
    for cell in &results.cells {
        out.push_str(&cell_section(cell, dir));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// "kforge: 6 of 7 cells passed".
fn title(results: &Results) -> String {
    let passed = results.cells.iter().filter(|cell| cell.status == Status::Pass).count();
    format!("kforge: {passed} of {} cells passed", results.cells.len())
}

fn stylesheet() -> String {
    format!(
        "body {{ font: 14px/1.45 \"Liberation Sans\", Arial, sans-serif; margin: 24px; color: #1f2328; background: #fff; }}
h1 {{ font-size: 22px; margin: 0 0 8px; }}
h2 {{ font-size: 17px; margin: 28px 0 6px; }}
a {{ color: #0969da; }}
.banner {{ padding: 8px 12px; border-radius: 6px; margin: 8px 0; }}
.banner.incomplete {{ background: #fff8c5; border: 1px solid #d4a72c; }}
.verdict {{ font-weight: 700; margin: 4px 0; }}
.verdict.pass {{ color: #116329; }}
.verdict.fail, .verdict.error {{ color: #a40e26; }}
.run {{ color: #57606a; margin: 2px 0 14px; }}
table.matrix {{ border-collapse: separate; border-spacing: 6px; margin-left: -6px; }}
table.matrix th {{ text-align: left; padding: 4px 8px; white-space: nowrap; }}
table.matrix th small {{ font-weight: 400; color: #57606a; }}
td.cell {{ width: 230px; padding: 8px 12px; vertical-align: top; border-radius: 6px; color: #fff; }}
td.cell.pass {{ background: {PASS_COLOUR}; }}
td.cell.fail, td.cell.error {{ background: {FAIL_COLOUR}; }}
td.cell.skip {{ background: {SKIP_COLOUR}; }}
td.cell.none {{ background: #f6f8fa; color: #57606a; border: 1px dashed #d0d7de; }}
td.cell a {{ color: #fff; }}
td.cell .status {{ font-weight: 700; font-size: 15px; text-transform: uppercase; text-decoration: none; }}
td.cell .category {{ font-weight: 700; }}
td.cell .links a {{ margin-right: 10px; }}
.meta {{ color: #57606a; margin: 2px 0 6px; }}
.meta a {{ margin-right: 10px; }}
table.tests {{ border-collapse: collapse; width: 100%; max-width: 1100px; }}
table.tests th, table.tests td {{ text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #d0d7de; }}
table.tests td.name {{ font-family: \"Liberation Mono\", monospace; white-space: nowrap; }}
table.tests th:nth-child(1) {{ width: 240px; }}
table.tests th:nth-child(2) {{ width: 70px; }}
.badge {{ display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 700; text-transform: uppercase; }}
.badge.pass {{ background: #dafbe1; color: #116329; }}
.badge.fail, .badge.error {{ background: #ffebe9; color: #a40e26; }}
.badge.skip {{ background: #eaeef2; color: #424a53; }}
pre {{ white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; border-radius: 4px; padding: 6px 8px; margin: 2px 0; font: 12px/1.4 \"Liberation Mono\", monospace; }}
pre.message {{ background: #ffebe9; max-width: 1080px; }}
ul.failures {{ padding-left: 20px; margin: 4px 0; }}
ul.failures li {{ margin: 3px 0; }}
code {{ font: 13px \"Liberation Mono\", monospace; }}
details summary {{ color: #57606a; cursor: pointer; }}
"
    )
}

/// The verdict, the run's numbers and the test totals.
fn summary(results: &Results) -> String {
    let count = |status: Status| results.cells.iter().filter(|cell| cell.status == status).count();
    let (class, verdict) = match results.exit_code() {
        error::EXIT_OK => ("pass", "Every cell passed or was skipped."),
        error::EXIT_TEST_FAILED => ("fail", "A test failed."),
        _ if !results.complete => ("error", "The run is incomplete."),
        _ => ("error", "Something before the tests failed (toolchain, config, build, image or boot)."),
    };
    let mut out = format!("<p class=\"verdict {class}\" data-exit-code=\"{}\">{verdict}</p>\n", results.exit_code());
    let mut totals = Totals::default();
    for cell in &results.cells {
        totals.pass += cell.totals.pass;
        totals.fail += cell.totals.fail;
        totals.skip += cell.totals.skip;
        totals.error += cell.totals.error;
    }
    out.push_str(&format!(
        "<p class=\"run\">{} cells: {} pass, {} fail, {} error, {} skip. Tests: {}.",
        results.cells.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Error),
        count(Status::Skip),
        counts(&totals)
    ));
    let run = &results.run;
    if run.wall_seconds > 0.0 {
        out.push_str(&format!(
            "<br>Wall time {} with {} jobs; kernel builds used {} of CPU (core utilisation {:.0}%).",
            duration(run.wall_seconds),
            run.jobs,
            duration(run.build_cpu_seconds),
            run.core_utilisation * 100.0
        ));
    }
    out.push_str(&format!("<br>kforge {}</p>\n", escape(&results.kforge_version)));
    out
}

/// Rows are arches and columns kernels, both in the order the results list them.
fn matrix(results: &Results, dir: &Path) -> String {
    let mut arches: Vec<&str> = Vec::new();
    let mut kernels: Vec<&CellResult> = Vec::new();
    for cell in &results.cells {
        if !arches.contains(&cell.arch.as_str()) {
            arches.push(&cell.arch);
        }
        if !kernels.iter().any(|known| known.kernel == cell.kernel) {
            kernels.push(cell);
        }
    }
    let mut out = String::from("<table class=\"matrix\" id=\"matrix\">\n<thead><tr><th>arch \\ kernel</th>");
    for first in &kernels {
        out.push_str(&format!(
            "<th scope=\"col\">{} <small>(toolchain {})</small></th>",
            escape(&first.kernel),
            escape(&first.toolchain)
        ));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for arch in &arches {
        out.push_str(&format!("<tr><th scope=\"row\">{}</th>", escape(arch)));
        for first in &kernels {
            match results.cells.iter().find(|cell| cell.arch == *arch && cell.kernel == first.kernel) {
                Some(cell) => out.push_str(&matrix_cell(cell, dir)),
                None => out.push_str("<td class=\"cell none\" data-status=\"none\">not run</td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn matrix_cell(cell: &CellResult, dir: &Path) -> String {
    let status = cell.status.as_str();
    let mut out = format!("<td class=\"cell {status}\" data-status=\"{status}\" id=\"cell-{}\">", escape(&cell.id));
    out.push_str(&format!("<a class=\"status\" href=\"#tests-{}\">{status}</a>", escape(&encode(cell.id.as_bytes()))));
    if cell.status != Status::Pass
        && let Some(category) = cell.category
    {
        out.push_str(&format!(" <span class=\"category\">{}</span>", category.as_str()));
    }
    out.push_str(&format!("<div class=\"counts\">{}</div>", counts(&cell.totals)));
    out.push_str(&format!("<div class=\"links\">{}</div>", links(cell, dir)));
    out.push_str("</td>");
    out
}

/// What went wrong, one line each, linking to the cell's tests: a cell's
/// message (a stage that failed, a crash), then every failed test with its
/// last diagnostic line. Empty when nothing failed.
fn failures(results: &Results) -> String {
    let mut items = Vec::new();
    for cell in results.cells.iter().filter(|cell| matches!(cell.status, Status::Fail | Status::Error)) {
        let anchor = format!(
            "<a href=\"#tests-{}\">{} / {}</a>",
            escape(&encode(cell.id.as_bytes())),
            escape(&cell.kernel),
            escape(&cell.arch)
        );
        if let Some(message) = &cell.message {
            let category = cell.category.map(|category| format!(" <strong>{}</strong>", category.as_str()));
            let first_line = message.lines().next().unwrap_or_default();
            items.push(format!("<li>{anchor}{}: {}</li>", category.unwrap_or_default(), escape(first_line)));
        }
        for test in cell.tests.iter().filter(|test| matches!(test.status, Status::Fail | Status::Error)) {
            let last_line = test.diagnostics.last().map(|line| format!(": {}", escape(line))).unwrap_or_default();
            items.push(format!(
                "<li>{anchor} <code>{}</code> <span class=\"badge {status}\">{status}</span>{last_line}</li>",
                escape(&test.name),
                status = test.status.as_str()
            ));
        }
    }
    if items.is_empty() {
        return String::new();
    }
    format!("<h2 id=\"failures\">Failures</h2>\n<ul class=\"failures\">\n{}\n</ul>\n", items.join("\n"))
}

/// One cell's heading, timings, message and test table.
fn cell_section(cell: &CellResult, dir: &Path) -> String {
    let status = cell.status.as_str();
    let mut out = format!("<section class=\"cell-tests\" id=\"tests-{}\">\n", escape(&cell.id));
    out.push_str(&format!(
        "<h2><span class=\"badge {status}\">{status}</span> {} / {} <small>(toolchain {})</small></h2>\n",
        escape(&cell.kernel),
        escape(&cell.arch),
        escape(&cell.toolchain)
    ));
    let mut meta = Vec::new();
    if let Some(category) = cell.category {
        meta.push(format!("category <strong>{}</strong>", category.as_str()));
    }
    meta.push(counts(&cell.totals));
    let timings = &cell.timings;
    if timings.build_seconds > 0.0 {
        let cpu = if timings.build_cpu_seconds > 0.0 {
            format!(" (kernel build CPU {})", duration(timings.build_cpu_seconds))
        } else {
            String::new()
        };
        meta.push(format!("build {}{cpu}", duration(timings.build_seconds)));
    }
    if timings.boot_seconds > 0.0 {
        meta.push(format!("boot {}", duration(timings.boot_seconds)));
    }
    out.push_str(&format!("<p class=\"meta\">{}<br>{}</p>\n", meta.join(" · "), links(cell, dir)));
    if let Some(message) = &cell.message {
        out.push_str(&format!("<pre class=\"message\">{}</pre>\n", escape(message)));
    }
    if cell.tests.is_empty() {
        out.push_str("<p class=\"none\">No tests ran.</p>\n");
    } else {
        out.push_str(
            "<table class=\"tests\">\n<thead><tr><th>test</th><th>status</th><th>details</th></tr></thead>\n<tbody>\n",
        );
        for test in &cell.tests {
            out.push_str(&test_row(test));
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
    out
}

/// A test: failures show their diagnostics, skips their reason, passes fold
/// their output away.
fn test_row(test: &TestRecord) -> String {
    let status = test.status.as_str();
    let mut details = String::new();
    if let Some(reason) = &test.reason {
        details.push_str(&escape(reason));
    }
    if !test.diagnostics.is_empty() {
        let text = escape(&test.diagnostics.join("\n"));
        match test.status {
            Status::Fail | Status::Error => details.push_str(&format!("<pre>{text}</pre>")),
            Status::Pass | Status::Skip => {
                let lines = test.diagnostics.len();
                let noun = if lines == 1 { "line" } else { "lines" };
                details.push_str(&format!(
                    "<details><summary>{lines} {noun} of output</summary><pre>{text}</pre></details>"
                ));
            }
        }
    }
    format!(
        "<tr class=\"test {status}\" data-status=\"{status}\"><td class=\"name\">{}</td>\
         <td><span class=\"badge {status}\">{status}</span></td><td>{details}</td></tr>\n",
        escape(&test.name)
    )
}

/// "18 pass · 1 fail · 2 skip", plus errors when there are any.
fn counts(totals: &Totals) -> String {
    let mut text = format!("{} pass · {} fail · {} skip", totals.pass, totals.fail, totals.skip);
    if totals.error > 0 {
        text.push_str(&format!(" · {} error", totals.error));
    }
    text
}

/// Links to the cell's console log, KTAP and build log (those that exist).
fn links(cell: &CellResult, dir: &Path) -> String {
    let candidates =
        [("console", Some(&cell.log)), ("KTAP", cell.ktap.as_ref()), ("build log", cell.build_log.as_ref())];
    let mut out = Vec::new();
    for (label, path) in candidates {
        if let Some(url) = path.and_then(|path| href(Path::new(path), dir)) {
            out.push(format!("<a href=\"{}\">{label}</a>", escape(&url)));
        }
    }
    if out.is_empty() { "no logs".to_string() } else { out.join(" ") }
}

/// The URL of an existing file as seen from a page in `dir`: relative when
/// the file lies under `dir`, else `file://`. `None` when the file is missing.
fn href(path: &Path, dir: &Path) -> Option<String> {
    let file = std::fs::canonicalize(path).ok()?;
    let base = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match file.strip_prefix(&base) {
        Ok(relative) => Some(encode(relative.as_os_str().as_bytes())),
        Err(_) => Some(file_url(&file)),
    }
}

/// `file://` URL of an absolute path.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", encode(path.as_os_str().as_bytes()))
}

/// Percent-encodes everything in a path but unreserved characters and `/`.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Escapes text for HTML content and attribute values. Control characters
/// (other than newline and tab) cannot appear in HTML: they become U+FFFD,
/// and carriage returns are dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            '\r' => {}
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// "9.7 s", "12 min 36 s", "1 h 04 min".
fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RunSummary, Timings};
    use crate::stage::Category;

    fn test(name: &str, status: Status, diagnostics: &[&str]) -> TestRecord {
        TestRecord {
            name: name.into(),
            status,
            reason: (status == Status::Skip).then(|| "needs PCI".to_string()),
            diagnostics: diagnostics.iter().map(|line| line.to_string()).collect(),
        }
    }

    fn cell(arch: &str, status: Status, tests: Vec<TestRecord>, dir: &Path) -> CellResult {
        let cell_dir = dir.join("cells").join(format!("7.2-{arch}"));
        let mut cell = CellResult {
            id: format!("7.2-{arch}"),
            profile: String::new(),
            arch: arch.into(),
            kernel: "7.2".into(),
            toolchain: "sid".into(),
            status,
            category: (status == Status::Fail).then_some(Category::TestFail),
            message: None,
            log: cell_dir.join("console.log").display().to_string(),
            build_log: Some("/nonexistent/kforge/kernel-build.log".into()),
            ktap: Some(cell_dir.join("ktap.json").display().to_string()),
            tests,
            totals: Totals::default(),
            timings: Timings { build_seconds: 756.0, build_cpu_seconds: 1400.0, boot_seconds: 4.4 },
        };
        cell.recount();
        cell
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kforge-html-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn console_text_is_escaped() {
        let dir = scratch("escape");
        let evil = test(
            "fifo.<b>bold</b>",
            Status::Fail,
            &["<script>alert('x')</script>", "a & b \"quoted\"", "bell\u{7} esc\u{1b}[31m cr\r"],
        );
        let results = Results::new(vec![cell("x86_64", Status::Fail, vec![evil], &dir)]);
        let page = render(&results, &dir);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{page}");
        assert!(page.contains("fifo.&lt;b&gt;bold&lt;/b&gt;"), "{page}");
        assert!(page.contains("a &amp; b &quot;quoted&quot;"), "{page}");
        assert!(page.contains("bell\u{FFFD} esc\u{FFFD}[31m cr</pre>"), "{page}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cells_carry_status_class_and_id_and_sit_in_the_matrix() {
        let dir = scratch("matrix");
        let results = Results::new(vec![
            cell("x86_64", Status::Pass, vec![test("fifo.load", Status::Pass, &["loaded"])], &dir),
            cell(
                "arm64",
                Status::Fail,
                vec![
                    test("fifo.load", Status::Pass, &[]),
                    test("fifo.roundtrip", Status::Fail, &["expected 40 bytes, got 39"]),
                    test("edu.load", Status::Skip, &[]),
                ],
                &dir,
            ),
        ]);
        let page = render(&results, &dir);
        assert!(page.contains("<td class=\"cell pass\" data-status=\"pass\" id=\"cell-7.2-x86_64\">"), "{page}");
        assert!(page.contains("<td class=\"cell fail\" data-status=\"fail\" id=\"cell-7.2-arm64\">"), "{page}");
        assert!(page.contains("<span class=\"category\">test-fail</span>"), "{page}");
        assert!(page.contains("1 pass · 1 fail · 1 skip"), "{page}");
        assert!(page.contains("<pre>expected 40 bytes, got 39</pre>"), "{page}");
        assert!(page.contains("needs PCI"), "{page}");
        assert!(page.contains("<section class=\"cell-tests\" id=\"tests-7.2-arm64\">"), "{page}");
        assert!(
            page.contains(
                "<li><a href=\"#tests-7.2-arm64\">7.2 / arm64</a> <code>fifo.roundtrip</code> \
                 <span class=\"badge fail\">fail</span>: expected 40 bytes, got 39</li>"
            ),
            "{page}"
        );
        // Two rows (arches), one column (kernel), in the order of the results.
        let x86 = page.find("<th scope=\"row\">x86_64</th>").unwrap();
        let arm = page.find("<th scope=\"row\">arm64</th>").unwrap();
        assert!(x86 < arm);
        assert_eq!(page.matches("<th scope=\"col\">").count(), 1);
        assert!(!page.contains("Wall time") && page.contains("A test failed."), "{page}");
        assert!(!page.contains("id=\"incomplete\""));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn links_are_relative_under_the_report_dir_and_only_to_existing_files() {
        let dir = scratch("links");
        let cell = cell("x86_64", Status::Pass, vec![], &dir);
        let cell_dir = dir.join("cells/7.2-x86_64");
        std::fs::create_dir_all(&cell_dir).unwrap();
        std::fs::write(cell_dir.join("console.log"), "log").unwrap();
        let outside = scratch("links-outside");
        let build_log = outside.join("kernel build.log");
        std::fs::write(&build_log, "log").unwrap();
        let cell = CellResult { build_log: Some(build_log.display().to_string()), ..cell };
        let page = render(&Results::new(vec![cell]), &dir);
        assert!(page.contains("<a href=\"cells/7.2-x86_64/console.log\">console</a>"), "{page}");
        // ktap.json was never written: no link.
        assert!(!page.contains(">KTAP</a>"), "{page}");
        let outside_url = file_url(&std::fs::canonicalize(&outside).unwrap().join("kernel build.log"));
        assert!(outside_url.ends_with("/kernel%20build.log"), "{outside_url}");
        assert!(page.contains(&format!("<a href=\"{outside_url}\">build log</a>")), "{page}");
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(outside);
    }

    #[test]
    fn run_summary_and_incomplete_banner() {
        let dir = scratch("summary");
        let cells = vec![cell("x86_64", Status::Pass, vec![test("fifo.load", Status::Pass, &[])], &dir)];
        let mut results = Results::with_summary(cells, RunSummary::new(1000.0, 2));
        results.complete = false;
        let page = render(&results, &dir);
        assert!(page.contains("id=\"incomplete\""), "{page}");
        assert!(page.contains("The run is incomplete."), "{page}");
        assert!(
            page.contains(
                "Wall time 16 min 40 s with 2 jobs; kernel builds used 23 min 20 s of CPU (core utilisation 70%)"
            ),
            "{page}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(9.68), "9.7 s");
        assert_eq!(duration(756.4), "12 min 36 s");
        assert_eq!(duration(3840.0), "1 h 04 min");
    }
}
