//! Distribution archives for packagers: per cell a deterministic tarball with the kernel image, stripped modules, initramfs, SHA256SUMS, manifest.json and an SPDX SBOM.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cache;
use crate::driver::{BuiltDriver, ModuleFile};
use crate::process::{Cmd, Control, Outcome};

/// One file of an archive, by its path inside the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Kernel facts recorded in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct KernelFacts {
    pub id: String,
    pub version: String,
    /// What the source is (`debian:pkg=version:sha256`, `tarball:sha256`, `path:...`).
    pub source: String,
    pub config_sha256: String,
    pub image: String,
}

/// A driver in the archive.
#[derive(Debug, Clone, Serialize)]
pub struct DriverFacts {
    pub name: String,
    pub version: String,
    pub modules: Vec<String>,
}

/// Everything about how the artifacts were made.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub kforge_version: String,
    pub cell: String,
    pub arch: String,
    pub kernel: KernelFacts,
    pub drivers: Vec<DriverFacts>,
    pub toolchain: ToolchainFacts,
    pub build: BuildFacts,
    pub source_date_epoch: u64,
    /// The UEFI disk image, for arches that boot through UEFI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskFacts>,
    /// sha256 of every file in the archive except manifest, SBOM and SHA256SUMS.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolchainFacts {
    pub id: String,
    pub key: String,
    /// Tool -> version found by `toolchain verify`.
    pub versions: BTreeMap<String, String>,
    /// Every Debian package in the root -> version.
    pub packages: BTreeMap<String, String>,
}

/// How the disk image was made (`disk.raw`).
#[derive(Debug, Clone, Serialize)]
pub struct DiskFacts {
    pub image: String,
    /// The pinned disk-image tools (`toolchains/images.pins`): package -> version.
    pub tools: BTreeMap<String, String>,
    /// The UEFI firmware package the disk is tested with -> its version.
    pub firmware: BTreeMap<String, String>,
    /// SHA-256 fingerprint of the db certificate the UKI is signed with (unsigned: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_boot_certificate_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildFacts {
    pub make: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub modules_stripped: bool,
}

/// `sha256  path` lines, sorted by path, for every entry.
pub fn sha256sums(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|left, right| left.path.cmp(&right.path));
    sorted.iter().map(|entry| format!("{}  {}\n", cache::sha256_hex(&entry.data), entry.path)).collect()
}

/// An SPDX 2.3 JSON document: the kernel, the drivers and the toolchain's
/// packages (as build tools), and every file with its checksum.
pub fn spdx(manifest: &Manifest, entries: &[Entry]) -> Result<String> {
    let package = |id: &str, name: &str, version: &str, download: &str, comment: &str| {
        serde_json::json!({
            "SPDXID": id,
            "name": name,
            "versionInfo": version,
            "downloadLocation": download,
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": comment,
        })
    };
    let mut packages = vec![package(
        "SPDXRef-Package-linux",
        "linux",
        &manifest.kernel.version,
        "NOASSERTION",
        &format!("kernel {} from {}", manifest.kernel.id, manifest.kernel.source),
    )];
    let mut relationships = vec![serde_json::json!({
        "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Package-linux"
    })];
    for driver in &manifest.drivers {
        let id = format!("SPDXRef-Package-driver-{}", spdx_id(&driver.name));
        packages.push(package(
            &id,
            &driver.name,
            &driver.version,
            "NOASSERTION",
            &format!("kforge driver package, modules {}", driver.modules.join(", ")),
        ));
        relationships.push(serde_json::json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": id}));
    }
    for (name, version) in &manifest.toolchain.packages {
        let id = format!("SPDXRef-Package-deb-{}", spdx_id(name));
        packages.push(package(
            &id,
            name,
            version,
            "NOASSERTION",
            &format!("Debian package in toolchain {}", manifest.toolchain.id),
        ));
        relationships.push(serde_json::json!({"spdxElementId": id, "relationshipType": "BUILD_TOOL_OF", "relatedSpdxElement": "SPDXRef-Package-linux"}));
    }
    if let Some(disk) = &manifest.disk {
        let disk_id = format!("SPDXRef-File-{}", spdx_id(&disk.image));
        for (name, version) in disk.tools.iter().chain(&disk.firmware) {
            let id = format!("SPDXRef-Package-image-tool-{}", spdx_id(name));
            packages.push(package(
                &id,
                name,
                version,
                "NOASSERTION",
                "Debian package that built or boots the disk image",
            ));
            relationships.push(serde_json::json!({"spdxElementId": id, "relationshipType": "BUILD_TOOL_OF", "relatedSpdxElement": disk_id}));
        }
    }
    let files: Vec<serde_json::Value> = entries
        .iter()
        .map(|entry| {
            serde_json::json!({
                "SPDXID": format!("SPDXRef-File-{}", spdx_id(&entry.path)),
                "fileName": format!("./{}", entry.path),
                "checksums": [{"algorithm": "SHA256", "checksumValue": cache::sha256_hex(&entry.data)}],
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
            })
        })
        .collect();
    let identity = cache::sha256_hex(serde_json::to_string(manifest)?.as_bytes());
    let document = serde_json::json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("kforge-{}", manifest.cell),
        "documentNamespace": format!("urn:kforge:dist:{}:{identity}", manifest.cell),
        "creationInfo": {"created": iso8601(manifest.source_date_epoch), "creators": [format!("Tool: kforge-{}", manifest.kforge_version)]},
        "packages": packages,
        "files": files,
        "relationships": relationships,
    });
    Ok(serde_json::to_string_pretty(&document)? + "\n")
}

/// SPDX ids allow letters, digits, `.` and `-`.
fn spdx_id(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect()
}

/// `1970-01-01T00:00:00Z` for a Unix time (UTC, no leap seconds).
pub fn iso8601(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let day_of_year = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Writes `<out>/kforge-<cell>.tar.gz` (and its `.sha256`): entries under `kforge-<cell>/`.
pub fn write_archive(out: &Path, cell: &str, entries: &[Entry], mtime: u64) -> Result<PathBuf> {
    let prefix = format!("kforge-{cell}");
    let archive = out.join(format!("{prefix}.tar.gz"));
    write_tar_gz(&archive, &prefix, entries, mtime, flate2::Compression::best())?;
    Ok(archive)
}

/// Writes `archive` and `<archive>.sha256` atomically (see `tar_gz`).
pub fn write_tar_gz(
    archive: &Path,
    prefix: &str,
    entries: &[Entry],
    mtime: u64,
    level: flate2::Compression,
) -> Result<()> {
    let bytes = tar_gz(prefix, entries, mtime, level)?;
    cache::write_atomic(archive, &bytes).with_context(|| format!("failed to write {}", archive.display()))?;
    let name = archive.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    cache::write_atomic(&cache::sibling(archive, "sha256"), format!("{}  {name}\n", cache::sha256_hex(&bytes)))?;
    Ok(())
}

/// A deterministic tar.gz: entries under `prefix/`, sorted, directories
/// included, owner 0:0, every mtime `mtime`, gzip header without time or name
/// (the same bytes for the same entries and level).
pub fn tar_gz(prefix: &str, entries: &[Entry], mtime: u64, level: flate2::Compression) -> Result<Vec<u8>> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|left, right| left.path.cmp(&right.path));
    let prefix = prefix.to_string();
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let mut dirs: std::collections::BTreeSet<String> = std::collections::BTreeSet::from([prefix.clone()]);
    for entry in &sorted {
        let mut parent = prefix.clone();
        for part in entry.path.split('/').collect::<Vec<_>>().iter().rev().skip(1).rev() {
            parent = format!("{parent}/{part}");
            dirs.insert(parent.clone());
        }
    }
    let mut items: Vec<(String, Option<&Entry>)> = dirs.into_iter().map(|dir| (dir, None)).collect();
    items.extend(sorted.iter().map(|entry| (format!("{prefix}/{}", entry.path), Some(*entry))));
    items.sort_by(|left, right| left.0.cmp(&right.0));
    for (path, entry) in items {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_cksum();
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            Some(entry) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(entry.mode);
                header.set_size(entry.data.len() as u64);
                header.set_cksum();
                builder.append_data(&mut header, &path, entry.data.as_slice())?;
            }
        }
    }
    let tar = builder.into_inner()?;
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), level);
    gz.write_all(&tar)?;
    Ok(gz.finish()?)
}

/// Reads a file a build produced for packing: a symlink or anything but a
/// regular file is refused, never followed (see `safefs`).
pub fn read_packed(path: &Path) -> Result<Vec<u8>> {
    Ok(crate::safefs::read_regular(path)
        .with_context(|| format!("cannot put {} into the dist archive", path.display()))?
        .data)
}

/// Reads an archive back as path -> bytes (for comparing two builds).
pub fn read_archive(archive: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let file = fs_err::File::open(archive)?;
    let mut reader = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in reader.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let path = entry.path()?.to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)?;
            files.insert(path, data);
        }
    }
    Ok(files)
}

/// Paths whose contents differ (or exist on one side only) between two archives.
pub fn differences(left: &BTreeMap<String, Vec<u8>>, right: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut paths: Vec<&String> = left.keys().chain(right.keys()).collect();
    paths.sort();
    paths.dedup();
    paths.into_iter().filter(|path| left.get(*path) != right.get(*path)).cloned().collect()
}

/// Replaces each module with a copy stripped of debug information (`llvm-strip --strip-debug`).
pub fn strip_modules(toolchain: &crate::toolchain::Toolchain, built: &mut [BuiltDriver], dir: &Path) -> Result<()> {
    fs_err::create_dir_all(dir)?;
    let sandbox = toolchain.sandbox()?;
    for item in built.iter_mut() {
        for module in item.modules.iter_mut() {
            let stripped = dir.join(format!("{}.ko", module.name));
            let mut jail = sandbox.jail();
            jail.ro(&module.ko, "/kforge/in.ko");
            jail.rw(dir, "/kforge/out");
            let output = format!("/kforge/out/{}.ko", module.name);
            jail.command(&["llvm-strip", "--strip-debug", "-o", &output, "/kforge/in.ko"])?
                .run()
                .with_context(|| format!("failed to strip {}", module.ko.display()))?;
            *module = ModuleFile { ko: stripped, ..module.clone() };
        }
    }
    Ok(())
}

/// Runs the running kforge binary again with `argv` (`dist
/// --check-reproducible`'s two builds: the session's flags, with each side's
/// own cache and output directories, then the command), its output in `log`
/// and each line passed to `on_line`; whether it succeeded.
pub fn rerun_kforge(argv: &[String], log: &Path, on_line: &mut dyn FnMut(&str)) -> Result<bool> {
    let exe = std::env::current_exe().context("cannot find the running kforge binary")?;
    let cmd = Cmd::new(&exe).args(argv);
    let outcome = cmd.stream(log, None, &mut |line| {
        on_line(line);
        Control::Continue
    })?;
    Ok(matches!(outcome, Outcome::Exited(status) if status.success()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry { path: "modules/fifo/kforge_fifo.ko".into(), mode: 0o644, data: b"ko".to_vec() },
            Entry { path: "boot/bzImage".into(), mode: 0o644, data: b"kernel".to_vec() },
        ]
    }

    #[test]
    fn archives_are_deterministic_and_readable() {
        let dir = std::env::temp_dir().join(format!("kforge-dist-test-{}", std::process::id()));
        let first = write_archive(&dir.join("a"), "7.2-x86_64", &entries(), 0).unwrap();
        let mut reversed = entries();
        reversed.reverse();
        let second = write_archive(&dir.join("b"), "7.2-x86_64", &reversed, 0).unwrap();
        assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
        let files = read_archive(&first).unwrap();
        assert_eq!(files["kforge-7.2-x86_64/boot/bzImage"], b"kernel");
        let mut changed = entries();
        changed[0].data = b"other".to_vec();
        let third = write_archive(&dir.join("c"), "7.2-x86_64", &changed, 0).unwrap();
        assert_eq!(
            differences(&files, &read_archive(&third).unwrap()),
            ["kforge-7.2-x86_64/modules/fifo/kforge_fifo.ko"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sums_are_sorted_sha256_lines() {
        let sums = sha256sums(&entries());
        let lines: Vec<&str> = sums.lines().collect();
        assert!(lines[0].ends_with("  boot/bzImage") && lines[1].ends_with("  modules/fifo/kforge_fifo.ko"));
        assert!(lines[0].starts_with(&cache::sha256_hex(b"kernel")));
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_318_916), "2026-11-22T03:41:56Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }
}
