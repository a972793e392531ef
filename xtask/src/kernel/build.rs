//! Configures and builds one kernel for one arch inside the toolchain root, cached by a key over every input.
//!
//! The build runs in `<entry>.partial` (kept across interrupted runs, since
//! kbuild is incremental and safe to resume) and is renamed to `<entry>` when
//! it completes. A complete entry of a verified source is used as it is; one
//! of a local `path` source is re-made on every use: with nothing changed
//! kbuild compiles nothing, which `compiled_steps == 0` reports.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::config::{self, Fragment};
use super::make::{self, make_command, make_command_with};
use super::source::SourceTree;
use crate::arch::Arch;
use crate::jobserver::Parallel;
use crate::process::{Cmd, Control, Outcome};
use crate::project::Profile;
use crate::stage::{Category, StageContext};
use crate::toolchain::Toolchain;
use crate::{cache, error, paths, progress};

/// Everything decided before building.
#[derive(Debug, Clone)]
pub struct KernelPlan {
    pub kernel_id: String,
    pub arch: &'static Arch,
    /// Full hex key over every input.
    pub key: String,
    /// The published cache entry (the build directory once complete).
    pub entry: PathBuf,
    pub kind: PlanKind,
}

/// The two kinds of kernel a cell can have.
#[derive(Debug, Clone)]
pub enum PlanKind {
    /// A kernel kforge configures from its fragments and builds (this module).
    Own(OwnPlan),
    /// A distro's own built kernel (`kernel::distro`): not built, but its
    /// source prepared with the distro's config for out-of-tree modules.
    Distro(super::distro::DistroPlan),
}

/// What only a kernel kforge builds has.
#[derive(Debug, Clone)]
pub struct OwnPlan {
    pub fragments: Vec<Fragment>,
    /// Whether a complete entry is re-made on every use: only when the source
    /// can change under it (a local `path`). A verified source (a Debian
    /// package, a checksummed tarball) cannot, so its complete entry is used
    /// as it is, without running make.
    pub remake_complete: bool,
    /// Key over every input but the config options (source, toolchain, arch,
    /// profile): builds of one lineage differ only in their `.config`, so a
    /// new entry can start from a complete one of its lineage and let Kbuild
    /// rebuild what the config change touches. Empty: never seeded.
    pub lineage: String,
    /// A PEM certificate the kernel trusts for module signatures (a Secure
    /// Boot cell's project db certificate): written to [`TRUSTED_CERT_PATH`]
    /// in the build directory, which a fragment names as CONFIG_SYSTEM_TRUSTED_KEYS.
    pub trusted_certificate: Option<String>,
}

impl KernelPlan {
    /// The config fragments of a kernel kforge builds; none for a distro's.
    pub fn fragments(&self) -> &[Fragment] {
        match &self.kind {
            PlanKind::Own(own) => &own.fragments,
            PlanKind::Distro(_) => &[],
        }
    }
}

/// Where a plan's trusted certificate is written, as the jail sees the build directory.
pub const TRUSTED_CERT_PATH: &str = "/build/kforge-trusted-certs.pem";

/// A finished build.
#[derive(Debug, Clone)]
pub struct KernelBuild {
    pub dir: PathBuf,
    pub image: PathBuf,
    /// Compile/link steps this run performed (0: it was up to date).
    pub compiled_steps: usize,
    /// CPU seconds (user + system) the make runs of this build took.
    pub cpu_seconds: f64,
    /// Make variables that replace `LLVM=1` for a kernel kforge did not
    /// configure (a distro's: its CC, CROSS_COMPILE, KERNELRELEASE); empty for kforge's own.
    pub make_vars: Vec<String>,
    /// What ccache did in this build, when it was on (`--ccache`).
    pub ccache: Option<crate::ccache::Counts>,
}

impl KernelBuild {
    /// The make command for this kernel (modules built against it use it).
    pub fn make_command(&self, arch: &Arch, source: &str, build: &str) -> Vec<String> {
        make_command_with(arch, source, build, &self.make_vars)
    }
}

pub const COMPLETE_MARKER: &str = ".kforge-complete";
/// ccache's stats log of the running build (`ccache.rs`), in the build directory; removed once read.
const CCACHE_STATS_LOG: &str = ".kforge-ccache-stats";
const CONFIG_MARKER: &str = ".kforge-config-ok";
/// A complete entry's [`KernelPlan::lineage`].
const LINEAGE_FILE: &str = ".kforge-lineage";
/// How a complete entry's build started: `scratch`, or `seeded from <entry>`
/// when it began as a copy of another ([`seed_from`]). Entries completed
/// before kforge wrote it have none: their origin is unknown.
pub const ORIGIN_FILE: &str = ".kforge-origin";

/// Computes the cache key and entry: source identity, the toolchain's build key, arch and
/// what the fragments request (after later fragments override earlier ones),
/// so comments, fragment names and drivers that need nothing do not cause rebuilds.
/// A kernel that also trusts `trusted_certificate` (PEM) for module
/// signatures has fragments naming [`TRUSTED_CERT_PATH`] as
/// CONFIG_SYSTEM_TRUSTED_KEYS; the certificate is part of the key, and the
/// entry's name ends in `-trusting` so it is told apart in the cache.
pub fn plan(
    kernel_id: &str,
    arch: &'static Arch,
    profile: Profile,
    toolchain: &Toolchain,
    source_identity: &str,
    fragments: Vec<Fragment>,
    trusted_certificate: Option<String>,
) -> Result<KernelPlan> {
    let mut key = cache::KeyHasher::new();
    key.input("source", source_identity).input("toolchain", &toolchain.build_key).input("arch", arch.name);
    if !arch.module_rustflags.is_empty() {
        // Only where set, so adding the field changed no other arch's key.
        key.input("module-rustflags", arch.module_rustflags.join(" "));
    }
    if profile != Profile::Release {
        // Only for non-release profiles, so release entries kept their pre-profile keys and names.
        key.input("profile", profile.as_str());
    }
    let mut lineage = key.clone();
    lineage.input("lineage-profile", profile.as_str());
    for (name, request) in config::requests(&fragments) {
        key.input("option", format!("{name}={}", request.value));
    }
    if let Some(pem) = &trusted_certificate {
        key.input("trusted-certificate", pem);
    }
    let mut name = match profile {
        Profile::Release => format!("{kernel_id}-{}-{}", arch.name, key.short()),
        _ => format!("{kernel_id}-{}-{profile}-{}", arch.name, key.short()),
    };
    if trusted_certificate.is_some() {
        name.push_str("-trusting");
    }
    let entry = paths::cache_dir()?.join("kernels").join(name);
    Ok(KernelPlan {
        kernel_id: kernel_id.to_string(),
        arch,
        key: key.finish(),
        entry,
        kind: PlanKind::Own(OwnPlan {
            fragments,
            remake_complete: source_identity.starts_with(super::source::MUTABLE_IDENTITY_PREFIX),
            lineage: lineage.finish(),
            trusted_certificate,
        }),
    })
}

/// The commands that configure the tree, in order (for `--dry-run` and the build).
pub fn config_commands(plan: &KernelPlan) -> Vec<Vec<String>> {
    let own = match &plan.kind {
        PlanKind::Own(own) => own,
        PlanKind::Distro(_) => return vec![super::distro::planned_make(plan.arch, "olddefconfig")],
    };
    let make = make_command(plan.arch, "/src", "/build");
    let mut merge = vec![
        "/src/scripts/kconfig/merge_config.sh".to_string(),
        "-m".to_string(),
        "-O".to_string(),
        "/build".to_string(),
        "/build/.config".to_string(),
    ];
    merge.extend(own.fragments.iter().map(|fragment| format!("/build/kforge-fragments/{}", fragment.name)));
    vec![
        [make.clone(), vec!["tinyconfig".to_string()]].concat(),
        merge,
        [make, vec!["olddefconfig".to_string()]].concat(),
    ]
}

/// The command that builds the kernel image and in-tree modules.
pub fn build_command(plan: &KernelPlan, parallel: Parallel<'_>) -> Vec<String> {
    let make = match &plan.kind {
        PlanKind::Own(_) => make_command(plan.arch, "/src", "/build"),
        PlanKind::Distro(_) => super::distro::planned_make(plan.arch, "modules_prepare"),
    };
    [make, parallel.make_args()].concat()
}

/// Builds (or re-makes) the kernel. `log` receives the full make output.
pub fn build(
    plan: &KernelPlan,
    own: &OwnPlan,
    toolchain: &Toolchain,
    source: &SourceTree,
    log: &Path,
    parallel: Parallel<'_>,
) -> Result<KernelBuild> {
    let (_lock, dir, complete) = configured_dir(plan, own, toolchain, source, log)?;
    if complete && !own.remake_complete && dir.join(plan.arch.kernel_image).is_file() {
        fs_err::write(
            log,
            format!("kforge: {} is complete and its source cannot change: nothing to make\n", dir.display()),
        )?;
        return Ok(KernelBuild {
            image: dir.join(plan.arch.kernel_image),
            dir,
            compiled_steps: 0,
            cpu_seconds: 0.0,
            make_vars: Vec::new(),
            ccache: None,
        });
    }
    let sandbox = toolchain.sandbox().stage(Category::Toolchain, "toolchain unavailable")?;
    let ccache = crate::ccache::of_session(toolchain).stage(Category::Toolchain, "ccache unavailable")?;
    let ccache_stats = dir.join(CCACHE_STATS_LOG);
    let _ = fs_err::remove_file(&ccache_stats);
    let jail = |build_dir: &Path| {
        let jail = make::jail(&sandbox, source, build_dir);
        match &ccache {
            Some(ccache) => ccache.attach(jail, &format!("/build/{CCACHE_STATS_LOG}")),
            None => jail,
        }
    };

    let steps_before = estimate_steps(plan.arch);
    let cmd = parallel.attach(jail(&dir)).command(&make::with_cpu_times(build_command(plan, parallel)))?;
    let (compiled, cpu_seconds) = make::run_make(&cmd, log, &label(plan), steps_before)
        .stage(Category::Build, format!("kernel build for {} failed", label(plan)))?;
    let headers = parallel.attach(jail(&dir)).command(&make::with_cpu_times(make::headers_command(plan.arch, &[])))?;
    let headers_log = cache::sibling(log, "headers");
    let (header_steps, header_cpu) = make::run_make(&headers, &headers_log, &label(plan), None)
        .stage(Category::Build, format!("UAPI headers for {} failed", label(plan)))?;
    let compiled = compiled + header_steps;
    let cpu_seconds = cpu_seconds + header_cpu;
    let ccache = match ccache {
        Some(_) => Some(crate::ccache::Counts::take_stats_log(&ccache_stats)?),
        None => None,
    };

    let image_in = |dir: &Path| dir.join(plan.arch.kernel_image);
    if !image_in(&dir).is_file() {
        return Err(anyhow::anyhow!("make succeeded but {} is missing", image_in(&dir).display()))
            .stage(Category::Build, format!("kernel build for {} failed", label(plan)));
    }
    let final_dir = if complete {
        dir
    } else {
        if !dir.join(ORIGIN_FILE).is_file() {
            fs_err::write(dir.join(ORIGIN_FILE), "scratch\n")?;
        }
        fs_err::write(dir.join(COMPLETE_MARKER), format!("{{\"steps\": {compiled}}}\n"))?;
        fs_err::write(dir.join(LINEAGE_FILE), &own.lineage)?;
        fs_err::rename(&dir, &plan.entry)?;
        plan.entry.clone()
    };
    Ok(KernelBuild {
        image: image_in(&final_dir),
        dir: final_dir,
        compiled_steps: compiled,
        cpu_seconds,
        make_vars: Vec::new(),
        ccache,
    })
}

/// Locks the entry, picks its directory (the complete entry, else the
/// resumable `.partial` one) and configures it if needed. Returns the lock,
/// the directory and whether the entry was already complete.
fn configured_dir(
    plan: &KernelPlan,
    own: &OwnPlan,
    toolchain: &Toolchain,
    source: &SourceTree,
    log: &Path,
) -> Result<(cache::EntryLock, PathBuf, bool)> {
    if let Some(parent) = log.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let lock = cache::lock(&plan.entry)?;
    let complete = plan.entry.join(COMPLETE_MARKER).is_file();
    let dir = if complete { plan.entry.clone() } else { cache::sibling(&plan.entry, "partial") };
    if complete && !own.lineage.is_empty() && !dir.join(LINEAGE_FILE).is_file() {
        // An entry completed before lineages were recorded: its key matched, so this is its lineage.
        fs_err::write(dir.join(LINEAGE_FILE), &own.lineage)?;
    }
    if !complete && !dir.exists() && !own.lineage.is_empty() {
        let kernels = plan.entry.parent().unwrap_or(Path::new("."));
        if let Some(nearest) = nearest_complete_build(kernels, &own.lineage) {
            seed_from(plan, &nearest, &dir)?;
        }
    }
    fs_err::create_dir_all(&dir)?;
    if !dir.join(CONFIG_MARKER).is_file() || !dir.join(".config").is_file() {
        let sandbox = toolchain.sandbox().stage(Category::Toolchain, "toolchain unavailable")?;
        configure(plan, own, &dir, log, &make::jail(&sandbox, source, &dir))
            .stage(Category::Config, format!("kernel config for {} failed", label(plan)))?;
    }
    Ok((lock, dir, complete))
}

/// The most recently completed entry in `kernels` of `lineage`, if any: the
/// same source, toolchain, arch and profile with other config options.
fn nearest_complete_build(kernels: &Path, lineage: &str) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(kernels).ok()?.flatten() {
        let path = entry.path();
        if std::fs::read_to_string(path.join(LINEAGE_FILE)).ok().as_deref() != Some(lineage) {
            continue;
        }
        let Ok(completed) = std::fs::metadata(path.join(COMPLETE_MARKER)).and_then(|meta| meta.modified()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(time, _)| completed > *time) {
            best = Some((completed, path));
        }
    }
    best.map(|(_, path)| path)
}

/// Starts the `.partial` directory `partial` of a new entry as a copy of the
/// complete build `nearest` (`cp -a --reflink=auto`, which keeps the mtimes
/// Kbuild compares), without its markers: configuring writes the new
/// `.config`, and Kbuild then rebuilds only what the changed options touch.
/// The copy goes to a sibling first, so an interrupted copy is never taken
/// for a build directory.
fn seed_from(plan: &KernelPlan, nearest: &Path, partial: &Path) -> Result<()> {
    let name = nearest.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    progress::status("Seeding", format!("kernel {} from the cached build {name}", label(plan)));
    let seeding = cache::sibling(partial, "seeding");
    cache::remove_dir_if_exists(&seeding)?;
    Cmd::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(nearest.join("."))
        .arg(&seeding)
        .run()
        .stage(Category::Infrastructure, format!("could not copy {} to start {}", nearest.display(), label(plan)))?;
    for marker in [COMPLETE_MARKER, CONFIG_MARKER, LINEAGE_FILE, ORIGIN_FILE] {
        let _ = std::fs::remove_file(seeding.join(marker));
    }
    fs_err::write(seeding.join(ORIGIN_FILE), format!("seeded from {name}\n"))?;
    fs_err::rename(&seeding, partial)?;
    Ok(())
}

/// Configures the kernel (checking every requested option) without building
/// it; the next build continues from this configuration. Returns the `.config`.
pub fn configure_only(plan: &KernelPlan, toolchain: &Toolchain, source: &SourceTree, log: &Path) -> Result<PathBuf> {
    let PlanKind::Own(own) = &plan.kind else {
        bail!(error::user(format!(
            "kernel {} is a distribution's built kernel: its config is the distribution's, not kforge's to configure",
            plan.kernel_id
        )));
    };
    let (_lock, dir, _) = configured_dir(plan, own, toolchain, source, log)?;
    Ok(dir.join(".config"))
}

fn label(plan: &KernelPlan) -> String {
    format!("{}/{}", plan.kernel_id, plan.arch.name)
}

fn configure(plan: &KernelPlan, own: &OwnPlan, dir: &Path, log: &Path, jail: &crate::sandbox::Jail<'_>) -> Result<()> {
    progress::status("Configuring", format!("kernel {} ({} fragments)", label(plan), own.fragments.len()));
    let fragment_dir = dir.join("kforge-fragments");
    cache::remove_dir_if_exists(&fragment_dir)?;
    fs_err::create_dir_all(&fragment_dir)?;
    for fragment in &own.fragments {
        fs_err::write(fragment_dir.join(&fragment.name), &fragment.text)?;
    }
    if let Some(pem) = &own.trusted_certificate {
        let name = TRUSTED_CERT_PATH.strip_prefix("/build/").unwrap_or(TRUSTED_CERT_PATH);
        fs_err::write(dir.join(name), pem)?;
    }
    let _ = fs_err::remove_file(dir.join(CONFIG_MARKER));
    // Each command streams into a part file that is appended to the config log.
    let config_log = make::config_log_path(log);
    let part = cache::sibling(log, "config.part");
    fs_err::write(&config_log, "")?;
    for argv in config_commands(plan) {
        let cmd = jail.command(&argv)?;
        let started = std::time::Instant::now();
        let outcome = cmd.stream(&part, None, &mut |_| Control::Continue)?;
        // Each step's wall time, for docs/benchmarks.md's account of the configuration's cost.
        let step = match argv.first().map(String::as_str) {
            Some("make") => argv.last(),
            _ => argv.first(),
        };
        fs_err::OpenOptions::new().append(true).open(&part).and_then(|mut file| {
            use std::io::Write;
            let step = step.map(String::as_str).unwrap_or_default();
            writeln!(file, "kforge: configuration step `{step}` took {:.1} s", started.elapsed().as_secs_f64())
        })?;
        make::append_log(&config_log, &part)?;
        let _ = fs_err::remove_file(&part);
        if !matches!(outcome, Outcome::Exited(status) if status.success()) {
            return Err(make::process_failure(&cmd, outcome, &config_log));
        }
    }
    let final_config = fs_err::read_to_string(dir.join(".config"))?;
    let dropped = config::dropped(&config::requests(&own.fragments), &final_config);
    if !dropped.is_empty() {
        let mut message = String::from("options requested by the fragments did not survive into .config:");
        for option in &dropped {
            message.push_str(&format!("\n  {option}"));
        }
        if dropped.iter().any(|option| option.name == "CONFIG_RUST") {
            let cmd =
                jail.command(&[make_command(plan.arch, "/src", "/build"), vec!["rustavailable".to_string()]].concat())?;
            let output = cmd.output()?;
            message.push_str("\n\nthe kernel's `make rustavailable` says:");
            for line in
                String::from_utf8_lossy(&output.stdout).lines().chain(String::from_utf8_lossy(&output.stderr).lines())
            {
                if !line.starts_with("make") {
                    message.push_str(&format!("\n  {line}"));
                }
            }
        }
        if let Some(option) = dropped.iter().find(|option| config::is_detector_option(&option.name)) {
            message.push_str(&format!(
                "\n\n{} is a bug detector of the debug profile: when {} cannot have it (the kernel's Kconfig \
                 says why), drop it in kernel-config/{} with a `# kforge-no-detector: <name>: <reason>` line, \
                 or test with --profile release",
                option.name,
                plan.arch.name,
                config::debug_fragment(plan.arch)
            ));
        }
        bail!(error::user_hint(
            message,
            "an option usually drops when a dependency is missing: add it to the fragment, or check `make menuconfig` for what it depends on"
        ));
    }
    if let Some(problem) = config::verdict_requirements(&final_config) {
        bail!(error::user_hint(
            problem,
            "keep CONFIG_PRINTK_TIME=y (kernel-config/base.config sets it): remove the fragment line that turns it off"
        ));
    }
    fs_err::write(dir.join(CONFIG_MARKER), "")?;
    Ok(())
}

/// Steps a previous complete build of this arch took (for a progress bar), if known.
fn estimate_steps(arch: &Arch) -> Option<u64> {
    let dir = paths::cache_dir().ok()?.join("kernels");
    let suffix_hint = format!("-{}-", arch.name);
    let mut best = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.contains(&suffix_hint) {
            continue;
        }
        let marker = std::fs::read_to_string(entry.path().join(COMPLETE_MARKER)).unwrap_or_default();
        let steps: u64 = marker.chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
        if steps > 0 {
            best = Some(best.map_or(steps, |known: u64| known.max(steps)));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage(plan: &KernelPlan) -> String {
        match &plan.kind {
            PlanKind::Own(own) => own.lineage.clone(),
            PlanKind::Distro(_) => panic!("a distro plan has no lineage"),
        }
    }

    #[test]
    fn a_new_entry_starts_from_the_newest_complete_build_of_its_lineage_only() {
        let kernels = tempfile::tempdir().unwrap();
        let make = |name: &str, lineage: &str, complete: bool| {
            let dir = kernels.path().join(name);
            fs_err::create_dir_all(&dir).unwrap();
            fs_err::write(dir.join(LINEAGE_FILE), lineage).unwrap();
            if complete {
                fs_err::write(dir.join(COMPLETE_MARKER), "{\"steps\": 1}\n").unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            dir
        };
        assert_eq!(nearest_complete_build(kernels.path(), "L"), None);
        let _older = make("7.2-x86_64-1111111111111111", "L", true);
        let newer = make("7.2-x86_64-2222222222222222", "L", true);
        make("7.2-x86_64-3333333333333333.partial", "L", false);
        make("7.2-arm64-4444444444444444", "other", true);
        assert_eq!(nearest_complete_build(kernels.path(), "L"), Some(newer));
        assert_eq!(nearest_complete_build(kernels.path(), "none"), None);
    }

    #[test]
    fn a_seeded_entry_names_its_origin_and_keeps_none_of_its_markers() {
        let _guard = crate::test_support::env_lock();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = Toolchain::load(&repo, "sid").unwrap();
        let x86 = crate::arch::Arch::find("x86_64").unwrap();
        let fragments = config::fragments(&repo, x86, Profile::Release, &[]).unwrap();
        let plan = plan("7.2", x86, Profile::Release, &toolchain, "debian:a", fragments, None).unwrap();
        let kernels = tempfile::tempdir().unwrap();
        let origin = kernels.path().join("7.2-x86_64-1111111111111111");
        fs_err::create_dir_all(&origin).unwrap();
        for (file, text) in [
            (COMPLETE_MARKER, "{}"),
            (CONFIG_MARKER, ""),
            (LINEAGE_FILE, "L"),
            (ORIGIN_FILE, "scratch\n"),
            ("vmlinux", "built"),
        ] {
            fs_err::write(origin.join(file), text).unwrap();
        }
        let partial = kernels.path().join("7.2-x86_64-2222222222222222.partial");
        seed_from(&plan, &origin, &partial).unwrap();
        assert_eq!(fs_err::read_to_string(partial.join("vmlinux")).unwrap(), "built");
        assert_eq!(
            fs_err::read_to_string(partial.join(ORIGIN_FILE)).unwrap(),
            "seeded from 7.2-x86_64-1111111111111111\n"
        );
        for marker in [COMPLETE_MARKER, CONFIG_MARKER, LINEAGE_FILE] {
            assert!(!partial.join(marker).exists(), "{marker} was copied");
        }
    }

    #[test]
    fn plan_key_changes_with_each_input() {
        let _guard = crate::test_support::env_lock();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = Toolchain::load(&repo, "sid").unwrap();
        let x86 = crate::arch::Arch::find("x86_64").unwrap();
        let arm = crate::arch::Arch::find("arm64").unwrap();
        let release = Profile::Release;
        let fragments = config::fragments(&repo, x86, release, &[]).unwrap();
        let base = plan("7.2", x86, release, &toolchain, "debian:a", fragments.clone(), None).unwrap();
        assert_eq!(base.key, plan("7.2", x86, release, &toolchain, "debian:a", fragments.clone(), None).unwrap().key);
        assert_ne!(base.key, plan("7.2", x86, release, &toolchain, "debian:b", fragments.clone(), None).unwrap().key);
        assert_ne!(base.key, plan("7.2", arm, release, &toolchain, "debian:a", fragments.clone(), None).unwrap().key);
        let mut changed = fragments.clone();
        changed[0].text.push_str("CONFIG_X=y\n");
        let option_added = plan("7.2", x86, release, &toolchain, "debian:a", changed, None).unwrap();
        assert_ne!(base.key, option_added.key);
        // Only the options differ: the same lineage, so one can start from the other.
        assert_eq!(lineage(&base), lineage(&option_added));
        assert_ne!(
            lineage(&base),
            lineage(&plan("7.2", arm, release, &toolchain, "debian:a", fragments.clone(), None).unwrap())
        );
        assert_ne!(
            lineage(&base),
            lineage(&plan("7.2", x86, release, &toolchain, "debian:b", fragments.clone(), None).unwrap())
        );
        let mut commented = fragments.clone();
        commented[0].text.push_str("# only a comment\n");
        assert_eq!(base.key, plan("7.2", x86, release, &toolchain, "debian:a", commented, None).unwrap().key);
        // The profile is in the key and the entry's name, even with the same options.
        let debug = plan("7.2", x86, Profile::Debug, &toolchain, "debian:a", fragments.clone(), None).unwrap();
        assert_ne!(base.key, debug.key);
        let name = |plan: &KernelPlan| plan.entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name(&debug).starts_with("7.2-x86_64-debug-"), "{}", name(&debug));
        assert!(!name(&base).contains("debug"), "{}", name(&base));
        // A trusted certificate is in the key and the name, not in the
        // lineage: a Secure Boot kernel starts from a copy of the plain one.
        let trusting = |pem: &str| {
            plan("7.2", x86, release, &toolchain, "debian:a", fragments.clone(), Some(pem.to_string())).unwrap()
        };
        assert_ne!(base.key, trusting("A").key);
        assert_ne!(trusting("A").key, trusting("B").key);
        assert_eq!(lineage(&base), lineage(&trusting("A")));
        assert!(name(&trusting("A")).ends_with("-trusting"), "{}", name(&trusting("A")));
    }

    #[test]
    fn config_plan_merges_fragments_in_order() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = Toolchain::load(&repo, "sid").unwrap();
        let arm = crate::arch::Arch::find("arm64").unwrap();
        let fragments = config::fragments(&repo, arm, Profile::Release, &[]).unwrap();
        let plan = plan("7.2", arm, Profile::Release, &toolchain, "s", fragments, None).unwrap();
        let commands: Vec<String> = config_commands(&plan).iter().map(|argv| argv.join(" ")).collect();
        expect_test::expect![[r#"
            [
                "make -C /src O=/build ARCH=arm64 LLVM=1 tinyconfig",
                "/src/scripts/kconfig/merge_config.sh -m -O /build /build/.config /build/kforge-fragments/10-base.config /build/kforge-fragments/20-arm64.config /build/kforge-fragments/30-rust.config",
                "make -C /src O=/build ARCH=arm64 LLVM=1 olddefconfig",
            ]
        "#]]
        .assert_debug_eq(&commands);
        assert_eq!(build_command(&plan, Parallel::Jobs(2)).join(" "), "make -C /src O=/build ARCH=arm64 LLVM=1 -j2");
    }
}
