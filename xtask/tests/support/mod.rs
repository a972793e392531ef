//! Helpers the integration test files share (`mod support;` in each): where the repository is, and a copy of the project to edit.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root (the parent of `xtask/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A copy of the project (everything but `target/` and `.git`) in `dir`,
/// replacing whatever was there, for a test that edits files while other test
/// binaries read the checkout. Kernel keys hash contents, not paths, so a
/// run in the copy (`KFORGE_ROOT`) finds the checkout's cached kernels.
pub fn project_copy(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name == "target" || name == ".git") {
            continue;
        }
        let status = Command::new("cp").arg("-a").arg(&path).arg(dir).status().unwrap();
        assert!(status.success(), "cp -a {} {}", path.display(), dir.display());
    }
    dir.to_path_buf()
}

/// A copy of the project's inputs only (kforge.toml, kforge.lock,
/// toolchains/, kernel-config/) in `dir`: enough for commands that read the
/// configuration and never build a driver.
pub fn inputs_copy(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    for sub in ["toolchains", "kernel-config"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(repo().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    for file in ["kforge.toml", "kforge.lock"] {
        std::fs::copy(repo().join(file), dir.join(file)).unwrap();
    }
    dir.to_path_buf()
}
