//! `cargo xtask bench`: run the inner-loop benchmarks and write their JSON (and, asked, the benchmarks page's table).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::{Context as ProjectContext, GlobalArgs};
use crate::{bench, ui};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmarks to run, comma-separated (default: all, in this order).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<bench::Phase>,
    /// Where to write the JSON (default: docs/bench.json in the repository).
    /// It is written after each benchmark; the rows of benchmarks not run
    /// this time are kept from the file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also regenerate the table in docs/benchmarks.md from the results.
    #[arg(long)]
    pub write_docs: bool,
}

pub fn run(args: BenchArgs, global: &GlobalArgs) -> Result<i32> {
    let context = ProjectContext::load()?;
    let phases = if args.only.is_empty() { bench::Phase::ALL.to_vec() } else { args.only.clone() };
    // The runs get this session, but their own output directories.
    let mut session = global.clone();
    session.session.output_dir = None;
    let flags = session.forwarded();
    let work = context.output.join("bench");
    let options = bench::Options { repo: &context.repo, work: &work, session_flags: &flags };
    let json_path = args.json.unwrap_or_else(|| context.repo.join("docs/bench.json"));
    let page_path = args.write_docs.then(|| context.repo.join("docs/benchmarks.md"));
    let mut save = |report: &bench::Report| -> Result<()> {
        crate::cache::write_atomic(&json_path, serde_json::to_string_pretty(report)? + "\n")?;
        if let Some(page_path) = &page_path {
            let page = fs_err::read_to_string(page_path)?;
            crate::cache::write_atomic(page_path, bench::splice_docs(&page, &bench::render_markdown(report))?)?;
        }
        Ok(())
    };
    let report = bench::run(&options, &phases, bench::load_previous(&json_path)?, &mut save)?;
    ui::status("Wrote", json_path.display().to_string());
    if let Some(page_path) = &page_path {
        ui::status("Wrote", page_path.display().to_string());
    }
    print!("{}", bench::render_markdown(&report));
    Ok(0)
}
