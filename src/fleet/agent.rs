//! `mosaic agent …`: send (through the shipped `agent-send.sh`, with an
//! optional read-back `--verify`), watch (a read-only grouped viewer that is
//! removed on every exit path), tail and reset. One agent, exact targets.

use super::cli::AgentCommand;
use super::roster::Agent;
use super::tmux;
use super::Ctx;
use crate::cli::Global;
use crate::report::Printer;
use mosaic_engine::error::{Error, Result};
use mosaic_fleet::ssh::{self, Dest};
use mosaic_fleet::{hosts, runner};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

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
            timeout,
            roster,
            dry_run: false,
        } => send(
            &Ctx::new(g, roster)?,
            name,
            message,
            source,
            *verify,
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
            roster,
            dry_run: false,
        } => reset(&Ctx::new(g, roster)?, name, p),
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
        p.json_out(&serde_json::json!({"error": msg, "exit_code": 1}));
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

/// The exact text `agent-send.sh` types: `[from SOURCE] MESSAGE`, each
/// control character replaced by one space.
pub fn typed_text(source: &str, message: &str) -> String {
    format!("[from {source}] {message}")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What a read-back of the pane says about a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The runtime answered `ACK <text>` (the stub's receipt).
    Acked,
    /// The text moved above the input line (submitted), no receipt line.
    Submitted,
    /// The text is still on the last line: typed but not submitted.
    Pending,
    /// The pane does not show the text.
    Absent,
}

fn count_lines(pane: &str, pred: impl Fn(&str) -> bool) -> usize {
    pane.lines().filter(|l| pred(l)).count()
}

/// Judges a pane read-back against the counts before sending (pure).
pub fn judge(before: &str, after: &str, text: &str) -> Receipt {
    let ack = format!("ACK {text}");
    let acks = |p: &str| count_lines(p, |l| l.trim_end().ends_with(&ack));
    if acks(after) > acks(before) {
        return Receipt::Acked;
    }
    let shown = |p: &str| count_lines(p, |l| l.contains(text) && !l.trim_end().ends_with(&ack));
    if shown(after) <= shown(before) {
        return Receipt::Absent;
    }
    let last = after
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if last.contains(text) {
        Receipt::Pending
    } else {
        Receipt::Submitted
    }
}

fn send(
    ctx: &Ctx,
    name: &str,
    message: &str,
    source: &str,
    verify: bool,
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
    let lines = 200;
    let before = if verify {
        match capture(&t, lines)? {
            Ok(s) => s,
            Err(e) => {
                return report_send(
                    p,
                    name,
                    verify,
                    false,
                    &format!("cannot read the pane: {e}"),
                )
            }
        }
    } else {
        String::new()
    };
    if let Some(d) = &t.dest {
        if let Err(why) = remote_type(&t, d, &text) {
            return report_send(p, name, verify, false, &format!("not delivered: {why}"));
        }
    } else {
        let argv = tmux::agent_send(
            &ctx.paths.home,
            t.socket.as_deref(),
            None,
            source,
            name,
            message,
        );
        let out = runner::output(&argv)?;
        if !out.status.success() {
            return report_send(
                p,
                name,
                verify,
                false,
                &format!("not delivered: {}", runner::first_line(&out)),
            );
        }
    }
    if !verify {
        return report_send(p, name, false, true, "delivered");
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut last;
    loop {
        match capture(&t, lines)? {
            Ok(after) => {
                last = judge(&before, &after, &text);
                if last == Receipt::Acked {
                    return report_send(
                        p,
                        name,
                        true,
                        true,
                        "accepted: the agent acknowledged it (ACK seen)",
                    );
                }
            }
            Err(e) => {
                let why = match check_pane(&t)? {
                    Err(w) => w,
                    Ok(_) => e,
                };
                return report_send(p, name, true, false, &format!("not accepted: {why}"));
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Err(why) = check_pane(&t)? {
        return report_send(p, name, true, false, &format!("not accepted: {why}"));
    }
    match last {
        Receipt::Acked => unreachable!("returned above"),
        Receipt::Submitted => report_send(
            p,
            name,
            true,
            true,
            "accepted: the message left the input line (no receipt line from the runtime)",
        ),
        Receipt::Pending => report_send(
            p,
            name,
            true,
            false,
            &format!("not accepted: the message is still on the input line after {timeout}s (the agent is busy or not reading)"),
        ),
        Receipt::Absent => report_send(
            p,
            name,
            true,
            false,
            &format!("not accepted: the pane does not show the message after {timeout}s"),
        ),
    }
}

fn report_send(p: &Printer, name: &str, verify: bool, ok: bool, reason: &str) -> Result<i32> {
    if p.json {
        p.json_out(&serde_json::json!({"agent": name, "verified": verify, "accepted": ok, "reason": reason}));
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
        p.json_out(&serde_json::json!({"agent": name, "lines": out}));
    } else {
        for l in out {
            p.out(l);
        }
    }
    Ok(0)
}

fn reset(ctx: &Ctx, name: &str, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let t = target(&roster, ctx, name)?;
    let rt = t.agent.runtime;
    let cmd = roster.reset_command(rt).ok_or_else(|| {
        Error::Input(format!(
            "the roster sets no reset_command for runtime {0}; add `runtimes: {{ {0}: {{ reset_command: /clear }} }}` to {1}",
            rt.program(),
            ctx.roster_path.display()
        ))
    })?;
    if let Err(why) = check_pane(&t)? {
        return fail(p, &why);
    }
    if let Some(d) = &t.dest {
        if let Err(why) = remote_type(&t, d, cmd) {
            return fail(p, &format!("reset of {name} failed: {why}"));
        }
    } else {
        let argv = tmux::send_message(&ctx.paths.home, t.socket.as_deref(), None, name, cmd);
        let out = runner::output(&argv)?;
        if !out.status.success() {
            return fail(
                p,
                &format!("reset of {name} failed: {}", runner::first_line(&out)),
            );
        }
    }
    if p.json {
        p.json_out(&serde_json::json!({"agent": name, "sent": cmd}));
    } else {
        p.line(&format!("{name}: sent {cmd}"));
    }
    Ok(0)
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
    fn typed_text_is_one_line() {
        assert_eq!(
            typed_text("operator:mosaic-cli", "hi\nthere\t!"),
            "[from operator:mosaic-cli] hi there !"
        );
    }

    #[test]
    fn judge_reads_the_pane() {
        let t = "[from op] hello";
        let before = "stub-agent a ready\n> ";
        assert_eq!(
            judge(
                before,
                "stub-agent a ready\n> [from op] hello\nACK [from op] hello\n> ",
                t
            ),
            Receipt::Acked
        );
        assert_eq!(
            judge(before, "stub-agent a ready\n> [from op] hello\n", t),
            Receipt::Pending
        );
        assert_eq!(
            judge(
                before,
                "stub-agent a ready\n> [from op] hello\nthinking...\n│ >      │\n",
                t
            ),
            Receipt::Submitted
        );
        assert_eq!(judge(before, before, t), Receipt::Absent);
        // An old ACK of the same text does not count for a new send.
        let old = "> [from op] hello\nACK [from op] hello\n> ";
        assert_eq!(judge(old, old, t), Receipt::Absent);
        assert_eq!(
            judge(
                old,
                "> [from op] hello\nACK [from op] hello\n> [from op] hello\n",
                t
            ),
            Receipt::Pending
        );
    }
}
