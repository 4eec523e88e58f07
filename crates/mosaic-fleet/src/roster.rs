//! The roster (SPEC §7): the serde model of `H/fleet/roster.yaml`, its
//! validation (the same rules as the shipped `fleet/roster.schema.json`, with
//! errors naming file, line and field), and byte-keeping text edits
//! (`fleet add` / `fleet remove`) through `mosaic_engine::yamledit`. A roster that does not validate is never
//! returned, so nothing can act on it.

use crate::error::{Error, Result};
use mosaic_engine::yamledit::{self, scalar_text, Doc, Seg, Splice};
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

pub use crate::whoami::user_name;

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
    let doc = Doc::parse(text).map_err(|e| bad(path, e.line, &e.msg))?;
    let value = doc.to_json().map_err(|e| bad(path, e.line, &e.msg))?;
    let roster: Roster = serde_path_to_error::deserialize(value).map_err(|e| {
        let segs: Vec<OwnedSeg> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(OwnedSeg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(OwnedSeg::Key(key.clone())),
                _ => None,
            })
            .collect();
        let mut segs = segs;
        let msg = e.into_inner().to_string().replace('\n', " ");
        // An unknown field is reported at its mapping (`agents[0]: unknown
        // field `runtme``), as the schema's validators say it.
        if let Some(OwnedSeg::Key(k)) = segs.last() {
            if msg.starts_with(&format!("unknown field `{k}`")) {
                segs.pop();
            }
        }
        let line = line_of(&doc, &segs, &msg);
        let at = render_path(&segs);
        if at.is_empty() {
            bad(path, line, &msg)
        } else {
            bad(path, line, &format!("{at}: {msg}"))
        }
    })?;
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in roster.agents.iter().enumerate() {
        if seen.contains(&a.name.as_str()) {
            let line = find_agent_line(text, i);
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
            let line = find_agent_line(text, i);
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
            let line = find_agent_line(text, i);
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
    let doc = Doc::parse(text).ok()?;
    let hosts = doc.get(&[Seg::Key("hosts")])?;
    doc.get_key(hosts, name).map(|(k, _)| doc.node(k).line)
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
        let line = || find_agent_line(text, i);
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

/// One step of a path into the roster, as serde reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedSeg {
    Key(String),
    Index(usize),
}

fn render_path(segs: &[OwnedSeg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            OwnedSeg::Key(k) if s.is_empty() => s.push_str(k),
            OwnedSeg::Key(k) => {
                s.push('.');
                s.push_str(k)
            }
            OwnedSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The line of the node at `segs` (the deepest one found); for an unknown
/// field, the line of that key.
fn line_of(doc: &Doc<'_>, segs: &[OwnedSeg], msg: &str) -> Option<usize> {
    let mut at = doc.root()?;
    let mut line = doc.node(at).line;
    for seg in segs {
        let next = match seg {
            OwnedSeg::Key(k) => doc.get_key(at, k).map(|(_, v)| v),
            OwnedSeg::Index(i) => doc.items(at).get(*i).copied(),
        };
        match next {
            Some(n) => {
                at = n;
                line = doc.node(n).line;
            }
            None => break,
        }
    }
    if let Some(field) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| f)
    {
        if let Some((k, _)) = doc.get_key(at, field) {
            return Some(doc.node(k).line);
        }
    }
    Some(line)
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

/// The largest roster read (a few hundred agents take a few KiB).
pub const MAX_ROSTER_BYTES: u64 = 4 << 20;

/// Reads the roster text, with a clear error when it is missing, not a
/// regular file or too large.
pub fn read(path: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // A FIFO or a device (`--roster /dev/zero`) would block or never end: a
    // roster is a regular file of at most MAX_ROSTER_BYTES. Opened
    // non-blocking so opening a FIFO does not wait for a writer.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.metadata().map(|m| (f, m)));
    let read = opened.and_then(|(f, m)| {
        if !m.is_file() {
            return Ok(Err(Error::Input(format!(
                "{} is not a regular file; a roster is a YAML file (pass --roster FILE)",
                path.display()
            ))));
        }
        let mut text = String::new();
        f.take(MAX_ROSTER_BYTES + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_ROSTER_BYTES {
            return Ok(Err(Error::Input(format!(
                "{} is larger than {} MiB, too large for a roster; pass the right --roster FILE",
                path.display(),
                MAX_ROSTER_BYTES >> 20
            ))));
        }
        Ok(Ok(text))
    });
    match read {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Input(format!(
            "no roster at {}; create one with `mosaic fleet init --preset minimal` (or pass --roster FILE)",
            path.display()
        ))),
        Err(e) => Err(Error::io(path, e)),
    }
}

// ---- text edits that keep comments, line ends and ordering ----

/// The 1-based line of agent item `i`, for error messages.
fn find_agent_line(text: &str, i: usize) -> Option<usize> {
    let doc = Doc::parse(text).ok()?;
    let agents = doc.get(&[Seg::Key("agents")])?;
    doc.items(agents).get(i).map(|&n| doc.node(n).line)
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
    /// The host it lives on (a `hosts:` name, or a legacy agent-level host).
    pub host: Option<String>,
    /// The agent-level ssh target of that host (only with `host`).
    pub ssh: Option<String>,
}

impl NewAgent {
    /// The entry's `key: value` lines, in roster order.
    fn fields(&self) -> Vec<String> {
        let mut out = vec![format!("name: {}", scalar_text(&self.name))];
        let mut field = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                out.push(format!("{k}: {}", scalar_text(v)));
            }
        };
        field("runtime", Some(self.runtime.program()));
        field("class", self.class.map(Class::as_str));
        field("model_hint", self.model.as_deref());
        field("working_directory", self.workdir.as_deref());
        field("host", self.host.as_deref());
        field("ssh", self.ssh.as_deref());
        field("socket", self.socket.as_deref());
        out
    }

    /// Whether `a` is the agent this entry describes.
    fn is(&self, a: &Agent) -> bool {
        a.name.as_str() == self.name
            && a.runtime == self.runtime
            && a.class == self.class
            && a.model_hint.as_ref().map(ModelHint::as_str) == self.model.as_deref()
            && a.working_directory.as_ref().map(Line::as_str) == self.workdir.as_deref()
            && a.host.as_ref().map(Host::as_str) == self.host.as_deref()
            && a.ssh.as_ref().map(SshTarget::as_str) == self.ssh.as_deref()
            && a.socket.as_ref().map(SocketName::as_str) == self.socket.as_deref()
    }
}

fn hand_edit(path: &Path, what: &str) -> Error {
    Error::Input(format!(
        "{}: {what} without disturbing the file's layout (the agents list is not a block list of mappings); make the change by hand",
        path.display()
    ))
}

/// Adds an agent at the end of `agents:`, keeping every other byte
/// (comments, line ends, indentation) as it was; the entry is indented like
/// the last one. The result is parsed again and must hold exactly the old
/// agents plus this one.
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
    let doc = Doc::parse(text).map_err(|e| bad(path, e.line, &e.msg))?;
    let what = format!("could not add {:?}", new.name);
    let fields = new.fields();
    let eol = doc.eol();
    let root = doc.root().ok_or_else(|| hand_edit(path, &what))?;
    if doc.node(root).flow {
        return Err(hand_edit(path, &what));
    }
    let block = |pad: &str| {
        let mut s = String::new();
        for (i, f) in fields.iter().enumerate() {
            s.push_str(pad);
            s.push_str(if i == 0 { "- " } else { "  " });
            s.push_str(f);
            s.push_str(eol);
        }
        s
    };
    let splices = match doc.get_key(root, "agents") {
        Some((_, seq)) if !doc.items(seq).is_empty() => {
            vec![doc
                .append_item(seq, &fields)
                .ok_or_else(|| hand_edit(path, &what))?]
        }
        // `agents: []` (or `agents:` with nothing under it): the new list
        // goes under the key, written as a block.
        Some((key, v)) => {
            let n = doc.node(v);
            let key_end = doc.line_end(doc.node(key).end);
            let mut out = Vec::new();
            if n.flow && (n.start >= key_end || n.end > key_end) {
                // `agents:` with `[]` on a later line, or a `[` … `]`
                // spread over lines: no layout to extend.
                return Err(hand_edit(path, &what));
            }
            if n.flow {
                // Drop the `[]` and the blanks up to a comment, if any.
                let rest = &text[n.end..key_end];
                let blanks = rest.len() - rest.trim_start_matches([' ', '\t']).len();
                let (from, upto) = if rest[blanks..].starts_with('#') {
                    (n.start, n.end + blanks)
                } else {
                    let before = &text[..n.start];
                    (before.trim_end_matches([' ', '\t']).len(), n.end + blanks)
                };
                out.push(Splice {
                    start: from,
                    end: upto,
                    with: String::new(),
                });
            } else if doc.scalar(v).is_some_and(|s| !s.is_empty())
                || n.start < key_end && n.end > key_end
            {
                return Err(hand_edit(path, &what));
            }
            let mut with = String::new();
            if !text[..key_end].ends_with('\n') {
                with.push_str(eol);
            }
            with.push_str(&block("  "));
            out.push(Splice {
                start: key_end,
                end: key_end,
                with,
            });
            out
        }
        None => {
            let end = text.len();
            let mut with = String::new();
            if !text.is_empty() && !text.ends_with('\n') {
                with.push_str(eol);
            }
            with.push_str("agents:");
            with.push_str(eol);
            with.push_str(&block("  "));
            vec![Splice {
                start: end,
                end,
                with,
            }]
        }
    };
    let result = yamledit::apply(text, splices);
    let check = parse(&result, path)?;
    let (old, last) = check.agents.split_at(check.agents.len().saturating_sub(1));
    if old != roster.agents.as_slice() || !last.first().is_some_and(|a| new.is(a)) {
        return Err(hand_edit(path, &what));
    }
    Ok(result)
}

/// Removes agent `name` (the lines of its entry only) from the roster text,
/// keeping every other byte; the last agent leaves `agents: []`. The result
/// is parsed again and must hold the other agents, unchanged.
pub fn remove_agent(text: &str, path: &Path, name: &str) -> Result<String> {
    let roster = parse(text, path)?;
    roster.agent(name, path)?;
    let idx = roster
        .agents
        .iter()
        .position(|a| a.name.as_str() == name)
        .expect("found above");
    let doc = Doc::parse(text).map_err(|e| bad(path, e.line, &e.msg))?;
    let what = format!("could not remove {name:?}");
    let (key, seq) = doc
        .root()
        .and_then(|r| doc.get_key(r, "agents"))
        .ok_or_else(|| hand_edit(path, &what))?;
    let mut splices = vec![doc
        .remove_item(seq, idx)
        .ok_or_else(|| hand_edit(path, &what))?];
    if roster.agents.len() == 1 {
        let k = doc.node(key).end;
        let colon = text[k..]
            .find(':')
            .map(|i| k + i + 1)
            .ok_or_else(|| hand_edit(path, &what))?;
        splices.push(Splice {
            start: colon,
            end: colon,
            with: " []".to_string(),
        });
    }
    let result = yamledit::apply(text, splices);
    let check = parse(&result, path)?;
    let mut want = roster.agents.clone();
    want.remove(idx);
    if check.agents != want {
        return Err(hand_edit(path, &what));
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
        assert!(
            e.contains("roster.yaml:4: agents[0]: unknown field `runtme`"),
            "{e}"
        );

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
            host: None,
            ssh: None,
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
                host: None,
                ssh: None,
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

    fn agent(name: &str) -> NewAgent {
        NewAgent {
            name: name.into(),
            runtime: Runtime::Pi,
            class: None,
            model: None,
            workdir: None,
            socket: None,
            host: None,
            ssh: None,
        }
    }

    /// A FIFO or device as the roster used to block (completion hung the
    /// shell) or grow without bound: now a one-line refusal.
    #[test]
    fn a_roster_that_is_not_a_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for p in [fifo.as_path(), Path::new("/dev/zero")] {
            let e = read(p).unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; (MAX_ROSTER_BYTES + 1) as usize]).unwrap();
        assert!(read(&big).unwrap_err().to_string().contains("too large"));
    }

    /// `agents:` with its `[]` on a later line (or a `[` … `]` over lines)
    /// used to panic slicing the text; now a one-line refusal.
    #[test]
    fn add_to_an_empty_flow_list_on_its_own_line_refuses_without_a_panic() {
        for text in [
            "version: 1\nagents:\n  []\n",
            "version: 1\nagents: [\n  ]\n",
        ] {
            let e = add_agent(text, &p(), &agent("b")).unwrap_err().to_string();
            assert!(e.contains("make the change by hand"), "{e}");
        }
    }

    /// An agent whose last field is empty (`class:`) used to be refused:
    /// the empty value's span sits before the colon.
    #[test]
    fn remove_an_agent_whose_last_field_is_empty() {
        let text = "version: 1\nagents:\n  - name: a\n    runtime: pi\n  - name: b\n    runtime: pi\n    class:\n";
        let out = remove_agent(text, &p(), "b").unwrap();
        assert_eq!(out, "version: 1\nagents:\n  - name: a\n    runtime: pi\n");
    }

    /// `fleet add` used to join the lines with `\n`, turning a CRLF roster
    /// into LF.
    #[test]
    fn add_and_remove_keep_crlf_and_every_other_byte() {
        let crlf = GOOD.replace('\n', "\r\n");
        let out = add_agent(&crlf, &p(), &agent("c2")).unwrap();
        assert_eq!(
            out,
            crlf.replace(
                "    runtime: claude\r\n",
                "    runtime: claude\r\n  - name: c2\r\n    runtime: pi\r\n"
            )
        );
        let back = remove_agent(&out, &p(), "c2").unwrap();
        assert_eq!(back, crlf);
        // No line end after the last line, a BOM, tabs in comments.
        let t = "\u{feff}version: 1\r\nagents:\r\n- name: a\t# \tx\r\n  runtime: pi";
        let out = add_agent(t, &p(), &agent("b")).unwrap();
        assert_eq!(out, format!("{t}\r\n- name: b\r\n  runtime: pi\r\n"));
    }

    #[test]
    fn add_writes_host_and_ssh_and_checks_them() {
        let mut new = agent("r1");
        new.host = Some("build1".into());
        new.ssh = Some("ops@build1".into());
        let out = add_agent("version: 1\nagents: []\n", &p(), &new).unwrap();
        assert_eq!(
            out,
            "version: 1\nagents:\n  - name: r1\n    runtime: pi\n    host: build1\n    ssh: ops@build1\n"
        );
        let r = parse(&out, &p()).unwrap();
        assert_eq!(r.host_of(&r.agents[0]).unwrap().target, "ops@build1");
        // A host the `hosts:` map does not name, without --ssh: refused,
        // with the roster's own error.
        let mut new = agent("r2");
        new.host = Some("b9".into());
        let e = add_agent(SHARED, &p(), &new).unwrap_err().to_string();
        assert!(e.contains("unknown host \"b9\""), "{e}");
        new.host = Some("build2".into());
        let out = add_agent(SHARED, &p(), &new).unwrap();
        assert!(
            out.ends_with("    host: BUILD2\n  - name: r2\n    runtime: pi\n    host: build2\n"),
            "{out}"
        );
    }

    #[test]
    fn add_under_an_empty_key_or_without_one() {
        let out = add_agent("version: 1\nagents: # none\n# end\n", &p(), &agent("a"));
        // `agents:` with nothing under it is null, which the roster refuses.
        assert!(out.is_err());
        let out = add_agent("version: 1\nagents: []", &p(), &agent("a")).unwrap();
        assert_eq!(out, "version: 1\nagents:\n  - name: a\n    runtime: pi\n");
        let out = add_agent(
            "# only\r\nversion: 1\r\nagents: [ ]\r\ntmux: {}\r\n",
            &p(),
            &agent("a"),
        )
        .unwrap();
        assert_eq!(
            out,
            "# only\r\nversion: 1\r\nagents:\r\n  - name: a\r\n    runtime: pi\r\ntmux: {}\r\n"
        );
    }

    #[test]
    fn removing_the_last_agent_leaves_an_empty_list() {
        let out = remove_agent(
            "version: 1\nagents: # mine\n  - name: a\n    runtime: pi\n# end\n",
            &p(),
            "a",
        )
        .unwrap();
        assert_eq!(out, "version: 1\nagents: [] # mine\n# end\n");
        assert!(parse(&out, &p()).unwrap().agents.is_empty());
    }

    #[test]
    fn flow_lists_anchors_and_quoted_keys_are_read_and_flow_lists_left_alone() {
        let t = "version: 1\n\"tmux\": {socket_name: &s s1}\nagents: [{name: a, runtime: pi, socket: *s}]\n";
        let r = parse(t, &p()).unwrap();
        assert_eq!(r.agent_socket(&r.agents[0]), Some("s1"));
        let e = add_agent(t, &p(), &agent("b")).unwrap_err().to_string();
        assert!(e.contains("by hand"), "{e}");
        let e = remove_agent(t, &p(), "a").unwrap_err().to_string();
        assert!(e.contains("by hand"), "{e}");
        let e = parse("version: 1\nagents: []\nagents: []\n", &p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("roster.yaml:3: duplicate key"), "{e}");
    }

    #[test]
    fn edits_refuse_an_invalid_roster() {
        let bad = "version: 1\nagents:\n  - name: a\n    runtime: nope\n";
        assert!(remove_agent(bad, &p(), "a").is_err());
    }
}
