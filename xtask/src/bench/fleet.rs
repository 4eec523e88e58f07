//! The `fleet ps` figures (issue 7, SPEC §8): N stub agents (3, then 30) as
//! real tmux sessions on a private `-L mosaic-fleet` server (its own
//! `TMUX_TMPDIR`), a roster naming them and env files declaring the stub as
//! their command, then `mosaic fleet ps --json` timed, with the processes it
//! starts counted twice: by mosaic's own spawn log (`MOSAIC_SPAWN_LOG`) and by
//! counting wrappers put in front of tmux and systemctl
//! (`MOSAIC_TMUX` / `MOSAIC_SYSTEMCTL`), so the count does not rest on
//! mosaic's word alone.
//!
//! It also times `fleet ps` across 2 real sshd hosts × 10 stub agents (as
//! root: each host an `sshd -D` in its own mount + UTS namespace, see
//! `tests/hosts_support`), cold (no ssh master) and warm (masters up),
//! with the connections each host accepted counted from its sshd log.

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
    let hosts_rows = hosts::bench(ctx, &base);
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
    let mut rows = vec![
        row(3, &three, Vec::new()),
        row(
            30,
            &thirty,
            vec![
                Target::new("same process count as 3", same),
                Target::new(&format!("≤ 2× the wall of 3 ({ratio:.2}×)"), ratio <= 2.0),
            ],
        ),
    ];
    match hosts_rows {
        Ok(r) => rows.extend(r),
        Err(e) => rows.push(Row {
            tree: "fleet, 2 hosts × 10 stub agents".into(),
            measurement: "fleet ps --json across hosts".into(),
            mosaic: None,
            rsync: None,
            cp: None,
            peak_rss_kib: None,
            content_read: None,
            note: format!("skipped: {e:#}"),
            targets: Vec::new(),
        }),
    }
    Ok(rows)
}

/// `fleet ps` across real sshd hosts.
mod hosts {
    use super::super::measure::{self, median};
    use super::super::{Ctx, Row, Target};
    use anyhow::{bail, Context, Result};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    const AGENTS: usize = 10;

    struct Host {
        name: String,
        dir: PathBuf,
        port: u16,
        child: Child,
    }

    impl Host {
        fn connections(&self) -> usize {
            std::fs::read_to_string(self.dir.join("sshd.log"))
                .unwrap_or_default()
                .matches("Accepted publickey")
                .count()
        }
        fn tmux(&self) -> Command {
            let mut c = Command::new("tmux");
            c.env("TMUX_TMPDIR", self.dir.join("tmux"))
                .env("LANG", "C.UTF-8")
                .env_remove("TMUX")
                .args(["-L", super::SOCKET]);
            c
        }
    }

    struct Rig {
        base: PathBuf,
        ctl: PathBuf,
        run: PathBuf,
        hosts: Vec<Host>,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            self.close_masters();
            for h in &mut self.hosts {
                let _ = h
                    .tmux()
                    .arg("kill-server")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = h.child.kill();
                let _ = h.child.wait();
            }
        }
    }

    fn ok(cmd: &mut Command) -> Result<()> {
        let out = cmd.stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    fn keygen(path: &Path) -> Result<()> {
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "mosaic-bench", "-f"])
            .arg(path))
    }

    fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
        std::fs::write(path, text)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn mkdir(path: &Path) -> Result<()> {
        std::fs::create_dir_all(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    impl Rig {
        fn start(ctx: &Ctx, base: &Path) -> Result<Rig> {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                bail!("needs root (sshd hosts in mount namespaces)");
            }
            for p in [
                "/usr/sbin/sshd",
                "/usr/bin/ssh",
                "/usr/bin/unshare",
                "/usr/bin/setsid",
            ] {
                if !Path::new(p).exists() {
                    bail!(
                        "{p} is missing (apt-get install openssh-server openssh-client util-linux)"
                    );
                }
            }
            let base = base.join("hosts");
            if base.exists() {
                std::fs::remove_dir_all(&base)?;
            }
            let ctl = base.join("ctl");
            // The controller's XDG_RUNTIME_DIR, short: below a longer one
            // (over 49 bytes with `mosaic/ssh`) mosaic keeps its control
            // sockets in /tmp/mosaic-UID/ssh, outside the bench's tree,
            // where `close_masters` would not find them.
            let run = ctx.root.join("r");
            if run.join("mosaic/ssh").as_os_str().len() > 49 {
                bail!(
                    "{} is too long for ssh's control sockets; run with a shorter TMPDIR",
                    run.display()
                );
            }
            mkdir(&ctl.join(".ssh"))?;
            mkdir(&run)?;
            std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o700))?;
            keygen(&ctl.join(".ssh/id"))?;
            let pubkey = std::fs::read_to_string(ctl.join(".ssh/id.pub"))?;
            let mut rig = Rig {
                base: base.clone(),
                ctl,
                run,
                hosts: Vec::new(),
            };
            let mut config = String::new();
            let mut known = String::new();
            let mut roster = format!(
                "# written by cargo xtask bench\nversion: 1\ntmux:\n  socket_name: {}\nhosts:\n",
                super::SOCKET
            );
            let mut agents = String::from("agents:\n");
            for name in ["bench1", "bench2"] {
                let dir = base.join(name);
                let root = dir.join("root");
                mkdir(&root.join(".ssh"))?;
                mkdir(&dir.join("tmux"))?;
                std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
                write(&root.join(".ssh/authorized_keys"), &pubkey, 0o600)?;
                keygen(&dir.join("hostkey"))?;
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                let d = dir.display();
                write(
                    &dir.join("sshd_config"),
                    &format!("ListenAddress 127.0.0.1:{port}\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nLogLevel VERBOSE\nMaxStartups 200:30:400\nSetEnv TMUX_TMPDIR={d}/tmux PATH={PATH} LANG=C.UTF-8\n"),
                    0o600,
                )?;
                write(
                    &dir.join("init.sh"),
                    &format!("set -e\nhostname {name}\nmount --bind {d}/root /root\nmount -t tmpfs tmpfs /run\nmkdir -p /run/sshd\nexec /usr/sbin/sshd -D -f {d}/sshd_config -E {d}/sshd.log\n"),
                    0o700,
                )?;
                let child = Command::new("setsid")
                    .env_clear()
                    .env("PATH", PATH)
                    .args(["unshare", "-m", "-u", "--propagation", "private", "sh"])
                    .arg(dir.join("init.sh"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("start sshd")?;
                let host = Host {
                    name: name.to_string(),
                    dir: dir.clone(),
                    port,
                    child,
                };
                let mut up = false;
                for _ in 0..150 {
                    if std::fs::read_to_string(dir.join("sshd.log"))
                        .unwrap_or_default()
                        .contains("Server listening")
                    {
                        up = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if !up {
                    bail!("sshd of {name} did not come up");
                }
                config.push_str(&format!(
                    "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  HostKeyAlias {name}\n  IdentityFile /root/.ssh/id\n  IdentitiesOnly yes\n  UserKnownHostsFile /root/.ssh/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n\n"
                ));
                known.push_str(&format!(
                    "{name} {}",
                    std::fs::read_to_string(dir.join("hostkey.pub"))?
                ));
                roster.push_str(&format!("  {name}: {{ ssh: {name} }}\n"));
                // The host's fleet: the framework's tools, env files, stubs.
                let home = root.join(".config/mosaic");
                let fw_src = ctx.root.join("fleet/home/tools");
                copy_dir(&fw_src, &home.join("tools"))?;
                std::fs::create_dir_all(home.join("fleet/agents"))?;
                std::fs::create_dir_all(home.join("fleet/run"))?;
                let stub = home.join("tools/fleet/stub-agent");
                for i in 0..AGENTS {
                    let a = format!("{name}a{i:02}");
                    agents.push_str(&format!(
                        "  - name: {a}\n    runtime: claude\n    host: {name}\n"
                    ));
                    write(
                        &home.join(format!("fleet/agents/{a}.env")),
                        &format!("MOSAIC_AGENT_COMMAND={}\n", stub.display()),
                        0o600,
                    )?;
                    ok(host
                        .tmux()
                        .args(["new-session", "-d", "-s", &a, "-e"])
                        .arg(format!("MOSAIC_HOME={}", home.display()))
                        .args(["-e", &format!("MOSAIC_AGENT_NAME={a}")])
                        .arg(&stub)
                        .arg(&a))?;
                }
                rig.hosts.push(host);
            }
            write(&rig.ctl.join(".ssh/config"), &config, 0o600)?;
            write(&rig.ctl.join(".ssh/known_hosts"), &known, 0o600)?;
            let home = rig.ctl.join(".config/mosaic/fleet");
            std::fs::create_dir_all(&home)?;
            std::fs::write(home.join("roster.yaml"), roster + &agents)?;
            Ok(rig)
        }

        fn mosaic(&self, ctx: &Ctx) -> Command {
            let mut c = Command::new("unshare");
            c.env_clear()
                .args(["-m", "--propagation", "private", "sh", "-c"])
                .arg("mount --bind \"$0\" /root && exec \"$@\"")
                .arg(&self.ctl)
                .arg(&ctx.bin)
                .args(["fleet", "ps", "--json"])
                .env("PATH", PATH)
                .env("HOME", "/root")
                .env("USER", "root")
                .env("LANG", "C.UTF-8")
                .env("NO_COLOR", "1")
                .env("XDG_RUNTIME_DIR", &self.run)
                .env("TMUX_TMPDIR", self.base.join("ctl-tmux"));
            c
        }

        fn close_masters(&self) {
            if let Ok(rd) = std::fs::read_dir(self.run.join("mosaic/ssh")) {
                for e in rd.flatten() {
                    let _ = Command::new("ssh")
                        .args(["-o", &format!("ControlPath={}", e.path().display())])
                        .args(["-O", "exit", "x"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }

        fn connections(&self) -> Vec<usize> {
            self.hosts.iter().map(Host::connections).collect()
        }
    }

    fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
        std::fs::create_dir_all(dst)?;
        for e in std::fs::read_dir(src).with_context(|| format!("read {}", src.display()))? {
            let e = e?;
            let to = dst.join(e.file_name());
            if e.file_type()?.is_dir() {
                copy_dir(&e.path(), &to)?;
            } else {
                std::fs::copy(e.path(), &to)?;
            }
        }
        Ok(())
    }

    /// Cold and warm `fleet ps` across 2 hosts × 10 agents.
    pub fn bench(ctx: &Ctx, base: &Path) -> Result<Vec<Row>> {
        let rig = Rig::start(ctx, base)?;
        std::thread::sleep(Duration::from_millis(500));
        // Untimed check: every remote agent is running.
        let out = rig.mosaic(ctx).output()?;
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).trim().to_string())?;
        let running = doc["agents"]
            .as_array()
            .map(|a| a.iter().filter(|r| r["state"] == "running").count())
            .unwrap_or(0);
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        let (mut cold_conns, mut warm_conns) = (0usize, 0usize);
        for i in 0..=ctx.runs {
            rig.close_masters();
            let before = rig.connections();
            let s = measure::run(&mut rig.mosaic(ctx))?;
            let mid = rig.connections();
            let w = measure::run(&mut rig.mosaic(ctx))?;
            let after = rig.connections();
            if s.code != 0 || w.code != 0 {
                bail!("fleet ps across hosts exited {} / {}", s.code, w.code);
            }
            let per =
                |a: &[usize], b: &[usize]| a.iter().zip(b).map(|(x, y)| x - y).max().unwrap_or(0);
            cold_conns = cold_conns.max(per(&mid, &before));
            warm_conns = warm_conns.max(per(&after, &mid));
            if i > 0 {
                cold.push(s.wall);
                warm.push(w.wall);
            }
        }
        let hosts = rig
            .hosts
            .iter()
            .map(|h| format!("{}:{}", h.name, h.port))
            .collect::<Vec<_>>()
            .join(", ");
        drop(rig);
        let row = |m: &str, wall: Duration, conns: usize, targets: Vec<Target>| {
            Row {
            tree: format!("fleet, 2 hosts × {AGENTS} stub agents"),
            measurement: m.into(),
            mosaic: Some(wall),
            rsync: None,
            cp: None,
            peak_rss_kib: None,
            content_read: None,
            note: format!("{conns} connection(s) per host (sshd logs); {running} of {} running; loopback sshd ({hosts})", 2 * AGENTS),
            targets,
        }
        };
        let cold_w = median(cold);
        let warm_w = median(warm);
        Ok(vec![
            row(
                "fleet ps --json, cold ControlMaster",
                cold_w,
                cold_conns,
                vec![Target::new("one connection per host", cold_conns == 1)],
            ),
            row(
                "fleet ps --json, warm ControlMaster",
                warm_w,
                warm_conns,
                vec![
                    Target::new("no new connection", warm_conns == 0),
                    Target::new("faster than cold", warm_w < cold_w),
                ],
            ),
        ])
    }
}
