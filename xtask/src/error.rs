//! Error kinds shared by every command: user errors with hints, process failures, interruption, and exit codes.

use std::fmt;
use std::path::PathBuf;

/// Exit code: everything passed.
pub const EXIT_OK: i32 = 0;
/// Exit code: a test ran and failed.
pub const EXIT_TEST_FAILED: i32 = 1;
/// Exit code: something before the tests failed (bad input, toolchain, build, boot).
pub const EXIT_INFRA: i32 = 2;
/// Exit code: interrupted by Ctrl-C or a termination signal (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// A mistake in what the user asked for or wrote (unknown id, malformed file).
/// It is shown without a backtrace, with an optional hint on its own line.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Builds a user error.
pub fn user(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError { message: message.into(), hint: None })
}

/// Builds a user error with a hint shown on its own line ("hint: ...").
pub fn user_hint(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError { message: message.into(), hint: Some(hint.into()) })
}

/// Wraps an error with a user-facing message and hint (the cause stays visible).
pub fn with_hint(err: anyhow::Error, message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    err.context(UserError { message: message.into(), hint: Some(hint.into()) })
}

/// The run was interrupted (Ctrl-C, SIGTERM, SIGHUP); children were stopped.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A child process failed: what ran, how it ended, and the end of its output.
#[derive(Debug)]
pub struct ProcessError {
    pub command: String,
    pub status: String,
    pub output_tail: Vec<String>,
    pub log: Option<PathBuf>,
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command failed ({}): {}", self.status, self.command)?;
        if !self.output_tail.is_empty() {
            write!(f, "\n--- last lines of output ---")?;
            for line in &self.output_tail {
                write!(f, "\n  {line}")?;
            }
        }
        if let Some(log) = &self.log {
            write!(f, "\nfull log: {}", log.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ProcessError {}

/// True when the error (or any cause) is an interruption.
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Interrupted>())
}

/// Renders an error the way cargo does: `error: top`, then `Caused by:` lines,
/// then the first hint found anywhere in the chain.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}");
    let causes: Vec<String> = err.chain().skip(1).map(|cause| cause.to_string()).collect();
    if !causes.is_empty() {
        out.push_str("\n\nCaused by:");
        for cause in causes {
            for (index, line) in cause.lines().enumerate() {
                let lead = if index == 0 { "  " } else { "    " };
                out.push('\n');
                out.push_str(lead);
                out.push_str(line);
            }
        }
    }
    let hint = err
        .downcast_ref::<UserError>()
        .and_then(|user| user.hint.clone())
        .or_else(|| err.chain().find_map(|cause| cause.downcast_ref::<UserError>().and_then(|user| user.hint.clone())));
    if let Some(hint) = hint {
        out.push_str("\nhint: ");
        out.push_str(&hint);
    }
    out
}

/// "did you mean" style listing used by every "unknown id" error.
pub fn unknown(kind: &str, given: &str, valid: &[String]) -> anyhow::Error {
    user(format!("unknown {kind} `{given}`; valid {kind}s are: {}", valid.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn render_shows_causes_and_hint() {
        let err = Err::<(), _>(user_hint("mmdebstrap is not installed", "run: apt-get install mmdebstrap"))
            .context("cannot install toolchain sid")
            .unwrap_err();
        expect_test::expect![[r#"
            error: cannot install toolchain sid

            Caused by:
              mmdebstrap is not installed
            hint: run: apt-get install mmdebstrap"#]]
        .assert_eq(&render(&err));
    }

    #[test]
    fn interrupted_is_found_through_context() {
        let err = anyhow::Error::new(Interrupted).context("building kernel");
        assert!(is_interrupted(&err));
        assert!(!is_interrupted(&user("x")));
    }
}
