//! Boots a kernel and initramfs in QEMU inside the toolchain root, watches the serial console and the nonce-framed verdict channel, and stops QEMU at the end marker, a crash, a cap or a timeout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::arch::{Arch, QemuSpec, Runner};
use crate::console::{self, Cap, MAX_CONSOLE_BYTES, MAX_LINE_BYTES};
use crate::process::{Cmd, Control, Outcome};
use crate::sandbox::Sandbox;

/// Printed by the guest init after the last test (nonce-framed, on the verdict channel).
pub const END_MARKER: &str = "kforge-end-of-tests";
/// Frame the guest's raw dmesg dump (`dmesg -r`), used to attribute kernel reports to tests.
pub const DMESG_BEGIN: &str = "kforge-dmesg-begin";
pub const DMESG_END: &str = "kforge-dmesg-end";
/// How long QEMU may go on after a fatal kernel report on the console, to capture the rest
/// of the trace (unless the verdict channel shows the guest is alive after all). A real
/// panic ends QEMU at once (`panic=-1`, `-no-reboot`): this bounds only a kernel that
/// hangs after its report, so it can be generous to a guest slowed by a loaded host.
const CRASH_GRACE: Duration = Duration::from_secs(10);

/// A fresh per-boot nonce: 16 hex digits from the OS's random source.
pub fn new_nonce() -> Result<String> {
    let mut bytes = [0u8; 8];
    std::io::Read::read_exact(&mut fs_err::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The prefix the guest's /init puts on every line it sends on the verdict channel.
pub fn frame_prefix(nonce: &str) -> String {
    format!("kv-{nonce} ")
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct BootSpec<'a> {
    pub arch: &'a Arch,
    pub memory: &'a str,
    /// Guest CPUs (`-smp`; UML: `ncpus=`, for an SMP kernel).
    pub cpus: u32,
    pub devices: &'a [String],
    pub interactive: bool,
    /// Per-boot nonce that frames every line of the verdict channel ([`new_nonce`]).
    pub nonce: &'a str,
    /// The test profile's own kernel words ([`crate::project::Profile::kernel_words`]).
    pub profile_words: &'a str,
    /// The test profile's own QEMU arguments ([`crate::project::Profile::qemu_args`]).
    pub profile_args: &'a [&'static str],
}

/// The command line every boot of `arch` needs: the console, no reboot on a
/// panic, and kforge's /init. A UKI carries exactly this (see `disk`).
pub fn base_cmdline(arch: &Arch) -> String {
    format!("console={} panic=-1 oops=panic rdinit=/init", arch.console)
}

/// The per-boot words: the profile's words, this boot's nonce and verdict
/// port, UML's CPUs, the interactive shell. A UEFI boot passes them through
/// SMBIOS to systemd-stub.
pub fn boot_words(spec: &BootSpec<'_>) -> String {
    let mut words = String::new();
    if !spec.profile_words.is_empty() {
        words.push_str(spec.profile_words);
        words.push(' ');
    }
    words.push_str(&format!("kforge.nonce={}", spec.nonce));
    if let Some(port) = spec.arch.verdict_port {
        words.push_str(&format!(" kforge.verdicts={port}"));
    }
    if spec.arch.qemu().is_none() && spec.cpus > 1 {
        // UML runs more than one CPU only with its seccomp userspace: with the default
        // ptrace one it stops with "SMP is not supported with PTRACE userspace"
        // (arch/um/os-Linux/start_up.c). The kernel's own help calls that mode fit only
        // for trusted user space (docs/reliability.md says what it costs here).
        words.push_str(&format!(" ncpus={} seccomp=on", spec.cpus));
    }
    if spec.interactive {
        words.push_str(" kforge.interactive");
    }
    words
}

/// The kernel command line of a direct boot.
pub fn kernel_cmdline(spec: &BootSpec<'_>) -> String {
    format!("{} {}", base_cmdline(spec.arch), boot_words(spec))
}

/// What QEMU starts: a kernel and initramfs directly, or a disk through UEFI
/// firmware. Paths are the host's; `command` mounts them.
#[derive(Debug, Clone)]
pub enum Media {
    Direct { kernel: PathBuf, initrd: PathBuf },
    Efi(EfiMedia),
}

/// A UEFI boot: firmware code, this boot's own copy of the variable store
/// (`None` for firmware without one in flash: U-Boot, started as `-bios`),
/// the disk image (read-only) and, under Secure Boot, the machine's extras.
#[derive(Debug, Clone)]
pub struct EfiMedia {
    pub code: PathBuf,
    pub vars: Option<PathBuf>,
    pub disk: PathBuf,
    /// The arch's extra arguments for UEFI boots (and for Secure Boot, when on).
    pub machine_args: Vec<&'static str>,
}

/// The guest-side paths `command` mounts media at.
#[derive(Debug, Clone)]
enum GuestMedia {
    Direct { kernel: String, initrd: String },
    Efi { code: String, vars: Option<String>, disk: String, machine_args: Vec<&'static str> },
}

/// The boot argv for `spec` with media at guest paths: QEMU, or the UML kernel itself.
fn boot_argv(spec: &BootSpec<'_>, media: &GuestMedia) -> Result<Vec<String>> {
    match (&spec.arch.runner, media) {
        (Runner::Qemu(qemu), media) => Ok(qemu_argv(qemu, spec, media)),
        (Runner::Uml, GuestMedia::Direct { kernel, initrd }) => Ok(uml_argv(spec, kernel, initrd)),
        (Runner::Uml, GuestMedia::Efi { .. }) => {
            Err(crate::error::user("User Mode Linux has no firmware: it cannot boot a disk through UEFI"))
        }
    }
}

/// User Mode Linux: `linux` runs as a process. `con0` is its stdin/stdout,
/// `noreboot` makes a reboot (panic=-1) end it instead of re-executing, and
/// core dumps are off (a UML panic aborts the process, and a core would be as
/// large as guest memory).
///
/// A test boot's stdin is a FIFO opened read-write, never written: UML adds its
/// console fds to epoll, which /dev/null refuses (EPERM), and its error path
/// then allocates under a spinlock, a `BUG: sleeping function called from
/// invalid context` at boot on every debug kernel (os_add_epoll_fd, 7.2). An
/// interactive boot keeps the terminal.
fn uml_argv(spec: &BootSpec<'_>, kernel: &str, initrd: &str) -> Vec<String> {
    let stdin = if spec.interactive {
        ""
    } else {
        "f=/tmp/kforge-uml-stdin-$$; if mkfifo \"$f\"; then exec 0<>\"$f\"; rm -f \"$f\"; fi; "
    };
    let command = format!(
        "ulimit -c 0; {stdin}exec {kernel} mem={} initrd={initrd} con0=fd:0,fd:1 con=null noreboot {}",
        spec.memory,
        kernel_cmdline(spec)
    );
    vec!["sh".into(), "-c".into(), command]
}

fn qemu_argv(qemu: &QemuSpec, spec: &BootSpec<'_>, media: &GuestMedia) -> Vec<String> {
    let mut argv: Vec<String> = vec![qemu.binary.into(), "-M".into(), qemu.machine.into()];
    if let Some(cpu) = qemu.cpu {
        argv.extend(["-cpu".into(), cpu.into()]);
    }
    argv.extend(["-m".into(), spec.memory.into(), "-smp".into(), spec.cpus.to_string()]);
    if qemu.mttcg && spec.cpus > 1 {
        // One host thread per vCPU (QEMU's default only where the host's memory order allows it).
        argv.extend(["-accel".into(), "tcg,thread=multi".into()]);
    }
    // -nodefaults: no VGA, no NIC (whose option ROM costs seconds), no default serial.
    argv.extend(["-nodefaults".into(), "-no-reboot".into(), "-display".into(), "none".into()]);
    let serial = if spec.interactive { "mon:stdio" } else { "stdio" };
    argv.extend(["-serial".into(), serial.into()]);
    if spec.arch.verdict_port.is_some() {
        // The second serial port, the verdict channel, goes to QEMU's stderr (the harness
        // reads both; the nonce tells them apart).
        argv.extend(["-chardev".into(), "file,id=kforge-verdicts,path=/dev/stderr".into()]);
        argv.extend(["-serial".into(), "chardev:kforge-verdicts".into()]);
    }
    if let Some(bios) = qemu.bios {
        argv.extend(["-bios".into(), bios.into()]);
    }
    argv.extend(qemu.extra_args.iter().map(|arg| arg.to_string()));
    argv.extend(spec.profile_args.iter().map(|arg| arg.to_string()));
    for device in spec.devices {
        argv.extend(["-device".into(), device.clone()]);
    }
    match media {
        GuestMedia::Direct { kernel, initrd } => argv.extend([
            "-kernel".into(),
            kernel.clone(),
            "-initrd".into(),
            initrd.clone(),
            "-append".into(),
            kernel_cmdline(spec),
        ]),
        GuestMedia::Efi { code, vars, disk, machine_args } => {
            argv.extend(machine_args.iter().map(|arg| arg.to_string()));
            match vars {
                Some(vars) => argv.extend([
                    "-drive".into(),
                    format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
                    "-drive".into(),
                    format!("if=pflash,format=raw,unit=1,file={vars}"),
                ]),
                None => argv.extend(["-bios".into(), code.clone()]),
            }
            argv.extend([
                "-drive".into(),
                format!("if=none,id=kforge-disk,format=raw,readonly=on,file={disk}"),
                "-device".into(),
                "virtio-blk-pci,drive=kforge-disk,bootindex=0".into(),
                // systemd-stub appends this to the UKI's command line (SMBIOS
                // type 11; QEMU reads a doubled comma as a literal one).
                "-smbios".into(),
                format!("type=11,value=io.systemd.stub.kernel-cmdline-extra={}", boot_words(spec).replace(',', ",,")),
            ]);
        }
    }
    argv
}

/// The sandboxed QEMU command: media mounted read-only (the variable store
/// writable: firmware writes to it), no network.
pub fn command(sandbox: &Sandbox, spec: &BootSpec<'_>, media: &Media) -> Result<Cmd> {
    let mut jail = sandbox.jail();
    let guest = match media {
        Media::Direct { kernel, initrd } => GuestMedia::Direct {
            kernel: jail.ro(kernel, "/kforge/boot/kernel"),
            initrd: jail.ro(initrd, "/kforge/boot/initrd"),
        },
        Media::Efi(efi) => GuestMedia::Efi {
            code: jail.ro(&efi.code, "/kforge/boot/code.fd"),
            vars: efi.vars.as_ref().map(|vars| jail.rw(vars, "/kforge/boot/vars.fd")),
            disk: jail.ro(&efi.disk, "/kforge/boot/disk.raw"),
            machine_args: efi.machine_args.clone(),
        },
    };
    let jail = if spec.interactive { jail.interactive() } else { jail };
    // UML keeps guest memory in a file under TMPDIR (the jail's tmpfs /tmp).
    let jail = jail.env("TMPDIR", "/tmp");
    jail.command(&boot_argv(spec, &guest)?)
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEnd {
    /// The guest printed the nonce-framed end marker.
    Finished,
    /// A panic or oops was seen (QEMU stopped after a grace period or exited).
    Crashed,
    /// No end marker before the timeout.
    TimedOut,
    /// QEMU exited on its own without the end marker.
    Exited,
    /// The guest's output hit a cap; QEMU was stopped.
    Capped(Cap),
}

/// The result of one boot.
#[derive(Debug, Clone)]
pub struct Boot {
    pub end: BootEnd,
    /// Seconds from QEMU start to the end (marker, crash or timeout).
    pub seconds: f64,
    /// The last [`TAIL_LINES`] non-blank console lines, oldest first: the
    /// last is often QEMU's own error when it exited early; a boot that timed
    /// out shows where the firmware or the kernel stopped.
    pub last_lines: Vec<String>,
    /// Seconds from QEMU start to the kernel's start (firmware, boot loader,
    /// decompression): the least of (arrival − printk timestamp) over the
    /// console's kernel lines; a line printed live gives it exactly, a line
    /// replayed when the console registered gives more. `None`: no kernel line.
    pub kernel_start_seconds: Option<f64>,
}

/// Console lines a [`Boot`] keeps for its messages.
pub const TAIL_LINES: usize = 8;

impl Boot {
    /// The last non-blank console line (empty when there was none).
    pub fn last_line(&self) -> &str {
        self.last_lines.last().map_or("", String::as_str)
    }
}

/// Boots and watches the console, which is saved to `console_log`. Only a whole line equal
/// to the nonce-framed end marker ends the boot as finished; a fatal kernel report (whole
/// printk-timestamped line, [`console::classify`]) on the console stops it after [`CRASH_GRACE`] unless the
/// verdict channel goes on (then the "report" was a test's output). Output past
/// [`MAX_CONSOLE_BYTES`] or a line of [`MAX_LINE_BYTES`] stops it as capped.
pub fn boot(cmd: &Cmd, console_log: &Path, timeout: Duration, nonce: &str) -> Result<Boot> {
    let started = Instant::now();
    let prefix = frame_prefix(nonce);
    let end_line = format!("{prefix}{END_MARKER}");
    let (mut crashed, mut finished, mut capped) = (false, false, None);
    let mut bytes: u64 = 0;
    let mut last_lines: std::collections::VecDeque<String> = std::collections::VecDeque::with_capacity(TAIL_LINES);
    let mut kernel_start: Option<f64> = None;
    let outcome = cmd.stream(console_log, Some(timeout), &mut |line| {
        bytes += line.len() as u64 + 1;
        if let (Some(printk), _) = console::split_timestamp(line) {
            let start = started.elapsed().as_secs_f64() - printk;
            kernel_start = Some(kernel_start.map_or(start, |known: f64| known.min(start)));
        }
        if line.len() >= MAX_LINE_BYTES || bytes > MAX_CONSOLE_BYTES {
            let cap = if line.len() >= MAX_LINE_BYTES { Cap::LineLength } else { Cap::ConsoleBytes };
            capped = Some(cap);
            return Control::Stop;
        }
        if !line.trim().is_empty() {
            if last_lines.len() == TAIL_LINES {
                last_lines.pop_front();
            }
            last_lines.push_back(line.trim().to_string());
        }
        if line == end_line {
            finished = true;
            return Control::Stop;
        }
        if line.starts_with(&prefix) {
            // The guest's /init is still talking: whatever the console said, it is alive.
            crashed = false;
            return Control::Resume;
        }
        // Only timestamped lines (CONFIG_PRINTK_TIME, which every kforge kernel is checked for)
        // can stop the boot: a test echoing "Kernel panic" must not cut its cell short. Only a
        // root test can write /dev/console at all, and it could fake a timestamp too; root
        // tests are a short reviewed list (docs/reliability.md).
        let (timestamp, text) = console::split_timestamp(line);
        if timestamp.is_some() && console::classify(text).is_some_and(console::Detector::fatal) {
            crashed = true;
            return Control::StopAfter(CRASH_GRACE);
        }
        Control::Continue
    })?;
    let end = match outcome {
        _ if finished => BootEnd::Finished,
        _ if capped.is_some() => BootEnd::Capped(capped.unwrap_or(Cap::ConsoleBytes)),
        _ if crashed => BootEnd::Crashed,
        Outcome::TimedOut => BootEnd::TimedOut,
        Outcome::Stopped | Outcome::Exited(_) => BootEnd::Exited,
    };
    Ok(Boot {
        end,
        seconds: started.elapsed().as_secs_f64(),
        last_lines: last_lines.into(),
        kernel_start_seconds: kernel_start.map(|start| start.max(0.0)),
    })
}

/// A console log taken apart: what /init sent on the verdict channel (nonce-framed lines,
/// frame removed), the raw dmesg dump it sent, and everything else (kernel console, test
/// output written straight to /dev/console, QEMU's own messages).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SplitConsole {
    pub verdicts: String,
    pub dmesg: String,
    pub console: String,
    /// The nonce used (given, or found in the log).
    pub nonce: Option<String>,
    /// Whether the whole dmesg dump arrived (its framed end marker was seen).
    pub dumped: bool,
}

/// Splits `log` by the nonce's frame. Without a nonce (a saved log given to `cargo xtask
/// ktap`) the first framed line's nonce is used; a log with no framed line at all is taken
/// as plain KTAP (everything is a verdict line).
pub fn split_console(log: &str, nonce: Option<&str>) -> SplitConsole {
    let nonce = nonce.map(str::to_string).or_else(|| find_nonce(log));
    let Some(nonce) = nonce else {
        return SplitConsole { verdicts: log.to_string(), ..SplitConsole::default() };
    };
    let prefix = frame_prefix(&nonce);
    let mut split = SplitConsole { nonce: Some(nonce.clone()), ..SplitConsole::default() };
    let mut inside = false;
    for line in log.lines() {
        let line = line.trim_end_matches('\r');
        let Some(payload) = line.strip_prefix(&prefix) else {
            split.console.push_str(line);
            split.console.push('\n');
            continue;
        };
        match payload {
            DMESG_BEGIN => inside = true,
            DMESG_END => {
                inside = false;
                split.dumped = true;
            }
            END_MARKER => {}
            _ if inside => {
                split.dmesg.push_str(payload);
                split.dmesg.push('\n');
            }
            _ => {
                split.verdicts.push_str(payload);
                split.verdicts.push('\n');
            }
        }
    }
    split
}

/// The nonce of the first line framed as `kv-<16 hex digits> `.
fn find_nonce(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let nonce = line.strip_prefix("kv-")?.get(..16)?;
        let framed = nonce.bytes().all(|b| b.is_ascii_hexdigit()) && line[3 + 16..].starts_with(' ');
        framed.then(|| nonce.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct() -> GuestMedia {
        GuestMedia::Direct { kernel: "/k".into(), initrd: "/i".into() }
    }

    /// A one-CPU, non-interactive boot of `arch` with nonce `00ff`.
    fn one_cpu(arch: &'static Arch, profile_words: &'static str) -> BootSpec<'static> {
        BootSpec {
            arch,
            memory: "512M",
            cpus: 1,
            devices: &[],
            interactive: false,
            nonce: "00ff",
            profile_words,
            profile_args: &[],
        }
    }

    #[test]
    fn efi_boots_take_firmware_and_disk_and_pass_the_nonce_through_smbios() {
        let arch = Arch::find("x86_64").unwrap();
        let spec = one_cpu(arch, "slab_debug=F,kmalloc-*");
        let efi = GuestMedia::Efi {
            code: "/c.fd".into(),
            vars: Some("/v.fd".into()),
            disk: "/d.raw".into(),
            machine_args: arch.efi.unwrap().secure_args.to_vec(),
        };
        expect_test::expect!["qemu-system-x86_64 -M q35 -cpu max,la57=off -m 512M -smp 1 -nodefaults -no-reboot -display none -serial stdio -chardev file,id=kforge-verdicts,path=/dev/stderr -serial chardev:kforge-verdicts -machine smm=on -global driver=cfi.pflash01,property=secure,value=on -drive if=pflash,format=raw,unit=0,readonly=on,file=/c.fd -drive if=pflash,format=raw,unit=1,file=/v.fd -drive if=none,id=kforge-disk,format=raw,readonly=on,file=/d.raw -device virtio-blk-pci,drive=kforge-disk,bootindex=0 -smbios type=11,value=io.systemd.stub.kernel-cmdline-extra=slab_debug=F,,kmalloc-* kforge.nonce=00ff kforge.verdicts=ttyS1"]
            .assert_eq(&boot_argv(&spec, &efi).unwrap().join(" "));
        let uml = BootSpec { arch: Arch::find("um").unwrap(), ..spec };
        assert!(boot_argv(&uml, &efi).unwrap_err().to_string().contains("no firmware"));
    }

    #[test]
    fn firmware_without_a_variable_store_is_the_bios() {
        let spec = one_cpu(Arch::find("arm").unwrap(), "");
        let efi =
            GuestMedia::Efi { code: "/u-boot.bin".into(), vars: None, disk: "/d.raw".into(), machine_args: vec![] };
        let argv = boot_argv(&spec, &efi).unwrap().join(" ");
        assert!(argv.contains(" -bios /u-boot.bin -drive if=none,id=kforge-disk"), "{argv}");
        assert!(!argv.contains("pflash"), "{argv}");
    }

    #[test]
    fn x86_64_boot_plan() {
        let arch = Arch::find("x86_64").unwrap();
        let devices = vec!["edu".to_string()];
        let spec = BootSpec {
            arch,
            memory: "512M",
            cpus: 2,
            devices: &devices,
            interactive: false,
            nonce: "0123456789abcdef",
            profile_words: "slab_debug=F,kmalloc-*",
            profile_args: crate::project::Profile::Debug.qemu_args(arch),
        };
        expect_test::expect!["qemu-system-x86_64 -M q35 -cpu max,la57=off -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -chardev file,id=kforge-verdicts,path=/dev/stderr -serial chardev:kforge-verdicts -device intel-iommu,intremap=off -device edu -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init slab_debug=F,kmalloc-* kforge.nonce=0123456789abcdef kforge.verdicts=ttyS1"]
            .assert_eq(&boot_argv(&spec, &direct()).unwrap().join(" "));
    }

    #[test]
    fn arm64_interactive_boot_plan() {
        let arch = Arch::find("arm64").unwrap();
        let spec = BootSpec {
            arch,
            memory: "512M",
            cpus: 2,
            devices: &[],
            interactive: true,
            nonce: "0123456789abcdef",
            profile_words: "",
            profile_args: &[],
        };
        expect_test::expect!["qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial mon:stdio -chardev file,id=kforge-verdicts,path=/dev/stderr -serial chardev:kforge-verdicts -kernel /k -initrd /i -append console=ttyAMA0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef kforge.verdicts=ttyAMA1 kforge.interactive"]
            .assert_eq(&boot_argv(&spec, &direct()).unwrap().join(" "));
    }

    #[test]
    fn every_arch_has_a_boot_plan() {
        let plans: Vec<String> = crate::arch::ARCHES
            .iter()
            .map(|arch| {
                let spec = BootSpec {
                    arch,
                    memory: "512M",
                    cpus: 2,
                    devices: &[],
                    interactive: false,
                    nonce: "0123456789abcdef",
                    profile_words: "",
                    profile_args: &[],
                };
                boot_argv(&spec, &direct()).unwrap().join(" ")
            })
            .collect();
        expect_test::expect![[r#"
            [
                "qemu-system-x86_64 -M q35 -cpu max,la57=off -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -chardev file,id=kforge-verdicts,path=/dev/stderr -serial chardev:kforge-verdicts -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef kforge.verdicts=ttyS1",
                "qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -chardev file,id=kforge-verdicts,path=/dev/stderr -serial chardev:kforge-verdicts -kernel /k -initrd /i -append console=ttyAMA0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef kforge.verdicts=ttyAMA1",
                "qemu-system-arm -M virt,highmem=off -cpu cortex-a15 -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -chardev file,id=kforge-verdicts,path=/dev/stderr -serial chardev:kforge-verdicts -kernel /k -initrd /i -append console=ttyAMA0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef kforge.verdicts=ttyAMA1",
                "qemu-system-riscv64 -M virt -cpu rv64 -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef",
                "qemu-system-loongarch64 -M virt -cpu la464 -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef",
                "qemu-system-s390x -M s390-ccw-virtio -cpu qemu -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttysclp0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef",
                "sh -c ulimit -c 0; f=/tmp/kforge-uml-stdin-$$; if mkfifo \"$f\"; then exec 0<>\"$f\"; rm -f \"$f\"; fi; exec /k mem=512M initrd=/i con0=fd:0,fd:1 con=null noreboot console=tty0 panic=-1 oops=panic rdinit=/init kforge.nonce=0123456789abcdef ncpus=2 seccomp=on",
            ]
        "#]].assert_debug_eq(&plans);
    }

    const NONCE: &str = "0123456789abcdef";

    #[test]
    fn boot_stops_at_the_framed_end_marker_and_on_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let end = format!("kv-{NONCE} {END_MARKER}");
        let finished = Cmd::new("sh").args(["-c", &format!("echo booting; echo '{end}'; sleep 30")]);
        let boot_result = boot(&finished, &log, Duration::from_secs(20), NONCE).unwrap();
        assert_eq!(boot_result.end, BootEnd::Finished);
        assert!(boot_result.seconds < 10.0);
        let panicking =
            Cmd::new("sh").args(["-c", "echo '[   12.345678] Kernel panic - not syncing: boom'; echo trace; sleep 60"]);
        let crash = boot(&panicking, &log, Duration::from_secs(40), NONCE).unwrap();
        assert_eq!(crash.end, BootEnd::Crashed);
        assert!(crash.seconds < 20.0, "the crash grace period did not stop it");
        assert!(std::fs::read_to_string(&log).unwrap().contains("trace"));
        let hanging = Cmd::new("sh").args(["-c", "echo booting; sleep 30"]);
        assert_eq!(boot(&hanging, &log, Duration::from_millis(500), NONCE).unwrap().end, BootEnd::TimedOut);
    }

    #[test]
    fn forged_markers_and_crash_words_do_not_end_the_boot() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        // A test writes the bare end marker, a marker with a wrong nonce, a marker in the
        // middle of a line and a fake panic to the console; /init goes on and ends properly.
        let script = format!(
            "echo {END_MARKER}; echo 'kv-ffffffffffffffff {END_MARKER}'; echo 'x kv-{NONCE} {END_MARKER}'; \
             echo 'Kernel panic - not syncing: forged'; sleep 1; echo 'kv-{NONCE}     ok 2 still running'; \
             sleep 4; echo 'kv-{NONCE} {END_MARKER}'; sleep 30"
        );
        let booted = boot(&Cmd::new("sh").args(["-c", &script]), &log, Duration::from_secs(30), NONCE).unwrap();
        assert_eq!(booted.end, BootEnd::Finished, "{booted:?}");
        assert!(booted.seconds > 4.0, "stopped before the real end marker: {booted:?}");
        // An untimestamped "panic" (a test's own output) is no kernel report, however long
        // the guest then stays quiet (a loaded host): the boot goes on to its end marker.
        let script = format!(
            "echo 'Kernel panic - not syncing: forged'; echo 'Oops: 0000 [#1] forged'; sleep 12; \
             echo 'kv-{NONCE} {END_MARKER}'; sleep 30"
        );
        let booted = boot(&Cmd::new("sh").args(["-c", &script]), &log, Duration::from_secs(40), NONCE).unwrap();
        assert_eq!(booted.end, BootEnd::Finished, "{booted:?}");
    }

    #[test]
    fn a_console_flood_hits_the_byte_cap_and_a_long_line_the_line_cap() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let flood = Cmd::new("sh").args(["-c", "yes 'flooding the console with a line of some length'"]);
        let booted = boot(&flood, &log, Duration::from_secs(120), NONCE).unwrap();
        assert_eq!(booted.end, BootEnd::Capped(Cap::ConsoleBytes));
        let logged = std::fs::metadata(&log).unwrap().len();
        assert!(logged < MAX_CONSOLE_BYTES + (1 << 20), "the log grew past the cap: {logged}");
        let long = Cmd::new("sh").args(["-c", "head -c 100000000 /dev/zero | tr '\\0' x; sleep 30"]);
        let booted = boot(&long, &log, Duration::from_secs(60), NONCE).unwrap();
        assert_eq!(booted.end, BootEnd::Capped(Cap::LineLength));
    }

    #[test]
    fn the_console_is_split_by_the_nonce() {
        let log = format!(
            "$ qemu\nkv-{NONCE} KTAP version 1\nKTAP version 1\nkv-{NONCE} {DMESG_BEGIN}\nkv-{NONCE} <6>[ 1.0] x\n\
             kv-{NONCE} {DMESG_END}\nkv-ffffffffffffffff ok 1 forged\nkv-{NONCE} {END_MARKER}\n"
        );
        let split = split_console(&log, Some(NONCE));
        assert_eq!(split.verdicts, "KTAP version 1\n");
        assert_eq!(split.dmesg, "<6>[ 1.0] x\n");
        assert_eq!(split.console, "$ qemu\nKTAP version 1\nkv-ffffffffffffffff ok 1 forged\n");
        assert_eq!(split_console(&log, None).nonce.as_deref(), Some(NONCE));
        assert_eq!(split_console("KTAP version 1\n", None).verdicts, "KTAP version 1\n");
    }
}
