//! UEFI disk images: a unified kernel image (ukify) on an EFI system partition and an erofs root with /lib/modules, built by systemd-repart without loop devices or root, reproducibly.
//!
//! The definitions are data in `images/` (ukify.conf, os-release, repart.d/);
//! the tools and firmware come from the disk-image tools root
//! (`toolchains/images.pins`, see [`crate::toolroot`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::arch::{Arch, EfiSpec};
use crate::driver::BuiltDriver;
use crate::toolchain::install::InstallOptions;
use crate::toolroot::{self, RootSpec, ToolRoot};
use crate::{cache, error, image, secureboot};

/// The pin file, relative to the repository.
pub const PIN_FILE: &str = "toolchains/images.pins";
/// Bumped when the way the tools root is built changes.
const RECIPE: &str = "kforge-image-tools-1";
/// repart's seed: partition and disk UUIDs derive from it, so two builds of
/// the same inputs are byte-identical.
const REPART_SEED: &str = "6b666f72-6765-4469-736b-496d61676521";

/// `toolchains/images.pins`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImagePins {
    pub suite: String,
    /// Debian architectures whose systemd-stub is installed (multi-arch).
    pub architectures: Vec<String>,
    /// `name[:arch]=version`.
    pub packages: Vec<String>,
}

impl ImagePins {
    pub fn load(repo: &Path) -> Result<ImagePins> {
        let pins: ImagePins = crate::project::load_toml(&repo.join(PIN_FILE))?;
        for pin in &pins.packages {
            crate::toolchain::spec::split_pin(pin).with_context(|| format!("in {PIN_FILE}"))?;
        }
        Ok(pins)
    }

    /// What [`toolroot`] installs: the host's architecture first (mmdebstrap's
    /// native one), the others as foreign architectures.
    pub fn root_spec(&self, host_debian_arch: &str) -> RootSpec {
        let mut architectures = vec![host_debian_arch.to_string()];
        architectures.extend(self.architectures.iter().filter(|arch| *arch != host_debian_arch).cloned());
        RootSpec {
            purpose: "disk-image tools",
            cache_subdir: "image-tools",
            pin_file: PIN_FILE,
            recipe: RECIPE,
            suite: self.suite.clone(),
            architectures,
            packages: self.packages.clone(),
            marker: "usr/bin/systemd-repart",
        }
    }
}

/// Installs (if missing) and returns the disk-image tools root.
pub fn ready_tools(repo: &Path, options: &InstallOptions) -> Result<ToolRoot> {
    let pins = ImagePins::load(repo)?;
    let tools = toolroot::ready(&pins.root_spec(Arch::host()?.debian_arch), options)?;
    let missing = missing_tools(&tools);
    if !missing.is_empty() {
        return Err(error::user_hint(
            format!("the disk-image tools root {} lacks {}", tools.root.display(), missing.join(", ")),
            format!("pin the named package(s) in {}", repo.join(PIN_FILE).display()),
        ));
    }
    Ok(tools)
}

/// The programs disk images and Secure Boot run, each with the package that ships it.
const IMAGE_TOOLS: [(&str, &str); 10] = [
    ("ukify", "systemd-ukify"),
    ("systemd-repart", "systemd-repart"),
    ("/usr/lib/systemd/systemd-sbsign", "systemd-repart"),
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("mkfs.erofs", "erofs-utils"),
    ("depmod", "kmod"),
    ("sbverify", "sbsigntool"),
    ("virt-fw-vars", "python3-virt-firmware"),
    ("openssl", "openssl"),
];

/// `<tool> (package <package>)` for every [`IMAGE_TOOLS`] entry the root lacks: a
/// bare name is looked up in the root's bin and sbin directories, a path as is
/// (a symlink counts: it may point to an absolute path inside the root).
fn missing_tools(tools: &ToolRoot) -> Vec<String> {
    let present = |inside: &str| tools.host_path(inside).symlink_metadata().is_ok();
    IMAGE_TOOLS
        .iter()
        .filter(|(tool, _)| {
            if tool.starts_with('/') {
                !present(tool)
            } else {
                !["usr/bin", "usr/sbin", "bin", "sbin"].iter().any(|dir| present(&format!("{dir}/{tool}")))
            }
        })
        .map(|(tool, package)| format!("{tool} (package {package})"))
        .collect()
}

/// The UEFI facts of `arch`, or a user error saying why it has none.
pub fn efi_spec(arch: &Arch) -> Result<&EfiSpec> {
    arch.efi.as_ref().map_err(|reason| error::user(format!("{} cannot boot through UEFI: {reason}", arch.name)))
}

/// The firmware files of a boot, checked to exist in the tools root.
#[derive(Debug, Clone)]
pub struct Firmware {
    pub code: PathBuf,
    /// `None`: the firmware has no variable store in flash (see [`EfiSpec::vars`]).
    pub vars: Option<PathBuf>,
}

pub fn firmware(tools: &ToolRoot, spec: &EfiSpec, secure: bool) -> Result<Firmware> {
    let code = match (secure, spec.secure_code) {
        (false, _) => tools.host_path(spec.code),
        (true, Some(code)) => tools.host_path(code),
        (true, None) => {
            return Err(error::user(format!(
                "Debian's {} has no Secure Boot build of the firmware",
                spec.firmware_package
            )));
        }
    };
    let vars = spec.vars.map(|vars| tools.host_path(vars));
    for file in std::iter::once(&code).chain(&vars) {
        if !file.exists() {
            return Err(error::user_hint(
                format!(
                    "UEFI firmware {} is missing from the disk-image tools root {}",
                    file.display(),
                    tools.root.display()
                ),
                format!("pin the {} package in {PIN_FILE}", spec.firmware_package),
            ));
        }
    }
    Ok(Firmware { code, vars })
}

/// The kernel command line baked into the UKI: what every boot of the disk
/// needs. Per-boot parts (the verdict nonce) come from the VMM through
/// SMBIOS (`qemu`), so the disk stays the same artifact for every boot.
/// A Secure Boot UKI also enforces module signatures: `module.sig_enforce`
/// can be turned on but never off again, so no per-boot word can undo it.
pub fn uki_cmdline(arch: &Arch, secure_boot: bool) -> String {
    let base = crate::qemu::base_cmdline(arch);
    if secure_boot { format!("{base} module.sig_enforce=1") } else { base }
}

/// Everything one disk image is made of.
#[derive(Debug, Clone)]
pub struct DiskInput<'a> {
    pub repo: &'a Path,
    pub arch: &'a Arch,
    pub kernel_image: &'a Path,
    pub initramfs: &'a Path,
    /// `include/config/kernel.release` of the kernel.
    pub release: String,
    pub drivers: &'a [BuiltDriver],
    /// Sign the UKI for Secure Boot with these keys.
    pub signing: Option<&'a secureboot::KeySet>,
}

/// Builds the disk image at `out`; `work` is a scratch directory (replaced).
pub fn build(tools: &ToolRoot, input: &DiskInput<'_>, work: &Path, out: &Path) -> Result<()> {
    let spec = efi_spec(input.arch)?;
    cache::remove_dir_if_exists(work)?;
    let esp = work.join("esp");
    let root = work.join("root");
    let boot_dir = esp.join("EFI/BOOT");
    fs_err::create_dir_all(&boot_dir)?;
    fs_err::create_dir_all(&root)?;
    let epoch = image::source_date_epoch().to_string();
    let sandbox = tools.sandbox()?;
    let images = input.repo.join("images");

    // The unified kernel image, as the firmware's default boot path.
    let uki_name = format!("BOOT{}.EFI", spec.efi_arch.to_uppercase());
    let mut jail = sandbox.jail();
    jail.ro(&images, "/kforge/images");
    jail.ro(input.kernel_image, "/kforge/in/kernel");
    jail.ro(input.initramfs, "/kforge/in/initramfs");
    jail.rw(work, "/kforge/work");
    let ukify = [
        "ukify".to_string(),
        "build".to_string(),
        "--config=/kforge/images/ukify.conf".to_string(),
        "--linux=/kforge/in/kernel".to_string(),
        "--initrd=/kforge/in/initramfs".to_string(),
        format!("--cmdline={}", uki_cmdline(input.arch, input.signing.is_some())),
        format!("--uname={}", input.release),
        format!("--efi-arch={}", spec.efi_arch),
        format!("--stub=/usr/lib/systemd/boot/efi/linux{}.efi.stub", spec.efi_arch),
        format!("--output=/kforge/work/esp/EFI/BOOT/{uki_name}"),
    ];
    jail.clone()
        .env("SOURCE_DATE_EPOCH", &epoch)
        .command(&ukify)?
        .run()
        .context("ukify could not build the unified kernel image (images/ukify.conf)")?;
    if let Some(keys) = input.signing {
        secureboot::sign(&sandbox, keys, &boot_dir.join(&uki_name))?;
    }

    // The root partition: modules under /lib/modules/<release>/ with
    // modules.dep, and the same package trees as the initramfs.
    let extra = root.join("lib/modules").join(&input.release).join("extra");
    fs_err::create_dir_all(&extra)?;
    for built in input.drivers {
        image::driver_layout(built)?.write_tree(&root)?;
        for module in &built.modules {
            fs_err::copy(&module.ko, extra.join(format!("{}.ko", module.name)))?;
        }
    }
    jail.command(&["depmod", "-b", "/kforge/work/root", &input.release])?
        .run()
        .context("depmod could not index the disk's modules")?;
    let contents =
        Contents { uki_bytes: fs_err::metadata(boot_dir.join(&uki_name))?.len(), root_bytes: tree_bytes(&root)? };
    check_partitions_fit(&images.join("repart.d"), contents)?;

    // The GPT disk: repart from images/repart.d, offline (no loop devices),
    // seeded and dated so two builds are byte-identical.
    let disk_guest = "/kforge/work/disk.raw";
    let repart = [
        "systemd-repart",
        "--definitions=/kforge/images/repart.d",
        "--empty=create",
        "--size=auto",
        "--dry-run=no",
        "--offline=yes",
        "--no-pager",
        "--json=off",
        &format!("--seed={REPART_SEED}"),
        "--copy-source=/kforge/work",
        disk_guest,
    ];
    jail.env("SOURCE_DATE_EPOCH", &epoch)
        .command(&repart)?
        .run()
        .context("systemd-repart could not build the disk image (images/repart.d)")?;
    if let Some(parent) = out.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::rename(work.join("disk.raw"), out)?;
    Ok(())
}

/// What a FAT file system of the ESP's size takes for itself (its tables and
/// root directory), with room to spare.
const FAT_OVERHEAD: u64 = 2 << 20;

/// What each partition must hold: the UKI (ESP) and the root tree's bytes.
#[derive(Debug, Clone, Copy)]
struct Contents {
    uki_bytes: u64,
    root_bytes: u64,
}

/// Fails, naming the definition and both sizes, when a definition's
/// `SizeMaxBytes=` caps its partition below what it must hold (repart's own
/// message names neither): the ESP needs the UKI plus [`FAT_OVERHEAD`]; an
/// uncompressed root at least its files' bytes (a lower bound: a root with
/// `Compression=` is not checked).
fn check_partitions_fit(definitions: &Path, contents: Contents) -> Result<()> {
    let mut paths: Vec<PathBuf> =
        fs_err::read_dir(definitions)?.map(|entry| entry.map(|entry| entry.path())).collect::<std::io::Result<_>>()?;
    paths.sort();
    for path in paths.iter().filter(|path| path.extension().is_some_and(|ext| ext == "conf")) {
        let text = fs_err::read_to_string(path)?;
        let Some((kind, max)) = size_cap(&text) else { continue };
        let (needed, what) = match kind.as_str() {
            "esp" => (
                contents.uki_bytes + FAT_OVERHEAD,
                format!(
                    "the unified kernel image needs {} bytes plus {FAT_OVERHEAD} for the FAT itself",
                    contents.uki_bytes
                ),
            ),
            "root" if !text.lines().any(|line| line.trim().starts_with("Compression=")) => {
                (contents.root_bytes, format!("its files take {} bytes", contents.root_bytes))
            }
            _ => continue,
        };
        if needed > max {
            return Err(error::user_hint(
                format!(
                    "the {} partition ({}) is too small: SizeMaxBytes= allows {max} bytes, {what}",
                    if kind == "esp" { "EFI system" } else { &kind },
                    path.display()
                ),
                "raise SizeMaxBytes= (and SizeMinBytes=) in that file",
            ));
        }
    }
    Ok(())
}

/// `Type=` and `SizeMaxBytes=` (in bytes) of a repart definition that caps its size.
fn size_cap(definition: &str) -> Option<(String, u64)> {
    let value = |key: &str| {
        definition.lines().find_map(|line| line.trim().strip_prefix(key).map(|rest| rest.trim().to_string()))
    };
    let kind = value("Type=")?;
    let size = value("SizeMaxBytes=")?;
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let shift = match unit {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|number| (kind, number << shift))
}

/// The bytes of every regular file under `dir`.
fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += tree_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Writes a copy of `disk` whose UKI has one byte of its kernel changed (for
/// the Secure Boot refusal test). The UKI is found by its `.linux` section
/// header; a fresh FAT file system stores it in consecutive clusters, so the
/// section's bytes follow the header in the disk. Should that not hold, the
/// flipped byte lands elsewhere, the UKI still verifies, and the refusal test
/// fails: it can never pass wrongly.
pub fn tamper_uki(disk: &Path, out: &Path) -> Result<()> {
    let mut bytes = fs_err::read(disk)?;
    let offset =
        linux_section_byte(&bytes).with_context(|| format!("no unified kernel image found in {}", disk.display()))?;
    bytes[offset] ^= 0xff;
    cache::write_atomic(out, &bytes)
}

/// The disk offset of a byte in the middle of the UKI's `.linux` section.
fn linux_section_byte(disk: &[u8]) -> Option<usize> {
    let header = disk.windows(8).position(|window| window == b".linux\0\0")?;
    let field = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(disk.get(header + at..header + at + 4)?.try_into().ok()?) as usize)
    };
    let (raw_size, raw_pointer) = (field(16)?, field(20)?);
    // The PE file starts with "MZ" on a sector boundary before its section table.
    let start = (0..=header / 512).rev().map(|sector| sector * 512).find(|&at| disk.get(at..at + 2) == Some(b"MZ"))?;
    let offset = start + raw_pointer + raw_size / 2;
    (raw_size > 0 && offset < disk.len()).then_some(offset)
}

/// The release string of a built kernel (`include/config/kernel.release`).
pub fn kernel_release(build_dir: &Path) -> Result<String> {
    let path = build_dir.join("include/config/kernel.release");
    Ok(fs_err::read_to_string(&path)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_root_without_a_program_names_it_and_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let tools = ToolRoot { root: dir.path().to_path_buf() };
        assert_eq!(missing_tools(&tools).len(), IMAGE_TOOLS.len());
        for (tool, _) in IMAGE_TOOLS {
            let path =
                if tool.starts_with('/') { tools.host_path(tool) } else { tools.host_path("usr/bin").join(tool) };
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            if tool == "depmod" {
                // Debian's depmod is a symlink to kmod, absolute inside the root.
                std::os::unix::fs::symlink("/usr/bin/kmod", tools.host_path("usr/bin/depmod")).unwrap();
            } else if tool != "mkfs.erofs" {
                fs_err::write(&path, "").unwrap();
            }
        }
        assert_eq!(missing_tools(&tools), ["mkfs.erofs (package erofs-utils)"]);
        fs_err::create_dir_all(tools.host_path("usr/sbin")).unwrap();
        fs_err::write(tools.host_path("usr/sbin/mkfs.erofs"), "").unwrap();
        assert!(missing_tools(&tools).is_empty());
    }

    #[test]
    fn pins_load_and_put_the_host_architecture_first() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pins = ImagePins::load(&repo).unwrap();
        assert!(pins.packages.iter().any(|pin| pin.starts_with("systemd-repart=")), "{pins:?}");
        assert_eq!(pins.root_spec("arm64").architectures[0], "arm64");
        assert_eq!(pins.root_spec("amd64").architectures[0], "amd64");
        let spec = pins.root_spec("amd64");
        assert_eq!(spec.architectures.iter().filter(|arch| *arch == "amd64").count(), 1);
    }

    #[test]
    fn the_tampered_byte_is_inside_the_linux_section() {
        // A fake disk: 2 sectors of zeros, then a "PE" at 1024 whose section
        // table names .linux at raw offset 4096, 2048 bytes long.
        let mut disk = vec![0u8; 1024];
        let mut pe = vec![0u8; 8192];
        pe[..2].copy_from_slice(b"MZ");
        pe[400..408].copy_from_slice(b".linux\0\0");
        pe[416..420].copy_from_slice(&2048u32.to_le_bytes());
        pe[420..424].copy_from_slice(&4096u32.to_le_bytes());
        disk.extend(pe);
        assert_eq!(linux_section_byte(&disk), Some(1024 + 4096 + 1024));
        assert_eq!(linux_section_byte(&[0u8; 4096]), None);
    }

    #[test]
    fn a_partition_too_small_for_its_contents_names_the_file_and_the_sizes() {
        assert_eq!(size_cap("[Partition]\nType=esp\nSizeMaxBytes=100M\n"), Some(("esp".into(), 100 << 20)));
        assert_eq!(size_cap("[Partition]\nType=root\nMinimize=best\n"), None);
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("10-esp.conf"), "[Partition]\nType=esp\nSizeMaxBytes=8M\n").unwrap();
        fs_err::write(dir.path().join("20-root.conf"), "[Partition]\nType=root\nSizeMaxBytes=1M\n").unwrap();
        let fits = Contents { uki_bytes: 5 << 20, root_bytes: 1 << 19 };
        check_partitions_fit(dir.path(), fits).unwrap();
        let err = check_partitions_fit(dir.path(), Contents { uki_bytes: 7 << 20, ..fits }).unwrap_err().to_string();
        assert!(err.contains("the EFI system partition") && err.contains("10-esp.conf"), "{err}");
        assert!(err.contains("8388608") && err.contains("7340032"), "{err}");
        let err = check_partitions_fit(dir.path(), Contents { root_bytes: 2 << 20, ..fits }).unwrap_err().to_string();
        assert!(err.contains("root partition") && err.contains("20-root.conf"), "{err}");
        assert!(err.contains("1048576") && err.contains("2097152"), "{err}");
        // A compressed root may hold more than its cap in file bytes: not checked.
        fs_err::write(dir.path().join("20-root.conf"), "[Partition]\nType=root\nSizeMaxBytes=1M\nCompression=lz4\n")
            .unwrap();
        check_partitions_fit(dir.path(), Contents { root_bytes: 2 << 20, ..fits }).unwrap();
        // The repository's own definitions hold a UKI of today's size (12 MiB x86_64) and any root.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/repart.d");
        check_partitions_fit(&repo, Contents { uki_bytes: 12 << 20, root_bytes: 1 << 30 }).unwrap();
    }

    #[test]
    fn tree_bytes_counts_every_file_below() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("lib/modules")).unwrap();
        fs_err::write(dir.path().join("a"), [0u8; 10]).unwrap();
        fs_err::write(dir.path().join("lib/modules/b.ko"), [0u8; 32]).unwrap();
        assert_eq!(tree_bytes(dir.path()).unwrap(), 42);
    }

    #[test]
    fn arches_without_uefi_say_why() {
        let s390 = Arch::find("s390").unwrap();
        let err = efi_spec(s390).unwrap_err().to_string();
        assert!(err.contains("s390 cannot boot through UEFI"), "{err}");
        assert_eq!(efi_spec(Arch::find("x86_64").unwrap()).unwrap().efi_arch, "x64");
    }
}
