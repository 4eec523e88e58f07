//! One measured child process: wall time, peak RSS (`ru_maxrss` from
//! `wait4`) and the kernel's I/O counters (`/proc/PID/io`), read after the
//! child has exited but before it is reaped (`waitid` with `WNOWAIT`), so
//! the figures are the child's own and nothing it did is missed.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of a child cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// From just before the spawn until the child exited.
    pub wall: Duration,
    /// Peak resident set size, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Bytes the child passed through `read(2)` and friends (`rchar`):
    /// page-cache hits included, so this counts content read even when warm.
    pub rchar: u64,
    /// Bytes the child passed through `write(2)` and friends (`wchar`).
    pub wchar: u64,
    /// Exit code (128 + signal when killed).
    pub code: i32,
}

fn stderr_path() -> PathBuf {
    std::env::temp_dir().join(format!("mosaic-bench-{}.stderr", std::process::id()))
}

/// Runs `cmd` (stdin and stdout closed, stderr kept for error messages) and
/// measures it. Any exit code is returned; see [`run_ok`].
pub fn run(cmd: &mut Command) -> Result<Sample> {
    let err_path = stderr_path();
    let err = std::fs::File::create(&err_path).context("cannot create the stderr file")?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    loop {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child without reaping it (WNOWAIT).
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("waitid({pid}): {e}");
        }
    }
    let wall = start.elapsed();
    // The child is a zombie now: its counters are final and still readable.
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own child, which has exited.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Sample {
        wall,
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        rchar: io_field(&io, "rchar"),
        wchar: io_field(&io, "wchar"),
        code,
    })
}

/// Like [`run`], but a non-zero exit is an error quoting the child's stderr.
pub fn run_ok(cmd: &mut Command) -> Result<Sample> {
    let s = run(cmd)?;
    if s.code != 0 {
        let err = std::fs::read_to_string(stderr_path()).unwrap_or_default();
        bail!(
            "{:?} {:?} exited {}: {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            s.code,
            err.trim()
        );
    }
    Ok(s)
}

/// Removes the stderr scratch file.
pub fn cleanup() {
    let _ = std::fs::remove_file(stderr_path());
}

fn io_field(io: &str, key: &str) -> u64 {
    io.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
        .unwrap_or(0)
}

/// The median of `xs` (upper median for an even count); zero when empty.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// The median of integer samples (upper median for an even count).
pub fn median_u64(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Flushes every file system (`sync(2)`), untimed, so one measurement does
/// not pay for the dirty pages of the one before.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}
