//! A config change rebuilds incrementally: the new kernel entry starts from the cached build of its lineage, and comes out byte-identical to a from-scratch build of the same key.
//!
//! Ignored by default (`cargo test -- --include-ignored` runs it, as CI does):
//! it needs the installed sid toolchain and the unpacked 7.2 source (the e2e
//! test's), and builds one x86_64 release kernel from scratch (~5 min on two cores).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn real_cache() -> PathBuf {
    std::env::var("KFORGE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kforge"))
}

/// `cargo xtask ARGS` with `cache` as the kforge cache; stderr is captured and echoed.
fn xtask(cache: &Path, args: &[&str]) -> (Output, String) {
    eprintln!("\n$ KFORGE_CACHE_DIR={} cargo xtask {}", cache.display(), args.join(" "));
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("KFORGE_CACHE_DIR", cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("{stderr}(exit status {:?})", output.status.code());
    (output, stderr)
}

/// A cache that shares the real one's toolchains, sources and store (by
/// symlink) but has its own kernels.
fn cache_sharing_toolchains(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("kernels")).unwrap();
    for shared in ["toolchains", "sources", "store", "downloads"] {
        let target = real_cache().join(shared);
        std::fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(&target, dir.join(shared)).unwrap();
    }
    dir.to_path_buf()
}

/// Removes a directory when dropped (the temporary package).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The CPU seconds a `Built kernel ...: N steps in W s wall, C s CPU` line reports.
fn cpu_seconds(stderr: &str) -> f64 {
    let line = stderr.lines().find(|line| line.contains("Built kernel")).expect("no `Built kernel` line");
    let before = line.split(" s CPU").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
#[ignore = "builds an x86_64 kernel from scratch and one incrementally: needs root, the installed toolchain and ~6 min (CI runs it)"]
fn an_added_option_rebuilds_incrementally_and_byte_identically() {
    let real = real_cache();
    // The base: the matrix's release x86_64 kernel (cached after the e2e test; built here otherwise).
    let (base, _) = xtask(&real, &["kernel", "build", "--arch", "x86_64", "--profile", "release"]);
    assert_eq!(base.status.code(), Some(0), "the base kernel did not build");
    let base_image = PathBuf::from(String::from_utf8_lossy(&base.stdout).trim());
    let base_entry = base_image.ancestors().find(|dir| dir.parent().is_some_and(|p| p.ends_with("kernels"))).unwrap();

    // A package that only adds one option, so the kernel is the base plus that option.
    let package = repo().join("drivers/kfincremental");
    let _cleanup = RemoveOnDrop(package.clone());
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("Cargo.toml"),
        "[package]\nname = \"kfincremental\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\npath = \"lib.rs\"\ntest = false\ndoctest = false\nbench = false\n\n[package.metadata.kforge]\nkconfig = [\"CONFIG_MAGIC_SYSRQ=y\"]\ntests = []\n",
    )
    .unwrap();
    std::fs::write(package.join("lib.rs"), "//! Adds CONFIG_MAGIC_SYSRQ to the kernel; no module.\n").unwrap();
    let args = ["kernel", "build", "--arch", "x86_64", "--profile", "release", "--driver", "kfincremental"];

    // Incremental: a cache holding only the base entry.
    let work = tempfile::tempdir_in(repo().join("target")).unwrap();
    let seeded_cache = cache_sharing_toolchains(&work.path().join("seeded"));
    let copied = Command::new("cp").arg("-a").arg(base_entry).arg(seeded_cache.join("kernels")).status().unwrap();
    assert!(copied.success());
    let (seeded, seeded_log) = xtask(&seeded_cache, &args);
    assert_eq!(seeded.status.code(), Some(0));
    assert!(seeded_log.contains("Seeding kernel 7.2/x86_64 from the cached build"), "not seeded:\n{seeded_log}");

    // From scratch: a cache with no kernels.
    let scratch_cache = cache_sharing_toolchains(&work.path().join("scratch"));
    let (scratch, scratch_log) = xtask(&scratch_cache, &args);
    assert_eq!(scratch.status.code(), Some(0));
    assert!(!scratch_log.contains("Seeding"), "{scratch_log}");

    let image = |output: &Output| std::fs::read(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
    assert!(image(&seeded) == image(&scratch), "the incremental kernel image differs from the from-scratch one");
    let vmlinux = |output: &Output| {
        let image = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let entry = image.ancestors().find(|dir| dir.join("vmlinux").is_file()).unwrap().to_path_buf();
        std::fs::read(entry.join("vmlinux")).unwrap()
    };
    assert!(vmlinux(&seeded) == vmlinux(&scratch), "vmlinux differs between the incremental and from-scratch builds");
    let (incremental_cpu, full_cpu) = (cpu_seconds(&seeded_log), cpu_seconds(&scratch_log));
    eprintln!(
        "one added option: {incremental_cpu:.0} CPU-s incremental vs {full_cpu:.0} CPU-s from scratch ({:.0}%)",
        100.0 * incremental_cpu / full_cpu
    );
}
