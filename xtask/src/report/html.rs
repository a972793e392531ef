//! The HTML report (report.html): one self-contained page with the matrix at a glance and every test of every cell.
//!
//! The page has inline CSS and nothing else: no scripts, no fonts, no images.
//! Its Content-Security-Policy forbids everything but that inline style, so
//! even a mistake in escaping could not run anything. The page is a maud
//! template, so everything spliced into it is escaped by construction; text
//! from guests (test names, reasons, diagnostics, messages) also goes through
//! `Text`, which replaces control characters HTML cannot hold.
//!
//! Links to a cell's logs are relative when the log lies under the report's
//! directory (so the directory can be moved or archived whole) and `file://`
//! URLs otherwise. Only files that exist when the report is written get a link.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use maud::{DOCTYPE, Escaper, Markup, PreEscaped, Render, html};

use crate::error;
use crate::report::model::{CellResult, Results, Status, TestRecord, Totals};

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

/// Text from a run (ultimately from guest consoles): escaped like every
/// splice, and control characters (other than newline and tab), which HTML
/// cannot hold, become U+FFFD; carriage returns are dropped.
struct Text<'a>(&'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        let mut escaper = Escaper::new(buffer);
        for c in self.0.chars() {
            // Writing to a String cannot fail.
            let _ = match c {
                '\n' | '\t' => escaper.write_char(c),
                '\r' => Ok(()),
                c if c.is_control() => escaper.write_char('\u{FFFD}'),
                c => escaper.write_char(c),
            };
        }
    }
}

/// The whole page. `dir` is where it will live: links to logs are relative to it.
pub fn render(results: &Results, dir: &Path) -> String {
    let title = title(results);
    let page = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            head {
                "\n"
                meta charset="utf-8"; "\n"
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"; "\n"
                meta name="viewport" content="width=device-width, initial-scale=1"; "\n"
                title { (title) } "\n"
                // The stylesheet is a constant of this file, not data: nothing from a run reaches it.
                style { "\n" (PreEscaped(stylesheet())) }
                "\n"
            }
            "\n"
            body {
                "\n"
                h1 { (title) } "\n"
                @if !results.complete {
                    p class="banner incomplete" id="incomplete" {
                        strong { "Incomplete run." }
                        " Some cells are missing from these results (the run was interrupted, or a cell's \
                         results could not be read); the matrix shows only what finished."
                    }
                    "\n"
                }
                (summary(results))
                (matrix(results, dir))
                (failures(results))
                @for cell in &results.cells {
                    (cell_section(cell, dir))
                }
            }
            "\n"
        }
        "\n"
    };
    page.into_string()
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
fn summary(results: &Results) -> Markup {
    let count = |status: Status| results.cells.iter().filter(|cell| cell.status == status).count();
    let (class, verdict) = match results.exit_code() {
        error::EXIT_OK => ("pass", "Every cell passed or was skipped."),
        error::EXIT_TEST_FAILED => ("fail", "A test failed."),
        _ if !results.complete => ("error", "The run is incomplete."),
        _ => ("error", "Something before the tests failed (toolchain, config, build, image or boot)."),
    };
    let mut totals = Totals::default();
    for cell in &results.cells {
        totals.pass += cell.totals.pass;
        totals.fail += cell.totals.fail;
        totals.skip += cell.totals.skip;
        totals.error += cell.totals.error;
    }
    let run = &results.run;
    html! {
        p class={ "verdict " (class) } data-exit-code=(results.exit_code()) { (verdict) } "\n"
        p class="run" {
            (results.cells.len()) " cells: " (count(Status::Pass)) " pass, " (count(Status::Fail)) " fail, "
            (count(Status::Error)) " error, " (count(Status::Skip)) " skip. Tests: " (counts(&totals)) "."
            @if run.wall_seconds > 0.0 {
                br;
                "Wall time " (duration(run.wall_seconds)) " with " (run.jobs) " jobs; kernel builds used "
                (duration(run.build_cpu_seconds)) " of CPU (core utilisation "
                (format!("{:.0}", run.core_utilisation * 100.0)) "%)."
            }
            @if let Some(ccache) = &run.ccache {
                br;
                "ccache: " (ccache.describe()) "."
            }
            br;
            "kforge " (Text(&results.kforge_version))
        }
        "\n"
    }
}

/// Rows are arches and columns kernels, both in the order the results list them.
fn matrix(results: &Results, dir: &Path) -> Markup {
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
    html! {
        table class="matrix" id="matrix" {
            "\n"
            thead {
                tr {
                    th { "arch \\ kernel" }
                    @for first in &kernels {
                        th scope="col" { (Text(&first.kernel)) " " small { "(toolchain " (Text(&first.toolchain)) ")" } }
                    }
                }
            }
            "\n"
            tbody {
                "\n"
                @for arch in &arches {
                    tr {
                        th scope="row" { (Text(arch)) }
                        @for first in &kernels {
                            @match results.cells.iter().find(|cell| cell.arch == *arch && cell.kernel == first.kernel) {
                                Some(cell) => (matrix_cell(cell, dir)),
                                None => td class="cell none" data-status="none" { "not run" },
                            }
                        }
                    }
                    "\n"
                }
            }
            "\n"
        }
        "\n"
    }
}

fn matrix_cell(cell: &CellResult, dir: &Path) -> Markup {
    let status = cell.status.as_str();
    let category = cell.category.filter(|_| cell.status != Status::Pass);
    html! {
        td class={ "cell " (status) } data-status=(status) id={ "cell-" (Text(&cell.id)) } {
            a class="status" href={ "#tests-" (encode(cell.id.as_bytes())) } { (status) }
            @if let Some(category) = category {
                " " span class="category" { (category.as_str()) }
            }
            div class="counts" { (counts(&cell.totals)) }
            div class="links" { (links(cell, dir)) }
        }
    }
}

/// What went wrong, one line each, linking to the cell's tests: a cell's
/// message (a stage that failed, a crash), then every failed test with its
/// last diagnostic line. Empty when nothing failed.
fn failures(results: &Results) -> Markup {
    let failed = |status: Status| matches!(status, Status::Fail | Status::Error);
    let mut items = Vec::new();
    for cell in results.cells.iter().filter(|cell| failed(cell.status)) {
        let anchor = html! {
            a href={ "#tests-" (encode(cell.id.as_bytes())) } { (Text(&cell.kernel)) " / " (Text(&cell.arch)) }
        };
        if let Some(message) = &cell.message {
            let first_line = message.lines().next().unwrap_or_default();
            items.push(html! {
                li {
                    (anchor)
                    @if let Some(category) = cell.category { " " strong { (category.as_str()) } }
                    ": " (Text(first_line))
                }
            });
        }
        for test in cell.tests.iter().filter(|test| failed(test.status)) {
            let status = test.status.as_str();
            items.push(html! {
                li {
                    (anchor) " " code { (Text(&test.name)) } " " span class={ "badge " (status) } { (status) }
                    @if let Some(line) = test.diagnostics.last() { ": " (Text(line)) }
                }
            });
        }
    }
    html! {
        @if !items.is_empty() {
            h2 id="failures" { "Failures" } "\n"
            ul class="failures" {
                "\n"
                @for (index, item) in items.iter().enumerate() {
                    @if index > 0 { "\n" }
                    (item)
                }
                "\n"
            }
            "\n"
        }
    }
}

/// One cell's heading, timings, message and test table.
fn cell_section(cell: &CellResult, dir: &Path) -> Markup {
    let status = cell.status.as_str();
    let mut meta = Vec::new();
    if let Some(category) = cell.category {
        meta.push(html! { "category " strong { (category.as_str()) } });
    }
    meta.push(html! { (counts(&cell.totals)) });
    let timings = &cell.timings;
    if timings.build_seconds > 0.0 {
        meta.push(html! {
            "build " (duration(timings.build_seconds))
            @if timings.build_cpu_seconds > 0.0 { " (kernel build CPU " (duration(timings.build_cpu_seconds)) ")" }
        });
    }
    if timings.boot_seconds > 0.0 {
        meta.push(html! { "boot " (duration(timings.boot_seconds)) });
    }
    html! {
        section class="cell-tests" id={ "tests-" (Text(&cell.id)) } {
            "\n"
            h2 {
                span class={ "badge " (status) } { (status) }
                " " (Text(&cell.kernel)) " / " (Text(&cell.arch)) " " small { "(toolchain " (Text(&cell.toolchain)) ")" }
            }
            "\n"
            p class="meta" {
                @for (index, item) in meta.iter().enumerate() {
                    @if index > 0 { " · " }
                    (item)
                }
                br;
                (links(cell, dir))
            }
            "\n"
            @if let Some(message) = &cell.message {
                pre class="message" { (Text(message)) } "\n"
            }
            @if cell.tests.is_empty() {
                p class="none" { "No tests ran." } "\n"
            } @else {
                table class="tests" {
                    "\n"
                    thead { tr { th { "test" } th { "status" } th { "details" } } } "\n"
                    tbody {
                        "\n"
                        @for test in &cell.tests { (test_row(test)) }
                    }
                    "\n"
                }
                "\n"
            }
        }
        "\n"
    }
}

/// A test: failures show their diagnostics, skips their reason, passes fold
/// their output away.
fn test_row(test: &TestRecord) -> Markup {
    let status = test.status.as_str();
    let text = test.diagnostics.join("\n");
    let lines = test.diagnostics.len();
    let noun = if lines == 1 { "line" } else { "lines" };
    html! {
        tr class={ "test " (status) } data-status=(status) {
            td class="name" { (Text(&test.name)) }
            td { span class={ "badge " (status) } { (status) } }
            td {
                @if let Some(reason) = &test.reason { (Text(reason)) }
                @if !test.diagnostics.is_empty() {
                    @match test.status {
                        Status::Fail | Status::Error => pre { (Text(&text)) },
                        Status::Pass | Status::Skip => details {
                            summary { (lines) " " (noun) " of output" }
                            pre { (Text(&text)) }
                        },
                    }
                }
            }
        }
        "\n"
    }
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
fn links(cell: &CellResult, dir: &Path) -> Markup {
    let candidates =
        [("console", Some(&cell.log)), ("KTAP", cell.ktap.as_ref()), ("build log", cell.build_log.as_ref())];
    let urls: Vec<(&str, String)> =
        candidates.into_iter().filter_map(|(label, path)| Some((label, href(Path::new(path?), dir)?))).collect();
    html! {
        @if urls.is_empty() {
            "no logs"
        }
        @for (index, (label, url)) in urls.iter().enumerate() {
            @if index > 0 { " " }
            a href=(url) { (label) }
        }
    }
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
    use crate::report::model::{RunSummary, Timings};
    use crate::stage::Category;

    fn test(name: &str, status: Status, diagnostics: &[&str]) -> TestRecord {
        TestRecord {
            name: name.into(),
            status,
            reason: (status == Status::Skip).then(|| "needs PCI".to_string()),
            diagnostics: diagnostics.iter().map(|line| line.to_string()).collect(),
            category: None,
        }
    }

    fn cell(arch: &str, status: Status, tests: Vec<TestRecord>, dir: &Path) -> CellResult {
        let cell_dir = dir.join("cells").join(format!("7.2-{arch}"));
        let mut cell = CellResult {
            id: format!("7.2-{arch}"),
            profile: String::new(),
            boot: String::new(),
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
            timings: Timings {
                build_seconds: 756.0,
                build_cpu_seconds: 1400.0,
                boot_seconds: 4.4,
                kernel_start_seconds: None,
                ccache: None,
            },
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
        assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"), "{page}");
        assert!(page.contains("fifo.&lt;b&gt;bold&lt;/b&gt;"), "{page}");
        assert!(page.contains("a &amp; b &quot;quoted&quot;"), "{page}");
        assert!(page.contains("bell\u{FFFD} esc\u{FFFD}[31m cr</pre>"), "{page}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hostile_text_in_every_field_stays_text() {
        let dir = scratch("hostile");
        let script = "<script>alert(1)</script>";
        let mut evil = test(&format!("fifo.{script}"), Status::Skip, &[script]);
        evil.reason = Some(script.into());
        let mut hostile = cell("x86_64", Status::Fail, vec![evil, test(script, Status::Fail, &[script])], &dir);
        hostile.id = format!("7.2-{script}");
        hostile.kernel = script.into();
        hostile.toolchain = "\"><script>alert(2)</script>".to_string();
        hostile.message = Some(format!("{script}\nsecond line"));
        let mut results = Results::new(vec![hostile]);
        results.kforge_version = script.into();
        let page = render(&results, &dir);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("<small>(toolchain &quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;)</small>"), "{page}");
        assert!(
            page.contains("<pre class=\"message\">&lt;script&gt;alert(1)&lt;/script&gt;\nsecond line</pre>"),
            "{page}"
        );
        assert!(page.contains("id=\"cell-7.2-&lt;script&gt;alert(1)&lt;/script&gt;\""), "{page}");
        assert!(page.contains("href=\"#tests-7.2-%3Cscript%3Ealert%281%29%3C/script%3E\""), "{page}");
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
        let mut cells = vec![cell("x86_64", Status::Pass, vec![test("fifo.load", Status::Pass, &[])], &dir)];
        cells[0].timings.ccache = Some(crate::ccache::Counts { hits: 3, misses: 1, remote_hits: 0 });
        let mut results = Results::with_summary(cells, RunSummary::new(1000.0, 2));
        results.complete = false;
        let page = render(&results, &dir);
        assert!(page.contains("ccache: 3 of 4 C compilations hit (75%)."), "{page}");
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
