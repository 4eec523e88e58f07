//! The shipped session scripts against real tmux, in the situations a review
//! found them wanting: an operator tmux.conf with base-index 1, keys of the
//! agent's env file reaching the runtime, and a read-only viewer grouped with
//! the agent's session when the agent is stopped.

mod common;

use std::path::Path;
use std::time::Duration;

/// `(window.pane, pid)` of every pane of session `name` (list-panes fails on
/// a missing target, where display-message quietly falls back).
fn panes(t: &common::TmuxEnv, home: &Path, socket: &str, name: &str) -> Vec<(String, u32)> {
    let out = t
        .tmux(Some(socket))
        .env("HOME", home)
        .args([
            "list-panes",
            "-s",
            "-t",
            &format!("={name}"),
            "-F",
            "#{window_index}.#{pane_index} #{pane_pid}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (idx, pid) = l.split_once(' ')?;
            Some((idx.to_string(), pid.parse().ok()?))
        })
        .collect()
}

#[test]
fn agent_pane_is_0_0_env_keys_reach_it_and_stop_ends_it_despite_a_viewer() {
    let Some(t) = common::TmuxEnv::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let h = home.join(".config/mosaic");
    common::install_framework(&h);
    std::fs::create_dir_all(h.join("fleet/agents")).unwrap();
    std::fs::write(
        home.join(".tmux.conf"),
        "set -g base-index 1\nsetw -g pane-base-index 1\n",
    )
    .unwrap();
    let stub = h.join("tools/fleet/stub-agent");
    let env = format!(
        "MOSAIC_AGENT_NAME=a1\nMOSAIC_AGENT_RUNTIME=pi\nMOSAIC_TMUX_SOCKET=solo\nMOSAIC_AGENT_COMMAND={}\nEXTRA_TOKEN=s3cret value\n",
        stub.display()
    );
    std::fs::write(h.join("fleet/agents/a1.env"), &env).unwrap();
    // the holder starts the socket's server (with the operator's tmux.conf
    // and without the agent's keys), as under systemd
    let st = t
        .tmux(Some("solo"))
        .env("HOME", &home)
        .args(["new-session", "-d", "-s", "_holder", "sleep 600"])
        .status()
        .unwrap();
    assert!(st.success());
    // as systemd runs it: the env file is already in the environment
    let mut start = t.command(h.join("tools/fleet/start-agent-session.sh"));
    start
        .arg("a1")
        .env("HOME", &home)
        .env("MOSAIC_HOME", &h)
        .env("MOSAIC_AGENT_NAME", "a1")
        .env("MOSAIC_AGENT_RUNTIME", "pi")
        .env("MOSAIC_TMUX_SOCKET", "solo")
        .env("MOSAIC_AGENT_COMMAND", &stub)
        .env("EXTRA_TOKEN", "s3cret value");
    let out = common::run_with_timeout(&mut start, Duration::from_secs(20)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = panes(&t, &home, "solo", "a1");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        p[0].0, "0.0",
        "the agent's pane is =a1:0.0 despite base-index 1"
    );
    let pid = p[0].1;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|kv| kv == "EXTRA_TOKEN=s3cret value"),
        "{environ}"
    );
    // a read-only viewer grouped with the agent's session
    let st = t
        .tmux(Some("solo"))
        .env("HOME", &home)
        .args(["new-session", "-d", "-t", "=a1", "-s", "a1-watch-77"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut stop = t.command(h.join("tools/fleet/stop-agent-session.sh"));
    stop.arg("a1").env("HOME", &home).env("MOSAIC_HOME", &h);
    let out = common::run_with_timeout(&mut stop, Duration::from_secs(20)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = common::wait_until(Duration::from_secs(5), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(
        gone,
        "the runtime ended although a viewer was attached to its window"
    );
    let ls = t
        .tmux(Some("solo"))
        .env("HOME", &home)
        .args(["list-sessions", "-F", "#{session_name}"])
        .output()
        .unwrap();
    let sessions = String::from_utf8_lossy(&ls.stdout);
    assert!(!sessions.contains("a1"), "{sessions}");
}
