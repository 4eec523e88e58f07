//! The roster (SPEC §7): the serde model of `H/fleet/roster.yaml`, its
//! validation (the same rules as the shipped `fleet/roster.schema.json`, with
//! errors naming file, line and field), and comment-keeping text edits
//! (`fleet add` / `fleet remove`). A roster that does not validate is never
//! returned, so nothing can act on it.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// Checks a `hosts:` key: `[A-Za-z0-9][A-Za-z0-9.-]{0,62}` (compared
/// case-insensitively).
fn check_host_name(s: &str) -> std::result::Result<(), String> {
    check_pattern(
        s,
        "host name",
        "[A-Za-z0-9][A-Za-z0-9.-]{0,62}",
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || ".-".contains(c),
        62,
    )
}

/// Checks the `ssh:` target of a `hosts:` entry: `USER@HOST` or `HOST`, no
/// port (`port:` holds it), nothing ssh could read as an option.
pub fn check_host_target(s: &str) -> std::result::Result<(), String> {
    let host = s.rsplit_once('@').map(|(_, h)| h).unwrap_or(s);
    if host.contains(':') {
        let (h, port) = host.rsplit_once(':').unwrap_or((host, ""));
        return Err(format!(
            "invalid ssh target {s:?}: a port does not go in the target; write `ssh: {}` and `port: {port}`",
            s.strip_suffix(&format!(":{port}")).unwrap_or(h)
        ));
    }
    check_ssh(s)
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
    /// A key of the `hosts:` map (compared case-insensitively).
    HostName,
    check_host_name
);
checked_string!(
    /// The `ssh:` target of a `hosts:` entry (`USER@HOST` or `HOST`, no port).
    HostTarget,
    check_host_target
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

/// When the agent's supervisor restarts its runtime (`restart:`, written
/// to the env file as `MOSAIC_AGENT_RESTART`); see tools/fleet/agent-supervisor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After a crash (a signal or a non-zero exit); the default.
    #[default]
    OnFailure,
    /// After any exit.
    Always,
    /// Never: the pane stays dead (`fleet ps` says DEAD).
    Never,
}

impl RestartPolicy {
    /// The word in the roster and the env file.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::Never => "never",
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
    /// Restart policy of the runtime (default on-failure).
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// The lower-cased name of the agent's host in [`Roster::resolved`];
    /// `None` = the controller.
    #[serde(skip)]
    pub host_key: Option<String>,
    /// Runs on this machine (see [`Roster::set_me`]).
    #[serde(skip)]
    pub local: bool,
}

/// One entry of `hosts:` (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// `USER@HOST` or `HOST` (a `~/.ssh/config` alias works).
    pub ssh: HostTarget,
    /// ssh port (default: ssh's own, from `~/.ssh/config` or 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Tenant tag of the agents on this host (default: the roster's).
    #[serde(default)]
    pub tenant: Option<TenantId>,
}

/// A host as resolved for the agents that name it: a `hosts:` entry, or the
/// implicit entry of a legacy agent-level `host:`/`ssh:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedHost {
    /// The name as written in `hosts:` (or the legacy `host:` value).
    pub name: String,
    /// The ssh destination (`USER@HOST` or `HOST`).
    pub target: String,
    /// ssh port, if set.
    pub port: Option<u16>,
    /// Tenant tag of its agents, if set.
    pub tenant: Option<String>,
    /// Read from an agent's own `host:`/`ssh:` (no `hosts:` entry).
    pub implicit: bool,
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
    /// Other machines agents live on (name → ssh target).
    #[serde(default)]
    pub hosts: BTreeMap<HostName, HostEntry>,
    /// The agents.
    pub agents: Vec<Agent>,
    /// Resolved hosts by lower-cased name (explicit and implicit).
    #[serde(skip)]
    pub resolved: BTreeMap<String, ResolvedHost>,
    /// The host this machine plays (lower-cased `hosts:` name); `None` = the
    /// controller. See [`Roster::set_me`].
    #[serde(skip)]
    pub me: Option<String>,
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

    /// The tenant tag of one agent: its host's `tenant`, else [`Roster::tenant`].
    pub fn agent_tenant(&self, a: &Agent) -> String {
        self.host_of(a)
            .and_then(|h| h.tenant.clone())
            .unwrap_or_else(|| self.tenant())
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
    /// Whether the agent runs on this machine: for the controller, agents
    /// without a host (or a legacy `host:` naming this machine); for a host
    /// (`MOSAIC_HOST_NAME`, `fleet install --as`), the agents on that host.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The agent's host name as written, `None` = the controller.
    pub fn host_name<'a>(&self, roster: &'a Roster) -> Option<&'a str> {
        let k = self.host_key.as_ref()?;
        roster.resolved.get(k).map(|h| h.name.as_str())
    }
}

/// The environment variable naming the host this machine plays in a shared
/// roster (a `hosts:` name); unset = the controller.
pub const HOST_NAME_ENV: &str = "MOSAIC_HOST_NAME";

/// Is a legacy agent-level `host:` value this very machine?
fn names_this_machine(h: &str) -> bool {
    // Host names compare case-insensitively (`host: CTL` on a machine named `ctl`).
    h.eq_ignore_ascii_case("localhost")
        || h == "127.0.0.1"
        || h == "::1"
        || h.eq_ignore_ascii_case(&local_hostname())
}

impl Roster {
    /// The host an agent lives on (`None` = the controller).
    pub fn host_of(&self, a: &Agent) -> Option<&ResolvedHost> {
        self.resolved.get(a.host_key.as_ref()?)
    }

    /// A host by name (case-insensitive).
    pub fn host(&self, name: &str) -> Option<&ResolvedHost> {
        self.resolved.get(&name.to_ascii_lowercase())
    }

    /// Every host some agent lives on, other than this machine, in name order.
    pub fn remote_hosts(&self) -> Vec<&ResolvedHost> {
        let used: std::collections::BTreeSet<&str> = self
            .agents
            .iter()
            .filter(|a| !a.local)
            .filter_map(|a| a.host_key.as_deref())
            .collect();
        self.resolved
            .iter()
            .filter(|(k, _)| used.contains(k.as_str()) && Some(k.as_str()) != self.me.as_deref())
            .map(|(_, h)| h)
            .collect()
    }

    /// The agents on host `key` (lower-cased name).
    pub fn agents_on<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Agent> + 'a {
        self.agents
            .iter()
            .filter(move |a| a.host_key.as_deref() == Some(key))
    }

    /// The name this machine plays, as written (`None` = the controller).
    pub fn me_name(&self) -> Option<&str> {
        self.resolved
            .get(self.me.as_ref()?)
            .map(|h| h.name.as_str())
    }

    /// Says which host this machine is (`None` = the controller) and marks
    /// the agents that run here. An unknown name is an error naming the
    /// roster's hosts.
    pub fn set_me(&mut self, me: Option<&str>, path: &Path) -> Result<()> {
        let key = match me.map(str::trim).filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => {
                let k = m.to_ascii_lowercase();
                if !self.resolved.contains_key(&k) {
                    let names: Vec<&str> =
                        self.resolved.values().map(|h| h.name.as_str()).collect();
                    return Err(Error::Input(format!(
                        "this machine is host {m:?} ({HOST_NAME_ENV} or --as), but {} has no such host (it names {}); fix the name or add it under `hosts:`",
                        path.display(),
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    )));
                }
                Some(k)
            }
        };
        for a in &mut self.agents {
            a.local = a.host_key == key;
        }
        self.me = key;
        Ok(())
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
    let mut roster = roster;
    resolve_hosts(&mut roster, text, path)?;
    let me = std::env::var(HOST_NAME_ENV).ok();
    roster.set_me(me.as_deref(), path)?;
    Ok(roster)
}

/// The line of `hosts:` key `name`, for error messages.
fn find_host_line(text: &str, name: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let top = lines
        .iter()
        .position(|l| l.starts_with("hosts:") || l.starts_with("\"hosts\":"))?;
    if lines[top].contains('{') {
        return Some(top + 1);
    }
    (top + 1..lines.len())
        .take_while(|&i| !is_content(lines[i]) || indent_of(lines[i]) > 0)
        .find(|&i| {
            let t = lines[i].trim_start();
            t.starts_with(&format!("{name}:")) || t.starts_with(&format!("\"{name}\":"))
        })
        .map(|i| i + 1)
}

/// Builds [`Roster::resolved`] and each agent's `host_key`: explicit
/// `hosts:` entries (names unique case-insensitively), an agent's `host:`
/// naming one of them, and legacy agent-level `host:`/`ssh:` read as an
/// implicit entry.
fn resolve_hosts(roster: &mut Roster, text: &str, path: &Path) -> Result<()> {
    let mut resolved: BTreeMap<String, ResolvedHost> = BTreeMap::new();
    for (name, e) in &roster.hosts {
        let key = name.as_str().to_ascii_lowercase();
        if let Some(prev) = resolved.get(&key) {
            return Err(bad(
                path,
                find_host_line(text, name.as_str()),
                &format!(
                    "hosts.{name}: duplicate host name (host names compare case-insensitively: {:?} is already listed); merge them",
                    prev.name
                ),
            ));
        }
        if e.port == Some(0) {
            return Err(bad(
                path,
                find_host_line(text, name.as_str()),
                &format!("hosts.{name}.port: port 0 is not a port; use 1-65535 or leave it out"),
            ));
        }
        resolved.insert(
            key,
            ResolvedHost {
                name: name.as_str().to_string(),
                target: e.ssh.as_str().to_string(),
                port: e.port,
                tenant: e.tenant.as_ref().map(|t| t.as_str().to_string()),
                implicit: false,
            },
        );
    }
    for i in 0..roster.agents.len() {
        let a = &roster.agents[i];
        let Some(h) = a.host.as_ref().map(|h| h.as_str().to_string()) else {
            continue;
        };
        let key = h.to_ascii_lowercase();
        let line = || find_agent_line(text, i).map(|(l, _)| l + 1);
        if let Some(entry) = resolved.get(&key).filter(|e| !e.implicit) {
            if let Some(s) = &a.ssh {
                if s.as_str() != entry.target {
                    return Err(bad(
                        path,
                        line(),
                        &format!(
                            "agents[{i}].ssh: agent {:?} names host {h:?}, whose ssh target is hosts.{}.ssh; drop the agent's own `ssh:`",
                            a.name.as_str(),
                            entry.name
                        ),
                    ));
                }
            }
            roster.agents[i].host_key = Some(key);
            continue;
        }
        if a.ssh.is_none() && names_this_machine(&h) {
            continue; // legacy: a host: that is this machine
        }
        if !roster.hosts.is_empty() && a.ssh.is_none() {
            let names: Vec<&str> = roster.hosts.keys().map(HostName::as_str).collect();
            return Err(bad(
                path,
                line(),
                &format!(
                    "agents[{i}].host: unknown host {h:?}; name one of hosts: ({})",
                    names.join(", ")
                ),
            ));
        }
        let target = a
            .ssh
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| h.clone());
        // `host:port` in a legacy target reaches ssh as a host name; refuse it.
        check_host_target(&target)
            .map_err(|m| bad(path, line(), &format!("agents[{i}].ssh: {m}")))?;
        match resolved.get(&key) {
            Some(prev) if prev.target != target => {
                return Err(bad(
                    path,
                    line(),
                    &format!(
                        "agents[{i}].ssh: host {h:?} is reached as {:?} by another agent; use one `hosts:` entry for it",
                        prev.target
                    ),
                ));
            }
            Some(_) => {}
            None => {
                resolved.insert(
                    key.clone(),
                    ResolvedHost {
                        name: h.clone(),
                        target,
                        port: None,
                        tenant: None,
                        implicit: true,
                    },
                );
            }
        }
        roster.agents[i].host_key = Some(key);
    }
    roster.resolved = resolved;
    Ok(())
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
fn first_invalid(v: &serde_yaml_ng::Value) -> Option<(Vec<Seg<'_>>, String)> {
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
    let hosts = v
        .as_mapping()
        .and_then(|m| m.get(Value::String("hosts".to_string())))
        .and_then(Value::as_mapping);
    if let Some(hosts) = hosts {
        for (k, e) in hosts {
            let Some(name) = k.as_str() else { continue };
            if let Err(msg) = check_host_name(name) {
                return Some((vec![Seg::Key("hosts"), Seg::Key(name)], msg));
            }
            if let Some(msg) = check(get(e, "ssh"), check_host_target) {
                return Some((
                    vec![Seg::Key("hosts"), Seg::Key(name), Seg::Key("ssh")],
                    msg,
                ));
            }
            if let Some(msg) = check(get(e, "tenant"), check_tenant) {
                return Some((
                    vec![Seg::Key("hosts"), Seg::Key(name), Seg::Key("tenant")],
                    msg,
                ));
            }
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

    const SHARED: &str = "version: 1\nhosts:\n  Build1: { ssh: ops@build1.example.org, port: 2222, tenant: t1 }\n  build2:\n    ssh: build2\nagents:\n  - name: lead\n    runtime: claude\n  - name: b1\n    runtime: codex\n    host: build1\n  - name: b2\n    runtime: codex\n    host: BUILD2\n";

    #[test]
    fn hosts_map_resolves_case_insensitively_and_places_agents() {
        let mut r = parse(SHARED, &p()).unwrap();
        let local: Vec<_> = r
            .agents
            .iter()
            .filter(|a| a.is_local())
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(local, ["lead"], "no host = the controller");
        let h = r.host_of(&r.agents[1]).unwrap();
        assert_eq!(
            (h.name.as_str(), h.target.as_str(), h.port),
            ("Build1", "ops@build1.example.org", Some(2222))
        );
        assert_eq!(h.tenant.as_deref(), Some("t1"));
        assert_eq!(r.host_of(&r.agents[2]).unwrap().name, "build2");
        let remote: Vec<_> = r.remote_hosts().iter().map(|h| h.name.clone()).collect();
        assert_eq!(remote, ["Build1", "build2"]);
        // The same roster on build2: only b2 is local there.
        r.set_me(Some("BuIlD2"), &p()).unwrap();
        let local: Vec<_> = r
            .agents
            .iter()
            .filter(|a| a.is_local())
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(local, ["b2"]);
        assert_eq!(r.me_name(), Some("build2"));
        let e = r.set_me(Some("build9"), &p()).unwrap_err().to_string();
        assert!(e.contains("build9") && e.contains("Build1, build2"), "{e}");
    }

    #[test]
    fn malformed_hosts_are_refused_with_file_line_and_field() {
        let e = parse(
            "version: 1\nhosts:\n  b1:\n    ssh: ops@b1:2222\nagents: []\n",
            &p(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("/h/fleet/roster.yaml:4: hosts.b1.ssh:"),
            "{e}"
        );
        assert!(e.contains("port: 2222"), "{e}");
        let e = parse(
            "version: 1\nhosts:\n  b1: { ssh: \"-oProxyCommand=x\" }\nagents: []\n",
            &p(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hosts.b1.ssh"), "{e}");
        let e = parse(
            "version: 1\nhosts:\n  b1: { ssh: b1 }\n  B1: { ssh: b1 }\nagents: []\n",
            &p(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate host name"), "{e}");
        let e = parse(
            "version: 1\nhosts:\n  b1: { ssh: b1, prot: 22 }\nagents: []\n",
            &p(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("prot"), "{e}");
        let e = parse("version: 1\nhosts:\n  b1: { ssh: b1 }\nagents:\n  - name: a\n    runtime: pi\n    host: b2\n", &p()).unwrap_err().to_string();
        assert!(
            e.contains("roster.yaml:5: agents[0].host: unknown host \"b2\""),
            "{e}"
        );
        let e = parse(
            "version: 1\nagents:\n  - name: a\n    runtime: pi\n    host: h1:22\n",
            &p(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("roster.yaml:3:") && e.contains("port"), "{e}");
    }

    #[test]
    fn legacy_agent_level_host_and_ssh_are_an_implicit_entry() {
        let r = parse("version: 1\nagents:\n  - name: a\n    runtime: pi\n    host: 192.0.2.10\n    ssh: ops@192.0.2.10\n  - name: b\n    runtime: pi\n    host: 192.0.2.10\n    ssh: ops@192.0.2.10\n  - name: c\n    runtime: pi\n    host: localhost\n", &p()).unwrap();
        let h = r.host_of(&r.agents[0]).unwrap();
        assert!(h.implicit);
        assert_eq!(h.target, "ops@192.0.2.10");
        assert_eq!(r.remote_hosts().len(), 1);
        assert!(r.agents[2].is_local());
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
