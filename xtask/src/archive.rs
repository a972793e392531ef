//! Unpacking untrusted tar archives (kernel tarballs, the tar inside a linux-source .deb) without escaping the destination.
//!
//! Every entry is checked before it is written: no absolute path, no `..`
//! component, no absolute symlink, no symlink or hard link whose target
//! leaves the destination, no device or FIFO. Permission bits are kept but
//! setuid, setgid and sticky are stripped (`set_mask`), and ownership is
//! never restored. After the last entry, every symlink the archive created
//! is resolved once more, so that a chain of links cannot lead out either.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use tar::EntryType;

/// Bits never restored from an archive: setuid, setgid, sticky.
const STRIPPED_MODE_BITS: u32 = 0o7000;

/// Unpacks `input` (an uncompressed tar stream) into `target`; the error
/// names the entry that was refused and why.
pub fn unpack_tar(input: impl Read, target: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_mask(STRIPPED_MODE_BITS);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut links = Vec::new();
    for entry in archive.entries()? {
        crate::process::check_interrupt()?;
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let refuse = |why: String| anyhow!("refusing archive entry `{}`: {why}", path.display());
        let relative = plain_relative(&path).map_err(refuse)?;
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse | EntryType::Directory => {}
            EntryType::Symlink => {
                let link = entry.link_name()?.ok_or_else(|| refuse("a symlink without a target".to_string()))?;
                check_symlink(&relative, &link).map_err(refuse)?;
                links.push(relative.clone());
            }
            EntryType::Link => {
                let link = entry.link_name()?.ok_or_else(|| refuse("a hard link without a target".to_string()))?;
                plain_relative(&link).map_err(|why| refuse(format!("hard link to `{}`: {why}", link.display())))?;
            }
            other => {
                return Err(refuse(format!("entry type {other:?} (devices, FIFOs and the like are not unpacked)")));
            }
        }
        if !entry.unpack_in(target).with_context(|| format!("failed to unpack `{}`", path.display()))? {
            return Err(refuse("it would be written outside the destination".to_string()));
        }
    }
    let root = std::fs::canonicalize(target).with_context(|| format!("cannot resolve {}", target.display()))?;
    for link in links {
        // A dangling link stays (its lexical target was checked above).
        if let Ok(resolved) = std::fs::canonicalize(root.join(&link))
            && !resolved.starts_with(&root)
        {
            bail!(
                "refusing archive entry `{}`: the symlink leads to {}, outside the destination",
                link.display(),
                resolved.display()
            );
        }
    }
    Ok(())
}

/// `path` as plain relative components: no root, no `..` (`.` dropped).
fn plain_relative(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("a `..` component".to_string()),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path".to_string()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("an empty path".to_string());
    }
    Ok(out)
}

/// A symlink at `entry` (relative to the destination) pointing at `link`
/// must be relative and, read lexically from the entry's directory, stay inside.
fn check_symlink(entry: &Path, link: &Path) -> Result<(), String> {
    if link.has_root() {
        return Err(format!("an absolute symlink (to `{}`)", link.display()));
    }
    let mut depth = entry.components().count() as i64 - 1;
    for component in link.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!("a symlink to `{}`, which leaves the destination", link.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// One raw tar entry, written without the tar crate's own path checks
    /// (a hostile archive is built by hand, not by a careful writer).
    pub fn raw_entry(out: &mut Vec<u8>, path: &str, kind: EntryType, mode: u32, link: &str, data: &[u8]) {
        let mut header = tar::Header::new_old();
        let bytes = header.as_mut_bytes();
        bytes[..path.len()].copy_from_slice(path.as_bytes());
        bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_mtime(1);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    /// A tar whose one hostile entry follows an ordinary tree.
    pub fn tar_with(hostile: &[(&str, EntryType, u32, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        raw_entry(&mut out, "linux-9.9/", EntryType::Directory, 0o755, "", b"");
        raw_entry(&mut out, "linux-9.9/Makefile", EntryType::Regular, 0o644, "", b"all:\n");
        for (path, kind, mode, link) in hostile {
            raw_entry(&mut out, path, *kind, *mode, link, if *kind == EntryType::Regular { b"x" } else { b"" });
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::create_dir(&target).unwrap();
        let result = unpack_tar(bytes, &target);
        (dir, result)
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        use EntryType::{Block, Link, Regular, Symlink};
        let cases: [(&str, EntryType, &str, &str); 7] = [
            ("/tmp/kforge-evil", Regular, "", "an absolute path"),
            ("linux-9.9/../../evil", Regular, "", "a `..` component"),
            ("linux-9.9/passwd", Symlink, "/etc/passwd", "an absolute symlink (to `/etc/passwd`)"),
            ("linux-9.9/up", Symlink, "../..", "a symlink to `../..`, which leaves the destination"),
            ("linux-9.9/hard", Link, "../etc/passwd", "hard link to `../etc/passwd`: a `..` component"),
            ("linux-9.9/hard", Link, "/etc/passwd", "an absolute path"),
            ("linux-9.9/sda", Block, "", "entry type Block"),
        ];
        for (path, kind, link, why) in cases {
            let (dir, result) = unpack(&tar_with(&[(path, kind, 0o644, link)]));
            let message = format!("{:#}", result.unwrap_err());
            assert!(message.contains(&format!("refusing archive entry `{path}`")), "{message}");
            assert!(message.contains(why), "{path}: {message}");
            assert!(!dir.path().join("evil").exists() && !Path::new("/tmp/kforge-evil").exists());
        }
    }

    #[test]
    fn a_chain_of_inside_links_that_leads_out_is_refused() {
        // `d/l -> ..` is the destination itself; `e -> d/l/..` looks inside but is its parent.
        let bytes = tar_with(&[
            ("linux-9.9/d/", EntryType::Directory, 0o755, ""),
            ("linux-9.9/d/l", EntryType::Symlink, 0o777, ".."),
            ("linux-9.9/e", EntryType::Symlink, 0o777, "d/l/../.."),
        ]);
        let (_dir, result) = unpack(&bytes);
        let message = format!("{:#}", result.unwrap_err());
        assert!(message.contains("refusing archive entry `linux-9.9/e`"), "{message}");
    }

    #[test]
    fn setuid_and_setgid_are_stripped_and_inside_links_kept() {
        use std::os::unix::fs::PermissionsExt;
        let bytes = tar_with(&[
            ("linux-9.9/suid", EntryType::Regular, 0o6755, ""),
            ("linux-9.9/scripts/", EntryType::Directory, 0o3775, ""),
            ("linux-9.9/scripts/make", EntryType::Symlink, 0o777, "../Makefile"),
        ]);
        let (dir, result) = unpack(&bytes);
        result.unwrap();
        let tree = dir.path().join("out/linux-9.9");
        let mode = |path: &str| std::fs::metadata(tree.join(path)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("suid"), 0o755);
        assert_eq!(mode("scripts"), 0o775);
        assert_eq!(std::fs::read(tree.join("scripts/make")).unwrap(), b"all:\n");
    }

    #[test]
    fn a_hostile_kernel_tarball_served_over_http_is_refused_and_never_published() {
        use crate::project::{KernelEntry, KernelSource};
        let mut env = crate::test_support::ScopedEnv::lock();
        let cache_dir = tempfile::tempdir().unwrap();
        env.set("KFORGE_CACHE_DIR", cache_dir.path());
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = crate::toolchain::Toolchain::load(&repo, "sid").unwrap();
        let hostile: [(&str, EntryType, u32, &str); 3] = [
            ("linux-9.9/scripts/evil", EntryType::Symlink, 0o777, "/etc"),
            ("linux-9.9/../../escaped", EntryType::Regular, 0o644, ""),
            ("linux-9.9/up", EntryType::Symlink, 0o777, "../../.."),
        ];
        for (index, entry) in hostile.into_iter().enumerate() {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &tar_with(&[entry])).unwrap();
            let body = gz.finish().unwrap();
            let sha256 = crate::cache::sha256_hex(&body);
            let (url, server) = crate::fetch::tests::serve(body, 1);
            let kernel = KernelEntry {
                id: format!("hostile{index}"),
                version: "9.9.0".into(),
                toolchain: "sid".into(),
                source: KernelSource::Tarball { url, sha256 },
            };
            let result = crate::kernel::source::prepare(&kernel, &toolchain);
            server.join().unwrap();
            let Err(err) = result else { panic!("a hostile tarball is refused") };
            let message = format!("{err:#}");
            assert!(message.contains(&format!("refusing archive entry `{}`", entry.0)), "{message}");
            assert!(message.contains("linux-fixture.tar.gz"), "the archive is named: {message}");
            assert!(!cache_dir.path().join("escaped").exists() && !cache_dir.path().join("sources/escaped").exists());
            let published: Vec<_> = std::fs::read_dir(cache_dir.path().join("sources"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&kernel.id) && !name.contains(".tmp") && !name.ends_with(".lock"))
                .collect();
            assert!(published.is_empty(), "no source entry is published: {published:?}");
        }
    }
}
