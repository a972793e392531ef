//! Running the kernel's make: the command line, the sandbox view, the fixed build identity, CPU accounting, progress and the first error of a failed make, shared by kforge's own kernel builds and the preparation of a distro's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::source::SourceTree;
use crate::arch::Arch;
use crate::process::{self, Cmd, Control, Outcome};
use crate::{error, progress};

/// `make_command`, or, for a kernel kforge did not configure (a distro's),
/// with its make variables (CC, CROSS_COMPILE, KERNELRELEASE...) in place of `LLVM=1`.
pub fn make_command_with(arch: &Arch, source: &str, build: &str, make_vars: &[String]) -> Vec<String> {
    let mut argv = make_command(arch, source, build);
    if !make_vars.is_empty() {
        argv.retain(|word| word != "LLVM=1");
        argv.extend(make_vars.iter().cloned());
    }
    argv
}

/// `make -C /src O=/build ARCH=... LLVM=1` plus reproducibility knobs.
pub fn make_command(arch: &Arch, source: &str, build: &str) -> Vec<String> {
    let mut argv = vec![
        "make".to_string(),
        "-C".to_string(),
        source.to_string(),
        format!("O={build}"),
        format!("ARCH={}", arch.make_arch),
        "LLVM=1".to_string(),
    ];
    if !arch.module_rustflags.is_empty() {
        argv.push(format!("RUSTFLAGS_MODULE={}", arch.module_rustflags.join(" ")));
    }
    argv
}

/// Environment for every kernel make: fixed build identity for reproducible output.
pub const BUILD_ENV: &[(&str, &str)] = &[
    ("KBUILD_BUILD_USER", "kforge"),
    ("KBUILD_BUILD_HOST", "kforge"),
    ("KBUILD_BUILD_TIMESTAMP", "1970-01-01T00:00:00Z"),
    ("KBUILD_BUILD_VERSION", "1"),
];

/// Marker line before the `times` output that `with_cpu_times` appends.
const CPU_MARKER: &str = "kforge-cpu-times";

/// Wraps argv in a shell that prints, after it ends, the CPU time of
/// everything it ran (`times`), so kforge can account a build's CPU even
/// through the sandbox.
pub fn with_cpu_times(argv: Vec<String>) -> Vec<String> {
    let script = format!("\"$@\"; status=$?; echo {CPU_MARKER}; times; exit $status");
    [vec!["sh".to_string(), "-c".to_string(), script, "sh".to_string()], argv].concat()
}

/// Seconds in `times` notation: `1m23.450000s` -> 83.45.
fn times_seconds(word: &str) -> Option<f64> {
    let (minutes, seconds) = word.strip_suffix('s')?.split_once('m')?;
    Some(minutes.parse::<f64>().ok()? * 60.0 + seconds.parse::<f64>().ok()?)
}

/// CPU seconds (user + system) of the children from `times` output, whose
/// second line is the children's.
pub fn children_cpu_seconds(line: &str) -> Option<f64> {
    let mut words = line.split_whitespace();
    Some(times_seconds(words.next()?)? + times_seconds(words.next()?)?)
}

/// The command that generates the UAPI headers (`/build/usr/include`) test
/// programs use: the kernel's make command with the headers' ARCH.
pub fn headers_command(arch: &Arch, make_vars: &[String]) -> Vec<String> {
    let mut argv = make_command_with(arch, "/src", "/build", make_vars);
    for word in &mut argv {
        if word.starts_with("ARCH=") {
            *word = format!("ARCH={}", arch.headers_arch);
        }
    }
    argv.push("headers".to_string());
    argv
}

/// The sandbox view of a kernel build: source read-only at /src, the build directory writable at /build.
pub fn jail<'a>(
    sandbox: &'a crate::sandbox::Sandbox,
    source: &SourceTree,
    build_dir: &Path,
) -> crate::sandbox::Jail<'a> {
    let mut jail = sandbox.jail();
    jail.ro(&source.dir, "/src");
    jail.rw(build_dir, "/build");
    let mut jail = jail.cwd("/build");
    for (key, value) in BUILD_ENV {
        jail = jail.env(key, value);
    }
    jail
}

/// Where the configuration steps' output goes, next to the build log.
pub fn config_log_path(log: &Path) -> PathBuf {
    log.with_file_name(format!(
        "{}.config.log",
        log.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
    ))
}

pub fn append_log(log: &Path, part: &Path) -> Result<()> {
    use std::io::Write;
    let text = fs_err::read(part)?;
    let mut file = fs_err::OpenOptions::new().create(true).append(true).open(log)?;
    file.write_all(&text)?;
    Ok(())
}

/// Whether a kbuild output line is a compile/link step (`  CC      kernel/fork.o`).
pub fn is_compile_step(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("  ") else { return false };
    let verb: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    !verb.is_empty()
        && verb.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !["DESCEND", "CALL", "CHK", "SYNC", "INSTALL", "UPD"].contains(&verb.as_str())
}

/// Runs a kbuild make (wrapped by `with_cpu_times`) with a progress bar;
/// returns the number of steps run and their CPU seconds.
pub fn run_make(cmd: &Cmd, log: &Path, label: &str, estimate: Option<u64>) -> Result<(usize, f64)> {
    let bar = match estimate {
        Some(total) => progress::bar(total, "Building"),
        None => progress::spinner("Building"),
    };
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut steps = 0usize;
    let mut cpu_seconds = 0.0;
    let mut times_lines = None;
    let outcome = cmd.stream(log, None, &mut |line| {
        if line == CPU_MARKER {
            times_lines = Some(0);
        } else if let Some(seen) = times_lines {
            // `times`: the shell's own times, then its children's.
            if seen == 1 {
                cpu_seconds = children_cpu_seconds(line).unwrap_or(0.0);
            }
            times_lines = Some(seen + 1);
        }
        if is_compile_step(line) {
            steps += 1;
            bar.inc(1);
            bar.set_message(format!("{label}: {}", line.trim()));
        }
        if !progress::bars_enabled() && last_report.elapsed() > Duration::from_secs(60) {
            last_report = Instant::now();
            progress::status("Building", format!("{label}: {steps} steps, {}s", started.elapsed().as_secs()));
        }
        Control::Continue
    })?;
    bar.finish_and_clear();
    match outcome {
        Outcome::Exited(status) if status.success() => Ok((steps, cpu_seconds)),
        other => Err(process_failure(cmd, other, log)),
    }
}

/// A process error showing the first compiler error and the log path.
pub fn process_failure(cmd: &Cmd, outcome: Outcome, log: &Path) -> anyhow::Error {
    let status = match outcome {
        Outcome::Exited(status) => process::describe_status(status),
        Outcome::Stopped => "stopped".to_string(),
        Outcome::TimedOut => "timed out".to_string(),
    };
    // What ran inside the sandbox, without bwrap's arguments or the CPU-time wrapper.
    let mut inner: Vec<String> = cmd.argv().iter().skip_while(|word| *word != "--").skip(1).cloned().collect();
    if inner.len() > 4 && inner[0] == "sh" && inner[2].contains(CPU_MARKER) {
        inner.drain(..4);
    }
    let command = inner.join(" ");
    anyhow::Error::new(error::ProcessError {
        command: if command.is_empty() { cmd.display() } else { command },
        status,
        output_tail: first_error_lines(log),
        log: Some(log.to_path_buf()),
    })
}

/// The first compiler error in a log with a few lines after it, else the log's tail.
pub fn first_error_lines(log: &Path) -> Vec<String> {
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let is_error = |line: &str| {
        let trimmed = line.trim_start();
        trimmed.starts_with("error")
            || trimmed.contains(": error:")
            || trimmed.contains(": fatal error:")
            || trimmed.contains("not found")
            || trimmed.contains("No such file")
    };
    match lines.iter().position(|line| is_error(line)) {
        Some(first) => lines[first..].iter().take(12).map(|line| line.to_string()).collect(),
        None => process::last_lines(&text, 12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_from_the_shell() {
        let seconds = children_cpu_seconds("1m23.450000s 0m12.340000s").unwrap();
        assert!((seconds - 95.79).abs() < 1e-9, "{seconds}");
        assert_eq!(children_cpu_seconds("0m0.01s 0m0.00s"), Some(0.01));
        assert_eq!(children_cpu_seconds("garbage"), None);
        let wrapped = with_cpu_times(vec!["make".into(), "-j2".into()]);
        assert_eq!(wrapped[..2], ["sh".to_string(), "-c".to_string()]);
        assert_eq!(wrapped[4..], ["make".to_string(), "-j2".to_string()]);
    }

    #[test]
    fn compile_steps_are_counted_and_bookkeeping_is_not() {
        assert!(is_compile_step("  CC      kernel/fork.o"));
        assert!(is_compile_step("  RUSTC L rust/core.o"));
        assert!(is_compile_step("  CC [M]  samples/rust/rust_minimal.mod.o"));
        assert!(!is_compile_step("  DESCEND objtool"));
        assert!(!is_compile_step("  CALL    /src/scripts/checksyscalls.sh"));
        assert!(!is_compile_step("Kernel: arch/x86/boot/bzImage is ready  (#1)"));
        assert!(!is_compile_step("make[1]: Entering directory '/build'"));
    }

    #[test]
    fn a_distro_kernels_variables_replace_llvm() {
        let arch = Arch::find("x86_64").unwrap();
        let own = make_command_with(arch, "/src", "/build", &[]);
        assert!(own.contains(&"LLVM=1".to_string()));
        let vars = ["CC=gcc-15".to_string(), "KERNELRELEASE=7.2.13+deb14-amd64".to_string()];
        let distro = make_command_with(arch, "/src", "/build", &vars);
        assert!(!distro.contains(&"LLVM=1".to_string()));
        assert_eq!(distro[distro.len() - 2..], vars);
        let headers = headers_command(arch, &vars);
        assert_eq!(headers.last().map(String::as_str), Some("headers"));
        assert!(headers.contains(&format!("ARCH={}", arch.headers_arch)));
    }
}
