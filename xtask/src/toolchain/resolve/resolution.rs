//! Resolution: every toolchain against every arch of a tree, the pick per arch (or the rules none meets), the refusal error and the pre-build `check_pair`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::condition::Facts;
use super::min_tool_version::{KernelTree, Minimums, read_tree};
use super::rules::{Failure, Outcome, RULES_FILE, Rules, check, load_rules};
use crate::arch::Arch;
use crate::toolchain::{Provider, ToolchainSpec};
use crate::{error, version};

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
    pub(super) fn grouped(
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

    pub(super) fn explanation(&self, rule: &str) -> Option<&str> {
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
