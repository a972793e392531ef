//! Runs the real `xtask` binary for what needs no toolchain: bad input, dry-run plans, KTAP parsing, the CI commands, exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

mod support;
use support::repo;

/// Runs xtask with `args` in the repository, with a private cache and output dir.
fn xtask(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let scratch = std::env::temp_dir().join(format!("kforge-cli-{}", std::process::id()));
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(repo());
    let mut cmd = sh
        .cmd(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("KFORGE_CACHE_DIR", scratch.join("cache"))
        .env("KFORGE_OUTPUT_DIR", scratch.join("out"))
        .env("NO_COLOR", "1")
        .ignore_status()
        .quiet();
    for (key, value) in envs {
        cmd = cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Everything a command printed, for a snapshot: its exit code, then stdout
/// and stderr (when not empty). Machine-specific paths become names: the
/// repository `<repo>`, the default scratch directory `<scratch>`, and each
/// of `paths` its given name.
fn transcript(output: &Output, paths: &[(&Path, &str)]) -> String {
    let mut text = format!("exit {:?}\n", output.status.code());
    for (name, stream) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let stream = String::from_utf8_lossy(stream);
        if !stream.is_empty() {
            text.push_str(&format!("--- {name}\n{stream}"));
        }
    }
    for (path, name) in paths {
        text = text.replace(path.to_str().unwrap(), name);
    }
    let scratch = std::env::temp_dir().join(format!("kforge-cli-{}", std::process::id()));
    text.replace(scratch.to_str().unwrap(), "<scratch>").replace(repo().to_str().unwrap(), "<repo>")
}

#[test]
fn unknown_arch_lists_the_valid_ones_without_a_backtrace() {
    let output = xtask(&["kernel", "build", "--arch", "sparc64", "--dry-run"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: unknown arch `sparc64`; valid archs are: x86_64, arm64, arm, riscv, loongarch, s390, um
    "#]]
    .assert_eq(&transcript(&output, &[]));
}

#[test]
fn unknown_kernel_and_toolchain_list_the_valid_ones() {
    let output = xtask(&["test", "--kernel", "1.0"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: unknown kernel `1.0`; valid kernels are: 6.12, 7.2, 7.3, debian-7.2
    "#]]
    .assert_eq(&transcript(&output, &[]));
    let output = xtask(&["toolchain", "verify", "nosuch"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: unknown toolchain `nosuch`; valid toolchains are: experimental, host, rustup-1.97, sid, sid-gcc, trixie
    "#]]
    .assert_eq(&transcript(&output, &[]));
}

#[test]
fn malformed_kforge_toml_names_file_line_and_key() {
    let scratch = std::env::temp_dir().join(format!("kforge-cli-toml-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let text = std::fs::read_to_string(repo().join("kforge.toml")).unwrap();
    let broken = text.replacen("timeout-seconds", "timeout-secs", 1);
    let line = broken.lines().position(|line| line.contains("timeout-secs")).unwrap() + 1;
    std::fs::write(scratch.join("kforge.toml"), broken).unwrap();
    let output = xtask(&["test"], &[("KFORGE_ROOT", &scratch)]);
    let text =
        transcript(&output, &[(&scratch, "<project>")]).replace(&format!("kforge.toml:{line}:"), "kforge.toml:<line>:");
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: malformed <project>/kforge.toml:<line>: unknown field `timeout-secs`, expected one of `timeout-seconds`, `memory`, `debug-memory`, `debug-timeout-seconds`, `secure-boot-keys`
    "#]].assert_eq(&text);
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn kernel_build_dry_run_prints_the_plan() {
    let output = xtask(&["kernel", "build", "--arch", "aarch64", "--dry-run", "-j", "2"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan = stdout(&output);
    assert!(plan.contains("make -C /src O=/build ARCH=arm64 LLVM=1 tinyconfig"), "{plan}");
    assert!(
        plan.contains("merge_config.sh -m -O /build /build/.config /build/kforge-fragments/10-base.config"),
        "{plan}"
    );
    assert!(plan.contains("make -C /src O=/build ARCH=arm64 LLVM=1 -j2"), "{plan}");
}

#[test]
fn toolchain_install_dry_run_prints_the_pinned_mmdebstrap_command() {
    let output = xtask(&["toolchain", "install", "sid", "--dry-run"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan = stdout(&output);
    assert!(plan.starts_with("mmdebstrap --variant=minbase"), "{plan}");
    assert!(plan.contains("rustc=1.97.1+dfsg1-1") && plan.contains("bindgen=0.72.1-1+b3"), "{plan}");
}

#[test]
fn ktap_command_parses_a_saved_console_log() {
    let fixture = repo().join("xtask/tests/fixtures/console-pass.log");
    let output = xtask(&["ktap", fixture.to_str().unwrap(), "--json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["totals"]["pass"], 4);
    assert_eq!(json["totals"]["fail"], 0);
    assert_eq!(json["tests"][0]["name"], "fifo");

    let failing = repo().join("xtask/tests/fixtures/console-panic.log");
    let output = xtask(&["ktap", failing.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("panic"), "{text}");
}

/// Peak RSS (bytes) of the largest child this test process has waited for so far.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the zeroed struct we own; no other memory is involved.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn ktap_command_stays_bounded_on_a_flood_and_on_amplifying_plans() {
    let dir = tempfile::tempdir().unwrap();
    // Twenty nested `1..100000` plans: under 1 KB of KTAP.
    let amplify = dir.path().join("amplify.log");
    let text: String = (0..20).map(|d| format!("{0}KTAP version 1\n{0}1..100000\n", " ".repeat(d))).collect();
    std::fs::write(&amplify, &text).unwrap();
    let output = xtask(&["ktap", amplify.to_str().unwrap(), "--json"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.len() < 100_000, "{} bytes of JSON for {} bytes of KTAP", output.stdout.len(), text.len());
    // A 40 MiB flood of diagnostics: the console cap names itself, memory stays small.
    let flood = dir.path().join("flood.log");
    let line = format!("    # {}\n", "flood ".repeat(20));
    let body = format!("KTAP version 1\n1..1\n{}ok 1 flooded\n", line.repeat((40 << 20) / line.len()));
    std::fs::write(&flood, body).unwrap();
    let output = xtask(&["ktap", flood.to_str().unwrap(), "--json"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["cap"], "console-bytes");
    let peak = children_peak_rss();
    assert!(peak < 200 << 20, "peak RSS {} MB", peak >> 20);
}

#[test]
fn ktap_command_reports_a_missing_file() {
    let output = xtask(&["ktap", "/nonexistent/console.log"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: failed to open file `/nonexistent/console.log`: No such file or directory (os error 2)
    "#]]
    .assert_eq(&transcript(&output, &[]));
}

#[test]
fn report_html_renders_a_results_file() {
    let fixture = repo().join("xtask/tests/fixtures/results-matrix.json");
    let out = std::env::temp_dir().join(format!("kforge-cli-report-{}", std::process::id())).join("report.html");
    let output = xtask(&["report", "html", fixture.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{}\n", out.display()));
    let page = std::fs::read_to_string(&out).unwrap();
    assert_eq!(page.matches("<th scope=\"row\">").count(), 7, "one row per arch");
    assert!(page.contains("<td class=\"cell fail\" data-status=\"fail\" id=\"cell-7.2-riscv\">"), "{page}");
    assert!(page.contains("<td class=\"cell pass\" data-status=\"pass\" id=\"cell-7.2-um\">"), "{page}");
    assert!(page.contains("edu needs PCI, which the um machine does not have"), "{page}");
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

#[test]
fn report_html_explains_missing_or_malformed_results() {
    let output = xtask(&["report", "html", "/nonexistent/results.json"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: cannot read results /nonexistent/results.json: No such file or directory (os error 2)
        hint: run `cargo xtask test` first, or give the path of a results.json
    "#]]
    .assert_eq(&transcript(&output, &[]));

    let console = repo().join("xtask/tests/fixtures/console-pass.log");
    let output = xtask(&["report", "html", console.to_str().unwrap()], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: <repo>/xtask/tests/fixtures/console-pass.log is not a kforge results.json: invalid type: floating point `0.0`, expected a string at line 1 column 13
        hint: give a results.json written by `cargo xtask test`
    "#]].assert_eq(&transcript(&output, &[]));
}

#[test]
fn ci_matrix_github_is_a_strategy_matrix_with_cell_ids() {
    let output = xtask(&["ci", "matrix", "--format", "github"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "one line, for $GITHUB_OUTPUT: {text}");
    let matrix: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> =
        matrix["include"].as_array().unwrap().iter().map(|cell| cell["id"].as_str().unwrap()).collect();
    // kforge.toml names no profile: the cells are kforge's default, debug.
    assert_eq!(ids, ["7.2-x86_64-debug", "7.2-arm64-debug"]);
    for key in ["kernel", "arch", "toolchain", "toolchain_key", "toolchain_cache", "kernel_key", "kernel_cache"] {
        assert!(matrix["include"][0][key].is_string(), "missing {key}: {text}");
    }
    // --profile, or KFORGE_PROFILE, chooses another.
    let flag = xtask(&["ci", "matrix", "--format", "json", "--profile", "release"], &[]);
    let env = xtask(&["ci", "matrix", "--format", "json"], &[("KFORGE_PROFILE", Path::new("release"))]);
    for output in [flag, env] {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let cells: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let ids: Vec<&str> = cells.as_array().unwrap().iter().map(|cell| cell["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["7.2-x86_64-release", "7.2-arm64-release"]);
    }
}

#[test]
fn ci_matrix_leaves_no_cell_out_and_rejects_unknown_arches() {
    let output = xtask(&["ci", "matrix", "--format", "json", "--arch", "all", "--kernel", "all"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let cells: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = cells.as_array().unwrap().iter().map(|cell| cell["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = ["6.12", "7.2", "7.3", "debian-7.2"]
        .iter()
        .flat_map(|kernel| {
            ["x86_64", "arm64", "arm", "riscv", "loongarch", "s390", "um"].map(|arch| format!("{kernel}-{arch}-debug"))
        })
        .collect();
    assert_eq!(ids, expected);

    let output = xtask(&["ci", "matrix", "--arch", "sparc"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: unknown arch `sparc`; valid archs are: x86_64, arm64, arm, riscv, loongarch, s390, um
    "#]]
    .assert_eq(&transcript(&output, &[]));
}

#[test]
fn ci_matrix_gitlab_is_a_child_pipeline_that_parses() {
    let output = xtask(&["ci", "matrix", "--format", "gitlab", "--arch", "x86_64,um"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let pipeline = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    assert_eq!(pipeline["cell 7.2-x86_64-debug"]["variables"]["KFORGE_CELL"].as_str(), Some("7.2-x86_64-debug"));
    assert_eq!(pipeline["cell 7.2-um-debug"]["extends"].as_str(), Some(".kforge-cell"));
    assert_eq!(pipeline["kforge-merge"]["variables"]["KFORGE_EXPECT"].as_str(), Some("7.2-x86_64-debug,7.2-um-debug"));
}

#[test]
fn committed_ci_files_are_what_ci_generate_writes() {
    let output = xtask(&["ci", "generate", "--check"], &[]);
    assert_eq!(output.status.code(), Some(0), "run `cargo xtask ci generate`: {}", stderr(&output));

    // Generate into an empty copy of the repository and compare byte for byte.
    let scratch = std::env::temp_dir().join(format!("kforge-cli-generate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::copy(repo().join("kforge.toml"), scratch.join("kforge.toml")).unwrap();
    let output = xtask(&["ci", "generate"], &[("KFORGE_ROOT", &scratch)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for file in ["ci/github/kforge.yml", "ci/gitlab/kforge-ci.yml"] {
        let committed = std::fs::read(repo().join(file)).unwrap();
        let generated = std::fs::read(scratch.join(file)).unwrap();
        assert!(committed == generated, "{file} differs from what `cargo xtask ci generate` writes");
    }

    // A drifting file makes --check fail and name it.
    std::fs::write(scratch.join("ci/gitlab/kforge-ci.yml"), "stages: []\n").unwrap();
    let output = xtask(&["ci", "generate", "--check"], &[("KFORGE_ROOT", &scratch)]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output).replace(scratch.to_str().unwrap(), "<project>");
    expect_test::expect![[r#"
        error: out of date (differs from what `cargo xtask ci generate` writes): ci/gitlab/kforge-ci.yml
        hint: run: cargo xtask ci generate
    "#]]
    .assert_eq(&text);
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn ci_merge_reports_a_broken_input_by_path_and_exits_2() {
    let scratch = std::env::temp_dir().join(format!("kforge-cli-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let good = scratch.join("kforge-results-7.2-x86_64");
    std::fs::create_dir_all(&good).unwrap();
    let cell = serde_json::json!({
        "id": "7.2-x86_64", "arch": "x86_64", "kernel": "7.2", "toolchain": "sid", "status": "pass",
        "log": "console.log", "tests": [{"name": "fifo.load", "status": "pass"}],
        "totals": {"pass": 1, "fail": 0, "skip": 0, "error": 0},
        "timings": {"build_seconds": 1.0, "boot_seconds": 1.0}
    });
    let results = serde_json::json!({"kforge_version": "0.1.0", "complete": true, "cells": [cell]});
    std::fs::write(good.join("results.json"), results.to_string()).unwrap();
    let broken = scratch.join("kforge-results-7.2-arm64");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("results.json"), "{\"cells\": [").unwrap();
    let out = scratch.join("merged");

    let output =
        xtask(&["ci", "merge", "--out", out.to_str().unwrap(), good.to_str().unwrap(), broken.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output).replace(scratch.to_str().unwrap(), "<scratch>");
    expect_test::expect![[r#"
        error: <scratch>/kforge-results-7.2-arm64/results.json: not a kforge results.json: EOF while parsing a list at line 1 column 11

        cell                   status category        pass/fail/skip/err log
        7.2/x86_64             pass   -               1/0/0/0            console.log

              Merged 1 cell(s) from 2 input(s) into <scratch>/merged
    "#]].assert_eq(&text);
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(merged["complete"], false);
    assert_eq!(merged["cells"][0]["id"], "7.2-x86_64");
    assert!(std::fs::read_to_string(out.join("junit.xml")).unwrap().contains("fifo.load"));
    let summary =
        std::fs::read_to_string(out.join("summary.md")).unwrap().replace(scratch.to_str().unwrap(), "<scratch>");
    expect_test::expect![[r#"
        ## kforge results

        1 cell(s): 1 passed, 0 failed, 0 errored, 0 skipped.

        **Incomplete:** these results are missing or broken:

        - <scratch>/kforge-results-7.2-arm64/results.json: not a kforge results.json: EOF while parsing a list at line 1 column 11

        | cell | arch | kernel | status | category | pass | fail | skip | error |
        |---|---|---|---|---|---:|---:|---:|---:|
        | 7.2-x86_64 | x86_64 | 7.2 | pass | - | 1 | 0 | 0 | 0 |
    "#]].assert_eq(&summary);

    // The good input alone merges cleanly; its exit code is the run's.
    let output =
        xtask(&["ci", "merge", "--out", out.to_str().unwrap(), "--expect", "7.2-x86_64", good.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let _ = std::fs::remove_dir_all(scratch);
}

/// A copy of the repository's inputs in a fresh directory.
fn project_copy(name: &str) -> PathBuf {
    support::inputs_copy(&std::env::temp_dir().join(format!("kforge-cli-{name}-{}", std::process::id())))
}

#[test]
fn committed_kforge_lock_is_what_lock_writes() {
    // No toolchain root is installed in the test's cache: the pins, kernels and
    // fragments are compared, and the recorded root packages are kept as they are.
    let output = xtask(&["lock", "--check"], &[]);
    assert_eq!(output.status.code(), Some(0), "run `cargo xtask lock`: {}", stderr(&output));
}

#[test]
fn locked_refuses_a_changed_pin_and_names_it() {
    let scratch = project_copy("locked");
    // Unchanged inputs pass the lock check; this offline fetch then stops at the empty store.
    let output = xtask(&["fetch", "--offline"], &[("KFORGE_ROOT", &scratch), ("KFORGE_LOCKED", Path::new("1"))]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!stderr(&output).contains("kforge.lock"), "{}", stderr(&output));

    let sid = scratch.join("toolchains/sid.toml");
    let text = std::fs::read_to_string(&sid).unwrap();
    std::fs::write(&sid, text.replacen("\"rustc=1.97.1+dfsg1-1\"", "\"rustc=1.97.0+dfsg1-2\"", 1)).unwrap();
    let output = xtask(&["--locked", "fetch", "--offline"], &[("KFORGE_ROOT", &scratch)]);
    // Refused before anything else (the offline store is never looked at).
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: --locked: the inputs differ from kforge.lock:
          toolchain sid: rustc pinned 1.97.0+dfsg1-2 in toolchains/sid.toml, kforge.lock has 1.97.1+dfsg1-1
        hint: run `cargo xtask lock` and commit kforge.lock
    "#]]
    .assert_eq(&transcript(&output, &[(&scratch, "<project>")]));

    // `lock --check` names the same change; `lock` records it and --locked passes again.
    let output = xtask(&["lock", "--check"], &[("KFORGE_ROOT", &scratch)]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
             Locking toolchain experimental: 16 pins; its root is not installed here, so the 232 packages kforge.lock recorded for this spec are kept
             Locking toolchain host: 6 pinned versions; it has no root (its tools are on the host), so no packages
             Locking toolchain rustup-1.97: 7 pinned versions; it has no root (its tools are on the host), so no packages
        warning: toolchain sid: 16 pins only; its root is not installed (<scratch>/cache/toolchains/sid-4f3c12d37a4ed126), so its packages are not locked (run `cargo xtask lock --install` to record them)
             Locking toolchain sid-gcc: 19 pins; its root is not installed here, so the 284 packages kforge.lock recorded for this spec are kept
             Locking toolchain trixie: 14 pins; its root is not installed here, so the 230 packages kforge.lock recorded for this spec are kept
        error: <project>/kforge.lock is out of date:
          toolchain sid: rustc pinned 1.97.0+dfsg1-2 in toolchains/sid.toml, kforge.lock has 1.97.1+dfsg1-1
        hint: run `cargo xtask lock` and commit kforge.lock
    "#]].assert_eq(&transcript(&output, &[(&scratch, "<project>")]));
    let output = xtask(&["lock"], &[("KFORGE_ROOT", &scratch)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(std::fs::read_to_string(scratch.join("kforge.lock")).unwrap().contains("\"rustc=1.97.0+dfsg1-2\""));
    let output = xtask(&["--locked", "fetch", "--offline"], &[("KFORGE_ROOT", &scratch)]);
    assert!(!stderr(&output).contains("kforge.lock"), "{}", stderr(&output));

    // A changed config fragment is named; a missing kforge.lock is an error.
    std::fs::write(scratch.join("kernel-config/base.config"), "CONFIG_PRINTK=y\n").unwrap();
    let output = xtask(&["--locked", "kernel", "build", "--arch", "x86_64"], &[("KFORGE_ROOT", &scratch)]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: --locked: the inputs differ from kforge.lock:
          kernel-config/base.config changed (sha256 2ecda269dab296e3a2b4ee077d08984e884540c39020aefca2ef550a4f7da61f, kforge.lock has 80c10a6f508554adf50749019713ecb811d08b068d782c87172fb300208d6dca)
        hint: run `cargo xtask lock` and commit kforge.lock
    "#]].assert_eq(&transcript(&output, &[(&scratch, "<project>")]));
    std::fs::remove_file(scratch.join("kforge.lock")).unwrap();
    let output = xtask(&["--locked", "test"], &[("KFORGE_ROOT", &scratch)]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: --locked: <project>/kforge.lock does not exist, so there is nothing to check the inputs against
        hint: run `cargo xtask lock` and commit kforge.lock
    "#]]
    .assert_eq(&transcript(&output, &[(&scratch, "<project>")]));
    let _ = std::fs::remove_dir_all(scratch);
}

fn kernel_tree(name: &str) -> String {
    repo().join("xtask/tests/fixtures/kernel-trees").join(name).display().to_string()
}

#[test]
fn toolchain_resolve_picks_per_arch_from_a_source_tree() {
    let tree = kernel_tree("linux-7.2");
    let output = xtask(&["toolchain", "resolve", "--source", &tree, "--arch", "x86_64,s390", "--json"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["kernel_version"], "7.2.13");
    // The tree is a 7.2: kforge.toml's kernel 7.2 and its toolchain are preferred.
    assert_eq!(report["kernel_entry"], "7.2");
    let chosen: Vec<&str> =
        report["arches"].as_array().unwrap().iter().map(|arch| arch["chosen"].as_str().unwrap()).collect();
    assert_eq!(chosen, ["sid", "sid"]);
    let s390 = &report["arches"][1];
    assert_eq!(s390["min_tool_version"]["rustc"], "1.96.0");
    let trixie = s390["verdicts"].as_array().unwrap().iter().find(|verdict| verdict["toolchain"] == "trixie").unwrap();
    assert_eq!(trixie["ok"], false);
    let rules: Vec<&str> =
        trixie["failures"].as_array().unwrap().iter().map(|failure| failure["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["min-rustc", "rustc-1.96-for-s390"]);
}

#[test]
fn toolchain_resolve_refuses_a_pair_naming_the_rule() {
    let tree = kernel_tree("linux-7.2");
    let output = xtask(&["toolchain", "resolve", "--source", &tree, "--toolchain", "trixie", "--arch", "s390"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stdout
        kernel 7.2.13 at <repo>/xtask/tests/fixtures/kernel-trees/linux-7.2 (kforge.toml kernel 7.2)
        rules: <repo>/toolchains/rules.toml

        toolchain      rustc     rustc-llvm  bindgen   llvm
        trixie         1.85.1    19          0.71.1    19.1.7

        arch       min rustc  min bindgen  min llvm  toolchain      why
        s390       1.96.0     0.71.1       17.0.1    NONE           trixie breaks a rule (below)

        refused:
          trixie on s390: `min-rustc`: rustc 1.85.1 is not >= min-rustc (1.96.0)
              the tree's scripts/min-tool-version.sh names the oldest rustc it supports; rust_is_available.sh turns Rust off below it
          trixie on s390: `rustc-1.96-for-s390`: rustc 1.85.1 is not >= 1.96
              Rust on s390 needs rustc 1.96 or later from Linux 7.2 on (min-tool-version.sh: s390 1.96.0)
        --- stderr
        error: toolchain trixie cannot build kernel 7.2.13:
          on s390, rule `min-rustc`: rustc 1.85.1 is not >= min-rustc (1.96.0)
            why: the tree's scripts/min-tool-version.sh names the oldest rustc it supports; rust_is_available.sh turns Rust off below it
          on s390, rule `rustc-1.96-for-s390`: rustc 1.85.1 is not >= 1.96
            why: Rust on s390 needs rustc 1.96 or later from Linux 7.2 on (min-tool-version.sh: s390 1.96.0)
        hint: see which pinned toolchain can: cargo xtask toolchain resolve --source <repo>/xtask/tests/fixtures/kernel-trees/linux-7.2 --arch s390 (rules: toolchains/rules.toml)
    "#]].assert_eq(&transcript(&output, &[]));
    // The same toolchain on x86_64 is fine.
    let output = xtask(&["toolchain", "resolve", "--source", &tree, "--toolchain", "trixie", "--arch", "x86_64"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn toolchain_resolve_explains_when_no_toolchain_fits() {
    let output = xtask(&["toolchain", "resolve", "--source", &kernel_tree("linux-6.10"), "--arch", "arm64"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stdout
        kernel 6.10.0-rc3 at <repo>/xtask/tests/fixtures/kernel-trees/linux-6.10
        rules: <repo>/toolchains/rules.toml

        toolchain      rustc     rustc-llvm  bindgen   llvm
        experimental   1.98.1    22          0.72.1    22.1.8
        host           1.97.1    22          0.72.1    22.1.8
        rustup-1.97    1.97.1    22          0.72.1    22.1.8
        sid            1.97.1    22          0.72.1    22.1.8
        sid-gcc        1.97.1    22          0.72.1    22.1.8
        trixie         1.85.1    19          0.71.1    19.1.7

        arch       min rustc  min bindgen  min llvm  toolchain      why
        arm64      1.78.0     0.65.1       13.0.1    NONE           no pinned toolchain satisfies every rule

        refused:
          experimental on arm64: `exact-rustc-before-6.11`: rustc 1.98.1 is not == min-rustc (1.78.0)
              kernels before 6.11 support exactly one rustc, the one scripts/min-tool-version.sh names: they use unstable features whose shape changes between compiler releases
          host on arm64: `exact-rustc-before-6.11`: rustc 1.97.1 is not == min-rustc (1.78.0)
              kernels before 6.11 support exactly one rustc, the one scripts/min-tool-version.sh names: they use unstable features whose shape changes between compiler releases
          rustup-1.97 on arm64: `exact-rustc-before-6.11`: rustc 1.97.1 is not == min-rustc (1.78.0)
              kernels before 6.11 support exactly one rustc, the one scripts/min-tool-version.sh names: they use unstable features whose shape changes between compiler releases
          sid on arm64: `exact-rustc-before-6.11`: rustc 1.97.1 is not == min-rustc (1.78.0)
              kernels before 6.11 support exactly one rustc, the one scripts/min-tool-version.sh names: they use unstable features whose shape changes between compiler releases
          sid-gcc on arm64: `exact-rustc-before-6.11`: rustc 1.97.1 is not == min-rustc (1.78.0)
              kernels before 6.11 support exactly one rustc, the one scripts/min-tool-version.sh names: they use unstable features whose shape changes between compiler releases
          trixie on arm64: `exact-rustc-before-6.11`: rustc 1.85.1 is not == min-rustc (1.78.0)
              kernels before 6.11 support exactly one rustc, the one scripts/min-tool-version.sh names: they use unstable features whose shape changes between compiler releases
        --- stderr
        error: no pinned toolchain can build kernel 6.10.0-rc3 for arm64; each one breaks a rule listed above
        hint: pin a toolchain that satisfies them in toolchains/ (rules: toolchains/rules.toml)
    "#]].assert_eq(&transcript(&output, &[]));
}
#[test]
fn drivers_build_refuses_a_missing_or_foreign_sdk_archive() {
    let scratch = std::env::temp_dir().join(format!("kforge-cli-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let missing = scratch.join("missing.tar.gz");
    // A profile from the environment does not get in the way: the SDK decides the kernel.
    let release: &[(&str, &Path)] = &[("KFORGE_PROFILE", Path::new("release"))];
    let output = xtask(&["drivers", "build", "--sdk", missing.to_str().unwrap()], release);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: SDK archive <sdk-scratch>/missing.tar.gz does not exist
        hint: export one with: cargo xtask sdk --kernel ID --arch ARCH
    "#]]
    .assert_eq(&transcript(&output, &[(&scratch, "<sdk-scratch>")]));

    // A tarball without sdk.json is not unpacked into the cache.
    let foreign = scratch.join("foreign.tar.gz");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_ustar();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "top/hello.txt", &b"hello"[..]).unwrap();
    std::fs::write(&foreign, builder.into_inner().unwrap().finish().unwrap()).unwrap();
    let output = xtask(&["drivers", "build", "--sdk", foreign.to_str().unwrap()], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: failed to unpack SDK <sdk-scratch>/foreign.tar.gz

        Caused by:
          the archive has no sdk.json; is it a kforge SDK?
    "#]]
    .assert_eq(&transcript(&output, &[(&scratch, "<sdk-scratch>")]));

    let output = xtask(&["drivers", "build", "--toolchain", "sid"], &[]);
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: the following required arguments were not provided:
          --sdk <FILE>

        Usage: xtask drivers build --sdk <FILE> --toolchain <TOOLCHAIN> --cache-dir <DIR> --output-dir <DIR>

        For more information, try '--help'.
    "#]]
    .assert_eq(&transcript(&output, &[]));
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn every_command_refuses_a_cell_that_test_skips_for_the_same_reason_before_installing() {
    // Kernel 6.12 pins toolchain trixie, which cannot serve loongarch.
    let reason = "toolchain trixie cannot serve loongarch: Debian trixie has no loong64 port";
    let cache = std::env::temp_dir().join(format!("kforge-cli-refuse-{}", std::process::id()));
    let envs: &[(&str, &Path)] = &[("KFORGE_CACHE_DIR", &cache)];
    let test = xtask(&["test", "--kernel", "6.12", "--arch", "loongarch"], envs);
    assert_eq!(test.status.code(), Some(0), "{}", stderr(&test));
    let summary = stdout(&test) + &stderr(&test);
    assert!(
        summary.lines().any(|line| line.split_whitespace().take(2).eq(["6.12/loongarch/debug", "skip"])),
        "{summary}"
    );
    assert!(summary.contains(reason), "{summary}");
    let out = cache.join("dist-out").display().to_string();
    let pair = ["--kernel", "6.12", "--arch", "loongarch"];
    let commands: [&[&str]; 8] = [
        &["kernel", "build"],
        &["kernel", "build", "--dry-run"],
        &["kernel", "config"],
        &["image"],
        &["drivers", "build"],
        &["sdk"],
        &["run"],
        &["rust-analyzer"],
    ];
    for command in commands.iter().copied().chain([&["dist", "--out", out.as_str()][..]]) {
        let args: Vec<&str> = command.iter().chain(pair.iter()).copied().collect();
        let output = xtask(&args, envs);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(&format!("kernel 6.12 cannot be built for loongarch: {reason}")), "{args:?}: {text}");
        assert!(text.contains("`cargo xtask test` reports this cell as a skip"), "{args:?}: {text}");
    }
    // `ci matrix` keeps the cell (its job reports the skip) and names the same reason.
    let matrix = xtask(&["ci", "matrix"].iter().chain(pair.iter()).copied().collect::<Vec<_>>(), envs);
    assert_eq!(matrix.status.code(), Some(0), "{}", stderr(&matrix));
    let cells: serde_json::Value = serde_json::from_str(&stdout(&matrix)).unwrap();
    assert!(cells[0]["skip"].as_str().is_some_and(|skip| skip.starts_with(reason)), "{cells}");
    assert!(!cache.join("toolchains").exists(), "nothing may be installed for a refused cell");
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn one_cell_commands_name_the_cells_when_the_selection_holds_several() {
    let mut all = String::new();
    for command in [&["run"][..], &["sdk"], &["kernel", "build", "--dry-run"]] {
        all.push_str(&format!("$ cargo xtask {}\n{}", command.join(" "), transcript(&xtask(command, &[]), &[])));
    }
    expect_test::expect![[r#"
        $ cargo xtask run
        exit Some(2)
        --- stderr
        error: `cargo xtask run` works on one cell; the selection holds 7.2/x86_64/debug, 7.2/arm64/debug
        hint: choose one with --arch ARCH (and --kernel ID), or --cell <kernel>-<arch>-<profile>
        $ cargo xtask sdk
        exit Some(2)
        --- stderr
        error: `cargo xtask sdk` works on one cell; the selection holds 7.2/x86_64/debug, 7.2/arm64/debug
        hint: choose one with --arch ARCH (and --kernel ID), or --cell <kernel>-<arch>-<profile>
        $ cargo xtask kernel build --dry-run
        exit Some(2)
        --- stderr
        error: `cargo xtask kernel build` works on one cell; the selection holds 7.2/x86_64/debug, 7.2/arm64/debug
        hint: choose one with --arch ARCH (and --kernel ID), or --cell <kernel>-<arch>-<profile>
    "#]]
    .assert_eq(&all);
    // The same flags, with the same meaning, pick one cell in every command.
    let output = xtask(&["kernel", "build", "--cell", "7.2-arm64-debug", "--dry-run"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("# kernel 7.2/arm64 (debug) with toolchain sid"), "{}", stdout(&output));
}

#[test]
fn boot_choices_that_cannot_work_are_refused_before_anything_is_installed() {
    let mut all = String::new();
    for command in [
        &["test", "--boot", "direct", "--secure-boot", "--arch", "x86_64"][..],
        &["image", "--secure-boot", "--arch", "x86_64"],
        &["image", "disk", "--arch", "s390"],
        &["image", "disk", "--arch", "x86_64,arm64", "--out", "/tmp/kforge-never.raw"],
        &["test", "--boot", "pxe"],
    ] {
        all.push_str(&format!("$ cargo xtask {}\n{}", command.join(" "), transcript(&xtask(command, &[]), &[])));
    }
    expect_test::expect![[r#"
        $ cargo xtask test --boot direct --secure-boot --arch x86_64
        exit Some(2)
        --- stderr
        error: Secure Boot needs UEFI firmware, but the boot method is `direct`
        hint: use --boot efi (or drop --secure-boot / [matrix] secure-boot)
        $ cargo xtask image --secure-boot --arch x86_64
        exit Some(2)
        --- stderr
        error: --secure-boot signs a disk image; use `cargo xtask image disk --secure-boot`
        $ cargo xtask image disk --arch s390
        exit Some(2)
        --- stderr
        error: s390 cannot boot through UEFI: s390 has no UEFI: it IPLs its kernel
        $ cargo xtask image disk --arch x86_64,arm64 --out /tmp/kforge-never.raw
        exit Some(2)
        --- stderr
        error: --out names one file, but the selection holds 2 cells
        hint: choose one with --arch ARCH (and --kernel ID), or --cell
        $ cargo xtask test --boot pxe
        exit Some(2)
        --- stderr
        error: invalid value 'pxe' for '--boot <BOOT>'
          [possible values: direct, efi]

        For more information, try '--help'.
    "#]]
    .assert_eq(&all);
}

#[test]
fn package_signing_with_an_unreadable_key_fails_before_anything_is_built() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("debs");
    let output = xtask(
        &[
            "package",
            "--kernel",
            "debian-7.2",
            "--arch",
            "x86_64",
            "--out",
            out.to_str().unwrap(),
            "--sign-key",
            "/nonexistent/mok.key",
            "--sign-cert",
            "/nonexistent/mok.crt",
        ],
        &[],
    );
    expect_test::expect![[r#"
        exit Some(2)
        --- stderr
        error: signing key /nonexistent/mok.key is not readable: No such file or directory (os error 2)
        hint: name a PEM private key and its certificate (--sign-key and --sign-cert)
    "#]]
    .assert_eq(&transcript(&output, &[(scratch.path(), "<tmp>")]));
    assert!(!out.exists(), "nothing may be written");
    let half = xtask(&["package", "--kernel", "debian-7.2", "--out", "x", "--sign-key", "k"], &[]);
    assert_eq!(half.status.code(), Some(2), "{}", stderr(&half));
    assert!(stderr(&half).contains("--sign-cert"), "{}", stderr(&half));
}

#[test]
fn package_prove_without_this_machines_arch_is_refused_before_anything_is_built() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("debs");
    let foreign = if std::env::consts::ARCH == "aarch64" { "x86_64" } else { "arm64" };
    let output = xtask(
        &["package", "--kernel", "debian-7.2", "--arch", foreign, "--out", out.to_str().unwrap(), "--prove"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--prove installs and boots the packages of this machine's architecture"));
    assert!(!out.exists(), "nothing may be written");
}

/// The children of each process, from /proc: `(pid, parent pid, command name)`.
fn process_table() -> Vec<(u32, u32, String)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, after)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // A zombie has exited; it only waits to be reaped.
        if fields.first() == Some(&"Z") {
            continue;
        }
        let name = head.split_once('(').map(|(_, name)| name.to_string()).unwrap_or_default();
        if let Some(parent) = fields.get(1).and_then(|ppid| ppid.parse().ok()) {
            table.push((pid, parent, name));
        }
    }
    table
}

/// `pid` and every live process below it, with their command names.
fn live_tree(pid: u32) -> Vec<(u32, String)> {
    let table = process_table();
    let mut found: Vec<(u32, String)> =
        table.iter().filter(|row| row.0 == pid).map(|row| (row.0, row.2.clone())).collect();
    let mut index = 0;
    while index < found.len() {
        let parent = found[index].0;
        found.extend(table.iter().filter(|row| row.1 == parent).map(|row| (row.0, row.2.clone())));
        index += 1;
    }
    found
}

#[test]
fn the_guard_kills_its_whole_tree_with_the_orphans_when_kforge_is_killed() {
    // A stand-in for kforge: a shell that starts the guard and waits. The
    // guarded command leaves an orphan (a sleep whose parent exited, as
    // bwrap's sandbox is when bwrap's outer process dies first): with no
    // parent-death signal of its own, only the guard, its subreaper, can
    // still reach it.
    let script = r#""$0" __kforge-guard $$ sh -c '(sleep 120.1 &); exec sleep 120.2' & wait"#;
    let mut standin =
        std::process::Command::new("sh").args(["-c", script, env!("CARGO_BIN_EXE_xtask")]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let tree = loop {
        let tree = live_tree(standin.id());
        if tree.iter().filter(|(_, name)| name == "sleep").count() == 2 {
            break tree;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guarded tree never held both sleeps (the orphan went elsewhere: is the guard a subreaper?): {tree:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The orphan is the guard's child now, not init's.
    assert!(tree.iter().any(|(_, name)| name == "xtask"), "{tree:?}");
    standin.kill().unwrap();
    standin.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let alive: Vec<u32> = process_table().iter().map(|row| row.0).collect();
        let left: Vec<&(u32, String)> = tree.iter().skip(1).filter(|(pid, _)| alive.contains(pid)).collect();
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "10 s after kill -9 of its parent, still alive: {left:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_guard_exits_as_its_command_did_and_refuses_a_parent_that_is_gone() {
    let guard = |parent: u32, script: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["__kforge-guard", &parent.to_string(), "sh", "-c", script])
            .output()
            .unwrap()
    };
    let me = std::process::id();
    let output = guard(me, "echo out; echo err >&2; exit 3");
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(stdout(&output), "out\n");
    assert_eq!(stderr(&output), "err\n");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(guard(me, "kill -TERM $$").status.signal(), Some(15));
    // Told that its parent is some other process: that parent is gone, so the
    // command must not run at all.
    let output = guard(1, "echo ran");
    assert_eq!(output.status.code(), Some(143));
    assert_eq!(stdout(&output), "");
}
