//! `cargo xtask rust-analyzer`: write rust-project.json into each driver so editors resolve `kernel::` items.

use anyhow::Result;
use clap::Args;

use super::selection::Selection;
use super::{Context, GlobalArgs};
use crate::{analyzer, error, pipeline, ui};

#[derive(Debug, Args)]
pub struct RustAnalyzerArgs {
    /// The cell whose kernel build the editor should see: the selection's
    /// first (default: kforge.toml's first kernel and arch). `--driver`
    /// defaults to every driver that builds its own module.
    #[command(flatten)]
    pub selection: Selection,
    /// Also run `rust-analyzer diagnostics` (from the toolchain) and fail on unresolved names.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: RustAnalyzerArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let cells = args.selection.cells(&context)?;
    let cell = cells.first().ok_or_else(|| error::user("the selection holds no cell"))?;
    let (kernel, arch) = (&cell.kernel, cell.arch);
    let drivers: Vec<_> = context
        .drivers_of(Some(args.selection.driver.as_deref().unwrap_or("all")), args.selection.suite.as_deref())?
        .into_iter()
        .filter(|driver| driver.meta.module.is_some())
        .collect();
    let ready = pipeline::ready_kernel(&context.repo, kernel, &[arch], &global.install_options())?;
    // The kernel the default matrix builds for this arch, so its cache is shared with `test`.
    let matrix_drivers = context.drivers(None)?;
    let dir = context.output.join("rust-analyzer");
    let build = pipeline::prepare_cell(&pipeline::CellRequest {
        repo: &context.repo,
        kernel,
        arch,
        profile: cell.profile,
        ready: &ready,
        drivers: &matrix_drivers,
        keys: None,
        dir: &dir.join(cell.id()),
        initramfs: None,
        strip_modules: false,
        through: pipeline::Through::Kernel,
    })?
    .kernel;
    let pipeline::ReadyKernel { toolchain, source } = ready;
    let mut problems = 0;
    for driver in &drivers {
        let work = dir.join(&driver.name);
        let json = analyzer::generate(driver, arch, &toolchain, &source, &build, &work)?;
        let host = analyzer::to_host_paths(&json, &source.dir, &build.dir, &driver.dir, &toolchain.root)?;
        let target = driver.dir.join("rust-project.json");
        crate::cache::write_atomic(&target, host)?;
        ui::status("Wrote", format!("{} (kernel {}/{})", target.display(), kernel.id, arch.name));
        if args.check {
            let (unresolved, text) = analyzer::unresolved(&toolchain, &source, &build, &work)?;
            if unresolved.is_empty() {
                ui::status("Checked", format!("{}: rust-analyzer resolves every name", driver.name));
                ui::detail(text);
            } else {
                problems += unresolved.len();
                ui::warn(format!(
                    "{}: {} unresolved names:\n  {}",
                    driver.name,
                    unresolved.len(),
                    unresolved.join("\n  ")
                ));
            }
        }
    }
    if problems > 0 {
        return Err(error::user(format!("rust-analyzer reported {problems} unresolved names")));
    }
    Ok(0)
}
