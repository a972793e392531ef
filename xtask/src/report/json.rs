//! results.json: the result model written and read back as JSON.

use std::path::Path;

use anyhow::Result;

use crate::error;
use crate::report::model::Results;

/// The text of results.json (pretty, with a final newline).
pub fn render(results: &Results) -> Result<String> {
    Ok(serde_json::to_string_pretty(results)? + "\n")
}

impl Results {
    /// Reads a results.json (as `report::write` left it).
    pub fn read(path: &Path) -> Result<Results> {
        let bytes = std::fs::read(path).map_err(|err| {
            error::user_hint(
                format!("cannot read results {}: {err}", path.display()),
                "run `cargo xtask test` first, or give the path of a results.json",
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|err| {
            error::user_hint(
                format!("{} is not a kforge results.json: {err}", path.display()),
                "give a results.json written by `cargo xtask test`",
            )
        })
    }
}
