//! `cargo xtask test`: everything (toolchain, kernel, drivers, image, boot) for each cell, then results.json, junit.xml, report.html and a summary.

use anyhow::Result;
use clap::Args;

use super::selection::{BootArgs, Selection};
use super::{Context, GlobalArgs};
use crate::matrix::{self, Cell, RunOptions};
use crate::{error, pipeline, seeded, ui};

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub boot: BootArgs,
}

pub fn run(args: TestArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let cells = args.selection.cells(&context)?;
    let options = RunOptions {
        repo: context.repo.clone(),
        output: context.output.clone(),
        drivers: args.selection.drivers(&context)?,
        jobs: pipeline::default_jobs(),
        boot: context.project.boot.clone(),
        boot_mode: args.boot.mode(&context)?,
        install: global.install_options(),
        installed_modules: None,
    };
    pipeline::check_secure_boot(&context.repo, options.boot_mode.secure_boot, &options.boot, &options.install)?;
    if args.selection.suite.as_deref() == Some(seeded::SUITE) {
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
