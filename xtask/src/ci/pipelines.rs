//! The CI configuration kforge writes from `xtask/templates/ci/`: the GitHub Actions workflow and GitLab pipeline (`ci generate`) and a plan's GitLab child pipeline.

use std::path::Path;

use anyhow::{Context, Result};

use super::plan::PlannedCell;

/// Runner of every GitHub job.
const GITHUB_RUNNER: &str = "ubuntu-24.04";
/// Image of every GitLab job (Debian with cargo); `KFORGE_IMAGE` overrides it.
const GITLAB_IMAGE: &str = "rust:1-trixie";
/// kforge's output directory in a job (`paths::output_dir` without `KFORGE_OUTPUT_DIR`).
const OUTPUT_DIR: &str = "target/kforge";
/// Where the merge job writes (`ci merge`'s default `--out`).
const MERGED_DIR: &str = "target/kforge/merged";
/// Prefix of the GitHub artifact holding one cell's output; the merge job downloads these.
const RESULTS_ARTIFACT: &str = "kforge-results-";
/// GitLab: each cell job's output directory is `<this>/<cell id>`, so the
/// merge job gets every cell's results.json side by side.
const GITLAB_CELLS_DIR: &str = "kforge-cells";
/// GitLab: the kforge cache, inside the project directory (GitLab caches nothing outside it).
const GITLAB_CACHE_DIR: &str = ".kforge-cache";

const GITHUB_TEMPLATE: &str = include_str!("../../templates/ci/github.yml.in");
const GITLAB_TEMPLATE: &str = include_str!("../../templates/ci/gitlab.yml.in");
const GITLAB_CELLS_TEMPLATE: &str = include_str!("../../templates/ci/gitlab-cells.yml.in");

/// The files `ci generate` owns (paths relative to the repository) and their contents.
pub fn generated() -> Vec<(&'static str, String)> {
    vec![("ci/github/kforge.yml", github_workflow()), ("ci/gitlab/kforge-ci.yml", gitlab_pipeline())]
}

/// The GitHub Actions workflow: plan, one job per cell, merge.
pub fn github_workflow() -> String {
    GITHUB_TEMPLATE
        .replace("@RUNNER@", GITHUB_RUNNER)
        .replace("@RESULTS_ARTIFACT@", RESULTS_ARTIFACT)
        .replace("@OUTPUT@", OUTPUT_DIR)
        .replace("@MERGED@", MERGED_DIR)
}

/// The GitLab pipeline: plan, then the child pipeline the plan wrote.
pub fn gitlab_pipeline() -> String {
    GITLAB_TEMPLATE.replace("@IMAGE@", GITLAB_IMAGE)
}

/// The GitLab child pipeline for `cells`: one job per cell, then the merge.
pub fn gitlab_child_pipeline(cells: &[PlannedCell]) -> String {
    let jobs: Vec<String> = cells.iter().map(gitlab_cell_job).collect();
    let expect: Vec<&str> = cells.iter().map(|cell| cell.id.as_str()).collect();
    GITLAB_CELLS_TEMPLATE
        .replace("@IMAGE@", GITLAB_IMAGE)
        .replace("@CACHE_DIR@", GITLAB_CACHE_DIR)
        .replace("@CELLS_DIR@", GITLAB_CELLS_DIR)
        .replace("@MERGED@", MERGED_DIR)
        .replace("@EXPECT@", &quote(&expect.join(",")))
        .replace("@CELL_JOBS@", &jobs.join("\n"))
}

/// One cell's job: its id and output directory, its three caches (kept
/// even when the cell fails, so the next run reuses the kernel build) and
/// its artifacts.
fn gitlab_cell_job(cell: &PlannedCell) -> String {
    let dir = format!("{GITLAB_CELLS_DIR}/{}", cell.id);
    let mut job = format!("{}:\n", quote(&format!("cell {}", cell.id)));
    job.push_str("  extends: .kforge-cell\n  variables:\n");
    job.push_str(&format!("    KFORGE_CELL: {}\n", quote(&cell.id)));
    job.push_str(&format!("    KFORGE_OUTPUT_DIR: {}\n", quote(&format!("$CI_PROJECT_DIR/{dir}"))));
    job.push_str("  cache:\n");
    let caches = [
        ("toolchain", &cell.toolchain_key, &cell.toolchain_cache),
        ("source", &cell.source_key, &cell.source_cache),
        ("kernel", &cell.kernel_key, &cell.kernel_cache),
    ];
    for (kind, key, entry) in caches {
        if key.is_empty() {
            continue;
        }
        job.push_str(&format!("    - key: {}\n", quote(&format!("kforge-{kind}-{key}"))));
        job.push_str(&format!("      paths:\n        - {}\n", quote(&format!("{GITLAB_CACHE_DIR}/{entry}"))));
        job.push_str("      when: always\n");
    }
    job.push_str("  artifacts:\n    paths:\n");
    for file in ["results.json", "junit.xml", "logs/"] {
        job.push_str(&format!("      - {}\n", quote(&format!("{dir}/{file}"))));
    }
    job
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Writes every generated file whose contents differ; returns those written.
pub fn write(repo: &Path) -> Result<Vec<&'static str>> {
    let mut written = Vec::new();
    for (path, contents) in generated() {
        if committed(repo, path)?.as_deref() != Some(contents.as_str()) {
            crate::cache::write_atomic(&repo.join(path), &contents)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The generated files whose copy in `repo` is missing or differs.
pub fn drifted(repo: &Path) -> Result<Vec<&'static str>> {
    let mut drifted = Vec::new();
    for (path, contents) in generated() {
        if committed(repo, path)?.as_deref() != Some(contents.as_str()) {
            drifted.push(path);
        }
    }
    Ok(drifted)
}

/// The file as it is in the repository, `None` when it does not exist.
fn committed(repo: &Path, path: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(repo.join(path)) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("failed to read {}", repo.join(path).display())),
    }
}

#[cfg(test)]
mod tests {
    use yaml_rust2::{Yaml, YamlLoader};

    use super::*;

    fn parse(text: &str) -> Yaml {
        let mut documents = YamlLoader::load_from_str(text).unwrap_or_else(|err| panic!("{err}\n{text}"));
        assert_eq!(documents.len(), 1, "{text}");
        documents.remove(0)
    }

    /// Every `run:` (GitHub) or `script:` line of a job, joined.
    fn commands(steps: &Yaml, key: &str) -> String {
        let steps = steps.as_vec().unwrap_or_else(|| panic!("not a list: {steps:?}"));
        steps.iter().filter_map(|step| step[key].as_str().or(step.as_str())).collect::<Vec<_>>().join("\n")
    }

    fn step<'a>(job: &'a Yaml, uses: &str, path_or_name: &str) -> &'a Yaml {
        job["steps"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|step| {
                step["uses"].as_str().is_some_and(|used| used.starts_with(uses))
                    && (step["with"]["path"].as_str().is_some_and(|path| path.contains(path_or_name))
                        || step["with"]["name"].as_str().is_some_and(|name| name.contains(path_or_name)))
            })
            .unwrap_or_else(|| panic!("no {uses} step for {path_or_name}"))
    }

    fn no_placeholders_left(text: &str) {
        let left: Vec<&str> = text.lines().filter(|line| line.matches('@').count() >= 2).collect();
        assert!(left.is_empty(), "unreplaced placeholders: {left:?}");
    }

    fn planned(id: &str, source_key: &str) -> PlannedCell {
        let (kernel, arch) = id.rsplit_once('-').unwrap();
        PlannedCell {
            id: id.to_string(),
            kernel: kernel.to_string(),
            arch: arch.to_string(),
            toolchain: "sid".to_string(),
            toolchain_key: "aaaa".to_string(),
            toolchain_cache: "toolchains/sid-aaaa".to_string(),
            source_key: source_key.to_string(),
            source_cache: if source_key.is_empty() { String::new() } else { "sources/7.2-bbbb".to_string() },
            kernel_key: format!("kernel-{arch}"),
            kernel_cache: format!("kernels/{id}-cccc"),
            skip: None,
        }
    }

    #[test]
    fn github_workflow_plans_runs_each_cell_and_merges() {
        let text = github_workflow();
        no_placeholders_left(&text);
        let workflow = parse(&text);
        let jobs = &workflow["jobs"];

        let plan = &jobs["plan"];
        assert_eq!(plan["outputs"]["matrix"].as_str(), Some("${{ steps.plan.outputs.matrix }}"));
        let plan_run = commands(&plan["steps"], "run");
        assert!(plan_run.contains("matrix=$(cargo xtask ci matrix --format github)"), "{plan_run}");
        assert!(plan_run.contains(">> \"$GITHUB_OUTPUT\""), "{plan_run}");

        let cell = &jobs["cell"];
        assert_eq!(cell["needs"].as_str(), Some("plan"));
        assert_eq!(cell["strategy"]["fail-fast"].as_bool(), Some(false));
        assert_eq!(cell["strategy"]["matrix"].as_str(), Some("${{ fromJSON(needs.plan.outputs.matrix) }}"));
        assert_eq!(cell["env"]["KFORGE_CELL"].as_str(), Some("${{ matrix.id }}"));
        assert!(commands(&cell["steps"], "run").contains("cargo xtask test --cell \"$KFORGE_CELL\""));
        for (kind, key, path) in [
            ("toolchain", "toolchain_key", "toolchain_cache"),
            ("source", "source_key", "source_cache"),
            ("kernel", "kernel_key", "kernel_cache"),
        ] {
            for action in ["actions/cache/restore@", "actions/cache/save@"] {
                let cache = step(cell, action, &format!("~/.cache/kforge/${{{{ matrix.{path} }}}}"));
                assert_eq!(
                    cache["with"]["key"].as_str(),
                    Some(format!("kforge-{kind}-${{{{ matrix.{key} }}}}").as_str()),
                    "{action} {kind}"
                );
            }
        }
        let results = step(cell, "actions/upload-artifact@", "kforge-results-");
        assert_eq!(results["if"].as_str(), Some("always()"));
        assert_eq!(results["with"]["path"].as_str(), Some(OUTPUT_DIR));
        let logs = step(cell, "actions/upload-artifact@", "kforge-logs-");
        assert_eq!(logs["if"].as_str(), Some("failure()"));
        assert!(logs["with"]["path"].as_str().unwrap().ends_with("/cells/${{ matrix.id }}/*.log"));

        let merge = &jobs["merge"];
        assert_eq!(merge["if"].as_str(), Some("always() && needs.plan.result == 'success'"));
        let download = step(merge, "actions/download-artifact@", "kforge-cells");
        assert_eq!(download["with"]["pattern"].as_str(), Some("kforge-results-*"));
        let merge_run = commands(&merge["steps"], "run");
        assert!(
            merge_run
                .contains("cargo xtask ci merge --expect \"$KFORGE_EXPECT\" --out target/kforge/merged kforge-cells/*"),
            "{merge_run}"
        );
        assert!(merge_run.contains("cat target/kforge/merged/summary.md >> \"$GITHUB_STEP_SUMMARY\""), "{merge_run}");
        step(merge, "actions/upload-artifact@", "target/kforge/merged");
    }

    #[test]
    fn gitlab_pipeline_plans_then_triggers_the_child_pipeline() {
        let text = gitlab_pipeline();
        no_placeholders_left(&text);
        let pipeline = parse(&text);
        let plan = &pipeline["kforge-plan"];
        assert_eq!(commands(&plan["script"], ""), "cargo xtask ci matrix --format gitlab > kforge-cells.yml");
        assert_eq!(plan["artifacts"]["paths"][0].as_str(), Some("kforge-cells.yml"));
        let trigger = &pipeline["kforge-test"]["trigger"];
        assert_eq!(trigger["include"][0]["artifact"].as_str(), Some("kforge-cells.yml"));
        assert_eq!(trigger["include"][0]["job"].as_str(), Some("kforge-plan"));
        assert_eq!(trigger["strategy"].as_str(), Some("depend"));
    }

    #[test]
    fn gitlab_child_pipeline_has_one_job_per_cell_and_a_merge() {
        let odd = "7.2: \"rc\"-x86_64";
        let text =
            gitlab_child_pipeline(&[planned("7.2-x86_64", "bbbb"), planned("local-um", ""), planned(odd, "bbbb")]);
        no_placeholders_left(&text);
        let pipeline = parse(&text);

        let job = &pipeline["cell 7.2-x86_64"];
        assert_eq!(job["extends"].as_str(), Some(".kforge-cell"));
        assert_eq!(job["variables"]["KFORGE_CELL"].as_str(), Some("7.2-x86_64"));
        assert_eq!(job["variables"]["KFORGE_OUTPUT_DIR"].as_str(), Some("$CI_PROJECT_DIR/kforge-cells/7.2-x86_64"));
        let caches = job["cache"].as_vec().unwrap();
        let keys: Vec<&str> = caches.iter().map(|cache| cache["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["kforge-toolchain-aaaa", "kforge-source-bbbb", "kforge-kernel-kernel-x86_64"]);
        assert_eq!(caches[2]["paths"][0].as_str(), Some(".kforge-cache/kernels/7.2-x86_64-cccc"));
        assert!(caches.iter().all(|cache| cache["when"].as_str() == Some("always")));
        assert_eq!(job["artifacts"]["paths"][0].as_str(), Some("kforge-cells/7.2-x86_64/results.json"));

        // A local source tree has no cache entry.
        assert_eq!(pipeline["cell local-um"]["cache"].as_vec().unwrap().len(), 2);
        // Ids are quoted, whatever kforge.toml calls its kernels.
        assert_eq!(pipeline[format!("cell {odd}").as_str()]["variables"]["KFORGE_CELL"].as_str(), Some(odd));

        let template = &pipeline[".kforge-cell"];
        assert_eq!(commands(&template["script"], ""), "cargo xtask test --cell \"$KFORGE_CELL\"");
        assert_eq!(template["artifacts"]["when"].as_str(), Some("always"));
        assert!(commands(&template["after_script"], "").contains("if [ \"$CI_JOB_STATUS\" = failed ]"));
        assert_eq!(pipeline["variables"]["KFORGE_CACHE_DIR"].as_str(), Some("$CI_PROJECT_DIR/.kforge-cache"));

        let merge = &pipeline["kforge-merge"];
        assert_eq!(merge["stage"].as_str(), Some("merge"));
        assert_eq!(merge["when"].as_str(), Some("always"));
        assert_eq!(merge["variables"]["KFORGE_EXPECT"].as_str(), Some(format!("7.2-x86_64,local-um,{odd}").as_str()));
        assert!(commands(&merge["script"], "").contains("cargo xtask ci merge --expect \"$KFORGE_EXPECT\""));
        assert_eq!(merge["artifacts"]["reports"]["junit"].as_str(), Some("target/kforge/merged/junit.xml"));
    }

    #[test]
    fn write_then_drifted_round_trips() {
        let repo = std::env::temp_dir().join(format!("kforge-pipelines-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        assert_eq!(drifted(&repo).unwrap(), ["ci/github/kforge.yml", "ci/gitlab/kforge-ci.yml"]);
        assert_eq!(write(&repo).unwrap().len(), 2);
        assert!(drifted(&repo).unwrap().is_empty());
        assert!(write(&repo).unwrap().is_empty(), "unchanged files are not rewritten");
        std::fs::write(repo.join("ci/gitlab/kforge-ci.yml"), "stages: []\n").unwrap();
        assert_eq!(drifted(&repo).unwrap(), ["ci/gitlab/kforge-ci.yml"]);
        let _ = std::fs::remove_dir_all(repo);
    }
}
