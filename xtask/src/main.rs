//! kforge's command line: parses arguments and dispatches to one file per subcommand under `commands/`.

mod analyzer;
mod arch;
mod archive;
mod bench;
mod browser;
mod cache;
mod ccache;
mod ci;
mod commands;
mod console;
mod disk;
mod dist;
mod driver;
mod error;
mod fetch;
mod guard;
mod hostdeps;
mod image;
mod installed;
mod jobserver;
mod kernel;
mod ktap;
mod lock;
mod matrix;
mod modsign;
mod names;
mod outdir;
mod package;
mod paths;
mod pipeline;
mod process;
mod progress;
mod project;
mod qemu;
mod report;
mod safefs;
mod sandbox;
mod scaffold;
mod sdk;
mod secureboot;
mod seeded;
mod session;
mod stage;
#[cfg(test)]
mod test_support;
mod toolchain;
mod toolroot;
mod ui;
mod version;

use clap::{Parser, Subcommand};

use commands::GlobalArgs;

/// kforge: pinned toolchains, cross-built Rust kernels, QEMU boots and KTAP results.
///
/// Exit codes: 0 everything passed, 1 a test failed, 2 something before the
/// tests failed (bad input, toolchain, build, boot), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, disable_help_subcommand = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pinned toolchains: list, install, verify, shell.
    Toolchain(commands::toolchain::ToolchainArgs),
    /// Build a kernel for an arch.
    Kernel(commands::kernel::KernelArgs),
    /// Our out-of-tree Rust drivers: list, build.
    Drivers(commands::drivers::DriversArgs),
    /// Build the test initramfs.
    Image(commands::image::ImageArgs),
    /// Build and boot one arch interactively.
    Run(commands::run::RunArgs),
    /// Build, boot and test the matrix; write results.json, junit.xml and report.html.
    Test(commands::test::TestArgs),
    /// Export a kernel's Rust SDK (a tarball) for building modules without the full tree.
    Sdk(commands::sdk::SdkArgs),
    /// Debian packages for a distro kernel: linux-librust, DKMS and prebuilt modules (lintian-checked).
    Package(commands::package::PackageArgs),
    /// Release archives per cell (kernel, stripped modules, initramfs, SHA256SUMS, manifest, SBOM).
    Dist(commands::dist::DistArgs),
    /// Download everything a matrix needs (toolchain packages, kernel sources, busybox) into the store.
    Fetch(commands::fetch::FetchArgs),
    /// Render a results.json as the HTML report (and, optionally, a screenshot of it).
    Report(commands::report::ReportArgs),
    /// CI integration: the matrix for CI jobs, merging their results, the GitHub/GitLab files.
    Ci(commands::ci::CiArgs),
    /// Write kforge.lock (exact pins, installed packages, kernel sources, config fragments), or --check it.
    Lock(commands::lock::LockArgs),
    /// Time the inner loop (a no-op run, one edited driver on one arch and on all) and kforge against plain make and kunit.py, and write docs/bench.json.
    Bench(commands::bench::BenchArgs),
    /// Parse KTAP out of a saved console log.
    Ktap(commands::ktap::KtapArgs),
    /// Write rust-project.json into each driver so editors resolve `kernel::`.
    RustAnalyzer(commands::rust_analyzer::RustAnalyzerArgs),
    /// Scaffold a new out-of-tree Rust driver in drivers/.
    NewDriver(commands::new_driver::NewDriverArgs),
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|first| first == guard::GUARD_ARG) {
        guard::run(&args[2..]);
    }
    if let Ok(program) = std::env::current_exe() {
        process::enable_guard(program);
    }
    let cli = Cli::parse();
    let verbosity = if cli.global.quiet {
        ui::Verbosity::Quiet
    } else if cli.global.verbose {
        ui::Verbosity::Verbose
    } else {
        ui::Verbosity::Normal
    };
    ui::init(verbosity);
    progress::install(Box::new(ui::TerminalSink));
    process::install_interrupt_handler();
    let global = cli.global.clone();
    session::set(global.session.clone());
    if builds(&cli.command)
        && let Err(err) = paths::repo_root().and_then(|repo| lock::check_inputs_if_locked(&repo))
    {
        ui::error(&error::render(&err));
        std::process::exit(error::EXIT_INFRA);
    }
    let result = match cli.command {
        Command::Toolchain(args) => commands::toolchain::run(args, &global),
        Command::Kernel(args) => commands::kernel::run(args, &global),
        Command::Drivers(args) => commands::drivers::run(args, &global),
        Command::Image(args) => commands::image::run(args, &global),
        Command::Run(args) => commands::run::run(args, &global),
        Command::Test(args) => commands::test::run(args, &global),
        Command::Fetch(args) => commands::fetch::run(args, &global),
        Command::Report(args) => commands::report::run(args),
        Command::Ci(args) => commands::ci::run(args),
        Command::Ktap(args) => commands::ktap::run(args),
        Command::Bench(args) => commands::bench::run(args, &global),
        Command::Lock(args) => commands::lock::run(args, &global),
        Command::Dist(args) => commands::dist::run(args, &global),
        Command::Package(args) => commands::package::run(args, &global),
        Command::Sdk(args) => commands::sdk::run(args, &global),
        Command::NewDriver(args) => commands::new_driver::run(args),
        Command::RustAnalyzer(args) => commands::rust_analyzer::run(args, &global),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) if error::is_interrupted(&err) || process::interrupted() => {
            ui::warn("interrupted; stopped every child process (cache entries in progress were not published)");
            error::EXIT_INTERRUPTED
        }
        Err(err) => {
            ui::error(&error::render(&err));
            error::EXIT_INFRA
        }
    };
    std::process::exit(code);
}

/// Whether `command` installs, builds or boots anything (what `--locked` guards).
fn builds(command: &Command) -> bool {
    use commands::kernel::KernelCommand;
    use commands::toolchain::ToolchainCommand;
    match command {
        Command::Toolchain(args) => {
            matches!(args.command, ToolchainCommand::Install { dry_run: false, .. } | ToolchainCommand::Shell { .. })
        }
        Command::Kernel(args) => !matches!(args.command, KernelCommand::Build { dry_run: true, .. }),
        Command::Drivers(args) => matches!(args.command, commands::drivers::DriversCommand::Build { .. }),
        Command::Image(_)
        | Command::Run(_)
        | Command::Test(_)
        | Command::Dist(_)
        | Command::Package(_)
        | Command::Fetch(_)
        | Command::Sdk(_)
        | Command::RustAnalyzer(_)
        | Command::Bench(_) => true,
        Command::Report(_) | Command::Ci(_) | Command::Ktap(_) | Command::Lock(_) | Command::NewDriver(_) => false,
    }
}
