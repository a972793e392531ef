//! `toolchains/rules.toml`: reading the rules (errors name the file and the rule) and applying them to one kernel, arch and toolchain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::condition::{Condition, Fact, Facts};
use crate::arch::{ARCHES, Arch};
use crate::{error, project};

/// The rules file, relative to the repository.
pub const RULES_FILE: &str = "toolchains/rules.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RulesFile {
    #[serde(rename = "rule", default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
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
