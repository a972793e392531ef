//! Using an SDK: unpacking it into the cache with every file checked against its manifest, and refusing a toolchain or a driver it does not fit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{FORMAT, MANIFEST, Manifest, ToolchainFacts, read_text};
use crate::arch::Arch;
use crate::driver::Driver;
use crate::kernel::config;
use crate::toolchain::{Toolchain, ToolchainSpec};
use crate::{cache, error, paths, progress};

/// An SDK unpacked (and verified) in the cache.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The top directory: `sdk.json`, `src/`, `build/`.
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Unpacked {
    pub fn source_dir(&self) -> PathBuf {
        self.dir.join("src")
    }

    pub fn build_dir(&self) -> PathBuf {
        self.dir.join("build")
    }

    pub fn arch(&self) -> Result<&'static Arch> {
        Arch::find(&self.manifest.arch)
    }
}

/// Unpacks an SDK archive into `<cache>/sdks/<name>-<hash>` (once per archive
/// content), checking every file against its manifest; a mismatch publishes nothing.
pub fn unpack(archive: &Path) -> Result<Unpacked> {
    if !archive.is_file() {
        return Err(error::user_hint(
            format!("SDK archive {} does not exist", archive.display()),
            "export one with: cargo xtask sdk --kernel ID --arch ARCH",
        ));
    }
    let sha256 = cache::sha256_file(archive)?;
    let sums = cache::sibling(archive, "sha256");
    if let Ok(text) = fs_err::read_to_string(&sums) {
        let recorded = text.split_whitespace().next().unwrap_or_default();
        if recorded != sha256 {
            return Err(error::user(format!(
                "SDK archive {} is corrupt: its sha256 is {sha256}, {} says {recorded}",
                archive.display(),
                sums.display()
            )));
        }
    }
    let name = archive.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".tar.gz").unwrap_or(&name);
    let entry = paths::cache_dir()?.join("sdks").join(format!("{stem}-{}", &sha256[..16]));
    let unpacked = cache::ensure_dir(&entry, |work| {
        extract_verified(archive, work).with_context(|| format!("failed to unpack SDK {}", archive.display()))
    })?;
    if unpacked {
        progress::status(
            "Unpacked",
            format!("SDK {} (every file verified) into {}", archive.display(), entry.display()),
        );
    }
    let manifest = read_manifest(&entry.join(MANIFEST))?;
    Ok(Unpacked { dir: entry, manifest })
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = read_text(path)?;
    let format: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if format["format"] != FORMAT {
        return Err(error::user_hint(
            format!("{} has SDK format {}, this kforge reads format {FORMAT}", path.display(), format["format"]),
            "export the SDK again with this kforge",
        ));
    }
    serde_json::from_str(&text).with_context(|| format!("{} is not a kforge SDK manifest", path.display()))
}

/// Extracts every entry below the archive's one top directory into `dest`,
/// then compares each file's sha256 with the manifest.
fn extract_verified(archive: &Path, dest: &Path) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let file = fs_err::File::open(archive)?;
    let mut reader = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut top: Option<String> = None;
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for entry in reader.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let parts: Vec<&str> = raw.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
        if raw.starts_with('/') || parts.contains(&"..") || parts.is_empty() {
            anyhow::bail!("unsafe path in the archive: {raw}");
        }
        match &top {
            None => top = Some(parts[0].to_string()),
            Some(known) if known != parts[0] => anyhow::bail!("{raw} is outside the archive's top directory {known}/"),
            Some(_) => {}
        }
        let relative = parts[1..].join("/");
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs_err::create_dir_all(dest.join(&relative))?;
            continue;
        }
        if !kind.is_file() || relative.is_empty() {
            anyhow::bail!("{raw} is not a regular file or directory (an SDK holds only those)");
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).with_context(|| format!("failed to read {raw}"))?;
        let target = dest.join(&relative);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&target, &data)?;
        let executable = entry.header().mode()? & 0o111 != 0;
        fs_err::set_permissions(&target, std::fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))?;
        found.insert(relative, cache::sha256_hex(&data));
    }
    if found.remove(MANIFEST).is_none() {
        anyhow::bail!("the archive has no {MANIFEST}; is it a kforge SDK?");
    }
    let manifest = read_manifest(&dest.join(MANIFEST))?;
    let problems = verify_files(&manifest.files, &found);
    if !problems.is_empty() {
        return Err(error::user_hint(
            format!("the SDK's files do not match its manifest:\n  {}", problems.join("\n  ")),
            "the archive is damaged or was changed: export it again with `cargo xtask sdk`",
        ));
    }
    Ok(())
}

/// Differences between the manifest's sha256s and the files found, one line each.
pub fn verify_files(manifest: &BTreeMap<String, String>, found: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, sha256) in manifest {
        match found.get(path) {
            None => problems.push(format!("{path}: missing")),
            Some(actual) if actual != sha256 => {
                problems.push(format!("{path}: sha256 {actual}, the manifest says {sha256}"))
            }
            Some(_) => {}
        }
    }
    for path in found.keys().filter(|path| !manifest.contains_key(*path)) {
        problems.push(format!("{path}: not in the manifest"));
    }
    problems
}

/// Where the recorded toolchain and `spec` (the toolchain about to build) differ, one line each.
pub fn spec_mismatches(recorded: &ToolchainFacts, spec: &ToolchainSpec) -> Vec<String> {
    let pairs = [
        ("rustc", &recorded.rustc, &spec.rustc.version),
        ("rust-src", &recorded.rust_src, &spec.rust_src.version),
        ("bindgen", &recorded.bindgen, &spec.bindgen.version),
        ("LLVM", &recorded.llvm, &spec.llvm.version),
    ];
    pairs
        .iter()
        .filter(|(_, sdk, pinned)| sdk != pinned)
        .map(|(tool, sdk, pinned)| {
            format!("{tool}: the SDK's kernel was built with {sdk}, toolchain {} pins {pinned}", spec.id)
        })
        .collect()
}

/// Where the installed compilers' `--version` lines differ from what the kernel recorded.
pub fn installed_mismatches(recorded: &ToolchainFacts, rustc_text: &str, cc_text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if rustc_text != recorded.rustc_version_text {
        problems.push(format!(
            "rustc: the kernel was built by `{}`, the toolchain has `{rustc_text}`",
            recorded.rustc_version_text
        ));
    }
    if cc_text != recorded.cc_version_text {
        problems.push(format!(
            "clang: the kernel was built by `{}`, the toolchain has `{cc_text}`",
            recorded.cc_version_text
        ));
    }
    problems
}

/// Refuses a toolchain whose pinned versions differ from the SDK's, before anything is installed.
pub fn check_spec(sdk: &Unpacked, toolchain: &Toolchain) -> Result<()> {
    let recorded = &sdk.manifest.toolchain;
    let mut problems = spec_mismatches(recorded, &toolchain.spec);
    let host = crate::arch::Arch::host()?.debian_arch;
    if sdk.manifest.host_arch != host {
        problems.push(format!(
            "host: the SDK's build programs (fixdep, modpost) are for {}, this machine is {host}",
            sdk.manifest.host_arch
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(error::user_hint(
        format!(
            "toolchain {} cannot build modules for the SDK of kernel {} ({}):\n  {}",
            toolchain.id(),
            sdk.manifest.kernel.id,
            sdk.manifest.arch,
            problems.join("\n  ")
        ),
        format!(
            "a module must be built by the compiler that built its kernel: use toolchain {} (the SDK's own), or export an SDK from a kernel built with {}",
            recorded.id,
            toolchain.id()
        ),
    ))
}

/// Refuses an installed toolchain whose rustc or clang is not the exact one that built the kernel.
pub fn check_installed(sdk: &Unpacked, toolchain: &Toolchain) -> Result<()> {
    let sandbox = toolchain.sandbox()?;
    let version = |argv: &[&str]| -> Result<String> {
        let output = sandbox.jail().command(argv)?.run()?;
        // Kconfig drops `#` from these texts (scripts/Kconfig.include).
        Ok(output.lines().next().unwrap_or_default().replace('#', "").trim().to_string())
    };
    let problems = installed_mismatches(
        &sdk.manifest.toolchain,
        &version(&["rustc", "--version"])?,
        &version(&["clang", "--version"])?,
    );
    if problems.is_empty() {
        return Ok(());
    }
    Err(error::user_hint(
        format!(
            "the installed toolchain {} does not match the SDK's kernel:\n  {}",
            toolchain.id(),
            problems.join("\n  ")
        ),
        format!(
            "reinstall it (cargo xtask toolchain install --force {}) or export the SDK again from a kernel it built",
            toolchain.id()
        ),
    ))
}

/// The drivers an SDK can build: each must have a module of its own and its
/// config needs met by the SDK's kernel; those that cannot run on its arch or
/// kernel version are skipped with the reason.
pub fn buildable(sdk: &Unpacked, drivers: Vec<Driver>) -> Result<Vec<Driver>> {
    let arch = sdk.arch()?;
    let dot_config = read_text(&sdk.build_dir().join(".config"))?;
    let mut active = Vec::new();
    for driver in drivers {
        if driver.meta.module.is_none() {
            return Err(error::user(format!(
                "driver {} has no module of its own (its modules come from the kernel build), so an SDK cannot build it",
                driver.name
            )));
        }
        if !driver.meta.in_tree_modules.is_empty() {
            progress::warn(format!(
                "driver {} also loads in-tree modules ({}); they come from a kernel build, not from the SDK",
                driver.name,
                driver.meta.in_tree_modules.join(", ")
            ));
        }
        if let Some(reason) = driver.skip_reason(arch, &sdk.manifest.kernel.version) {
            progress::status("Skipping", format!("{} on {}: {reason}", driver.name, arch.name));
            continue;
        }
        let missing = missing_options(&driver, &dot_config);
        if !missing.is_empty() {
            return Err(error::user(format!(
                "driver {} needs config options the SDK's kernel {} ({}) does not have:\n  {}",
                driver.name,
                sdk.manifest.kernel.id,
                arch.name,
                missing.join("\n  ")
            )));
        }
        active.push(driver);
    }
    Ok(active)
}

/// The config options a driver needs (`kconfig`) that the SDK's kernel does not have.
pub fn missing_options(driver: &Driver, dot_config: &str) -> Vec<String> {
    let fragment =
        config::fragment_from_lines("driver.config", &format!("driver {}", driver.name), &driver.meta.kconfig);
    config::dropped(&config::requests(&[fragment]), dot_config)
        .iter()
        .map(|dropped| format!("{}={} (the kernel has {})", dropped.name, dropped.wanted, dropped.got))
        .collect()
}
