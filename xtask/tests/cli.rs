//! Runs the real `xtask` binary for what needs no toolchain: bad input, dry-run plans, KTAP parsing, exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

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

#[test]
fn unknown_arch_lists_the_valid_ones_without_a_backtrace() {
    let output = xtask(&["kernel", "build", "--arch", "sparc64", "--dry-run"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("error: unknown arch `sparc64`"), "{text}");
    assert!(text.contains("x86_64") && text.contains("arm64"), "{text}");
    assert!(!text.contains("backtrace") && !text.contains("panicked"), "{text}");
}

#[test]
fn unknown_kernel_and_toolchain_list_the_valid_ones() {
    let output = xtask(&["test", "--kernel", "1.0"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown kernel `1.0`; valid kernels are: 7.2"), "{}", stderr(&output));
    let output = xtask(&["toolchain", "verify", "nosuch"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown toolchain `nosuch`; valid toolchains are: sid"), "{}", stderr(&output));
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
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains(&format!("kforge.toml:{line}")), "{text}");
    assert!(text.contains("timeout-secs"), "{text}");
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

#[test]
fn ktap_command_reports_a_missing_file() {
    let output = xtask(&["ktap", "/nonexistent/console.log"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/console.log"), "{}", stderr(&output));
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
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("cannot read results /nonexistent/results.json"), "{text}");
    assert!(text.contains("hint: run `cargo xtask test` first"), "{text}");

    let console = repo().join("xtask/tests/fixtures/console-pass.log");
    let output = xtask(&["report", "html", console.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("is not a kforge results.json"), "{}", stderr(&output));
}
