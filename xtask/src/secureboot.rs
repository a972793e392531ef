//! Secure Boot: the project key set (PK, KEK, db), signing UKIs with systemd-sbsign, and enrolling the keys into a copy of the firmware's variable store with virt-fw-vars.
//!
//! Keys come from a directory named by `KFORGE_SECURE_BOOT_KEYS` or by
//! `[boot] secure-boot-keys` in kforge.toml, or are generated once under the
//! cache (`~/.cache/kforge/secureboot/keys/`). The private key is only ever mounted read-only into the signers' jails: it never
//! enters a disk image, a log or results.json.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::sandbox::Sandbox;
use crate::toolroot::ToolRoot;
use crate::{cache, error, paths};

/// The environment variable naming a directory with the user's own keys.
pub const KEYS_ENV: &str = "KFORGE_SECURE_BOOT_KEYS";
/// The owner GUID kforge enrols its certificates under.
const OWNER_GUID: &str = "6b666f72-6765-4b65-7973-000000000001";
/// The files of a key directory. Only db's private key is needed: kforge
/// signs images, not key updates.
const FILES: [&str; 4] = ["PK.crt", "KEK.crt", "db.crt", "db.key"];

/// A Secure Boot key set on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub dir: PathBuf,
}

impl KeySet {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// db's key and certificate: what UKIs and, for Secure Boot cells, modules are signed with.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey { key: self.file("db.key"), cert: self.file("db.crt") }
    }
}

/// A private key and its certificate (db's, or a MOK pair a packager gives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl SigningKey {
    /// Both files are there and readable (before anything is built; `check_pair` checks they match).
    pub fn check_readable(&self) -> Result<()> {
        for (what, path) in [("signing key", &self.key), ("signing certificate", &self.cert)] {
            std::fs::File::open(path).map_err(|err| {
                error::user_hint(
                    format!("{what} {} is not readable: {err}", path.display()),
                    "name a PEM private key and its certificate (--sign-key and --sign-cert)",
                )
            })?;
        }
        Ok(())
    }
}

/// Where the user's own key set comes from, if anywhere: `from_env` (the value of
/// `KFORGE_SECURE_BOOT_KEYS`), else `[boot] secure-boot-keys` in kforge.toml
/// (relative to `repo`). Returns the directory and how to name its source in errors.
pub fn user_keys(
    repo: &Path,
    from_env: Option<std::ffi::OsString>,
    configured: Option<&Path>,
) -> Option<(PathBuf, String)> {
    if let Some(dir) = from_env.filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        let source = format!("{KEYS_ENV}={}", dir.display());
        return Some((dir, source));
    }
    configured.map(|dir| {
        let dir = repo.join(dir);
        let source = format!("[boot] secure-boot-keys in kforge.toml ({})", dir.display());
        (dir, source)
    })
}

/// The key set for this run: the user's (checked), else kforge's generated one.
pub fn ready_keys(tools: &ToolRoot, user: Option<(PathBuf, String)>) -> Result<KeySet> {
    let sandbox = tools.sandbox()?;
    if let Some((dir, source)) = user {
        let keys = KeySet { dir };
        check_keys(&sandbox, &keys).with_context(|| format!("the Secure Boot keys of {source}"))?;
        return Ok(keys);
    }
    let dir = paths::cache_dir()?.join("secureboot").join("keys");
    cache::ensure_dir(&dir, |work| generate_keys(&sandbox, work))?;
    let keys = KeySet { dir };
    check_keys(&sandbox, &keys)?;
    Ok(keys)
}

/// Generates a self-signed PK, KEK and db (RSA 2048, 10 years) into `dir`.
fn generate_keys(sandbox: &Sandbox, dir: &Path) -> Result<()> {
    cache::remove_dir_if_exists(dir)?;
    fs_err::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let mut jail = sandbox.jail();
    jail.rw(dir, "/kforge/keys");
    for name in ["PK", "KEK", "db"] {
        let argv = [
            "openssl",
            "req",
            "-new",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            &format!("/CN=kforge project {name}/"),
            "-keyout",
            &format!("/kforge/keys/{name}.key"),
            "-out",
            &format!("/kforge/keys/{name}.crt"),
        ];
        jail.command(&argv)?.run().with_context(|| format!("openssl could not generate the {name} key"))?;
    }
    Ok(())
}

/// Every file is there and readable, and db.key belongs to db.crt.
pub fn check_keys(sandbox: &Sandbox, keys: &KeySet) -> Result<()> {
    for name in FILES {
        let path = keys.file(name);
        fs_err::File::open(&path).map_err(|err| {
            error::user_hint(
                format!("Secure Boot key file {} is not readable: {err}", path.display()),
                format!("a key directory holds {}", FILES.join(", ")),
            )
        })?;
    }
    check_pair(sandbox, &keys.signing_key())
}

/// The key file is a private key, the certificate one openssl reads, and the
/// key belongs to the certificate.
pub fn check_pair(sandbox: &Sandbox, pair: &SigningKey) -> Result<()> {
    let mut jail = sandbox.jail();
    jail.ro(&pair.key, "/kforge/signing.key");
    jail.ro(&pair.cert, "/kforge/signing.crt");
    let public_of = |argv: &[&str]| -> Result<String> { jail.command(argv)?.run() };
    let from_key = public_of(&["openssl", "pkey", "-in", "/kforge/signing.key", "-pubout"])
        .with_context(|| format!("{} is not a private key openssl can read", pair.key.display()))?;
    let from_cert = public_of(&["openssl", "x509", "-in", "/kforge/signing.crt", "-noout", "-pubkey"])
        .with_context(|| format!("{} is not a certificate openssl can read", pair.cert.display()))?;
    if from_key.trim() != from_cert.trim() {
        return Err(error::user(format!("{} does not belong to {}", pair.key.display(), pair.cert.display())));
    }
    Ok(())
}

/// The db certificate's SHA-256 fingerprint (for manifests), `AB:CD:...`.
pub fn fingerprint(sandbox: &Sandbox, keys: &KeySet) -> Result<String> {
    let mut jail = sandbox.jail();
    jail.ro(&keys.dir, "/kforge/keys");
    let out =
        jail.command(&["openssl", "x509", "-in", "/kforge/keys/db.crt", "-noout", "-fingerprint", "-sha256"])?.run()?;
    Ok(out.trim().rsplit('=').next().unwrap_or_default().to_string())
}

/// Signs the PE binary `file` in place with db's key, then checks the
/// signature against db's certificate with sbverify.
///
/// The signer is systemd-sbsign (from the pinned systemd-repart), not
/// sbsign: sbsign stamps the signing time into the signature, so two builds
/// of one disk would differ. systemd-sbsign takes its time from
/// `SOURCE_DATE_EPOCH`, and the same input and key give the same bytes.
pub fn sign(sandbox: &Sandbox, keys: &KeySet, file: &Path) -> Result<()> {
    let dir = file.parent().context("a signed file has a directory")?;
    let name = file.file_name().context("a signed file has a name")?.to_string_lossy().into_owned();
    let mut jail = sandbox.jail();
    jail.ro(&keys.dir, "/kforge/keys");
    jail.rw(dir, "/kforge/sign");
    let argv = [
        "/usr/lib/systemd/systemd-sbsign".to_string(),
        "sign".to_string(),
        "--private-key=/kforge/keys/db.key".to_string(),
        "--certificate=/kforge/keys/db.crt".to_string(),
        format!("--output=/kforge/sign/{name}.signed"),
        format!("/kforge/sign/{name}"),
    ];
    let epoch = crate::image::source_date_epoch().to_string();
    jail.clone()
        .env("SOURCE_DATE_EPOCH", &epoch)
        .command(&argv)?
        .run()
        .with_context(|| format!("systemd-sbsign could not sign {}", file.display()))?;
    let verify = ["sbverify", "--cert=/kforge/keys/db.crt", &format!("/kforge/sign/{name}.signed")];
    jail.command(&verify)?
        .run()
        .with_context(|| format!("sbverify does not accept the signature systemd-sbsign made on {}", file.display()))?;
    fs_err::rename(dir.join(format!("{name}.signed")), file)?;
    Ok(())
}

/// Writes `out`: a copy of the firmware's empty variable store `vars` with the
/// key set enrolled and Secure Boot on.
pub fn enroll(sandbox: &Sandbox, keys: &KeySet, vars: &Path, out: &Path) -> Result<()> {
    let dir = out.parent().context("an enrolled store has a directory")?;
    let name = out.file_name().context("an enrolled store has a name")?.to_string_lossy().into_owned();
    let mut jail = sandbox.jail();
    jail.ro(&keys.dir, "/kforge/keys");
    jail.ro(vars, "/kforge/in/vars.fd");
    jail.rw(dir, "/kforge/out");
    let argv = [
        "virt-fw-vars".to_string(),
        "--input=/kforge/in/vars.fd".to_string(),
        format!("--output=/kforge/out/{name}"),
        "--set-pk".to_string(),
        OWNER_GUID.to_string(),
        "/kforge/keys/PK.crt".to_string(),
        "--add-kek".to_string(),
        OWNER_GUID.to_string(),
        "/kforge/keys/KEK.crt".to_string(),
        "--add-db".to_string(),
        OWNER_GUID.to_string(),
        "/kforge/keys/db.crt".to_string(),
        "--no-microsoft".to_string(),
        "--secure-boot".to_string(),
    ];
    jail.command(&argv)?.run().context("virt-fw-vars could not enrol the Secure Boot keys")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_keys_are_relative_to_the_project_and_the_environment_wins() {
        let repo = Path::new("/work/project");
        let (dir, source) = user_keys(repo, None, Some(Path::new("keys/sb"))).unwrap();
        assert_eq!(dir, Path::new("/work/project/keys/sb"));
        assert_eq!(source, "[boot] secure-boot-keys in kforge.toml (/work/project/keys/sb)");
        let absolute = user_keys(repo, None, Some(Path::new("/etc/kforge/keys"))).unwrap();
        assert_eq!(absolute.0, Path::new("/etc/kforge/keys"));
        assert_eq!(user_keys(repo, None, None), None);
        let from_env = user_keys(repo, Some("/keys/env".into()), Some(Path::new("keys/sb"))).unwrap();
        assert_eq!(from_env, (PathBuf::from("/keys/env"), format!("{KEYS_ENV}=/keys/env")));
        // An empty variable counts as unset.
        assert_eq!(user_keys(repo, Some("".into()), None), None);
    }
}
