//! Runs commands inside a toolchain root: bubblewrap (or a chroot fallback), no network, read-only inputs, one writable build dir.
//!
//! Callers describe a `Jail` (mounts, network, directory, environment) and get
//! back a `process::Cmd`. Mount helpers return the path to use in argv, so the
//! same plan works whichever backend runs it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};

use crate::error;
use crate::process::Cmd;
use crate::session::SandboxChoice;

/// How commands enter the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// bubblewrap: unprivileged namespaces; the default.
    Bwrap,
    /// `unshare` + bind mounts + `chroot`: for root where bwrap cannot run.
    Chroot,
}

/// A toolchain root and the PATH/environment its tools need.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub backend: Backend,
    /// The Debian root, or `/` for the rustup and host providers: either way
    /// its directories are mounted read-only and `/dev`, `/proc`, `/sys`,
    /// `/tmp`, `/run` are the sandbox's own.
    pub root: PathBuf,
    /// Directories put before the standard PATH (e.g. the LLVM bin dir).
    pub path_prefix: Vec<String>,
    /// Environment every command gets (e.g. LIBCLANG_PATH).
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    host: PathBuf,
    guest: String,
    writable: bool,
}

/// One invocation's view of the world.
#[derive(Debug, Clone)]
pub struct Jail<'a> {
    sandbox: &'a Sandbox,
    mounts: Vec<Mount>,
    network: bool,
    cwd: String,
    env: Vec<(String, String)>,
    /// Directories put before the sandbox's PATH, for this jail only.
    path_prefix: Vec<String>,
    interactive: bool,
}

const STANDARD_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

impl Sandbox {
    pub fn new(root: PathBuf, path_prefix: Vec<String>, env: Vec<(String, String)>) -> Result<Sandbox> {
        Ok(Sandbox { backend: backend()?, root, path_prefix, env })
    }

    /// A jail with no mounts, no network, in /tmp.
    pub fn jail(&self) -> Jail<'_> {
        Jail {
            sandbox: self,
            mounts: Vec::new(),
            network: false,
            cwd: "/tmp".to_string(),
            env: Vec::new(),
            path_prefix: Vec::new(),
            interactive: false,
        }
    }

    fn path_value(&self) -> String {
        let mut parts = self.path_prefix.clone();
        parts.push(STANDARD_PATH.to_string());
        parts.join(":")
    }
}

impl Jail<'_> {
    /// Mounts `host` read-only at `guest`; returns the path to use in argv.
    pub fn ro(&mut self, host: &Path, guest: &str) -> String {
        self.mount(host, guest, false)
    }

    /// Mounts `host` writable at `guest`; returns the path to use in argv.
    pub fn rw(&mut self, host: &Path, guest: &str) -> String {
        self.mount(host, guest, true)
    }

    fn mount(&mut self, host: &Path, guest: &str, writable: bool) -> String {
        self.mounts.push(Mount { host: host.to_path_buf(), guest: guest.to_string(), writable });
        guest.to_string()
    }

    /// Allows network access: for fetching packages, and for a kernel build
    /// only when the user named a ccache remote storage (`ccache.rs`).
    pub fn network(mut self) -> Self {
        self.network = true;
        self
    }

    /// Attached to the terminal (shells): no new session, so job control works.
    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self
    }

    pub fn cwd(mut self, guest: &str) -> Self {
        self.cwd = guest.to_string();
        self
    }

    /// Puts `guest` (a directory inside the jail) first on PATH.
    pub fn path_prefix(mut self, guest: &str) -> Self {
        self.path_prefix.push(guest.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn environment(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), [self.path_prefix.clone(), vec![self.sandbox.path_value()]].concat().join(":")),
            ("HOME".to_string(), "/tmp".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("LC_ALL".to_string(), "C.UTF-8".to_string()),
        ];
        if self.interactive
            && let Ok(term) = std::env::var("TERM")
        {
            env.push(("TERM".to_string(), term));
        }
        env.extend(self.sandbox.env.iter().cloned());
        env.extend(self.env.iter().cloned());
        env
    }

    /// The command that runs `argv` inside the jail.
    pub fn command<S: AsRef<str>>(&self, argv: &[S]) -> Result<Cmd> {
        let cmd = match self.sandbox.backend {
            Backend::Bwrap => self.bwrap_command(argv)?,
            Backend::Chroot => self.chroot_command(argv)?,
        };
        Ok(cmd.guarded())
    }

    fn root_entries(&self) -> Result<Vec<(String, RootEntry)>> {
        let root = &self.sandbox.root;
        let mut entries = Vec::new();
        let listing =
            fs_err::read_dir(root).with_context(|| format!("toolchain root {} is unreadable", root.display()))?;
        for entry in listing {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if ["dev", "proc", "sys", "tmp", "run"].contains(&name.as_str()) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                let target = fs_err::read_link(entry.path())?;
                entries.push((name, RootEntry::Symlink(target.to_string_lossy().into_owned())));
            } else if kind.is_dir() {
                entries.push((name, RootEntry::Dir(entry.path())));
            }
        }
        entries.sort_by(|left, right| left.0.cmp(&right.0));
        Ok(entries)
    }

    fn bwrap_command<S: AsRef<str>>(&self, argv: &[S]) -> Result<Cmd> {
        let mut cmd = Cmd::new("bwrap").arg("--unshare-all").arg("--die-with-parent");
        if self.network {
            cmd = cmd.arg("--share-net");
        }
        if !self.interactive {
            cmd = cmd.arg("--new-session");
        }
        for (name, entry) in self.root_entries()? {
            cmd = match entry {
                RootEntry::Symlink(target) => cmd.args(["--symlink", &target, &format!("/{name}")]),
                RootEntry::Dir(path) => cmd.arg("--ro-bind").arg(path).arg(format!("/{name}")),
            };
        }
        cmd = cmd.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]);
        if self.network {
            cmd = cmd.args(["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]);
        }
        for mount in &self.mounts {
            let flag = if mount.writable { "--bind" } else { "--ro-bind" };
            cmd = cmd.arg(flag).arg(&mount.host).arg(&mount.guest);
        }
        cmd = cmd.args(["--chdir", &self.cwd, "--clearenv"]);
        for (key, value) in self.environment() {
            cmd = cmd.args(["--setenv", &key, &value]);
        }
        Ok(cmd.arg("--").args(argv.iter().map(AsRef::as_ref)))
    }

    /// The chroot fallback: a private mount namespace with a tmpfs root that
    /// gets the toolchain root's directories (read-only) and the mounts, then
    /// `chroot`. Same view as bwrap, but needs real root.
    fn chroot_command<S: AsRef<str>>(&self, argv: &[S]) -> Result<Cmd> {
        let mut script = String::from("set -e\nnew=$(mktemp -d)\nmount -t tmpfs kforge-root \"$new\"\n");
        let quote = crate::process::shell_quote;
        for (name, entry) in self.root_entries()? {
            match entry {
                RootEntry::Symlink(target) => script.push_str(&format!("ln -s {} \"$new\"/{}\n", quote(&target), quote(&name))),
                RootEntry::Dir(path) => script.push_str(&format!(
                    "mkdir \"$new\"/{name}\nmount --rbind {host} \"$new\"/{name}\nmount -o remount,bind,ro \"$new\"/{name}\n",
                    name = quote(&name),
                    host = quote(&path.to_string_lossy())
                )),
            }
        }
        script.push_str("mkdir -p \"$new\"/dev \"$new\"/proc \"$new\"/tmp \"$new\"/var/tmp\n");
        script.push_str("mount --rbind /dev \"$new\"/dev\nmount -t proc proc \"$new\"/proc\n");
        script.push_str("mount -t tmpfs tmpfs \"$new\"/tmp\nmount -t tmpfs tmpfs \"$new\"/var/tmp\n");
        for mount in &self.mounts {
            let guest = quote(&mount.guest);
            script.push_str(&format!(
                "mkdir -p \"$new\"{guest}\nmount --bind {host} \"$new\"{guest}\n",
                host = quote(&mount.host.to_string_lossy())
            ));
            if !mount.writable {
                script.push_str(&format!("mount -o remount,bind,ro \"$new\"{guest}\n"));
            }
        }
        let mut env_words: Vec<String> = Vec::new();
        for (key, value) in self.environment() {
            env_words.push(quote(&format!("{key}={value}")));
        }
        let argv_words: Vec<String> = argv.iter().map(|word| quote(word.as_ref())).collect();
        script.push_str(&format!(
            "exec chroot \"$new\" /usr/bin/env -i {} /bin/sh -c 'cd \"$0\" && exec \"$@\"' {} {}\n",
            env_words.join(" "),
            quote(&self.cwd),
            argv_words.join(" ")
        ));
        let mut cmd =
            Cmd::new("unshare").args(["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private"]);
        if !self.network {
            cmd = cmd.arg("--net");
        }
        Ok(cmd.args(["sh", "-c", &script]))
    }
}

enum RootEntry {
    Symlink(String),
    Dir(PathBuf),
}

/// The backend for this run: the session's `--sandbox` (`KFORGE_SANDBOX`),
/// else bwrap if it can create namespaces here, else chroot when running as
/// root. The probe runs once per process.
pub fn backend() -> Result<Backend> {
    static PROBED: OnceLock<Result<Backend, String>> = OnceLock::new();
    let chosen = match crate::session::current().sandbox {
        Some(SandboxChoice::Bwrap) => return Ok(Backend::Bwrap),
        Some(SandboxChoice::Chroot) => return Ok(Backend::Chroot),
        None => PROBED.get_or_init(probe_backend),
    };
    chosen.clone().map_err(error::user)
}

fn probe_backend() -> Result<Backend, String> {
    let probe = Cmd::new("bwrap").args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"]).output();
    match probe {
        Ok(output) if output.status.success() => Ok(Backend::Bwrap),
        result => {
            let reason = match result {
                Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
                Err(err) => err.to_string(),
            };
            if is_root() && crate::process::which("unshare").is_some() {
                crate::progress::warn(format!("bubblewrap cannot run here ({reason}); using chroot instead"));
                Ok(Backend::Chroot)
            } else {
                Err(format!(
                    "bubblewrap cannot create a sandbox here: {reason}\n\
                     kforge needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root"
                ))
            }
        }
    }
}

/// Whether kforge runs as uid 0.
pub fn is_root() -> bool {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root() -> PathBuf {
        let root = std::env::temp_dir().join(format!("kforge-sandbox-test-{}", std::process::id()));
        fs_err::create_dir_all(root.join("usr/bin")).unwrap();
        fs_err::create_dir_all(root.join("etc")).unwrap();
        fs_err::create_dir_all(root.join("tmp")).unwrap();
        let _ = std::os::unix::fs::symlink("usr/bin", root.join("bin"));
        root
    }

    #[test]
    fn bwrap_plan_is_hermetic() {
        let root = fake_root();
        let sandbox = Sandbox {
            backend: Backend::Bwrap,
            root: root.clone(),
            path_prefix: vec!["/usr/lib/llvm-22/bin".into()],
            env: vec![("LIBCLANG_PATH".into(), "/usr/lib/llvm-22/lib".into())],
        };
        let mut jail = sandbox.jail();
        let src = jail.ro(Path::new("/cache/src"), "/src");
        let build = jail.rw(Path::new("/cache/build"), "/build");
        let cmd = jail.cwd(&build).command(&["make", "-C", &src, "O=/build"]).unwrap();
        let text = cmd.display().replace(&root.display().to_string(), "$ROOT");
        expect_test::expect![[r#"bwrap --unshare-all --die-with-parent --new-session --symlink usr/bin /bin --ro-bind $ROOT/etc /etc --ro-bind $ROOT/usr /usr --dev /dev --proc /proc --tmpfs /tmp --tmpfs /var/tmp --ro-bind /cache/src /src --bind /cache/build /build --chdir /build --clearenv --setenv PATH /usr/lib/llvm-22/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin --setenv HOME /tmp --setenv LANG C.UTF-8 --setenv LC_ALL C.UTF-8 --setenv LIBCLANG_PATH /usr/lib/llvm-22/lib -- make -C /src O=/build"#]]
            .assert_eq(&text);
        assert!(!text.contains("--share-net"), "builds must not have network");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn chroot_plan_mounts_read_only_and_cuts_network() {
        let root = fake_root();
        let sandbox = Sandbox { backend: Backend::Chroot, root: root.clone(), path_prefix: vec![], env: vec![] };
        let mut jail = sandbox.jail();
        jail.ro(Path::new("/cache/src"), "/src");
        let cmd = jail.command(&["true"]).unwrap();
        let argv = cmd.argv();
        assert!(argv.contains(&"--net".to_string()));
        let script = argv.last().unwrap();
        assert!(
            script.contains("mount --bind /cache/src \"$new\"/src\nmount -o remount,bind,ro \"$new\"/src"),
            "{script}"
        );
        assert!(script.contains("exec chroot \"$new\""), "{script}");
        let _ = std::fs::remove_dir_all(root);
    }
}
