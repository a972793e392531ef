//! The output directory of a run (results.json, cells/<id>): one run at a time, and marked incomplete while it runs.
//!
//! `claim` takes an exclusive lock on `<output>/.kforge-run.lock` for the
//! whole run. A second run on the same directory is refused at once with a
//! message naming the holder (pid and command), rather than waiting: it
//! would otherwise delete the first run's `cells/<id>` directories. Then
//! the previous verdict is replaced by an empty results.json with
//! `"complete": false` (and the old junit.xml and report.html go), so a run
//! that is interrupted or killed never leaves the previous verdict standing.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::report::Results;
use crate::{cache, error};

/// The lock file inside the output directory.
pub const LOCK_FILE: &str = ".kforge-run.lock";

/// Held for the whole run; dropping it releases the directory.
pub struct OutputLock {
    _file: std::fs::File,
}

/// Locks `output` for `command` (shown to a second run) and marks its results incomplete.
pub fn claim(output: &Path, command: &str) -> Result<OutputLock> {
    fs_err::create_dir_all(output)
        .map_err(|err| error::user(format!("cannot create the output directory {}: {err}", output.display())))?;
    let path = output.join(LOCK_FILE);
    let mut file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|err| error::user(format!("cannot open {}: {err}", path.display())))?
        .into_file();
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder =
                if holder.trim().is_empty() { "another kforge".to_string() } else { holder.trim().to_string() };
            return Err(error::user_hint(
                format!("the output directory {} is in use by {holder}", output.display()),
                "wait for that run to finish (or stop it), or give this run its own directory: KFORGE_OUTPUT_DIR=<dir>",
            ));
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("failed to lock {}", path.display()));
        }
    }
    // Best effort: the lock is what counts; the text only names the holder.
    let _ = file.set_len(0).and_then(|()| write!(file, "kforge pid {} (`{command}`)", std::process::id()));
    mark_incomplete(output)?;
    Ok(OutputLock { _file: file })
}

/// Replaces the previous run's results with an empty, incomplete results.json.
pub fn mark_incomplete(output: &Path) -> Result<()> {
    let mut results = Results::new(Vec::new());
    results.complete = false;
    cache::write_atomic(&output.join("results.json"), serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("cannot mark {} incomplete", output.join("results.json").display()))?;
    for stale in ["junit.xml", "report.html"] {
        match std::fs::remove_file(output.join(stale)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("cannot remove {}", output.join(stale).display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_naming_the_first_and_old_results_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("kforge");
        Results::new(Vec::new()).write(&output).unwrap();
        let first = claim(&output, "cargo xtask test").unwrap();
        let results = Results::read(&output.join("results.json")).unwrap();
        assert!(!results.complete, "a run in progress is incomplete");
        assert!(!output.join("junit.xml").exists() && !output.join("report.html").exists());
        let message = error::render(&claim(&output, "cargo xtask test").err().unwrap());
        let holder = format!("is in use by kforge pid {} (`cargo xtask test`)", std::process::id());
        assert!(message.contains(&holder), "{message}");
        assert!(message.contains("KFORGE_OUTPUT_DIR"), "{message}");
        drop(first);
        claim(&output, "cargo xtask test").unwrap();
    }
}
