//! `cargo xtask report html`: render a results.json as the self-contained HTML report, optionally with a screenshot of it.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::report::Results;
use crate::report::html;
use crate::{browser, error, paths, ui};

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Write report.html (the page `cargo xtask test` writes) from a results.json.
    ///
    /// Links to logs are relative when the logs lie under the page's
    /// directory, `file://` URLs otherwise; relative paths in the results are
    /// taken from the current directory. Prints the page's path.
    Html(HtmlArgs),
}

#[derive(Debug, Args)]
pub struct HtmlArgs {
    /// The results to render (default: target/kforge/results.json).
    pub results: Option<PathBuf>,
    /// Where to write the page (default: report.html next to the results).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also save a PNG of the page as headless Chromium draws it (installs
    /// the `chromium` package with apt when missing, if kforge may).
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// The screenshot's window size in CSS pixels, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "1200x900", value_parser = parse_size)]
    pub window_size: WindowSize,
}

/// A screenshot's size in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub width: u32,
    pub height: u32,
}

fn parse_size(text: &str) -> Result<WindowSize, String> {
    let parsed = text.split_once('x').and_then(|(width, height)| Some((width.parse().ok()?, height.parse().ok()?)));
    match parsed {
        Some((width, height)) if width > 0 && height > 0 => Ok(WindowSize { width, height }),
        _ => Err(format!("`{text}` is not a size; write WIDTHxHEIGHT, e.g. 1200x900")),
    }
}

pub fn run(args: ReportArgs) -> Result<i32> {
    match args.command {
        ReportCommand::Html(args) => html_report(args),
    }
}

fn html_report(args: HtmlArgs) -> Result<i32> {
    let results_path = match args.results {
        Some(path) => path,
        None => paths::output_dir(&paths::repo_root()?).join("results.json"),
    };
    let results = Results::read(&results_path)?;
    let out = args.out.unwrap_or_else(|| results_path.with_file_name("report.html"));
    if out.is_dir() {
        return Err(error::user(format!("{} is a directory; --out takes the page's file name", out.display())));
    }
    html::write(&results, &out)?;
    println!("{}", out.display());
    if let Some(png) = &args.screenshot {
        ui::status("Drawing", format!("{} with headless Chromium", out.display()));
        browser::screenshot(&out, png, args.window_size.width, args.window_size.height)?;
        println!("{}", png.display());
    }
    Ok(error::EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_parse_or_say_how_to_write_them() {
        assert_eq!(parse_size("1200x900"), Ok(WindowSize { width: 1200, height: 900 }));
        assert!(parse_size("1200").unwrap_err().contains("WIDTHxHEIGHT"));
        assert!(parse_size("0x900").is_err());
    }
}
