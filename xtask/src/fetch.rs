//! Downloads over HTTP(S) into the content-addressed store, verifying sha256 before anything uses the file.
//!
//! The store is `<cache>/store/<sha256>/<file name>`: an entry is published
//! only after its hash was checked, and it is hashed again each time it is
//! used, so a corrupted entry is noticed: it is fetched again, or with
//! `--offline` (see `set_offline`) it is an error that names it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::{cache, error, paths, process, progress};

/// Set once at start-up by `--offline` / `KFORGE_OFFLINE=1`.
static OFFLINE: AtomicBool = AtomicBool::new(false);

/// Forbids (or allows again) every network access kforge makes: downloads,
/// apt inside a toolchain root, and mmdebstrap (which then installs from the store).
pub fn set_offline(offline: bool) {
    OFFLINE.store(offline, Ordering::SeqCst);
}

pub fn is_offline() -> bool {
    OFFLINE.load(Ordering::SeqCst)
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

/// Returns the verified store entry for `url`, downloading it if absent.
pub fn fetch(url: &str, sha256: &str) -> Result<PathBuf> {
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
    for attempt in 1..=3 {
        process::check_interrupt()?;
        match download(url, &partial) {
            Ok(found) if found == sha256 => {
                fs_err::rename(&partial, &target)?;
                return Ok(target);
            }
            Ok(found) => {
                let _ = fs_err::remove_file(&partial);
                bail!("checksum mismatch for {url}: expected sha256 {sha256}, got {found}; the file was not used");
            }
            Err(err) if crate::error::is_interrupted(&err) => {
                let _ = fs_err::remove_file(&partial);
                return Err(err);
            }
            Err(err) => {
                progress::warn(format!("download of {url} failed (attempt {attempt} of 3): {err:#}"));
                last_error = Some(err);
                std::thread::sleep(Duration::from_millis(500 * attempt));
            }
        }
    }
    let _ = fs_err::remove_file(&partial);
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("download failed")))
        .with_context(|| format!("failed to download {url}"))
}

/// Streams `url` into `destination`, hashing as it goes; returns the sha256.
fn download(url: &str, destination: &Path) -> Result<String> {
    if let Some(parent) = destination.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .user_agent(concat!("kforge/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut response = client.get(url).send().with_context(|| format!("cannot connect for {url}"))?;
    if !response.status().is_success() {
        bail!("server answered {} for {url}", response.status());
    }
    let bar = match response.content_length() {
        Some(length) => progress::bar(length, "Downloading"),
        None => progress::spinner("Downloading"),
    };
    bar.set_message(file_name_of(url));
    let mut file = fs_err::File::create(destination)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        process::check_interrupt()?;
        let read = response.read(&mut buffer).with_context(|| format!("connection broke while downloading {url}"))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
        bar.inc(read as u64);
    }
    file.sync_all()?;
    bar.finish_and_clear();
    Ok(cache::hex(&hasher.finalize()))
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

    fn with_cache<T>(name: &str, body: impl FnOnce() -> T) -> T {
        let _guard = crate::test_support::env_lock();
        let dir = std::env::temp_dir().join(format!("kforge-fetch-{name}-{}", std::process::id()));
        // SAFETY (test only): env_lock serialises every test that touches the environment.
        unsafe { std::env::set_var("KFORGE_CACHE_DIR", &dir) };
        let result = body();
        unsafe { std::env::remove_var("KFORGE_CACHE_DIR") };
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
            set_offline(true);
            // Intact: served from the store with no server at all.
            let intact = fetch(&url, &sha);
            // Corrupted: removed and reported, not downloaded (nothing listens any more).
            std::fs::write(&stored, b"bit rot").unwrap();
            let corrupted = fetch(&url, &sha);
            let missing = fetch("http://127.0.0.1:9/linux-other.tar.xz", &cache::sha256_hex(b"other"));
            set_offline(false);
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
