//! Pinned toolchains: locate an installed root, install it, verify it, and give builds a sandbox inside it.

pub mod install;
pub mod mirror;
pub mod resolve;
pub mod spec;
pub mod verify;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::{ARCHES, Arch};
use crate::cache::KeyHasher;
use crate::sandbox::Sandbox;
use crate::{error, paths};

pub use spec::ToolchainSpec;

/// Bumped whenever the way a root is built changes, so old roots are not reused.
const RECIPE_VERSION: &str = "kforge-root-1";

/// Where inside the root the per-arch busybox binaries are kept.
const BUSYBOX_DIR: &str = "opt/kforge/busybox";

/// A toolchain spec plus its (possibly not yet installed) root.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub spec: ToolchainSpec,
    /// Content-addressed key over everything that shapes the root.
    pub key: String,
    /// Key over what shapes kernel builds (see `ToolchainSpec::build_identity`).
    pub build_key: String,
    /// The installed root (exists once installed).
    pub root: PathBuf,
}

impl Toolchain {
    /// Loads `toolchains/<id>.toml` and computes where its root lives.
    pub fn load(repo: &Path, id: &str) -> Result<Toolchain> {
        let spec = spec::load(repo, id)?;
        let mut key = KeyHasher::new();
        key.input("recipe", RECIPE_VERSION).input("spec", spec.canonical());
        for debian_arch in debian_arches(&spec) {
            key.input("arch", debian_arch);
        }
        let root = paths::cache_dir()?.join("toolchains").join(format!("{id}-{}", key.short()));
        let mut build_key = KeyHasher::new();
        build_key.input("recipe", RECIPE_VERSION).input("build", spec.build_identity());
        Ok(Toolchain { spec, key: key.finish(), build_key: build_key.finish(), root })
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn is_installed(&self) -> bool {
        self.root.join("usr/bin").is_dir()
    }

    /// Fails with the command to run when the root is not installed.
    pub fn require_installed(&self) -> Result<()> {
        if self.is_installed() {
            return Ok(());
        }
        Err(error::user_hint(
            format!("toolchain {} is not installed (expected at {})", self.id(), self.root.display()),
            format!("run: cargo xtask toolchain install {}", self.id()),
        ))
    }

    /// A sandbox whose PATH puts the pinned LLVM first and whose bindgen finds the pinned libclang.
    pub fn sandbox(&self) -> Result<Sandbox> {
        self.require_installed()?;
        Sandbox::new(
            self.root.clone(),
            vec![self.spec.llvm.bin.clone()],
            vec![("LIBCLANG_PATH".to_string(), self.spec.llvm.lib.clone())],
        )
    }

    /// Package versions recorded when the root was built (`dpkg-query -W`): name -> version.
    pub fn installed_packages(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let text = fs_err::read_to_string(self.root.join("opt/kforge/packages.txt"))?;
        Ok(text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(name, version)| (name.to_string(), version.to_string()))
            .collect())
    }

    /// busybox-static for `arch`, on the host (inside the root's directory).
    pub fn busybox(&self, arch: &Arch) -> PathBuf {
        self.root.join(BUSYBOX_DIR).join(arch.debian_arch).join("busybox")
    }
}

/// The Debian architectures of every arch `spec` serves, host first, no repeats.
pub fn debian_arches(spec: &ToolchainSpec) -> Vec<&'static str> {
    let host = host_debian_arch();
    let mut arches = vec![host];
    for arch in ARCHES {
        if !arches.contains(&arch.debian_arch) && !spec.unsupported_arches.contains_key(arch.name) {
            arches.push(arch.debian_arch);
        }
    }
    arches
}

/// The Debian architecture of this machine.
pub fn host_debian_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "s390x" => "s390x",
        _ => "amd64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn a_toolchain_without_a_port_leaves_that_arch_out_of_its_root() {
        let trixie = spec::load(&repo(), "trixie").unwrap();
        assert!(trixie.unsupported_arches.contains_key("loongarch"), "{:?}", trixie.unsupported_arches);
        assert!(!debian_arches(&trixie).contains(&"loong64"));
        let sid = spec::load(&repo(), "sid").unwrap();
        assert!(debian_arches(&sid).contains(&"loong64"));
        assert_eq!(debian_arches(&sid).len(), debian_arches(&trixie).len() + 1);
    }

    #[test]
    fn unsupported_arches_stay_out_of_the_canonical_text_when_empty() {
        let sid = spec::load(&repo(), "sid").unwrap();
        assert!(!sid.canonical().contains("unsupported"), "{}", sid.canonical());
    }
}
