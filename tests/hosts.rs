//! Fleets across hosts (SPEC §12) against real sshd hosts on this machine
//! (see `tests/hosts_support`): `fleet ps` joins local and remote agents
//! with one connection per host and per-host status (ok, UNREACHABLE for a
//! refused port, TIMEOUT for a blackholed address, AUTH for a changed host
//! key); `fleet verify` fails on them; `agent send`/`tail` carry unicode,
//! quotes, `$(…)`, backticks and a leading `-` intact over bash, dash and
//! zsh login shells; a shared roster installs only this host's agents.
//!
//! Needs root, sshd, unshare, nsenter, ip, tmux, dash and zsh: skips with a
//! printed reason elsewhere, fails under `MOSAIC_REQUIRE_REAL=1`.

mod common;
mod hosts_support;
mod json_contract;

use hosts_support::{HostSpec, Rig};
use serde_json::Value;
use std::time::Duration;

const ROSTER: &str = "version: 1
tmux:
  socket_name: mosaic-fleet
hosts:
  HostA: { ssh: hosta }
  hostb: { ssh: root@hostb, tenant: bteam }
  hostc: { ssh: hostc }
  down: { ssh: down }
  hole: { ssh: hole }
  changed: { ssh: changed }
agents:
  - name: lead
    runtime: claude
  - name: a1
    runtime: codex
    host: hosta
  - name: a2
    runtime: codex
    host: HOSTA
  - name: b1
    runtime: pi
    host: hostb
  - name: c1
    runtime: claude
    host: hostc
  - name: d1
    runtime: codex
    host: down
  - name: h1
    runtime: codex
    host: hole
  - name: x1
    runtime: codex
    host: changed
";

fn declare_stub(home: &std::path::Path, agent: &str) {
    let dir = home.join("fleet/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(home.join("fleet/run")).unwrap();
    std::fs::write(
        dir.join(format!("{agent}.env")),
        format!(
            "MOSAIC_AGENT_NAME={agent}\nMOSAIC_AGENT_COMMAND={}/tools/fleet/stub-agent\n",
            home.display()
        ),
    )
    .unwrap();
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn record<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no record {name}: {doc}"))
}

fn host_view<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name}: {doc}"))
}

#[test]
fn fleet_across_real_sshd_hosts() {
    if let Some(why) = hosts_support::missing() {
        common::skip(&why);
        return;
    }
    let rig = Rig::start(&[
        HostSpec {
            name: "hosta",
            shell: "bash",
            netns: false,
            systemd: true,
        },
        HostSpec {
            name: "hostb",
            shell: "dash",
            netns: true,
            systemd: false,
        },
        HostSpec {
            name: "hostc",
            shell: "zsh",
            netns: false,
            systemd: false,
        },
    ]);
    let roster = rig.write_roster(ROSTER);
    let roster = roster.to_str().unwrap();
    // The agents: lead here; a1, a2 on hosta; b1 on hostb; c1 on hostc.
    declare_stub(&rig.ctl_home(), "lead");
    {
        let home = rig.ctl_home().display().to_string();
        let _ = home;
        let mut t = rig.ctl_tmux("mosaic-fleet");
        hosts_support::start_stub(&mut t, &rig.ctl_home(), "lead");
    }
    for (host, agents) in [
        ("hosta", &["a1", "a2"][..]),
        ("hostb", &["b1"]),
        ("hostc", &["c1"]),
    ] {
        let h = rig.host(host);
        for a in agents {
            declare_stub(&h.home(), a);
            h.start_stub("mosaic-fleet", a);
        }
        let _ = h
            .tmux("mosaic-fleet")
            .args(["set-option", "-g", "remain-on-exit", "on"])
            .output();
    }
    // Kill a2's runtime: its pane stays (remain-on-exit), dead.
    let a = rig.host("hosta");
    let pid = String::from_utf8(
        a.tmux("mosaic-fleet")
            .args(["display-message", "-p", "-t", "=a2:0.0", "#{pane_pid}"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status();
    // Let the stubs write their first heartbeat.
    assert!(common::wait_until(Duration::from_secs(10), || {
        ["a1", "b1", "c1"].iter().all(|n| {
            let h = match *n {
                "a1" => rig.host("hosta"),
                "b1" => rig.host("hostb"),
                _ => rig.host("hostc"),
            };
            h.home().join(format!("fleet/run/{n}.hb")).exists()
        })
    }));

    // ---- fleet ps, cold: one connection per host, in parallel ----
    rig.close_masters();
    let before: Vec<usize> = rig.hosts.iter().map(|h| h.connections()).collect();
    let (out, cold) = rig.mosaic(&["fleet", "ps", "--json", "--roster", roster], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: Value =
        json_contract::parse(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let after: Vec<usize> = rig.hosts.iter().map(|h| h.connections()).collect();
    for (i, h) in rig.hosts.iter().enumerate() {
        assert_eq!(
            after[i] - before[i],
            1,
            "one connection to {} for a cold ps",
            h.name
        );
    }
    assert_eq!(record(&doc, "lead")["state"], "running", "{doc}");
    assert_eq!(record(&doc, "lead")["remote"], false);
    for n in ["a1", "b1", "c1"] {
        let r = record(&doc, n);
        assert_eq!(r["state"], "running", "{n}: {r}");
        assert_eq!(r["remote"], true);
        assert_eq!(r["host_status"], "ok");
        assert_eq!(r["current_command"], "stub-agent", "{r}");
        assert_eq!(r["flags"], serde_json::json!([]), "{n}: {r}");
        assert!(r["heartbeat"]["ts"].as_u64().is_some(), "{r}");
    }
    assert_eq!(record(&doc, "a1")["host"], "HostA");
    assert_eq!(record(&doc, "b1")["tenant_id"], "bteam");
    let a2 = record(&doc, "a2");
    assert_eq!(a2["state"], "dead", "{a2}");
    assert_eq!(a2["flags"], serde_json::json!(["DEAD"]));
    for (n, host, status) in [
        ("d1", "down", "UNREACHABLE"),
        ("h1", "hole", "TIMEOUT"),
        ("x1", "changed", "AUTH"),
    ] {
        let r = record(&doc, n);
        assert_eq!(r["state"], "unknown", "{r}");
        assert_eq!(r["flags"], serde_json::json!([status]), "{r}");
        let h = host_view(&doc, host);
        assert_eq!(h["status"], status, "{h}");
        let e = h["error"].as_str().unwrap();
        assert!(!e.contains('\n') && e.contains(host), "{e}");
    }
    let changed = host_view(&doc, "changed")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        changed.contains("ssh-keygen -R 'changed'") && changed.contains("ssh changed"),
        "{changed}"
    );
    assert!(!changed.contains("@@@"), "{changed}");
    let secs = |h: &str| host_view(&doc, h)["seconds"].as_f64().unwrap();
    assert!(
        secs("hole") >= 1.5 && secs("hole") < 6.0,
        "{}",
        secs("hole")
    );
    assert!(secs("HostA") < 5.0);

    // ---- warm: the masters carry the next ps, no new connection ----
    let before: Vec<usize> = rig.hosts.iter().map(|h| h.connections()).collect();
    let (out, warm) = rig.mosaic(&["fleet", "ps", "--json", "--roster", roster], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let warm_doc: Value = json_contract::parse(&out.stdout).unwrap();
    let after: Vec<usize> = rig.hosts.iter().map(|h| h.connections()).collect();
    assert_eq!(before, after, "a warm ps opens no connection");
    assert_eq!(host_view(&warm_doc, "changed")["status"], "AUTH");
    let warm_a = host_view(&warm_doc, "HostA")["seconds"].as_f64().unwrap();
    let (out, _) = rig.mosaic(&["fleet", "ps", "--roster", roster], &[]);
    let table = text(&out);
    assert!(table.contains("host hole (hole): TIMEOUT"), "{table}");
    assert!(table.contains("dead@HostA"), "{table}");
    eprintln!(
        "FIGURES fleet ps across hosts: cold {:.2}s, warm {:.2}s (hosta warm {warm_a:.2}s; hole {:.2}s, down {:.2}s, changed {:.2}s, hosta cold {:.2}s)",
        cold.as_secs_f64(),
        warm.as_secs_f64(),
        secs("hole"),
        secs("down"),
        secs("changed"),
        secs("HostA")
    );

    // ---- a runtime dir too long for ssh's control socket ----
    // ssh binds DIR/%C.XXXXXXXXXXXXXXXX (40 + 17 bytes) and a socket path
    // holds 107: below this dir it cannot, and every host was UNREACHABLE
    // ("unix_listener: ... too long for Unix domain socket"). mosaic keeps
    // its sockets in /tmp/mosaic-UID/ssh then (a private tmpfs here).
    let long = format!("/root/{}", "r".repeat(60));
    let out = rig.mosaic_private_tmp(&["fleet", "ps", "--json", "--roster", roster], &long);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: Value = json_contract::parse(&out.stdout).unwrap();
    for h in ["HostA", "hostb", "hostc"] {
        assert_eq!(host_view(&doc, h)["status"], "ok", "{}", host_view(&doc, h));
    }
    assert_eq!(
        record(&doc, "b1")["state"],
        "running",
        "{}",
        record(&doc, "b1")
    );
    assert!(
        !rig.ctl.join(&long[6..]).join("mosaic/ssh").exists(),
        "no control dir below the long runtime dir"
    );

    // ---- verify: hosts down and a dead remote pane fail it ----
    let (out, _) = rig.mosaic(&["fleet", "verify", "--roster", roster], &[]);
    let v = text(&out);
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert!(v.contains("4 of 8 agents have their session"), "{v}");
    assert!(v.contains("UNREACHABLE host down"), "{v}");

    // ---- send / tail over bash (hosta), dash (hostb), zsh (hostc) ----
    let msg = "-dash first: héllo ✓ 'single' \"double\" $(echo pwned) `id` ; =eq \\ %s end";
    for (n, host) in [("a1", "hosta"), ("b1", "hostb"), ("c1", "hostc")] {
        rig.close_masters();
        let conns = rig.host(host).connections();
        let (out, took) = rig.mosaic(
            &[
                "agent",
                "send",
                n,
                &format!("--message={msg}"),
                "--verify",
                "--timeout",
                "8",
                "--roster",
                roster,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{n}: {}", text(&out));
        assert!(text(&out).contains("accepted"), "{}", text(&out));
        let (out, _) = rig.mosaic(&["agent", "tail", n, "-n", "5", "--roster", roster], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            t.contains(&format!("ACK [from operator:mosaic-cli] {msg}")),
            "{n}: the message did not arrive intact:\n{t}"
        );
        assert!(!t.contains("pwned\n") && !t.contains("uid="), "{t}");
        assert_eq!(
            rig.host(host).connections() - conns,
            1,
            "send --verify (check, reads, paste, polls) and tail share one connection to {host}"
        );
        eprintln!("FIGURES send --verify to {n}: {:.2}s", took.as_secs_f64());
    }
    // fish as the login shell too, where installed (a new connection: a
    // master keeps the shell its connection started with).
    if common::which("fish").is_some() {
        rig.set_shell("hostc", "fish");
        rig.close_masters();
        let fish_msg = format!("fish: {msg}");
        let (out, _) = rig.mosaic(
            &[
                "agent",
                "send",
                "c1",
                &format!("--message={fish_msg}"),
                "--verify",
                "--roster",
                roster,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "fish: {}", text(&out));
        let (out, _) = rig.mosaic(&["agent", "tail", "c1", "-n", "5", "--roster", roster], &[]);
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            t.contains(&format!("ACK [from operator:mosaic-cli] {fish_msg}")),
            "fish:\n{t}"
        );
        rig.set_shell("hostc", "zsh");
        rig.close_masters();
    } else {
        eprintln!("NOTE: fish is not installed; the fish login shell is not exercised");
    }
    // Text in a remote agent's input box: `agent send` refuses, naming the
    // screen, as it does here (it used to type over it and press Enter).
    let typed = rig
        .host("hosta")
        .tmux("mosaic-fleet")
        .args(["send-keys", "-t", "=a1:0.0", "-l", "half typed"])
        .status()
        .unwrap();
    assert!(typed.success());
    std::thread::sleep(Duration::from_millis(500));
    let (out, _) = rig.mosaic(
        &[
            "agent",
            "send",
            "a1",
            "-m",
            "must not submit",
            "--roster",
            roster,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let e = text(&out);
    assert!(
        e.contains("refused") && e.contains("half typed") && e.contains("--force"),
        "{e}"
    );
    let cleared = rig
        .host("hosta")
        .tmux("mosaic-fleet")
        .args(["send-keys", "-t", "=a1:0.0", "Enter"])
        .status()
        .unwrap();
    assert!(cleared.success());
    std::thread::sleep(Duration::from_millis(500));
    let (out, _) = rig.mosaic(
        &["agent", "tail", "a1", "-n", "20", "--roster", roster],
        &[],
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("must not submit"),
        "the refused message reached the agent"
    );
    // A dead remote pane: a one-line error with the remote hint.
    let (out, _) = rig.mosaic(&["agent", "send", "a2", "-m", "x", "--roster", roster], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("ssh hosta mosaic fleet restart a2"),
        "{}",
        text(&out)
    );
    // A changed host key refuses every command with the one-line fix.
    let (out, _) = rig.mosaic(&["agent", "tail", "x1", "--roster", roster], &[]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("ssh-keygen -R 'changed'"), "{e}");

    // ---- a host without a fleet: NOT-INSTALLED, its agents unknown ----
    let c = rig.host("hostc").home();
    std::fs::rename(c.join("fleet"), c.join("fleet.away")).unwrap();
    let (out, _) = rig.mosaic(&["fleet", "ps", "--json", "--roster", roster], &[]);
    // (the stub's heartbeat may have made fleet/run again meanwhile: a
    // fleet/ with no roster and no agents/ is still no fleet)
    let _ = std::fs::remove_dir_all(c.join("fleet"));
    std::fs::rename(c.join("fleet.away"), c.join("fleet")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: Value = json_contract::parse(&out.stdout).unwrap();
    let h = host_view(&doc, "hostc");
    assert_eq!(h["status"], "NOT-INSTALLED", "{h}");
    assert!(
        h["error"]
            .as_str()
            .unwrap()
            .contains("no fleet at /root/.config/mosaic/fleet"),
        "{h}"
    );
    assert_eq!(record(&doc, "c1")["state"], "unknown");
    assert_eq!(record(&doc, "a1")["state"], "running");

    // ---- units on a host: install there --as, start/stop from here ----
    // Its own socket: the rig's other sessions on hosta live in a tmux server
    // started from outside the host's namespace, where /root is not its HOME.
    let roster2 =
        format!("{ROSTER}  - name: u1\n    runtime: codex\n    host: hosta\n    socket: units\n");
    let a = rig.host("hosta");
    std::fs::write(a.home().join("fleet/roster.yaml"), &roster2).unwrap();
    let r2 = rig.write_roster(&roster2);
    let r2 = r2.to_str().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mosaic"));
    let out = a.inside(bin, &["fleet", "install", "--as", "hosta"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("u1.env") && !t.contains("lead.env") && !t.contains("b1.env"),
        "{t}"
    );
    assert!(
        t.contains("skipped lead: it runs on another host; it belongs to the controller"),
        "{t}"
    );
    let env = a.home().join("fleet/agents/u1.env");
    let mut e = std::fs::read_to_string(&env).unwrap();
    e.push_str("MOSAIC_AGENT_COMMAND=/root/.config/mosaic/tools/fleet/stub-agent\n");
    std::fs::write(&env, e).unwrap();
    let (out, took) = rig.mosaic(&["fleet", "start", "u1", "--roster", r2], &[]);
    if out.status.code() != Some(0) {
        let st = a.inside(
            std::path::Path::new("/usr/bin/systemctl"),
            &[
                "--user",
                "status",
                "--no-pager",
                "--full",
                "-n",
                "30",
                "mosaic-agent@u1.service",
                "mosaic-tmux-holder.service",
            ],
        );
        panic!("{}\n{}", text(&out), text(&st));
    }
    assert!(
        text(&out).contains("mosaic-agent@u1.service@HostA"),
        "{}",
        text(&out)
    );
    eprintln!("FIGURES remote fleet start u1: {:.2}s", took.as_secs_f64());
    let (out, _) = rig.mosaic(&["fleet", "ps", "--json", "--roster", r2], &[]);
    let doc: Value = json_contract::parse(&out.stdout).unwrap();
    let u1 = record(&doc, "u1");
    assert_eq!(u1["state"], "running", "{u1}");
    assert_eq!(u1["unit_active"], true, "{u1}");
    assert_eq!(u1["unit_enabled"], true, "{u1}");
    let (out, _) = rig.mosaic(
        &[
            "agent", "send", "u1", "-m", "hi u1", "--verify", "--roster", r2,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (out, _) = rig.mosaic(&["fleet", "stop", "u1", "--roster", r2], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (out, _) = rig.mosaic(&["fleet", "ps", "--json", "--roster", r2], &[]);
    let doc: Value = json_contract::parse(&out.stdout).unwrap();
    assert_eq!(
        record(&doc, "u1")["state"],
        "stopped",
        "{}",
        record(&doc, "u1")
    );
}

#[test]
fn a_shared_roster_installs_only_this_hosts_agents() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    common::install_framework(&home);
    let roster = dir.path().join("roster.yaml");
    std::fs::write(&roster, ROSTER).unwrap();
    let run = |extra: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mosaic"));
        common::scrub_env(&mut cmd)
            .args(["--home"])
            .arg(&home)
            .args(["fleet", "install", "--dry-run", "--json", "--roster"])
            .arg(&roster)
            .args(extra);
        if let Some(e) = env {
            cmd.env("MOSAIC_HOST_NAME", e);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = json_contract::parse(&out.stdout).unwrap();
        let files: Vec<String> = v["env_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                std::path::Path::new(f["path"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        (files, v["installed_as"].clone())
    };
    let (files, who) = run(&[], None);
    assert_eq!(files, ["lead.env", "_holder.env"]);
    assert_eq!(who, Value::Null);
    let (files, who) = run(&["--as", "HOSTA"], None);
    assert_eq!(files, ["a1.env", "a2.env", "_holder.env"]);
    assert_eq!(who, "HostA");
    let (files, _) = run(&[], Some("hostb"));
    assert_eq!(files, ["b1.env", "_holder.env"]);
    // An unknown name is refused, naming the roster's hosts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mosaic"))
        .arg("--home")
        .arg(&home)
        .args([
            "fleet",
            "install",
            "--dry-run",
            "--as",
            "nosuch",
            "--roster",
        ])
        .arg(&roster)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out);
    assert!(
        e.contains("\"nosuch\"") && e.contains("HostA, hostb"),
        "{e}"
    );
}
