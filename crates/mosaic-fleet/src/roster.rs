//! The roster (SPEC §7): the serde model of `H/fleet/roster.yaml`, its
//! validation (the same rules as the shipped `fleet/roster.schema.json`, with
//! errors naming file, line and field), and comment-keeping text edits
//! (`fleet add` / `fleet remove`). A roster that does not validate is never
//! returned, so nothing can act on it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `len` characters after a first one, each satisfying `rest`.
fn check_pattern(
    s: &str,
    what: &str,
    rule: &str,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
    max_rest: usize,
) -> std::result::Result<(), String> {
    let mut chars = s.chars();
    let ok = match chars.next() {
        Some(c) if first(c) => {
            let tail: Vec<char> = chars.collect();
            tail.len() <= max_rest && tail.iter().all(|&c| rest(c))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid {what} {s:?}: must match {rule}"))
    }
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Checks an agent name: `^[a-z0-9][a-z0-9_-]{0,62}$` (also the tmux session
/// and the systemd instance name, so no `/`, `..`, spaces or shell
/// metacharacters can get through).
pub fn check_agent_name(s: &str) -> std::result::Result<(), String> {
    check_pattern(
        s,
        "agent name",
        "[a-z0-9][a-z0-9_-]{0,62} (lower-case letters, digits, _ and -)",
        lower_alnum,
        |c| lower_alnum(c) || c == '_' || c == '-',
        62,
    )
}

fn check_tenant(s: &str) -> std::result::Result<(), String> {
    check_pattern(
        s,
        "tenant_id",
        "[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || "._-".contains(c),
        62,
    )
}

fn check_socket(s: &str) -> std::result::Result<(), String> {
    // `tmux -L default` IS the operator's default server: stopping the fleet
    // would kill it. Leave the name out to mean the default server.
    if s == "default" {
        return Err(
            "socket name \"default\" is the operator's own tmux server; leave socket_name out to use it, or pick another name"
                .to_string(),
        );
    }
    check_pattern(
        s,
        "socket name",
        "[A-Za-z0-9][A-Za-z0-9._-]{0,99}",
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || "._-".contains(c),
        99,
    )
}

fn check_session(s: &str) -> std::result::Result<(), String> {
    check_pattern(
        s,
        "holder session name",
        "[A-Za-z0-9_][A-Za-z0-9_-]{0,62}",
        |c| c.is_ascii_alphanumeric() || c == '_',
        |c| c.is_ascii_alphanumeric() || "_-".contains(c),
        62,
    )
}

fn check_line(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.contains(['\n', '\r']) {
        Err(format!("invalid value {s:?}: must be one non-empty line"))
    } else {
        Ok(())
    }
}

fn check_host(s: &str) -> std::result::Result<(), String> {
    check_pattern(
        s,
        "host",
        "[A-Za-z0-9][A-Za-z0-9.:-]{0,252}",
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || ".:-".contains(c),
        252,
    )
}

fn check_ssh(s: &str) -> std::result::Result<(), String> {
    let host = match s.split_once('@') {
        Some((user, host)) => {
            if user.is_empty()
                || !user.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                || !user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(format!(
                    "invalid ssh target {s:?}: must be USER@HOST or HOST"
                ));
            }
            host
        }
        None => s,
    };
    check_host(host).map_err(|_| format!("invalid ssh target {s:?}: must be USER@HOST or HOST"))
}

fn check_model(s: &str) -> std::result::Result<(), String> {
    check_pattern(
        s,
        "model_hint",
        "[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}",
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c),
        127,
    )
}

macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $check:path) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $check(&s).map_err(serde::de::Error::custom)?;
                Ok($name(s))
            }
        }

        impl $name {
            /// Validates and wraps a string.
            pub fn new(s: &str) -> std::result::Result<Self, String> {
                $check(s)?;
                Ok($name(s.to_string()))
            }

            /// The string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// An agent name (`[a-z0-9][a-z0-9_-]{0,62}`).
    AgentName,
    check_agent_name
);
checked_string!(
    /// A tenant tag.
    TenantId,
    check_tenant
);
checked_string!(
    /// A tmux socket name (`tmux -L NAME`).
    SocketName,
    check_socket
);
checked_string!(
    /// A tmux session name for the holder.
    SessionName,
    check_session
);
checked_string!(
    /// One non-empty line (paths, reset commands).
    Line,
    check_line
);
checked_string!(
    /// A host name or address.
    Host,
    check_host
);
checked_string!(
    /// `USER@HOST` or `HOST` for ssh.
    SshTarget,
    check_ssh
);
checked_string!(
    /// A model hint.
    ModelHint,
    check_model
);

/// The roster format version: always 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FormatVersion(u64);

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if v != 1 {
            return Err(serde::de::Error::custom(format!(
                "unsupported version {v}: must be 1"
            )));
        }
        Ok(FormatVersion(v))
    }
}

/// How agents are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// tmux sessions (the only transport).
    Tmux,
}

/// An agent runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Claude Code.
    Claude,
    /// OpenAI Codex CLI.
    Codex,
    /// pi.
    Pi,
    /// opencode.
    Opencode,
}

impl Runtime {
    /// Every runtime.
    pub const ALL: &'static [Runtime] = &[
        Runtime::Claude,
        Runtime::Codex,
        Runtime::Pi,
        Runtime::Opencode,
    ];

    /// The program name (also what `fleet ps` expects to see in the pane).
    pub fn program(self) -> &'static str {
        match self {
            Runtime::Claude => "claude",
            Runtime::Codex => "codex",
            Runtime::Pi => "pi",
            Runtime::Opencode => "opencode",
        }
    }
}

/// An agent's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Plans and dispatches.
    Orchestrator,
    /// Turns requests into briefs.
    Enhancer,
    /// Writes code.
    Implementer,
    /// Reviews.
    Reviewer,
    /// Researches.
    Research,
}

impl Class {
    /// Every class.
    pub const ALL: &'static [Class] = &[
        Class::Orchestrator,
        Class::Enhancer,
        Class::Implementer,
        Class::Reviewer,
        Class::Research,
    ];

    /// The class name as written in the roster.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Orchestrator => "orchestrator",
            Class::Enhancer => "enhancer",
            Class::Implementer => "implementer",
            Class::Reviewer => "reviewer",
            Class::Research => "research",
        }
    }
}

/// `tmux:` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmuxSettings {
    /// `-L` socket; absent = the default tmux server.
    #[serde(default)]
    pub socket_name: Option<SocketName>,
    /// The holder session (default `_holder`).
    #[serde(default)]
    pub holder_session: Option<SessionName>,
}

/// `defaults:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Start directory of every agent.
    #[serde(default)]
    pub working_directory: Option<Line>,
}

/// Settings of one runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    /// What `mosaic agent reset` types into the pane.
    #[serde(default)]
    pub reset_command: Option<Line>,
}

/// `runtimes:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtimes {
    /// claude.
    #[serde(default)]
    pub claude: Option<RuntimeSettings>,
    /// codex.
    #[serde(default)]
    pub codex: Option<RuntimeSettings>,
    /// pi.
    #[serde(default)]
    pub pi: Option<RuntimeSettings>,
    /// opencode.
    #[serde(default)]
    pub opencode: Option<RuntimeSettings>,
}

impl Runtimes {
    /// The settings of `rt`, if any.
    pub fn get(&self, rt: Runtime) -> Option<&RuntimeSettings> {
        match rt {
            Runtime::Claude => self.claude.as_ref(),
            Runtime::Codex => self.codex.as_ref(),
            Runtime::Pi => self.pi.as_ref(),
            Runtime::Opencode => self.opencode.as_ref(),
        }
    }
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Name = tmux session = systemd instance.
    pub name: AgentName,
    /// Runtime.
    pub runtime: Runtime,
    /// Role.
    #[serde(default)]
    pub class: Option<Class>,
    /// Becomes `MOSAIC_AGENT_MODEL`.
    #[serde(default)]
    pub model_hint: Option<ModelHint>,
    /// Overrides `defaults.working_directory`.
    #[serde(default)]
    pub working_directory: Option<Line>,
    /// The agent lives on another host.
    #[serde(default)]
    pub host: Option<Host>,
    /// How to reach that host.
    #[serde(default)]
    pub ssh: Option<SshTarget>,
    /// Per-agent socket.
    #[serde(default)]
    pub socket: Option<SocketName>,
}

/// A whole roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// Always 1.
    pub version: FormatVersion,
    /// Always tmux.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// Tenant tag (default: the user name).
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
    /// tmux settings.
    #[serde(default)]
    pub tmux: TmuxSettings,
    /// Defaults.
    #[serde(default)]
    pub defaults: Defaults,
    /// Per-runtime settings.
    #[serde(default)]
    pub runtimes: Runtimes,
    /// The agents.
    pub agents: Vec<Agent>,
}

/// The default holder session name.
pub const DEFAULT_HOLDER: &str = "_holder";

impl Roster {
    /// The fleet socket (`tmux.socket_name`); `None` = the default server.
    pub fn socket(&self) -> Option<&str> {
        self.tmux.socket_name.as_ref().map(SocketName::as_str)
    }

    /// The holder session name.
    pub fn holder_session(&self) -> &str {
        self.tmux
            .holder_session
            .as_ref()
            .map(SessionName::as_str)
            .unwrap_or(DEFAULT_HOLDER)
    }

    /// The socket of one agent: its own `socket`, else the fleet's.
    pub fn agent_socket<'a>(&'a self, a: &'a Agent) -> Option<&'a str> {
        a.socket.as_ref().map(SocketName::as_str).or(self.socket())
    }

    /// The agent's working directory as written (`~` not expanded).
    pub fn agent_workdir(&self, a: &Agent) -> String {
        a.working_directory
            .as_ref()
            .or(self.defaults.working_directory.as_ref())
            .map(|l| l.as_str().to_string())
            .unwrap_or_default()
    }

    /// The tenant tag: `tenant_id`, else the user name.
    pub fn tenant(&self) -> String {
        match &self.tenant_id {
            Some(t) => t.as_str().to_string(),
            None => user_name(),
        }
    }

    /// The agent called `name`, or an error listing the roster's agents.
    pub fn agent(&self, name: &str, path: &Path) -> Result<&Agent> {
        self.agents.iter().find(|a| a.name.as_str() == name).ok_or_else(|| {
            let names: Vec<&str> = self.agents.iter().map(|a| a.name.as_str()).collect();
            Error::Input(format!(
                "unknown agent {name:?}: {} names {}; check the name or add it with `mosaic fleet add {name} --runtime R`",
                path.display(),
                if names.is_empty() { "no agents".to_string() } else { names.join(", ") }
            ))
        })
    }

    /// The reset command of `rt`, if the roster sets one.
    pub fn reset_command(&self, rt: Runtime) -> Option<&str> {
        self.runtimes
            .get(rt)?
            .reset_command
            .as_ref()
            .map(Line::as_str)
    }
}

impl Agent {
    /// Whether the agent runs on this machine (no `host`, or a loopback /
    /// this host's own name).
    pub fn is_local(&self) -> bool {
        match &self.host {
            None => true,
            Some(h) => {
                let h = h.as_str();
                h == "localhost" || h == "127.0.0.1" || h == "::1" || h == local_hostname()
            }
        }
    }

    /// The ssh target for a remote agent: `ssh`, else `host`.
    pub fn ssh_target(&self) -> Option<String> {
        if self.is_local() {
            return None;
        }
        self.ssh
            .as_ref()
            .map(|s| s.as_str().to_string())
            .or_else(|| self.host.as_ref().map(|h| h.as_str().to_string()))
    }
}

/// The user name: `$USER`, `$LOGNAME`, else the passwd entry, else the uid.
pub fn user_name() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            return v;
        }
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out at once and never keep the pointer.
    unsafe {
        let uid = libc::geteuid();
        let pw = libc::getpwuid(uid);
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
        uid.to_string()
    }
}

/// This machine's host name (from `/proc/sys/kernel/hostname`).
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The default roster: `H/fleet/roster.yaml`.
pub fn default_path(home: &Path) -> PathBuf {
    home.join("fleet").join("roster.yaml")
}

/// Parses and validates roster text; errors name `path`, the line and the field.
pub fn parse(text: &str, path: &Path) -> Result<Roster> {
    let roster: Roster = serde_yaml_ng::from_str(text).map_err(|e| {
        // A value's own check (a name pattern, say) is reported by serde at
        // the enclosing mapping; find the field and its line ourselves.
        if let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
            if let Some((segs, msg)) = first_invalid(&v) {
                let line = locate(text, &segs).map(|l| l + 1);
                return bad(path, line, &format!("{}: {msg}", render_path(&segs)));
            }
        }
        let line = e.location().map(|l| l.line());
        let mut msg = e.to_string();
        // serde_yaml_ng appends " at line L column C"; we put the line first.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        bad(path, line, &msg.replace('\n', " "))
    })?;
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in roster.agents.iter().enumerate() {
        if seen.contains(&a.name.as_str()) {
            let line = find_agent_line(text, i).map(|(l, _)| l + 1);
            return Err(bad(
                path,
                line,
                &format!(
                    "agents[{i}].name: duplicate agent name {:?}; agent names must be unique",
                    a.name.as_str()
                ),
            ));
        }
        seen.push(a.name.as_str());
        if a.name.as_str() == roster.holder_session() {
            let line = find_agent_line(text, i).map(|(l, _)| l + 1);
            return Err(bad(
                path,
                line,
                &format!(
                    "agents[{i}].name: {:?} is the holder session's name; rename the agent or set tmux.holder_session",
                    a.name.as_str()
                ),
            ));
        }
        if a.ssh.is_some() && a.host.is_none() {
            let line = find_agent_line(text, i).map(|(l, _)| l + 1);
            return Err(bad(
                path,
                line,
                &format!(
                    "agents[{i}].ssh: set only with host; add `host:` for agent {:?}",
                    a.name.as_str()
                ),
            ));
        }
    }
    Ok(roster)
}

/// One step of a path into the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn render_path(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k)
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

type Check = fn(&str) -> std::result::Result<(), String>;

/// The first string value that fails its own check, with its path.
fn first_invalid(v: &serde_yaml_ng::Value) -> Option<(Vec<Seg<'static>>, String)> {
    use serde_yaml_ng::Value;
    let get = |v: &Value, k: &str| {
        v.as_mapping()
            .and_then(|m| m.get(Value::String(k.to_string())))
            .cloned()
    };
    let check = |v: Option<Value>, f: Check| match v {
        Some(Value::String(s)) => f(&s).err(),
        _ => None,
    };
    if let Some(Value::Number(n)) = get(v, "version") {
        if n.as_u64() != Some(1) {
            return Some((
                vec![Seg::Key("version")],
                format!("unsupported version {n}: must be 1"),
            ));
        }
    }
    let top: [(&'static str, Option<&'static str>, Check); 4] = [
        ("tenant_id", None, check_tenant),
        ("tmux", Some("socket_name"), check_socket),
        ("tmux", Some("holder_session"), check_session),
        ("defaults", Some("working_directory"), check_line),
    ];
    for (k, sub, f) in top {
        let val = match sub {
            None => get(v, k),
            Some(s) => get(v, k).and_then(|m| get(&m, s)),
        };
        if let Some(msg) = check(val, f) {
            let mut segs = vec![Seg::Key(k)];
            segs.extend(sub.map(Seg::Key));
            return Some((segs, msg));
        }
    }
    for rt in ["claude", "codex", "pi", "opencode"] {
        let val = get(v, "runtimes")
            .and_then(|m| get(&m, rt))
            .and_then(|m| get(&m, "reset_command"));
        if let Some(msg) = check(val, check_line) {
            return Some((
                vec![
                    Seg::Key("runtimes"),
                    Seg::Key(rt),
                    Seg::Key("reset_command"),
                ],
                msg,
            ));
        }
    }
    let fields: [(&'static str, Check); 6] = [
        ("name", check_agent_name),
        ("model_hint", check_model),
        ("working_directory", check_line),
        ("host", check_host),
        ("ssh", check_ssh),
        ("socket", check_socket),
    ];
    if let Some(Value::Sequence(agents)) = get(v, "agents") {
        for (i, a) in agents.iter().enumerate() {
            for (k, f) in fields {
                if let Some(msg) = check(get(a, k), f) {
                    return Some((vec![Seg::Key("agents"), Seg::Index(i), Seg::Key(k)], msg));
                }
            }
        }
    }
    None
}

/// The column where a line's key starts (after indentation and `- `).
fn key_col(line: &str) -> (usize, &str) {
    let ind = indent_of(line);
    let mut rest = &line[ind..];
    let mut col = ind;
    while let Some(r) = rest.strip_prefix("- ") {
        let r2 = r.trim_start_matches(' ');
        col += 2 + (r.len() - r2.len());
        rest = r2;
    }
    (col, rest)
}

/// The 0-based line of the value at `segs`, for block-style YAML (inside a
/// flow-style mapping, the line that opens it).
fn locate(text: &str, segs: &[Seg]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut lo, mut hi) = (0usize, lines.len());
    let mut parent: isize = -1;
    let mut found: Option<usize> = None;
    for seg in segs {
        if let Some(l) = found {
            if lines[l].contains('{') || lines[l].contains('[') {
                return found;
            }
        }
        match *seg {
            Seg::Key(k) => {
                let plain = format!("{k}:");
                let quoted = format!("\"{k}\":");
                let i = (lo..hi).find(|&i| {
                    let (col, rest) = key_col(lines[i]);
                    is_content(lines[i])
                        && col as isize > parent
                        && (rest.starts_with(&plain) || rest.starts_with(&quoted))
                })?;
                let col = key_col(lines[i]).0;
                // The key's block ends at the next content line indented no deeper
                // (a `- ` item at the key's own indent still belongs to it).
                let end = (i + 1..hi)
                    .find(|&j| {
                        let ind = indent_of(lines[j]);
                        is_content(lines[j])
                            && (ind < col || (ind == col && !lines[j][ind..].starts_with('-')))
                    })
                    .unwrap_or(hi);
                found = Some(i);
                parent = col as isize;
                lo = i + 1;
                hi = end;
            }
            Seg::Index(n) => {
                let dashes: Vec<usize> = (lo..hi)
                    .filter(|&i| {
                        let t = lines[i].trim_start();
                        is_content(lines[i]) && (t.starts_with("- ") || t == "-")
                    })
                    .collect();
                let ind = indent_of(lines[*dashes.first()?]);
                let items: Vec<usize> = dashes
                    .into_iter()
                    .filter(|&d| indent_of(lines[d]) == ind)
                    .collect();
                let start = *items.get(n)?;
                let end = items.get(n + 1).copied().unwrap_or(hi);
                found = Some(start);
                parent = ind as isize;
                lo = start;
                hi = end;
            }
        }
    }
    found
}

fn bad(path: &Path, line: Option<usize>, msg: &str) -> Error {
    let loc = match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    };
    Error::Input(format!(
        "{loc}: {msg}; fix the roster (format: fleet/roster.schema.json, fleet/README.md)"
    ))
}

/// Reads, parses and validates the roster at `path`.
pub fn load(path: &Path) -> Result<Roster> {
    let text = read(path)?;
    parse(&text, path)
}

/// Reads the roster text, with a clear error when it is missing.
pub fn read(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Input(format!(
            "no roster at {}; create one with `mosaic fleet init --preset minimal` (or pass --roster FILE)",
            path.display()
        ))),
        Err(e) => Err(Error::io(path, e)),
    }
}

// ---- text edits that keep comments and ordering ----

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The line index of the top-level `agents:` key.
fn agents_key_line(lines: &[&str]) -> Option<usize> {
    lines.iter().position(|l| {
        indent_of(l) == 0 && (l.starts_with("agents:") || l.starts_with("\"agents\":"))
    })
}

/// The items of the block sequence under `agents:`: (first line, end line
/// exclusive, indent of the dash). The end excludes trailing comment and
/// blank lines.
fn agent_items(lines: &[&str]) -> Vec<(usize, usize, usize)> {
    let Some(key) = agents_key_line(lines) else {
        return Vec::new();
    };
    let mut items: Vec<(usize, usize, usize)> = Vec::new();
    let mut dash_indent: Option<usize> = None;
    let mut last_content = key;
    let mut i = key + 1;
    while i < lines.len() {
        let l = lines[i];
        if !is_content(l) {
            i += 1;
            continue;
        }
        let ind = indent_of(l);
        let t = l.trim_start();
        if ind == 0 && !t.starts_with('-') {
            break; // next top-level key
        }
        let is_dash = t.starts_with("- ") || t == "-";
        if is_dash && dash_indent.is_none_or(|d| d == ind) {
            dash_indent = Some(ind);
            if let Some(last) = items.last_mut() {
                last.1 = last_content + 1;
            }
            items.push((i, i + 1, ind));
        } else if dash_indent.is_none_or(|d| ind <= d && !is_dash) {
            break;
        }
        last_content = i;
        i += 1;
    }
    if let Some(last) = items.last_mut() {
        last.1 = last_content + 1;
    }
    items
}

/// The (line index, indent) of agent item `i`, for error messages.
fn find_agent_line(text: &str, i: usize) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    agent_items(&lines)
        .get(i)
        .map(|&(start, _, ind)| (start, ind))
}

/// A new agent entry for `fleet add`.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Name.
    pub name: String,
    /// Runtime.
    pub runtime: Runtime,
    /// Class.
    pub class: Option<Class>,
    /// Model hint.
    pub model: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Per-agent socket.
    pub socket: Option<String>,
}

fn yaml_scalar(s: &str) -> String {
    // Plain when YAML reads it back as the same string; else double-quoted.
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/@+-~".contains(c))
        && !s.starts_with(['-', '~', '@'])
        && serde_yaml_ng::from_str::<serde_yaml_ng::Value>(s)
            .is_ok_and(|v| v == serde_yaml_ng::Value::String(s.to_string()));
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("string")
    }
}

/// Adds an agent at the end of `agents:`, keeping every other line (comments
/// included) as it was. The result is validated before it is returned.
pub fn add_agent(text: &str, path: &Path, new: &NewAgent) -> Result<String> {
    let roster = parse(text, path)?;
    check_agent_name(&new.name).map_err(|m| Error::Input(format!("{m}; pick another name")))?;
    if roster.agents.iter().any(|a| a.name.as_str() == new.name) {
        return Err(Error::Input(format!(
            "agent {:?} is already in {}; pick another name or `mosaic fleet remove {}` first",
            new.name,
            path.display(),
            new.name
        )));
    }
    let lines: Vec<&str> = text.lines().collect();
    let items = agent_items(&lines);
    let (dash_indent, insert_at) = match items.last() {
        Some(&(_, end, ind)) => (ind, end),
        None => (2, 0),
    };
    let pad = " ".repeat(dash_indent);
    let mut entry = vec![format!("{pad}- name: {}", yaml_scalar(&new.name))];
    let field = |k: &str, v: &str| format!("{pad}  {k}: {}", yaml_scalar(v));
    entry.push(field("runtime", new.runtime.program()));
    if let Some(c) = new.class {
        entry.push(field("class", c.as_str()));
    }
    if let Some(m) = &new.model {
        entry.push(field("model_hint", m));
    }
    if let Some(w) = &new.workdir {
        entry.push(field("working_directory", w));
    }
    if let Some(s) = &new.socket {
        entry.push(field("socket", s));
    }
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if items.is_empty() {
        // `agents: []`, `agents:` with nothing under it, or no key at all.
        match agents_key_line(&lines) {
            Some(k) => {
                let (_, comment) = split_comment(lines[k]);
                out[k] = format!(
                    "agents:{}",
                    comment.map(|c| format!(" {c}")).unwrap_or_default()
                );
                for (j, e) in entry.into_iter().enumerate() {
                    out.insert(k + 1 + j, e);
                }
            }
            None => {
                out.push("agents:".to_string());
                out.extend(entry);
            }
        }
    } else {
        for (j, e) in entry.into_iter().enumerate() {
            out.insert(insert_at + j, e);
        }
    }
    let mut result = out.join("\n");
    result.push('\n');
    let check = parse(&result, path)?;
    if check.agents.len() != roster.agents.len() + 1 {
        return Err(Error::Input(format!(
            "{}: could not add {:?} without disturbing the file's layout (flow-style agents list?); add it by hand",
            path.display(),
            new.name
        )));
    }
    Ok(result)
}

fn split_comment(line: &str) -> (&str, Option<&str>) {
    match line.find(" #") {
        Some(i) => (&line[..i], Some(line[i + 1..].trim())),
        None => (line, None),
    }
}

/// Removes agent `name` (its lines only) from the roster text, keeping every
/// other line. The result is validated before it is returned.
pub fn remove_agent(text: &str, path: &Path, name: &str) -> Result<String> {
    let roster = parse(text, path)?;
    roster.agent(name, path)?;
    let idx = roster
        .agents
        .iter()
        .position(|a| a.name.as_str() == name)
        .expect("found above");
    let lines: Vec<&str> = text.lines().collect();
    let items = agent_items(&lines);
    if items.len() != roster.agents.len() {
        return Err(Error::Input(format!(
            "{}: the agents list is not a plain block list; remove {name:?} by hand",
            path.display()
        )));
    }
    let (start, end, _) = items[idx];
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    out.extend(&lines[..start]);
    out.extend(&lines[end..]);
    let mut result = out.join("\n");
    result.push('\n');
    let check = parse(&result, path)?;
    if check.agents.len() + 1 != roster.agents.len()
        || check.agents.iter().any(|a| a.name.as_str() == name)
    {
        return Err(Error::Input(format!(
            "{}: could not remove {name:?} cleanly; remove it by hand",
            path.display()
        )));
    }
    Ok(result)
}

impl std::str::FromStr for Runtime {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Runtime::ALL
            .iter()
            .copied()
            .find(|r| r.program() == s)
            .ok_or_else(|| format!("unknown runtime {s:?}: use claude, codex, pi or opencode"))
    }
}

impl std::str::FromStr for Class {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Class::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown class {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/h/fleet/roster.yaml")
    }

    const GOOD: &str = "# my fleet\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-fleet  # isolated\nruntimes:\n  codex: { reset_command: /clear }\nagents:\n  # the coder\n  - name: coder0\n    runtime: codex   # fast\n    class: implementer\n  - name: reviewer0\n    runtime: claude\n\n# trailing note\n";

    #[test]
    fn every_shipped_example_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../framework/fleet/examples");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let r = load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!r.agents.is_empty(), "{}", path.display());
            assert_eq!(r.socket(), Some("mosaic-fleet"));
            n += 1;
        }
        assert!(n >= 5);
    }

    #[test]
    fn the_default_socket_name_and_the_holder_name_are_refused() {
        let p = Path::new("/h/fleet/roster.yaml");
        let e = parse("version: 1\ntmux:\n  socket_name: default\nagents: []\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("operator's own tmux server"), "{e}");
        let e = parse(
            "version: 1\ntmux:\n  holder_session: a1\nagents:\n  - name: a1\n    runtime: pi\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("holder session"), "{e}");
        let e = parse(
            "version: 1\nagents:\n  - name: a1\n    runtime: pi\n    host: h1\n    ssh: \"-Einj@h1\"\n",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ssh"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "version: 1\nagents:\n  - name: coder0\n    runtme: codex\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(e.starts_with("/h/fleet/roster.yaml:4: "), "{e}");
        assert!(e.contains("agents[0]") && e.contains("runtme"), "{e}");

        let text = "version: 1\nagents:\n  - name: ok\n    runtime: codex\n  - name: Bad/Name\n    runtime: codex\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(e.contains("roster.yaml:5:"), "{e}");
        assert!(e.contains("agents[1].name"), "{e}");

        let text = "version: 1\nagents:\n  - name: a\n    runtime: cladue\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(
            e.contains("roster.yaml:4:") && e.contains("agents[0].runtime"),
            "{e}"
        );

        let text =
            "version: 1\nagents:\n  - name: a\n    runtime: codex\n  - name: a\n    runtime: pi\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(
            e.contains("roster.yaml:5:") && e.contains("duplicate"),
            "{e}"
        );

        let e = parse("version: 2\nagents: []\n", &p())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("roster.yaml:1: version: unsupported version 2"),
            "{e}"
        );

        let e = parse("version: 1\nagents: [\n", &p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("roster.yaml"), "{e}");
        assert!(!e.contains('\n'));

        let text = "version: 1\nagents:\n  - name: a\n    runtime: pi\n\n    model_hint: 'x y'\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(
            e.contains("roster.yaml:6: agents[0].model_hint: invalid model_hint"),
            "{e}"
        );

        let text = "version: 1\ntenant_id: ops\ntmux:\n  holder_session: _h\n  socket_name: 'a b'\nagents: []\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(
            e.contains("roster.yaml:5: tmux.socket_name: invalid socket name"),
            "{e}"
        );

        let text = "version: 1\nruntimes:\n  codex: { reset_command: '' }\nagents: []\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(
            e.contains("roster.yaml:3: runtimes.codex.reset_command:"),
            "{e}"
        );

        let text = "version: 1\nagents:\n- name: a\n  runtime: pi\n- name: b\n  runtime: pi\n  socket: '-x'\n";
        let e = parse(text, &p()).unwrap_err().to_string();
        assert!(e.contains("roster.yaml:7: agents[1].socket:"), "{e}");

        let e = parse("version: 1\n", &p()).unwrap_err().to_string();
        assert!(e.contains("agents"), "{e}");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "a/b",
            "..",
            "a b",
            "a;b",
            "$(x)",
            "A",
            "-a",
            "",
            &"a".repeat(64),
        ] {
            assert!(check_agent_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "coder0", "0", "a_b-c", &"a".repeat(63)] {
            assert!(check_agent_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn numeric_looking_names_load_as_strings() {
        let r = parse(
            "version: 1\nagents:\n  - name: '007'\n    runtime: pi\n",
            &p(),
        )
        .unwrap();
        assert_eq!(r.agents[0].name.as_str(), "007");
    }

    #[test]
    fn socket_absent_means_default_server() {
        let r = parse("version: 1\nagents:\n  - name: a\n    runtime: pi\n", &p()).unwrap();
        assert_eq!(r.socket(), None);
        assert_eq!(r.holder_session(), "_holder");
        let r = parse(
            "version: 1\ntmux: {socket_name: s1}\nagents:\n  - name: a\n    runtime: pi\n    socket: s2\n  - name: b\n    runtime: pi\n",
            &p(),
        )
        .unwrap();
        assert_eq!(r.agent_socket(&r.agents[0]), Some("s2"));
        assert_eq!(r.agent_socket(&r.agents[1]), Some("s1"));
    }

    #[test]
    fn add_keeps_comments_and_order() {
        let new = NewAgent {
            name: "coder1".into(),
            runtime: Runtime::Pi,
            class: Some(Class::Research),
            model: Some("gpt-5".into()),
            workdir: None,
            socket: None,
        };
        let out = add_agent(GOOD, &p(), &new).unwrap();
        let expected = GOOD.replace(
            "    runtime: claude\n",
            "    runtime: claude\n  - name: coder1\n    runtime: pi\n    class: research\n    model_hint: gpt-5\n",
        );
        assert_eq!(out, expected);
        let r = parse(&out, &p()).unwrap();
        let names: Vec<_> = r.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["coder0", "reviewer0", "coder1"]);
        assert!(add_agent(&out, &p(), &new)
            .unwrap_err()
            .to_string()
            .contains("already"));
    }

    #[test]
    fn add_to_empty_list() {
        let out = add_agent(
            "version: 1\nagents: []  # none yet\n",
            &p(),
            &NewAgent {
                name: "a".into(),
                runtime: Runtime::Codex,
                class: None,
                model: None,
                workdir: None,
                socket: None,
            },
        )
        .unwrap();
        assert_eq!(
            out,
            "version: 1\nagents: # none yet\n  - name: a\n    runtime: codex\n"
        );
    }

    #[test]
    fn remove_keeps_everything_else() {
        let out = remove_agent(GOOD, &p(), "coder0").unwrap();
        assert_eq!(
            out,
            "# my fleet\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-fleet  # isolated\nruntimes:\n  codex: { reset_command: /clear }\nagents:\n  # the coder\n  - name: reviewer0\n    runtime: claude\n\n# trailing note\n"
        );
        let out2 = remove_agent(GOOD, &p(), "reviewer0").unwrap();
        assert!(
            out2.ends_with("    class: implementer\n\n# trailing note\n"),
            "{out2}"
        );
        assert!(remove_agent(GOOD, &p(), "nobody")
            .unwrap_err()
            .to_string()
            .contains("unknown agent"));
    }

    #[test]
    fn edits_refuse_an_invalid_roster() {
        let bad = "version: 1\nagents:\n  - name: a\n    runtime: nope\n";
        assert!(remove_agent(bad, &p(), "a").is_err());
    }
}
