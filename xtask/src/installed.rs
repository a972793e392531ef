//! Modules installed from packages: a `/lib/modules/<release>` tree copied out of a root where dpkg and DKMS installed them, put into the guest so that `/init` loads each package module found there with modprobe instead of kforge's own build.
//!
//! `cargo xtask package --prove` uses this to boot Debian's kernel with the
//! module DKMS built from our packages: the tree goes into the initramfs at
//! `/lib/modules/<release>/` as DKMS left it (with depmod's `modules.dep`),
//! and the package's copy under `/kforge/drivers/<name>/` becomes the same
//! module, so a test that reloads it with insmod loads DKMS's build too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::driver::{BuiltDriver, ModuleFile};
use crate::error;

/// Files for the initramfs: path without the leading `/`, and contents.
pub type ImageFiles = Vec<(String, Vec<u8>)>;

/// A `/lib/modules/<release>` tree of installed modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModules {
    /// The kernel release the tree is for (`uname -r` in the guest).
    pub release: String,
    /// The tree's root: `updates/dkms/<module>.ko`, `modules.dep`...
    pub tree: PathBuf,
}

/// The bytes of a module file, decompressed when it is a `.ko.xz` or `.ko.gz`.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let mut bytes = Vec::new();
    let file = || fs_err::File::open(path);
    if name.ends_with(".ko.xz") {
        std::io::Read::read_to_end(&mut xz2::read::XzDecoder::new(file()?), &mut bytes)
            .with_context(|| format!("cannot decompress {}", path.display()))?;
    } else if name.ends_with(".ko.gz") {
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file()?), &mut bytes)
            .with_context(|| format!("cannot decompress {}", path.display()))?;
    } else {
        bytes = fs_err::read(path)?;
    }
    Ok(bytes)
}

/// Every regular file below `dir`, as paths relative to it, sorted. Symlinks
/// (DKMS's `build` link to the headers) are left out, never followed.
fn files_below(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs_err::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The tree's file holding module `name` (`<name>.ko`, `.ko.xz` or `.ko.gz`), if any.
fn find_module<'a>(files: &'a [String], name: &str) -> Option<&'a String> {
    files.iter().find(|file| {
        let base = file.rsplit('/').next().unwrap_or(file);
        [".ko", ".ko.xz", ".ko.gz"].iter().any(|suffix| base.strip_suffix(suffix) == Some(name))
    })
}

/// Swaps in the installed modules: each module of `built` found in the tree
/// is loaded with modprobe and its package copy becomes the installed bytes
/// (decompressed into `dir`). Returns the builds and the tree's files for the
/// initramfs (`lib/modules/<release>/...`). A tree holding none of the
/// packages' modules is an error: the boot would prove nothing.
pub fn substitute(
    built: Vec<BuiltDriver>,
    installed: &InstalledModules,
    dir: &Path,
) -> Result<(Vec<BuiltDriver>, ImageFiles)> {
    let files = files_below(&installed.tree)
        .with_context(|| format!("cannot read the installed modules in {}", installed.tree.display()))?;
    let mut used = 0;
    let mut substituted = Vec::new();
    for build in built {
        let mut modules = Vec::new();
        for module in &build.modules {
            let Some(file) = find_module(&files, &module.name) else {
                modules.push(module.clone());
                continue;
            };
            used += 1;
            let copy = dir.join(&build.driver.name).join(format!("{}.ko", module.name));
            fs_err::create_dir_all(copy.parent().context("a module copy has a directory")?)?;
            fs_err::write(&copy, read_module(&installed.tree.join(file))?)?;
            modules.push(ModuleFile { ko: copy, modprobe: true, ..module.clone() });
        }
        substituted.push(BuiltDriver { modules, ..build });
    }
    if used == 0 {
        return Err(error::user(format!(
            "{} holds none of the packages' modules (looked for <name>.ko, .ko.xz and .ko.gz below it)",
            installed.tree.display()
        )));
    }
    let mut image_files = Vec::new();
    for file in &files {
        let data = fs_err::read(installed.tree.join(file))?;
        image_files.push((format!("lib/modules/{}/{file}", installed.release), data));
    }
    Ok((substituted, image_files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver_named(name: &str) -> crate::driver::Driver {
        let meta: crate::driver::DriverMeta = toml::from_str("module = \"kforge_fifo\"\ntests = []").unwrap();
        crate::driver::Driver { name: name.into(), version: "0.1.0".into(), dir: PathBuf::from("/drivers/fifo"), meta }
    }

    #[test]
    fn an_installed_module_replaces_the_build_and_is_loaded_with_modprobe() {
        let scratch = tempfile::tempdir().unwrap();
        let tree = scratch.path().join("tree");
        fs_err::create_dir_all(tree.join("updates/dkms")).unwrap();
        let mut compressed = Vec::new();
        std::io::Write::write_all(&mut xz2::write::XzEncoder::new(&mut compressed, 6), b"\x7fELF dkms's kforge_fifo")
            .unwrap();
        fs_err::write(tree.join("updates/dkms/kforge_fifo.ko.xz"), &compressed).unwrap();
        fs_err::write(tree.join("modules.dep"), "updates/dkms/kforge_fifo.ko.xz:\n").unwrap();
        std::os::unix::fs::symlink("/usr/src/linux-headers", tree.join("build")).unwrap();
        let own = scratch.path().join("own.ko");
        fs_err::write(&own, "kforge's build").unwrap();
        let module = |name: &str| ModuleFile { name: name.into(), ko: own.clone(), params: vec![], modprobe: false };
        let built = vec![BuiltDriver {
            driver: driver_named("fifo"),
            modules: vec![module("fifo_helper"), module("kforge_fifo")],
            tests_dir: scratch.path().join("tests"),
            cache_entry: None,
        }];
        let installed = InstalledModules { release: "7.2.13+deb14-amd64".into(), tree };
        let (builds, files) = substitute(built, &installed, &scratch.path().join("copies")).unwrap();
        let modules = &builds[0].modules;
        assert!(!modules[0].modprobe && modules[0].ko == own, "a module the tree lacks stays kforge's");
        assert!(modules[1].modprobe);
        assert_eq!(fs_err::read(&modules[1].ko).unwrap(), b"\x7fELF dkms's kforge_fifo");
        let paths: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "lib/modules/7.2.13+deb14-amd64/modules.dep",
                "lib/modules/7.2.13+deb14-amd64/updates/dkms/kforge_fifo.ko.xz"
            ],
            "the tree as DKMS left it, without the headers link"
        );
        assert_eq!(files[1].1, compressed);
    }

    #[test]
    fn a_tree_without_any_package_module_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(scratch.path().join("tree/updates")).unwrap();
        let built = vec![BuiltDriver {
            driver: driver_named("fifo"),
            modules: vec![ModuleFile {
                name: "kforge_fifo".into(),
                ko: scratch.path().join("x.ko"),
                params: vec![],
                modprobe: false,
            }],
            tests_dir: scratch.path().join("tests"),
            cache_entry: None,
        }];
        let installed = InstalledModules { release: "r".into(), tree: scratch.path().join("tree") };
        let err = substitute(built, &installed, scratch.path()).unwrap_err();
        assert!(error::render(&err).contains("holds none of the packages' modules"), "{err:#}");
    }
}
