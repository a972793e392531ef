//! Downloads over HTTP(S) into the content-addressed store, verifying sha256 before anything uses the file.
//!
//! The store is `<cache>/store/<sha256>/<file name>`: an entry is published
//! only after its hash was checked, and it is hashed again each time it is
//! used, so a corrupted entry is noticed: it is fetched again, or with
//! `--offline` (the session's, see `is_offline`) it is an error that names it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::{cache, error, paths, process, progress};

/// Whether this session forbids every network access kforge makes
/// (`--offline`): downloads, apt inside a toolchain root, and mmdebstrap
/// (which then installs from the store).
pub fn is_offline() -> bool {
    crate::session::current().offline
}

/// The error for an input that is needed but not in the store while offline.
pub fn missing_offline(what: &str) -> anyhow::Error {
    error::user_hint(
        format!(
            "--offline: {what} is not in the store ({})",
            store_root().map(|p| p.display().to_string()).unwrap_or_default()
        ),
        "run `cargo xtask fetch` (same --kernel/--arch) on a machine with network and copy its store directory here",
    )
}

/// The store's top directory.
pub fn store_root() -> Result<PathBuf> {
    Ok(paths::cache_dir()?.join("store"))
}

/// Whether the store entry `path` exists and hashes to `sha256`. A corrupted
/// entry is removed (with a warning) so that it can be fetched again.
pub fn check_entry(path: &Path, sha256: &str) -> Result<bool> {
    if !path.is_file() {
        return Ok(false);
    }
    let found = cache::sha256_file(path)?;
    if found == sha256 {
        return Ok(true);
    }
    progress::warn(format!(
        "store entry {} is corrupted (sha256 {found}, expected {sha256}); removing it",
        path.display()
    ));
    fs_err::remove_file(path)?;
    Ok(false)
}

/// Where an entry with this hash lives.
pub fn store_path(sha256: &str, file_name: &str) -> Result<PathBuf> {
    Ok(store_root()?.join(sha256).join(file_name))
}

/// The file name a URL would be stored under.
pub fn file_name_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("download");
    if name.is_empty() { "download".to_string() } else { name.to_string() }
}

/// How long a download may wait, and how often it tries.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To open the TCP (and TLS) connection.
    pub connect: Duration,
    /// With no byte arriving (headers or body) before the attempt is abandoned.
    pub read: Duration,
    /// Attempts in all; a 4xx answer (but 408 and 429) is never retried.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Whether to stop (Ctrl-C): checked every [`POLL`] while waiting.
    pub cancelled: fn() -> bool,
}

/// What `fetch` uses.
pub const LIMITS: Limits = Limits {
    connect: Duration::from_secs(15),
    read: Duration::from_secs(30),
    attempts: 4,
    backoff: Duration::from_millis(500),
    cancelled: process::interrupted,
};

fn check_cancelled(limits: &Limits) -> Result<()> {
    if (limits.cancelled)() { Err(error::Interrupted.into()) } else { Ok(()) }
}

/// How often a waiting download looks at the interrupt flag.
const POLL: Duration = Duration::from_millis(100);

/// Returns the verified store entry for `url`, downloading it if absent.
pub fn fetch(url: &str, sha256: &str) -> Result<PathBuf> {
    fetch_with(url, sha256, &LIMITS)
}

/// `fetch` with explicit timeouts and retries.
///
/// The bytes go to `<entry>.part` first. A broken transfer keeps that file
/// and the next attempt (or the next run) asks for the rest with `Range`;
/// a server that ignores the range sends the whole file again. A 404 (any
/// 4xx but 408/429) fails at once; 5xx answers, timeouts and broken
/// connections are retried up to `limits.attempts` times with doubling
/// waits. Ctrl-C is noticed within [`POLL`] at any point, also while the
/// server sends nothing.
pub fn fetch_with(url: &str, sha256: &str, limits: &Limits) -> Result<PathBuf> {
    let sha256 = sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(error::user(format!("`{sha256}` is not a sha256 (64 hex digits) for {url}")));
    }
    let target = store_path(&sha256, &file_name_of(url))?;
    let _lock = cache::lock(&target)?;
    if check_entry(&target, &sha256)? {
        return Ok(target);
    }
    if is_offline() {
        return Err(missing_offline(&format!("{url} (sha256 {sha256})")));
    }
    let partial = cache::sibling(&target, "part");
    let mut last_error = None;
    for attempt in 1..=limits.attempts {
        check_cancelled(limits)?;
        if attempt > 1 {
            sleep_interruptibly(limits.backoff * 2u32.saturating_pow(attempt - 2), limits)?;
        }
        match download(url, &partial, limits) {
            Ok((found, _)) if found == sha256 => {
                fs_err::rename(&partial, &target)?;
                return Ok(target);
            }
            Ok((found, true)) => {
                // The kept partial file was not a prefix of this file: fetch it whole.
                let _ = fs_err::remove_file(&partial);
                progress::warn(format!("resumed download of {url} has sha256 {found}; downloading it whole"));
                last_error = Some(anyhow::anyhow!("checksum mismatch after resuming (sha256 {found})"));
            }
            Ok((found, false)) => {
                let _ = fs_err::remove_file(&partial);
                bail!("checksum mismatch for {url}: expected sha256 {sha256}, got {found}; the file was not used");
            }
            Err(err) if crate::error::is_interrupted(&err) => return Err(err),
            Err(err) if err.downcast_ref::<Permanent>().is_some() => {
                let _ = fs_err::remove_file(&partial);
                return Err(err).with_context(|| format!("failed to download {url} (not retried)"));
            }
            Err(err) => {
                progress::warn(format!("download of {url} failed (attempt {attempt} of {}): {err:#}", limits.attempts));
                last_error = Some(err);
            }
        }
    }
    // The partial file stays: the next run resumes it.
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("download failed")))
        .with_context(|| format!("failed to download {url} after {} attempts", limits.attempts))
}

/// An answer that retrying cannot change (404 and other 4xx).
#[derive(Debug, thiserror::Error)]
#[error("server answered {status} for {url}")]
struct Permanent {
    status: u16,
    url: String,
}

fn sleep_interruptibly(duration: Duration, limits: &Limits) -> Result<()> {
    let end = std::time::Instant::now() + duration;
    while std::time::Instant::now() < end {
        check_cancelled(limits)?;
        std::thread::sleep(POLL.min(end.saturating_duration_since(std::time::Instant::now())));
    }
    Ok(())
}

/// What the network thread hands to the writing thread.
enum Chunk {
    Head { status: u16, length: Option<u64>, range_start: Option<u64> },
    Data(Vec<u8>),
    End,
    Failed(anyhow::Error),
}

/// Streams `url` into `destination` (resuming what it already holds),
/// hashing as it goes; returns the sha256 of the whole file.
///
/// The network I/O runs on its own thread so that this one can check for
/// Ctrl-C and for a stall while a read blocks; a thread left blocked after
/// an interrupt ends with its own read timeout.
fn download(url: &str, destination: &Path, limits: &Limits) -> Result<(String, bool)> {
    if let Some(parent) = destination.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let have = fs_err::metadata(destination).map(|meta| meta.len()).unwrap_or(0);
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(limits.connect)
        .timeout(limits.read + limits.connect)
        .user_agent(concat!("kforge/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Chunk>(8);
    let owned_url = url.to_string();
    std::thread::spawn(move || network(client, owned_url, have, sender));

    // The headers may take the connect time too; body chunks only the read timeout.
    let receive = |allowed: Duration| -> Result<Chunk> {
        let waited = std::time::Instant::now();
        loop {
            check_cancelled(limits)?;
            match receiver.recv_timeout(POLL) {
                Ok(chunk) => return Ok(chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if waited.elapsed() >= allowed {
                        bail!("no data from the server for {:.0} s (read timeout)", waited.elapsed().as_secs_f64());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("the download thread stopped"),
            }
        }
    };
    let (status, length, range_start) = match receive(limits.connect + limits.read)? {
        Chunk::Head { status, length, range_start } => (status, length, range_start),
        Chunk::Failed(err) => return Err(err),
        Chunk::Data(_) | Chunk::End => bail!("the download thread sent data before the headers"),
    };
    let resumed = status == 206 && have > 0 && range_start == Some(have);
    if status == 416 && have > 0 {
        // What we hold is not a prefix the server knows: start over next attempt.
        fs_err::remove_file(destination)?;
        bail!("server refused to resume {url} at byte {have}; starting over");
    }
    if !(200..300).contains(&status) || (status == 206 && !resumed) {
        if (400..500).contains(&status) && status != 408 && status != 429 {
            return Err(Permanent { status, url: url.to_string() }.into());
        }
        bail!("server answered {status} for {url}");
    }
    let mut hasher = Sha256::new();
    let mut file = if resumed {
        let mut existing = fs_err::File::open(destination)?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = existing.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        progress::detail(format!("resuming {} at byte {have}", file_name_of(url)));
        fs_err::OpenOptions::new().append(true).open(destination)?
    } else {
        fs_err::File::create(destination)?
    };
    let already = if resumed { have } else { 0 };
    let bar = match length {
        Some(length) => progress::bar(already + length, "Downloading"),
        None => progress::spinner("Downloading"),
    };
    bar.inc(already);
    bar.set_message(file_name_of(url));
    loop {
        match receive(limits.read)? {
            Chunk::Data(data) => {
                hasher.update(&data);
                file.write_all(&data)?;
                bar.inc(data.len() as u64);
            }
            Chunk::End => break,
            Chunk::Failed(err) => {
                file.sync_all()?;
                return Err(err);
            }
            Chunk::Head { .. } => bail!("the download thread sent two headers"),
        }
    }
    file.sync_all()?;
    bar.finish_and_clear();
    Ok((cache::hex(&hasher.finalize()), resumed))
}

/// The network side of `download`: sends the head, then the body in chunks.
fn network(client: reqwest::blocking::Client, url: String, have: u64, sender: std::sync::mpsc::SyncSender<Chunk>) {
    let mut request = client.get(&url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut response = match request.send() {
        Ok(response) => response,
        Err(err) => {
            let what = if err.is_connect() { "cannot connect" } else { "no answer" };
            let _ = sender.send(Chunk::Failed(anyhow::Error::new(err).context(format!("{what} for {url}"))));
            return;
        }
    };
    let range_start = response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes "))
        .and_then(|value| value.split('-').next())
        .and_then(|start| start.parse().ok());
    let head = Chunk::Head { status: response.status().as_u16(), length: response.content_length(), range_start };
    if sender.send(head).is_err() || !response.status().is_success() {
        return;
    }
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let chunk = match response.read(&mut buffer) {
            Ok(0) => Chunk::End,
            Ok(read) => Chunk::Data(buffer[..read].to_vec()),
            Err(err) => {
                Chunk::Failed(anyhow::Error::new(err).context(format!("connection broke while downloading {url}")))
            }
        };
        let last = !matches!(chunk, Chunk::Data(_));
        if sender.send(chunk).is_err() || last {
            return;
        }
    }
}

/// Moves an already-downloaded file into the store after checking its hash.
pub fn adopt(file: &Path, sha256: &str) -> Result<PathBuf> {
    let name = file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let target = store_path(sha256, &name)?;
    let found = cache::sha256_file(file)?;
    if found != sha256 {
        bail!("checksum mismatch for {}: expected sha256 {sha256}, got {found}", file.display());
    }
    if let Some(parent) = target.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::rename(file, &target).or_else(|_| fs_err::copy(file, &target).map(|_| ()))?;
    Ok(target)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::atomic::Ordering;

    /// A one-file HTTP server on 127.0.0.1 that answers at most `requests` requests.
    pub fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    line.clear();
                }
                let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(header.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (format!("http://{address}/pub/linux-fixture.tar.gz"), handle)
    }

    /// An HTTP server on 127.0.0.1 whose answer to the n-th request (from 0)
    /// `answer` writes; returns the URL, the server thread and the request heads seen.
    pub fn serve_with(
        requests: usize,
        answer: impl Fn(usize, &str, &mut std::net::TcpStream) + Send + 'static,
    ) -> (String, std::thread::JoinHandle<()>, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        let handle = std::thread::spawn(move || {
            for (index, stream) in listener.incoming().take(requests).enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    head.push_str(&line);
                    line.clear();
                }
                seen.lock().unwrap().push(head.clone());
                answer(index, &head, &mut stream);
            }
        });
        (format!("http://{address}/pub/linux-fixture.tar.gz"), handle, heads)
    }

    fn quick(attempts: u32) -> Limits {
        Limits {
            connect: Duration::from_secs(2),
            read: Duration::from_millis(800),
            attempts,
            backoff: Duration::from_millis(50),
            cancelled: || false,
        }
    }

    static CANCEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    #[test]
    fn ctrl_c_stops_a_stalled_download_at_once_and_keeps_the_partial_file() {
        with_cache("cancel", || {
            let (url, server, _) = serve_with(1, |_, _, stream| {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst");
                std::thread::sleep(Duration::from_secs(2));
            });
            // A read timeout far beyond the test: only the cancellation can end it.
            let limits =
                Limits { read: Duration::from_secs(600), cancelled: || CANCEL.load(Ordering::SeqCst), ..quick(3) };
            let canceller = std::thread::spawn(|| {
                std::thread::sleep(Duration::from_millis(500));
                CANCEL.store(true, Ordering::SeqCst);
            });
            let started = std::time::Instant::now();
            let sha = cache::sha256_hex(b"never");
            let err = fetch_with(&url, &sha, &limits).unwrap_err();
            let took = started.elapsed();
            eprintln!("cancelled at 500 ms, stopped after {took:?}");
            canceller.join().unwrap();
            assert!(crate::error::is_interrupted(&err), "{err:#}");
            // Cancelled at 500 ms; the read timeout (600 s) plays no part. Slack for a loaded machine.
            assert!(took < Duration::from_secs(3), "stopped {took:?} after the start (cancelled at 500 ms)");
            let partial = cache::sibling(&store_path(&sha, "linux-fixture.tar.gz").unwrap(), "part");
            assert_eq!(std::fs::read(partial).unwrap(), b"first", "kept for the next run to resume");
            server.join().unwrap();
        });
    }

    #[test]
    fn a_404_is_not_retried() {
        with_cache("404", || {
            let (url, server, heads) = serve_with(1, |_, _, stream| {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            });
            let started = std::time::Instant::now();
            let message = format!("{:#}", fetch_with(&url, &cache::sha256_hex(b"x"), &quick(4)).unwrap_err());
            assert!(message.contains("not retried") && message.contains("404"), "{message}");
            assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
            server.join().unwrap();
            assert_eq!(heads.lock().unwrap().len(), 1, "one request only");
        });
    }

    #[test]
    fn a_stalled_server_times_out_within_the_bound_and_5xx_is_retried() {
        with_cache("stall", || {
            let body = b"kernel fixture bytes".to_vec();
            let sha = cache::sha256_hex(&body);
            let served = body.clone();
            let (url, server, heads) = serve_with(3, move |index, _, stream| match index {
                // Headers, 5 bytes, then silence (the connection stays open).
                0 => {
                    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", served.len());
                    let _ = stream.write_all(header.as_bytes());
                    let _ = stream.write_all(&served[..5]);
                    // Held open on its own thread, so that the server answers the retry meanwhile.
                    let held = stream.try_clone().unwrap();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(3));
                        drop(held);
                    });
                }
                1 => {
                    let _ = stream.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
                _ => {
                    // Resumes: the first 5 bytes were kept.
                    let header = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-{}/{}\r\nContent-Length: {}\r\n\r\n",
                        served.len() - 1,
                        served.len(),
                        served.len() - 5
                    );
                    let _ = stream.write_all(header.as_bytes());
                    let _ = stream.write_all(&served[5..]);
                }
            });
            let started = std::time::Instant::now();
            let stored = fetch_with(&url, &sha, &quick(3)).unwrap();
            let took = started.elapsed();
            eprintln!("stall, 503, resume: {took:?}");
            assert_eq!(std::fs::read(&stored).unwrap(), body);
            // One read timeout (0.8 s) and two short backoffs; slack for a loaded machine.
            assert!(took < Duration::from_secs(5), "took {took:?}");
            server.join().unwrap();
            let heads = heads.lock().unwrap();
            assert_eq!(heads.len(), 3, "{heads:?}");
            assert!(heads[1].to_ascii_lowercase().contains("range: bytes=5-"), "{}", heads[1]);
            assert!(heads[2].to_ascii_lowercase().contains("range: bytes=5-"), "{}", heads[2]);
        });
    }

    #[test]
    fn a_body_cut_short_is_resumed_and_a_server_ignoring_range_starts_over() {
        with_cache("resume", || {
            let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            let sha = cache::sha256_hex(&body);
            let served = body.clone();
            let (url, server, heads) = serve_with(3, move |index, _, stream| {
                let header =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", served.len());
                let _ = stream.write_all(header.as_bytes());
                match index {
                    // Drops the connection half way.
                    0 => {
                        let _ = stream.write_all(&served[..40_000]);
                    }
                    // Ignores the Range header, cut again.
                    1 => {
                        let _ = stream.write_all(&served[..60_000]);
                    }
                    _ => {
                        let _ = stream.write_all(&served);
                    }
                }
            });
            let stored = fetch_with(&url, &sha, &quick(3)).unwrap();
            assert_eq!(std::fs::read(&stored).unwrap(), body);
            server.join().unwrap();
            let heads = heads.lock().unwrap();
            assert!(heads[1].to_ascii_lowercase().contains("range: bytes=40000-"), "{}", heads[1]);
            assert!(heads[2].to_ascii_lowercase().contains("range: bytes=60000-"), "{}", heads[2]);
        });
    }

    fn with_cache<T>(name: &str, body: impl FnOnce() -> T) -> T {
        let mut env = crate::test_support::ScopedEnv::lock();
        let dir = std::env::temp_dir().join(format!("kforge-fetch-{name}-{}", std::process::id()));
        env.set("KFORGE_CACHE_DIR", &dir);
        let result = body();
        drop(env);
        let _ = std::fs::remove_dir_all(dir);
        result
    }

    #[test]
    fn fetch_verifies_and_stores_by_hash() {
        with_cache("ok", || {
            let body = b"kernel fixture bytes".to_vec();
            let sha = cache::sha256_hex(&body);
            let (url, server) = serve(body.clone(), 1);
            let stored = fetch(&url, &sha).unwrap();
            assert_eq!(std::fs::read(&stored).unwrap(), body);
            assert!(stored.ends_with(format!("{sha}/linux-fixture.tar.gz")));
            server.join().unwrap();
            // Second fetch is served from the store: the server is gone.
            assert_eq!(fetch(&url, &sha).unwrap(), stored);
        });
    }

    #[test]
    fn fetch_refuses_a_checksum_mismatch() {
        with_cache("bad", || {
            let (url, server) = serve(b"tampered".to_vec(), 1);
            let wrong = cache::sha256_hex(b"expected");
            let message = format!("{:#}", fetch(&url, &wrong).unwrap_err());
            assert!(message.contains("checksum mismatch"), "{message}");
            assert!(!store_path(&wrong, "linux-fixture.tar.gz").unwrap().exists());
            server.join().unwrap();
        });
    }

    #[test]
    fn a_corrupted_store_entry_is_fetched_again() {
        with_cache("corrupt", || {
            let body = b"kernel fixture bytes".to_vec();
            let sha = cache::sha256_hex(&body);
            let (url, server) = serve(body.clone(), 2);
            let stored = fetch(&url, &sha).unwrap();
            std::fs::write(&stored, b"bit rot").unwrap();
            assert_eq!(fetch(&url, &sha).unwrap(), stored);
            assert_eq!(std::fs::read(&stored).unwrap(), body);
            server.join().unwrap();
        });
    }

    #[test]
    fn offline_never_connects_and_names_the_missing_or_corrupted_input() {
        with_cache("offline", || {
            let body = b"kernel fixture bytes".to_vec();
            let sha = cache::sha256_hex(&body);
            let (url, server) = serve(body.clone(), 1);
            let stored = fetch(&url, &sha).unwrap();
            server.join().unwrap();
            // with_cache holds the environment lock.
            let mut offline = crate::test_support::ScopedEnv::under_held_lock();
            offline.set("KFORGE_OFFLINE", "1");
            // Intact: served from the store with no server at all.
            let intact = fetch(&url, &sha);
            // Corrupted: removed and reported, not downloaded (nothing listens any more).
            std::fs::write(&stored, b"bit rot").unwrap();
            let corrupted = fetch(&url, &sha);
            let missing = fetch("http://127.0.0.1:9/linux-other.tar.xz", &cache::sha256_hex(b"other"));
            drop(offline);
            assert_eq!(intact.unwrap(), stored);
            let message = format!("{:#}", corrupted.unwrap_err());
            assert!(message.contains("--offline") && message.contains(&url), "{message}");
            assert!(!stored.exists());
            let message = crate::error::render(&missing.unwrap_err());
            assert!(message.contains("linux-other.tar.xz") && message.contains("cargo xtask fetch"), "{message}");
        });
    }

    #[test]
    fn file_names_come_from_the_url_path() {
        assert_eq!(file_name_of("https://example.invalid/a/linux-7.2.tar.xz?x=1"), "linux-7.2.tar.xz");
        assert_eq!(file_name_of("http://127.0.0.1:8/"), "download");
    }
}
