//! Small cached Debian roots of pinned tools that build no kernel (packaging tools, disk-image tools), installed with mmdebstrap.
//!
//! Their pins live in `toolchains/*.pins`, outside the toolchain files, so
//! changing them rebuilds no kernel. Each root is content-addressed over its
//! pins under `~/.cache/kforge/<cache_subdir>/`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::process::{Cmd, Control, Outcome};
use crate::sandbox::Sandbox;
use crate::toolchain::install::InstallOptions;
use crate::{cache, error, fetch, hostdeps, paths, process, progress};

/// What one tool root holds and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    /// For messages: "packaging tools", "disk-image tools".
    pub purpose: &'static str,
    /// Directory under the cache.
    pub cache_subdir: &'static str,
    /// The pin file, relative to the repository (named in errors).
    pub pin_file: &'static str,
    /// Bumped when the way the root is built changes.
    pub recipe: &'static str,
    pub suite: String,
    /// Debian architectures of the root (`--architectures`); empty: the host's.
    pub architectures: Vec<String>,
    /// `name[:arch]=version`.
    pub packages: Vec<String>,
    /// A file (relative to the root) whose presence means the install finished.
    pub marker: &'static str,
}

/// An installed tool root.
#[derive(Debug, Clone)]
pub struct ToolRoot {
    pub root: PathBuf,
}

impl ToolRoot {
    /// Where the root for `spec` lives (content-addressed over the pins).
    pub fn locate(spec: &RootSpec) -> Result<ToolRoot> {
        let mut key = cache::KeyHasher::new();
        key.input("recipe", spec.recipe).input("suite", &spec.suite).input("packages", spec.packages.join("\n"));
        if !spec.architectures.is_empty() {
            key.input("architectures", spec.architectures.join(","));
        }
        Ok(ToolRoot {
            root: paths::cache_dir()?.join(spec.cache_subdir).join(format!("{}-{}", spec.suite, key.short())),
        })
    }

    pub fn sandbox(&self) -> Result<Sandbox> {
        Sandbox::new(self.root.clone(), Vec::new(), Vec::new())
    }

    /// A path inside the root, as the host sees it.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }
}

/// The mmdebstrap command that builds `spec`'s root into `target`.
pub fn mmdebstrap_command(spec: &RootSpec, target: &Path, options: &InstallOptions) -> Cmd {
    let mut cmd = Cmd::new("mmdebstrap").args(["--variant=minbase", "--mode=auto", "--format=directory"]);
    if !spec.architectures.is_empty() {
        cmd = cmd.arg(format!("--architectures={}", spec.architectures.join(",")));
    }
    cmd = cmd
        .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
        .arg("--aptopt=Acquire::Retries \"3\"")
        .arg(format!("--include={}", spec.packages.join(",")))
        .arg(&spec.suite)
        .arg(target);
    if let Some(mirror) = &options.mirror {
        cmd = cmd.arg(mirror);
    }
    cmd
}

/// Installs the root if missing; returns it.
pub fn ready(spec: &RootSpec, options: &InstallOptions) -> Result<ToolRoot> {
    let tools = ToolRoot::locate(spec)?;
    if tools.host_path(spec.marker).exists() {
        return Ok(tools);
    }
    if fetch::is_offline() {
        return Err(error::user_hint(
            format!(
                "the {} root {} is not installed and --offline forbids fetching it",
                spec.purpose,
                tools.root.display()
            ),
            "run the same command once online",
        ));
    }
    hostdeps::ensure(&[hostdeps::MMDEBSTRAP, hostdeps::BWRAP])?;
    let log = cache::sibling(&tools.root, "install.log");
    cache::ensure_dir(&tools.root, |work| {
        cache::remove_dir_if_exists(work)?;
        progress::status(
            "Installing",
            format!("{} ({}) into {}", spec.purpose, spec.packages.join(", "), tools.root.display()),
        );
        let cmd = mmdebstrap_command(spec, work, options);
        let outcome = cmd.stream(&log, None, &mut |_| Control::Continue)?;
        if matches!(outcome, Outcome::Exited(status) if status.success()) {
            return Ok(());
        }
        Err(error::with_hint(
            anyhow::Error::new(error::ProcessError {
                command: "mmdebstrap".to_string(),
                status: match outcome {
                    Outcome::Exited(status) => process::describe_status(status),
                    _ => "stopped".to_string(),
                },
                output_tail: process::log_tail(&log, 15),
                log: Some(log.clone()),
            }),
            format!("mmdebstrap could not build the {} root", spec.purpose),
            format!(
                "check that every package=version in {} exists in suite {} (or pass --mirror)",
                spec.pin_file, spec.suite
            ),
        ))
    })?;
    if !tools.host_path(spec.marker).exists() {
        return Err(error::user(format!(
            "the {} root {} has no {} after installing {}: fix {}",
            spec.purpose,
            tools.root.display(),
            spec.marker,
            spec.packages.join(", "),
            spec.pin_file
        )));
    }
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_architectures_are_requested_and_change_the_location() {
        let mut spec = RootSpec {
            purpose: "test tools",
            cache_subdir: "test-tools",
            pin_file: "toolchains/test.pins",
            recipe: "r1",
            suite: "sid".into(),
            architectures: Vec::new(),
            packages: vec!["a=1".into()],
            marker: "usr/bin/a",
        };
        let plain = mmdebstrap_command(&spec, Path::new("/t"), &InstallOptions::default()).argv();
        assert!(!plain.iter().any(|arg| arg.starts_with("--architectures")), "{plain:?}");
        let before = ToolRoot::locate(&spec).unwrap().root;
        spec.architectures = vec!["amd64".into(), "arm64".into()];
        let multi = mmdebstrap_command(&spec, Path::new("/t"), &InstallOptions::default()).argv();
        assert!(multi.contains(&"--architectures=amd64,arm64".to_string()), "{multi:?}");
        assert_eq!(multi[multi.len() - 2..], ["sid".to_string(), "/t".to_string()]);
        assert_ne!(ToolRoot::locate(&spec).unwrap().root, before);
    }
}
