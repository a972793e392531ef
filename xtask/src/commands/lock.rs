//! `cargo xtask lock [--check] [--install]`: writes kforge.lock (every toolchain and kernel), or checks that it is up to date.

use anyhow::Result;
use clap::Args;

use super::{Context, GlobalArgs};
use crate::lock::{self, Lockfile};
use crate::toolchain::{Toolchain, spec};
use crate::{error, ui};

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Change nothing; exit non-zero, naming each difference, when kforge.lock is not what `lock` would write.
    #[arg(long)]
    pub check: bool,
    /// Install every Debian toolchain root that is missing first, so its packages are locked too.
    #[arg(long, conflicts_with = "check")]
    pub install: bool,
}

pub fn run(args: LockArgs, global: &GlobalArgs) -> Result<i32> {
    let context = Context::load()?;
    let path = context.repo.join(lock::FILE);
    if args.install {
        for id in spec::list_ids(&context.repo)? {
            let toolchain = Toolchain::load(&context.repo, &id)?;
            // Only Debian roots have packages to lock; rustup and host tools are locked by version.
            if toolchain.spec.debian.is_some() {
                toolchain.provider().install(&toolchain, &global.install_options())?;
            }
        }
    }
    // An unreadable file is what `lock` is there to replace; `--check` reports it.
    let previous = match Lockfile::read(&context.repo) {
        Ok(previous) => previous,
        Err(err) if !args.check => {
            ui::warn(format!("replacing {}, which cannot be read: {err:#}", path.display()));
            None
        }
        Err(err) => return Err(err),
    };
    let (generated, notes) = lock::generate(&context.repo, &context.project, previous.as_ref())?;
    let text = generated.render();
    let on_disk = if path.is_file() { Some(fs_err::read_to_string(&path)?) } else { None };
    for note in &notes {
        if note.contains("not locked") { ui::warn(note) } else { ui::status("Locking", note) }
    }
    if on_disk.as_deref() == Some(text.as_str()) {
        ui::status("Fresh", format!("{} is up to date", path.display()));
        return Ok(error::EXIT_OK);
    }
    if args.check {
        let differences = match &previous {
            None => vec![format!("{} does not exist", path.display())],
            Some(previous) => {
                let found = lock::differences(previous, &generated, true);
                if found.is_empty() {
                    vec!["it is not laid out the way `cargo xtask lock` writes it".to_string()]
                } else {
                    found
                }
            }
        };
        return Err(error::user_hint(
            format!("{} is out of date:\n  {}", path.display(), differences.join("\n  ")),
            lock::UPDATE_HINT,
        ));
    }
    fs_err::write(&path, &text)?;
    ui::status("Wrote", path.display().to_string());
    Ok(error::EXIT_OK)
}
