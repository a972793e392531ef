//! Boots a kernel and initramfs in QEMU inside the toolchain root, watches the serial console, and stops QEMU at the end marker, a crash or a timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::arch::{Arch, QemuSpec, Runner};
use crate::process::{Cmd, Control, Outcome};
use crate::sandbox::Sandbox;

/// Printed by the guest init after the last test.
pub const END_MARKER: &str = "kforge-end-of-tests";
/// Frames the guest's dmesg dump (kept out of KTAP parsing).
pub const DMESG_BEGIN: &str = "kforge-dmesg-begin";
pub const DMESG_END: &str = "kforge-dmesg-end";

/// Console lines after which QEMU is stopped (after a short grace period to
/// capture the rest of the trace).
const CRASH_MARKERS: &[&str] =
    &["Kernel panic - not syncing", "Oops", "Unable to handle kernel", "general protection fault"];

/// What to boot.
#[derive(Debug, Clone)]
pub struct BootSpec<'a> {
    pub arch: &'a Arch,
    pub memory: &'a str,
    /// Guest CPUs (`-smp`; UML: `ncpus=`, for an SMP kernel).
    pub cpus: u32,
    pub devices: &'a [String],
    pub interactive: bool,
}

/// The kernel command line.
pub fn kernel_cmdline(spec: &BootSpec<'_>) -> String {
    let mut cmdline = format!("console={} panic=-1 oops=panic rdinit=/init", spec.arch.console);
    if spec.arch.qemu().is_none() && spec.cpus > 1 {
        cmdline.push_str(&format!(" ncpus={}", spec.cpus));
    }
    if spec.interactive {
        cmdline.push_str(" kforge.interactive");
    }
    cmdline
}

/// The boot argv for `spec`, with kernel and initrd at the given (guest) paths:
/// QEMU, or the UML kernel itself.
pub fn boot_argv(spec: &BootSpec<'_>, kernel: &str, initrd: &str) -> Vec<String> {
    match &spec.arch.runner {
        Runner::Qemu(qemu) => qemu_argv(qemu, spec, kernel, initrd),
        Runner::Uml => uml_argv(spec, kernel, initrd),
    }
}

/// User Mode Linux: `linux` runs as a process. `con0` is its stdin/stdout,
/// `noreboot` makes a reboot (panic=-1) end it instead of re-executing, and
/// core dumps are off (a UML panic aborts the process, and a core would be as
/// large as guest memory).
fn uml_argv(spec: &BootSpec<'_>, kernel: &str, initrd: &str) -> Vec<String> {
    let command = format!(
        "ulimit -c 0; exec {kernel} mem={} initrd={initrd} con0=fd:0,fd:1 con=null noreboot {}",
        spec.memory,
        kernel_cmdline(spec)
    );
    vec!["sh".into(), "-c".into(), command]
}

fn qemu_argv(qemu: &QemuSpec, spec: &BootSpec<'_>, kernel: &str, initrd: &str) -> Vec<String> {
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
    if let Some(bios) = qemu.bios {
        argv.extend(["-bios".into(), bios.into()]);
    }
    argv.extend(qemu.extra_args.iter().map(|arg| arg.to_string()));
    for device in spec.devices {
        argv.extend(["-device".into(), device.clone()]);
    }
    argv.extend([
        "-kernel".into(),
        kernel.into(),
        "-initrd".into(),
        initrd.into(),
        "-append".into(),
        kernel_cmdline(spec),
    ]);
    argv
}

/// The sandboxed QEMU command: kernel and initrd mounted read-only, no network.
pub fn command(sandbox: &Sandbox, spec: &BootSpec<'_>, kernel: &Path, initrd: &Path) -> Result<Cmd> {
    let mut jail = sandbox.jail();
    let kernel_guest = jail.ro(kernel, "/kforge/boot/kernel");
    let initrd_guest = jail.ro(initrd, "/kforge/boot/initrd");
    let jail = if spec.interactive { jail.interactive() } else { jail };
    // UML keeps guest memory in a file under TMPDIR (the jail's tmpfs /tmp).
    let jail = jail.env("TMPDIR", "/tmp");
    jail.command(&boot_argv(spec, &kernel_guest, &initrd_guest))
}

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEnd {
    /// The guest printed the end marker.
    Finished,
    /// A panic or oops was seen (QEMU stopped after a grace period or exited).
    Crashed,
    /// No end marker before the timeout.
    TimedOut,
    /// QEMU exited on its own without the end marker.
    Exited,
}

/// The result of one boot.
#[derive(Debug, Clone)]
pub struct Boot {
    pub end: BootEnd,
    /// Seconds from QEMU start to the end (marker, crash or timeout).
    pub seconds: f64,
    /// Last line QEMU printed when it exited early (often its own error).
    pub last_line: String,
}

/// Boots and watches the console, which is saved to `console_log`.
pub fn boot(cmd: &Cmd, console_log: &Path, timeout: Duration) -> Result<Boot> {
    let started = Instant::now();
    let mut crashed = false;
    let mut finished = false;
    let mut last_line = String::new();
    let outcome = cmd.stream(console_log, Some(timeout), &mut |line| {
        if !line.trim().is_empty() {
            last_line = line.trim().to_string();
        }
        if line.contains(END_MARKER) {
            finished = true;
            return Control::Stop;
        }
        if CRASH_MARKERS.iter().any(|marker| line.contains(marker)) {
            crashed = true;
            return Control::StopAfter(Duration::from_secs(3));
        }
        Control::Continue
    })?;
    let end = match outcome {
        _ if finished => BootEnd::Finished,
        _ if crashed => BootEnd::Crashed,
        Outcome::TimedOut => BootEnd::TimedOut,
        Outcome::Stopped | Outcome::Exited(_) => BootEnd::Exited,
    };
    Ok(Boot { end, seconds: started.elapsed().as_secs_f64(), last_line })
}

/// Splits a console log into the part to parse for KTAP/crashes and the dmesg dump.
pub fn split_dmesg(console: &str) -> (String, String) {
    let mut main = String::new();
    let mut dmesg = String::new();
    let mut inside = false;
    for line in console.lines() {
        if line.contains(DMESG_BEGIN) {
            inside = true;
        } else if line.contains(DMESG_END) {
            inside = false;
        } else if inside {
            dmesg.push_str(line);
            dmesg.push('\n');
        } else {
            main.push_str(line);
            main.push('\n');
        }
    }
    (main, dmesg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_boot_plan() {
        let arch = Arch::find("x86_64").unwrap();
        let devices = vec!["edu".to_string()];
        let spec = BootSpec { arch, memory: "512M", cpus: 2, devices: &devices, interactive: false };
        expect_test::expect!["qemu-system-x86_64 -M q35 -cpu max -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -device edu -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init"]
            .assert_eq(&boot_argv(&spec, "/k", "/i").join(" "));
    }

    #[test]
    fn arm64_interactive_boot_plan() {
        let arch = Arch::find("arm64").unwrap();
        let spec = BootSpec { arch, memory: "512M", cpus: 2, devices: &[], interactive: true };
        expect_test::expect!["qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial mon:stdio -kernel /k -initrd /i -append console=ttyAMA0 panic=-1 oops=panic rdinit=/init kforge.interactive"]
            .assert_eq(&boot_argv(&spec, "/k", "/i").join(" "));
    }

    #[test]
    fn every_arch_has_a_boot_plan() {
        let plans: Vec<String> = crate::arch::ARCHES
            .iter()
            .map(|arch| {
                let spec = BootSpec { arch, memory: "512M", cpus: 2, devices: &[], interactive: false };
                boot_argv(&spec, "/k", "/i").join(" ")
            })
            .collect();
        expect_test::expect![[r#"
            [
                "qemu-system-x86_64 -M q35 -cpu max -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init",
                "qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyAMA0 panic=-1 oops=panic rdinit=/init",
                "qemu-system-arm -M virt,highmem=off -cpu cortex-a15 -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyAMA0 panic=-1 oops=panic rdinit=/init",
                "qemu-system-riscv64 -M virt -cpu rv64 -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init",
                "qemu-system-loongarch64 -M virt -cpu la464 -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttyS0 panic=-1 oops=panic rdinit=/init",
                "qemu-system-s390x -M s390-ccw-virtio -cpu qemu -m 512M -smp 2 -accel tcg,thread=multi -nodefaults -no-reboot -display none -serial stdio -kernel /k -initrd /i -append console=ttysclp0 panic=-1 oops=panic rdinit=/init",
                "sh -c ulimit -c 0; exec /k mem=512M initrd=/i con0=fd:0,fd:1 con=null noreboot console=tty0 panic=-1 oops=panic rdinit=/init ncpus=2",
            ]
        "#]].assert_debug_eq(&plans);
    }

    #[test]
    fn boot_stops_at_the_end_marker_and_on_crashes() {
        let dir = std::env::temp_dir().join(format!("kforge-qemu-test-{}", std::process::id()));
        let log = dir.join("console.log");
        let finished = Cmd::new("sh").args(["-c", &format!("echo booting; echo {END_MARKER}; sleep 30")]);
        let boot_result = boot(&finished, &log, Duration::from_secs(20)).unwrap();
        assert_eq!(boot_result.end, BootEnd::Finished);
        assert!(boot_result.seconds < 10.0);
        let panicking = Cmd::new("sh").args(["-c", "echo 'Kernel panic - not syncing: boom'; echo trace; sleep 30"]);
        let crash = boot(&panicking, &log, Duration::from_secs(20)).unwrap();
        assert_eq!(crash.end, BootEnd::Crashed);
        assert!(crash.seconds < 10.0, "the crash grace period did not stop it");
        assert!(std::fs::read_to_string(&log).unwrap().contains("trace"));
        let hanging = Cmd::new("sh").args(["-c", "echo booting; sleep 30"]);
        assert_eq!(boot(&hanging, &log, Duration::from_millis(500)).unwrap().end, BootEnd::TimedOut);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dmesg_dump_is_split_off() {
        let (main, dmesg) = split_dmesg("a\nkforge-dmesg-begin\n[ 1.0] x\nkforge-dmesg-end\nb\n");
        assert_eq!(main, "a\nb\n");
        assert_eq!(dmesg, "[ 1.0] x\n");
    }
}
