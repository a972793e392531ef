//! `kforge.toml`: the default matrix, the kernels (id, source, toolchain) and boot settings; plus the TOML loader every data file uses.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Runner};
use crate::error;

/// Reads and parses a TOML file; errors name the file, the line and the key.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs_err::read_to_string(path)?;
    parse_toml(path, &text)
}

/// Parses TOML text that came from `path` (used in messages).
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|err| {
        let location = err
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(":{line}")
            })
            .unwrap_or_default();
        error::user(format!("malformed {}{location}: {}", path.display(), err.message().trim()))
    })
}

/// The whole `kforge.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Project {
    pub matrix: Matrix,
    #[serde(rename = "kernel")]
    pub kernels: Vec<KernelEntry>,
    #[serde(default)]
    pub boot: BootSettings,
    /// Where it was read from (not part of the file).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The default matrix `cargo xtask test` runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Matrix {
    pub kernels: Vec<String>,
    pub arches: Vec<String>,
    pub drivers: Vec<String>,
    /// The test profile `test` and `run` use unless `--profile` says otherwise (default `debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// How `test` and `run` boot unless `--boot` says otherwise (default `direct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootMethod>,
    /// Whether EFI boots enforce Secure Boot unless `--secure-boot` is given (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<bool>,
}

/// How a guest is started: QEMU loads kernel and initramfs itself (`direct`),
/// or UEFI firmware boots kforge's disk image (`efi`: a UKI on a GPT disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BootMethod {
    Direct,
    Efi,
}

/// A run's boot: the method, and for `efi` whether Secure Boot is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BootMode {
    pub method: BootMethod,
    pub secure_boot: bool,
}

impl BootMode {
    /// `--boot`/`--secure-boot` over kforge.toml's `[matrix]`; Secure Boot
    /// needs the firmware, so it implies `efi` and refuses `direct`.
    pub fn choose(cli_method: Option<BootMethod>, cli_secure: bool, matrix: &Matrix) -> Result<BootMode> {
        let secure_boot = cli_secure || matrix.secure_boot.unwrap_or(false);
        let method =
            cli_method.or(matrix.boot).unwrap_or(if secure_boot { BootMethod::Efi } else { BootMethod::Direct });
        if secure_boot && method == BootMethod::Direct {
            return Err(error::user_hint(
                "Secure Boot needs UEFI firmware, but the boot method is `direct`",
                "use --boot efi (or drop --secure-boot / [matrix] secure-boot)",
            ));
        }
        Ok(BootMode { method, secure_boot })
    }

    /// `direct`, `efi` or `efi+secure-boot`: results.json's `boot` of a cell.
    pub fn label(self) -> &'static str {
        match (self.method, self.secure_boot) {
            (BootMethod::Direct, _) => "direct",
            (BootMethod::Efi, false) => "efi",
            (BootMethod::Efi, true) => "efi+secure-boot",
        }
    }
}

/// What a test kernel is built for: `debug` (SMP, lockdep, KASAN where it
/// exists with Rust, kmemleak, Rust debug assertions; what `test` and `run`
/// use by default) or `release` (the minimal kernel; what `dist` ships).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Debug, Profile::Release];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }

    /// Guest memory: `[boot] memory`, or for `debug` `[boot] debug-memory`
    /// (KASAN's shadow, lockdep and kmemleak need more than the minimal kernel).
    pub fn memory(self, boot: &BootSettings) -> &str {
        match self {
            Profile::Debug => &boot.debug_memory,
            Profile::Release => &boot.memory,
        }
    }

    /// Boot timeout: `[boot] timeout-seconds`, or for `debug`
    /// `[boot] debug-timeout-seconds` (KASAN, lockdep and kmemleak scans make
    /// a TCG guest several times slower).
    pub fn boot_timeout(self, boot: &BootSettings) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Profile::Debug => boot.debug_timeout_seconds,
            Profile::Release => boot.timeout_seconds,
        })
    }

    /// Kernel command-line words every boot of this profile's kernel gets.
    /// `debug`: `slab_debug=F,kmalloc-*` gives the kmalloc caches SLUB's
    /// consistency checks, which also turns off their per-CPU sheaves. A sheaf
    /// keeps a stale copy of every pointer it handed out, and kmemleak scans
    /// sheaves, so without this a freshly leaked kmalloc object looks
    /// referenced and kmemleak reports nothing (seen on 7.2: seeded-memleak's
    /// 16 leaked buffers went unreported).
    pub fn kernel_words(self) -> &'static str {
        match self {
            Profile::Debug => "slab_debug=F,kmalloc-*",
            Profile::Release => "",
        }
    }

    /// QEMU arguments this profile adds on `arch`: the debug profile's
    /// machine IOMMU, the DMA detector ([`crate::arch::QemuSpec::debug_args`]).
    pub fn qemu_args(self, arch: &Arch) -> &'static [&'static str] {
        match (self, &arch.runner) {
            (Profile::Debug, Runner::Qemu(qemu)) => qemu.debug_args,
            _ => &[],
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Profile> {
        Profile::ALL.into_iter().find(|profile| profile.as_str() == text.trim()).ok_or_else(|| {
            error::unknown("profile", text, &Profile::ALL.iter().map(|profile| profile.to_string()).collect::<Vec<_>>())
        })
    }
}

/// One kernel the matrix can build.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelEntry {
    pub id: String,
    /// The kernel release, e.g. "7.2.13" (compared with drivers' min-kernel).
    pub version: String,
    /// Toolchain id (a file in `toolchains/`).
    pub toolchain: String,
    pub source: KernelSource,
}

/// Where a kernel's source tree comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum KernelSource {
    /// Debian's `linux-source-X.Y` package, fetched with the toolchain root's apt.
    Debian {
        package: String,
        version: String,
        /// sha256 of the .deb.
        sha256: String,
    },
    /// A release tarball (`.tar.xz`, `.tar.gz` or `.tar`), verified before unpacking.
    Tarball { url: String, sha256: String },
    /// A kernel tree on this machine, used in place (read-only).
    Path(PathBuf),
    /// A distribution's own built kernel (Debian's `linux-image-*`): kforge
    /// boots its image and builds modules for it from the source package it
    /// was built from (see `kernel::distro`).
    DebianImage(DebianImage),
}

/// One Debian package pinned exactly: name, version and the sha256 of its .deb.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebianPackage {
    pub package: String,
    pub version: String,
    pub sha256: String,
}

/// Debian's built kernel: the source package it came from, and per kforge
/// arch the packages holding its image and its build files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebianImage {
    /// `linux-source-X.Y` of the same version (its Rust metadata is regenerated from it).
    pub source: DebianPackage,
    /// kforge arch name -> that arch's packages.
    pub arches: std::collections::BTreeMap<String, DebianImageArch>,
}

/// One arch of a Debian kernel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DebianImageArch {
    /// The package with the kernel image (`usr/lib/modules/<release>/vmlinuz`).
    pub image: DebianPackage,
    /// The headers package: Debian's build `.config`, `Module.symvers`, the
    /// release and the make variables Debian built with (`.kernelvariables`).
    pub headers: DebianPackage,
}

/// How guests are booted.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BootSettings {
    /// Seconds from QEMU start to the end marker before the cell is a boot-timeout.
    pub timeout_seconds: u64,
    /// Guest memory, in QEMU's syntax.
    pub memory: String,
    /// Guest memory for the `debug` profile (KASAN keeps a shadow of 1/8 of it).
    #[serde(default = "default_debug_memory")]
    pub debug_memory: String,
    /// Boot timeout for the `debug` profile.
    #[serde(default = "default_debug_timeout_seconds")]
    pub debug_timeout_seconds: u64,
    /// The user's Secure Boot key directory (PK.crt, KEK.crt, db.crt, db.key),
    /// relative to kforge.toml's directory; `KFORGE_SECURE_BOOT_KEYS` overrides
    /// it. Unset: kforge generates a key set under the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot_keys: Option<PathBuf>,
}

fn default_debug_memory() -> String {
    "1G".to_string()
}

/// riscv's debug cell takes 1070 s on an idle 2-core machine
/// (docs/benchmarks.md).
fn default_debug_timeout_seconds() -> u64 {
    1500
}

impl Default for BootSettings {
    fn default() -> Self {
        BootSettings {
            timeout_seconds: 300,
            memory: "512M".to_string(),
            debug_memory: default_debug_memory(),
            debug_timeout_seconds: default_debug_timeout_seconds(),
            secure_boot_keys: None,
        }
    }
}

impl Project {
    /// Loads `<repo>/kforge.toml` and checks its cross-references.
    pub fn load(repo: &Path) -> Result<Project> {
        let path = repo.join("kforge.toml");
        let mut project: Project = load_toml(&path)?;
        project.path = path;
        project.validate()?;
        Ok(project)
    }

    fn validate(&self) -> Result<()> {
        for kernel in &self.kernels {
            crate::names::check("kernel", &kernel.id, &self.path)?;
            crate::names::check("toolchain", &kernel.toolchain, &self.path)?;
        }
        for (index, kernel) in self.kernels.iter().enumerate() {
            if self.kernels[..index].iter().any(|earlier| earlier.id == kernel.id) {
                return Err(error::user(format!(
                    "{}: kernel id `{}` is defined twice",
                    self.path.display(),
                    kernel.id
                )));
            }
        }
        for kernel in &self.kernels {
            if let KernelSource::DebianImage(image) = &kernel.source {
                for name in image.arches.keys() {
                    let arch = crate::arch::Arch::find(name)
                        .with_context(|| format!("in the debian-image source of kernel {}", kernel.id))?;
                    if arch.name != name {
                        return Err(error::user(format!(
                            "{}: kernel {} lists packages for `{name}`; write the arch as `{}`",
                            self.path.display(),
                            kernel.id,
                            arch.name
                        )));
                    }
                }
            }
        }
        for id in &self.matrix.kernels {
            self.kernel(id).with_context(|| format!("in [matrix] kernels of {}", self.path.display()))?;
        }
        Ok(())
    }

    /// `--profile`, else `[matrix] profile`, else `debug` (for `test` and `run`).
    pub fn test_profile(&self, given: Option<Profile>) -> Profile {
        given.or(self.matrix.profile).unwrap_or(Profile::Debug)
    }

    pub fn kernel_ids(&self) -> Vec<String> {
        self.kernels.iter().map(|kernel| kernel.id.clone()).collect()
    }

    pub fn kernel(&self, id: &str) -> Result<&KernelEntry> {
        self.kernels
            .iter()
            .find(|kernel| kernel.id == id)
            .ok_or_else(|| error::unknown("kernel", id, &self.kernel_ids()))
    }

    /// `--kernel LIST|all`, or the matrix default when not given.
    pub fn select_kernels(&self, list: Option<&str>) -> Result<Vec<&KernelEntry>> {
        let ids: Vec<String> = match list.map(str::trim) {
            None => self.matrix.kernels.clone(),
            Some("all") => self.kernel_ids(),
            Some(list) => list.split(',').map(|id| id.trim().to_string()).filter(|id| !id.is_empty()).collect(),
        };
        let mut kernels: Vec<&KernelEntry> = Vec::new();
        for id in &ids {
            let kernel = self.kernel(id)?;
            if !kernels.iter().any(|known| known.id == kernel.id) {
                kernels.push(kernel);
            }
        }
        if kernels.is_empty() {
            return Err(error::user("no kernel given"));
        }
        Ok(kernels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_debug_boots_get_the_machines_iommu() {
        for arch in crate::arch::ARCHES {
            assert!(Profile::Release.qemu_args(arch).is_empty(), "{}", arch.name);
        }
        let debug = |name: &str| Profile::Debug.qemu_args(Arch::find(name).unwrap()).join(" ");
        assert_eq!(debug("x86_64"), "-device intel-iommu,intremap=off");
        assert_eq!(debug("arm64"), "-machine iommu=smmuv3");
        assert_eq!(debug("um"), "", "UML has no QEMU");
    }

    const SAMPLE: &str = r#"
[matrix]
kernels = ["7.2"]
arches = ["x86_64"]
drivers = ["fifo"]

[[kernel]]
id = "7.2"
version = "7.2.13"
toolchain = "sid"
source = { debian = { package = "linux-source-7.2", version = "7.2.13-1", sha256 = "ab" } }

[[kernel]]
id = "local"
version = "7.2.0"
toolchain = "sid"
source = { path = "/src/linux" }
"#;

    #[test]
    fn parses_sources_and_selects_kernels() {
        let project: Project = parse_toml(Path::new("kforge.toml"), SAMPLE).unwrap();
        assert_eq!(project.kernels[1].source, KernelSource::Path("/src/linux".into()));
        let ids: Vec<_> =
            project.select_kernels(Some("all")).unwrap().iter().map(|kernel| kernel.id.as_str()).collect();
        assert_eq!(ids, ["7.2", "local"]);
        assert_eq!(project.test_profile(None), Profile::Debug);
        assert_eq!(project.test_profile(Some(Profile::Release)), Profile::Release);
        let release: Project = parse_toml(
            Path::new("kforge.toml"),
            &SAMPLE.replace("drivers = [\"fifo\"]", "drivers = [\"fifo\"]\nprofile = \"release\""),
        )
        .unwrap();
        assert_eq!(release.test_profile(None), Profile::Release);
        assert_eq!(release.test_profile(Some(Profile::Debug)), Profile::Debug);
        assert_eq!("release".parse::<Profile>().unwrap(), Profile::Release);
        let message = "fast".parse::<Profile>().unwrap_err().to_string();
        assert!(message.contains("unknown profile `fast`") && message.contains("debug, release"), "{message}");
        let default: Vec<_> = project.select_kernels(None).unwrap().iter().map(|kernel| kernel.id.as_str()).collect();
        assert_eq!(default, ["7.2"]);
        let message = format!("{}", project.select_kernels(Some("6.1")).unwrap_err());
        assert!(message.contains("unknown kernel `6.1`") && message.contains("7.2, local"), "{message}");
    }

    #[test]
    fn parses_a_debian_image_source() {
        let text = format!(
            "{SAMPLE}{}",
            r#"
[[kernel]]
id = "debian-7.2"
version = "7.2.13"
toolchain = "sid-gcc"

[kernel.source.debian-image.source]
package = "linux-source-7.2"
version = "7.2.13-1"
sha256 = "aa"

[kernel.source.debian-image.arches.x86_64]
image = { package = "linux-binary-7.2.13+deb14-amd64", version = "7.2.13-1", sha256 = "bb" }
headers = { package = "linux-headers-7.2.13+deb14-amd64", version = "7.2.13-1", sha256 = "cc" }
"#
        );
        let project: Project = parse_toml(Path::new("kforge.toml"), &text).unwrap();
        let KernelSource::DebianImage(image) = &project.kernel("debian-7.2").unwrap().source else {
            panic!("not a debian-image source: {:?}", project.kernels[2].source);
        };
        assert_eq!(image.source.package, "linux-source-7.2");
        assert_eq!(image.arches["x86_64"].image.package, "linux-binary-7.2.13+deb14-amd64");
        assert_eq!(image.arches["x86_64"].headers.sha256, "cc");
        let aliased = text.replace("arches.x86_64]", "arches.amd64]");
        let mut aliased: Project = parse_toml(Path::new("kforge.toml"), &aliased).unwrap();
        aliased.path = "kforge.toml".into();
        let message = aliased.validate().unwrap_err().to_string();
        assert!(message.contains("lists packages for `amd64`; write the arch as `x86_64`"), "{message}");
        let missing = text.replace("headers = {", "header = {");
        let message = parse_toml::<Project>(Path::new("kforge.toml"), &missing).unwrap_err().to_string();
        assert!(message.contains("header"), "{message}");
    }

    #[test]
    fn malformed_toml_names_file_line_and_key() {
        let broken = SAMPLE.replace("toolchain = \"sid\"\nsource = { path", "toolchian = \"sid\"\nsource = { path");
        let err = parse_toml::<Project>(Path::new("kforge.toml"), &broken).unwrap_err();
        let message = format!("{err}");
        assert!(message.starts_with("malformed kforge.toml:16:"), "{message}");
        assert!(message.contains("toolchian"), "{message}");
    }
}
