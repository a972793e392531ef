//! Debian packages for Debian's own kernel, for real: `cargo xtask package --kernel debian-7.2 --arch x86_64 --prove` builds them, lintian finds no error, apt and DKMS install and build fifo in a fresh sid root, and a second build is byte-identical.
//!
//! Ignored by default (CI runs ignored tests): it needs the sid-gcc
//! toolchain, Debian's archive, root or user namespaces for mmdebstrap, and
//! minutes on two cores (see docs/packages.md for measured times).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn xtask(args: &[&str]) -> Output {
    eprintln!("\n$ cargo xtask {}", args.join(" "));
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("SOURCE_DATE_EPOCH", "1764547200")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    eprintln!("(exit status {:?})", output.status.code());
    output
}

fn debs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".deb"))
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "needs the sid-gcc toolchain, Debian's archive and mmdebstrap; minutes on two cores (CI runs it)"]
fn debian_packages_install_with_apt_and_build_with_dkms() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let started = std::time::Instant::now();
    let built = xtask(&[
        "package",
        "--kernel",
        "debian-7.2",
        "--arch",
        "x86_64",
        "--driver",
        "fifo",
        "--out",
        first.to_str().unwrap(),
        "--prove",
    ]);
    eprintln!("package --prove took {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!(built.status.code(), Some(0), "cargo xtask package --prove failed");
    let names = debs(&first);
    assert_eq!(
        names,
        [
            "kforge-fifo-dkms_0.1.0-1_all.deb",
            "kforge-fifo-modules-7.2.13+deb14-amd64_0.1.0-1_amd64.deb",
            &format!("linux-librust-7.2.13+deb14-amd64_7.2.13-1+kforge{}_amd64.deb", env!("CARGO_PKG_VERSION")),
        ]
    );
    let summary = repo().join("target/kforge/package/debian-7.2-x86_64/proof/results/out/summary.txt");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("vermagic: 7.2.13+deb14-amd64 "), "{summary}");

    let again = xtask(&[
        "package",
        "--kernel",
        "debian-7.2",
        "--arch",
        "x86_64",
        "--driver",
        "fifo",
        "--out",
        second.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(debs(&second), names);
    for name in &names {
        let (left, right) = (std::fs::read(first.join(name)).unwrap(), std::fs::read(second.join(name)).unwrap());
        assert!(left == right, "{name} differs between two builds");
    }
}

#[test]
fn a_kernel_built_by_kforge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["package", "--kernel", "7.2", "--out", dir.path().to_str().unwrap()])
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kernel 7.2 is built by kforge, not a distro kernel: packages are for distro kernels"),
        "{stderr}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing may be written");
}
