//! The CI plan: the cells of the matrix with the kforge cache keys a CI system caches by, as GitHub's matrix or plain JSON.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::driver::Driver;
use crate::kernel::source;
use crate::matrix::Cell;
use crate::toolchain::Toolchain;
use crate::{paths, pipeline};

/// One cell as a CI job sees it. Keys are kforge's own cache keys (full
/// sha256 hex); `*_cache` are the matching entries relative to the kforge
/// cache directory, so a job restores exactly the directory kforge will use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCell {
    /// `<kernel>-<arch>-<profile>`, what `cargo xtask test --cell` takes.
    pub id: String,
    pub kernel: String,
    pub arch: String,
    pub toolchain: String,
    /// Everything that shapes the toolchain root (its pins, the recipe, the
    /// Debian architectures it carries busybox for, the host's first).
    pub toolchain_key: String,
    /// `toolchains/<id>-<hash>`.
    pub toolchain_cache: String,
    /// The kernel source's identity; empty for a local tree (used in place).
    pub source_key: String,
    /// `sources/<kernel>-<hash>`; empty for a local tree.
    pub source_cache: String,
    /// The kernel build's key: source, the toolchain's build identity, arch
    /// and every config option requested (including the drivers' `kconfig`).
    pub kernel_key: String,
    /// `kernels/<kernel>-<arch>-<hash>`.
    pub kernel_cache: String,
    /// Why the cell is a skip, when it is one: the reason `test` reports and
    /// every building command refuses it with. Its job builds nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
}

/// Plans `cells` for `drivers` (those `cargo xtask test --cell` would run).
/// Needs no installed toolchain and builds nothing: every key is computed
/// from kforge.toml, the toolchain files, the config fragments and the
/// drivers' metadata, exactly as the build computes it.
pub fn plan(repo: &Path, cells: &[Cell], drivers: &[Driver]) -> Result<Vec<PlannedCell>> {
    let cache = paths::cache_dir()?;
    let relative = |path: &Path| path.strip_prefix(&cache).unwrap_or(path).display().to_string();
    let mut toolchains: BTreeMap<String, Toolchain> = BTreeMap::new();
    let mut planned = Vec::new();
    for cell in cells {
        let toolchain_id = &cell.kernel.toolchain;
        if !toolchains.contains_key(toolchain_id) {
            toolchains.insert(toolchain_id.clone(), Toolchain::load(repo, toolchain_id)?);
        }
        let toolchain = &toolchains[toolchain_id];
        let (active, _skipped) = pipeline::split_drivers(drivers, cell.arch, &cell.kernel);
        let kernel = pipeline::profile_kernel_plan(repo, &cell.kernel, cell.arch, cell.profile, toolchain, &active)?;
        let (source_key, source_cache) = match source::cache_entry(&cell.kernel)? {
            Some((key, entry)) => (key, relative(&entry)),
            None => (String::new(), String::new()),
        };
        planned.push(PlannedCell {
            id: cell.id(),
            kernel: cell.kernel.id.clone(),
            arch: cell.arch.name.to_string(),
            toolchain: toolchain_id.clone(),
            toolchain_key: toolchain.key.clone(),
            toolchain_cache: relative(&toolchain.dir),
            source_key,
            source_cache,
            kernel_key: kernel.key,
            kernel_cache: relative(&kernel.entry),
            skip: pipeline::planned_skip_reason(repo, &cell.kernel, cell.arch)?,
        });
    }
    Ok(planned)
}

/// GitHub Actions' `strategy.matrix`: `{"include":[...]}` on one line, for `$GITHUB_OUTPUT`.
pub fn github(cells: &[PlannedCell]) -> Result<String> {
    // Written by hand around the array so each entry keeps its field order (id first).
    Ok(format!("{{\"include\":{}}}", serde_json::to_string(cells)?))
}

/// A plain JSON array of the cells.
pub fn json(cells: &[PlannedCell]) -> Result<String> {
    Ok(serde_json::to_string_pretty(cells)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::driver;
    use crate::project::{KernelSource, Profile, Project};

    fn repo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn cells(project: &Project, arches: &str) -> Vec<Cell> {
        let kernel = project.kernel("7.2").unwrap().clone();
        Arch::parse_list(arches)
            .unwrap()
            .into_iter()
            .map(|arch| Cell { kernel: kernel.clone(), arch, profile: Profile::Debug })
            .collect()
    }

    #[test]
    fn cells_carry_the_keys_the_build_uses() {
        let _guard = crate::test_support::env_lock();
        let project = Project::load(&repo()).unwrap();
        let all = driver::discover(&repo()).unwrap();
        let drivers = driver::select(&all, &project.matrix.drivers).unwrap();
        let cells = cells(&project, "x86_64,arm64,um");
        let planned = plan(&repo(), &cells, &drivers).unwrap();

        let ids: Vec<&str> = planned.iter().map(|cell| cell.id.as_str()).collect();
        assert_eq!(ids, ["7.2-x86_64-debug", "7.2-arm64-debug", "7.2-um-debug"]);
        let toolchain = Toolchain::load(&repo(), "sid").unwrap();
        for (cell, planned) in cells.iter().zip(&planned) {
            assert_eq!((planned.kernel.as_str(), planned.toolchain.as_str()), ("7.2", "sid"));
            assert_eq!(planned.toolchain_key, toolchain.key);
            assert_eq!(planned.toolchain_cache, format!("toolchains/sid-{}", &toolchain.key[..16]));
            assert_eq!(planned.source_cache, format!("sources/7.2-{}", &planned.source_key[..16]));
            let (active, _) = pipeline::split_drivers(&drivers, cell.arch, &cell.kernel);
            let kernel =
                pipeline::profile_kernel_plan(&repo(), &cell.kernel, cell.arch, cell.profile, &toolchain, &active)
                    .unwrap();
            assert_eq!(planned.kernel_key, kernel.key, "{}", planned.id);
            assert_eq!(planned.kernel_cache, format!("kernels/{}-{}", planned.id, &kernel.key[..16]));
        }
        assert_ne!(planned[0].kernel_key, planned[1].kernel_key);
        assert_eq!(planned[0].source_key, planned[1].source_key);

        // The kernel's config is the union of the default matrix's packages
        // and the selected ones: selecting fewer drivers gives the same kernel.
        let bare = plan(&repo(), &cells[..1], &[]).unwrap();
        assert_eq!(bare[0].kernel_key, planned[0].kernel_key);
        let doctests = driver::select(&all, &["kernel-doctests".to_string()]).unwrap();
        let with_doctests = plan(&repo(), &cells[..1], &doctests).unwrap();
        assert_ne!(with_doctests[0].kernel_key, planned[0].kernel_key, "a package adding options is a new kernel");
        assert_eq!(bare[0].toolchain_key, planned[0].toolchain_key);
    }

    #[test]
    fn a_local_source_has_no_source_cache() {
        let _guard = crate::test_support::env_lock();
        let project = Project::load(&repo()).unwrap();
        let mut cells = cells(&project, "x86_64");
        cells[0].kernel.source = KernelSource::Path(repo());
        let planned = plan(&repo(), &cells, &[]).unwrap();
        assert_eq!((planned[0].source_key.as_str(), planned[0].source_cache.as_str()), ("", ""));
        assert!(planned[0].kernel_cache.starts_with("kernels/7.2-x86_64-"));
    }

    #[test]
    fn github_matrix_is_one_line_with_an_include_array() {
        let _guard = crate::test_support::env_lock();
        let project = Project::load(&repo()).unwrap();
        let planned = plan(&repo(), &cells(&project, "x86_64,arm64"), &[]).unwrap();
        let text = github(&planned).unwrap();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("{\"include\":[{\"id\":\"7.2-x86_64-debug\","), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["include"][1]["id"], "7.2-arm64-debug");
        assert_eq!(value["include"][1]["kernel_key"], planned[1].kernel_key.as_str());
        let array: serde_json::Value = serde_json::from_str(&json(&planned).unwrap()).unwrap();
        assert_eq!(array.as_array().unwrap().len(), 2);
    }
}
