//! Our out-of-tree Rust drivers: discovery through cargo metadata, their `[package.metadata.kforge]` tables, and Kbuild builds per cell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::jobserver::Parallel;
use crate::kernel::build::{KernelBuild, process_failure};
use crate::kernel::source::SourceTree;
use crate::process::{Cmd, Control, Outcome};
use crate::sandbox::{Jail, Sandbox};
use crate::stage::{Category, StageContext};
use crate::toolchain::Toolchain;
use crate::{cache, error, project, version};

/// The directory under `drivers/` that every driver shares: `compat.rs` (the
/// kernel API differences between releases, compiled into each driver) and
/// `kforge.mk` (the kernel version test each Kbuild includes). Not a package.
pub const COMMON_DIR: &str = "common";

/// Where a driver build sees [`COMMON_DIR`]: next to the driver's copy at
/// `/drv`, so `../common` resolves the same in the repository and in the sandbox.
pub const COMMON_MOUNT: &str = "/common";

/// `[package.metadata.kforge]` of a driver's Cargo.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriverMeta {
    /// The out-of-tree module this package builds with its Kbuild (`<module>.ko`).
    pub module: Option<String>,
    /// Modules the kernel build itself produces (paths relative to the build
    /// directory, e.g. `samples/rust/rust_minimal.ko`); their options go in `kconfig`.
    #[serde(default)]
    pub in_tree_modules: Vec<String>,
    /// Kernel config lines the driver needs beyond the base config.
    #[serde(default)]
    pub kconfig: Vec<String>,
    /// QEMU `-device` values to attach when testing it.
    #[serde(default)]
    pub qemu_devices: Vec<String>,
    /// Whether it needs a PCI bus (arches without one skip it).
    #[serde(default)]
    pub needs_pci: bool,
    /// Parameters given to insmod for `module` in the guest.
    #[serde(default)]
    pub module_params: Vec<String>,
    /// Guest tests (paths relative to the driver), run in order.
    pub tests: Vec<String>,
    /// KUnit suites (`#[kunit_tests(name)]`) whose results belong to this
    /// package; they run when the module loads, or at boot when built in.
    #[serde(default)]
    pub kunit_suites: Vec<String>,
    /// The suite this package belongs to (`--suite NAME`); default "drivers".
    pub suite: Option<String>,
    /// C test programs (`tests/x.c`), built static with the kernel's nolibc
    /// for each arch into `tests/x` next to the tests.
    #[serde(default)]
    pub test_programs: Vec<String>,
    /// Oldest kernel release it supports ("7.2").
    pub min_kernel: Option<String>,
    /// Arches it cannot run on, with the reason.
    #[serde(default)]
    pub unsupported_arches: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    package: ManifestPackage,
}

#[derive(Debug, Deserialize)]
struct ManifestPackage {
    #[serde(default)]
    metadata: Option<ManifestMetadata>,
}

#[derive(Debug, Deserialize)]
struct ManifestMetadata {
    kforge: Option<DriverMeta>,
}

/// A discovered driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Driver {
    /// The cargo package name; test names are `<name>.<test>`.
    pub name: String,
    /// The package version (recorded in dist manifests and SBOMs).
    pub version: String,
    pub dir: PathBuf,
    pub meta: DriverMeta,
}

impl Driver {
    /// The suite it belongs to ("drivers" unless its metadata says otherwise).
    pub fn suite(&self) -> &str {
        self.meta.suite.as_deref().unwrap_or("drivers")
    }

    /// The shared `drivers/common` next to this driver, if there is one.
    pub fn common_dir(&self) -> Option<PathBuf> {
        let dir = self.dir.parent()?.join(COMMON_DIR);
        dir.is_dir().then_some(dir)
    }

    /// Guest test names (file stems), in order.
    pub fn test_names(&self) -> Vec<String> {
        self.meta.tests.iter().map(|test| test_name(test)).collect()
    }

    /// Why this driver cannot run on `arch` of kernel `kernel_version`, if it cannot.
    pub fn skip_reason(&self, arch: &Arch, kernel_version: &str) -> Option<String> {
        if let Some(reason) = self.meta.unsupported_arches.get(arch.name) {
            return Some(format!("{} does not support {}: {reason}", self.name, arch.name));
        }
        if self.meta.needs_pci && !arch.pci {
            return Some(format!("{} needs PCI, which the {} machine does not have", self.name, arch.name));
        }
        for device in &self.meta.qemu_devices {
            let model = device.split(',').next().unwrap_or(device);
            if !arch.devices.contains(&model) {
                return Some(format!(
                    "{} needs the QEMU device `{model}`, which the {} emulator does not provide",
                    self.name, arch.name
                ));
            }
        }
        if let Some(minimum) = &self.meta.min_kernel
            && version::compare(kernel_version, minimum).is_lt()
        {
            return Some(format!("{} needs kernel {minimum} or newer (this is {kernel_version})", self.name));
        }
        None
    }
}

/// The test name of a test file: `tests/roundtrip.sh` -> `roundtrip`.
pub fn test_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).to_string()
}

/// Every workspace package with a `[package.metadata.kforge]` table, sorted by name.
pub fn discover(repo: &Path) -> Result<Vec<Driver>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let json = Cmd::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(repo.join("Cargo.toml"))
        .run()
        .context("failed to read the workspace with `cargo metadata`")?;
    let metadata = cargo_metadata::MetadataCommand::parse(&json).context("cannot parse `cargo metadata` output")?;
    let mut drivers = Vec::new();
    for package in metadata.packages {
        if package.metadata.get("kforge").is_none() {
            continue;
        }
        let manifest_path: PathBuf = package.manifest_path.clone().into();
        // Parse the table from the file itself so errors carry line numbers.
        let manifest: Manifest = project::load_toml(&manifest_path)?;
        let Some(meta) = manifest.package.metadata.and_then(|metadata| metadata.kforge) else { continue };
        let dir = manifest_path.parent().map(Path::to_path_buf).unwrap_or_default();
        crate::names::check("driver", &package.name, &manifest_path)?;
        if let Some(module) = &meta.module {
            crate::names::check("module", module, &manifest_path)?;
        }
        for test in meta.tests.iter().chain(&meta.test_programs) {
            if !dir.join(test).is_file() {
                return Err(error::user(format!("{}: test `{test}` does not exist", manifest_path.display())));
            }
        }
        if meta.module.is_some() && !dir.join("Kbuild").is_file() && !dir.join("Makefile").is_file() {
            return Err(error::user(format!("driver {} has no Kbuild file in {}", package.name, dir.display())));
        }
        drivers.push(Driver { name: package.name.to_string(), version: package.version.to_string(), dir, meta });
    }
    drivers.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(drivers)
}

/// Picks drivers by name (`--driver a,b` or the matrix list).
pub fn select(all: &[Driver], names: &[String]) -> Result<Vec<Driver>> {
    names
        .iter()
        .map(|name| {
            all.iter().find(|driver| &driver.name == name).cloned().ok_or_else(|| {
                error::unknown("driver", name, &all.iter().map(|driver| driver.name.clone()).collect::<Vec<_>>())
            })
        })
        .collect()
}

/// A module to load in the guest: its name, its .ko and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    pub name: String,
    pub ko: PathBuf,
    pub params: Vec<String>,
}

/// A driver package built for one cell.
#[derive(Debug, Clone)]
pub struct BuiltDriver {
    pub driver: Driver,
    /// Loaded in this order (in-tree ones first), unloaded in reverse.
    pub modules: Vec<ModuleFile>,
    /// The built copy's `tests/` directory: scripts, helpers and compiled programs.
    pub tests_dir: PathBuf,
}

/// Builds one driver package against a built kernel, in `out_dir/<name>` (a
/// copy of its sources): its own module, its test programs, and the in-tree
/// modules it uses (which must exist in the kernel build).
pub fn build(
    driver: &Driver,
    arch: &Arch,
    toolchain: &Toolchain,
    source: &SourceTree,
    kernel: &KernelBuild,
    out_dir: &Path,
    parallel: Parallel<'_>,
) -> Result<BuiltDriver> {
    let work = out_dir.join(&driver.name);
    cache::remove_dir_if_exists(&work)?;
    copy_tree(&driver.dir, &work)?;
    let failed = |message: String| format!("driver {} failed to build for {}: {message}", driver.name, arch.name);
    let mut modules = Vec::new();
    for relative in &driver.meta.in_tree_modules {
        let ko = kernel.dir.join(relative);
        if !ko.is_file() {
            return Err(error::user(format!(
                "the kernel build has no {relative}; is its option set to =m in the driver's kconfig?"
            )))
            .stage(Category::Build, failed(format!("in-tree module {relative} is missing")));
        }
        modules.push(ModuleFile { name: module_name(relative), ko, params: Vec::new() });
    }
    let sandbox = toolchain.sandbox().stage(Category::Toolchain, "toolchain unavailable")?;
    let tree = KernelTree { source: &source.dir, build: &kernel.dir, make_vars: &kernel.make_vars };
    if driver.meta.module.is_some() {
        modules.push(compile_module(driver, arch, &sandbox, &tree, &work, out_dir, parallel)?);
    }
    for program in &driver.meta.test_programs {
        let output = format!("/drv/{}", program.strip_suffix(".c").unwrap_or(program));
        let cmd = tree.jail(&sandbox, driver, &work).command(&test_program_command(
            arch,
            &format!("/drv/{program}"),
            &output,
        ))?;
        cmd.run().stage(Category::Build, failed(format!("test program {program} did not compile")))?;
    }
    Ok(BuiltDriver { driver: driver.clone(), modules, tests_dir: work.join("tests") })
}

/// What an external module build reads: a kernel source directory (mounted at
/// `/src`) and its build directory (at `/build`); a kforge kernel build, or
/// the `src/` and `build/` of an unpacked SDK.
#[derive(Debug, Clone, Copy)]
pub struct KernelTree<'a> {
    pub source: &'a Path,
    pub build: &'a Path,
    /// Make variables replacing `LLVM=1` for a distro's kernel (`KernelBuild::make_vars`); empty otherwise.
    pub make_vars: &'a [String],
}

impl KernelTree<'_> {
    /// The sandbox view of a driver build: the tree read-only, the driver's copy
    /// writable at `/drv`, and the shared `drivers/common` read-only at
    /// [`COMMON_MOUNT`] (its Kbuild includes `kforge.mk` from there, its crate
    /// root `compat.rs`).
    fn jail<'s>(&self, sandbox: &'s Sandbox, driver: &Driver, work: &Path) -> Jail<'s> {
        let mut jail = sandbox.jail();
        jail.ro(self.source, "/src");
        jail.ro(self.build, "/build");
        if let Some(common) = driver.common_dir() {
            jail.ro(&common, COMMON_MOUNT);
        }
        jail.rw(work, "/drv");
        jail.cwd("/drv")
    }
}

/// Builds only a driver's own module (no in-tree modules, no test programs)
/// against `tree`, in `out_dir/<name>` (a copy of its sources).
pub fn build_module(
    driver: &Driver,
    arch: &Arch,
    toolchain: &Toolchain,
    tree: &KernelTree<'_>,
    out_dir: &Path,
    parallel: Parallel<'_>,
) -> Result<ModuleFile> {
    let work = out_dir.join(&driver.name);
    cache::remove_dir_if_exists(&work)?;
    copy_tree(&driver.dir, &work)?;
    let sandbox = toolchain.sandbox().stage(Category::Toolchain, "toolchain unavailable")?;
    compile_module(driver, arch, &sandbox, tree, &work, out_dir, parallel)
}

/// `make -C /build ARCH=... LLVM=1 M=/drv modules` in the driver's copy `work`; the log goes to `out_dir/<name>.build.log`.
fn compile_module(
    driver: &Driver,
    arch: &Arch,
    sandbox: &Sandbox,
    tree: &KernelTree<'_>,
    work: &Path,
    out_dir: &Path,
    parallel: Parallel<'_>,
) -> Result<ModuleFile> {
    let failed = |message: &str| format!("driver {} failed to build for {}: {message}", driver.name, arch.name);
    let Some(module) = &driver.meta.module else {
        return Err(error::user(format!("driver {} has no `module` to build (see its Cargo.toml)", driver.name)));
    };
    let log = out_dir.join(format!("{}.build.log", driver.name));
    let cmd =
        parallel.attach(tree.jail(sandbox, driver, work)).command(&module_command(arch, tree.make_vars, parallel))?;
    let outcome = cmd.stream(&log, None, &mut |_| Control::Continue)?;
    let ko = work.join(format!("{module}.ko"));
    if !matches!(outcome, Outcome::Exited(status) if status.success()) {
        return Err(process_failure(&cmd, outcome, &log)).stage(Category::Build, failed("the module did not compile"));
    }
    if !ko.is_file() {
        return Err(anyhow::anyhow!("the build produced no {module}.ko (is `module` in Cargo.toml right?)"))
            .stage(Category::Build, failed("no module"));
    }
    Ok(ModuleFile { name: module.clone(), ko, params: driver.meta.module_params.clone() })
}

/// The Kbuild command for an external module in `/drv` against the kernel build at `/build`.
pub fn module_command(arch: &Arch, make_vars: &[String], parallel: Parallel<'_>) -> Vec<String> {
    let mut argv = crate::kernel::build::make_command_with(arch, "/build", "/build", make_vars);
    argv.retain(|word| !word.starts_with("O="));
    argv.extend(["M=/drv".to_string(), "modules".to_string()]);
    argv.extend(parallel.make_args());
    argv
}

/// `samples/rust/rust_minimal.ko` -> `rust_minimal`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".ko").unwrap_or(file).to_string()
}

/// clang for a static nolibc test program: no libc, the kernel's UAPI headers
/// from the build directory, any arch (`-fno-builtin` keeps printf from
/// becoming puts, which nolibc only has inline).
pub fn test_program_command(arch: &Arch, source: &str, output: &str) -> Vec<String> {
    let mut argv = vec!["clang".to_string(), format!("--target={}", arch.llvm_triple)];
    argv.extend(arch.user_cflags.iter().map(|flag| flag.to_string()));
    argv.extend(
        [
            "-fuse-ld=lld",
            "-nostdlib",
            "-nostdinc",
            "-static",
            "-fno-builtin",
            "-Os",
            "-Wall",
            "-Wextra",
            "-isystem",
            "/src/tools/include/nolibc",
            "-isystem",
            "/build/usr/include",
            "-include",
            "nolibc.h",
            "-o",
            output,
            source,
        ]
        .map(str::to_string),
    );
    argv
}

/// Copies a driver's directory (skipping build output) for an isolated build.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs_err::create_dir_all(to)?;
    for entry in fs_err::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text == "target"
            || name_text.ends_with(".o")
            || name_text.ends_with(".ko")
            || name_text.starts_with('.')
        {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            fs_err::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(meta: DriverMeta) -> Driver {
        Driver { name: "edu".into(), version: "0.1.0".into(), dir: PathBuf::new(), meta }
    }

    fn meta() -> DriverMeta {
        DriverMeta {
            module: Some("kforge_edu".into()),
            in_tree_modules: vec![],
            kconfig: vec![],
            qemu_devices: vec!["edu".into()],
            needs_pci: true,
            module_params: vec![],
            tests: vec!["tests/factorial.sh".into()],
            test_programs: vec![],
            kunit_suites: vec![],
            suite: None,
            min_kernel: Some("7.2".into()),
            unsupported_arches: BTreeMap::from([("arm64".to_string(), "example reason".to_string())]),
        }
    }

    #[test]
    fn skip_reasons_name_the_constraint() {
        let x86 = Arch::find("x86_64").unwrap();
        let arm = Arch::find("arm64").unwrap();
        let edu = driver(meta());
        assert_eq!(edu.skip_reason(x86, "7.2.13"), None);
        assert_eq!(edu.skip_reason(arm, "7.2.13").unwrap(), "edu does not support arm64: example reason");
        assert_eq!(edu.skip_reason(x86, "6.12.107").unwrap(), "edu needs kernel 7.2 or newer (this is 6.12.107)");
        assert_eq!(edu.test_names(), ["factorial"]);
    }

    #[test]
    fn a_module_is_built_by_kbuild_against_the_build_directory() {
        let arm = Arch::find("arm64").unwrap();
        assert_eq!(
            module_command(arm, &[], Parallel::Jobs(2)).join(" "),
            "make -C /build ARCH=arm64 LLVM=1 M=/drv modules -j2"
        );
    }

    #[test]
    fn a_driver_build_sees_drivers_common_next_to_its_copy() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let fifo = discover(&repo).unwrap().into_iter().find(|driver| driver.name == "fifo").unwrap();
        let common = fifo.common_dir().expect("drivers/common exists");
        assert!(common.join("compat.rs").is_file() && common.join("kforge.mk").is_file());
        let root = std::env::temp_dir().join(format!("kforge-driver-jail-{}", std::process::id()));
        fs_err::create_dir_all(root.join("usr")).unwrap();
        let sandbox =
            Sandbox { backend: crate::sandbox::Backend::Bwrap, root: root.clone(), path_prefix: vec![], env: vec![] };
        let tree = KernelTree { source: Path::new("/k/src"), build: Path::new("/k/build"), make_vars: &[] };
        let text = tree.jail(&sandbox, &fifo, Path::new("/out/fifo")).command(&["true"]).unwrap().display();
        let mounts = format!("--ro-bind {} /common --bind /out/fifo /drv --chdir /drv", common.display());
        assert!(text.contains(&mounts), "{text}");
        // The Kbuild and the crate root reach it as `../common` from `/drv`.
        let kbuild = fs_err::read_to_string(fifo.dir.join("Kbuild")).unwrap();
        assert!(kbuild.contains("include $(src)/../common/kforge.mk"), "{kbuild}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn the_workspace_drivers_are_discovered() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let drivers = discover(&repo).unwrap();
        assert!(drivers.iter().any(|driver| driver.name == "fifo"), "{drivers:?}");
        let message = format!("{}", select(&drivers, &["nope".to_string()]).unwrap_err());
        assert!(message.contains("unknown driver `nope`") && message.contains("fifo"), "{message}");
    }

    #[test]
    fn bad_metadata_names_the_file_and_line() {
        let text =
            "[package]\nname = \"x\"\n\n[package.metadata.kforge]\nmodule = \"x\"\ntests = []\ncolour = \"red\"\n";
        let err = project::parse_toml::<Manifest>(Path::new("drivers/x/Cargo.toml"), text).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("malformed drivers/x/Cargo.toml:7"), "{message}");
        assert!(message.contains("colour"), "{message}");
    }
}
