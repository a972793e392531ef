//! Runs the real `xtask` binary against hostile or unlucky inputs: forged merges, hostile archives, stalled servers, concurrent runs.

use std::path::{Path, PathBuf};
use std::process::Output;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kforge-hard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs xtask with `args` in the repository, with the cache and output under `scratch`.
fn xtask(scratch: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .current_dir(repo())
        .env("KFORGE_CACHE_DIR", scratch.join("cache"))
        .env("KFORGE_OUTPUT_DIR", scratch.join("out"))
        .env("NO_COLOR", "1");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One cell's results.json, as a CI job would upload it.
fn cell_results(dir: &Path, id: &str, status: &str, tests: serde_json::Value, totals: [usize; 4]) {
    std::fs::create_dir_all(dir).unwrap();
    let cell = serde_json::json!({
        "id": id, "arch": id.rsplit('-').next().unwrap(), "kernel": "7.2", "toolchain": "sid", "status": status,
        "log": "console.log", "tests": tests,
        "totals": {"pass": totals[0], "fail": totals[1], "skip": totals[2], "error": totals[3]},
        "timings": {"build_seconds": 1.0, "boot_seconds": 1.0}
    });
    let results = serde_json::json!({"kforge_version": "0.1.0", "complete": true, "cells": [cell]});
    std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
}

#[test]
fn ci_merge_recomputes_each_cell_and_refuses_a_forged_verdict() {
    let scratch = scratch("merge");
    let good = scratch.join("kforge-results-7.2-x86_64");
    cell_results(
        &good,
        "7.2-x86_64",
        "pass",
        serde_json::json!([{"name": "fifo.load", "status": "pass"}]),
        [1, 0, 0, 0],
    );
    // Says pass, but one of its own tests failed (totals agree with the claim, not the tests).
    let forged = scratch.join("kforge-results-7.2-arm64");
    let tests = serde_json::json!([{"name": "fifo.load", "status": "pass"}, {"name": "fifo.io", "status": "fail"}]);
    cell_results(&forged, "7.2-arm64", "pass", tests, [2, 0, 0, 0]);
    // Consistent status, totals that do not add up.
    let miscounted = scratch.join("kforge-results-7.2-riscv");
    cell_results(
        &miscounted,
        "7.2-riscv",
        "pass",
        serde_json::json!([{"name": "fifo.load", "status": "pass"}]),
        [5, 0, 0, 0],
    );
    let out = scratch.join("merged");
    let arg = |path: &Path| path.to_str().unwrap().to_string();
    let args = ["ci", "merge", "--out", &arg(&out), &arg(&good), &arg(&forged), &arg(&miscounted)];

    let output = xtask(&scratch, &args, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    let forged_file = forged.join("results.json").display().to_string();
    assert!(
        text.contains(&format!("error: {forged_file}: cell 7.2-arm64: says `pass` but test fifo.io says `fail`")),
        "{text}"
    );
    let miscounted_file = miscounted.join("results.json").display().to_string();
    assert!(
        text.contains(&format!(
            "error: {miscounted_file}: cell 7.2-riscv: totals (pass 5 fail 0 skip 0 error 0) disagree"
        )),
        "{text}"
    );
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(merged["complete"], false);
    assert_eq!(merged["cells"][0]["status"], "pass");
    assert_eq!(merged["cells"][1]["status"], "error", "the forged verdict is not kept");
    assert_eq!(merged["cells"][1]["totals"]["fail"], 1, "totals are recomputed from the tests");
    assert_eq!(merged["cells"][2]["totals"]["pass"], 1);

    // The consistent input alone merges to 0: the check does not reject honest cells.
    let output = xtask(&scratch, &["ci", "merge", "--out", &arg(&out), &arg(&good)], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let _ = std::fs::remove_dir_all(scratch);
}

/// A copy of the repository's inputs (kforge.toml, toolchains/, kernel-config/, kforge.lock) under `scratch/project`.
fn project_copy(scratch: &Path) -> PathBuf {
    let project = scratch.join("project");
    for dir in ["toolchains", "kernel-config"] {
        std::fs::create_dir_all(project.join(dir)).unwrap();
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, project.join(dir).join(path.file_name().unwrap())).unwrap();
        }
    }
    for file in ["kforge.toml", "kforge.lock"] {
        std::fs::copy(repo().join(file), project.join(file)).unwrap();
    }
    project
}

#[test]
fn ids_that_would_escape_as_paths_are_refused_naming_the_file() {
    let scratch = scratch("ids");
    let project = project_copy(&scratch);
    let text = std::fs::read_to_string(project.join("kforge.toml")).unwrap();
    for (from, to, kind, id) in [
        ("id = \"7.2\"", "id = \"../../7.2\"", "kernel", "../../7.2"),
        ("toolchain = \"sid\"", "toolchain = \"../sid\"", "toolchain", "../sid"),
    ] {
        assert!(text.contains(from), "kforge.toml has {from}");
        std::fs::write(project.join("kforge.toml"), text.replacen(from, to, 1)).unwrap();
        let output = xtask(&scratch, &["ci", "matrix"], &[("KFORGE_ROOT", &project)]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let message = format!("{}: {kind} id `{id}` is not a plain name", project.join("kforge.toml").display());
        assert!(stderr(&output).contains(&message), "{}", stderr(&output));
    }
    let _ = std::fs::remove_dir_all(scratch);
}
