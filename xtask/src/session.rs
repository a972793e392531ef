//! The session: the options of one kforge run that every layer reads (network, lock, mirror, jobs, sandbox, directories, timeouts, ccache), parsed once by clap from flags and their `KFORGE_*` variables.
//!
//! `main` parses the command line, whose global options are this struct
//! (flattened into `commands::GlobalArgs`), and calls [`set`] once. Lower
//! layers read [`current`]; none of them reads a `KFORGE_*` variable itself.
//! A command that runs kforge again passes [`Session::forwarded`] on, so the
//! inner run sees the same session. Outside `main` (unit tests), the session
//! is parsed from the environment alone, each time it is read.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, ValueEnum};

/// The options every command shares, each also settable by its variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct Session {
    /// Debian mirror URL for toolchain roots (default: mmdebstrap's).
    #[arg(long, global = true, value_name = "URL", env = "KFORGE_MIRROR")]
    pub mirror: Option<String>,
    /// Touch no network: use only what `cargo xtask fetch` put in the store.
    #[arg(long, global = true, env = "KFORGE_OFFLINE", value_parser = FalseyValueParser::new())]
    pub offline: bool,
    /// Refuse to install, build or boot anything when the inputs differ from kforge.lock.
    #[arg(long, global = true, env = "KFORGE_LOCKED", value_parser = FalseyValueParser::new())]
    pub locked: bool,
    /// Parallel make jobs (default: the number of CPUs).
    #[arg(long, short, global = true, value_name = "N", env = "KFORGE_JOBS")]
    pub jobs: Option<NonZeroUsize>,
    /// The cache shared by every clone (default: $XDG_CACHE_HOME/kforge, else ~/.cache/kforge).
    #[arg(long, global = true, value_name = "DIR", env = "KFORGE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Where results go (default: target/kforge in the repository).
    #[arg(long, global = true, value_name = "DIR", env = "KFORGE_OUTPUT_DIR")]
    pub output_dir: Option<PathBuf>,
    /// The sandbox for builds and toolchain commands (default: bwrap where it works, else chroot as root).
    #[arg(long, global = true, value_enum, env = "KFORGE_SANDBOX")]
    pub sandbox: Option<SandboxChoice>,
    /// Bound on a whole `rustup toolchain install`, in seconds (default: 600).
    #[arg(long, global = true, value_name = "SECONDS", env = "KFORGE_RUSTUP_TIMEOUT")]
    pub rustup_timeout: Option<u64>,
    /// Cache the kernel's C objects with the toolchain's ccache (in <cache>/ccache; off by default).
    #[arg(long, global = true, env = "KFORGE_CCACHE", value_parser = FalseyValueParser::new())]
    pub ccache: bool,
    /// Share the ccache through ccache's remote storage (`http://HOST[:PORT][/PATH]`, `redis://HOST[:PORT]`); implies --ccache.
    #[arg(long, global = true, value_name = "URL", env = "KFORGE_CCACHE_REMOTE")]
    pub ccache_remote: Option<String>,
}

/// A sandbox asked for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxChoice {
    Bwrap,
    Chroot,
}

/// The bound on a rustup install when `--rustup-timeout` is not given: a
/// minimal toolchain took 17 s to install on a good connection, and rustup
/// otherwise waits forever on a server that accepts but never answers.
pub const DEFAULT_RUSTUP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

impl Session {
    /// The session the environment alone gives (no flags).
    pub fn from_env() -> Result<Session, clap::Error> {
        #[derive(Parser)]
        #[command(name = "kforge")]
        struct OnlyEnv {
            #[command(flatten)]
            session: Session,
        }
        OnlyEnv::try_parse_from(["kforge"]).map(|parsed| parsed.session)
    }

    /// Parallel make jobs: `--jobs`, else the number of CPUs.
    pub fn jobs(&self) -> usize {
        self.jobs
            .map(NonZeroUsize::get)
            .unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(2))
    }

    /// The rustup bound: `--rustup-timeout`, else [`DEFAULT_RUSTUP_TIMEOUT`].
    pub fn rustup_timeout(&self) -> Duration {
        self.rustup_timeout.map(Duration::from_secs).unwrap_or(DEFAULT_RUSTUP_TIMEOUT)
    }

    /// These options as flags, for a command that runs kforge again.
    pub fn forwarded(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut pair = |flag: &str, value: String| flags.extend([flag.to_string(), value]);
        if let Some(mirror) = &self.mirror {
            pair("--mirror", mirror.clone());
        }
        if let Some(jobs) = self.jobs {
            pair("--jobs", jobs.to_string());
        }
        if let Some(dir) = &self.cache_dir {
            pair("--cache-dir", dir.display().to_string());
        }
        if let Some(dir) = &self.output_dir {
            pair("--output-dir", dir.display().to_string());
        }
        if let Some(sandbox) = self.sandbox {
            let name = sandbox.to_possible_value().map(|value| value.get_name().to_string()).unwrap_or_default();
            pair("--sandbox", name);
        }
        if let Some(seconds) = self.rustup_timeout {
            pair("--rustup-timeout", seconds.to_string());
        }
        if let Some(remote) = &self.ccache_remote {
            pair("--ccache-remote", remote.clone());
        }
        if self.offline {
            flags.push("--offline".to_string());
        }
        if self.ccache {
            flags.push("--ccache".to_string());
        }
        if self.locked {
            flags.push("--locked".to_string());
        }
        flags
    }
}

static SESSION: RwLock<Option<Session>> = RwLock::new(None);

/// Makes `session` the one every layer reads, for the rest of the process.
pub fn set(session: Session) {
    *SESSION.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(session);
}

/// The session of this run. Before [`set`] (unit tests), the environment's,
/// and the default session when a variable does not parse.
pub fn current() -> Session {
    if let Some(session) = SESSION.read().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() {
        return session.clone();
    }
    Session::from_env().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        session: Session,
    }

    #[test]
    fn forwarded_flags_parse_back_to_the_same_session() {
        let parsed = Cli::try_parse_from([
            "kforge",
            "--offline",
            "--locked",
            "--mirror",
            "http://127.0.0.1:9/debian",
            "-j",
            "3",
            "--cache-dir",
            "/tmp/c",
            "--output-dir",
            "/tmp/o",
            "--sandbox",
            "chroot",
            "--rustup-timeout",
            "5",
            "--ccache",
            "--ccache-remote",
            "http://127.0.0.1:9/ccache",
        ])
        .unwrap()
        .session;
        let again =
            Cli::try_parse_from(std::iter::once("kforge".to_string()).chain(parsed.forwarded())).unwrap().session;
        assert_eq!(again, parsed);
        assert_eq!(again.jobs(), 3);
        assert_eq!(again.rustup_timeout(), Duration::from_secs(5));
        assert_eq!(again.sandbox, Some(SandboxChoice::Chroot));
        assert!(again.ccache);
        assert_eq!(again.ccache_remote.as_deref(), Some("http://127.0.0.1:9/ccache"));
    }

    #[test]
    fn switches_read_from_the_environment_take_the_usual_spellings() {
        let mut env = crate::test_support::ScopedEnv::lock();
        for (value, expected) in [("1", true), ("yes", true), ("true", true), ("0", false), ("off", false), ("", false)]
        {
            env.set("KFORGE_OFFLINE", value);
            let session = Session::from_env();
            assert_eq!(session.unwrap().offline, expected, "KFORGE_OFFLINE={value:?}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_flag() {
        for args in
            [["kforge", "--jobs", "0"], ["kforge", "--sandbox", "docker"], ["kforge", "--rustup-timeout", "soon"]]
        {
            let err = Cli::try_parse_from(args).err().unwrap().to_string();
            assert!(err.contains(args[1]), "{err}");
        }
    }
}
