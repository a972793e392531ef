//! Driver invariants as ordinary tests: kernel API differences and `bindings::` only in `drivers/common`, a `// SAFETY:` comment on every `unsafe` block.

use std::path::{Path, PathBuf};

mod support;
use support::repo;

/// Every file under `dir` (skipping build output and dot directories).
fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// The driver sources tidy checks: drivers' Rust and Kbuild files, and the
/// `new-driver` template they are generated from (`*.rs.in`, `Kbuild.in`).
fn driver_sources() -> Vec<PathBuf> {
    let mut found = Vec::new();
    files(&repo().join("drivers"), &mut found);
    files(&repo().join("xtask/templates/new-driver"), &mut found);
    found.retain(|path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let name = name.strip_suffix(".in").unwrap_or(&name);
        name.ends_with(".rs") || name == "Kbuild" || name == "Makefile" || name.ends_with(".mk")
    });
    assert!(found.len() >= 4, "no driver sources found: {found:?}");
    found
}

fn is_rust(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name.ends_with(".rs") || name.ends_with(".rs.in")
}

/// `text` without comments (`//` for Rust, `#` for make), line by line.
fn code_only(text: &str, rust: bool) -> String {
    let marker = if rust { "//" } else { "#" };
    text.lines().map(|line| line.split(marker).next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Whether `word` occurs in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Lines (1-based) with an `unsafe {` block whose statement has no `// SAFETY:`
/// comment in the comment lines right above it.
fn undocumented_unsafe(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if !code.contains("unsafe {") {
            continue;
        }
        let documented = lines[..index]
            .iter()
            .rev()
            .map(|line| line.trim())
            .take_while(|line| line.starts_with("//"))
            .any(|line| line.starts_with("// SAFETY:"));
        if !documented {
            missing.push(index + 1);
        }
    }
    missing
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap_or(path).display().to_string()
}

#[test]
fn only_drivers_common_calls_bindings_or_tests_the_kernel_version() {
    let common = repo().join("drivers/common");
    let mut offenders = Vec::new();
    for path in driver_sources().iter().filter(|path| !path.starts_with(&common)) {
        let code = code_only(&std::fs::read_to_string(path).unwrap(), is_rust(path));
        for word in ["bindings", "kforge_linux_7_3", "VERSION", "PATCHLEVEL"] {
            if has_word(&code, word) {
                offenders.push(format!("{} uses `{word}`", relative(path)));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "kernel API differences and raw bindings belong in drivers/common/compat.rs (and the version test in \
         drivers/common/kforge.mk):\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn every_unsafe_block_in_drivers_has_a_safety_comment() {
    let mut offenders = Vec::new();
    for path in driver_sources().iter().filter(|path| is_rust(path)) {
        for line in undocumented_unsafe(&std::fs::read_to_string(path).unwrap()) {
            offenders.push(format!("{}:{line}", relative(path)));
        }
    }
    assert!(
        offenders.is_empty(),
        "`unsafe` blocks without a `// SAFETY:` comment right above their statement:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn every_driver_kbuild_includes_the_common_version_test() {
    let mut missing = Vec::new();
    for path in driver_sources().iter().filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("Kbuild"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        if !text.lines().any(|line| line.trim() == "include $(src)/../common/kforge.mk") {
            missing.push(relative(path));
        }
    }
    assert!(missing.is_empty(), "Kbuild files without `include $(src)/../common/kforge.mk`: {missing:?}");
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // Raw bindings, in a `use` list or a path, but not in comments or inside longer names.
    assert!(has_word(&code_only("use kernel::{bindings, prelude::*};", true), "bindings"));
    assert!(has_word(&code_only("    unsafe { bindings::module_put(m) };", true), "bindings"));
    assert!(!has_word(&code_only("// raw `bindings::` calls live in compat", true), "bindings"));
    assert!(!has_word("my_bindings_table", "bindings"));
    // A version cfg in Rust or make.
    assert!(has_word(&code_only("#[cfg(kforge_linux_7_3)]", true), "kforge_linux_7_3"));
    assert!(has_word(&code_only("rustflags-y += --cfg kforge_linux_7_3 # 7.3", false), "kforge_linux_7_3"));
    assert!(!has_word(&code_only("# sets kforge_linux_7_3", false), "kforge_linux_7_3"));
    // SAFETY comments: above the statement (several comment lines are fine), not missing or
    // separated by code.
    let text = "\
// SAFETY: fine.
let a = unsafe { f() };
// CAST: first.
// SAFETY: fine too.
if !unsafe { g() } {}
let b = unsafe { h() };
// SAFETY: about something else.
let c = 1;
let d = unsafe { i() };
// An ordinary comment.
unsafe { j() };
unsafe fn k() {}
";
    assert_eq!(undocumented_unsafe(text), [6, 9, 11]);
}
