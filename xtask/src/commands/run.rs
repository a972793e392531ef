//! `cargo xtask run --arch A`: build everything and boot it interactively (serial console on this terminal).

use anyhow::Result;
use clap::Args;

use super::selection::{BootArgs, Selection};
use super::{Context, GlobalArgs};
use crate::project::BootMethod;
use crate::qemu;
use crate::{pipeline, ui};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// One cell: `--arch` picks it from the matrix's kernel (or give --kernel, or --cell).
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub boot: BootArgs,
}

pub fn run(args: RunArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let cell = args.selection.one_cell(&context, "run")?;
    let boot_mode = args.boot.mode(&context)?;
    let keys = pipeline::check_secure_boot(
        &context.repo,
        boot_mode.secure_boot,
        &context.project.boot,
        &global.install_options(),
    )?;
    let (kernel, arch) = (&cell.kernel, cell.arch);
    let drivers = args.selection.drivers(&context)?;
    let ready = pipeline::ready_kernel(&context.repo, kernel, &[arch], &global.install_options())?;
    let dir = context.output.join("run").join(cell.id());
    let prepared = pipeline::prepare_cell(&pipeline::CellRequest {
        repo: &context.repo,
        kernel,
        arch,
        profile: cell.profile,
        ready: &ready,
        drivers: &drivers,
        keys: keys.as_ref(),
        dir: &dir,
        initramfs: None,
        strip_modules: false,
        through: pipeline::Through::Initramfs,
    })?;
    let initrd = prepared.initramfs.clone().expect("prepared through the initramfs");
    let media = match boot_mode.method {
        BootMethod::Direct => qemu::Media::Direct { kernel: prepared.kernel.image.clone(), initrd },
        BootMethod::Efi => {
            let request = pipeline::DiskRequest {
                repo: &context.repo,
                arch,
                kernel: &prepared.kernel,
                initrd: &initrd,
                drivers: &prepared.drivers,
                keys: keys.as_ref(),
                install: &global.install_options(),
            };
            qemu::Media::Efi(pipeline::efi_media(&request, &dir)?)
        }
    };
    let devices: Vec<String> = prepared.active.iter().flat_map(|driver| driver.meta.qemu_devices.clone()).collect();
    let nonce = qemu::new_nonce()?;
    let spec = cell.boot_spec(&context.project.boot, &devices, true, &nonce);
    let cmd = qemu::command(&ready.toolchain.sandbox()?, &spec, &media)?;
    ui::info("kforge: booting; the tests run first, then a shell. Quit QEMU with Ctrl-A X.");
    let status = cmd.run_interactive()?;
    Ok(status.code().unwrap_or(0))
}
