//! What a toolchain check found: the check and report types and the version probes every provider uses (a leaf: it knows no provider).

use anyhow::Result;
use serde::Serialize;

use crate::sandbox::Sandbox;

/// One check: what was pinned, what the root has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub tool: String,
    pub pinned: String,
    /// The version found, or "missing".
    pub found: String,
    pub ok: bool,
    /// The raw line the version came from, or why it is missing.
    pub detail: String,
    /// What to do about a failed check (empty when there is nothing to add).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// The whole verification, as printed by `toolchain verify --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub toolchain: String,
    /// The root's content key (what `toolchain install` hashed).
    pub key: String,
    pub root: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// The mismatch lines of a failed report: "rustc: pinned 1.97.1, found 1.96.0",
    /// each followed by what to do, when known.
    pub fn mismatches(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|check| !check.ok)
            .map(|check| {
                let line = format!("{}: pinned {}, found {} ({})", check.tool, check.pinned, check.found, check.detail);
                if check.hint.is_empty() { line } else { format!("{line}\n    to fix: {}", check.hint) }
            })
            .collect()
    }

    /// Human-readable table.
    pub fn render(&self) -> String {
        let mut out = format!("toolchain {} at {}\n", self.toolchain, self.root);
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!(
                "  {mark} {:<24} pinned {:<10} found {:<10} {}\n",
                check.tool, check.pinned, check.found, check.detail
            ));
            if !check.ok && !check.hint.is_empty() {
                out.push_str(&format!("       to fix: {}\n", check.hint));
            }
        }
        out
    }
}

/// Pulls the first dotted version (`1.97.1`, `22.1.8`) that follows `marker` in `text`.
pub fn version_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let rest = text[start..].trim_start();
    let version: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let version = version.trim_end_matches('.').to_string();
    if version.contains('.') { Some(version) } else { None }
}

/// Runs a shell snippet in the sandbox (the root, or the host read-only); returns stdout+stderr (or the failure text).
pub fn probe(sandbox: &Sandbox, script: &str) -> Result<(bool, String)> {
    let cmd = sandbox.jail().command(&["sh", "-c", script])?;
    let output = cmd.output()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

/// The first non-empty line of a tool's output, for a check's detail.
pub fn first_line(text: &str) -> String {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or("no output").trim().to_string()
}

/// A check of `tool`'s version (the one after `marker` in its output) against `pinned`.
pub fn version_check(tool: &str, pinned: &str, output: (bool, String), marker: &str) -> Check {
    let (_, text) = output;
    match version_after(&text, marker) {
        Some(found) => Check {
            tool: tool.to_string(),
            pinned: pinned.to_string(),
            ok: found == pinned,
            found,
            detail: first_line(&text),
            hint: String::new(),
        },
        None => Check {
            tool: tool.to_string(),
            pinned: pinned.to_string(),
            found: "missing".to_string(),
            ok: false,
            detail: first_line(&text),
            hint: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_real_tool_output() {
        assert_eq!(
            version_after("rustc 1.97.1 (8bab26f4f 2026-07-14) (built from a source tarball)", "rustc ").unwrap(),
            "1.97.1"
        );
        assert_eq!(version_after("Debian clang version 22.1.8 (3)", "clang version ").unwrap(), "22.1.8");
        assert_eq!(
            version_after(
                "clang diag: /tmp/v.h:1:9: warning: clang version 22.1.8 (3) [-W#pragma-messages]",
                "clang version "
            )
            .unwrap(),
            "22.1.8"
        );
        assert_eq!(version_after("Debian LLD 22.1.8 (compatible with GNU linkers)", "LLD ").unwrap(), "22.1.8");
        assert_eq!(
            version_after("QEMU emulator version 11.1.3 (Debian 1:11.1.3+ds-1)", "QEMU emulator version ").unwrap(),
            "11.1.3"
        );
        assert_eq!(
            version_after("BusyBox v1.38.0 (Debian 1:1.38.0-3+b1) multi-call binary.", "BusyBox v").unwrap(),
            "1.38.0"
        );
        assert_eq!(version_after("bash: rustc: command not found", "rustc "), None);
        assert_eq!(version_after("aarch64-linux-gnu-gcc-16 (Debian 16.2.0-3cross1) 16.2.0", ") ").unwrap(), "16.2.0");
    }

    #[test]
    fn a_mismatch_names_tool_pin_and_found_version() {
        let check = version_check("rustc", "1.97.1", (true, "rustc 1.96.0 (abc 2026-05-01)".into()), "rustc ");
        assert!(!check.ok);
        let report =
            Report { toolchain: "sid".into(), key: "k".into(), root: "/r".into(), ok: false, checks: vec![check] };
        assert_eq!(report.mismatches(), ["rustc: pinned 1.97.1, found 1.96.0 (rustc 1.96.0 (abc 2026-05-01))"]);
        let missing = version_check("bindgen", "0.72.1", (false, "sh: bindgen: not found".into()), "bindgen ");
        assert_eq!((missing.found.as_str(), missing.ok), ("missing", false));
    }
}
