//! How the layers below `commands/` report progress without printing: status lines, details, warnings and bars go to the sink the CLI installs (`ui`).
//!
//! Lower layers call `progress::status(..)` and friends; `main` installs
//! `ui::TerminalSink` once at start-up. Without a sink (unit tests, library
//! use) every event is dropped and bars are hidden, so nothing below the
//! command layer ever writes to the terminal itself.

use std::sync::OnceLock;

use indicatif::ProgressBar;

/// Where progress goes. The CLI's implementation is `ui::TerminalSink`.
pub trait Sink: Send + Sync {
    /// A cargo-style status line: a verb and a message.
    fn status(&self, verb: &str, message: &str);
    /// Something the user should know about, shown even when quiet.
    fn warn(&self, message: &str);
    /// Detail shown only in verbose mode (echoed commands and the like).
    fn detail(&self, message: &str);
    /// A bar of known length, or a spinner when `length` is `None` (hidden when bars are off).
    fn bar(&self, length: Option<u64>, prefix: &str) -> ProgressBar;
    /// Whether bars are drawn; when they are not, long work reports periodic status lines instead.
    fn bars_enabled(&self) -> bool;
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();

/// Installs the sink once, at start-up. Later calls are ignored.
pub fn install(sink: Box<dyn Sink>) {
    let _ = SINK.set(sink);
}

fn sink() -> Option<&'static dyn Sink> {
    SINK.get().map(|sink| sink.as_ref())
}

pub fn status(verb: &str, message: impl AsRef<str>) {
    if let Some(sink) = sink() {
        sink.status(verb, message.as_ref());
    }
}

pub fn warn(message: impl AsRef<str>) {
    if let Some(sink) = sink() {
        sink.warn(message.as_ref());
    }
}

pub fn detail(message: impl AsRef<str>) {
    if let Some(sink) = sink() {
        sink.detail(message.as_ref());
    }
}

/// A progress bar of known length (hidden without a sink or when bars are off).
pub fn bar(length: u64, prefix: &str) -> ProgressBar {
    sink().map_or_else(ProgressBar::hidden, |sink| sink.bar(Some(length), prefix))
}

/// A spinner for work of unknown length (hidden without a sink or when bars are off).
pub fn spinner(prefix: &str) -> ProgressBar {
    sink().map_or_else(ProgressBar::hidden, |sink| sink.bar(None, prefix))
}

/// Whether bars are drawn.
pub fn bars_enabled() -> bool {
    sink().is_some_and(|sink| sink.bars_enabled())
}
