//! Throw-away worlds for the migration matrix: a private temp directory per
//! scenario holding a user HOME (with `.config/mosaic` as the framework home
//! and `.config/systemd/user` as the active unit dir), a state dir, a private
//! `TMUX_TMPDIR` and `XDG_RUNTIME_DIR`, and a `systemctl` wrapper that logs
//! its argv. Also the emulated releases, running the real binary with a
//! clean environment and a time limit, and tree snapshots compared byte for
//! byte.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A temp directory removed on drop (never following symlinks), unless
/// `MOSAIC_MATRIX_KEEP=1` asks to keep it for debugging.
pub struct Tmp(PathBuf);

impl Tmp {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Result<Tmp> {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = base.join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(Tmp(p))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        if std::env::var_os("MOSAIC_MATRIX_KEEP").is_some_and(|v| v == "1") {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An emulated release: a framework tree and its version.
pub struct Release {
    /// Keeps the tree alive.
    pub tmp: Tmp,
    /// `MOSAIC_FRAMEWORK_VERSION`.
    pub version: String,
}

impl Release {
    /// The tree (`MOSAIC_FRAMEWORK_DIR`).
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }

    /// The bytes of one shipped file.
    pub fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir().join(rel)).unwrap_or_else(|e| panic!("release file {rel}: {e}"))
    }

    /// Whether the release ships `rel`.
    pub fn ships(&self, rel: &str) -> bool {
        self.dir().join(rel).is_file()
    }

    /// Every shipped file: path → (mode, bytes).
    pub fn files(&self) -> Result<BTreeMap<String, (u32, Vec<u8>)>> {
        let mut out = BTreeMap::new();
        let root = self.dir();
        for e in walkdir::WalkDir::new(&root).min_depth(1) {
            let e = e?;
            if !e.file_type().is_file() {
                continue;
            }
            let rel = e.path().strip_prefix(&root)?.to_string_lossy().into_owned();
            let mode = if e.metadata()?.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            out.insert(rel, (mode, std::fs::read(e.path())?));
        }
        Ok(out)
    }
}

/// What the whole matrix shares: the binary and the two releases.
pub struct Ctx {
    /// The debug `mosaic` binary.
    pub bin: PathBuf,
    /// The previous release (derived from the repo's framework).
    pub prev: Release,
    /// The next release (a copy of the repo's framework).
    pub next: Release,
    /// `PATH` for every command.
    pub path_env: OsString,
    /// The real `systemctl`, if installed.
    pub systemctl: Option<PathBuf>,
    /// `MOSAIC_REQUIRE_REAL=1`: a missing real tool fails instead of skipping.
    pub require_real: bool,
    /// Private mount namespaces are possible (root, `unshare -m` allowed).
    pub can_unshare: bool,
}

/// What one command did.
pub struct Out {
    /// The command, for messages.
    pub what: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Signal that killed it.
    pub signal: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Fails unless the exit code is `code`.
    pub fn expect(&self, code: i32) -> Result<&Out> {
        if self.code != Some(code) {
            bail!(
                "`{}` exited {}, expected {code}; stdout: {:?}; stderr: {:?}",
                self.what,
                self.status_text(),
                clip(&self.stdout),
                clip(&self.stderr)
            );
        }
        Ok(self)
    }

    /// How it ended, for messages.
    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("by signal {s}"),
            _ => "somehow".to_string(),
        }
    }

    /// Lines of stdout reporting a change (human output).
    pub fn change_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| {
                [
                    "created ",
                    "updated ",
                    "deleted ",
                    "seeded ",
                    "migrated ",
                    "conflict ",
                    "kept (yours) ",
                    "blocked ",
                ]
                .iter()
                .any(|v| l.starts_with(v))
            })
            .collect()
    }

    /// Fails unless stdout has a line starting with `prefix` (e.g.
    /// `deleted docs/old-notes.md`).
    pub fn has_line(&self, prefix: &str) -> Result<()> {
        if !self.stdout.lines().any(|l| l.starts_with(prefix)) {
            bail!(
                "`{}` printed no line starting {prefix:?}; stdout: {:?}",
                self.what,
                clip(&self.stdout)
            );
        }
        Ok(())
    }
}

/// Shortens long output for a one-line reason.
pub fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 600 {
        let head: String = s.chars().take(600).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

/// Runs `cmd` with stdout/stderr into files under `scratch`, killing it after
/// `limit`.
pub fn run_limited(cmd: Command, what: String, scratch: &Path, limit: Duration) -> Result<Out> {
    let (status, stdout, stderr) =
        crate::proc::run_to_files(cmd, &what, scratch, limit, Duration::from_millis(10))?;
    Ok(Out {
        what,
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
    })
}

/// One throw-away world.
pub struct World {
    tmp: Tmp,
    /// `MOSAIC_SYSTEMCTL` for this world's mosaic runs (default: the logging
    /// wrapper in front of the real systemctl).
    pub systemctl: OsString,
    /// Extra environment for this world's mosaic runs.
    pub extra_env: Vec<(String, OsString)>,
}

impl World {
    /// A fresh world whose `systemctl` wrapper execs the real systemctl (or
    /// fails when there is none).
    pub fn new(ctx: &Ctx) -> Result<World> {
        let tmp = Tmp::new("mosaic-matrix")?;
        let mut w = World {
            tmp,
            systemctl: OsString::new(),
            extra_env: Vec::new(),
        };
        for d in [
            w.user(),
            w.state(),
            w.tmux_tmpdir(),
            w.runtime(),
            w.bin_dir(),
        ] {
            std::fs::create_dir_all(&d)?;
        }
        std::fs::set_permissions(w.runtime(), std::fs::Permissions::from_mode(0o700))?;
        std::fs::set_permissions(w.tmux_tmpdir(), std::fs::Permissions::from_mode(0o700))?;
        let tail = match &ctx.systemctl {
            Some(real) => format!("exec {} \"$@\"\n", sh_quote(&real.to_string_lossy())),
            None => "echo 'systemctl: not installed' >&2\nexit 1\n".to_string(),
        };
        w.systemctl = w.write_wrapper("systemctl", &tail)?.into_os_string();
        Ok(w)
    }

    /// Writes `bin/NAME`, a script that logs its argv to
    /// [`World::systemctl_log`] and then runs `tail`.
    pub fn write_wrapper(&self, name: &str, tail: &str) -> Result<PathBuf> {
        let p = self.bin_dir().join(name);
        let log = sh_quote(&self.systemctl_log().to_string_lossy());
        std::fs::write(
            &p,
            format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n{tail}"),
        )?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(p)
    }

    /// The world's root.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }
    /// `HOME`.
    pub fn user(&self) -> PathBuf {
        self.root().join("user")
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
        self.root().join("state")
    }
    /// `TMUX_TMPDIR`.
    pub fn tmux_tmpdir(&self) -> PathBuf {
        self.root().join("tmux")
    }
    /// `XDG_RUNTIME_DIR`.
    pub fn runtime(&self) -> PathBuf {
        self.root().join("runtime")
    }
    /// Wrapper scripts.
    pub fn bin_dir(&self) -> PathBuf {
        self.root().join("bin")
    }
    /// Where the systemctl wrappers log their argv, one line per call.
    pub fn systemctl_log(&self) -> PathBuf {
        self.root().join("systemctl.log")
    }
    /// `H/REL`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home().join(rel)
    }

    /// The environment every command of this world gets (after `env_clear`).
    pub fn env(&self, ctx: &Ctx) -> Vec<(String, OsString)> {
        let p = |p: PathBuf| p.into_os_string();
        let mut v = vec![
            ("PATH".to_string(), ctx.path_env.clone()),
            ("HOME".into(), p(self.user())),
            ("MOSAIC_HOME".into(), p(self.home())),
            ("MOSAIC_STATE_DIR".into(), p(self.state())),
            ("XDG_CONFIG_HOME".into(), p(self.config())),
            ("XDG_STATE_HOME".into(), p(self.user().join(".local/state"))),
            ("XDG_RUNTIME_DIR".into(), p(self.runtime())),
            ("TMUX_TMPDIR".into(), p(self.tmux_tmpdir())),
            ("NO_COLOR".into(), "1".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("MOSAIC_LOCK_TIMEOUT_SECS".into(), "10".into()),
        ];
        v.extend(self.extra_env.iter().cloned());
        v
    }

    /// `mosaic ARGS…` against `release` (None: the embedded framework).
    pub fn mosaic(
        &self,
        ctx: &Ctx,
        release: Option<&Release>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Out> {
        let mut cmd = Command::new(&ctx.bin);
        cmd.args(args);
        self.prepare(ctx, &mut cmd, release, env);
        let what = format!(
            "{}mosaic {}",
            env.iter()
                .map(|(k, v)| format!("{k}={v} "))
                .collect::<String>(),
            args.join(" ")
        );
        run_limited(cmd, what, self.root(), Duration::from_secs(60))
    }

    /// Applies this world's environment (and a release) to `cmd`.
    pub fn prepare(
        &self,
        ctx: &Ctx,
        cmd: &mut Command,
        release: Option<&Release>,
        env: &[(&str, &str)],
    ) {
        cmd.env_clear();
        for (k, v) in self.env(ctx) {
            cmd.env(k, v);
        }
        cmd.env("MOSAIC_SYSTEMCTL", &self.systemctl);
        if let Some(r) = release {
            cmd.env("MOSAIC_FRAMEWORK_DIR", r.dir())
                .env("MOSAIC_FRAMEWORK_VERSION", &r.version);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
    }

    /// `mosaic install` of `release`, which must succeed.
    pub fn install(&self, ctx: &Ctx, release: &Release) -> Result<Out> {
        let out = self.mosaic(ctx, Some(release), &["install"], &[])?;
        out.expect(0)?;
        Ok(out)
    }

    /// `mosaic update --offline` to `release`.
    pub fn update(&self, ctx: &Ctx, release: &Release) -> Result<Out> {
        self.mosaic(ctx, Some(release), &["update", "--offline"], &[])
    }

    /// Writes `H/REL` (creating parents) with `mode`.
    pub fn write(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<()> {
        write_file(&self.path(rel), bytes, mode)
    }

    /// Reads `H/REL`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        std::fs::read(self.path(rel)).with_context(|| format!("H/{rel} cannot be read"))
    }

    /// The systemctl wrapper's log lines.
    pub fn systemctl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.systemctl_log())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many `daemon-reload`s the wrapper saw.
    pub fn daemon_reloads(&self) -> usize {
        self.systemctl_calls()
            .iter()
            .filter(|l| l.split_whitespace().any(|w| w == "daemon-reload"))
            .count()
    }

    /// Snapshot of H (without the lock), the active unit dir and the state dir.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut s = Snapshot::new();
        snapshot_into(&mut s, "H/", &self.home())?;
        snapshot_into(&mut s, "units/", &self.units())?;
        snapshot_into(&mut s, "state/", &self.state())?;
        s.remove("H/.mosaic/lock");
        // The hash cache of an emulated release tree (MOSAIC_FRAMEWORK_DIR),
        // not part of the install.
        s.retain(|k, _| !k.starts_with("state/source-cache"));
        // The manifest as what it says, without the stat fingerprints it
        // caches: a no-op records those once the files the last run wrote
        // are no longer racily clean, which depends on the clock, not on
        // what the run did.
        if let Some(node) = s.get_mut("H/.mosaic/manifest.json") {
            let path = self.home().join(".mosaic/manifest.json");
            if let Ok(mut m) = mosaic_engine::manifest::Manifest::parse(&path, &node.bytes) {
                for e in m.files.values_mut().chain(m.units.values_mut()) {
                    e.observed = None;
                }
                node.bytes = m.to_json();
            }
        }
        Ok(s)
    }

    /// (mtime, mtime_nsec, inode) of every entry of H, without the lock.
    pub fn stamps(&self) -> Result<BTreeMap<String, (i64, i64, u64)>> {
        let root = self.home();
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(&root).min_depth(1) {
            let e = e?;
            let rel = e.path().strip_prefix(&root)?.to_string_lossy().into_owned();
            if rel == ".mosaic/lock" {
                continue;
            }
            let m = std::fs::symlink_metadata(e.path())?;
            out.insert(rel, (m.mtime(), m.mtime_nsec(), m.ino()));
        }
        Ok(out)
    }

    /// Runs `update --offline` again and fails unless it exits `code` and
    /// changes nothing (H, active units, state: path, type, mode, bytes).
    pub fn second_update_changes_nothing(
        &self,
        ctx: &Ctx,
        release: &Release,
        code: i32,
    ) -> Result<Out> {
        let before = self.snapshot()?;
        let out = self.update(ctx, release)?;
        out.expect(code).context("the immediate second update")?;
        let after = self.snapshot()?;
        same(&before, &after, "the immediate second update")?;
        if code == 0 {
            let lines = out.change_lines();
            let noisy: Vec<_> = lines
                .iter()
                .filter(|l| !l.starts_with("kept (yours) "))
                .collect();
            if !noisy.is_empty() {
                bail!("the immediate second update reported changes: {noisy:?}");
            }
        }
        Ok(out)
    }
}

/// Writes a file, creating its parents, with `mode`.
pub fn write_file(p: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    std::fs::create_dir_all(p.parent().expect("a parent"))?;
    std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Quotes for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub use crate::snapshot::{snapshot_into, Snapshot};

/// Snapshot of one tree.
pub fn snapshot(root: &Path) -> Result<Snapshot> {
    let mut s = Snapshot::new();
    snapshot_into(&mut s, "", root)?;
    Ok(s)
}

/// Fails naming the differing paths when two snapshots differ.
pub fn same(a: &Snapshot, b: &Snapshot, what: &str) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| match (a.get(k), b.get(k)) {
            (Some(_), None) => format!("{k} (gone)"),
            (None, Some(_)) => format!("{k} (new)"),
            (Some(x), Some(y)) if x.kind != y.kind => format!("{k} ({} → {})", x.kind, y.kind),
            (Some(x), Some(y)) if x.mode != y.mode => {
                format!("{k} (mode {:o} → {:o})", x.mode, y.mode)
            }
            _ => format!("{k} (content)"),
        })
        .take(8)
        .collect();
    bail!("{what} changed the tree: {}", diffs.join(", "))
}

/// Fails unless `path` holds exactly `expected` with `mode` (if given).
pub fn check_file(path: &Path, expected: &[u8], mode: Option<u32>, what: &str) -> Result<()> {
    let m = std::fs::symlink_metadata(path)
        .with_context(|| format!("{what}: {} is missing", path.display()))?;
    if !m.file_type().is_file() {
        bail!("{what}: {} is not a regular file", path.display());
    }
    let got = std::fs::read(path)?;
    if got != expected {
        bail!(
            "{what}: {} differs: got {:?}, expected {:?}",
            path.display(),
            clip(&String::from_utf8_lossy(&got)),
            clip(&String::from_utf8_lossy(expected))
        );
    }
    if let Some(mode) = mode {
        let have = m.permissions().mode() & 0o7777;
        if have != mode {
            bail!(
                "{what}: {} has mode {have:o}, expected {mode:o}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Fails unless nothing (not even a dangling link) is at `path`.
pub fn check_absent(path: &Path, what: &str) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        bail!("{what}: {} should not exist", path.display());
    }
    Ok(())
}

/// The newest backup directory of a world (`STATE/backups/*`).
pub fn newest_backup(w: &World) -> Result<PathBuf> {
    let dir = w.state().join("backups");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no backups dir {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    all.sort();
    all.pop().context("no backup was made")
}
