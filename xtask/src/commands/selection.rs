//! `Selection`: the flags that choose cells and packages (`--kernel`, `--arch`, `--cell`, `--driver`, `--suite`, `--profile`), one type flattened into every command that builds, resolved to cells in one place.

use anyhow::Result;
use clap::Args;

use super::Context;
use crate::driver::Driver;
use crate::error;
use crate::matrix::Cell;
use crate::project::{BootMethod, BootMode, Profile};

/// Which cells and packages a command works on. Every flag is optional: what
/// is not given comes from kforge.toml's `[matrix]`.
#[derive(Debug, Clone, Default, Args)]
pub struct Selection {
    /// Comma-separated kernel ids or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Comma-separated arches or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub arch: Option<String>,
    /// One cell by id (`<kernel>-<arch>-<profile>`, e.g. 7.2-x86_64-release; `<kernel>-<arch>` takes --profile).
    #[arg(long, conflicts_with_all = ["arch", "kernel"])]
    pub cell: Option<String>,
    /// Comma-separated driver names or `all` (default: kforge.toml's matrix).
    #[arg(long)]
    pub driver: Option<String>,
    /// Add every package of this suite (e.g. `samples`, `kernel-doctests`, `seeded-bugs`).
    #[arg(long)]
    pub suite: Option<String>,
    /// Test profile: `debug` (SMP, lockdep, KASAN where it exists with Rust, kmemleak, Rust debug
    /// assertions) or `release` (the minimal kernel). Default: kforge.toml's [matrix] profile, else
    /// debug (`dist`: release).
    #[arg(long, env = "KFORGE_PROFILE")]
    pub profile: Option<Profile>,
}

impl Selection {
    /// Only `--arch`, `--kernel` and `--profile` (what `ci matrix` takes).
    pub fn of(kernel: Option<String>, arch: Option<String>, profile: Option<Profile>) -> Selection {
        Selection { kernel, arch, profile, ..Selection::default() }
    }

    /// The selected cells, kernels in kforge.toml's order, then arches; the
    /// profile is `--profile`, else kforge.toml's `[matrix] profile`, else debug.
    pub fn cells(&self, context: &Context) -> Result<Vec<Cell>> {
        self.cells_in(context, context.project.test_profile(self.profile))
    }

    /// The selected cells when the command's own default profile is `default`
    /// (`dist` ships release unless told otherwise).
    pub fn cells_or(&self, context: &Context, default: Profile) -> Result<Vec<Cell>> {
        self.cells_in(context, self.profile.unwrap_or(default))
    }

    fn cells_in(&self, context: &Context, profile: Profile) -> Result<Vec<Cell>> {
        if let Some(id) = &self.cell {
            return parse_cell(context, id, profile).map(|cell| vec![cell]);
        }
        let kernels = context.project.select_kernels(self.kernel.as_deref())?;
        let arches = context.arches(self.arch.as_deref())?;
        let mut cells = Vec::new();
        for kernel in kernels {
            for arch in &arches {
                cells.push(Cell { kernel: kernel.clone(), arch, profile });
            }
        }
        Ok(cells)
    }

    /// The one cell a command works on (`run`, `sdk`, `kernel build`,
    /// `rust-analyzer`): refused, naming the choices, when the selection
    /// holds several.
    pub fn one_cell(&self, context: &Context, command: &str) -> Result<Cell> {
        let mut cells = self.cells(context)?;
        if cells.len() == 1 {
            return Ok(cells.remove(0));
        }
        let labels: Vec<String> = cells.iter().map(Cell::label).collect();
        Err(error::user_hint(
            format!("`cargo xtask {command}` works on one cell; the selection holds {}", labels.join(", ")),
            "choose one with --arch ARCH (and --kernel ID), or --cell <kernel>-<arch>-<profile>",
        ))
    }

    /// These flags (but `--profile`) as arguments, for a re-run of kforge.
    pub fn forwarded_without_profile(&self) -> Vec<String> {
        let flags = [
            ("--kernel", &self.kernel),
            ("--arch", &self.arch),
            ("--cell", &self.cell),
            ("--driver", &self.driver),
            ("--suite", &self.suite),
        ];
        flags
            .into_iter()
            .filter_map(|(flag, value)| value.as_ref().map(|value| [flag.to_string(), value.clone()]))
            .flatten()
            .collect()
    }

    /// The selected packages: `--driver` and/or `--suite`, else the matrix's.
    pub fn drivers(&self, context: &Context) -> Result<Vec<Driver>> {
        context.drivers_of(self.driver.as_deref(), self.suite.as_deref())
    }
}

/// Parses `<kernel>-<arch>-<profile>`, or `<kernel>-<arch>` in `profile`
/// (kernel ids may contain dashes; arch and profile are the suffix).
pub fn parse_cell(context: &Context, id: &str, profile: Profile) -> Result<Cell> {
    let (rest, profile) = Profile::ALL
        .into_iter()
        .find_map(|known| id.strip_suffix(&format!("-{known}")).map(|rest| (rest, known)))
        .unwrap_or((id, profile));
    for arch in crate::arch::ARCHES {
        if let Some(kernel_id) = rest.strip_suffix(&format!("-{}", arch.name)) {
            let kernel = context.project.kernel(kernel_id)?.clone();
            return Ok(Cell { kernel, arch, profile });
        }
    }
    Err(error::user(format!(
        "`{id}` is not a cell id; cell ids look like <kernel>-<arch>-<profile>, e.g. 7.2-x86_64-release"
    )))
}

/// Cells of one kernel and profile: what `pipeline::ready_kernel` readies at once.
pub struct KernelGroup {
    pub kernel: crate::project::KernelEntry,
    pub profile: Profile,
    pub arches: Vec<&'static crate::arch::Arch>,
}

impl KernelGroup {
    pub fn cell(&self, arch: &'static crate::arch::Arch) -> Cell {
        Cell { kernel: self.kernel.clone(), arch, profile: self.profile }
    }
}

/// `cells` grouped by kernel and profile, in their order.
pub fn by_kernel(cells: &[Cell]) -> Vec<KernelGroup> {
    let mut groups: Vec<KernelGroup> = Vec::new();
    for cell in cells {
        match groups.iter_mut().find(|group| group.kernel.id == cell.kernel.id && group.profile == cell.profile) {
            Some(group) => group.arches.push(cell.arch),
            None => {
                groups.push(KernelGroup { kernel: cell.kernel.clone(), profile: cell.profile, arches: vec![cell.arch] })
            }
        }
    }
    groups
}

/// How `test` and `run` boot (`--boot`, `--secure-boot`).
#[derive(Debug, Clone, Default, Args)]
pub struct BootArgs {
    /// `direct` (QEMU loads kernel and initramfs) or `efi` (UEFI firmware boots kforge's
    /// disk image: a unified kernel image on a GPT disk). Default: kforge.toml's [matrix] boot, else direct.
    #[arg(long, value_enum)]
    pub boot: Option<BootMethod>,
    /// Boot the disk under enforced Secure Boot: the UKI signed with the project's db key,
    /// the keys enrolled into the firmware's variable store. Implies --boot efi.
    #[arg(long)]
    pub secure_boot: bool,
}

impl BootArgs {
    pub fn mode(&self, context: &Context) -> Result<BootMode> {
        BootMode::choose(self.boot, self.secure_boot, &context.project.matrix)
    }
}
