//! The guard between kforge and a sandbox: a child subreaper that kills the sandbox's whole tree when kforge dies.
//!
//! bwrap's `--die-with-parent` has a window (bubblewrap issue 633): the
//! sandbox's first process sets its parent-death signal only after it has
//! made its mounts. When kforge is killed inside that window, bwrap's outer
//! process dies with kforge, but the sandbox's first process lives on, unseen,
//! and runs its command anyway. kforge's own children have the same window
//! between fork and `prctl` (closed in `process.rs`).
//!
//! So kforge starts every sandbox through this guard: its own binary, with
//! the hidden first argument [`GUARD_ARG`], then kforge's pid and the command.
//! The guard
//! - sets its own parent-death signal (SIGTERM) and then checks that kforge is
//!   still its parent, so no window is left;
//! - is a child subreaper: every process of the tree that loses its parent
//!   (the sandbox's first process, when bwrap's outer process dies) becomes
//!   the guard's child instead of init's;
//! - on SIGTERM, SIGINT or SIGHUP (kforge died, or kforge stops the command)
//!   kills its children, and the orphans they leave, until none is left, then
//!   exits with 128 + the signal;
//! - otherwise exits as its command did, after killing anything the command
//!   left behind.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::time::{Duration, Instant};

/// The first argument that makes kforge's binary run as a guard.
pub const GUARD_ARG: &str = "__kforge-guard";

/// How long the guard keeps killing before it gives up on a process that will not die.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the guard for `args` (`<kforge pid> <program> [args...]`) and exits.
pub fn run(args: &[OsString]) -> ! {
    let (Some(parent), Some(program)) = (args.first(), args.get(1)) else {
        eprintln!("kforge: usage: {GUARD_ARG} <parent pid> <program> [args...] (kforge runs this itself)");
        std::process::exit(2);
    };
    let Some(parent) = parent.to_str().and_then(|pid| pid.parse::<libc::pid_t>().ok()) else {
        eprintln!("kforge: {GUARD_ARG}: {parent:?} is not a process id");
        std::process::exit(2);
    };
    let stop_signals = signal_set(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD]);
    // SAFETY: prctl(2), pthread_sigmask(3) and getppid(2) touch no memory of
    // ours but the signal set, which lives on this stack frame.
    unsafe {
        // Blocked first, so a stop signal from here on waits for sigtimedwait below.
        libc::pthread_sigmask(libc::SIG_BLOCK, &stop_signals, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
        if libc::getppid() != parent {
            // kforge died before the parent-death signal was set: nothing to guard.
            std::process::exit(128 + libc::SIGTERM);
        }
    }
    // SAFETY: getpid(2) has no arguments.
    let guard = unsafe { libc::getpid() };
    let mut command = std::process::Command::new(program);
    command.args(&args[2..]);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // the async-signal-safe sigemptyset, pthread_sigmask and `die_with_parent`.
    unsafe {
        command.pre_exec(move || {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            die_with_parent(guard, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("kforge: cannot run `{}`: {err}", program.to_string_lossy());
            std::process::exit(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(_) => break std::process::ExitStatus::from_raw(128 << 8),
        }
        if let Some(signal) = wait_for_signal(&stop_signals, Duration::from_secs(1))
            && signal != libc::SIGCHLD
        {
            kill_children();
            std::process::exit(128 + signal);
        }
    };
    kill_children();
    match (status.code(), status.signal()) {
        (Some(code), _) => std::process::exit(code),
        (None, Some(signal)) => exit_by_signal(signal),
        _ => std::process::exit(128),
    }
}

/// Asks the kernel to send `signal` to this process when its parent dies
/// (`PR_SET_PDEATHSIG`), then checks that `parent` still is its parent: if
/// the parent died before the request, the signal would never come, so the
/// process kills itself now. Only calls the async-signal-safe prctl(2),
/// getppid(2) and raise(3), so it is safe between fork and exec.
pub fn die_with_parent(parent: libc::pid_t, signal: libc::c_int) {
    // SAFETY: prctl(2), getppid(2) and raise(3) touch no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0);
        if libc::getppid() != parent {
            libc::raise(libc::SIGKILL);
        }
    }
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset write only into the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, *signal);
        }
        set
    }
}

/// The next blocked signal of `set` that arrives within `timeout`, if any.
fn wait_for_signal(set: &libc::sigset_t, timeout: Duration) -> Option<libc::c_int> {
    let timeout = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: sigtimedwait reads the set and the timeout from our stack and
    // writes no info (null).
    let signal = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
    (signal > 0).then_some(signal)
}

/// Kills every child of the guard until none is left: as a subreaper the
/// guard inherits the orphans of each process it kills, so it looks again.
fn kill_children() {
    let deadline = Instant::now() + KILL_DEADLINE;
    // SAFETY: getpid(2) has no arguments.
    let me = unsafe { libc::getpid() };
    loop {
        let children = children_of(me);
        for pid in &children {
            // SAFETY: kill(2) on a child of ours, which stays ours (a zombie at
            // worst) until we reap it below, so the pid names no one else.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        // Reap whatever has exited; ECHILD once nothing is left.
        loop {
            // SAFETY: waitpid(2) writes the status into a local.
            let reaped = unsafe {
                let mut status = 0;
                libc::waitpid(-1, &mut status, libc::WNOHANG)
            };
            if reaped == 0 {
                break;
            }
            if reaped < 0 {
                return;
            }
        }
        if Instant::now() > deadline {
            eprintln!("kforge: guard: processes {children:?} did not die within {KILL_DEADLINE:?} of SIGKILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids whose parent is `parent`, from /proc.
fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the `(comm)`, which may hold spaces: the state, then the ppid.
        let ppid = stat.rsplit_once(')').and_then(|(_, after)| after.split_whitespace().nth(1)?.parse().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Dies by `signal`, as the command did, so kforge sees the same status.
fn exit_by_signal(signal: libc::c_int) -> ! {
    // SAFETY: restores the default action, unblocks the signal and raises it;
    // no memory but the local set is involved.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let set = signal_set(&[signal]);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    std::process::exit(128 + signal)
}
