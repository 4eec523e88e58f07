//! Running a program under a time limit with its output captured in files
//! (so a chatty child can never block on a full pipe): the one runner the
//! matrix and the crash test share.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Runs `cmd` (stdin closed) with stdout/stderr into files under `scratch`,
/// killing it after `limit`; polls every `poll`. Returns the exit status and
/// both outputs.
pub fn run_to_files(
    mut cmd: Command,
    what: &str,
    scratch: &Path,
    limit: Duration,
    poll: Duration,
) -> Result<(ExitStatus, String, String)> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_p = scratch.join(format!(".out-{n}"));
    let err_p = scratch.join(format!(".err-{n}"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p)?)
        .stderr(std::fs::File::create(&err_p)?);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{what}`"))?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{what}` did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(poll);
    };
    let stdout = String::from_utf8_lossy(&std::fs::read(&out_p)?).into_owned();
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_p)?).into_owned();
    let _ = std::fs::remove_file(&out_p);
    let _ = std::fs::remove_file(&err_p);
    Ok((status, stdout, stderr))
}
