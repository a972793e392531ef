//! `cargo xtask dist`: per-cell release archives for packagers, and `--check-reproducible` to prove two clean builds are identical.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::selection::Selection;
use super::{Context, GlobalArgs};
use crate::arch::EfiSpec;
use crate::dist::{self, BuildFacts, DiskFacts, DriverFacts, Entry, KernelFacts, Manifest, ToolchainFacts};
use crate::jobserver::Parallel;
use crate::kernel::build as kbuild;
use crate::matrix::Cell;
use crate::project::{KernelSource, Profile};
use crate::toolchain::verify;
use crate::{cache, disk, error, image, kernel, package, pipeline, secureboot, ui};

#[derive(Debug, Args)]
pub struct DistArgs {
    /// The cells to ship (`--profile` defaults to release here: the minimal kernel).
    #[command(flatten)]
    pub selection: Selection,
    /// Where the archives go.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep debug information in the modules (stripped by default).
    #[arg(long)]
    pub keep_debug: bool,
    /// Sign the disk image's UKI for Secure Boot with the project key set
    /// (`KFORGE_SECURE_BOOT_KEYS`, else kforge.toml's `[boot] secure-boot-keys`, else the generated one);
    /// the manifest records the certificate's fingerprint.
    #[arg(long)]
    pub secure_boot: bool,
    /// Build everything twice from scratch in two separate caches and compare every artifact byte for byte.
    #[arg(long)]
    pub check_reproducible: bool,
}

pub fn run(args: DistArgs, global: &GlobalArgs) -> Result<i32> {
    if args.check_reproducible {
        return check_reproducible(&args, global);
    }
    let context = Context::load()?;
    let keys =
        pipeline::check_secure_boot(&context.repo, args.secure_boot, &context.project.boot, &global.install_options())?;
    let cells = args.selection.cells_or(&context, Profile::Release)?;
    let drivers = args.selection.drivers(&context)?;
    fs_err::create_dir_all(&args.out)?;
    for cell in &cells {
        let archive = dist_cell(&context, cell, &drivers, keys.as_ref(), &args, global)
            .with_context(|| format!("failed to make the archive of cell {}", cell.id()))?;
        ui::status("Packed", archive.display().to_string());
        println!("{}", archive.display());
        if let KernelSource::DebianImage(image) = &cell.kernel.source {
            let signing = keys.as_ref().map(secureboot::KeySet::signing_key);
            for deb in distro_packages(&context, cell, image, &drivers, signing.as_ref(), &args, global)
                .with_context(|| format!("failed to make the Debian packages of cell {}", cell.id()))?
            {
                println!("{}", deb.display());
            }
        }
    }
    Ok(0)
}

/// A distro kernel's cell also ships as Debian packages (as `cargo xtask
/// package` builds them, without its install proof): linux-librust, DKMS and
/// modules packages of the drivers with a module of their own. Lintian errors
/// fail the cell.
fn distro_packages(
    context: &Context,
    cell: &Cell,
    image: &crate::project::DebianImage,
    drivers: &[crate::driver::Driver],
    signing: Option<&secureboot::SigningKey>,
    args: &DistArgs,
    global: &GlobalArgs,
) -> Result<Vec<PathBuf>> {
    let Some(debian) = image.arches.get(cell.arch.name) else { return Ok(Vec::new()) };
    let options = global.install_options();
    let pins = package::tools::ToolPins::load(&context.repo)?;
    let tools_root = package::tools::ready(&pins, &options)?;
    let ready = pipeline::ready_kernel(&context.repo, &cell.kernel, &[cell.arch], &options)?;
    let with_modules: Vec<crate::driver::Driver> =
        drivers.iter().filter(|driver| driver.meta.module.is_some()).cloned().collect();
    let maintainer = package::maintainer(None)?;
    let request = package::build::Request {
        repo: &context.repo,
        work: &context.output.join("dist").join("packages"),
        kernel: &cell.kernel,
        image,
        debian,
        arch: cell.arch,
        drivers: &with_modules,
        ready: &ready,
        tools_root: &tools_root,
        signing,
        maintainer: &maintainer,
        given_maintainer: None,
        epoch: package::source_date_epoch(&context.repo)?,
        out: &args.out,
    };
    let built = package::build::build_arch(&request)?;
    let findings = package::tools::lintian(&tools_root, &built.debs)?;
    let errors: Vec<&str> =
        findings.iter().filter(|finding| finding.severity == 'E').map(|finding| finding.line.as_str()).collect();
    if !errors.is_empty() {
        return Err(error::user(format!("lintian found errors in the packages:\n  {}", errors.join("\n  "))));
    }
    Ok(built.debs)
}

/// Builds one cell and packs its archive.
fn dist_cell(
    context: &Context,
    cell: &Cell,
    drivers: &[crate::driver::Driver],
    keys: Option<&secureboot::KeySet>,
    args: &DistArgs,
    global: &GlobalArgs,
) -> Result<PathBuf> {
    let ready = pipeline::ready_kernel(&context.repo, &cell.kernel, &[cell.arch], &global.install_options())?;
    let versions: BTreeMap<String, String> =
        verify::verify(&ready.toolchain)?.checks.into_iter().map(|check| (check.tool, check.found)).collect();
    let work = context.output.join("dist").join(cell.id());
    cache::remove_dir_if_exists(&work)?;
    let prepared = pipeline::prepare_cell(&pipeline::CellRequest {
        repo: &context.repo,
        kernel: &cell.kernel,
        arch: cell.arch,
        profile: cell.profile,
        ready: &ready,
        drivers,
        keys,
        dir: &work,
        initramfs: None,
        strip_modules: !args.keep_debug,
        through: pipeline::Through::Initramfs,
    })?;
    for (driver, reason) in &prepared.skipped {
        ui::status("Skipping", format!("{} in {}: {reason}", driver.name, cell.id()));
    }
    let toolchain = &ready.toolchain;
    let (build, built) = (&prepared.kernel, &prepared.drivers);
    let initramfs = prepared.initramfs.clone().expect("prepared through the initramfs");

    let disk = match cell.arch.efi {
        Ok(spec) => {
            let path = work.join("disk.raw");
            ui::status("Assembling", format!("UEFI disk image for {}", cell.label()));
            let request = pipeline::DiskRequest {
                repo: &context.repo,
                arch: cell.arch,
                kernel: build,
                initrd: &initramfs,
                drivers: built,
                keys,
                install: &global.install_options(),
            };
            let tools = pipeline::build_disk(&request, &path)?;
            let fingerprint = match keys {
                Some(keys) => Some(secureboot::fingerprint(&tools.sandbox()?, keys)?),
                None => None,
            };
            Some((path, disk_facts(&context.repo, &spec, fingerprint)?))
        }
        Err(reason) => {
            ui::status("Skipping", format!("the disk image of {}: {reason}", cell.id()));
            None
        }
    };

    let image_name = cell.arch.kernel_image.rsplit('/').next().unwrap_or(cell.arch.kernel_image);
    let config = dist::read_packed(&build.dir.join(".config"))?;
    let mut entries = vec![
        Entry { path: format!("boot/{image_name}"), mode: 0o644, data: dist::read_packed(&build.image)? },
        Entry { path: "boot/config".to_string(), mode: 0o644, data: config.clone() },
        Entry { path: "initramfs.cpio.gz".to_string(), mode: 0o644, data: dist::read_packed(&initramfs)? },
    ];
    if let Some((path, _)) = &disk {
        entries.push(Entry { path: "disk.raw".to_string(), mode: 0o644, data: dist::read_packed(path)? });
    }
    let mut driver_facts = Vec::new();
    for item in built {
        for module in &item.modules {
            entries.push(Entry {
                path: format!("modules/{}/{}.ko", item.driver.name, module.name),
                mode: 0o644,
                data: dist::read_packed(&module.ko)?,
            });
        }
        driver_facts.push(DriverFacts {
            name: item.driver.name.clone(),
            version: item.driver.version.clone(),
            modules: item.modules.iter().map(|module| module.name.clone()).collect(),
        });
    }
    let epoch = image::source_date_epoch();
    let manifest = Manifest {
        kforge_version: env!("CARGO_PKG_VERSION").to_string(),
        cell: cell.id(),
        arch: cell.arch.name.to_string(),
        kernel: KernelFacts {
            id: cell.kernel.id.clone(),
            version: cell.kernel.version.clone(),
            source: kernel::source::identity(&cell.kernel.source)?,
            config_sha256: cache::sha256_hex(&config),
            image: format!("boot/{image_name}"),
        },
        drivers: driver_facts,
        toolchain: ToolchainFacts {
            id: toolchain.id().to_string(),
            key: toolchain.key.clone(),
            versions,
            packages: toolchain.installed_packages()?,
        },
        build: BuildFacts {
            make: kbuild::build_command(&prepared.plan, Parallel::Jobs(pipeline::default_jobs())),
            env: crate::kernel::make::BUILD_ENV
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            modules_stripped: !args.keep_debug,
        },
        source_date_epoch: epoch,
        disk: disk.map(|(_, facts)| facts),
        files: entries.iter().map(|entry| (entry.path.clone(), cache::sha256_hex(&entry.data))).collect(),
    };
    entries.push(Entry {
        path: "manifest.json".into(),
        mode: 0o644,
        data: (serde_json::to_string_pretty(&manifest)? + "\n").into_bytes(),
    });
    entries.push(Entry {
        path: "sbom.spdx.json".into(),
        mode: 0o644,
        data: dist::spdx(&manifest, &entries)?.into_bytes(),
    });
    let sums = dist::sha256sums(&entries);
    entries.push(Entry { path: "SHA256SUMS".into(), mode: 0o644, data: sums.into_bytes() });
    dist::write_archive(&args.out, &cell.id(), &entries, epoch)
}

/// The manifest's facts of a disk image: the pinned tools and the firmware package.
fn disk_facts(repo: &std::path::Path, spec: &EfiSpec, fingerprint: Option<String>) -> Result<DiskFacts> {
    let pins = disk::ImagePins::load(repo)?;
    let mut tools = BTreeMap::new();
    let mut firmware = BTreeMap::new();
    for pin in &pins.packages {
        let (name, version) = crate::toolchain::spec::split_pin(pin)?;
        let is_firmware = crate::arch::ARCHES.iter().any(|arch| arch.efi.is_ok_and(|efi| efi.firmware_package == name));
        if name == spec.firmware_package {
            firmware.insert(name, version);
        } else if !is_firmware {
            tools.insert(name, version);
        }
    }
    Ok(DiskFacts { image: "disk.raw".to_string(), tools, firmware, secure_boot_certificate_sha256: fingerprint })
}

/// Runs this same `dist` twice, each in a fresh cache (sharing only the
/// toolchain roots and the download store), and compares the archives.
fn check_reproducible(args: &DistArgs, global: &GlobalArgs) -> Result<i32> {
    let real_cache = crate::paths::cache_dir()?;
    let base = args.out.join("reproducible");
    cache::remove_dir_if_exists(&base)?;
    let mut outputs = Vec::new();
    for side in ["a", "b"] {
        let cache_dir = base.join(format!("cache-{side}"));
        fs_err::create_dir_all(&cache_dir)?;
        // Shared: what is installed, not built, and the Secure Boot key set
        // (two generated key sets would sign two different images).
        for shared in ["toolchains", "store", "image-tools", "package-tools", "secureboot"] {
            fs_err::create_dir_all(real_cache.join(shared))?;
            std::os::unix::fs::symlink(real_cache.join(shared), cache_dir.join(shared))?;
        }
        let out = base.join(format!("out-{side}"));
        // The same session, but with this side's fresh cache and work directory.
        let mut session = global.clone();
        session.session.cache_dir = Some(cache_dir.clone());
        session.session.output_dir = Some(base.join(format!("work-{side}")));
        let mut argv = session.forwarded();
        argv.extend(["dist".to_string(), "--out".to_string(), out.display().to_string()]);
        let profile = args.selection.profile.unwrap_or(Profile::Release);
        argv.extend(["--profile".to_string(), profile.as_str().to_string()]);
        argv.extend(args.selection.forwarded_without_profile());
        if args.keep_debug {
            argv.push("--keep-debug".to_string());
        }
        if args.secure_boot {
            argv.push("--secure-boot".to_string());
        }
        ui::status("Building", format!("from scratch, pass {side} (cache {})", cache_dir.display()));
        let log = base.join(format!("build-{side}.log"));
        if !dist::rerun_kforge(&argv, &log, &mut |line| ui::info(format!("  [{side}] {line}")))? {
            return Err(error::user(format!("build {side} failed; see {}", log.display())));
        }
        outputs.push(out);
    }
    let mut failed = 0;
    let mut archives: Vec<PathBuf> = fs_err::read_dir(&outputs[0])?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".tar.gz") || path.to_string_lossy().ends_with(".deb"))
        .collect();
    archives.sort();
    for archive in &archives {
        let name = archive.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let other = outputs[1].join(&name);
        if name.ends_with(".deb") {
            // A Debian package is compared whole (dpkg-deb writes no time of its own: SOURCE_DATE_EPOCH).
            if other.is_file() && fs_err::read(archive)? == fs_err::read(&other)? {
                ui::status("Identical", format!("{name}: byte for byte"));
                fs_err::copy(archive, args.out.join(&name))?;
            } else {
                failed += 1;
                ui::warn(format!("{name} differs between the two builds (or is missing from the second)"));
            }
            continue;
        }
        let differing = dist::differences(&dist::read_archive(archive)?, &dist::read_archive(&other)?);
        if differing.is_empty() && fs_err::read(archive)? == fs_err::read(&other)? {
            ui::status("Identical", format!("{name}: every file matches byte for byte"));
            fs_err::copy(archive, args.out.join(&name))?;
        } else {
            failed += 1;
            ui::warn(format!("{name} differs between the two builds:\n  {}", differing.join("\n  ")));
        }
    }
    if failed > 0 {
        return Err(error::user(format!(
            "{failed} archive(s) are not reproducible (both builds are kept in {})",
            base.display()
        )));
    }
    ui::status("Reproducible", format!("{} archive(s) built twice from scratch are identical", archives.len()));
    Ok(0)
}
