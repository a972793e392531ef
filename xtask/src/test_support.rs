//! Helpers shared by unit tests: a lock for tests that change process-wide environment variables, and a guard that puts them back.

use std::ffi::{OsStr, OsString};
use std::sync::{Mutex, MutexGuard};

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Serialises tests that set or read environment variables such as KFORGE_CACHE_DIR.
pub fn env_lock() -> MutexGuard<'static, ()> {
    ENV_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Environment variables set for one test and restored (to their value
/// before, or unset) when it ends, even when it panics: a test must not leave
/// the variables other tests in the same process read (CI sets
/// KFORGE_CACHE_DIR for the whole run).
pub struct ScopedEnv {
    _lock: Option<MutexGuard<'static, ()>>,
    saved: Vec<(OsString, Option<OsString>)>,
}

impl ScopedEnv {
    /// Takes the environment lock for the guard's lifetime.
    pub fn lock() -> ScopedEnv {
        ScopedEnv { _lock: Some(env_lock()), saved: Vec::new() }
    }

    /// For code that already holds [`env_lock`].
    pub fn under_held_lock() -> ScopedEnv {
        ScopedEnv { _lock: None, saved: Vec::new() }
    }

    /// Sets `name` for the rest of the test.
    pub fn set(&mut self, name: &str, value: impl AsRef<OsStr>) {
        self.save(name);
        // SAFETY: the environment lock is held (by this guard or by the caller of
        // `under_held_lock`), and it serialises every test that touches the environment.
        unsafe { std::env::set_var(name, value) };
    }

    /// Unsets `name` for the rest of the test.
    pub fn remove(&mut self, name: &str) {
        self.save(name);
        // SAFETY: as in `set`.
        unsafe { std::env::remove_var(name) };
    }

    /// Unsets every `KFORGE_*` variable, for a test that parses the session
    /// and must not see the ones its CI run sets (KFORGE_CACHE_DIR, say).
    pub fn without_kforge_variables(&mut self) {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|n| n.starts_with("KFORGE_"))
            .collect();
        for name in names {
            self.remove(&name);
        }
    }

    fn save(&mut self, name: &str) {
        if !self.saved.iter().any(|(saved, _)| saved == name) {
            self.saved.push((name.into(), std::env::var_os(name)));
        }
    }
}

impl Drop for ScopedEnv {
    fn drop(&mut self) {
        for (name, value) in self.saved.drain(..).rev() {
            // SAFETY: as in `set`; the lock, if this guard holds it, is released after this.
            match value {
                Some(value) => unsafe { std::env::set_var(&name, value) },
                None => unsafe { std::env::remove_var(&name) },
            }
        }
    }
}
