//! The baseline benchmarks: kforge against what a kernel developer would run instead on the same work: a cold kernel build against plain `make` on the same `.config`, and `--suite kernel-doctests` against the kernel's own kunit.py.
//!
//! Both sides run on this machine's arch, with the same kernel source and
//! toolchain root, in the same sandbox. kforge runs as a child with a cache of
//! its own (`<work>/cold-build-baseline/cache`, `<work>/kunit/cache`) that
//! shares only [`SHARED_CACHE_DIRS`] with the real cache, so its kernel and
//! drivers are built from nothing; the other tool gets a fresh build directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Baseline, Measurement, Options, Phase, Target, Timed, cell_times, kforge, timed};
use crate::arch::Arch;
use crate::kernel::make;
use crate::kernel::source::SourceTree;
use crate::toolchain::Toolchain;
use crate::{cache, paths, session};

/// The cache directories a cold kforge run shares with the real cache:
/// installed toolchains, downloaded packages and unpacked sources. Kernels,
/// drivers and images are left out, so they are built from nothing.
const SHARED_CACHE_DIRS: &[&str] = &["toolchains", "store", "downloads", "sources"];

/// Measures a baseline phase.
pub fn measure(options: &Options<'_>, exe: &Path, project: &Path, phase: Phase) -> Result<Measurement> {
    // Not `<work>/<phase>`: that is the kforge run's output directory, which `kforge` empties first.
    let work = options.work.join(format!("{}-baseline", phase.id()));
    let args = phase.kforge_args()?;
    let tree = Tree::ready(project)?;
    if phase != Phase::ColdBuild {
        kunit_supported(&tree)?;
    }
    let (kforge_run, output, other) = match phase {
        Phase::ColdBuild => {
            let cache = fresh_cache(&work.join("cache"))?;
            let (run, output) = timed(|| kforge(options, exe, project, &flags_with_cache(&cache), &args, phase.id()))?;
            let config = built_config(&cache.join("kernels"), tree.arch)?;
            let plain = plain_make(&tree, &config, &work)?;
            // Two full kernel trees: nothing reads them again.
            cache::remove_dir_if_exists(&work)?;
            (run, output, plain)
        }
        Phase::KunitCold | Phase::KunitWarm => {
            // Both phases share one kforge cache and one kunit.py build directory.
            let shared = options.work.join("kunit");
            let cache = shared.join("cache");
            let build = shared.join("kunit-build");
            let warm = phase == Phase::KunitWarm;
            if !warm || !cache.is_dir() || !build.is_dir() {
                fresh_cache(&cache)?;
                cache::remove_dir_if_exists(&build)?;
                fs_err::create_dir_all(&build)?;
            }
            let flags = flags_with_cache(&cache);
            if warm {
                // Untimed, like the loops' warm-up: whatever an earlier run
                // (another kernel, another source) left to do is done here.
                kforge(options, exe, project, &flags, &args, &format!("{}-warm-up", phase.id()))?;
                kunit_py(&tree, &build, &work.join("kunit-warm-up.log"))?;
            }
            let (run, output) = timed(|| kforge(options, exe, project, &flags, &args, phase.id()))?;
            let kunit = kunit_py(&tree, &build, &work.join("kunit.log"))?;
            (run, output, kunit)
        }
        Phase::Noop | Phase::EditOne | Phase::EditAll => unreachable!("{} is a loop phase", phase.id()),
    };
    let Target::Ratio(target_ratio) = phase.target() else { unreachable!("a baseline phase has a ratio target") };
    let ratio = kforge_run.seconds / other.timed.seconds.max(f64::EPSILON);
    Ok(Measurement {
        phase,
        what: phase.describe().to_string(),
        command: format!("cargo xtask {}", args.join(" ")),
        seconds: kforge_run.seconds,
        target_seconds: other.timed.seconds * target_ratio,
        met: ratio <= target_ratio,
        // `kernel build` writes no results.json; the test runs do.
        cells: if phase == Phase::ColdBuild { Vec::new() } else { cell_times(&output.join("results.json"))? },
        cpu_seconds: kforge_run.cpu_seconds,
        baseline: Some(Baseline {
            what: other.what.to_string(),
            command: other.command,
            seconds: other.timed.seconds,
            cpu_seconds: other.timed.cpu_seconds,
            ratio,
            target_ratio,
        }),
        measured_at: 0,
    })
}

/// The default kernel's source and toolchain, for this machine's arch.
struct Tree {
    arch: &'static Arch,
    toolchain: Toolchain,
    source: SourceTree,
}

impl Tree {
    fn ready(project: &Path) -> Result<Tree> {
        let loaded = crate::project::Project::load(project)?;
        let kernel = loaded.select_kernels(None)?[0].clone();
        let options = crate::toolchain::install::InstallOptions::from_session();
        let toolchain = crate::pipeline::ready_toolchain(project, &kernel.toolchain, &options)?;
        let source = crate::kernel::source::prepare(&kernel, &toolchain)?;
        Ok(Tree { arch: Arch::host()?, toolchain, source })
    }
}

/// What the other tool did.
struct Other {
    what: &'static str,
    command: String,
    timed: Timed,
}

/// An empty cache directory that shares [`SHARED_CACHE_DIRS`] with the real cache.
fn fresh_cache(dir: &Path) -> Result<PathBuf> {
    cache::remove_dir_if_exists(dir)?;
    fs_err::create_dir_all(dir)?;
    // Absolute: a relative link would resolve against `dir`.
    let real = std::path::absolute(paths::cache_dir()?)?;
    for name in SHARED_CACHE_DIRS {
        if real.join(name).is_dir() {
            std::os::unix::fs::symlink(real.join(name), dir.join(name))
                .with_context(|| format!("cannot link {} into {}", real.join(name).display(), dir.display()))?;
        }
    }
    Ok(dir.to_path_buf())
}

/// The session's flags for a kforge child, with `cache` as its cache and its own output directory.
fn flags_with_cache(cache: &Path) -> Vec<String> {
    let mut child = session::current();
    child.output_dir = None;
    child.cache_dir = Some(cache.to_path_buf());
    child.forwarded()
}

/// The `.config` of the one kernel of `arch` a cold run built into `kernels`.
fn built_config(kernels: &Path, arch: &Arch) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in fs_err::read_dir(kernels)? {
        let path = entry?.path();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        // A finished entry has its completion marker; `.partial` ones do not.
        if name.contains(&format!("-{}-", arch.name)) && path.join(crate::kernel::build::COMPLETE_MARKER).is_file() {
            found.push(path.join(".config"));
        }
    }
    match found.as_slice() {
        [config] if config.is_file() => Ok(config.clone()),
        _ => Err(anyhow::anyhow!(
            "expected one finished {} kernel with a .config in {}, found {found:?}",
            arch.name,
            kernels.display()
        )),
    }
}

/// Plain make on `config`, in a fresh build directory in the same sandbox as
/// kforge's builds: `olddefconfig`, the build, and the UAPI headers kforge
/// also makes, each with `-j<jobs>`.
fn plain_make(tree: &Tree, config: &Path, work: &Path) -> Result<Other> {
    let build = work.join("plain-make");
    cache::remove_dir_if_exists(&build)?;
    fs_err::create_dir_all(&build)?;
    fs_err::copy(config, build.join(".config"))?;
    let steps = plain_make_steps(tree.arch, session::current().jobs());
    let sandbox = tree.toolchain.sandbox()?;
    let (timed, ()) = timed(|| {
        for (name, argv) in &steps {
            let cmd = make::jail(&sandbox, &tree.source, &build).command(argv)?;
            make::run_make(&cmd, &work.join(format!("plain-make-{name}.log")), "plain make", None)?;
        }
        Ok(())
    })?;
    let command = steps.iter().map(|(_, argv)| argv.join(" ")).collect::<Vec<_>>().join(" && ");
    Ok(Other { what: "plain make on kforge's .config", command, timed })
}

/// Plain make's steps, named for their logs: `olddefconfig`, the build and
/// the UAPI headers, each as kforge's own make runs it.
fn plain_make_steps(arch: &Arch, jobs: usize) -> Vec<(&'static str, Vec<String>)> {
    let jobs = format!("-j{jobs}");
    let make = make::make_command(arch, "/src", "/build");
    vec![
        ("olddefconfig", [make.clone(), vec!["olddefconfig".to_string()]].concat()),
        ("build", [make, vec![jobs.clone()]].concat()),
        ("headers", [make::headers_command(arch, &[]), vec![jobs]].concat()),
    ]
}

/// The kunit.py arguments for `arch`: the Rust doctests' kunitconfig, LLVM,
/// this session's jobs, `/build` as its build directory.
fn kunit_argv(arch: &Arch, jobs: usize) -> Vec<String> {
    [
        "python3",
        "/src/tools/testing/kunit/kunit.py",
        "run",
        "--kunitconfig=/src/rust",
        &format!("--arch={}", arch.name),
        "--build_dir=/build",
        &format!("--jobs={jobs}"),
        "--make_options=LLVM=1",
    ]
    .iter()
    .map(|word| word.to_string())
    .collect()
}

/// Whether kunit.py can boot this arch: it needs a QEMU configuration for it.
/// Checked before anything is timed.
fn kunit_supported(tree: &Tree) -> Result<()> {
    let script = tree.source.dir.join("tools/testing/kunit/qemu_configs").join(format!("{}.py", tree.arch.name));
    if script.is_file() {
        return Ok(());
    }
    Err(crate::error::user_hint(
        format!("kunit.py has no QEMU configuration for {} ({} is missing)", tree.arch.name, script.display()),
        "run the other benchmarks here: --only noop,edit-one,edit-all,cold-build",
    ))
}

/// `kunit.py run` in `build`, in the toolchain's sandbox with the source at /src.
fn kunit_py(tree: &Tree, build: &Path, log: &Path) -> Result<Other> {
    let argv = kunit_argv(tree.arch, session::current().jobs());
    let sandbox = tree.toolchain.sandbox()?;
    let (timed, ()) = timed(|| {
        let cmd = make::jail(&sandbox, &tree.source, build).command(&argv)?;
        make::run_make(&cmd, log, "kunit.py", None).map(|_| ())
    })?;
    Ok(Other { what: "the kernel's kunit.py", command: argv.join(" "), timed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kunit_runs_the_rust_kunitconfig_with_llvm_in_the_sandbox_build_directory() {
        let arch = Arch::find("arm64").unwrap();
        let argv = kunit_argv(arch, 2).join(" ");
        assert_eq!(
            argv,
            "python3 /src/tools/testing/kunit/kunit.py run --kunitconfig=/src/rust --arch=arm64 \
             --build_dir=/build --jobs=2 --make_options=LLVM=1"
        );
    }

    #[test]
    fn plain_make_runs_kforges_make_command_in_three_steps() {
        let arch = Arch::find("arm64").unwrap();
        let command: Vec<String> = plain_make_steps(arch, 2).into_iter().map(|(_, argv)| argv.join(" ")).collect();
        assert_eq!(
            command,
            [
                "make -C /src O=/build ARCH=arm64 LLVM=1 olddefconfig",
                "make -C /src O=/build ARCH=arm64 LLVM=1 -j2",
                "make -C /src O=/build ARCH=arm64 LLVM=1 headers -j2",
            ]
        );
    }

    #[test]
    fn a_cold_run_finds_exactly_one_finished_kernel_of_its_arch() {
        let dir = tempfile::tempdir().unwrap();
        let arch = Arch::find("x86_64").unwrap();
        let err = format!("{:#}", built_config(dir.path(), arch).unwrap_err());
        assert!(err.contains("expected one finished x86_64 kernel"), "{err}");
        for name in ["7.2-x86_64-abc", "7.2-x86_64-def.partial", "7.2-arm64-abc"] {
            fs_err::create_dir_all(dir.path().join(name)).unwrap();
            fs_err::write(dir.path().join(name).join(".config"), "CONFIG_RUST=y\n").unwrap();
        }
        fs_err::write(dir.path().join("7.2-x86_64-abc.lock"), "").unwrap();
        for finished in ["7.2-x86_64-abc", "7.2-arm64-abc"] {
            fs_err::write(dir.path().join(finished).join(".kforge-complete"), "{}").unwrap();
        }
        assert_eq!(built_config(dir.path(), arch).unwrap(), dir.path().join("7.2-x86_64-abc/.config"));
    }
}
