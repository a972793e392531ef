//! Debian packages for Debian's own kernel, for real: `cargo xtask package --kernel debian-7.2 --arch x86_64 --prove --sign-modules` builds them with signed modules, lintian finds no error, apt and DKMS install and build fifo in a fresh sid root, Debian's kernel boots with that module (modprobe) and passes fifo's tests, and a second build is byte-identical.
//!
//! Ignored by default (CI runs ignored tests): it needs the sid-gcc
//! toolchain, Debian's archive, root or user namespaces for mmdebstrap, and
//! minutes on two cores (see docs/packages.md for measured times).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::repo;

/// The output directory of this file's runs: its own, so that `.ci/run` can
/// run it alongside the e2e test, which owns `target/kforge`.
fn output_dir() -> PathBuf {
    repo().join("target/kforge-package")
}

fn xtask(args: &[&str]) -> Output {
    eprintln!("\n$ KFORGE_OUTPUT_DIR={} cargo xtask {}", output_dir().display(), args.join(" "));
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("KFORGE_OUTPUT_DIR", output_dir())
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

/// The bytes of the file whose path ends with `suffix` in a .deb's data.tar.xz.
fn member_of_deb(deb: &Path, suffix: &str) -> Vec<u8> {
    let mut archive = ar::Archive::new(std::fs::File::open(deb).unwrap());
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.unwrap();
        if entry.header().identifier() != b"data.tar.xz" {
            continue;
        }
        let mut data = tar::Archive::new(xz2::read::XzDecoder::new(&mut entry));
        for file in data.entries().unwrap() {
            let mut file = file.unwrap();
            if file.path().unwrap().to_string_lossy().ends_with(suffix) {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
                return bytes;
            }
        }
    }
    panic!("no {suffix} in the data.tar.xz of {}", deb.display());
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
        "--sign-modules",
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
    let summary = output_dir().join("package/debian-7.2-x86_64/proof/results/out/summary.txt");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("vermagic: 7.2.13+deb14-amd64 "), "{summary}");
    // DKMS's module is kforge's: the same code and data once DKMS's BTF and kforge's debug information are set aside.
    assert!(
        summary.contains("normalized: code and data identical") || summary.contains("normalized: byte-identical"),
        "{summary}"
    );
    // Debian's kernel booted with DKMS's module, loaded by modprobe from /lib/modules, and fifo's tests passed.
    assert!(
        summary.contains("boot: debian-7.2/x86_64/release with the installed modules: ")
            && summary.contains("(modprobe loaded kforge_fifo from /lib/modules/7.2.13+deb14-amd64)"),
        "{summary}"
    );
    // The modules package carries a signed module (the project's db key).
    let modules_deb = first.join(&names[1]);
    let module = member_of_deb(&modules_deb, "kforge_fifo.ko");
    assert!(module.ends_with(b"~Module signature appended~\n"), "{} holds an unsigned module", modules_deb.display());

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
        "--sign-modules",
    ]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(debs(&second), names);
    for name in &names {
        let (left, right) = (std::fs::read(first.join(name)).unwrap(), std::fs::read(second.join(name)).unwrap());
        assert!(left == right, "{name} differs between two builds");
    }
}

/// The ELF machine (`e_machine`) of an object file's bytes.
fn elf_machine(object: &[u8]) -> u16 {
    assert!(object.starts_with(b"\x7fELF"), "not an ELF object");
    u16::from_le_bytes([object[18], object[19]])
}

#[test]
#[ignore = "needs the sid-gcc toolchain, Debian's archive and a cross build of Debian's arm64 kernel metadata; minutes on two cores (CI runs it)"]
fn arm64_packages_carry_arm64_proc_macros_and_pass_lintian() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("arm64");
    let built = xtask(&[
        "package",
        "--kernel",
        "debian-7.2",
        "--arch",
        "arm64",
        "--driver",
        "fifo",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(built.status.code(), Some(0), "cargo xtask package --arch arm64 failed (lintian errors fail it too)");
    let librust = format!("linux-librust-7.2.13+deb14-arm64_7.2.13-1+kforge{}_arm64.deb", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        debs(&out),
        ["kforge-fifo-dkms_0.1.0-1_all.deb", "kforge-fifo-modules-7.2.13+deb14-arm64_0.1.0-1_arm64.deb", &librust]
    );
    // The proc macros rustc loads on an arm64 machine are aarch64 objects (EM_AARCH64 = 183), as is the module.
    for file in ["libmacros.so", "libpin_init_internal.so"] {
        assert_eq!(elf_machine(&member_of_deb(&out.join(&librust), file)), 183, "{file} in {librust}");
    }
    let modules = out.join("kforge-fifo-modules-7.2.13+deb14-arm64_0.1.0-1_arm64.deb");
    assert_eq!(elf_machine(&member_of_deb(&modules, "kforge_fifo.ko")), 183);
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
