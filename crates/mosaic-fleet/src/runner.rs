//! The one place mosaic runs external programs (`tmux`, `systemctl`, the
//! shipped helper scripts, `ssh`).
//!
//! Deciding is kept apart from doing: callers build an argv with small pure
//! functions (see [`crate::systemd`] and `crate::tmux`) whose first
//! word is the plain program name (`"tmux"`, `"systemctl"`); this module maps
//! that name to the configured program ([`mosaic_engine::paths::program`], which
//! honours `MOSAIC_TMUX` / `MOSAIC_SYSTEMCTL`) and runs it.
//!
//! Every spawn is counted ([`spawned`]) and, when `MOSAIC_SPAWN_LOG=FILE` is
//! set, appended to FILE as one line (the argv joined by spaces), so tests can
//! prove how many processes a command starts.

use crate::error::{Error, Result};
use std::io::Write;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Runs `argv` with stdin closed and output captured.
pub fn output(argv: &[String]) -> Result<Output> {
    let (mut cmd, program) = command_for(argv)?;
    record(argv, &program);
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(argv, &program, e))
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
}
