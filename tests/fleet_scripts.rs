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

/// The stub's `read -t INTERVAL` keeps what it took of a line when it times
/// out. The stub must hold those bytes and answer the whole line once its end
/// comes: dropping them answered only the rest ("ACK lo" for "hello"), and a
/// `send --verify` then waited for an ACK that never came (seen as a rare
/// timeout on a loaded machine, where the timer fired while bash was taking
/// a pasted line apart). Driven by a pipe, which hands bash the line in
/// pieces, and by the stub's own heartbeat: two timeouts after the first
/// piece went in, the piece has been through a timed-out read for certain.
#[test]
fn the_stub_answers_a_line_that_arrives_across_its_read_timeout_whole() {
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let mut child =
        std::process::Command::new(common::framework_dir().join("tools/fleet/stub-agent"))
            .arg("t1")
            .env("MOSAIC_HOME", dir.path())
            .env("MOSAIC_HEARTBEAT_INTERVAL", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let seen = |what: &str| out.lock().unwrap().contains(what);
    assert!(
        common::wait_until(Duration::from_secs(10), || seen("> ")),
        "no prompt"
    );
    let state = dir.path().join("fleet/run/t1.state");
    let ino = || std::fs::metadata(&state).map(|m| m.ino()).unwrap_or(0);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hel").unwrap();
    stdin.flush().unwrap();
    // Each timeout writes the state file anew (mktemp, mv): a new inode.
    for _ in 0..2 {
        let was = ino();
        assert!(
            common::wait_until(Duration::from_secs(10), || ino() != was),
            "the stub never timed out"
        );
    }
    stdin.write_all(b"lo\n").unwrap();
    stdin.flush().unwrap();
    assert!(
        common::wait_until(Duration::from_secs(10), || seen("ACK ")),
        "no ACK: {}",
        out.lock().unwrap()
    );
    drop(stdin);
    let _ = child.wait();
    reader.join().unwrap();
    let out = out.lock().unwrap();
    assert!(
        out.contains("ACK hello\n"),
        "the line was not answered whole:\n{out}"
    );
    assert!(!out.contains("ACK lo"), "{out}");
}
