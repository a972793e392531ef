//! `cargo xtask test`: everything (toolchain, kernel, drivers, image, boot) for each cell, then results.json, junit.xml, report.html and a summary.

use anyhow::Result;
use clap::Args;

use super::{Context, GlobalArgs};
use crate::matrix::{self, Cell, RunOptions};
use crate::project::Profile;
use crate::{error, pipeline, seeded, ui};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Comma-separated arches or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub arch: Option<String>,
    /// Comma-separated kernel ids or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Comma-separated driver names or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub driver: Option<String>,
    /// Add every package of this suite (e.g. `samples`, `kernel-doctests`).
    #[arg(long)]
    pub suite: Option<String>,
    /// Run one cell only, by id (`<kernel>-<arch>-<profile>`, e.g. 7.2-x86_64-debug; `<kernel>-<arch>` takes --profile).
    #[arg(long, conflicts_with_all = ["arch", "kernel"])]
    pub cell: Option<String>,
    /// Test profile: `debug` (SMP, lockdep, KASAN where it exists with Rust, kmemleak, Rust debug
    /// assertions) or `release` (the minimal kernel). Default: kforge.toml's [matrix] profile, else debug.
    #[arg(long)]
    pub profile: Option<Profile>,
    /// Parallel make jobs (default: KFORGE_JOBS or the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

pub fn run(args: TestArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let cells = cells(&context, &args)?;
    let options = RunOptions {
        repo: context.repo.clone(),
        output: context.output.clone(),
        drivers: context.drivers_of(args.driver.as_deref(), args.suite.as_deref())?,
        jobs: args.jobs.unwrap_or_else(pipeline::default_jobs),
        boot: context.project.boot.clone(),
        install: global.install_options(),
    };
    if args.suite.as_deref() == Some(seeded::SUITE) {
        return run_seeded(&cells, &options);
    }
    let profiles: Vec<String> = cells.iter().map(|cell| cell.profile.to_string()).collect();
    if profiles.iter().any(|profile| profile == "debug") {
        ui::detail(
            "debug profile: SMP, lockdep, KASAN (where it exists with Rust), kmemleak, Rust debug assertions; --profile release for the minimal kernel",
        );
    }
    let labels: Vec<String> = cells.iter().map(Cell::label).collect();
    ui::status("Testing", format!("{} cell(s): {}", cells.len(), labels.join(", ")));
    // One run per output directory; the old verdict is gone until this one is written.
    crate::cache::check_writable(&crate::paths::cache_dir()?)?;
    let _output = crate::outdir::claim(&context.output, "cargo xtask test")?;
    let results = matrix::run(&cells, &options)?;
    let [json, junit, html] = results.write(&context.output)?;
    ui::info("");
    ui::info(crate::report::summary::render(&results, ui::color()));
    ui::info(format!("results: {}\njunit:   {}\nreport:  {}", json.display(), junit.display(), html.display()));
    Ok(results.exit_code())
}

/// `--suite seeded-bugs`: each variant booted alone; passes when every one
/// failed with its declared category, and prints the catch table.
fn run_seeded(cells: &[Cell], options: &RunOptions) -> Result<i32> {
    let (variants, others): (Vec<_>, Vec<_>) =
        options.drivers.iter().cloned().partition(|driver| driver.suite() == seeded::SUITE);
    if !others.is_empty() {
        let names: Vec<&str> = others.iter().map(|driver| driver.name.as_str()).collect();
        return Err(error::user(format!(
            "--suite {} runs only its own packages; drop --driver {}",
            seeded::SUITE,
            names.join(",")
        )));
    }
    let labels: Vec<String> = cells.iter().map(Cell::label).collect();
    ui::status("Testing", format!("{} seeded bug(s), each alone, on {}", variants.len(), labels.join(", ")));
    let rows = seeded::run(cells, options, &variants)?;
    ui::info("");
    ui::info(seeded::render(&rows));
    ui::info(format!("results: {}", options.output.join(seeded::SUITE).display()));
    let misses = seeded::misses(&rows);
    if misses.is_empty() {
        return Ok(0);
    }
    ui::info(format!("missed:\n  {}", misses.join("\n  ")));
    Ok(1)
}

/// The cells asked for: `--cell`, or kernels x arches.
pub fn cells(context: &Context, args: &TestArgs) -> Result<Vec<Cell>> {
    let profile = context.project.test_profile(args.profile);
    if let Some(id) = &args.cell {
        return parse_cell(context, id, profile).map(|cell| vec![cell]);
    }
    let kernels = context.project.select_kernels(args.kernel.as_deref())?;
    let arches = context.arches(args.arch.as_deref())?;
    let mut cells = Vec::new();
    for kernel in kernels {
        for arch in &arches {
            cells.push(Cell { kernel: kernel.clone(), arch, profile });
        }
    }
    Ok(cells)
}

/// Parses `<kernel>-<arch>-<profile>`, or `<kernel>-<arch>` in `profile`
/// (kernel ids may contain dashes; arch and profile are the suffix).
pub fn parse_cell(context: &Context, id: &str, profile: Profile) -> Result<Cell> {
    let (rest, profile) = Profile::ALL
        .into_iter()
        .find_map(|known| id.strip_suffix(&format!("-{known}")).map(|rest| (rest, known)))
        .unwrap_or((id, profile));
    for arch in crate::arch::ARCHES {
        if let Some(kernel_id) = rest.strip_suffix(&format!("-{}", arch.name)) {
            let kernel = context.project.kernel(kernel_id)?.clone();
            return Ok(Cell { kernel, arch, profile });
        }
    }
    Err(error::user(format!(
        "`{id}` is not a cell id; cell ids look like <kernel>-<arch>-<profile>, e.g. 7.2-x86_64-debug"
    )))
}
