//! One GNU make jobserver shared by every build of a run, so concurrent cells together use exactly the machine's cores.
//!
//! kforge creates a named FIFO holding `jobs` tokens. Every build or boot
//! first takes one token for itself (the "implicit" slot a make started from a
//! jobserver-aware parent owns), and each `make` gets
//! `MAKEFLAGS=--jobserver-auth=fifo:<path>` so it borrows further tokens for
//! parallel jobs and returns them. At any moment at most `jobs` compile jobs
//! and QEMU instances run, however many cells are in flight.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process;
use crate::sandbox::Jail;

/// Where the FIFO appears inside sandboxes.
pub const GUEST_PATH: &str = "/kforge/jobserver";

/// The run's jobserver. The FIFO is removed when it is dropped.
#[derive(Debug)]
pub struct Jobserver {
    path: PathBuf,
    jobs: usize,
    /// Held open read-write so the FIFO never sees EOF and tokens persist.
    fifo: File,
}

/// A token held by kforge itself; returned to the pool when dropped.
#[derive(Debug)]
pub struct Token<'a> {
    server: &'a Jobserver,
    byte: u8,
}

impl Jobserver {
    /// Creates a FIFO in `dir` holding `jobs` tokens.
    pub fn new(dir: &Path, jobs: usize) -> Result<Jobserver> {
        fs_err::create_dir_all(dir)?;
        let path = dir.join(format!("jobserver-{}.fifo", std::process::id()));
        let _ = fs_err::remove_file(&path);
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: mkfifo(3) gets a valid NUL-terminated path and a mode.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot create {}", path.display()));
        }
        let mut fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        fifo.write_all(&vec![b'+'; jobs.max(1)])?;
        Ok(Jobserver { path, jobs: jobs.max(1), fifo })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `MAKEFLAGS` for a make running inside a sandbox where the FIFO is at `GUEST_PATH`.
    pub fn makeflags(&self) -> String {
        format!("-j{} --jobserver-auth=fifo:{GUEST_PATH}", self.jobs)
    }

    /// Waits for a token (checking for Ctrl-C while waiting).
    pub fn acquire(&self) -> Result<Token<'_>> {
        let mut byte = [0u8; 1];
        loop {
            process::check_interrupt()?;
            match (&self.fifo).read(&mut byte) {
                Ok(1) => return Ok(Token { server: self, byte: byte[0] }),
                Ok(_) => std::thread::sleep(Duration::from_millis(50)),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).with_context(|| format!("cannot read {}", self.path.display())),
            }
        }
    }
}

/// How a make gets its parallelism.
#[derive(Debug, Clone, Copy)]
pub enum Parallel<'a> {
    /// Its own `-jN` (a single build, or a make too old for FIFO jobservers).
    Jobs(usize),
    /// Borrow tokens from the run's shared jobserver.
    Shared(&'a Jobserver),
}

impl Parallel<'_> {
    /// Arguments for make's command line: `-jN`, or nothing when MAKEFLAGS carries the jobserver
    /// (a `-j` on the command line would make it start a jobserver of its own).
    pub fn make_args(&self) -> Vec<String> {
        match self {
            Parallel::Jobs(jobs) => vec![format!("-j{jobs}")],
            Parallel::Shared(_) => Vec::new(),
        }
    }

    /// Mounts the FIFO into the jail and points MAKEFLAGS at it.
    pub fn attach<'j>(&self, mut jail: Jail<'j>) -> Jail<'j> {
        match self {
            Parallel::Jobs(_) => jail,
            Parallel::Shared(server) => {
                jail.rw(server.path(), GUEST_PATH);
                jail.env("MAKEFLAGS", &server.makeflags())
            }
        }
    }
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        let _ = (&self.server.fifo).write_all(&[self.byte]);
    }
}

impl Drop for Jobserver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_limited_and_returned() {
        let dir = std::env::temp_dir().join(format!("kforge-jobserver-test-{}", std::process::id()));
        let server = Jobserver::new(&dir, 2).unwrap();
        let first = server.acquire().unwrap();
        let second = server.acquire().unwrap();
        // The pool is empty now: a reader finds nothing.
        let mut byte = [0u8; 1];
        assert!((&server.fifo).read(&mut byte).is_err());
        drop(first);
        let third = server.acquire().unwrap();
        drop((second, third));
        assert_eq!(server.makeflags(), "-j2 --jobserver-auth=fifo:/kforge/jobserver");
        let path = server.path().to_path_buf();
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    #[ignore = "needs GNU make >= 4.4 on the host (FIFO jobserver); .ci/run skips it, saying so, on older hosts"]
    fn make_borrows_tokens_from_the_fifo() {
        // Cross-check with a host make that speaks the FIFO protocol (GNU
        // make >= 4.4; toolchain roots always do). The end-to-end run
        // exercises it inside the root regardless.
        let version = process::Cmd::new("make").arg("--version").run().unwrap_or_default();
        let fifo_capable = crate::toolchain::verify::version_after(&version, "GNU Make ")
            .is_some_and(|found| crate::version::compare(&found, "4.4").is_ge());
        assert!(fifo_capable, "host make is not GNU make >= 4.4 (`make --version`: {:?})", version.lines().next());
        let dir = std::env::temp_dir().join(format!("kforge-jobserver-make-{}", std::process::id()));
        let server = Jobserver::new(&dir, 2).unwrap();
        fs_err::write(dir.join("Makefile"), "all: a b\na b:\n\t@echo $@; sleep 0.2\n").unwrap();
        let token = server.acquire().unwrap();
        let flags = format!("-j2 --jobserver-auth=fifo:{}", server.path().display());
        let output = process::Cmd::new("make").arg("-C").arg(&dir).env("MAKEFLAGS", &flags).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        drop(token);
        // Both tokens are back in the pool.
        let _a = server.acquire().unwrap();
        let _b = server.acquire().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
