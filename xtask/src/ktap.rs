//! Parses KTAP test output out of a kernel console log (nested, timestamped, with garbage and crashes).
//!
//! Behaviour choices beyond the KTAP spec and the kernel's `kunit_parser.py`:
//! - Nesting follows indentation: a `KTAP version` or `# Subtest:` line indented deeper than
//!   the open block starts a subtest block (any width: KUnit's 4 spaces, the spec's 2, a tab).
//!   KTAP lines at an indentation no open block uses, and all non-KTAP lines, are ignored.
//! - A document ends at a `KTAP version` line at its indentation or lower, when its plan is
//!   complete, or at the end of the log.
//! - Diagnostics before a block's plan (`# module:`) belong to the block's own test; others
//!   belong to the next result line at their level. Data after `#` on a result line that is
//!   not `SKIP`/`TODO` (e.g. `# TIMEOUT 30 seconds`) becomes the test's last diagnostic.
//! - `# TODO` counts as Skip: a known-broken test is neither a pass nor a failure.
//! - Planned tests that never reported become ONE error record per block (`missing-test-<N>`
//!   or `missing-tests-<A>..<B>`, its `missing` field the count; totals count each, like
//!   kunit.py), so a declared plan costs nothing until its tests report. A subtest block that
//!   never got its own result line is an Error test that keeps its children: we never derive
//!   its status from them, since a lost result line means the test did not finish.
//! - Unnamed results are named `test-<N>`. Plans above [`MAX_PLAN`] are ignored. Nesting
//!   deeper than [`MAX_DEPTH`], more than [`MAX_TESTS`] results, names over [`MAX_NAME_BYTES`]
//!   and lines over [`MAX_LINE_BYTES`] set [`Report::cap`] (the cell becomes `error`) and are
//!   left out, so hostile input cannot exhaust memory or the stack.
//! - A failed parent whose subtests show no failure counts as one failure (as kunit.py does).
//! - Diagnostics that belong to no test (a document's header and trailer) are dropped.
//! - Kernel reports are `console::classify`'s whole-line findings (never a diagnostic line);
//!   `render()` lists them after the tests.
use serde::{Deserialize, Serialize};

use crate::console::{self, Cap, MAX_DEPTH, MAX_LINE_BYTES, MAX_NAME_BYTES, MAX_TESTS};

/// Status of a test (and, in results.json, of a cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestCase {
    pub name: String,
    pub status: Status,
    /// Reason given with `# SKIP` / `# TODO`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    /// Diagnostic lines (`# ...`, without the leading `# `) that preceded the result line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subtests: Vec<TestCase>,
    /// For the one record that stands for a run of planned tests that never reported: how
    /// many it stands for (totals count each, like kunit.py). 0 for every other test.
    #[serde(skip_serializing_if = "is_zero")]
    pub missing: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub error: usize,
}

impl Totals {
    pub fn total(&self) -> usize {
        self.pass + self.fail + self.skip + self.error
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Top-level tests of every KTAP document in the log, in order.
    pub tests: Vec<TestCase>,
    /// Kernel reports (crashes, bug detectors) found in the parsed log.
    pub events: Vec<console::Finding>,
    /// Counts of LEAF tests (tests without subtests), plus each failed parent whose subtests
    /// all passed (it failed on its own; kunit.py counts it too).
    pub totals: Totals,
    /// The first cap the log hit (parsing went on without what exceeded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
}

/// Diagnostic of a planned test that never reported.
pub const MISSING: &str = "missing: the log ended (or the kernel crashed) before this test reported";
/// Diagnostic of a subtest block whose own result line never came.
pub const NO_RESULT: &str = "missing: this subtest block never got its own result line";
/// Largest plan believed; a larger `1..N` counts as no plan.
pub const MAX_PLAN: usize = 100_000;

pub fn parse(console: &str) -> Report {
    let (mut parser, mut classifier) = (Parser::default(), console::Classifier::default());
    for raw in console.lines() {
        let raw = raw.trim_end_matches('\r');
        classifier.feed(raw);
        let (_, text) = console::split_timestamp(raw);
        if text.len() > MAX_LINE_BYTES {
            parser.hit(Cap::LineLength);
            continue;
        }
        parser.feed(text);
    }
    let cap = parser.cap;
    let tests = parser.finish();
    let mut totals = Totals::default();
    count_leaves(&tests, &mut totals);
    Report { tests, events: classifier.finish(), totals, cap }
}

impl Report {
    /// true when any kernel report other than a plain warning was found.
    pub fn crashed(&self) -> bool {
        self.events.iter().any(|e| e.detector != console::Detector::Warning)
    }

    /// Leaf tests flattened with dotted names: "suite.sub.leaf".
    pub fn leaves(&self) -> Vec<(String, &TestCase)> {
        let mut out = Vec::new();
        walk(&self.tests, "", 0, &mut |name, t, _| {
            if t.subtests.is_empty() {
                out.push((name.to_string(), t));
            }
        });
        out
    }

    /// Human-readable result listing, one line per test, indented by depth, like
    /// "ok    fifo.roundtrip" / "FAIL  fifo.stats" / "skip  x (reason)", then one line per
    /// console event and a totals line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        walk(&self.tests, "", 0, &mut |name, t, depth| {
            let label = match t.status {
                Status::Pass => "ok",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
                Status::Error => "ERROR",
            };
            let reason = t.directive.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            out += &format!("{}{label:<6}{name}{reason}\n", "  ".repeat(depth));
        });
        for e in &self.events {
            let text = e.lines.first().map_or("", |l| l.trim());
            out += &format!("{} at line {}: {text}\n", e.detector.as_str(), e.line_number);
        }
        if let Some(cap) = self.cap {
            out += &format!("error: the log hit the {}\n", cap.describe());
        }
        let t = &self.totals;
        out += &format!("{} tests: {} passed, {} failed, ", t.total(), t.pass, t.fail);
        out += &format!("{} skipped, {} errors\n", t.skip, t.error);
        out
    }
}

/// Visits tests depth-first with their dotted names and depth (bounded by [`MAX_DEPTH`]).
fn walk<'a>(tests: &'a [TestCase], prefix: &str, depth: usize, f: &mut dyn FnMut(&str, &'a TestCase, usize)) {
    for t in tests {
        let name = if prefix.is_empty() { t.name.clone() } else { format!("{prefix}.{}", t.name) };
        f(&name, t, depth);
        walk(&t.subtests, &name, depth + 1, f);
    }
}

/// Counts leaf tests, and (like kunit.py) a failed or errored parent whose subtests show no
/// failure or error as one failure or error itself. Depth is bounded by [`MAX_DEPTH`].
fn count_leaves(tests: &[TestCase], totals: &mut Totals) {
    for t in tests {
        if !t.subtests.is_empty() {
            let before = totals.fail + totals.error;
            count_leaves(&t.subtests, totals);
            if totals.fail + totals.error > before {
                continue;
            }
        }
        match t.status {
            _ if !t.subtests.is_empty() && !matches!(t.status, Status::Fail | Status::Error) => {}
            Status::Pass => totals.pass += 1,
            Status::Fail => totals.fail += 1,
            Status::Skip => totals.skip += 1,
            Status::Error => totals.error += t.missing.max(1),
        }
    }
}

/// `# text` or a lone `#`, but not `#PF: ...` (x86 fault details) or other `#word`.
fn diagnostic(content: &str) -> Option<&str> {
    match content.strip_prefix('#')? {
        "" => Some(""),
        rest => rest.strip_prefix([' ', '\t']),
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n) // the digits are ASCII, so `n` is a char boundary
}

fn parse_plan(content: &str) -> Option<usize> {
    let (digits, tail) = split_digits(content.strip_prefix("1..")?);
    let count = digits.parse::<usize>().ok().filter(|n| *n <= MAX_PLAN)?;
    (tail.is_empty() || tail.starts_with([' ', '\t'])).then_some(count)
}

struct ResultLine<'a> {
    status: Status,
    number: usize,
    name: &'a str,
    /// Reason of a `# SKIP` / `# TODO` directive.
    directive: Option<String>,
    /// Any other text after `#`.
    data: Option<&'a str>,
}

/// `ok N [-] [name] [# directive]` / `not ok ...`, starting at the (de-indented) line start.
fn parse_result(content: &str) -> Option<ResultLine<'_>> {
    let (ok, rest) = match content.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, content.strip_prefix("ok")?),
    };
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let (digits, rest) = split_digits(rest.trim_start());
    let number = digits.parse::<usize>().ok()?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t', '#'])) {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(if rest == "-" { "" } else { rest });
    let (name, after_hash) = match rest.split_once('#') {
        Some((name, after)) => (name.trim(), after.trim()),
        None => (rest.trim(), ""),
    };
    let mut line = ResultLine {
        status: if ok { Status::Pass } else { Status::Fail },
        number,
        name,
        directive: None,
        data: Some(after_hash).filter(|d| !d.is_empty()),
    };
    let keyword_len = after_hash.find([' ', '\t', ':']).unwrap_or(after_hash.len());
    let (keyword, reason) = after_hash.split_at(keyword_len);
    if keyword.eq_ignore_ascii_case("SKIP") || keyword.eq_ignore_ascii_case("TODO") {
        let reason = reason.trim_start_matches([':', ' ', '\t']);
        line.status = Status::Skip;
        line.directive = Some(reason.to_string()).filter(|r| !r.is_empty());
        line.data = None;
    }
    Some(line)
}

fn error_test(name: String, diagnostics: Vec<String>, subtests: Vec<TestCase>) -> TestCase {
    TestCase { name, status: Status::Error, directive: None, diagnostics, subtests, missing: 0 }
}

/// An open block (the document, or a subtest block) at one indentation.
#[derive(Default)]
struct Frame {
    indent: usize,
    /// From `# Subtest: name`.
    name: Option<String>,
    plan: Option<usize>,
    /// Finished tests at this level.
    tests: Vec<TestCase>,
    /// Diagnostics of the block's own test (seen before it or its plan).
    header: Vec<String>,
    /// Diagnostics waiting for the next result line at this level.
    pending: Vec<String>,
}

impl Frame {
    fn fresh(&self) -> bool {
        self.plan.is_none() && self.tests.is_empty()
    }

    /// Name, children (with `missing-test-<N>` for an unfinished plan) and own diagnostics.
    fn into_parts(mut self) -> (Option<String>, Vec<TestCase>, Vec<String>) {
        // One record for the whole run of missing tests, so a plan costs nothing until its
        // tests really report (twenty `1..100000` plans stay twenty records).
        let (first, last) = (self.tests.len() + 1, self.plan.unwrap_or(0));
        if first <= last {
            let name =
                if first == last { format!("missing-test-{first}") } else { format!("missing-tests-{first}..{last}") };
            let mut missing = error_test(name, vec![MISSING.into()], vec![]);
            missing.missing = last - first + 1;
            self.tests.push(missing);
        }
        self.header.append(&mut self.pending);
        (self.name, self.tests, self.header)
    }
}

#[derive(Default)]
struct Parser {
    /// `stack[0]` is the open document; indents strictly increase up the stack.
    stack: Vec<Frame>,
    done: Vec<TestCase>,
    /// Indent of the KUnit `# ...: ASSERTION FAILED at ...` (or EXPECTATION) diagnostic just
    /// fed: the unprefixed lines KUnit prints after it at that indent ("Expected a == b,
    /// but ...") are kept as diagnostics too.
    failure_detail_indent: Option<usize>,
    /// Tests recorded so far (bounded by [`MAX_TESTS`]).
    count: usize,
    /// The first cap hit.
    cap: Option<Cap>,
}

impl Parser {
    fn hit(&mut self, cap: Cap) {
        self.cap.get_or_insert(cap);
    }

    /// Whether one more test may be recorded (else the tests cap is hit).
    fn admit(&mut self) -> bool {
        if self.count >= MAX_TESTS {
            self.hit(Cap::Tests);
            return false;
        }
        self.count += 1;
        true
    }

    /// A test or suite name, cut to [`MAX_NAME_BYTES`] (hitting that cap).
    fn name(&mut self, name: &str) -> String {
        if name.len() <= MAX_NAME_BYTES {
            return name.to_string();
        }
        self.hit(Cap::NameLength);
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name[..end].to_string()
    }

    fn feed(&mut self, text: &str) {
        let text = text.trim_end();
        let content = text.trim_start_matches([' ', '\t']);
        let indent = text.len() - content.len();
        let version = content.strip_prefix("KTAP version ").or_else(|| content.strip_prefix("TAP version "));
        let detail_indent = self.failure_detail_indent.take();
        if version.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) {
            self.on_version(indent);
        } else if let Some(name) = content.strip_prefix("# Subtest:") {
            self.on_subtest(indent, name.trim());
        } else if let Some(text) = diagnostic(content) {
            if text.contains("ASSERTION FAILED at ") || text.contains("EXPECTATION FAILED at ") {
                self.failure_detail_indent = Some(indent);
            }
            self.on_diag(indent, text);
        } else if let Some(count) = parse_plan(content) {
            self.on_plan(indent, count);
        } else if let Some(result) = parse_result(content) {
            self.on_result(indent, result);
        } else if detail_indent == Some(indent) && !content.is_empty() {
            self.failure_detail_indent = detail_indent;
            self.on_diag(indent, content);
        }
    }

    fn finish(mut self) -> Vec<TestCase> {
        self.close_from(0);
        self.done
    }

    fn push_block(&mut self, indent: usize, name: Option<&str>) {
        if self.stack.len() >= MAX_DEPTH {
            return self.hit(Cap::NestingDepth);
        }
        // Diagnostics just before a block describe the test the block belongs to.
        let header = self.stack.last_mut().map(|p| std::mem::take(&mut p.pending)).unwrap_or_default();
        let name = name.filter(|n| !n.is_empty()).map(|n| self.name(n));
        self.stack.push(Frame { indent, name, header, ..Frame::default() });
    }

    /// Closes every open block at `indent` or deeper, as if their result lines never came.
    fn close_from(&mut self, indent: usize) {
        while self.stack.last().is_some_and(|f| f.indent >= indent) {
            self.close_unfinished();
        }
    }

    /// Pops the innermost block: a finished document, or an Error test in its parent.
    fn close_unfinished(&mut self) {
        let Some(frame) = self.stack.pop() else { return };
        let (name, subtests, mut diagnostics) = frame.into_parts();
        if self.stack.is_empty() {
            self.done.extend(subtests);
            return;
        }
        if !self.admit() {
            return;
        }
        let Some(parent) = self.stack.last_mut() else { return };
        diagnostics.push(NO_RESULT.to_string());
        let name = name.unwrap_or_else(|| format!("test-{}", parent.tests.len() + 1));
        parent.tests.push(error_test(name, diagnostics, subtests));
    }

    fn on_version(&mut self, indent: usize) {
        if let Some(top) = self.stack.last_mut() {
            if indent == top.indent && top.fresh() {
                return; // nothing to end yet; older KUnit prints `# Subtest:` first
            }
            // A sibling block or a new document: whatever is open at this depth is over.
            self.close_from(indent);
        }
        self.push_block(indent, None);
    }

    fn on_subtest(&mut self, indent: usize, name: &str) {
        let Some(doc_indent) = self.stack.first().map(|doc| doc.indent) else { return };
        if indent <= doc_indent {
            return self.on_diag(indent, &format!("Subtest: {name}"));
        }
        let kept = Some(name).filter(|n| !n.is_empty()).map(|n| self.name(n));
        if let Some(top) = self.stack.last_mut()
            && indent == top.indent
            && top.name.is_none()
            && top.fresh()
        {
            top.name = kept;
            return;
        }
        self.close_from(indent);
        self.push_block(indent, Some(name));
    }

    fn on_plan(&mut self, indent: usize, count: usize) {
        let Some(top) = self.stack.last_mut() else { return };
        if top.indent == indent && top.plan.is_none() {
            top.plan = Some(count);
            if top.tests.is_empty() {
                let mut pending = std::mem::take(&mut top.pending);
                top.header.append(&mut pending);
            }
            self.finish_complete_document();
        }
    }

    fn on_diag(&mut self, indent: usize, text: &str) {
        if let Some(frame) = self.stack.iter_mut().find(|f| f.indent == indent) {
            frame.pending.push(text.to_string());
        }
    }

    fn on_result(&mut self, indent: usize, result: ResultLine<'_>) {
        if let [_, .., top] = self.stack.as_mut_slice()
            && indent > top.indent
            && top.tests.is_empty()
        {
            top.indent = indent; // a subtest block's results indented deeper than its header
        }
        let Some(level) = self.stack.iter().position(|f| f.indent == indent) else { return };
        if !self.admit() {
            return;
        }
        let result_name = self.name(result.name);
        // Blocks deeper than our direct child never got their result lines; the direct child
        // (if any) is the block this result line closes.
        while self.stack.len() > level + 2 {
            self.close_unfinished();
        }
        let child = if self.stack.len() > level + 1 { self.stack.pop() } else { None };
        let (block_name, subtests, mut diagnostics) = child.map(Frame::into_parts).unwrap_or_default();
        let Some(frame) = self.stack.last_mut() else { return };
        diagnostics.append(&mut frame.pending);
        diagnostics.extend(result.data.map(str::to_string));
        let mut status = result.status;
        // Children are authoritative over an `ok` parent.
        if status == Status::Pass && subtests.iter().any(|t| matches!(t.status, Status::Fail | Status::Error)) {
            status = Status::Fail;
        }
        let name = match (result_name.as_str(), block_name) {
            ("", Some(block)) => block,
            ("", None) => format!("test-{}", result.number),
            _ => result_name,
        };
        let directive = result.directive;
        frame.tests.push(TestCase { name, status, directive, diagnostics, subtests, missing: 0 });
        self.finish_complete_document();
    }

    /// A document whose plan is complete is over; later stray result lines are garbage.
    fn finish_complete_document(&mut self) {
        if let [doc] = self.stack.as_slice()
            && doc.plan.is_some_and(|n| doc.tests.len() >= n)
        {
            self.close_unfinished();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    /// Compact tree dump: status, name, [directive], `# diagnostics`, then events and totals.
    fn check(log: &str, expected: Expect) {
        fn dump(tests: &[TestCase], depth: usize, out: &mut String) {
            for t in tests {
                let pad = "  ".repeat(depth);
                let directive = t.directive.as_ref().map(|d| format!(" [{d}]")).unwrap_or_default();
                *out += &format!("{pad}{:?} {}{directive}\n", t.status, t.name);
                t.diagnostics.iter().for_each(|d| *out += &format!("{pad}  # {d}\n"));
                dump(&t.subtests, depth + 1, out);
            }
        }
        let report = parse(log);
        let mut out = String::new();
        dump(&report.tests, 0, &mut out);
        for e in &report.events {
            let (head, next) = (&e.lines[0], e.lines.get(1).map(String::as_str).unwrap_or(""));
            let (detector, n) = (e.detector.as_str(), e.lines.len() - 1);
            out += &format!("{detector} @{}: {head} (+{n}: {next})\n", e.line_number);
        }
        out += &format!("{:?}\n", report.totals);
        expected.assert_eq(&out);
    }

    #[test]
    fn flat_document() {
        check(
            "KTAP version 1\n1..3\nok 1 first\n# second: boom\nnot ok 2 second\nok 3 - third\n",
            expect![[r#"
                Pass first
                Fail second
                  # second: boom
                Pass third
                Totals { pass: 2, fail: 1, skip: 0, error: 0 }
            "#]],
        );
    }

    const KUNIT: &str = "\
[    0.000000] Linux version 7.2.0 (kforge@build) #1 SMP PREEMPT_DYNAMIC
[    0.512345] KTAP version 1
[    0.512346] 1..2
[    0.512400]     KTAP version 1
[    0.512401]     # Subtest: fifo
[    0.512402]     # module: kforge_fifo
[    0.512403]     1..3
[    0.512404]     # fifo_roundtrip: initializing
[    0.512410]     ok 1 fifo_roundtrip
[    0.512420]     # fifo_stats: EXPECTATION FAILED at drivers/kforge/fifo.rs:88
[    0.512421]     Expected stats.count == 3, but
[    0.512422]         stats.count == 2
[    0.512430]     not ok 2 fifo_stats
[    0.512440]     ok 3 fifo_big # SKIP needs 64 MiB
[    0.512450] # fifo: pass:1 fail:1 skip:1 total:3
[    0.512451] not ok 1 fifo
[    0.512460]     KTAP version 1
[    0.512461]     # Subtest: ring
[    0.512462]     # module: kforge_ring
[    0.512463]     1..1
[    0.512464]         KTAP version 1
[    0.512465]         # Subtest: ring_sizes
[    0.512466]         ok 1 size 16
[    0.512467]         ok 2 size 4096
[    0.512468]     # ring_sizes: pass:2 fail:0 skip:0 total:2
[    0.512469]     ok 1 ring_sizes
[    0.512470] # ring: pass:2 fail:0 skip:0 total:2
[    0.512471] ok 2 ring
[    0.512480] # Totals: pass:3 fail:1 skip:1 total:5
[    0.600000] Freeing unused kernel image (initmem) memory: 2048K
";

    #[test]
    fn nested_kunit_with_timestamps() {
        check(
            KUNIT,
            expect![[r#"
                Fail fifo
                  # module: kforge_fifo
                  # fifo: pass:1 fail:1 skip:1 total:3
                  Pass fifo_roundtrip
                    # fifo_roundtrip: initializing
                  Fail fifo_stats
                    # fifo_stats: EXPECTATION FAILED at drivers/kforge/fifo.rs:88
                    # Expected stats.count == 3, but
                  Skip fifo_big [needs 64 MiB]
                Pass ring
                  # module: kforge_ring
                  # ring: pass:2 fail:0 skip:0 total:2
                  Pass ring_sizes
                    # ring_sizes: pass:2 fail:0 skip:0 total:2
                    Pass size 16
                    Pass size 4096
                Totals { pass: 3, fail: 1, skip: 1, error: 0 }
            "#]],
        );
    }

    #[test]
    fn leaves_and_render() {
        let report = parse(KUNIT);
        let leaves: Vec<String> = report.leaves().iter().map(|(n, t)| format!("{n} {:?}", t.status)).collect();
        expect![[r#"
            [
                "fifo.fifo_roundtrip Pass",
                "fifo.fifo_stats Fail",
                "fifo.fifo_big Skip",
                "ring.ring_sizes.size 16 Pass",
                "ring.ring_sizes.size 4096 Pass",
            ]
        "#]]
        .assert_debug_eq(&leaves);
        expect![[r#"
            FAIL  fifo
              ok    fifo.fifo_roundtrip
              FAIL  fifo.fifo_stats
              skip  fifo.fifo_big (needs 64 MiB)
            ok    ring
              ok    ring.ring_sizes
                ok    ring.ring_sizes.size 16
                ok    ring.ring_sizes.size 4096
            5 tests: 3 passed, 1 failed, 1 skipped, 0 errors
        "#]]
        .assert_eq(&report.render());
    }

    #[test]
    fn json_shape() {
        let report = parse("KTAP version 1\n1..2\n  KTAP version 1\n  1..1\n  ok 1 leaf # SKIP no hw\nok 1 suite\n");
        let json = serde_json::to_string(&report).expect("serialisable");
        expect![[r#"{"tests":[{"name":"suite","status":"pass","subtests":[{"name":"leaf","status":"skip","directive":"no hw"}]},{"name":"missing-test-2","status":"error","diagnostics":["missing: the log ended (or the kernel crashed) before this test reported"],"missing":1}],"events":[],"totals":{"pass":0,"fail":0,"skip":1,"error":1}}"#]].assert_eq(&json);
    }

    #[test]
    fn skip_and_todo_directives() {
        check(
            "KTAP version 1
1..6
ok 1 a # SKIP no device
not ok 2 b # SKIP
not ok 3 c # TODO fix the allocator
ok 4 d # skip: lower case
not ok 5 e # TIMEOUT 30 seconds
ok 6 check return code # rcode=0
",
            expect![[r#"
                Skip a [no device]
                Skip b
                Skip c [fix the allocator]
                Skip d [lower case]
                Fail e
                  # TIMEOUT 30 seconds
                Pass check return code
                  # rcode=0
                Totals { pass: 1, fail: 1, skip: 4, error: 0 }
            "#]],
        );
    }

    #[test]
    fn two_documents_in_one_log() {
        check(
            "[    0.100000] KTAP version 1
[    0.100001] 1..1
[    0.100002]     KTAP version 1
[    0.100003]     # Subtest: boot_suite
[    0.100004]     1..1
[    0.100005]     ok 1 boot_case
[    0.100006] ok 1 boot_suite
[    1.000000] Run /init as init process
KTAP version 1
1..2
ok 1 - guest_probe
not ok 2 - guest_io
",
            expect![[r#"
                Pass boot_suite
                  Pass boot_case
                Pass guest_probe
                Fail guest_io
                Totals { pass: 2, fail: 1, skip: 0, error: 0 }
            "#]],
        );
    }

    #[test]
    fn garbage_is_ignored() {
        check(
            "random: crng init done
this is ok 1 not a result
KTAP version 1
1..2
    KTAP version 1
    # Subtest: suite
    1..2
[    0.3] usb 1-1: new high-speed USB device number 2, everything ok
    all ok 7 here too
    ok 1 one
okay 2 nope
    ok2 also not
    not ok 2 two
ok 1 suite
        ok 5 stray deeper line
ok 2 last
ok 3 after the plan was complete
",
            expect![[r#"
                Fail suite
                  Pass one
                  Fail two
                Pass last
                Totals { pass: 2, fail: 1, skip: 0, error: 0 }
            "#]],
        );
    }

    const PANIC: &str = "\
[    0.512345] KTAP version 1
[    0.512346] 1..2
[    0.512400]     KTAP version 1
[    0.512401]     # Subtest: fifo
[    0.512403]     1..3
[    0.512410]     ok 1 fifo_roundtrip
[    0.512500] Kernel panic - not syncing: kforge: fifo corrupted
[    0.512501] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 7.2.0 #1
[    0.512502] Call Trace:
[    0.512503]  <TASK>
[    0.512504] ---[ end Kernel panic - not syncing: kforge: fifo corrupted ]---
";

    #[test]
    fn panic_mid_suite_makes_missing_tests_errors() {
        check(
            PANIC,
            expect![[r#"
                Error fifo
                  # missing: this subtest block never got its own result line
                  Pass fifo_roundtrip
                  Error missing-tests-2..3
                    # missing: the log ended (or the kernel crashed) before this test reported
                Error missing-test-2
                  # missing: the log ended (or the kernel crashed) before this test reported
                panic @7: Kernel panic - not syncing: kforge: fifo corrupted (+4: CPU: 0 PID: 1 Comm: swapper/0 Not tainted 7.2.0 #1)
                Totals { pass: 1, fail: 0, skip: 0, error: 3 }
            "#]],
        );
        let report = parse(PANIC);
        assert!(report.crashed());
        assert_eq!(report.events[0].lines.len(), 5);
        expect![[r#"
            ERROR fifo
              ok    fifo.fifo_roundtrip
              ERROR fifo.missing-tests-2..3
            ERROR missing-test-2
            panic at line 7: Kernel panic - not syncing: kforge: fifo corrupted
            4 tests: 1 passed, 0 failed, 0 skipped, 3 errors
        "#]]
        .assert_eq(&report.render());
    }

    #[test]
    fn oops_is_recorded_and_parsing_continues() {
        let log = "KTAP version 1
1..2
[    2.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    2.000001] #PF: supervisor read access in kernel mode
[    2.000002] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    2.000003] RIP: 0010:kforge_fifo_pop+0x12/0x40
# crashy: try faulted: last line seen drivers/kforge/fifo.rs:12
not ok 1 crashy
ok 2 survivor
";
        assert!(parse(log).crashed());
        check(
            log,
            expect![[r#"
                Fail crashy
                  # crashy: try faulted: last line seen drivers/kforge/fifo.rs:12
                Pass survivor
                bug @3: BUG: kernel NULL pointer dereference, address: 0000000000000008 (+1: #PF: supervisor read access in kernel mode)
                oops @5: Oops: 0000 [#1] PREEMPT SMP NOPTI (+4: RIP: 0010:kforge_fifo_pop+0x12/0x40)
                Totals { pass: 1, fail: 1, skip: 0, error: 0 }
            "#]],
        );
    }

    #[test]
    fn warning_is_not_a_crash() {
        let log = "KTAP version 1
1..1
[    3.1] ------------[ cut here ]------------
[    3.2] WARNING: CPU: 0 PID: 1 at drivers/kforge/fifo.rs:99 kforge_fifo_push+0x5/0x9
[    3.3] kforge: DEBUG: fifo depth 3
[    3.4] userspace: Oops, that is fine
# a diagnostic quoting Kernel panic - not syncing is not an event
ok 1 warned
";
        assert!(!parse(log).crashed());
        check(
            log,
            expect![[r#"
                Pass warned
                  # a diagnostic quoting Kernel panic - not syncing is not an event
                warning @4: WARNING: CPU: 0 PID: 1 at drivers/kforge/fifo.rs:99 kforge_fifo_push+0x5/0x9 (+4: kforge: DEBUG: fifo depth 3)
                Totals { pass: 1, fail: 0, skip: 0, error: 0 }
            "#]],
        );
    }

    #[test]
    fn crlf_line_endings() {
        check(
            "[    0.1] KTAP version 1\r\n[    0.2] 1..2\r\n[    0.3] ok 1 a # SKIP why\r\n[    0.4] not ok 2 b\r\n",
            expect![[r#"
                Skip a [why]
                Fail b
                Totals { pass: 0, fail: 1, skip: 1, error: 0 }
            "#]],
        );
    }

    #[test]
    fn empty_log() {
        let report = parse("");
        assert!(report.tests.is_empty() && report.events.is_empty() && !report.crashed());
        assert_eq!((report.totals, report.totals.total()), (Totals::default(), 0));
        assert_eq!(report.render(), "0 tests: 0 passed, 0 failed, 0 skipped, 0 errors\n");
    }

    #[test]
    fn plan_mismatch_and_missing_parent_result() {
        // No crash marker: the log just stops, with fewer results than planned and a
        // subtest block that never gets its own result line.
        check(
            "KTAP version 1
1..3
ok 1 alpha
    KTAP version 1
    # Subtest: beta
    1..3
    ok 1 b1
    not ok 2 b2
",
            expect![[r#"
                Pass alpha
                Error beta
                  # missing: this subtest block never got its own result line
                  Pass b1
                  Fail b2
                  Error missing-test-3
                    # missing: the log ended (or the kernel crashed) before this test reported
                Error missing-test-3
                  # missing: the log ended (or the kernel crashed) before this test reported
                Totals { pass: 2, fail: 1, skip: 0, error: 2 }
            "#]],
        );
    }

    #[test]
    fn totals_count_leaves_and_children_fail_an_ok_parent() {
        let report =
            parse("KTAP version 1\n1..2\n  KTAP version 1\n  1..2\n  ok 1 x\n  not ok 2 y\nok 1 p\nok 2 q # SKIP\n");
        assert_eq!(report.tests[0].status, Status::Fail);
        assert_eq!(report.totals, Totals { pass: 1, fail: 1, skip: 1, error: 0 });
        assert_eq!(report.totals.total(), 3);
    }

    #[test]
    fn results_indented_deeper_than_their_block_header() {
        // From kunit_tool's test data (test_is_test_passed-failure-nested.log).
        let log = "KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n        ok 1 test 1\nnot ok 1 subtest 1\n";
        let report = parse(log);
        assert_eq!((report.tests[0].subtests[0].status, report.totals.pass), (Status::Pass, 1));
    }

    #[test]
    fn kunit_failure_details_after_an_assertion_are_kept() {
        // As KUnit prints a failed assertion (kforge_fifo on arm64); garbage elsewhere is not kept.
        let log = "KTAP version 1
1..1
    KTAP version 1
    # Subtest: kforge_fifo
    1..2
    # ring: ASSERTION FAILED at kforge_fifo.rs:531
    Expected &got[..7] == b\"efghijx\" to be true, but is false
    # ring.speed: normal
    not ok 1 ring
    stray console line
    ok 2 other
not ok 1 kforge_fifo
";
        let report = parse(log);
        let ring = &report.tests[0].subtests[0];
        assert_eq!(
            ring.diagnostics,
            [
                "ring: ASSERTION FAILED at kforge_fifo.rs:531",
                "Expected &got[..7] == b\"efghijx\" to be true, but is false",
                "ring.speed: normal"
            ]
        );
        assert!(report.tests[0].subtests[1].diagnostics.is_empty());
    }

    #[test]
    fn older_kunit_styles() {
        // `# Subtest:` before the nested version line; tab-indented TAP 14 with a caller id.
        check(
            "KTAP version 1
1..2
    # Subtest: old
    KTAP version 1
    1..1
    ok 1 case
ok 1 old
[    0.060000][    T1] \t# Subtest: tabbed
[    0.060000][    T1] \t1..1
[    0.060000][    T1] \tok 1 - t
[    0.060000][    T1] kunit tabbed: all tests passed
[    0.060000][    T1] ok 2 - tabbed
",
            expect![[r#"
                Pass old
                  Pass case
                Pass tabbed
                  Pass t
                Totals { pass: 2, fail: 0, skip: 0, error: 0 }
            "#]],
        );
    }

    #[test]
    fn junk_never_panics() {
        let pieces: Vec<&str> = "KTAP version 1|TAP version 14|1..|1..3|1..99999999999999999999|ok|not ok |ok 1|\
            # Subtest:|# Subtest: s|#|    |\t|\r|[|[ 1.0]|[    1.0][  T1]|]| - |é|ok 18446744073709551616 x|\
            Oops:|BUG:|WARNING:|Kernel panic - not syncing|\n|日本"
            .split('|')
            .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let mut log = String::new();
            for _ in 0..40 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                log += pieces[(seed % pieces.len() as u64) as usize];
                log += if seed.is_multiple_of(3) { "\n" } else { "" };
            }
            let report = parse(&log);
            let _ = (report.render(), report.leaves(), report.crashed());
        }
        // Every truncation of a real log, and absurdly deep nesting.
        for end in (0..=KUNIT.len()).filter(|i| KUNIT.is_char_boundary(*i)) {
            assert!(parse(&KUNIT[..end]).totals.total() <= 6, "{end}");
        }
        let deep: String = (0..5000).map(|i| format!("{}KTAP version 1\n", " ".repeat(i))).collect();
        assert!(parse(&deep).render().starts_with("ERROR test-1\n  ERROR test-1.test-1\n"));
    }

    /// Twenty nested `1..100000` plans: about 500 bytes that used to become two million
    /// `missing-test-<N>` records (880 MB). Now one record per unfinished block.
    #[test]
    fn amplifying_plans_cost_nothing_until_tests_report() {
        let log: String = (0..20).map(|depth| format!("{}KTAP version 1\n{0}1..100000\n", " ".repeat(depth))).collect();
        assert!(log.len() < 1000);
        let report = parse(&log);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.len() < 20_000, "JSON of {} bytes", json.len());
        let mut records = 0;
        walk(&report.tests, "", 0, &mut |_, _, _| records += 1);
        assert!(records <= 40, "{records} records");
        // kunit.py counts every planned test that never reported.
        assert_eq!(report.totals.error, 20 * 99_999 + 1);
    }

    #[test]
    fn caps_on_tests_names_and_depth_are_reported() {
        let many: String = (1..=MAX_TESTS + 10).map(|n| format!("ok {n} t{n}\n")).collect();
        let report = parse(&format!("KTAP version 1\n1..{}\n{many}", MAX_TESTS + 10));
        assert_eq!((report.cap, report.totals.pass), (Some(Cap::Tests), MAX_TESTS));
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        let report = parse(&format!("KTAP version 1\n1..1\nok 1 {long_name}\n"));
        assert_eq!((report.cap, report.tests[0].name.len()), (Some(Cap::NameLength), MAX_NAME_BYTES));
        let deep: String = (0..40).map(|i| format!("{}KTAP version 1\n", " ".repeat(i))).collect();
        assert_eq!(parse(&deep).cap, Some(Cap::NestingDepth));
        let long_line = format!("KTAP version 1\n1..1\n# {}\nok 1 a\n", "x".repeat(MAX_LINE_BYTES));
        let report = parse(&long_line);
        assert_eq!((report.cap, report.totals.pass), (Some(Cap::LineLength), 1));
        assert!(report.render().contains("error: the log hit the line length cap (MAX_LINE_BYTES = 16 KiB"));
        assert_eq!(parse(KUNIT).cap, None);
    }

    /// kunit.py's counts (passed, failed, crashed, skipped) for every log in the kernel's
    /// `tools/testing/kunit/test_data`, generated by `xtask/testdata/kunit_counts.py`.
    const KUNIT_COUNTS: &str = include_str!("../testdata/kunit_counts.txt");

    /// The unpacked kernel source: `KFORGE_KERNEL_SOURCE`, else the first `linux-source-*`
    /// in kforge's source cache, else (a cold cache) the default matrix's first kernel,
    /// readied as `cargo xtask test` would: its toolchain root, then its source.
    fn kernel_source() -> std::path::PathBuf {
        if let Some(dir) = std::env::var_os("KFORGE_KERNEL_SOURCE") {
            return dir.into();
        }
        if let Some(tree) = cached_kernel_source() {
            return tree;
        }
        let repo = crate::paths::repo_root().expect("the repository root");
        let project = crate::project::Project::load(&repo).expect("kforge.toml");
        let id = project.matrix.kernels.first().expect("kforge.toml's [matrix] names a kernel");
        let kernel = project.kernel(id).expect("the matrix's kernel is declared");
        let options = crate::toolchain::install::InstallOptions::from_session();
        let ready = crate::pipeline::ready_kernel(&repo, kernel, &[], &options)
            .unwrap_or_else(|error| panic!("readying kernel {id}'s source failed: {error:#}"));
        ready.source.dir
    }

    fn cached_kernel_source() -> Option<std::path::PathBuf> {
        let sources = crate::paths::cache_dir().ok()?.join("sources");
        let mut found: Vec<_> = std::fs::read_dir(sources).ok()?.flatten().map(|e| e.path()).collect();
        found.sort();
        found.into_iter().find_map(|entry| {
            let mut trees: Vec<_> = std::fs::read_dir(&entry).ok()?.flatten().map(|e| e.path()).collect();
            trees.sort();
            trees.into_iter().find(|tree| tree.join("tools/testing/kunit/test_data").is_dir())
        })
    }

    #[test]
    #[ignore = "needs an unpacked kernel source: KFORGE_KERNEL_SOURCE, kforge's source cache, or else it installs \
                the default kernel's toolchain root and source (root, the Debian archive, minutes)"]
    fn totals_agree_with_kunit_py_on_the_kernels_test_data() {
        // Held throughout: readying the source reads KFORGE_CACHE_DIR many times,
        // and another test must not point it elsewhere meanwhile.
        let _env = crate::test_support::env_lock();
        let source = kernel_source();
        let data = source.join("tools/testing/kunit/test_data");
        let mut compared = 0;
        let mut differences = Vec::new();
        for line in KUNIT_COUNTS.lines() {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap();
            let count = |key: &str| -> usize {
                line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok()).unwrap()
            };
            let log = String::from_utf8_lossy(&std::fs::read(data.join(name)).unwrap()).into_owned();
            let totals = parse(&log).totals;
            // kunit.py's `crashed` (tests that never reported) is kforge's `error`; its
            // `errors` are parser complaints about the log, not tests (docs/ARCHITECTURE.md).
            let expected = Totals {
                pass: count("passed"),
                fail: count("failed"),
                skip: count("skipped"),
                error: count("crashed"),
            };
            if totals != expected {
                differences.push(format!("{name}: kforge {totals:?}, kunit.py {expected:?}"));
            }
            compared += 1;
        }
        let logs =
            std::fs::read_dir(&data).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log"));
        assert_eq!(compared, logs.count(), "a log in {} has no expectation: regenerate", data.display());
        assert!(differences.is_empty(), "{differences:#?}");
    }
}
