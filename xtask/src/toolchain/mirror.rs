//! A toolchain's exact Debian packages as a local APT repository in the store, for offline installs.
//!
//! `cargo xtask fetch` downloads every package of an installed root (the
//! versions `dpkg-query` recorded, plus busybox-static for every arch) with the
//! root's own apt, which checks them against the signed package lists. Each
//! .deb becomes a store entry `<store>/<sha256>/<file>.deb`, and the package
//! lists' own stanzas for exactly those files become a repository index:
//!
//! ```text
//! <store>/dists/<dist>/Release
//! <store>/dists/<dist>/main/binary-<debian arch>/Packages
//! ```
//!
//! where `<dist>` is the root's directory name (toolchain id + key) and each
//! stanza's `Filename` points at its store entry. `--offline` installs then run
//! mmdebstrap against `file://<store>` with that dist as the suite, so a copied
//! store is all another machine needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Toolchain, debian_arches};
use crate::{cache, error, fetch, paths, progress};

/// The component every kforge repository uses.
const COMPONENT: &str = "main";

/// A fixed date, so the same packages give the same index bytes.
const RELEASE_DATE: &str = "Thu, 01 Jan 1970 00:00:00 UTC";

/// One package file of the repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebFile {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
    /// `<sha256>/<file name>`, relative to the store.
    pub filename: String,
}

/// The repository's suite name for `toolchain` (its root's directory name).
pub fn dist_name(toolchain: &Toolchain) -> String {
    toolchain.root.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| toolchain.id().into())
}

fn dist_dir(toolchain: &Toolchain) -> Result<PathBuf> {
    Ok(fetch::store_root()?.join("dists").join(dist_name(toolchain)))
}

/// The sources.list line mmdebstrap uses for an offline install.
pub fn sources_line(toolchain: &Toolchain) -> Result<String> {
    Ok(format!("deb [trusted=yes] file://{} {} {COMPONENT}", fetch::store_root()?.display(), dist_name(toolchain)))
}

/// Checks that the repository for `toolchain` exists and every package file in
/// it is intact; otherwise an error naming what is missing or corrupted.
pub fn check_offline_ready(toolchain: &Toolchain) -> Result<()> {
    let dist = dist_dir(toolchain)?;
    if !dist.join("Release").is_file() {
        return Err(fetch::missing_offline(&format!(
            "the package repository of toolchain {} ({})",
            toolchain.id(),
            dist.display()
        )));
    }
    let store = fetch::store_root()?;
    for deb in read_index(&dist)? {
        if !fetch::check_entry(&store.join(&deb.filename), &deb.sha256)? {
            return Err(fetch::missing_offline(&format!(
                "{}:{}={} of toolchain {} ({})",
                deb.package,
                deb.arch,
                deb.version,
                toolchain.id(),
                deb.filename
            )));
        }
    }
    Ok(())
}

/// Downloads every package of the installed root into the store and writes
/// its repository index. Returns the package files (already present ones are
/// verified, not downloaded again).
pub fn populate(toolchain: &Toolchain) -> Result<Vec<DebFile>> {
    toolchain.spec.debian()?;
    toolchain.require_installed()?;
    let dist = dist_dir(toolchain)?;
    let _lock = cache::lock(&dist)?;
    if dist.join("Release").is_file() {
        let debs = read_index(&dist)?;
        let store = fetch::store_root()?;
        let mut intact = true;
        for deb in &debs {
            intact &= fetch::check_entry(&store.join(&deb.filename), &deb.sha256)?;
        }
        if intact {
            return Ok(debs);
        }
        progress::warn(format!(
            "re-fetching the packages of toolchain {}: some store entries were missing or corrupted",
            toolchain.id()
        ));
    }
    if fetch::is_offline() {
        return Err(fetch::missing_offline(&format!("the package repository of toolchain {}", toolchain.id())));
    }

    let wanted = wanted_packages(toolchain)?;
    let download_dir =
        paths::cache_dir()?.join("downloads").join(format!("{}-{}", dist_name(toolchain), std::process::id()));
    cache::remove_dir_if_exists(&download_dir)?;
    progress::status("Fetching", format!("{} packages of toolchain {} with its apt", wanted.len(), toolchain.id()));
    apt_download(toolchain, &wanted, &download_dir)?;

    let mut files = Vec::new();
    for entry in fs_err::read_dir(&download_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "deb") {
            files.push(path);
        }
    }
    files.sort();
    let mut debs = Vec::new();
    for path in files {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let (package, version, arch) = parse_deb_file_name(&name)
            .with_context(|| format!("apt-get download wrote an unexpected file name: {}", path.display()))?;
        let sha256 = cache::sha256_file(&path)?;
        fetch::adopt(&path, &sha256)?;
        debs.push(DebFile { package, version, arch, filename: format!("{sha256}/{name}"), sha256 });
    }
    cache::remove_dir_if_exists(&download_dir)?;

    let stanzas = list_stanzas(&toolchain.root.join("var/lib/apt/lists"), &debs)?;
    write_index(&dist, &debian_arches(&toolchain.spec)?, &debs, &stanzas)?;
    Ok(debs)
}

/// `name[:arch]=version` for every recorded package, and busybox for every arch.
fn wanted_packages(toolchain: &Toolchain) -> Result<Vec<String>> {
    let mut wanted = BTreeSet::new();
    for (name, version) in toolchain.installed_packages()? {
        wanted.insert(format!("{name}={version}"));
    }
    let (busybox, busybox_version) = toolchain.spec.busybox_package()?;
    for arch in debian_arches(&toolchain.spec)? {
        wanted.insert(format!("{busybox}:{arch}={busybox_version}"));
    }
    Ok(wanted.into_iter().collect())
}

/// Runs `apt-get download` for `packages` inside the root, with the network
/// on for this step only, into `into` (created).
pub fn apt_download(toolchain: &Toolchain, packages: &[String], into: &Path) -> Result<()> {
    if toolchain.spec.debian.is_none() {
        return Err(error::user_hint(
            format!(
                "cannot download {} with apt: toolchain {} (provider {}) has no Debian root",
                packages.join(" "),
                toolchain.id(),
                toolchain.spec.provider.name()
            ),
            "give the kernel a tarball or path source, or a toolchain with provider = \"debian\"",
        ));
    }
    if fetch::is_offline() {
        return Err(fetch::missing_offline(&packages.join(" ")));
    }
    fs_err::create_dir_all(into)?;
    let apt_cache = into.join(".apt-cache");
    fs_err::create_dir_all(&apt_cache)?;
    let sandbox = toolchain.sandbox()?;
    let mut jail = sandbox.jail().network();
    let out = jail.rw(into, "/kforge/download");
    jail.rw(&apt_cache, "/var/cache/apt");
    let mut argv = vec!["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1"];
    argv.extend(packages.iter().map(String::as_str));
    let result = jail.cwd(&out).command(&argv)?.run();
    cache::remove_dir_if_exists(&apt_cache)?;
    result.map(|_| ()).map_err(|err| {
        error::with_hint(
            err,
            format!("apt-get download failed in toolchain {} for: {}", toolchain.id(), packages.join(" ")),
            "check that the pinned versions still exist in the suite and that the mirror is reachable",
        )
    })
}

/// `(package, version, arch)` from apt's `name_version_arch.deb` (`:` in the version is `%3a`).
pub fn parse_deb_file_name(name: &str) -> Option<(String, String, String)> {
    let stem = name.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let (package, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || package.is_empty() || version.is_empty() || arch.is_empty() {
        return None;
    }
    Some((package.to_string(), version.replace("%3a", ":").replace("%3A", ":"), arch.to_string()))
}

/// The package-list stanza of each of `debs`, keyed by `(package, version, arch)`,
/// from the root's apt lists (`*_Packages`).
fn list_stanzas(lists: &Path, debs: &[DebFile]) -> Result<BTreeMap<(String, String, String), String>> {
    let wanted: BTreeSet<(String, String, String)> =
        debs.iter().map(|deb| (deb.package.clone(), deb.version.clone(), deb.arch.clone())).collect();
    let found = find_stanzas(lists, &wanted)?;
    let missing: Vec<String> =
        wanted.iter().filter(|key| !found.contains_key(*key)).map(|(p, v, a)| format!("{p}:{a}={v}")).collect();
    if !missing.is_empty() {
        return Err(error::user(format!(
            "the apt lists in {} have no entry for: {}",
            lists.display(),
            missing.join(", ")
        )));
    }
    Ok(found)
}

/// The stanzas of the `wanted` `(package, version, arch)` keys found in the
/// apt lists (`*_Packages`) in `lists`; keys not found are simply absent.
pub fn find_stanzas(
    lists: &Path,
    wanted: &BTreeSet<(String, String, String)>,
) -> Result<BTreeMap<(String, String, String), String>> {
    let names: BTreeSet<&str> = wanted.iter().map(|(package, _, _)| package.as_str()).collect();
    let mut found = BTreeMap::new();
    let mut list_files: Vec<PathBuf> = fs_err::read_dir(lists)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().ends_with("_Packages")))
        .collect();
    list_files.sort();
    for list in list_files {
        let text = fs_err::read_to_string(&list)?;
        for stanza in text.split("\n\n") {
            // Most stanzas are other packages: skip them on the name alone.
            if !stanza_field(stanza, "Package").is_some_and(|name| names.contains(name)) {
                continue;
            }
            if let Some(key) = stanza_key(stanza)
                && wanted.contains(&key)
            {
                found.entry(key).or_insert_with(|| stanza.trim_end().to_string());
            }
        }
    }
    Ok(found)
}

/// The value of field `name` in one stanza (`Name: value`).
pub fn stanza_field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")).map(str::trim))
}

/// `(Package, Version, Architecture)` of one stanza.
fn stanza_key(stanza: &str) -> Option<(String, String, String)> {
    let field = |name: &str| stanza_field(stanza, name);
    Some((field("Package")?.to_string(), field("Version")?.to_string(), field("Architecture")?.to_string()))
}

/// The `Packages` text for `arch`: the stanzas of its own and `all` packages,
/// sorted, each with `Filename` pointing at its store entry.
pub fn packages_index(debs: &[DebFile], stanzas: &BTreeMap<(String, String, String), String>, arch: &str) -> String {
    let mut selected: Vec<&DebFile> = debs.iter().filter(|deb| deb.arch == arch || deb.arch == "all").collect();
    selected.sort();
    let mut out = String::new();
    for deb in selected {
        let key = (deb.package.clone(), deb.version.clone(), deb.arch.clone());
        let Some(stanza) = stanzas.get(&key) else { continue };
        for line in stanza.lines() {
            if line.starts_with("Filename: ") {
                out.push_str(&format!("Filename: {}\n", deb.filename));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}

/// The `Release` text listing each arch's Packages file with its size and sha256.
pub fn release(dist: &str, packages: &[(String, String)]) -> String {
    let arches: Vec<&str> = packages.iter().map(|(arch, _)| arch.as_str()).collect();
    let mut out = format!(
        "Origin: kforge\nLabel: kforge\nSuite: {dist}\nCodename: {dist}\nDate: {RELEASE_DATE}\nArchitectures: {}\nComponents: {COMPONENT}\nSHA256:\n",
        arches.join(" ")
    );
    for (arch, text) in packages {
        out.push_str(&format!(
            " {} {} {COMPONENT}/binary-{arch}/Packages\n",
            cache::sha256_hex(text.as_bytes()),
            text.len()
        ));
    }
    out
}

/// Writes `dists/<dist>/` atomically (a temporary directory renamed into place).
fn write_index(
    dist: &Path,
    arches: &[&str],
    debs: &[DebFile],
    stanzas: &BTreeMap<(String, String, String), String>,
) -> Result<()> {
    let name = dist.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let work = cache::sibling(dist, "tmp");
    cache::remove_dir_if_exists(&work)?;
    let mut packages = Vec::new();
    for &arch in arches {
        let text = packages_index(debs, stanzas, arch);
        let dir = work.join(COMPONENT).join(format!("binary-{arch}"));
        fs_err::create_dir_all(&dir)?;
        fs_err::write(dir.join("Packages"), &text)?;
        packages.push((arch.to_string(), text));
    }
    fs_err::write(work.join("Release"), release(&name, &packages))?;
    cache::remove_dir_if_exists(dist)?;
    fs_err::rename(&work, dist)?;
    Ok(())
}

/// The package files an existing index lists.
fn read_index(dist: &Path) -> Result<Vec<DebFile>> {
    let mut debs = BTreeSet::new();
    for entry in fs_err::read_dir(dist.join(COMPONENT))? {
        let packages = entry?.path().join("Packages");
        let text = fs_err::read_to_string(&packages)?;
        for stanza in text.split("\n\n").filter(|stanza| !stanza.trim().is_empty()) {
            let field = |name: &str| {
                stanza.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")))
            };
            let (Some((package, version, arch)), Some(filename), Some(sha256)) =
                (stanza_key(stanza), field("Filename"), field("SHA256"))
            else {
                return Err(error::user(format!(
                    "{} has a stanza without Package, Version, Architecture, Filename or SHA256; run `cargo xtask fetch` again",
                    packages.display()
                )));
            };
            debs.insert(DebFile { package, version, arch, sha256: sha256.to_string(), filename: filename.to_string() });
        }
    }
    Ok(debs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(package: &str, version: &str, arch: &str) -> DebFile {
        let sha256 = cache::sha256_hex(format!("{package}{version}{arch}").as_bytes());
        let file = format!("{package}_{}_{arch}.deb", version.replace(':', "%3a"));
        DebFile {
            package: package.into(),
            version: version.into(),
            arch: arch.into(),
            filename: format!("{sha256}/{file}"),
            sha256,
        }
    }

    fn stanza(deb: &DebFile) -> String {
        format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nFilename: pool/main/x/{}.deb\nSHA256: {}",
            deb.package, deb.version, deb.arch, deb.package, deb.sha256
        )
    }

    #[test]
    fn deb_file_names_are_parsed_with_epochs() {
        assert_eq!(
            parse_deb_file_name("clang-22_1%3a22.1.8-3_amd64.deb"),
            Some(("clang-22".into(), "1:22.1.8-3".into(), "amd64".into()))
        );
        assert_eq!(parse_deb_file_name("busybox-static_1%3a1.38.0-3+b1_s390x.deb").unwrap().2, "s390x");
        assert_eq!(parse_deb_file_name("no-arch_1.0.deb"), None);
        assert_eq!(parse_deb_file_name("a_b_c_d.deb"), None);
        assert_eq!(parse_deb_file_name("a_1_amd64.tar"), None);
    }

    #[test]
    fn index_points_at_store_entries_and_round_trips() {
        let debs = vec![
            deb("zlib1g", "1:1.3", "amd64"),
            deb("busybox-static", "1:1.38", "arm64"),
            deb("tzdata", "2025a", "all"),
        ];
        let lists = tempfile::tempdir().unwrap();
        // Two list files; an unrelated stanza and a duplicate are ignored.
        let amd64 = format!(
            "{}\n\nPackage: other\nVersion: 1\nArchitecture: amd64\nFilename: pool/o.deb\nSHA256: 00\n\n{}\n",
            stanza(&debs[0]),
            stanza(&debs[2])
        );
        fs_err::write(lists.path().join("mirror_dists_sid_main_binary-amd64_Packages"), amd64).unwrap();
        fs_err::write(
            lists.path().join("mirror_dists_sid_main_binary-arm64_Packages"),
            format!("{}\n\n{}\n", stanza(&debs[1]), stanza(&debs[2])),
        )
        .unwrap();
        let stanzas = list_stanzas(lists.path(), &debs).unwrap();
        assert_eq!(stanzas.len(), 3);

        let amd64 = packages_index(&debs, &stanzas, "amd64");
        assert!(amd64.contains("Package: zlib1g\n") && amd64.contains("Package: tzdata\n"));
        assert!(!amd64.contains("busybox") && !amd64.contains("Package: other"));
        assert!(amd64.contains(&format!("Filename: {}\n", debs[0].filename)));
        assert!(!amd64.contains("pool/"));
        let arm64 = packages_index(&debs, &stanzas, "arm64");
        assert!(arm64.contains("Package: busybox-static\n") && !arm64.contains("zlib1g"));

        let release_text = release("kforge-sid-1", &[("amd64".into(), amd64.clone()), ("arm64".into(), arm64)]);
        assert!(release_text.contains("Suite: kforge-sid-1\n"));
        assert!(release_text.contains(&format!(
            " {} {} main/binary-amd64/Packages\n",
            cache::sha256_hex(amd64.as_bytes()),
            amd64.len()
        )));

        // What `read_index` gets back from the written files is exactly the package set.
        let dist = tempfile::tempdir().unwrap();
        let dir = dist.path().join("main/binary-amd64");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("Packages"), &amd64).unwrap();
        let back = read_index(dist.path()).unwrap();
        assert_eq!(back, vec![debs[2].clone(), debs[0].clone()]);
    }

    #[test]
    fn a_package_missing_from_the_lists_is_named() {
        let lists = tempfile::tempdir().unwrap();
        fs_err::write(lists.path().join("x_Packages"), "Package: a\nVersion: 1\nArchitecture: all\n").unwrap();
        let err = list_stanzas(lists.path(), &[deb("b", "2", "amd64")]).unwrap_err();
        assert!(format!("{err:#}").contains("b:amd64=2"), "{err:#}");
    }
}
