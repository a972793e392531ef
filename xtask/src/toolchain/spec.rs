//! `toolchains/<id>.toml`: one toolchain pinned exactly (rustc, rust-src, bindgen, LLVM, QEMU, busybox) and where each comes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{error, project};

/// One pinned tool: the exact upstream version, and the distro packages
/// (`name=version`) that provide it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolPin {
    pub version: String,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Only under `[rustc]`: the LLVM version the compiler is built on (`rustc -vV`,
    /// at least its major), for the rules in `toolchains/rules.toml`. A fact about
    /// the pinned package, not a pin: never serialised, so it stays out of
    /// `canonical()` (the root's key) and `build_identity()`, and writing it into
    /// a toolchain file does not invalidate installed roots.
    #[serde(default, skip_serializing)]
    pub llvm: Option<String>,
}

/// LLVM is pinned like a tool, plus where its unversioned binaries live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LlvmPin {
    pub version: String,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Directory holding `clang`, `ld.lld`, `llvm-ar`... (put first on PATH).
    pub bin: String,
    /// Directory holding `libclang.so` (bindgen's LIBCLANG_PATH).
    pub lib: String,
}

/// Extra pinned packages installed into the root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtraPackages {
    pub packages: Vec<String>,
}

/// How the toolchain is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// A hermetic Debian root built with mmdebstrap; builds run inside it.
    Debian,
}

/// Debian-specific settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebianSettings {
    /// Suite the root is built from (sid, trixie, experimental...).
    pub suite: String,
    /// Extra suites added to the root's apt sources (e.g. sid under experimental).
    #[serde(default)]
    pub extra_suites: Vec<String>,
    /// Helper packages a kernel build needs (make, flex, bison...), from the suite.
    pub build_packages: Vec<String>,
}

/// A whole `toolchains/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolchainSpec {
    pub description: String,
    pub provider: Provider,
    pub debian: DebianSettings,
    pub rustc: ToolPin,
    pub rust_src: ToolPin,
    pub bindgen: ToolPin,
    pub llvm: LlvmPin,
    pub qemu: ToolPin,
    /// busybox-static, fetched for every target arch's Debian architecture.
    pub busybox: ToolPin,
    /// Tools for developers that no build uses (rust-analyzer); not part of kernel cache keys.
    #[serde(default)]
    pub extras: Option<ExtraPackages>,
    /// kforge arches this toolchain cannot serve, with the reason (e.g. the
    /// suite has no port for it); their cells are skipped with that reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unsupported_arches: BTreeMap<String, String>,
    /// The file's id (its stem); not part of the file.
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub path: PathBuf,
}

impl ToolchainSpec {
    /// Every package to install into the root, pinned ones first.
    pub fn root_packages(&self) -> Vec<String> {
        let mut packages = Vec::new();
        for pin in [&self.rustc, &self.rust_src, &self.bindgen, &self.qemu] {
            packages.extend(pin.packages.iter().cloned());
        }
        packages.extend(self.llvm.packages.iter().cloned());
        packages.extend(self.debian.build_packages.iter().cloned());
        if let Some(extras) = &self.extras {
            packages.extend(extras.packages.iter().cloned());
        }
        packages
    }

    /// What of the spec can change a kernel build's output: the compilers,
    /// rust-src, bindgen, LLVM, the build helpers and where they come from.
    /// QEMU, busybox and editor tools are left out, so pinning a newer QEMU
    /// does not rebuild every kernel.
    pub fn build_identity(&self) -> String {
        let mut identity = format!(
            "provider={:?}\nsuite={}\nextra-suites={:?}\n",
            self.provider, self.debian.suite, self.debian.extra_suites
        );
        for (name, pin) in [("rustc", &self.rustc), ("rust-src", &self.rust_src), ("bindgen", &self.bindgen)] {
            identity.push_str(&format!("{name}={} {:?}\n", pin.version, pin.packages));
        }
        identity.push_str(&format!(
            "llvm={} {:?} {} {}\n",
            self.llvm.version, self.llvm.packages, self.llvm.bin, self.llvm.lib
        ));
        identity.push_str(&format!("build-packages={:?}\n", self.debian.build_packages));
        identity
    }

    /// The busybox package name and version (`busybox-static`, `1:1.38.0-3+b1`).
    pub fn busybox_package(&self) -> Result<(String, String)> {
        let pinned = self.busybox.packages.first().with_context(|| {
            format!("{}: [busybox] needs packages = [\"busybox-static=VERSION\"]", self.path.display())
        })?;
        split_pin(pinned).with_context(|| format!("in [busybox] of {}", self.path.display()))
    }

    /// The file contents that matter, canonically serialised (comments and
    /// formatting do not change the cache key).
    pub fn canonical(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// Splits `name=version` (and checks it is pinned).
pub fn split_pin(pinned: &str) -> Result<(String, String)> {
    match pinned.split_once('=') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => Ok((name.to_string(), version.to_string())),
        _ => Err(error::user(format!("package `{pinned}` is not pinned; write it as name=version"))),
    }
}

/// `toolchains/rules.toml` holds compatibility rules (`toolchain::resolve`), not a toolchain.
pub const RULES_STEM: &str = "rules";

/// The ids of every `toolchains/*.toml` but the rules file, sorted.
pub fn list_ids(repo: &Path) -> Result<Vec<String>> {
    let dir = repo.join("toolchains");
    let mut ids = Vec::new();
    for entry in fs_err::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml")
            && let Some(stem) = path.file_stem()
            && stem != RULES_STEM
        {
            ids.push(stem.to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// Loads `toolchains/<id>.toml`, or says which ids exist.
pub fn load(repo: &Path, id: &str) -> Result<ToolchainSpec> {
    let path = repo.join("toolchains").join(format!("{id}.toml"));
    if !path.is_file() || id == RULES_STEM {
        return Err(error::unknown("toolchain", id, &list_ids(repo)?));
    }
    let mut spec: ToolchainSpec = project::load_toml(&path)?;
    spec.id = id.to_string();
    spec.path = path;
    for pin in spec.root_packages().iter().filter(|package| package.contains('=')) {
        split_pin(pin).with_context(|| format!("in {}", spec.path.display()))?;
    }
    for (table, pin) in
        [("rust-src", &spec.rust_src), ("bindgen", &spec.bindgen), ("qemu", &spec.qemu), ("busybox", &spec.busybox)]
    {
        if pin.llvm.is_some() {
            return Err(error::user(format!(
                "{}: `llvm` belongs under [rustc] (the LLVM rustc is built on), not under [{table}]",
                spec.path.display()
            )));
        }
    }
    if spec.rust_src.version != spec.rustc.version {
        return Err(error::user(format!(
            "{}: rust-src {} does not match rustc {}; the kernel needs the standard library sources of the exact compiler",
            spec.path.display(),
            spec.rust_src.version,
            spec.rustc.version
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn committed_toolchains_load_and_pin_every_package() {
        let ids = list_ids(&repo()).unwrap();
        assert!(ids.contains(&"sid".to_string()), "{ids:?}");
        for id in ids {
            let spec = load(&repo(), &id).unwrap();
            for package in spec.root_packages().iter().filter(|package| !spec.debian.build_packages.contains(package)) {
                assert!(package.contains('='), "{id}: {package} is not pinned");
            }
            spec.busybox_package().unwrap();
        }
    }

    #[test]
    fn default_toolchain_matches_the_issue() {
        let spec = load(&repo(), "sid").unwrap();
        assert_eq!(spec.rustc.version, "1.97.1");
        assert_eq!(spec.bindgen.version, "0.72.1");
        assert!(spec.llvm.version.starts_with("22."));
    }

    #[test]
    fn rustc_llvm_stays_out_of_the_keys_and_rules_is_no_toolchain() {
        let spec = load(&repo(), "sid").unwrap();
        assert_eq!(spec.rustc.llvm.as_deref(), Some("22"));
        let mut without = spec.clone();
        without.rustc.llvm = None;
        assert_eq!(spec.canonical(), without.canonical());
        assert_eq!(spec.build_identity(), without.build_identity());
        assert!(!list_ids(&repo()).unwrap().contains(&RULES_STEM.to_string()));
        assert!(load(&repo(), RULES_STEM).unwrap_err().to_string().contains("unknown toolchain `rules`"));
    }

    #[test]
    fn unknown_toolchain_lists_known_ones() {
        let message = format!("{}", load(&repo(), "nope").unwrap_err());
        assert!(message.contains("unknown toolchain `nope`") && message.contains("sid"), "{message}");
    }

    #[test]
    fn unpinned_package_is_an_error() {
        assert!(split_pin("rustc").is_err());
        assert_eq!(split_pin("clang-22=1:22.1.8-3").unwrap(), ("clang-22".to_string(), "1:22.1.8-3".to_string()));
    }
}
