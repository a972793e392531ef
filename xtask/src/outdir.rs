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

use crate::report::{CellResult, Results, Status};
use crate::stage::Category;
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

/// The result of a cell whose own output failed after it booted (a full
/// disk, an unwritable directory): that cell becomes `error` with the OS
/// error, and the run goes on with the other cells. An interruption stays an error.
pub fn contain_cell_fault(mut result: CellResult, err: anyhow::Error) -> Result<CellResult> {
    if error::is_interrupted(&err) {
        return Err(err);
    }
    result.status = Status::Error;
    result.category = Some(Category::Infrastructure);
    result.message = Some(format!("{:#}", err));
    crate::progress::status("Failed", format!("{} (infrastructure: {err:#})", result.id));
    Ok(result)
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

    /// A tmpfs of `size` at `dir` (root only), unmounted on drop.
    struct Tmpfs(std::path::PathBuf);

    impl Tmpfs {
        fn mount(dir: &Path, options: &str) -> Tmpfs {
            fs_err::create_dir_all(dir).unwrap();
            crate::process::Cmd::new("mount")
                .args(["-t", "tmpfs", "-o", options, "kforge-test"])
                .arg(dir)
                .run()
                .unwrap();
            Tmpfs(dir.to_path_buf())
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = crate::process::Cmd::new("umount").arg(&self.0).run();
        }
    }

    fn cell(id: &str) -> CellResult {
        let text = format!(
            r#"{{"id": "{id}", "arch": "x86_64", "kernel": "7.2", "toolchain": "sid", "status": "pass", "log": "console.log",
                "tests": [{{"name": "fifo.load", "status": "pass"}}],
                "totals": {{"pass": 1, "fail": 0, "skip": 0, "error": 0}},
                "timings": {{"build_seconds": 1.0, "boot_seconds": 1.0}}}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    #[ignore = "mounts a small tmpfs and a read-only one: needs root (CI runs it with --include-ignored)"]
    fn a_full_disk_fails_one_cell_with_the_os_error_and_a_read_only_cache_says_so_once() {
        let dir = tempfile::tempdir().unwrap();
        // One cell's directory on a 64 KiB tmpfs: writing its console log fills it.
        let full = Tmpfs::mount(&dir.path().join("out/cells/7.2-arm64"), "size=64k");
        let write = cache::write_atomic(&full.0.join("console.log"), vec![b'x'; 1 << 20]);
        let err = write.expect_err("the disk is full");
        let failed = contain_cell_fault(cell("7.2-arm64"), err).unwrap();
        assert_eq!((failed.status, failed.category), (Status::Error, Some(Category::Infrastructure)));
        let message = failed.message.clone().unwrap();
        assert!(message.contains("No space left on device (os error 28)"), "{message}");
        // The other cell and the run's results are kept and written.
        let results = Results::new(vec![cell("7.2-x86_64"), failed]);
        results.write(&dir.path().join("out")).unwrap();
        let written = Results::read(&dir.path().join("out/results.json")).unwrap();
        assert_eq!(written.cells.len(), 2);
        assert_eq!(written.cells[0].status, Status::Pass);
        assert_eq!(written.exit_code(), 2);
        assert!(contain_cell_fault(cell("x"), crate::error::Interrupted.into()).is_err(), "Ctrl-C is not a cell error");
        drop(full);

        let cache_dir = Tmpfs::mount(&dir.path().join("cache"), "ro,size=64k");
        let message = error::render(&cache::check_writable(&cache_dir.0).unwrap_err());
        assert!(message.contains("the kforge cache is not writable"), "{message}");
        assert!(message.contains("Read-only file system (os error 30)"), "{message}");
        assert!(message.contains("KFORGE_CACHE_DIR"), "{message}");
        let message = error::render(&cache::lock(&cache_dir.0.join("kernels/x")).err().unwrap());
        assert!(message.contains("the kforge cache is not writable"), "{message}");
    }
}
