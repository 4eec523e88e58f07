//! The transport to other hosts (SPEC §12): the system OpenSSH client,
//! honouring `~/.ssh/config`, with mosaic-managed multiplexing.
//!
//! This module owns
//! * the exact ssh argv ([`argv`], pure): `BatchMode=yes`, `ConnectTimeout`,
//!   keep-alives, `ControlMaster=auto` with a `ControlPath` in a 0700
//!   directory under `$XDG_RUNTIME_DIR/mosaic/ssh/` and `ControlPersist=60`;
//!   never `StrictHostKeyChecking=no`/`accept-new` (host keys are the
//!   operator's decision);
//! * the quoting of the remote command line ([`quote_word`]): the remote
//!   login shell (bash, dash, zsh, fish) parses it, so only validated words
//!   travel there, each in POSIX single quotes, and the program is always
//!   `sh -s --`: the script itself arrives on stdin and is never parsed by
//!   the login shell;
//! * running one call with a hard deadline ([`call`]): the child is killed
//!   at the deadline (`MOSAIC_SSH_TIMEOUT_SECS`, default 20 s; until the
//!   runner grows its own deadlines, this wrapper is the one for ssh);
//! * turning ssh's failures into one line per host ([`HostError`]): the
//!   status (`UNREACHABLE`, `TIMEOUT`, `AUTH`, `NOT-INSTALLED`), the first
//!   useful line ssh printed, and for unknown or changed host keys the
//!   `ssh-keygen -R` / `ssh HOST` commands that fix it.

use crate::error::{Error, Result};
use crate::roster::ResolvedHost;
use crate::runner;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default hard deadline of one ssh call, seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 20;
/// Default `ConnectTimeout`, seconds.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// `ControlPersist`, seconds: a master outlives the command by this much.
pub const CONTROL_PERSIST_SECS: u64 = 60;

/// One host to reach: its roster name, ssh target and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// The roster's name for it (messages, JSON).
    pub name: String,
    /// `USER@HOST` or `HOST` (may be a `~/.ssh/config` alias).
    pub target: String,
    /// `-p PORT`, if the roster sets one.
    pub port: Option<u16>,
}

impl From<&ResolvedHost> for Dest {
    fn from(h: &ResolvedHost) -> Dest {
        Dest {
            name: h.name.clone(),
            target: h.target.clone(),
            port: h.port,
        }
    }
}

impl Dest {
    /// `ssh [-p PORT] TARGET`, for hints shown to the operator.
    pub fn hint(&self) -> String {
        match self.port {
            Some(p) => format!("ssh -p {p} {}", self.target),
            None => format!("ssh {}", self.target),
        }
    }
}

/// The seconds of an environment variable, else `default`.
fn env_secs(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// The hard deadline of one call (`MOSAIC_SSH_TIMEOUT_SECS`).
pub fn call_timeout() -> Duration {
    Duration::from_secs(env_secs("MOSAIC_SSH_TIMEOUT_SECS", DEFAULT_TIMEOUT_SECS))
}

/// `ConnectTimeout` (`MOSAIC_SSH_CONNECT_TIMEOUT_SECS`).
pub fn connect_timeout() -> u64 {
    env_secs(
        "MOSAIC_SSH_CONNECT_TIMEOUT_SECS",
        DEFAULT_CONNECT_TIMEOUT_SECS,
    )
}

/// The longest control directory whose sockets ssh can still bind: a
/// socket path is at most 107 bytes (`sun_path` with its NUL), and ssh
/// binds `DIR/%C` (40 hex digits) plus a `.` and 16 random characters
/// before renaming it into place.
pub const MAX_CONTROL_DIR_LEN: usize = 107 - 1 - 40 - 17;

/// Where the control sockets live: `$XDG_RUNTIME_DIR/mosaic/ssh`, else
/// (no `XDG_RUNTIME_DIR`, or one so long that ssh could not bind a socket
/// below it) `/tmp/mosaic-UID/ssh`.
pub fn control_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    control_dir_for(std::env::var_os("XDG_RUNTIME_DIR").as_deref(), uid)
}

/// [`control_dir`] for a given `XDG_RUNTIME_DIR` and uid (pure).
pub fn control_dir_for(runtime_dir: Option<&std::ffi::OsStr>, uid: u32) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    match runtime_dir.filter(|v| !v.is_empty()) {
        Some(d) if Path::new(d).is_absolute() => {
            let dir = Path::new(d).join("mosaic/ssh");
            if dir.as_os_str().as_bytes().len() <= MAX_CONTROL_DIR_LEN {
                return dir;
            }
        }
        _ => {}
    }
    PathBuf::from(format!("/tmp/mosaic-{uid}/ssh"))
}

/// Creates the control directory (and its `mosaic` parent) mode 0700 and
/// checks it is ours and private: another user's directory would let them
/// hijack the connection.
pub fn ensure_control_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(d, e)),
        }
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    // Both levels must be ours: whoever owns the parent could swap the
    // directory below it.
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        let m = std::fs::symlink_metadata(d).map_err(|e| Error::io(d, e))?;
        if !m.is_dir() || m.uid() != uid {
            return Err(Error::Input(format!(
                "{} is not a directory owned by you; remove it (mosaic keeps its ssh control sockets in {})",
                d.display(),
                dir.display()
            )));
        }
        if m.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(d, e))?;
        }
    }
    Ok(())
}

/// POSIX single quotes around a validated word. The remote login shell may
/// be bash, dash, zsh or fish: fish reads `\'` and `\\` inside single
/// quotes, zsh expands a bare leading `=`, so a word with `'`, `\` or a
/// control character is refused (mosaic only sends names it validated).
pub fn quote_word(w: &str) -> std::result::Result<String, String> {
    if w.chars().any(|c| c == '\'' || c == '\\' || c.is_control()) {
        return Err(format!(
            "internal: {w:?} cannot travel on a remote command line"
        ));
    }
    Ok(format!("'{w}'"))
}

/// The ssh options mosaic always passes (before the destination).
pub fn options(control_dir: &Path, connect_timeout: u64) -> Vec<String> {
    let o = |kv: String| ["-o".to_string(), kv];
    let mut v = Vec::new();
    for kv in [
        "BatchMode=yes".to_string(),
        format!("ConnectTimeout={connect_timeout}"),
        "ServerAliveInterval=5".to_string(),
        "ServerAliveCountMax=2".to_string(),
        "ControlMaster=auto".to_string(),
        format!("ControlPath={}/%C", control_dir.display()),
        format!("ControlPersist={CONTROL_PERSIST_SECS}"),
    ] {
        v.extend(o(kv));
    }
    v
}

/// `ssh OPTIONS [-p PORT] -T -- TARGET sh -s -- 'w1' 'w2' …`: the script
/// comes on stdin; only the validated `words` are on the command line.
pub fn argv(
    dest: &Dest,
    control_dir: &Path,
    connect_timeout: u64,
    words: &[String],
) -> std::result::Result<Vec<String>, String> {
    let mut v = vec!["ssh".to_string()];
    v.extend(options(control_dir, connect_timeout));
    if let Some(p) = dest.port {
        v.extend(["-p".to_string(), p.to_string()]);
    }
    v.extend(["-T".to_string(), "--".to_string(), dest.target.clone()]);
    v.extend(["sh", "-s", "--"].map(String::from));
    for w in words {
        v.push(quote_word(w)?);
    }
    Ok(v)
}

/// `ssh OPTIONS -O exit TARGET`: closes the master (tests, benches).
pub fn exit_master_argv(dest: &Dest, control_dir: &Path) -> Vec<String> {
    let mut v = vec!["ssh".to_string()];
    v.extend(options(control_dir, connect_timeout()));
    if let Some(p) = dest.port {
        v.extend(["-p".to_string(), p.to_string()]);
    }
    v.extend(["-O", "exit", "--"].map(String::from));
    v.push(dest.target.clone());
    v
}

/// How a host answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HostStatus {
    /// Answered.
    #[serde(rename = "ok")]
    Ok,
    /// No connection (refused, no route, unknown name).
    #[serde(rename = "UNREACHABLE")]
    Unreachable,
    /// No answer before the connect timeout or the call's deadline.
    #[serde(rename = "TIMEOUT")]
    Timeout,
    /// Connected, but the key or the host key was refused.
    #[serde(rename = "AUTH")]
    Auth,
    /// Reached, but tmux, `sh` or the fleet is not installed there.
    #[serde(rename = "NOT-INSTALLED")]
    NotInstalled,
}

impl HostStatus {
    /// As shown in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Ok => "ok",
            HostStatus::Unreachable => "UNREACHABLE",
            HostStatus::Timeout => "TIMEOUT",
            HostStatus::Auth => "AUTH",
            HostStatus::NotInstalled => "NOT-INSTALLED",
        }
    }
}

/// One host's failure: its status and one line naming the host and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// The status.
    pub status: HostStatus,
    /// One line.
    pub message: String,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first line of ssh's stderr worth showing: not the `@@@@` banner, not
/// a bare warning decoration.
pub fn useful_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find(|l| {
            let banner = l.starts_with('@') && l.ends_with('@');
            !(banner || l.starts_with("Warning: Permanently added"))
        })
        .map(str::to_string)
}

/// The text after `prefix` up to `until`, in the first line that has it.
fn between<'a>(text: &'a str, prefix: &str, until: &str) -> Option<&'a str> {
    let i = text.find(prefix)? + prefix.len();
    let rest = &text[i..];
    let j = rest.find(until)?;
    Some(rest[..j].trim())
}

/// Classifies a failed call (pure): ssh's exit code 255 and its stderr, or a
/// remote exit code, or the deadline.
pub fn classify(dest: &Dest, code: Option<i32>, stderr: &str, timed_out: bool) -> HostError {
    classify_within(dest, code, stderr, timed_out, call_timeout())
}

/// [`classify`] for a call whose deadline was `deadline`.
pub fn classify_within(
    dest: &Dest,
    code: Option<i32>,
    stderr: &str,
    timed_out: bool,
    deadline: Duration,
) -> HostError {
    let name = &dest.name;
    let line = useful_line(stderr).unwrap_or_else(|| match code {
        Some(c) => format!("exit status {c}"),
        None => "killed".to_string(),
    });
    let e = |status, message| HostError { status, message };
    if timed_out {
        return e(
            HostStatus::Timeout,
            format!(
                "host {name} ({}): no answer within {}s; check that it is up and reachable (`{} true`)",
                dest.target,
                deadline.as_secs(),
                dest.hint()
            ),
        );
    }
    let known_name = |s: &str| -> String {
        between(s, "Host key for ", " has changed")
            .or_else(|| between(s, "host key is known for ", " and you have"))
            .map(str::to_string)
            .unwrap_or_else(|| match dest.port {
                Some(p) if p != 22 => format!("[{}]:{p}", host_part(&dest.target)),
                _ => host_part(&dest.target).to_string(),
            })
    };
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("has changed and you have requested strict checking")
    {
        let kh = known_name(stderr);
        let file = between(stderr, "Offending ", "\n")
            .and_then(|l| l.split(" key in ").nth(1))
            .and_then(|f| f.rsplit_once(':').map(|(f, _)| f.to_string()));
        let fix = match file {
            Some(f) => format!("ssh-keygen -R '{kh}' -f {f}"),
            None => format!("ssh-keygen -R '{kh}'"),
        };
        return e(
            HostStatus::Auth,
            format!(
                "host {name} ({}): its host key has changed (a reinstalled host, or someone in between); if you expected it, run `{fix}`, then `{}` once to check and accept the new key",
                dest.target,
                dest.hint()
            ),
        );
    }
    if stderr.contains("host key is known for") || stderr.contains("Host key verification failed") {
        return e(
            HostStatus::Auth,
            format!(
                "host {name} ({}): its host key is not known here (`{}`); check the key and accept it with `{}` once (mosaic never accepts host keys by itself)",
                dest.target,
                known_name(stderr),
                dest.hint()
            ),
        );
    }
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("permission denied") || lower.contains("too many authentication failures") {
        return e(
            HostStatus::Auth,
            format!(
                "host {name} ({}): {line}; mosaic uses keys only (BatchMode): load the key into ssh-agent or set IdentityFile for it in ~/.ssh/config, then check with `{} true`",
                dest.target,
                dest.hint()
            ),
        );
    }
    if lower.contains("timed out") {
        return e(
            HostStatus::Timeout,
            format!(
                "host {name} ({}): {line}; check that it is up and reachable (`{} true`)",
                dest.target,
                dest.hint()
            ),
        );
    }
    if code == Some(255)
        || lower.contains("connection refused")
        || lower.contains("no route to host")
        || lower.contains("could not resolve")
        || lower.contains("network is unreachable")
        || lower.contains("connection closed")
        || lower.contains("connection reset")
    {
        return e(
            HostStatus::Unreachable,
            format!(
                "host {name} ({}): {line}; check that sshd runs there and the name and port are right (`{} true`)",
                dest.target,
                dest.hint()
            ),
        );
    }
    if code == Some(127) || code == Some(NOT_INSTALLED_EXIT) {
        return e(
            HostStatus::NotInstalled,
            format!(
                "host {name} ({}): {line}; install tmux and mosaic there and run `mosaic fleet install --as {name}` on it",
                dest.target
            ),
        );
    }
    e(
        HostStatus::Unreachable,
        format!("host {name} ({}): {line}", dest.target),
    )
}

/// The exit code the remote scripts use for "tmux or the fleet is not
/// installed here".
pub const NOT_INSTALLED_EXIT: i32 = 90;

fn host_part(target: &str) -> &str {
    target.rsplit_once('@').map(|(_, h)| h).unwrap_or(target)
}

/// What one finished call returned.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The remote script's exit code.
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Wall time of the call.
    pub elapsed: Duration,
}

/// Runs `script` on `dest` with `words` as its arguments, through the runner,
/// killing ssh at `deadline`. An ssh failure (exit 255, the deadline) is a
/// [`HostError`]; the script's own exit code is in the [`Reply`] unless it is
/// 127 (no `sh`) or [`NOT_INSTALLED_EXIT`].
pub fn call(
    dest: &Dest,
    script: &str,
    words: &[String],
    deadline: Duration,
) -> std::result::Result<Reply, HostError> {
    call_bytes(dest, script.as_bytes().to_vec(), None, words, deadline)
}

/// What a script prints on stdout once it is ready to read `data` from its
/// stdin (see [`call_bytes`]).
pub const READY_MARK: &str = "mosaic-ready\n";

/// [`call`] with raw bytes: the script on stdin, then, once the script has
/// printed [`READY_MARK`], `data` (for `fleet deploy`). The gate matters:
/// dash reads its script from a pipe in 8 KiB blocks and would swallow the
/// start of data already in the pipe; after the mark it is running the
/// command that reads stdin, and reads no more until that returns.
pub fn call_bytes(
    dest: &Dest,
    script: Vec<u8>,
    data: Option<Vec<u8>>,
    words: &[String],
    deadline: Duration,
) -> std::result::Result<Reply, HostError> {
    let started = Instant::now();
    let dir = control_dir();
    let fail = |m: String| HostError {
        status: HostStatus::Unreachable,
        message: format!("host {}: {m}", dest.name),
    };
    ensure_control_dir(&dir).map_err(|e| fail(e.to_string()))?;
    let argv = argv(dest, &dir, connect_timeout(), words).map_err(fail)?;
    let mut child = runner::spawn_piped(&argv).map_err(|e| fail(e.to_string()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&script);
        if let Some(data) = data {
            let _ = stdin.flush();
            if ready_rx.recv().is_ok() {
                let _ = stdin.write_all(&data);
            }
        }
        // stdin closes here: the remote sh sees the end of its script.
    });
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(mut r) = r {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        rx
    };
    let out_rx = {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(mut r) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let mut ready = Some(ready_tx);
                loop {
                    match r.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if ready.is_some()
                        && buf
                            .windows(READY_MARK.len())
                            .any(|w| w == READY_MARK.as_bytes())
                    {
                        let _ = ready.take().map(|t| t.send(()));
                    }
                }
                let _ = tx.send(buf);
            });
        }
        rx
    };
    let err_rx = pipe(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let end = started + deadline;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    // A background master could hold a pipe open: wait a little, not forever.
    let grace = Duration::from_millis(if timed_out { 100 } else { 1000 });
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let code = status.and_then(|s| s.code());
    if timed_out || code.is_none() || matches!(code, Some(255 | 127 | NOT_INSTALLED_EXIT)) {
        return Err(classify_within(dest, code, &stderr, timed_out, deadline));
    }
    Ok(Reply {
        code: code.unwrap_or(-1),
        stdout,
        stderr,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(port: Option<u16>) -> Dest {
        Dest {
            name: "build1".into(),
            target: "ops@build1.example.org".into(),
            port,
        }
    }

    #[test]
    fn argv_is_exact_and_never_accepts_host_keys() {
        let v = argv(
            &dest(Some(2222)),
            Path::new("/run/user/1000/mosaic/ssh"),
            5,
            &["ps".into(), "s:mosaic-fleet".into(), "=x".into()],
        )
        .unwrap();
        assert_eq!(
            v.join(" "),
            "ssh -o BatchMode=yes -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -o ControlMaster=auto -o ControlPath=/run/user/1000/mosaic/ssh/%C -o ControlPersist=60 -p 2222 -T -- ops@build1.example.org sh -s -- 'ps' 's:mosaic-fleet' '=x'"
        );
        assert!(!v.iter().any(|w| w.contains("StrictHostKeyChecking")));
        let v = argv(&dest(None), Path::new("/r"), 3, &[]).unwrap();
        assert!(!v.contains(&"-p".to_string()));
        assert_eq!(
            v[v.len() - 4..],
            ["ops@build1.example.org", "sh", "-s", "--"]
        );
    }

    #[test]
    fn control_dir_falls_back_when_ssh_could_not_bind_below_it() {
        use std::ffi::OsStr;
        let d = |x: Option<&str>| control_dir_for(x.map(OsStr::new), 1000);
        assert_eq!(
            d(Some("/run/user/1000")),
            Path::new("/run/user/1000/mosaic/ssh")
        );
        assert_eq!(d(None), Path::new("/tmp/mosaic-1000/ssh"));
        assert_eq!(d(Some("")), Path::new("/tmp/mosaic-1000/ssh"));
        assert_eq!(d(Some("run")), Path::new("/tmp/mosaic-1000/ssh"));
        // 49 bytes with /mosaic/ssh is the longest that fits; one more does not.
        let fits = format!("/{}", "r".repeat(MAX_CONTROL_DIR_LEN - 12));
        assert_eq!(d(Some(&fits)), Path::new(&fits).join("mosaic/ssh"));
        assert_eq!(d(Some(&fits)).as_os_str().len(), MAX_CONTROL_DIR_LEN);
        let long = format!("{fits}r");
        assert_eq!(d(Some(&long)), Path::new("/tmp/mosaic-1000/ssh"));
        // The socket ssh binds below the chosen dir fits in sun_path.
        let tmp = format!(
            "{}/{}.{}",
            d(Some(&fits)).display(),
            "0".repeat(40),
            "x".repeat(16)
        );
        assert_eq!(tmp.len(), 107);
    }

    #[test]
    fn words_fish_or_zsh_would_read_differently_are_refused() {
        assert_eq!(quote_word("=a").unwrap(), "'=a'");
        assert_eq!(quote_word("-n").unwrap(), "'-n'");
        assert_eq!(quote_word("$(x) `y` *").unwrap(), "'$(x) `y` *'");
        for bad in ["a'b", "a\\b", "a\nb", "\u{7f}"] {
            assert!(quote_word(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn changed_host_key_is_one_line_with_the_fix() {
        let stderr = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\nOffending ED25519 key in /home/op/.ssh/known_hosts:3\nHost key for build1 has changed and you have requested strict checking.\nHost key verification failed.\n";
        let e = classify(&dest(None), Some(255), stderr, false);
        assert_eq!(e.status, HostStatus::Auth);
        assert!(!e.message.contains('\n'));
        assert!(
            e.message
                .contains("ssh-keygen -R 'build1' -f /home/op/.ssh/known_hosts"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("ssh ops@build1.example.org"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("@@@"));
    }

    #[test]
    fn failures_get_their_status() {
        let d = dest(Some(2222));
        let c = |code, err: &str| classify(&d, code, err, false).status;
        assert_eq!(
            c(
                Some(255),
                "ssh: connect to host x port 2222: Connection refused\n"
            ),
            HostStatus::Unreachable
        );
        assert_eq!(
            c(
                Some(255),
                "ssh: connect to host x port 2222: Connection timed out\n"
            ),
            HostStatus::Timeout
        );
        assert_eq!(
            c(Some(255), "ops@x: Permission denied (publickey).\n"),
            HostStatus::Auth
        );
        assert_eq!(
            c(Some(255), "No ED25519 host key is known for [x]:2222 and you have requested strict checking.\nHost key verification failed.\n"),
            HostStatus::Auth
        );
        assert_eq!(c(Some(127), "sh: not found\n"), HostStatus::NotInstalled);
        assert_eq!(classify(&d, None, "", true).status, HostStatus::Timeout);
        let e = classify(&d, Some(255), "No ED25519 host key is known for [x]:2222 and you have requested strict checking.\nHost key verification failed.\n", false);
        assert!(
            e.message.contains("[x]:2222")
                && e.message.contains("ssh -p 2222 ops@build1.example.org"),
            "{}",
            e.message
        );
    }
}
