//! Repository invariants as ordinary tests: formatting, a `//!` line atop every Rust file, no stray process spawning, no import cycles, `ui` only in commands, `KFORGE_*` variables read only by the session, arch names only in arch.rs.

use std::path::{Path, PathBuf};

mod support;
use support::repo;

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
        // guard.rs is the separate process that process.rs puts between kforge
        // and a sandbox; it starts that one command.
        .filter(|path| !path.ends_with("process.rs") && !path.ends_with("guard.rs"))
        .filter(|path| std::fs::read_to_string(path).unwrap().contains("Command::new"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(spawning.is_empty(), "only xtask/src/process.rs (and its guard.rs) may call Command::new: {spawning:?}");
}

#[test]
fn commands_prepare_cells_through_the_one_path() {
    let mut files = Vec::new();
    rust_files(&repo().join("xtask/src/commands"), &mut files);
    // The stages prepare_cell runs in order; a command that calls one itself skips the others' checks.
    let stages =
        ["build_kernel(", "build_drivers(", "build_image(", "sign_modules(", "cell_kernel_plan(", "ready_arch("];
    let mut calls = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for stage in stages {
            if text.contains(&format!("pipeline::{stage}")) {
                calls.push(format!("{}: pipeline::{stage}", file.display()));
            }
        }
    }
    // `kernel config` and `kernel build --dry-run` stop before building: they take the refusal steps only.
    calls.retain(|call| !(call.ends_with("commands/kernel.rs: pipeline::ready_arch(")));
    assert!(calls.is_empty(), "commands go through pipeline::prepare_cell, not its stages: {calls:?}");
}

#[test]
fn commands_never_start_processes_themselves() {
    let mut files = Vec::new();
    rust_files(&repo().join("xtask/src/commands"), &mut files);
    let spawning: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            ["Cmd::new", ".jail()", "current_exe"].iter().any(|needle| text.contains(needle))
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(spawning.is_empty(), "commands parse and print; processes start in the layers below: {spawning:?}");
}

/// The module graph of `xtask/src`, read from the code: every `crate::`,
/// `super::` and `self::` path (and child modules named by bare paths), in
/// `use` items and in expressions, outside `#[cfg(test)] mod tests`.
mod modules {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// A module path without `crate`: `["toolchain", "provider", "host"]`; `[]` is main.rs.
    pub type Module = Vec<String>;

    pub struct Graph {
        /// Every module, with the modules its code refers to.
        pub edges: BTreeMap<Module, BTreeSet<Module>>,
    }

    /// The module a file under `src` defines.
    fn module_of(src: &Path, file: &Path) -> Module {
        let relative = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> =
            relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|last| last == "mod" || last == "main") {
            parts.pop();
        }
        parts
    }

    /// The code without comments, string literals' contents and the test module.
    pub fn code(text: &str) -> String {
        let test_module = text.match_indices("#[cfg(test)]\n").map(|(index, _)| index).find(|index| {
            let next = text[index + "#[cfg(test)]\n".len()..].lines().next().unwrap_or_default();
            next.ends_with("mod tests {")
        });
        let text = &text[..test_module.unwrap_or(text.len())];
        let mut out = String::new();
        for line in text.lines() {
            let line = match line.find("//") {
                Some(index) if !line[..index].contains('"') => &line[..index],
                _ => line,
            };
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    /// Every path that starts a `::` chain, with `{...}` groups expanded:
    /// `crate::{a, b::{c, d}}` gives `crate::a`, `crate::b::c`, `crate::b::d`.
    fn paths(code: &str) -> Vec<Vec<String>> {
        let chars: Vec<char> = code.chars().collect();
        let mut found = Vec::new();
        let mut index = 0;
        while index < chars.len() {
            let starts_word = index == 0 || !(is_ident(chars[index - 1]) || chars[index - 1] == ':');
            if starts_word && is_ident(chars[index]) {
                let (end, expanded) = path_at(&chars, index);
                if expanded.iter().any(|path| path.len() > 1) {
                    found.extend(expanded);
                }
                index = end.max(index + 1);
            } else {
                index += 1;
            }
        }
        found
    }

    /// Parses `a::b::{c, d::e}` at `start`; returns where it ended and the paths.
    fn path_at(chars: &[char], start: usize) -> (usize, Vec<Vec<String>>) {
        let mut prefix = Vec::new();
        let mut index = start;
        loop {
            let begin = index;
            while index < chars.len() && is_ident(chars[index]) {
                index += 1;
            }
            prefix.push(chars[begin..index].iter().collect::<String>());
            if chars.get(index) == Some(&':') && chars.get(index + 1) == Some(&':') {
                index += 2;
                match chars.get(index) {
                    Some('{') => {
                        let mut out = Vec::new();
                        index += 1;
                        loop {
                            while chars.get(index).is_some_and(|c| c.is_whitespace() || *c == ',') {
                                index += 1;
                            }
                            match chars.get(index) {
                                Some('}') | None => return (index + 1, out),
                                Some(c) if is_ident(*c) => {
                                    let (end, inner) = path_at(chars, index);
                                    for path in inner {
                                        out.push(prefix.iter().cloned().chain(path).collect());
                                    }
                                    index = end;
                                    // `as name`
                                    while chars.get(index).is_some_and(|c| *c != ',' && *c != '}') {
                                        index += 1;
                                    }
                                }
                                Some(_) => index += 1,
                            }
                        }
                    }
                    Some(c) if is_ident(*c) => continue,
                    _ => return (index, vec![prefix]),
                }
            } else {
                return (index, vec![prefix]);
            }
        }
    }

    impl Graph {
        pub fn read(src: &Path) -> Graph {
            let mut files = Vec::new();
            super::rust_files(src, &mut files);
            let modules: BTreeMap<Module, String> = files
                .iter()
                .map(|file| (module_of(src, file), code(&std::fs::read_to_string(file).unwrap())))
                .collect();
            let known: BTreeSet<Module> = modules.keys().cloned().collect();
            let mut edges = BTreeMap::new();
            for (module, code) in &modules {
                let mut targets = BTreeSet::new();
                for path in paths(code) {
                    let absolute: Module = match path[0].as_str() {
                        "crate" => path[1..].to_vec(),
                        "self" => module.iter().cloned().chain(path[1..].iter().cloned()).collect(),
                        "super" => {
                            let mut base = module.clone();
                            let mut rest = &path[..];
                            while rest.first().is_some_and(|part| part == "super") {
                                base.pop();
                                rest = &rest[1..];
                            }
                            base.into_iter().chain(rest.iter().cloned()).collect()
                        }
                        // A bare path names a child module (or another crate, ignored).
                        first => {
                            let child: Module = module.iter().cloned().chain([first.to_string()]).collect();
                            if !known.contains(&child) {
                                continue;
                            }
                            module.iter().cloned().chain(path.iter().cloned()).collect()
                        }
                    };
                    // The longest known module the path lies in.
                    let target = (0..=absolute.len())
                        .rev()
                        .map(|len| absolute[..len].to_vec())
                        .find(|prefix| known.contains(prefix))
                        .unwrap_or_default();
                    if &target != module {
                        targets.insert(target);
                    }
                }
                edges.insert(module.clone(), targets);
            }
            Graph { edges }
        }

        /// The strongly connected components with more than one module of
        /// the graph `edge` gives over `nodes`.
        pub fn cycles(nodes: &BTreeSet<Module>, edge: &dyn Fn(&Module, &Module) -> bool) -> Vec<BTreeSet<Module>> {
            let reach = |from: &Module| {
                let mut seen = BTreeSet::new();
                let mut todo = vec![from.clone()];
                while let Some(node) = todo.pop() {
                    for next in nodes.iter().filter(|next| edge(&node, next)) {
                        if seen.insert(next.clone()) {
                            todo.push(next.clone());
                        }
                    }
                }
                seen
            };
            let reachable: BTreeMap<&Module, BTreeSet<Module>> = nodes.iter().map(|node| (node, reach(node))).collect();
            let mut components: Vec<BTreeSet<Module>> = Vec::new();
            for node in nodes {
                let component: BTreeSet<Module> = nodes
                    .iter()
                    .filter(|other| {
                        *other == node || (reachable[node].contains(*other) && reachable[*other].contains(node))
                    })
                    .cloned()
                    .collect();
                if component.len() > 1 && !components.contains(&component) {
                    components.push(component);
                }
            }
            components
        }
    }

    pub fn show(component: &BTreeSet<Module>) -> String {
        component.iter().map(|module| module.join("::")).collect::<Vec<_>>().join(" <-> ")
    }
}

/// Import cycles between top-level modules this work has not removed yet,
/// each with the work that will. A component listed here must match exactly:
/// a new module joining a known cycle fails the test too.
const ALLOWED_TOP_LEVEL_CYCLES: &[&[&str]] = &[];

#[test]
fn no_import_cycles_between_modules() {
    use std::collections::BTreeSet;
    let graph = modules::Graph::read(&repo().join("xtask/src"));
    let top = |module: &modules::Module| module.first().cloned().unwrap_or_else(|| "main".to_string());
    let nodes: BTreeSet<modules::Module> = graph.edges.keys().map(|module| vec![top(module)]).collect();
    let top_edge = |from: &modules::Module, to: &modules::Module| {
        graph.edges.iter().any(|(source, targets)| {
            vec![top(source)] == *from && targets.iter().any(|target| vec![top(target)] == *to)
        })
    };
    let allowed: Vec<BTreeSet<modules::Module>> = ALLOWED_TOP_LEVEL_CYCLES
        .iter()
        .map(|cycle| cycle.iter().map(|name| vec![name.to_string()]).collect())
        .collect();
    let mut problems: Vec<String> = modules::Graph::cycles(&nodes, &top_edge)
        .into_iter()
        .filter(|component| !allowed.contains(component))
        .map(|component| format!("top-level cycle: {}", modules::show(&component)))
        .collect();

    // Inside these directories no two submodules may depend on each other in
    // a cycle. A submodule may use its ancestors' items (the `mod.rs` facade
    // re-exports and shared types), so edges to an ancestor do not count.
    for parent in ["toolchain", "report"] {
        let under: BTreeSet<modules::Module> =
            graph.edges.keys().filter(|module| module.len() > 1 && module[0] == parent).cloned().collect();
        let edge = |from: &modules::Module, to: &modules::Module| {
            !from.starts_with(to) && graph.edges[from].iter().any(|target| target.starts_with(to))
        };
        for component in modules::Graph::cycles(&under, &edge) {
            problems.push(format!("cycle inside {parent}/: {}", modules::show(&component)));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles (break them, or name the work that will in the allowlist):\n{}",
        problems.join("\n")
    );
}

#[test]
fn only_commands_and_main_use_ui() {
    let graph = modules::Graph::read(&repo().join("xtask/src"));
    let users: Vec<String> = graph
        .edges
        .iter()
        .filter(|(module, targets)| {
            let allowed = module.is_empty() || module[0] == "commands" || module[0] == "ui";
            !allowed && targets.iter().any(|target| target.first().is_some_and(|first| first == "ui"))
        })
        .map(|(module, _)| module.join("::"))
        .collect();
    assert!(
        users.is_empty(),
        "only commands/ and main.rs may use ui; lower layers report through crate::progress: {users:?}"
    );
}

/// The `KFORGE_*` variables read outside session.rs: test hooks, a key
/// directory, and the terminal's progress bars (read by `ui` with NO_COLOR and CI).
const VARIABLES_READ_OUTSIDE_THE_SESSION: [&str; 4] =
    ["KFORGE_ROOT", "KFORGE_KERNEL_SOURCE", "KFORGE_SECURE_BOOT_KEYS", "KFORGE_NO_PROGRESS"];

#[test]
fn only_the_session_reads_kforge_variables() {
    let mut files = Vec::new();
    rust_files(&repo().join("xtask/src"), &mut files);
    let mut readers = Vec::new();
    for file in files.iter().filter(|file| !file.ends_with("session.rs")) {
        let code = std::fs::read_to_string(file).unwrap();
        // Unit tests may save and restore a variable they set.
        let product = code.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in product.lines().enumerate() {
            let reads = line.contains("env::var(\"KFORGE_") || line.contains("env::var_os(\"KFORGE_");
            let allowed = VARIABLES_READ_OUTSIDE_THE_SESSION.iter().any(|name| line.contains(&format!("\"{name}\"")));
            if reads && !allowed {
                readers.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(
        readers.is_empty(),
        "a KFORGE_* setting is a session option: add it to session::Session (with `env =`), read it with session::current():\n{}",
        readers.join("\n")
    );
}

#[test]
fn only_the_scoped_env_guard_changes_the_environment() {
    // A unit test that sets or removes a variable without putting it back
    // changes it for every later test in the process (a removed
    // KFORGE_CACHE_DIR sent a cold CI run's tests to ~/.cache/kforge).
    let mut files = Vec::new();
    rust_files(&repo().join("xtask/src"), &mut files);
    let mut writers = Vec::new();
    for file in files.iter().filter(|file| !file.ends_with("test_support.rs")) {
        let code = std::fs::read_to_string(file).unwrap();
        for (number, line) in code.lines().enumerate() {
            if line.contains("env::set_var(") || line.contains("env::remove_var(") {
                writers.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(
        writers.is_empty(),
        "set variables through test_support::ScopedEnv, which restores them:\n{}",
        writers.join("\n")
    );
}

#[test]
fn every_allowed_cycle_still_exists() {
    use std::collections::BTreeSet;
    let graph = modules::Graph::read(&repo().join("xtask/src"));
    for cycle in ALLOWED_TOP_LEVEL_CYCLES {
        let members: BTreeSet<&str> = cycle.iter().copied().collect();
        // Each member reaches another member directly: the cycle is still there.
        for member in cycle.iter() {
            let reaches_another = graph.edges.iter().any(|(source, targets)| {
                source.first().is_some_and(|first| first == member)
                    && targets.iter().any(|target| {
                        target.first().is_some_and(|first| first != member && members.contains(first.as_str()))
                    })
            });
            assert!(reaches_another, "the cycle {cycle:?} is gone: remove it from ALLOWED_TOP_LEVEL_CYCLES");
        }
    }
}

#[test]
fn the_module_graph_sees_use_groups_super_paths_and_bare_child_paths() {
    let dir = std::env::temp_dir().join(format!("kforge-tidy-graph-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    let files = [
        ("main.rs", "//! m\nmod a;\nmod b;\nmod ui;\nfn main() { ui::x(); }\n"),
        ("a/mod.rs", "//! a\npub mod one;\npub mod two;\nfn f() { two::g(); }\n"),
        ("a/one.rs", "//! one\nuse super::two::G;\n"),
        (
            "a/two.rs",
            "//! two\nuse crate::{b, a::{one::{self, H}}};\n#[cfg(test)]\nmod tests {\n    use crate::ui;\n}\n",
        ),
        ("b.rs", "//! b\nfn f() { crate::ui::status(); } // crate::a::one\n"),
        ("ui.rs", "//! ui\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let graph = modules::Graph::read(&dir);
    let edges = |module: &[&str]| -> Vec<String> {
        let module: Vec<String> = module.iter().map(|part| part.to_string()).collect();
        graph.edges[&module].iter().map(|target| target.join("::")).collect()
    };
    assert_eq!(edges(&[]), ["ui"]);
    assert_eq!(edges(&["a"]), ["a::two"]);
    assert_eq!(edges(&["a", "one"]), ["a::two"]);
    // The test module and the comment add nothing.
    assert_eq!(edges(&["a", "two"]), ["a::one", "b"]);
    assert_eq!(edges(&["b"]), ["ui"]);
    let nodes = graph.edges.keys().filter(|module| module.len() > 1).cloned().collect();
    let edge = |from: &modules::Module, to: &modules::Module| graph.edges[from].contains(to);
    let cycles = modules::Graph::cycles(&nodes, &edge);
    assert_eq!(cycles.iter().map(modules::show).collect::<Vec<_>>(), ["a::one <-> a::two"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// Names of architectures (kernel, Debian, Rust/uname spellings) that only
/// arch.rs may write in code. `arm` and `um` are left out: as words they are
/// too common to tell apart from prose.
const ARCH_NAMES: &[&str] = &[
    "x86_64",
    "x86-64",
    "aarch64",
    "amd64",
    "arm64",
    "armhf",
    "armv7",
    "riscv",
    "riscv64",
    "loongarch",
    "loongarch64",
    "loong64",
    "s390",
    "s390x",
];

/// Where an arch may be named outside the table: (file, string literal or
/// `*` for the whole file, why). Examples in help and messages are prose for
/// users, not facts the code acts on.
const ARCH_NAME_ALLOWED: &[(&str, &str, &str)] = &[
    ("arch.rs", "*", "the arch table itself"),
    (
        "commands/selection.rs",
        "`{id}` is not a cell id; cell ids look like <kernel>-<arch>-<profile>, e.g. 7.2-x86_64-release",
        "an example in an error message",
    ),
    ("commands/new_driver.rs", "next: cargo xtask test --arch x86_64", "an example command for the user"),
];

/// The string literals of some code (escapes kept as written).
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        // Skip char literals such as '"' and lifetimes.
        if c == '\'' {
            let rest: String = chars.clone().take(3).collect();
            if rest.starts_with("\"'") || rest.starts_with("\\\"'") {
                chars.nth(rest.find('\'').unwrap_or(0));
            }
        } else if c == '"' && previous != '\\' {
            let mut literal = String::new();
            let mut escaped = false;
            for c in chars.by_ref() {
                if c == '"' && !escaped {
                    break;
                }
                escaped = c == '\\' && !escaped;
                literal.push(c);
            }
            out.push(literal);
        }
        previous = c;
    }
    out
}

fn names_an_arch(text: &str) -> Option<&'static str> {
    ARCH_NAMES.iter().copied().find(|name| {
        text.match_indices(name).any(|(index, _)| {
            let before = text[..index].chars().next_back();
            let after = text[index + name.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            !word(before) && !word(after)
        })
    })
}

#[test]
fn only_arch_rs_names_an_arch_in_code() {
    let src = repo().join("xtask/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap().display().to_string();
        let allowed = |literal: &str| {
            ARCH_NAME_ALLOWED
                .iter()
                .any(|(file, allowed, _)| *file == relative && (*allowed == "*" || *allowed == literal))
        };
        let code = modules::code(&std::fs::read_to_string(file).unwrap());
        for literal in string_literals(&code) {
            if let Some(name) = names_an_arch(&literal).filter(|_| !allowed(&literal)) {
                found.push(format!("{relative}: \"{literal}\" names {name}"));
            }
        }
    }
    assert!(found.is_empty(), "per-arch facts belong in xtask/src/arch.rs:\n{}", found.join("\n"));
}
