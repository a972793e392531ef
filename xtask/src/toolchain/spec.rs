//! `toolchains/<id>.toml`: one toolchain pinned exactly (rustc, rust-src, bindgen, LLVM, QEMU, busybox) and which provider supplies it.

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

/// GCC, for kernels built with it (Debian's own kernels): the upstream
/// version, the packages, and the compiler commands (native and cross) it provides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GccPin {
    pub version: String,
    pub packages: Vec<String>,
    /// Compiler commands in the root (`x86_64-linux-gnu-gcc-16`, `aarch64-linux-gnu-gcc-16`).
    pub commands: Vec<String>,
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
    /// rustc and rust-src from rustup, bindgen built with `cargo install`
    /// into the toolchain's own directory, clang/lld/QEMU from the host.
    Rustup,
    /// The host's own tools (a distro packager's compilers): nothing is
    /// installed, every pin is only verified.
    Host,
}

impl Provider {
    /// The name used in toolchain files (`provider = "rustup"`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Debian => "debian",
            Provider::Rustup => "rustup",
            Provider::Host => "host",
        }
    }
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

/// rustup-specific settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RustupSettings {
    /// What rustup calls the toolchain: a version (`1.97.1`) or a channel
    /// (`stable`, `nightly-2026-05-19`). `[rustc] version` still pins the
    /// exact compiler it must be.
    pub toolchain: String,
}

/// A whole `toolchains/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolchainSpec {
    pub description: String,
    pub provider: Provider,
    /// Required for (and only allowed with) `provider = "debian"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<DebianSettings>,
    /// Required for (and only allowed with) `provider = "rustup"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustup: Option<RustupSettings>,
    pub rustc: ToolPin,
    pub rust_src: ToolPin,
    pub bindgen: ToolPin,
    pub llvm: LlvmPin,
    pub qemu: ToolPin,
    /// busybox-static, fetched for every target arch's Debian architecture.
    pub busybox: ToolPin,
    /// GCC (only toolchains for GCC-built kernels pin it; absent, the
    /// canonical text and cache keys of other toolchains are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcc: Option<GccPin>,
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
    /// The `[debian]` table, or an error saying this provider has none.
    pub fn debian(&self) -> Result<&DebianSettings> {
        self.debian.as_ref().ok_or_else(|| {
            error::user(format!(
                "toolchain {} uses provider {}, which has no Debian root or packages ({})",
                self.id,
                self.provider.name(),
                self.path.display()
            ))
        })
    }

    /// Every package to install into the root, pinned ones first (none for
    /// the rustup and host providers, which have no root).
    pub fn root_packages(&self) -> Vec<String> {
        let mut packages = Vec::new();
        for pin in [&self.rustc, &self.rust_src, &self.bindgen, &self.qemu] {
            packages.extend(pin.packages.iter().cloned());
        }
        packages.extend(self.llvm.packages.iter().cloned());
        if let Some(gcc) = &self.gcc {
            packages.extend(gcc.packages.iter().cloned());
        }
        if let Some(debian) = &self.debian {
            packages.extend(debian.build_packages.iter().cloned());
        }
        if let Some(extras) = &self.extras {
            packages.extend(extras.packages.iter().cloned());
        }
        packages
    }

    /// What of the spec can change a kernel build's output: the compilers,
    /// rust-src, bindgen, LLVM, the build helpers and where they come from.
    /// QEMU, busybox and editor tools are left out, so pinning a newer QEMU
    /// does not rebuild every kernel. (For the host and rustup providers the
    /// host's make, flex, bison... are not pinned, so not part of it.)
    pub fn build_identity(&self) -> String {
        let mut identity = match (&self.debian, &self.rustup) {
            (Some(debian), _) => {
                format!(
                    "provider={:?}\nsuite={}\nextra-suites={:?}\n",
                    self.provider, debian.suite, debian.extra_suites
                )
            }
            (None, Some(rustup)) => format!("provider={:?}\nrustup-toolchain={}\n", self.provider, rustup.toolchain),
            (None, None) => format!("provider={:?}\n", self.provider),
        };
        for (name, pin) in [("rustc", &self.rustc), ("rust-src", &self.rust_src), ("bindgen", &self.bindgen)] {
            identity.push_str(&format!("{name}={} {:?}\n", pin.version, pin.packages));
        }
        identity.push_str(&format!(
            "llvm={} {:?} {} {}\n",
            self.llvm.version, self.llvm.packages, self.llvm.bin, self.llvm.lib
        ));
        if let Some(gcc) = &self.gcc {
            identity.push_str(&format!("gcc={} {:?} {:?}\n", gcc.version, gcc.packages, gcc.commands));
        }
        if let Some(debian) = &self.debian {
            identity.push_str(&format!("build-packages={:?}\n", debian.build_packages));
        }
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

/// Each provider has exactly its own table; only the Debian provider installs packages.
fn check_provider_tables(spec: &ToolchainSpec) -> Result<()> {
    let file = spec.path.display();
    let provider = spec.provider.name();
    match spec.provider {
        Provider::Debian if spec.debian.is_none() => {
            return Err(error::user(format!(
                "{file}: provider = \"debian\" needs a [debian] table (suite, build-packages)"
            )));
        }
        Provider::Rustup if spec.rustup.is_none() => {
            return Err(error::user(format!(
                "{file}: provider = \"rustup\" needs a [rustup] table (toolchain = \"{}\")",
                spec.rustc.version
            )));
        }
        _ => {}
    }
    if spec.provider != Provider::Debian && spec.debian.is_some() {
        return Err(error::user(format!("{file}: [debian] only applies to provider = \"debian\", not {provider}")));
    }
    if spec.provider != Provider::Rustup && spec.rustup.is_some() {
        return Err(error::user(format!("{file}: [rustup] only applies to provider = \"rustup\", not {provider}")));
    }
    if spec.provider != Provider::Debian {
        let pins = [
            ("rustc", &spec.rustc.packages),
            ("rust-src", &spec.rust_src.packages),
            ("bindgen", &spec.bindgen.packages),
            ("llvm", &spec.llvm.packages),
            ("qemu", &spec.qemu.packages),
            ("busybox", &spec.busybox.packages),
        ];
        for (table, packages) in pins {
            if !packages.is_empty() {
                return Err(error::user(format!(
                    "{file}: [{table}] packages only apply to provider = \"debian\"; provider {provider} installs no packages (pin the version only)"
                )));
            }
        }
        if spec.extras.is_some() {
            return Err(error::user(format!(
                "{file}: [extras] only applies to provider = \"debian\"; provider {provider} installs no packages"
            )));
        }
    }
    Ok(())
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
            let id = stem.to_string_lossy().into_owned();
            crate::names::check("toolchain", &id, &path)?;
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Loads `toolchains/<id>.toml`, or says which ids exist.
pub fn load(repo: &Path, id: &str) -> Result<ToolchainSpec> {
    if !crate::names::is_plain(id) {
        return Err(error::unknown("toolchain", id, &list_ids(repo)?));
    }
    let path = repo.join("toolchains").join(format!("{id}.toml"));
    if !path.is_file() || id == RULES_STEM {
        return Err(error::unknown("toolchain", id, &list_ids(repo)?));
    }
    let mut spec: ToolchainSpec = project::load_toml(&path)?;
    spec.id = id.to_string();
    spec.path = path;
    check_provider_tables(&spec)?;
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
            let Some(debian) = &spec.debian else {
                assert!(spec.root_packages().is_empty(), "{id}: provider {} has packages", spec.provider.name());
                continue;
            };
            for package in spec.root_packages().iter().filter(|package| !debian.build_packages.contains(package)) {
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

    /// Loads `text` as `toolchains/t.toml` of a scratch repository.
    fn load_text(name: &str, text: &str) -> Result<ToolchainSpec> {
        let dir = std::env::temp_dir().join(format!("kforge-spec-{name}-{}", std::process::id()));
        fs_err::create_dir_all(dir.join("toolchains")).unwrap();
        fs_err::write(dir.join("toolchains/t.toml"), text).unwrap();
        let loaded = load(&dir, "t");
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    const PINS: &str = "[rustc]\nversion = \"1.97.1\"\n[rust-src]\nversion = \"1.97.1\"\n[bindgen]\nversion = \"0.72.1\"\n\
        [llvm]\nversion = \"22.1.8\"\nbin = \"/usr/lib/llvm-22/bin\"\nlib = \"/usr/lib/llvm-22/lib\"\n\
        [qemu]\nversion = \"11.1.3\"\n[busybox]\nversion = \"1.38.0\"\n";

    #[test]
    fn each_provider_needs_its_own_table_and_only_debian_has_packages() {
        let rustup = load_text(
            "rustup",
            &format!("description = \"r\"\nprovider = \"rustup\"\n[rustup]\ntoolchain = \"stable\"\n{PINS}"),
        )
        .unwrap();
        assert_eq!((rustup.provider, rustup.rustup.unwrap().toolchain.as_str()), (Provider::Rustup, "stable"));
        assert!(rustup.debian.is_none());

        let cases = [
            ("provider = \"debian\"\n", "provider = \"debian\" needs a [debian] table (suite, build-packages)"),
            ("provider = \"rustup\"\n", "provider = \"rustup\" needs a [rustup] table (toolchain = \"1.97.1\")"),
            (
                "provider = \"host\"\n[debian]\nsuite = \"sid\"\nbuild-packages = []\n",
                "[debian] only applies to provider = \"debian\", not host",
            ),
            (
                "provider = \"host\"\n[rustup]\ntoolchain = \"1.97.1\"\n",
                "[rustup] only applies to provider = \"rustup\", not host",
            ),
        ];
        for (provider, expected) in cases {
            let message = load_text("bad", &format!("description = \"b\"\n{provider}{PINS}")).unwrap_err().to_string();
            assert!(message.ends_with(expected), "{message}");
        }
        let with_package =
            PINS.replace("version = \"0.72.1\"", "version = \"0.72.1\"\npackages = [\"bindgen=0.72.1-1+b3\"]");
        let message = load_text("pkg", &format!("description = \"b\"\nprovider = \"host\"\n{with_package}"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("[bindgen] packages only apply to provider = \"debian\""), "{message}");
    }

    #[test]
    fn debian_canonical_text_has_no_trace_of_the_other_providers() {
        // The root's cache key hashes this text: the new optional tables must not appear in it.
        let canonical = load(&repo(), "sid").unwrap().canonical();
        assert!(
            canonical.starts_with("description = ") && canonical.contains("\n[debian]\nsuite = \"sid\"\n"),
            "{canonical}"
        );
        assert!(!canonical.contains("rustup"), "{canonical}");
        assert!(load(&repo(), "host").unwrap().root_packages().is_empty());
    }

    #[test]
    fn unpinned_package_is_an_error() {
        assert!(split_pin("rustc").is_err());
        assert_eq!(split_pin("clang-22=1:22.1.8-3").unwrap(), ("clang-22".to_string(), "1:22.1.8-3".to_string()));
    }
}
