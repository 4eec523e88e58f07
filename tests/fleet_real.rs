//! The fleet commands against real tmux and a private systemd user manager,
//! with every agent running the shipped stub-agent: install, start, verify,
//! ps (healthy, DEAD, DRIFT, BOOT-ENABLE, UNMANAGED, STALE), agent send
//! --verify, tail, reset, watch (read-only viewer removed on exit), stop
//! (the default tmux server untouched). One manager for the whole walk, so
//! the suite stays fast; skipped (with the reason) where a user manager
//! cannot run, failed instead under MOSAIC_REQUIRE_REAL=1.

mod common;
mod json_contract;

use common::UserManager;
use serde_json::Value;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SOCKET: &str = "mosaic-fleet";

/// How long lead's daemon sleeps: a number no other process uses.
const DAEMON_SECS: u32 = 987_654;

/// The cgroup path of `pid` in the unified hierarchy (`0::` line).
fn cgroup_of(pid: u64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

/// pids whose command line starts with `needle`.
fn pids_running(needle: &str) -> Vec<u64> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with(needle) {
            v.push(pid);
        }
    }
    v
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Fleet<'a> {
    um: &'a UserManager,
    h: PathBuf,
}

impl Fleet<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.um.command(assert_cmd::cargo::cargo_bin("mosaic"));
        c.env("NO_COLOR", "1").args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run_with_timeout(&mut self.cmd(args), Duration::from_secs(90)).unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "mosaic {args:?}: {}", text(&out));
        out
    }

    fn ps(&self, extra: &[&str]) -> Value {
        let mut args = vec!["fleet", "ps", "--json"];
        args.extend(extra);
        let out = self.ok(&args);
        json_contract::parse(&out.stdout)
            .unwrap_or_else(|e| panic!("ps --json: {e}: {}", text(&out)))
    }

    fn sessions(&self, socket: Option<&str>) -> Vec<String> {
        let out = self
            .um
            .tmux(socket)
            .args(["list-sessions", "-F", "#{session_name}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn env_file(&self, name: &str) -> PathBuf {
        self.h.join("fleet/agents").join(format!("{name}.env"))
    }

    fn stub(&self) -> String {
        self.h.join("tools/fleet/stub-agent").display().to_string()
    }
}

fn row<'v>(doc: &'v Value, name: &str) -> &'v Value {
    doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {doc:#}"))
}

fn flags(doc: &Value, name: &str) -> Vec<String> {
    row(doc, name)["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn fleet_end_to_end_with_the_stub_agent() {
    let Some(um) = UserManager::start() else {
        return;
    };
    let f = Fleet {
        um: &um,
        h: um.config_home().join("mosaic"),
    };
    let h = f.h.clone();

    // The operator's own session on the default server: never touched.
    let out = um
        .tmux(None)
        .args(["new-session", "-d", "-s", "mine", "sleep 600"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    f.ok(&["--home", h.to_str().unwrap(), "install"]);
    f.ok(&["fleet", "init", "--preset", "local-canary"]);
    f.ok(&["fleet", "install"]);
    for a in ["lead", "coder0", "reviewer0"] {
        let env = f.env_file(a);
        let mut body = std::fs::read_to_string(&env).unwrap();
        assert!(
            body.contains("MOSAIC_AGENT_RESTART=on-failure\n"),
            "the default policy: {body}"
        );
        if a == "lead" {
            // A runtime that leaves a daemon behind (as codex does): it must
            // still belong to lead's unit, and `fleet stop` must end it.
            body.push_str(&format!(
                "MOSAIC_AGENT_COMMAND=\"setsid -f sleep {DAEMON_SECS} </dev/null >/dev/null 2>&1 && exec {}\"\n",
                f.stub()
            ));
        } else {
            body.push_str(&format!("MOSAIC_AGENT_COMMAND={}\n", f.stub()));
        }
        if a == "reviewer0" {
            // This one must not refresh its beat during the test (STALE below).
            body = body.replace(
                "MOSAIC_HEARTBEAT_INTERVAL=15",
                "MOSAIC_HEARTBEAT_INTERVAL=3600",
            );
        }
        std::fs::write(&env, body).unwrap();
    }
    // Re-install keeps the operator's lines.
    // Real systemd: the fleet install and start documents (issue 13).
    let inst = json_contract::parse(&f.ok(&["fleet", "install", "--json"]).stdout).unwrap();
    assert_eq!(inst["daemon_reload"], true, "{inst:#}");
    for a in ["lead", "coder0", "reviewer0"] {
        let body = std::fs::read_to_string(f.env_file(a)).unwrap();
        assert!(
            body.contains(&format!("MOSAIC_AGENT_COMMAND={}", f.stub()))
                || body.contains(&format!("&& exec {}", f.stub())),
            "{body}"
        );
    }
    assert!(std::fs::read_to_string(f.env_file("reviewer0"))
        .unwrap()
        .contains("MOSAIC_HEARTBEAT_INTERVAL=3600\n"));
    for u in [
        "mosaic-tmux-holder.service",
        "mosaic-agent@lead.service",
        "mosaic-agent@coder0.service",
    ] {
        let out = um.systemctl(&["is-enabled", u]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "enabled",
            "{u}: {}",
            text(&out)
        );
    }

    // A per-agent drop-in: it must reach coder0's runtime, and only it.
    let dropin = um.unit_dir().join("mosaic-agent@coder0.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(dropin.join("limit.conf"), "[Service]\nMemoryMax=64M\n").unwrap();
    let out = um.systemctl(&["daemon-reload"]);
    assert!(out.status.success(), "{}", text(&out));

    // Start, verify, ps: all healthy.
    let started = json_contract::parse(&f.ok(&["fleet", "start", "--json"]).stdout).unwrap();
    assert_eq!(started["action"], "start", "{started:#}");
    assert_eq!(
        started["missing_sessions"],
        serde_json::json!([]),
        "{started:#}"
    );
    f.ok(&["fleet", "verify"]);
    let status = f.ok(&["fleet", "status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("mosaic-agent@coder0.service"),
        "{}",
        text(&status)
    );
    // The same facts as --json documents, valid against their schemas.
    let st = json_contract::parse(&f.ok(&["fleet", "status", "--json"]).stdout).unwrap();
    assert_eq!(st["all_active"], true, "{st:#}");
    let v = json_contract::parse(&f.ok(&["fleet", "verify", "--json"]).stdout).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    let doc = f.ps(&[]);
    for a in ["lead", "coder0", "reviewer0"] {
        let r = row(&doc, a);
        assert_eq!(r["healthy"], true, "{a}: {r:#}");
        assert_eq!(r["state"], "running", "{a}");
        assert_eq!(r["unit_active"], true);
        assert_eq!(r["unit_enabled"], true);
        assert_eq!(r["current_command"], "stub-agent", "{r:#}");
        assert_eq!(r["expected_command"], "stub-agent");
        assert_eq!(r["heartbeat"]["fresh"], true);
        assert!(r["tenant_id"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(r["host"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(!r["processes"].as_array().unwrap().is_empty());
        // Supervision: the runtime lives in its own unit's cgroup.
        let pid = r["pane_pid"].as_u64().unwrap();
        assert!(
            cgroup_of(pid).ends_with(&format!("/mosaic-agent@{a}.service")),
            "{a}: pane {pid} in {:?}",
            cgroup_of(pid)
        );
        assert_eq!(r["restarts"], 0, "{r:#}");
        // The stub adapter reads its screen: at its prompt.
        assert_eq!(r["screen"], "idle", "{r:#}");
        assert!(r["uptime_seconds"].as_u64().is_some(), "{r:#}");
        assert!(r["rss_bytes"].as_u64().is_some_and(|b| b > 0), "{r:#}");
        assert!(r["cpu_ms"].as_u64().is_some(), "{r:#}");
    }
    // The drop-in's limit is on the cgroup coder0's runtime lives in.
    let limit_of = |a: &str| -> Option<u64> {
        let pid = row(&doc, a)["pane_pid"].as_u64().unwrap();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        cg.lines().find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let (ctl, path) = rest.split_once(':')?;
            let file = match ctl {
                "memory" => format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                "" if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
                    format!("/sys/fs/cgroup{path}/memory.max")
                }
                _ => return None,
            };
            std::fs::read_to_string(file).ok()?.trim().parse().ok()
        })
    };
    assert_eq!(
        limit_of("coder0"),
        Some(64 * 1024 * 1024),
        "coder0's MemoryMax"
    );
    assert_ne!(
        limit_of("lead"),
        Some(64 * 1024 * 1024),
        "lead has no limit"
    );
    // lead's daemon left the pane's process tree but not lead's unit.
    let daemons = pids_running(&format!("sleep {DAEMON_SECS}"));
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    assert!(
        cgroup_of(daemons[0]).ends_with("/mosaic-agent@lead.service"),
        "{:?}",
        cgroup_of(daemons[0])
    );
    assert_eq!(doc["holder"]["session_present"], true, "{doc:#}");
    assert_eq!(doc["agents"].as_array().unwrap().len(), 3, "{doc:#}");
    let table = String::from_utf8_lossy(&f.ok(&["fleet", "ps"]).stdout).into_owned();
    assert!(table.starts_with("NAME "), "{table}");
    for col in ["UPTIME", "RESTARTS", "CPU", "RSS"] {
        assert!(table.lines().next().unwrap().contains(col), "{table}");
    }
    assert!(!table.contains('\x1b'), "no colour off a TTY: {table}");

    // agent send --verify: the stub acknowledges.
    let out = f.ok(&["agent", "send", "coder0", "-m", "hello coder0", "--verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("accepted"),
        "{}",
        text(&out)
    );
    let t = json_contract::parse(
        &f.ok(&["agent", "tail", "coder0", "-n", "5", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(t["agent"], "coder0", "{t:#}");
    let tail = f.ok(&["agent", "tail", "coder0", "-n", "5"]);
    let tail = String::from_utf8_lossy(&tail.stdout).into_owned();
    assert!(
        tail.contains("ACK [from operator:mosaic-cli] hello coder0"),
        "{tail}"
    );
    assert!(tail.lines().count() <= 5, "{tail}");
    // agent reset: the runtime's reset_command, to that session only.
    f.ok(&["agent", "reset", "coder0"]);
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            String::from_utf8_lossy(&f.ok(&["agent", "tail", "coder0"]).stdout)
                .contains("ACK /clear")
        }),
        "reset not seen"
    );
    let lead_tail = String::from_utf8_lossy(&f.ok(&["agent", "tail", "lead"]).stdout).into_owned();
    assert!(
        !lead_tail.contains("/clear") && !lead_tail.contains("hello"),
        "{lead_tail}"
    );

    // agent watch: read-only viewer, removed on every exit path.
    watch_checks(&f);

    // DRIFT: roster runtime pi, pane runs the stub, no declared command.
    f.ok(&["fleet", "add", "pi0", "--runtime", "pi"]);
    f.ok(&["fleet", "install"]);
    // BOOT-ENABLE: active but not enabled (after the install, which enables).
    let out = um.systemctl(&["disable", "mosaic-agent@lead.service"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = um
        .tmux(Some(SOCKET))
        .args([
            "new-session",
            "-d",
            "-s",
            "pi0",
            "-e",
            &format!("MOSAIC_HOME={}", h.display()),
            &f.stub(),
            "pi0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // UNMANAGED: a stray session on the fleet socket.
    let out = um
        .tmux(Some(SOCKET))
        .args(["new-session", "-d", "-s", "stray", "sleep 600"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // STALE: reviewer0's last beat is ten minutes old.
    let hb = h.join("fleet/run/reviewer0.hb");
    let pid = row(&doc, "reviewer0")["pane_pid"].as_u64().unwrap();
    std::fs::write(
        &hb,
        format!(
            "{{\"v\":1,\"agent\":\"reviewer0\",\"ts\":{},\"pid\":{pid},\"state\":\"idle\"}}\n",
            now() - 600
        ),
    )
    .unwrap();
    assert!(common::wait_until(Duration::from_secs(10), || h
        .join("fleet/run/pi0.hb")
        .exists()));

    let doc = f.ps(&[]);
    assert_eq!(flags(&doc, "lead"), ["BOOT-ENABLE"], "{doc:#}");
    assert_eq!(flags(&doc, "pi0"), ["DRIFT"], "{doc:#}");
    assert_eq!(row(&doc, "pi0")["expected_command"], "pi");
    assert_eq!(flags(&doc, "stray"), ["UNMANAGED"], "{doc:#}");
    assert_eq!(row(&doc, "stray")["managed"], false);
    assert_eq!(flags(&doc, "reviewer0"), ["STALE"], "{doc:#}");
    assert_eq!(flags(&doc, "coder0"), Vec::<String>::new(), "{doc:#}");
    let lenient = f.ps(&["--stale-after", "100000"]);
    assert_eq!(flags(&lenient, "reviewer0"), Vec::<String>::new());
    // verify fails on DRIFT and STALE, naming each.
    let out = f.run(&["fleet", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(v.contains("DRIFT pi0"), "{}", text(&out));
    assert!(v.contains("STALE reviewer0"), "{}", text(&out));
    assert!(!v.contains("coder0:"), "{}", text(&out));
    let out = f.run(&["fleet", "verify", "--stale-after", "100000"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("STALE"));
    // The drifting agent leaves: remove stops and disables its unit.
    f.ok(&["fleet", "remove", "pi0"]);
    let _ = um
        .tmux(Some(SOCKET))
        .args(["kill-session", "-t", "=pi0"])
        .output();

    // A killed runtime is restarted (restart: on-failure) in the same pane,
    // in the same unit, and counted.
    let pid = row(&doc, "coder0")["pane_pid"].as_u64().unwrap();
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut doc = Value::Null;
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            doc = f.ps(&[]);
            let r = row(&doc, "coder0");
            // ... and back at its prompt (its screen read by the adapter):
            // a send to a runtime still starting is refused, rightly.
            r["restarts"] == 1
                && r["state"] == "running"
                && r["pane_pid"].as_u64() != Some(pid)
                && r["screen"] == "idle"
        }),
        "not restarted: {doc:#}"
    );
    let new_pid = row(&doc, "coder0")["pane_pid"].as_u64().unwrap();
    assert!(cgroup_of(new_pid).ends_with("/mosaic-agent@coder0.service"));
    f.ok(&["agent", "send", "coder0", "-m", "back again", "--verify"]);
    let table = String::from_utf8_lossy(&f.ok(&["fleet", "ps"]).stdout).into_owned();
    let line = table.lines().find(|l| l.starts_with("coder0 ")).unwrap();
    let header = table.lines().next().unwrap();
    let at = header.find("RESTARTS").unwrap();
    assert_eq!(line[at..].split_whitespace().next(), Some("1"), "{table}");

    // DEAD: with restart: never the killed runtime stays dead.
    let env = f.env_file("coder0");
    let body = std::fs::read_to_string(&env).unwrap();
    std::fs::write(
        &env,
        body.replace(
            "MOSAIC_AGENT_RESTART=on-failure",
            "MOSAIC_AGENT_RESTART=never",
        ),
    )
    .unwrap();
    f.ok(&["fleet", "restart", "coder0"]);
    let doc = f.ps(&[]);
    assert_eq!(
        row(&doc, "coder0")["restarts"],
        0,
        "a unit start counts from 0: {doc:#}"
    );
    let pid = row(&doc, "coder0")["pane_pid"].as_u64().unwrap();
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut doc = Value::Null;
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            doc = f.ps(&[]);
            row(&doc, "coder0")["state"] == "dead"
        }),
        "{doc:#}"
    );
    assert_eq!(flags(&doc, "coder0"), ["DEAD"], "{doc:#}");
    assert_eq!(row(&doc, "coder0")["restarts"], 0, "{doc:#}");
    let out = f.run(&[
        "agent",
        "send",
        "coder0",
        "-m",
        "are you there",
        "--verify",
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        // The dead pane stays (remain-on-exit) with the runtime's last screen.
        String::from_utf8_lossy(&out.stderr).contains("the pane of agent coder0 is dead"),
        "{}",
        text(&out)
    );
    let out = f.run(&["fleet", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DEAD coder0"),
        "{}",
        text(&out)
    );
    // `fleet start` brings the dead agent back although its unit is still
    // active; nothing else is restarted.
    let lead_pid = row(&doc, "lead")["pane_pid"].as_u64().unwrap();
    f.ok(&["fleet", "start", "coder0"]);
    f.ok(&["fleet", "verify", "--stale-after", "100000"]);
    let doc = f.ps(&[]);
    assert_eq!(row(&doc, "coder0")["state"], "running", "{doc:#}");
    assert_eq!(row(&doc, "lead")["pane_pid"].as_u64(), Some(lead_pid));
    // Restart brings that one agent back too; nothing else is restarted.
    let r = json_contract::parse(&f.ok(&["fleet", "restart", "coder0", "--json"]).stdout).unwrap();
    assert_eq!(
        r["units"],
        serde_json::json!(["mosaic-agent@coder0.service"]),
        "{r:#}"
    );
    f.ok(&["fleet", "verify", "--stale-after", "100000"]);
    let doc = f.ps(&[]);
    assert_eq!(row(&doc, "coder0")["state"], "running", "{doc:#}");
    assert_eq!(row(&doc, "lead")["pane_pid"].as_u64(), Some(lead_pid));

    // Stop: the fleet's server goes, the operator's default server stays,
    // and no process of any runtime is left (lead's daemon included).
    let doc = f.ps(&[]);
    let runtimes: Vec<u64> = ["lead", "coder0", "reviewer0"]
        .iter()
        .map(|a| row(&doc, a)["pane_pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids_running(&format!("sleep {DAEMON_SECS}")).len(), 1);
    f.ok(&["fleet", "stop"]);
    let left: Vec<u64> = runtimes
        .iter()
        .copied()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .chain(pids_running(&format!("sleep {DAEMON_SECS}")))
        .collect();
    assert!(left.is_empty(), "left after fleet stop: {left:?}");
    assert!(
        f.sessions(Some(SOCKET)).is_empty(),
        "{:?}",
        f.sessions(Some(SOCKET))
    );
    assert_eq!(f.sessions(None), ["mine"]);
    let out = um.systemctl(&[
        "is-active",
        "mosaic-tmux-holder.service",
        "mosaic-agent@reviewer0.service",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\nactive"),
        "{}",
        text(&out)
    );
    let doc = f.ps(&[]);
    assert_eq!(row(&doc, "reviewer0")["state"], "stopped", "{doc:#}");
}

/// Opens a pty; returns (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let mut master = 0;
    let mut slave = 0;
    let ws = libc::winsize {
        ws_row: 20,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two descriptors we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Starts `mosaic agent watch NAME` on a fresh pty.
fn watch_on_pty(f: &Fleet, name: &str) -> (std::process::Child, std::thread::JoinHandle<()>) {
    let (master, slave) = openpty();
    let mut c = f.cmd(&["agent", "watch", name]);
    c.env("TERM", "xterm")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and TIOCSCTTY are async-signal-safe; the pty is fd 0.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = c.spawn().unwrap();
    drop(c);
    // Drain the terminal so tmux never blocks on output.
    let drain = std::thread::spawn(move || {
        use std::io::Read;
        let mut m = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        while matches!(m.read(&mut buf), Ok(n) if n > 0) {}
    });
    (child, drain)
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn viewers(f: &Fleet) -> Vec<String> {
    f.sessions(Some(SOCKET))
        .into_iter()
        .filter(|s| s.contains("-watch-"))
        .collect()
}

fn watch_checks(f: &Fleet) {
    let size = |f: &Fleet| {
        let out =
            f.um.tmux(Some(SOCKET))
                .args([
                    "display-message",
                    "-p",
                    "-t",
                    "=lead:0",
                    "#{window_width}x#{window_height}",
                ])
                .output()
                .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = size(f);

    // Exit path 1: a signal (Ctrl-C from outside, SIGTERM, SIGHUP all alike).
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (mut child, drain) = watch_on_pty(f, "lead");
        let viewer = format!("lead-watch-{}", child.id());
        let up = common::wait_until(Duration::from_secs(10), || viewers(f).contains(&viewer));
        if !up {
            let _ = child.kill();
            panic!(
                "viewer {viewer} never appeared: {:?}",
                f.sessions(Some(SOCKET))
            );
        }
        // Attached read-only, ignoring size; the agent's window keeps its size.
        assert!(common::wait_until(Duration::from_secs(5), || {
            let out =
                f.um.tmux(Some(SOCKET))
                    .args(["list-clients", "-F", "#{client_session} #{client_flags}"])
                    .output()
                    .unwrap();
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            s.lines().any(|l| {
                l.starts_with(&viewer) && l.contains("read-only") && l.contains("ignore-size")
            })
        }));
        assert_eq!(size(f), before, "the agent's window was resized");
        // SAFETY: signalling the child we started.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
        let st =
            wait_exit(&mut child, Duration::from_secs(10)).expect("watch did not exit on a signal");
        assert!(!st.success());
        assert!(
            viewers(f).is_empty(),
            "viewer left behind after signal {sig}: {:?}",
            viewers(f)
        );
        let _ = drain.join();
    }

    // Exit path 2: the client detaches (the operator's prefix-d).
    let (mut child, drain) = watch_on_pty(f, "lead");
    let viewer = format!("lead-watch-{}", child.id());
    assert!(common::wait_until(Duration::from_secs(10), || viewers(f).contains(&viewer)));
    assert!(common::wait_until(Duration::from_secs(5), || {
        f.um.tmux(Some(SOCKET))
            .args(["detach-client", "-s", &format!("={viewer}")])
            .status()
            .unwrap()
            .success()
    }));
    wait_exit(&mut child, Duration::from_secs(10)).expect("watch did not exit after detach");
    assert!(
        viewers(f).is_empty(),
        "viewer left behind after detach: {:?}",
        viewers(f)
    );
    let _ = drain.join();

    // Exit path 3: mosaic killed with SIGKILL (nothing can run): the viewer
    // stays until the next watch of that agent sweeps it.
    let (mut child, drain) = watch_on_pty(f, "lead");
    let stale = format!("lead-watch-{}", child.id());
    assert!(common::wait_until(Duration::from_secs(10), || viewers(f).contains(&stale)));
    child.kill().unwrap();
    child.wait().unwrap();
    let _ =
        f.um.tmux(Some(SOCKET))
            .args(["detach-client", "-s", &format!("={stale}")])
            .status();
    let _ = drain.join();
    let (mut child, drain) = watch_on_pty(f, "lead");
    let viewer = format!("lead-watch-{}", child.id());
    assert!(
        common::wait_until(Duration::from_secs(10), || viewers(f) == [viewer.clone()]),
        "{:?}",
        viewers(f)
    );
    // SAFETY: signalling the child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGHUP);
    }
    wait_exit(&mut child, Duration::from_secs(10)).expect("watch did not exit on SIGHUP");
    let _ = drain.join();
    assert!(viewers(f).is_empty(), "{:?}", viewers(f));
    assert_eq!(size(f), before, "the agent's window was resized");

    // Exit path 4: no terminal at all: refused before any viewer exists.
    let out = f.run(&["agent", "watch", "lead"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a terminal"),
        "{}",
        text(&out)
    );
    assert!(viewers(f).is_empty());
    assert!(Path::new(&f.h).exists());
}
