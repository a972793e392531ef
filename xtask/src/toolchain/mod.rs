//! Pinned toolchains: locate an installed root (or the host's tools), install it, verify it, and give builds a sandbox with it.

pub mod check;
pub mod install;
pub mod mirror;
pub mod provider;
pub mod resolve;
pub mod spec;
pub mod verify;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::{ARCHES, Arch};
use crate::cache::KeyHasher;
use crate::sandbox::Sandbox;
use crate::{error, paths};

pub use provider::ToolchainProvider;
pub use spec::{Provider, ToolchainSpec};

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
    /// The filesystem builds see: the installed Debian root (exists once
    /// installed), or `/` for the rustup and host providers.
    pub root: PathBuf,
    /// The toolchain's own cache entry: the root itself for Debian; bindgen
    /// (rustup) and the per-arch busybox binaries for the other providers.
    pub dir: PathBuf,
}

impl Toolchain {
    /// Loads `toolchains/<id>.toml` and computes where its root lives.
    pub fn load(repo: &Path, id: &str) -> Result<Toolchain> {
        let spec = spec::load(repo, id)?;
        let mut key = KeyHasher::new();
        key.input("recipe", RECIPE_VERSION).input("spec", spec.canonical());
        for debian_arch in debian_arches(&spec)? {
            key.input("arch", debian_arch);
        }
        let dir = paths::cache_dir()?.join("toolchains").join(format!("{id}-{}", key.short()));
        let root = if spec.provider == Provider::Debian { dir.clone() } else { PathBuf::from("/") };
        let mut build_key = KeyHasher::new();
        build_key.input("recipe", RECIPE_VERSION).input("build", spec.build_identity());
        Ok(Toolchain { spec, key: key.finish(), build_key: build_key.finish(), root, dir })
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// What installs, verifies and describes this toolchain.
    pub fn provider(&self) -> &'static dyn ToolchainProvider {
        provider::of(self.spec.provider)
    }

    /// Whether what kforge installs is there: the Debian root; the rustup
    /// toolchain and bindgen; always for the host provider (it installs nothing).
    pub fn is_installed(&self) -> bool {
        self.provider().is_installed(self)
    }

    /// Fails with the command to run when the root is not installed.
    pub fn require_installed(&self) -> Result<()> {
        if self.is_installed() {
            return Ok(());
        }
        Err(error::user_hint(
            format!("toolchain {} is not installed (expected at {})", self.id(), self.location()),
            format!("run: cargo xtask toolchain install {}", self.id()),
        ))
    }

    /// Where the toolchain lives, for messages.
    pub fn location(&self) -> String {
        self.provider().describe(self)
    }

    /// `toolchain shell`: an interactive `bash -i` in this toolchain's
    /// sandbox, with a kernel source read-only at /src and, if given, a
    /// kernel build writable at /build.
    pub fn shell(&self, source: &Path, build: Option<&Path>) -> Result<std::process::ExitStatus> {
        let sandbox = self.sandbox()?;
        let mut jail = sandbox.jail().interactive();
        jail.ro(source, "/src");
        if let Some(build) = build {
            jail.rw(build, "/build");
        }
        jail.cwd("/src").command(&["bash", "-i"])?.run_interactive()
    }

    /// A sandbox whose PATH puts the pinned tools first and whose bindgen
    /// finds the pinned libclang: inside the Debian root, or on the host's
    /// filesystem (mounted read-only) for the rustup and host providers.
    pub fn sandbox(&self) -> Result<Sandbox> {
        self.require_installed()?;
        let sysroot = self.provider().sysroot(self)?;
        self.sandbox_with(sysroot.as_deref())
    }

    /// The sandbox for `sysroot` (a rustup toolchain's directory, if any),
    /// installed or not: `verify` uses it to report what is missing.
    pub fn sandbox_with(&self, sysroot: Option<&Path>) -> Result<Sandbox> {
        let env = vec![("LIBCLANG_PATH".to_string(), self.spec.llvm.lib.clone())];
        Sandbox::new(self.root.clone(), self.path_prefix(sysroot), env)
    }

    /// The directories put before the standard PATH: the rustup toolchain's
    /// `bin` and the bindgen root's `bin` (rustup provider), then LLVM's.
    pub fn path_prefix(&self, sysroot: Option<&Path>) -> Vec<String> {
        let mut path_prefix = Vec::new();
        if self.spec.provider == Provider::Rustup {
            if let Some(sysroot) = sysroot {
                path_prefix.push(sysroot.join("bin").display().to_string());
            }
            path_prefix.push(self.bindgen_root().join("bin").display().to_string());
        }
        path_prefix.push(self.spec.llvm.bin.clone());
        path_prefix
    }

    /// Where `cargo install` puts bindgen for the rustup provider (`--root`).
    pub fn bindgen_root(&self) -> PathBuf {
        self.dir.join("bindgen")
    }

    /// The bindgen binary the rustup provider installs.
    pub fn bindgen_binary(&self) -> PathBuf {
        self.bindgen_root().join("bin/bindgen")
    }

    /// Package versions recorded when the root was built (`dpkg-query -W`):
    /// name -> version. Empty for the rustup and host providers, which
    /// install no packages (their versions are in `verify`'s report).
    pub fn installed_packages(&self) -> Result<std::collections::BTreeMap<String, String>> {
        if self.spec.provider != Provider::Debian {
            return Ok(std::collections::BTreeMap::new());
        }
        let text = fs_err::read_to_string(self.root.join("opt/kforge/packages.txt"))?;
        Ok(text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(name, version)| (name.to_string(), version.to_string()))
            .collect())
    }

    /// busybox-static for `arch`, on the host (inside the root's directory;
    /// for the rustup and host providers, in the toolchain's own directory,
    /// where the user puts it).
    pub fn busybox(&self, arch: &Arch) -> PathBuf {
        match self.spec.provider {
            Provider::Debian => self.root.join(BUSYBOX_DIR).join(arch.debian_arch).join("busybox"),
            _ => self.dir.join("busybox").join(arch.debian_arch).join("busybox"),
        }
    }
}

/// The Debian architectures of every arch `spec` serves, host first, no repeats.
pub fn debian_arches(spec: &ToolchainSpec) -> Result<Vec<&'static str>> {
    let mut arches = vec![Arch::host()?.debian_arch];
    for arch in ARCHES {
        if !arches.contains(&arch.debian_arch) && !spec.unsupported_arches.contains_key(arch.name) {
            arches.push(arch.debian_arch);
        }
    }
    Ok(arches)
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
        assert!(!debian_arches(&trixie).unwrap().contains(&"loong64"));
        let sid = spec::load(&repo(), "sid").unwrap();
        assert!(debian_arches(&sid).unwrap().contains(&"loong64"));
        assert_eq!(debian_arches(&sid).unwrap().len(), debian_arches(&trixie).unwrap().len() + 1);
    }

    #[test]
    fn unsupported_arches_stay_out_of_the_canonical_text_when_empty() {
        let sid = spec::load(&repo(), "sid").unwrap();
        assert!(!sid.canonical().contains("unsupported"), "{}", sid.canonical());
    }

    #[test]
    fn rustup_and_host_builds_see_the_host_with_their_tools_first() {
        let repo = repo();
        let sid = Toolchain::load(&repo, "sid").unwrap();
        assert_eq!(sid.root, sid.dir);
        assert_eq!(sid.path_prefix(None), ["/usr/lib/llvm-22/bin"]);

        let rustup = Toolchain::load(&repo, "rustup-1.97").unwrap();
        assert_eq!(rustup.root, Path::new("/"));
        assert_eq!(rustup.dir.file_name().unwrap().to_string_lossy(), format!("rustup-1.97-{}", &rustup.key[..16]));
        let sysroot = Path::new("/home/dev/.rustup/toolchains/1.97.1-x86_64-unknown-linux-gnu");
        assert_eq!(
            rustup.path_prefix(Some(sysroot)),
            [
                "/home/dev/.rustup/toolchains/1.97.1-x86_64-unknown-linux-gnu/bin".to_string(),
                rustup.dir.join("bindgen/bin").display().to_string(),
                "/usr/lib/llvm-22/bin".to_string(),
            ]
        );
        assert_eq!(rustup.busybox(&ARCHES[0]), rustup.dir.join("busybox/amd64/busybox"));
        assert!(rustup.installed_packages().unwrap().is_empty());

        let host = Toolchain::load(&repo, "host").unwrap();
        assert_eq!(
            (host.root.as_path(), host.path_prefix(None)),
            (Path::new("/"), vec!["/usr/lib/llvm-22/bin".to_string()])
        );
        assert!(host.is_installed(), "the host provider installs nothing, so it is always there");
    }
}
