//! Exact tmux command lines of the fleet commands (pure builders, pinned by
//! unit tests) and the parsing of their output. `-L SOCKET` only when a socket
//! is named; sessions and panes always targeted exactly (`=NAME`,
//! `=NAME:0.0`) so tmux never prefix-matches. Every builder here passes `-u`:
//! without it a client started with `LANG` unset (cron, `ssh host cmd`,
//! service environments) has tmux 3.3a print the tabs of `-F` formats, and
//! any non-ASCII pane text, as `_`. Nothing here runs a process.

use std::path::Path;

/// `tmux [-L SOCKET]`.
pub fn base(socket: Option<&str>) -> Vec<String> {
    let mut v = vec!["tmux".to_string()];
    if let Some(s) = socket.filter(|s| !s.is_empty()) {
        v.push("-L".into());
        v.push(s.into());
    }
    v
}

/// `tmux -u [-L SOCKET]`: the client for every command whose output mosaic
/// reads (UTF-8 forced whatever the locale, so `-F` tabs stay tabs).
pub fn client(socket: Option<&str>) -> Vec<String> {
    let mut v = base(socket);
    v.insert(1, "-u".into());
    v
}

fn with(socket: Option<&str>, args: &[&str]) -> Vec<String> {
    let mut v = client(socket);
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// The exact session target `=NAME`.
pub fn session_target(name: &str) -> String {
    format!("={name}")
}

/// The exact pane target `=NAME:0.0`.
pub fn pane_target(name: &str) -> String {
    format!("={name}:0.0")
}

/// Field separator of [`LIST_FORMAT`] (a tab).
pub const SEP: char = '\t';

/// The `list-panes -a` format: one line per pane of every session.
pub const LIST_FORMAT: &str = "#{session_name}\t#{window_index}\t#{pane_index}\t#{pane_pid}\t#{pane_dead}\t#{pane_current_command}\t#{window_activity}\t#{session_group}";

/// Every pane of every session on the socket, in one call.
pub fn list_panes_all(socket: Option<&str>) -> Vec<String> {
    with(socket, &["list-panes", "-a", "-F", LIST_FORMAT])
}

/// The names of the sessions on the socket.
pub fn list_sessions(socket: Option<&str>) -> Vec<String> {
    with(socket, &["list-sessions", "-F", "#{session_name}"])
}

/// Does session `name` exist (exactly)?
pub fn has_session(socket: Option<&str>, name: &str) -> Vec<String> {
    with(socket, &["has-session", "-t", &session_target(name)])
}

/// `pane_index pane_dead pane_pid` of the panes in the agent's window
/// (`list-panes` fails on a missing target, where `display-message` would
/// quietly print nothing).
pub fn pane_state(socket: Option<&str>, name: &str) -> Vec<String> {
    with(
        socket,
        &[
            "list-panes",
            "-t",
            &pane_target(name),
            "-F",
            "#{pane_index} #{pane_dead} #{pane_pid}",
        ],
    )
}

/// The line [`capture_screens`] prints after each pane's screen.
pub const SCREEN_END: &str = "@@mosaic-screen-end@@";

/// The visible screens of several agents' panes in one tmux call: for each
/// name `capture-pane -p -t =NAME:0.0` then `display-message -p`
/// [`SCREEN_END`], chained with `;` (tmux runs the list in order and stops at
/// the first command that fails, e.g. a pane that just went away).
pub fn capture_screens(socket: Option<&str>, names: &[&str]) -> Vec<String> {
    let mut v = client(socket);
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            v.push(";".into());
        }
        v.extend([
            "capture-pane".into(),
            "-p".into(),
            "-t".into(),
            pane_target(n),
        ]);
        v.extend([
            ";".into(),
            "display-message".into(),
            "-p".into(),
            SCREEN_END.into(),
        ]);
    }
    v
}

/// Splits [`capture_screens`] output into the screens of `names`, in order;
/// a screen without its end line (the list stopped) is left out.
pub fn parse_screens<'a>(names: &[&'a str], text: &str) -> Vec<(&'a str, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut it = names.iter();
    for line in text.lines() {
        if line == SCREEN_END {
            match it.next() {
                Some(n) => out.push((*n, std::mem::take(&mut cur))),
                None => break,
            }
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out
}

/// The agent's pane text, `lines` lines of history included, wrapped lines joined.
pub fn capture_pane(socket: Option<&str>, name: &str, lines: usize) -> Vec<String> {
    with(
        socket,
        &[
            "capture-pane",
            "-p",
            "-J",
            "-t",
            &pane_target(name),
            "-S",
            &format!("-{lines}"),
        ],
    )
}

/// The viewer session name of `agent watch`: `NAME-watch-PID`.
pub fn viewer_name(agent: &str, pid: u32) -> String {
    format!("{agent}-watch-{pid}")
}

/// Creates the grouped viewer session (shares the agent's windows).
pub fn new_viewer(socket: Option<&str>, agent: &str, viewer: &str) -> Vec<String> {
    with(
        socket,
        &[
            "new-session",
            "-d",
            "-t",
            &session_target(agent),
            "-s",
            viewer,
        ],
    )
}

/// Pins the agent's window to its size, so no viewer ever resizes it.
pub fn pin_window_size(socket: Option<&str>, agent: &str) -> Vec<String> {
    with(
        socket,
        &[
            "set-option",
            "-w",
            "-t",
            &format!("={agent}:0"),
            "window-size",
            "manual",
        ],
    )
}

/// Attaches read-only (`-r`) without affecting the window size
/// (`-f ignore-size`). (No `destroy-unattached` on the viewer: with grouped
/// sessions it crashes tmux 3.3a's server, and with it the whole fleet.)
pub fn attach_viewer(socket: Option<&str>, viewer: &str) -> Vec<String> {
    with(
        socket,
        &[
            "attach-session",
            "-r",
            "-f",
            "ignore-size",
            "-t",
            &session_target(viewer),
        ],
    )
}

/// The pid in a viewer session name `AGENT-watch-PID`, if `session` is one of `agent`'s.
pub fn viewer_pid(agent: &str, session: &str) -> Option<u32> {
    let rest = session.strip_prefix(agent)?.strip_prefix("-watch-")?;
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Kills exactly session `name`.
pub fn kill_session(socket: Option<&str>, name: &str) -> Vec<String> {
    with(socket, &["kill-session", "-t", &session_target(name)])
}

/// The shipped `agent-send.sh` delivering `message` from `source`.
pub fn agent_send(
    home: &Path,
    socket: Option<&str>,
    ssh: Option<&str>,
    source: &str,
    name: &str,
    message: &str,
) -> Vec<String> {
    let mut v = vec![home
        .join("tools/tmux/agent-send.sh")
        .to_string_lossy()
        .into_owned()];
    if let Some(s) = socket.filter(|s| !s.is_empty()) {
        v.extend(["-L".to_string(), s.to_string()]);
    }
    if let Some(h) = ssh {
        v.extend(["-H".to_string(), h.to_string()]);
    }
    v.extend(
        ["-S", source, "-s", name, "-m", message]
            .iter()
            .map(|s| s.to_string()),
    );
    v
}

/// The shipped `send-message.sh` typing `text` (no source tag) into the
/// agent's pane, as `agent reset` does.
pub fn send_message(
    home: &Path,
    socket: Option<&str>,
    ssh: Option<&str>,
    name: &str,
    text: &str,
) -> Vec<String> {
    let mut v = vec![home
        .join("tools/tmux/send-message.sh")
        .to_string_lossy()
        .into_owned()];
    if let Some(s) = socket.filter(|s| !s.is_empty()) {
        v.extend(["-L".to_string(), s.to_string()]);
    }
    if let Some(h) = ssh {
        v.extend(["-H".to_string(), h.to_string()]);
    }
    v.extend([
        "-t".to_string(),
        format!("{name}:0.0"),
        "-m".to_string(),
        text.to_string(),
    ]);
    v
}

/// Runs a tmux argv on `target` over ssh (key-based, no prompts).
pub fn over_ssh(target: &str, argv: &[String]) -> Vec<String> {
    let remote: Vec<String> = argv.iter().map(|w| shell_quote(w)).collect();
    vec![
        "ssh".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-T".into(),
        target.into(),
        "--".into(),
        remote.join(" "),
    ]
}

/// Single-quotes a word for a POSIX shell.
pub fn shell_quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// One pane from [`list_panes_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    /// Session name.
    pub session: String,
    /// Window index.
    pub window: u32,
    /// Pane index.
    pub pane: u32,
    /// pid of the pane's process.
    pub pid: u32,
    /// The pane's process has exited (remain-on-exit).
    pub dead: bool,
    /// tmux's `pane_current_command`.
    pub command: String,
    /// Unix time of the window's last activity.
    pub activity: u64,
    /// The session group ("" when not grouped).
    pub group: String,
}

/// Parses [`list_panes_all`] output (lines that do not parse are skipped).
pub fn parse_panes(text: &str) -> Vec<Pane> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(SEP).collect();
            if f.len() < 8 {
                return None;
            }
            Some(Pane {
                session: f[0].to_string(),
                window: f[1].parse().ok()?,
                pane: f[2].parse().ok()?,
                pid: f[3].parse().ok()?,
                dead: f[4] == "1",
                command: f[5].to_string(),
                activity: f[6].parse().unwrap_or(0),
                group: f[7].to_string(),
            })
        })
        .collect()
}

/// Whether a tmux error means "no server on this socket" (rather than some
/// other failure).
pub fn is_no_server(stderr: &str) -> bool {
    stderr.contains("no server running")
        || stderr.contains("error connecting to")
        || stderr.contains("No such file or directory")
}

/// "socket NAME" or "the default tmux server", for messages.
pub fn where_(socket: Option<&str>) -> String {
    match socket {
        Some(s) => format!("socket {s}"),
        None => "the default tmux server".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn screens_are_captured_in_one_call_and_split() {
        assert_eq!(
            capture_screens(Some("f"), &["a", "b"]),
            s(&[
                "tmux",
                "-u",
                "-L",
                "f",
                "capture-pane",
                "-p",
                "-t",
                "=a:0.0",
                ";",
                "display-message",
                "-p",
                SCREEN_END,
                ";",
                "capture-pane",
                "-p",
                "-t",
                "=b:0.0",
                ";",
                "display-message",
                "-p",
                SCREEN_END
            ])
        );
        let text = format!("> hi\n\n{SCREEN_END}\nWorking\n{SCREEN_END}\npartial\n");
        assert_eq!(
            parse_screens(&["a", "b", "c"], &text),
            vec![
                ("a", "> hi\n\n".to_string()),
                ("b", "Working\n".to_string())
            ]
        );
    }

    #[test]
    fn socket_present_means_dash_l_absent_means_none() {
        assert_eq!(
            base(Some("mosaic-fleet")),
            s(&["tmux", "-L", "mosaic-fleet"])
        );
        assert_eq!(base(None), s(&["tmux"]));
        assert_eq!(base(Some("")), s(&["tmux"]));
        assert_eq!(client(Some("f")), s(&["tmux", "-u", "-L", "f"]));
        assert_eq!(client(None), s(&["tmux", "-u"]));
    }

    #[test]
    fn exact_argv_of_every_command() {
        let f = Some("mosaic-fleet");
        assert_eq!(
            list_panes_all(f),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "list-panes",
                "-a",
                "-F",
                LIST_FORMAT
            ])
        );
        assert_eq!(
            list_panes_all(None),
            s(&["tmux", "-u", "list-panes", "-a", "-F", LIST_FORMAT])
        );
        assert_eq!(
            list_sessions(f),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "list-sessions",
                "-F",
                "#{session_name}"
            ])
        );
        assert_eq!(
            has_session(None, "coder"),
            s(&["tmux", "-u", "has-session", "-t", "=coder"])
        );
        assert_eq!(
            pane_state(f, "coder0"),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "list-panes",
                "-t",
                "=coder0:0.0",
                "-F",
                "#{pane_index} #{pane_dead} #{pane_pid}"
            ])
        );
        assert_eq!(
            capture_pane(f, "canary-pi", 5),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "capture-pane",
                "-p",
                "-J",
                "-t",
                "=canary-pi:0.0",
                "-S",
                "-5"
            ])
        );
        assert_eq!(
            capture_pane(None, "a", 40),
            s(&[
                "tmux",
                "-u",
                "capture-pane",
                "-p",
                "-J",
                "-t",
                "=a:0.0",
                "-S",
                "-40"
            ])
        );
        assert_eq!(viewer_name("canary-pi", 123), "canary-pi-watch-123");
        assert_eq!(
            new_viewer(f, "canary-pi", "canary-pi-watch-123"),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "new-session",
                "-d",
                "-t",
                "=canary-pi",
                "-s",
                "canary-pi-watch-123"
            ])
        );
        assert_eq!(
            pin_window_size(f, "a"),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "set-option",
                "-w",
                "-t",
                "=a:0",
                "window-size",
                "manual"
            ])
        );
        assert_eq!(
            attach_viewer(f, "a-watch-1"),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "attach-session",
                "-r",
                "-f",
                "ignore-size",
                "-t",
                "=a-watch-1"
            ])
        );
        assert_eq!(viewer_pid("a", "a-watch-12"), Some(12));
        assert_eq!(viewer_pid("a", "ab-watch-12"), None);
        assert_eq!(viewer_pid("a", "a-watch-"), None);
        assert_eq!(viewer_pid("a", "a-watch-1x"), None);
        assert_eq!(
            kill_session(f, "a-watch-1"),
            s(&[
                "tmux",
                "-u",
                "-L",
                "mosaic-fleet",
                "kill-session",
                "-t",
                "=a-watch-1"
            ])
        );
        assert_eq!(
            kill_session(None, "a"),
            s(&["tmux", "-u", "kill-session", "-t", "=a"])
        );
        let h = Path::new("/home/test/.config/mosaic");
        assert_eq!(
            agent_send(h, f, None, "operator:mosaic-cli", "coder0", "hello"),
            s(&[
                "/home/test/.config/mosaic/tools/tmux/agent-send.sh",
                "-L",
                "mosaic-fleet",
                "-S",
                "operator:mosaic-cli",
                "-s",
                "coder0",
                "-m",
                "hello"
            ])
        );
        assert_eq!(
            agent_send(h, None, Some("ops@192.0.2.10"), "lead", "b", "x y"),
            s(&[
                "/home/test/.config/mosaic/tools/tmux/agent-send.sh",
                "-H",
                "ops@192.0.2.10",
                "-S",
                "lead",
                "-s",
                "b",
                "-m",
                "x y"
            ])
        );
        assert_eq!(
            send_message(h, f, None, "coder0", "/clear"),
            s(&[
                "/home/test/.config/mosaic/tools/tmux/send-message.sh",
                "-L",
                "mosaic-fleet",
                "-t",
                "coder0:0.0",
                "-m",
                "/clear"
            ])
        );
        assert_eq!(
            over_ssh("ops@h", &capture_pane(f, "b", 5)),
            s(&[
                "ssh",
                "-o",
                "BatchMode=yes",
                "-T",
                "ops@h",
                "--",
                "tmux -u -L mosaic-fleet capture-pane -p -J -t =b:0.0 -S -5"
            ])
        );
    }

    #[test]
    fn parses_list_panes() {
        let text = "coder0\t0\t0\t1234\t0\tstub-agent\t1700000000\t\nv-watch-1\t0\t0\t1234\t0\tstub-agent\t1700000000\tcoder0\nbad line\n";
        let p = parse_panes(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].session, "coder0");
        assert_eq!(p[0].pid, 1234);
        assert!(!p[0].dead);
        assert_eq!(p[0].command, "stub-agent");
        assert_eq!(p[0].activity, 1_700_000_000);
        assert_eq!(p[1].group, "coder0");
    }
}
