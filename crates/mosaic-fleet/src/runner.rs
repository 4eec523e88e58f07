//! The one place mosaic runs external programs (`tmux`, `systemctl`, the
//! shipped helper scripts, `ssh`).
//!
//! Deciding is kept apart from doing: callers build an argv with small pure
//! functions (see [`crate::systemd`] and `crate::tmux`) whose first
//! word is the plain program name (`"tmux"`, `"systemctl"`); this module maps
//! that name to the configured program ([`mosaic_engine::paths::program`], which
//! honours `MOSAIC_TMUX` / `MOSAIC_SYSTEMCTL`) and runs it.
//!
//! Every captured run has a deadline (SPEC §4.3: the lock is never held
//! across an unbounded wait): [`default_deadline`] is 10 s, or
//! `MOSAIC_EXEC_TIMEOUT_SECS`. A program still running then is killed with
//! its whole process group and the run fails with [`Error::Timeout`],
//! one line naming the command and the deadline. Running goes through the
//! [`Exec`] trait: [`RealExec`] spawns, [`FakeExec`] records argv and
//! answers from a script, so unit tests pin what would run.
//! Only [`status`] and [`spawn`] (interactive: the operator's own terminal
//! attached to a viewer, no lock held) wait without a deadline.
//!
//! Every spawn is counted ([`spawned`]) and, when `MOSAIC_SPAWN_LOG=FILE` is
//! set, appended to FILE as one line (the argv joined by spaces), so tests can
//! prove how many processes a command starts.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// How many processes this process has started through the runner.
pub fn spawned() -> usize {
    SPAWNED.load(Ordering::SeqCst)
}

/// The program actually run for an argv's first word: `tmux` and `systemctl`
/// go through [`mosaic_engine::paths::program`]; anything else is used as is.
pub fn resolve_program(word: &str) -> String {
    match word {
        "tmux" | "systemctl" => mosaic_engine::paths::program(word),
        other => other.to_string(),
    }
}

/// The environment variable that overrides a program, for error messages.
fn override_hint(word: &str) -> String {
    match word {
        "tmux" => "install tmux or set MOSAIC_TMUX to its path".to_string(),
        "systemctl" => "install systemd or set MOSAIC_SYSTEMCTL to its path".to_string(),
        _ => "check that the file exists and is executable (re-run `mosaic install` for shipped scripts)"
            .to_string(),
    }
}

fn command_for(argv: &[String]) -> Result<(Command, String)> {
    let first = argv
        .first()
        .ok_or_else(|| Error::Input("internal: empty command line".to_string()))?;
    let program = resolve_program(first);
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..]);
    Ok((cmd, program))
}

/// Called after each program ran (the command as shown, how long it took,
/// its exit code, `None` when killed): `mosaic -v` prints these.
pub type Trace = fn(&str, Duration, Option<i32>);

static TRACE: std::sync::OnceLock<Trace> = std::sync::OnceLock::new();

/// Installs the trace hook (once, at start-up; the binary owns the output).
pub fn set_trace(hook: Trace) {
    let _ = TRACE.set(hook);
}

fn trace(argv: &[String], program: &str, took: Duration, code: Option<i32>) {
    if let Some(hook) = TRACE.get() {
        let mut shown = argv.to_vec();
        if let Some(first) = shown.first_mut() {
            *first = program.to_string();
        }
        hook(&display(&shown), took, code);
    }
}

fn record(argv: &[String], program: &str) {
    SPAWNED.fetch_add(1, Ordering::SeqCst);
    if let Some(log) = std::env::var_os("MOSAIC_SPAWN_LOG").filter(|v| !v.is_empty()) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let mut words = vec![program.to_string()];
            words.extend(argv[1..].iter().cloned());
            let _ = writeln!(f, "{}", words.join(" "));
        }
    }
}

fn spawn_error(argv: &[String], program: &str, e: std::io::Error) -> Error {
    let word = argv.first().map(String::as_str).unwrap_or("");
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Input(format!("{program} not found; {}", override_hint(word)))
    } else if e.kind() == std::io::ErrorKind::PermissionDenied {
        Error::Input(format!(
            "{program} is not executable; {}",
            override_hint(word)
        ))
    } else {
        Error::io(program, e)
    }
}

/// How long one program may run: 10 s, or `MOSAIC_EXEC_TIMEOUT_SECS`.
pub fn default_deadline() -> Duration {
    let secs = std::env::var("MOSAIC_EXEC_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(10);
    Duration::from_secs(secs)
}

/// Runs a program to completion with captured output and a deadline.
pub trait Exec {
    /// Runs `argv` (first word mapped by [`resolve_program`]) with `stdin`
    /// fed to it (closed when `None`); past `deadline` the program and its
    /// process group are killed and [`Error::Timeout`] returned.
    fn run(&self, argv: &[String], stdin: Option<&[u8]>, deadline: Duration) -> Result<Output>;
}

/// The real runner: spawns the program in a process group of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealExec;

/// A pipe read to its end in a thread, into a buffer shared with the caller
/// (so a pipe held open by a daemonised grandchild never blocks us).
fn drain(mut r: impl Read + Send + 'static, done: mpsc::Sender<()>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
        let _ = done.send(());
    });
    out
}

fn take(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<u8> {
    std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Exec for RealExec {
    fn run(&self, argv: &[String], stdin: Option<&[u8]>, deadline: Duration) -> Result<Output> {
        let (mut cmd, program) = command_for(argv)?;
        record(argv, &program);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| spawn_error(argv, &program, e))?;
        let pgid = child.id() as libc::pid_t;
        if let (Some(bytes), Some(mut w)) = (stdin, child.stdin.take()) {
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                let _ = w.write_all(&bytes);
            });
        }
        let (done_tx, done_rx) = mpsc::channel();
        let out = drain(child.stdout.take().expect("piped"), done_tx.clone());
        let err = drain(child.stderr.take().expect("piped"), done_tx);
        let (exit_tx, exit_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });
        let status = match exit_rx.recv_timeout(deadline) {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(Error::io(program, e)),
            Err(_) => {
                // SAFETY: kill(2) on our child's process group; no memory is touched.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                let _ = exit_rx.recv_timeout(Duration::from_secs(1));
                trace(argv, &program, start.elapsed(), None);
                let mut shown = argv.to_vec();
                shown[0] = program;
                return Err(Error::Timeout {
                    command: display(&shown),
                    secs: deadline.as_secs().max(1),
                });
            }
        };
        // The program ended; its pipes close unless a daemonised child
        // kept them: wait for both until the deadline, then take what came.
        for _ in 0..2 {
            let left = deadline.saturating_sub(start.elapsed());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        trace(argv, &program, start.elapsed(), status.code());
        Ok(Output {
            status,
            stdout: take(&out),
            stderr: take(&err),
        })
    }
}

/// A runner for unit tests: records every argv and answers from a script
/// of replies, in order (a success with empty output once they run out).
#[derive(Debug, Default)]
pub struct FakeExec {
    /// The argv of every run, in order.
    pub calls: Mutex<Vec<Vec<String>>>,
    replies: Mutex<std::collections::VecDeque<Result<Output>>>,
}

impl FakeExec {
    /// A fake that answers each run with the next of `replies`.
    pub fn new(replies: Vec<Result<Output>>) -> FakeExec {
        FakeExec {
            calls: Mutex::new(Vec::new()),
            replies: Mutex::new(replies.into()),
        }
    }

    /// A reply: exit `code` with this stdout.
    pub fn reply(code: i32, stdout: &str) -> Result<Output> {
        use std::os::unix::process::ExitStatusExt;
        Ok(Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
        })
    }

    /// The argv recorded so far.
    pub fn argvs(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Exec for FakeExec {
    fn run(&self, argv: &[String], _stdin: Option<&[u8]>, _deadline: Duration) -> Result<Output> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(argv.to_vec());
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .unwrap_or_else(|| FakeExec::reply(0, ""))
    }
}

/// Runs `argv` with stdin closed and output captured, within
/// [`default_deadline`].
pub fn output(argv: &[String]) -> Result<Output> {
    RealExec.run(argv, None, default_deadline())
}

/// Runs `argv` with `stdin` fed to it and output captured, within
/// [`default_deadline`].
pub fn output_with_stdin(argv: &[String], stdin: &[u8]) -> Result<Output> {
    RealExec.run(argv, Some(stdin), default_deadline())
}

/// Runs `argv` on the caller's terminal (stdin, stdout and stderr inherited).
pub fn status(argv: &[String]) -> Result<ExitStatus> {
    let (mut cmd, program) = command_for(argv)?;
    record(argv, &program);
    cmd.status().map_err(|e| spawn_error(argv, &program, e))
}

/// Starts `argv` on the caller's terminal without waiting for it.
pub fn spawn(argv: &[String]) -> Result<Child> {
    let (mut cmd, program) = command_for(argv)?;
    record(argv, &program);
    cmd.spawn().map_err(|e| spawn_error(argv, &program, e))
}

/// Starts `argv` with stdin, stdout and stderr piped (for callers that feed
/// stdin and enforce their own deadline, such as [`crate::ssh`]).
pub fn spawn_piped(argv: &[String]) -> Result<Child> {
    let (mut cmd, program) = command_for(argv)?;
    record(argv, &program);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(argv, &program, e))
}

/// The first non-empty line of a process's stderr (else stdout), for one-line
/// error messages.
pub fn first_line(out: &Output) -> String {
    let pick = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    };
    pick(&out.stderr)
        .or_else(|| pick(&out.stdout))
        .unwrap_or_else(|| format!("exit status {}", out.status.code().unwrap_or(-1)))
}

/// `argv` joined for display (words with spaces or quotes are single-quoted).
pub fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,#{}".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let argv: Vec<String> = [
            "tmux",
            "-L",
            "mosaic-fleet",
            "send-keys",
            "-t",
            "=a:0.0",
            "hi there",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            display(&argv),
            "tmux -L mosaic-fleet send-keys -t =a:0.0 'hi there'"
        );
    }

    #[test]
    fn missing_program_is_one_clear_line() {
        let argv = vec!["/nonexistent/mosaic-test-prog".to_string()];
        let e = output(&argv).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/mosaic-test-prog not found"), "{e}");
        assert!(!e.contains('\n'));
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_hung_program_is_killed_with_its_group_at_the_deadline() {
        // The shell's child would keep the pipes open if only the shell died.
        let t0 = Instant::now();
        let e = RealExec
            .run(
                &argv(&["sh", "-c", "sleep 30 & sleep 30; wait"]),
                None,
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let msg = e.to_string();
        assert!(
            msg.contains("`sh -c") && msg.contains("within 1 s"),
            "{msg}"
        );
        assert!(
            msg.contains("MOSAIC_EXEC_TIMEOUT_SECS") && !msg.contains('\n'),
            "{msg}"
        );
    }

    #[test]
    fn output_and_stdin_are_passed_through() {
        let out = RealExec
            .run(&argv(&["cat"]), Some(b"hello"), Duration::from_secs(10))
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello");
        let out = RealExec
            .run(
                &argv(&["sh", "-c", "echo oops >&2; exit 3"]),
                None,
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(first_line(&out), "oops");
    }

    #[test]
    fn the_fake_records_argv_and_replies_in_order() {
        let fake = FakeExec::new(vec![FakeExec::reply(1, "x")]);
        let a = fake
            .run(&argv(&["tmux", "ls"]), None, default_deadline())
            .unwrap();
        assert_eq!(a.status.code(), Some(1));
        let b = fake
            .run(&argv(&["systemctl", "--user"]), None, default_deadline())
            .unwrap();
        assert!(b.status.success());
        assert_eq!(
            fake.argvs(),
            vec![argv(&["tmux", "ls"]), argv(&["systemctl", "--user"])]
        );
    }
}
