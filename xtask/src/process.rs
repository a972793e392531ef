//! The only module that starts child processes: echo, capture, tee to a log, timeouts, and stopping children on Ctrl-C.
//!
//! Every non-interactive child runs in its own process group and is killed
//! with its whole group when kforge stops it (end marker, timeout, Ctrl-C,
//! SIGTERM). On Linux it also gets `PR_SET_PDEATHSIG`, so even a `kill -9` of
//! kforge takes its children with it. A sandbox's deeper processes are
//! covered by the guard (`guard.rs`) that `Cmd::guarded` puts in between.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{Interrupted, ProcessError};
use crate::progress;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// kforge's own binary, which runs as the guard of `Cmd::guarded` commands;
/// unset (unit tests) means guarded commands run without one.
static GUARD_PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Lets `Cmd::guarded` commands run under `program` (kforge's own binary,
/// which answers to `guard::GUARD_ARG`).
pub fn enable_guard(program: PathBuf) {
    let _ = GUARD_PROGRAM.set(program);
}

/// Installs the Ctrl-C / SIGTERM / SIGHUP handler. Waiting loops notice the
/// flag within ~50 ms, stop their child and return `Interrupted`.
pub fn install_interrupt_handler() {
    let installed = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    if let Err(err) = installed {
        progress::warn(format!("cannot install the Ctrl-C handler: {err}"));
    }
}

/// Whether an interrupt was requested.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns `Err(Interrupted)` once an interrupt was requested.
pub fn check_interrupt() -> Result<()> {
    if interrupted() { Err(Interrupted.into()) } else { Ok(()) }
}

/// A command line to run: program, arguments, environment, directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// Runs under kforge's guard, which kills the whole tree when kforge dies.
    guarded: bool,
}

/// What a line callback wants the runner to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop the child now (it reached its end marker).
    Stop,
    /// Stop the child after this grace period (to collect a crash's trace),
    /// unless it exits first.
    StopAfter(Duration),
    /// Cancel a pending `StopAfter` (the child showed it is alive after all).
    Resume,
}

/// Longest line the stream readers deliver: the rest of a longer line is read and dropped,
/// so a line without a newline cannot grow kforge's memory.
pub const MAX_LINE_BYTES: usize = crate::console::MAX_LINE_BYTES;
/// Lines in flight between the readers and `stream`'s loop (a bounded channel: a flooding
/// child waits on its pipe instead of growing a queue).
const LINE_QUEUE: usize = 256;

/// How a streamed child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(ExitStatus),
    /// The line callback asked to stop it; it was killed.
    Stopped,
    /// It ran past its timeout; it was killed.
    TimedOut,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd { program: program.as_ref().to_owned(), args: Vec::new(), env: Vec::new(), guarded: false }
    }

    /// Runs this command under kforge's guard (`guard.rs`): a subreaper that
    /// kills every process of the command's tree when kforge dies or stops
    /// it, including processes that lost their parent on the way (bwrap's
    /// sandbox, whose `--die-with-parent` comes too late when kforge dies
    /// while bwrap is still starting). Plans and messages still show the
    /// command itself.
    pub fn guarded(mut self) -> Cmd {
        self.guarded = true;
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Program and arguments as strings (lossy), for plans and snapshots.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(&self.program).chain(&self.args).map(|part| part.to_string_lossy().into_owned()).collect()
    }

    /// The command line, shell-quoted, for messages and `--dry-run`.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (key, value) in &self.env {
            parts.push(format!("{}={}", key.to_string_lossy(), shell_quote(&value.to_string_lossy())));
        }
        parts.extend(self.argv().iter().map(|part| shell_quote(part)));
        parts.join(" ")
    }

    fn command(&self) -> std::process::Command {
        self.command_under(None)
    }

    /// The command, run as the argument of `guard` (`<guard> GUARD_ARG <our pid> <program> ...`) when given.
    fn command_under(&self, guard: Option<&Path>) -> std::process::Command {
        let mut command = match guard {
            Some(guard) => {
                let mut command = std::process::Command::new(guard);
                command.arg(crate::guard::GUARD_ARG).arg(std::process::id().to_string()).arg(&self.program);
                command
            }
            None => std::process::Command::new(&self.program),
        };
        command.args(&self.args);
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        command
    }

    /// The guard program, when this command runs under one.
    fn guard(&self) -> Option<&'static PathBuf> {
        GUARD_PROGRAM.get().filter(|_| self.guarded)
    }

    /// A command for a supervised child: own process group, dies with us.
    fn supervised_command(&self) -> std::process::Command {
        let mut command = self.command_under(self.guard().map(PathBuf::as_path));
        command.process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only
        // calls the async-signal-safe functions of `guard::die_with_parent`.
        unsafe {
            command.pre_exec(move || {
                crate::guard::die_with_parent(parent, libc::SIGKILL);
                Ok(())
            });
        }
        command
    }

    fn spawn_error(&self, err: std::io::Error) -> anyhow::Error {
        let program = self.program.to_string_lossy();
        if err.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("cannot run `{program}`: it is not installed or not on PATH")
        } else {
            anyhow::anyhow!("cannot run `{}`: {err}", self.display())
        }
    }

    /// Starts a supervised child with stdin closed and stdout/stderr piped.
    fn spawn_piped(&self) -> Result<Child> {
        progress::detail(format!("$ {}", self.display()));
        check_interrupt()?;
        self.supervised_command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| self.spawn_error(err))
    }

    /// Runs to completion with output captured, whatever the exit status.
    pub fn output(&self) -> Result<std::process::Output> {
        Ok(wait_captured(self.spawn_piped()?, None, self.guard().is_some())?.output)
    }

    /// Runs to completion; returns stdout, or an error with the stderr tail.
    pub fn run(&self) -> Result<String> {
        self.run_bounded(None)
    }

    /// Like `run`, but stops the child and its process group once `timeout`
    /// has passed, and then fails saying so.
    pub fn run_with_timeout(&self, timeout: Duration) -> Result<String> {
        self.run_bounded(Some(timeout))
    }

    fn run_bounded(&self, timeout: Option<Duration>) -> Result<String> {
        let Captured { output, timed_out } = wait_captured(self.spawn_piped()?, timeout, self.guard().is_some())?;
        if output.status.success() && !timed_out {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let status = match timeout {
            Some(limit) if timed_out => format!("stopped after the {limit:?} timeout"),
            _ => describe_status(output.status),
        };
        Err(ProcessError { command: self.display(), status, output_tail: last_lines(&text, 20), log: None }.into())
    }

    /// Runs attached to the terminal (shells, interactive QEMU). Ctrl-C goes
    /// to the child; kforge only waits for it.
    pub fn run_interactive(&self) -> Result<ExitStatus> {
        progress::detail(format!("$ {}", self.display()));
        let status = self.command().status().map_err(|err| self.spawn_error(err))?;
        INTERRUPTED.store(false, Ordering::SeqCst);
        Ok(status)
    }

    /// Runs with stdout and stderr merged line by line into `log` and into
    /// `on_line`, which may stop the child. Stops it at `timeout` and on Ctrl-C.
    pub fn stream(
        &self,
        log: &Path,
        timeout: Option<Duration>,
        on_line: &mut dyn FnMut(&str) -> Control,
    ) -> Result<Outcome> {
        if let Some(parent) = log.parent() {
            fs_err::create_dir_all(parent)?;
        }
        // Line-buffered, so `tail -f` on the log follows a long build live.
        let mut log_file = std::io::LineWriter::new(fs_err::File::create(log)?);
        writeln!(log_file, "$ {}", self.display())?;
        let mut child = self.spawn_piped()?;
        let guarded = self.guard().is_some();
        let (sender, receiver) = mpsc::sync_channel::<Vec<u8>>(LINE_QUEUE);
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(spawn_line_reader(stdout, sender.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(spawn_line_reader(stderr, sender.clone()));
        }
        drop(sender);

        let started = Instant::now();
        // How the run ends, once decided (stop, timeout); `None` while running.
        let mut outcome: Option<Outcome> = None;
        let mut stop_deadline: Option<Instant> = None;
        let mut exited: Option<ExitStatus> = None;
        // After the end, keep reading late output for a moment, then give up.
        let mut drain_until: Option<Instant> = None;
        let mut pipes_open = true;
        loop {
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(bytes) => {
                    log_file.write_all(&bytes)?;
                    if !bytes.ends_with(b"\n") {
                        log_file.write_all(b"\n")?;
                    }
                    if outcome.is_none() {
                        let line = String::from_utf8_lossy(&bytes);
                        match on_line(line.trim_end_matches(['\n', '\r'])) {
                            Control::Continue => {}
                            Control::Resume => stop_deadline = None,
                            Control::Stop => {
                                kill_group(&mut child, guarded);
                                outcome = Some(Outcome::Stopped);
                            }
                            Control::StopAfter(grace) => {
                                let deadline = Instant::now() + grace;
                                stop_deadline = Some(stop_deadline.map_or(deadline, |known| known.min(deadline)));
                            }
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    pipes_open = false;
                    if exited.is_some() || outcome.is_some() {
                        break;
                    }
                    // Both pipes closed but the child still runs: just wait for it.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if outcome.is_none() && exited.is_none() {
                if interrupted() {
                    kill_group(&mut child, guarded);
                    let _ = child.wait();
                    log_file.flush()?;
                    return Err(Interrupted.into());
                }
                if stop_deadline.is_some_and(|deadline| Instant::now() > deadline) {
                    kill_group(&mut child, guarded);
                    outcome = Some(Outcome::Stopped);
                } else if timeout.is_some_and(|limit| started.elapsed() > limit) {
                    kill_group(&mut child, guarded);
                    outcome = Some(Outcome::TimedOut);
                }
            }
            if exited.is_none() {
                exited = child.try_wait()?;
            }
            if exited.is_some() || outcome.is_some() {
                let until = *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
                if Instant::now() > until {
                    break;
                }
            }
        }
        if pipes_open {
            // Something in the child's group still holds the pipes (so the
            // group id is still in use and cannot name anyone else): stop it.
            kill_group(&mut child, guarded);
        }
        let status = match exited {
            Some(status) => status,
            None => child.wait()?,
        };
        log_file.flush()?;
        drop(readers);
        Ok(outcome.unwrap_or(Outcome::Exited(status)))
    }
}

fn spawn_line_reader(
    stream: impl Read + Send + 'static,
    sender: mpsc::SyncSender<Vec<u8>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        while let Ok(Some(line)) = read_bounded_line(&mut reader, MAX_LINE_BYTES) {
            if sender.send(line).is_err() {
                break;
            }
        }
    })
}

/// The next line (with its newline), at most `max` bytes of it: the rest of a longer line
/// is consumed and dropped (the caller sees a line of `max` bytes without a newline).
/// `None` at the end of the stream.
fn read_bounded_line(reader: &mut impl BufRead, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut dropping = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buffer.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let newline = buffer.iter().position(|b| *b == b'\n');
        let take = newline.map_or(buffer.len(), |at| at + 1);
        if !dropping {
            let room = max - line.len();
            line.extend_from_slice(&buffer[..take.min(room)]);
            dropping = take > room;
        }
        reader.consume(take);
        if newline.is_some() {
            return Ok(Some(line));
        }
    }
}

/// A captured child's output, and whether it was stopped at its timeout.
struct Captured {
    output: std::process::Output,
    timed_out: bool,
}

/// Waits for a captured child, stopping it (and its group) on Ctrl-C or
/// once `timeout` has passed.
fn wait_captured(mut child: Child, timeout: Option<Duration>, guarded: bool) -> Result<Captured> {
    let started = Instant::now();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(stream) = stdout.as_mut() {
            let _ = stream.read_to_end(&mut buffer);
        }
        buffer
    });
    let err_thread = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(stream) = stderr.as_mut() {
            let _ = stream.read_to_end(&mut buffer);
        }
        buffer
    });
    let mut timed_out = false;
    let status = loop {
        if interrupted() {
            kill_group(&mut child, guarded);
            let _ = child.wait();
            return Err(Interrupted.into());
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if timeout.is_some_and(|limit| started.elapsed() > limit) {
            kill_group(&mut child, guarded);
            timed_out = true;
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Captured { output: std::process::Output { status, stdout, stderr }, timed_out })
}

/// How long a guard gets to kill its tree before its group is killed outright.
const GUARD_GRACE: Duration = Duration::from_secs(3);

/// Kills the child's whole process group (the child leads it). A guard
/// (`guarded`) first gets SIGTERM and a moment to kill its tree, which may
/// hold processes outside the group.
fn kill_group(child: &mut Child, guarded: bool) {
    let pid = child.id() as libc::pid_t;
    if guarded {
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is still ours.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + GUARD_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                // The guard has killed its tree and is reaped: its group is empty.
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
    }
    // SAFETY: kill(2) with a negative pid signals the process group we created
    // for this child with `process_group(0)`; the group keeps its id while its
    // leader, our child, is unreaped. No memory is involved.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.kill();
}

/// "exit status 2", "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "unknown exit status".to_string(),
    }
}

/// The last `count` non-empty lines of `text`.
pub fn last_lines(text: &str, count: usize) -> Vec<String> {
    let mut tail: VecDeque<String> = VecDeque::with_capacity(count);
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        if tail.len() == count {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    }
    tail.into()
}

/// The last `count` non-empty lines of a log file (empty if unreadable).
pub fn log_tail(log: &Path, count: usize) -> Vec<String> {
    let bytes = std::fs::read(log).unwrap_or_default();
    last_lines(&String::from_utf8_lossy(&bytes), count)
}

/// Quotes one word for a POSIX shell when it needs quoting.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if safe { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

/// Finds an executable on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let cmd = Cmd::new("make").arg("-C").arg("/src").arg("O=/build").arg("KCFLAGS=-O2 -g").env("LLVM", "1");
        assert_eq!(cmd.display(), "LLVM=1 make -C /src O=/build 'KCFLAGS=-O2 -g'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn run_captures_stdout_and_reports_failure_with_stderr_tail() {
        let ok = Cmd::new("sh").args(["-c", "echo hello"]).run().unwrap();
        assert_eq!(ok, "hello\n");
        let err = Cmd::new("sh").args(["-c", "echo first >&2; echo boom >&2; exit 3"]).run().unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("exit status 3"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[test]
    fn run_with_timeout_stops_the_child_and_says_so() {
        let started = Instant::now();
        let err = Cmd::new("sh")
            .args(["-c", "echo started >&2; sleep 30 & wait"])
            .run_with_timeout(Duration::from_millis(300))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(15), "the child was not stopped");
        let text = format!("{err}");
        assert!(text.contains("stopped after the 300ms timeout"), "{text}");
        assert!(text.contains("started"), "{text}");
        assert_eq!(Cmd::new("true").run_with_timeout(Duration::from_secs(20)).unwrap(), "");
    }

    #[test]
    fn missing_program_says_so() {
        let err = Cmd::new("kforge-no-such-program").run().unwrap_err();
        assert!(format!("{err}").contains("not installed or not on PATH"));
    }

    #[test]
    fn stream_tees_lines_and_stops_on_request() {
        let dir = std::env::temp_dir().join(format!("kforge-process-test-{}", std::process::id()));
        let log = dir.join("stream.log");
        let started = Instant::now();
        let cmd = Cmd::new("sh").args(["-c", "echo one; echo END; sleep 30; echo never"]);
        let mut seen = Vec::new();
        let outcome = cmd
            .stream(&log, Some(Duration::from_secs(20)), &mut |line| {
                seen.push(line.to_string());
                if line == "END" { Control::Stop } else { Control::Continue }
            })
            .unwrap();
        assert_eq!(outcome, Outcome::Stopped);
        assert!(started.elapsed() < Duration::from_secs(15), "the child was not stopped");
        assert_eq!(seen, ["one", "END"]);
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("one\nEND\n"), "{logged}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stream_times_out_and_kills_grandchildren() {
        let dir = std::env::temp_dir().join(format!("kforge-process-timeout-{}", std::process::id()));
        let log = dir.join("timeout.log");
        let pid_file = dir.join("grandchild.pid");
        fs_err::create_dir_all(&dir).unwrap();
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let outcome = Cmd::new("sh")
            .args(["-c", &script])
            .stream(&log, Some(Duration::from_millis(300)), &mut |_| Control::Continue)
            .unwrap();
        assert_eq!(outcome, Outcome::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Dead, or a zombie waiting for init to reap it.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z'));
        assert!(!alive, "grandchild {pid} outlived the timeout");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn lines_are_bounded() {
        let mut input = std::io::Cursor::new(format!("short\n{}\nafter\nlast", "x".repeat(100)).into_bytes());
        let mut lines = Vec::new();
        while let Some(line) = read_bounded_line(&mut input, 10).unwrap() {
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines, ["short\n", "xxxxxxxxxx", "after\n", "last"]);
    }

    #[test]
    fn last_lines_skips_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n\n", 2), ["b", "c"]);
    }
}
