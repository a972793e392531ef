//! The one place that decides what reaches the terminal: quiet/verbose, status lines, progress bars.
//!
//! stdout is for data (JSON, reports); everything for humans goes to stderr.
//! Progress bars are hidden when stderr is not a terminal, in verbose mode
//! (the echoed commands would fight with them) and when `KFORGE_NO_PROGRESS` is set.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug)]
struct Printer {
    verbosity: Verbosity,
    color: bool,
    progress: bool,
    /// Every bar lives here, so concurrent builds each get a line and
    /// messages are printed above the bars instead of through them.
    bars: MultiProgress,
}

static PRINTER: OnceLock<Printer> = OnceLock::new();

/// Sets verbosity once, at start-up. Later calls are ignored.
pub fn init(verbosity: Verbosity) {
    let terminal = std::io::stderr().is_terminal();
    let color = terminal && std::env::var_os("NO_COLOR").is_none();
    let progress = terminal
        && verbosity == Verbosity::Normal
        && std::env::var_os("KFORGE_NO_PROGRESS").is_none()
        && std::env::var_os("CI").is_none();
    let _ = PRINTER.set(Printer { verbosity, color, progress, bars: MultiProgress::new() });
}

fn printer() -> &'static Printer {
    PRINTER.get_or_init(|| Printer {
        verbosity: Verbosity::Normal,
        color: false,
        progress: false,
        bars: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
    })
}

/// Writes one line to stderr, above any progress bars.
fn line(text: &str) {
    printer().bars.suspend(|| {
        let _ = writeln!(std::io::stderr(), "{text}");
    });
}

pub fn verbose() -> bool {
    printer().verbosity >= Verbosity::Verbose
}

/// Whether stderr gets ANSI colours (a terminal, and `NO_COLOR` unset).
pub fn color() -> bool {
    printer().color
}

fn paint(code: &str, text: &str) -> String {
    if printer().color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
}

/// A cargo-style status line: a right-aligned green verb, then the message.
pub fn status(verb: &str, message: impl AsRef<str>) {
    if printer().verbosity == Verbosity::Quiet {
        return;
    }
    let verb = paint("1;32", &format!("{verb:>12}"));
    line(&format!("{verb} {}", message.as_ref()));
}

/// A warning line, shown even in quiet mode.
pub fn warn(message: impl AsRef<str>) {
    let label = paint("1;33", "warning");
    line(&format!("{label}: {}", message.as_ref()));
}

/// A plain line for humans on stderr (tables, summaries); hidden in quiet mode.
pub fn info(message: impl AsRef<str>) {
    if printer().verbosity == Verbosity::Quiet {
        return;
    }
    line(message.as_ref());
}

/// Only in verbose mode: echoed command lines and other detail.
pub fn detail(message: impl AsRef<str>) {
    if verbose() {
        line(&paint("2", message.as_ref()));
    }
}

/// Prints an error report (already rendered by `error::render`) in red.
pub fn error(rendered: &str) {
    let mut lines = rendered.splitn(2, ": ");
    let head = lines.next().unwrap_or_default();
    let rest = lines.next().unwrap_or_default();
    line(&format!("{}: {rest}", paint("1;31", head)));
}

/// A progress bar with a known length, or a hidden one when progress is off.
pub fn bar(length: u64, prefix: &str) -> ProgressBar {
    if !printer().progress {
        return ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::hidden());
    }
    let bar = printer().bars.add(ProgressBar::new(length));
    let style = ProgressStyle::with_template("{prefix:>12.cyan.bold} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
        .map(|style| style.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A spinner for work of unknown length (or hidden when progress is off).
pub fn spinner(prefix: &str) -> ProgressBar {
    if !printer().progress {
        return ProgressBar::hidden();
    }
    let bar = printer().bars.add(ProgressBar::new_spinner());
    if let Ok(style) = ProgressStyle::with_template("{prefix:>12.cyan.bold} {spinner} {elapsed} {wide_msg}") {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Whether progress bars are drawn; when they are not, long work prints
/// periodic status lines instead so logs still show it is alive.
pub fn progress_enabled() -> bool {
    printer().progress
}

/// The terminal as the lower layers' progress sink (installed by `main`).
pub struct TerminalSink;

impl crate::progress::Sink for TerminalSink {
    fn status(&self, verb: &str, message: &str) {
        status(verb, message);
    }

    fn warn(&self, message: &str) {
        warn(message);
    }

    fn detail(&self, message: &str) {
        detail(message);
    }

    fn bar(&self, length: Option<u64>, prefix: &str) -> ProgressBar {
        match length {
            Some(length) => bar(length, prefix),
            None => spinner(prefix),
        }
    }

    fn bars_enabled(&self) -> bool {
        progress_enabled()
    }
}
