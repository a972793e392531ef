//! Module signatures for Secure Boot cells: each module a cell loads is signed with the kernel's own `scripts/sign-file` and the project's db key, and the guest gets unsigned and tampered copies it must refuse.
//!
//! The kernel of such a cell trusts the db certificate
//! (CONFIG_SYSTEM_TRUSTED_KEYS, `pipeline::secure_boot_kernel_plan`) and its
//! signed UKI boots with `module.sig_enforce=1`. Signing writes copies under
//! the cell's directory: the cached driver builds stay unsigned. sign-file
//! adds no signing time, so the same module and key give the same bytes.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::driver::{BuiltDriver, ModuleFile};
use crate::error;
use crate::kernel::build::KernelBuild;
use crate::secureboot::SigningKey;
use crate::toolchain::Toolchain;

/// The trailer sign-file appends after the signature (`MODULE_SIG_STRING`).
const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";

/// What /init tries to load to prove the kernel enforces signatures: one
/// module signed (must load), unsigned and with one byte changed (must both
/// be refused with EKEYREJECTED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// The module's name (what rmmod takes) and its load parameters.
    pub module: String,
    pub params: Vec<String>,
    pub signed: Vec<u8>,
    pub unsigned: Vec<u8>,
    pub tampered: Vec<u8>,
}

impl Probes {
    /// The files /init finds under `/kforge/modsig/`.
    pub fn initramfs_files(&self) -> Vec<(String, Vec<u8>)> {
        let spec = format!("{} {}", self.module, self.params.join(" ")).trim_end().to_string() + "\n";
        vec![
            ("kforge/modsig/module".to_string(), spec.into_bytes()),
            ("kforge/modsig/signed.ko".to_string(), self.signed.clone()),
            ("kforge/modsig/unsigned.ko".to_string(), self.unsigned.clone()),
            ("kforge/modsig/tampered.ko".to_string(), self.tampered.clone()),
        ]
    }
}

/// Whether a module file carries an appended signature.
pub fn is_signed(module: &[u8]) -> bool {
    module.ends_with(SIGNATURE_MAGIC)
}

/// The hash the kernel signs modules with (`CONFIG_MODULE_SIG_HASH`), from its `.config`.
pub fn signature_hash(kernel_config: &str) -> Option<String> {
    kernel_config.lines().find_map(|line| {
        let value = line.trim().strip_prefix("CONFIG_MODULE_SIG_HASH=")?;
        Some(value.trim_matches('"').to_string()).filter(|hash| !hash.is_empty())
    })
}

/// A copy of a signed module with one byte of its body (not the signature)
/// changed: the byte halfway into the unsigned part.
pub fn tamper(signed: &[u8], unsigned_len: usize) -> Vec<u8> {
    let mut copy = signed.to_vec();
    let index = unsigned_len / 2;
    copy[index] ^= 0xff;
    copy
}

/// Signs every module of `built` into `out` (replaced), returning the builds
/// with their module paths pointing at the signed copies, and the probes made
/// from the package the guest tests first (`fifo` when it is there).
pub fn sign_drivers(
    toolchain: &Toolchain,
    kernel: &KernelBuild,
    key: &SigningKey,
    built: &[BuiltDriver],
    out: &Path,
) -> Result<(Vec<BuiltDriver>, Option<Probes>)> {
    let config_path = kernel.dir.join(".config");
    let config = fs_err::read_to_string(&config_path)?;
    let Some(hash) = signature_hash(&config) else {
        bail!(error::user_hint(
            format!(
                "the kernel in {} cannot check module signatures: its .config has no CONFIG_MODULE_SIG_HASH",
                kernel.dir.display()
            ),
            "enable CONFIG_MODULE_SIG (with CONFIG_MODULE_SIG_KEY=\"\") in the arch's kernel-config fragment",
        ));
    };
    if !kernel.dir.join("scripts/sign-file").is_file() {
        bail!(
            "{} is missing: the kernel build did not make sign-file (CONFIG_MODULE_SIG)",
            kernel.dir.join("scripts/sign-file").display()
        );
    }
    crate::cache::remove_dir_if_exists(out)?;
    fs_err::create_dir_all(out)?;
    let sandbox = toolchain.sandbox()?;
    let mut jail = sandbox.jail();
    jail.ro(&kernel.dir, "/build");
    jail.ro(&key.key, "/kforge/signing.key");
    jail.ro(&key.cert, "/kforge/signing.crt");
    jail.rw(out, "/kforge/out");

    let mut signed_builds = Vec::new();
    for build in built {
        let mut modules = Vec::new();
        for module in &build.modules {
            let relative = format!("{}/{}.ko", build.driver.name, module.name);
            let copy = out.join(&relative);
            fs_err::create_dir_all(copy.parent().context("a module copy has a directory")?)?;
            fs_err::copy(&module.ko, &copy)?;
            let argv = [
                "/build/scripts/sign-file".to_string(),
                hash.clone(),
                "/kforge/signing.key".to_string(),
                "/kforge/signing.crt".to_string(),
                format!("/kforge/out/{relative}"),
            ];
            jail.command(&argv)?
                .run()
                .with_context(|| format!("sign-file could not sign {} ({})", module.ko.display(), build.driver.name))?;
            if !is_signed(&fs_err::read(&copy)?) {
                bail!("sign-file left {} without a signature", copy.display());
            }
            modules.push(ModuleFile { ko: copy, ..module.clone() });
        }
        signed_builds.push(BuiltDriver { modules, ..build.clone() });
    }
    let probes = probes(built, &signed_builds)?;
    Ok((signed_builds, probes))
}

/// The probes, from the last module (the package's own) of `fifo`, else of
/// the first package with modules.
fn probes(unsigned: &[BuiltDriver], signed: &[BuiltDriver]) -> Result<Option<Probes>> {
    let chosen = unsigned
        .iter()
        .position(|build| build.driver.name == "fifo" && !build.modules.is_empty())
        .or_else(|| unsigned.iter().position(|build| !build.modules.is_empty()));
    let Some(index) = chosen else { return Ok(None) };
    let (Some(plain), Some(with_signature)) = (unsigned[index].modules.last(), signed[index].modules.last()) else {
        return Ok(None);
    };
    let plain_bytes = fs_err::read(&plain.ko)?;
    if is_signed(&plain_bytes) {
        bail!("{} is already signed: the unsigned probe needs the build's own copy", plain.ko.display());
    }
    let signed_bytes = fs_err::read(&with_signature.ko)?;
    Ok(Some(Probes {
        module: plain.name.clone(),
        params: plain.params.clone(),
        tampered: tamper(&signed_bytes, plain_bytes.len()),
        signed: signed_bytes,
        unsigned: plain_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_comes_from_the_kernel_config() {
        let config = "CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n";
        assert_eq!(signature_hash(config).as_deref(), Some("sha256"));
        assert_eq!(signature_hash("CONFIG_MODULES=y\n"), None);
        assert_eq!(signature_hash("CONFIG_MODULE_SIG_HASH=\"\"\n"), None);
    }

    #[test]
    fn tampering_changes_one_byte_of_the_body_and_keeps_the_signature() {
        let body = vec![0u8; 100];
        let mut signed = body.clone();
        signed.extend_from_slice(b"SIGNATURE");
        signed.extend_from_slice(SIGNATURE_MAGIC);
        let tampered = tamper(&signed, body.len());
        let changed: Vec<usize> = (0..signed.len()).filter(|&i| signed[i] != tampered[i]).collect();
        assert_eq!(changed, [50]);
        assert!(is_signed(&tampered));
        assert!(!is_signed(&body));
    }

    #[test]
    fn probes_name_the_module_and_its_parameters_for_init() {
        let probes = Probes {
            module: "kforge_fifo".into(),
            params: vec!["capacity=64".into()],
            signed: b"s".to_vec(),
            unsigned: b"u".to_vec(),
            tampered: b"t".to_vec(),
        };
        let files = probes.initramfs_files();
        assert_eq!(files[0], ("kforge/modsig/module".to_string(), b"kforge_fifo capacity=64\n".to_vec()));
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "kforge/modsig/module",
                "kforge/modsig/signed.ko",
                "kforge/modsig/unsigned.ko",
                "kforge/modsig/tampered.ko"
            ]
        );
    }
}
