//! Generating the lockfile: the current inputs (pins, kernel sources, config fragments) and an installed root's packages with their sha256.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};

use super::model::*;
use crate::project::{self, Project};
use crate::toolchain::{Toolchain, ToolchainSpec, debian_arches, mirror, spec};
use crate::{cache, error};

/// versions (`rustc=1.97.1`, ..., and `rustup-toolchain=` for rustup).
pub fn spec_pins(spec: &ToolchainSpec) -> Vec<String> {
    if spec.debian.is_none() {
        let mut pins: BTreeSet<String> = [
            ("rustc", &spec.rustc.version),
            ("rust-src", &spec.rust_src.version),
            ("bindgen", &spec.bindgen.version),
            ("llvm", &spec.llvm.version),
            ("qemu", &spec.qemu.version),
            ("busybox", &spec.busybox.version),
        ]
        .iter()
        .map(|(tool, version)| format!("{tool}={version}"))
        .collect();
        if let Some(rustup) = &spec.rustup {
            pins.insert(format!("rustup-toolchain={}", rustup.toolchain));
        }
        return pins.into_iter().collect();
    }
    let mut pins: BTreeSet<String> = spec.root_packages().into_iter().filter(|package| package.contains('=')).collect();
    pins.extend(spec.busybox.packages.iter().filter(|package| package.contains('=')).cloned());
    pins.into_iter().collect()
}

/// The lock entry of a toolchain without its root's packages.
pub(super) fn toolchain_pins(spec: &ToolchainSpec) -> ToolchainLock {
    ToolchainLock {
        id: spec.id.clone(),
        spec_sha256: cache::sha256_hex(spec.canonical().as_bytes()),
        pins: spec_pins(spec),
        root: if spec.debian.is_some() { RootState::NotInstalled } else { RootState::HostTools },
        root_arch: None,
        packages: Vec::new(),
        busybox: Vec::new(),
    }
}

/// A kernel source as `kind` plus that kind's fields, read through its
/// serialised form so every kind kforge.toml accepts is locked the same way.
pub(super) fn source_fields(kernel: &project::KernelEntry) -> Result<BTreeMap<String, String>> {
    let value = toml::Value::try_from(&kernel.source)
        .with_context(|| format!("cannot describe the source of kernel {}", kernel.id))?;
    let mut fields = BTreeMap::new();
    match value {
        toml::Value::String(kind) => {
            fields.insert("kind".to_string(), kind);
        }
        toml::Value::Table(table) => {
            for (kind, inner) in table {
                fields.insert("kind".to_string(), kind.clone());
                match inner {
                    toml::Value::Table(inner) => {
                        for (key, value) in inner {
                            fields.insert(key, plain(&value));
                        }
                    }
                    other => {
                        fields.insert(kind, plain(&other));
                    }
                }
            }
        }
        other => {
            fields.insert("kind".to_string(), plain(&other));
        }
    }
    Ok(fields)
}

/// A TOML value as text: strings without quotes, anything else as TOML.
pub(super) fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// sha256 of every `kernel-config/*.config`, by file name.
pub(super) fn kernel_config(repo: &Path) -> Result<BTreeMap<String, String>> {
    let dir = repo.join("kernel-config");
    let mut hashes = BTreeMap::new();
    for entry in fs_err::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "config") {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            hashes.insert(name, cache::sha256_file(&path)?);
        }
    }
    Ok(hashes)
}

/// What kforge.toml, toolchains/ and kernel-config/ say now, without any
/// root's packages (every toolchain `not-installed`). Fast: reads only the repository.
pub fn inputs(repo: &Path, project: &Project) -> Result<Lockfile> {
    let mut toolchains = Vec::new();
    for id in spec::list_ids(repo)? {
        toolchains.push(toolchain_pins(&spec::load(repo, &id)?));
    }
    let mut kernels = Vec::new();
    for kernel in &project.kernels {
        kernels.push(KernelLock {
            id: kernel.id.clone(),
            version: kernel.version.clone(),
            toolchain: kernel.toolchain.clone(),
            source: source_fields(kernel)?,
        });
    }
    kernels.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Lockfile { version: FORMAT_VERSION, kernel_config: kernel_config(repo)?, toolchains, kernels })
}

/// The packages of an installed root: every line of `opt/kforge/packages.txt`
/// (`name[:arch]\tversion`) and busybox-static for each arch, each with the
/// sha256 its stanza in the root's apt lists gives.
pub fn root_packages(toolchain: &Toolchain) -> Result<(String, Vec<PackageLock>, Vec<PackageLock>)> {
    let native = debian_arches(&toolchain.spec)?[0].to_string();
    let installed = toolchain
        .installed_packages()
        .with_context(|| format!("cannot read the package record of toolchain {}", toolchain.id()))?;
    // Unqualified names are of the root's native arch or `all`.
    let mut candidates: Vec<(String, String, Vec<String>)> = Vec::new();
    for (dpkg_name, version) in installed {
        let (name, arches) = match dpkg_name.split_once(':') {
            Some((name, arch)) => (name.to_string(), vec![arch.to_string()]),
            None => (dpkg_name.clone(), vec![native.clone(), "all".to_string()]),
        };
        candidates.push((name, version, arches));
    }
    let (busybox_name, busybox_version) = toolchain.spec.busybox_package()?;
    let mut busybox_arches: Vec<String> = debian_arches(&toolchain.spec)?.iter().map(|arch| arch.to_string()).collect();
    busybox_arches.sort();

    let mut wanted = BTreeSet::new();
    for (name, version, arches) in &candidates {
        for arch in arches {
            wanted.insert((name.clone(), version.clone(), arch.clone()));
        }
    }
    for arch in &busybox_arches {
        wanted.insert((busybox_name.clone(), busybox_version.clone(), arch.clone()));
    }
    let lists = toolchain.root.join("var/lib/apt/lists");
    let stanzas = mirror::find_stanzas(&lists, &wanted)?;
    let sha256 = |key: &(String, String, String)| {
        stanzas.get(key).and_then(|stanza| mirror::stanza_field(stanza, "SHA256")).map(str::to_string)
    };

    let mut missing = Vec::new();
    let mut packages = Vec::new();
    for (name, version, arches) in candidates {
        let found = arches.iter().find_map(|arch| {
            sha256(&(name.clone(), version.clone(), arch.clone())).map(|sha256| (arch.clone(), sha256))
        });
        match found {
            Some((arch, sha256)) => packages.push(PackageLock { name, arch, version, sha256 }),
            None => missing.push(format!("{name}={version} ({})", arches.join(" or "))),
        }
    }
    let mut busybox = Vec::new();
    for arch in busybox_arches {
        match sha256(&(busybox_name.clone(), busybox_version.clone(), arch.clone())) {
            Some(sha256) => {
                busybox.push(PackageLock { name: busybox_name.clone(), arch, version: busybox_version.clone(), sha256 })
            }
            None => missing.push(format!("{busybox_name}={busybox_version} ({arch})")),
        }
    }
    if !missing.is_empty() {
        return Err(error::user_hint(
            format!(
                "toolchain {}: the apt lists in {} have no entry (and so no sha256) for: {}",
                toolchain.id(),
                lists.display(),
                missing.join(", ")
            ),
            format!("reinstall the root: cargo xtask toolchain install --force {}", toolchain.id()),
        ));
    }
    packages.sort();
    Ok((native, packages, busybox))
}

/// The full lockfile for the repository: `inputs` plus, per toolchain, the
/// packages of its installed root; a root that is not installed keeps the
/// packages `previous` recorded for the same spec, or is locked by its pins
/// only. Returns the lockfile and one note per toolchain saying which.
pub fn generate(repo: &Path, project: &Project, previous: Option<&Lockfile>) -> Result<(Lockfile, Vec<String>)> {
    let mut lock = inputs(repo, project)?;
    let mut notes = Vec::new();
    for entry in &mut lock.toolchains {
        if entry.root == RootState::HostTools {
            notes.push(format!(
                "toolchain {}: {} pinned versions; it has no root (its tools are on the host), so no packages",
                entry.id,
                entry.pins.len()
            ));
            continue;
        }
        let toolchain = Toolchain::load(repo, &entry.id)?;
        let kept = previous
            .and_then(|previous| previous.toolchain(&entry.id))
            .filter(|old| old.spec_sha256 == entry.spec_sha256 && old.root == RootState::Installed);
        let record = toolchain.root.join("opt/kforge/packages.txt");
        if toolchain.is_installed() && !record.is_file() {
            return Err(error::user_hint(
                format!("toolchain {}: its root has no package record ({})", entry.id, record.display()),
                format!("reinstall the root: cargo xtask toolchain install --force {}", entry.id),
            ));
        }
        if toolchain.is_installed() {
            let (arch, packages, busybox) = root_packages(&toolchain)?;
            notes.push(format!(
                "toolchain {}: {} pins, {} packages of its root, busybox for {} arches",
                entry.id,
                entry.pins.len(),
                packages.len(),
                busybox.len()
            ));
            entry.root = RootState::Installed;
            entry.root_arch = Some(arch);
            entry.packages = packages;
            entry.busybox = busybox;
        } else if let Some(old) = kept {
            notes.push(format!(
                "toolchain {}: {} pins; its root is not installed here, so the {} packages kforge.lock recorded for this spec are kept",
                entry.id,
                entry.pins.len(),
                old.packages.len()
            ));
            entry.root = RootState::Installed;
            entry.root_arch = old.root_arch.clone();
            entry.packages = old.packages.clone();
            entry.busybox = old.busybox.clone();
        } else {
            notes.push(format!(
                "toolchain {}: {} pins only; its root is not installed ({}), so its packages are not locked \
                 (run `cargo xtask lock --install` to record them)",
                entry.id,
                entry.pins.len(),
                toolchain.root.display()
            ));
        }
    }
    for kernel in &lock.kernels {
        if kernel.source.get("kind").is_some_and(|kind| kind == "path") {
            notes.push(format!(
                "kernel {}: its source is a local tree; kforge.lock records its path, not its contents",
                kernel.id
            ));
        }
    }
    Ok((lock, notes))
}
