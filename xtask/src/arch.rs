//! The one table of per-architecture facts: kernel ARCH, LLVM triple, image path, QEMU machine or UML, console, busybox arch, test devices.
//!
//! Adding an architecture is one row here plus one `kernel-config/<name>.config` fragment.

use anyhow::Result;
use serde::Serialize;

use crate::error;

/// A QEMU machine that boots this arch's kernel directly (`-kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QemuSpec {
    /// Emulator binary inside the toolchain root.
    pub binary: &'static str,
    /// Debian package that ships `binary` (named in "missing emulator" errors).
    pub package: &'static str,
    pub machine: &'static str,
    pub cpu: Option<&'static str>,
    /// Firmware image (`-bios`), when direct kernel boot needs one; path inside the root.
    pub bios: Option<&'static str>,
    /// Extra fixed arguments.
    pub extra_args: &'static [&'static str],
    /// Extra arguments of the debug profile's boots: the machine's IOMMU, which is
    /// the DMA detector (a device write to an unmapped page faults and is reported;
    /// `debug-<arch>.config` enables the driver in strict mode). Empty: the arch's
    /// debug fragment declares `dma` missing and says why.
    pub debug_args: &'static [&'static str],
    /// Whether QEMU runs this target's vCPUs on host threads of their own
    /// (multi-threaded TCG, `-accel tcg,thread=multi`); checked with QEMU 11.1
    /// for every row (a target without it warns "Guest not yet converted to MTTCG").
    pub mttcg: bool,
}

/// How this arch boots through UEFI firmware (`--boot efi`): the systemd-stub
/// flavour of its unified kernel image and the firmware QEMU loads. Paths are
/// inside the disk-image tools root (`toolchains/images.pins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EfiSpec {
    /// systemd's and the UEFI spec's name for the machine type: `x64`, `aa64`
    /// (stub `linux<efi_arch>.efi.stub`, default boot path `\EFI\BOOT\BOOT<EFI_ARCH>.EFI`).
    pub efi_arch: &'static str,
    /// The Debian package that ships the firmware (named in "missing firmware" errors).
    pub firmware_package: &'static str,
    /// Firmware code without Secure Boot: the first flash (`-drive
    /// if=pflash,unit=0,readonly=on`) when the firmware has a variable store,
    /// else the `-bios` image (U-Boot).
    pub code: &'static str,
    /// Secure Boot capable firmware code; `None`: Debian ships none for this arch.
    pub secure_code: Option<&'static str>,
    /// The empty variable store a boot gets a copy of (`-drive if=pflash,unit=1`);
    /// `None`: the firmware keeps no store in flash (U-Boot), and its code is the `-bios`.
    pub vars: Option<&'static str>,
    /// Extra QEMU arguments of every UEFI boot.
    pub args: &'static [&'static str],
    /// Extra QEMU arguments under Secure Boot (OVMF's secure build needs SMM on q35).
    pub secure_args: &'static [&'static str],
}

/// How a built kernel of this arch is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runner {
    Qemu(QemuSpec),
    /// User Mode Linux: the kernel (`linux`) is itself a program, run in the toolchain root.
    Uml,
}

/// One architecture the kernel supports Rust on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arch {
    /// The kernel's name for it, used on the CLI and in results.json.
    pub name: &'static str,
    /// Other names accepted on the command line.
    pub aliases: &'static [&'static str],
    /// `ARCH=` given to make.
    pub make_arch: &'static str,
    /// Directory under `arch/` in the source tree.
    pub srcarch: &'static str,
    /// Debian architecture of user-space binaries for it (busybox-static).
    pub debian_arch: &'static str,
    /// The name a machine of this arch runs under (`std::env::consts::ARCH`),
    /// for finding the host's row; `None` for arches no host runs natively (UML).
    pub host: Option<&'static str>,
    /// clang `--target` triple for user-space test programs.
    pub llvm_triple: &'static str,
    /// rustc's target for user-space programs on this arch: what a proc macro
    /// that runs on such a machine is built for (a cross-built linux-librust).
    pub rust_user_target: &'static str,
    /// Extra clang flags for user-space test programs on this arch.
    pub user_cflags: &'static [&'static str],
    /// `ARCH=` for `make headers` (the UAPI headers test programs build against).
    pub headers_arch: &'static str,
    /// Kernel image to boot, relative to the build directory.
    pub kernel_image: &'static str,
    /// Console device for `console=`.
    pub console: &'static str,
    /// The verdict channel: a second serial port (guest device name) that only the guest's
    /// /init opens, carrying KTAP and the nonce-framed markers; tests' output and kernel
    /// messages stay on `console`. `None`: the nonce-framed lines share the console
    /// (see docs/reliability.md "Verdicts and bounds").
    pub verdict_port: Option<&'static str>,
    /// The config fragment in `kernel-config/` for this arch.
    pub config_fragment: &'static str,
    /// Whether the machine has a PCI bus (drivers with `needs-pci` are skipped otherwise).
    pub pci: bool,
    /// QEMU device models drivers may ask for (`qemu-devices`) that this
    /// machine's emulator provides; other devices make a driver skip.
    pub devices: &'static [&'static str],
    /// Extra rustc flags for Rust code built as loadable modules (`RUSTFLAGS_MODULE`),
    /// for arches whose kernel-wide Rust flags give relocations their module loader rejects.
    pub module_rustflags: &'static [&'static str],
    pub runner: Runner,
    /// UEFI boot; `None`: why this arch has none here.
    pub efi: Result<EfiSpec, &'static str>,
}

/// Device models of the test devices kforge's drivers use.
const PCI_TEST_DEVICES: &[&str] = &["edu", "pci-testdev"];

/// Every supported architecture. Order is the order of `--arch all`.
pub const ARCHES: &[Arch] = &[
    Arch {
        name: "x86_64",
        aliases: &["x86-64", "amd64", "x86", "x64"],
        make_arch: "x86_64",
        srcarch: "x86",
        debian_arch: "amd64",
        host: Some("x86_64"),
        llvm_triple: "x86_64-linux-gnu",
        rust_user_target: "x86_64-unknown-linux-gnu",
        user_cflags: &[],
        headers_arch: "x86",
        kernel_image: "arch/x86/boot/bzImage",
        console: "ttyS0",
        verdict_port: Some("ttyS1"),
        config_fragment: "x86_64.config",
        pci: true,
        devices: PCI_TEST_DEVICES,
        module_rustflags: &[],
        runner: Runner::Qemu(QemuSpec {
            binary: "qemu-system-x86_64",
            package: "qemu-system-x86",
            machine: "q35",
            // No 5-level paging: with LA57, a timer interrupt that lands while
            // identify_cpu() has cleared the boot CPU's feature bits makes
            // KASAN see 4-level address limits and report a false
            // `wild-memory-access in rcu_is_watching` at ~0.004 s, which
            // disables lockdep for the rest of the boot (7.2.13, debug profile,
            // about one boot in three).
            cpu: Some("max,la57=off"),
            bios: None,
            extra_args: &[],
            // VT-d. Interrupt remapping off: interrupts arrive as without it.
            debug_args: &["-device", "intel-iommu,intremap=off"],
            mttcg: true,
        }),
        efi: Ok(EfiSpec {
            efi_arch: "x64",
            firmware_package: "ovmf",
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
            secure_code: Some("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
            vars: Some("/usr/share/OVMF/OVMF_VARS_4M.fd"),
            args: &[],
            secure_args: &["-machine", "smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"],
        }),
    },
    Arch {
        name: "arm64",
        aliases: &["aarch64", "arm64-v8a", "armv8"],
        make_arch: "arm64",
        srcarch: "arm64",
        debian_arch: "arm64",
        host: Some("aarch64"),
        llvm_triple: "aarch64-linux-gnu",
        rust_user_target: "aarch64-unknown-linux-gnu",
        user_cflags: &[],
        headers_arch: "arm64",
        kernel_image: "arch/arm64/boot/Image",
        console: "ttyAMA0",
        verdict_port: Some("ttyAMA1"),
        config_fragment: "arm64.config",
        pci: true,
        devices: PCI_TEST_DEVICES,
        module_rustflags: &[],
        runner: Runner::Qemu(QemuSpec {
            binary: "qemu-system-aarch64",
            package: "qemu-system-arm",
            machine: "virt",
            cpu: Some("max,pauth-impdef=on"),
            bios: None,
            extra_args: &[],
            // SMMUv3 in front of the PCIe bus (QEMU merges repeated -machine options).
            debug_args: &["-machine", "iommu=smmuv3"],
            mttcg: true,
        }),
        efi: Ok(EfiSpec {
            efi_arch: "aa64",
            firmware_package: "qemu-efi-aarch64",
            code: "/usr/share/AAVMF/AAVMF_CODE.no-secboot.fd",
            secure_code: Some("/usr/share/AAVMF/AAVMF_CODE.secboot.fd"),
            vars: Some("/usr/share/AAVMF/AAVMF_VARS.fd"),
            // Without QEMU's ACPI tables the firmware hands the kernel the
            // device tree (it passes one or the other), which kforge's arm64
            // kernel (no CONFIG_ACPI) needs.
            args: &["-machine", "acpi=off"],
            secure_args: &[],
        }),
    },
    Arch {
        name: "arm",
        aliases: &["armv7", "armhf", "arm32", "armv7l"],
        make_arch: "arm",
        srcarch: "arm",
        debian_arch: "armhf",
        host: Some("arm"),
        llvm_triple: "armv7a-linux-gnueabihf",
        rust_user_target: "armv7-unknown-linux-gnueabihf",
        user_cflags: &["-marm"],
        headers_arch: "arm",
        kernel_image: "arch/arm/boot/zImage",
        console: "ttyAMA0",
        verdict_port: Some("ttyAMA1"),
        config_fragment: "arm.config",
        pci: true,
        devices: PCI_TEST_DEVICES,
        module_rustflags: &[],
        runner: Runner::Qemu(QemuSpec {
            binary: "qemu-system-arm",
            package: "qemu-system-arm",
            // highmem=off keeps the PCIe ECAM below 4 GiB, where a non-LPAE kernel reaches it.
            machine: "virt,highmem=off",
            cpu: Some("cortex-a15"),
            bios: None,
            extra_args: &[],
            debug_args: &[],
            mttcg: true,
        }),
        // U-Boot's EFI (Debian's u-boot-qemu for -M virt): it finds the ESP on
        // the virtio disk and starts \EFI\BOOT\BOOTARM.EFI, the armhf systemd-stub UKI.
        efi: Ok(EfiSpec {
            efi_arch: "arm",
            firmware_package: "u-boot-qemu",
            code: "/usr/lib/u-boot/qemu_arm/u-boot.bin",
            secure_code: None,
            vars: None,
            args: &[],
            secure_args: &[],
        }),
    },
    Arch {
        name: "riscv",
        aliases: &["riscv64", "rv64"],
        make_arch: "riscv",
        srcarch: "riscv",
        debian_arch: "riscv64",
        host: Some("riscv64"),
        llvm_triple: "riscv64-linux-gnu",
        rust_user_target: "riscv64gc-unknown-linux-gnu",
        user_cflags: &[],
        headers_arch: "riscv",
        kernel_image: "arch/riscv/boot/Image",
        console: "ttyS0",
        verdict_port: None,
        config_fragment: "riscv.config",
        pci: true,
        devices: PCI_TEST_DEVICES,
        // QEMU's default firmware for virt is OpenSBI (Debian's opensbi package).
        module_rustflags: &[],
        runner: Runner::Qemu(QemuSpec {
            binary: "qemu-system-riscv64",
            package: "qemu-system-riscv",
            machine: "virt",
            cpu: Some("rv64"),
            bios: None,
            extra_args: &[],
            debug_args: &[],
            mttcg: true,
        }),
        efi: Ok(EfiSpec {
            efi_arch: "riscv64",
            firmware_package: "qemu-efi-riscv64",
            code: "/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd",
            secure_code: None,
            vars: Some("/usr/share/qemu-efi-riscv64/RISCV_VIRT_VARS.fd"),
            // As on arm64: the device tree, not ACPI (the kernel has no CONFIG_ACPI).
            args: &["-machine", "acpi=off"],
            secure_args: &[],
        }),
    },
    Arch {
        name: "loongarch",
        aliases: &["loongarch64", "loong64"],
        make_arch: "loongarch",
        srcarch: "loongarch",
        debian_arch: "loong64",
        host: Some("loongarch64"),
        llvm_triple: "loongarch64-linux-gnu",
        rust_user_target: "loongarch64-unknown-linux-gnu",
        user_cflags: &[],
        headers_arch: "loongarch",
        // The EFI stub's PE image: firmware starts it, and QEMU's direct boot loads it too.
        kernel_image: "arch/loongarch/boot/vmlinux.efi",
        console: "ttyS0",
        verdict_port: None,
        config_fragment: "loongarch.config",
        // It has PCI, but Debian's qemu-system-loongarch64 builds neither edu nor pci-testdev.
        pci: true,
        devices: &[],
        module_rustflags: &[],
        runner: Runner::Qemu(QemuSpec {
            binary: "qemu-system-loongarch64",
            package: "qemu-system-misc",
            machine: "virt",
            cpu: Some("la464"),
            bios: None,
            extra_args: &[],
            debug_args: &[],
            mttcg: true,
        }),
        efi: Ok(EfiSpec {
            efi_arch: "loongarch64",
            firmware_package: "qemu-efi-loongarch64",
            code: "/usr/share/qemu-efi-loongarch64/QEMU_EFI.fd",
            // Debian's build has no Secure Boot.
            secure_code: None,
            vars: Some("/usr/share/qemu-efi-loongarch64/QEMU_VARS.fd"),
            args: &[],
            secure_args: &[],
        }),
    },
    Arch {
        name: "s390",
        aliases: &["s390x", "s390-64", "zarch"],
        make_arch: "s390",
        srcarch: "s390",
        debian_arch: "s390x",
        host: Some("s390x"),
        llvm_triple: "s390x-linux-gnu",
        rust_user_target: "s390x-unknown-linux-gnu",
        user_cflags: &[],
        headers_arch: "s390",
        kernel_image: "arch/s390/boot/bzImage",
        console: "ttysclp0",
        verdict_port: None,
        config_fragment: "s390.config",
        // zPCI exists, but qemu-system-s390x has neither edu nor pci-testdev.
        pci: true,
        devices: &[],
        module_rustflags: &[],
        runner: Runner::Qemu(QemuSpec {
            binary: "qemu-system-s390x",
            package: "qemu-system-s390x",
            machine: "s390-ccw-virtio",
            cpu: Some("qemu"),
            bios: None,
            extra_args: &[],
            debug_args: &[],
            mttcg: true,
        }),
        efi: Err("s390 has no UEFI: it IPLs its kernel"),
    },
    Arch {
        name: "um",
        aliases: &["uml", "user-mode-linux"],
        make_arch: "um",
        srcarch: "um",
        debian_arch: "amd64",
        host: None,
        llvm_triple: "x86_64-linux-gnu",
        rust_user_target: "x86_64-unknown-linux-gnu",
        user_cflags: &[],
        headers_arch: "um",
        kernel_image: "linux",
        console: "tty0",
        verdict_port: None,
        config_fragment: "um.config",
        pci: false,
        devices: &[],
        // arch/um builds all Rust with -Crelocation-model=pie, whose GOTPCREL relocations
        // the x86 module loader refuses ("Unknown rela relocation: 9"). C modules on 64-bit
        // UML use -mcmodel=large; Rust modules get the same: absolute 64-bit relocations.
        module_rustflags: &["-Crelocation-model=static", "-Ccode-model=large"],
        // SMP: CONFIG_SMP needs UML_SUBARCH_SUPPORTS_SMP (arch/x86/um/Kconfig: if X86_CX8), which
        // x86_64 has; the kernel starts its CPUs with `ncpus=N` (arch/um/kernel/smp.c), each a host thread.
        runner: Runner::Uml,
        efi: Err("User Mode Linux has no firmware: the kernel is a host program"),
    },
];

impl Arch {
    /// The QEMU spec, for arches booted by QEMU.
    pub fn qemu(&self) -> Option<&QemuSpec> {
        match &self.runner {
            Runner::Qemu(spec) => Some(spec),
            Runner::Uml => None,
        }
    }

    /// The row of the machine kforge runs on: its user space runs natively
    /// there (the host's busybox, build programs of an SDK).
    pub fn host() -> Result<&'static Arch> {
        Arch::for_host(std::env::consts::ARCH)
    }

    /// The row whose `host` is `machine` (a `std::env::consts::ARCH` name).
    pub fn for_host(machine: &str) -> Result<&'static Arch> {
        ARCHES.iter().find(|arch| arch.host == Some(machine)).ok_or_else(|| {
            let known: Vec<&str> = ARCHES.iter().filter_map(|arch| arch.host).collect();
            error::user_hint(
                format!("kforge does not know this machine's architecture `{machine}` (it knows {})", known.join(", ")),
                "run kforge on one of those, or add the machine's name as the `host` of its row in xtask/src/arch.rs",
            )
        })
    }

    /// Guest CPUs a kernel built with `smp` (CONFIG_SMP) is booted with: 2,
    /// except a UML kernel without SMP, which cannot start a second CPU.
    pub fn boot_cpus(&self, smp: bool) -> u32 {
        match (&self.runner, smp) {
            (Runner::Uml, false) => 1,
            _ => 2,
        }
    }

    /// Looks an arch up by kernel name or alias (case-insensitive).
    pub fn find(name: &str) -> Result<&'static Arch> {
        let wanted = name.trim().to_ascii_lowercase();
        ARCHES.iter().find(|arch| arch.name == wanted || arch.aliases.contains(&wanted.as_str())).ok_or_else(|| {
            error::unknown("arch", name, &ARCHES.iter().map(|arch| arch.name.to_string()).collect::<Vec<_>>())
        })
    }

    /// Parses `x86_64,arm64` or `all` into arches, keeping the user's order and dropping repeats.
    pub fn parse_list(list: &str) -> Result<Vec<&'static Arch>> {
        if list.trim() == "all" {
            return Ok(ARCHES.iter().collect());
        }
        let mut arches: Vec<&'static Arch> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let arch = Arch::find(name)?;
            if !arches.iter().any(|known| known.name == arch.name) {
                arches.push(arch);
            }
        }
        if arches.is_empty() {
            return Err(error::user("no architecture given"));
        }
        Ok(arches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_kernel_names() {
        assert_eq!(Arch::find("aarch64").unwrap().name, "arm64");
        assert_eq!(Arch::find("AMD64").unwrap().name, "x86_64");
        let names: Vec<_> = Arch::parse_list("arm64, x86_64,aarch64").unwrap().iter().map(|arch| arch.name).collect();
        assert_eq!(names, ["arm64", "x86_64"]);
    }

    #[test]
    fn unknown_arch_lists_valid_ones() {
        let message = format!("{}", Arch::find("sparc").unwrap_err());
        assert!(message.contains("unknown arch `sparc`"), "{message}");
        assert!(message.contains("x86_64") && message.contains("arm64"), "{message}");
    }

    #[test]
    fn the_host_row_is_found_by_machine_name_and_an_unknown_machine_is_an_error() {
        assert_eq!(Arch::for_host("x86_64").unwrap().debian_arch, "amd64");
        assert_eq!(Arch::for_host("aarch64").unwrap().name, "arm64");
        let message = format!("{:#}", Arch::for_host("sparc64").unwrap_err());
        assert!(message.contains("`sparc64`") && message.contains("x86_64, aarch64"), "{message}");
        assert_eq!(Arch::host().unwrap().host, Some(std::env::consts::ARCH));
    }

    #[test]
    fn every_row_has_its_config_fragment() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-config");
        for arch in ARCHES {
            assert!(dir.join(arch.config_fragment).is_file(), "missing kernel-config/{}", arch.config_fragment);
        }
    }
}
