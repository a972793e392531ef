//! linux-librust for another architecture: the kernel build's own rustc commands for its host-side crates (proc_macro2, quote, syn, then each proc macro), read from their Kbuild `.cmd` files and run again for the target machine's user space.
//!
//! The proc-macro libraries in `rust/` (`libmacros.so`...) are loaded by the
//! rustc that builds a module, so they must be objects for the machine that
//! runs that rustc. A cross build of Debian's arm64 kernel makes them for
//! the build machine; here each command is repeated with `--target
//! <arch.rust_user_target>` and the kernel's cross GCC as linker, against the
//! arm64 std the toolchain pins in `[extras]`, and stripped with the cross
//! binutils. Everything else in the package (the `.rmeta` files, the target
//! spec) is already for the target.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::arch::Arch;
use crate::error;
use crate::kernel::build::KernelBuild;
use crate::toolchain::Toolchain;

/// Where a toolchain root keeps rustc's std for `target`.
fn target_std(toolchain: &Toolchain, target: &str) -> PathBuf {
    toolchain.root.join("usr/lib/rustlib").join(target).join("lib")
}

/// Why the proc macros cannot be built for `arch` with `toolchain`, if they cannot.
pub fn missing_std(toolchain: &Toolchain, arch: &Arch) -> Option<String> {
    let std = target_std(toolchain, arch.rust_user_target);
    (!std.is_dir()).then(|| {
        format!(
            "toolchain {} has no rustc std for {} ({} is missing): add libstd-rust-dev:{}=<rustc's version> to [extras] in toolchains/{}.toml",
            toolchain.id(),
            arch.rust_user_target,
            std.display(),
            arch.debian_arch,
            toolchain.id()
        )
    })
}

/// The command Kbuild ran for `rust/<name>` (`savedcmd_rust/<name> := ...` in `rust/.<name>.cmd`).
pub fn saved_command(build_dir: &Path, name: &str) -> Result<String> {
    let path = build_dir.join("rust").join(format!(".{name}.cmd"));
    let text = fs_err::read_to_string(&path)?;
    let prefix = format!("savedcmd_rust/{name} :=");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|command| command.trim().to_string())
        .ok_or_else(|| error::user(format!("{} has no `{prefix}` line", path.display())))
}

/// The same command for `target`, linked with `linker`, writing into `/out`
/// and run there (the kernel's commands write to `rust/` of the build
/// directory, which the cross build mounts read-only at `/build`).
pub fn retarget(command: &str, target: &str, linker: &str) -> Result<String> {
    // Kbuild stores the command for make: `$$` is a `$` and `$(pound)` a `#` to the shell.
    let command = command.replace("$$", "$").replace("$(pound)", "#");
    let Some(rest) = command.strip_prefix("rustc ") else {
        return Err(error::user(format!("a host Rust command does not start with rustc: {command}")));
    };
    let mut words: Vec<String> = Vec::new();
    for word in rest.split(' ') {
        let word = if word.starts_with("-Clinker=") {
            format!("-Clinker={linker}")
        } else if word == "-L./rust" {
            "-L/out".to_string()
        } else if word == "./rust" && words.last().is_some_and(|last| last == "--out-dir") {
            "/out".to_string()
        } else if let Some(file) = word.strip_prefix("@./") {
            // Runs in /out (rustc makes its temporary directories in the working directory).
            format!("@/build/{file}")
        } else {
            word.replace("--emit=dep-info=rust/", "--emit=dep-info=/out/")
                .replace("--emit=link=rust/", "--emit=link=/out/")
        };
        words.push(word);
    }
    let retargeted = format!("rustc --target {target} {}", words.join(" "));
    if retargeted.contains("=rust/") || retargeted.contains("./rust") {
        return Err(error::user(format!(
            "a host Rust command still writes into the build directory after retargeting (has Kbuild's format changed?): {command}"
        )));
    }
    Ok(retargeted)
}

/// The host-side crates of `rust/` in build order: the rlibs (fewest
/// `--extern`s first: proc_macro2, quote, syn), then the proc macros.
fn host_crates(build_dir: &Path) -> Result<Vec<(String, String)>> {
    let mut rlibs = Vec::new();
    let mut macros = Vec::new();
    for entry in fs_err::read_dir(build_dir.join("rust"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("lib") && (name.ends_with(".rlib") || name.ends_with(".so")) {
            let command = saved_command(build_dir, &name)?;
            if name.ends_with(".rlib") { rlibs.push((name, command)) } else { macros.push((name, command)) }
        }
    }
    rlibs.sort_by_key(|(name, command)| (command.matches("--extern ").count(), name.clone()));
    macros.sort();
    Ok(rlibs.into_iter().chain(macros).collect())
}

/// Builds the proc-macro libraries of `build` for `arch` into `out` and
/// returns the stripped ones (`out/stripped/*.so`).
pub fn proc_macros(
    toolchain: &Toolchain,
    source_dir: &Path,
    build: &KernelBuild,
    arch: &Arch,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    if let Some(reason) = missing_std(toolchain, arch) {
        return Err(error::user(reason));
    }
    let var = |key: &str| {
        build.make_vars.iter().find_map(|var| var.strip_prefix(&format!("{key}="))).map(str::to_string).ok_or_else(
            || error::user(format!("the kernel build in {} records no {key} (make-vars)", build.dir.display())),
        )
    };
    let (linker, cross) = (var("CC")?, var("CROSS_COMPILE")?);
    crate::cache::remove_dir_if_exists(out)?;
    fs_err::create_dir_all(out.join("stripped"))?;
    let sandbox = toolchain.sandbox()?;
    let mut jail = sandbox.jail();
    jail.ro(source_dir, "/src");
    jail.ro(&build.dir, "/build");
    jail.rw(out, "/out");
    let jail = jail.cwd("/out").env("RUSTC_BOOTSTRAP", "1");
    let mut stripped = Vec::new();
    for (name, command) in host_crates(&build.dir)? {
        crate::progress::detail(format!("rustc --target {} for rust/{name}", arch.rust_user_target));
        let command = retarget(&command, arch.rust_user_target, &linker)?;
        jail.command(&["sh", "-c", &command])?
            .run()
            .with_context(|| format!("cannot build rust/{name} for {}", arch.rust_user_target))?;
        if name.ends_with(".so") {
            let argv = [
                format!("{cross}strip"),
                "--strip-unneeded".into(),
                "-o".into(),
                format!("/out/stripped/{name}"),
                format!("/out/{name}"),
            ];
            jail.command(&argv)?.run().with_context(|| format!("cannot strip {name} for {}", arch.name))?;
            stripped.push(out.join("stripped").join(&name));
        }
    }
    if stripped.is_empty() {
        return Err(error::user(format!("{} has no proc-macro libraries (rust/lib*.so)", build.dir.display())));
    }
    Ok(stripped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kbuild_proc_macro_command_is_retargeted_to_write_into_out() {
        let command = "rustc --edition=2021 -Zbinary_dep_depinfo=y --extern proc_macro2 --extern quote --extern syn \
                       -Clinker-flavor=gcc -Clinker=gcc -Clink-args=' ' --emit=dep-info=rust/.libmacros.so.d \
                       --emit=link=rust/libmacros.so --extern proc_macro --crate-type proc-macro -L./rust \
                       --crate-name macros @./include/generated/rustc_cfg /src/rust/macros/lib.rs";
        let retargeted = retarget(command, "aarch64-unknown-linux-gnu", "aarch64-linux-gnu-gcc-16").unwrap();
        assert_eq!(
            retargeted,
            "rustc --target aarch64-unknown-linux-gnu --edition=2021 -Zbinary_dep_depinfo=y --extern proc_macro2 \
             --extern quote --extern syn -Clinker-flavor=gcc -Clinker=aarch64-linux-gnu-gcc-16 -Clink-args=' ' \
             --emit=dep-info=/out/.libmacros.so.d --emit=link=/out/libmacros.so --extern proc_macro --crate-type \
             proc-macro -L/out --crate-name macros @/build/include/generated/rustc_cfg /src/rust/macros/lib.rs"
        );
        let rlib = "rustc --cfg='feature=\"proc-macro\"' --emit=link=rust/libquote.rlib --crate-type rlib -O --out-dir ./rust -L./rust --crate-name quote /src/rust/quote/lib.rs";
        assert!(retarget(rlib, "t", "cc").unwrap().contains("--out-dir /out -L/out"));
        assert!(retarget("clippy-driver x", "t", "cc").is_err());
        let unknown = "rustc --emit=link=rust/a --out-dir=./rust x";
        assert!(error::render(&retarget(unknown, "t", "cc").unwrap_err()).contains("has Kbuild's format changed"));
    }

    #[test]
    fn host_crates_come_in_dependency_order_then_the_macros() {
        let dir = tempfile::tempdir().unwrap();
        let rust = dir.path().join("rust");
        fs_err::create_dir_all(&rust).unwrap();
        for (name, externs) in [
            ("libsyn.rlib", "--extern proc_macro2 --extern quote"),
            ("libquote.rlib", "--extern proc_macro2"),
            ("libproc_macro2.rlib", ""),
            ("libmacros.so", "--extern syn"),
        ] {
            fs_err::write(rust.join(name), "").unwrap();
            fs_err::write(
                rust.join(format!(".{name}.cmd")),
                format!("savedcmd_rust/{name} := rustc {externs} x\n\nsource_rust/{name} := x\n"),
            )
            .unwrap();
        }
        fs_err::write(rust.join("libkernel.rmeta"), "").unwrap();
        let names: Vec<String> = host_crates(dir.path()).unwrap().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["libproc_macro2.rlib", "libquote.rlib", "libsyn.rlib", "libmacros.so"]);
    }
}
