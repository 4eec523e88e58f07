//! The throw-away world of one crash-test scenario: a fixed root `W` holding
//! a user HOME (`W/user`, with `.config/mosaic` as the framework home `H` and
//! `.config/systemd/user` as the active unit dir), a state dir (`W/state`),
//! private XDG runtime and tmux dirs, and stub `systemctl`/`tmux` programs.
//!
//! Every trial starts from the scenario's template by [`reset`], which makes
//! `W` byte-identical to the template *in place*: directories present in both
//! keep their inode (so the home keeps its identity — resolved path, device
//! and inode — and its journal and backups stay its own), files are copied
//! afresh with their mode and mtime. The path of `W` never changes within a
//! scenario, because the product records absolute paths (journal, backups).
//!
//! The product is only ever driven through its CLI binary.

use anyhow::{bail, Context, Result};

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long one command may take before it is killed and reported.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What every scenario shares.
pub struct Ctx {
    /// The `mosaic` binary (`cargo build -p mosaic`).
    pub bin: PathBuf,
    /// `strace`.
    pub strace: PathBuf,
    /// The previous release's framework tree.
    pub prev: PathBuf,
    /// The next release's framework tree.
    pub next: PathBuf,
    /// `PATH` for every command.
    pub path_env: OsString,
    /// Print every trial.
    pub verbose: bool,
}

/// The framework source a command runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// The previous release (1.0.0).
    Prev,
    /// The next release (1.1.0).
    Next,
}

/// Version of the previous release.
pub const PREV_VERSION: &str = "1.0.0";
/// Version of the next release.
pub const NEXT_VERSION: &str = "1.1.0";

/// One throw-away world at a fixed path.
pub struct World {
    /// `W`.
    pub root: PathBuf,
    /// Command output files and traces (outside `W`, so never in a snapshot).
    pub scratch: PathBuf,
}

/// What one command did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The command, for messages.
    pub what: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// How it ended, for messages.
    pub fn status_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit {c}"),
            None => "killed".to_string(),
        }
    }

    /// One line for a failure message: status and the first stderr line.
    pub fn brief(&self) -> String {
        let first = self
            .stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if first.is_empty() {
            format!("`{}` {}", self.what, self.status_text())
        } else {
            format!("`{}` {}: {}", self.what, self.status_text(), clip(first))
        }
    }

    /// Fails unless it exited `code`.
    pub fn expect(&self, code: i32) -> Result<&Out> {
        if self.code != Some(code) {
            bail!("{} (expected exit {code})", self.brief());
        }
        Ok(self)
    }
}

/// Shortens a message.
pub fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

impl World {
    /// Creates `root` (which must not exist) with its skeleton and stubs.
    pub fn create(root: PathBuf, scratch: PathBuf) -> Result<World> {
        let w = World { root, scratch };
        std::fs::create_dir(&w.root)
            .with_context(|| format!("cannot create {}", w.root.display()))?;
        for d in [w.user(), w.state(), w.bin(), w.runtime(), w.tmux_tmpdir()] {
            std::fs::create_dir_all(&d)?;
        }
        std::fs::create_dir_all(&w.scratch)?;
        std::fs::set_permissions(w.runtime(), std::fs::Permissions::from_mode(0o700))?;
        std::fs::set_permissions(w.tmux_tmpdir(), std::fs::Permissions::from_mode(0o700))?;
        // systemctl: a stub that succeeds. The crash test is about the file
        // system, not systemd: units are written for real, systemd never
        // sees them.
        write_file(
            &w.bin().join("systemctl"),
            b"#!/bin/sh\n# crashtest stub: succeeds, does nothing (the crash test is about the file system, not systemd)\nexit 0\n",
            0o755,
        )?;
        // tmux: a stub that fails, like a machine without a tmux server.
        write_file(
            &w.bin().join("tmux"),
            b"#!/bin/sh\n# crashtest stub: no tmux server\nexit 1\n",
            0o755,
        )?;
        Ok(w)
    }

    /// `HOME`.
    pub fn user(&self) -> PathBuf {
        self.root.join("user")
    }
    /// `XDG_CONFIG_HOME`.
    pub fn config(&self) -> PathBuf {
        self.user().join(".config")
    }
    /// The framework home `H`.
    pub fn home(&self) -> PathBuf {
        self.config().join("mosaic")
    }
    /// The active systemd user unit dir.
    pub fn units(&self) -> PathBuf {
        self.config().join("systemd/user")
    }
    /// `MOSAIC_STATE_DIR`.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    /// Stub programs.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    /// `XDG_RUNTIME_DIR`.
    pub fn runtime(&self) -> PathBuf {
        self.root.join("runtime")
    }
    /// `TMUX_TMPDIR`.
    pub fn tmux_tmpdir(&self) -> PathBuf {
        self.root.join("tmux")
    }
    /// `H/REL`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home().join(rel)
    }

    /// The environment of every command of this world (after `env_clear`).
    pub fn env(&self, ctx: &Ctx, rel: Rel) -> Vec<(&'static str, OsString)> {
        let p = |p: PathBuf| p.into_os_string();
        let (dir, version) = match rel {
            Rel::Prev => (&ctx.prev, PREV_VERSION),
            Rel::Next => (&ctx.next, NEXT_VERSION),
        };
        vec![
            ("PATH", ctx.path_env.clone()),
            ("HOME", p(self.user())),
            ("XDG_CONFIG_HOME", p(self.config())),
            ("XDG_STATE_HOME", p(self.user().join(".local/state"))),
            ("XDG_RUNTIME_DIR", p(self.runtime())),
            ("TMUX_TMPDIR", p(self.tmux_tmpdir())),
            ("MOSAIC_HOME", p(self.home())),
            ("MOSAIC_STATE_DIR", p(self.state())),
            ("MOSAIC_SYSTEMCTL", p(self.bin().join("systemctl"))),
            ("MOSAIC_TMUX", p(self.bin().join("tmux"))),
            ("MOSAIC_FRAMEWORK_DIR", dir.clone().into_os_string()),
            ("MOSAIC_FRAMEWORK_VERSION", version.into()),
            ("MOSAIC_LOCK_TIMEOUT_SECS", "10".into()),
            ("NO_COLOR", "1".into()),
            ("LANG", "C.UTF-8".into()),
        ]
    }

    /// A command for `program ARGS…` with this world's environment.
    pub fn command(&self, ctx: &Ctx, rel: Rel, program: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear().current_dir(&self.root);
        for (k, v) in self.env(ctx, rel) {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `mosaic ARGS…`.
    pub fn mosaic(&self, ctx: &Ctx, rel: Rel, args: &[String]) -> Result<Out> {
        let cmd = self.command(ctx, rel, &ctx.bin, args);
        run_limited(cmd, format!("mosaic {}", args.join(" ")), &self.scratch)
    }

    /// Like [`World::mosaic`] with `&str` arguments, which must exit 0.
    pub fn must(&self, ctx: &Ctx, rel: Rel, args: &[&str]) -> Result<Out> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = self.mosaic(ctx, rel, &args)?;
        out.expect(0)?;
        Ok(out)
    }

    /// Writes `H/REL` (creating parents) with `mode`.
    pub fn write(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<()> {
        write_file(&self.path(rel), bytes, mode)
    }

    /// Replaces the world's tokens in `s` (paths → `$H`, `$STATE`, …).
    pub fn normalize(&self, ctx: &Ctx, s: &str) -> String {
        let mut pairs = [
            (self.home(), "$H"),
            (self.units(), "$UNITS"),
            (self.state(), "$STATE"),
            (self.root.clone(), "$W"),
            (ctx.prev.clone(), "$PREV"),
            (ctx.next.clone(), "$NEXT"),
        ]
        .map(|(p, t)| (p.to_string_lossy().into_owned(), t));
        pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let mut s = s.to_string();
        for (p, t) in pairs {
            s = s.replace(&p, t);
        }
        normalize_ids(&s)
    }
}

/// Replaces the run-specific parts of names: temp-file tags
/// (`.mosaic-tmp-PID-…` → `.mosaic-tmp-*`), backup ids
/// (`20261201T232025.565777Z-1.0.0-1.1.0` → `<ID>`) and hashes
/// (`journal-7bbd71b337e9a6d1.json` → `journal-<hash>.json`).
pub fn normalize_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    let stop = |c: u8| matches!(c, b'/' | b'"' | b'\'' | b' ' | b',' | b'>' | b')' | b'\n');
    while i < b.len() {
        if s[i..].starts_with(".mosaic-tmp-") {
            out.push_str(".mosaic-tmp-*");
            i += ".mosaic-tmp-".len();
            while i < b.len() && !stop(b[i]) {
                i += 1;
            }
            continue;
        }
        // YYYYMMDDTHHMMSS…: a backup id (or another time stamp) up to the
        // end of its path component.
        if i + 15 <= b.len()
            && b[i..i + 8].iter().all(u8::is_ascii_digit)
            && b[i + 8] == b'T'
            && b[i + 9..i + 15].iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            out.push_str("<ID>");
            i += 15;
            while i < b.len() && !stop(b[i]) {
                i += 1;
            }
            continue;
        }
        // 16 or more lowercase hex digits: a hash in a name (the journal is
        // keyed by a hash of the home's path, which has the run's pid in it).
        let hex = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            .count();
        if hex >= 16 && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            out.push_str("<hash>");
            i += hex;
            continue;
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Runs `cmd` with stdout/stderr into files under `scratch`, killing it
/// after [`LIMIT`].
pub fn run_limited(cmd: Command, what: String, scratch: &Path) -> Result<Out> {
    let (status, stdout, stderr) =
        crate::proc::run_to_files(cmd, &what, scratch, LIMIT, Duration::from_millis(2))?;
    // strace re-raises the tracee's fatal signal on itself, or exits 128+N.
    let code = match (status.code(), status.signal()) {
        (Some(c), _) if c > 128 => None,
        (Some(c), _) => Some(c),
        _ => None,
    };
    Ok(Out {
        what,
        code,
        stdout,
        stderr,
    })
}

/// Writes a file, creating its parents, with `mode`.
pub fn write_file(p: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    std::fs::create_dir_all(p.parent().expect("a parent"))?;
    std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Makes `dst` (created if missing) an exact copy of `src`: types, modes,
/// bytes, link targets and mtimes. Directories present in both are kept (same
/// inode); everything else in `dst` is removed first. Never follows a link.
pub fn reset(dst: &Path, src: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => purge(dst, src)?,
        Ok(_) => bail!("{} is not a directory", dst.display()),
        Err(_) => std::fs::create_dir_all(dst)?,
    }
    copy_into(src, dst)?;
    let m = std::fs::symlink_metadata(src)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    set_mtime(dst, &m)
}

fn purge(d: &Path, s: &Path) -> Result<()> {
    for e in std::fs::read_dir(d).with_context(|| format!("cannot read {}", d.display()))? {
        let e = e?;
        let dp = e.path();
        let sp = s.join(e.file_name());
        let dm = std::fs::symlink_metadata(&dp)?;
        let keep_dir = dm.is_dir() && std::fs::symlink_metadata(&sp).is_ok_and(|m| m.is_dir());
        if keep_dir {
            // Writable for us while we work in it (modes are put back later).
            std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(0o700))?;
            purge(&dp, &sp)?;
        } else if dm.is_dir() {
            make_writable(&dp)?;
            std::fs::remove_dir_all(&dp)
                .with_context(|| format!("cannot remove {}", dp.display()))?;
        } else {
            std::fs::remove_file(&dp).with_context(|| format!("cannot remove {}", dp.display()))?;
        }
    }
    Ok(())
}

fn make_writable(dir: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(dir) {
        let e = e?;
        if e.file_type().is_dir() {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

fn copy_into(src: &Path, dst: &Path) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("cannot read {}", src.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let sp = e.path();
        let dp = dst.join(e.file_name());
        let m = std::fs::symlink_metadata(&sp)?;
        let ft = m.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&sp)?, &dp)?;
        } else if ft.is_dir() {
            if std::fs::symlink_metadata(&dp).is_err() {
                std::fs::create_dir(&dp)?;
            }
            copy_into(&sp, &dp)?;
            std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        } else if ft.is_file() {
            std::fs::copy(&sp, &dp).with_context(|| format!("cannot copy {}", sp.display()))?;
            std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        } else {
            // Sockets, fifos: not part of a world.
            continue;
        }
        set_mtime(&dp, &m)?;
    }
    Ok(())
}

fn set_mtime(p: &Path, m: &std::fs::Metadata) -> Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())?;
    let times = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    // SAFETY: a valid NUL-terminated path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        bail!(
            "cannot set the times of {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub use crate::snapshot::{snapshot_into, Node, Snapshot};

/// What the product installs and the operator sees: `H` (without the
/// product's own `.mosaic/` bookkeeping) and the active unit dir, without
/// temp files (litter is reported on its own).
pub fn tree(w: &World) -> Result<Snapshot> {
    let mut s = Snapshot::new();
    snapshot_into(&mut s, "H/", &w.home())?;
    snapshot_into(&mut s, "UNITS/", &w.units())?;
    s.retain(|k, _| k != "H/.mosaic" && !k.starts_with("H/.mosaic/") && !k.contains(".mosaic-tmp"));
    Ok(s)
}

/// The keys at which two snapshots differ, each with how (at most `max`).
pub fn diff(a: &Snapshot, b: &Snapshot, max: usize) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| describe_change(k, a.get(k), b.get(k)))
        .take(max)
        .collect()
}

/// `KEY (how)` for one entry that is `a` in the first snapshot and `b` in
/// the second.
pub fn describe_change(k: &str, a: Option<&Node>, b: Option<&Node>) -> String {
    match (a, b) {
        (Some(_), None) => format!("{k} (missing)"),
        (None, Some(_)) => format!("{k} (extra)"),
        (Some(x), Some(y)) if x.kind != y.kind => format!("{k} ({} → {})", x.kind, y.kind),
        (Some(x), Some(y)) if x.mode != y.mode => {
            format!("{k} (mode {:o} → {:o})", x.mode, y.mode)
        }
        (Some(x), Some(y)) => format!("{k} (content {} → {} bytes)", x.bytes.len(), y.bytes.len()),
        (None, None) => format!("{k} (?)"),
    }
}
