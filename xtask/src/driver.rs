//! Our out-of-tree Rust drivers: discovery through cargo metadata, their `[package.metadata.kforge]` tables, and Kbuild builds per cell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::jobserver::Parallel;
use crate::kernel::build::KernelBuild;
use crate::kernel::make::process_failure;
use crate::kernel::source::SourceTree;
use crate::process::{Cmd, Control, Outcome};
use crate::sandbox::{Jail, Sandbox};
use crate::stage::{Category, StageContext};
use crate::toolchain::Toolchain;
use crate::{cache, error, paths, progress, project, version};

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
    /// Guest tests (paths relative to the driver), run in order, as the
    /// unprivileged user `kforge-test` unless listed in `root-tests`.
    pub tests: Vec<String>,
    /// The tests that need root (insmod/rmmod, binding devices in sysfs):
    /// a test run as root could reach the verdict channel, so each one is
    /// named here and its result says it ran as root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_tests: Vec<String>,
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
    /// The Maintainer of its Debian packages (`Full Name <address>`); `cargo
    /// xtask package --maintainer` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
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
        check_tests(&meta, &dir, &manifest_path)?;
        if meta.module.is_some() && !dir.join("Kbuild").is_file() && !dir.join("Makefile").is_file() {
            return Err(error::user(format!("driver {} has no Kbuild file in {}", package.name, dir.display())));
        }
        drivers.push(Driver { name: package.name.to_string(), version: package.version.to_string(), dir, meta });
    }
    drivers.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(drivers)
}

/// Every test and test program exists, and `root-tests` lists only tests.
fn check_tests(meta: &DriverMeta, dir: &Path, manifest_path: &Path) -> Result<()> {
    for test in meta.tests.iter().chain(&meta.test_programs) {
        if !dir.join(test).is_file() {
            return Err(error::user(format!("{}: test `{test}` does not exist", manifest_path.display())));
        }
    }
    if let Some(stray) = meta.root_tests.iter().find(|test| !meta.tests.contains(test)) {
        return Err(error::user(format!(
            "{}: root-tests names `{stray}`, which is not in `tests`",
            manifest_path.display()
        )));
    }
    Ok(())
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
    /// Loaded with modprobe from the guest's `/lib/modules` (a module
    /// installed from packages, `installed::substitute`), not with insmod of `ko`.
    pub modprobe: bool,
}

/// A driver package built for one cell.
#[derive(Debug, Clone)]
pub struct BuiltDriver {
    pub driver: Driver,
    /// Loaded in this order (in-tree ones first), unloaded in reverse.
    pub modules: Vec<ModuleFile>,
    /// The built copy's `tests/` directory: scripts, helpers and compiled programs.
    pub tests_dir: PathBuf,
    /// The cache entry of this build, where its initramfs segment is kept too.
    pub cache_entry: Option<PathBuf>,
}

/// Bump when the way a driver is built changes in a way the key cannot see
/// (the jail's mounts, the entry's layout): every cached driver build is then redone.
const BUILD_FORMAT: &str = "1";

/// Builds one driver package against a built kernel: its own module, its test
/// programs, and the in-tree modules it uses (which must exist in the kernel
/// build). The build is a cache entry keyed by everything it reads (see
/// [`build_key`]): a driver whose sources, kernel and toolchain did not change
/// is not recompiled. Either way its log is `out_dir/<name>.build.log` and
/// its module is copied to `out_dir/<name>/<module>.ko`.
pub fn build(
    driver: &Driver,
    arch: &Arch,
    toolchain: &Toolchain,
    source: &SourceTree,
    kernel: &KernelBuild,
    out_dir: &Path,
    parallel: Parallel<'_>,
) -> Result<BuiltDriver> {
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
        modules.push(ModuleFile { name: module_name(relative), ko, params: Vec::new(), modprobe: false });
    }
    let tree = KernelTree { source: &source.dir, build: &kernel.dir, make_vars: &kernel.make_vars };
    let key = build_key(driver, arch, toolchain, &tree, kernel)?;
    let entry = entry_path(driver, kernel, &key)?;
    fs_err::create_dir_all(out_dir)?;
    let log = out_dir.join(format!("{}.build.log", driver.name));
    let built_now = cache::ensure_dir(&entry, |work| {
        progress::status("Compiling", format!("driver {} for {}", driver.name, arch.name));
        copy_tree(&driver.dir, work)?;
        let sandbox = toolchain.sandbox().stage(Category::Toolchain, "toolchain unavailable")?;
        if driver.meta.module.is_some() {
            compile_module(driver, arch, &sandbox, &tree, work, &log, parallel)?;
        }
        for program in &driver.meta.test_programs {
            let output = format!("/drv/{}", program.strip_suffix(".c").unwrap_or(program));
            let command = test_program_command(arch, &format!("/drv/{program}"), &output);
            let cmd = tree.jail(&sandbox, driver, work).command(&command)?;
            cmd.run().stage(Category::Build, failed(format!("test program {program} did not compile")))?;
        }
        Ok(())
    })?;
    if built_now {
        prune_older_builds(&entry)?;
    } else {
        let reused = format!("{} for {}: up to date, nothing compiled ({})", driver.name, arch.name, entry.display());
        fs_err::write(&log, format!("kforge: {reused}\n"))?;
        progress::status("Fresh", format!("driver {reused}"));
    }
    if let Some(module) = &driver.meta.module {
        // The run's own copy, where the user finds it: `<out_dir>/<name>/<module>.ko`.
        let file = format!("{module}.ko");
        let ko = out_dir.join(&driver.name).join(&file);
        cache::remove_dir_if_exists(&out_dir.join(&driver.name))?;
        fs_err::create_dir_all(out_dir.join(&driver.name))?;
        fs_err::copy(entry.join(&file), &ko)?;
        modules.push(ModuleFile {
            name: module.clone(),
            ko,
            params: driver.meta.module_params.clone(),
            modprobe: false,
        });
    }
    Ok(BuiltDriver { driver: driver.clone(), modules, tests_dir: entry.join("tests"), cache_entry: Some(entry) })
}

/// The cache key of a driver build: the driver's files and `drivers/common`
/// (paths, modes and contents), the arch, the toolchain, the kernel build it
/// links against (its directory, `Module.symvers`, and when its image and
/// Rust metadata were last written) and the exact commands that build it.
pub fn build_key(
    driver: &Driver,
    arch: &Arch,
    toolchain: &Toolchain,
    tree: &KernelTree<'_>,
    kernel: &KernelBuild,
) -> Result<cache::KeyHasher> {
    let mut key = cache::KeyHasher::new();
    key.input("format", BUILD_FORMAT).input("driver", &driver.name).input("arch", arch.name);
    key.input("toolchain", &toolchain.build_key);
    let mut trees = vec![("driver", driver.dir.clone())];
    trees.extend(driver.common_dir().map(|common| ("common", common)));
    for (label, dir) in trees {
        for relative in source_files(&dir)? {
            let path = dir.join(&relative);
            let mode = std::os::unix::fs::PermissionsExt::mode(&fs_err::metadata(&path)?.permissions());
            key.input(label, relative.to_string_lossy().as_bytes());
            key.input("mode", format!("{:o}", mode & 0o111));
            key.input("content", fs_err::read(&path)?);
        }
    }
    key.input("kernel", kernel.dir.to_string_lossy().as_bytes());
    let symvers = kernel.dir.join("Module.symvers");
    if symvers.is_file() {
        key.input("symvers", fs_err::read(&symvers)?);
    }
    for output in [kernel.image.clone(), kernel.dir.join("rust/libkernel.rmeta")] {
        if let Ok(metadata) = std::fs::metadata(&output) {
            let modified = metadata.modified().ok().and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok());
            key.input("kernel-output", format!("{} {} {modified:?}", output.display(), metadata.len()));
        }
    }
    key.input("module-command", module_command(arch, tree.make_vars, Parallel::Jobs(1)).join(" "));
    for program in &driver.meta.test_programs {
        key.input("program-command", test_program_command(arch, program, "out").join(" "));
    }
    Ok(key)
}

/// `<cache>/drivers/<driver>-<kernel entry>-<key>`: one entry per version of a
/// driver's sources built against one kernel build.
fn entry_path(driver: &Driver, kernel: &KernelBuild, key: &cache::KeyHasher) -> Result<PathBuf> {
    let kernel_name = kernel.dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(paths::cache_dir()?.join("drivers").join(format!("{}-{kernel_name}-{}", driver.name, key.short())))
}

/// Removes the other builds of the same driver against the same kernel (an
/// edit makes a new entry; the old one will not be used again), each under
/// its entry lock. Their lock files stay: they are empty and reused.
fn prune_older_builds(entry: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (entry.parent(), entry.file_name().and_then(|name| name.to_str())) else {
        return Ok(());
    };
    let Some((prefix, _key)) = name.rsplit_once('-') else { return Ok(()) };
    for sibling in fs_err::read_dir(parent)? {
        let path = sibling?.path();
        let Some(other) = path.file_name().and_then(|name| name.to_str()) else { continue };
        let is_older_build = other != name
            && other.rsplit_once('-').is_some_and(|(other_prefix, key)| {
                other_prefix == prefix && key.len() == 16 && key.bytes().all(|byte| byte.is_ascii_hexdigit())
            });
        if is_older_build && path.is_dir() {
            let _lock = cache::lock(&path)?;
            cache::remove_dir_if_exists(&path)?;
        }
    }
    Ok(())
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
    let log = out_dir.join(format!("{}.build.log", driver.name));
    compile_module(driver, arch, &sandbox, tree, &work, &log, parallel)
}

/// `make -C /build ARCH=... LLVM=1 M=/drv modules` in the driver's copy `work`; the make output goes to `log`.
fn compile_module(
    driver: &Driver,
    arch: &Arch,
    sandbox: &Sandbox,
    tree: &KernelTree<'_>,
    work: &Path,
    log: &Path,
    parallel: Parallel<'_>,
) -> Result<ModuleFile> {
    let failed = |message: &str| format!("driver {} failed to build for {}: {message}", driver.name, arch.name);
    let Some(module) = &driver.meta.module else {
        return Err(error::user(format!("driver {} has no `module` to build (see its Cargo.toml)", driver.name)));
    };
    let cmd =
        parallel.attach(tree.jail(sandbox, driver, work)).command(&module_command(arch, tree.make_vars, parallel))?;
    let outcome = cmd.stream(log, None, &mut |_| Control::Continue)?;
    let ko = work.join(format!("{module}.ko"));
    if !matches!(outcome, Outcome::Exited(status) if status.success()) {
        return Err(process_failure(&cmd, outcome, log)).stage(Category::Build, failed("the module did not compile"));
    }
    if !ko.is_file() {
        return Err(anyhow::anyhow!("the build produced no {module}.ko (is `module` in Cargo.toml right?)"))
            .stage(Category::Build, failed("no module"));
    }
    Ok(ModuleFile { name: module.clone(), ko, params: driver.meta.module_params.clone(), modprobe: false })
}

/// The Kbuild command for an external module in `/drv` against the kernel build at `/build`.
pub fn module_command(arch: &Arch, make_vars: &[String], parallel: Parallel<'_>) -> Vec<String> {
    let mut argv = crate::kernel::make::make_command_with(arch, "/build", "/build", make_vars);
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

/// A driver's source files, relative and sorted: everything but build output
/// (`target/`, `*.o`, `*.ko`) and hidden files (Kbuild's `.cmd` files).
fn source_files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(root: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries = fs_err::read_dir(root.join(relative))?.collect::<std::io::Result<Vec<_>>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
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
                walk(root, &relative.join(&name), files)?;
            } else if kind.is_file() {
                files.push(relative.join(&name));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    Ok(files)
}

/// Copies a driver's source files (see [`source_files`]) for an isolated build.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs_err::create_dir_all(to)?;
    for relative in source_files(from)? {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::copy(from.join(&relative), target)?;
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
            maintainer: None,
            root_tests: vec![],
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
    fn a_driver_build_key_changes_with_its_sources_and_nothing_else() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let fifo = discover(&repo).unwrap().into_iter().find(|driver| driver.name == "fifo").unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fifo.dir, &dir.path().join("fifo")).unwrap();
        copy_tree(&fifo.common_dir().unwrap(), &dir.path().join(COMMON_DIR)).unwrap();
        let copy = Driver { dir: dir.path().join("fifo"), ..fifo };
        let toolchain = Toolchain::load(&repo, "sid").unwrap();
        let x86 = Arch::find("x86_64").unwrap();
        let kernel_dir = dir.path().join("7.2-x86_64-0123456789abcdef");
        fs_err::create_dir_all(&kernel_dir).unwrap();
        fs_err::write(kernel_dir.join("Module.symvers"), "0x0 symbol vmlinux EXPORT_SYMBOL\n").unwrap();
        let kernel = KernelBuild {
            dir: kernel_dir.clone(),
            image: kernel_dir.join("bzImage"),
            compiled_steps: 0,
            cpu_seconds: 0.0,
            make_vars: vec![],
            ccache: None,
        };
        let tree = KernelTree { source: Path::new("/src"), build: &kernel_dir, make_vars: &[] };
        let key = || build_key(&copy, x86, &toolchain, &tree, &kernel).unwrap().finish();
        let original = key();
        // Build output and hidden files are not inputs.
        fs_err::write(copy.dir.join("kforge_fifo.ko"), "elf").unwrap();
        fs_err::write(copy.dir.join(".kforge_fifo.o.cmd"), "cmd").unwrap();
        assert_eq!(key(), original);
        // A source edit, a shared file edit, a new kernel symbol table: each is a new build.
        let source = copy.dir.join("kforge_fifo.rs");
        let text = fs_err::read_to_string(&source).unwrap();
        fs_err::write(&source, format!("{text}\n// edited\n")).unwrap();
        let edited = key();
        assert_ne!(edited, original);
        fs_err::write(&source, &text).unwrap();
        assert_eq!(key(), original, "the key is the content, not the time of the edit");
        let compat = dir.path().join(COMMON_DIR).join("compat.rs");
        fs_err::write(&compat, "// changed\n").unwrap();
        let common_edited = key();
        assert_ne!(common_edited, original);
        fs_err::write(kernel_dir.join("Module.symvers"), "0x1 symbol vmlinux EXPORT_SYMBOL\n").unwrap();
        assert_ne!(key(), common_edited);
    }

    #[test]
    fn a_new_build_removes_only_older_builds_of_the_same_driver_and_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |name: &str| dir.path().join(name);
        let names = [
            "fifo-7.2-x86_64-debug-0ece4edc65afa168-1111111111111111",
            "fifo-7.2-x86_64-debug-0ece4edc65afa168-2222222222222222",
            "fifo-7.2-arm64-debug-16b01d4fc1c39049-3333333333333333",
            "edu-7.2-x86_64-debug-0ece4edc65afa168-4444444444444444",
            "fifo-7.2-x86_64-debug-0ece4edc65afa168-notakey",
        ];
        for name in names {
            fs_err::create_dir_all(entry(name)).unwrap();
        }
        prune_older_builds(&entry(names[0])).unwrap();
        let left: Vec<bool> = names.iter().map(|name| entry(name).is_dir()).collect();
        assert_eq!(left, [true, false, true, true, true]);
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
    fn root_tests_must_be_tests() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("tests")).unwrap();
        fs_err::write(dir.path().join("tests/a.sh"), "").unwrap();
        let manifest = dir.path().join("Cargo.toml");
        let meta: DriverMeta = toml::from_str("tests = [\"tests/a.sh\"]\nroot-tests = [\"tests/a.sh\"]").unwrap();
        check_tests(&meta, dir.path(), &manifest).unwrap();
        let stray: DriverMeta = toml::from_str("tests = [\"tests/a.sh\"]\nroot-tests = [\"tests/b.sh\"]").unwrap();
        let message = error::render(&check_tests(&stray, dir.path(), &manifest).unwrap_err());
        assert!(message.contains("root-tests names `tests/b.sh`, which is not in `tests`"), "{message}");
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
