//! Debian packages for a distro kernel: `linux-librust-<release>` (the regenerated Rust metadata Debian's headers lack), `kforge-<driver>-dkms` and `kforge-<driver>-modules-<release>`, planned as data and built with dpkg-deb.
//!
//! Planning is pure: `plan` turns a built distro kernel (its build directory
//! with `rust/`), Debian's package names and versions, the toolchain's exact
//! rustc/bindgen packages and the built drivers into `DebPackage`s. `deb`
//! builds them reproducibly, `tools` runs lintian, `proof` installs them in
//! a fresh Debian root with apt and builds the module with DKMS.

pub mod build;
pub mod cross;
pub mod deb;
pub mod proof;
pub mod tools;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::arch::Arch;
use crate::driver::Driver;
use crate::error;
use crate::project::{DebianImageArch, DebianPackage};
use deb::{Content, DebFile, DebPackage};

/// The Debian suite named in generated changelogs.
const DISTRIBUTION: &str = "unstable";

/// The packages' maintainer when none is given (`--maintainer`, DEBFULLNAME/DEBEMAIL).
pub const DEFAULT_MAINTAINER: &str = "kforge packagers <packagers@kforge.dev>";

/// A built driver module to package.
#[derive(Debug, Clone)]
pub struct PackagedDriver {
    pub driver: Driver,
    /// Its `Cargo.toml` description (the control file's synopsis).
    pub description: String,
    /// The module kforge built against the regenerated metadata.
    pub ko: PathBuf,
    /// The Maintainer of its DKMS and modules packages (`driver_maintainer`).
    pub maintainer: String,
}

/// Everything the packages are made from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub arch: &'static Arch,
    /// The `linux-source-X.Y` package the kernel was built from.
    pub source: &'a DebianPackage,
    /// Debian's packages for the arch (headers name and exact version, image).
    pub debian: &'a DebianImageArch,
    /// `KERNELRELEASE` (`7.2.13+deb14-amd64`).
    pub release: String,
    /// The distro kernel's build directory (with `rust/`, `scripts/`).
    pub build_dir: &'a Path,
    /// `rustc=1.97.1+dfsg1-1` and `bindgen=0.72.1-1+b3`: the toolchain's pins, which match the kernel's config.
    pub rustc_pin: String,
    pub bindgen_pin: String,
    /// `libc6 (>= 2.43)`: the proc-macro libraries link the C library of the root that built them.
    pub libc_dependency: String,
    /// The proc-macro libraries (`rust/*.so`), stripped (`strip_proc_macros`); they replace the build's own.
    pub proc_macros: Vec<PathBuf>,
    pub drivers: Vec<PackagedDriver>,
    pub maintainer: String,
    pub epoch: u64,
    /// kforge's own version (xtask's Cargo.toml).
    pub kforge_version: String,
}

/// The maintainer: `--maintainer`, else `DEBFULLNAME <DEBEMAIL>` (Debian's
/// convention), else the project's default.
pub fn maintainer(given: Option<&str>) -> Result<String> {
    let value = match given {
        Some(value) => value.to_string(),
        None => match (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
            (Ok(name), Ok(mail)) if !name.is_empty() && !mail.is_empty() => format!("{name} <{mail}>"),
            _ => DEFAULT_MAINTAINER.to_string(),
        },
    };
    let well_formed = value
        .split_once(" <")
        .is_some_and(|(name, rest)| !name.trim().is_empty() && rest.ends_with('>') && rest.contains('@'));
    if !well_formed {
        return Err(error::user(format!("maintainer `{value}` is not of the form `Full Name <address@domain>`")));
    }
    Ok(value)
}

/// The Maintainer of a driver's packages: `--maintainer`, else its
/// `[package.metadata.kforge] maintainer`, else `maintainer(None)` (DEBFULLNAME
/// and DEBEMAIL, else kforge's).
pub fn driver_maintainer(given: Option<&str>, driver: &Driver) -> Result<String> {
    match (given, &driver.meta.maintainer) {
        (None, Some(declared)) => maintainer(Some(declared)).map_err(|err| {
            error::user(format!(
                "{}: [package.metadata.kforge] maintainer: {}",
                driver.dir.join("Cargo.toml").display(),
                error::render(&err).trim_start_matches("error: ")
            ))
        }),
        _ => maintainer(given),
    }
}

/// `rustc (= 1.97.1+dfsg1-1)` from `rustc=1.97.1+dfsg1-1`.
pub fn exact_dependency(pin: &str) -> Result<String> {
    let (name, version) = crate::toolchain::spec::split_pin(pin)?;
    Ok(format!("{name} (= {version})"))
}

/// The package that provides `name` among a pin list (`rustc=...` in `[rustc] packages`).
pub fn pin_of(packages: &[String], name: &str) -> Result<String> {
    packages
        .iter()
        .find(|pin| pin.split_once('=').is_some_and(|(package, _)| package == name))
        .cloned()
        .ok_or_else(|| error::user(format!("the toolchain pins no `{name}=<version>` package")))
}

/// Debian's kbuild directory name for a release: `7.2.13+deb14-amd64` ->
/// `linux-kbuild-7.2.13+deb14` (the headers' `scripts` links there; it is shared by every flavour).
pub fn kbuild_dir(release: &str) -> Result<String> {
    let start = release.find("+deb").ok_or_else(|| {
        error::user(format!("kernel release {release} has no `+debN` ABI part; is this Debian's kernel?"))
    })?;
    let end = release[start..].find('-').map(|offset| start + offset).unwrap_or(release.len());
    Ok(format!("linux-kbuild-{}", &release[..end]))
}

/// `linux-librust-<release>`.
pub fn librust_name(release: &str) -> String {
    format!("linux-librust-{release}")
}

/// `kforge-<driver>-dkms`.
pub fn dkms_name(driver: &Driver) -> String {
    format!("kforge-{}-dkms", driver.name)
}

/// `kforge-<driver>-modules-<release>`.
pub fn modules_name(driver: &Driver, release: &str) -> String {
    format!("kforge-{}-modules-{release}", driver.name)
}

/// The DKMS module name and version (`kforge-fifo`, `0.1.0`).
pub fn dkms_module(driver: &Driver) -> (String, String) {
    (format!("kforge-{}", driver.name), driver.version.clone())
}

/// Whether `arch` is the machine kforge runs on (no cross build).
pub fn is_native(arch: &Arch) -> bool {
    Arch::host().map(|row| row.name == arch.name).unwrap_or(false)
}

/// Why linux-librust (and so the DKMS packages) cannot be built for `arch`
/// with `toolchain`, if it cannot. The proc-macro libraries in `rust/`
/// (`libmacros.so`...) are loaded by the rustc that builds a module, so for
/// another arch they are built again for it (`cross`), which needs that
/// arch's rustc std in the toolchain.
pub fn librust_refusal(arch: &Arch, toolchain: &crate::toolchain::Toolchain) -> Option<String> {
    if is_native(arch) {
        return None;
    }
    cross::missing_std(toolchain, arch).map(|reason| {
        format!(
            "linux-librust for {} needs its proc-macro libraries built for {} machines: {reason}",
            arch.name, arch.name
        )
    })
}

/// The Rust metadata files of a build directory a module build reads:
/// `rust/*.rmeta` and `rust/*.so`, sorted, plus `scripts/target.json` when the arch uses one.
pub fn metadata_files(build_dir: &Path) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let mut files = Vec::new();
    let rust = build_dir.join("rust");
    for entry in fs_err::read_dir(&rust)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rmeta" || ext == "so") {
            files.push(path);
        }
    }
    files.sort();
    if !files.iter().any(|path| path.ends_with("libkernel.rmeta")) {
        return Err(error::user(format!(
            "{} has no libkernel.rmeta: the kernel's Rust metadata was not built (is CONFIG_RUST set?)",
            rust.display()
        )));
    }
    let target = build_dir.join("scripts/target.json");
    Ok((files, target.is_file().then_some(target)))
}

/// Copies of the build's proc-macro libraries (`rust/*.so`) in `out`,
/// stripped of what rustc does not need (`strip --strip-unneeded` keeps the
/// dynamic symbols rustc loads them by), with the sandbox's binutils.
pub fn strip_proc_macros(sandbox: &crate::sandbox::Sandbox, build_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let (files, _) = metadata_files(build_dir)?;
    crate::cache::remove_dir_if_exists(out)?;
    fs_err::create_dir_all(out)?;
    let mut stripped = Vec::new();
    for file in files.iter().filter(|path| path.extension().is_some_and(|ext| ext == "so")) {
        let name = file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let mut jail = sandbox.jail();
        jail.ro(file, "/in.so");
        jail.rw(out, "/out");
        jail.command(&["strip", "--strip-unneeded", "-o", &format!("/out/{name}"), "/in.so"])?
            .run()
            .with_context(|| format!("cannot strip {}", file.display()))?;
        stripped.push(out.join(name));
    }
    Ok(stripped)
}

/// Every package for one arch: librust, then per driver its DKMS and prebuilt-modules packages.
pub fn plan(inputs: &Inputs<'_>) -> Result<Vec<DebPackage>> {
    let mut packages = vec![librust(inputs)?];
    for driver in &inputs.drivers {
        packages.push(dkms(inputs, driver)?);
        packages.push(modules(inputs, driver)?);
    }
    Ok(packages)
}

fn librust(inputs: &Inputs<'_>) -> Result<DebPackage> {
    let release = &inputs.release;
    let name = librust_name(release);
    let (files, target) = metadata_files(inputs.build_dir)?;
    let mut files: Vec<PathBuf> =
        files.into_iter().filter(|path| path.extension().is_none_or(|ext| ext != "so")).collect();
    files.extend(inputs.proc_macros.iter().cloned());
    files.sort_by_key(|path| path.file_name().map(|name| name.to_os_string()));
    let mut entries: Vec<DebFile> = files
        .iter()
        .map(|path| DebFile {
            path: format!(
                "usr/src/linux-headers-{release}/rust/{}",
                path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
            ),
            content: Content::Copy(path.clone()),
            mode: 0o644,
        })
        .collect();
    if let Some(target) = target {
        entries.push(DebFile {
            path: format!("usr/lib/{}/scripts/target.json", kbuild_dir(release)?),
            content: Content::Copy(target),
            mode: 0o644,
        });
    }
    let version = format!("{}+kforge{}", inputs.debian.headers.version, inputs.kforge_version);
    let changes = format!(
        "Rust metadata regenerated by kforge {} from {} {} with Debian's .config of {} {}.",
        inputs.kforge_version,
        inputs.source.package,
        inputs.source.version,
        inputs.debian.headers.package,
        inputs.debian.headers.version
    );
    entries.extend(doc_files(&name, &version, &changes, &inputs.maintainer, inputs)?);
    Ok(DebPackage {
        name,
        version,
        architecture: inputs.arch.debian_arch.to_string(),
        maintainer: inputs.maintainer.clone(),
        section: "kernel".to_string(),
        depends: vec![
            format!("{} (= {})", inputs.debian.headers.package, inputs.debian.headers.version),
            exact_dependency(&inputs.rustc_pin)?,
            exact_dependency(&inputs.bindgen_pin)?,
            inputs.libc_dependency.clone(),
        ],
        homepage: None,
        summary: format!("Rust build metadata for Linux {release}"),
        description: vec![
            format!(
                "The Rust crate metadata (rust/*.rmeta), proc-macro libraries and target specification that \
                 out-of-tree Rust kernel modules are compiled against, for Debian's kernel {release}. \
                 {} ships none of them, so without this package a Rust module build stops with \
                 `can't find crate for core`.",
                inputs.debian.headers.package
            ),
            "kforge regenerated them from the linux-source package the kernel was built from, with Debian's \
             own configuration and the exact rustc and bindgen that built the kernel."
                .to_string(),
        ],
        files: entries,
        scripts: Default::default(),
    })
}

/// The files of a driver's source that DKMS builds: everything but tests, editor and cargo files, sorted.
pub fn driver_sources(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs_err::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || ["tests", "target", "Cargo.toml", "rust-project.json"].contains(&name.as_str())
            {
                continue;
            }
            let path = relative.join(&name);
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if entry.file_type()?.is_file() {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The directory of a driver inside its DKMS source tree. The tree mirrors
/// `drivers/`: `<driver>/` next to `common/`, so the Kbuild's
/// `include $(src)/../common/kforge.mk` and the crate's
/// `#[path = "../common/compat.rs"]` resolve as they do in the repository.
pub fn dkms_driver_dir(driver: &Driver) -> String {
    driver.dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| driver.name.clone())
}

/// The `driver_sources` of `dir`, packaged under `packaged_dir`.
fn source_files(dir: &Path, packaged_dir: &str) -> Result<Vec<DebFile>> {
    Ok(driver_sources(dir)?
        .into_iter()
        .map(|relative| DebFile {
            path: format!("{packaged_dir}/{relative}"),
            content: Content::Copy(dir.join(&relative)),
            mode: 0o644,
        })
        .collect())
}

/// `dkms.conf` for a driver: Kbuild against the installed headers (where
/// linux-librust puts the Rust metadata); the build stops with a message
/// naming the package when the metadata is missing.
pub fn dkms_conf(driver: &Driver) -> Result<String> {
    let Some(module) = &driver.meta.module else {
        return Err(error::user(format!("driver {} has no `module`: nothing for DKMS to build", driver.name)));
    };
    let (name, version) = dkms_module(driver);
    let subdir = dkms_driver_dir(driver);
    let build = format!("${{dkms_tree}}/${{PACKAGE_NAME}}/${{PACKAGE_VERSION}}/build/{subdir}");
    Ok(format!(
        "# Generated by kforge: builds {module}.ko with Kbuild against /lib/modules/<release>/build.\n\
         # The driver lives in {subdir}/, next to the common/ files its Kbuild and crate include.\n\
         PACKAGE_NAME=\"{name}\"\n\
         PACKAGE_VERSION=\"{version}\"\n\
         BUILT_MODULE_NAME[0]=\"{module}\"\n\
         BUILT_MODULE_LOCATION[0]=\"{subdir}/\"\n\
         DEST_MODULE_LOCATION[0]=\"/updates/dkms\"\n\
         # Rust modules need the kernel's Rust metadata, which Debian's headers lack: linux-librust-<release> has it.\n\
         MAKE[0]=\"if [ ! -f ${{kernel_source_dir}}/rust/libkernel.rmeta ]; then echo 'kforge: ${{kernel_source_dir}}/rust/libkernel.rmeta is missing: install linux-librust-${{kernelver}} (the Rust metadata of kernel ${{kernelver}})' >&2; exit 1; fi; \
         make -C ${{kernel_source_dir}} M={build} modules\"\n\
         CLEAN=\"make -C ${{kernel_source_dir}} M={build} clean\"\n\
         BUILD_EXCLUSIVE_CONFIG=\"CONFIG_RUST\"\n\
         AUTOINSTALL=\"yes\"\n"
    ))
}

fn dkms(inputs: &Inputs<'_>, packaged: &PackagedDriver) -> Result<DebPackage> {
    let driver = &packaged.driver;
    let name = dkms_name(driver);
    let (module, module_version) = dkms_module(driver);
    let version = format!("{}-1", driver.version);
    let source_dir = format!("usr/src/{module}-{module_version}");
    let driver_dir = format!("{source_dir}/{}", dkms_driver_dir(driver));
    let mut files = source_files(&driver.dir, &driver_dir)?;
    if let Some(common) = driver.common_dir() {
        files.extend(source_files(&common, &format!("{source_dir}/{}", crate::driver::COMMON_DIR))?);
    }
    files.push(DebFile {
        path: format!("{source_dir}/dkms.conf"),
        content: Content::Text(dkms_conf(driver)?),
        mode: 0o644,
    });
    let changes = format!(
        "Source of {} {} (Cargo.toml) packaged for DKMS by kforge {}.",
        driver.name, driver.version, inputs.kforge_version
    );
    files.extend(doc_files(&name, &version, &changes, &packaged.maintainer, inputs)?);
    files.sort_by(|left, right| left.path.cmp(&right.path));
    let postinst = format!(
        "#!/bin/sh\n# Generated by kforge: register the module's source with DKMS; `dkms install {module}/{module_version} -k <release>` builds it.\nset -e\n\
         if [ \"$1\" = configure ]; then\n  dkms status -m {module} -v {module_version} | grep -q . || dkms add -m {module} -v {module_version}\nfi\n"
    );
    let prerm = format!(
        "#!/bin/sh\n# Generated by kforge: remove every build of the module from DKMS.\nset -e\n\
         if [ \"$1\" = remove ] || [ \"$1\" = upgrade ]; then\n  dkms remove -m {module} -v {module_version} --all || true\nfi\n"
    );
    Ok(DebPackage {
        name,
        version,
        architecture: "all".to_string(),
        maintainer: packaged.maintainer.clone(),
        section: "kernel".to_string(),
        depends: vec![
            "dkms".to_string(),
            format!(
                "{} (= {}+kforge{})",
                librust_name(&inputs.release),
                inputs.debian.headers.version,
                inputs.kforge_version
            ),
            exact_dependency(&inputs.rustc_pin)?,
        ],
        homepage: None,
        summary: format!("{} Rust kernel module source, for DKMS", driver.name),
        description: vec![
            packaged.description.clone(),
            format!(
                "This package holds the Rust source of {module} and a dkms.conf that builds it with Kbuild \
                 against the installed headers of kernel {} and the Rust metadata of {}.",
                inputs.release,
                librust_name(&inputs.release)
            ),
        ],
        files,
        scripts: [("postinst".to_string(), postinst), ("prerm".to_string(), prerm)].into_iter().collect(),
    })
}

fn modules(inputs: &Inputs<'_>, packaged: &PackagedDriver) -> Result<DebPackage> {
    let driver = &packaged.driver;
    let release = &inputs.release;
    let name = modules_name(driver, release);
    let version = format!("{}-1", driver.version);
    let module = driver.meta.module.clone().unwrap_or_else(|| driver.name.clone());
    let mut files = vec![DebFile {
        path: format!("usr/lib/modules/{release}/updates/{module}.ko"),
        content: Content::Copy(packaged.ko.clone()),
        mode: 0o644,
    }];
    let changes = format!(
        "{module}.ko of {} {} built by kforge {} for Debian's kernel {release}.",
        driver.name, driver.version, inputs.kforge_version
    );
    files.extend(doc_files(&name, &version, &changes, &packaged.maintainer, inputs)?);
    let depmod = |action: &str| {
        format!(
            "#!/bin/sh\n# Generated by kforge: refresh the module index of {release}.\nset -e\n\
             if [ \"$1\" = {action} ] && [ -d /usr/lib/modules/{release} ] && command -v depmod >/dev/null 2>&1; then\n  depmod -a {release}\nfi\n"
        )
    };
    Ok(DebPackage {
        name,
        version,
        architecture: inputs.arch.debian_arch.to_string(),
        maintainer: packaged.maintainer.clone(),
        section: "kernel".to_string(),
        depends: vec![format!("{} (= {})", inputs.debian.image.package, inputs.debian.image.version)],
        homepage: None,
        summary: format!("{} Rust kernel module for Linux {release}", driver.name),
        description: vec![
            packaged.description.clone(),
            format!("This package holds {module}.ko prebuilt for Debian's kernel {release}; it is not signed."),
        ],
        files,
        scripts: [("postinst".to_string(), depmod("configure")), ("postrm".to_string(), depmod("remove"))]
            .into_iter()
            .collect(),
    })
}

/// `usr/share/doc/<name>/{copyright,changelog.Debian.gz}`.
fn doc_files(name: &str, version: &str, changes: &str, maintainer: &str, inputs: &Inputs<'_>) -> Result<Vec<DebFile>> {
    let doc = format!("usr/share/doc/{name}");
    let changes = deb::wrap(changes, 74).join("\n    ");
    let changelog = format!(
        "{name} ({version}) {DISTRIBUTION}; urgency=medium\n\n  * {changes}\n\n -- {}  {}\n",
        maintainer,
        rfc2822(inputs.epoch)
    );
    let copyright = format!(
        "{name} is built by kforge.\n\n\
         Copyright (C) the kforge contributors; Linux kernel sources: Copyright (C) the Linux kernel contributors.\n\n\
         License: GPL-2.0-only\n On Debian systems, the complete text of the GNU General Public License\n \
         version 2 can be found in `/usr/share/common-licenses/GPL-2'.\n"
    );
    Ok(vec![
        DebFile {
            path: format!("{doc}/changelog.Debian.gz"),
            content: Content::Bytes(deb::gzip(changelog.as_bytes())?),
            mode: 0o644,
        },
        DebFile { path: format!("{doc}/copyright"), content: Content::Text(copyright), mode: 0o644 },
    ])
}

/// `Thu, 01 Jan 1970 00:00:00 +0000` (a changelog trailer's date) for a Unix time.
pub fn rfc2822(seconds: u64) -> String {
    let iso = crate::dist::iso8601(seconds);
    let (date, time) = iso.trim_end_matches('Z').split_once('T').unwrap_or((&iso, ""));
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next().unwrap_or(""), parts.next().unwrap_or("01"), parts.next().unwrap_or("01"));
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let month_name = month.parse::<usize>().ok().and_then(|month| MONTHS.get(month.wrapping_sub(1))).unwrap_or(&"Jan");
    let weekday = DAYS[((seconds / 86_400) % 7) as usize];
    format!("{weekday}, {day} {month_name} {year} {time} +0000")
}

/// SOURCE_DATE_EPOCH, else the time of the repository's last commit; it
/// must be 1975 or later (lintian rejects older file times).
pub fn source_date_epoch(repo: &Path) -> Result<u64> {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => {
            value.trim().parse::<u64>().with_context(|| format!("SOURCE_DATE_EPOCH={value} is not a number"))?
        }
        Err(_) => crate::process::Cmd::new("git")
            .args(["-C", &repo.display().to_string(), "log", "-1", "--format=%ct"])
            .run()
            .context("SOURCE_DATE_EPOCH is not set and the last commit's time is unavailable")?
            .trim()
            .parse::<u64>()
            .context("git printed no commit time")?,
    };
    const YEAR_1975: u64 = 157_766_400;
    if epoch < YEAR_1975 {
        return Err(error::user(format!(
            "SOURCE_DATE_EPOCH={epoch} is before 1975: lintian rejects such file times (package-contains-ancient-file)"
        )));
    }
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn names_and_paths_follow_debian() {
        assert_eq!(kbuild_dir("7.2.13+deb14-amd64").unwrap(), "linux-kbuild-7.2.13+deb14");
        assert_eq!(kbuild_dir("7.2.13+deb14-cloud-amd64").unwrap(), "linux-kbuild-7.2.13+deb14");
        assert!(kbuild_dir("7.2.13").unwrap_err().to_string().contains("no `+debN` ABI part"));
        assert_eq!(librust_name("7.2.13+deb14-amd64"), "linux-librust-7.2.13+deb14-amd64");
        assert_eq!(exact_dependency("rustc=1.97.1+dfsg1-1").unwrap(), "rustc (= 1.97.1+dfsg1-1)");
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert!(maintainer(Some("nobody")).unwrap_err().to_string().contains("Full Name <address@domain>"));
        assert_eq!(maintainer(Some("A B <a@b.org>")).unwrap(), "A B <a@b.org>");
    }

    #[test]
    fn another_arch_needs_its_rustc_std_in_the_toolchain() {
        let mut env = crate::test_support::ScopedEnv::lock();
        let cache = tempfile::tempdir().unwrap();
        env.set("KFORGE_CACHE_DIR", cache.path());
        let toolchain = crate::toolchain::Toolchain::load(&repo(), "sid-gcc").unwrap();
        let (arm, x86) = (Arch::find("arm64").unwrap(), Arch::find("x86_64").unwrap());
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(librust_refusal(x86, &toolchain), None);
            let reason = librust_refusal(arm, &toolchain).unwrap();
            assert!(reason.contains("no rustc std for aarch64-unknown-linux-gnu"), "{reason}");
            assert!(reason.contains("add libstd-rust-dev:arm64=<rustc's version> to [extras]"), "{reason}");
            fs_err::create_dir_all(toolchain.root.join("usr/lib/rustlib/aarch64-unknown-linux-gnu/lib")).unwrap();
            assert_eq!(librust_refusal(arm, &toolchain), None);
        }
    }

    #[test]
    fn a_drivers_declared_maintainer_is_used_unless_one_is_given() {
        let drivers = crate::driver::discover(&repo()).unwrap();
        let mut fifo = drivers.iter().find(|driver| driver.name == "fifo").unwrap().clone();
        fifo.meta.maintainer = Some("Jane Doe <jane@example.org>".into());
        assert_eq!(driver_maintainer(None, &fifo).unwrap(), "Jane Doe <jane@example.org>");
        assert_eq!(driver_maintainer(Some("A B <a@b.org>"), &fifo).unwrap(), "A B <a@b.org>");
        fifo.meta.maintainer = Some("jane".into());
        let message = error::render(&driver_maintainer(None, &fifo).unwrap_err());
        assert!(
            message.contains(
                "drivers/fifo/Cargo.toml: [package.metadata.kforge] maintainer: maintainer `jane` is not of the form"
            ),
            "{message}"
        );
    }

    #[test]
    fn dkms_conf_builds_with_kbuild_and_names_librust_when_missing() {
        let drivers = crate::driver::discover(&repo()).unwrap();
        let fifo = drivers.iter().find(|driver| driver.name == "fifo").unwrap();
        let conf = dkms_conf(fifo).unwrap();
        assert!(conf.contains("PACKAGE_NAME=\"kforge-fifo\"\n"), "{conf}");
        assert!(conf.contains("BUILT_MODULE_NAME[0]=\"kforge_fifo\"\n"), "{conf}");
        assert!(
            conf.contains(
                "make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build/fifo modules"
            ),
            "{conf}"
        );
        assert!(conf.contains("BUILT_MODULE_LOCATION[0]=\"fifo/\"\n"), "{conf}");
        assert!(conf.contains("install linux-librust-${kernelver}"), "{conf}");
        assert_eq!(driver_sources(&fifo.dir).unwrap(), ["Kbuild", "kforge_fifo.rs"]);
    }
}
