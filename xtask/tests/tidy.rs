//! Repository invariants as ordinary tests: formatting, a `//!` line atop every Rust file, no stray process spawning.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, found);
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn code_is_formatted() {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(repo());
    let output = sh.cmd("cargo").args(["fmt", "--all", "--check"]).ignore_status().quiet().output().unwrap();
    assert!(
        output.status.success(),
        "run `cargo fmt --all`:\n{}",
        String::from_utf8_lossy(&output.stdout).lines().take(40).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let mut files = Vec::new();
    rust_files(&repo().join("xtask"), &mut files);
    rust_files(&repo().join("drivers"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text
                .lines()
                .find(|line| !line.starts_with("// SPDX") && !line.trim().is_empty())
                .unwrap_or("")
                .starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` line on top: {missing:?}");
}

#[test]
fn only_the_process_module_spawns_processes() {
    let mut files = Vec::new();
    rust_files(&repo().join("xtask/src"), &mut files);
    let spawning: Vec<String> = files
        .iter()
        .filter(|path| !path.ends_with("process.rs"))
        .filter(|path| std::fs::read_to_string(path).unwrap().contains("Command::new"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(spawning.is_empty(), "only xtask/src/process.rs may call Command::new: {spawning:?}");
}
