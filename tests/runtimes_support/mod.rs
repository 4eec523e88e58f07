//! Support for the real-runtime tests (`tests/real_runtimes.rs`).
//!
//! * [`ensure_installed`]: the four npm packages at their pinned versions, in
//!   one shared directory reused between runs (`$MOSAIC_RUNTIMES_DIR`, else
//!   `<target>/runtimes`), installed through `.ci/install-runtimes`.
//! * [`netns_ready`] / [`run_in_netns`] / [`in_netns`]: the test binary
//!   re-executes one case of itself inside a loopback-only network namespace
//!   (`unshare -m -n`, `ip link set lo up`), so nothing a runtime does can
//!   leave the machine and vendor endpoints fail fast.
//! * [`Sandbox`]: a throw-away HOME with each runtime's configuration pointed
//!   at the loopback model server, a private `TMUX_TMPDIR` and tmux socket,
//!   the runtime started in a detached session, helpers to capture the pane,
//!   run the adapters' delivery argv, read the process tree and RSS; on drop
//!   the tmux server and every process that still carries the sandbox's HOME
//!   (codex's setsid'd app-server daemon) are ended by PID.
#![allow(dead_code)]

use mosaic_fleet::adapters::{Delivery, Runtime};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One pinned package: keep in step with `.ci/install-runtimes` and
/// `docs/runtimes.md`.
pub struct Pin {
    /// The runtime it provides.
    pub runtime: Runtime,
    /// npm package name.
    pub package: &'static str,
    /// The version the adapters were written against.
    pub version: &'static str,
    /// Its binary in `node_modules/.bin`.
    pub bin: &'static str,
}

/// The pinned runtimes.
pub const PINS: [Pin; 4] = [
    Pin {
        runtime: Runtime::Claude,
        package: "@anthropic-ai/claude-code",
        version: "2.1.197",
        bin: "claude",
    },
    Pin {
        runtime: Runtime::Codex,
        package: "@openai/codex",
        version: "0.171.0",
        bin: "codex",
    },
    Pin {
        runtime: Runtime::Pi,
        package: "@mariozechner/pi-coding-agent",
        version: "0.73.1",
        bin: "pi",
    },
    Pin {
        runtime: Runtime::Opencode,
        package: "opencode-ai",
        version: "1.18.33",
        bin: "opencode",
    },
];

/// The pin of `runtime` (not the stub).
pub fn pin(runtime: Runtime) -> &'static Pin {
    PINS.iter()
        .find(|p| p.runtime == runtime)
        .expect("a pinned runtime")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$MOSAIC_RUNTIMES_DIR`, else `<cargo target dir>/runtimes`.
pub fn runtimes_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MOSAIC_RUNTIMES_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|t| t.join("runtimes"))
        .unwrap_or_else(|| repo().join("target/runtimes"))
}

/// Find `prog` on `PATH`.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Install (once per process; a no-op when already there) and return the
/// `node_modules/.bin` directory, or why not.
pub fn ensure_installed() -> Result<PathBuf, String> {
    INSTALLED
        .get_or_init(|| {
            for tool in ["node", "npm"] {
                if which(tool).is_none() {
                    return Err(format!("{tool} is not installed"));
                }
            }
            let dir = runtimes_dir();
            let out = Command::new(repo().join(".ci/install-runtimes"))
                .arg(&dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!(".ci/install-runtimes: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    ".ci/install-runtimes {} failed (no npm registry?):\n{}{}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(dir.join("node_modules/.bin"))
        })
        .clone()
}

/// Effective uid.
pub fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Can this machine give a test a loopback-only network namespace?
pub fn netns_ready() -> Result<(), String> {
    if euid() != Some(0) {
        return Err("a loopback-only network namespace needs root (unshare -n)".into());
    }
    for prog in ["unshare", "ip", "tmux"] {
        if which(prog).is_none() {
            return Err(format!("{prog} is not installed"));
        }
    }
    Ok(())
}

/// The variable naming the case a re-executed test binary runs.
pub const CASE_VAR: &str = "MOSAIC_REAL_RUNTIME_CASE";

/// Inside the namespace [`run_in_netns`] made: the case to run.
pub fn in_netns() -> Option<String> {
    let case = std::env::var(CASE_VAR).ok().filter(|c| !c.is_empty())?;
    // Only loopback may be visible (/proc/self/net is per namespace; /sys
    // still shows the host's interfaces without a remount).
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(
        ifaces,
        vec!["lo"],
        "{CASE_VAR} is set but this is not a loopback-only namespace"
    );
    Some(case)
}

/// Re-run this test binary's `entry` test inside a fresh loopback-only
/// network namespace with [`CASE_VAR`]`=case`; its output is passed through.
pub fn run_in_netns(entry: &str, case: &str, timeout: Duration) -> Output {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "-n",
        "--propagation",
        "private",
        "sh",
        "-c",
        "ip link set lo up && exec \"$@\"",
        "sh",
    ])
    .arg(exe)
    .args([
        entry,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CASE_VAR, case)
    .stdin(Stdio::null());
    run_with_timeout(&mut cmd, timeout).expect("run unshare")
}

/// Run `cmd` with output captured; killed after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

/// The tmux socket name every sandbox uses (its `TMUX_TMPDIR` is private).
pub const SOCKET: &str = "mosaic-rt";
/// The session the runtime runs in.
pub const SESSION: &str = "agent";

/// A throw-away HOME, workdir and tmux server for one runtime.
pub struct Sandbox {
    /// The runtime.
    pub runtime: Runtime,
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    started: Option<Instant>,
}

impl Sandbox {
    /// Lay out HOME with `runtime`'s configuration pointed at
    /// `http://127.0.0.1:port`.
    pub fn new(runtime: Runtime, bin: &Path, port: u16) -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mosaic-rt-{}", runtime.name()))
            .tempdir()
            .expect("tempdir");
        let sb = Sandbox {
            runtime,
            dir,
            bin: bin.to_path_buf(),
            port,
            started: None,
        };
        for d in [sb.home(), sb.workdir(), sb.tmux_tmpdir()] {
            std::fs::create_dir_all(d).unwrap();
        }
        sb.write_config();
        sb
    }

    /// The throw-away HOME.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The runtime's working directory (not a git repository).
    pub fn workdir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The private `TMUX_TMPDIR`.
    pub fn tmux_tmpdir(&self) -> PathBuf {
        self.dir.path().join("tmux")
    }

    fn put(&self, rel: &str, text: &str) {
        let p = self.home().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }

    fn write_config(&self) {
        let url = format!("http://127.0.0.1:{}", self.port);
        let work = self.workdir().to_string_lossy().into_owned();
        let model = crate::model_server::MODEL;
        match self.runtime {
            Runtime::Claude => self.put(
                ".claude.json",
                &serde_json::json!({
                    "hasCompletedOnboarding": true,
                    "projects": {work: {"hasTrustDialogAccepted": true}}
                })
                .to_string(),
            ),
            Runtime::Codex => self.put(
                ".codex/config.toml",
                &format!(
                    r#"model = "{model}"
model_provider = "mock"
check_for_update_on_startup = false

[model_providers.mock]
name = "mock"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
requires_openai_auth = false

[projects."{work}"]
trust_level = "trusted"

[analytics]
enabled = false
"#
                ),
            ),
            Runtime::Pi => {
                self.put(
                    ".pi/agent/models.json",
                    &serde_json::json!({"providers": {"mock": {
                        "baseUrl": format!("{url}/v1"), "api": "openai-completions", "apiKey": "dummy",
                        "compat": {"supportsDeveloperRole": false, "supportsReasoningEffort": false},
                        "models": [{"id": model}]
                    }}})
                    .to_string(),
                );
                self.put(
                    ".pi/agent/settings.json",
                    &serde_json::json!({"defaultProvider": "mock", "defaultModel": model})
                        .to_string(),
                );
            }
            Runtime::Opencode => self.put(
                ".config/opencode/opencode.json",
                &serde_json::json!({
                    "$schema": "https://opencode.ai/config.json",
                    "autoupdate": false,
                    "share": "disabled",
                    "model": format!("mock/{model}"),
                    "small_model": format!("mock/{model}"),
                    "provider": {"mock": {
                        "npm": "@ai-sdk/openai-compatible",
                        "name": "mock",
                        "options": {"baseURL": format!("{url}/v1"), "apiKey": "dummy"},
                        "models": {model: {"name": "Mock"}}
                    }}
                })
                .to_string(),
            ),
            Runtime::Stub => {}
        }
    }

    /// The environment the tmux server (and so the pane) gets; nothing else
    /// of the caller's leaks in.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        let url = format!("http://127.0.0.1:{}", self.port);
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        );
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), s(self.home())),
            ("PATH".into(), path),
            ("TERM".into(), "xterm-256color".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("USER".into(), "root".into()),
            ("SHELL".into(), "/bin/bash".into()),
            ("TMUX_TMPDIR".into(), s(self.tmux_tmpdir())),
            ("XDG_CONFIG_HOME".into(), s(self.home().join(".config"))),
            ("XDG_DATA_HOME".into(), s(self.home().join(".local/share"))),
            ("XDG_STATE_HOME".into(), s(self.home().join(".local/state"))),
            ("XDG_CACHE_HOME".into(), s(self.home().join(".cache"))),
        ];
        let extra: &[(&str, &str)] = match self.runtime {
            Runtime::Claude => &[
                ("ANTHROPIC_AUTH_TOKEN", "dummy"),
                ("DISABLE_AUTOUPDATER", "1"),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ],
            Runtime::Codex => &[("MOCK_API_KEY", "dummy")],
            Runtime::Pi => &[("PI_OFFLINE", "1"), ("PI_SKIP_VERSION_CHECK", "1")],
            Runtime::Opencode => &[
                ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
                ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
                ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),
                ("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1"),
            ],
            Runtime::Stub => &[],
        };
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        match self.runtime {
            Runtime::Claude => env.push(("ANTHROPIC_BASE_URL".into(), url)),
            Runtime::Codex => env.push(("CODEX_HOME".into(), s(self.home().join(".codex")))),
            _ => {}
        }
        env
    }

    /// Run a tmux argv (first word `tmux`, as the adapters build it) with
    /// this sandbox's environment; `stdin` fed when given.
    pub fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(self.env())
            .current_dir(self.workdir())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// `tmux -L SOCKET ARGS…`.
    pub fn tmux(&self, args: &[&str]) -> Output {
        let mut argv = vec!["tmux".to_string(), "-L".into(), SOCKET.into()];
        argv.extend(args.iter().map(|a| a.to_string()));
        self.run(&argv, None)
    }

    /// Start `argv` in a detached 120×40 session.
    pub fn start(&mut self, argv: &[&str]) {
        let program = self.bin.join(argv[0]);
        let program = if program.exists() {
            program.to_string_lossy().into_owned()
        } else {
            argv[0].to_string()
        };
        let mut cmdline = vec![program];
        cmdline.extend(argv[1..].iter().map(|a| a.to_string()));
        let work = self.workdir().to_string_lossy().into_owned();
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            &work,
        ];
        let refs: Vec<&str> = cmdline.iter().map(String::as_str).collect();
        args.extend(refs);
        self.started = Some(Instant::now());
        let out = self.tmux(&args);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the pane after the runtime exits, for its last words.
        self.tmux(&["set-option", "-t", "=agent", "remain-on-exit", "on"]);
    }

    /// When [`Sandbox::start`] ran.
    pub fn started(&self) -> Instant {
        self.started.expect("started")
    }

    /// The pane's visible text (`capture-pane -p`; `-J` for the stub, whose
    /// long lines tmux wraps, where the TUIs draw their own lines).
    pub fn capture(&self) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "=agent:0.0"];
        if self.runtime == Runtime::Stub {
            args.push("-J");
        }
        let out = self.tmux(&args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `#{pane_current_command}` / `#{pane_pid}` / `#{pane_dead}`.
    pub fn pane_field(&self, field: &str) -> String {
        let out = self.tmux(&["display-message", "-p", "-t", "=agent:0.0", field]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The pane's process.
    pub fn pane_pid(&self) -> u32 {
        self.pane_field("#{pane_pid}").parse().unwrap_or(0)
    }

    /// Run the adapters' delivery of `text` (paste, then Enter when `enter`).
    pub fn deliver(&self, d: &Delivery, text: &str) -> Output {
        let out = self.run(&d.load, Some(text.as_bytes()));
        assert!(out.status.success(), "load-buffer: {out:?}");
        self.run(&d.paste, None)
    }

    /// Every process whose environment carries this sandbox's HOME.
    pub fn processes(&self) -> Vec<u32> {
        let home = format!("HOME={}", self.home().display());
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            if let Ok(env) = std::fs::read(e.path().join("environ")) {
                if env.split(|b| *b == 0).any(|kv| kv == home.as_bytes()) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Wait until `f(capture)` holds; the last capture either way.
    pub fn wait_screen(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.capture();
            if f(&c) {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                return Err(c);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
        std::thread::sleep(Duration::from_millis(300));
        for pid in self.processes() {
            // SAFETY: plain kill(2) on a PID we found carrying our HOME.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// One process: its command name, parent and RSS.
#[derive(Debug, Clone)]
pub struct Proc {
    /// PID.
    pub pid: u32,
    /// Parent PID.
    pub ppid: u32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// `/proc/PID/cmdline`, words joined by spaces.
    pub cmdline: String,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// Every process on the machine (a snapshot of `/proc`).
pub fn all_procs() -> HashMap<u32, Proc> {
    let mut m = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string()
        };
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|w| !w.is_empty())
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        m.insert(
            pid,
            Proc {
                pid,
                ppid: field("PPid:").parse().unwrap_or(0),
                comm: field("Name:"),
                cmdline,
                rss_kib: field("VmRSS:").parse().unwrap_or(0),
            },
        );
    }
    m
}

/// `root` and its descendants, parents first.
pub fn tree(root: u32, procs: &HashMap<u32, Proc>) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(pr) = procs.get(&p) {
            out.push(pr.clone());
        }
        let mut kids: Vec<u32> = procs
            .values()
            .filter(|c| c.ppid == p)
            .map(|c| c.pid)
            .collect();
        kids.sort_unstable();
        todo.extend(kids.into_iter().rev());
    }
    out
}
