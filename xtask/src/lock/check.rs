//! The `--locked` checks: the process-wide switch, the differences between the file and the current inputs (or an installed root), and the refusal naming each one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use crate::error;
use crate::project::Project;
use crate::toolchain::{Toolchain, debian_arches};

use super::generate::*;
use super::model::*;

/// Whether `--locked` is in effect in this session.
pub fn is_locked() -> bool {
    crate::session::current().locked
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
pub(super) fn pin_map(pins: &[String]) -> BTreeMap<String, String> {
    pins.iter()
        .map(|pin| match pin.split_once('=') {
            Some((name, version)) => (name.to_string(), version.to_string()),
            None => (pin.clone(), String::new()),
        })
        .collect()
}

/// Differences in the recorded root packages (both sides recorded them).
pub(super) fn package_differences(old: &ToolchainLock, now: &ToolchainLock) -> Vec<String> {
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
pub(super) fn read_required(repo: &Path) -> Result<Lockfile> {
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

pub(super) fn refuse(what: &str, differences: &[String]) -> anyhow::Error {
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

pub(super) fn check_root_against(locked: &Lockfile, toolchain: &Toolchain) -> Result<()> {
    let differences = root_differences(locked, toolchain)?;
    if differences.is_empty() {
        return Ok(());
    }
    Err(refuse(&format!("the packages of toolchain {} ({})", toolchain.id(), toolchain.root.display()), &differences))
}
