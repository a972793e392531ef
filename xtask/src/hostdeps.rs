//! Host programs kforge needs outside the toolchain root (mmdebstrap, bwrap, chromium): detect, install with apt when allowed, or say how.

use anyhow::{Context, Result};

use crate::process::{self, Cmd};
use crate::{error, progress, sandbox};

/// A host program and the Debian packages it needs: the first provides the
/// program, the others what it needs to be useful (they are installed without
/// recommends).
#[derive(Debug, Clone, Copy)]
pub struct HostTool {
    pub program: &'static str,
    pub packages: &'static [&'static str],
}

pub const MMDEBSTRAP: HostTool = HostTool { program: "mmdebstrap", packages: &["mmdebstrap"] };
pub const BWRAP: HostTool = HostTool { program: "bwrap", packages: &["bubblewrap"] };
pub const UNSHARE: HostTool = HostTool { program: "unshare", packages: &["util-linux"] };
/// Headless Chromium draws the HTML report into PNGs; without a font it
/// would draw every letter as a box.
pub const CHROMIUM: HostTool = HostTool { program: "chromium", packages: &["chromium", "fonts-liberation"] };

/// Makes sure every tool is on PATH. Missing ones are installed with apt-get
/// when kforge runs as root (or has password-less sudo); otherwise this stops
/// with the exact command to run.
pub fn ensure(tools: &[HostTool]) -> Result<()> {
    let missing: Vec<HostTool> = tools.iter().copied().filter(|tool| process::which(tool.program).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().flat_map(|tool| tool.packages.iter().copied()).collect();
    let programs: Vec<&str> = missing.iter().map(|tool| tool.program).collect();
    let install_line = format!("sudo apt-get install -y {}", packages.join(" "));
    if crate::fetch::is_offline() {
        return Err(error::user_hint(
            format!(
                "--offline: host tools {} are not installed, and installing them needs the network",
                programs.join(", ")
            ),
            format!("install them first: {install_line}"),
        ));
    }
    if process::which("apt-get").is_none() {
        return Err(error::user_hint(
            format!("{} not installed, and this host has no apt-get", programs.join(", ")),
            format!("install the packages {} with your distribution's package manager", packages.join(", ")),
        ));
    }
    let prefix: Vec<&str> = if sandbox::is_root() {
        vec![]
    } else if process::which("sudo").is_some()
        && Cmd::new("sudo").args(["-n", "true"]).output().is_ok_and(|out| out.status.success())
    {
        vec!["sudo", "-n"]
    } else {
        return Err(error::user_hint(format!("{} not installed", programs.join(", ")), format!("run: {install_line}")));
    };
    progress::status("Installing", format!("host packages {} with apt-get", packages.join(" ")));
    let apt = |args: &[&str]| -> Result<String> {
        let mut argv: Vec<&str> = prefix.clone();
        argv.push("apt-get");
        // Another apt-get (another kforge run, or the system's) may hold
        // dpkg's lock: wait for it for up to 10 min instead of failing at once.
        argv.extend_from_slice(&["-o", "DPkg::Lock::Timeout=600"]);
        argv.extend_from_slice(args);
        Cmd::new(argv[0]).args(&argv[1..]).env("DEBIAN_FRONTEND", "noninteractive").run()
    };
    let mut install_args = vec!["install", "-y", "-q", "--no-install-recommends"];
    install_args.extend(packages.iter().copied());
    if apt(&install_args).is_err() {
        // A fresh machine may have empty package lists; refresh them once.
        apt(&["update", "-q"]).context("apt-get update failed")?;
        apt(&install_args).map_err(|err| {
            let hint = install_hint(&format!("{err:#}"), &install_line);
            error::with_hint(err, format!("cannot install {}", packages.join(", ")), hint)
        })?;
    }
    for tool in missing {
        if process::which(tool.program).is_none() {
            return Err(error::user(format!(
                "installed {} but `{}` is still not on PATH",
                tool.packages.join(", "),
                tool.program
            )));
        }
    }
    Ok(())
}

/// What to do when apt-get failed with `failure`: the install line, after
/// `dpkg --configure -a` when an earlier dpkg run was interrupted (apt then
/// refuses every install until it is finished).
fn install_hint(failure: &str, install_line: &str) -> String {
    if failure.contains("dpkg was interrupted") {
        format!(
            "an earlier dpkg run was interrupted; finish it with `sudo dpkg --configure -a`, then run: {install_line}"
        )
    } else {
        format!("run: {install_line}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_interrupted_dpkg_is_named_with_the_command_that_finishes_it() {
        let line = "sudo apt-get install -y chromium";
        assert_eq!(super::install_hint("E: Unable to locate package", line), format!("run: {line}"));
        let hint = super::install_hint(
            "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.",
            line,
        );
        assert_eq!(
            hint,
            format!("an earlier dpkg run was interrupted; finish it with `sudo dpkg --configure -a`, then run: {line}")
        );
    }
}
