//! Installs a Debian toolchain root with mmdebstrap (pinned packages, busybox for every arch, written atomically under a lock); `provider::debian` calls it. Also the install options every provider takes.

use std::path::Path;

use anyhow::{Context, Result};

use super::{Toolchain, debian_arches, mirror};
use crate::process::{Cmd, Control, Outcome, shell_quote};
use crate::{cache, error, fetch, hostdeps, process, progress};

/// mmdebstrap's hooks that make a `file://` repository visible inside the root while it is built.
const FILE_MIRROR_HOOKS: &str = "/usr/share/mmdebstrap/hooks/file-mirror-automount";

/// Options that change how (not what) a root is built.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Debian mirror URL; default: mmdebstrap's own default mirror.
    pub mirror: Option<String>,
    /// Remove an existing root and build it again.
    pub force: bool,
}

impl InstallOptions {
    /// The session's options: `--mirror` (`KFORGE_MIRROR`).
    pub fn from_session() -> InstallOptions {
        InstallOptions { mirror: crate::session::current().mirror.filter(|mirror| !mirror.is_empty()), force: false }
    }
}

/// The mmdebstrap command that builds `toolchain`'s root into `target`: from
/// the Debian mirror, or with `--offline` from the store's repository of the
/// toolchain's packages (see `mirror`).
pub fn mmdebstrap_command(toolchain: &Toolchain, target: &Path, options: &InstallOptions) -> Result<Cmd> {
    let spec = &toolchain.spec;
    let debian = spec.debian()?;
    let (busybox_name, busybox_version) = spec.busybox_package()?;
    let arches = debian_arches(spec)?;
    let busybox_script = format!(
        "set -e; mkdir -p /opt/kforge/busybox; cd /opt/kforge/busybox; \
         for a in {arches}; do \
           apt-get download -q -o APT::Sandbox::User=root {name}:$a={version}; \
           mkdir -p $a unpacked-$a; dpkg-deb -x {name}_*_$a.deb unpacked-$a; \
           mv unpacked-$a/usr/bin/busybox $a/busybox; rm -rf unpacked-$a {name}_*_$a.deb; \
         done",
        arches = arches.join(" "),
        name = busybox_name,
        version = busybox_version,
    );
    // mmdebstrap adds <suite>-updates and <suite>-security for stable suites;
    // every pin names a version of the suite itself, so only its index is read
    // (and a half-synced updates index cannot fail the install).
    let mut extra_sources =
        format!("sed -i -e '/ {main}-[a-z]* /d' \"$1/etc/apt/sources.list\"; ", main = debian.suite);
    for suite in &debian.extra_suites {
        // Same mirror and components as the main suite, another suite name.
        extra_sources.push_str(&format!(
            "sed 's/ {main} / {suite} /' \"$1/etc/apt/sources.list\" > \"$1/etc/apt/sources.list.d/kforge-{suite}.list\"; ",
            main = debian.suite,
        ));
    }
    let record = format!(
        "mkdir -p \"$1/opt/kforge\" && chroot \"$1\" dpkg-query -W > \"$1/opt/kforge/packages.txt\" && printf '%s\\n' {} > \"$1/opt/kforge/toolchain.toml\"",
        shell_quote(&spec.canonical())
    );
    let mut cmd = Cmd::new("mmdebstrap")
        .args(["--variant=minbase", "--mode=auto", "--format=directory"])
        .arg(format!("--architectures={}", arches.join(",")))
        .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
        .arg("--aptopt=Acquire::Retries \"3\"")
        .arg(format!("--include={}", spec.root_packages().join(",")))
        // Keep the package lists: kernel sources are fetched later with the root's apt.
        .arg("--skip=cleanup/apt/lists");
    let offline = fetch::is_offline();
    if !offline {
        cmd = cmd.arg(format!("--setup-hook={extra_sources}"));
    }
    cmd = cmd
        .arg(format!("--customize-hook=chroot \"$1\" sh -c {}", shell_quote(&busybox_script)))
        .arg(format!("--customize-hook={record}"));
    if offline {
        // After our customize hooks: the repository stays mounted until they ran.
        cmd = cmd
            .arg(format!("--hook-dir={FILE_MIRROR_HOOKS}"))
            .arg(mirror::dist_name(toolchain))
            .arg(target)
            .arg(mirror::sources_line(toolchain)?);
    } else {
        cmd = cmd.arg(&debian.suite).arg(target);
        if let Some(mirror) = &options.mirror {
            cmd = cmd.arg(mirror);
        }
    }
    Ok(cmd)
}

/// Builds the Debian root if it is missing (or `force`). Returns whether it built one.
pub fn install_root(toolchain: &Toolchain, options: &InstallOptions) -> Result<bool> {
    if options.force {
        let _lock = cache::lock(&toolchain.root)?;
        cache::remove_dir_if_exists(&toolchain.root)?;
    }
    if toolchain.is_installed() {
        return Ok(false);
    }
    hostdeps::ensure(&[hostdeps::MMDEBSTRAP, hostdeps::BWRAP, hostdeps::UNSHARE])?;
    if fetch::is_offline() {
        mirror::check_offline_ready(toolchain)?;
    }
    let log = cache::sibling(&toolchain.root, "install.log");
    cache::ensure_dir(&toolchain.root, |work| {
        // mmdebstrap wants to create the directory itself (or find it empty).
        cache::remove_dir_if_exists(work)?;
        let cmd = contained(mmdebstrap_command(toolchain, work, options)?, crate::sandbox::is_root());
        progress::status("Installing", format!("toolchain {} ({}) into {}", toolchain.id(), toolchain.spec.description, toolchain.root.display()));
        let spinner = progress::spinner("mmdebstrap");
        let mut last_stage = String::new();
        let outcome = cmd.stream(&log, None, &mut |line| {
            if let Some(stage) = line.strip_prefix("I: ") {
                spinner.set_message(stage.to_string());
                if !progress::bars_enabled() && stage != last_stage {
                    progress::detail(format!("mmdebstrap: {stage}"));
                }
                last_stage = stage.to_string();
            }
            Control::Continue
        })?;
        spinner.finish_and_clear();
        match outcome {
            Outcome::Exited(status) if status.success() => Ok(()),
            _ => {
                let failure = anyhow::Error::new(error::ProcessError {
                    command: "mmdebstrap".to_string(),
                    status: match outcome {
                        Outcome::Exited(status) => process::describe_status(status),
                        _ => "stopped".to_string(),
                    },
                    output_tail: error_lines(&log),
                    log: Some(log.clone()),
                });
                Err(error::with_hint(
                    failure,
                    format!("mmdebstrap could not build toolchain {}", toolchain.id()),
                    "check that every pinned package=version in the toolchain file exists in the suite (or pass --mirror)",
                ))
            }
        }
    })
    .with_context(|| format!("failed to install toolchain {}", toolchain.id()))
}

/// `cmd` in a PID and mount namespace of its own, when kforge runs as root.
///
/// kforge gives its direct child `PR_SET_PDEATHSIG`, which reaches
/// mmdebstrap alone, not its apt and dpkg workers, and as root mmdebstrap
/// mounts /proc, /sys and /dev in the new root of the host's mount
/// namespace. Under `unshare --pid --fork --kill-child --mount`, the
/// unshare process is kforge's child: when kforge dies (even by `kill -9`)
/// unshare gets SIGKILL, `--kill-child` kills the namespace's first process,
/// and with it every process in the namespace; the mounts were never
/// visible outside it and go with it. Without root mmdebstrap runs in its
/// own user namespace (`--mode=auto` picks unshare mode) and nothing is
/// mounted on the host.
fn contained(cmd: Cmd, root: bool) -> Cmd {
    if !root {
        return cmd;
    }
    Cmd::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "--mount-proc"])
        .args(cmd.argv())
}

/// The lines of a failed mmdebstrap log worth showing: apt's errors first, else the tail.
fn error_lines(log: &Path) -> Vec<String> {
    let tail = process::log_tail(log, 400);
    let errors: Vec<String> =
        tail.iter().filter(|line| line.starts_with("E:") || line.contains("rror")).take(15).cloned().collect();
    if errors.is_empty() { process::log_tail(log, 15) } else { errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_mmdebstrap_runs_in_its_own_pid_and_mount_namespace() {
        let cmd = Cmd::new("mmdebstrap").args(["--variant=minbase", "sid", "/cache/root.tmp"]);
        assert_eq!(contained(cmd.clone(), false), cmd);
        assert_eq!(
            contained(cmd, true).argv(),
            [
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount",
                "--propagation",
                "private",
                "--mount-proc",
                "mmdebstrap",
                "--variant=minbase",
                "sid",
                "/cache/root.tmp"
            ]
        );
    }

    #[test]
    fn mmdebstrap_plan_pins_packages_and_fetches_busybox_per_arch() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let toolchain = Toolchain::load(&repo, "sid").unwrap();
        let cmd = mmdebstrap_command(&toolchain, Path::new("/cache/root.tmp"), &InstallOptions::default()).unwrap();
        let argv = cmd.argv();
        let include = argv.iter().find(|arg| arg.starts_with("--include=")).unwrap();
        assert!(include.contains("rustc=1.97.1+dfsg1-1"), "{include}");
        assert!(include.contains("clang-22=1:22.1.8-3"), "{include}");
        assert!(argv.iter().any(|arg| arg.contains("busybox-static:$a=1:1.38.0-3+b1")), "{argv:?}");
        assert_eq!(argv[argv.len() - 2..], ["sid".to_string(), "/cache/root.tmp".to_string()]);
        let with_mirror = mmdebstrap_command(
            &toolchain,
            Path::new("/r"),
            &InstallOptions { mirror: Some("http://127.0.0.1:9/debian".into()), force: false },
        )
        .unwrap();
        assert_eq!(with_mirror.argv().last().unwrap(), "http://127.0.0.1:9/debian");
    }
}
