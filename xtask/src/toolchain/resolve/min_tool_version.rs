//! The kernel tree as toolchain choice sees it: the Makefile's version and `scripts/min-tool-version.sh` read as data (its `case` arms and `$ARCH` tests evaluated, never run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::arch::Arch;
use crate::project::KernelEntry;
use crate::{error, version};

/// What `scripts/min-tool-version.sh` prints for rustc, bindgen and llvm on one arch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Minimums {
    pub rustc: Option<String>,
    pub bindgen: Option<String>,
    pub llvm: Option<String>,
}

/// A kernel source tree, as far as toolchain choice goes.
#[derive(Debug, Clone)]
pub struct KernelTree {
    pub dir: PathBuf,
    /// `VERSION.PATCHLEVEL.SUBLEVEL` plus `EXTRAVERSION` ("7.3.0-rc7").
    pub version: String,
    /// None when the tree has no `scripts/min-tool-version.sh` (before 5.12).
    pub min_tool_version: Option<MinToolVersion>,
}

impl KernelTree {
    /// The minimums for `arch` (all unknown without min-tool-version.sh).
    pub fn minimums(&self, arch: &Arch) -> Result<Minimums> {
        let Some(script) = &self.min_tool_version else {
            return Ok(Minimums::default());
        };
        Ok(Minimums {
            rustc: script.minimum("rustc", arch)?,
            bindgen: script.minimum("bindgen", arch)?,
            llvm: script.minimum("llvm", arch)?,
        })
    }
}

/// The kforge.toml kernel of the same `major.minor` series as `version`, when exactly one is.
pub fn kernel_entry_for<'a>(kernels: &'a [KernelEntry], version: &str) -> Option<&'a KernelEntry> {
    let series: Vec<u64> = version::components(version).into_iter().take(2).collect();
    // A distribution's built kernel (`debian-image`) is not built from a tree: it never claims one.
    let mut matching = kernels.iter().filter(|entry| {
        !matches!(entry.source, crate::project::KernelSource::DebianImage(_))
            && version::components(&entry.version).starts_with(&series)
    });
    match (matching.next(), matching.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
}

/// Reads the version and min-tool-version.sh of the tree at `dir`.
pub fn read_tree(dir: &Path) -> Result<KernelTree> {
    let makefile = dir.join("Makefile");
    if !makefile.is_file() {
        return Err(error::user(format!("{} is not a kernel source tree (no Makefile)", dir.display())));
    }
    let version = makefile_version(&makefile, &fs_err::read_to_string(&makefile)?)?;
    let script = dir.join("scripts/min-tool-version.sh");
    let min_tool_version =
        if script.is_file() { Some(MinToolVersion::parse(&script, &fs_err::read_to_string(&script)?)?) } else { None };
    Ok(KernelTree { dir: dir.to_path_buf(), version, min_tool_version })
}

/// `VERSION = 7`, `PATCHLEVEL = 2`, `SUBLEVEL = 13`, `EXTRAVERSION =` -> "7.2.13".
pub fn makefile_version(path: &Path, text: &str) -> Result<String> {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines().take(50) {
        if let Some((name, value)) = line.split_once('=') {
            let name = name.trim();
            if ["VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"].contains(&name) && !fields.contains_key(name) {
                fields.insert(name, value.trim().to_string());
            }
        }
    }
    let number = |name: &str| -> Result<String> {
        match fields.get(name) {
            Some(value) if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => Ok(value.clone()),
            _ => Err(error::user(format!(
                "{}: no numeric `{name} = N` line in its first 50 lines; is this a kernel Makefile?",
                path.display()
            ))),
        }
    };
    let extra = fields.get("EXTRAVERSION").cloned().unwrap_or_default();
    Ok(format!("{}.{}.{}{extra}", number("VERSION")?, number("PATCHLEVEL")?, number("SUBLEVEL")?))
}

/// One `label)` arm of the script's `case "$1" in`: its body lines (with line numbers).
#[derive(Debug, Clone)]
pub(super) struct Arm {
    labels: Vec<String>,
    body: Vec<(usize, String)>,
}

/// `scripts/min-tool-version.sh`, read as data: its `case` arms, evaluated for
/// an arch without running the script. Only `echo`, `if`/`elif`/`else`/`fi`
/// and `[ "$ARCH" = x ]` / `[ "$SRCARCH" != x ]` tests joined by `&&`/`||` are
/// understood; anything else is an error naming the line.
#[derive(Debug, Clone)]
pub struct MinToolVersion {
    path: PathBuf,
    arms: Vec<Arm>,
}

impl MinToolVersion {
    pub fn parse(path: &Path, text: &str) -> Result<MinToolVersion> {
        let fail = |line: usize, message: &str| {
            error::user(format!("{}:{line}: {message} (kforge reads this script without running it)", path.display()))
        };
        let mut arms: Vec<Arm> = Vec::new();
        let mut in_case = false;
        let mut current: Option<Arm> = None;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !in_case {
                if line.starts_with("case ") && line.ends_with(" in") && line.contains("$1") {
                    in_case = true;
                }
                continue;
            }
            match &mut current {
                None if line == "esac" => {
                    return Ok(MinToolVersion { path: path.to_path_buf(), arms });
                }
                None => {
                    let (pattern, rest) =
                        line.split_once(')').ok_or_else(|| fail(number, "expected a `tool)` case pattern"))?;
                    let labels = pattern.trim().trim_start_matches('(').split('|').map(|label| unquote(label.trim()));
                    let mut arm = Arm { labels: labels.collect(), body: Vec::new() };
                    let (rest, closed) = strip_terminator(rest.trim());
                    if !rest.is_empty() {
                        arm.body.push((number, rest.to_string()));
                    }
                    if closed { arms.push(arm) } else { current = Some(arm) }
                }
                Some(arm) => {
                    let (rest, closed) = strip_terminator(line);
                    if !rest.is_empty() {
                        arm.body.push((number, rest.to_string()));
                    }
                    if closed && let Some(arm) = current.take() {
                        arms.push(arm);
                    }
                }
            }
        }
        Err(error::user(format!(
            "{}: no complete `case \"$1\" in ... esac` found; cannot read the minimum tool versions",
            path.display()
        )))
    }

    /// What the script prints for `tool` with this arch's `ARCH`/`SRCARCH`;
    /// None when it has no arm for the tool.
    pub fn minimum(&self, tool: &str, arch: &Arch) -> Result<Option<String>> {
        let Some(arm) = self.arms.iter().find(|arm| arm.labels.iter().any(|label| label == tool)) else {
            return Ok(None);
        };
        let fail = |line: usize, message: String| {
            error::user(format!(
                "{}:{line}: {message} (kforge reads this script without running it)",
                self.path.display()
            ))
        };
        // One frame per open `if`: whether its enclosing code runs, whether a branch was taken, whether the current one runs.
        struct Frame {
            outer: bool,
            taken: bool,
            active: bool,
        }
        let mut frames: Vec<Frame> = Vec::new();
        for (number, line) in &arm.body {
            for statement in statements(line) {
                let running = frames.last().is_none_or(|frame| frame.active);
                let word = statement.split_whitespace().next().unwrap_or_default();
                let rest = statement[word.len()..].trim();
                match word {
                    "if" => {
                        let holds = test(rest, arch).map_err(|err| fail(*number, err))?;
                        frames.push(Frame { outer: running, taken: running && holds, active: running && holds });
                    }
                    "elif" => {
                        let holds = test(rest, arch).map_err(|err| fail(*number, err))?;
                        let frame = frames.last_mut().ok_or_else(|| fail(*number, "`elif` without `if`".into()))?;
                        frame.active = frame.outer && !frame.taken && holds;
                        frame.taken |= frame.active;
                    }
                    "else" if rest.is_empty() => {
                        let frame = frames.last_mut().ok_or_else(|| fail(*number, "`else` without `if`".into()))?;
                        frame.active = frame.outer && !frame.taken;
                        frame.taken = true;
                    }
                    "fi" if rest.is_empty() => {
                        frames.pop().ok_or_else(|| fail(*number, "`fi` without `if`".into()))?;
                    }
                    "then" if rest.is_empty() => {}
                    "echo" if running => {
                        let value = unquote(rest);
                        if !value.starts_with(|c: char| c.is_ascii_digit()) {
                            return Err(fail(*number, format!("`{statement}` does not print a version")));
                        }
                        return Ok(Some(value));
                    }
                    "echo" => {}
                    _ => return Err(fail(*number, format!("unsupported shell `{statement}` in the `{tool}` case"))),
                }
            }
        }
        Err(error::user(format!(
            "{}: the `{tool}` case prints no version for {} (ARCH={}, SRCARCH={})",
            self.path.display(),
            arch.name,
            arch.make_arch,
            arch.srcarch
        )))
    }
}

/// The statements of a line: split at `;`, and `then X` / `else X` into the keyword and `X`.
pub(super) fn statements(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for statement in line.split(';').map(str::trim).filter(|statement| !statement.is_empty()) {
        match statement.split_once(char::is_whitespace) {
            Some((keyword @ ("then" | "else"), rest)) => {
                out.push(keyword);
                out.push(rest.trim());
            }
            _ => out.push(statement),
        }
    }
    out
}

/// Splits a trailing `;;` off a case line.
pub(super) fn strip_terminator(line: &str) -> (&str, bool) {
    match line.strip_suffix(";;") {
        Some(rest) => (rest.trim(), true),
        None => (line, false),
    }
}

pub(super) fn unquote(word: &str) -> String {
    let word = word.trim();
    for quote in ['"', '\''] {
        if word.len() >= 2 && word.starts_with(quote) && word.ends_with(quote) {
            return word[1..word.len() - 1].to_string();
        }
    }
    word.to_string()
}

/// Evaluates `[ "$SRCARCH" = s390 ] || [ "$ARCH" != x ]` for `arch`
/// (`&&` and `||` left to right, as the shell does).
pub(super) fn test(condition: &str, arch: &Arch) -> Result<bool, String> {
    let mut result: Option<bool> = None;
    let mut joiner = "";
    let mut rest = condition.trim();
    loop {
        let inner = rest.strip_prefix('[').ok_or_else(|| format!("unsupported test `{condition}`"))?;
        let close = inner.find(']').ok_or_else(|| format!("unclosed `[` in `{condition}`"))?;
        let words: Vec<&str> = inner[..close].split_whitespace().collect();
        let holds = match words.as_slice() {
            [left, op, right] if ["=", "==", "!="].contains(op) => {
                let equal = expand(left, arch)? == expand(right, arch)?;
                if *op == "!=" { !equal } else { equal }
            }
            _ => return Err(format!("unsupported test `[{}]`", &inner[..close])),
        };
        result = Some(match (result, joiner) {
            (None, _) => holds,
            (Some(before), "&&") => before && holds,
            (Some(before), _) => before || holds,
        });
        rest = inner[close + 1..].trim();
        if rest.is_empty() {
            return result.ok_or_else(|| format!("empty test `{condition}`"));
        }
        let (next, after) = if let Some(after) = rest.strip_prefix("&&") {
            ("&&", after)
        } else if let Some(after) = rest.strip_prefix("||") {
            ("||", after)
        } else {
            return Err(format!("unsupported test `{condition}`"));
        };
        joiner = next;
        rest = after.trim();
    }
}

/// A test operand: a literal, or `$ARCH` / `$SRCARCH` (quoted or braced).
pub(super) fn expand(word: &str, arch: &Arch) -> Result<String, String> {
    let word = unquote(word);
    let Some(variable) = word.strip_prefix('$') else {
        if word.contains('$') {
            return Err(format!("unsupported word `{word}`"));
        }
        return Ok(word);
    };
    match variable.trim_start_matches('{').trim_end_matches('}') {
        "ARCH" => Ok(arch.make_arch.to_string()),
        "SRCARCH" => Ok(arch.srcarch.to_string()),
        other => Err(format!("unsupported variable `${other}` (only ARCH and SRCARCH are known)")),
    }
}
