//! Packing an SDK: choosing the files of a built kernel that an out-of-tree module build reads, and writing them with their manifest into a checked archive.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{
    FORMAT, KernelFacts, MANIFEST, Manifest, ToolchainFacts, dirs_named, prefix, read_text, sorted_names, walk,
};
use crate::arch::Arch;
use crate::dist::Entry;
use crate::kernel::config;
use crate::toolchain::Toolchain;
use crate::{cache, dist, error};

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

pub(super) fn manifest_json(manifest: &Manifest) -> Result<String> {
    Ok(serde_json::to_string_pretty(manifest)? + "\n")
}
