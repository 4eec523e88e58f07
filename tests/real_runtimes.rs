//! The runtime adapters against the real runtimes (claude, codex, pi,
//! opencode at the versions pinned in `tests/runtimes_support`) and the
//! shipped stub.
//!
//! Each real runtime runs in its own loopback-only network namespace (the
//! test binary re-executes itself under `unshare -m -n`), in a tmux session
//! on a private socket and `TMUX_TMPDIR`, with a throw-away HOME whose
//! configuration points it at the test model server on 127.0.0.1
//! (`tests/model_server`). Per runtime: wait for `Ready` through the
//! adapter; deliver by bracketed paste a short, a multi-line, a
//! 2,000-character, a markdown and a unicode message and check each reached
//! the model byte for byte and shows in the runtime's own transcript as a
//! user turn; a tool call raises the permission prompt (claude, opencode);
//! the reset command is confirmed (codex: refused while busy first); a
//! message whose Enter is held back is InputPending and no user turn; the
//! process tree matches the adapter; start-up time and RSS are printed as
//! `MEASURE` lines.
//!
//! Runtimes run one at a time. Needs root, `unshare`, `ip`, tmux, node/npm
//! (the first run installs the pins into `$MOSAIC_RUNTIMES_DIR` or
//! `<target>/runtimes` through `.ci/install-runtimes`). Skipped with the
//! reason when something is missing; failed instead under
//! `MOSAIC_REQUIRE_REAL=1`. `MOSAIC_REAL_RUNTIMES=claude,codex` limits the
//! real runtimes run (default: all four).

mod common;
mod model_server;
mod runtimes_support;

use model_server::{Api, ModelServer};
use mosaic_fleet::adapters::{delivery, PaneCommand, Runtime, ScreenState};
use runtimes_support::{self as rs, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The hidden test the namespace runs.
const ENTRY: &str = "netns_entry";

/// One runtime at a time (2 cores shared; opencode alone is ~800 MiB).
static SERIAL: Mutex<()> = Mutex::new(());

fn selected(runtime: Runtime) -> bool {
    match std::env::var("MOSAIC_REAL_RUNTIMES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .any(|r| r.trim() == runtime.name() || r.trim() == "all"),
        _ => true,
    }
}

fn outer(runtime: Runtime) {
    if !selected(runtime) {
        eprintln!("SKIP: {runtime} not in MOSAIC_REAL_RUNTIMES");
        return;
    }
    if let Err(why) = rs::netns_ready() {
        common::skip(&why);
        return;
    }
    if runtime == Runtime::Opencode && rs::which("sqlite3").is_none() {
        common::skip("sqlite3 is not installed (opencode's transcript is an SQLite database)");
        return;
    }
    if let Err(why) = rs::ensure_installed() {
        common::skip(&why);
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = rs::run_in_netns(ENTRY, runtime.name(), Duration::from_secs(420));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stdout.lines().chain(stderr.lines()) {
        for tag in ["MEASURE ", "NOTE "] {
            if let Some(i) = l.find(tag) {
                eprintln!("{}", &l[i..]);
            }
        }
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{runtime} in the namespace: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn claude_real() {
    outer(Runtime::Claude);
}

#[test]
fn codex_real() {
    outer(Runtime::Codex);
}

#[test]
fn pi_real() {
    outer(Runtime::Pi);
}

#[test]
fn opencode_real() {
    outer(Runtime::Opencode);
}

/// Runs inside the namespace only (see [`rs::run_in_netns`]).
#[test]
#[ignore = "re-executed by the *_real tests inside a loopback-only network namespace"]
fn netns_entry() {
    let Some(case) = rs::in_netns() else {
        eprintln!("netns_entry runs only inside the namespace the *_real tests make");
        return;
    };
    let runtime = Runtime::from_name(&case).expect("a runtime name");
    let bin = rs::ensure_installed().expect("installed before entering the namespace");
    real_case(runtime, &bin);
}

/// The five messages every runtime must take intact.
fn messages() -> Vec<(&'static str, String)> {
    let mut long: String = (0..400).map(|i| format!("w{i:03} ")).collect();
    long.pop();
    long.push('.');
    assert_eq!(long.chars().count(), 2000);
    vec![
        ("short", "hello from mosaic".to_string()),
        (
            "multi-line",
            "first line\nsecond line\n  third line, indented".to_string(),
        ),
        ("2000 chars", long),
        ("markdown", "run `make test` now".to_string()),
        ("unicode", "héllo wörld — ✓ 日本語 🚀 ñ".to_string()),
    ]
}

struct Run<'a> {
    runtime: Runtime,
    sb: &'a Sandbox,
    server: Option<&'a ModelServer>,
    n: usize,
}

impl Run<'_> {
    fn fail(&self, what: &str) -> ! {
        let server = self.server.map(|s| s.summary()).unwrap_or_default();
        panic!(
            "{}: {what}\nscreen state: {:?}\npane command: {}\n--- screen\n{}\n--- model server log\n{server}",
            self.runtime,
            self.state(),
            self.sb.pane_field("#{pane_current_command}"),
            self.sb.capture()
        );
    }

    fn state(&self) -> ScreenState {
        self.runtime.screen_state(&self.sb.capture())
    }

    fn wait_state(&self, what: &str, timeout: Duration, f: impl Fn(&ScreenState) -> bool) {
        let rt = self.runtime;
        if self
            .sb
            .wait_screen(timeout, |c| f(&rt.screen_state(c)))
            .is_err()
        {
            self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
        }
    }

    fn wait_ready(&self, timeout: Duration) {
        self.wait_state("Ready", timeout, ScreenState::is_ready);
    }

    /// Paste `text`; wait for the box to show it taken in.
    fn paste(&mut self, text: &str) {
        self.n += 1;
        let d = delivery(
            Some(rs::SOCKET),
            rs::SESSION,
            &format!("mosaic-send-{}", self.n),
        );
        let out = self.sb.deliver(&d, text);
        if !out.status.success() {
            self.fail(&format!("paste-buffer: {out:?}"));
        }
        self.wait_state(
            "the paste in the box (InputPending)",
            Duration::from_secs(30),
            |s| matches!(s, ScreenState::InputPending { .. }),
        );
    }

    fn enter(&self) {
        let d = delivery(Some(rs::SOCKET), rs::SESSION, "unused");
        let out = self.sb.run(&d.enter, None);
        if !out.status.success() {
            self.fail(&format!("send-keys Enter: {out:?}"));
        }
    }

    fn send(&mut self, text: &str) {
        self.paste(text);
        self.enter();
    }

    /// The runtime's own transcript, as user turns.
    fn user_turns(&self) -> Vec<String> {
        let rt = self.runtime;
        let t = rt.transcript();
        let home = self.sb.home();
        let env = self.sb.env();
        let root = t.root(&home, |k| {
            env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        });
        match rt {
            Runtime::Opencode => {
                let argv = mosaic_fleet::adapters::opencode::user_turns_query(&root);
                let out = self.sb.run(&argv, None);
                if !out.status.success() {
                    self.fail(&format!("sqlite3: {out:?}"));
                }
                rt.user_turns(&out.stdout)
                    .unwrap_or_else(|e| self.fail(&e.to_string()))
            }
            Runtime::Stub => {
                let out =
                    self.sb
                        .tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "=agent:0.0"]);
                rt.user_turns(&out.stdout).unwrap()
            }
            _ => {
                let mut files = Vec::new();
                walk(&root, &mut files);
                files.sort();
                let mut turns = Vec::new();
                for f in files
                    .iter()
                    .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
                {
                    let bytes = std::fs::read(f).unwrap();
                    turns.extend(
                        rt.user_turns(&bytes)
                            .unwrap_or_else(|e| self.fail(&format!("{}: {e}", f.display()))),
                    );
                }
                turns
            }
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn rss_mib(sb: &Sandbox) -> (f64, Vec<String>) {
    let procs = rs::all_procs();
    let mut pids: Vec<u32> = rs::tree(sb.pane_pid(), &procs)
        .iter()
        .map(|p| p.pid)
        .collect();
    for p in sb.processes() {
        if !pids.contains(&p) && procs.get(&p).is_some_and(|p| !p.comm.starts_with("tmux")) {
            pids.push(p);
        }
    }
    let mut kib = 0;
    let mut shape = Vec::new();
    for pid in pids {
        if let Some(p) = procs.get(&pid) {
            kib += p.rss_kib;
            shape.push(format!("{}({} MiB)", p.comm, p.rss_kib / 1024));
        }
    }
    (kib as f64 / 1024.0, shape)
}

fn start_argv(runtime: Runtime) -> Vec<&'static str> {
    match runtime {
        Runtime::Claude => vec!["claude"],
        Runtime::Codex => vec!["codex"],
        Runtime::Pi => vec!["pi"],
        Runtime::Opencode => vec!["opencode"],
        Runtime::Stub => vec!["stub-agent"],
    }
}

fn startup_timeout(runtime: Runtime) -> Duration {
    match runtime {
        // ≥ 90 s on a busy 2-core machine.
        Runtime::Opencode => Duration::from_secs(180),
        _ => Duration::from_secs(60),
    }
}

fn real_case(runtime: Runtime, bin: &Path) {
    let server = ModelServer::start().expect("model server");
    let mut sb = Sandbox::new(runtime, bin, server.port());
    sb.start(&start_argv(runtime));
    let mut run = Run {
        runtime,
        sb: &sb,
        server: Some(&server),
        n: 0,
    };

    // Ready, and what it looks like from outside.
    run.wait_ready(startup_timeout(runtime));
    let ready_secs = sb.started().elapsed().as_secs_f64();
    let shape = runtime.process();
    if sb
        .wait_screen(Duration::from_secs(15), |_| {
            shape.classify(&sb.pane_field("#{pane_current_command}")) == PaneCommand::Runtime
        })
        .is_err()
    {
        run.fail("pane_current_command is not the runtime's");
    }
    let (rss_start, _) = rss_mib(&sb);

    // Five messages, each intact at the model.
    for (label, text) in messages() {
        run.wait_ready(Duration::from_secs(60));
        run.send(&text);
        let Some(got) =
            server.wait_for(Duration::from_secs(60), |t| runtime.same_message(&text, t))
        else {
            run.fail(&format!(
                "the {label} message did not reach the model intact"
            ));
        };
        if got.last_user_text.as_deref() != Some(text.as_str()) {
            eprintln!(
                "NOTE {runtime}: the {label} message reached the model with a trailing space"
            );
        }
    }
    run.wait_ready(Duration::from_secs(60));
    // The transcript is written after the request; give it a moment.
    let mut turns = Vec::new();
    common::wait_until(Duration::from_secs(20), || {
        turns = run.user_turns();
        messages()
            .iter()
            .all(|(_, t)| turns.iter().any(|r| runtime.same_message(t, r)))
    });
    for (label, text) in messages() {
        assert!(
            turns.iter().any(|r| runtime.same_message(&text, r)),
            "{runtime}: the {label} message is not a user turn in the transcript: {turns:#?}"
        );
    }

    // A tool call raises the permission prompt, which is not the prompt.
    if matches!(runtime, Runtime::Claude | Runtime::Opencode) {
        server.tool_call_when("PERMISSION PROBE");
        run.send("PERMISSION PROBE: please run the probe");
        run.wait_state("PermissionPrompt", Duration::from_secs(60), |s| {
            matches!(s, ScreenState::PermissionPrompt { .. })
        });
        let state = run.state();
        assert!(!state.is_ready(), "{state:?}");
        if runtime == Runtime::Claude {
            assert!(
                matches!(&state, ScreenState::PermissionPrompt { what } if what.contains(model_server::TOOL_COMMAND)),
                "{state:?}"
            );
            // `mosaic agent send` does not answer the prompt, and says why.
            let out = mosaic(&sb, &["agent", "send", "agent", "-m", "1"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(
                err.contains("refused") && err.contains("a permission prompt"),
                "{err}"
            );
            assert!(
                matches!(run.state(), ScreenState::PermissionPrompt { .. }),
                "the prompt was answered: {}",
                sb.capture()
            );
        }
        // Escape rejects the call and brings the prompt back.
        sb.tmux(&["send-keys", "-t", "=agent:0.0", "Escape"]);
        run.wait_ready(Duration::from_secs(30));
        if runtime == Runtime::Claude {
            // --verify: accepted from claude's own transcript.
            let out = mosaic(
                &sb,
                &[
                    "agent",
                    "send",
                    "agent",
                    "-m",
                    "VERIFY PROBE",
                    "--verify",
                    "--timeout",
                    "60",
                ],
            );
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(text.contains("accepted: its transcript"), "{text}");
            run.wait_ready(Duration::from_secs(60));
        }
    }

    // The reset command (codex refuses it while a turn runs).
    let reset = runtime.reset();
    if runtime == Runtime::Codex {
        server.delay_when("SLOW TURN", Duration::from_secs(8));
        run.send("SLOW TURN: take a while");
        run.wait_state("Busy", Duration::from_secs(30), |s| *s == ScreenState::Busy);
        // `mosaic agent reset` does not report a reset it cannot have made.
        let out = mosaic(&sb, &["agent", "reset", "agent"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("not reset"), "{err}");
        run.send(reset.command);
        if sb
            .wait_screen(Duration::from_secs(15), |c| runtime.reset_refused(c))
            .is_err()
        {
            run.fail("codex did not refuse /clear while busy");
        }
        run.wait_ready(Duration::from_secs(60));
    }
    run.wait_ready(Duration::from_secs(60));
    if matches!(runtime, Runtime::Claude | Runtime::Codex) {
        // Through `mosaic agent reset`: "reset" only once confirmed.
        let out = mosaic(&sb, &["agent", "reset", "agent", "--timeout", "30"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{text}\n{}", sb.capture());
        assert!(
            text.contains(&format!("reset ({} confirmed", reset.command)),
            "{text}"
        );
    } else {
        run.send(reset.command);
    }
    if sb
        .wait_screen(Duration::from_secs(30), |c| runtime.reset_confirmed(c))
        .is_err()
    {
        run.fail(&format!("{} was not confirmed", reset.command));
    }

    // A message whose Enter is held back: InputPending, never a user turn.
    let held = "this message stays in the input box";
    run.wait_ready(Duration::from_secs(30));
    run.paste(held);
    match run.state() {
        ScreenState::InputPending { shown } if shown.contains(held) => {}
        other => run.fail(&format!("held-back message shows as {other:?}")),
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !server.requests().iter().any(|r| r
            .last_user_text
            .as_deref()
            .is_some_and(|t| t.contains(held))),
        "{runtime}: a message without Enter reached the model:\n{}",
        server.summary()
    );
    assert!(
        !run.user_turns().iter().any(|t| t.contains(held)),
        "{runtime}: a message without Enter is a user turn"
    );
    assert!(matches!(run.state(), ScreenState::InputPending { .. }));

    let (rss_idle, procs) = rss_mib(&sb);
    let requests = server
        .requests()
        .iter()
        .filter(|r| matches!(r.api, Api::Anthropic | Api::Chat | Api::Responses))
        .count();
    println!(
        "MEASURE runtime={runtime} version={} ready_secs={ready_secs:.1} rss_at_ready_mib={rss_start:.0} rss_idle_after_turns_mib={rss_idle:.0} model_requests={requests} processes={}",
        rs::pin(runtime).version,
        procs.join(",")
    );

    // Codex's app-server daemon outlives the pane; the sandbox ends it by PID.
    if let Some(daemon) = shape.daemon {
        let daemon_alive = || {
            let procs = rs::all_procs();
            sb.processes().iter().any(|p| {
                procs.get(p).is_some_and(|p| {
                    daemon
                        .cmdline_contains
                        .iter()
                        .all(|w| p.cmdline.contains(w))
                })
            })
        };
        assert!(
            daemon_alive(),
            "{runtime}: no {:?} daemon",
            daemon.cmdline_contains
        );
        sb.tmux(&["kill-session", "-t", "=agent"]);
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            daemon_alive(),
            "{runtime}: the daemon did not outlive the pane (adapter says it does)"
        );
    }
    let home = sb.home();
    drop(sb);
    let home = format!("HOME={}", home.display());
    assert!(
        rs::all_procs().keys().all(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|e| !e.split(|b| *b == 0).any(|kv| kv == home.as_bytes()))
                .unwrap_or(true)
        }),
        "{runtime}: processes left behind after teardown"
    );
    supervised_case(runtime, bin, &server);
}

/// pids whose environment holds `kv` exactly (`HOME=/…`).
fn pids_with_env(kv: &str) -> Vec<u32> {
    rs::all_procs()
        .keys()
        .copied()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|e| e.split(|b| *b == 0).any(|x| x == kv.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// The runtime as a fleet agent under a private systemd user manager:
/// `mosaic-agent@agent.service` owns every process of the runtime (codex's
/// daemon included), a killed runtime is restarted by the supervisor and
/// counted in `fleet ps`, and `fleet stop` leaves no process of it.
fn supervised_case(runtime: Runtime, bin: &Path, server: &ModelServer) {
    let Some(um) = common::UserManager::start() else {
        panic!("{runtime}: no private systemd user manager in the namespace");
    };
    let sb = Sandbox::new(runtime, bin, server.port());
    let h = um.config_home().join("mosaic");
    let run = |args: &[&str]| {
        let mut c = um.command(assert_cmd::cargo::cargo_bin("mosaic"));
        c.env("NO_COLOR", "1").args(args);
        let out = rs::run_with_timeout(&mut c, Duration::from_secs(120)).expect("mosaic");
        assert!(
            out.status.success(),
            "{runtime}: mosaic {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let ps = || -> serde_json::Value {
        serde_json::from_slice(&run(&["fleet", "ps", "--json"]).stdout).expect("ps json")
    };
    let capture = || {
        let out = um
            .tmux(Some(rs::SOCKET))
            .args(["capture-pane", "-p", "-t", "=agent:0.0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["--home", h.to_str().unwrap(), "install"]);
    std::fs::create_dir_all(h.join("fleet")).unwrap();
    std::fs::write(
        h.join("fleet/roster.yaml"),
        format!(
            "version: 1\ntmux:\n  socket_name: {}\ndefaults:\n  working_directory: {}\nagents:\n  - name: agent\n    runtime: {}\n",
            rs::SOCKET,
            sb.workdir().display(),
            runtime.name()
        ),
    )
    .unwrap();
    run(&["fleet", "install"]);
    // The runtime's own environment (HOME with its configuration, PATH with
    // the pinned install, its keys): the agent's env file passes it on.
    let env_file = h.join("fleet/agents/agent.env");
    let mut body = std::fs::read_to_string(&env_file).unwrap();
    for (k, v) in sb.env() {
        if k != "TMUX_TMPDIR" {
            body.push_str(&format!("{k}=\"{v}\"\n"));
        }
    }
    std::fs::write(&env_file, body).unwrap();
    let home_kv = format!("HOME={}", sb.home().display());

    let started = Instant::now();
    run(&["fleet", "start"]);
    let ready = |timeout: Duration| {
        common::wait_until(timeout, || runtime.screen_state(&capture()).is_ready())
    };
    assert!(
        ready(startup_timeout(runtime)),
        "{runtime}: not ready under its unit:\n{}\n{}",
        capture(),
        um.status("mosaic-agent@agent.service")
    );
    let ready_secs = started.elapsed().as_secs_f64();
    let doc = ps();
    let r = &doc["agents"][0];
    assert_eq!(r["state"], "running", "{r:#}");
    assert_eq!(r["restarts"], 0, "{r:#}");
    // fleet ps reads the screen with the runtime's adapter: at its prompt.
    assert_eq!(r["screen"], "idle", "{runtime}: {r:#}\n{}", capture());
    let rss = r["rss_bytes"].as_u64().unwrap_or(0);
    // Every process of the runtime is in its unit's cgroup.
    let cg_out = um.systemctl(&[
        "show",
        "-p",
        "ControlGroup",
        "--value",
        "mosaic-agent@agent.service",
    ]);
    let cg = String::from_utf8_lossy(&cg_out.stdout).trim().to_string();
    assert!(cg.ends_with("/mosaic-agent@agent.service"), "{cg}");
    let outside: Vec<u32> = pids_with_env(&home_kv)
        .into_iter()
        .filter(|pid| {
            let c = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            !c.lines().any(|l| l == format!("0::{cg}"))
        })
        .collect();
    assert!(
        outside.is_empty(),
        "{runtime}: processes outside the unit: {outside:?}"
    );

    // Kill the runtime: restarted in the same pane and counted.
    let pid = r["pane_pid"].as_u64().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut doc = serde_json::Value::Null;
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            doc = ps();
            let r = &doc["agents"][0];
            r["restarts"] == 1 && r["state"] == "running" && r["pane_pid"].as_u64() != Some(pid)
        }),
        "{runtime}: not restarted: {doc:#}\n{}\nsupervisor log:\n{}",
        um.status("mosaic-agent@agent.service"),
        std::fs::read_to_string(h.join("fleet/run/agent.supervisor.log")).unwrap_or_default()
    );
    assert!(
        ready(startup_timeout(runtime)),
        "{runtime}: not ready after the restart:\n{}",
        capture()
    );
    let restarts = doc["agents"][0]["restarts"].as_u64().unwrap();

    // Stop: nothing of the runtime is left, daemons included.
    let before = pids_with_env(&home_kv).len();
    run(&["fleet", "stop"]);
    let left = pids_with_env(&home_kv);
    assert!(
        left.is_empty(),
        "{runtime}: left after fleet stop: {left:?}"
    );
    println!(
        "MEASURE supervised runtime={runtime} ready_secs={ready_secs:.1} rss_mib={:.0} restarts_seen={restarts} processes_before_stop={before} left_after_stop={}",
        rss as f64 / 1048576.0,
        left.len()
    );
}

/// `mosaic ARGS --roster R` against the sandbox's agent: a roster naming its
/// socket and session, the sandbox's environment (HOME, TMUX_TMPDIR).
fn mosaic(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let roster = sb.home().join("roster.yaml");
    std::fs::create_dir_all(sb.home().join(".config/mosaic/fleet/agents")).unwrap();
    std::fs::write(
        &roster,
        format!(
            "version: 1\ntmux:\n  socket_name: {}\nagents:\n  - name: {}\n    runtime: {}\n",
            rs::SOCKET,
            rs::SESSION,
            sb.runtime.name()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("mosaic"));
    cmd.env_clear()
        .envs(sb.env())
        .current_dir(sb.workdir())
        .args(args)
        .arg("--roster")
        .arg(&roster);
    rs::run_with_timeout(&mut cmd, Duration::from_secs(120)).expect("mosaic")
}

/// The stub needs neither npm nor a namespace: the same delivery, its
/// `ACK` lines as the transcript.
#[test]
fn stub_delivery() {
    if common::which("tmux").is_none() {
        common::skip("tmux is not installed");
        return;
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("framework/tools/fleet");
    let mut sb = Sandbox::new(Runtime::Stub, &tools, 0);
    sb.start(&["stub-agent"]);
    let mut run = Run {
        runtime: Runtime::Stub,
        sb: &sb,
        server: None,
        n: 0,
    };
    let started = Instant::now();
    run.wait_ready(Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        Runtime::Stub
            .process()
            .classify(&sb.pane_field("#{pane_current_command}")),
        PaneCommand::Runtime
    );
    // One line each: the stub reads lines, so a multi-line paste is several.
    let single: Vec<(&str, String)> = messages()
        .into_iter()
        .filter(|(_, t)| !t.contains('\n'))
        .collect();
    for (label, text) in &single {
        run.wait_ready(Duration::from_secs(10));
        run.send(text);
        if !common::wait_until(Duration::from_secs(10), || run.user_turns().contains(text)) {
            run.fail(&format!("the {label} message was not acknowledged intact"));
        }
    }
    let turns = run.user_turns();
    for (label, text) in &single {
        assert!(turns.contains(text), "{label}: {turns:#?}");
    }
    run.wait_ready(Duration::from_secs(10));
    run.send(Runtime::Stub.reset().command);
    assert!(sb
        .wait_screen(Duration::from_secs(10), |c| Runtime::Stub
            .reset_confirmed(c))
        .is_ok());
    run.paste("held back");
    assert_eq!(
        run.state(),
        ScreenState::InputPending {
            shown: "held back".into()
        }
    );
    assert!(!run.user_turns().contains(&"held back".to_string()));
}
