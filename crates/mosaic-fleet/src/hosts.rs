//! The fixed POSIX sh scripts mosaic runs on other hosts (SPEC §12) and
//! the parsing of what they print.
//!
//! Each script is a constant sent on ssh's stdin (`sh -s -- WORDS`, see
//! [`crate::ssh`]); its arguments are validated names only (agent, socket,
//! a line count, a verb). Message text is never an argument: [`send_script`]
//! puts it in the script body as octal `printf` escapes (only `\`, digits
//! and quotes, never read by a shell as anything but one literal), piped
//! into `tmux load-buffer -`, pasted with `paste-buffer -p`, then Enter as
//! its own key. The scripts need `sh`, tmux and (for units) `systemctl` on
//! the host, not mosaic itself: a host runs whatever mosaic version
//! installed its fleet, and the controller's view of it stays one
//! connection and one script.
//!
//! The remote home is `${MOSAIC_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/mosaic}`.

use crate::envfile;
use crate::ps::{self, Heartbeat, Proc, Snapshot};
use crate::roster::{Agent, Roster};
use crate::systemd;
use crate::tmux;
use std::collections::BTreeMap;

/// The version of the snapshot document [`PS_SCRIPT`] prints.
pub const SNAPSHOT_VERSION: u64 = 1;

/// Every script starts with this: the home, the "not installed" exit
/// ([`crate::ssh::NOT_INSTALLED_EXIT`]: no roster and no env files — a
/// `fleet/run` a heartbeat left behind is not a fleet) and `tm`,
/// `tmux -u [-L "$sock"]`.
const PRELUDE: &str = r#"H=${MOSAIC_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/mosaic}
command -v tmux >/dev/null 2>&1 || { echo "mosaic-remote: tmux is not installed on $(uname -n)" >&2; exit 90; }
[ -f "$H/fleet/roster.yaml" ] || [ -d "$H/fleet/agents" ] || { echo "mosaic-remote: no fleet at $H/fleet on $(uname -n)" >&2; exit 90; }
tm() { if [ -n "$sock" ]; then tmux -u -L "$sock" "$@"; else tmux -u "$@"; fi; }
"#;

/// The remote half of `fleet ps`: words `s:SOCKET` (`s:` = the default
/// server) and `a:AGENT`. Prints one JSON document
/// `{"v":1,"lines":[…]}` whose lines are tab-separated records:
/// `H host`, `N now`, `D home`, `S socket rc`, `P socket pane-line`,
/// `u rc`, `U show-line`, `E agent env-line`, `B agent heartbeat`,
/// `b agent problem`, `R ps-line`. One tmux call per socket, one
/// `systemctl show`, one `ps`; env files and heartbeats are read with
/// shell builtins.
pub fn ps_script() -> String {
    format!(
        r#"{PRELUDE}pfx() {{ while IFS= read -r l; do printf '%s\t%s\n' "$1" "$l"; done; }}
j() {{ tr -d '\001-\010\013-\037\177' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' -e 's/^/"/' -e 's/$/",/'; }}
printf '{{"v":{SNAPSHOT_VERSION},"lines":['
{{
printf 'H\t%s\n' "$(uname -n)"
printf 'N\t%s\n' "$(date +%s)"
printf 'D\t%s\n' "$H"
units={holder}
for w do
  case $w in
  s:*) sock=${{w#s:}}
    out=$(tm list-panes -a -F '{fmt}' 2>&1); rc=$?
    printf 'S\t%s\t%s\n' "$sock" "$rc"
    [ -n "$out" ] && printf '%s\n' "$out" | pfx "P	$sock" ;;
  a:*) a=${{w#a:}}
    units="$units mosaic-agent@$a.service"
    f=$H/fleet/agents/$a.env
    if [ -r "$f" ]; then
      while IFS= read -r l || [ -n "$l" ]; do
        case $l in MOSAIC_AGENT_COMMAND=*) printf 'E\t%s\t%s\n' "$a" "$l" ;; esac
      done < "$f"
    fi
    f=$H/fleet/run/$a.hb
    if [ -r "$f" ]; then l=; IFS= read -r l < "$f"; printf 'B\t%s\t%s\n' "$a" "$l"
    elif [ -e "$f" ]; then printf 'b\t%s\t%s is unreadable\n' "$a" "$f"; fi ;;
  esac
done
if command -v systemctl >/dev/null 2>&1; then
  out=$(systemctl --user show -p {props} $units 2>&1); rc=$?
else out='systemctl not found'; rc=127; fi
printf 'u\t%s\n' "$rc"
printf '%s\n' "$out" | pfx U
ps -e -o pid= -o ppid= -o comm= -o args= 2>/dev/null | pfx R
}} | j
printf '""]}}\n'
"#,
        holder = systemd::HOLDER_UNIT,
        fmt = tmux::LIST_FORMAT,
        props = systemd::SHOW_PROPERTIES,
    )
}

/// The words of [`ps_script`] for the agents of host `key`.
pub fn ps_words(roster: &Roster, key: &str) -> Vec<String> {
    let agents: Vec<&Agent> = roster.agents_on(key).collect();
    let mut sockets = std::collections::BTreeSet::new();
    sockets.insert(roster.socket().unwrap_or("").to_string());
    for a in &agents {
        sockets.insert(roster.agent_socket(a).unwrap_or("").to_string());
    }
    let mut v: Vec<String> = sockets.into_iter().map(|s| format!("s:{s}")).collect();
    v.extend(agents.iter().map(|a| format!("a:{}", a.name)));
    v
}

/// Reads a snapshot document into a [`Snapshot`] (pure). An unknown version
/// or a document that does not parse is an error naming what was read.
pub fn parse_snapshot(text: &str) -> std::result::Result<Snapshot, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        v: u64,
        lines: Vec<String>,
    }
    let doc: Doc = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "the host's snapshot is not JSON ({e}); first line: {:?}",
            text.lines().next().unwrap_or("")
        )
    })?;
    if doc.v != SNAPSHOT_VERSION {
        return Err(format!(
            "the host's snapshot is version {} (this mosaic reads {SNAPSHOT_VERSION}); update mosaic here",
            doc.v
        ));
    }
    let mut s = Snapshot::default();
    let mut pane_text: BTreeMap<Option<String>, String> = BTreeMap::new();
    let mut env_text: BTreeMap<String, String> = BTreeMap::new();
    let mut units_text = String::new();
    let mut units_rc = 0i64;
    for line in doc.lines.iter().filter(|l| !l.is_empty()) {
        let (tag, rest) = line.split_once('\t').unwrap_or((line.as_str(), ""));
        let sock = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match tag {
            "H" => s.hostname = rest.to_string(),
            "N" => s.now = rest.trim().parse().unwrap_or(0),
            "S" => {
                let (name, rc) = rest.split_once('\t').unwrap_or((rest, "0"));
                if rc.trim() != "0" {
                    pane_text.entry(sock(name)).or_default();
                    s.panes.insert(sock(name), Vec::new());
                    // No server is an empty socket; anything else is a warning.
                    s.warnings.push(format!("__rc {name} {rc}"));
                } else {
                    pane_text.entry(sock(name)).or_default();
                }
            }
            "P" => {
                let (name, l) = rest.split_once('\t').unwrap_or((rest, ""));
                let t = pane_text.entry(sock(name)).or_default();
                t.push_str(l);
                t.push('\n');
            }
            "u" => units_rc = rest.trim().parse().unwrap_or(1),
            "U" => {
                units_text.push_str(rest);
                units_text.push('\n');
            }
            "E" => {
                let (a, l) = rest.split_once('\t').unwrap_or((rest, ""));
                let t = env_text.entry(a.to_string()).or_default();
                t.push_str(l);
                t.push('\n');
            }
            "B" => {
                let (a, l) = rest.split_once('\t').unwrap_or((rest, ""));
                s.heartbeats
                    .insert(a.to_string(), ps::parse_heartbeat(l, a));
            }
            "b" => {
                let (a, l) = rest.split_once('\t').unwrap_or((rest, ""));
                s.heartbeats
                    .insert(a.to_string(), Err::<Heartbeat, String>(l.to_string()));
            }
            "R" => {
                let mut f = rest.split_whitespace();
                let (Some(pid), Some(ppid), Some(comm)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let (Ok(pid), Ok(ppid)) = (pid.parse::<u32>(), ppid.parse::<u32>()) else {
                    continue;
                };
                s.procs.insert(
                    pid,
                    Proc {
                        pid,
                        ppid,
                        comm: comm.to_string(),
                        args: f.map(str::to_string).collect(),
                    },
                );
            }
            _ => {}
        }
    }
    // Turn the socket records into panes (or warnings).
    let rc_warnings: Vec<String> = std::mem::take(&mut s.warnings);
    for (socket, text) in pane_text {
        let name = socket.clone().unwrap_or_default();
        let failed = rc_warnings.iter().any(|w| {
            w.strip_prefix("__rc ")
                .is_some_and(|r| r.split(' ').next() == Some(&name))
        });
        if failed {
            if !text.is_empty() && !tmux::is_no_server(&text) {
                s.warnings.push(format!(
                    "tmux on {} failed: {}",
                    tmux::where_(socket.as_deref()),
                    text.lines().next().unwrap_or("")
                ));
            }
            s.panes.insert(socket, Vec::new());
        } else {
            s.panes.insert(socket, tmux::parse_panes(&text));
        }
    }
    if units_rc == 0 {
        s.units = Some(systemd::parse_show(&units_text));
    } else {
        s.warnings.push(format!(
            "unit states unknown: systemctl --user show failed: {}",
            units_text.lines().next().unwrap_or("")
        ));
    }
    for (a, text) in env_text {
        if let Some(c) = envfile::parse(&text)
            .get("MOSAIC_AGENT_COMMAND")
            .filter(|c| !c.trim().is_empty())
        {
            s.commands.insert(a, c.clone());
        }
    }
    Ok(s)
}

/// The state of one pane: words `SOCKET NAME` (`SOCKET` empty = the default
/// server). Prints `pane_index pane_dead pane_pid` lines; exit 3 = no
/// server, 4 = no session.
pub const PANE_STATE_SCRIPT: &str = r#"sock=$1 name=$2
out=$(tm list-panes -t "=$name:0.0" -F '#{pane_index} #{pane_dead} #{pane_pid}' 2>&1) && { printf '%s\n' "$out"; exit 0; }
printf '%s\n' "$out" >&2
case $out in *"no server"*|*"error connecting"*|*"No such file"*) exit 3 ;; esac
exit 4
"#;

/// The pane's text: words `SOCKET NAME LINES`; exit 4 when tmux fails.
pub const CAPTURE_SCRIPT: &str = r#"sock=$1 name=$2 lines=$3
tm capture-pane -p -J -t "=$name:0.0" -S "-$lines" || exit 4
"#;

/// The pane's current command on the first line, then its visible screen
/// (what `agent send` reads to decide whether the runtime is at its input
/// prompt): words `SOCKET NAME`. Exit 4 = tmux failed.
pub const SCREEN_SCRIPT: &str = r#"sock=$1 name=$2
tm display-message -p -t "=$name:0.0" '#{pane_current_command}' || exit 4
tm capture-pane -p -J -t "=$name:0.0" || exit 4
"#;

/// Delivers the text in `MOSAIC_TEXT` (octal escapes, set by
/// [`send_script`]): words `SOCKET NAME DELAY`. Exit 3 = no session, 4 =
/// tmux failed.
const SEND_BODY: &str = r#"sock=$1 name=$2 delay=$3
tm has-session -t "=$name" 2>/dev/null || { echo "no tmux session '$name'" >&2; exit 3; }
buf=mosaic-send-$$
printf "$MOSAIC_TEXT" | tm load-buffer -b "$buf" - || exit 4
tm paste-buffer -p -d -b "$buf" -t "=$name:0.0" || exit 4
sleep "$delay"
tm send-keys -t "=$name:0.0" Enter || exit 4
"#;

/// `systemctl --user VERB UNITS…` on the host: words `VERB UNIT…`.
pub const SYSTEMCTL_SCRIPT: &str = r#"command -v systemctl >/dev/null 2>&1 || { echo "mosaic-remote: systemctl not found on $(uname -n)" >&2; exit 90; }
systemctl --user "$@"
"#;

/// A whole script: the prelude, then `body`.
pub fn script(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

/// `text` as `printf` format escapes: every byte as `\ooo` (a `%` too), so
/// `printf "$MOSAIC_TEXT"` writes exactly those bytes and no shell or
/// `printf` ever reads the text as anything else.
pub fn octal(text: &str) -> String {
    text.bytes().map(|b| format!("\\{b:03o}")).collect()
}

/// The send script for `text` (already `[from SOURCE] MESSAGE`, one line).
pub fn send_script(text: &str) -> String {
    format!("MOSAIC_TEXT='{}'\n{}", octal(text), script(SEND_BODY))
}

/// Exit code of the scripts: no server / no session.
pub const NO_SESSION_EXIT: i32 = 3;
/// Exit code of the scripts: tmux failed.
pub const TMUX_FAILED_EXIT: i32 = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn octal_round_trips_through_printf() {
        let text = "[from op] é ü 😀 'q' \"d\" $(id) `id` %s \\n -x =y";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '{}'", octal(text)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
        assert!(octal(text).chars().all(|c| c == '\\' || c.is_ascii_digit()));
    }

    #[test]
    fn words_name_sockets_and_agents_of_that_host_only() {
        let r = crate::roster::parse(
            "version: 1\ntmux: {socket_name: f}\nhosts:\n  Build1: {ssh: ops@b1}\nagents:\n  - name: a\n    runtime: pi\n  - name: b\n    runtime: pi\n    host: build1\n  - name: c\n    runtime: pi\n    host: BUILD1\n    socket: other\n",
            Path::new("/r.yaml"),
        )
        .unwrap();
        assert_eq!(ps_words(&r, "build1"), ["s:f", "s:other", "a:b", "a:c"]);
    }

    #[test]
    fn the_ps_script_runs_in_dash_and_its_document_parses() {
        // Run the real script against an empty fake host: no tmux server,
        // a heartbeat and an env file.
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("h");
        std::fs::create_dir_all(h.join("fleet/agents")).unwrap();
        std::fs::create_dir_all(h.join("fleet/run")).unwrap();
        std::fs::write(
            h.join("fleet/agents/a.env"),
            "MOSAIC_AGENT_NAME=a\nMOSAIC_AGENT_COMMAND=/x/stub-agent \"q\"\\\n",
        )
        .unwrap();
        std::fs::write(
            h.join("fleet/run/a.hb"),
            "{\"v\":1,\"agent\":\"a\",\"ts\":5,\"pid\":7,\"state\":\"idle\"}\n",
        )
        .unwrap();
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("SKIP: no tmux");
            return;
        }
        let sh = if Path::new("/bin/dash").exists() {
            "/bin/dash"
        } else {
            "sh"
        };
        let mut child = std::process::Command::new(sh)
            .args(["-s", "--", "s:mosaic-test-none", "a:a"])
            .env("MOSAIC_HOME", &h)
            .env("TMUX_TMPDIR", dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ps_script().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let s = parse_snapshot(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(s.now > 0 && !s.hostname.is_empty());
        assert_eq!(
            s.panes.get(&Some("mosaic-test-none".into())),
            Some(&Vec::new())
        );
        assert_eq!(s.commands["a"], "/x/stub-agent \"q\"\\");
        assert_eq!(s.heartbeats["a"].as_ref().unwrap().ts, 5);
        assert!(!s.procs.is_empty());
    }

    #[test]
    fn a_newer_document_is_refused_with_the_fix() {
        let e = parse_snapshot("{\"v\":2,\"lines\":[]}").unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        assert!(parse_snapshot("garbage").is_err());
    }
}
