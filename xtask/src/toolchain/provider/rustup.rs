//! The `rustup` provider: the exact rustc with rust-src from rustup, and bindgen built by `cargo install` into the toolchain's own directory.
//!
//! clang, lld and QEMU are the host's (checked by version in `host::verify_on_host`).
//! Every rustup and cargo run is bounded by a timeout: rustup retries failed
//! downloads, and a machine without access to its distribution server must
//! get a clear error, not a hang.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::ToolchainProvider;
use super::host::{self, RUSTUP_MISSING};
use crate::error::{self, ProcessError};
use crate::process::{self, Cmd, Control, Outcome};
use crate::toolchain::Toolchain;
use crate::toolchain::check::{Check, Report, version_after};
use crate::toolchain::install::InstallOptions;
use crate::toolchain::spec::{RustupSettings, ToolchainSpec};
use crate::{cache, fetch, progress};

/// Bounds `rustup run ... --print sysroot` and `bindgen --version`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// The bound on a whole `rustup toolchain install`: the session's
/// `--rustup-timeout` (`KFORGE_RUSTUP_TIMEOUT`, seconds), else 10 min. rustup
/// retries failed downloads and waits forever on a server that accepts but
/// never answers.
pub fn rustup_timeout() -> Duration {
    crate::session::current().rustup_timeout()
}
/// Bounds `cargo install bindgen-cli` (a cold build takes minutes on 2 cores).
pub const CARGO_INSTALL_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// The crate that provides the `bindgen` command.
const BINDGEN_CRATE: &str = "bindgen-cli";

/// A rustup toolchain (with rust-src) plus bindgen built with it.
pub struct Rustup;

impl ToolchainProvider for Rustup {
    fn plan(&self, toolchain: &Toolchain, _options: &InstallOptions) -> Result<Vec<Cmd>> {
        plan(toolchain)
    }

    fn install(&self, toolchain: &Toolchain, options: &InstallOptions) -> Result<bool> {
        install(toolchain, options).with_context(|| format!("failed to install toolchain {}", toolchain.id()))
    }

    fn is_installed(&self, toolchain: &Toolchain) -> bool {
        installed_sysroot(toolchain).is_ok() && toolchain.bindgen_binary().is_file()
    }

    fn sysroot(&self, toolchain: &Toolchain) -> Result<Option<PathBuf>> {
        installed_sysroot(toolchain).map(Some)
    }

    fn describe(&self, toolchain: &Toolchain) -> String {
        format!(
            "rustup toolchain {}, bindgen in {}, LLVM in {}",
            toolchain.spec.rustup.as_ref().map_or("?", |rustup| rustup.toolchain.as_str()),
            toolchain.bindgen_root().display(),
            toolchain.spec.llvm.bin
        )
    }

    /// On the host, first checking that the rustup toolchain is installed:
    /// without it rustc and rust-src are not probed (PATH would find another rustc).
    fn verify(&self, toolchain: &Toolchain) -> Result<Report> {
        let name = &settings(&toolchain.spec)?.toolchain;
        let (check, sysroot) = match installed_sysroot(toolchain) {
            Ok(path) => (host::installed_check("rustup toolchain", name, &path.display().to_string()), Some(path)),
            Err(err) => (host::missing_check("rustup toolchain", name, &err.to_string()), None),
        };
        host::verify_on_host(toolchain, Some(check), sysroot.as_deref(), &fix)
    }
}

/// What to do about a failed check that rustup (or kforge's rustup install) fixes.
fn fix(toolchain: &Toolchain, check: &Check) -> Option<String> {
    let spec = &toolchain.spec;
    let file = spec.path.display();
    let id = toolchain.id();
    let missing = check.found == "missing";
    let rustup_name = spec.rustup.as_ref().map(|rustup| rustup.toolchain.as_str());
    let text = match check.tool.as_str() {
        "rustup toolchain" => format!(
            "run: cargo xtask toolchain install {id} (it runs: {})",
            command_line(&toolchain_install_command(rustup_name.unwrap_or("?")))
        ),
        "rustc" if missing => format!("run: cargo xtask toolchain install {id}"),
        "rust-src" if check.detail == RUSTUP_MISSING => {
            format!("run: cargo xtask toolchain install {id}")
        }
        "rustc" | "rust-src" if !missing => format!(
            "rustup toolchain {} is not rustc {}: set toolchain = \"{}\" in [rustup] of {file}",
            rustup_name.unwrap_or("?"),
            spec.rustc.version,
            spec.rustc.version
        ),
        "rust-src" => format!(
            "run: rustup component add rust-src --toolchain {} (it downloads from rustup's distribution server; \
             without access to it, use a toolchain with provider = \"debian\")",
            rustup_name.unwrap_or("?")
        ),
        "bindgen" => format!(
            "run: cargo xtask toolchain install {id} (it runs: {})",
            command_line(&bindgen_install_command(
                rustup_name.unwrap_or("?"),
                &spec.bindgen.version,
                &toolchain.bindgen_root()
            ))
        ),
        _ => return None,
    };
    Some(text)
}

/// The `[rustup]` table of a rustup toolchain.
pub fn settings(spec: &ToolchainSpec) -> Result<&RustupSettings> {
    spec.rustup
        .as_ref()
        .ok_or_else(|| error::user(format!("{}: provider = \"rustup\" needs a [rustup] table", spec.path.display())))
}

/// `program` with the environment every rustup/cargo run gets: errors
/// without stack traces (a `RUST_BACKTRACE=1` in the user's environment makes
/// rustup print one under every error).
fn quiet(program: &str) -> Cmd {
    Cmd::new(program).env("RUST_BACKTRACE", "0")
}

/// `rustup toolchain install NAME --profile minimal --component rust-src`.
pub fn toolchain_install_command(name: &str) -> Cmd {
    quiet("rustup").args(["toolchain", "install", name, "--profile", "minimal", "--component", "rust-src"]).arg(
        // Installing a toolchain must not also update rustup itself.
        "--no-self-update",
    )
}

/// `rustup component add rust-src --toolchain NAME` (toolchain present, rust-src not).
pub fn component_add_command(name: &str) -> Cmd {
    quiet("rustup").args(["component", "add", "rust-src", "--toolchain", name])
}

/// `rustup run NAME rustc --print sysroot`, never installing anything.
pub fn sysroot_command(name: &str) -> Cmd {
    quiet("rustup").env("RUSTUP_AUTO_INSTALL", "0").args(["run", name, "rustc", "--print", "sysroot"])
}

/// `cargo +NAME install --locked bindgen-cli --version VERSION --root ROOT`.
pub fn bindgen_install_command(name: &str, version: &str, root: &Path) -> Cmd {
    quiet("cargo")
        .arg(format!("+{name}"))
        .args(["install", "--locked", BINDGEN_CRATE, "--version", version, "--root"])
        .arg(root)
}

/// The commands `toolchain install --dry-run` prints.
pub fn plan(toolchain: &Toolchain) -> Result<Vec<Cmd>> {
    let name = &settings(&toolchain.spec)?.toolchain;
    Ok(vec![
        toolchain_install_command(name),
        bindgen_install_command(name, &toolchain.spec.bindgen.version, &toolchain.bindgen_root()),
    ])
}

/// The installed rustup toolchain's directory (`rustc --print sysroot`), or
/// an error saying it is not installed (with rustup's own words).
pub fn installed_sysroot(toolchain: &Toolchain) -> Result<PathBuf> {
    let name = &settings(&toolchain.spec)?.toolchain;
    if process::which("rustup").is_none() {
        return Err(error::user_hint(
            "rustup is not installed or not on PATH",
            "install rustup, or use a toolchain with provider = \"debian\" or \"host\"",
        ));
    }
    match sysroot_command(name).run_with_timeout(QUERY_TIMEOUT) {
        Ok(stdout) => {
            let sysroot = PathBuf::from(stdout.trim());
            if sysroot.join("bin/rustc").is_file() {
                Ok(sysroot)
            } else {
                Err(error::user(format!(
                    "rustup reports sysroot {} for {name}, which has no bin/rustc",
                    sysroot.display()
                )))
            }
        }
        Err(err) => Err(error::user_hint(
            format!("rustup toolchain {name} is not installed ({})", last_output_line(&err)),
            format!("run: cargo xtask toolchain install {}", toolchain.id()),
        )),
    }
}

/// Whether `sysroot` has the standard library sources the kernel builds.
pub fn has_rust_src(sysroot: &Path) -> bool {
    rust_src_marker(sysroot).is_file()
}

fn rust_src_marker(sysroot: &Path) -> PathBuf {
    sysroot.join("lib/rustlib/src/rust/library/core/src/lib.rs")
}

/// Installs what is missing: the rustup toolchain, its rust-src, bindgen.
/// Returns whether it installed anything.
pub fn install(toolchain: &Toolchain, options: &InstallOptions) -> Result<bool> {
    let name = settings(&toolchain.spec)?.toolchain.clone();
    let mut changed = false;
    let sysroot = match installed_sysroot(toolchain) {
        Ok(sysroot) if has_rust_src(&sysroot) => sysroot,
        Ok(_) => {
            run_rustup(toolchain, component_add_command(&name), &format!("add rust-src to rustup toolchain {name}"))?;
            changed = true;
            installed_sysroot(toolchain)?
        }
        Err(_) => {
            run_rustup(toolchain, toolchain_install_command(&name), &format!("install rustup toolchain {name}"))?;
            changed = true;
            installed_sysroot(toolchain)?
        }
    };
    if !has_rust_src(&sysroot) {
        return Err(error::user_hint(
            format!("rustup toolchain {name} has no rust-src: {} is missing", rust_src_marker(&sysroot).display()),
            format!("run: rustup component add rust-src --toolchain {name}"),
        ));
    }
    if install_bindgen(toolchain, &name, options.force)? {
        changed = true;
    }
    Ok(changed)
}

/// Runs a rustup command that downloads, streamed to the toolchain's install
/// log, bounded by [`rustup_timeout`]; a failure says why in plain words.
fn run_rustup(toolchain: &Toolchain, cmd: Cmd, what: &str) -> Result<()> {
    if fetch::is_offline() {
        return Err(error::user_hint(
            format!("--offline: cannot {what}: rustup would download it"),
            format!("run `cargo xtask toolchain install {}` once with network", toolchain.id()),
        ));
    }
    let log = cache::sibling(&toolchain.dir, "install.log");
    let timeout = rustup_timeout();
    progress::status(
        "Running",
        format!("{} (at most {}s; log {})", command_line(&cmd), timeout.as_secs(), log.display()),
    );
    let (outcome, lines) = stream_bounded(&cmd, &log, timeout, "rustup")?;
    if outcome_ok(outcome) {
        return Ok(());
    }
    let name = toolchain.spec.rustup.as_ref().map_or("?", |rustup| rustup.toolchain.as_str());
    let timed_out = (outcome == Outcome::TimedOut).then_some(timeout);
    let (message, hint) = explain_rustup_failure(what, name, &command_line(&cmd), &lines, timed_out);
    Err(error::with_hint(failure(&cmd, outcome, &lines, &log), message, hint))
}

/// Installs bindgen-cli into the toolchain's own directory unless the pinned
/// version is already there. Returns whether it built one.
fn install_bindgen(toolchain: &Toolchain, name: &str, force: bool) -> Result<bool> {
    let version = &toolchain.spec.bindgen.version;
    let root = toolchain.bindgen_root();
    if !force && installed_bindgen_version(toolchain).as_deref() == Some(version.as_str()) {
        return Ok(false);
    }
    {
        // A wrong version (or --force): build it again.
        let _lock = cache::lock(&root)?;
        cache::remove_dir_if_exists(&root)?;
    }
    if fetch::is_offline() {
        return Err(error::user_hint(
            format!("--offline: bindgen-cli {version} is not installed in {}", root.display()),
            format!("run `cargo xtask toolchain install {}` once with network", toolchain.id()),
        ));
    }
    let log = cache::sibling(&root, "install.log");
    cache::ensure_dir(&root, |work| {
        let cmd = bindgen_install_command(name, version, work);
        progress::status(
            "Installing",
            format!("{BINDGEN_CRATE} {version} with cargo +{name} into {} (log {})", root.display(), log.display()),
        );
        let (outcome, lines) = stream_bounded(&cmd, &log, CARGO_INSTALL_TIMEOUT, "cargo install")?;
        if outcome_ok(outcome) {
            return Ok(());
        }
        let network = mentions_network(&lines);
        let message = if network {
            format!("cargo could not download {BINDGEN_CRATE} {version}: the crate registry is not reachable")
        } else {
            format!("cargo could not build {BINDGEN_CRATE} {version} with rustup toolchain {name}")
        };
        let hint = if network {
            "check the network access to the crate registry (or your cargo source replacement), then run the install again"
                .to_string()
        } else {
            format!(
                "see the log; `[bindgen] version` in {} must be a published bindgen-cli version",
                toolchain.spec.path.display()
            )
        };
        Err(error::with_hint(failure(&cmd, outcome, &lines, &log), message, hint))
    })?;
    Ok(true)
}

/// The version the installed bindgen reports, if it runs.
pub fn installed_bindgen_version(toolchain: &Toolchain) -> Option<String> {
    let binary = toolchain.bindgen_binary();
    if !binary.is_file() {
        return None;
    }
    let output = Cmd::new(&binary).arg("--version").run_with_timeout(QUERY_TIMEOUT).ok()?;
    version_after(&output, "bindgen ")
}

/// Streams `cmd` into `log` under a spinner, stopping it at `timeout`.
/// Returns how it ended and the log's last lines.
fn stream_bounded(cmd: &Cmd, log: &Path, timeout: Duration, label: &str) -> Result<(Outcome, Vec<String>)> {
    let spinner = progress::spinner(label);
    let outcome = cmd.stream(log, Some(timeout), &mut |line| {
        let line = line.trim();
        if !line.is_empty() {
            spinner.set_message(line.chars().take(100).collect::<String>());
            if !progress::bars_enabled() {
                progress::detail(format!("{label}: {line}"));
            }
        }
        Control::Continue
    })?;
    spinner.finish_and_clear();
    // The log starts with the command line, which the error shows anyway.
    let lines = process::log_tail(log, 40).into_iter().filter(|line| !line.starts_with("$ ")).collect();
    Ok((outcome, lines))
}

fn outcome_ok(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Exited(status) if status.success())
}

/// The process error of a failed run: its command, how it ended, its
/// error lines (or last lines), and the log.
fn failure(cmd: &Cmd, outcome: Outcome, lines: &[String], log: &Path) -> anyhow::Error {
    let status = match outcome {
        Outcome::Exited(status) => process::describe_status(status),
        Outcome::TimedOut => "stopped at its timeout".to_string(),
        Outcome::Stopped => "stopped".to_string(),
    };
    let errors: Vec<String> = lines.iter().filter(|line| line.contains("error")).take(12).cloned().collect();
    let output_tail = if errors.is_empty() { lines.iter().rev().take(12).rev().cloned().collect() } else { errors };
    anyhow::Error::new(ProcessError { command: cmd.display(), status, output_tail, log: Some(log.to_path_buf()) })
}

/// Whether a failed download's output points at the network.
fn mentions_network(lines: &[String]) -> bool {
    const SIGNS: [&str; 12] = [
        "could not download",
        "failed to download",
        "error sending request",
        "could not resolve",
        "dns error",
        "connection refused",
        "connection reset",
        "timed out",
        "network",
        "tls",
        "failed to connect",
        "spurious",
    ];
    lines.iter().any(|line| {
        let line = line.to_lowercase();
        SIGNS.iter().any(|sign| line.contains(sign))
    })
}

/// What to tell the user when rustup failed to `what` (install/add rust-src)
/// running `command`.
pub fn explain_rustup_failure(
    what: &str,
    name: &str,
    command: &str,
    lines: &[String],
    timed_out: Option<Duration>,
) -> (String, String) {
    let elsewhere = format!(
        "use a toolchain with provider = \"debian\" (rustc and rust-src from Debian packages, e.g. toolchains/sid.toml \
         for rustc 1.97.1), or run `{command}` where rustup has network"
    );
    if let Some(limit) = timed_out {
        return (
            format!(
                "cannot {what}: rustup did not finish within {}s and was stopped (it waits on a server that does \
                 not answer and retries failed downloads: rustup's distribution server is probably not reachable \
                 from here; KFORGE_RUSTUP_TIMEOUT=SECONDS allows longer)",
                limit.as_secs()
            ),
            elsewhere,
        );
    }
    let text = lines.join("\n").to_lowercase();
    if text.contains("invalid toolchain name") || text.contains("no release found") || text.contains("does not exist") {
        return (
            format!("cannot {what}: rustup knows no toolchain called `{name}`"),
            "check `toolchain` in the [rustup] table (a version such as 1.97.1, or a channel)".to_string(),
        );
    }
    if mentions_network(lines) {
        return (
            format!(
                "cannot {what}: rustup could not download it; this machine cannot reach rustup's distribution server \
                 (only package registries may be reachable here)"
            ),
            elsewhere,
        );
    }
    (format!("cannot {what}: rustup failed"), "see the log above".to_string())
}

/// A command line for messages: argv only (the environment kforge adds is noise there).
pub fn command_line(cmd: &Cmd) -> String {
    cmd.argv().iter().map(|word| process::shell_quote(word)).collect::<Vec<_>>().join(" ")
}

/// A failed process's own words: its first `error:` line, else its last line.
fn last_output_line(err: &anyhow::Error) -> String {
    let Some(failure) = err.chain().find_map(|cause| cause.downcast_ref::<ProcessError>()) else {
        return err.to_string();
    };
    let tail = &failure.output_tail;
    let line = tail.iter().find(|line| line.starts_with("error:")).or(tail.last());
    line.map_or_else(|| failure.status.clone(), |line| line.trim_start_matches("error: ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::provider::host::tests as host_tests;

    #[test]
    fn install_plan_is_rustup_then_cargo_install_into_the_toolchain_dir() {
        assert_eq!(
            toolchain_install_command("1.97.1").argv(),
            [
                "rustup",
                "toolchain",
                "install",
                "1.97.1",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
                "--no-self-update"
            ]
        );
        assert_eq!(
            bindgen_install_command("1.97.1", "0.72.1", Path::new("/cache/toolchains/rustup-1.97-abcd/bindgen")).argv(),
            [
                "cargo",
                "+1.97.1",
                "install",
                "--locked",
                "bindgen-cli",
                "--version",
                "0.72.1",
                "--root",
                "/cache/toolchains/rustup-1.97-abcd/bindgen"
            ]
        );
        assert_eq!(
            component_add_command("1.95.0").display(),
            "RUST_BACKTRACE=0 rustup component add rust-src --toolchain 1.95.0"
        );
        assert_eq!(
            sysroot_command("1.95.0").display(),
            "RUST_BACKTRACE=0 RUSTUP_AUTO_INSTALL=0 rustup run 1.95.0 rustc --print sysroot"
        );
    }

    #[test]
    fn committed_rustup_toolchain_plans_its_own_bindgen_root() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = Toolchain::load(&repo, "rustup-1.97").unwrap();
        let argv: Vec<Vec<String>> = plan(&toolchain).unwrap().iter().map(Cmd::argv).collect();
        assert_eq!(argv[0][3], "1.97.1");
        let root = toolchain.bindgen_root().display().to_string();
        assert!(root.starts_with(&toolchain.dir.display().to_string()), "{root}");
        assert_eq!(argv[1][1..8], ["+1.97.1", "install", "--locked", "bindgen-cli", "--version", "0.72.1", "--root"]);
        assert_eq!(argv[1][8], root);
    }

    const INSTALL: &str = "rustup toolchain install 1.97.1 --profile minimal --component rust-src --no-self-update";

    #[test]
    fn a_download_failure_says_the_server_is_unreachable() {
        let lines = vec![
            "info: syncing channel updates for 1.97.1-x86_64-unknown-linux-gnu".to_string(),
            "error: could not download file from 'http://127.0.0.1:9/dist/channel-rust-1.97.1.toml.sha256'".to_string(),
            "error: error sending request for url: Connection refused (os error 111)".to_string(),
        ];
        let (message, hint) =
            explain_rustup_failure("install rustup toolchain 1.97.1", "1.97.1", INSTALL, &lines, None);
        assert!(message.contains("cannot reach rustup's distribution server"), "{message}");
        assert!(hint.contains("provider = \"debian\""), "{hint}");
        assert!(hint.ends_with(&format!("or run `{INSTALL}` where rustup has network")), "{hint}");
        let (message, _) = explain_rustup_failure(
            "install rustup toolchain 1.97.1",
            "1.97.1",
            INSTALL,
            &[],
            Some(Duration::from_secs(600)),
        );
        assert!(message.contains("did not finish within 600s and was stopped"), "{message}");
        let unknown = ["error: invalid toolchain name: 'nope'".to_string()];
        let (message, _) = explain_rustup_failure(
            "install rustup toolchain nope",
            "nope",
            "rustup toolchain install nope",
            &unknown,
            None,
        );
        assert!(message.contains("no toolchain called `nope`"), "{message}");
    }

    #[test]
    fn rustup_report_without_the_toolchain_does_not_probe_another_rustc() {
        let fixture = host_tests::Fixture::new(
            "rustup",
            &host_tests::file("provider = \"rustup\"\n[rustup]\ntoolchain = \"1.97.1\""),
        );
        fixture.tool("rustc", "echo 'rustc 1.95.0 (59807616e 2026-04-14)'");
        let toolchain = fixture.toolchain();
        let not_installed = host::missing_check(
            "rustup toolchain",
            "1.97.1",
            "rustup toolchain 1.97.1 is not installed (toolchain '1.97.1' is not installed)",
        );
        let checks = host::collect(&toolchain, Some(not_installed), &mut fixture.probe(), &fix).unwrap();
        let text = host_tests::lines(&checks);
        assert_eq!(
            text[0],
            "rustup toolchain: pinned 1.97.1, found missing (rustup toolchain 1.97.1 is not installed (toolchain '1.97.1' is not installed))\n    \
             to fix: run: cargo xtask toolchain install t (it runs: rustup toolchain install 1.97.1 --profile minimal --component rust-src --no-self-update)"
        );
        assert_eq!(
            text[1],
            "rustc: pinned 1.97.1, found missing (the rustup toolchain is not installed)\n    to fix: run: cargo xtask toolchain install t"
        );
        assert_eq!(
            text[2],
            "rust-src: pinned 1.97.1, found missing (the rustup toolchain is not installed)\n    to fix: run: cargo xtask toolchain install t"
        );
        let bindgen = text.iter().find(|line| line.starts_with("bindgen:")).unwrap();
        assert!(
            bindgen.contains(&format!(
                "cargo +1.97.1 install --locked bindgen-cli --version 0.72.1 --root {}",
                toolchain.bindgen_root().display()
            )),
            "{bindgen}"
        );
        assert!(!Path::new(&toolchain.bindgen_binary()).is_file());
    }
}
