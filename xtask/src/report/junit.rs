//! junit.xml: one suite per cell, one case per test, rendered from the result model.

use anyhow::Result;

use crate::report::model::{Results, Status};

#[cfg(test)]
impl Results {
    /// JUnit XML: one suite per cell, one case per test; a cell that failed
    /// before its tests is one errored case named after the stage. (Tests
    /// compare runs through it; the code calls `render`.)
    pub fn junit(&self) -> Result<String> {
        render(self)
    }
}

/// JUnit XML of `results` (see `Results::junit`).
pub fn render(results: &Results) -> Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("kforge");
    for cell in &results.cells {
        let mut suite = TestSuite::new(format!("{}/{}", cell.kernel, cell.arch));
        if (cell.tests.is_empty() || cell.status == Status::Error)
            && let Some(category) = cell.category
        {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(cell.message.clone().unwrap_or_default());
            status.set_type(category.as_str());
            suite.add_test_case(TestCase::new(format!("{}.{}", cell.id, category.as_str()), status));
        }
        for test in &cell.tests {
            let status = match test.status {
                Status::Pass => TestCaseStatus::success(),
                Status::Skip => {
                    let mut status = TestCaseStatus::skipped();
                    if let Some(reason) = &test.reason {
                        status.set_message(reason.clone());
                    }
                    status
                }
                Status::Fail | Status::Error => {
                    let kind =
                        if test.status == Status::Fail { NonSuccessKind::Failure } else { NonSuccessKind::Error };
                    let mut status = TestCaseStatus::non_success(kind);
                    status.set_description(test.diagnostics.join("\n"));
                    status
                }
            };
            let mut case = TestCase::new(test.name.clone(), status);
            case.set_classname(cell.id.clone());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use crate::report::model::tests::cell;
    use crate::report::model::{Results, Status};
    use crate::stage::Category;

    #[test]
    fn junit_lists_failures_with_diagnostics() {
        let xml = Results::new(vec![cell(Status::Fail, Some(Category::TestFail))]).junit().unwrap();
        assert!(xml.contains("fifo.roundtrip"), "{xml}");
        assert!(xml.contains("<failure"), "{xml}");
        assert!(xml.contains("expected 40 bytes, got 39"), "{xml}");
    }
}
