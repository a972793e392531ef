//! Kernel source trees: Debian's linux-source package, a release tarball, or a local tree; fetched, verified and unpacked once; and Debian's kernel image packages.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::project::{DebianPackage, KernelEntry, KernelSource};
use crate::toolchain::{Toolchain, mirror};
use crate::{cache, error, fetch, paths, progress};

/// A source tree ready to build from (read-only from here on).
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub dir: PathBuf,
}

/// How the identity of a local `path` source starts: the only kind of source
/// whose files can change without its identity changing.
pub const MUTABLE_IDENTITY_PREFIX: &str = "path:";

/// The identity of a source as written in kforge.toml (no fetching needed).
pub fn identity(source: &KernelSource) -> Result<String> {
    Ok(match source {
        KernelSource::Debian { package, version, sha256 } => format!("debian:{package}={version}:{sha256}"),
        KernelSource::Tarball { sha256, .. } => format!("tarball:{sha256}"),
        KernelSource::Path(path) => format!("{MUTABLE_IDENTITY_PREFIX}{}", canonical_local(path)?.display()),
        KernelSource::DebianImage(image) => {
            let mut identity = format!("debian-image:{}", package_identity(&image.source));
            for (arch, packages) in &image.arches {
                identity.push_str(&format!(
                    ";{arch}:{}:{}",
                    package_identity(&packages.image),
                    package_identity(&packages.headers)
                ));
            }
            identity
        }
    })
}

/// `name=version:sha256` of a pinned package.
pub fn package_identity(package: &DebianPackage) -> String {
    format!("{}={}:{}", package.package, package.version, package.sha256)
}

/// The identity the unpacked tree is keyed by: a Debian kernel's tree is its
/// linux-source package alone (a new image package does not unpack it again).
fn tree_identity(source: &KernelSource) -> Result<String> {
    match source {
        KernelSource::DebianImage(image) => Ok(format!("debian:{}", package_identity(&image.source))),
        other => identity(other),
    }
}

fn canonical_local(path: &Path) -> Result<PathBuf> {
    fs_err::canonicalize(path).map_err(|err| error::user(format!("kernel source path does not exist: {err}")))
}

/// Puts the kernel's source archive into the store without unpacking it (for
/// `cargo xtask fetch`). Returns the store entry; `None` for a local tree.
pub fn fetch_archive(kernel: &KernelEntry, toolchain: &Toolchain) -> Result<Option<PathBuf>> {
    match &kernel.source {
        KernelSource::Path(_) => Ok(None),
        KernelSource::Tarball { url, sha256 } => fetch::fetch(url, sha256).map(Some),
        KernelSource::Debian { package, version, sha256 } => {
            fetch_debian_package(toolchain, package, version, "all", sha256).map(Some)
        }
        KernelSource::DebianImage(image) => {
            for (arch, packages) in &image.arches {
                let arch = crate::arch::Arch::find(arch)?;
                for package in [&packages.image, &packages.headers] {
                    fetch_arch_package(toolchain, package, arch.debian_arch)?;
                }
            }
            let source = &image.source;
            fetch_debian_package(toolchain, &source.package, &source.version, "all", &source.sha256).map(Some)
        }
    }
}

/// Fetches one of a Debian kernel's per-arch packages (`name:arch=version`) into the store.
pub fn fetch_arch_package(toolchain: &Toolchain, package: &DebianPackage, debian_arch: &str) -> Result<PathBuf> {
    fetch_debian_package(toolchain, &package.package, &package.version, debian_arch, &package.sha256)
}

/// Makes the kernel's source tree available, fetching and unpacking it if needed.
pub fn prepare(kernel: &KernelEntry, toolchain: &Toolchain) -> Result<SourceTree> {
    let identity = tree_identity(&kernel.source)?;
    match &kernel.source {
        KernelSource::Path(path) => {
            let dir = canonical_local(path)?;
            check_local_tree(&dir)?;
            Ok(SourceTree { dir })
        }
        KernelSource::Tarball { url, sha256 } => {
            let entry = unpacked_entry(kernel, &identity)?;
            let dir = unpack_once(&entry, |work| {
                let archive = fetch::fetch(url, sha256)?;
                progress::status("Unpacking", format!("{} (kernel {})", fetch::file_name_of(url), kernel.id));
                unpack_tarball(&archive, work)
            })?;
            Ok(SourceTree { dir })
        }
        KernelSource::Debian { package, version, sha256 } => {
            let entry = unpacked_entry(kernel, &identity)?;
            let dir = unpack_once(&entry, |work| {
                let deb = fetch_debian_package(toolchain, package, version, "all", sha256)?;
                progress::status("Unpacking", format!("{package}={version} (kernel {})", kernel.id));
                unpack_linux_source_deb(&deb, work)
            })?;
            Ok(SourceTree { dir })
        }
        KernelSource::DebianImage(image) => {
            let DebianPackage { package, version, sha256 } = &image.source;
            let entry = unpacked_entry(kernel, &identity)?;
            let dir = unpack_once(&entry, |work| {
                let deb = fetch_debian_package(toolchain, package, version, "all", sha256)?;
                progress::status("Unpacking", format!("{package}={version} (kernel {})", kernel.id));
                unpack_linux_source_deb(&deb, work)
            })?;
            Ok(SourceTree { dir })
        }
    }
}

/// The key of a fetched source's unpacked tree: its identity only.
fn unpacked_key(identity: &str) -> cache::KeyHasher {
    let mut key = cache::KeyHasher::new();
    key.input("source", identity);
    key
}

fn unpacked_entry(kernel: &KernelEntry, identity: &str) -> Result<PathBuf> {
    Ok(paths::cache_dir()?.join("sources").join(format!("{}-{}", kernel.id, unpacked_key(identity).short())))
}

/// The cache entry a fetched source is unpacked into and its full key (for
/// CI caches); `None` for a local tree, which is used in place.
pub fn cache_entry(kernel: &KernelEntry) -> Result<Option<(String, PathBuf)>> {
    if let KernelSource::Path(_) = kernel.source {
        return Ok(None);
    }
    let identity = tree_identity(&kernel.source)?;
    Ok(Some((unpacked_key(&identity).finish(), unpacked_entry(kernel, &identity)?)))
}

/// Unpacks into a cache entry once; returns the tree (the entry's single top directory).
fn unpack_once(entry: &Path, unpack: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    cache::ensure_dir(entry, |work| {
        unpack(work)?;
        single_top_dir(work)?;
        Ok(())
    })?;
    single_top_dir(entry)
}

fn single_top_dir(dir: &Path) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    match dirs.as_slice() {
        [only] if only.join("Makefile").is_file() => Ok(only.clone()),
        [only] => bail!("{} does not look like a kernel tree (no Makefile)", only.display()),
        _ => bail!("expected exactly one top-level directory in the kernel archive unpacked at {}", dir.display()),
    }
}

/// An out-of-tree build needs a clean source tree.
fn check_local_tree(dir: &Path) -> Result<()> {
    if !dir.join("Makefile").is_file() || !dir.join("scripts/kconfig/merge_config.sh").is_file() {
        return Err(error::user(format!(
            "{} is not a kernel source tree (no Makefile or scripts/kconfig)",
            dir.display()
        )));
    }
    if dir.join(".config").exists() || dir.join("include/config").exists() {
        return Err(error::user_hint(
            format!(
                "kernel tree {} has been configured in place; kforge builds out of tree and needs it clean",
                dir.display()
            ),
            format!("run: make -C {} mrproper", dir.display()),
        ));
    }
    Ok(())
}

/// Downloads `package=version` (of Debian architecture `debian_arch`, `all`
/// for arch-independent ones) with the toolchain root's apt (network on for
/// this step only) and stores it by its pinned sha256.
fn fetch_debian_package(
    toolchain: &Toolchain,
    package: &str,
    version: &str,
    debian_arch: &str,
    sha256: &str,
) -> Result<PathBuf> {
    let file_name = format!("{package}_{}_{debian_arch}.deb", version.replace(':', "%3a"));
    let stored = fetch::store_path(sha256, &file_name)?;
    let _lock = cache::lock(&stored)?;
    if fetch::check_entry(&stored, sha256)? {
        return Ok(stored);
    }
    if fetch::is_offline() {
        return Err(fetch::missing_offline(&format!("{package}={version} (sha256 {sha256})")));
    }
    let download_dir = paths::cache_dir()?.join("downloads").join(format!("{package}-{}", std::process::id()));
    cache::remove_dir_if_exists(&download_dir)?;
    progress::status("Fetching", format!("{package}={version} with the {} toolchain's apt", toolchain.id()));
    // A foreign architecture's package is asked for as `name:arch` (the root has every arch configured).
    let request = if debian_arch == "all" {
        format!("{package}={version}")
    } else {
        format!("{package}:{debian_arch}={version}")
    };
    mirror::apt_download(toolchain, &[request], &download_dir).map_err(|err| {
        error::with_hint(
            err,
            format!("cannot download {package}={version} with apt"),
            "check the version in kforge.toml exists in the toolchain's suite, and that the mirror is reachable",
        )
    })?;
    let downloaded = fs_err::read_dir(&download_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", download_dir.display()))?;
    let found = cache::sha256_file(&downloaded)?;
    if found != sha256 {
        let _ = cache::remove_dir_if_exists(&download_dir);
        return Err(error::user_hint(
            format!("{package}={version} has sha256 {found}, but kforge.toml pins {sha256}"),
            "if the package was legitimately rebuilt, update the sha256 in kforge.toml",
        ));
    }
    let renamed = download_dir.join(&file_name);
    fs_err::rename(&downloaded, &renamed)?;
    let stored = fetch::adopt(&renamed, sha256)?;
    cache::remove_dir_if_exists(&download_dir)?;
    Ok(stored)
}

/// Unpacks `usr/src/linux-source-*.tar.*` from a linux-source .deb into `target`.
pub fn unpack_linux_source_deb(deb: &Path, target: &Path) -> Result<()> {
    let file = fs_err::File::open(deb)?;
    let mut archive = ar::Archive::new(file);
    while let Some(member) = archive.next_entry() {
        let member = member.with_context(|| format!("{} is not a valid .deb", deb.display()))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        if !name.starts_with("data.tar") {
            continue;
        }
        let data = decompressor(&name, member)?;
        let mut data_tar = tar::Archive::new(data);
        for entry in data_tar.entries()? {
            let entry = entry?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let inner_name = path.rsplit('/').next().unwrap_or_default().to_string();
            if path.contains("usr/src/linux-source-") && inner_name.contains(".tar") {
                let inner = decompressor(&inner_name, entry)?;
                return unpack_tar(inner, target)
                    .with_context(|| format!("failed to unpack {path} from {}", deb.display()));
            }
        }
        bail!("{} has no usr/src/linux-source-*.tar.* inside", deb.display());
    }
    bail!("{} has no data.tar member", deb.display())
}

/// Copies the regular files of a .deb's data archive that `pick` maps to a
/// destination (given the path inside the package, `./` stripped); returns
/// the package paths it copied.
pub fn extract_deb_files(deb: &Path, mut pick: impl FnMut(&str) -> Option<PathBuf>) -> Result<Vec<String>> {
    let file = fs_err::File::open(deb)?;
    let mut archive = ar::Archive::new(file);
    let mut copied = Vec::new();
    while let Some(member) = archive.next_entry() {
        let member = member.with_context(|| format!("{} is not a valid .deb", deb.display()))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        if !name.starts_with("data.tar") {
            continue;
        }
        let mut data_tar = tar::Archive::new(decompressor(&name, member)?);
        for entry in data_tar.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
            if let Some(target) = pick(&path) {
                if let Some(parent) = target.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                entry.unpack(&target).with_context(|| format!("failed to extract {path} from {}", deb.display()))?;
                copied.push(path);
            }
        }
        return Ok(copied);
    }
    bail!("{} has no data.tar member", deb.display())
}

/// Unpacks a `.tar.xz`, `.tar.gz` or `.tar` release archive into `target`.
pub fn unpack_tarball(archive: &Path, target: &Path) -> Result<()> {
    let name = archive.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let file = fs_err::File::open(archive)?;
    unpack_tar(decompressor(&name, file)?, target).with_context(|| format!("failed to unpack {}", archive.display()))
}

fn decompressor<'a>(name: &str, input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    Ok(if name.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(input))
    } else if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(input))
    } else if name.ends_with(".tar") {
        Box::new(input)
    } else {
        bail!("unsupported archive format: {name} (kforge reads .tar, .tar.gz and .tar.xz)")
    })
}

fn unpack_tar(input: impl Read, target: &Path) -> Result<()> {
    // Archives are untrusted: `archive` refuses escaping paths and links and strips setuid/setgid.
    crate::archive::unpack_tar(input, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny "kernel tree" tarball: linux-9.9/Makefile and a script.
    pub fn fixture_tarball() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, body) in
            [("linux-9.9/Makefile", "all:\n"), ("linux-9.9/scripts/kconfig/merge_config.sh", "#!/bin/sh\n")]
        {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            builder.append_data(&mut header, path, body.as_bytes()).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn tarball_source_is_downloaded_verified_and_unpacked() {
        let mut env = crate::test_support::ScopedEnv::lock();
        let cache_dir = std::env::temp_dir().join(format!("kforge-source-test-{}", std::process::id()));
        env.set("KFORGE_CACHE_DIR", &cache_dir);
        let body = fixture_tarball();
        let sha256 = cache::sha256_hex(&body);
        let (url, server) = crate::fetch::tests::serve(body, 1);
        let kernel = KernelEntry {
            id: "fixture".into(),
            version: "9.9.0".into(),
            toolchain: "sid".into(),
            source: KernelSource::Tarball { url, sha256 },
        };
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = Toolchain::load(&repo, "sid").unwrap();
        let tree = prepare(&kernel, &toolchain).unwrap();
        server.join().unwrap();
        assert!(tree.dir.ends_with("linux-9.9"), "{}", tree.dir.display());
        assert_eq!(std::fs::read_to_string(tree.dir.join("Makefile")).unwrap(), "all:\n");
        // Prepared again: no server, served from the unpacked cache.
        assert_eq!(prepare(&kernel, &toolchain).unwrap().dir, tree.dir);
        drop(env);
        let _ = std::fs::remove_dir_all(cache_dir);
    }

    #[test]
    fn dirty_local_tree_is_refused_with_a_hint() {
        let dir = std::env::temp_dir().join(format!("kforge-local-tree-{}", std::process::id()));
        fs_err::create_dir_all(dir.join("scripts/kconfig")).unwrap();
        fs_err::write(dir.join("Makefile"), "").unwrap();
        fs_err::write(dir.join("scripts/kconfig/merge_config.sh"), "").unwrap();
        assert!(check_local_tree(&dir).is_ok());
        fs_err::write(dir.join(".config"), "").unwrap();
        let err = check_local_tree(&dir).unwrap_err();
        assert!(crate::error::render(&err).contains("mrproper"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
