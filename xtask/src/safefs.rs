//! Reading files a build produced without following its symlinks: packers read through here.
//!
//! A build (kernel, driver, test program) runs code kforge does not control;
//! it can leave a symlink where a packer expects a file, pointing at a host
//! file the packer would then ship. Every read here opens with `O_NOFOLLOW`
//! (and `O_NONBLOCK`, so a FIFO cannot stall it) and checks, on the open
//! file, that it is a regular file.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A regular file's bytes and permission bits (setuid, setgid and sticky stripped).
pub struct Regular {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Reads `path`, which must be a regular file and not a symlink.
pub fn read_regular(path: &Path) -> Result<Regular> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            let target = std::fs::read_link(path).map(|target| target.display().to_string()).unwrap_or_default();
            bail!(
                "{} is a symlink (to `{target}`), not a file; kforge does not follow symlinks a build created \
                 when it packs files",
                path.display()
            );
        }
        Err(err) => return Err(err).with_context(|| format!("cannot open {}", path.display())),
    };
    let meta = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!("{} is not a regular file ({}); refusing to pack it", path.display(), kind(&meta));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut data).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Regular { data, mode: meta.mode() & 0o777 })
}

/// Reads `path`, which may be a symlink only if it resolves inside `root`
/// (a kernel tree's own relative links); the target is then read with
/// [`read_regular`]. A link out of `root` is refused, naming both.
pub fn read_within(path: &Path, root: &Path) -> Result<Regular> {
    let resolved = resolve_within(path, root)?;
    read_regular(&resolved)
}

/// `path` with every symlink resolved, checked to stay inside `root`.
pub fn resolve_within(path: &Path, root: &Path) -> Result<PathBuf> {
    let root = std::fs::canonicalize(root).with_context(|| format!("cannot resolve {}", root.display()))?;
    let resolved = std::fs::canonicalize(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    if !resolved.starts_with(&root) {
        bail!(
            "{} leads to {}, outside {}; kforge does not follow a symlink out of the tree it packs",
            path.display(),
            resolved.display(),
            root.display()
        );
    }
    Ok(resolved)
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_fifos_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file"), b"data").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("sub/file", root.join("inside")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY (test only): a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        let read = read_regular(&root.join("sub/file")).unwrap();
        assert_eq!((read.data.as_slice(), read.mode & 0o600), (&b"data"[..], 0o600));
        let message = format!("{:#}", read_regular(&root.join("evil")).err().unwrap());
        assert!(message.contains("is a symlink (to `/etc/passwd`)"), "{message}");
        let message = format!("{:#}", read_regular(&root.join("fifo")).err().unwrap());
        assert!(message.contains("is not a regular file (a FIFO)"), "{message}");
        assert!(read_regular(&root.join("inside")).is_err(), "read_regular never follows");

        assert_eq!(read_within(&root.join("inside"), &root).unwrap().data, b"data");
        let message = format!("{:#}", read_within(&root.join("evil"), &root).err().unwrap());
        assert!(message.contains("outside") && message.contains("/etc/passwd"), "{message}");
    }
}
