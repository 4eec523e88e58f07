//! The `fleet ps` figures (issue 7, SPEC §8): N stub agents (3, then 30) as
//! real tmux sessions on a private `-L mosaic-fleet` server (its own
//! `TMUX_TMPDIR`), a roster naming them and env files declaring the stub as
//! their command, then `mosaic fleet ps --json` timed, with the processes it
//! starts counted twice: by mosaic's own spawn log (`MOSAIC_SPAWN_LOG`) and by
//! counting wrappers put in front of tmux and systemctl
//! (`MOSAIC_TMUX` / `MOSAIC_SYSTEMCTL`), so the count does not rest on
//! mosaic's word alone.

use super::measure::{self, median, Sample};
use super::{Ctx, Row, Target};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const SOCKET: &str = "mosaic-fleet";

/// What one agent count measured.
struct Figures {
    wall: Duration,
    peak_rss_kib: u64,
    spawns_log: usize,
    spawns_wrapped: usize,
    records: usize,
}

/// Why the fleet part was skipped, if it was.
pub fn unavailable(ctx: &Ctx) -> Option<String> {
    if find_in_path("tmux").is_none() {
        return Some("tmux is not installed".into());
    }
    let ok = Command::new(&ctx.bin)
        .args(["fleet", "ps", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    (!ok).then(|| "this mosaic has no `fleet ps` subcommand".into())
}

fn find_in_path(prog: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

struct Fleet<'a> {
    ctx: &'a Ctx,
    home: PathBuf,
    tmpdir: PathBuf,
    spawn_log: PathBuf,
    wrap_log: PathBuf,
    bin_dir: PathBuf,
}

impl Fleet<'_> {
    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.env("TMUX_TMPDIR", &self.tmpdir)
            .env_remove("TMUX")
            .args(["-L", SOCKET]);
        c
    }

    fn tmux_ok(&self, args: &[&str]) -> Result<()> {
        let out = self.tmux().args(args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!(
                "tmux {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn kill_server(&self) {
        let _ = self
            .tmux()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn mosaic(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.ctx.bin);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.ctx.fake_home)
            .env("XDG_CONFIG_HOME", self.ctx.fake_home.join(".config"))
            .env("XDG_STATE_HOME", self.ctx.fake_home.join(".local/state"))
            .env("MOSAIC_HOME", &self.home)
            .env("TMUX_TMPDIR", &self.tmpdir)
            .env("NO_COLOR", "1");
        if let Some(v) = std::env::var_os("XDG_RUNTIME_DIR") {
            c.env("XDG_RUNTIME_DIR", v);
        }
        c
    }

    /// Installs the embedded framework into the fleet home.
    fn install(&self) -> Result<()> {
        measure::run_ok(&mut self.mosaic(&["install", "--quiet"]))?;
        Ok(())
    }

    /// Starts the holder and `n` stub agents; writes roster and env files.
    fn start(&self, n: usize) -> Result<Vec<String>> {
        self.kill_server();
        let agents_dir = self.home.join("fleet/agents");
        let run_dir = self.home.join("fleet/run");
        for d in [&agents_dir, &run_dir] {
            if d.exists() {
                std::fs::remove_dir_all(d)?;
            }
            std::fs::create_dir_all(d)?;
        }
        let stub = self.home.join("tools/fleet/stub-agent");
        let names: Vec<String> = (0..n).map(|i| format!("stub{i:02}")).collect();
        let mut roster = format!(
            "# written by cargo xtask bench\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: {SOCKET}\n  holder_session: _holder\nagents:\n"
        );
        let home = self.home.to_string_lossy().into_owned();
        self.tmux_ok(&["new-session", "-d", "-s", "_holder", "sleep", "86400"])?;
        for name in &names {
            roster.push_str(&format!("  - name: {name}\n    runtime: claude\n"));
            let env = agents_dir.join(format!("{name}.env"));
            std::fs::write(&env, format!("MOSAIC_AGENT_COMMAND={}\n", stub.display()))?;
            std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600))?;
            let home_env = format!("MOSAIC_HOME={home}");
            let name_env = format!("MOSAIC_AGENT_NAME={name}");
            let stub_s = stub.to_string_lossy();
            self.tmux_ok(&[
                "new-session",
                "-d",
                "-s",
                name,
                "-e",
                &home_env,
                "-e",
                &name_env,
                &stub_s,
                name,
            ])?;
        }
        std::fs::write(self.home.join("fleet/roster.yaml"), roster)?;
        // Let every stub write its first heartbeat.
        for _ in 0..100 {
            let beats = names
                .iter()
                .filter(|n| run_dir.join(format!("{n}.hb")).exists())
                .count();
            if beats == n {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(names)
    }

    /// Counting wrappers for tmux and systemctl.
    fn wrappers(&self) -> Result<()> {
        std::fs::create_dir_all(&self.bin_dir)?;
        for prog in ["tmux", "systemctl"] {
            let real = find_in_path(prog)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("/nonexistent/{prog}"));
            let w = self.bin_dir.join(prog);
            std::fs::write(
                &w,
                format!(
                    "#!/bin/sh\necho {prog} >> '{}'\nexec '{real}' \"$@\"\n",
                    self.wrap_log.display()
                ),
            )?;
            std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    fn measure(&self, n: usize) -> Result<Figures> {
        let names = self.start(n)?;
        // Untimed: the JSON must hold one record per agent.
        let out = self.mosaic(&["fleet", "ps", "--json"]).output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "mosaic fleet ps --json printed no JSON (exit {:?}): {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        let records = count_records(&json);
        // Untimed: the same run through the counting wrappers.
        let _ = std::fs::remove_file(&self.wrap_log);
        let _ = measure::run(
            self.mosaic(&["fleet", "ps", "--json"])
                .env("MOSAIC_TMUX", self.bin_dir.join("tmux"))
                .env("MOSAIC_SYSTEMCTL", self.bin_dir.join("systemctl")),
        )?;
        let spawns_wrapped = lines(&self.wrap_log);
        let mut samples: Vec<Sample> = Vec::new();
        let mut spawns_log = 0;
        for i in 0..=self.ctx.runs {
            let _ = std::fs::remove_file(&self.spawn_log);
            let s = measure::run(
                self.mosaic(&["fleet", "ps", "--json"])
                    .env("MOSAIC_SPAWN_LOG", &self.spawn_log),
            )?;
            if s.code > 1 {
                bail!("mosaic fleet ps exited {}", s.code);
            }
            spawns_log = spawns_log.max(lines(&self.spawn_log));
            if i > 0 {
                samples.push(s);
            }
        }
        self.kill_server();
        let _ = names;
        Ok(Figures {
            wall: median(samples.iter().map(|s| s.wall).collect()),
            peak_rss_kib: samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0),
            spawns_log,
            spawns_wrapped,
            records,
        })
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Records in the `ps --json` document: a top-level array, or the longest
/// array found one level down (`{"agents": [...]}` and the like).
fn count_records(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Object(o) => o
            .values()
            .filter_map(|v| v.as_array().map(Vec::len))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// Runs the fleet figures for 3 and 30 agents.
pub fn bench(ctx: &Ctx) -> Result<Vec<Row>> {
    let base = ctx.root.join("fleet");
    std::fs::create_dir_all(&base)?;
    let tmpdir = base.join("tmux");
    std::fs::create_dir_all(&tmpdir)?;
    std::fs::set_permissions(&tmpdir, std::fs::Permissions::from_mode(0o700))?;
    let f = Fleet {
        ctx,
        home: base.join("home"),
        tmpdir,
        spawn_log: base.join("spawn.log"),
        wrap_log: base.join("wrapped.log"),
        bin_dir: base.join("bin"),
    };
    f.install()?;
    f.wrappers()?;
    let result = (|| Ok::<_, anyhow::Error>((f.measure(3)?, f.measure(30)?)))();
    f.kill_server();
    let (three, thirty) = result?;
    let row = |n: usize, fig: &Figures, targets: Vec<Target>| Row {
        tree: format!("fleet, {n} stub agents"),
        measurement: "fleet ps --json".into(),
        mosaic: Some(fig.wall),
        rsync: None,
        cp: None,
        peak_rss_kib: Some(fig.peak_rss_kib),
        content_read: None,
        note: format!(
            "{} processes spawned (spawn log), {} (wrappers); {} records",
            fig.spawns_log, fig.spawns_wrapped, fig.records
        ),
        targets,
    };
    let same =
        thirty.spawns_log == three.spawns_log && thirty.spawns_wrapped == three.spawns_wrapped;
    let ratio = thirty.wall.as_secs_f64() / three.wall.as_secs_f64().max(1e-9);
    Ok(vec![
        row(3, &three, Vec::new()),
        row(
            30,
            &thirty,
            vec![
                Target::new("same process count as 3", same),
                Target::new(&format!("≤ 2× the wall of 3 ({ratio:.2}×)"), ratio <= 2.0),
            ],
        ),
    ])
}
