//! The real programs some scenarios need, never mocks: a private
//! `systemd --user` manager in its own mount namespace (reached from outside
//! through `$XDG_RUNTIME_DIR/systemd/private`), a tmux server on a private
//! `TMUX_TMPDIR`, and read-only bind mounts inside `unshare -m`. Each helper
//! ends what it started when dropped.

use super::world::{clip, run_limited, Ctx, Out, World};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first `prog` on `PATH`.
pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|c| c.is_file())
    })
}

/// Whether this process may make private mount namespaces: root, with
/// `unshare` and `mount` installed, and `unshare -m` allowed (containers
/// without CAP_SYS_ADMIN refuse it).
pub fn can_unshare() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    root && which("unshare").is_some()
        && which("mount").is_some()
        && Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

const SYSTEMD: &str = "/usr/lib/systemd/systemd";

/// A private systemd user manager whose HOME, XDG_CONFIG_HOME and
/// XDG_RUNTIME_DIR are the world's.
pub struct Manager {
    child: Child,
    log: PathBuf,
}

impl Manager {
    /// Starts the manager; `Ok(Err(reason))` when this machine cannot run one
    /// (the caller skips or fails under `MOSAIC_REQUIRE_REAL=1`).
    pub fn start(ctx: &Ctx, w: &World) -> Result<std::result::Result<Manager, String>> {
        if !ctx.can_unshare {
            return Ok(Err(
                "a private systemd user manager needs root and `unshare -m`".into(),
            ));
        }
        for prog in ["systemctl"] {
            if which(prog).is_none() {
                return Ok(Err(format!("{prog} is not installed")));
            }
        }
        if !Path::new(SYSTEMD).exists() {
            return Ok(Err(format!("{SYSTEMD} is missing")));
        }
        let log = w.root().join("manager.log");
        let f = std::fs::File::create(&log)?;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec /usr/lib/systemd/systemd --user",
        ]);
        w.prepare(
            ctx,
            &mut cmd,
            None,
            &[("USER", "root"), ("LOGNAME", "root")],
        );
        cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
        let child = cmd.spawn()?;
        let mut m = Manager { child, log };
        let private = w.runtime().join("systemd/private");
        let t0 = Instant::now();
        loop {
            if let Some(st) = m.child.try_wait()? {
                return Ok(Err(format!(
                    "the private systemd --user manager exited ({st}): {}",
                    clip(&std::fs::read_to_string(&m.log).unwrap_or_default())
                )));
            }
            if private.exists()
                && m.systemctl(ctx, w, &["list-units", "--no-legend"])?.code == Some(0)
            {
                return Ok(Ok(m));
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Ok(Err(format!(
                    "the private systemd --user manager did not answer within 30 s: {}",
                    clip(&std::fs::read_to_string(&m.log).unwrap_or_default())
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `systemctl --user ARGS…` against this manager (the real one, not the
    /// world's logging wrapper).
    pub fn systemctl(&self, ctx: &Ctx, w: &World, args: &[&str]) -> Result<Out> {
        let real = ctx.systemctl.clone().unwrap_or_else(|| "systemctl".into());
        let mut cmd = Command::new(real);
        cmd.arg("--user").args(args);
        w.prepare(ctx, &mut cmd, None, &[]);
        run_limited(
            cmd,
            format!("systemctl --user {}", args.join(" ")),
            w.root(),
            Duration::from_secs(30),
        )
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A tmux server on `-L SOCKET` in the world's `TMUX_TMPDIR`; killed on drop.
pub struct TmuxServer<'a> {
    ctx: &'a Ctx,
    world: &'a World,
    socket: String,
}

impl<'a> TmuxServer<'a> {
    /// Starts `session` running `command` on `socket`; `Ok(Err(reason))`
    /// when tmux is not installed.
    pub fn start(
        ctx: &'a Ctx,
        world: &'a World,
        socket: &str,
        session: &str,
        command: &str,
    ) -> Result<std::result::Result<TmuxServer<'a>, String>> {
        if which("tmux").is_none() {
            return Ok(Err("tmux is not installed".into()));
        }
        let s = TmuxServer {
            ctx,
            world,
            socket: socket.to_string(),
        };
        s.tmux(&["new-session", "-d", "-s", session, command])?
            .expect(0)?;
        Ok(Ok(s))
    }

    /// `tmux -L SOCKET ARGS…` in the world's environment.
    pub fn tmux(&self, args: &[&str]) -> Result<Out> {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]).args(args);
        self.world
            .prepare(self.ctx, &mut cmd, None, &[("TERM", "xterm")]);
        run_limited(
            cmd,
            format!("tmux -L {} {}", self.socket, args.join(" ")),
            self.world.root(),
            Duration::from_secs(20),
        )
    }

    /// Whether the exact session exists.
    pub fn has_session(&self, name: &str) -> Result<bool> {
        Ok(self.tmux(&["has-session", "-t", &format!("={name}")])?.code == Some(0))
    }
}

impl Drop for TmuxServer<'_> {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// `mosaic ARGS…` inside `unshare -m` with `dir` bind-mounted read-only
/// (the mount exists only for that one process).
pub fn mosaic_with_read_only_dir(
    ctx: &Ctx,
    w: &World,
    release: &super::world::Release,
    dir: &Path,
    args: &[&str],
) -> Result<Out> {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\"")
        .arg(dir)
        .arg(&ctx.bin)
        .args(args);
    w.prepare(ctx, &mut cmd, Some(release), &[]);
    run_limited(
        cmd,
        format!(
            "unshare -m (ro bind mount on {}) mosaic {}",
            dir.display(),
            args.join(" ")
        ),
        w.root(),
        Duration::from_secs(60),
    )
}
