//! Content-addressed cache entries: stable hashing of inputs, per-entry locks, and atomic publication.
//!
//! An entry is a directory `<kind>/<name>-<hash>`. It is built under a
//! sibling work directory and renamed into place only when complete, so an
//! interrupted run never leaves a half-written entry; the next run takes the
//! same lock and finishes or restarts the work directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::progress;

/// Hashes named inputs in order, so a key names exactly what went into it.
#[derive(Clone)]
pub struct KeyHasher {
    hasher: Sha256,
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHasher {
    pub fn new() -> KeyHasher {
        KeyHasher { hasher: Sha256::new() }
    }

    /// Adds one named input. Names and values are length-prefixed so that
    /// ("ab","c") and ("a","bc") never collide.
    pub fn input(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut KeyHasher {
        let value = value.as_ref();
        self.hasher.update((name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self
    }

    /// Full hex digest.
    pub fn finish(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    /// The first 16 hex digits, used in directory names.
    pub fn short(&self) -> String {
        self.finish()[..16].to_string()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// sha256 of a byte slice, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// sha256 of a file's contents, as hex, streaming.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let read = file.read(&mut buffer).with_context(|| format!("failed to read {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// An exclusive lock on `<path>.lock`, released when dropped.
pub struct EntryLock {
    _file: File,
}

/// Takes the lock for a cache entry, waiting (and saying so, once) if another kforge holds it.
/// Ctrl-C ends the wait: it polls the lock every [`LOCK_POLL`] instead of blocking.
pub fn lock(entry: &Path) -> Result<EntryLock> {
    lock_with(entry, crate::process::interrupted)
}

/// How often a waiting `lock` tries again and looks at the interrupt flag.
pub const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(100);

fn lock_with(entry: &Path, cancelled: fn() -> bool) -> Result<EntryLock> {
    use std::io::Write;
    let lock_path = sibling(entry, "lock");
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent).map_err(|err| not_writable(parent, err))?;
    }
    let mut file =
        fs_err::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&lock_path)?.into_file();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if !told {
                    let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                    let holder =
                        if holder.trim().is_empty() { "another kforge".to_string() } else { holder.trim().to_string() };
                    progress::status(
                        "Waiting",
                        format!("for {holder} to release {} (Ctrl-C stops)", lock_path.display()),
                    );
                    told = true;
                }
                if cancelled() {
                    return Err(crate::error::Interrupted.into());
                }
                std::thread::sleep(LOCK_POLL);
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("failed to lock {}", lock_path.display()));
            }
        }
    }
    // Who holds it, for the next waiter's message (best effort: the lock is what counts).
    let _ = file.set_len(0).and_then(|()| write!(file, "kforge pid {}", std::process::id()));
    Ok(EntryLock { _file: file })
}

/// Fails with one clear message when the cache directory `dir` cannot be
/// written (a read-only mount, no permission, a full disk): every command
/// that builds or installs keeps its entries and locks there.
pub fn check_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".kforge-write-check-{}", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"kforge"))
        .map_err(|err| not_writable(dir, err))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn not_writable(path: &Path, err: std::io::Error) -> anyhow::Error {
    crate::error::user_hint(
        format!("the kforge cache is not writable: cannot write {}: {err}", path.display()),
        "make it writable, or point KFORGE_CACHE_DIR at a writable directory (kforge keeps its toolchains, kernels and locks there)",
    )
}

/// `<entry>.<suffix>` next to the entry (lock files, work directories).
pub fn sibling(entry: &Path, suffix: &str) -> PathBuf {
    let mut name = entry.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(suffix);
    entry.with_file_name(name)
}

/// Makes sure a directory entry exists: if absent, `build` fills a fresh work
/// directory which is then renamed to `entry`. A work directory left by an
/// interrupted run is removed first. Returns whether it was built now.
pub fn ensure_dir(entry: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<bool> {
    if entry.is_dir() {
        return Ok(false);
    }
    let _lock = lock(entry)?;
    if entry.is_dir() {
        return Ok(false);
    }
    let work = sibling(entry, "tmp");
    remove_dir_if_exists(&work)?;
    fs_err::create_dir_all(&work)?;
    build(&work)?;
    fs_err::rename(&work, entry)?;
    Ok(true)
}

/// Writes a file atomically: write to a temporary sibling, then rename.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let temporary = sibling(path, &format!("tmp-{}", std::process::id()));
    fs_err::write(&temporary, contents)?;
    fs_err::rename(&temporary, path)?;
    Ok(())
}

/// `rm -rf`, quiet when the path does not exist. Mounts below `path` (a
/// toolchain root that a killed mmdebstrap left with /proc or /dev mounted)
/// are detached first, so that the removal neither fails on them nor
/// descends into what they show.
pub fn remove_dir_if_exists(path: &Path) -> Result<()> {
    unmount_below(path)?;
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to remove {}", path.display())),
    }
}

/// Detaches (`umount -l`) every mount at or below `path`, deepest first.
fn unmount_below(path: &Path) -> Result<()> {
    let Ok(root) = std::fs::canonicalize(path) else { return Ok(()) };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return Ok(()) };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(&root))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    points.dedup();
    for point in points {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c_path) = std::ffi::CString::new(point.as_os_str().as_bytes()) else { continue };
        // SAFETY: umount2(2) with a valid NUL-terminated path; no memory is shared.
        if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(crate::error::user_hint(
                format!(
                    "cannot unmount {} (left by an interrupted run) before removing {}: {err}",
                    point.display(),
                    path.display()
                ),
                format!("unmount it by hand (umount -l {}), then run again", point.display()),
            ));
        }
        progress::detail(format!("unmounted {} left by an interrupted run", point.display()));
    }
    Ok(())
}

/// /proc/self/mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes
            .get(index + 1..index + 4)
            .and_then(|digits| std::str::from_utf8(digits).ok().and_then(|digits| u8::from_str_radix(digits, 8).ok()));
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_inputs_are_length_prefixed() {
        let mut first = KeyHasher::new();
        first.input("a", "bc");
        let mut second = KeyHasher::new();
        second.input("ab", "c");
        assert_ne!(first.finish(), second.finish());
        assert_eq!(first.short().len(), 16);
    }

    static CANCEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    #[test]
    fn a_wait_for_a_held_lock_ends_on_ctrl_c() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("thing-1234");
        let held = lock(&entry).unwrap();
        assert_eq!(
            fs_err::read_to_string(sibling(&entry, "lock")).unwrap(),
            format!("kforge pid {}", std::process::id())
        );
        let canceller = std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            CANCEL.store(true, Ordering::SeqCst);
        });
        let started = std::time::Instant::now();
        let waited = lock_with(&entry, || CANCEL.load(Ordering::SeqCst));
        let took = started.elapsed();
        canceller.join().unwrap();
        assert!(waited.is_err_and(|err| crate::error::is_interrupted(&err)));
        // 300 ms, plus one poll, plus slack for a loaded machine.
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        drop(held);
        // Released: the next taker gets it at once.
        lock_with(&entry, || false).unwrap();
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b/proc"), "/tmp/a b/proc");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    #[ignore = "mounts a tmpfs: needs root (CI runs it with --include-ignored)"]
    fn a_stale_work_directory_with_mounts_is_unmounted_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("sid-1234.tmp");
        let proc_dir = work.join("root/proc");
        fs_err::create_dir_all(&proc_dir).unwrap();
        crate::process::Cmd::new("mount").args(["-t", "tmpfs", "kforge-test"]).arg(&proc_dir).run().unwrap();
        fs_err::write(proc_dir.join("inside-the-mount"), "x").unwrap();
        remove_dir_if_exists(&work).unwrap();
        assert!(!work.exists());
        let mounts = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&proc_dir.display().to_string()), "the mount is gone");
    }

    #[test]
    fn ensure_dir_publishes_only_complete_entries() {
        let base = std::env::temp_dir().join(format!("kforge-cache-test-{}", std::process::id()));
        let entry = base.join("thing-1234");
        let failed = ensure_dir(&entry, |work| {
            fs_err::write(work.join("half"), "x")?;
            anyhow::bail!("simulated failure")
        });
        assert!(failed.is_err());
        assert!(!entry.exists(), "a failed build must not publish the entry");
        let built = ensure_dir(&entry, |work| Ok(fs_err::write(work.join("done"), "ok")?)).unwrap();
        assert!(built);
        assert!(entry.join("done").is_file());
        assert!(!entry.join("half").exists(), "the stale work directory was reused");
        let again = ensure_dir(&entry, |_| anyhow::bail!("must not rebuild")).unwrap();
        assert!(!again);
        let _ = std::fs::remove_dir_all(base);
    }
}
