//! `cargo xtask ktap FILE`: parse a saved console log and print its KTAP results.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::{ktap, qemu};

#[derive(Debug, Args)]
pub struct KtapArgs {
    /// A console log (as saved in target/kforge/cells/*/console.log), or - for stdin.
    pub file: PathBuf,
    /// Print JSON (tests, events, totals of leaf tests) on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: KtapArgs) -> Result<i32> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
        buffer
    } else {
        fs_err::read(&args.file)?
    };
    let text = String::from_utf8_lossy(&bytes);
    let (main, _dmesg) = qemu::split_dmesg(&text);
    let report = ktap::parse(&main);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    let totals = report.totals;
    Ok(if report.crashed() || totals.fail > 0 || totals.error > 0 { 1 } else { 0 })
}
