//! The one console classifier: recognises the kernel's crash and bug-detector reports by whole-line framing, and the caps that bound what a guest can make kforge hold.
//!
//! A line counts only when, after an optional printk prefix (`[   12.345678] `, optionally
//! followed by a caller id `[    T1] `), it STARTS with one of the kernel's report headers.
//! Text anywhere else in a line (a test echoing "Oops", a KTAP diagnostic `# BUG: ...`) is
//! never a finding. Formats are the kernel's own (Linux 7.2): `lib/bug.c`/`kernel/panic.c`
//! (`WARNING: CPU:`, `Kernel panic - not syncing`), `kernel/locking/lockdep.c`,
//! `mm/kasan/report.c`, `kernel/sched/core.c` (`__might_sleep`, `__schedule_bug`),
//! `mm/kmemleak.c`, `kernel/hung_task.c`, `kernel/rcu/tree_stall.h`, `kernel/watchdog.c` and
//! the Rust panic handler in `rust/kernel/lib.rs` (`pr_emerg!("{info}")`, printed with the
//! kernel crate's `rust_kernel: ` prefix, the panic message on the next line).

use serde::Serialize;

use crate::stage::Category;

/// Longest console line kforge keeps; a longer one makes the cell `error`.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most console bytes one cell may print; more makes the cell `error` (and stops the guest).
pub const MAX_CONSOLE_BYTES: u64 = 16 * 1024 * 1024;
/// Most KTAP results one log may report; more makes the cell `error`.
pub const MAX_TESTS: usize = 20_000;
/// Deepest KTAP nesting followed; deeper makes the cell `error`.
pub const MAX_DEPTH: usize = 32;
/// Longest test or suite name kept; a longer one makes the cell `error`.
pub const MAX_NAME_BYTES: usize = 1024;
/// Lines of a report kept as its diagnostics (the header line included).
pub const FINDING_LINES: usize = 20;

/// A cap that a guest's output hit: names the cap and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cap {
    LineLength,
    ConsoleBytes,
    Tests,
    NestingDepth,
    NameLength,
}

impl Cap {
    /// "console bytes per cell (MAX_CONSOLE_BYTES = 16 MiB)": how errors name a cap.
    pub fn describe(self) -> String {
        let (what, constant, value) = match self {
            Cap::LineLength => ("line length", "MAX_LINE_BYTES", MAX_LINE_BYTES as u64),
            Cap::ConsoleBytes => ("console bytes per cell", "MAX_CONSOLE_BYTES", MAX_CONSOLE_BYTES),
            Cap::Tests => ("number of tests", "MAX_TESTS", MAX_TESTS as u64),
            Cap::NestingDepth => ("KTAP nesting depth", "MAX_DEPTH", MAX_DEPTH as u64),
            Cap::NameLength => ("test name length", "MAX_NAME_BYTES", MAX_NAME_BYTES as u64),
        };
        let value = match value {
            v if v >= 1 << 20 && v % (1 << 20) == 0 => format!("{} MiB", v >> 20),
            v if v >= 1 << 10 && v % (1 << 10) == 0 => format!("{} KiB", v >> 10),
            v => v.to_string(),
        };
        format!("{what} cap ({constant} = {value}, see docs/reliability.md)")
    }
}

/// Which kernel report a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detector {
    Lockdep,
    Kasan,
    AtomicSleep,
    Overflow,
    RustPanic,
    Memleak,
    /// An IOMMU's report of a device access to an unmapped address.
    Dma,
    Hang,
    /// `Kernel panic - not syncing`.
    Panic,
    /// `Oops`, `Unable to handle kernel ...`, `general protection fault`.
    Oops,
    /// `BUG: ...` (other than the specific detectors), `kernel BUG at`.
    Bug,
    /// `WARNING: CPU:` / `WARNING: at` (a `WARN()`), not lockdep's.
    Warning,
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Lockdep => "lockdep",
            Detector::Kasan => "kasan",
            Detector::AtomicSleep => "atomic-sleep",
            Detector::Overflow => "overflow",
            Detector::RustPanic => "rust-panic",
            Detector::Memleak => "memleak",
            Detector::Dma => "dma",
            Detector::Hang => "hang",
            Detector::Panic => "panic",
            Detector::Oops => "oops",
            Detector::Bug => "bug",
            Detector::Warning => "warning",
        }
    }

    /// The test/cell category a finding gives (generic crashes are all `panic`).
    pub fn category(self) -> Category {
        match self {
            Detector::Lockdep => Category::Lockdep,
            Detector::Kasan => Category::Kasan,
            Detector::AtomicSleep => Category::AtomicSleep,
            Detector::Overflow => Category::Overflow,
            Detector::RustPanic => Category::RustPanic,
            Detector::Memleak => Category::Memleak,
            Detector::Dma => Category::Dma,
            Detector::Hang => Category::Hang,
            Detector::Panic | Detector::Oops | Detector::Bug => Category::Panic,
            Detector::Warning => Category::Warning,
        }
    }

    /// Whether the guest is dead or dying after this report (QEMU may be stopped, after a
    /// grace period in which /init may still show it is alive). A Rust panic (an overflow is
    /// one) ends in `BUG()`: elsewhere an Oops and, with `oops=panic`, a kernel panic follow,
    /// but UML's guest spins in soft lockups instead, until the boot's timeout.
    pub fn fatal(self) -> bool {
        matches!(self, Detector::Panic | Detector::Oops | Detector::RustPanic | Detector::Overflow)
    }

    /// 0 for a named detector, 1 for a generic crash, 2 for a warning: a specific report
    /// explains the generic ones that follow it (a Rust panic ends in `kernel BUG at`, Oops
    /// and `Kernel panic`), so it names the failure.
    fn rank(self) -> u8 {
        match self {
            Detector::Panic | Detector::Oops | Detector::Bug => 1,
            Detector::Warning => 2,
            _ => 0,
        }
    }
}

/// One kernel report found in a log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub detector: Detector,
    /// 1-based line number of its first line in the log it was found in.
    pub line_number: usize,
    /// Kernel timestamp (seconds since boot) of its first line, when printk prints one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// Its first lines (up to [`FINDING_LINES`], printk prefix removed), the header first.
    pub lines: Vec<String>,
}

impl Finding {
    /// "kasan at 12.345678: BUG: KASAN: ..." then the other lines, indented.
    pub fn describe(&self) -> String {
        let at = self.timestamp.map(|t| format!(" at {t:.6}")).unwrap_or_default();
        let mut text = format!("{}{at}: {}", self.detector.as_str(), self.lines.first().map_or("", String::as_str));
        for line in self.lines.iter().skip(1) {
            text.push_str("\n  ");
            text.push_str(line);
        }
        text
    }
}

/// The finding that names a failure: the first named detector, else the first crash, else
/// the first warning.
pub fn primary(findings: &[Finding]) -> Option<&Finding> {
    findings.iter().min_by_key(|finding| finding.detector.rank())
}

/// Splits a printk prefix off a line: `[    1.234567] ` (and a caller id `[    T1] `).
/// Returns the timestamp and the rest; lines without a prefix come back whole.
pub fn split_timestamp(line: &str) -> (Option<f64>, &str) {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let time = |body: &str| {
        let body = body.trim_start();
        body.split_once('.').filter(|(s, us)| digits(s) && digits(us)).and_then(|_| body.parse::<f64>().ok())
    };
    let is_caller = |body: &str| body.trim_start().strip_prefix(['T', 'C']).is_some_and(digits);
    let Some((body, rest)) = line.strip_prefix('[').and_then(|s| s.split_once(']')) else {
        return (None, line);
    };
    let Some(seconds) = time(body) else { return (None, line) };
    let rest = match rest.strip_prefix('[').and_then(|s| s.split_once(']')) {
        Some((caller, after)) if is_caller(caller) => after,
        _ => rest,
    };
    (Some(seconds), rest.strip_prefix(' ').unwrap_or(rest))
}

/// The detector whose report header `text` (printk prefix already removed) is, matched at
/// the line start only.
pub fn classify(text: &str) -> Option<Detector> {
    const LOCKDEP: &[&str] = &[
        "WARNING: possible circular locking dependency detected",
        "WARNING: possible recursive locking detected",
        "WARNING: held lock freed!",
        "WARNING: inconsistent lock state",
        "WARNING: possible irq lock inversion dependency detected",
        "WARNING: bad unlock balance detected!",
        "WARNING: bad contention detected!",
        "WARNING: lock held when returning to user space!",
        "WARNING: Nested lock was not taken",
        "WARNING: suspicious RCU usage",
        "BUG: Invalid wait context",
        "BUG: lock held when returning to user space!",
        "WARNING: chain_key collision",
    ];
    const ATOMIC_SLEEP: &[&str] =
        &["BUG: sleeping function called from invalid context", "BUG: scheduling while atomic"];
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| text.starts_with(p));
    // `WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected`, `WARNING: x/1 still has locks held!`
    let lockdep_formatted = text.strip_prefix("WARNING: ").is_some_and(|rest| {
        (rest.contains("-safe -> ") && rest.ends_with("lock order detected"))
            || rest.ends_with(" still has locks held!")
    });
    if starts(LOCKDEP) || lockdep_formatted {
        Some(Detector::Lockdep)
    } else if text.starts_with("BUG: KASAN: ") {
        Some(Detector::Kasan)
    } else if starts(ATOMIC_SLEEP) {
        Some(Detector::AtomicSleep)
    } else if text.starts_with("rust_kernel: panicked at ") || text.starts_with("panicked at ") {
        Some(Detector::RustPanic)
    } else if (text.starts_with("unreferenced object") && text.contains(" 0x")) || is_kmemleak_summary(text) {
        Some(Detector::Memleak)
    } else if is_iommu_fault(text) {
        Some(Detector::Dma)
    } else if is_hang(text) {
        Some(Detector::Hang)
    } else if text.starts_with("Kernel panic - not syncing") {
        Some(Detector::Panic)
    } else if is_oops(text) {
        Some(Detector::Oops)
    } else if text.starts_with("BUG: ") || text.starts_with("kernel BUG at ") {
        Some(Detector::Bug)
    } else if text.starts_with("WARNING: CPU: ") || text.starts_with("WARNING: at ") {
        Some(Detector::Warning)
    } else {
        None
    }
}

/// `kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)`.
fn is_kmemleak_summary(text: &str) -> bool {
    text.strip_prefix("kmemleak: ")
        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
        .is_some_and(|rest| rest.starts_with(" new suspected memory leak"))
}

/// An IOMMU's fault report for a device's DMA: Intel VT-d's
/// `DMAR: [DMA Write NO_PASID] Request device [0000:00:03.0] fault addr 0x... [fault reason 0x05] ...`
/// (drivers/iommu/intel/dmar.c, `dmar_fault_do_one`; `[DMA Read`, `PASID 0x..` too) and the
/// Arm SMMUv3's `arm-smmu-v3 9050000.smmuv3: event 0x10 received:`
/// (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c, `arm_smmu_dump_raw_event`).
fn is_iommu_fault(text: &str) -> bool {
    let vtd = text.starts_with("DMAR: [DMA Write ") || text.starts_with("DMAR: [DMA Read ");
    let smmu = text.strip_prefix("arm-smmu-v3 ").is_some_and(|rest| {
        rest.split_once(": event 0x")
            .and_then(|(_, id)| id.strip_suffix(" received:"))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    vtd || smmu
}

/// `INFO: task sh:1 blocked for more than 120 seconds.` (kernel/hung_task.c), a soft or hard
/// lockup (kernel/watchdog.c, `watchdog: ` prefix), an RCU stall.
fn is_hang(text: &str) -> bool {
    let hung = text
        .strip_prefix("INFO: task ")
        .is_some_and(|rest| rest.contains(" blocked") && rest.contains(" for more than "));
    let watchdog = text
        .strip_prefix("watchdog: ")
        .is_some_and(|rest| rest.starts_with("BUG: soft lockup") || rest.contains("Watchdog detected hard LOCKUP"));
    hung || watchdog || is_rcu_stall(text)
}

/// `rcu: INFO: rcu_sched self-detected stall on CPU`, `rcu: INFO: rcu_preempt detected stalls`.
fn is_rcu_stall(text: &str) -> bool {
    text.strip_prefix("rcu: INFO: ")
        .is_some_and(|rest| rest.contains(" self-detected stall") || rest.contains(" detected stalls"))
}

/// `Oops: 0000 [#1]`, `Oops - BUG: ...`, arm64's `Internal error: Oops: ...`, x86's
/// `general protection fault`, `Unable to handle kernel ...`.
fn is_oops(text: &str) -> bool {
    let oops = |rest: &str| rest.strip_prefix("Oops").is_some_and(|r| r.is_empty() || r.starts_with([':', ' ']));
    oops(text)
        || text.strip_prefix("Internal error: ").is_some_and(oops)
        || text.starts_with("general protection fault")
        || text.starts_with("Unable to handle kernel ")
}

/// `attempt to add with overflow` (and subtract, multiply, negate, shift ...): the message
/// line of a Rust arithmetic-overflow panic.
fn is_overflow_message(text: &str) -> bool {
    text.starts_with("attempt to ") && text.trim_end().ends_with("with overflow")
}

/// Feeds lines one at a time and collects findings; memory is bounded by the findings'
/// [`FINDING_LINES`] each (and the caller's line cap).
#[derive(Debug, Default)]
pub struct Classifier {
    findings: Vec<Finding>,
    /// Index of the finding still collecting lines.
    open: Option<usize>,
    line_number: usize,
}

/// Most findings kept per log (a flood of warnings stays bounded).
const MAX_FINDINGS: usize = 200;

impl Classifier {
    /// Feeds the next line (as logged, printk prefix included). Returns the detector when the
    /// line starts a new finding.
    pub fn feed(&mut self, raw: &str) -> Option<Detector> {
        self.line_number += 1;
        let raw = raw.trim_end_matches(['\r', '\n']);
        let (timestamp, text) = split_timestamp(raw);
        if let Some(detector) = classify(text) {
            if self.findings.len() < MAX_FINDINGS {
                let lines = vec![text.to_string()];
                self.findings.push(Finding { detector, line_number: self.line_number, timestamp, lines });
                self.open = Some(self.findings.len() - 1);
            } else {
                self.open = None;
            }
            return Some(detector);
        }
        if let Some(finding) = self.open.and_then(|index| self.findings.get_mut(index)) {
            if finding.detector == Detector::RustPanic && finding.lines.len() <= 2 && is_overflow_message(text) {
                finding.detector = Detector::Overflow;
            }
            finding.lines.push(text.to_string());
            if finding.lines.len() >= FINDING_LINES {
                self.open = None;
            }
        }
        None
    }

    /// Counts a line that is not fed (so line numbers stay those of the whole log).
    pub fn skip_line(&mut self) {
        self.line_number += 1;
    }

    pub fn finish(self) -> Vec<Finding> {
        self.findings
    }
}

/// The marker /init writes to /dev/kmsg before a test (`<package> <test>` follow the nonce).
pub const TEST_START: &str = "kforge: test-start";
/// The marker /init writes to /dev/kmsg after a test.
pub const TEST_END: &str = "kforge: test-end";

/// Kernel reports of a raw dmesg dump, each placed in the test window it fell in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Attribution {
    /// `("<package>.<test>", finding)` for reports inside a test window, in order.
    pub in_tests: Vec<(String, Finding)>,
    /// Reports outside every window (boot, between packages, after the last test).
    pub outside: Vec<Finding>,
}

impl Attribution {
    /// Every finding, in log order.
    pub fn all(&self) -> Vec<Finding> {
        let mut all: Vec<Finding> = self.in_tests.iter().map(|(_, f)| f.clone()).chain(self.outside.clone()).collect();
        all.sort_by_key(|f| f.line_number);
        all
    }
}

/// Attributes the kernel reports in `dmesg` (as `dmesg -r` prints the log buffer: each line
/// `<N>[ seconds] text`, N = facility * 8 + level) to the test windows that /init's
/// nonce-carrying markers open and close. Only facility 0 (the kernel itself) can be a
/// report: user space, tests included, can only write facility >= 1 to /dev/kmsg, so a test
/// cannot forge a report there. Only facility >= 1 lines can be markers, and only with the
/// boot's nonce. Lines without a `<N>` prefix are neither.
pub fn attribute(dmesg: &str, nonce: &str) -> Attribution {
    let start = format!("{TEST_START} {nonce} ");
    let end = format!("{TEST_END} {nonce} ");
    let mut classifier = Classifier::default();
    let mut window: Option<String> = None;
    // (finding index, window it opened in)
    let mut placed: Vec<Option<String>> = Vec::new();
    for raw in dmesg.lines() {
        let Some((facility, rest)) = split_syslog_prefix(raw) else {
            classifier.skip_line();
            continue;
        };
        if facility != 0 {
            classifier.skip_line();
            let (_, text) = split_timestamp(rest);
            if let Some(test) = text.strip_prefix(&start) {
                window = Some(test.trim().replacen(' ', ".", 1));
            } else if text.starts_with(&end) {
                window = None;
            }
            continue;
        }
        if classifier.feed(rest).is_some() && placed.len() < MAX_FINDINGS {
            placed.push(window.clone());
        }
    }
    let mut attribution = Attribution::default();
    for (finding, window) in classifier.finish().into_iter().zip(placed) {
        match window {
            Some(test) => attribution.in_tests.push((test, finding)),
            None => attribution.outside.push(finding),
        }
    }
    attribution
}

/// How many CPUs the kernel brought up, from its own (facility 0) line
/// `smp: Brought up N node(s), M CPU(s)` in a raw dmesg dump, with that line.
/// None when the kernel printed none (a kernel without SMP).
pub fn cpus_brought_up(dmesg: &str) -> Option<(u32, String)> {
    dmesg.lines().find_map(|raw| {
        let (facility, rest) = split_syslog_prefix(raw)?;
        let (_, text) = split_timestamp(rest);
        if facility != 0 {
            return None;
        }
        let counts = text.strip_prefix("smp: Brought up ")?;
        let cpus = counts.split(", ").nth(1)?.split(' ').next()?.parse().ok()?;
        Some((cpus, text.trim().to_string()))
    })
}

/// `<N>rest` -> (facility, rest).
fn split_syslog_prefix(line: &str) -> Option<(u32, &str)> {
    let (number, rest) = line.strip_prefix('<')?.split_once('>')?;
    let value: u32 = number.parse().ok().filter(|_| !number.is_empty() && number.len() <= 4)?;
    Some((value >> 3, rest))
}

/// Every finding in `log`, in order.
pub fn scan(log: &str) -> Vec<Finding> {
    let mut classifier = Classifier::default();
    for line in log.lines() {
        classifier.feed(line);
    }
    classifier.finish()
}

/// A UEFI firmware console line refusing to start an image: its Secure Boot
/// signature check failed (EDK2: `... : Access Denied` / `Security Violation`).
pub fn is_firmware_refusal(line: &str) -> bool {
    line.contains("Access Denied") || line.contains("Security Violation")
}

/// A line only a started kernel prints: its EFI stub, or its banner.
pub fn is_kernel_start(line: &str) -> bool {
    line.contains("EFI stub: ") || line.contains("Linux version ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_panic_ends_the_boot_like_a_kernel_panic_but_a_warning_or_a_lockdep_report_does_not() {
        let fatal = |line: &str| classify(line).is_some_and(Detector::fatal);
        assert!(fatal("rust_kernel: panicked at seeded_overflow.rs:24:20:"));
        assert!(fatal("Kernel panic - not syncing: Fatal exception"));
        assert!(!fatal("WARNING: CPU: 1 PID: 55 at kernel/locking/lockdep.c:123 foo+0x1/0x2"));
        assert!(!fatal("BUG: KASAN: slab-use-after-free in seeded_uaf_init+0x1/0x2"));
    }

    #[test]
    fn firmware_refusals_and_kernel_starts_are_told_apart() {
        let refused = r#"BdsDxe: failed to load Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0): Access Denied -- rejected probably by Secure Boot"#;
        assert!(is_firmware_refusal(refused));
        assert!(!is_kernel_start(refused));
        assert!(is_kernel_start("EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path"));
        assert!(is_kernel_start("[    0.000000] Linux version 7.2.13 (kforge@kforge)"));
        assert!(!is_firmware_refusal(r#"BdsDxe: starting Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0)"#));
    }

    #[test]
    fn the_cpus_the_kernel_brought_up_come_from_its_own_line_only() {
        let dmesg = "<13>[    0.01] smp: Brought up 1 node, 8 CPUs\n<6>[    0.804000] smp: Brought up 1 node, 1 CPU\n";
        assert_eq!(cpus_brought_up(dmesg), Some((1, "smp: Brought up 1 node, 1 CPU".to_string())));
        assert_eq!(cpus_brought_up("<6>[    0.06] smp: Brought up 1 node, 2 CPUs\n").unwrap().0, 2);
        assert_eq!(cpus_brought_up("<13>[ 0.1] smp: Brought up 1 node, 2 CPUs\n"), None, "user space wrote it");
        assert_eq!(cpus_brought_up("<6>[ 0.1] Linux version 7.2\n"), None);
    }

    fn kinds(log: &str) -> Vec<&'static str> {
        scan(log).iter().map(|f| f.detector.as_str()).collect()
    }

    #[test]
    fn each_detector_in_the_kernels_own_format() {
        let cases = [
            ("[   12.000001] WARNING: possible circular locking dependency detected", "lockdep"),
            ("[   12.000001] WARNING: possible recursive locking detected", "lockdep"),
            ("WARNING: held lock freed!", "lockdep"),
            ("WARNING: inconsistent lock state", "lockdep"),
            ("[    3.5][    T1] BUG: KASAN: slab-use-after-free in kforge_fifo_pop+0x1c/0x80", "kasan"),
            ("BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580", "atomic-sleep"),
            ("BUG: scheduling while atomic: insmod/85/0x00000002", "atomic-sleep"),
            ("rust_kernel: panicked at drivers/kforge/fifo.rs:12:5:", "rust-panic"),
            ("unreferenced object 0xffff888003a1c000 (size 64):", "memleak"),
            ("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "memleak"),
            ("WARNING: CPU: 1 PID: 85 at drivers/kforge/fifo.rs:99 kforge_fifo_push+0x5/0x9", "warning"),
            ("INFO: task kworker/0:1:12 blocked for more than 120 seconds.", "hang"),
            ("rcu: INFO: rcu_sched self-detected stall on CPU", "hang"),
            ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "hang"),
            ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]", "hang"),
            ("watchdog: CPU1: Watchdog detected hard LOCKUP on cpu 0", "hang"),
            ("INFO: task insmod:90 blocked in I/O wait for more than 30 seconds.", "hang"),
            ("WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "lockdep"),
            ("unreferenced object (percpu) 0xffff888003a1c000 (size 8):", "memleak"),
            ("Kernel panic - not syncing: Fatal exception", "panic"),
            ("Oops: 0000 [#1] PREEMPT SMP NOPTI", "oops"),
            ("Internal error: Oops: 0000000096000004 [#1] SMP", "oops"),
            ("Unable to handle kernel NULL pointer dereference at virtual address 0", "oops"),
            ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "bug"),
            ("kernel BUG at rust/helpers/bug.c:7!", "bug"),
            (
                "[   41.2] DMAR: [DMA Write NO_PASID] Request device [0000:00:03.0] fault addr 0xfffff000 [fault reason 0x05] PTE Write access is not set",
                "dma",
            ),
            (
                "DMAR: [DMA Read PASID 0x1] Request device [0000:00:03.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set",
                "dma",
            ),
            ("arm-smmu-v3 9050000.smmuv3: event 0x10 received:", "dma"),
        ];
        for (line, expected) in cases {
            assert_eq!(kinds(line), [expected], "{line}");
        }
    }

    #[test]
    fn only_line_starts_count() {
        let log = "\
    # test says: Oops: 0000 [#1]
userspace: Oops, that is fine
kforge: DEBUG: fifo depth 3
# BUG: KASAN: quoted in a diagnostic
echo 'Kernel panic - not syncing: fake'
INFO: task list printed by a test
DEBUG: not a bug
 Oops: indented, so not a report header
DMAR: DRHD: handling fault status reg 2
arm-smmu-v3 9050000.smmuv3: event 0x10 received: and more
arm-smmu-v3 9050000.smmuv3: 	0x0000001000000010
---[ end Kernel panic - not syncing: Fatal exception ]---
";
        assert!(scan(log).is_empty(), "{:?}", scan(log));
    }

    #[test]
    fn rust_overflow_beats_rust_panic_and_a_named_detector_beats_the_crash_it_causes() {
        let log = "\
[    5.100000] rust_kernel: panicked at drivers/kforge/seeded.rs:21:13:
[    5.100000] attempt to add with overflow
[    5.100001] ------------[ cut here ]------------
[    5.100002] kernel BUG at rust/helpers/bug.c:7!
[    5.100003] Oops: invalid opcode: 0000 [#1] SMP NOPTI
[    5.100009] Kernel panic - not syncing: Fatal exception
";
        let findings = scan(log);
        let got: Vec<_> = findings.iter().map(|f| f.detector.as_str()).collect();
        assert_eq!(got, ["overflow", "bug", "oops", "panic"]);
        let first = primary(&findings).unwrap();
        assert_eq!((first.detector, first.timestamp, first.line_number), (Detector::Overflow, Some(5.1), 1));
        assert_eq!(first.lines[1], "attempt to add with overflow");
        assert_eq!(first.detector.category().as_str(), "overflow");
        let plain = scan("rust_kernel: panicked at a.rs:1:1:\nindex out of bounds: the len is 3 but the index is 7\n");
        assert_eq!(plain[0].detector, Detector::RustPanic);
    }

    #[test]
    fn warning_ranks_below_crashes_and_findings_keep_twenty_lines() {
        let mut log = String::from("WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\n");
        log += &(0..40).map(|i| format!("trace line {i}\n")).collect::<String>();
        log += "BUG: unable to handle page fault for address: 0000000000001000\n";
        let findings = scan(&log);
        assert_eq!(findings[0].lines.len(), FINDING_LINES);
        assert_eq!(primary(&findings).unwrap().detector, Detector::Bug);
        assert!(findings[0].describe().starts_with("warning: WARNING: CPU: 0"));
    }

    #[test]
    fn timestamps_and_caller_ids_are_split_off() {
        assert_eq!(split_timestamp("[   12.345678] x"), (Some(12.345678), "x"));
        assert_eq!(split_timestamp("[    0.060000][    T1] \ty"), (Some(0.06), "\ty"));
        assert_eq!(split_timestamp("[x] z"), (None, "[x] z"));
        assert_eq!(split_timestamp("[ 1.0"), (None, "[ 1.0"));
    }

    #[test]
    fn caps_are_named_with_their_values() {
        assert_eq!(
            Cap::ConsoleBytes.describe(),
            "console bytes per cell cap (MAX_CONSOLE_BYTES = 16 MiB, see docs/reliability.md)"
        );
        assert_eq!(Cap::LineLength.describe(), "line length cap (MAX_LINE_BYTES = 16 KiB, see docs/reliability.md)");
        assert_eq!(Cap::Tests.describe(), "number of tests cap (MAX_TESTS = 20000, see docs/reliability.md)");
    }

    #[test]
    fn reports_are_attributed_to_the_test_window_they_fell_in() {
        let dmesg = "\
<6>[    0.100000] Linux version 7.2.0
<4>[    0.200000] WARNING: CPU: 0 PID: 1 at init/main.c:1 boot_warn+0x1/0x2
<13>[    1.000000] kforge: test-start n0nce fifo load
<13>[    1.100000] kforge: test-end n0nce fifo load
<13>[    1.200000] kforge: test-start n0nce fifo concurrent
<4>[    1.300000] ======================================================
<4>[    1.300001] WARNING: possible circular locking dependency detected
<4>[    1.300002] 7.2.0 #1 Not tainted
<11>[    1.300003] BUG: KASAN: forged by a test through /dev/kmsg
<13>[    1.300004] kforge: test-end WRONG fifo concurrent
<4>[    1.350000] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580
<13>[    1.400000] kforge: test-end n0nce fifo concurrent
<13>[    1.500000] kforge: test-start n0nce fifo unload
<13>[    1.500001] kforge: test-end n0nce fifo unload
BUG: KASAN: a line without a syslog prefix
";
        let attribution = attribute(dmesg, "n0nce");
        let inside: Vec<_> =
            attribution.in_tests.iter().map(|(test, f)| format!("{test} {}", f.detector.as_str())).collect();
        assert_eq!(inside, ["fifo.concurrent lockdep", "fifo.concurrent atomic-sleep"]);
        assert_eq!(attribution.outside.len(), 1);
        assert_eq!((attribution.outside[0].detector, attribution.outside[0].timestamp), (Detector::Warning, Some(0.2)));
        let lockdep = &attribution.in_tests[0].1;
        assert_eq!(lockdep.lines, ["WARNING: possible circular locking dependency detected", "7.2.0 #1 Not tainted"]);
        assert_eq!(attribution.all().len(), 3);
    }

    #[test]
    fn a_flood_of_reports_stays_bounded() {
        let mut classifier = Classifier::default();
        for _ in 0..100_000 {
            classifier.feed("WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2");
        }
        assert_eq!(classifier.finish().len(), MAX_FINDINGS);
    }
}
