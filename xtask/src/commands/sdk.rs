//! `cargo xtask sdk`: export a built kernel's Rust SDK, a tarball that `drivers build --sdk` (or plain Kbuild) builds modules against without the full tree.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::selection::Selection;
use super::{Context, GlobalArgs};
use crate::kernel::source;
use crate::{pipeline, sdk, ui};

#[derive(Debug, Args)]
pub struct SdkArgs {
    /// One cell: `--arch` picks it from the matrix's kernel (or give --kernel, or --cell).
    #[command(flatten)]
    pub selection: Selection,
    /// Where to write the tarball (default: target/kforge/sdk/kforge-sdk-<kernel>-<arch>.tar.gz).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: SdkArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let cell = args.selection.one_cell(&context, "sdk")?;
    let (kernel, arch) = (&cell.kernel, cell.arch);
    // The kernel `kernel build` and `test` build: configured for the matrix's drivers (and any selected).
    let drivers = args.selection.drivers(&context)?;
    let ready = pipeline::ready_kernel(&context.repo, kernel, &[arch], &global.install_options())?;
    let prepared = pipeline::prepare_cell(&pipeline::CellRequest {
        repo: &context.repo,
        kernel,
        arch,
        profile: cell.profile,
        ready: &ready,
        drivers: &drivers,
        keys: None,
        dir: &context.output.join("sdk").join(cell.id()),
        initramfs: None,
        strip_modules: false,
        through: pipeline::Through::Kernel,
    })?;
    let pipeline::ReadyKernel { toolchain, source } = ready;
    let (plan, build) = (prepared.plan, prepared.kernel);
    let archive = args.out.unwrap_or_else(|| context.output.join("sdk").join(sdk::archive_name(&kernel.id, arch)));
    let started = Instant::now();
    let input = sdk::ExportInput {
        kernel_id: &kernel.id,
        kernel_version: &kernel.version,
        source_identity: &source::identity(&kernel.source)?,
        build_key: &plan.key,
        arch,
        toolchain: &toolchain,
        source_dir: &source.dir,
        build_dir: &build.dir,
    };
    let exported = sdk::export(&input, &archive)?;
    let megabytes = |bytes: u64| bytes as f64 / 1_000_000.0;
    ui::status(
        "Packed",
        format!(
            "SDK of kernel {}/{}: {} files, {:.1} MB unpacked, {:.1} MB archive, in {:.1} s",
            kernel.id,
            arch.name,
            exported.files,
            megabytes(exported.unpacked_bytes),
            megabytes(exported.archive_bytes),
            started.elapsed().as_secs_f64()
        ),
    );
    println!("{}", exported.archive.display());
    Ok(0)
}
