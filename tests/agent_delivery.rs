//! `mosaic agent send` / `agent reset` against the shipped stub agent in a
//! real tmux server on a private socket (no systemd): bracketed-paste
//! delivery of multi-line, long and non-ASCII text arriving intact (the
//! stub's ACK lines), refusal when the screen is not the prompt, `--force`,
//! `--queue`, `--verify` receipts and a confirmed reset.
//!
//! Skips with a printed reason without tmux; fails instead under
//! `MOSAIC_REQUIRE_REAL=1`.

mod common;
mod json_contract;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const SOCKET: &str = "dlv";

/// One stub agent `s0` in its own tmux server, with a roster and an env file.
struct Rig {
    tmux: common::TmuxEnv,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Option<Rig> {
        Rig::with_env("")
    }

    /// With `extra` (`VAR=value …`) in the stub's environment.
    fn with_env(extra: &str) -> Option<Rig> {
        let tmux = common::TmuxEnv::new()?;
        let dir = tempfile::Builder::new()
            .prefix("mosaic-delivery")
            .tempdir()
            .unwrap();
        let rig = Rig { tmux, dir };
        let h = rig.h();
        std::fs::create_dir_all(h.join("fleet/agents")).unwrap();
        let stub = common::framework_dir().join("tools/fleet/stub-agent");
        std::fs::write(
            h.join("fleet/agents/s0.env"),
            format!(
                "MOSAIC_AGENT_NAME=s0\nMOSAIC_AGENT_COMMAND={}\n",
                stub.display()
            ),
        )
        .unwrap();
        std::fs::write(
            rig.roster(),
            format!("version: 1\ntmux:\n  socket_name: {SOCKET}\nagents:\n  - name: s0\n    runtime: claude\n"),
        )
        .unwrap();
        let out = rig
            .tmux
            .tmux(Some(SOCKET))
            .args(["new-session", "-d", "-s", "s0", "-x", "220", "-y", "50"])
            .arg(format!(
                "exec env MOSAIC_HOME={} MOSAIC_HEARTBEAT_INTERVAL=3600 {extra} {} s0",
                h.display(),
                stub.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            common::wait_until(Duration::from_secs(20), || rig
                .pane()
                .trim_end()
                .ends_with('>')),
            "the stub never showed its prompt: {}",
            rig.pane()
        );
        Some(rig)
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn h(&self) -> PathBuf {
        self.root().join(".config/mosaic")
    }

    fn roster(&self) -> PathBuf {
        self.root().join("roster.yaml")
    }

    fn mosaic(&self, args: &[&str]) -> Output {
        self.mosaic_env(args, &[])
    }

    fn mosaic_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("mosaic"));
        common::scrub_env(&mut c)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("HOME", self.root())
            .env("XDG_CONFIG_HOME", self.root().join(".config"))
            .env("TMUX_TMPDIR", self.tmux.tmpdir())
            .env("NO_COLOR", "1")
            .args(args)
            .arg("--roster")
            .arg(self.roster());
        common::run_with_timeout(&mut c, Duration::from_secs(60)).unwrap()
    }

    /// The whole pane, wrapped lines joined.
    fn pane(&self) -> String {
        let out = self
            .tmux
            .tmux(Some(SOCKET))
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", "=s0:0.0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Type into the pane without Enter (text left in the stub's box).
    fn leave_in_box(&self, s: &str) {
        let out = self
            .tmux
            .tmux(Some(SOCKET))
            .args(["send-keys", "-t", "=s0:0.0", "-l", s])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(common::wait_until(Duration::from_secs(5), || self
            .pane()
            .trim_end()
            .ends_with(&format!("> {s}"))));
    }

    fn enter(&self) {
        let out = self
            .tmux
            .tmux(Some(SOCKET))
            .args(["send-keys", "-t", "=s0:0.0", "Enter"])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn paste_delivers_multiline_long_and_unicode_text_intact() {
    let Some(rig) = Rig::new() else { return };
    // Multi-line: every line arrives, in order, as typed.
    let out = rig.mosaic(&[
        "agent",
        "send",
        "s0",
        "-m",
        "first line; $(rm -rf /) `x`\nsecond \"line\" 'q' \\ end",
        "--verify",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("accepted"),
        "{}",
        text(&out)
    );
    let pane = rig.pane();
    assert!(
        pane.contains("ACK [from operator:mosaic-cli] first line; $(rm -rf /) `x`"),
        "{pane}"
    );
    assert!(pane.contains("ACK second \"line\" 'q' \\ end"), "{pane}");

    // 2,000 characters with non-ASCII text, in one line.
    let long: String = "héllo wörld ✓ 日本 "
        .chars()
        .cycle()
        .take(2000)
        .collect::<String>()
        .trim_end()
        .to_string();
    assert!(long.chars().count() >= 1990);
    let out = rig.mosaic(&[
        "agent", "send", "s0", "-m", &long, "--verify", "--source", "lead",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pane = rig.pane();
    assert!(
        pane.lines()
            .any(|l| l.trim_end() == format!("ACK [from lead] {long}")),
        "the long line did not arrive intact: {pane}"
    );
}

#[test]
fn refuses_when_not_at_the_prompt_unless_forced() {
    let Some(rig) = Rig::new() else { return };
    rig.leave_in_box("half typed");
    let out = rig.mosaic(&["agent", "send", "s0", "-m", "must not land"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{}", text(&out));
    assert!(err.contains("refused"), "{err}");
    assert!(
        err.contains("text waiting in its input box (half typed)"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!rig.pane().contains("must not land"), "{}", rig.pane());

    // --json says the same.
    let out = rig.mosaic(&["agent", "send", "s0", "-m", "nope", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = json_contract::parse(&out.stdout).unwrap();
    assert_eq!(doc["accepted"], false);
    assert!(
        doc["reason"].as_str().unwrap().contains("input box"),
        "{doc}"
    );

    // --force delivers anyway (appended to what was in the box).
    let out = rig.mosaic(&["agent", "send", "s0", "-m", "forced", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        common::wait_until(Duration::from_secs(5), || rig
            .pane()
            .contains("ACK half typed[from operator:mosaic-cli] forced")),
        "{}",
        rig.pane()
    );
}

#[test]
fn queue_waits_for_the_prompt_within_the_timeout() {
    let Some(rig) = Rig::new() else { return };
    rig.leave_in_box("busy typing");
    // Nobody clears the box: --queue gives up after --timeout.
    let out = rig.mosaic(&[
        "agent",
        "send",
        "s0",
        "-m",
        "later",
        "--queue",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("still shows"), "{}", text(&out));

    // The box clears while it waits: delivered and acknowledged.
    let rig = std::sync::Arc::new(rig);
    let r2 = rig.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        r2.enter();
    });
    let out = rig.mosaic(&[
        "agent",
        "send",
        "s0",
        "-m",
        "queued",
        "--queue",
        "--timeout",
        "20",
        "--verify",
    ]);
    t.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pane = rig.pane();
    let a = pane.find("ACK busy typing").expect(&pane);
    let b = pane
        .find("ACK [from operator:mosaic-cli] queued")
        .expect(&pane);
    assert!(a < b, "{pane}");
}

#[test]
fn verify_reports_not_accepted_with_the_reason() {
    // The stub takes the line but answers only after 5 s: no receipt within 1 s.
    let Some(rig) = Rig::with_env("MOSAIC_STUB_DELAY=5") else {
        return;
    };
    let out = rig.mosaic(&[
        "agent",
        "send",
        "s0",
        "-m",
        "slow",
        "--verify",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("not accepted"), "{}", text(&out));
    assert!(stderr(&out).contains("input box"), "{}", text(&out));
}

#[test]
fn reset_is_reported_only_when_confirmed() {
    let Some(rig) = Rig::new() else { return };
    let out = rig.mosaic(&["agent", "reset", "s0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reset (/reset confirmed"),
        "{}",
        text(&out)
    );
    // Not at the prompt: not reset, and the reason says what is on screen.
    rig.leave_in_box("pending");
    let out = rig.mosaic(&["agent", "reset", "s0", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = json_contract::parse(&out.stdout).unwrap();
    assert_eq!(doc["reset"], false, "{doc}");
    assert!(
        doc["reason"].as_str().unwrap().contains("input box"),
        "{doc}"
    );
}

#[test]
fn the_text_is_never_on_a_command_line() {
    let Some(rig) = Rig::new() else { return };
    let log = rig.root().join("spawn.log");
    let secret = "SECRET-WORDS-1234 ✓";
    let out = rig.mosaic_env(
        &["agent", "send", "s0", "-m", secret, "--verify"],
        &[("MOSAIC_SPAWN_LOG", &log)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let spawned = std::fs::read_to_string(&log).unwrap();
    assert!(!spawned.contains("SECRET-WORDS"), "{spawned}");
    assert!(spawned.contains("load-buffer -b mosaic-send-"), "{spawned}");
    assert!(
        spawned.contains("paste-buffer -p -d -b mosaic-send-"),
        "{spawned}"
    );
    assert!(!spawned.contains("send-keys -t =s0:0.0 -l"), "{spawned}");
    assert!(rig
        .pane()
        .contains(&format!("ACK [from operator:mosaic-cli] {secret}")));
    // The buffer is gone after the paste (-d).
    let out = rig
        .tmux
        .tmux(Some(SOCKET))
        .args(["list-buffers", "-F", "#{buffer_name}"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("mosaic-send-"),
        "{}",
        text(&out)
    );
}

#[test]
fn reset_queue_waits_for_the_prompt() {
    let Some(rig) = Rig::new() else { return };
    rig.leave_in_box("typing");
    let rig = std::sync::Arc::new(rig);
    let r2 = rig.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        r2.enter();
    });
    let out = rig.mosaic(&["agent", "reset", "s0", "--queue", "--timeout", "20"]);
    t.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pane = rig.pane();
    assert!(pane.contains("ACK typing"), "{pane}");
    assert!(pane.trim_end().ends_with("ACK /reset\n>"), "{pane}");
}
