//! The real thing: install the pinned toolchain, build Linux for x86_64 and arm64, boot both in QEMU (directly, then from the UEFI disk under Secure Boot) and check the driver tests ran.
//!
//! Ignored by default (`cargo test -- --include-ignored` runs it, as CI does):
//! it needs root (bubblewrap, `unshare -n` for the offline check) or user
//! namespaces, the Debian archive and ~20 minutes on two cores.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::repo;

/// The profile of this test's cells. The project's default is `debug`, whose
/// boots take 170-190 s instead of about 15; CI's time budget affords the
/// debug kernel on x86_64 only, in the seeded-bugs test. This test proves the
/// pipeline (build, boot, Secure Boot, SDK, offline) on the release cells.
const CI_PROFILE: &str = "release";

/// Runs xtask with its output streamed to ours (progress stays visible in CI).
fn xtask(args: &[&str]) -> Output {
    xtask_in(&repo(), args)
}

/// [`xtask`] on the project at `project` (the checkout, or a copy of it).
fn xtask_in(project: &Path, args: &[&str]) -> Output {
    eprintln!("\n$ cargo xtask {}   (in {})", args.join(" "), project.display());
    // The end-to-end run uses the real cache (~/.cache/kforge) and the project's target/kforge.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(project)
        .env("KFORGE_ROOT", project)
        .env("NO_COLOR", "1")
        .env("KFORGE_PROFILE", CI_PROFILE)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    eprintln!("(exit status {:?})", output.status.code());
    output
}

#[test]
#[ignore = "builds and boots real kernels: needs root, the Debian archive and ~20 min (CI runs it)"]
fn end_to_end_x86_64_and_arm64() {
    become_subreaper();
    let test = xtask(&["test", "--arch", "x86_64,arm64"]);
    let results_path = repo().join("target/kforge/results.json");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&results_path).unwrap()).unwrap();
    assert_eq!(test.status.code(), Some(0), "cargo xtask test failed; see {}", results_path.display());
    let cells = results["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for cell in cells {
        let label = format!("{}/{}", cell["kernel"], cell["arch"]);
        assert_eq!(cell["status"], "pass", "{label}: {cell:#}");
        let tests = cell["tests"].as_array().unwrap();
        let passed: Vec<&str> =
            tests.iter().filter(|test| test["status"] == "pass").map(|test| test["name"].as_str().unwrap()).collect();
        // The driver's guest tests ran and were parsed from KTAP, not just insmod.
        for name in ["fifo.load", "fifo.roundtrip", "fifo.unload"] {
            assert!(passed.contains(&name), "{label}: {name} did not pass: {passed:?}");
        }
        assert!(passed.len() >= 5, "{label}: too few tests passed: {passed:?}");
        let console = std::fs::read_to_string(cell["log"].as_str().unwrap()).unwrap();
        assert!(console.contains("kforge-end-of-tests"), "{label}: no end marker in the console log");

        // `ktap` re-parses the saved console log to the same totals.
        let parsed = xtask(&["ktap", cell["log"].as_str().unwrap(), "--json"]);
        assert_eq!(parsed.status.code(), Some(0));
        let json: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
        assert_eq!(json["totals"]["pass"], cell["totals"]["pass"], "{label}");
    }
    assert!(std::fs::read_to_string(repo().join("target/kforge/junit.xml")).unwrap().contains("fifo.roundtrip"));

    // A second build with nothing changed compiles nothing.
    let rebuild = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["kernel", "build", "--arch", "x86_64"])
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("KFORGE_PROFILE", CI_PROFILE)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&rebuild.stderr);
    eprintln!("{text}");
    assert_eq!(rebuild.status.code(), Some(0), "{text}");
    assert!(text.contains("up to date, nothing compiled"), "the second build compiled something:\n{text}");

    // Every pin matches, machine-readably.
    let verify = xtask(&["toolchain", "verify", "--json"]);
    assert_eq!(verify.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    let tools: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|check| check["tool"].as_str().unwrap()).collect();
    for tool in
        ["rustc", "rust-src", "bindgen", "libclang (via bindgen)", "clang", "qemu-system-x86_64", "qemu-system-aarch64"]
    {
        assert!(tools.contains(&tool), "verify did not check {tool}: {tools:?}");
    }

    in_kernel_and_pci_tests_ran(&results);
    secure_boot_efi_boots_agree_with(&results);
    sdk_builds_the_same_module();
    scaffolded_driver_passes_then_a_broken_one_fails();
    offline_after_fetch();

    // No QEMU (nor its sandbox) outlived the kforge run that started it: an
    // orphan below this test would have been handed to it, the subreaper.
    // A sandbox whose death signal is still on its way gets 5 s.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let leftover = orphaned_sandboxes();
        if leftover.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "still running 5 s after the kforge runs that started them: {leftover:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_sandbox_that_outlives_its_parent_is_found_as_an_orphan() {
    become_subreaper();
    // A stand-in named `bwrap`: a subshell that renames itself and blocks
    // opening a FIFO nobody writes, left running by a shell that exits at once.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("never-written");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let started = Command::new("sh")
        .arg("-c")
        .arg(format!("(printf bwrap > /proc/self/comm; read line < '{}') >/dev/null 2>&1 &", fifo.display()))
        .status()
        .unwrap();
    assert!(started.success());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let orphan = loop {
        if let Some((pid, _)) = orphaned_sandboxes().into_iter().find(|(_, name)| name == "bwrap") {
            break pid;
        }
        assert!(std::time::Instant::now() < end, "the orphaned stand-in was not found");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // SAFETY: kill(2) and waitpid(2) of the stand-in this test started, now its child.
    unsafe {
        libc::kill(orphan as i32, libc::SIGKILL);
        libc::waitpid(orphan as i32, std::ptr::null_mut(), 0);
    }
    assert!(orphaned_sandboxes().iter().all(|(pid, _)| *pid != orphan));
}

/// Makes this test process the reaper of every orphan below it: a process
/// that outlives the kforge run that started it becomes this process's child,
/// so the check at the end sees this test's leftovers only, never another
/// run's on the same machine.
fn become_subreaper() {
    // SAFETY: prctl(2) with integer arguments; it changes only this process's reaper flag.
    let set = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(set, 0, "PR_SET_CHILD_SUBREAPER: {}", std::io::Error::last_os_error());
}

/// Live QEMU or bwrap processes below this test process: only what its
/// kforge runs left behind gets here (the test starts kforge, never these),
/// however deep (a leaked shell's own children too).
fn orphaned_sandboxes() -> Vec<(u32, String)> {
    // (pid, name, state, parent) of every process.
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the `(comm)`, which may hold spaces: the state, then the parent's pid.
        let Some((head, after)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map(|(_, name)| name.to_string()).unwrap_or_default();
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or_default().to_string();
        let Some(parent) = fields.next().and_then(|ppid| ppid.parse::<u32>().ok()) else { continue };
        table.push((pid, name, state, parent));
    }
    let mut below = vec![std::process::id()];
    let mut index = 0;
    while index < below.len() {
        let parent = below[index];
        below.extend(table.iter().filter(|row| row.3 == parent).map(|row| row.0));
        index += 1;
    }
    table
        .into_iter()
        .filter(|(pid, name, state, _)| {
            below[1..].contains(pid) && state != "Z" && (name.starts_with("qemu-system") || name == "bwrap")
        })
        .map(|(pid, name, _, _)| (pid, name))
        .collect()
}

/// Every driver's KUnit suite and the edu PCI tests ran and passed on both arches.
fn in_kernel_and_pci_tests_ran(results: &serde_json::Value) {
    for cell in results["cells"].as_array().unwrap() {
        let label = format!("{}/{}", cell["kernel"], cell["arch"]);
        let passed: Vec<&str> = cell["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|test| test["status"] == "pass")
            .map(|test| test["name"].as_str().unwrap())
            .collect();
        for prefix in ["fifo.kforge_fifo.", "edu.kforge_edu."] {
            let count = passed.iter().filter(|name| name.starts_with(prefix)).count();
            assert!(count >= 5, "{label}: only {count} KUnit tests {prefix}* passed: {passed:?}");
        }
        for name in
            ["edu.id", "edu.factorial", "edu.dma", "edu.unload", "samples.misc_device", "samples-pci.driver_pci"]
        {
            assert!(passed.contains(&name), "{label}: {name} did not pass: {passed:?}");
        }
    }
}

/// The tests kforge adds to a Secure Boot cell: the firmware state, the
/// refused UKI, modprobe from the disk's root partition, and the kernel's
/// enforcement of module signatures (signed loads; unsigned and tampered refused).
const SECURE_BOOT_TESTS: [&str; 7] = [
    "kforge.secure-boot",
    "kforge.secure-boot.tampered-uki",
    "kforge.rootfs.modprobe",
    "kforge.module-signature.enforced",
    "kforge.module-signature.signed-loads",
    "kforge.module-signature.unsigned-refused",
    "kforge.module-signature.tampered-refused",
];

/// `(test, status)` of every test of a results.json cell.
fn verdicts(cell: &serde_json::Value) -> BTreeSet<(String, String)> {
    cell["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|test| (test["name"].as_str().unwrap().to_string(), test["status"].as_str().unwrap().to_string()))
        .collect()
}

/// The same cells booted from kforge's UEFI disk under enforced Secure Boot
/// (OVMF on x86_64, AAVMF on arm64), with a kernel that trusts the project's
/// db certificate and modules signed with its key: every Secure Boot test
/// passes, and every other test has the verdict it had in the direct boot.
fn secure_boot_efi_boots_agree_with(direct: &serde_json::Value) {
    let output = tempfile::tempdir().unwrap();
    eprintln!("\n$ KFORGE_OUTPUT_DIR={} cargo xtask test --arch x86_64,arm64 --secure-boot", output.path().display());
    let run = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["test", "--arch", "x86_64,arm64", "--secure-boot"])
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("KFORGE_PROFILE", CI_PROFILE)
        .env("KFORGE_OUTPUT_DIR", output.path())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "the Secure Boot UEFI boots failed");
    let efi: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.path().join("results.json")).unwrap()).unwrap();
    let (direct, efi) = (direct["cells"].as_array().unwrap(), efi["cells"].as_array().unwrap());
    assert_eq!(direct.len(), efi.len());
    for (direct, efi) in direct.iter().zip(efi) {
        let label = efi["id"].as_str().unwrap();
        assert_eq!(direct["id"], efi["id"]);
        assert_eq!(direct["boot"], "direct", "{label}");
        assert_eq!(efi["boot"], "efi+secure-boot", "{label}");
        let efi_tests = verdicts(efi);
        for name in SECURE_BOOT_TESTS {
            assert!(efi_tests.contains(&(name.to_string(), "pass".to_string())), "{label}: {name} did not pass");
        }
        let others: BTreeSet<(String, String)> =
            efi_tests.into_iter().filter(|(name, _)| !SECURE_BOOT_TESTS.contains(&name.as_str())).collect();
        assert_eq!(others, verdicts(direct), "{label}: the UEFI boot's verdicts differ from the direct boot's");
    }
}

/// The SDK of the kernel just tested builds fifo without the full tree, byte
/// for byte the module the test run built; another toolchain is refused.
fn sdk_builds_the_same_module() {
    let archive = repo().join("target/kforge/sdk/kforge-sdk-7.2-x86_64.tar.gz");
    let export = xtask(&["sdk", "--kernel", "7.2", "--arch", "x86_64", "--out", archive.to_str().unwrap()]);
    assert_eq!(export.status.code(), Some(0), "sdk export failed");
    assert_eq!(String::from_utf8_lossy(&export.stdout).trim(), archive.to_str().unwrap());
    let build = xtask(&["drivers", "build", "--sdk", archive.to_str().unwrap(), "--driver", "fifo"]);
    assert_eq!(build.status.code(), Some(0), "drivers build --sdk failed");
    let ko = PathBuf::from(String::from_utf8_lossy(&build.stdout).trim());
    assert!(ko.ends_with("sdk-7.2-x86_64/fifo/kforge_fifo.ko"), "{}", ko.display());
    // The SDK is of the release kernel (what ships); build fifo in the full tree of that kernel.
    let release = xtask(&["test", "--arch", "x86_64", "--profile", "release", "--driver", "fifo"]);
    assert_eq!(release.status.code(), Some(0), "the release profile's fifo run failed");
    let full_tree = repo().join("target/kforge/cells/7.2-x86_64-release/drivers/fifo/kforge_fifo.ko");
    assert!(
        std::fs::read(&ko).unwrap() == std::fs::read(&full_tree).unwrap(),
        "{} (SDK) differs from {} (full tree)",
        ko.display(),
        full_tree.display()
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["drivers", "build", "--sdk", archive.to_str().unwrap(), "--toolchain", "trixie"])
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("KFORGE_PROFILE", CI_PROFILE)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(text.contains("toolchain trixie cannot build modules for the SDK of kernel 7.2"), "{text}");
    assert!(text.contains("rustc: the SDK's kernel was built with 1.97.1, toolchain trixie pins 1.85.1"), "{text}");
}

/// Removes a directory (a project copy, a scratch cache) even when an assertion fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the project for a test that edits it: `.ci/run`'s other lane
/// runs kforge on the checkout meanwhile, and must never read a half-written
/// kforge.toml or a half-made driver package.
fn project_copy(name: &str) -> PathBuf {
    support::project_copy(&std::env::temp_dir().join(format!("kforge-e2e-{name}-{}", std::process::id())))
}

/// `new-driver` output passes `test` unchanged; the same driver with its logic
/// broken turns the cell red (test-fail) with the failing assertion reported.
/// Runs in a copy of the project, whose kernel keys are the checkout's (keys
/// hash contents, not paths), so the cached x86_64 kernel is used.
fn scaffolded_driver_passes_then_a_broken_one_fails() {
    let name = "kfe2edemo";
    let project = project_copy("scaffold");
    let _cleanup = RemoveOnDrop(project.clone());
    let dir = project.join("drivers").join(name);
    let manifest = project.join("kforge.toml");
    assert_eq!(xtask_in(&project, &["new-driver", name]).status.code(), Some(0));
    // new-driver put it into [matrix] drivers: a plain `test` runs it, with the matrix's kernel.
    let matrix = std::fs::read_to_string(&manifest).unwrap();
    assert!(matrix.contains(&format!("\"samples-pci\", \"{name}\"]")), "{matrix}");
    let run = xtask_in(&project, &["test", "--arch", "x86_64"]);
    let results = read_results_in(&project);
    let cell = &results["cells"][0];
    assert_eq!(run.status.code(), Some(0), "the scaffolded driver did not pass: {cell:#}");
    let ours: Vec<&serde_json::Value> = cell["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|test| test["name"].as_str().unwrap().starts_with(&format!("{name}.")))
        .collect();
    assert!(ours.len() >= 4, "too few tests of {name}: {ours:?}");
    assert!(ours.iter().all(|test| test["status"] == "pass"), "{ours:?}");
    assert!(
        ours.iter().any(|test| test["name"].as_str().unwrap().starts_with(&format!("{name}.kforge_{name}."))),
        "no KUnit test: {ours:?}"
    );

    let source = dir.join(format!("kforge_{name}.rs"));
    let text = std::fs::read_to_string(&source).unwrap();
    assert!(text.contains("shout(&mut buffer[..]);"), "the template changed; update this test");
    std::fs::write(&source, text.replace("shout(&mut buffer[..]);", "// deliberately broken: no shout")).unwrap();
    let run = xtask_in(&project, &["test", "--arch", "x86_64"]);
    let results = read_results_in(&project);
    let cell = &results["cells"][0];
    assert_eq!(run.status.code(), Some(1), "a broken driver must exit 1: {cell:#}");
    assert_eq!(cell["status"], "fail");
    assert_eq!(cell["category"], "test-fail");
    let failed: Vec<&serde_json::Value> =
        cell["tests"].as_array().unwrap().iter().filter(|test| test["status"] == "fail").collect();
    assert!(
        failed.iter().any(|test| test["name"] == format!("{name}.shout")
            && test["diagnostics"].to_string().contains("expected 'HELLO FROM KFORGE'")),
        "the failing assertion is not in the report: {failed:?}"
    );
}

fn read_results_in(project: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(project.join("target/kforge/results.json")).unwrap()).unwrap()
}

/// After `fetch`, runs need no network: a warm `test`, and a fresh cache that
/// holds only the copied store (and the installed toolchain roots) unpacks
/// and configures the kernel.
fn offline_after_fetch() {
    let probe = Command::new("unshare").args(["-n", "true"]).status();
    assert!(
        probe.is_ok_and(|status| status.success()),
        "`unshare -n true` failed: the offline check needs root (or a user namespace with a network namespace)"
    );
    assert_eq!(xtask(&["fetch"]).status.code(), Some(0));
    let offline = |cache: Option<&Path>, args: &[&str]| {
        eprintln!("\n$ unshare -n cargo xtask --offline {}", args.join(" "));
        let mut cmd = Command::new("unshare");
        cmd.arg("-n").arg(env!("CARGO_BIN_EXE_xtask")).arg("--offline").args(args);
        if let Some(cache) = cache {
            cmd.env("KFORGE_CACHE_DIR", cache);
        }
        let status = cmd.current_dir(repo()).env("NO_COLOR", "1").env("KFORGE_PROFILE", CI_PROFILE).status().unwrap();
        eprintln!("(exit status {:?})", status.code());
        status
    };
    let warm = offline(None, &["test", "--arch", "x86_64"]);
    assert_eq!(warm.code(), Some(0), "an offline warm run failed");

    let real_cache = std::env::var("KFORGE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kforge"));
    let fresh = repo().join("target/kforge-offline-cache");
    let _cleanup = RemoveOnDrop(fresh.clone());
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).unwrap();
    // Hard links: a copy of the store without the disk space.
    let copy = Command::new("cp").arg("-al").arg(real_cache.join("store")).arg(fresh.join("store")).status().unwrap();
    assert!(copy.success());
    // The installed toolchain roots are shared: installing one offline from the
    // store is proven by hardening.rs's kill test, so CI builds that root once.
    std::os::unix::fs::symlink(real_cache.join("toolchains"), fresh.join("toolchains")).unwrap();
    let cold = offline(Some(&fresh), &["kernel", "config", "--arch", "x86_64"]);
    assert_eq!(cold.code(), Some(0), "unpacking and configuring the kernel from the store alone failed");
    assert!(
        fresh.join("sources").read_dir().unwrap().count() > 0,
        "the offline `kernel config` unpacked no kernel source into the fresh cache"
    );
}
