//! `cargo xtask image [initramfs|disk]`: the initramfs of a cell (busybox, /init, modules, tests), or its UEFI disk image (UKI on an ESP, erofs root with /lib/modules); both deterministic.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::selection::{Selection, by_kernel};
use super::{Context, GlobalArgs};
use crate::{disk, error, pipeline, ui};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageKind {
    /// The gzip'd cpio QEMU boots directly (`-initrd`).
    Initramfs,
    /// A raw GPT disk UEFI firmware boots: the unified kernel image (kernel, the
    /// initramfs, command line) on the ESP, modules and tests on an erofs root.
    Disk,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to build (default: initramfs).
    #[arg(value_enum, default_value = "initramfs")]
    pub kind: ImageKind,
    #[command(flatten)]
    pub selection: Selection,
    /// Write the image here (one cell only; default: under the output directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sign the disk's UKI for Secure Boot with the project key set (disk only).
    #[arg(long)]
    pub secure_boot: bool,
}

pub fn run(args: ImageArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let drivers = args.selection.drivers(&context)?;
    let cells = args.selection.cells(&context)?;
    if args.out.is_some() && cells.len() != 1 {
        return Err(error::user_hint(
            format!("--out names one file, but the selection holds {} cells", cells.len()),
            "choose one with --arch ARCH (and --kernel ID), or --cell",
        ));
    }
    if args.secure_boot && args.kind != ImageKind::Disk {
        return Err(error::user("--secure-boot signs a disk image; use `cargo xtask image disk --secure-boot`"));
    }
    if args.kind == ImageKind::Disk {
        for cell in &cells {
            disk::efi_spec(cell.arch)?;
        }
    }
    let keys =
        pipeline::check_secure_boot(&context.repo, args.secure_boot, &context.project.boot, &global.install_options())?;
    for group in by_kernel(&cells) {
        let kernel = &group.kernel;
        let ready = pipeline::ready_kernel(&context.repo, kernel, &group.arches, &global.install_options())?;
        for &arch in &group.arches {
            let cell = group.cell(arch);
            let dir = context.output.join("images").join(cell.id());
            let initramfs_out = match (args.kind, &args.out) {
                (ImageKind::Initramfs, Some(out)) => Some(out.as_path()),
                _ => None,
            };
            let prepared = pipeline::prepare_cell(&pipeline::CellRequest {
                repo: &context.repo,
                kernel,
                arch,
                profile: cell.profile,
                ready: &ready,
                drivers: &drivers,
                keys: keys.as_ref(),
                dir: &dir,
                initramfs: initramfs_out,
                strip_modules: false,
                through: pipeline::Through::Initramfs,
            })?;
            let image = prepared.initramfs.clone().expect("prepared through the initramfs");
            if args.kind == ImageKind::Initramfs {
                println!("{}", image.display());
                continue;
            }
            let out = args.out.clone().unwrap_or_else(|| dir.join("disk.raw"));
            ui::status("Assembling", format!("UEFI disk image for {}", cell.label()));
            let request = pipeline::DiskRequest {
                repo: &context.repo,
                arch,
                kernel: &prepared.kernel,
                initrd: &image,
                drivers: &prepared.drivers,
                keys: keys.as_ref(),
                install: &global.install_options(),
            };
            pipeline::build_disk(&request, &out)?;
            println!("{}", out.display());
        }
    }
    Ok(0)
}
