//! Toolchain providers (`debian`, `rustup`, `host`) behind one trait: what each installs, how it is verified, how it is described.

pub mod debian;
pub mod host;
pub mod rustup;

use std::path::PathBuf;

use anyhow::Result;

use crate::process::Cmd;
use crate::toolchain::check::Report;
use crate::toolchain::install::InstallOptions;
use crate::toolchain::{Provider, Toolchain};

/// What a toolchain's provider does for it. Every method takes the toolchain
/// (spec and cache locations); providers hold no state.
pub trait ToolchainProvider: Sync {
    /// The commands `toolchain install --dry-run` prints.
    fn plan(&self, toolchain: &Toolchain, options: &InstallOptions) -> Result<Vec<Cmd>>;
    /// Installs what is missing (or everything, with `force`); returns whether it installed anything.
    fn install(&self, toolchain: &Toolchain, options: &InstallOptions) -> Result<bool>;
    /// Whether what the provider installs is there.
    fn is_installed(&self, toolchain: &Toolchain) -> bool;
    /// The rustup toolchain's directory whose `bin` goes first on PATH, when the provider has one.
    fn sysroot(&self, toolchain: &Toolchain) -> Result<Option<PathBuf>>;
    /// Where the toolchain lives, for messages.
    fn describe(&self, toolchain: &Toolchain) -> String;
    /// Checks every pin, each failure with what to do.
    fn verify(&self, toolchain: &Toolchain) -> Result<Report>;
}

/// The provider a spec names.
pub fn of(provider: Provider) -> &'static dyn ToolchainProvider {
    match provider {
        Provider::Debian => &debian::Debian,
        Provider::Rustup => &rustup::Rustup,
        Provider::Host => &host::Host,
    }
}
