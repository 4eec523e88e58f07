//! Shared integration-test harness (owned by the framework-tree work, issue 3;
//! other test files reuse it with `mod common;`).
//!
//! * [`require_real`] / [`skip`]: tests that need tmux or systemd skip with a
//!   printed reason, and fail instead when `MOSAIC_REQUIRE_REAL=1` (CI).
//! * [`TmuxEnv`]: a private `TMUX_TMPDIR`; every tmux server started in it is
//!   killed on drop, so a test never sees or touches another test's server or
//!   the operator's.
//! * [`UserManager`]: a private `systemd --user` instance in its own mount
//!   namespace (`/run` is a tmpfs there), with a private `HOME`,
//!   `XDG_RUNTIME_DIR` and `TMUX_TMPDIR`; reachable from outside through
//!   `$XDG_RUNTIME_DIR/systemd/private`. Needs root and `unshare`. Managers
//!   are serialised within one test binary (they share the cgroup tree).
//! * small helpers: [`framework_dir`], [`install_framework`], [`copy_tree`],
//!   [`wait_until`], [`run_with_timeout`], [`which`].
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `MOSAIC_REQUIRE_REAL=1`: a missing tmux/systemd/shellcheck is a failure.
pub fn require_real() -> bool {
    std::env::var("MOSAIC_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

/// Print `SKIP: reason` to stderr; panic instead when [`require_real`].
pub fn skip(reason: &str) {
    if require_real() {
        panic!("MOSAIC_REQUIRE_REAL=1 and this test cannot run: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// The repository's `framework/` directory.
pub fn framework_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("framework")
}

/// Find `prog` on `PATH`.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(prog))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Effective uid, read from `/proc/self/status`.
pub fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Poll `f` every 100 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run `cmd` (stdin null, output captured); kill it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out_pipe = child.stdout.take().expect("stdout piped");
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Copy a directory tree; regular files keep their permission bits.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())) {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ty.is_file() {
            // std::fs::copy copies the permission bits too.
            std::fs::copy(entry.path(), &to)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Copy the repository's `framework/` into `home` (the framework home `H`),
/// the way an install would lay it out, exec bits included.
pub fn install_framework(home: &Path) {
    copy_tree(&framework_dir(), home);
}

/// Remove every `MOSAIC_*` variable inherited from the caller (except
/// `MOSAIC_REQUIRE_REAL`) and the variables that would point tmux or
/// systemctl at the caller's own servers.
pub fn scrub_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("MOSAIC_") && k != "MOSAIC_REQUIRE_REAL" {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
}

/// Kill every tmux server whose socket lives under `tmpdir/tmux-*/`.
pub fn kill_tmux_servers(tmpdir: &Path) {
    let Ok(dirs) = std::fs::read_dir(tmpdir) else {
        return;
    };
    for dir in dirs.flatten() {
        if !dir.file_name().to_string_lossy().starts_with("tmux-") {
            continue;
        }
        let Ok(sockets) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for sock in sockets.flatten() {
            if !sock.file_type().is_ok_and(|t| t.is_socket()) {
                continue;
            }
            let mut cmd = Command::new("tmux");
            scrub_env(&mut cmd)
                .env("TMUX_TMPDIR", tmpdir)
                .arg("-S")
                .arg(sock.path())
                .arg("kill-server");
            let _ = run_with_timeout(&mut cmd, Duration::from_secs(5));
        }
    }
}

/// A private tmux socket directory. Dropping it kills every server in it.
pub struct TmuxEnv {
    dir: tempfile::TempDir,
}

impl TmuxEnv {
    /// `None` (after [`skip`]) when tmux is not installed.
    pub fn new() -> Option<TmuxEnv> {
        if which("tmux").is_none() {
            skip("tmux is not installed");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("mosaic-tmux")
            .tempdir()
            .expect("tempdir");
        Some(TmuxEnv { dir })
    }

    /// The `TMUX_TMPDIR` of this environment.
    pub fn tmpdir(&self) -> &Path {
        self.dir.path()
    }

    /// `tmux [-L SOCKET]` with this `TMUX_TMPDIR`; `-L` only when `Some`.
    pub fn tmux(&self, socket: Option<&str>) -> Command {
        let mut cmd = Command::new("tmux");
        scrub_env(&mut cmd).env("TMUX_TMPDIR", self.tmpdir());
        if let Some(s) = socket {
            cmd.args(["-L", s]);
        }
        cmd
    }

    /// Any program with this `TMUX_TMPDIR` and a scrubbed environment.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        scrub_env(&mut cmd).env("TMUX_TMPDIR", self.tmpdir());
        cmd
    }
}

impl Drop for TmuxEnv {
    fn drop(&mut self) {
        kill_tmux_servers(self.dir.path());
    }
}

/// One private `systemd --user` manager at a time per test binary.
static MANAGER_LOCK: Mutex<()> = Mutex::new(());

const SYSTEMD: &str = "/usr/lib/systemd/systemd";

/// A private systemd user manager (see the module docs).
///
/// `XDG_CONFIG_HOME` is set explicitly to `HOME/.config` for the manager and
/// in [`UserManager::env`], so `%E/mosaic` in units, `$XDG_CONFIG_HOME/mosaic`
/// in scripts and [`UserManager::config_home`]`/mosaic` are the same path.
pub struct UserManager {
    child: Child,
    home: tempfile::TempDir,
    runtime: tempfile::TempDir,
    tmux_tmpdir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl UserManager {
    /// Start a manager and wait until `systemctl --user` reaches it. `None`
    /// (after [`skip`]) when not root, or unshare/systemd/tmux are missing,
    /// or the manager does not come up.
    pub fn start() -> Option<UserManager> {
        if euid() != Some(0) {
            skip("a private systemd user manager needs root (unshare -m)");
            return None;
        }
        for prog in ["unshare", "systemctl", "tmux"] {
            if which(prog).is_none() {
                skip(&format!("{prog} is not installed"));
                return None;
            }
        }
        if !Path::new(SYSTEMD).exists() {
            skip(&format!("{SYSTEMD} is missing"));
            return None;
        }
        let serial = MANAGER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let home = tempfile::Builder::new()
            .prefix("mosaic-home")
            .tempdir()
            .unwrap();
        let runtime = tempfile::Builder::new()
            .prefix("mosaic-xdg")
            .tempdir()
            .unwrap();
        let tmux_tmpdir = tempfile::Builder::new()
            .prefix("mosaic-tmux")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir_all(home.path().join(".config")).unwrap();

        let log_path = runtime.path().join("manager.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.env_clear()
            .args([
                "-m",
                "sh",
                "-c",
                "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec /usr/lib/systemd/systemd --user",
            ])
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let env = Self::env_for(home.path(), runtime.path(), tmux_tmpdir.path());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                skip(&format!("cannot run unshare: {e}"));
                return None;
            }
        };
        let mut um = UserManager {
            child,
            home,
            runtime,
            tmux_tmpdir,
            _serial: serial,
        };
        let private = um.runtime.path().join("systemd/private");
        let mut exited = None;
        let up = wait_until(Duration::from_secs(30), || {
            if let Ok(Some(status)) = um.child.try_wait() {
                exited = Some(status);
                return true;
            }
            private.exists()
                && um
                    .systemctl_timeout(&["list-units", "--no-legend"], Duration::from_secs(5))
                    .status
                    .success()
        });
        if !up || exited.is_some() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = match exited {
                Some(status) => format!("exited with {status}"),
                None => "did not answer within 30 s".to_string(),
            };
            skip(&format!(
                "private systemd --user manager {why}; its output:\n{log}"
            ));
            return None;
        }
        Some(um)
    }

    fn env_for(home: &Path, runtime: &Path, tmux: &Path) -> Vec<(String, String)> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        vec![
            ("HOME".into(), s(home)),
            ("XDG_RUNTIME_DIR".into(), s(runtime)),
            ("XDG_CONFIG_HOME".into(), s(&home.join(".config"))),
            ("XDG_STATE_HOME".into(), s(&home.join(".local/state"))),
            ("TMUX_TMPDIR".into(), s(tmux)),
        ]
    }

    /// HOME, XDG_RUNTIME_DIR, XDG_CONFIG_HOME (= HOME/.config),
    /// XDG_STATE_HOME (= HOME/.local/state) and TMUX_TMPDIR of this manager.
    pub fn env(&self) -> Vec<(String, String)> {
        Self::env_for(self.home(), self.runtime_dir(), self.tmux_tmpdir())
    }

    /// `program` with [`UserManager::env`] applied and the caller's
    /// `MOSAIC_*`, `TMUX` and `DBUS_SESSION_BUS_ADDRESS` removed.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        scrub_env(&mut cmd);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// `tmux [-L SOCKET]` on this manager's `TMUX_TMPDIR`.
    pub fn tmux(&self, socket: Option<&str>) -> Command {
        let mut cmd = self.command("tmux");
        if let Some(s) = socket {
            cmd.args(["-L", s]);
        }
        cmd
    }

    /// `systemctl --user ARGS…` against this manager (60 s limit).
    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.systemctl_timeout(args, Duration::from_secs(60))
    }

    fn systemctl_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = self.command("systemctl");
        cmd.arg("--user").args(args);
        run_with_timeout(&mut cmd, timeout).expect("run systemctl")
    }

    /// `systemctl --user status UNIT` output, for failure messages.
    pub fn status(&self, unit: &str) -> String {
        let out = self.systemctl(&["status", "--no-pager", "--full", "--lines=30", unit]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `HOME/.config`, which is also this manager's `%E`.
    pub fn config_home(&self) -> PathBuf {
        self.home.path().join(".config")
    }

    /// Where systemd reads user units from: `HOME/.config/systemd/user`.
    pub fn unit_dir(&self) -> PathBuf {
        self.config_home().join("systemd/user")
    }

    pub fn runtime_dir(&self) -> &Path {
        self.runtime.path()
    }

    pub fn tmux_tmpdir(&self) -> &Path {
        self.tmux_tmpdir.path()
    }

    /// pid of the manager process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let out = self.systemctl_timeout(
                &[
                    "list-units",
                    "--type=service",
                    "--state=active,activating,reloading",
                    "--plain",
                    "--no-legend",
                ],
                Duration::from_secs(10),
            );
            let units: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .filter(|u| u.ends_with(".service"))
                .collect();
            if !units.is_empty() {
                let mut args = vec!["stop"];
                args.extend(units.iter().map(String::as_str));
                let _ = self.systemctl_timeout(&args, Duration::from_secs(30));
            }
        }
        kill_tmux_servers(self.tmux_tmpdir.path());
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if !wait_until(Duration::from_secs(5), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            }) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        // Anything a unit started outside tmux would have gone with the
        // manager's processes; sweep the sockets once more.
        kill_tmux_servers(self.tmux_tmpdir.path());
    }
}
