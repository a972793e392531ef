//! The `host` provider (the host's own tools, nothing to install) and the verification every provider on the host's filesystem shares (host, rustup): every pin checked through the sandbox builds use, each failure with what to do.

use anyhow::Result;

use std::path::{Path, PathBuf};

use super::ToolchainProvider;
use crate::arch::{ARCHES, Arch};
use crate::hostdeps;
use crate::process::Cmd;
use crate::progress;
use crate::toolchain::Toolchain;
use crate::toolchain::check::{Check, Report, first_line, probe, version_check};
use crate::toolchain::install::InstallOptions;

/// Prints rust-src's version: Debian's `src/version`, or for a rustup
/// component the version of the rustc it belongs to.
const RUST_SRC_PROBE: &str = "sysroot=$(rustc --print sysroot 2>/dev/null) || { echo 'no rustc on PATH, so no sysroot'; exit 0; }; \
     src=$sysroot/lib/rustlib/src/rust; \
     if [ -f \"$src/library/core/src/lib.rs\" ]; then \
       v=$(cat \"$src/src/version\" 2>/dev/null); \
       if [ -z \"$v\" ] && [ -f \"$sysroot/lib/rustlib/manifest-rust-src\" ]; then v=\"$(rustc --version | cut -d' ' -f2) (rustup component of this rustc)\"; fi; \
       echo \"rust-src ${v:-unknown} at $src\"; \
     else echo \"library/core is missing under $src\"; fi";

/// The kernel's own trick (scripts/rust_is_available.sh): bindgen's libclang
/// prints its version through a #pragma message.
const LIBCLANG_PROBE: &str = "printf '#pragma message(\"clang version \" __clang_version__)\\n' > /tmp/kforge-libclang.h; \
     bindgen /tmp/kforge-libclang.h 2>&1 >/dev/null | grep -F 'clang version' || echo 'bindgen could not load libclang (or is missing)'";

/// Why rustc and rust-src were not probed.
pub const RUSTUP_MISSING: &str = "the rustup toolchain is not installed";

/// The host's own tools: nothing to install, verified on the host.
pub struct Host;

impl ToolchainProvider for Host {
    fn plan(&self, _toolchain: &Toolchain, _options: &InstallOptions) -> Result<Vec<Cmd>> {
        Ok(Vec::new())
    }

    fn install(&self, toolchain: &Toolchain, _options: &InstallOptions) -> Result<bool> {
        progress::detail(format!("toolchain {} uses the host's own tools: nothing to install", toolchain.id()));
        Ok(false)
    }

    fn is_installed(&self, _toolchain: &Toolchain) -> bool {
        true
    }

    fn sysroot(&self, _toolchain: &Toolchain) -> Result<Option<PathBuf>> {
        Ok(None)
    }

    fn describe(&self, toolchain: &Toolchain) -> String {
        format!("the host's own tools (LLVM in {})", toolchain.spec.llvm.bin)
    }

    fn verify(&self, toolchain: &Toolchain) -> Result<Report> {
        verify_on_host(toolchain, None, None, &|_, _| None)
    }
}

/// A provider's own advice for a failed check (`None`: the generic advice).
pub type ProviderFix<'a> = &'a dyn Fn(&Toolchain, &Check) -> Option<String>;

/// Verifies a toolchain on the host. `rustup_check` is the rustup provider's
/// first check and `sysroot` its toolchain's directory (see `collect`).
pub fn verify_on_host(
    toolchain: &Toolchain,
    rustup_check: Option<Check>,
    sysroot: Option<&Path>,
    provider_fix: ProviderFix,
) -> Result<Report> {
    // The checks run in the sandbox builds use, so they see what builds see.
    hostdeps::ensure(&[hostdeps::BWRAP, hostdeps::UNSHARE])?;
    let sandbox = toolchain.sandbox_with(sysroot)?;
    let checks = collect(toolchain, rustup_check, &mut |script| probe(&sandbox, script), provider_fix)?;
    Ok(Report {
        toolchain: toolchain.id().to_string(),
        key: toolchain.key.clone(),
        root: format!("{}; kforge's own files in {}", toolchain.location(), toolchain.dir.display()),
        ok: checks.iter().all(|check| check.ok),
        checks,
    })
}

/// Runs every check through `probe` (a shell snippet -> success, output) and
/// adds what to do to each failure. `rustup_check` is the rustup provider's
/// first check; when it failed, rustc and rust-src are not probed (the PATH
/// has no rustup toolchain, so they would find some other rustc).
/// `provider_fix` gives the provider's own advice before the generic one.
pub fn collect(
    toolchain: &Toolchain,
    rustup_check: Option<Check>,
    probe: &mut dyn FnMut(&str) -> Result<(bool, String)>,
    provider_fix: ProviderFix,
) -> Result<Vec<Check>> {
    let spec = &toolchain.spec;
    let mut checks = Vec::new();
    let rust_reachable = rustup_check.as_ref().is_none_or(|check| check.ok);
    if let Some(check) = rustup_check {
        checks.push(check);
    }
    if rust_reachable {
        checks.push(version_check("rustc", &spec.rustc.version, probe("rustc --version")?, "rustc "));
        checks.push(version_check("rust-src", &spec.rust_src.version, probe(RUST_SRC_PROBE)?, "rust-src "));
    } else {
        checks.push(missing_check("rustc", &spec.rustc.version, RUSTUP_MISSING));
        checks.push(missing_check("rust-src", &spec.rust_src.version, RUSTUP_MISSING));
    }
    checks.push(version_check("bindgen", &spec.bindgen.version, probe("bindgen --version")?, "bindgen "));
    checks.push(version_check("libclang (via bindgen)", &spec.llvm.version, probe(LIBCLANG_PROBE)?, "clang version "));
    checks.push(version_check("clang", &spec.llvm.version, probe("clang --version")?, "clang version "));
    checks.push(version_check("ld.lld", &spec.llvm.version, probe("ld.lld --version")?, "LLD "));
    checks.push(version_check("llvm (llvm-ar)", &spec.llvm.version, probe("llvm-ar --version")?, "LLVM version "));

    let served: Vec<_> = ARCHES.iter().filter(|arch| !spec.unsupported_arches.contains_key(arch.name)).collect();
    let mut qemu_binaries: Vec<&str> = Vec::new();
    for qemu in served.iter().filter_map(|arch| arch.qemu()) {
        if !qemu_binaries.contains(&qemu.binary) {
            qemu_binaries.push(qemu.binary);
        }
    }
    for binary in qemu_binaries {
        let output = probe(&format!("{binary} --version"))?;
        checks.push(version_check(binary, &spec.qemu.version, output, "QEMU emulator version "));
    }
    let host = Arch::host()?;
    let mut busybox_arches: Vec<&str> = Vec::new();
    for arch in served {
        // Two arches can share a Debian architecture (x86_64 and um): one busybox.
        if busybox_arches.contains(&arch.debian_arch) {
            continue;
        }
        busybox_arches.push(arch.debian_arch);
        let path = toolchain.busybox(arch);
        let tool = format!("busybox ({})", arch.debian_arch);
        let check = if !path.is_file() {
            missing_check(&tool, &spec.busybox.version, &format!("{} is missing", path.display()))
        } else if arch.debian_arch == host.debian_arch {
            version_check(
                &tool,
                &spec.busybox.version,
                probe(&format!("'{}' | head -n 1", path.display()))?,
                "BusyBox v",
            )
        } else {
            installed_check(&tool, &spec.busybox.version, &path.display().to_string())
        };
        checks.push(check);
    }
    for check in checks.iter_mut().filter(|check| !check.ok) {
        check.hint = provider_fix(toolchain, check).unwrap_or_else(|| fix(toolchain, check));
    }
    Ok(checks)
}

pub fn installed_check(tool: &str, pinned: &str, detail: &str) -> Check {
    Check {
        tool: tool.to_string(),
        pinned: pinned.to_string(),
        found: pinned.to_string(),
        ok: true,
        detail: detail.to_string(),
        hint: String::new(),
    }
}

pub fn missing_check(tool: &str, pinned: &str, why: &str) -> Check {
    Check {
        tool: tool.to_string(),
        pinned: pinned.to_string(),
        found: "missing".to_string(),
        ok: false,
        detail: first_line(why),
        hint: String::new(),
    }
}

/// What to do about one failed check of a tool on the host.
fn fix(toolchain: &Toolchain, check: &Check) -> String {
    let spec = &toolchain.spec;
    let file = spec.path.display();
    let llvm_major = spec.llvm.version.split('.').next().unwrap_or(&spec.llvm.version);
    let tool = check.tool.as_str();
    match tool {
        "rustc" => format!(
            "install rustc {} (your distribution's package) so that `rustc` on PATH ({}:/usr/local/bin:/usr/bin:/bin) is that version, \
             or pin the rustc you have in {file}",
            spec.rustc.version, spec.llvm.bin
        ),
        "rust-src" => format!(
            "install the rust-src of rustc {} (your distribution's rust-src package); kforge reads \
             $(rustc --print sysroot)/lib/rustlib/src/rust/library",
            spec.rust_src.version
        ),
        "bindgen" => format!(
            "install bindgen {} on PATH, e.g. cargo install --locked bindgen-cli --version {} --root /usr/local",
            spec.bindgen.version, spec.bindgen.version
        ),
        "libclang (via bindgen)" => format!(
            "bindgen loads libclang from LIBCLANG_PATH={}: install libclang {} there (e.g. libclang1-{llvm_major}), \
             or change [llvm] lib and version in {file}",
            spec.llvm.lib, spec.llvm.version
        ),
        "clang" | "ld.lld" | "llvm (llvm-ar)" => format!(
            "install clang-{llvm_major}, lld-{llvm_major} and llvm-{llvm_major} {} (your distribution's packages) so that \
             {} holds clang, ld.lld and llvm-ar, or change [llvm] bin and version in {file}",
            spec.llvm.version, spec.llvm.bin
        ),
        tool if tool.starts_with("qemu-system-") => {
            let package = ARCHES
                .iter()
                .filter_map(|arch| arch.qemu())
                .find(|qemu| qemu.binary == tool)
                .map_or("QEMU", |qemu| qemu.package);
            format!(
                "install {package} {} on the host (or list the arches it serves under [unsupported-arches] in {file})",
                spec.qemu.version
            )
        }
        tool if tool.starts_with("busybox") => {
            let debian_arch = tool.trim_start_matches("busybox (").trim_end_matches(')');
            let path = check.detail.trim_end_matches(" is missing");
            format!(
                "put a static busybox {} for {debian_arch} at {path} (usr/bin/busybox of Debian's busybox-static \
                 package), or list the arch under [unsupported-arches] in {file}",
                spec.busybox.version
            )
        }
        _ => String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;
    use crate::process::Cmd;

    /// A repository with one toolchain file, and a directory of fake tools.
    pub(crate) struct Fixture {
        pub(crate) dir: PathBuf,
    }

    impl Fixture {
        pub(crate) fn new(name: &str, toolchain_file: &str) -> Fixture {
            let dir = std::env::temp_dir().join(format!("kforge-host-verify-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            fs_err::create_dir_all(dir.join("repo/toolchains")).unwrap();
            fs_err::create_dir_all(dir.join("bin")).unwrap();
            fs_err::write(dir.join("repo/toolchains/t.toml"), toolchain_file).unwrap();
            Fixture { dir }
        }

        pub(crate) fn tool(&self, name: &str, script: &str) {
            let path = self.dir.join("bin").join(name);
            fs_err::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        pub(crate) fn toolchain(&self) -> Toolchain {
            Toolchain::load(&self.dir.join("repo"), "t").unwrap()
        }

        /// Runs probes with only the fake tools and the shell helpers the
        /// probes use on PATH (whatever else the machine has installed).
        pub(crate) fn probe(&self) -> impl FnMut(&str) -> Result<(bool, String)> + '_ {
            let utils = self.dir.join("utils");
            fs_err::create_dir_all(&utils).unwrap();
            for helper in ["cat", "head", "grep", "cut"] {
                let found = crate::process::which(helper).unwrap();
                let _ = std::os::unix::fs::symlink(found, utils.join(helper));
            }
            let path = format!("{}:{}", self.dir.join("bin").display(), utils.display());
            let header = self.dir.join("libclang.h").display().to_string();
            move |script: &str| {
                let script = format!("export PATH={path}; {}", script.replace("/tmp/kforge-libclang.h", &header));
                let output = Cmd::new("sh").args(["-c", &script]).output()?;
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                Ok((output.status.success(), text))
            }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Every arch but x86_64 is declared unsupported, so the report stays short.
    pub(crate) fn file(provider_lines: &str) -> String {
        let mut unsupported = String::new();
        for arch in ARCHES.iter().filter(|arch| arch.name != "x86_64") {
            unsupported.push_str(&format!("{} = \"not in this test\"\n", arch.name));
        }
        format!(
            "description = \"test\"\n{provider_lines}\n\
             [rustc]\nversion = \"1.97.1\"\n[rust-src]\nversion = \"1.97.1\"\n[bindgen]\nversion = \"0.72.1\"\n\
             [llvm]\nversion = \"22.1.8\"\nbin = \"/usr/lib/llvm-22/bin\"\nlib = \"/usr/lib/llvm-22/lib\"\n\
             [qemu]\nversion = \"11.1.3\"\n[busybox]\nversion = \"1.38.0\"\n[unsupported-arches]\n{unsupported}"
        )
    }

    pub(crate) fn lines(checks: &[Check]) -> Vec<String> {
        let report =
            Report { toolchain: "t".into(), key: "k".into(), root: "/".into(), ok: false, checks: checks.to_vec() };
        report.mismatches()
    }

    #[test]
    fn host_report_names_every_missing_or_mismatched_tool_with_what_to_do() {
        let fixture = Fixture::new("host", &file("provider = \"host\""));
        let sysroot = fixture.dir.join("sysroot");
        fs_err::create_dir_all(sysroot.join("lib/rustlib/src/rust/library/core/src")).unwrap();
        fs_err::write(sysroot.join("lib/rustlib/src/rust/library/core/src/lib.rs"), "").unwrap();
        fs_err::create_dir_all(sysroot.join("lib/rustlib/src/rust/src")).unwrap();
        fs_err::write(sysroot.join("lib/rustlib/src/rust/src/version"), "1.97.0\n").unwrap();
        fixture.tool(
            "rustc",
            &format!(
                "case \"$1\" in --print) echo {};; *) echo 'rustc 1.97.1 (8bab26f4f 2026-07-14)';; esac",
                sysroot.display()
            ),
        );
        fixture.tool(
            "bindgen",
            "if [ \"$1\" = --version ]; then echo 'bindgen 0.72.1'; else \
             echo \"$1:1:9: warning: clang version 22.1.8 (3) [-W#pragma-messages]\" >&2; fi",
        );
        fixture.tool("clang", "echo 'Debian clang version 21.1.8 (1)'");
        fixture.tool("llvm-ar", "echo 'Debian LLVM version 22.1.8'");
        fixture.tool("qemu-system-x86_64", "echo 'QEMU emulator version 11.1.3 (Debian 1:11.1.3+ds-1)'");
        let toolchain = fixture.toolchain();
        let checks = collect(&toolchain, None, &mut fixture.probe(), &|_, _| None).unwrap();
        let failed: Vec<&str> = checks.iter().filter(|check| !check.ok).map(|check| check.tool.as_str()).collect();
        assert_eq!(failed, ["rust-src", "clang", "ld.lld", "busybox (amd64)"], "{checks:#?}");
        let text = lines(&checks).join("\n");
        let busybox = toolchain.busybox(Arch::host().unwrap());
        let expected = format!(
            "rust-src: pinned 1.97.1, found 1.97.0 (rust-src 1.97.0 at {sysroot}/lib/rustlib/src/rust)\n    \
             to fix: install the rust-src of rustc 1.97.1 (your distribution's rust-src package); kforge reads $(rustc --print sysroot)/lib/rustlib/src/rust/library\n\
             clang: pinned 22.1.8, found 21.1.8 (Debian clang version 21.1.8 (1))\n    \
             to fix: install clang-22, lld-22 and llvm-22 22.1.8 (your distribution's packages) so that /usr/lib/llvm-22/bin holds clang, ld.lld and llvm-ar, or change [llvm] bin and version in {file}\n\
             ld.lld: pinned 22.1.8, found missing ({ld_lld})\n    \
             to fix: install clang-22, lld-22 and llvm-22 22.1.8 (your distribution's packages) so that /usr/lib/llvm-22/bin holds clang, ld.lld and llvm-ar, or change [llvm] bin and version in {file}\n\
             busybox (amd64): pinned 1.38.0, found missing ({busybox} is missing)\n    \
             to fix: put a static busybox 1.38.0 for amd64 at {busybox} (usr/bin/busybox of Debian's busybox-static package), or list the arch under [unsupported-arches] in {file}",
            sysroot = sysroot.display(),
            file = toolchain.spec.path.display(),
            ld_lld = checks.iter().find(|check| check.tool == "ld.lld").unwrap().detail,
            busybox = busybox.display(),
        );
        if Arch::host().unwrap().name == "x86_64" {
            assert_eq!(text, expected);
        }
        assert!(checks.iter().find(|check| check.tool == "ld.lld").unwrap().detail.contains("not found"));
    }
}
