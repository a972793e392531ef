//! Headless Chromium: draws a local HTML page (the report) into a PNG.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::hostdeps;
use crate::process::Cmd;

/// A cold Chromium start takes a few seconds; a busy machine may need more.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Saves a `width` x `height` screenshot of `page` (a local HTML file) to
/// `png`. Installs chromium with apt first when it is missing and kforge may.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) -> Result<()> {
    hostdeps::ensure(&[hostdeps::CHROMIUM])?;
    let page = fs_err::canonicalize(page)?;
    let png = std::path::absolute(png).with_context(|| format!("cannot resolve {}", png.display()))?;
    if let Some(parent) = png.parent() {
        fs_err::create_dir_all(parent)?;
    }
    // A stale picture must not pass for a new one.
    if png.exists() {
        fs_err::remove_file(&png)?;
    }
    // A fresh profile, and HOME pointing into it, so Chromium writes nothing
    // into the user's home and two runs never share state.
    let profile = std::env::temp_dir().join(format!("kforge-chromium-{}", std::process::id()));
    crate::cache::remove_dir_if_exists(&profile)?;
    fs_err::create_dir_all(&profile)?;
    let cmd = Cmd::new(hostdeps::CHROMIUM.program)
        .arg("--headless")
        // The sandbox needs user namespaces or a setuid helper, which root and
        // many CI containers lack. The page is our own file and its
        // Content-Security-Policy forbids scripts.
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--hide-scrollbars")
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(crate::report::html::file_url(&page))
        .env("HOME", &profile)
        .env("XDG_CONFIG_HOME", &profile)
        .env("XDG_CACHE_HOME", &profile);
    let ran = cmd.run_with_timeout(TIMEOUT);
    crate::cache::remove_dir_if_exists(&profile)?;
    ran.with_context(|| format!("headless Chromium could not draw {}", page.display()))?;
    if !png.is_file() {
        anyhow::bail!("headless Chromium exited successfully but wrote no {}", png.display());
    }
    Ok(())
}
