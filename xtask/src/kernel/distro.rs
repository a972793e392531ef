//! Debian's own kernels: fetch the image and headers packages, match the compilers its config records to the pinned toolchain, regenerate the Rust build metadata for exactly that config, and hand drivers the build directory.
//!
//! Debian builds `linux-image-*` with GCC and ships no `rust/*.rmeta`, so
//! out-of-tree Rust modules cannot be built from its headers package alone.
//! kforge configures the linux-source tree the image was built from with
//! Debian's build `.config` (from the headers package), runs `make
//! olddefconfig` (which must change nothing but, at most, the C compiler's
//! packaging revision) and `make modules_prepare` (whose `prepare` builds
//! `rust/` when CONFIG_RUST is set), with the compiler and make variables
//! Debian used (`.kernelvariables`: KERNELRELEASE, CROSS_COMPILE...), and puts
//! Debian's `Module.symvers` next to it. Modules built against that directory
//! carry Debian's vermagic and resolve against the image's exported symbols
//! (the Rust ones included: their mangled names depend on the exact rustc).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::build::{KernelBuild, KernelPlan, PlanKind};
use super::config;
use super::make;
use super::source::{self, SourceTree};
use crate::arch::Arch;
use crate::jobserver::Parallel;
use crate::process::{Control, Outcome};
use crate::project::{DebianImage, DebianImageArch, KernelEntry, KernelSource};
use crate::stage::{Category, StageContext};
use crate::toolchain::{Toolchain, spec};
use crate::{cache, error, paths, progress};

/// Bumped when the way the metadata is regenerated changes.
const RECIPE: &str = "kforge-distro-1";
/// Same marker (and format) as kforge's own kernel builds.
const COMPLETE_MARKER: &str = ".kforge-complete";
/// Inside the build directory: what kforge took from Debian's packages.
const DISTRO_DIR: &str = "kforge-distro";

/// What a Debian kernel cell needs beyond a kernel plan.
#[derive(Debug, Clone)]
pub struct DistroPlan {
    /// The arch's image and headers packages (`None`: the entry lists none for it).
    pub packages: Option<DebianImageArch>,
    /// Every toolchain file's spec, for the refusal message when the chosen one does not match.
    pub candidates: Vec<spec::ToolchainSpec>,
}

/// The plan of a Debian kernel for `arch`: a key over the source tree, the
/// arch's packages, the toolchain and the arch; no fragments (the config is Debian's).
pub fn plan(
    repo: &Path,
    kernel: &KernelEntry,
    image: &DebianImage,
    arch: &'static Arch,
    toolchain: &Toolchain,
) -> Result<KernelPlan> {
    // No packages for this arch: the cell is skipped (`arch_skip_reason`); the plan keeps its key stable.
    let packages = image.arches.get(arch.name).cloned();
    let mut key = cache::KeyHasher::new();
    key.input("recipe", RECIPE)
        .input("source", source::package_identity(&image.source))
        .input("image", packages.as_ref().map(|packages| source::package_identity(&packages.image)).unwrap_or_default())
        .input(
            "headers",
            packages.as_ref().map(|packages| source::package_identity(&packages.headers)).unwrap_or_default(),
        )
        .input("toolchain", &toolchain.build_key)
        .input("arch", arch.name);
    let entry = paths::cache_dir()?.join("kernels").join(format!("{}-{}-{}", kernel.id, arch.name, key.short()));
    let mut candidates = Vec::new();
    for id in spec::list_ids(repo)? {
        candidates.push(spec::load(repo, &id)?);
    }
    Ok(KernelPlan {
        kernel_id: kernel.id.clone(),
        arch,
        key: key.finish(),
        entry,
        kind: PlanKind::Distro(DistroPlan { packages, candidates }),
    })
}

/// Why a cell of a distro kernel cannot run on `arch`: the entry lists no packages for it.
pub fn arch_skip_reason(kernel: &KernelEntry, arch: &Arch) -> Option<String> {
    let KernelSource::DebianImage(image) = &kernel.source else { return None };
    (!image.arches.contains_key(arch.name)).then(|| {
        format!(
            "kernel {} lists Debian packages for {} only",
            kernel.id,
            image.arches.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

/// The reason KUnit suites cannot run on a built kernel, when its `.config` has no CONFIG_KUNIT.
pub fn kunit_off_reason(kernel: &KernelEntry, build: &KernelBuild) -> Option<String> {
    let config = std::fs::read_to_string(build.dir.join(".config")).ok()?;
    if config::symbols(&config).get("CONFIG_KUNIT").is_some_and(|value| value == "y") {
        return None;
    }
    Some(match kernel.source {
        KernelSource::DebianImage(_) => "CONFIG_KUNIT is off in Debian's kernel".to_string(),
        _ => format!("CONFIG_KUNIT is off in kernel {}'s config", kernel.id),
    })
}

/// The compilers a kernel was built with, as its config records them (or as
/// a toolchain's tools print them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilerTexts {
    /// `rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)`
    pub rustc: String,
    /// `bindgen 0.72.1`
    pub bindgen: String,
    /// `x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0`
    pub cc: String,
}

/// Reads CONFIG_RUSTC_VERSION_TEXT, CONFIG_BINDGEN_VERSION_TEXT and CONFIG_CC_VERSION_TEXT.
pub fn compiler_texts(config: &str, origin: &str) -> Result<CompilerTexts> {
    let symbols = config::symbols(config);
    let text = |name: &str, why: &str| {
        config::string(&symbols, name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| error::user(format!("{origin} has no {name}: {why}")))
    };
    let rust = "the kernel was not built with Rust support (CONFIG_RUST), so there is no Rust toolchain to match";
    Ok(CompilerTexts {
        rustc: text("CONFIG_RUSTC_VERSION_TEXT", rust)?,
        bindgen: text("CONFIG_BINDGEN_VERSION_TEXT", rust)?,
        cc: text("CONFIG_CC_VERSION_TEXT", "the config does not say which C compiler built the kernel")?,
    })
}

/// A C compiler's `--version` line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CcText {
    /// `x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0`: command, packaging, upstream version.
    Gcc { command: String, packaging: String, version: String },
    /// `Debian clang version 22.1.8 (3)`: upstream version.
    Clang { version: String },
}

/// Parses a C compiler version line (GCC's or clang's form).
pub fn parse_cc(text: &str) -> Option<CcText> {
    if let Some(version) = crate::toolchain::verify::version_after(text, "clang version ") {
        return Some(CcText::Clang { version });
    }
    let (command, rest) = text.trim().split_once(' ')?;
    let (packaging, version) = rest.strip_prefix('(')?.rsplit_once(')')?;
    let version = version.trim();
    if !command.contains("gcc") || version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    Some(CcText::Gcc { command: command.to_string(), packaging: packaging.to_string(), version: version.to_string() })
}

/// One compiler compared: what the kernel's config says and what the toolchain has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolMatch {
    pub tool: &'static str,
    pub config: String,
    pub found: String,
    pub ok: bool,
    /// A difference that is accepted (GCC's Debian revision), printed.
    pub note: Option<String>,
}

/// Compares the config's compilers with the toolchain's: rustc and bindgen
/// exactly (a Rust module must come from the exact rustc that built its
/// kernel: the exported symbols' mangled names depend on it); the C compiler
/// by command and upstream version, noting a different packaging revision.
pub fn match_texts(config: &CompilerTexts, found: &CompilerTexts) -> Vec<ToolMatch> {
    let exact = |tool, config: &String, found: &String| ToolMatch {
        tool,
        config: config.clone(),
        found: found.clone(),
        ok: config == found,
        note: None,
    };
    let mut cc = exact("C compiler", &config.cc, &found.cc);
    match (parse_cc(&config.cc), parse_cc(&found.cc)) {
        (
            Some(CcText::Gcc { command, packaging, version }),
            Some(CcText::Gcc { command: found_command, packaging: found_packaging, version: found_version }),
        ) => {
            cc.ok = command == found_command && version == found_version;
            if cc.ok && packaging != found_packaging {
                cc.note = Some(format!(
                    "same compiler ({command} {version}), other packaging: the kernel's says ({packaging}), the toolchain's ({found_packaging})"
                ));
            }
        }
        (Some(CcText::Clang { version }), Some(CcText::Clang { version: found_version })) => {
            cc.ok = version == found_version;
        }
        _ => {}
    }
    vec![exact("rustc", &config.rustc, &found.rustc), exact("bindgen", &config.bindgen, &found.bindgen), cc]
}

/// Why a toolchain's pins cannot match the config's compilers (empty: they can).
pub fn spec_mismatches(spec: &spec::ToolchainSpec, config: &CompilerTexts) -> Vec<String> {
    let version_of = |text: &str, marker: &str| crate::toolchain::verify::version_after(text, marker);
    let mut reasons = Vec::new();
    if version_of(&config.rustc, "rustc ").as_deref() != Some(spec.rustc.version.as_str()) {
        reasons.push(format!("rustc {}", spec.rustc.version));
    }
    if version_of(&config.bindgen, "bindgen ").as_deref() != Some(spec.bindgen.version.as_str()) {
        reasons.push(format!("bindgen {}", spec.bindgen.version));
    }
    match (parse_cc(&config.cc), &spec.gcc) {
        (Some(CcText::Gcc { command, version, .. }), Some(gcc))
            if gcc.version != version || !gcc.commands.contains(&command) =>
        {
            reasons.push(format!("gcc {} ({})", gcc.version, gcc.commands.join(", ")));
        }
        (Some(CcText::Gcc { .. }), Some(_)) => {}
        (Some(CcText::Gcc { .. }), None) => reasons.push("no gcc".to_string()),
        (Some(CcText::Clang { version }), _) if version != spec.llvm.version => {
            reasons.push(format!("clang {}", spec.llvm.version));
        }
        (None, _) => reasons.push("(the config's C compiler is not GCC or clang)".to_string()),
        _ => {}
    }
    reasons
}

/// Rule id `toolchain resolve` reports when a toolchain's compilers are not the ones a distro kernel was built with.
pub const COMPILERS_RULE: &str = "distro-compilers";

/// `toolchain resolve`'s check for a distro kernel: `None` when `spec`'s pins
/// are the compilers the config names, else the failure naming both sides.
pub fn compiler_failure(
    spec: &spec::ToolchainSpec,
    config: &CompilerTexts,
) -> Option<crate::toolchain::resolve::Failure> {
    let mismatches = spec_mismatches(spec, config);
    if mismatches.is_empty() {
        return None;
    }
    Some(crate::toolchain::resolve::Failure {
        rule: COMPILERS_RULE.to_string(),
        explanation: "a module must be built by the compilers that built the kernel; the distro's config records them \
                      (CONFIG_RUSTC_VERSION_TEXT, CONFIG_BINDGEN_VERSION_TEXT, CONFIG_CC_VERSION_TEXT)"
            .to_string(),
        detail: format!(
            "the kernel was built with `{}`, `{}`, `{}`; {} has {}",
            config.rustc,
            config.bindgen,
            config.cc,
            spec.id,
            mismatches.join(", ")
        ),
    })
}

/// The compilers Debian built `arch`'s image with, read from its headers package's `.config`
/// (fetched with `toolchain`'s apt, verified against its pinned sha256).
pub fn packaged_compilers(toolchain: &Toolchain, packages: &DebianImageArch, arch: &Arch) -> Result<CompilerTexts> {
    let headers_deb = source::fetch_arch_package(toolchain, &packages.headers, arch.debian_arch)?;
    let config =
        std::env::temp_dir().join(format!("kforge-{}-{}.config", packages.headers.package, std::process::id()));
    let extracted = source::extract_deb_files(&headers_deb, |path| {
        let (_, file) = path.strip_prefix("usr/src/linux-headers-")?.split_once('/')?;
        (file == ".config").then(|| config.clone())
    });
    let text = extracted.and_then(|_| {
        fs_err::read_to_string(&config)
            .with_context(|| format!("{} has no usr/src/linux-headers-<release>/.config", packages.headers.package))
    });
    let _ = fs_err::remove_file(&config);
    compiler_texts(&text?, &format!("{}'s .config", packages.headers.package))
}

/// The refusal when the chosen toolchain does not match: the config's
/// strings, what the toolchain printed, and what every pinned toolchain has.
pub fn refusal(
    kernel_id: &str,
    arch: &str,
    chosen: &str,
    matches: &[ToolMatch],
    candidates: &[spec::ToolchainSpec],
    config: &CompilerTexts,
) -> anyhow::Error {
    let mut fitting = Vec::new();
    let mut table = String::from("  pinned toolchains:");
    for spec in candidates {
        let reasons = spec_mismatches(spec, config);
        let gcc = spec.gcc.as_ref().map(|gcc| format!("gcc {}", gcc.version)).unwrap_or_else(|| "no gcc".to_string());
        let verdict = if reasons.is_empty() {
            fitting.push(spec.id.clone());
            "pins match".to_string()
        } else {
            format!("differs: {}", reasons.join(", "))
        };
        table.push_str(&format!(
            "\n    {:<14} rustc {}, bindgen {}, {gcc}: {verdict}",
            spec.id, spec.rustc.version, spec.bindgen.version
        ));
    }
    let other = fitting.iter().find(|id| id.as_str() != chosen);
    let mut message = format!(
        "toolchain {chosen} does not have the compilers Debian built kernel {kernel_id} ({arch}) with; refusing to build modules for it{}\n",
        other.map(|id| format!(" (toolchain {id} pins them)")).unwrap_or_default()
    );
    message.push_str("  the kernel's config says:\n");
    for item in matches {
        message.push_str(&format!("    {:<11} {}\n", format!("{}:", item.tool), item.config));
    }
    message.push_str(&format!("  toolchain {chosen} has:\n"));
    for item in matches {
        let mark = if item.ok { "ok" } else { "DIFFERENT" };
        message.push_str(&format!("    {:<11} {}  [{mark}]\n", format!("{}:", item.tool), item.found));
    }
    message.push_str(&table);
    let hint = match other {
        Some(id) => format!("set `toolchain = \"{id}\"` for kernel {kernel_id} in kforge.toml"),
        None if fitting.iter().any(|id| id == chosen) => {
            format!("toolchain {chosen}'s pins match but its root does not: reinstall it (cargo xtask toolchain install --force {chosen})")
        }
        None => "pin a toolchain with exactly these compilers in toolchains/ (see toolchains/sid-gcc.toml) and name it in kforge.toml".to_string(),
    };
    error::user_hint(message, hint)
}

/// Make variables from Debian's `.kernelvariables` (`override NAME = VALUE`
/// and plain `NAME = VALUE` lines; values that use make functions are left out).
pub fn kernel_variables(text: &str) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("override ").unwrap_or(line);
        let Some((name, value)) = line.split_once(" = ") else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') && !value.contains("$(") {
            variables.insert(name.to_string(), value.to_string());
        }
    }
    variables
}

/// The make variables that reproduce Debian's build: its compiler (the
/// command its config names), cross prefixes and release string.
pub fn make_variables(variables: &BTreeMap<String, String>, config: &CompilerTexts) -> Result<Vec<String>> {
    let Some(CcText::Gcc { command, .. }) = parse_cc(&config.cc) else {
        return Err(error::user(format!(
            "kernel built with `{}`: kforge regenerates Rust metadata for GCC-built distro kernels only",
            config.cc
        )));
    };
    let release =
        variables.get("KERNELRELEASE").ok_or_else(|| error::user("Debian's .kernelvariables has no KERNELRELEASE"))?;
    let mut vars = Vec::new();
    if let Some(prefix) = variables.get("CROSS_COMPILE") {
        if !command.starts_with(prefix.as_str()) {
            return Err(error::user(format!(
                "the config's compiler {command} does not start with Debian's CROSS_COMPILE={prefix}"
            )));
        }
        vars.push(format!("CROSS_COMPILE={prefix}"));
    }
    vars.push(format!("CC={command}"));
    if let Some(compat) = variables.get("CROSS_COMPILE_COMPAT") {
        // arm64's 32-bit vDSO is compiled with `$(CROSS_COMPILE_COMPAT)gcc` unless CC_COMPAT
        // says otherwise: use the compat compiler of the same version as CC (`...-gcc-16`).
        let suffix = variables.get("CROSS_COMPILE").and_then(|prefix| command.strip_prefix(prefix.as_str()));
        vars.push(format!("CROSS_COMPILE_COMPAT={compat}"));
        if let Some(suffix) = suffix {
            vars.push(format!("CC_COMPAT={compat}{suffix}"));
        }
    }
    vars.push(format!("KERNELRELEASE={release}"));
    Ok(vars)
}

/// A symbol whose value `make olddefconfig` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub before: String,
    pub after: String,
}

/// Symbols whose value differs between two configs (absent counts as "(absent)").
pub fn changed_symbols(before: &str, after: &str) -> Vec<ConfigChange> {
    let before = config::symbols(before);
    let after = config::symbols(after);
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let absent = "(absent)".to_string();
    names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (before.get(name).unwrap_or(&absent), after.get(name).unwrap_or(&absent));
            (old != new).then(|| ConfigChange { name: name.clone(), before: old.clone(), after: new.clone() })
        })
        .collect()
}

/// Files taken from Debian's packages, in `<build>/kforge-distro/`.
struct DebianFiles {
    image: PathBuf,
    config: PathBuf,
    symvers: PathBuf,
    variables: PathBuf,
}

/// Extracts the image and the headers' build files into `dir`.
fn extract(toolchain: &Toolchain, packages: &DebianImageArch, arch: &Arch, dir: &Path) -> Result<DebianFiles> {
    let image_deb = source::fetch_arch_package(toolchain, &packages.image, arch.debian_arch)?;
    let headers_deb = source::fetch_arch_package(toolchain, &packages.headers, arch.debian_arch)?;
    let files = DebianFiles {
        image: dir.join("vmlinuz"),
        config: dir.join("config"),
        symvers: dir.join("Module.symvers"),
        variables: dir.join("kernelvariables"),
    };
    let is_modules_vmlinuz = |path: &str| {
        path.strip_prefix("usr/lib/modules/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, file)| file == "vmlinuz")
    };
    let copied = source::extract_deb_files(&image_deb, |path| is_modules_vmlinuz(path).then(|| files.image.clone()))?;
    if copied.len() != 1 {
        return Err(error::user(format!(
            "{} should hold exactly one usr/lib/modules/<release>/vmlinuz, found {copied:?}",
            packages.image.package
        )));
    }
    let wanted =
        [(".config", &files.config), ("Module.symvers", &files.symvers), (".kernelvariables", &files.variables)];
    let copied = source::extract_deb_files(&headers_deb, |path| {
        let rest = path.strip_prefix("usr/src/linux-headers-")?;
        let (_, file) = rest.split_once('/')?;
        wanted.iter().find(|(name, _)| *name == file).map(|(_, target)| (*target).clone())
    })?;
    for (name, target) in wanted {
        if !target.is_file() {
            return Err(error::user(format!(
                "{} has no usr/src/linux-headers-<release>/{name} (found: {})",
                packages.headers.package,
                copied.join(", ")
            )));
        }
    }
    Ok(files)
}

/// Fetches Debian's packages, matches the toolchain, configures the source
/// with Debian's config and builds the Rust metadata (`make modules_prepare`)
/// and UAPI headers. A complete entry is reused as is.
pub fn build(
    plan: &KernelPlan,
    distro: &DistroPlan,
    toolchain: &Toolchain,
    source_tree: &SourceTree,
    log: &Path,
    parallel: Parallel<'_>,
) -> Result<KernelBuild> {
    let label = format!("{}/{}", plan.kernel_id, plan.arch.name);
    if let Some(parent) = log.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let _lock = cache::lock(&plan.entry)?;
    if plan.entry.join(COMPLETE_MARKER).is_file() {
        let vars = fs_err::read_to_string(plan.entry.join(DISTRO_DIR).join("make-vars"))?;
        fs_err::write(log, format!("kforge: Debian kernel metadata reused from {}\n", plan.entry.display()))?;
        return Ok(KernelBuild {
            image: plan.entry.join(DISTRO_DIR).join("vmlinuz"),
            dir: plan.entry.clone(),
            compiled_steps: 0,
            cpu_seconds: 0.0,
            make_vars: vars.lines().map(str::to_string).collect(),
            ccache: None,
        });
    }
    let Some(packages) = &distro.packages else {
        return Err(error::user(format!("kernel {} has no Debian packages for {}", plan.kernel_id, plan.arch.name)))
            .stage(Category::Config, format!("{label} cannot be prepared"));
    };
    let dir = cache::sibling(&plan.entry, "partial");
    fs_err::create_dir_all(dir.join(DISTRO_DIR))?;

    let files = extract(toolchain, packages, plan.arch, &dir.join(DISTRO_DIR))
        .stage(Category::Infrastructure, format!("Debian's packages for {label} are unavailable"))?;
    let debian_config = fs_err::read_to_string(&files.config)?;
    let origin = format!("{}'s .config", packages.headers.package);
    let wanted =
        compiler_texts(&debian_config, &origin).stage(Category::Config, format!("{label}: unusable config"))?;

    let sandbox = toolchain.sandbox().stage(Category::Toolchain, "toolchain unavailable")?;
    let found = probe_compilers(&sandbox, &wanted)?;
    let matches = match_texts(&wanted, &found);
    if matches.iter().any(|item| !item.ok) {
        return Err(refusal(&plan.kernel_id, plan.arch.name, toolchain.id(), &matches, &distro.candidates, &wanted))
            .stage(Category::Toolchain, format!("no matching toolchain for {label}"));
    }
    for item in &matches {
        progress::detail(format!("{label}: {} matches the kernel's: {}", item.tool, item.found));
        if let Some(note) = &item.note {
            progress::warn(format!("{label}: {}: {note}", item.tool));
        }
    }
    let variables = kernel_variables(&fs_err::read_to_string(&files.variables)?);
    let vars = make_variables(&variables, &wanted).stage(Category::Config, format!("{label}: unusable variables"))?;

    let jail = || make::jail(&sandbox, source_tree, &dir);
    let make = make::make_command_with(plan.arch, "/src", "/build", &vars);

    // Configure: Debian's config as is; olddefconfig must not change it.
    progress::status("Configuring", format!("kernel {label} with Debian's config ({})", packages.headers.package));
    fs_err::copy(&files.config, dir.join(".config"))?;
    let config_log = make::config_log_path(log);
    let cmd = jail().command(&[make.clone(), vec!["olddefconfig".to_string()]].concat())?;
    let outcome = cmd.stream(&config_log, None, &mut |_| Control::Continue)?;
    if !matches!(outcome, Outcome::Exited(status) if status.success()) {
        return Err(make::process_failure(&cmd, outcome, &config_log))
            .stage(Category::Config, format!("kernel config for {label} failed"));
    }
    let changes = changed_symbols(&debian_config, &fs_err::read_to_string(dir.join(".config"))?);
    let cc_note = matches.iter().any(|item| item.note.is_some());
    let (accepted, unexpected): (Vec<&ConfigChange>, Vec<&ConfigChange>) =
        changes.iter().partition(|change| cc_note && change.name == "CONFIG_CC_VERSION_TEXT");
    for change in &accepted {
        progress::warn(format!("{label}: olddefconfig changed {}: {} -> {}", change.name, change.before, change.after));
    }
    if !unexpected.is_empty() {
        let lines: Vec<String> = unexpected
            .iter()
            .map(|change| format!("  {}: {} -> {}", change.name, change.before, change.after))
            .collect();
        return Err(error::user_hint(
            format!(
                "`make olddefconfig` changed Debian's config of {label}, so modules built against it would not match the image:\n{}",
                lines.join("\n")
            ),
            "a changed *_VERSION symbol means a tool in the toolchain differs from the one Debian used (binutils, pahole...): pin that version",
        ))
        .stage(Category::Config, format!("Debian's config of {label} does not survive olddefconfig"));
    }

    // Build: the Rust metadata (prepare builds rust/) and the UAPI headers test programs use.
    let started = std::time::Instant::now();
    let prepare_cmd = parallel.attach(jail()).command(&make::with_cpu_times(
        [make.clone(), parallel.make_args(), vec!["modules_prepare".to_string()]].concat(),
    ))?;
    let (steps, cpu) = make::run_make(&prepare_cmd, log, &label, None)
        .stage(Category::Build, format!("Rust metadata for {label} (make modules_prepare) failed"))?;
    let headers = make::headers_command(plan.arch, &vars);
    let headers_log = cache::sibling(log, "headers");
    let headers_cmd = parallel.attach(jail()).command(&make::with_cpu_times(headers))?;
    let (header_steps, header_cpu) = make::run_make(&headers_cmd, &headers_log, &label, None)
        .stage(Category::Build, format!("UAPI headers for {label} failed"))?;
    for metadata in ["rust/libkernel.rmeta", "rust/libmacros.so"] {
        if !dir.join(metadata).is_file() {
            return Err(anyhow::anyhow!("make modules_prepare left no {metadata} in {}", dir.display()))
                .stage(Category::Build, format!("Rust metadata for {label} is incomplete"));
        }
    }
    fs_err::copy(&files.symvers, dir.join("Module.symvers"))?;

    let mut report = format!("kernel {label}: Debian's {}\n", packages.image.package);
    for item in &matches {
        report.push_str(&format!("{}: config `{}`, toolchain `{}`\n", item.tool, item.config, item.found));
        if let Some(note) = &item.note {
            report.push_str(&format!("  note: {note}\n"));
        }
    }
    for change in &accepted {
        report.push_str(&format!("olddefconfig changed {}: {} -> {}\n", change.name, change.before, change.after));
    }
    report.push_str(&format!("make variables: {}\n", vars.join(" ")));
    fs_err::write(dir.join(DISTRO_DIR).join("report.txt"), report)?;
    fs_err::write(dir.join(DISTRO_DIR).join("make-vars"), vars.join("\n") + "\n")?;
    let compiled = steps + header_steps;
    fs_err::write(dir.join(COMPLETE_MARKER), format!("{{\"steps\": {compiled}}}\n"))?;
    fs_err::rename(&dir, &plan.entry)?;
    progress::detail(format!("{label}: Rust metadata regenerated in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(KernelBuild {
        image: plan.entry.join(DISTRO_DIR).join("vmlinuz"),
        dir: plan.entry.clone(),
        compiled_steps: compiled,
        cpu_seconds: cpu + header_cpu,
        make_vars: vars,
        ccache: None,
    })
}

/// A make command as a dry run shows it: Debian's variables are only known once its headers package is read.
pub fn planned_make(arch: &Arch, target: &str) -> Vec<String> {
    let placeholder = "<CROSS_COMPILE, CC, KERNELRELEASE from Debian's headers>".to_string();
    [make::make_command_with(arch, "/src", "/build", &[placeholder]), vec![target.to_string()]].concat()
}

/// Runs `rustc --version`, `bindgen --version` and `<cc> --version` in the root.
fn probe_compilers(sandbox: &crate::sandbox::Sandbox, wanted: &CompilerTexts) -> Result<CompilerTexts> {
    let first_line = |argv: &[&str]| -> Result<String> {
        let output = sandbox.jail().command(argv)?.output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        let line = text.lines().find(|line| !line.trim().is_empty()).unwrap_or("no output").trim().to_string();
        Ok(if output.status.success() { line } else { format!("missing ({line})") })
    };
    let cc_command = match parse_cc(&wanted.cc) {
        Some(CcText::Gcc { command, .. }) => command,
        _ => "clang".to_string(),
    };
    let probe = |argv: &[&str]| first_line(argv).stage(Category::Toolchain, "cannot run the toolchain's compilers");
    Ok(CompilerTexts {
        rustc: probe(&["rustc", "--version"])?,
        bindgen: probe(&["bindgen", "--version"])?,
        cc: probe(&[cc_command.as_str(), "--version"]).context("probing the C compiler")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"#
# Automatically generated file; DO NOT EDIT.
CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0"
CONFIG_CC_IS_GCC=y
CONFIG_RUSTC_VERSION_TEXT="rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)"
CONFIG_BINDGEN_VERSION_TEXT="bindgen 0.72.1"
# CONFIG_KUNIT is not set
CONFIG_DEBUG_FS=y
CONFIG_LOCALVERSION="say \"hi\""
"#;

    fn texts() -> CompilerTexts {
        compiler_texts(CONFIG, "config").unwrap()
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn version_texts_are_read_from_the_config() {
        let texts = texts();
        assert_eq!(texts.rustc, "rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)");
        assert_eq!(texts.bindgen, "bindgen 0.72.1");
        assert_eq!(texts.cc, "x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0");
        let symbols = config::symbols(CONFIG);
        assert_eq!(symbols["CONFIG_KUNIT"], "n");
        assert_eq!(config::string(&symbols, "CONFIG_LOCALVERSION").unwrap(), "say \"hi\"");
        let no_rust = CONFIG.replace("CONFIG_RUSTC_VERSION_TEXT", "CONFIG_OTHER");
        let message = compiler_texts(&no_rust, "linux-headers' .config").unwrap_err().to_string();
        assert!(message.contains("linux-headers' .config has no CONFIG_RUSTC_VERSION_TEXT"), "{message}");
    }

    #[test]
    fn gcc_and_clang_version_lines_are_parsed() {
        assert_eq!(
            parse_cc("aarch64-linux-gnu-gcc-16 (Debian 16.2.0-3cross1) 16.2.0").unwrap(),
            CcText::Gcc {
                command: "aarch64-linux-gnu-gcc-16".into(),
                packaging: "Debian 16.2.0-3cross1".into(),
                version: "16.2.0".into()
            }
        );
        assert_eq!(parse_cc("Debian clang version 22.1.8 (3)").unwrap(), CcText::Clang { version: "22.1.8".into() });
        assert_eq!(parse_cc("sh: 1: gcc-16: not found"), None);
    }

    #[test]
    fn toolchain_matches_exactly_and_notes_a_gcc_revision() {
        let mut found = texts();
        assert!(match_texts(&texts(), &found).iter().all(|item| item.ok && item.note.is_none()));
        found.cc = "x86_64-linux-gnu-gcc-16 (Debian 16.2.0-3cross1) 16.2.0".into();
        let matches = match_texts(&texts(), &found);
        assert!(matches.iter().all(|item| item.ok));
        let note = matches[2].note.as_deref().unwrap();
        assert!(note.contains("(Debian 16.2.0-4)") && note.contains("(Debian 16.2.0-3cross1)"), "{note}");
        found.cc = "x86_64-linux-gnu-gcc-16 (Debian 16.1.0-1) 16.1.0".into();
        found.rustc = "rustc 1.97.1 (8bab26f4f 2026-07-14)".into();
        let verdicts: Vec<bool> = match_texts(&texts(), &found).iter().map(|item| item.ok).collect();
        assert_eq!(verdicts, [false, true, false]);
    }

    #[test]
    fn a_refusal_shows_the_strings_found_and_every_toolchain() {
        let candidates: Vec<spec::ToolchainSpec> =
            ["sid", "sid-gcc", "trixie"].iter().map(|id| spec::load(&repo(), id).unwrap()).collect();
        assert!(spec_mismatches(&candidates[1], &texts()).is_empty());
        assert_eq!(spec_mismatches(&candidates[0], &texts()), ["no gcc"]);
        assert!(compiler_failure(&candidates[1], &texts()).is_none());
        let failure = compiler_failure(&candidates[0], &texts()).unwrap();
        assert_eq!(failure.rule, COMPILERS_RULE);
        assert!(failure.detail.contains("`x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0`"), "{}", failure.detail);
        assert!(failure.detail.ends_with(&format!("{} has no gcc", candidates[0].id)), "{}", failure.detail);
        let mut found = texts();
        found.cc = "missing (sh: 1: x86_64-linux-gnu-gcc-16: not found)".into();
        let matches = match_texts(&texts(), &found);
        let err = refusal("debian-7.2", "x86_64", "sid", &matches, &candidates, &texts());
        let rendered = error::render(&err);
        for needle in [
            "toolchain sid does not have the compilers Debian built kernel debian-7.2 (x86_64) with; refusing to build modules for it (toolchain sid-gcc pins them)",
            "rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)",
            "C compiler: x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0",
            "missing (sh: 1: x86_64-linux-gnu-gcc-16: not found)  [DIFFERENT]",
            "sid-gcc        rustc 1.97.1, bindgen 0.72.1, gcc 16.2.0: pins match",
            "trixie         rustc 1.85.1, bindgen 0.71.1, no gcc: differs: rustc 1.85.1, bindgen 0.71.1, no gcc",
            "set `toolchain = \"sid-gcc\"` for kernel debian-7.2",
        ] {
            assert!(rendered.contains(needle), "missing `{needle}` in:\n{rendered}");
        }
        let none = refusal("debian-7.2", "x86_64", "sid", &matches, &candidates[..1], &texts());
        assert!(error::render(&none).contains("pin a toolchain with exactly these compilers"));
    }

    #[test]
    fn debian_make_variables_are_reproduced() {
        let variables = kernel_variables(
            "override ARCH = arm64\noverride KERNELRELEASE = 7.2.13+deb14-arm64\nCCACHE = ccache\n\
             CC = $(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-16\n\
             DEB_BUILD_ARCH ?= $(shell dpkg --print-architecture)\noverride CROSS_COMPILE = aarch64-linux-gnu-\n\
             override CROSS_COMPILE_COMPAT = arm-linux-gnueabihf-\nexport CROSS_COMPILE_COMPAT CROSS32_COMPILE\n",
        );
        assert!(!variables.contains_key("CC"), "{variables:?}");
        let mut config = texts();
        config.cc = "aarch64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0".into();
        assert_eq!(
            make_variables(&variables, &config).unwrap(),
            [
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "CC=aarch64-linux-gnu-gcc-16",
                "CROSS_COMPILE_COMPAT=arm-linux-gnueabihf-",
                "CC_COMPAT=arm-linux-gnueabihf-gcc-16",
                "KERNELRELEASE=7.2.13+deb14-arm64"
            ]
        );
        let message = make_variables(&variables, &texts()).unwrap_err().to_string();
        assert!(message.contains("does not start with Debian's CROSS_COMPILE=aarch64-linux-gnu-"), "{message}");
        let arm = Arch::find("arm64").unwrap();
        let vars = make_variables(&variables, &config).unwrap();
        assert_eq!(
            make::make_command_with(arm, "/src", "/build", &vars).join(" "),
            "make -C /src O=/build ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- CC=aarch64-linux-gnu-gcc-16 \
             CROSS_COMPILE_COMPAT=arm-linux-gnueabihf- CC_COMPAT=arm-linux-gnueabihf-gcc-16 \
             KERNELRELEASE=7.2.13+deb14-arm64"
        );
    }

    #[test]
    fn distro_cells_skip_what_cannot_run_on_a_built_kernel() {
        let project = crate::project::Project::load(&repo()).unwrap();
        let debian = project.kernel("debian-7.2").unwrap();
        let own = project.kernel("7.2").unwrap();
        let x86 = Arch::find("x86_64").unwrap();
        let riscv = Arch::find("riscv").unwrap();
        assert_eq!(arch_skip_reason(debian, x86), None);
        assert_eq!(
            arch_skip_reason(debian, riscv).unwrap(),
            "kernel debian-7.2 lists Debian packages for arm64, x86_64 only"
        );
        assert_eq!(arch_skip_reason(own, riscv), None);
        let dir = std::env::temp_dir().join(format!("kforge-distro-kunit-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let build = KernelBuild {
            dir: dir.clone(),
            image: dir.join("vmlinuz"),
            compiled_steps: 0,
            cpu_seconds: 0.0,
            make_vars: Vec::new(),
            ccache: None,
        };
        fs_err::write(dir.join(".config"), CONFIG).unwrap();
        assert_eq!(kunit_off_reason(debian, &build).unwrap(), "CONFIG_KUNIT is off in Debian's kernel");
        fs_err::write(dir.join(".config"), CONFIG.replace("# CONFIG_KUNIT is not set", "CONFIG_KUNIT=y")).unwrap();
        assert_eq!(kunit_off_reason(debian, &build), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn olddefconfig_changes_are_listed_per_symbol() {
        let after = CONFIG
            .replace("16.2.0-4", "16.2.0-3cross1")
            .replace("# CONFIG_KUNIT is not set", "CONFIG_KUNIT=y")
            .replace("CONFIG_DEBUG_FS=y\n", "");
        let names: Vec<String> = changed_symbols(CONFIG, &after).into_iter().map(|change| change.name).collect();
        assert_eq!(names, ["CONFIG_CC_VERSION_TEXT", "CONFIG_DEBUG_FS", "CONFIG_KUNIT"]);
        assert!(changed_symbols(CONFIG, CONFIG).is_empty());
    }
}
