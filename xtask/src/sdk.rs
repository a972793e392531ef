//! Kernel Rust SDKs: the files an out-of-tree Rust module build reads from a built kernel, packed with a verified manifest, and unpacked into the cache.
//!
//! An SDK is the kernel's own extmod set (`scripts/package/install-extmod-build`,
//! which the kernel's headers packages use) plus what those packages lack for
//! Rust: `rust/*.rmeta`, the proc-macro libraries, the target spec and the
//! rustc cfg (in `include/generated`). It keeps the kernel's split between
//! source and build directory (`src/`, `build/`), so a module built against it
//! inside the sandbox (`src/` at `/src`, `build/` at `/build`) sees exactly the
//! paths it sees against the full tree. `build/Makefile` finds `../src` from
//! wherever it is, so `make -C <sdk>/build M=$PWD` also works outside kforge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::dist::Entry;
use crate::driver::Driver;
use crate::kernel::config;
use crate::toolchain::{Toolchain, ToolchainSpec};
use crate::{cache, dist, error, paths, progress};

/// The manifest's name at the top of an SDK.
pub const MANIFEST: &str = "sdk.json";
/// Bumped when the layout or the manifest changes incompatibly.
pub const FORMAT: u32 = 1;

/// `sdk.json`: what the SDK is, what made it, and the sha256 of every other file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kforge_version: String,
    pub kernel: KernelFacts,
    /// kforge's arch name (`x86_64`, `arm64`...).
    pub arch: String,
    /// Debian architecture of the host programs in `build/` (fixdep, modpost,
    /// objtool): the machines that can use this SDK.
    pub host_arch: String,
    /// rustc's `--target`: a file in the SDK (`build/scripts/target.json`) or a target built into rustc.
    pub rust_target: String,
    pub toolchain: ToolchainFacts,
    /// How to build a module against the unpacked SDK (run in its top directory).
    pub make: Vec<String>,
    pub source_date_epoch: u64,
    /// Path (relative to the SDK's top directory) -> sha256, for every file but this manifest.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFacts {
    /// The kernel's id in kforge.toml.
    pub id: String,
    pub version: String,
    /// `include/config/kernel.release`, which modules' vermagic carries.
    pub release: String,
    /// What the source is (`debian:pkg=version:sha256`, `tarball:sha256`, `path:...`).
    pub source: String,
    /// The kernel build's cache key.
    pub build_key: String,
}

/// The toolchain that built the kernel: modules must be built by the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolchainFacts {
    /// `toolchains/<id>.toml`.
    pub id: String,
    pub build_key: String,
    /// Pinned versions from the spec.
    pub rustc: String,
    pub rust_src: String,
    pub bindgen: String,
    pub llvm: String,
    /// What the kernel's Kconfig recorded (`CONFIG_RUSTC_VERSION_TEXT`...).
    pub rustc_version_text: String,
    pub bindgen_version_text: String,
    pub cc_version_text: String,
}

/// What `export` needs to know about the kernel it packs.
pub struct ExportInput<'a> {
    pub kernel_id: &'a str,
    pub kernel_version: &'a str,
    pub source_identity: &'a str,
    pub build_key: &'a str,
    pub arch: &'a Arch,
    pub toolchain: &'a Toolchain,
    /// The kernel source tree and its build directory.
    pub source_dir: &'a Path,
    pub build_dir: &'a Path,
}

/// What `export` wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub archive: PathBuf,
    pub files: usize,
    pub unpacked_bytes: u64,
    pub archive_bytes: u64,
}

/// One selected file: its path in the SDK and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub path: String,
    pub host: PathBuf,
}

/// The default archive name for a kernel and arch.
pub fn archive_name(kernel_id: &str, arch: &Arch) -> String {
    format!("{}.tar.gz", prefix(kernel_id, arch))
}

fn prefix(kernel_id: &str, arch: &Arch) -> String {
    format!("kforge-sdk-{kernel_id}-{}", arch.name)
}

/// Picks the SDK's files from a source tree and its build directory, like the
/// kernel's `scripts/package/install-extmod-build` does for headers packages,
/// plus the Rust metadata and `.config`. Sorted by SDK path.
pub fn select(source: &Path, build: &Path, srcarch: &str) -> Result<Vec<Selected>> {
    let auto_conf = read_text(&build.join("include/config/auto.conf"))?;
    let enabled = |option: &str| auto_conf.lines().any(|line| line == format!("{option}=y"));
    let mut chosen: Vec<Selected> = Vec::new();
    let mut add = |side: &str, root: &Path, relative: Vec<String>| {
        for path in relative {
            chosen.push(Selected { path: format!("{side}/{path}"), host: root.join(&path) });
        }
    };
    let none = |_: &str| false;
    let scripts_pruned =
        |name: &str| ["atomic", "dtc", "kconfig", "package", "unifdef", "mk_elfconfig"].contains(&name);
    let arch_dir = format!("arch/{srcarch}");

    // The source side: the top Makefile, the arch's Makefiles, includes and
    // platform lists, include/ and the build scripts.
    let mut files = vec!["Makefile".to_string()];
    for name in sorted_names(&source.join(&arch_dir))? {
        if name.starts_with("Makefile") && source.join(&arch_dir).join(&name).is_file() {
            files.push(format!("{arch_dir}/{name}"));
        }
    }
    for dir in dirs_named(source, &arch_dir, "include", "generated")? {
        walk(source, &dir, &none, &mut files)?;
    }
    let mut platforms = Vec::new();
    walk(source, &arch_dir, &none, &mut platforms)?;
    files.extend(platforms.into_iter().filter(|path| {
        let name = path.rsplit('/').next().unwrap_or(path);
        name == "Kbuild.platforms" || name == "Platform"
    }));
    walk(source, "include", &|name| name == "config" || name == "generated", &mut files)?;
    walk(source, "scripts", &scripts_pruned, &mut files)?;
    add("src", source, files);

    // The build side: generated headers, config, host programs, symbols, and
    // the Rust crates' metadata and proc-macro libraries.
    let mut files = Vec::new();
    if enabled("CONFIG_OBJTOOL") {
        files.push("tools/objtool/objtool".to_string());
    }
    if enabled("CONFIG_DEBUG_INFO_BTF_MODULES") {
        files.push("tools/bpf/resolve_btfids/resolve_btfids".to_string());
    }
    files.extend(
        ["Module.symvers", ".config", "include/config/auto.conf", "include/config/kernel.release"].map(String::from),
    );
    walk(build, &format!("{arch_dir}/include/generated"), &none, &mut files)?;
    walk(build, "include/generated", &none, &mut files)?;
    walk(build, "scripts", &scripts_pruned, &mut files)?;
    if enabled("CONFIG_GCC_PLUGINS") {
        let mut plugins = Vec::new();
        walk(build, "scripts/gcc-plugins", &none, &mut plugins)?;
        files.extend(plugins.into_iter().filter(|path| path.ends_with(".so")));
    }
    for name in sorted_names(&build.join("rust"))? {
        if (name.ends_with(".rmeta") || name.ends_with(".so")) && build.join("rust").join(&name).is_file() {
            files.push(format!("rust/{name}"));
        }
    }
    if enabled("CONFIG_RUST_INLINE_HELPERS") {
        files.push("rust/helpers/helpers_module.bc".to_string());
    }
    add("build", build, files);

    chosen.retain(|file| {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        !(name.ends_with(".o") || (name.starts_with('.') && name.ends_with(".cmd")))
    });
    chosen.sort_by(|left, right| left.path.cmp(&right.path));
    chosen.dedup_by(|left, right| left.path == right.path);
    for file in &chosen {
        if !file.host.is_file() {
            return Err(error::user_hint(
                format!("the kernel build has no {} (needed by an SDK)", file.host.display()),
                "rebuild the kernel: cargo xtask kernel build --kernel ID --arch ARCH",
            ));
        }
    }
    Ok(chosen)
}

/// rustc's `--target` in the kernel build (from its `rust/.kernel.o.cmd`), as
/// an SDK path when it is a file of the build (`build/scripts/target.json`).
pub fn rust_target(build: &Path) -> Result<String> {
    let cmd_file = build.join("rust/.kernel.o.cmd");
    let text = read_text(&cmd_file)?;
    let target = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("--target="))
        .ok_or_else(|| anyhow::anyhow!("{} has no --target=", cmd_file.display()))?;
    let relative = target.strip_prefix("./").or_else(|| target.strip_prefix("/build/"));
    Ok(match relative {
        Some(path) => format!("build/{path}"),
        None => target.to_string(),
    })
}

/// Packs the SDK of a built kernel into `archive` (and `<archive>.sha256`).
pub fn export(input: &ExportInput<'_>, archive: &Path) -> Result<Exported> {
    let selected = select(input.source_dir, input.build_dir, input.arch.srcarch)?;
    let rust_target = rust_target(input.build_dir)?;
    if rust_target.starts_with("build/") && !selected.iter().any(|file| file.path == rust_target) {
        return Err(anyhow::anyhow!("the kernel's Rust target spec {rust_target} is not among the SDK's files"));
    }
    let symbols = config::symbols(&read_text(&input.build_dir.join(".config"))?);
    let text = |option: &str| {
        config::string(&symbols, option).ok_or_else(|| {
            error::user(format!("{} has no {option}; is CONFIG_RUST set?", input.build_dir.join(".config").display()))
        })
    };
    let spec = &input.toolchain.spec;
    let mut entries = Vec::new();
    for file in &selected {
        // Never follows a link out of the tree it came from (safefs).
        let root = if file.path.starts_with("src/") { input.source_dir } else { input.build_dir };
        let read = crate::safefs::read_within(&file.host, root)
            .with_context(|| format!("cannot put {} into the SDK", file.host.display()))?;
        let mode = if read.mode & 0o111 != 0 { 0o755 } else { 0o644 };
        entries.push(Entry { path: file.path.clone(), mode, data: read.data });
    }
    entries.push(Entry { path: "build/Makefile".to_string(), mode: 0o644, data: BUILD_MAKEFILE.as_bytes().to_vec() });
    let manifest = Manifest {
        format: FORMAT,
        kforge_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel: KernelFacts {
            id: input.kernel_id.to_string(),
            version: input.kernel_version.to_string(),
            release: read_text(&input.build_dir.join("include/config/kernel.release"))?.trim().to_string(),
            source: input.source_identity.to_string(),
            build_key: input.build_key.to_string(),
        },
        arch: input.arch.name.to_string(),
        host_arch: crate::arch::Arch::host()?.debian_arch.to_string(),
        rust_target,
        toolchain: ToolchainFacts {
            id: input.toolchain.id().to_string(),
            build_key: input.toolchain.build_key.clone(),
            rustc: spec.rustc.version.clone(),
            rust_src: spec.rust_src.version.clone(),
            bindgen: spec.bindgen.version.clone(),
            llvm: spec.llvm.version.clone(),
            rustc_version_text: text("CONFIG_RUSTC_VERSION_TEXT")?,
            bindgen_version_text: text("CONFIG_BINDGEN_VERSION_TEXT")?,
            cc_version_text: text("CONFIG_CC_VERSION_TEXT")?,
        },
        make: make_hint(input.arch),
        source_date_epoch: crate::image::source_date_epoch(),
        files: entries.iter().map(|entry| (entry.path.clone(), cache::sha256_hex(&entry.data))).collect(),
    };
    let unpacked_bytes = entries.iter().map(|entry| entry.data.len() as u64).sum();
    let files = entries.len();
    entries.push(Entry { path: MANIFEST.to_string(), mode: 0o644, data: manifest_json(&manifest)?.into_bytes() });
    let prefix = prefix(input.kernel_id, input.arch);
    // Most of an SDK is Rust metadata, on which gzip's best level saves under 1%
    // of the size for three times the time of its default level.
    dist::write_tar_gz(archive, &prefix, &entries, manifest.source_date_epoch, flate2::Compression::default())?;
    let archive_bytes = fs_err::metadata(archive)?.len();
    Ok(Exported { archive: archive.to_path_buf(), files, unpacked_bytes, archive_bytes })
}

/// `build/Makefile`: the kernel's output-directory Makefile, but finding the
/// build directory and `../src` from its own location instead of fixed paths.
const BUILD_MAKEFILE: &str = "\
# kforge kernel Rust SDK: the kernel build directory of an external module
# build; the kernel sources it needs are in ../src.
#   make -C <sdk>/build ARCH=<arch> LLVM=1 M=<module dir> modules
kforge-sdk-build := $(realpath $(dir $(lastword $(MAKEFILE_LIST))))
export KBUILD_OUTPUT = $(kforge-sdk-build)
include $(kforge-sdk-build)/../src/Makefile
";

/// The make command line a user runs in the SDK's top directory.
fn make_hint(arch: &Arch) -> Vec<String> {
    let mut argv = crate::kernel::make::make_command(arch, "build", "build");
    argv.retain(|word| !word.starts_with("O="));
    argv.extend(["M=<module directory>".to_string(), "modules".to_string()]);
    argv
}

fn manifest_json(manifest: &Manifest) -> Result<String> {
    Ok(serde_json::to_string_pretty(manifest)? + "\n")
}

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

fn read_text(path: &Path) -> Result<String> {
    fs_err::read_to_string(path).map_err(anyhow::Error::from)
}

#[cfg(test)]
fn is_executable(path: &Path) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    Ok(fs_err::metadata(path)?.permissions().mode() & 0o111 != 0)
}

/// Entry names of a directory, sorted; none when it does not exist.
fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Directories named `name` below `root/dir` (relative to `root`), not descending into `skip` directories.
fn dirs_named(root: &Path, dir: &str, name: &str, skip: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for child in sorted_names(&root.join(dir))? {
        let path = format!("{dir}/{child}");
        let host = root.join(&path);
        if child == skip || !host.is_dir() || fs_err::symlink_metadata(&host)?.file_type().is_symlink() {
            continue;
        }
        if child == name {
            found.push(path);
        } else {
            found.extend(dirs_named(root, &path, name, skip)?);
        }
    }
    Ok(found)
}

/// Every file below `root/dir` (paths relative to `root`), skipping entries
/// whose name `pruned` matches at any depth (find's `-prune`). Symlinks to
/// files inside `root` count as files (the SDK stores their contents); a
/// link out of `root` is refused; dangling ones are skipped.
fn walk(root: &Path, dir: &str, pruned: &dyn Fn(&str) -> bool, out: &mut Vec<String>) -> Result<()> {
    for name in sorted_names(&root.join(dir))? {
        if pruned(&name) {
            continue;
        }
        let path = format!("{dir}/{name}");
        let host = root.join(&path);
        let kind = fs_err::symlink_metadata(&host)?.file_type();
        if kind.is_dir() {
            walk(root, &path, pruned, out)?;
        } else if kind.is_file() {
            out.push(path);
        } else if kind.is_symlink() {
            match std::fs::metadata(&host) {
                Ok(target) if target.is_file() => {
                    crate::safefs::resolve_within(&host, root)?;
                    out.push(path)
                }
                Ok(_) => anyhow::bail!("{} is a symlink to a directory, which an SDK cannot carry", host.display()),
                Err(_) => progress::detail(format!("skipping dangling symlink {}", host.display())),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        fs_err::create_dir_all(file.parent().unwrap()).unwrap();
        fs_err::write(file, text).unwrap();
    }

    /// A miniature source tree and build directory with one file of every kind the selection decides on.
    fn fake_tree(base: &Path, auto_conf: &str) -> (PathBuf, PathBuf) {
        let source = base.join("src");
        let build = base.join("build");
        for path in [
            "Makefile",
            "Kconfig",
            "arch/x86/Makefile",
            "arch/x86/Makefile_32.cpu",
            "arch/x86/Kconfig",
            "arch/x86/include/asm/page.h",
            "arch/x86/include/uapi/asm/types.h",
            "arch/x86/um/include/asm/x.h",
            "arch/x86/kernel/fork.c",
            "arch/x86/platform/Platform",
            "arch/arm64/include/asm/page.h",
            "include/linux/module.h",
            "include/config/stale",
            "include/uapi/linux/types.h",
            "scripts/Makefile.build",
            "scripts/module-common.c",
            "scripts/kconfig/conf.c",
            "scripts/package/install-extmod-build",
            "scripts/atomic/gen.sh",
            "scripts/unifdef.c",
            "kernel/fork.c",
            "rust/kernel/lib.rs",
        ] {
            touch(&source, path, "source");
        }
        std::os::unix::fs::symlink("module.h", source.join("include/linux/alias.h")).unwrap();
        std::os::unix::fs::symlink("nowhere.h", source.join("include/linux/dangling.h")).unwrap();
        for path in [
            ".config",
            "Makefile",
            "Module.symvers",
            "vmlinux",
            "include/config/auto.conf.cmd",
            "include/config/kernel.release",
            "include/config/RUST",
            "include/generated/autoconf.h",
            "include/generated/rustc_cfg",
            "arch/x86/include/generated/asm/orc_hash.h",
            "arch/x86/boot/bzImage",
            "scripts/basic/fixdep",
            "scripts/basic/.fixdep.cmd",
            "scripts/basic/fixdep.o",
            "scripts/mod/modpost",
            "scripts/mod/mk_elfconfig",
            "scripts/unifdef",
            "scripts/kconfig/conf",
            "scripts/target.json",
            "scripts/module.lds",
            "tools/objtool/objtool",
            "tools/objtool/check.o",
            "rust/libkernel.rmeta",
            "rust/libmacros.so",
            "rust/libsyn.rlib",
            "rust/kernel.o",
            "rust/exports_kernel_generated.h",
            "rust/bindings/bindings_generated.rs",
            "kernel/fork.o",
        ] {
            touch(&build, path, "build");
        }
        touch(&build, "include/config/auto.conf", auto_conf);
        (source, build)
    }

    #[test]
    fn a_symlink_out_of_the_tree_is_refused_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let (source, build) = fake_tree(base.path(), "CONFIG_RUST=y\n");
        std::os::unix::fs::symlink("/etc/passwd", source.join("include/linux/evil.h")).unwrap();
        let message = format!("{:#}", select(&source, &build, "x86").unwrap_err());
        assert!(message.contains("evil.h leads to /etc/passwd, outside"), "{message}");
        assert!(message.contains("does not follow a symlink out of the tree"), "{message}");
    }

    #[test]
    fn selection_follows_the_kernels_extmod_list_plus_rust_metadata() {
        let base = std::env::temp_dir().join(format!("kforge-sdk-select-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (source, build) = fake_tree(&base, "CONFIG_RUST=y\nCONFIG_OBJTOOL=y\n");
        let paths: Vec<String> = select(&source, &build, "x86").unwrap().into_iter().map(|file| file.path).collect();
        expect_test::expect![[r#"
            [
                "build/.config",
                "build/Module.symvers",
                "build/arch/x86/include/generated/asm/orc_hash.h",
                "build/include/config/auto.conf",
                "build/include/config/kernel.release",
                "build/include/generated/autoconf.h",
                "build/include/generated/rustc_cfg",
                "build/rust/libkernel.rmeta",
                "build/rust/libmacros.so",
                "build/scripts/basic/fixdep",
                "build/scripts/mod/modpost",
                "build/scripts/module.lds",
                "build/scripts/target.json",
                "build/tools/objtool/objtool",
                "src/Makefile",
                "src/arch/x86/Makefile",
                "src/arch/x86/Makefile_32.cpu",
                "src/arch/x86/include/asm/page.h",
                "src/arch/x86/include/uapi/asm/types.h",
                "src/arch/x86/platform/Platform",
                "src/arch/x86/um/include/asm/x.h",
                "src/include/linux/alias.h",
                "src/include/linux/module.h",
                "src/include/uapi/linux/types.h",
                "src/scripts/Makefile.build",
                "src/scripts/module-common.c",
                "src/scripts/unifdef.c",
            ]
        "#]]
        .assert_debug_eq(&paths);

        // Without objtool the kernel's list leaves it out; a missing required file is named.
        fs_err::write(build.join("include/config/auto.conf"), "CONFIG_RUST=y\n").unwrap();
        let paths: Vec<String> = select(&source, &build, "x86").unwrap().into_iter().map(|file| file.path).collect();
        assert!(!paths.contains(&"build/tools/objtool/objtool".to_string()), "{paths:?}");
        fs_err::remove_file(build.join("Module.symvers")).unwrap();
        let message = select(&source, &build, "x86").unwrap_err().to_string();
        assert!(message.contains("Module.symvers"), "{message}");
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn the_rust_target_is_read_from_the_kernel_build() {
        let base = std::env::temp_dir().join(format!("kforge-sdk-target-{}", std::process::id()));
        touch(&base, "x86/rust/.kernel.o.cmd", "savedcmd := rustc -Copt-level=s --target=./scripts/target.json -Cx\n");
        touch(&base, "arm64/rust/.kernel.o.cmd", "savedcmd := rustc --target=aarch64-unknown-none-softfloat -Cx\n");
        assert_eq!(rust_target(&base.join("x86")).unwrap(), "build/scripts/target.json");
        assert_eq!(rust_target(&base.join("arm64")).unwrap(), "aarch64-unknown-none-softfloat");
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn file_verification_names_every_difference() {
        let manifest: BTreeMap<String, String> =
            [("a", "1"), ("b", "2"), ("c", "3")].map(|(path, sha)| (path.to_string(), sha.to_string())).into();
        let found: BTreeMap<String, String> =
            [("a", "1"), ("b", "9"), ("d", "4")].map(|(path, sha)| (path.to_string(), sha.to_string())).into();
        assert_eq!(
            verify_files(&manifest, &found),
            ["b: sha256 9, the manifest says 2", "c: missing", "d: not in the manifest"]
        );
        assert!(verify_files(&manifest, &manifest).is_empty());
    }

    fn facts(repo: &Path) -> ToolchainFacts {
        let sid = Toolchain::load(repo, "sid").unwrap();
        ToolchainFacts {
            id: "sid".into(),
            build_key: sid.build_key.clone(),
            rustc: sid.spec.rustc.version.clone(),
            rust_src: sid.spec.rust_src.version.clone(),
            bindgen: sid.spec.bindgen.version.clone(),
            llvm: sid.spec.llvm.version.clone(),
            rustc_version_text: "rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)".into(),
            bindgen_version_text: "bindgen 0.72.1".into(),
            cc_version_text: "Debian clang version 22.1.8 (3)".into(),
        }
    }

    #[test]
    fn another_toolchain_is_refused_by_version() {
        let _guard = crate::test_support::env_lock();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let recorded = facts(&repo);
        let sid = Toolchain::load(&repo, "sid").unwrap();
        assert!(spec_mismatches(&recorded, &sid.spec).is_empty());
        let mut other = sid.spec.clone();
        other.id = "other".into();
        other.rustc.version = "1.98.1".into();
        other.llvm.version = "23.1.0".into();
        assert_eq!(
            spec_mismatches(&recorded, &other),
            [
                format!("rustc: the SDK's kernel was built with {}, toolchain other pins 1.98.1", recorded.rustc),
                format!("LLVM: the SDK's kernel was built with {}, toolchain other pins 23.1.0", recorded.llvm),
            ]
        );
    }

    #[test]
    fn an_installed_compiler_must_print_the_recorded_version() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let _guard = crate::test_support::env_lock();
        let recorded = facts(&repo);
        let rustc = recorded.rustc_version_text.clone();
        let clang = recorded.cc_version_text.clone();
        assert!(installed_mismatches(&recorded, &rustc, &clang).is_empty());
        let problems = installed_mismatches(&recorded, "rustc 1.97.1 (8bab26f4f 2026-07-14)", &clang);
        assert_eq!(
            problems,
            [format!(
                "rustc: the kernel was built by `{rustc}`, the toolchain has `rustc 1.97.1 (8bab26f4f 2026-07-14)`"
            )]
        );
    }

    #[test]
    fn a_drivers_config_needs_are_checked_against_the_sdk() {
        let driver = Driver {
            name: "fifo".into(),
            version: "0.1.0".into(),
            dir: PathBuf::new(),
            meta: crate::driver::DriverMeta {
                module: Some("kforge_fifo".into()),
                in_tree_modules: vec![],
                kconfig: vec!["CONFIG_KUNIT=y".into(), "CONFIG_DEBUG_FS=y".into()],
                qemu_devices: vec![],
                needs_pci: false,
                module_params: vec![],
                tests: vec![],
                kunit_suites: vec![],
                suite: None,
                test_programs: vec![],
                min_kernel: None,
                unsupported_arches: BTreeMap::new(),
                maintainer: None,
                root_tests: vec![],
            },
        };
        assert!(missing_options(&driver, "CONFIG_KUNIT=y\nCONFIG_DEBUG_FS=y\n").is_empty());
        assert_eq!(
            missing_options(&driver, "CONFIG_KUNIT=y\n# CONFIG_DEBUG_FS is not set\n"),
            ["CONFIG_DEBUG_FS=y (the kernel has n)"]
        );
    }

    #[test]
    fn an_archive_unpacks_verified_and_a_changed_one_is_refused() {
        let _guard = crate::test_support::env_lock();
        let base = std::env::temp_dir().join(format!("kforge-sdk-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let files = vec![
            Entry { path: "build/scripts/basic/fixdep".into(), mode: 0o755, data: b"\x7fELF".to_vec() },
            Entry { path: "build/rust/libkernel.rmeta".into(), mode: 0o644, data: b"rmeta".to_vec() },
        ];
        let manifest = |files: &[Entry]| Manifest {
            format: FORMAT,
            kforge_version: "0".into(),
            kernel: KernelFacts {
                id: "7.2".into(),
                version: "7.2.13".into(),
                release: "7.2.13".into(),
                source: "debian:x".into(),
                build_key: "k".into(),
            },
            arch: "x86_64".into(),
            host_arch: "amd64".into(),
            rust_target: "build/scripts/target.json".into(),
            toolchain: facts(&repo),
            make: vec![],
            source_date_epoch: 0,
            files: files.iter().map(|entry| (entry.path.clone(), cache::sha256_hex(&entry.data))).collect(),
        };
        let pack = |name: &str, files: &[Entry], manifest: &Manifest| {
            let mut entries = files.to_vec();
            entries.push(Entry {
                path: MANIFEST.into(),
                mode: 0o644,
                data: manifest_json(manifest).unwrap().into_bytes(),
            });
            let archive = base.join(name);
            dist::write_tar_gz(&archive, "kforge-sdk-7.2-x86_64", &entries, 0, flate2::Compression::fast()).unwrap();
            archive
        };
        // SAFETY (test only): env_lock serialises environment changes.
        unsafe { std::env::set_var("KFORGE_CACHE_DIR", base.join("cache")) };
        let good = pack("good.tar.gz", &files, &manifest(&files));
        let unpacked = unpack(&good);
        let mut changed = files.clone();
        changed[1].data = b"other".to_vec();
        let bad = pack("bad.tar.gz", &changed, &manifest(&files));
        let refused = unpack(&bad);
        unsafe { std::env::remove_var("KFORGE_CACHE_DIR") };

        let unpacked = unpacked.unwrap();
        assert_eq!(unpacked.manifest, manifest(&files));
        assert_eq!(fs_err::read(unpacked.build_dir().join("rust/libkernel.rmeta")).unwrap(), b"rmeta");
        assert!(is_executable(&unpacked.build_dir().join("scripts/basic/fixdep")).unwrap());
        let message = format!("{:#}", refused.unwrap_err());
        assert!(message.contains("build/rust/libkernel.rmeta: sha256"), "{message}");
        // Only the work directory and the lock of the refused one are left: `bad-<hash>` is not published.
        let published: Vec<String> = fs_err::read_dir(base.join("cache/sdks"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.contains('.'))
            .collect();
        assert_eq!(published.len(), 1, "{published:?}");
        assert!(published[0].starts_with("good-"), "{published:?}");
        let _ = std::fs::remove_dir_all(base);
    }
}
