//! Kernel config fragments: which ones apply, in which order, and whether every requested option survived into `.config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::Arch;

/// A fragment to merge: where it came from and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Short name used for the merged copy (e.g. `10-base.config`).
    pub name: String,
    /// What it is, for messages (`kernel-config/base.config`, `driver fifo`).
    pub origin: String,
    pub text: String,
}

/// The fixed merge order: base, the arch's fragment, rust, then each extra
/// (drivers' and suites' needs) in the order given.
pub fn fragments(repo: &Path, arch: &Arch, extras: &[Fragment]) -> Result<Vec<Fragment>> {
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
    for (index, extra) in extras.iter().enumerate() {
        list.push(Fragment { name: format!("{:02}-{}", 40 + index, extra.name), ..extra.clone() });
    }
    Ok(list)
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
    let mut actual: BTreeMap<String, String> = BTreeMap::new();
    for line in final_config.lines() {
        if let Some((name, value)) = parse_line(line) {
            actual.insert(name, value);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let list = fragments(&repo, arch, &[extra]).unwrap();
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
        }
    }
}
