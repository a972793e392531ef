//! `new-driver`: renders the driver template (`xtask/templates/new-driver`) into `drivers/<name>/`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error;

/// Template files, relative to the new driver's directory (`@MODULE@` in a
/// path is replaced too). Embedded, so the binary carries them.
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/new-driver/Cargo.toml.in")),
    ("Kbuild", include_str!("../templates/new-driver/Kbuild.in")),
    ("@MODULE@.rs", include_str!("../templates/new-driver/driver.rs.in")),
    ("tests/shout.sh", include_str!("../templates/new-driver/tests/shout.sh.in")),
    ("tests/pinned.sh", include_str!("../templates/new-driver/tests/pinned.sh.in")),
];

/// What every generated driver shares with the others: `drivers/common`
/// (its Kbuild includes `kforge.mk` from there, its crate root `compat.rs`).
const COMMON_FILES: &[&str] = &["compat.rs", "kforge.mk"];

/// The names a new driver gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Package name (`my-driver`): test names start with it.
    pub name: String,
    /// Kernel module (`kforge_my_driver`), also its KUnit suite.
    pub module: String,
    /// Device node (`kforge-my-driver`).
    pub device: String,
}

/// Checks a driver name and derives the module and device names.
pub fn names(name: &str) -> Result<Names> {
    let valid = !name.is_empty()
        && name.len() <= 40
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(error::user(format!(
            "`{name}` is not a usable driver name: use lowercase letters, digits, `-` and `_`, starting with a letter"
        )));
    }
    let ident = name.replace('-', "_");
    Ok(Names {
        name: name.to_string(),
        module: format!("kforge_{ident}"),
        device: format!("kforge-{}", name.replace('_', "-")),
    })
}

fn render(text: &str, names: &Names) -> String {
    text.replace("@NAME@", &names.name).replace("@MODULE@", &names.module).replace("@DEVICE@", &names.device)
}

/// Writes the driver into `<repo>/drivers/<name>/`; refuses to overwrite
/// anything, and refuses a repository without `drivers/common`, which the
/// generated driver builds with.
pub fn new_driver(repo: &Path, name: &str) -> Result<(PathBuf, Names)> {
    let names = names(name)?;
    let dir = repo.join("drivers").join(&names.name);
    if dir.exists() {
        return Err(error::user(format!("{} already exists; pick another name", dir.display())));
    }
    let common = repo.join("drivers").join(crate::driver::COMMON_DIR);
    for file in COMMON_FILES {
        if !common.join(file).is_file() {
            return Err(error::user(format!(
                "{} is missing; a new driver builds with drivers/common (compat.rs, kforge.mk) of the kforge repository",
                common.join(file).display()
            )));
        }
    }
    for (path, text) in TEMPLATES {
        let target = dir.join(render(path, &names));
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&target, render(text, &names))?;
        if path.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok((dir, names))
}

/// Adds `name` to `[matrix] drivers` in `<repo>/kforge.toml`, keeping the
/// file's comments and layout, so the next plain `cargo xtask test` runs the
/// new driver. Returns false when it is listed already.
pub fn join_matrix(repo: &Path, name: &str) -> Result<bool> {
    let path = repo.join("kforge.toml");
    let text = fs_err::read_to_string(&path)?;
    let mut document: toml_edit::DocumentMut =
        text.parse().map_err(|err| error::user(format!("malformed {}: {err}", path.display())))?;
    let Some(drivers) = document
        .get_mut("matrix")
        .and_then(|matrix| matrix.as_table_like_mut())
        .and_then(|matrix| matrix.get_mut("drivers"))
    else {
        return Err(error::user(format!("{} has no [matrix] drivers list to add {name} to", path.display())));
    };
    let Some(list) = drivers.as_array_mut() else {
        return Err(error::user(format!("[matrix] drivers in {} is not a list", path.display())));
    };
    if list.iter().any(|value| value.as_str() == Some(name)) {
        return Ok(false);
    }
    list.push(name);
    crate::cache::write_atomic(&path, document.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_derived() {
        let derived = names("my-driver").unwrap();
        assert_eq!(derived.module, "kforge_my_driver");
        assert_eq!(derived.device, "kforge-my-driver");
        for bad in ["", "Upper", "1abc", "a/b", "a b"] {
            assert!(names(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_new_driver_joins_the_matrix_and_the_comments_stay() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# the matrix\n[matrix]\nkernels = [\"7.2\"]\n# ours\ndrivers = [\"fifo\", \"edu\"]\n";
        fs_err::write(dir.path().join("kforge.toml"), text).unwrap();
        assert!(join_matrix(dir.path(), "demo").unwrap());
        assert!(!join_matrix(dir.path(), "demo").unwrap(), "listed twice");
        let written = fs_err::read_to_string(dir.path().join("kforge.toml")).unwrap();
        assert_eq!(written, text.replace("\"edu\"]", "\"edu\", \"demo\"]"));
        fs_err::write(dir.path().join("kforge.toml"), "[matrix]\nkernels = [\"7.2\"]\n").unwrap();
        let message = join_matrix(dir.path(), "demo").unwrap_err().to_string();
        assert!(message.contains("has no [matrix] drivers list"), "{message}");
    }

    #[test]
    fn scaffold_is_a_discoverable_driver() {
        let real_common = Path::new(env!("CARGO_MANIFEST_DIR")).join("../drivers/common");
        let repo = std::env::temp_dir().join(format!("kforge-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        fs_err::create_dir_all(repo.join("drivers")).unwrap();
        let message = new_driver(&repo, "demo").unwrap_err().to_string();
        assert!(message.contains("drivers/common/compat.rs is missing"), "{message}");
        fs_err::create_dir_all(repo.join("drivers/common")).unwrap();
        for file in COMMON_FILES {
            fs_err::copy(real_common.join(file), repo.join("drivers/common").join(file)).unwrap();
        }

        let (dir, _names) = new_driver(&repo, "demo").unwrap();
        let manifest = fs_err::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("module = \"kforge_demo\""), "{manifest}");
        assert!(manifest.contains("tests = [\"tests/shout.sh\", \"tests/pinned.sh\"]"), "{manifest}");
        assert!(
            manifest.contains("root-tests = [\"tests/pinned.sh\"]"),
            "rmmod as kforge-test would be refused for the wrong reason:\n{manifest}"
        );
        assert!(!manifest.contains('@'), "unreplaced placeholder:\n{manifest}");
        let source = fs_err::read_to_string(dir.join("kforge_demo.rs")).unwrap();
        assert!(source.contains("#[kunit_tests(kforge_demo)]") && source.contains("c\"kforge-demo\""));
        // The shared compat module, reached the way the sandbox mounts it (`/drv/../common`).
        assert!(source.contains("#[path = \"../common/compat.rs\"]\nmod compat;"), "{source}");
        assert!(dir.join("../common/compat.rs").is_file());
        // Every open file pins the module, and the driver itself calls no raw bindings.
        assert!(source.contains("_module: ModuleRef,") && source.contains("_module: ModuleRef::get()?"), "{source}");
        let code = source.lines().filter(|line| !line.trim_start().starts_with("//"));
        assert!(code.clone().all(|line| !line.contains("bindings") && !line.contains("kforge_linux_")), "{source}");
        assert!(!source.contains('@'), "unreplaced placeholder:\n{source}");
        assert_eq!(
            fs_err::read_to_string(dir.join("Kbuild")).unwrap(),
            "obj-m := kforge_demo.o\n# The kernel version test and the cfgs drivers/common/compat.rs matches on.\ninclude $(src)/../common/kforge.mk\n"
        );
        let pinned = fs_err::read_to_string(dir.join("tests/pinned.sh")).unwrap();
        assert!(pinned.contains("dev=/dev/kforge-demo") && pinned.contains("rmmod \"$mod\""), "{pinned}");
        assert!(!pinned.contains('@'), "unreplaced placeholder:\n{pinned}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs_err::metadata(dir.join("tests/pinned.sh")).unwrap().permissions().mode() & 0o111, 0o111);
        assert!(new_driver(&repo, "demo").is_err(), "an existing driver was overwritten");
        let _ = std::fs::remove_dir_all(repo);
    }
}
