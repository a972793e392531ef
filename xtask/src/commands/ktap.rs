//! `cargo xtask ktap FILE`: parse a saved console log and print its KTAP results.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::{console, ktap, qemu};

#[derive(Debug, Args)]
pub struct KtapArgs {
    /// A console log (as saved in target/kforge/cells/*/console.log), or - for stdin.
    pub file: PathBuf,
    /// Print JSON (tests, events, totals of leaf tests) on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: KtapArgs) -> Result<i32> {
    // At most the console cap (and one byte to tell that it was exceeded).
    let limit = console::MAX_CONSOLE_BYTES + 1;
    let mut bytes = Vec::new();
    if args.file.as_os_str() == "-" {
        std::io::Read::read_to_end(&mut std::io::Read::take(std::io::stdin(), limit), &mut bytes)?;
    } else {
        std::io::Read::read_to_end(&mut std::io::Read::take(fs_err::File::open(&args.file)?, limit), &mut bytes)?;
    }
    let over = bytes.len() as u64 > console::MAX_CONSOLE_BYTES;
    bytes.truncate(console::MAX_CONSOLE_BYTES as usize);
    let text = String::from_utf8_lossy(&bytes);
    // The nonce is taken from the log's own framed lines (this is an offline view).
    let split = qemu::split_console(&text, None);
    drop(bytes);
    let mut report = ktap::parse(&split.verdicts);
    if let Some(nonce) = &split.nonce
        && split.dumped
    {
        report.events = console::attribute(&split.dmesg, nonce).all();
    } else if split.nonce.is_some() {
        report.events = console::scan(&split.console);
    }
    if over {
        report.cap = Some(console::Cap::ConsoleBytes);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    let totals = report.totals;
    Ok(if report.crashed() || report.cap.is_some() || totals.fail > 0 || totals.error > 0 { 1 } else { 0 })
}
