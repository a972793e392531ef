//! Where things live: the repository, the cache outside it, and the run's output directory.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The repository root: `KFORGE_ROOT`, else the nearest ancestor of the
/// current directory holding `kforge.toml`, else the tree xtask was built from.
pub fn repo_root() -> Result<PathBuf> {
    if let Some(root) = std::env::var_os("KFORGE_ROOT") {
        return Ok(PathBuf::from(root));
    }
    let cwd = std::env::current_dir()?;
    if let Some(found) = cwd.ancestors().find(|dir| dir.join("kforge.toml").is_file()) {
        return Ok(found.to_path_buf());
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    match built_from {
        Some(root) if root.join("kforge.toml").is_file() => Ok(root),
        _ => bail!("cannot find kforge.toml in {} or any parent directory", cwd.display()),
    }
}

/// The cache, shared by every clone: the session's `--cache-dir`
/// (`KFORGE_CACHE_DIR`), else `$XDG_CACHE_HOME/kforge`, else `~/.cache/kforge`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = crate::session::current().cache_dir {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("kforge"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("kforge")),
        None => bail!("cannot choose a cache directory: set KFORGE_CACHE_DIR or HOME"),
    }
}

/// The results of runs: the session's `--output-dir` (`KFORGE_OUTPUT_DIR`),
/// else `<repo>/target/kforge`.
pub fn output_dir(repo: &Path) -> PathBuf {
    crate::session::current().output_dir.unwrap_or_else(|| repo.join("target").join("kforge"))
}
