//! Bootable initramfs images: deterministic newc cpio segments (sorted, fixed owners and mtimes), gzip'd and concatenated: busybox and /init, then one per package with its modules and tests.
//!
//! The kernel unpacks concatenated compressed archives in order, so a
//! package's segment is made once per content and appended as it is: an edit
//! to one driver repacks only that driver's segment.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::driver::BuiltDriver;

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { mode: u32, data: Vec<u8> },
    Symlink(String),
    CharDevice { mode: u32, major: u32, minor: u32 },
}

/// A set of paths (without leading `/`) and their nodes; written sorted.
#[derive(Debug, Default, Clone)]
pub struct Cpio {
    entries: BTreeMap<String, Node>,
}

impl Cpio {
    pub fn new() -> Cpio {
        Cpio::default()
    }

    /// Adds an entry, creating missing parent directories.
    pub fn add(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/').to_string();
        let mut parent = String::new();
        for part in path.split('/').collect::<Vec<_>>().iter().rev().skip(1).rev() {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Node::Dir);
        }
        self.entries.insert(path, node);
    }

    pub fn add_file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) {
        self.add(path, Node::File { mode, data: data.into() });
    }

    /// Writes the entries as a directory tree under `dir` (the disk image's
    /// root partition holds the same files as the initramfs segments).
    /// Device nodes are left out: they need privileges and the disk needs none.
    pub fn write_tree(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for (path, node) in &self.entries {
            let target = dir.join(path);
            match node {
                Node::Dir => fs_err::create_dir_all(&target)?,
                Node::File { mode, data } => {
                    fs_err::write(&target, data)?;
                    fs_err::set_permissions(&target, std::fs::Permissions::from_mode(*mode))?;
                }
                Node::Symlink(link) => fs_err::os::unix::fs::symlink(link, &target)?,
                Node::CharDevice { .. } => {}
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn paths(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// The newc archive: entries sorted by path, inode numbers in that order,
    /// uid/gid 0 and every mtime `mtime`.
    pub fn to_newc(&self, mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, (path, node)) in self.entries.iter().enumerate() {
            let (mode, data, rdev, nlink): (u32, &[u8], (u32, u32), u32) = match node {
                Node::Dir => (0o040755, &[], (0, 0), 2),
                Node::File { mode, data } => (0o100000 | mode, data, (0, 0), 1),
                Node::Symlink(target) => (0o120777, target.as_bytes(), (0, 0), 1),
                Node::CharDevice { mode, major, minor } => (0o020000 | mode, &[], (*major, *minor), 1),
            };
            write_header(&mut out, index as u64 + 1, mode, nlink, mtime, data.len() as u64, rdev, path);
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        write_header(&mut out, 0, 0, 1, 0, 0, (0, 0), "TRAILER!!!");
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn write_header(
    out: &mut Vec<u8>,
    ino: u64,
    mode: u32,
    nlink: u32,
    mtime: u64,
    size: u64,
    rdev: (u32, u32),
    name: &str,
) {
    let fields = [
        ino,
        mode as u64,
        0,
        0,
        nlink as u64,
        mtime,
        size,
        0,
        0,
        rdev.0 as u64,
        rdev.1 as u64,
        name.len() as u64 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{:08x}", field & 0xffff_ffff).as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// gzip with a fixed header (no name, mtime 0), so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// `SOURCE_DATE_EPOCH` if set (reproducible builds), else 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|value| value.parse().ok()).unwrap_or(0)
}

/// What goes into a test image.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub busybox: PathBuf,
    pub init: PathBuf,
    pub drivers: Vec<BuiltDriver>,
    /// More files for the base segment (path without leading `/`, contents), mode 0644.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

/// Bump when the layout of a segment changes, so no cached segment is reused across it.
const SEGMENT_FORMAT: &str = "2";

/// The unprivileged user /init runs a package's tests as (images/init.sh creates it).
pub const TEST_USER: &str = "kforge-test";

/// Reads a file for the image; never follows a symlink a build left (safefs):
/// a link where a file is expected is refused.
fn read_for_image(path: &Path) -> Result<Vec<u8>> {
    crate::safefs::read_regular(path)
        .map(|file| file.data)
        .with_context(|| format!("cannot put {} into the image", path.display()))
}

/// The base segment: /init, /bin/busybox (+ /bin/sh), /dev/console and the
/// mount points.
pub fn base_layout(input: &ImageInput) -> Result<Cpio> {
    let mut cpio = Cpio::new();
    if !input.busybox.is_file() {
        bail!("busybox is missing at {} (reinstall the toolchain)", input.busybox.display());
    }
    cpio.add_file("init", 0o755, read_for_image(&input.init)?);
    cpio.add_file("bin/busybox", 0o755, read_for_image(&input.busybox)?);
    cpio.add("bin/sh", Node::Symlink("busybox".to_string()));
    cpio.add("dev/console", Node::CharDevice { mode: 0o600, major: 5, minor: 1 });
    for dir in ["proc", "sys", "tmp", "root"] {
        cpio.add(dir, Node::Dir);
    }
    for (path, data) in &input.extra_files {
        cpio.add_file(path, 0o644, data.clone());
    }
    Ok(cpio)
}

/// One package's segment: /kforge/drivers/<name>/{modules,kunit-suites,test-list,<module>.ko...,tests/*}
/// (and `modprobe`, the modules loaded from /lib/modules, when there are any).
pub fn driver_layout(built: &BuiltDriver) -> Result<Cpio> {
    let mut cpio = Cpio::new();
    let driver = &built.driver;
    let base = format!("kforge/drivers/{}", driver.name);
    // One line per module, in load order: `<name> <params...>`.
    let mut modules = String::new();
    for module in &built.modules {
        modules.push_str(&format!("{} {}\n", module.name, module.params.join(" ")).replace(" \n", "\n"));
        cpio.add_file(&format!("{base}/{}.ko", module.name), 0o644, read_for_image(&module.ko)?);
    }
    cpio.add_file(&format!("{base}/modules"), 0o644, modules);
    // The modules /init loads with modprobe from /lib/modules (installed from packages).
    let modprobe: String =
        built.modules.iter().filter(|module| module.modprobe).map(|module| format!("{}\n", module.name)).collect();
    if !modprobe.is_empty() {
        cpio.add_file(&format!("{base}/modprobe"), 0o644, modprobe);
    }
    let suites: String = driver.meta.kunit_suites.iter().map(|suite| format!("{suite}\n")).collect();
    cpio.add_file(&format!("{base}/kunit-suites"), 0o644, suites);
    // `<name> <file> <user>`: the user is `root` for the package's root-tests, else `kforge-test`.
    let mut list = String::new();
    for test in &driver.meta.tests {
        let file = test.rsplit('/').next().unwrap_or(test);
        let user = if driver.meta.root_tests.contains(test) { "root" } else { TEST_USER };
        list.push_str(&format!("{} {file} {user}\n", crate::driver::test_name(test)));
    }
    cpio.add_file(&format!("{base}/test-list"), 0o644, list);
    // Everything in the built tests/ directory: the tests, their helpers
    // and the compiled test programs (not the C sources).
    if built.tests_dir.is_dir() {
        for entry in fs_err::read_dir(&built.tests_dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            if name.ends_with(".c") || name.ends_with(".h") {
                continue;
            }
            // A symlink the build made is packed as a symlink (the guest
            // resolves it inside the image), never followed on the host.
            let kind = fs_err::symlink_metadata(&path)?.file_type();
            if kind.is_symlink() {
                let target = fs_err::read_link(&path)?.to_string_lossy().into_owned();
                cpio.add(&format!("{base}/tests/{name}"), Node::Symlink(target));
            } else if kind.is_file() {
                cpio.add_file(&format!("{base}/tests/{name}"), 0o755, read_for_image(&path)?);
            }
        }
    }
    Ok(cpio)
}

/// A package's gzip'd segment. Compressing is the costly part, so the result
/// is kept in the package's cache entry under the hash of the uncompressed
/// archive: the same content is never compressed twice, and changed content
/// can never be served from the cache.
fn driver_segment(built: &BuiltDriver, mtime: u64) -> Result<Vec<u8>> {
    let archive = driver_layout(built)?.to_newc(mtime);
    let Some(entry) = &built.cache_entry else { return gzip(&archive) };
    let mut key = crate::cache::KeyHasher::new();
    key.input("format", SEGMENT_FORMAT).input("archive", &archive);
    let cached = entry.join(format!("initramfs-segment-{}.cpio.gz", key.short()));
    if let Ok(bytes) = fs_err::read(&cached) {
        return Ok(bytes);
    }
    let bytes = gzip(&archive)?;
    crate::cache::write_atomic(&cached, &bytes)?;
    Ok(bytes)
}

/// The whole initramfs: the base segment, then each package's, concatenated.
pub fn initramfs_bytes(input: &ImageInput) -> Result<Vec<u8>> {
    let mtime = source_date_epoch();
    let mut bytes = gzip(&base_layout(input)?.to_newc(mtime))?;
    for built in &input.drivers {
        bytes.extend(driver_segment(built, mtime)?);
    }
    Ok(bytes)
}

/// Writes the gzip'd initramfs atomically to `out`.
pub fn write_initramfs(input: &ImageInput, out: &Path) -> Result<()> {
    crate::cache::write_atomic(out, initramfs_bytes(input)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_sorted_with_parents_and_padding() {
        let mut cpio = Cpio::new();
        cpio.add_file("kforge/drivers/fifo/modules", 0o644, "kforge_fifo capacity=64\n");
        cpio.add("bin/sh", Node::Symlink("busybox".into()));
        cpio.add_file("init", 0o755, "#!/bin/sh\n");
        assert_eq!(
            cpio.paths(),
            ["bin", "bin/sh", "init", "kforge", "kforge/drivers", "kforge/drivers/fifo", "kforge/drivers/fifo/modules"]
        );
        let bytes = cpio.to_newc(0);
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        // First header: ino 1, directory mode 040755, uid 0, gid 0, nlink 2, mtime 0.
        assert_eq!(&text[6..6 + 48], "00000001000041ed00000000000000000000000200000000");
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let build = || {
            let mut cpio = Cpio::new();
            cpio.add_file("b", 0o644, "2");
            cpio.add_file("a", 0o644, "1");
            cpio.add("dev/console", Node::CharDevice { mode: 0o600, major: 5, minor: 1 });
            gzip(&cpio.to_newc(0)).unwrap()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn symlinks_a_build_left_are_packed_as_links_or_refused_never_followed() {
        use crate::driver::{BuiltDriver, Driver, DriverMeta, ModuleFile};
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        fs_err::write(path("init"), "#!/bin/sh\n").unwrap();
        fs_err::write(path("busybox"), "elf").unwrap();
        fs_err::create_dir(path("tests")).unwrap();
        fs_err::write(path("tests/basic.sh"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", path("tests/leak")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", path("evil.ko")).unwrap();
        let meta: DriverMeta = toml::from_str("module = \"evil\"\ntests = []").unwrap();
        let driver = Driver { name: "evil".into(), version: "0.1.0".into(), dir: dir.path().to_path_buf(), meta };
        let built = |ko: &str| BuiltDriver {
            driver: driver.clone(),
            modules: vec![ModuleFile { name: "evil".into(), ko: path(ko), params: vec![], modprobe: false }],
            tests_dir: path("tests"),
            cache_entry: None,
        };
        let input = |ko: &str| ImageInput {
            busybox: path("busybox"),
            init: path("init"),
            drivers: vec![built(ko)],
            extra_files: vec![],
        };

        let message = format!("{:#}", initramfs_bytes(&input("evil.ko")).err().unwrap());
        assert!(message.contains("evil.ko is a symlink (to `/etc/passwd`)"), "{message}");

        fs_err::write(path("real.ko"), "ko").unwrap();
        let cpio = driver_layout(&input("real.ko").drivers[0]).unwrap();
        let node = |name: &str| cpio.entries.get(name).cloned();
        assert_eq!(node("kforge/drivers/evil/tests/leak"), Some(Node::Symlink("/etc/passwd".into())));
        assert!(matches!(node("kforge/drivers/evil/tests/basic.sh"), Some(Node::File { .. })));
    }

    #[test]
    fn the_test_list_names_each_tests_user_and_the_modprobe_file_its_modprobe_modules() {
        use crate::driver::{BuiltDriver, Driver, ModuleFile};
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("fifo.ko"), "module").unwrap();
        let meta = toml::from_str(
            "module = \"fifo\"\ntests = [\"tests/a.sh\", \"tests/reload.sh\"]\nroot-tests = [\"tests/reload.sh\"]",
        )
        .unwrap();
        let driver = Driver { name: "fifo".into(), version: "0.1.0".into(), dir: dir.path().to_path_buf(), meta };
        let module =
            |modprobe| ModuleFile { name: "fifo".into(), ko: dir.path().join("fifo.ko"), params: vec![], modprobe };
        let built = |modprobe| BuiltDriver {
            driver: driver.clone(),
            modules: vec![module(modprobe)],
            tests_dir: dir.path().join("tests"),
            cache_entry: None,
        };
        let file = |cpio: &Cpio, name: &str| match cpio.entries.get(name) {
            Some(Node::File { data, .. }) => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        };
        let plain = driver_layout(&built(false)).unwrap();
        assert_eq!(
            file(&plain, "kforge/drivers/fifo/test-list").unwrap(),
            "a a.sh kforge-test\nreload reload.sh root\n"
        );
        assert_eq!(file(&plain, "kforge/drivers/fifo/modprobe"), None);
        let installed = driver_layout(&built(true)).unwrap();
        assert_eq!(file(&installed, "kforge/drivers/fifo/modprobe").unwrap(), "fifo\n");
    }

    #[test]
    fn the_initramfs_is_a_base_segment_then_one_cached_segment_per_package() {
        use crate::driver::{BuiltDriver, Driver, ModuleFile};
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        fs_err::write(path("init"), "#!/bin/sh\n").unwrap();
        fs_err::write(path("busybox"), "elf").unwrap();
        fs_err::write(path("fifo.ko"), "module one").unwrap();
        fs_err::create_dir(path("entry")).unwrap();
        let meta = toml::from_str("module = \"fifo\"\ntests = []").unwrap();
        let driver = Driver { name: "fifo".into(), version: "0.1.0".into(), dir: dir.path().to_path_buf(), meta };
        let built = BuiltDriver {
            driver,
            modules: vec![ModuleFile { name: "fifo".into(), ko: path("fifo.ko"), params: vec![], modprobe: false }],
            tests_dir: path("tests"),
            cache_entry: Some(path("entry")),
        };
        let input = ImageInput {
            busybox: path("busybox"),
            init: path("init"),
            drivers: vec![built.clone()],
            extra_files: vec![],
        };
        let segments = || {
            let mut names: Vec<String> = fs_err::read_dir(path("entry"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };

        let bytes = initramfs_bytes(&input).unwrap();
        // Every gzip member in order: the base archive, then the package's.
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut unpacked).unwrap();
        let expected = [base_layout(&input).unwrap().to_newc(0), driver_layout(&built).unwrap().to_newc(0)].concat();
        assert_eq!(unpacked, expected);
        assert_eq!(segments().len(), 1, "{:?}", segments());
        assert_eq!(initramfs_bytes(&input).unwrap(), bytes, "the cached segment gives the same bytes");

        // Changed content is a new segment, never the cached one.
        fs_err::write(path("fifo.ko"), "module two").unwrap();
        let changed = initramfs_bytes(&input).unwrap();
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(&changed[..]).read_to_end(&mut unpacked).unwrap();
        assert!(String::from_utf8_lossy(&unpacked).contains("module two"));
        assert_eq!(segments().len(), 2, "{:?}", segments());
    }

    #[test]
    #[ignore = "cross-checks with GNU cpio on PATH (apt-get install cpio; .ci/run installs it)"]
    fn host_cpio_tool_can_read_the_archive() {
        // The unit tests above stand alone; this one needs the host's cpio.
        assert!(crate::process::which("cpio").is_some(), "cpio is not on PATH: apt-get install cpio");
        let mut cpio = Cpio::new();
        cpio.add_file("dir/file.txt", 0o644, "hello");
        cpio.add("dir/link", Node::Symlink("file.txt".into()));
        let dir = std::env::temp_dir().join(format!("kforge-cpio-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let archive = dir.join("a.cpio");
        fs_err::write(&archive, cpio.to_newc(0)).unwrap();
        let listing =
            crate::process::Cmd::new("sh").args(["-c", &format!("cpio -it < {}", archive.display())]).run().unwrap();
        assert_eq!(listing.lines().collect::<Vec<_>>(), ["dir", "dir/file.txt", "dir/link"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
