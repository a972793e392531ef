//! `cargo xtask test`: everything (toolchain, kernel, drivers, image, boot) for each cell, then results.json, junit.xml, report.html and a summary.

use anyhow::Result;
use clap::Args;

use super::{Context, GlobalArgs};
use crate::matrix::{self, Cell, RunOptions};
use crate::{error, pipeline, ui};

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
    /// Run one cell only, by id (`<kernel>-<arch>`, e.g. 7.2-x86_64).
    #[arg(long, conflicts_with_all = ["arch", "kernel"])]
    pub cell: Option<String>,
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

/// The cells asked for: `--cell`, or kernels x arches.
pub fn cells(context: &Context, args: &TestArgs) -> Result<Vec<Cell>> {
    if let Some(id) = &args.cell {
        return parse_cell(context, id).map(|cell| vec![cell]);
    }
    let kernels = context.project.select_kernels(args.kernel.as_deref())?;
    let arches = context.arches(args.arch.as_deref())?;
    let mut cells = Vec::new();
    for kernel in kernels {
        for arch in &arches {
            cells.push(Cell { kernel: kernel.clone(), arch });
        }
    }
    Ok(cells)
}

/// Parses `<kernel>-<arch>` (kernel ids may contain dashes; the arch is the suffix).
pub fn parse_cell(context: &Context, id: &str) -> Result<Cell> {
    for arch in crate::arch::ARCHES {
        if let Some(kernel_id) = id.strip_suffix(&format!("-{}", arch.name)) {
            let kernel = context.project.kernel(kernel_id)?.clone();
            return Ok(Cell { kernel, arch });
        }
    }
    Err(error::user(format!("`{id}` is not a cell id; cell ids look like <kernel>-<arch>, e.g. 7.2-x86_64")))
}
