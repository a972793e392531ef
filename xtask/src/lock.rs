//! `kforge.lock`: the exact inputs of every toolchain and kernel (pins, every package of an installed root with its sha256, kernel sources, config fragments), and the `--locked` checks against it.
//!
//! The file is written only by `cargo xtask lock` (sorted, one package per
//! line, so diffs are readable) and committed. Under `--locked`
//! (`KFORGE_LOCKED=1`), commands that install, build or boot anything first
//! compare the current inputs with it (`check_inputs`) and, once a toolchain
//! root is installed, its packages (`check_root`); any difference is named
//! and the command refuses to run.
//!
//! A toolchain whose root is not installed when the file is written is locked
//! by its pins only (`root = "not-installed"`), unless the file already holds
//! the packages of a root built from the very same spec: those are kept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::project::{self, Project};
use crate::toolchain::{Toolchain, ToolchainSpec, debian_arches, mirror, spec};
use crate::{cache, error};

/// The lockfile's name, at the repository root.
pub const FILE: &str = "kforge.lock";

/// The format this kforge reads and writes.
const FORMAT_VERSION: u32 = 1;

/// What to do about a stale or missing lockfile.
pub const UPDATE_HINT: &str = "run `cargo xtask lock` and commit kforge.lock";

/// Set once at start-up by `--locked` / `KFORGE_LOCKED=1`.
static LOCKED: AtomicBool = AtomicBool::new(false);

/// Turns the `--locked` checks on or off for this process.
pub fn set_locked(locked: bool) {
    LOCKED.store(locked, Ordering::SeqCst);
}

/// Whether `--locked` is in effect.
pub fn is_locked() -> bool {
    LOCKED.load(Ordering::SeqCst)
}

/// The whole `kforge.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lockfile {
    pub version: u32,
    /// `kernel-config/<file>` -> sha256 of the file. Every kernel is configured
    /// from these fragments (which ones depends on the arch, not the kernel).
    #[serde(default)]
    pub kernel_config: BTreeMap<String, String>,
    #[serde(default, rename = "toolchain")]
    pub toolchains: Vec<ToolchainLock>,
    #[serde(default, rename = "kernel")]
    pub kernels: Vec<KernelLock>,
}

/// Whether a toolchain's root packages are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootState {
    /// `packages` and `busybox` hold every package of the installed root.
    Installed,
    /// The root was not installed when the file was written: pins only.
    NotInstalled,
    /// Provider rustup or host: there is no root; the tools on the host are
    /// locked by their pinned versions (which `toolchain verify` checks).
    HostTools,
}

/// One toolchain: its spec, its pins and (when installed) its root's packages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolchainLock {
    pub id: String,
    /// sha256 of the spec's canonical form (comments and layout do not count).
    pub spec_sha256: String,
    /// Every `name=version` the spec pins, sorted.
    pub pins: Vec<String>,
    pub root: RootState,
    /// The Debian architecture the root was built for (its native one).
    #[serde(default)]
    pub root_arch: Option<String>,
    /// Every package installed in the root (`opt/kforge/packages.txt`).
    #[serde(default)]
    pub packages: Vec<PackageLock>,
    /// busybox-static for each Debian architecture the toolchain serves.
    #[serde(default)]
    pub busybox: Vec<PackageLock>,
}

/// One Debian package file: the sha256 comes from the root's signed apt lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageLock {
    pub name: String,
    pub arch: String,
    pub version: String,
    pub sha256: String,
}

/// One kernel of kforge.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelLock {
    pub id: String,
    pub version: String,
    pub toolchain: String,
    /// `kind` (debian, tarball, path...) and that kind's fields (sha256, url...).
    pub source: BTreeMap<String, String>,
}

impl Lockfile {
    /// Reads `<repo>/kforge.lock`; `None` when there is none.
    pub fn read(repo: &Path) -> Result<Option<Lockfile>> {
        let path = repo.join(FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs_err::read_to_string(&path)?;
        Lockfile::parse(&path, &text).map(Some)
    }

    /// Parses lockfile text read from `path` (used in messages).
    pub fn parse(path: &Path, text: &str) -> Result<Lockfile> {
        let lock: Lockfile = project::parse_toml(path, text)
            .map_err(|err| error::with_hint(err, format!("cannot read {}", path.display()), UPDATE_HINT))?;
        if lock.version != FORMAT_VERSION {
            return Err(error::user_hint(
                format!(
                    "{} has format version {}; this kforge reads version {FORMAT_VERSION}",
                    path.display(),
                    lock.version
                ),
                UPDATE_HINT,
            ));
        }
        Ok(lock)
    }

    pub fn toolchain(&self, id: &str) -> Option<&ToolchainLock> {
        self.toolchains.iter().find(|toolchain| toolchain.id == id)
    }

    /// The file's text: a header, then everything sorted, one package per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# kforge.lock: generated by `cargo xtask lock`; do not edit by hand, commit it.\n");
        out.push_str("# The exact inputs of every toolchain and kernel: the pinned packages, every\n");
        out.push_str("# package of each installed toolchain root with the sha256 of its .deb, the\n");
        out.push_str("# kernel sources and the config fragments. With --locked (or KFORGE_LOCKED=1)\n");
        out.push_str("# kforge refuses to install, build or boot anything when they differ.\n");
        out.push_str(&format!("version = {}\n", self.version));

        out.push_str("\n[kernel-config]\n");
        for (file, sha256) in &self.kernel_config {
            out.push_str(&format!("{} = {}\n", quote(file), quote(sha256)));
        }

        let mut toolchains: Vec<&ToolchainLock> = self.toolchains.iter().collect();
        toolchains.sort_by(|a, b| a.id.cmp(&b.id));
        for toolchain in toolchains {
            out.push_str("\n[[toolchain]]\n");
            out.push_str(&format!("id = {}\n", quote(&toolchain.id)));
            out.push_str(&format!("spec-sha256 = {}\n", quote(&toolchain.spec_sha256)));
            let mut pins = toolchain.pins.clone();
            pins.sort();
            out.push_str(&string_array("pins", &pins));
            match toolchain.root {
                RootState::NotInstalled => {
                    out.push_str("# The root was not installed when this file was written: pins only.\n");
                    out.push_str("root = \"not-installed\"\n");
                }
                RootState::HostTools => {
                    out.push_str("# No root: the host's tools, locked by version (`toolchain verify` checks them).\n");
                    out.push_str("root = \"host-tools\"\n");
                }
                RootState::Installed => {
                    out.push_str("root = \"installed\"\n");
                    if let Some(arch) = &toolchain.root_arch {
                        out.push_str(&format!("root-arch = {}\n", quote(arch)));
                    }
                    out.push_str("# Every package installed in the root, with the sha256 of its .deb.\n");
                    out.push_str(&package_array("packages", &toolchain.packages));
                    out.push_str("# busybox-static for the initramfs of each architecture.\n");
                    out.push_str(&package_array("busybox", &toolchain.busybox));
                }
            }
        }

        let mut kernels: Vec<&KernelLock> = self.kernels.iter().collect();
        kernels.sort_by(|a, b| a.id.cmp(&b.id));
        for kernel in kernels {
            out.push_str("\n[[kernel]]\n");
            out.push_str(&format!("id = {}\n", quote(&kernel.id)));
            out.push_str(&format!("version = {}\n", quote(&kernel.version)));
            out.push_str(&format!("toolchain = {}\n", quote(&kernel.toolchain)));
            // `kind` first, then the kind's fields in order.
            let mut fields = Vec::new();
            if let Some(kind) = kernel.source.get("kind") {
                fields.push(format!("kind = {}", quote(kind)));
            }
            for (key, value) in kernel.source.iter().filter(|(key, _)| *key != "kind") {
                fields.push(format!("{} = {}", bare_or_quoted(key), quote(value)));
            }
            out.push_str(&format!("source = {{ {} }}\n", fields.join(", ")));
        }
        out
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare { key.to_string() } else { quote(key) }
}

fn string_array(key: &str, items: &[String]) -> String {
    if items.is_empty() {
        return format!("{key} = []\n");
    }
    let mut out = format!("{key} = [\n");
    for item in items {
        out.push_str(&format!("    {},\n", quote(item)));
    }
    out.push_str("]\n");
    out
}

fn package_array(key: &str, packages: &[PackageLock]) -> String {
    if packages.is_empty() {
        return format!("{key} = []\n");
    }
    let mut sorted: Vec<&PackageLock> = packages.iter().collect();
    sorted.sort();
    let mut out = format!("{key} = [\n");
    for package in sorted {
        out.push_str(&format!(
            "    {{ name = {}, arch = {}, version = {}, sha256 = {} }},\n",
            quote(&package.name),
            quote(&package.arch),
            quote(&package.version),
            quote(&package.sha256)
        ));
    }
    out.push_str("]\n");
    out
}

/// Every `name=version` a spec pins (the root's packages and busybox), sorted.
/// The rustup and host providers pin no packages: their pins are the tools'
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
fn toolchain_pins(spec: &ToolchainSpec) -> ToolchainLock {
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
fn source_fields(kernel: &project::KernelEntry) -> Result<BTreeMap<String, String>> {
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
fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// sha256 of every `kernel-config/*.config`, by file name.
fn kernel_config(repo: &Path) -> Result<BTreeMap<String, String>> {
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

/// Everything that differs between `locked` (the file) and `current`, one
/// line each, named. Root packages are compared only when `with_packages`
/// (and both sides recorded them).
pub fn differences(locked: &Lockfile, current: &Lockfile, with_packages: bool) -> Vec<String> {
    let mut out = Vec::new();
    for now in &current.toolchains {
        let file = format!("toolchains/{}.toml", now.id);
        let Some(old) = locked.toolchain(&now.id) else {
            out.push(format!("toolchain {} is not in kforge.lock", now.id));
            continue;
        };
        let before = out.len();
        let old_pins = pin_map(&old.pins);
        let new_pins = pin_map(&now.pins);
        for (name, version) in &new_pins {
            match old_pins.get(name) {
                Some(locked_version) if locked_version != version => out.push(format!(
                    "toolchain {}: {name} pinned {version} in {file}, kforge.lock has {locked_version}",
                    now.id
                )),
                Some(_) => {}
                None => out
                    .push(format!("toolchain {}: {name}={version} is pinned in {file} but not in kforge.lock", now.id)),
            }
        }
        for (name, version) in &old_pins {
            if !new_pins.contains_key(name) {
                out.push(format!("toolchain {}: kforge.lock pins {name}={version}, {file} no longer does", now.id));
            }
        }
        if out.len() == before && old.spec_sha256 != now.spec_sha256 {
            out.push(format!(
                "toolchain {}: {file} changed beyond its pins (spec sha256 {}, kforge.lock has {})",
                now.id, now.spec_sha256, old.spec_sha256
            ));
        }
        if with_packages {
            out.extend(package_differences(old, now));
        }
    }
    for old in &locked.toolchains {
        if current.toolchain(&old.id).is_none() {
            out.push(format!("toolchain {} is in kforge.lock but toolchains/{}.toml does not exist", old.id, old.id));
        }
    }

    for now in &current.kernels {
        let Some(old) = locked.kernels.iter().find(|kernel| kernel.id == now.id) else {
            out.push(format!("kernel {} is not in kforge.lock", now.id));
            continue;
        };
        for (what, new_value, old_value) in
            [("version", &now.version, &old.version), ("toolchain", &now.toolchain, &old.toolchain)]
        {
            if new_value != old_value {
                out.push(format!("kernel {}: {what} {new_value} in kforge.toml, kforge.lock has {old_value}", now.id));
            }
        }
        let keys: BTreeSet<&String> = now.source.keys().chain(old.source.keys()).collect();
        // The kind first: when it changed, the other fields follow from it.
        let mut keys: Vec<&String> = keys.into_iter().collect();
        keys.sort_by_key(|key| (key.as_str() != "kind", key.as_str()));
        for key in keys {
            let missing = "(none)".to_string();
            let new_value = now.source.get(key).unwrap_or(&missing);
            let old_value = old.source.get(key).unwrap_or(&missing);
            if new_value != old_value {
                out.push(format!(
                    "kernel {}: source {key} {new_value} in kforge.toml, kforge.lock has {old_value}",
                    now.id
                ));
            }
        }
    }
    for old in &locked.kernels {
        if !current.kernels.iter().any(|kernel| kernel.id == old.id) {
            out.push(format!("kernel {} is in kforge.lock but not in kforge.toml", old.id));
        }
    }

    for (file, sha256) in &current.kernel_config {
        match locked.kernel_config.get(file) {
            Some(old) if old != sha256 => {
                out.push(format!("kernel-config/{file} changed (sha256 {sha256}, kforge.lock has {old})"))
            }
            Some(_) => {}
            None => out.push(format!("kernel-config/{file} is not in kforge.lock")),
        }
    }
    for file in locked.kernel_config.keys() {
        if !current.kernel_config.contains_key(file) {
            out.push(format!("kernel-config/{file} is in kforge.lock but no longer exists"));
        }
    }
    out
}

/// `name=version` pins as name -> version.
fn pin_map(pins: &[String]) -> BTreeMap<String, String> {
    pins.iter()
        .map(|pin| match pin.split_once('=') {
            Some((name, version)) => (name.to_string(), version.to_string()),
            None => (pin.clone(), String::new()),
        })
        .collect()
}

/// Differences in the recorded root packages (both sides recorded them).
fn package_differences(old: &ToolchainLock, now: &ToolchainLock) -> Vec<String> {
    let mut out = Vec::new();
    match (old.root, now.root) {
        (RootState::NotInstalled, RootState::Installed) => {
            out.push(format!(
                "toolchain {}: kforge.lock records its pins only; the packages of its installed root are not locked",
                now.id
            ));
            return out;
        }
        (RootState::Installed, RootState::Installed) => {}
        _ => return out,
    }
    if old.root_arch != now.root_arch {
        out.push(format!(
            "toolchain {}: kforge.lock records a {} root, this machine's root is {}",
            now.id,
            old.root_arch.as_deref().unwrap_or("(unknown)"),
            now.root_arch.as_deref().unwrap_or("(unknown)")
        ));
    }
    for (old_list, new_list) in [(&old.packages, &now.packages), (&old.busybox, &now.busybox)] {
        let key = |package: &PackageLock| (package.name.clone(), package.arch.clone());
        let old_map: BTreeMap<_, &PackageLock> = old_list.iter().map(|package| (key(package), package)).collect();
        let new_map: BTreeMap<_, &PackageLock> = new_list.iter().map(|package| (key(package), package)).collect();
        for ((name, arch), package) in &new_map {
            match old_map.get(&(name.clone(), arch.clone())) {
                None => out.push(format!(
                    "toolchain {}: {name}:{arch} {} is in its root but not in kforge.lock",
                    now.id, package.version
                )),
                Some(locked) if locked.version != package.version => out.push(format!(
                    "toolchain {}: {name}:{arch} is {} in its root, kforge.lock has {}",
                    now.id, package.version, locked.version
                )),
                Some(locked) if locked.sha256 != package.sha256 => out.push(format!(
                    "toolchain {}: {name}:{arch} {} has sha256 {} in the root's apt lists, kforge.lock has {}",
                    now.id, package.version, package.sha256, locked.sha256
                )),
                Some(_) => {}
            }
        }
        for ((name, arch), package) in &old_map {
            if !new_map.contains_key(&(name.clone(), arch.clone())) {
                out.push(format!(
                    "toolchain {}: kforge.lock has {name}:{arch} {}, its root does not",
                    now.id, package.version
                ));
            }
        }
    }
    out
}

/// Reads kforge.lock for `--locked`: a missing file is an error.
fn read_required(repo: &Path) -> Result<Lockfile> {
    Lockfile::read(repo)?.ok_or_else(|| {
        error::user_hint(
            format!(
                "--locked: {} does not exist, so there is nothing to check the inputs against",
                repo.join(FILE).display()
            ),
            UPDATE_HINT,
        )
    })
}

fn refuse(what: &str, differences: &[String]) -> anyhow::Error {
    error::user_hint(format!("--locked: {what} differ from kforge.lock:\n  {}", differences.join("\n  ")), UPDATE_HINT)
}

/// Under `--locked`: refuses when the pins, kernels or config fragments
/// differ from kforge.lock, and checks every root that is already installed.
pub fn check_inputs_if_locked(repo: &Path) -> Result<()> {
    if !is_locked() {
        return Ok(());
    }
    let locked = read_required(repo)?;
    let project = Project::load(repo)?;
    let current = inputs(repo, &project)?;
    let differences = differences(&locked, &current, false);
    if !differences.is_empty() {
        return Err(refuse("the inputs", &differences));
    }
    for entry in &current.toolchains {
        let toolchain = Toolchain::load(repo, &entry.id)?;
        if toolchain.is_installed() {
            check_root_against(&locked, &toolchain)?;
        }
    }
    Ok(())
}

/// Under `--locked`: refuses when the installed root of `toolchain` does not
/// hold exactly the packages kforge.lock records (run after installing).
pub fn check_root_if_locked(repo: &Path, toolchain: &Toolchain) -> Result<()> {
    if !is_locked() {
        return Ok(());
    }
    check_root_against(&read_required(repo)?, toolchain)
}

/// The installed root's `packages.txt` against the lock: names and versions
/// (the sha256 of a package version is fixed by the archive, so reading the
/// apt lists again is left to `cargo xtask lock --check`).
pub fn root_differences(locked: &Lockfile, toolchain: &Toolchain) -> Result<Vec<String>> {
    let id = toolchain.id();
    let Some(entry) = locked.toolchain(id) else {
        return Ok(vec![format!("toolchain {id} is not in kforge.lock")]);
    };
    if entry.root == RootState::HostTools {
        // No root, no packages: `verify` already checked every version on the host.
        return Ok(Vec::new());
    }
    if entry.root == RootState::NotInstalled {
        return Ok(vec![format!(
            "toolchain {id}: kforge.lock records its pins only (its root was not installed when the file was \
             written); the packages of the installed root are not locked"
        )]);
    }
    let mut out = Vec::new();
    let native = debian_arches(&toolchain.spec)?[0];
    if entry.root_arch.as_deref() != Some(native) {
        out.push(format!(
            "toolchain {id}: kforge.lock records a {} root, this machine builds a {native} root",
            entry.root_arch.as_deref().unwrap_or("(unknown)")
        ));
    }
    let mut installed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (dpkg_name, version) in toolchain.installed_packages()? {
        let name = dpkg_name.split_once(':').map_or(dpkg_name.as_str(), |(name, _)| name).to_string();
        installed.entry(name).or_default().insert(version);
    }
    let mut recorded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in &entry.packages {
        recorded.entry(package.name.clone()).or_default().insert(package.version.clone());
    }
    let join = |versions: &BTreeSet<String>| versions.iter().cloned().collect::<Vec<_>>().join(", ");
    for (name, versions) in &installed {
        match recorded.get(name) {
            None => out.push(format!(
                "toolchain {id}: {name} {} is installed in its root but not in kforge.lock",
                join(versions)
            )),
            Some(locked) if locked != versions => out.push(format!(
                "toolchain {id}: {name} is {} in its root, kforge.lock has {}",
                join(versions),
                join(locked)
            )),
            Some(_) => {}
        }
    }
    for (name, versions) in &recorded {
        if !installed.contains_key(name) {
            out.push(format!("toolchain {id}: kforge.lock has {name} {}, its root does not", join(versions)));
        }
    }
    Ok(out)
}

fn check_root_against(locked: &Lockfile, toolchain: &Toolchain) -> Result<()> {
    let differences = root_differences(locked, toolchain)?;
    if differences.is_empty() {
        return Ok(());
    }
    Err(refuse(&format!("the packages of toolchain {} ({})", toolchain.id(), toolchain.root.display()), &differences))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn package(name: &str, arch: &str, version: &str) -> PackageLock {
        PackageLock {
            name: name.into(),
            arch: arch.into(),
            version: version.into(),
            sha256: cache::sha256_hex(format!("{name}{arch}{version}").as_bytes()),
        }
    }

    fn sample() -> Lockfile {
        let mut source = BTreeMap::new();
        source.insert("kind".to_string(), "debian".to_string());
        source.insert("package".to_string(), "linux-source-7.2".to_string());
        source.insert("version".to_string(), "7.2.13-1".to_string());
        source.insert("sha256".to_string(), "aa".repeat(32));
        let mut tarball = BTreeMap::new();
        tarball.insert("kind".to_string(), "tarball".to_string());
        tarball.insert("url".to_string(), "http://127.0.0.1:9/linux \"7\".tar.xz".to_string());
        tarball.insert("sha256".to_string(), "bb".repeat(32));
        let mut config = BTreeMap::new();
        config.insert("base.config".to_string(), "cc".repeat(32));
        config.insert("x86_64.config".to_string(), "dd".repeat(32));
        Lockfile {
            version: FORMAT_VERSION,
            kernel_config: config,
            toolchains: vec![
                ToolchainLock {
                    id: "sid".into(),
                    spec_sha256: "ee".repeat(32),
                    pins: vec!["rustc=1.97.1+dfsg1-1".into(), "clang-22=1:22.1.8-3".into()],
                    root: RootState::Installed,
                    root_arch: Some("amd64".into()),
                    packages: vec![package("zlib1g", "amd64", "1:1.3"), package("adduser", "all", "3.152")],
                    busybox: vec![package("busybox-static", "amd64", "1:1.38.0-3+b1")],
                },
                ToolchainLock {
                    id: "experimental".into(),
                    spec_sha256: "ff".repeat(32),
                    pins: vec!["rustc=1.98.1+dfsg1-1".into()],
                    root: RootState::NotInstalled,
                    root_arch: None,
                    packages: Vec::new(),
                    busybox: Vec::new(),
                },
            ],
            kernels: vec![
                KernelLock { id: "7.2".into(), version: "7.2.13".into(), toolchain: "sid".into(), source },
                KernelLock { id: "mine".into(), version: "7.2.0".into(), toolchain: "sid".into(), source: tarball },
            ],
        }
    }

    /// The sample as `render` sorts it (what reading the file gives back).
    fn sorted(mut lock: Lockfile) -> Lockfile {
        lock.toolchains.sort_by(|a, b| a.id.cmp(&b.id));
        for toolchain in &mut lock.toolchains {
            toolchain.pins.sort();
            toolchain.packages.sort();
            toolchain.busybox.sort();
        }
        lock.kernels.sort_by(|a, b| a.id.cmp(&b.id));
        lock
    }

    #[test]
    fn render_round_trips_and_is_deterministic() {
        let lock = sample();
        let text = lock.render();
        assert!(text.starts_with("# kforge.lock: generated by `cargo xtask lock`"), "{text}");
        let back = Lockfile::parse(Path::new(FILE), &text).unwrap();
        assert_eq!(back, sorted(lock.clone()));
        // Input order does not change the bytes.
        let mut shuffled = lock;
        shuffled.toolchains.reverse();
        shuffled.kernels.reverse();
        shuffled.toolchains[1].packages.reverse();
        shuffled.toolchains[1].pins.reverse();
        assert_eq!(shuffled.render(), text);
        assert_eq!(back.render(), text);
        assert!(text.contains("    { name = \"adduser\", arch = \"all\", version = \"3.152\", sha256 = "), "{text}");
        assert!(text.contains("source = { kind = \"tarball\", sha256 = "), "{text}");
    }

    #[test]
    fn render_snapshot_of_a_pins_only_toolchain() {
        let mut lock = sample();
        lock.toolchains.retain(|toolchain| toolchain.id == "experimental");
        lock.kernels.clear();
        lock.kernel_config.clear();
        expect_test::expect![[r#"
            # kforge.lock: generated by `cargo xtask lock`; do not edit by hand, commit it.
            # The exact inputs of every toolchain and kernel: the pinned packages, every
            # package of each installed toolchain root with the sha256 of its .deb, the
            # kernel sources and the config fragments. With --locked (or KFORGE_LOCKED=1)
            # kforge refuses to install, build or boot anything when they differ.
            version = 1

            [kernel-config]

            [[toolchain]]
            id = "experimental"
            spec-sha256 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            pins = [
                "rustc=1.98.1+dfsg1-1",
            ]
            # The root was not installed when this file was written: pins only.
            root = "not-installed"
        "#]]
        .assert_eq(&lock.render());
    }

    #[test]
    fn wrong_format_version_and_malformed_files_say_how_to_fix() {
        let text = sample().render().replace("version = 1\n", "version = 9\n");
        let message = error::render(&Lockfile::parse(Path::new(FILE), &text).unwrap_err());
        assert!(message.contains("format version 9"), "{message}");
        assert!(message.contains(UPDATE_HINT), "{message}");
        let broken = sample().render().replace("spec-sha256", "spec-sha");
        let message = error::render(&Lockfile::parse(Path::new(FILE), &broken).unwrap_err());
        assert!(message.contains("spec-sha") && message.contains("kforge.lock:"), "{message}");
        assert!(message.contains(UPDATE_HINT), "{message}");
    }

    #[test]
    fn identical_inputs_have_no_differences() {
        assert_eq!(differences(&sample(), &sample(), true), Vec::<String>::new());
    }

    #[test]
    fn every_kind_of_pin_difference_is_named() {
        let locked = sample();
        let mut current = sample();
        let sid = &mut current.toolchains[0];
        sid.pins = vec!["rustc=1.97.0+dfsg1-2".into(), "bindgen=0.72.1-1+b3".into()];
        sid.spec_sha256 = "00".repeat(32);
        current.toolchains.push(ToolchainLock { id: "trixie".into(), ..current.toolchains[1].clone() });
        current.toolchains.retain(|toolchain| toolchain.id != "experimental");
        let found = differences(&locked, &current, false);
        assert_eq!(
            found,
            [
                "toolchain sid: bindgen=0.72.1-1+b3 is pinned in toolchains/sid.toml but not in kforge.lock",
                "toolchain sid: rustc pinned 1.97.0+dfsg1-2 in toolchains/sid.toml, kforge.lock has 1.97.1+dfsg1-1",
                "toolchain sid: kforge.lock pins clang-22=1:22.1.8-3, toolchains/sid.toml no longer does",
                "toolchain trixie is not in kforge.lock",
                "toolchain experimental is in kforge.lock but toolchains/experimental.toml does not exist",
            ]
        );
    }

    #[test]
    fn a_spec_change_beyond_the_pins_is_named() {
        let mut current = sample();
        current.toolchains[0].spec_sha256 = "00".repeat(32);
        let found = differences(&sample(), &current, false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("toolchain sid: toolchains/sid.toml changed beyond its pins"), "{found:?}");
    }

    #[test]
    fn kernel_and_config_differences_are_named() {
        let mut current = sample();
        current.kernels[0].source.insert("sha256".into(), "12".repeat(32));
        current.kernels[0].version = "7.2.14".into();
        current.kernels[1].source =
            BTreeMap::from([("kind".to_string(), "path".to_string()), ("path".to_string(), "/src/linux".to_string())]);
        current.kernels.push(KernelLock { id: "7.3".into(), ..current.kernels[0].clone() });
        current.kernel_config.insert("base.config".into(), "34".repeat(32));
        current.kernel_config.insert("rust.config".into(), "56".repeat(32));
        current.kernel_config.remove("x86_64.config");
        let found = differences(&sample(), &current, false);
        let aa = "aa".repeat(32);
        let bb = "bb".repeat(32);
        let cc = "cc".repeat(32);
        let twelve = "12".repeat(32);
        let base = "34".repeat(32);
        assert_eq!(
            found,
            [
                "kernel 7.2: version 7.2.14 in kforge.toml, kforge.lock has 7.2.13".to_string(),
                format!("kernel 7.2: source sha256 {twelve} in kforge.toml, kforge.lock has {aa}"),
                "kernel mine: source kind path in kforge.toml, kforge.lock has tarball".to_string(),
                "kernel mine: source path /src/linux in kforge.toml, kforge.lock has (none)".to_string(),
                format!("kernel mine: source sha256 (none) in kforge.toml, kforge.lock has {bb}"),
                "kernel mine: source url (none) in kforge.toml, kforge.lock has http://127.0.0.1:9/linux \"7\".tar.xz"
                    .to_string(),
                "kernel 7.3 is not in kforge.lock".to_string(),
                format!("kernel-config/base.config changed (sha256 {base}, kforge.lock has {cc})"),
                "kernel-config/rust.config is not in kforge.lock".to_string(),
                "kernel-config/x86_64.config is in kforge.lock but no longer exists".to_string(),
            ]
        );
        let mut fewer = sample();
        fewer.kernels.remove(1);
        assert_eq!(differences(&sample(), &fewer, false), ["kernel mine is in kforge.lock but not in kforge.toml"]);
    }

    #[test]
    fn package_differences_are_named_only_when_asked() {
        let mut current = sample();
        let sid = &mut current.toolchains[0];
        sid.packages[0].version = "1:1.4".into();
        sid.packages.push(package("libnew", "amd64", "2"));
        sid.packages.retain(|package| package.name != "adduser");
        sid.busybox[0].sha256 = "99".repeat(32);
        assert!(differences(&sample(), &current, false).is_empty());
        let found = differences(&sample(), &current, true);
        let old_busybox = &sample().toolchains[0].busybox[0].sha256;
        assert_eq!(
            found,
            [
                "toolchain sid: libnew:amd64 2 is in its root but not in kforge.lock".to_string(),
                "toolchain sid: zlib1g:amd64 is 1:1.4 in its root, kforge.lock has 1:1.3".to_string(),
                "toolchain sid: kforge.lock has adduser:all 3.152, its root does not".to_string(),
                format!(
                    "toolchain sid: busybox-static:amd64 1:1.38.0-3+b1 has sha256 {} in the root's apt lists, kforge.lock has {old_busybox}",
                    "99".repeat(32)
                ),
            ]
        );
        let mut installed_now = sample();
        installed_now.toolchains[1].root = RootState::Installed;
        let found = differences(&sample(), &installed_now, true);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("toolchain experimental: kforge.lock records its pins only"), "{found:?}");
    }

    #[test]
    fn source_fields_cover_every_kind() {
        let project: Project = project::parse_toml(
            Path::new("kforge.toml"),
            r#"
[matrix]
kernels = ["a"]
arches = ["x86_64"]
drivers = []

[[kernel]]
id = "a"
version = "7.2.13"
toolchain = "sid"
source = { debian = { package = "linux-source-7.2", version = "7.2.13-1", sha256 = "ab" } }

[[kernel]]
id = "b"
version = "7.2.0"
toolchain = "sid"
source = { path = "/src/linux" }
"#,
        )
        .unwrap();
        let a = source_fields(&project.kernels[0]).unwrap();
        assert_eq!(a.get("kind").map(String::as_str), Some("debian"));
        assert_eq!(a.get("sha256").map(String::as_str), Some("ab"));
        assert_eq!(a.get("package").map(String::as_str), Some("linux-source-7.2"));
        let b = source_fields(&project.kernels[1]).unwrap();
        assert_eq!(b, BTreeMap::from([("kind".into(), "path".into()), ("path".into(), "/src/linux".into())]));
    }

    #[test]
    fn inputs_of_the_repository_pin_every_toolchain_and_kernel() {
        let project = Project::load(&repo()).unwrap();
        let lock = inputs(&repo(), &project).unwrap();
        let ids: Vec<&str> = lock.toolchains.iter().map(|toolchain| toolchain.id.as_str()).collect();
        assert_eq!(ids, spec::list_ids(&repo()).unwrap());
        let sid = lock.toolchain("sid").unwrap();
        assert!(sid.pins.contains(&"rustc=1.97.1+dfsg1-1".to_string()), "{:?}", sid.pins);
        assert!(sid.pins.contains(&"busybox-static=1:1.38.0-3+b1".to_string()), "{:?}", sid.pins);
        assert!(sid.pins.iter().all(|pin| pin.contains('=')), "{:?}", sid.pins);
        assert_eq!(lock.kernels.len(), project.kernels.len());
        assert!(lock.kernel_config.contains_key("base.config"), "{:?}", lock.kernel_config);
    }

    #[test]
    fn rustup_and_host_toolchains_are_locked_by_version_without_a_root() {
        let lock = inputs(&repo(), &Project::load(&repo()).unwrap()).unwrap();
        let rustup = lock.toolchain("rustup-1.97").unwrap();
        assert_eq!(rustup.root, RootState::HostTools);
        assert!(rustup.pins.contains(&"rustup-toolchain=1.97.1".to_string()), "{:?}", rustup.pins);
        assert!(rustup.pins.contains(&"bindgen=0.72.1".to_string()), "{:?}", rustup.pins);
        let host = lock.toolchain("host").unwrap();
        assert!(host.pins.contains(&"rustc=1.97.1".to_string()) && host.packages.is_empty(), "{:?}", host.pins);
        assert!(lock.render().contains("id = \"host\"\nspec-sha256 = "), "{}", lock.render());
        // Under --locked there is no root to compare: `verify` checks the versions.
        let toolchain = Toolchain::load(&repo(), "host").unwrap();
        assert_eq!(root_differences(&lock, &toolchain).unwrap(), Vec::<String>::new());
        let (generated, notes) = generate(&repo(), &Project::load(&repo()).unwrap(), Some(&lock)).unwrap();
        assert_eq!(generated.toolchain("host").unwrap().root, RootState::HostTools);
        assert!(
            notes.iter().any(|note| note.starts_with("toolchain host: 6 pinned versions; it has no root")),
            "{notes:?}"
        );
    }

    /// The committed kforge.lock matches the repository's pins, kernels and
    /// fragments (the package sets need installed roots; `lock --check` compares those).
    #[test]
    fn committed_lockfile_matches_the_pins() {
        let locked = Lockfile::read(&repo()).unwrap().expect("kforge.lock is committed");
        let project = Project::load(&repo()).unwrap();
        let found = differences(&locked, &inputs(&repo(), &project).unwrap(), false);
        assert!(found.is_empty(), "kforge.lock is stale ({UPDATE_HINT}):\n{}", found.join("\n"));
        for toolchain in &locked.toolchains {
            if toolchain.root == RootState::Installed {
                assert!(!toolchain.packages.is_empty() && !toolchain.busybox.is_empty(), "{}", toolchain.id);
            }
        }
    }

    #[test]
    fn root_packages_read_the_record_and_the_apt_lists() {
        let scratch = tempfile::tempdir().unwrap();
        let toolchain = Toolchain { root: scratch.path().join("root"), ..Toolchain::load(&repo(), "sid").unwrap() };
        let root = &toolchain.root;
        fs_err::create_dir_all(root.join("usr/bin")).unwrap();
        fs_err::create_dir_all(root.join("opt/kforge")).unwrap();
        fs_err::create_dir_all(root.join("var/lib/apt/lists")).unwrap();
        let native = debian_arches(&toolchain.spec).unwrap()[0];
        fs_err::write(
            root.join("opt/kforge/packages.txt"),
            format!("adduser\t3.152\nlibc6:{native}\t2.41-1\nzlib1g\t1:1.3\n"),
        )
        .unwrap();
        let (busybox, busybox_version) = toolchain.spec.busybox_package().unwrap();
        let mut list = String::new();
        let mut stanza = |name: &str, version: &str, arch: &str| {
            list.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nFilename: pool/{name}.deb\nSHA256: {}\n\n",
                cache::sha256_hex(format!("{name}{version}{arch}").as_bytes())
            ));
        };
        stanza("adduser", "3.152", "all");
        stanza("libc6", "2.41-1", native);
        stanza("zlib1g", "1:1.3", native);
        stanza("zlib1g", "1:1.2", native);
        for arch in debian_arches(&toolchain.spec).unwrap() {
            stanza(&busybox, &busybox_version, arch);
        }
        fs_err::write(root.join("var/lib/apt/lists/mirror_dists_sid_main_binary-all_Packages"), &list).unwrap();

        let (arch, packages, busybox_files) = root_packages(&toolchain).unwrap();
        assert_eq!(arch, native);
        let names: Vec<String> =
            packages.iter().map(|package| format!("{}:{}={}", package.name, package.arch, package.version)).collect();
        assert_eq!(
            names,
            ["adduser:all=3.152".to_string(), format!("libc6:{native}=2.41-1"), format!("zlib1g:{native}=1:1.3")]
        );
        assert_eq!(packages[2].sha256, cache::sha256_hex(format!("zlib1g1:1.3{native}").as_bytes()));
        assert_eq!(busybox_files.len(), debian_arches(&toolchain.spec).unwrap().len());

        // A lock made from it matches the root; a changed dependency is named.
        let mut lock = inputs(&repo(), &Project::load(&repo()).unwrap()).unwrap();
        let entry = lock.toolchains.iter_mut().find(|entry| entry.id == "sid").unwrap();
        entry.root = RootState::Installed;
        entry.root_arch = Some(arch);
        entry.packages = packages;
        entry.busybox = busybox_files;
        assert_eq!(root_differences(&lock, &toolchain).unwrap(), Vec::<String>::new());
        fs_err::write(
            root.join("opt/kforge/packages.txt"),
            format!("adduser\t3.152\nlibc6:{native}\t2.42-1\nzlib1g\t1:1.3\nnew\t1\n"),
        )
        .unwrap();
        assert_eq!(
            root_differences(&lock, &toolchain).unwrap(),
            [
                "toolchain sid: libc6 is 2.42-1 in its root, kforge.lock has 2.41-1",
                "toolchain sid: new 1 is installed in its root but not in kforge.lock",
            ]
        );

        // A package the lists do not know is named, not silently dropped.
        fs_err::write(root.join("opt/kforge/packages.txt"), "ghost\t9\n").unwrap();
        let message = error::render(&root_packages(&toolchain).unwrap_err());
        assert!(message.contains("ghost=9"), "{message}");
    }
}
