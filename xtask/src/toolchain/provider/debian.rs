//! The `debian` provider: a root built by mmdebstrap from exact package pins (`install.rs` builds it), verified inside the root.

use std::path::PathBuf;

use anyhow::Result;

use super::ToolchainProvider;
use crate::arch::{ARCHES, Arch};
use crate::process::Cmd;
use crate::toolchain::Toolchain;
use crate::toolchain::check::{Check, Report, probe, version_check};
use crate::toolchain::install::{self, InstallOptions};

/// A Debian root built by mmdebstrap.
pub struct Debian;

impl ToolchainProvider for Debian {
    fn plan(&self, toolchain: &Toolchain, options: &InstallOptions) -> Result<Vec<Cmd>> {
        Ok(vec![install::mmdebstrap_command(toolchain, &toolchain.root, options)?])
    }

    fn install(&self, toolchain: &Toolchain, options: &InstallOptions) -> Result<bool> {
        install::install_root(toolchain, options)
    }

    fn is_installed(&self, toolchain: &Toolchain) -> bool {
        toolchain.root.join("usr/bin").is_dir()
    }

    fn sysroot(&self, _toolchain: &Toolchain) -> Result<Option<PathBuf>> {
        Ok(None)
    }

    fn describe(&self, toolchain: &Toolchain) -> String {
        toolchain.root.display().to_string()
    }

    fn verify(&self, toolchain: &Toolchain) -> Result<Report> {
        verify_root(toolchain)
    }
}

/// Verifies every pin inside the installed root.
fn verify_root(toolchain: &Toolchain) -> Result<Report> {
    let sandbox = toolchain.sandbox()?;
    let spec = &toolchain.spec;
    let mut checks = Vec::new();

    checks.push(version_check("rustc", &spec.rustc.version, probe(&sandbox, "rustc --version")?, "rustc "));

    let rust_src = probe(
        &sandbox,
        "src=$(rustc --print sysroot)/lib/rustlib/src/rust; \
         if [ -f \"$src/library/core/src/lib.rs\" ]; then echo \"rust-src $(cat \"$src/src/version\" 2>/dev/null || echo unknown) at $src\"; \
         else echo \"library/core is missing under $src\"; fi",
    )?;
    checks.push(version_check("rust-src", &spec.rust_src.version, rust_src, "rust-src "));

    checks.push(version_check("bindgen", &spec.bindgen.version, probe(&sandbox, "bindgen --version")?, "bindgen "));

    // The kernel's own trick (scripts/rust_is_available.sh): ask bindgen's
    // libclang to print its version through a #pragma message.
    let libclang = probe(
        &sandbox,
        "printf '#pragma message(\"clang version \" __clang_version__)\\n' > /tmp/kforge-libclang.h; \
         bindgen /tmp/kforge-libclang.h 2>&1 >/dev/null | grep -F 'clang version' || echo 'bindgen could not load libclang'",
    )?;
    checks.push(version_check("libclang (via bindgen)", &spec.llvm.version, libclang, "clang version "));

    checks.push(version_check("clang", &spec.llvm.version, probe(&sandbox, "clang --version")?, "clang version "));
    checks.push(version_check("ld.lld", &spec.llvm.version, probe(&sandbox, "ld.lld --version")?, "LLD "));
    if let Some(gcc) = &spec.gcc {
        // `x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0`: the upstream version follows the packaging.
        for command in &gcc.commands {
            checks.push(version_check(command, &gcc.version, probe(&sandbox, &format!("{command} --version"))?, ") "));
        }
    }

    let mut qemu_binaries: Vec<(&str, &str)> = Vec::new();
    for qemu in ARCHES.iter().filter_map(|arch| arch.qemu()) {
        if !qemu_binaries.iter().any(|(binary, _)| *binary == qemu.binary) {
            qemu_binaries.push((qemu.binary, qemu.package));
        }
    }
    for (binary, package) in qemu_binaries {
        let output = probe(
            &sandbox,
            &format!("{binary} --version || echo '{binary} is missing: install the {package} package'"),
        )?;
        checks.push(version_check(binary, &spec.qemu.version, output, "QEMU emulator version "));
    }

    let host_busybox = toolchain.busybox(Arch::host()?);
    let busybox_output = if host_busybox.is_file() {
        probe(&sandbox, &format!("/{} | head -n 1", host_busybox.strip_prefix(&toolchain.root)?.display()))?
    } else {
        (false, format!("{} is missing", host_busybox.display()))
    };
    checks.push(version_check("busybox", &spec.busybox.version, busybox_output, "BusyBox v"));
    for arch in ARCHES.iter().filter(|arch| !spec.unsupported_arches.contains_key(arch.name)) {
        let path = toolchain.busybox(arch);
        let present = path.is_file();
        checks.push(Check {
            tool: format!("busybox ({})", arch.debian_arch),
            pinned: spec.busybox.version.clone(),
            found: if present { spec.busybox.version.clone() } else { "missing".to_string() },
            ok: present,
            detail: path.display().to_string(),
            hint: String::new(),
        });
    }

    let ok = checks.iter().all(|check| check.ok);
    Ok(Report {
        toolchain: toolchain.id().to_string(),
        key: toolchain.key.clone(),
        root: toolchain.root.display().to_string(),
        ok,
        checks,
    })
}
