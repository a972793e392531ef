//! A config change rebuilds incrementally: a new kernel entry starts from the cached build of its lineage, and comes out byte-identical to a from-scratch build of the same key.
//!
//! Ignored by default (`cargo test -- --include-ignored` runs it, as CI does):
//! it needs the installed sid toolchain and the unpacked 7.2 source (the e2e
//! test's). It goes there and back: the matrix's x86_64 release kernel (the
//! base) plus one option, seeded from the base; then the base again, seeded
//! from that, compared byte for byte with the base built from scratch (its
//! image, vmlinux, Module.symvers and every module). So the byte check covers
//! taking an option out; adding it is checked only for changing the image,
//! as a second from-scratch build would not fit CI's time budget. When the
//! cached base is not known to be built from scratch (`.kforge-origin`), or
//! there is none, the base is built from scratch here (~5 min on two cores);
//! after the e2e test of a cold run it is reused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::repo;

fn real_cache() -> PathBuf {
    std::env::var("KFORGE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kforge"))
}

/// `cargo xtask ARGS` on `project` with `cache` as the kforge cache; stderr is captured and echoed.
fn xtask(project: &Path, cache: &Path, args: &[&str]) -> (Output, String) {
    eprintln!("\n$ KFORGE_CACHE_DIR={} cargo xtask {}   (in {})", cache.display(), args.join(" "), project.display());
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(project)
        .env("KFORGE_ROOT", project)
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

/// The compile steps a `Built kernel ...: N steps in ...` line reports.
fn compiled_steps(stderr: &str) -> u64 {
    let line = stderr.lines().find(|line| line.contains("Built kernel")).expect("no `Built kernel` line");
    let before = line.split(" steps in").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The kernel image a `kernel build` printed, and its cache entry.
fn built(output: &Output) -> (PathBuf, PathBuf) {
    let image = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let entry = image.ancestors().find(|dir| dir.join("vmlinux").is_file()).unwrap().to_path_buf();
    (image, entry)
}

/// The steps a complete entry's `.kforge-complete` marker records.
fn entry_steps(entry: &Path) -> u64 {
    let marker = std::fs::read_to_string(entry.join(".kforge-complete")).unwrap();
    marker.split(':').nth(1).unwrap().trim().trim_end_matches('}').trim().parse().unwrap()
}

/// The modules a kernel build made (`modules.order`), as paths in its entry.
fn modules(entry: &Path) -> Vec<PathBuf> {
    let order = std::fs::read_to_string(entry.join("modules.order")).unwrap_or_default();
    order.lines().map(|object| PathBuf::from(object.trim_end_matches(".o")).with_extension("ko")).collect()
}

/// `cp -a` of a kernel entry into `cache`'s kernels.
fn copy_entry(entry: &Path, cache: &Path) {
    let copied = Command::new("cp").arg("-a").arg(entry).arg(cache.join("kernels")).status().unwrap();
    assert!(copied.success());
}

#[test]
#[ignore = "builds an x86_64 kernel incrementally there and back (from scratch too, unless the e2e test left a scratch build): needs root, the installed toolchain and 2-6 min (CI runs it)"]
fn an_option_added_and_removed_again_rebuilds_incrementally_and_byte_identically() {
    let release = ["kernel", "build", "--arch", "x86_64", "--profile", "release"];
    let work = tempfile::tempdir_in(repo().join("target")).unwrap();
    // The test adds a package to a copy: `.ci/run`'s other lane runs kforge on
    // the checkout meanwhile (`cargo metadata` must never see a half-made package).
    let project = support::project_copy(&work.path().join("project"));
    // The base: the matrix's release x86_64 kernel, from scratch. The e2e test
    // of a cold run leaves one in the real cache; otherwise build one here.
    let (cached, _) = xtask(&project, &real_cache(), &release);
    assert_eq!(cached.status.code(), Some(0), "the base kernel did not build");
    let (_, cached_entry) = built(&cached);
    let origin = |entry: &Path| std::fs::read_to_string(entry.join(".kforge-origin")).unwrap_or_default();
    let (base_image, base_entry) = if origin(&cached_entry) != "scratch\n" {
        eprintln!(
            "the cached base {} is not known to be built from scratch (origin {:?}): building one",
            cached_entry.display(),
            origin(&cached_entry)
        );
        let scratch = cache_sharing_toolchains(&work.path().join("scratch"));
        let (output, log) = xtask(&project, &scratch, &release);
        assert_eq!(output.status.code(), Some(0));
        assert!(!log.contains("Seeding"), "{log}");
        built(&output)
    } else {
        built(&cached)
    };
    assert_eq!(origin(&base_entry), "scratch\n");

    // A package that only adds one option, so the kernel is the base plus that option.
    let package = project.join("drivers/kfincremental");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("Cargo.toml"),
        "[package]\nname = \"kfincremental\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\npath = \"lib.rs\"\ntest = false\ndoctest = false\nbench = false\n\n[package.metadata.kforge]\nkconfig = [\"CONFIG_MAGIC_SYSRQ=y\"]\ntests = []\n",
    )
    .unwrap();
    std::fs::write(package.join("lib.rs"), "//! Adds CONFIG_MAGIC_SYSRQ to the kernel; no module.\n").unwrap();
    let with_option = [&release[..], &["--driver", "kfincremental"]].concat();

    // There: a cache holding only the base, so the option is added to a copy of it.
    let there_cache = cache_sharing_toolchains(&work.path().join("there"));
    copy_entry(&base_entry, &there_cache);
    let (there, there_log) = xtask(&project, &there_cache, &with_option);
    assert_eq!(there.status.code(), Some(0));
    assert!(there_log.contains("Seeding kernel 7.2/x86_64 from the cached build"), "not seeded:\n{there_log}");
    let (there_image, there_entry) = built(&there);
    assert!(std::fs::read(&there_image).unwrap() != std::fs::read(&base_image).unwrap(), "the option changed nothing");

    // And back: a cache holding only base + option, so the option is taken out of a copy of it.
    let back_cache = cache_sharing_toolchains(&work.path().join("back"));
    copy_entry(&there_entry, &back_cache);
    let (back, back_log) = xtask(&project, &back_cache, &release);
    assert_eq!(back.status.code(), Some(0));
    assert!(back_log.contains("Seeding kernel 7.2/x86_64 from the cached build"), "not seeded:\n{back_log}");
    let (back_image, back_entry) = built(&back);
    assert_eq!(back_entry.file_name(), base_entry.file_name(), "the round trip is not the base's key");

    assert!(
        std::fs::read(&back_image).unwrap() == std::fs::read(&base_image).unwrap(),
        "the kernel image built there and back differs from the from-scratch one"
    );
    assert!(origin(&back_entry).starts_with("seeded from "), "{:?}", origin(&back_entry));
    let mut compared = vec![PathBuf::from("vmlinux"), PathBuf::from("Module.symvers")];
    compared.extend(modules(&base_entry));
    assert!(compared.len() > 2, "the base kernel has no modules to compare");
    assert_eq!(modules(&back_entry), modules(&base_entry), "the round trip built other modules");
    for file in &compared {
        assert!(
            std::fs::read(back_entry.join(file)).unwrap() == std::fs::read(base_entry.join(file)).unwrap(),
            "{} built there and back differs from the from-scratch one",
            file.display()
        );
    }
    eprintln!("byte-identical there and back: the image and {} files", compared.len());
    let (there_steps, back_steps, full_steps) =
        (compiled_steps(&there_log), compiled_steps(&back_log), entry_steps(&base_entry));
    eprintln!(
        "one option added: {there_steps} steps, removed again: {back_steps} steps, from scratch: {full_steps} steps ({:.0}% and {:.0}%)",
        100.0 * there_steps as f64 / full_steps as f64,
        100.0 * back_steps as f64 / full_steps as f64
    );
}
