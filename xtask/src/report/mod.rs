//! Results of a run: the model (`model`) and its renderers: results.json (`json`), junit.xml (`junit`), the summary table (`summary`) and report.html (`html`).
//!
//! The model never prints; commands print what `summary::render` returns.

pub mod html;
pub mod json;
pub mod junit;
pub mod model;
pub mod summary;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use model::{CellResult, Results, RunSummary, Status, TestRecord, Timings, Totals};

impl Results {
    /// Writes results.json, junit.xml and report.html into `dir`; returns
    /// their paths in that order.
    pub fn write(&self, dir: &Path) -> Result<[PathBuf; 3]> {
        let paths = [dir.join("results.json"), dir.join("junit.xml"), dir.join("report.html")];
        crate::cache::write_atomic(&paths[0], json::render(self)?)?;
        crate::cache::write_atomic(&paths[1], junit::render(self)?)?;
        html::write(self, &paths[2])?;
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::tests::cell;
    use crate::stage::Category;

    #[test]
    fn write_leaves_json_junit_and_html_side_by_side_and_read_gets_the_results_back() {
        let dir = std::env::temp_dir().join(format!("kforge-report-write-{}", std::process::id()));
        let results = Results::new(vec![cell(Status::Fail, Some(Category::TestFail))]);
        let [json, junit, html] = results.write(&dir).unwrap();
        assert_eq!(
            [json.file_name(), junit.file_name(), html.file_name()].map(|name| name.unwrap().to_owned()),
            ["results.json", "junit.xml", "report.html"]
        );
        assert!(fs_err::read_to_string(&html).unwrap().contains("id=\"cell-7.2-x86_64\""));
        assert_eq!(Results::read(&json).unwrap(), results);
        let _ = std::fs::remove_dir_all(dir);
    }
}
