//! Which pinned toolchain can build a kernel tree: reads its Makefile version and `scripts/min-tool-version.sh` (without running it), applies `toolchains/rules.toml`, and picks a toolchain per arch or names the rule none meets.
//!
//! Split along its seams: `condition` (facts and the condition language),
//! `rules` (the rules file and applying it), `min_tool_version` (the tree's
//! version and min-tool-version.sh as data) and `resolution` (the pick).

pub mod condition;
pub mod min_tool_version;
pub mod resolution;
pub mod rules;

pub use min_tool_version::*;
pub use resolution::*;
pub use rules::*;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::condition::*;
    use super::min_tool_version::*;
    use super::resolution::*;
    use super::rules::*;
    use crate::arch::Arch;
    use crate::error;
    use crate::toolchain::ToolchainSpec;
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
