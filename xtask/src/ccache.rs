//! Optional ccache for the kernel's C objects (`--ccache`, `--ccache-remote`): where its cache lives, how a kernel build's jail uses it, and the hit rate the build's stats log shows.
//!
//! Off by default. When on, every `clang` a kernel's make runs (the target
//! compiler and, with `LLVM=1`, the host compiler too) goes through the
//! toolchain root's `ccache`: a directory whose only entry is `clang ->
//! /usr/bin/ccache` comes first on the jail's PATH, so the command lines
//! Kbuild records stay `clang ...` and turning ccache on or off rebuilds
//! nothing. ccache stores what it compiles in `<cache>/ccache/store` and, with
//! `--ccache-remote`, in ccache's own remote storage (`http://...`,
//! `redis://...`), which a team or CI fleet shares: the paths inside the jail
//! (`/src`, `/build`) and the compiler (a pinned package) are the same on
//! every machine, so one machine's objects hit on another's. Rust objects are
//! not cached: rustc does not go through ccache, and Kbuild rebuilds them.
//!
//! The build's hit rate comes from ccache's stats log (`CCACHE_STATSLOG`),
//! one line per counter a compilation touched, which [`Counts::from_stats_log`] reads.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::sandbox::Jail;
use crate::toolchain::Toolchain;
use crate::{error, paths, session};

/// Where the jail sees the local cache.
const GUEST_DIR: &str = "/kforge-ccache";
/// Where the jail sees the directory whose `clang` is ccache.
const GUEST_MASQUERADE: &str = "/kforge-ccache-bin";
/// ccache as the toolchain root has it.
const CCACHE_IN_ROOT: &str = "usr/bin/ccache";
/// The compilers that go through ccache: the kernel's C compiler with `LLVM=1`.
const COMPILERS: &[&str] = &["clang"];

/// The ccache of one kernel build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ccache {
    /// The local cache (`CCACHE_DIR`).
    pub dir: PathBuf,
    /// The directory with `clang -> /usr/bin/ccache`.
    pub masquerade: PathBuf,
    /// ccache's `remote_storage` setting, if any.
    pub remote: Option<String>,
}

/// The ccache the session asks for, if any (`--ccache`, or `--ccache-remote`,
/// which implies it), after checking that `toolchain` has ccache.
pub fn of_session(toolchain: &Toolchain) -> Result<Option<Ccache>> {
    let session = session::current();
    if !session.ccache && session.ccache_remote.is_none() {
        return Ok(None);
    }
    if !toolchain.root.join(CCACHE_IN_ROOT).is_file() {
        let fix = if toolchain.root == Path::new("/") {
            "install ccache on this machine (apt-get install ccache)".to_string()
        } else {
            format!(
                "pin ccache in [extras] of toolchains/{}.toml (as toolchains/sid.toml does), or run without --ccache",
                toolchain.id()
            )
        };
        return Err(error::user_hint(
            format!(
                "--ccache needs ccache in toolchain {}, and {} is not there",
                toolchain.id(),
                toolchain.root.join(CCACHE_IN_ROOT).display()
            ),
            fix,
        ));
    }
    let root = paths::cache_dir()?.join("ccache");
    Ok(Some(Ccache::prepare(&root.join("store"), &root.join("masquerade"), session.ccache_remote)?))
}

impl Ccache {
    /// A ccache with its local cache in `dir` and its masquerade directory in
    /// `masquerade`, both created (the masquerade's links written) if missing.
    pub fn prepare(dir: &Path, masquerade: &Path, remote: Option<String>) -> Result<Ccache> {
        fs_err::create_dir_all(dir)?;
        fs_err::create_dir_all(masquerade)?;
        let target = Path::new("/").join(CCACHE_IN_ROOT);
        for compiler in COMPILERS {
            let link = masquerade.join(compiler);
            if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link).or_else(|err| {
                    // Another build wrote the same link meanwhile.
                    if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) { Ok(()) } else { Err(err) }
                })?;
            }
        }
        Ok(Ccache { dir: dir.to_path_buf(), masquerade: masquerade.to_path_buf(), remote })
    }

    /// `jail` with its C compiles going through ccache, which logs its counters
    /// to `stats_log` (a path inside the jail). A remote storage needs the
    /// network, so the jail gets it then: the one build that has network, and only
    /// because the user named a server.
    pub fn attach<'j>(&self, mut jail: Jail<'j>, stats_log: &str) -> Jail<'j> {
        jail.rw(&self.dir, GUEST_DIR);
        jail.ro(&self.masquerade, GUEST_MASQUERADE);
        let mut jail = jail
            .path_prefix(GUEST_MASQUERADE)
            .env("CCACHE_DIR", GUEST_DIR)
            .env("CCACHE_STATSLOG", stats_log)
            // The jail's fixed paths already make keys machine-independent;
            // this keeps ccache from reading a config outside the jail's view.
            .env("CCACHE_CONFIGPATH", &format!("{GUEST_DIR}/ccache.conf"));
        if let Some(remote) = &self.remote {
            jail = jail.env("CCACHE_REMOTE_STORAGE", remote).network();
        }
        jail
    }
}

/// What ccache did in one build: C compilations served from a cache, compiled
/// afresh, and the hits that came from the remote storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
    pub remote_hits: u64,
}

impl Counts {
    /// Reads ccache's stats log: `# <input file>` lines, then one line per
    /// counter that compilation incremented (`direct_cache_hit`,
    /// `preprocessed_cache_hit`, `cache_miss`, `remote_storage_hit`, ...).
    /// Calls that are not cacheable compilations (links, `--version`) count as neither.
    pub fn from_stats_log(text: &str) -> Counts {
        let mut counts = Counts::default();
        for line in text.lines().map(str::trim) {
            match line {
                "direct_cache_hit" | "preprocessed_cache_hit" => counts.hits += 1,
                "cache_miss" => counts.misses += 1,
                "remote_storage_hit" => counts.remote_hits += 1,
                _ => {}
            }
        }
        counts
    }

    /// Reads and removes the stats log at `path`; zero counts when ccache wrote none.
    pub fn take_stats_log(path: &Path) -> Result<Counts> {
        let counts = match fs_err::read_to_string(path) {
            Ok(text) => Counts::from_stats_log(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Counts::default()),
            Err(err) => return Err(err.into()),
        };
        fs_err::remove_file(path)?;
        Ok(counts)
    }

    pub fn add(self, other: Counts) -> Counts {
        Counts {
            hits: self.hits + other.hits,
            misses: self.misses + other.misses,
            remote_hits: self.remote_hits + other.remote_hits,
        }
    }

    /// `1234 of 1300 C compilations hit (95%), 1200 from remote storage`.
    pub fn describe(&self) -> String {
        let total = self.hits + self.misses;
        let percent = if total == 0 { 0.0 } else { self.hits as f64 * 100.0 / total as f64 };
        let mut text = format!("{} of {total} C compilations hit ({percent:.0}%)", self.hits);
        if self.remote_hits > 0 {
            text.push_str(&format!(", {} from remote storage", self.remote_hits));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ccache 4.x writes: a comment per compilation, then its counters, sorted.
    const STATS_LOG: &str = "\
# /src/kernel/fork.c
direct_cache_miss
cache_miss
local_storage_miss
local_storage_write
preprocessed_cache_miss
remote_storage_miss
remote_storage_write
# /src/kernel/exit.c
direct_cache_hit
local_storage_hit
local_storage_read_hit
# /src/mm/slub.c
direct_cache_hit
local_storage_miss
remote_storage_hit
remote_storage_read_hit
# /src/scripts/mod/empty.c
preprocessed_cache_hit
# (a link)
called_for_link
";

    #[test]
    fn the_stats_log_gives_hits_misses_and_remote_hits() {
        let counts = Counts::from_stats_log(STATS_LOG);
        assert_eq!(counts, Counts { hits: 3, misses: 1, remote_hits: 1 });
        assert_eq!(counts.describe(), "3 of 4 C compilations hit (75%), 1 from remote storage");
        assert_eq!(Counts::default().describe(), "0 of 0 C compilations hit (0%)");
        assert_eq!(counts.add(counts), Counts { hits: 6, misses: 2, remote_hits: 2 });
    }

    #[test]
    fn a_missing_stats_log_is_zero_counts_and_a_read_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stats");
        assert_eq!(Counts::take_stats_log(&log).unwrap(), Counts::default());
        fs_err::write(&log, STATS_LOG).unwrap();
        assert_eq!(Counts::take_stats_log(&log).unwrap().hits, 3);
        assert!(!log.exists());
    }

    /// A ccache HTTP remote storage on 127.0.0.1 (GET, PUT, HEAD, DELETE on
    /// `/<path>`, entries in memory) that counts what it was asked. It stops
    /// when dropped; every socket read is bounded by a timeout.
    struct HttpStorage {
        port: u16,
        entries: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
        requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl HttpStorage {
        fn start() -> HttpStorage {
            use std::sync::{Arc, Mutex, atomic::AtomicBool};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let storage = HttpStorage {
                port: listener.local_addr().unwrap().port(),
                entries: Arc::new(Mutex::new(Default::default())),
                requests: Arc::new(Mutex::new(Vec::new())),
                stop: Arc::new(AtomicBool::new(false)),
            };
            let (entries, requests, stop) = (storage.entries.clone(), storage.requests.clone(), storage.stop.clone());
            std::thread::spawn(move || {
                // Bounded: 20 minutes of 10 ms polls at most, whatever the test does.
                for _ in 0..120_000 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (entries, requests) = (entries.clone(), requests.clone());
                            std::thread::spawn(move || serve(stream, &entries, &requests));
                        }
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    }
                }
            });
            storage
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/ccache", self.port)
        }

        fn count(&self, prefix: &str) -> usize {
            self.requests.lock().unwrap().iter().filter(|request| request.starts_with(prefix)).count()
        }
    }

    impl Drop for HttpStorage {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Answers the requests of one keep-alive connection until the client closes it.
    fn serve(
        stream: std::net::TcpStream,
        entries: &std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
        requests: &std::sync::Mutex<Vec<String>>,
    ) {
        use std::io::{BufRead, Read, Write};
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = std::io::BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let mut words = request_line.split_whitespace();
            let (method, path) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or("").to_string());
            let mut entries = entries.lock().unwrap();
            let (status, answer) = match method.as_str() {
                "GET" | "HEAD" => match entries.get(&path) {
                    Some(value) => ("200 OK", value.clone()),
                    None => ("404 Not Found", Vec::new()),
                },
                "PUT" => {
                    entries.insert(path.clone(), body);
                    ("201 Created", Vec::new())
                }
                "DELETE" => {
                    entries.remove(&path);
                    ("200 OK", Vec::new())
                }
                _ => ("405 Method Not Allowed", Vec::new()),
            };
            drop(entries);
            requests.lock().unwrap().push(format!("{method} {path} {status}"));
            let mut response = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", answer.len()).into_bytes();
            if method != "HEAD" {
                response.extend(answer);
            }
            if writer.write_all(&response).is_err() {
                return;
            }
        }
    }

    #[test]
    #[ignore = "installs the default toolchain root if it is not there (root, the Debian archive, minutes)"]
    fn a_second_machine_gets_the_first_ones_objects_from_the_http_remote_storage() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // Held throughout: readying the toolchain reads KFORGE_CACHE_DIR.
        let _env = crate::test_support::env_lock();
        let options = crate::toolchain::install::InstallOptions::from_session();
        let toolchain = crate::pipeline::ready_toolchain(&repo, "sid", &options).unwrap();
        let sandbox = toolchain.sandbox().unwrap();
        let storage = HttpStorage::start();
        let work = tempfile::tempdir().unwrap();
        fs_err::write(work.path().join("hello.c"), "int answer(int x) { return x * 42; }\n").unwrap();
        // Two machines: each its own local cache, one remote storage.
        let compile = |machine: &str, remote: Option<String>| -> Counts {
            let local = work.path().join(machine);
            let ccache = Ccache::prepare(&local.join("store"), &local.join("bin"), remote).unwrap();
            let mut jail = sandbox.jail();
            jail.rw(work.path(), "/work");
            let jail = ccache.attach(jail.cwd("/work"), &format!("/work/{machine}.stats"));
            let object = format!("{machine}.o");
            jail.command(&["clang", "-O2", "-c", "hello.c", "-o", &object]).unwrap().run().unwrap();
            Counts::take_stats_log(&work.path().join(format!("{machine}.stats"))).unwrap()
        };
        let first = compile("first", Some(storage.url()));
        assert_eq!(first, Counts { hits: 0, misses: 1, remote_hits: 0 }, "{:?}", storage.requests);
        assert!(storage.count("PUT") >= 1, "the first machine stored nothing remotely: {:?}", storage.requests);
        let second = compile("second", Some(storage.url()));
        assert_eq!(second, Counts { hits: 1, misses: 0, remote_hits: 1 }, "{:?}", storage.requests);
        assert_eq!(
            fs_err::read(work.path().join("first.o")).unwrap(),
            fs_err::read(work.path().join("second.o")).unwrap(),
            "the remote hit must give the object the compiler gave"
        );
        // Without the remote storage, a third machine's own empty cache misses.
        let alone = compile("third", None);
        assert_eq!(alone, Counts { hits: 0, misses: 1, remote_hits: 0 });
    }

    #[test]
    fn the_masquerade_links_clang_to_the_roots_ccache_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (store, masquerade) = (dir.path().join("store"), dir.path().join("bin"));
        for _ in 0..2 {
            let ccache = Ccache::prepare(&store, &masquerade, None).unwrap();
            assert_eq!(ccache.masquerade, masquerade);
            assert_eq!(fs_err::read_link(masquerade.join("clang")).unwrap(), Path::new("/usr/bin/ccache"));
            assert!(store.is_dir());
        }
        fs_err::remove_file(masquerade.join("clang")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", masquerade.join("clang")).unwrap();
        Ccache::prepare(&store, &masquerade, None).unwrap();
        assert_eq!(fs_err::read_link(masquerade.join("clang")).unwrap(), Path::new("/usr/bin/ccache"));
    }
}
