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

mod export;
mod unpack;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::progress;

pub use export::{ExportInput, export};
pub use unpack::{buildable, check_installed, check_spec, unpack};

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

/// The default archive name for a kernel and arch.
pub fn archive_name(kernel_id: &str, arch: &Arch) -> String {
    format!("{}.tar.gz", prefix(kernel_id, arch))
}

fn prefix(kernel_id: &str, arch: &Arch) -> String {
    format!("kforge-sdk-{kernel_id}-{}", arch.name)
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
    use std::path::PathBuf;

    use super::export::*;
    use super::unpack::*;
    use super::*;
    use crate::cache;
    use crate::dist::{self, Entry};
    use crate::driver::Driver;
    use crate::toolchain::Toolchain;

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
        let mut env = crate::test_support::ScopedEnv::lock();
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
        env.set("KFORGE_CACHE_DIR", base.join("cache"));
        let good = pack("good.tar.gz", &files, &manifest(&files));
        let unpacked = unpack(&good);
        let mut changed = files.clone();
        changed[1].data = b"other".to_vec();
        let bad = pack("bad.tar.gz", &changed, &manifest(&files));
        let refused = unpack(&bad);
        drop(env);

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
