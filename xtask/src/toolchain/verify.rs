//! Verifies a toolchain's pins through its provider; the check types live in `check`.

use anyhow::Result;

use super::Toolchain;
pub use super::check::{Report, version_after};

/// Verifies every pin of a toolchain: inside its installed root (Debian), or
/// on the host through the sandbox builds use (rustup, host).
pub fn verify(toolchain: &Toolchain) -> Result<Report> {
    toolchain.provider().verify(toolchain)
}
