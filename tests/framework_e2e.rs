//! The shipped fleet runtime files against the real programs (issue 3):
//!
//! * `fleet_on_named_socket` / `fleet_on_default_socket`: a private systemd
//!   user manager runs the shipped units (holder + two agents running
//!   `stub-agent`); a message goes in with `agent-send.sh` and its ACK comes
//!   back in the pane; heartbeats are refreshed; stopping the holder removes
//!   the fleet and nothing else on the operator's default tmux server.
//! * the remaining tests drive the scripts directly against a real tmux in a
//!   private `TMUX_TMPDIR` (runtime command lines, exact targets, quoting,
//!   heartbeat wrapper semantics, stub-agent).
//!
//! Without tmux/systemd/root they skip with a reason; with
//! `MOSAIC_REQUIRE_REAL=1` they fail instead.

mod common;

use common::{TmuxEnv, UserManager};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const SOURCE: &str = "e2e:test";

/// Something that hands out tmux commands and other commands bound to one
/// private `TMUX_TMPDIR`.
trait Tmux {
    fn tmux_cmd(&self, socket: Option<&str>) -> Command;
    fn cmd(&self, program: &Path) -> Command;
}

impl Tmux for TmuxEnv {
    fn tmux_cmd(&self, socket: Option<&str>) -> Command {
        self.tmux(socket)
    }
    fn cmd(&self, program: &Path) -> Command {
        self.command(program)
    }
}

impl Tmux for UserManager {
    fn tmux_cmd(&self, socket: Option<&str>) -> Command {
        self.tmux(socket)
    }
    fn cmd(&self, program: &Path) -> Command {
        self.command(program)
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    common::run_with_timeout(cmd, Duration::from_secs(60)).expect("spawn")
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

fn sessions(t: &dyn Tmux, socket: Option<&str>) -> Option<Vec<String>> {
    let out = run(t
        .tmux_cmd(socket)
        .args(["list-sessions", "-F", "#{session_name}"]));
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
}

fn capture(t: &dyn Tmux, socket: Option<&str>, name: &str) -> String {
    let out = run(t.tmux_cmd(socket).args([
        "capture-pane",
        "-p",
        "-J",
        "-S",
        "-500",
        "-t",
        &format!("={name}:0.0"),
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pane_field(t: &dyn Tmux, socket: Option<&str>, name: &str, field: &str) -> String {
    let out = ok(t.tmux_cmd(socket).args([
        "display-message",
        "-p",
        "-t",
        &format!("={name}:0.0"),
        field,
    ]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for_pane(t: &dyn Tmux, socket: Option<&str>, name: &str, needle: &str) {
    let found = common::wait_until(Duration::from_secs(15), || {
        capture(t, socket, name).contains(needle)
    });
    assert!(
        found,
        "pane {name} never showed {needle:?}; it shows:\n{}",
        capture(t, socket, name)
    );
}

fn read_hb(h: &Path, name: &str) -> Value {
    let path = h.join(format!("fleet/run/{name}.hb"));
    let raw =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        raw.ends_with('\n') && raw.trim_end().lines().count() == 1,
        "{name}.hb must be one JSON line: {raw:?}"
    );
    let v: Value = serde_json::from_str(raw.trim_end())
        .unwrap_or_else(|e| panic!("{name}.hb is not JSON ({e}): {raw:?}"));
    let obj = v.as_object().expect("object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "{name}.hb keys: {keys:?}");
    assert_eq!(v["v"], 1, "{raw}");
    assert_eq!(v["agent"], name, "{raw}");
    assert!(v["ts"].as_u64().is_some(), "{raw}");
    assert!(v["pid"].as_u64().is_some(), "{raw}");
    assert!(v["state"] == "idle" || v["state"] == "busy", "{raw}");
    v
}

fn hb_ts(h: &Path, name: &str) -> u64 {
    read_hb(h, name)["ts"].as_u64().unwrap()
}

fn write_exec(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Agent<'a> {
    name: &'a str,
    runtime: &'a str,
    model: &'a str,
    command: Option<String>,
}

/// H/fleet/agents/NAME.env as `mosaic fleet install` writes it (empty values
/// bare), plus the operator's MOSAIC_AGENT_COMMAND when given.
fn write_agent_env(h: &Path, home: &Path, socket: &str, a: &Agent) {
    let mut s = String::new();
    s.push_str("# written by the framework e2e test\n");
    s.push_str(&format!("MOSAIC_HOME={}\n", h.display()));
    s.push_str(&format!("MOSAIC_AGENT_NAME={}\n", a.name));
    s.push_str(&format!("MOSAIC_AGENT_RUNTIME={}\n", a.runtime));
    s.push_str("MOSAIC_AGENT_CLASS=implementer\n");
    s.push_str(&format!("MOSAIC_AGENT_MODEL={}\n", a.model));
    s.push_str(&format!("MOSAIC_AGENT_WORKDIR={}\n", home.display()));
    s.push_str(&format!("MOSAIC_TMUX_SOCKET={socket}\n"));
    s.push_str("MOSAIC_TENANT_ID=ops\n");
    s.push_str("MOSAIC_HEARTBEAT_INTERVAL=1\n");
    if let Some(c) = &a.command {
        s.push_str(&format!("MOSAIC_AGENT_COMMAND={c}\n"));
    }
    let dir = h.join("fleet/agents");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.env", a.name));
    std::fs::write(&path, s).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A stand-in for a real runtime binary: shows its argv, then becomes the
/// stub agent (exec, so the pane process stays the runtime).
fn fake_runtime(bin_dir: &Path, runtime: &str) {
    write_exec(
        &bin_dir.join(runtime),
        &format!(
            "#!/usr/bin/env bash\nset -euo pipefail\necho \"FAKE {runtime} ARGS:[$*]\"\nexec \"$MOSAIC_HOME/tools/fleet/stub-agent\"\n"
        ),
    );
}

fn agent_send(t: &dyn Tmux, h: &Path, socket: Option<&str>, session: &str, msg: &str) -> Output {
    let mut cmd = t.cmd(&h.join("tools/tmux/agent-send.sh"));
    if let Some(s) = socket {
        cmd.args(["-L", s]);
    }
    cmd.args(["-S", SOURCE, "-s", session, "-m", msg]);
    run(&mut cmd)
}

fn is_active(um: &UserManager, unit: &str) -> String {
    let out = um.systemctl(&["is-active", unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The whole fleet life cycle under a private systemd user manager.
fn fleet_lifecycle(socket: Option<&str>) {
    let Some(um) = UserManager::start() else {
        return;
    };
    let h = um.config_home().join("mosaic");
    common::install_framework(&h);
    let unit_dir = um.unit_dir();
    std::fs::create_dir_all(&unit_dir).unwrap();
    for unit in ["mosaic-tmux-holder.service", "mosaic-agent@.service"] {
        std::fs::copy(h.join("systemd/user").join(unit), unit_dir.join(unit)).unwrap();
    }
    // The holder's socket. With no socket the file is left out entirely:
    // absent means the default server, never an assumed mosaic-fleet.
    std::fs::create_dir_all(h.join("fleet/agents")).unwrap();
    if let Some(s) = socket {
        std::fs::write(
            h.join("fleet/agents/_holder.env"),
            format!("MOSAIC_TMUX_SOCKET={s}\nMOSAIC_HOLDER_SESSION=_holder\n"),
        )
        .unwrap();
    }
    let sock = socket.unwrap_or("");
    // alpha: the operator's MOSAIC_AGENT_COMMAND replaces the runtime (claude
    // is not even installed). beta: the runtime command line itself, with
    // --model from MOSAIC_AGENT_MODEL, found in ~/.local/bin.
    let stub = h.join("tools/fleet/stub-agent").display().to_string();
    write_agent_env(
        &h,
        um.home(),
        sock,
        &Agent {
            name: "alpha",
            runtime: "claude",
            model: "",
            command: Some(stub),
        },
    );
    write_agent_env(
        &h,
        um.home(),
        sock,
        &Agent {
            name: "beta",
            runtime: "codex",
            model: "gpt-test",
            command: None,
        },
    );
    fake_runtime(&um.home().join(".local/bin"), "codex");

    // The operator's own session on the default server, before the fleet.
    ok(um
        .tmux(None)
        .args(["new-session", "-d", "-s", "operator", "sleep 600"]));

    let sctl = |args: &[&str]| {
        let out = um.systemctl(args);
        assert!(
            out.status.success(),
            "systemctl --user {args:?} failed:\n{}\n{}\n{}\n{}",
            text(&out),
            um.status("mosaic-tmux-holder.service"),
            um.status("mosaic-agent@alpha.service"),
            um.status("mosaic-agent@beta.service")
        );
    };
    sctl(&["daemon-reload"]);
    sctl(&["start", "mosaic-tmux-holder.service"]);
    sctl(&[
        "start",
        "mosaic-agent@alpha.service",
        "mosaic-agent@beta.service",
    ]);
    for unit in [
        "mosaic-tmux-holder.service",
        "mosaic-agent@alpha.service",
        "mosaic-agent@beta.service",
    ] {
        assert_eq!(is_active(&um, unit), "active", "{}", um.status(unit));
    }

    let listed = sessions(&um, socket).expect("the fleet socket has a server");
    for s in ["_holder", "alpha", "beta"] {
        assert!(listed.contains(&s.to_string()), "{s} not in {listed:?}");
    }
    match socket {
        // The fleet server is its own: the operator's session is elsewhere.
        Some(_) => assert!(!listed.contains(&"operator".to_string()), "{listed:?}"),
        None => assert!(listed.contains(&"operator".to_string()), "{listed:?}"),
    }

    wait_for_pane(&um, socket, "alpha", "stub-agent alpha ready");
    wait_for_pane(&um, socket, "beta", "FAKE codex ARGS:[--model gpt-test]");
    wait_for_pane(&um, socket, "beta", "stub-agent beta ready");

    // The pane's process is the runtime itself (the heartbeat wrapper
    // exec'd it) and it is the pid the heartbeat reports.
    for name in ["alpha", "beta"] {
        assert_eq!(
            pane_field(&um, socket, name, "#{pane_current_command}"),
            "stub-agent",
            "pane {name}"
        );
        let pane_pid: u64 = pane_field(&um, socket, name, "#{pane_pid}")
            .parse()
            .unwrap();
        let ok_pid = common::wait_until(Duration::from_secs(10), || {
            h.join(format!("fleet/run/{name}.hb")).exists()
                && read_hb(&h, name)["pid"].as_u64() == Some(pane_pid)
        });
        assert!(
            ok_pid,
            "{name}.hb pid != pane pid {pane_pid}: {:?}",
            read_hb(&h, name)
        );
    }

    // Deliver a message and see it acknowledged.
    let out = agent_send(&um, &h, socket, "alpha", "hello alpha 1");
    assert!(out.status.success(), "agent-send: {}", text(&out));
    wait_for_pane(&um, socket, "alpha", "ACK [from e2e:test] hello alpha 1");
    let out = agent_send(&um, &h, socket, "=beta", "hello beta; 2;");
    assert!(out.status.success(), "agent-send: {}", text(&out));
    wait_for_pane(&um, socket, "beta", "ACK [from e2e:test] hello beta; 2;");
    assert!(
        !capture(&um, socket, "alpha").contains("hello beta"),
        "a message for beta reached alpha"
    );

    // A session that does not exist: one line, non-zero.
    let out = agent_send(&um, &h, socket, "alph", "nobody");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no tmux session 'alph'"), "{err}");

    // Heartbeats are refreshed.
    for name in ["alpha", "beta"] {
        let t0 = hb_ts(&h, name);
        let fresh = common::wait_until(Duration::from_secs(10), || hb_ts(&h, name) > t0);
        assert!(fresh, "{name}.hb ts stayed at {t0}");
    }

    // Idempotent start: the session is left alone.
    let pid_before = pane_field(&um, socket, "alpha", "#{pane_pid}");
    let out = ok(um
        .command(h.join("tools/fleet/start-agent-session.sh"))
        .arg("alpha"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already running"),
        "{}",
        text(&out)
    );
    // Restarting the holder restarts the agents (PartOf=), no extra start.
    sctl(&["restart", "mosaic-tmux-holder.service"]);
    for unit in ["mosaic-agent@alpha.service", "mosaic-agent@beta.service"] {
        let up = common::wait_until(Duration::from_secs(15), || is_active(&um, unit) == "active");
        assert!(up, "{unit} not restarted:\n{}", um.status(unit));
    }
    wait_for_pane(&um, socket, "alpha", "stub-agent alpha ready");
    wait_for_pane(&um, socket, "beta", "stub-agent beta ready");
    assert_ne!(
        pane_field(&um, socket, "alpha", "#{pane_pid}"),
        pid_before,
        "restarting the holder restarts the agents bound to it"
    );

    // An unmanaged session on the fleet's own socket goes down with its
    // server; on the default server nothing but the fleet's sessions may go.
    if let Some(s) = socket {
        ok(um
            .tmux(Some(s))
            .args(["new-session", "-d", "-s", "stray", "sleep 600"]));
    }

    // Stop everything through the holder.
    sctl(&["stop", "mosaic-tmux-holder.service"]);
    for unit in [
        "mosaic-tmux-holder.service",
        "mosaic-agent@alpha.service",
        "mosaic-agent@beta.service",
    ] {
        assert_ne!(is_active(&um, unit), "active", "{} still active", unit);
    }
    match socket {
        Some(s) => {
            let out = run(um.tmux(Some(s)).arg("ls"));
            assert!(
                !out.status.success(),
                "the {s} server survived the holder's stop:\n{}",
                text(&out)
            );
        }
        None => {
            let left = sessions(&um, None).expect("the default server is still up");
            for s in ["_holder", "alpha", "beta"] {
                assert!(!left.contains(&s.to_string()), "{s} survived: {left:?}");
            }
        }
    }
    // The operator's session on the default socket is untouched.
    let left = sessions(&um, None).expect("the default server must survive");
    assert_eq!(left, ["operator"], "default server sessions after stop");

    if socket.is_none() {
        // No -L anywhere: the only server socket ever created is "default".
        let mut names = Vec::new();
        for d in std::fs::read_dir(um.tmux_tmpdir()).unwrap().flatten() {
            for s in std::fs::read_dir(d.path()).unwrap().flatten() {
                names.push(s.file_name().to_string_lossy().into_owned());
            }
        }
        assert_eq!(names, ["default"], "tmux sockets created");
    }

    // The heartbeat loops ended with their runtimes: beats go stale.
    std::thread::sleep(Duration::from_millis(1500));
    let t_alpha = hb_ts(&h, "alpha");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        hb_ts(&h, "alpha"),
        t_alpha,
        "alpha.hb still refreshed after stop"
    );
}

#[test]
fn fleet_on_named_socket() {
    fleet_lifecycle(Some("mosaic-fleet"));
}

#[test]
fn fleet_on_default_socket() {
    fleet_lifecycle(None);
}

// ---------------------------------------------------------------------------
// The scripts against a real tmux, without systemd.

struct Bench {
    tmux: TmuxEnv,
    home: tempfile::TempDir,
    h: PathBuf,
}

impl Bench {
    fn new() -> Option<Bench> {
        let tmux = TmuxEnv::new()?;
        let home = tempfile::Builder::new()
            .prefix("mosaic-home")
            .tempdir()
            .unwrap();
        let h = home.path().join(".config/mosaic");
        common::install_framework(&h);
        Some(Bench { tmux, home, h })
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// A framework script with HOME and MOSAIC_HOME of this bench.
    fn script(&self, rel: &str) -> Command {
        let mut cmd = self.tmux.command(self.h.join(rel));
        cmd.env("HOME", self.home()).env("MOSAIC_HOME", &self.h);
        cmd
    }

    fn stub(&self) -> String {
        self.h.join("tools/fleet/stub-agent").display().to_string()
    }
}

#[test]
fn start_agent_session_builds_each_runtime_command() {
    let Some(b) = Bench::new() else { return };
    let sock = "t-fleet";
    let bin = b.home().join(".local/bin");
    let cases = [
        ("rt-claude", "claude", "m-1", "[--model m-1]"),
        ("rt-codex", "codex", "", "[]"),
        ("rt-pi", "pi", "prov/model-x", "[--model prov/model-x]"),
        ("rt-opencode", "opencode", "oc/y", "[--model oc/y]"),
    ];
    for (name, runtime, model, _) in cases {
        fake_runtime(&bin, runtime);
        write_agent_env(
            &b.h,
            b.home(),
            sock,
            &Agent {
                name,
                runtime,
                model,
                command: None,
            },
        );
        let out = ok(b.script("tools/fleet/start-agent-session.sh").arg(name));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("started"),
            "{}",
            text(&out)
        );
    }
    for (name, runtime, _, args) in cases {
        wait_for_pane(
            &b.tmux,
            Some(sock),
            name,
            &format!("FAKE {runtime} ARGS:{args}"),
        );
        wait_for_pane(
            &b.tmux,
            Some(sock),
            name,
            &format!("stub-agent {name} ready"),
        );
        // The session's environment reaches the runtime.
        let out = ok(b.tmux.tmux(Some(sock)).args([
            "show-environment",
            "-t",
            &format!("={name}"),
            "MOSAIC_AGENT_NAME",
        ]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("MOSAIC_AGENT_NAME={name}")
        );
    }
    // Nothing landed on the default server.
    assert!(
        sessions(&b.tmux, None).is_none(),
        "a default server was started"
    );

    // Idempotent: a second start leaves the running session alone.
    let pid = pane_field(&b.tmux, Some(sock), "rt-pi", "#{pane_pid}");
    let out = ok(b.script("tools/fleet/start-agent-session.sh").arg("rt-pi"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already running"));
    assert_eq!(pane_field(&b.tmux, Some(sock), "rt-pi", "#{pane_pid}"), pid);

    // stop-agent-session.sh kills exactly that session.
    ok(b.script("tools/fleet/stop-agent-session.sh").arg("rt-pi"));
    let left = sessions(&b.tmux, Some(sock)).unwrap();
    assert!(!left.contains(&"rt-pi".to_string()), "{left:?}");
    assert_eq!(left.len(), 3, "{left:?}");
    // Stopping a session that is gone is fine.
    ok(b.script("tools/fleet/stop-agent-session.sh").arg("rt-pi"));
}

#[test]
fn start_agent_session_refuses_bad_input() {
    let Some(b) = Bench::new() else { return };
    let expect_fail = |cmd: &mut Command, needle: &str| {
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "expected {needle:?} in:\n{}",
            text(&out)
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
    };
    for bad in ["../x", "Bad", "a b", "x;y", "_holder"] {
        expect_fail(
            b.script("tools/fleet/start-agent-session.sh").arg(bad),
            "invalid agent name",
        );
    }
    expect_fail(
        b.script("tools/fleet/start-agent-session.sh").arg("ghost"),
        "ghost.env is missing",
    );
    let agent = |name, runtime, command: Option<String>| Agent {
        name,
        runtime,
        model: "",
        command,
    };
    write_agent_env(&b.h, b.home(), "t-bad", &agent("odd", "gpt", None));
    expect_fail(
        b.script("tools/fleet/start-agent-session.sh").arg("odd"),
        "unknown runtime 'gpt'",
    );
    // A runtime that is not installed is an error, not a dead pane.
    if let Some(missing) = ["opencode", "pi", "codex", "claude"]
        .into_iter()
        .find(|r| common::which(r).is_none())
    {
        write_agent_env(&b.h, b.home(), "t-bad", &agent("absent", missing, None));
        expect_fail(
            b.script("tools/fleet/start-agent-session.sh").arg("absent"),
            "is not on PATH",
        );
    }
    write_agent_env(
        &b.h,
        b.home(),
        "t-bad",
        &agent("lost", "pi", Some(b.stub())),
    );
    let env = b.h.join("fleet/agents/lost.env");
    let body = std::fs::read_to_string(&env).unwrap().replace(
        &format!("MOSAIC_AGENT_WORKDIR={}", b.home().display()),
        "MOSAIC_AGENT_WORKDIR=~/no/such/dir",
    );
    std::fs::write(&env, body).unwrap();
    expect_fail(
        b.script("tools/fleet/start-agent-session.sh").arg("lost"),
        "does not exist",
    );
    assert!(sessions(&b.tmux, Some("t-bad")).is_none_or(|s| s.is_empty()));
}

#[test]
fn agent_send_targets_exactly_and_types_literally() {
    let Some(b) = Bench::new() else { return };
    let sock = "t-send";
    for name in ["alpha", "alpha2"] {
        write_agent_env(
            &b.h,
            b.home(),
            sock,
            &Agent {
                name,
                runtime: "claude",
                model: "",
                command: Some(b.stub()),
            },
        );
        ok(b.script("tools/fleet/start-agent-session.sh").arg(name));
        wait_for_pane(
            &b.tmux,
            Some(sock),
            name,
            &format!("stub-agent {name} ready"),
        );
    }
    let send = |session: &str, msg: &str| agent_send(&b.tmux, &b.h, Some(sock), session, msg);

    // Exact targets: "alph" is nobody, even though alpha and alpha2 exist.
    let out = send("alph", "x");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    for (msg, ack) in [
        ("plain words", "ACK [from e2e:test] plain words"),
        ("ends with;", "ACK [from e2e:test] ends with;"),
        ("-x --flag", "ACK [from e2e:test] -x --flag"),
        ("tab\there\nnewline", "ACK [from e2e:test] tab here newline"),
        (
            "$HOME `id` \"q\" 'q' \\;",
            "ACK [from e2e:test] $HOME `id` \"q\" 'q' \\;",
        ),
    ] {
        let out = send("alpha", msg);
        assert!(out.status.success(), "{}", text(&out));
        assert!(out.stdout.is_empty(), "quiet on success: {}", text(&out));
        wait_for_pane(&b.tmux, Some(sock), "alpha", ack);
    }
    let out = send("=alpha2", "for two");
    assert!(out.status.success(), "{}", text(&out));
    wait_for_pane(&b.tmux, Some(sock), "alpha2", "ACK [from e2e:test] for two");
    assert!(!capture(&b.tmux, Some(sock), "alpha").contains("for two"));
    assert!(!capture(&b.tmux, Some(sock), "alpha2").contains("plain words"));

    // send-message.sh: raw, no source tag.
    ok(b.script("tools/tmux/send-message.sh")
        .args(["-L", sock, "-t", "alpha2", "-m", "/clear"]));
    wait_for_pane(&b.tmux, Some(sock), "alpha2", "ACK /clear");
    ok(b.script("tools/tmux/send-message.sh").args([
        "-L",
        sock,
        "-t",
        "=alpha2:0.0",
        "-m",
        "raw;",
    ]));
    wait_for_pane(&b.tmux, Some(sock), "alpha2", "ACK raw;");
    let out = run(b
        .script("tools/tmux/send-message.sh")
        .args(["-L", sock, "-t", "alph", "-m", "x"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Usage errors exit 2.
    for args in [
        vec!["-s", "alpha", "-m", "x"],
        vec!["-S", "me", "-m", "x"],
        vec!["-S", "me", "-s", "alpha"],
        vec!["-S", "me", "-s", "a:b", "-m", "x"],
        vec!["-L", "bad/sock", "-S", "me", "-s", "alpha", "-m", "x"],
    ] {
        let out = run(b.script("tools/tmux/agent-send.sh").args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // The default server was never touched.
    assert!(
        sessions(&b.tmux, None).is_none(),
        "a default server was started"
    );
}

#[test]
fn heartbeat_wrapper_execs_the_runtime_and_keeps_beating() {
    let Some(b) = Bench::new() else { return };
    // One-shot beat.
    ok(b.script("tools/fleet/heartbeat")
        .args(["--once", "--state", "busy", "--pid", "4242", "solo"]));
    let raw = std::fs::read_to_string(b.h.join("fleet/run/solo.hb")).unwrap();
    let v = read_hb(&b.h, "solo");
    assert_eq!(
        raw,
        format!(
            "{{\"v\":1,\"agent\":\"solo\",\"ts\":{},\"pid\":4242,\"state\":\"busy\"}}\n",
            v["ts"]
        )
    );
    for bad in [
        vec!["--once", "--state", "asleep", "solo"],
        vec!["--once", "../x"],
        vec!["solo"],
    ] {
        let out = run(b.script("tools/fleet/heartbeat").args(&bad));
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
    }

    // Wrapper: same pid as the runtime, env exported, refreshed, and the
    // loop dies with the runtime.
    let child = b
        .script("tools/fleet/heartbeat")
        .args([
            "--interval",
            "1",
            "wrapped",
            "--",
            "bash",
            "-c",
            "echo \"$$ $MOSAIC_AGENT_NAME $MOSAIC_HEARTBEAT_WRAPPED\"; echo busy > \"$MOSAIC_HOME/fleet/run/wrapped.state\"; sleep 3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = u64::from(child.id());
    let t0 = {
        assert!(common::wait_until(Duration::from_secs(5), || b
            .h
            .join("fleet/run/wrapped.hb")
            .exists()));
        let v = read_hb(&b.h, "wrapped");
        assert_eq!(v["pid"].as_u64(), Some(pid), "hb pid is the runtime's pid");
        v["ts"].as_u64().unwrap()
    };
    assert!(
        common::wait_until(Duration::from_secs(5), || {
            let v = read_hb(&b.h, "wrapped");
            v["ts"].as_u64().unwrap() > t0 && v["state"] == "busy"
        }),
        "the wrapper refreshes and reports the runtime's busy state"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{pid} wrapped 1"),
        "the runtime runs in the wrapper's process (exec), with the agent env"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let t_end = hb_ts(&b.h, "wrapped");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        hb_ts(&b.h, "wrapped"),
        t_end,
        "beats after the runtime ended"
    );
    // Only the beat files are left: no temp files.
    let mut left: Vec<String> = std::fs::read_dir(b.h.join("fleet/run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["solo.hb", "wrapped.hb", "wrapped.state"]);
}

#[test]
fn stub_agent_acknowledges_each_line() {
    let Some(b) = Bench::new() else { return };
    let mut child = b
        .script("tools/fleet/stub-agent")
        .arg("s1")
        .env("MOSAIC_HEARTBEAT_INTERVAL", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n  spaced  \n[from x] y\n").unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        stdin.write_all(b"last without newline").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("stub-agent s1 ready\n> "), "{stdout}");
    for line in [
        "ACK hello\n",
        "ACK   spaced  \n",
        "ACK [from x] y\n",
        "ACK last without newline\n",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in {stdout:?}");
    }
    let v = read_hb(&b.h, "s1");
    assert_eq!(v["state"], "idle");
}
