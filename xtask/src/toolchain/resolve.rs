//! Which pinned toolchain can build a kernel tree: reads its Makefile version and `scripts/min-tool-version.sh` (without running it), applies `toolchains/rules.toml`, and picks a toolchain per arch or names the rule none meets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::arch::{ARCHES, Arch};
use crate::project::KernelEntry;
use crate::toolchain::{Provider, ToolchainSpec};
use crate::{error, project, version};

/// The rules file, relative to the repository.
pub const RULES_FILE: &str = "toolchains/rules.toml";

// ---------------------------------------------------------------------------
// Facts and conditions

/// A named value a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    Kernel,
    Rustc,
    Bindgen,
    Clang,
    Libclang,
    RustcLlvm,
    ClangMajor,
    RustcLlvmMajor,
    MinRustc,
    MinBindgen,
    MinLlvm,
}

impl Fact {
    const ALL: [Fact; 11] = [
        Fact::Kernel,
        Fact::Rustc,
        Fact::Bindgen,
        Fact::Clang,
        Fact::Libclang,
        Fact::RustcLlvm,
        Fact::ClangMajor,
        Fact::RustcLlvmMajor,
        Fact::MinRustc,
        Fact::MinBindgen,
        Fact::MinLlvm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fact::Kernel => "kernel",
            Fact::Rustc => "rustc",
            Fact::Bindgen => "bindgen",
            Fact::Clang => "clang",
            Fact::Libclang => "libclang",
            Fact::RustcLlvm => "rustc-llvm",
            Fact::ClangMajor => "clang-major",
            Fact::RustcLlvmMajor => "rustc-llvm-major",
            Fact::MinRustc => "min-rustc",
            Fact::MinBindgen => "min-bindgen",
            Fact::MinLlvm => "min-llvm",
        }
    }

    fn parse(name: &str) -> Option<Fact> {
        Fact::ALL.into_iter().find(|fact| fact.name() == name)
    }

    /// Where a missing fact would come from (for "unchecked" notes).
    fn source(self) -> &'static str {
        match self {
            Fact::RustcLlvm | Fact::RustcLlvmMajor => "the toolchain file's [rustc] llvm",
            Fact::MinRustc | Fact::MinBindgen | Fact::MinLlvm => "the tree's scripts/min-tool-version.sh",
            _ => "the toolchain file",
        }
    }
}

/// Comparison operators of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    /// Longest first, so `>=` is not read as `>`.
    const SPELLINGS: [(&'static str, Op); 7] =
        [("==", Op::Eq), ("!=", Op::Ne), (">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt), ("=", Op::Eq)];

    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }

    fn holds(self, left: &str, right: &str) -> bool {
        let ordering = version::compare(left, right);
        match self {
            Op::Eq => ordering.is_eq(),
            Op::Ne => ordering.is_ne(),
            Op::Ge => ordering.is_ge(),
            Op::Le => ordering.is_le(),
            Op::Gt => ordering.is_gt(),
            Op::Lt => ordering.is_lt(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Version(String),
    Fact(Fact),
}

/// `>=1.96`, `== min-rustc`, `>=1.78, <1.80`: every term must hold.
#[derive(Debug, Clone)]
struct Condition {
    terms: Vec<(Op, Operand)>,
}

impl Condition {
    fn parse(text: &str) -> Result<Condition, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim) {
            let (op, rest) = Op::SPELLINGS
                .iter()
                .find_map(|(spelling, op)| term.strip_prefix(spelling).map(|rest| (*op, rest.trim())))
                .ok_or_else(|| format!("`{term}` does not start with an operator (one of == != >= <= > <)"))?;
            let operand = if rest.starts_with(|c: char| c.is_ascii_digit()) {
                if !rest.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit())) {
                    return Err(format!("`{rest}` is not a version (digits separated by dots)"));
                }
                Operand::Version(rest.to_string())
            } else {
                Operand::Fact(Fact::parse(rest).ok_or_else(|| format!("`{rest}` is neither a version nor a fact"))?)
            };
            terms.push((op, operand));
        }
        Ok(Condition { terms })
    }

    /// Whether `value` satisfies every term; `Err` lists the operand facts that are unknown.
    fn holds(&self, value: &str, facts: &Facts) -> Result<bool, Vec<Fact>> {
        let mut missing = Vec::new();
        let mut holds = true;
        for (op, operand) in &self.terms {
            let right = match operand {
                Operand::Version(version) => version.as_str(),
                Operand::Fact(fact) => match facts.get(*fact) {
                    Some(value) => value,
                    None => {
                        missing.push(*fact);
                        continue;
                    }
                },
            };
            holds &= op.holds(value, right);
        }
        if missing.is_empty() { Ok(holds) } else { Err(missing) }
    }

    /// The condition with fact operands shown with their values: `== min-rustc (1.78.0)`.
    fn describe(&self, facts: &Facts) -> String {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|(op, operand)| match operand {
                Operand::Version(version) => format!("{} {version}", op.symbol()),
                Operand::Fact(fact) => {
                    format!("{} {} ({})", op.symbol(), fact.name(), facts.get(*fact).unwrap_or("unknown"))
                }
            })
            .collect();
        terms.join(", ")
    }
}

/// The facts of one kernel tree, arch and toolchain. Missing facts are unknown.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    values: BTreeMap<Fact, String>,
}

impl Facts {
    /// Facts of `spec` building a kernel of `kernel_version` whose min-tool-version gives `minimums`.
    pub fn new(kernel_version: &str, minimums: &Minimums, spec: &ToolchainSpec) -> Facts {
        let mut values = BTreeMap::new();
        values.insert(Fact::Kernel, kernel_version.to_string());
        values.insert(Fact::Rustc, spec.rustc.version.clone());
        values.insert(Fact::Bindgen, spec.bindgen.version.clone());
        values.insert(Fact::Clang, spec.llvm.version.clone());
        values.insert(Fact::Libclang, spec.llvm.version.clone());
        values.insert(Fact::ClangMajor, major(&spec.llvm.version));
        if let Some(llvm) = &spec.rustc.llvm {
            values.insert(Fact::RustcLlvm, llvm.clone());
            values.insert(Fact::RustcLlvmMajor, major(llvm));
        }
        for (fact, minimum) in
            [(Fact::MinRustc, &minimums.rustc), (Fact::MinBindgen, &minimums.bindgen), (Fact::MinLlvm, &minimums.llvm)]
        {
            if let Some(minimum) = minimum {
                values.insert(fact, minimum.clone());
            }
        }
        Facts { values }
    }

    fn get(&self, fact: Fact) -> Option<&str> {
        self.values.get(&fact).map(String::as_str)
    }
}

fn major(version: &str) -> String {
    version::components(version).first().map(u64::to_string).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The rules file

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(rename = "rule", default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    explanation: String,
    #[serde(default)]
    kernel: Option<String>,
    #[serde(default)]
    arch: Option<OneOrMany>,
    #[serde(default)]
    when: BTreeMap<String, String>,
    #[serde(default)]
    require: BTreeMap<String, String>,
}

/// One known compatibility rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub explanation: String,
    kernel: Option<Condition>,
    /// kforge arch names it applies to; empty: every arch.
    arches: Vec<&'static str>,
    when: Vec<(Fact, Condition)>,
    require: Vec<(Fact, Condition)>,
}

/// Every rule of `toolchains/rules.toml`.
#[derive(Debug, Clone)]
pub struct Rules {
    pub path: PathBuf,
    pub rules: Vec<Rule>,
}

/// Reads `<repo>/toolchains/rules.toml`.
pub fn load_rules(repo: &Path) -> Result<Rules> {
    let path = repo.join(RULES_FILE);
    let text = fs_err::read_to_string(&path)?;
    parse_rules(&path, &text)
}

/// Parses rules text that came from `path`; errors name the file and the rule.
pub fn parse_rules(path: &Path, text: &str) -> Result<Rules> {
    let file: RulesFile = project::parse_toml(path, text)?;
    let mut rules: Vec<Rule> = Vec::new();
    for raw in file.rules {
        let fail = |message: String| error::user(format!("{}: rule `{}`: {message}", path.display(), raw.id));
        if raw.id.trim().is_empty() {
            return Err(error::user(format!("{}: a rule has an empty id", path.display())));
        }
        if rules.iter().any(|rule| rule.id == raw.id) {
            return Err(fail("the id is used twice".to_string()));
        }
        if raw.explanation.trim().is_empty() {
            return Err(fail("needs an explanation".to_string()));
        }
        if raw.require.is_empty() {
            return Err(fail("needs a `require` table (what must hold when the rule applies)".to_string()));
        }
        let kernel =
            raw.kernel.as_deref().map(Condition::parse).transpose().map_err(|err| fail(format!("kernel: {err}")))?;
        let names = match &raw.arch {
            None => Vec::new(),
            Some(OneOrMany::One(name)) => vec![name.clone()],
            Some(OneOrMany::Many(names)) => names.clone(),
        };
        let mut arches = Vec::new();
        for name in &names {
            match ARCHES.iter().find(|arch| arch.name == name) {
                Some(arch) => arches.push(arch.name),
                None => {
                    let known: Vec<&str> = ARCHES.iter().map(|arch| arch.name).collect();
                    return Err(fail(format!("unknown arch `{name}`; kforge's arches are: {}", known.join(", "))));
                }
            }
        }
        let parse_table = |table: &str, entries: &BTreeMap<String, String>| -> Result<Vec<(Fact, Condition)>> {
            let mut parsed = Vec::new();
            for (name, text) in entries {
                let fact = Fact::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = Fact::ALL.iter().map(|fact| fact.name()).collect();
                    fail(format!("{table}: `{name}` is not a fact; facts are: {}", known.join(", ")))
                })?;
                let condition = Condition::parse(text).map_err(|err| fail(format!("{table}.{name}: {err}")))?;
                parsed.push((fact, condition));
            }
            Ok(parsed)
        };
        let when = parse_table("when", &raw.when)?;
        let require = parse_table("require", &raw.require)?;
        rules.push(Rule { id: raw.id, explanation: raw.explanation, kernel, arches, when, require });
    }
    Ok(Rules { path: path.to_path_buf(), rules })
}

// ---------------------------------------------------------------------------
// Checking one kernel / arch / toolchain

/// A rule a toolchain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub rule: String,
    pub explanation: String,
    /// What does not hold, with the values: "rustc 1.85.1 is not >= 1.96".
    pub detail: String,
}

/// A rule that could not be checked because facts are unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    pub rule: String,
    /// "rustc-llvm (the toolchain file's [rustc] llvm)".
    pub missing: Vec<String>,
}

/// The rules `facts` break on `arch`, and those it cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub failures: Vec<Failure>,
    pub unchecked: Vec<Unchecked>,
}

/// Applies every rule to one kernel/arch/toolchain. A rule whose conditions
/// cannot be evaluated is unchecked; a requirement that is known to fail is a
/// failure even when another requirement of the rule is unknown.
pub fn check(rules: &Rules, facts: &Facts, arch: &Arch) -> Outcome {
    let mut outcome = Outcome::default();
    for rule in &rules.rules {
        if !rule.arches.is_empty() && !rule.arches.contains(&arch.name) {
            continue;
        }
        let mut missing: Vec<Fact> = Vec::new();
        let mut applies = true;
        let kernel = rule.kernel.iter().map(|condition| (Fact::Kernel, condition));
        for (fact, condition) in kernel.chain(rule.when.iter().map(|(fact, condition)| (*fact, condition))) {
            match facts.get(fact) {
                None => missing.push(fact),
                Some(value) => match condition.holds(value, facts) {
                    Ok(holds) => applies &= holds,
                    Err(unknown) => missing.extend(unknown),
                },
            }
        }
        if !applies {
            continue;
        }
        let mut broken = Vec::new();
        if missing.is_empty() {
            for (fact, condition) in &rule.require {
                match facts.get(*fact) {
                    None => missing.push(*fact),
                    Some(value) => match condition.holds(value, facts) {
                        Ok(true) => {}
                        Ok(false) => {
                            broken.push(format!("{} {value} is not {}", fact.name(), condition.describe(facts)))
                        }
                        Err(unknown) => missing.extend(unknown),
                    },
                }
            }
        }
        if !broken.is_empty() {
            outcome.failures.push(Failure {
                rule: rule.id.clone(),
                explanation: rule.explanation.clone(),
                detail: broken.join("; "),
            });
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            outcome.unchecked.push(Unchecked {
                rule: rule.id.clone(),
                missing: missing.iter().map(|fact| format!("{} ({})", fact.name(), fact.source())).collect(),
            });
        }
    }
    outcome
}

// ---------------------------------------------------------------------------
// The kernel tree: Makefile version and scripts/min-tool-version.sh

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
struct Arm {
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
fn statements(line: &str) -> Vec<&str> {
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
fn strip_terminator(line: &str) -> (&str, bool) {
    match line.strip_suffix(";;") {
        Some(rest) => (rest.trim(), true),
        None => (line, false),
    }
}

fn unquote(word: &str) -> String {
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
fn test(condition: &str, arch: &Arch) -> Result<bool, String> {
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
fn expand(word: &str, arch: &Arch) -> Result<String, String> {
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

// ---------------------------------------------------------------------------
// Resolving: every toolchain against every arch

/// A toolchain as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolchainFacts {
    pub id: String,
    pub rustc: String,
    pub rustc_llvm: Option<String>,
    pub bindgen: String,
    pub llvm: String,
}

/// One toolchain on one arch.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub toolchain: String,
    pub ok: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The choice for one arch.
#[derive(Debug, Clone, Serialize)]
pub struct ArchChoice {
    pub arch: String,
    pub min_tool_version: Minimums,
    pub chosen: Option<String>,
    pub reason: String,
    pub verdicts: Vec<Verdict>,
}

/// The whole answer of `toolchain resolve`.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub kernel_version: String,
    pub source: PathBuf,
    /// The kforge.toml kernel entry this tree belongs to, if any.
    pub kernel_entry: Option<String>,
    /// The entry's own toolchain, chosen whenever it satisfies every rule.
    pub preferred: Option<String>,
    pub rules_file: PathBuf,
    pub toolchains: Vec<ToolchainFacts>,
    pub arches: Vec<ArchChoice>,
    /// Every arch has a toolchain.
    pub ok: bool,
}

/// Rule id of the refusal for an arch a toolchain says it cannot serve.
pub const UNSUPPORTED_ARCH: &str = "unsupported-arch";

/// The toolchain to choose whenever it satisfies every rule, and why
/// ("the kernel's own toolchain", "the toolchain asked for").
#[derive(Debug, Clone, Copy)]
pub struct Preferred<'a> {
    pub id: &'a str,
    pub why: &'a str,
}

/// Applies the rules to every toolchain on every arch and picks one per arch:
/// `preferred` when it satisfies every rule, else the satisfying toolchain
/// with the oldest rustc (closest to the tree's minimum: newer compilers are
/// the ones that break older kernels), a Debian root before the host's tools.
pub fn resolve(
    rules: &Rules,
    tree: &KernelTree,
    specs: &[ToolchainSpec],
    arches: &[&'static Arch],
    kernel_entry: Option<&str>,
    preferred: Option<Preferred<'_>>,
    extra_check: &dyn Fn(&Arch, &ToolchainSpec) -> Option<Failure>,
) -> Result<Resolution> {
    let mut choices = Vec::new();
    for arch in arches {
        let minimums = tree.minimums(arch)?;
        let mut verdicts = Vec::new();
        for spec in specs {
            let mut outcome = check(rules, &Facts::new(&tree.version, &minimums, spec), arch);
            if let Some(reason) = spec.unsupported_arches.get(arch.name) {
                outcome.failures.insert(
                    0,
                    Failure {
                        rule: UNSUPPORTED_ARCH.to_string(),
                        explanation: reason.clone(),
                        detail: format!("toolchains/{}.toml [unsupported-arches] names {}", spec.id, arch.name),
                    },
                );
            }
            if let Some(failure) = extra_check(arch, spec) {
                outcome.failures.push(failure);
            }
            verdicts.push(Verdict { toolchain: spec.id.clone(), ok: outcome.failures.is_empty(), outcome });
        }
        let verdict_of = |id: &str| verdicts.iter().find(|verdict| verdict.toolchain == id);
        let mut candidates: Vec<&ToolchainSpec> =
            specs.iter().filter(|spec| verdict_of(&spec.id).is_some_and(|verdict| verdict.ok)).collect();
        // On equal rustc, a hermetic Debian root before the host's tools (rustup, host).
        candidates.sort_by(|a, b| {
            version::compare(&a.rustc.version, &b.rustc.version)
                .then((a.provider != Provider::Debian).cmp(&(b.provider != Provider::Debian)))
                .then(a.id.cmp(&b.id))
        });
        let preferred_verdict =
            preferred.and_then(|preferred| verdict_of(preferred.id).map(|verdict| (preferred, verdict)));
        let (chosen, reason) = match (preferred_verdict, candidates.first()) {
            (Some((preferred, verdict)), _) if verdict.ok => {
                (Some(preferred.id.to_string()), format!("{} satisfies every rule", preferred.why))
            }
            (_, None) if specs.len() == 1 => (None, format!("{} breaks a rule (below)", specs[0].id)),
            (_, None) => (None, "no pinned toolchain satisfies every rule".to_string()),
            (_, Some(best)) => {
                let why = match preferred_verdict.and_then(|(preferred, verdict)| {
                    verdict.outcome.failures.first().map(|failure| (preferred, failure))
                }) {
                    Some((preferred, failure)) => {
                        format!("{} {} breaks `{}`; ", preferred.why, preferred.id, failure.rule)
                    }
                    None => String::new(),
                };
                (Some(best.id.clone()), format!("{why}{} has the oldest rustc that satisfies every rule", best.id))
            }
        };
        choices.push(ArchChoice { arch: arch.name.to_string(), min_tool_version: minimums, chosen, reason, verdicts });
    }
    Ok(Resolution {
        kernel_version: tree.version.clone(),
        source: tree.dir.clone(),
        kernel_entry: kernel_entry.map(str::to_string),
        preferred: preferred.map(|preferred| preferred.id.to_string()),
        rules_file: rules.path.clone(),
        toolchains: specs
            .iter()
            .map(|spec| ToolchainFacts {
                id: spec.id.clone(),
                rustc: spec.rustc.version.clone(),
                rustc_llvm: spec.rustc.llvm.clone(),
                bindgen: spec.bindgen.version.clone(),
                llvm: spec.llvm.version.clone(),
            })
            .collect(),
        ok: choices.iter().all(|choice| choice.chosen.is_some()),
        arches: choices,
    })
}

impl Resolution {
    /// Human-readable report: the toolchains, one line per arch, then every refusal (grouped over arches).
    pub fn render(&self) -> String {
        let mut out = format!("kernel {} at {}", self.kernel_version, self.source.display());
        if let Some(entry) = &self.kernel_entry {
            out.push_str(&format!(" (kforge.toml kernel {entry})"));
        }
        out.push_str(&format!("\nrules: {}\n\n", self.rules_file.display()));
        out.push_str(&format!("{:<14} {:<9} {:<11} {:<9} {}\n", "toolchain", "rustc", "rustc-llvm", "bindgen", "llvm"));
        for toolchain in &self.toolchains {
            out.push_str(&format!(
                "{:<14} {:<9} {:<11} {:<9} {}\n",
                toolchain.id,
                toolchain.rustc,
                toolchain.rustc_llvm.as_deref().unwrap_or("?"),
                toolchain.bindgen,
                toolchain.llvm
            ));
        }
        out.push_str(&format!(
            "\n{:<10} {:<10} {:<12} {:<9} {:<14} why\n",
            "arch", "min rustc", "min bindgen", "min llvm", "toolchain"
        ));
        for choice in &self.arches {
            let minimums = &choice.min_tool_version;
            out.push_str(&format!(
                "{:<10} {:<10} {:<12} {:<9} {:<14} {}\n",
                choice.arch,
                minimums.rustc.as_deref().unwrap_or("?"),
                minimums.bindgen.as_deref().unwrap_or("?"),
                minimums.llvm.as_deref().unwrap_or("?"),
                choice.chosen.as_deref().unwrap_or("NONE"),
                choice.reason
            ));
        }
        let refusals = self.grouped(|verdict| {
            verdict.outcome.failures.iter().map(|failure| (failure.rule.clone(), failure.detail.clone())).collect()
        });
        if !refusals.is_empty() {
            out.push_str("\nrefused:\n");
            for ((toolchain, rule, detail), arches) in &refusals {
                out.push_str(&format!("  {toolchain} on {}: `{rule}`: {detail}\n", arches.join(", ")));
                if let Some(explanation) = self.explanation(rule) {
                    out.push_str(&format!("      {explanation}\n"));
                }
            }
        }
        let unchecked = self.grouped(|verdict| {
            verdict
                .outcome
                .unchecked
                .iter()
                .map(|unchecked| (unchecked.rule.clone(), unchecked.missing.join(", ")))
                .collect()
        });
        if !unchecked.is_empty() {
            out.push_str("\nunchecked (facts unknown):\n");
            for ((toolchain, rule, missing), arches) in &unchecked {
                out.push_str(&format!("  {toolchain} on {}: `{rule}` needs {missing}\n", arches.join(", ")));
            }
        }
        out
    }

    /// (toolchain, rule, text) -> arches, in first-seen order.
    fn grouped(
        &self,
        items: impl Fn(&Verdict) -> Vec<(String, String)>,
    ) -> Vec<((String, String, String), Vec<String>)> {
        let mut groups: Vec<((String, String, String), Vec<String>)> = Vec::new();
        for choice in &self.arches {
            for verdict in &choice.verdicts {
                for (rule, text) in items(verdict) {
                    let key = (verdict.toolchain.clone(), rule, text);
                    match groups.iter_mut().find(|(known, _)| *known == key) {
                        Some((_, arches)) => arches.push(choice.arch.clone()),
                        None => groups.push((key, vec![choice.arch.clone()])),
                    }
                }
            }
        }
        groups
    }

    fn explanation(&self, rule: &str) -> Option<&str> {
        self.arches
            .iter()
            .flat_map(|choice| &choice.verdicts)
            .flat_map(|verdict| &verdict.outcome.failures)
            .find(|failure| failure.rule == rule)
            .map(|failure| failure.explanation.as_str())
    }

    /// Every failure of `toolchain`, as (arch, failure).
    pub fn failures_of(&self, toolchain: &str) -> Vec<(&str, &Failure)> {
        self.arches
            .iter()
            .flat_map(|choice| {
                choice.verdicts.iter().filter(|verdict| verdict.toolchain == toolchain).flat_map(move |verdict| {
                    verdict.outcome.failures.iter().map(move |failure| (choice.arch.as_str(), failure))
                })
            })
            .collect()
    }
}

/// The error for a refused kernel/toolchain/arch: every rule it breaks, with
/// what does not hold and why the rule exists. `target` is how `toolchain
/// resolve` names the kernel (`--kernel 7.2`, `--source PATH`), for the hint.
pub fn refusal(kernel_version: &str, toolchain: &str, failures: &[(&str, &Failure)], target: &str) -> anyhow::Error {
    let mut message = format!("toolchain {toolchain} cannot build kernel {kernel_version}:");
    let mut arches: Vec<&str> = Vec::new();
    for (arch, failure) in failures {
        message.push_str(&format!(
            "\n  on {arch}, rule `{}`: {}\n    why: {}",
            failure.rule, failure.detail, failure.explanation
        ));
        if !arches.contains(arch) {
            arches.push(arch);
        }
    }
    error::user_hint(
        message,
        format!(
            "see which pinned toolchain can: cargo xtask toolchain resolve {target} --arch {} (rules: {RULES_FILE})",
            arches.join(",")
        ),
    )
}

/// The pre-build check: refuses `spec` for the tree at `source` on `arch`
/// when it breaks a rule of `toolchains/rules.toml` (min-tool-version
/// included). Arches the toolchain cannot serve are not judged here.
pub fn check_pair(repo: &Path, source: &Path, arch: &Arch, spec: &ToolchainSpec, target: &str) -> Result<()> {
    let rules = load_rules(repo)?;
    let tree = read_tree(source)?;
    let facts = Facts::new(&tree.version, &tree.minimums(arch)?, spec);
    let outcome = check(&rules, &facts, arch);
    if outcome.failures.is_empty() {
        return Ok(());
    }
    let failures: Vec<(&str, &Failure)> = outcome.failures.iter().map(|failure| (arch.name, failure)).collect();
    Err(refusal(&tree.version, &spec.id, &failures, target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::spec;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel-trees")
    }

    fn arch(name: &str) -> &'static Arch {
        Arch::find(name).unwrap()
    }

    fn committed_rules() -> Rules {
        load_rules(&repo()).unwrap()
    }

    fn toolchain(id: &str) -> ToolchainSpec {
        spec::load(&repo(), id).unwrap()
    }

    fn all_toolchains() -> Vec<ToolchainSpec> {
        spec::list_ids(&repo()).unwrap().iter().map(|id| toolchain(id)).collect()
    }

    /// A spec with the given versions (sid's file otherwise).
    fn custom(id: &str, rustc: &str, rustc_llvm: Option<&str>, bindgen: &str, llvm: &str) -> ToolchainSpec {
        let mut spec = toolchain("sid");
        spec.id = id.to_string();
        spec.rustc.version = rustc.to_string();
        spec.rustc.llvm = rustc_llvm.map(str::to_string);
        spec.bindgen.version = bindgen.to_string();
        spec.llvm.version = llvm.to_string();
        spec
    }

    fn failed_rules(rules: &Rules, kernel: &str, minimums: &Minimums, spec: &ToolchainSpec, on: &str) -> Vec<String> {
        let outcome = check(rules, &Facts::new(kernel, minimums, spec), arch(on));
        outcome.failures.into_iter().map(|failure| failure.rule).collect()
    }

    fn own(id: &str) -> Preferred<'_> {
        Preferred { id, why: "the kernel's own toolchain" }
    }

    fn minimums(rustc: &str, bindgen: &str, llvm: &str) -> Minimums {
        Minimums { rustc: Some(rustc.into()), bindgen: Some(bindgen.into()), llvm: Some(llvm.into()) }
    }

    #[test]
    fn min_tool_version_of_a_7_2_tree_is_read_per_arch() {
        let tree = read_tree(&fixtures().join("linux-7.2")).unwrap();
        assert_eq!(tree.version, "7.2.13");
        assert_eq!(tree.minimums(arch("x86_64")).unwrap(), minimums("1.85.0", "0.71.1", "17.0.1"));
        assert_eq!(tree.minimums(arch("s390")).unwrap(), minimums("1.96.0", "0.71.1", "17.0.1"));
        assert_eq!(tree.minimums(arch("loongarch")).unwrap(), minimums("1.85.0", "0.71.1", "18.0.0"));
    }

    #[test]
    fn min_tool_version_of_a_6_12_tree_reads_elif_chains() {
        let tree = read_tree(&fixtures().join("linux-6.12")).unwrap();
        assert_eq!(tree.version, "6.12.107");
        assert_eq!(tree.minimums(arch("arm64")).unwrap(), minimums("1.78.0", "0.65.1", "13.0.1"));
        assert_eq!(tree.minimums(arch("s390")).unwrap(), minimums("1.78.0", "0.65.1", "15.0.0"));
        assert_eq!(tree.minimums(arch("loongarch")).unwrap(), minimums("1.78.0", "0.65.1", "18.0.0"));
    }

    #[test]
    fn min_tool_version_of_a_7_3_rc_tree() {
        let tree = read_tree(&fixtures().join("linux-7.3")).unwrap();
        assert_eq!(tree.version, "7.3.0-rc7");
        assert_eq!(tree.minimums(arch("s390")).unwrap(), minimums("1.96.0", "0.71.1", "17.0.1"));
        assert_eq!(tree.minimums(arch("riscv")).unwrap(), minimums("1.85.0", "0.71.1", "17.0.1"));
        let resolution = resolve(
            &committed_rules(),
            &tree,
            &all_toolchains(),
            &[arch("s390")],
            Some("7.3"),
            Some(own("experimental")),
            &|_, _| None,
        )
        .unwrap();
        assert_eq!(resolution.arches[0].chosen.as_deref(), Some("experimental"));
        assert_eq!(resolution.arches[0].reason, "the kernel's own toolchain satisfies every rule");
    }

    #[test]
    fn pre_6_11_tree_has_its_exact_rustc_and_an_rc_version() {
        let tree = read_tree(&fixtures().join("linux-6.10")).unwrap();
        assert_eq!(tree.version, "6.10.0-rc3");
        assert_eq!(tree.minimums(arch("x86_64")).unwrap().rustc.as_deref(), Some("1.78.0"));
    }

    #[test]
    fn unsupported_shell_is_an_error_naming_the_line() {
        let text = "case \"$1\" in\nrustc)\n\tif [ -n \"$FOO\" ]; then\n\t\techo 1.0.0\n\tfi\n\t;;\nesac\n";
        let script = MinToolVersion::parse(Path::new("min-tool-version.sh"), text).unwrap();
        let message = script.minimum("rustc", arch("x86_64")).unwrap_err().to_string();
        assert!(message.starts_with("min-tool-version.sh:3: unsupported test"), "{message}");
        let unknown_variable = text.replace("-n \"$FOO\"", "\"$CC\" = clang");
        let script = MinToolVersion::parse(Path::new("m.sh"), &unknown_variable).unwrap();
        let message = script.minimum("rustc", arch("x86_64")).unwrap_err().to_string();
        assert!(message.contains("unsupported variable `$CC`"), "{message}");
        let err = MinToolVersion::parse(Path::new("m.sh"), "echo 1\n").unwrap_err();
        assert!(err.to_string().contains("no complete `case"), "{err}");
    }

    #[test]
    fn one_line_arms_alternatives_and_combined_tests() {
        let text = "case $1 in\n\"rustc\"|rust) echo 1.80.0 ;;\nllvm)\n\tif [ \"$SRCARCH\" = s390 ] || [ \"${ARCH}\" = um ]; then echo 15.0.0\n\telif [ $SRCARCH != x86 ] && [ $ARCH = arm ]; then\n\t\techo 14.0.0\n\telse\n\t\techo 13.0.1\n\tfi\n\t;;\nesac\n";
        let script = MinToolVersion::parse(Path::new("m.sh"), text).unwrap();
        assert_eq!(script.minimum("rust", arch("x86_64")).unwrap().as_deref(), Some("1.80.0"));
        assert_eq!(script.minimum("llvm", arch("um")).unwrap().as_deref(), Some("15.0.0"));
        assert_eq!(script.minimum("llvm", arch("arm")).unwrap().as_deref(), Some("14.0.0"));
        assert_eq!(script.minimum("llvm", arch("x86_64")).unwrap().as_deref(), Some("13.0.1"));
        assert_eq!(script.minimum("bindgen", arch("x86_64")).unwrap(), None);
    }

    #[test]
    fn a_tree_belongs_to_the_kforge_kernel_of_its_series() {
        let project = crate::project::Project::load(&repo()).unwrap();
        let id = |version: &str| kernel_entry_for(&project.kernels, version).map(|entry| entry.id.clone());
        assert_eq!(id("7.2.0").as_deref(), Some("7.2"));
        assert_eq!(id("7.3.0-rc7").as_deref(), Some("7.3"));
        assert_eq!(id("6.12.107").as_deref(), Some("6.12"));
        assert_eq!(id("6.1.0"), None);
    }

    #[test]
    fn makefile_version_needs_the_numbers() {
        let text = "VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 0\nEXTRAVERSION = -rc7\nNAME = x\n";
        assert_eq!(makefile_version(Path::new("Makefile"), text).unwrap(), "7.3.0-rc7");
        let message = makefile_version(Path::new("Makefile"), "all:\n").unwrap_err().to_string();
        assert!(message.contains("Makefile: no numeric `VERSION = N`"), "{message}");
    }

    #[test]
    fn rule_min_tools_follow_the_tree() {
        let rules = committed_rules();
        let old = custom("old", "1.84.0", Some("22"), "0.70.0", "16.0.0");
        let failed = failed_rules(&rules, "7.2.13", &minimums("1.85.0", "0.71.1", "17.0.1"), &old, "x86_64");
        assert_eq!(failed, ["min-rustc", "min-bindgen", "min-llvm", "clang-llvm-matches-rustc-llvm"]);
        let fine = custom("fine", "1.85.0", Some("17"), "0.71.1", "17.0.1");
        assert!(failed_rules(&rules, "7.2.13", &minimums("1.85.0", "0.71.1", "17.0.1"), &fine, "x86_64").is_empty());
    }

    #[test]
    fn rule_exact_rustc_before_6_11() {
        let rules = committed_rules();
        let old = minimums("1.78.0", "0.65.1", "13.0.1");
        let newer = custom("newer", "1.79.0", Some("18"), "0.65.1", "18.1.0");
        assert_eq!(failed_rules(&rules, "6.10.0-rc3", &old, &newer, "x86_64"), ["exact-rustc-before-6.11"]);
        assert!(failed_rules(&rules, "6.11.0", &old, &newer, "x86_64").is_empty());
        let exact = custom("exact", "1.78.0", Some("18"), "0.65.1", "18.1.0");
        assert!(failed_rules(&rules, "6.10.0", &old, &exact, "x86_64").is_empty());
    }

    #[test]
    fn rule_bindgen_with_libclang_22() {
        let rules = committed_rules();
        let mins = minimums("1.85.0", "0.71.1", "17.0.1");
        let old_bindgen = custom("b", "1.97.1", Some("22"), "0.71.1", "22.1.8");
        assert_eq!(failed_rules(&rules, "7.2.13", &mins, &old_bindgen, "arm64"), ["bindgen-0.72.1-with-libclang-22"]);
        let clang_21 = custom("c", "1.97.1", Some("21"), "0.71.1", "21.1.0");
        assert!(failed_rules(&rules, "7.2.13", &mins, &clang_21, "arm64").is_empty());
    }

    #[test]
    fn rule_clang_llvm_matches_rustc_llvm() {
        let rules = committed_rules();
        let mins = minimums("1.85.0", "0.71.1", "17.0.1");
        let mismatched = custom("m", "1.97.1", Some("21.1.2"), "0.72.1", "22.1.8");
        let outcome = check(&rules, &Facts::new("7.2.13", &mins, &mismatched), arch("x86_64"));
        assert_eq!(outcome.failures.len(), 1);
        assert_eq!(outcome.failures[0].rule, "clang-llvm-matches-rustc-llvm");
        assert_eq!(outcome.failures[0].detail, "clang-major 22 is not == rustc-llvm-major (21)");
        // Without the fact the rule is unchecked, never passed silently.
        let unknown = custom("u", "1.97.1", None, "0.72.1", "22.1.8");
        let outcome = check(&rules, &Facts::new("7.2.13", &mins, &unknown), arch("x86_64"));
        assert!(outcome.failures.is_empty());
        assert_eq!(outcome.unchecked[0].rule, "clang-llvm-matches-rustc-llvm");
        assert!(outcome.unchecked[0].missing[0].starts_with("rustc-llvm-major"), "{:?}", outcome.unchecked);
    }

    #[test]
    fn unknown_facts_leave_a_rule_unchecked_but_never_hide_a_failure() {
        let path = Path::new("rules.toml");
        let text = "[[rule]]\nid = \"both\"\nexplanation = \"x\"\nrequire = { rustc = \">=2\", rustc-llvm = \">=1\" }\n\n[[rule]]\nid = \"gated\"\nexplanation = \"y\"\nwhen = { min-rustc = \">=1\" }\nrequire = { rustc = \">=2\" }\n";
        let rules = parse_rules(path, text).unwrap();
        let spec = custom("u", "1.97.1", None, "0.72.1", "22.1.8");
        let outcome = check(&rules, &Facts::new("7.2.0", &Minimums::default(), &spec), arch("x86_64"));
        // `both`: rustc is known to fail, rustc-llvm is unknown: a failure and an unchecked note.
        assert_eq!(outcome.failures.iter().map(|failure| failure.rule.as_str()).collect::<Vec<_>>(), ["both"]);
        assert_eq!(outcome.failures[0].detail, "rustc 1.97.1 is not >= 2");
        // `gated`: whether it applies is unknown (no min-tool-version.sh): unchecked, not failed.
        let unchecked: Vec<&str> = outcome.unchecked.iter().map(|unchecked| unchecked.rule.as_str()).collect();
        assert_eq!(unchecked, ["both", "gated"]);
    }

    #[test]
    fn rule_s390_needs_rustc_1_96_from_7_2_on() {
        let rules = committed_rules();
        // Minimums as an older tree would give them, so only the s390 rule speaks.
        let mins = minimums("1.78.0", "0.65.1", "13.0.1");
        let trixie = toolchain("trixie");
        assert_eq!(failed_rules(&rules, "7.2.13", &mins, &trixie, "s390"), ["rustc-1.96-for-s390"]);
        assert!(failed_rules(&rules, "7.2.13", &mins, &trixie, "x86_64").is_empty());
        assert!(failed_rules(&rules, "7.1.0", &mins, &trixie, "s390").is_empty());
        assert!(failed_rules(&rules, "7.3.0-rc7", &mins, &toolchain("sid"), "s390").is_empty());
    }

    #[test]
    fn rules_file_errors_name_the_file_and_rule() {
        let path = Path::new("toolchains/rules.toml");
        let cases = [
            (
                "[[rule]]\nid = \"a\"\nexplanation = \"x\"\nrequire = { rustcc = \">=1\" }\n",
                "rule `a`: require: `rustcc` is not a fact",
            ),
            (
                "[[rule]]\nid = \"b\"\nexplanation = \"x\"\nrequire = { rustc = \"1.2\" }\n",
                "rule `b`: require.rustc: `1.2` does not start with an operator",
            ),
            (
                "[[rule]]\nid = \"c\"\nexplanation = \"x\"\narch = \"sparc\"\nrequire = { rustc = \">=1\" }\n",
                "rule `c`: unknown arch `sparc`",
            ),
            (
                "[[rule]]\nid = \"d\"\nexplanation = \"x\"\nkernel = \">=7.x\"\nrequire = { rustc = \">=1\" }\n",
                "rule `d`: kernel: `7.x` is not a version",
            ),
            ("[[rule]]\nid = \"e\"\nexplanation = \"x\"\n", "rule `e`: needs a `require` table"),
            (
                "[[rule]]\nid = \"f\"\nexplanation = \"x\"\nrequire = { rustc = \">=1\" }\n[[rule]]\nid = \"f\"\nexplanation = \"y\"\nrequire = { rustc = \">=1\" }\n",
                "rule `f`: the id is used twice",
            ),
            ("[[rule]]\nid = \"g\"\nexplain = \"x\"\n", "malformed toolchains/rules.toml:3"),
        ];
        for (text, expected) in cases {
            let message = parse_rules(path, text).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}\nexpected: {expected}");
            assert!(message.contains("toolchains/rules.toml"), "{message}");
        }
    }

    #[test]
    fn resolve_prefers_the_kernels_toolchain_and_explains_refusals() {
        let rules = committed_rules();
        let tree = read_tree(&fixtures().join("linux-7.2")).unwrap();
        let specs = all_toolchains();
        let arches = [arch("x86_64"), arch("s390"), arch("loongarch")];
        let resolution = resolve(&rules, &tree, &specs, &arches, Some("7.2"), Some(own("sid")), &|_, _| None).unwrap();
        assert!(resolution.ok);
        let chosen: Vec<_> = resolution.arches.iter().map(|choice| choice.chosen.as_deref().unwrap()).collect();
        assert_eq!(chosen, ["sid", "sid", "sid"]);
        let trixie: Vec<_> =
            resolution.failures_of("trixie").iter().map(|(arch, failure)| format!("{arch}:{}", failure.rule)).collect();
        assert_eq!(trixie, ["s390:min-rustc", "s390:rustc-1.96-for-s390", "loongarch:unsupported-arch"]);
        let text = resolution.render();
        assert!(text.contains("trixie on s390: `rustc-1.96-for-s390`: rustc 1.85.1 is not >= 1.96"), "{text}");
        // Without a preference, trixie (oldest rustc) serves x86_64; s390 needs sid.
        let resolution = resolve(&rules, &tree, &specs, &arches, None, None, &|_, _| None).unwrap();
        let chosen: Vec<_> = resolution.arches.iter().map(|choice| choice.chosen.as_deref().unwrap()).collect();
        assert_eq!(chosen, ["trixie", "sid", "sid"]);
    }

    #[test]
    fn an_extra_check_refuses_like_a_rule_and_moves_the_pick() {
        let rules = committed_rules();
        let tree = read_tree(&fixtures().join("linux-7.2")).unwrap();
        let only_not_sid = |_: &Arch, spec: &ToolchainSpec| {
            (spec.id == "sid").then(|| Failure {
                rule: "distro-compilers".into(),
                explanation: "test".into(),
                detail: "sid has no gcc".into(),
            })
        };
        let resolution =
            resolve(&rules, &tree, &all_toolchains(), &[arch("x86_64")], Some("7.2"), Some(own("sid")), &only_not_sid)
                .unwrap();
        let choice = &resolution.arches[0];
        assert_ne!(choice.chosen.as_deref(), Some("sid"));
        assert!(choice.reason.contains("sid breaks `distro-compilers`"), "{}", choice.reason);
        assert!(
            resolution.render().contains("sid on x86_64: `distro-compilers`: sid has no gcc"),
            "{}",
            resolution.render()
        );
    }

    #[test]
    fn resolve_for_6_12_picks_trixie_and_for_pre_6_11_finds_none() {
        let rules = committed_rules();
        let specs = all_toolchains();
        let tree = read_tree(&fixtures().join("linux-6.12")).unwrap();
        let resolution = resolve(
            &rules,
            &tree,
            &specs,
            &[arch("x86_64"), arch("arm64")],
            Some("6.12"),
            Some(own("trixie")),
            &|_, _| None,
        )
        .unwrap();
        assert!(resolution.arches.iter().all(|choice| choice.chosen.as_deref() == Some("trixie")));
        let tree = read_tree(&fixtures().join("linux-6.10")).unwrap();
        let resolution = resolve(&rules, &tree, &specs, &[arch("x86_64")], None, None, &|_, _| None).unwrap();
        assert!(!resolution.ok);
        assert_eq!(resolution.arches[0].reason, "no pinned toolchain satisfies every rule");
        for verdict in &resolution.arches[0].verdicts {
            assert_eq!(verdict.outcome.failures[0].rule, "exact-rustc-before-6.11", "{verdict:?}");
        }
    }

    #[test]
    fn check_pair_refuses_7_2_with_trixie_on_s390_naming_the_rule() {
        let tree = fixtures().join("linux-7.2");
        check_pair(&repo(), &tree, arch("x86_64"), &toolchain("trixie"), "--kernel 7.2").unwrap();
        check_pair(&repo(), &tree, arch("s390"), &toolchain("sid"), "--kernel 7.2").unwrap();
        let err = check_pair(&repo(), &tree, arch("s390"), &toolchain("trixie"), "--kernel 7.2").unwrap_err();
        let rendered = error::render(&err);
        assert!(rendered.contains("toolchain trixie cannot build kernel 7.2.13"), "{rendered}");
        assert!(rendered.contains("on s390, rule `rustc-1.96-for-s390`: rustc 1.85.1 is not >= 1.96"), "{rendered}");
        assert!(rendered.contains("why: Rust on s390 needs rustc 1.96"), "{rendered}");
        assert!(
            rendered.contains(
                "hint: see which pinned toolchain can: cargo xtask toolchain resolve --kernel 7.2 --arch s390"
            ),
            "{rendered}"
        );
    }

    #[test]
    fn pipeline_refusal_is_a_toolchain_failure() {
        let kernel = crate::project::KernelEntry {
            id: "7.2".into(),
            version: "7.2.13".into(),
            toolchain: "trixie".into(),
            source: crate::project::KernelSource::Path(fixtures().join("linux-7.2")),
        };
        let toolchain = crate::toolchain::Toolchain::load(&repo(), "trixie").unwrap();
        let source = crate::kernel::source::SourceTree { dir: fixtures().join("linux-7.2") };
        crate::pipeline::check_toolchain_rules(&repo(), &kernel, arch("x86_64"), &toolchain, &source).unwrap();
        let err =
            crate::pipeline::check_toolchain_rules(&repo(), &kernel, arch("s390"), &toolchain, &source).unwrap_err();
        assert_eq!(crate::stage::category_of(&err), Some(crate::stage::Category::Toolchain));
        let rendered = error::render(&err);
        assert!(
            rendered.starts_with("error: kernel 7.2 with toolchain trixie on s390 is refused before building"),
            "{rendered}"
        );
        assert!(rendered.contains("rule `rustc-1.96-for-s390`"), "{rendered}");
    }

    #[test]
    fn committed_toolchains_declare_the_llvm_of_their_rustc() {
        // Every committed toolchain declares the LLVM its rustc is built on, so no rule goes unchecked.
        for spec in all_toolchains() {
            assert!(spec.rustc.llvm.is_some(), "toolchains/{}.toml has no [rustc] llvm", spec.id);
        }
    }
}
