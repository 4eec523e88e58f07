//! `mosaic agent …`: send, watch (a read-only grouped viewer that is
//! removed on every exit path), tail and reset. One agent, exact targets.
//!
//! Send delivers by bracketed paste (`load-buffer -` from stdin, `paste-buffer
//! -p`, then Enter once the adapter sees the paste in the input box), only
//! when the adapter reads the screen as the prompt (Ready, or Busy: the
//! runtimes queue a message sent during a turn); any other screen is refused
//! with one line naming it, unless `--force` (`--queue` waits for it).
//! `--verify` reads the runtime's own record (its transcript, the stub's ACK
//! lines) for the message as a user turn. Reset delivers the adapter's reset
//! command the same way and reports "reset" only when the screen confirms it.

use super::cli::AgentCommand;
use super::roster::Agent;
use super::tmux;
use super::Ctx;
use crate::cli::Global;
use crate::report::Printer;
use mosaic_engine::error::{Error, Result};
use mosaic_fleet::adapters::{self, Runtime, ScreenState, TranscriptFormat};
use mosaic_fleet::ssh::{self, Dest};
use mosaic_fleet::{envfile, hosts, runner};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Runs a `mosaic agent …` command; returns the exit code.
pub fn run(cmd: &AgentCommand, g: &Global, p: &Printer) -> Result<i32> {
    match cmd {
        AgentCommand::Send { dry_run: true, .. } => Err(no_dry_run("send", "the message")),
        AgentCommand::Reset { dry_run: true, .. } => Err(no_dry_run("reset", "the reset command")),
        AgentCommand::Send {
            name,
            message,
            source,
            verify,
            force,
            queue,
            timeout,
            roster,
            dry_run: false,
        } => send(
            &Ctx::new(g, roster)?,
            name,
            message,
            source,
            *verify,
            *force,
            *queue,
            *timeout,
            p,
        ),
        AgentCommand::Watch { name, roster } => watch(&Ctx::new(g, roster)?, name),
        AgentCommand::Tail {
            name,
            lines,
            roster,
        } => tail(&Ctx::new(g, roster)?, name, *lines, p),
        AgentCommand::Reset {
            name,
            queue,
            timeout,
            roster,
            dry_run: false,
        } => reset(&Ctx::new(g, roster)?, name, *queue, *timeout, p),
        AgentCommand::Logs { .. } => super::logs::run(cmd, g, p),
    }
}

/// `agent send/reset --dry-run`: these talk to a live agent, so there is
/// nothing to rehearse; one line says so and what to use instead.
fn no_dry_run(verb: &str, what: &str) -> Error {
    Error::Input(format!(
        "agent {verb} talks to a live agent and has no --dry-run (it would type {what} into the pane); see the pane with `mosaic agent tail NAME` first"
    ))
}

/// A runtime failure: one line on stderr (and a JSON document with --json), exit 1.
fn fail(p: &Printer, msg: &str) -> Result<i32> {
    if p.json {
        p.doc(
            crate::report::Doc::Error,
            &serde_json::json!({"error": msg, "exit_code": 1}),
        );
    }
    eprintln!("mosaic: {msg}");
    Ok(1)
}

/// Where one agent lives.
struct Target<'a> {
    agent: &'a Agent,
    socket: Option<String>,
    /// The agent's host, when it is not this machine.
    dest: Option<Dest>,
}

impl Target<'_> {
    fn name(&self) -> &str {
        self.agent.name.as_str()
    }

    fn where_(&self) -> String {
        let w = tmux::where_(self.socket.as_deref());
        match &self.dest {
            Some(d) => format!("{w} on host {}", d.name),
            None => w,
        }
    }

    /// `mosaic ARGS` as the operator runs it for this agent: on this machine,
    /// or `ssh TARGET mosaic ARGS` for a remote one.
    fn hint(&self, args: &str) -> String {
        match &self.dest {
            Some(d) => format!("{} mosaic {args}", d.hint()),
            None => format!("mosaic {args}"),
        }
    }

    /// The words every pane script takes first: the socket ('' = default
    /// server) and the agent.
    fn words(&self, more: &[String]) -> Vec<String> {
        let mut v = vec![
            self.socket.clone().unwrap_or_default(),
            self.name().to_string(),
        ];
        v.extend(more.iter().cloned());
        v
    }
}

fn target<'a>(roster: &'a super::roster::Roster, ctx: &Ctx, name: &str) -> Result<Target<'a>> {
    let agent = roster.agent(name, &ctx.roster_path)?;
    let dest = if agent.is_local() {
        None
    } else {
        match roster.host_of(agent) {
            Some(h) => Some(Dest::from(h)),
            None => {
                return Err(Error::Input(format!(
                    "agent {name} belongs to the controller, and this machine is host {} ({}); run this on the controller",
                    roster.me_name().unwrap_or("?"),
                    mosaic_fleet::roster::HOST_NAME_ENV
                )))
            }
        }
    };
    Ok(Target {
        agent,
        socket: roster.agent_socket(agent).map(str::to_string),
        dest,
    })
}

/// Runs a fixed script on the agent's host; an ssh failure is one line.
fn remote(d: &Dest, script: &str, words: &[String]) -> std::result::Result<ssh::Reply, String> {
    ssh::call(d, script, words, ssh::call_timeout()).map_err(|e| e.message)
}

/// Checks that the agent's pane exists and is alive; the error is one line
/// saying which (no server, no session, dead pane) and what to do.
fn check_pane(t: &Target) -> Result<std::result::Result<u32, String>> {
    let name = t.name();
    let no_server = || {
        format!(
            "no tmux server on {}: the fleet is not running (start it with `{}`)",
            t.where_(),
            t.hint("fleet start")
        )
    };
    let no_session = || {
        format!(
            "agent {name} has no session on {} (start it with `{}`)",
            t.where_(),
            t.hint(&format!("fleet start {name}"))
        )
    };
    let text = match &t.dest {
        None => {
            let argv = tmux::pane_state(t.socket.as_deref(), name);
            let out = runner::output(&argv)?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let msg = if tmux::is_no_server(&err) {
                    no_server()
                } else if err.contains("can't find") || err.contains("no such") {
                    no_session()
                } else {
                    format!(
                        "`{}` failed: {}",
                        runner::display(&argv),
                        runner::first_line(&out)
                    )
                };
                return Ok(Err(msg));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Some(d) => {
            let script = hosts::script(hosts::PANE_STATE_SCRIPT);
            match remote(d, &script, &t.words(&[])) {
                Err(e) => return Ok(Err(e)),
                Ok(r) if r.code == hosts::NO_SESSION_EXIT => return Ok(Err(no_server())),
                Ok(r) if r.code != 0 => {
                    let err = ssh::useful_line(&r.stderr).unwrap_or_default();
                    return Ok(Err(
                        if err.contains("can't find") || err.contains("no such") || err.is_empty() {
                            no_session()
                        } else {
                            format!("tmux on host {} failed: {err}", d.name)
                        },
                    ));
                }
                Ok(r) => r.stdout,
            }
        }
    };
    let pane = text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] == "0").then(|| (f[1] == "1", f[2].parse::<u32>().unwrap_or(0)))
    });
    let Some((dead, pid)) = pane else {
        return Ok(Err(format!(
            "agent {name} has no pane {} on {}",
            tmux::pane_target(name),
            t.where_()
        )));
    };
    if dead {
        return Ok(Err(format!(
            "the pane of agent {name} is dead (its process exited); restart it with `{}`",
            t.hint(&format!("fleet restart {name}"))
        )));
    }
    Ok(Ok(pid))
}

fn capture(t: &Target, lines: usize) -> Result<std::result::Result<String, String>> {
    match &t.dest {
        None => {
            let argv = tmux::capture_pane(t.socket.as_deref(), t.name(), lines);
            let out = runner::output(&argv)?;
            if out.status.success() {
                Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
            } else {
                Ok(Err(runner::first_line(&out)))
            }
        }
        Some(d) => {
            let script = hosts::script(hosts::CAPTURE_SCRIPT);
            Ok(match remote(d, &script, &t.words(&[lines.to_string()])) {
                Err(e) => Err(e),
                Ok(r) if r.code == 0 => Ok(r.stdout),
                Ok(r) => Err(ssh::useful_line(&r.stderr)
                    .unwrap_or_else(|| format!("exit status {}", r.code))),
            })
        }
    }
}

/// Types `text` into a remote agent's pane: the text travels on ssh's stdin
/// (octal escapes into `tmux load-buffer -`), then `paste-buffer -p`, then
/// Enter. `Err` is one line.
fn remote_type(t: &Target, d: &Dest, text: &str) -> std::result::Result<(), String> {
    let delay = std::env::var("MOSAIC_SEND_ENTER_DELAY")
        .ok()
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .unwrap_or_else(|| "0.2".to_string());
    let r = remote(d, &hosts::send_script(text), &t.words(&[delay]))?;
    match r.code {
        0 => Ok(()),
        hosts::NO_SESSION_EXIT => Err(format!("no tmux session '{}' on {}", t.name(), t.where_())),
        c => Err(format!(
            "could not type into ={}:0.0 on {}: {}",
            t.name(),
            t.where_(),
            ssh::useful_line(&r.stderr).unwrap_or_else(|| format!("exit status {c}"))
        )),
    }
}

/// The text delivered: `[from SOURCE] MESSAGE` (the label stays a prefix of
/// the first line, so the runtime's record shows who sent it). Newlines and
/// tabs are kept (the paste carries them); every other control character
/// (ESC could end a bracketed paste early) becomes one space, and trailing
/// newlines are dropped (Enter submits).
pub fn typed_text(source: &str, message: &str) -> String {
    format!("[from {source}] {message}")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim_end_matches(['\n', '\r'])
        .to_string()
}

/// The one-line form remote delivery types (its script takes one line).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// How a local agent's screen and record are read.
struct Local {
    /// The adapter that reads its screen and transcript.
    rt: Runtime,
    /// Its HOME and environment (its env file over this process's).
    env: BTreeMap<String, String>,
}

impl Local {
    fn new(ctx: &Ctx, t: &Target) -> Local {
        let env = std::fs::read_to_string(ctx.env_file(t.name()))
            .map(|s| envfile::parse(&s))
            .unwrap_or_default();
        let rt = env
            .get("MOSAIC_AGENT_COMMAND")
            .and_then(|c| Runtime::for_command(c))
            .or_else(|| Runtime::from_name(t.agent.runtime.program()))
            .unwrap_or(Runtime::Stub);
        Local { rt, env }
    }

    fn var(&self, k: &str) -> Option<String> {
        self.env
            .get(k)
            .cloned()
            .or_else(|| std::env::var(k).ok())
            .filter(|v| !v.is_empty())
    }

    fn transcript_root(&self) -> PathBuf {
        let home = PathBuf::from(self.var("HOME").unwrap_or_else(|| "/".into()));
        self.rt.transcript().root(&home, |k| self.var(k))
    }
}

/// A remote agent's pane: its current command and its visible screen.
fn remote_screen(t: &Target, d: &Dest) -> Result<std::result::Result<(String, String), String>> {
    let script = hosts::script(hosts::SCREEN_SCRIPT);
    Ok(match remote(d, &script, &t.words(&[])) {
        Err(e) => Err(e),
        Ok(r) if r.code == 0 => {
            let (cmd, screen) = r.stdout.split_once('\n').unwrap_or((&r.stdout, ""));
            Ok((cmd.trim().to_string(), screen.to_string()))
        }
        Ok(r) => {
            Err(ssh::useful_line(&r.stderr).unwrap_or_else(|| format!("exit status {}", r.code)))
        }
    })
}

/// The adapter that reads a remote agent's screen: the runtime its pane
/// runs (the stub under a declared runtime is the stub), else the roster's.
fn remote_runtime(t: &Target, d: &Dest) -> Result<std::result::Result<Runtime, String>> {
    Ok(remote_screen(t, d)?.map(|(cmd, _)| {
        Runtime::for_command(&cmd)
            .or_else(|| Runtime::from_name(t.agent.runtime.program()))
            .unwrap_or(Runtime::Stub)
    }))
}

/// The visible screen of an agent's pane (over ssh for a remote one).
fn screen(t: &Target) -> Result<std::result::Result<String, String>> {
    if let Some(d) = &t.dest {
        return Ok(remote_screen(t, d)?.map(|(_, screen)| screen));
    }
    let mut argv = mosaic_fleet::tmux::client(t.socket.as_deref());
    argv.extend(["capture-pane", "-p", "-J", "-t"].map(String::from));
    argv.push(mosaic_fleet::tmux::pane_target(t.name()));
    let out = runner::output(&argv)?;
    Ok(if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(runner::first_line(&out))
    })
}

fn state(t: &Target, rt: Runtime) -> Result<std::result::Result<ScreenState, String>> {
    Ok(screen(t)?.map(|s| rt.screen_state(&s)))
}

/// May a message be pasted on this screen? Ready, or Busy (the runtimes
/// queue a message typed while a turn runs; an input box with text in it
/// reads as InputPending, never Busy).
fn may_paste(s: &ScreenState) -> bool {
    matches!(s, ScreenState::Ready | ScreenState::Busy)
}

/// Waits until `ok(state)` or the deadline; returns the last state.
fn wait_state(
    t: &Target,
    rt: Runtime,
    deadline: Instant,
    ok: impl Fn(&ScreenState) -> bool,
) -> Result<std::result::Result<ScreenState, String>> {
    loop {
        let s = match state(t, rt)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if ok(&s) || Instant::now() >= deadline {
            return Ok(Ok(s));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

static BUFFERS: AtomicI32 = AtomicI32::new(0);

/// Delivers `text` to a local pane: `load-buffer` from stdin, a bracketed
/// `paste-buffer`, then Enter once the screen shows the paste taken in
/// (InputPending; Busy when the runtime was busy). `Err` is one line; no
/// Enter is pressed when the paste does not show within 5 s, unless `force`.
fn paste(
    t: &Target,
    rt: Runtime,
    text: &str,
    force: bool,
) -> Result<std::result::Result<(), String>> {
    let buffer = format!(
        "mosaic-send-{}-{}",
        std::process::id(),
        BUFFERS.fetch_add(1, Ordering::SeqCst)
    );
    let d = adapters::delivery(t.socket.as_deref(), t.name(), &buffer);
    let before = match screen(t)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let out = runner::output_with_stdin(&d.load, text.as_bytes())?;
    if !out.status.success() {
        return Ok(Err(format!(
            "tmux load-buffer failed: {}",
            runner::first_line(&out)
        )));
    }
    let out = runner::output(&d.paste)?;
    if !out.status.success() {
        return Ok(Err(format!(
            "tmux paste-buffer failed: {}",
            runner::first_line(&out)
        )));
    }
    // Taken in: the box shows it (InputPending), or a busy runtime queued
    // it, or — a runtime without bracketed paste takes each line as it
    // comes (the stub) — the prompt is back on a changed screen, where Enter
    // submits the last line (or nothing: an empty prompt ignores it).
    let pasted = Instant::now();
    let taken = |s: &ScreenState, screen: &str| match s {
        ScreenState::InputPending { .. } | ScreenState::Busy => true,
        ScreenState::Ready => screen != before && pasted.elapsed() >= Duration::from_secs(1),
        _ => false,
    };
    let deadline = pasted + Duration::from_secs(5);
    loop {
        let now = match screen(t)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let s = rt.screen_state(&now);
        if taken(&s, &now) {
            break;
        }
        if Instant::now() >= deadline {
            if force {
                break;
            }
            return Ok(Err(format!(
                "the pasted text did not show in the input box (the agent shows {s}); Enter not pressed"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = runner::output(&d.enter)?;
    if !out.status.success() {
        return Ok(Err(format!(
            "tmux send-keys Enter failed: {}",
            runner::first_line(&out)
        )));
    }
    Ok(Ok(()))
}

/// Gets a local agent to a screen that takes a message: refuses (one line
/// naming the screen) unless `force`; with `queue` waits until `deadline`.
fn at_prompt(
    t: &Target,
    rt: Runtime,
    force: bool,
    queue: bool,
    deadline: Instant,
) -> Result<std::result::Result<(), String>> {
    let s = match state(t, rt)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("cannot read the pane: {e}"))),
    };
    if may_paste(&s) || force {
        return Ok(Ok(()));
    }
    if !queue {
        return Ok(Err(format!(
            "refused: agent {} shows {s}, not its input prompt (a message must not answer it); --queue waits for the prompt, --force delivers anyway",
            t.name()
        )));
    }
    match wait_state(t, rt, deadline, may_paste)? {
        Err(e) => Ok(Err(format!("cannot read the pane: {e}"))),
        Ok(s) if may_paste(&s) => Ok(Ok(())),
        Ok(s) => Ok(Err(format!(
            "refused: agent {} still shows {s} after waiting for its input prompt",
            t.name()
        ))),
    }
}

/// A snapshot of the runtime's record: how often each source shows the
/// message as a user turn.
type Turns = BTreeMap<PathBuf, usize>;

/// Counts the user turns equal to `text` in the runtime's record. The
/// stub's record is its pane (its ACK lines; a multi-line message is one
/// line per line, so its last line counts).
fn record(
    t: &Target,
    l: &Local,
    text: &str,
    since: Option<SystemTime>,
) -> std::result::Result<Turns, String> {
    let rt = l.rt;
    let count =
        |turns: Vec<String>, sent: &str| turns.iter().filter(|u| rt.same_message(sent, u)).count();
    let mut out = Turns::new();
    let tr = rt.transcript();
    match tr.format {
        TranscriptFormat::Screen => {
            let cap = capture(t, 2000).map_err(|e| e.to_string())??;
            let last = text.lines().last().unwrap_or("");
            let turns = rt.user_turns(cap.as_bytes()).map_err(|e| e.to_string())?;
            out.insert(PathBuf::new(), count(turns, last));
        }
        TranscriptFormat::Sqlite => {
            let db = l.transcript_root();
            if !db.exists() {
                return Ok(out);
            }
            let argv = rt
                .transcript_query(&db)
                .ok_or_else(|| "no query for this transcript".to_string())?;
            let o = runner::output(&argv).map_err(|e| e.to_string())?;
            if !o.status.success() {
                return Err(format!(
                    "`{}` failed: {}",
                    runner::display(&argv),
                    runner::first_line(&o)
                ));
            }
            let turns = rt.user_turns(&o.stdout).map_err(|e| e.to_string())?;
            out.insert(db, count(turns, text));
        }
        TranscriptFormat::Jsonl => {
            let root = l.transcript_root();
            let day = SystemTime::now() - Duration::from_secs(86_400);
            let mut files = Vec::new();
            jsonl_files(&root, 0, &mut files);
            for (f, mtime) in files {
                if mtime < since.unwrap_or(day) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&f) else {
                    continue;
                };
                // A line being written may be cut short: skip unreadable files.
                if let Ok(turns) = rt.user_turns(&bytes) {
                    out.insert(f, count(turns, text));
                }
            }
        }
    }
    Ok(out)
}

/// The `*.jsonl` files below `dir` (depth-bounded) with their mtimes.
fn jsonl_files(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, SystemTime)>) {
    if depth > 6 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            jsonl_files(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            out.push((p, md.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        }
    }
}

/// Does `after` show more matching user turns than `before` anywhere?
fn grew(before: &Turns, after: &Turns) -> bool {
    after
        .iter()
        .any(|(k, n)| *n > before.get(k).copied().unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
fn send(
    ctx: &Ctx,
    name: &str,
    message: &str,
    source: &str,
    verify: bool,
    force: bool,
    queue: bool,
    timeout: u64,
    p: &Printer,
) -> Result<i32> {
    let roster = ctx.roster()?;
    let t = target(&roster, ctx, name)?;
    if source.is_empty() {
        return Err(Error::Input("--source must not be empty".into()));
    }
    if let Err(why) = check_pane(&t)? {
        return report_send(p, name, verify, false, &format!("not delivered: {why}"));
    }
    let text = typed_text(source, message);
    if let Some(d) = &t.dest {
        // The same rule as here: a message never answers a prompt there.
        let rt = match remote_runtime(&t, d)? {
            Ok(rt) => rt,
            Err(e) => {
                return report_send(
                    p,
                    name,
                    verify,
                    false,
                    &format!("not delivered: cannot read the pane: {e}"),
                )
            }
        };
        let deadline = Instant::now() + Duration::from_secs(timeout);
        if let Err(why) = at_prompt(&t, rt, force, queue, deadline)? {
            return report_send(p, name, verify, false, &format!("not delivered: {why}"));
        }
        return send_remote(p, &t, d, rt, &text, verify, timeout);
    }
    let l = Local::new(ctx, &t);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    if let Err(why) = at_prompt(&t, l.rt, force, queue, deadline)? {
        return report_send(p, name, verify, false, &format!("not delivered: {why}"));
    }
    let started = SystemTime::now() - Duration::from_secs(2);
    let before = if verify {
        match record(&t, &l, &text, None) {
            Ok(b) => b,
            Err(e) => {
                return report_send(
                    p,
                    name,
                    true,
                    false,
                    &format!("cannot read the runtime's record: {e}"),
                )
            }
        }
    } else {
        Turns::new()
    };
    if let Err(why) = paste(&t, l.rt, &text, force)? {
        return report_send(p, name, verify, false, &format!("not delivered: {why}"));
    }
    if !verify {
        return report_send(p, name, false, true, "delivered");
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let where_ = match l.rt.transcript().format {
        TranscriptFormat::Screen => "its pane (ACK line)".to_string(),
        _ => format!("its transcript ({})", l.transcript_root().display()),
    };
    loop {
        match record(&t, &l, &text, Some(started)) {
            Ok(after) if grew(&before, &after) => {
                return report_send(
                    p,
                    name,
                    true,
                    true,
                    &format!("accepted: {where_} shows it as a user turn"),
                )
            }
            Ok(_) => {}
            Err(e) => {
                return report_send(
                    p,
                    name,
                    true,
                    false,
                    &format!("not accepted: cannot read the runtime's record: {e}"),
                )
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Err(why) = check_pane(&t)? {
        return report_send(p, name, true, false, &format!("not accepted: {why}"));
    }
    let why = match state(&t, l.rt)? {
        Ok(ScreenState::InputPending { shown }) => {
            format!("the message is still in the input box ({shown}) after {timeout}s")
        }
        Ok(s @ ScreenState::PermissionPrompt { .. }) => {
            format!("the agent is at {s} after {timeout}s")
        }
        Ok(s) => {
            format!("timed out after {timeout}s: {where_} does not show it (the agent shows {s})")
        }
        Err(e) => format!("timed out after {timeout}s; cannot read the pane: {e}"),
    };
    report_send(p, name, true, false, &format!("not accepted: {why}"))
}

/// Remote delivery (over ssh, one line) with the pane read-back receipt.
fn send_remote(
    p: &Printer,
    t: &Target,
    d: &Dest,
    rt: Runtime,
    text: &str,
    verify: bool,
    timeout: u64,
) -> Result<i32> {
    let name = t.name();
    let text = one_line(text);
    // A real runtime's record (its transcript) is on that host: say so at
    // once rather than wait for an ACK line only the stub prints.
    let verify_here = verify && rt == Runtime::Stub;
    let before = if verify_here {
        match capture(t, 200)? {
            Ok(s) => s,
            Err(e) => {
                return report_send(p, name, true, false, &format!("cannot read the pane: {e}"))
            }
        }
    } else {
        String::new()
    };
    if let Err(why) = remote_type(t, d, &text) {
        return report_send(p, name, verify, false, &format!("not delivered: {why}"));
    }
    if !verify {
        return report_send(p, name, false, true, "delivered");
    }
    if !verify_here {
        return report_send(
            p,
            name,
            true,
            false,
            &format!("delivered, not verified: {rt}'s transcript is on {} (on another host only the stub's ACK line is read)", t.where_()),
        );
    }
    let ack = format!("ACK {text}");
    let acks = |s: &str| s.lines().filter(|l| l.trim_end().ends_with(&ack)).count();
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        match capture(t, 200)? {
            Ok(after) if acks(&after) > acks(&before) => {
                return report_send(
                    p,
                    name,
                    true,
                    true,
                    "accepted: the agent acknowledged it (ACK seen)",
                )
            }
            Ok(_) => {}
            Err(e) => return report_send(p, name, true, false, &format!("not accepted: {e}")),
        }
        if Instant::now() >= deadline {
            return report_send(
                p,
                name,
                true,
                false,
                &format!("not accepted: no ACK receipt in the pane after {timeout}s (on another host only the stub's receipt line is read)"),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn report_send(p: &Printer, name: &str, verify: bool, ok: bool, reason: &str) -> Result<i32> {
    if p.json {
        p.doc(crate::report::Doc::AgentSend, &serde_json::json!({"agent": name, "verified": verify, "accepted": ok, "reason": reason}));
    } else if ok {
        p.line(&format!("{name}: {reason}"));
    } else {
        eprintln!("mosaic: {name}: {reason}");
    }
    Ok(if ok { 0 } else { 1 })
}

fn tail(ctx: &Ctx, name: &str, n: usize, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let t = target(&roster, ctx, name)?;
    if let Err(why) = check_pane(&t)? {
        if why.contains("is dead") {
            // A dead pane still has its last screen; show it.
        } else {
            return fail(p, &why);
        }
    }
    let text = match capture(&t, n)? {
        Ok(s) => s,
        Err(e) => return fail(p, &format!("cannot read the pane of {name}: {e}")),
    };
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map(|i| i + 1)
        .unwrap_or(0);
    let start = end.saturating_sub(n);
    let out = &lines[start..end];
    if p.json {
        p.doc(
            crate::report::Doc::AgentTail,
            &serde_json::json!({"agent": name, "lines": out}),
        );
    } else {
        for l in out {
            p.out(l);
        }
    }
    Ok(0)
}

fn report_reset(p: &Printer, name: &str, cmd: &str, ok: bool, reason: &str) -> Result<i32> {
    if p.json {
        p.doc(
            crate::report::Doc::AgentReset,
            &serde_json::json!({"agent": name, "sent": cmd, "reset": ok, "reason": reason}),
        );
    } else if ok {
        p.line(&format!("{name}: {reason}"));
    } else {
        eprintln!("mosaic: {name}: {reason}");
    }
    Ok(if ok { 0 } else { 1 })
}

fn reset(ctx: &Ctx, name: &str, queue: bool, timeout: u64, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let t = target(&roster, ctx, name)?;
    if let Err(why) = check_pane(&t)? {
        return fail(p, &why);
    }
    if let Some(d) = &t.dest {
        let cmd = roster.reset_command(t.agent.runtime).ok_or_else(|| {
            Error::Input(format!(
                "the roster sets no reset_command for runtime {0}; add `runtimes: {{ {0}: {{ reset_command: /clear }} }}` to {1}",
                t.agent.runtime.program(),
                ctx.roster_path.display()
            ))
        })?;
        if let Err(why) = remote_type(&t, d, cmd) {
            return fail(p, &format!("reset of {name} failed: {why}"));
        }
        return report_reset(
            p,
            name,
            cmd,
            true,
            &format!("sent {cmd} (not confirmed on a remote host)"),
        );
    }
    let l = Local::new(ctx, &t);
    let rt = l.rt;
    let spec = rt.reset();
    let cmd = roster
        .reset_command(t.agent.runtime)
        .unwrap_or(spec.command)
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let takes =
        |s: &ScreenState| s.is_ready() || (spec.accepted_while_busy && *s == ScreenState::Busy);
    loop {
        let s = match wait_state(&t, rt, if queue { deadline } else { Instant::now() }, takes)? {
            Ok(s) => s,
            Err(e) => {
                return report_reset(
                    p,
                    name,
                    &cmd,
                    false,
                    &format!("not reset: cannot read the pane: {e}"),
                )
            }
        };
        if !takes(&s) {
            let hint = if queue {
                ""
            } else {
                " (--queue waits for its prompt)"
            };
            return report_reset(
                p,
                name,
                &cmd,
                false,
                &format!("not reset: agent {name} shows {s}, not its input prompt{hint}"),
            );
        }
        let before = screen(&t)?.unwrap_or_default();
        if let Err(why) = paste(&t, rt, &cmd, false)? {
            return report_reset(p, name, &cmd, false, &format!("not reset: {why}"));
        }
        // Until refused (break), confirmed or out of time (return).
        loop {
            let now = screen(&t)?.unwrap_or_default();
            if rt.reset_refused(&now) && !rt.reset_refused(&before) {
                break;
            }
            if now != before && rt.reset_confirmed(&now) {
                return report_reset(
                    p,
                    name,
                    &cmd,
                    true,
                    &format!("reset ({cmd} confirmed on screen)"),
                );
            }
            if Instant::now() >= deadline {
                return report_reset(p, name, &cmd, false, &format!("not reset: sent {cmd} but no confirmation on screen after {timeout}s (the agent shows {})", rt.screen_state(&now)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if !queue || Instant::now() >= deadline {
            return report_reset(p, name, &cmd, false, &format!("not reset: the runtime refused {cmd} while busy with a turn (--queue waits for its prompt and retries)"));
        }
        // --queue: wait for the prompt and retry.
        let _ = wait_state(&t, rt, deadline, |s| s.is_ready())?;
    }
}

// ---- watch ----

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

const WATCH_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Removes the viewer session when dropped: normal exit, error, signal or panic.
struct Viewer {
    socket: Option<String>,
    name: String,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        // Already gone (destroy-unattached) is fine.
        let _ = runner::output(&tmux::kill_session(self.socket.as_deref(), &self.name));
    }
}

/// Removes viewers of `agent` left by a watch that could not clean up (its
/// pid is gone, e.g. after `kill -9`).
fn sweep_stale_viewers(socket: Option<&str>, agent: &str) -> Result<()> {
    let mut argv = tmux::client(socket);
    argv.extend(["list-sessions", "-F", "#{session_name}\t#{session_group}"].map(String::from));
    let out = runner::output(&argv)?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Only sessions grouped with the agent's are viewers: a roster agent
        // that happens to be named AGENT-watch-N is never touched.
        let (s, group) = line.split_once('\t').unwrap_or((line, ""));
        if group != agent || s == agent {
            continue;
        }
        if let Some(pid) = tmux::viewer_pid(agent, s) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = runner::output(&tmux::kill_session(socket, s))?;
            }
        }
    }
    Ok(())
}

fn watch(ctx: &Ctx, name: &str) -> Result<i32> {
    let roster = ctx.roster()?;
    let t = target(&roster, ctx, name)?;
    if let Some(d) = &t.dest {
        return Err(Error::Input(format!(
            "agent {name} runs on host {}; watch it there: {} mosaic agent watch {name}",
            d.name,
            d.hint().replacen("ssh ", "ssh -t ", 1)
        )));
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Error::Input(
            "mosaic agent watch needs a terminal (stdin and stdout must be a tty); use `mosaic agent tail` in scripts".into(),
        ));
    }
    if let Err(why) = check_pane(&t)? {
        eprintln!("mosaic: {why}");
        return Ok(1);
    }
    let socket = t.socket.clone();
    // The agent's window never follows a viewer's size.
    let pin = tmux::pin_window_size(socket.as_deref(), name);
    let out = runner::output(&pin)?;
    if !out.status.success() {
        eprintln!("mosaic: cannot watch {name}: {}", runner::first_line(&out));
        return Ok(1);
    }
    sweep_stale_viewers(socket.as_deref(), name)?;
    let viewer_name = tmux::viewer_name(name, std::process::id());
    // Handlers first, so a signal between creating and attaching still cleans up.
    for s in WATCH_SIGNALS {
        // SAFETY: installing an async-signal-safe handler (one atomic store).
        unsafe {
            libc::signal(s, on_signal as *const () as libc::sighandler_t);
        }
    }
    let create = tmux::new_viewer(socket.as_deref(), name, &viewer_name);
    let out = runner::output(&create)?;
    if !out.status.success() {
        eprintln!(
            "mosaic: cannot create the viewer for {name}: {}",
            runner::first_line(&out)
        );
        return Ok(1);
    }
    let viewer = Viewer {
        socket: socket.clone(),
        name: viewer_name.clone(),
    };
    let code = if SIGNALLED.load(Ordering::SeqCst) != 0 {
        128 + SIGNALLED.load(Ordering::SeqCst)
    } else {
        let mut child = runner::spawn(&tmux::attach_viewer(socket.as_deref(), &viewer_name))?;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => break st.code().unwrap_or(1),
                Ok(None) => {}
                Err(e) => return Err(Error::io("tmux", e)),
            }
            let sig = SIGNALLED.load(Ordering::SeqCst);
            if sig != 0 {
                // SAFETY: signalling our own child by its pid.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
                }
                let _ = child.wait();
                break 128 + sig;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    drop(viewer);
    for s in WATCH_SIGNALS {
        // SAFETY: restoring the default disposition.
        unsafe {
            libc::signal(s, libc::SIG_DFL);
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_keeps_lines_and_drops_other_controls() {
        assert_eq!(
            typed_text("operator:mosaic-cli", "hi\nthere\t!\x1b[201~\n\n"),
            "[from operator:mosaic-cli] hi\nthere\t! [201~"
        );
        assert_eq!(one_line("a\nb"), "a b");
    }

    #[test]
    fn a_record_grows_only_with_a_new_turn() {
        let mut b = Turns::new();
        b.insert(PathBuf::from("x"), 1);
        let mut a = b.clone();
        assert!(!grew(&b, &a));
        a.insert(PathBuf::from("y"), 1);
        assert!(grew(&b, &a));
        assert!(!may_paste(&ScreenState::Unknown));
        assert!(may_paste(&ScreenState::Busy));
    }
}
