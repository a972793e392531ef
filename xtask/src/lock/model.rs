//! The lockfile's model: what `kforge.lock` holds (toolchains with their pins and root packages, kernels, config fragments), read and parsed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use crate::{error, project};

/// The lockfile's name, at the repository root.
pub const FILE: &str = "kforge.lock";

/// The format this kforge reads and writes.
pub(super) const FORMAT_VERSION: u32 = 1;

/// What to do about a stale or missing lockfile.
pub const UPDATE_HINT: &str = "run `cargo xtask lock` and commit kforge.lock";

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
}
