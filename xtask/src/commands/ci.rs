//! `cargo xtask ci matrix | merge | generate`: the matrix for CI systems, merging per-cell results, and the GitHub/GitLab CI files.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use super::Context;
use super::selection::Selection;
use crate::ci::{merge, pipelines, plan};
use crate::project::Profile;
use crate::{error, paths, ui};

#[derive(Debug, Args)]
pub struct CiArgs {
    #[command(subcommand)]
    pub command: CiCommand,
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Print the matrix (one entry per cell, with kforge's cache keys) for a CI system.
    Matrix {
        /// `github`: a strategy.matrix object on one line; `gitlab`: a child
        /// pipeline with one job per cell; `json`: an array of cells.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Comma-separated arches or `all` (default: kforge.toml's matrix).
        #[arg(long)]
        arch: Option<String>,
        /// Comma-separated kernel ids or `all` (default: kforge.toml's matrix).
        #[arg(long)]
        kernel: Option<String>,
        /// The cells' test profile (default: kforge.toml's [matrix] profile, else debug).
        #[arg(long, env = "KFORGE_PROFILE")]
        profile: Option<Profile>,
    },
    /// Merge the results.json of several cells (CI jobs) into one results.json, junit.xml and summary.md.
    ///
    /// Exit code as for `test`; 2 when an input is missing, broken or partial.
    Merge {
        /// Directories holding a results.json (one job's target/kforge), or results.json files.
        #[arg(required = true, value_name = "DIR")]
        inputs: Vec<PathBuf>,
        /// Where to write (default: target/kforge/merged).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Comma-separated cell ids that must be present (e.g. every cell of the plan).
        #[arg(long, value_name = "IDS")]
        expect: Option<String>,
    },
    /// Write ci/github/kforge.yml and ci/gitlab/kforge-ci.yml from kforge's templates.
    Generate {
        /// Write nothing; fail naming every file that differs from what would be written.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Github,
    Gitlab,
    Json,
}

pub fn run(args: CiArgs) -> Result<i32> {
    match args.command {
        CiCommand::Matrix { format, arch, kernel, profile } => print_matrix(format, arch, kernel, profile),
        CiCommand::Merge { inputs, out, expect } => merge_results(&inputs, out, expect.as_deref()),
        CiCommand::Generate { check } => generate(check),
    }
}

fn print_matrix(format: Format, arch: Option<String>, kernel: Option<String>, profile: Option<Profile>) -> Result<i32> {
    let context = Context::load()?;
    let cells = Selection::of(kernel, arch, profile).cells(&context)?;
    let planned = plan::plan(&context.repo, &cells, &context.drivers(None)?)?;
    let text = match format {
        Format::Github => plan::github(&planned)?,
        Format::Gitlab => pipelines::gitlab_child_pipeline(&planned),
        Format::Json => plan::json(&planned)?,
    };
    println!("{}", text.trim_end());
    Ok(error::EXIT_OK)
}

fn merge_results(inputs: &[PathBuf], out: Option<PathBuf>, expect: Option<&str>) -> Result<i32> {
    let out = match out {
        Some(out) => out,
        None => paths::output_dir(&paths::repo_root()?).join("merged"),
    };
    let expect: Vec<String> =
        expect.unwrap_or_default().split(',').map(|id| id.trim().to_string()).filter(|id| !id.is_empty()).collect();
    let merged = merge::merge(inputs, &expect)?;
    for problem in &merged.problems {
        ui::error(&format!("error: {problem}"));
    }
    merge::write(&merged, &out)?;
    ui::info("");
    ui::info(crate::report::summary::render(&merged.results, ui::color()));
    ui::status(
        "Merged",
        format!("{} cell(s) from {} input(s) into {}", merged.results.cells.len(), inputs.len(), out.display()),
    );
    Ok(merged.results.exit_code())
}

fn generate(check: bool) -> Result<i32> {
    let repo = paths::repo_root()?;
    if check {
        let drifted = pipelines::drifted(&repo)?;
        if drifted.is_empty() {
            ui::status("Fresh", "the generated CI files are up to date");
            return Ok(error::EXIT_OK);
        }
        return Err(error::user_hint(
            format!("out of date (differs from what `cargo xtask ci generate` writes): {}", drifted.join(", ")),
            "run: cargo xtask ci generate",
        ));
    }
    let written = pipelines::write(&repo)?;
    for (path, _) in pipelines::generated() {
        let verb = if written.contains(&path) { "Wrote" } else { "Fresh" };
        ui::status(verb, path);
    }
    Ok(error::EXIT_OK)
}
