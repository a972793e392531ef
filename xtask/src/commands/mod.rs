//! One file per subcommand: its clap `Args` (whose doc comments are the help text) and a thin `run`.

pub mod bench;
pub mod ci;
pub mod dist;
pub mod drivers;
pub mod fetch;
pub mod image;
pub mod kernel;
pub mod ktap;
pub mod lock;
pub mod new_driver;
pub mod package;
pub mod report;
pub mod run;
pub mod rust_analyzer;
pub mod sdk;
pub mod selection;
pub mod test;
pub mod toolchain;

use std::path::PathBuf;

use anyhow::Result;

use crate::arch::Arch;
use crate::project::{KernelEntry, Project};
use crate::session::Session;
use crate::toolchain::install::InstallOptions;
use crate::{driver, paths};

/// Options every command accepts: the verbosity, and the session every layer reads.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Show every command kforge runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Only errors and warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(flatten)]
    pub session: Session,
}

impl GlobalArgs {
    /// These options as flags, for a command that runs kforge again (so the
    /// inner run sees the same session: network, lock, mirror, jobs,
    /// directories, sandbox, verbosity).
    pub fn forwarded(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.verbose {
            flags.push("--verbose".to_string());
        }
        if self.quiet {
            flags.push("--quiet".to_string());
        }
        flags.extend(self.session.forwarded());
        flags
    }

    /// How to install toolchain roots in this session (`--mirror`).
    pub fn install_options(&self) -> InstallOptions {
        InstallOptions::from_session()
    }
}

/// The repository, its kforge.toml and where output goes.
pub struct Context {
    pub repo: PathBuf,
    pub project: Project,
    pub output: PathBuf,
}

impl Context {
    pub fn load() -> Result<Context> {
        let repo = paths::repo_root()?;
        let project = Project::load(&repo)?;
        let output = paths::output_dir(&repo);
        Ok(Context { repo, project, output })
    }

    /// `--kernel ID`, or the first kernel of the default matrix.
    pub fn kernel(&self, id: Option<&str>) -> Result<KernelEntry> {
        match id {
            Some(id) => Ok(self.project.kernel(id)?.clone()),
            None => Ok(self.project.select_kernels(None)?[0].clone()),
        }
    }

    /// `--arch LIST|all`, or the default matrix's arches.
    pub fn arches(&self, list: Option<&str>) -> Result<Vec<&'static Arch>> {
        match list {
            Some(list) => Arch::parse_list(list),
            None => Arch::parse_list(&self.project.matrix.arches.join(",")),
        }
    }

    /// `--driver LIST`, or the default matrix's drivers.
    pub fn drivers(&self, list: Option<&str>) -> Result<Vec<driver::Driver>> {
        self.drivers_of(list, None)
    }

    /// `--driver LIST` and/or `--suite NAME` (all packages of that suite);
    /// neither: the default matrix's drivers.
    pub fn drivers_of(&self, list: Option<&str>, suite: Option<&str>) -> Result<Vec<driver::Driver>> {
        let all = driver::discover(&self.repo)?;
        if let Some(suite) = suite {
            let members: Vec<driver::Driver> = all.iter().filter(|driver| driver.suite() == suite).cloned().collect();
            if members.is_empty() {
                let mut suites: Vec<String> = all.iter().map(|driver| driver.suite().to_string()).collect();
                suites.sort();
                suites.dedup();
                return Err(crate::error::unknown("suite", suite, &suites));
            }
            let mut chosen = match list {
                Some(_) => self.drivers_of(list, None)?,
                None => Vec::new(),
            };
            for member in members {
                if !chosen.iter().any(|known| known.name == member.name) {
                    chosen.push(member);
                }
            }
            return Ok(chosen);
        }
        let names: Vec<String> = match list {
            Some("all") => all.iter().map(|driver| driver.name.clone()).collect(),
            Some(list) => list.split(',').map(|name| name.trim().to_string()).filter(|name| !name.is_empty()).collect(),
            None => self.project.matrix.drivers.clone(),
        };
        driver::select(&all, &names)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::GlobalArgs;

    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        global: GlobalArgs,
    }

    #[test]
    fn a_rerun_gets_the_same_session_flags() {
        // Only the flags below: not the KFORGE_* variables of the run (clap's `env`).
        let mut env = crate::test_support::ScopedEnv::lock();
        env.without_kforge_variables();
        let parsed =
            Only::try_parse_from(["kforge", "-v", "--offline", "--locked", "--mirror", "http://127.0.0.1:9/debian"])
                .unwrap();
        let again =
            Only::try_parse_from(std::iter::once("kforge".to_string()).chain(parsed.global.forwarded())).unwrap();
        assert_eq!(
            parsed.global.forwarded(),
            ["--verbose", "--mirror", "http://127.0.0.1:9/debian", "--offline", "--locked"]
        );
        assert_eq!(again.global.forwarded(), parsed.global.forwarded());
        assert!(again.global.session.offline && again.global.session.locked);
    }
}
