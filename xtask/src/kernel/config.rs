//! Kernel config fragments: which ones apply, in which order, and whether every requested option survived into `.config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::Arch;
use crate::project::Profile;

/// A fragment to merge: where it came from and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Short name used for the merged copy (e.g. `10-base.config`).
    pub name: String,
    /// What it is, for messages (`kernel-config/base.config`, `driver fifo`).
    pub origin: String,
    pub text: String,
}

/// The fixed merge order: base, the arch's fragment, rust, for the `debug`
/// profile `debug.config` and the arch's `debug-<arch>.config` (when there is
/// one), then each extra (drivers' and suites' needs) in the order given.
pub fn fragments(repo: &Path, arch: &Arch, profile: Profile, extras: &[Fragment]) -> Result<Vec<Fragment>> {
    let dir = repo.join("kernel-config");
    let mut list = Vec::new();
    for (index, file) in ["base.config", arch.config_fragment, "rust.config"].iter().enumerate() {
        let path: PathBuf = dir.join(file);
        let text = fs_err::read_to_string(&path)?;
        list.push(Fragment {
            name: format!("{:02}-{file}", (index + 1) * 10),
            origin: format!("kernel-config/{file}"),
            text,
        });
    }
    if profile == Profile::Debug {
        let arch_file = debug_fragment(arch);
        for (number, file) in [(34, "debug.config".to_string()), (35, arch_file)] {
            let path = dir.join(&file);
            if number == 35 && !path.is_file() {
                continue;
            }
            let text = fs_err::read_to_string(&path)?;
            list.push(Fragment { name: format!("{number}-{file}"), origin: format!("kernel-config/{file}"), text });
        }
    }
    for (index, extra) in extras.iter().enumerate() {
        list.push(Fragment { name: format!("{:02}-{}", 40 + index, extra.name), ..extra.clone() });
    }
    Ok(list)
}

/// The arch's own debug fragment (`debug-<arch>.config`; optional).
pub fn debug_fragment(arch: &Arch) -> String {
    format!("debug-{}", arch.config_fragment)
}

/// Marks a detector that cannot exist on an arch (or arch/kernel pair), in a
/// fragment: `# kforge-no-detector: kasan: <why, with the Kconfig line>`.
const NO_DETECTOR: &str = "# kforge-no-detector:";

/// A bug detector the debug profile cannot have on this cell, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingDetector {
    pub detector: String,
    pub reason: String,
    pub origin: String,
}

/// Detectors the fragments declare unavailable (`# kforge-no-detector:` lines).
pub fn missing_detectors(fragments: &[Fragment]) -> Vec<MissingDetector> {
    let mut missing = Vec::new();
    for fragment in fragments {
        for line in fragment.text.lines() {
            let Some(rest) = line.trim().strip_prefix(NO_DETECTOR) else { continue };
            let (detector, reason) = rest.split_once(':').unwrap_or((rest, ""));
            missing.push(MissingDetector {
                detector: detector.trim().to_string(),
                reason: reason.trim().to_string(),
                origin: fragment.origin.clone(),
            });
        }
    }
    missing
}

/// Options that turn on a bug detector (for the hint when one drops).
pub fn is_detector_option(name: &str) -> bool {
    [
        "CONFIG_KASAN",
        "CONFIG_KASAN_GENERIC",
        "CONFIG_PROVE_LOCKING",
        "CONFIG_DEBUG_ATOMIC_SLEEP",
        "CONFIG_DEBUG_LIST",
        "CONFIG_DEBUG_KMEMLEAK",
        "CONFIG_DETECT_HUNG_TASK",
        "CONFIG_SOFTLOCKUP_DETECTOR",
        "CONFIG_RUST_DEBUG_ASSERTIONS",
    ]
    .contains(&name)
}

/// A fragment made of config lines (for drivers' `kconfig` metadata).
pub fn fragment_from_lines(name: &str, origin: &str, lines: &[String]) -> Fragment {
    let mut text = format!("# {origin}\n");
    for line in lines {
        text.push_str(line.trim());
        text.push('\n');
    }
    Fragment { name: name.to_string(), origin: origin.to_string(), text }
}

/// The value an option should have: `y`, `m`, `n`, a number or a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub value: String,
    pub origin: String,
}

/// Parses one config line: `CONFIG_X=y` or `# CONFIG_X is not set`.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# ") {
        let name = rest.strip_suffix(" is not set")?;
        return name.starts_with("CONFIG_").then(|| (name.to_string(), "n".to_string()));
    }
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (name, value) = line.split_once('=')?;
    name.starts_with("CONFIG_").then(|| (name.trim().to_string(), value.trim().to_string()))
}

/// `CONFIG_NAME` -> value of every option a `.config` sets ("n" for
/// `# CONFIG_NAME is not set`; strings keep their quotes): the one `.config`
/// parser, for fragments, built kernels and distros' configs alike.
pub fn symbols(config: &str) -> BTreeMap<String, String> {
    config.lines().filter_map(parse_line).collect()
}

/// A string option's value (`CONFIG_X="..."` in `symbols`) without its quotes and escapes.
pub fn string(symbols: &BTreeMap<String, String>, name: &str) -> Option<String> {
    let raw = symbols.get(name)?;
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            value.extend(chars.next());
        } else {
            value.push(c);
        }
    }
    Some(value)
}

/// Every option requested by the fragments; later fragments win, like merge_config.sh.
pub fn requests(fragments: &[Fragment]) -> BTreeMap<String, Request> {
    let mut wanted = BTreeMap::new();
    for fragment in fragments {
        for line in fragment.text.lines() {
            if let Some((name, value)) = parse_line(line) {
                wanted.insert(name, Request { value, origin: fragment.origin.clone() });
            }
        }
    }
    wanted
}

/// An option that did not end up as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub name: String,
    pub wanted: String,
    /// `n` when it is absent or not set.
    pub got: String,
    pub origin: String,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={} (from {}) ended up as {}", self.name, self.wanted, self.origin, self.got)
    }
}

/// Compares the final `.config` with what the fragments asked for.
pub fn dropped(requests: &BTreeMap<String, Request>, final_config: &str) -> Vec<Dropped> {
    let actual = symbols(final_config);
    requests
        .iter()
        .filter_map(|(name, request)| {
            let got = actual.get(name).cloned().unwrap_or_else(|| "n".to_string());
            (got != request.value).then(|| Dropped {
                name: name.clone(),
                wanted: request.value.clone(),
                got,
                origin: request.origin.clone(),
            })
        })
        .collect()
}

/// What kforge's verdicts need of every kernel it builds, whatever the
/// fragments say: printk timestamps, by which the console classifier tells
/// the kernel's own crash reports from a test's output (`console`, `qemu`).
/// Returns what is wrong, if anything.
pub fn verdict_requirements(final_config: &str) -> Option<String> {
    let printk_time = symbols(final_config).get("CONFIG_PRINTK_TIME").cloned().unwrap_or_else(|| "n".to_string());
    (printk_time != "y").then(|| {
        format!(
            "CONFIG_PRINTK_TIME is {printk_time} in .config: kforge needs printk timestamps to tell the kernel's \
             crash reports on the console from a test's output"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_need_printk_timestamps() {
        assert_eq!(verdict_requirements("CONFIG_PRINTK=y\nCONFIG_PRINTK_TIME=y\n"), None);
        let off = verdict_requirements("CONFIG_PRINTK=y\n# CONFIG_PRINTK_TIME is not set\n").unwrap();
        assert!(off.contains("CONFIG_PRINTK_TIME is n"), "{off}");
    }

    fn fragment(origin: &str, text: &str) -> Fragment {
        Fragment { name: origin.into(), origin: origin.into(), text: text.into() }
    }

    #[test]
    fn later_fragments_override_and_not_set_means_n() {
        let wanted = requests(&[
            fragment("base", "CONFIG_A=y\nCONFIG_B=y\n# comment\n"),
            fragment("rust", "# CONFIG_B is not set\nCONFIG_C=\"x\"\n"),
        ]);
        assert_eq!(wanted["CONFIG_A"].value, "y");
        assert_eq!(wanted["CONFIG_B"], Request { value: "n".into(), origin: "rust".into() });
        assert_eq!(wanted["CONFIG_C"].value, "\"x\"");
    }

    #[test]
    fn dropped_options_are_named_with_their_origin() {
        let wanted = requests(&[fragment(
            "kernel-config/rust.config",
            "CONFIG_RUST=y\nCONFIG_MODULES=y\n# CONFIG_X is not set\n",
        )]);
        let final_config = "CONFIG_MODULES=y\n# CONFIG_RUST is not set\n";
        let dropped = dropped(&wanted, final_config);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].to_string(), "CONFIG_RUST=y (from kernel-config/rust.config) ended up as n");
    }

    #[test]
    fn committed_fragments_parse_and_come_in_fixed_order() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for arch in crate::arch::ARCHES {
            let extra = fragment_from_lines("drivers.config", "driver fifo", &["CONFIG_PCI=y".to_string()]);
            let list = fragments(&repo, arch, Profile::Release, std::slice::from_ref(&extra)).unwrap();
            let names: Vec<_> = list.iter().map(|fragment| fragment.name.clone()).collect();
            assert_eq!(
                names,
                [
                    "10-base.config",
                    format!("20-{}", arch.config_fragment).as_str(),
                    "30-rust.config",
                    "40-drivers.config"
                ]
            );
            assert_eq!(requests(&list)["CONFIG_RUST"].value, "y");
            assert!(missing_detectors(&list).is_empty());

            let debug = fragments(&repo, arch, Profile::Debug, &[extra]).unwrap();
            let names: Vec<_> = debug.iter().map(|fragment| fragment.name.clone()).collect();
            assert_eq!(names[3], "34-debug.config");
            assert_eq!(names[4], format!("35-{}", debug_fragment(arch)), "every arch has a debug fragment");
            let wanted = requests(&debug);
            assert_eq!(wanted["CONFIG_RUST_OVERFLOW_CHECKS"].value, "y");
            assert_eq!(wanted["CONFIG_DEBUG_INFO_NONE"].value, "y", "the debug profile has no debug info");
            let missing = missing_detectors(&debug);
            // Every arch either asks for each detector or says why it cannot have it.
            for (option, detector) in [
                ("CONFIG_KASAN", "kasan"),
                ("CONFIG_PROVE_LOCKING", "lockdep"),
                ("CONFIG_DEBUG_KMEMLEAK", "memleak"),
                ("CONFIG_SOFTLOCKUP_DETECTOR", "softlockup"),
                ("CONFIG_IOMMU_DEFAULT_DMA_STRICT", "dma"),
            ] {
                let declared = missing.iter().find(|item| item.detector == detector);
                match wanted.get(option).map(|request| request.value.as_str()) {
                    Some("y") => {
                        assert!(declared.is_none(), "{}: {option} is on but {detector} is declared missing", arch.name)
                    }
                    _ => assert!(
                        declared.is_some_and(|item| !item.reason.is_empty()),
                        "{} neither enables {option} nor says why not (`# kforge-no-detector: {detector}: <why>`)",
                        arch.name
                    ),
                }
            }
        }
    }

    #[test]
    fn missing_detectors_are_read_from_marker_comments() {
        let list = [fragment(
            "kernel-config/debug-arm.config",
            "# kforge-no-detector: kasan: HAVE_RUST depends on !KASAN (arch/arm/Kconfig)\n# other\nCONFIG_X=y\n",
        )];
        assert_eq!(
            missing_detectors(&list),
            [MissingDetector {
                detector: "kasan".into(),
                reason: "HAVE_RUST depends on !KASAN (arch/arm/Kconfig)".into(),
                origin: "kernel-config/debug-arm.config".into(),
            }]
        );
    }
}
