//! The packaging tools (`toolchains/packaging.pins`: dpkg-deb, lintian) in a small cached Debian root, and lintian's verdict on built packages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::toolchain::install::InstallOptions;
use crate::toolroot::{self, RootSpec, ToolRoot};
use crate::{error, process};

/// Bumped when the way the root is built changes.
const RECIPE: &str = "kforge-package-tools-1";
/// The pin file, relative to the repository.
pub const PIN_FILE: &str = "toolchains/packaging.pins";

/// `toolchains/packaging.pins`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolPins {
    pub suite: String,
    /// `name=version` installed into the tools root.
    pub packages: Vec<String>,
    /// `name=version` installed with our packages in the install proof's root.
    pub proof_packages: Vec<String>,
}

impl ToolPins {
    pub fn load(repo: &Path) -> Result<ToolPins> {
        let pins: ToolPins = crate::project::load_toml(&repo.join(PIN_FILE))?;
        for pin in pins.packages.iter().chain(&pins.proof_packages) {
            crate::toolchain::spec::split_pin(pin).with_context(|| format!("in {PIN_FILE}"))?;
        }
        Ok(pins)
    }
}

/// The packaging tools root: `toolchains/packaging.pins` installed by [`toolroot`].
pub type ToolsRoot = ToolRoot;

impl ToolPins {
    /// What [`toolroot`] installs for these pins.
    pub fn root_spec(&self) -> RootSpec {
        RootSpec {
            purpose: "packaging tools",
            cache_subdir: "package-tools",
            pin_file: PIN_FILE,
            recipe: RECIPE,
            suite: self.suite.clone(),
            architectures: Vec::new(),
            packages: self.packages.clone(),
            marker: "usr/bin/lintian",
        }
    }
}

/// Installs the tools root if missing; returns it.
pub fn ready(pins: &ToolPins, options: &InstallOptions) -> Result<ToolsRoot> {
    toolroot::ready(&pins.root_spec(), options)
}

/// One lintian finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `E`, `W`, `I`, `P`...
    pub severity: char,
    pub package: String,
    pub line: String,
}

/// Parses lintian's `X: package[ type]: tag details` lines.
pub fn parse_lintian(output: &str) -> Vec<Finding> {
    output
        .lines()
        .filter_map(|line| {
            let (severity, rest) = line.split_once(": ")?;
            let severity = severity.chars().next().filter(|_| severity.len() == 1)?;
            let package = rest.split([':', ' ']).next()?.to_string();
            Some(Finding { severity, package, line: line.to_string() })
        })
        .collect()
}

/// The lintian argv for `/debs/<file>...`.
pub fn lintian_command(files: &[String]) -> Vec<String> {
    let mut argv: Vec<String> = ["lintian", "--allow-root", "--no-tag-display-limit", "--display-info"]
        .iter()
        .map(|word| word.to_string())
        .collect();
    argv.extend(files.iter().map(|file| format!("/debs/{file}")));
    argv
}

/// Runs lintian on `debs` (all in one directory); returns its findings. Its
/// exit status is not the verdict (it fails on warnings too): the findings are.
pub fn lintian(tools: &ToolsRoot, debs: &[PathBuf]) -> Result<Vec<Finding>> {
    let Some(dir) = debs.first().and_then(|deb| deb.parent()) else { return Ok(Vec::new()) };
    let files: Vec<String> =
        debs.iter().filter_map(|deb| deb.file_name()).map(|name| name.to_string_lossy().into_owned()).collect();
    let sandbox = tools.sandbox()?;
    let mut jail = sandbox.jail();
    jail.ro(dir, "/debs");
    let output = jail.command(&lintian_command(&files))?.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let findings = parse_lintian(&stdout);
    // Exit 0 or 2 (tags found) are answers; anything else is lintian failing.
    if !matches!(output.status.code(), Some(0) | Some(1) | Some(2)) || (findings.is_empty() && !output.status.success())
    {
        return Err(error::user(format!(
            "lintian did not run on {}: {}\n{}",
            files.join(", "),
            process::describe_status(output.status),
            process::last_lines(&format!("{stdout}{stderr}"), 20).join("\n")
        )));
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_load_and_lintian_output_is_parsed() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pins = ToolPins::load(&repo).unwrap();
        assert!(pins.packages.iter().any(|pin| pin.starts_with("lintian=")), "{pins:?}");
        let cmd =
            toolroot::mmdebstrap_command(&pins.root_spec(), Path::new("/cache/tools.tmp"), &InstallOptions::default());
        let argv = cmd.argv();
        assert!(argv.contains(&"--aptopt=Acquire::Check-Valid-Until \"false\"".to_string()), "{argv:?}");
        assert_eq!(argv[argv.len() - 2..], [pins.suite.clone(), "/cache/tools.tmp".to_string()]);
        let findings = parse_lintian(
            "E: kforge-fifo-dkms: no-copyright-file\nW: linux-librust-7.2.13+deb14-amd64: shared-library-lacks-prerequisites [usr/src/x.so]\n\
             N: some note text\nrandom line\n",
        );
        assert_eq!(findings.len(), 3);
        assert_eq!(findings[0].severity, 'E');
        assert_eq!(findings[0].package, "kforge-fifo-dkms");
        assert_eq!(findings[1].package, "linux-librust-7.2.13+deb14-amd64");
    }
}
