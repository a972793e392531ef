//! The condition language of the rules: named facts of a kernel, arch and toolchain (`rustc`, `clang-major`, `min-rustc`...) and conditions over them (`>=1.96`, `== min-rustc`).

use std::collections::BTreeMap;

use anyhow::Result;

use super::min_tool_version::Minimums;
use crate::toolchain::ToolchainSpec;
use crate::version;

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
    pub(super) const ALL: [Fact; 11] = [
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

    pub(super) fn parse(name: &str) -> Option<Fact> {
        Fact::ALL.into_iter().find(|fact| fact.name() == name)
    }

    /// Where a missing fact would come from (for "unchecked" notes).
    pub(super) fn source(self) -> &'static str {
        match self {
            Fact::RustcLlvm | Fact::RustcLlvmMajor => "the toolchain file's [rustc] llvm",
            Fact::MinRustc | Fact::MinBindgen | Fact::MinLlvm => "the tree's scripts/min-tool-version.sh",
            _ => "the toolchain file",
        }
    }
}

/// Comparison operators of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
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

    pub(super) fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }

    pub(super) fn holds(self, left: &str, right: &str) -> bool {
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
pub(super) enum Operand {
    Version(String),
    Fact(Fact),
}

/// `>=1.96`, `== min-rustc`, `>=1.78, <1.80`: every term must hold.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    terms: Vec<(Op, Operand)>,
}

impl Condition {
    pub(super) fn parse(text: &str) -> Result<Condition, String> {
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
    pub(super) fn holds(&self, value: &str, facts: &Facts) -> Result<bool, Vec<Fact>> {
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
    pub(super) fn describe(&self, facts: &Facts) -> String {
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

    pub(super) fn get(&self, fact: Fact) -> Option<&str> {
        self.values.get(&fact).map(String::as_str)
    }
}

pub(super) fn major(version: &str) -> String {
    version::components(version).first().map(u64::to_string).unwrap_or_default()
}
