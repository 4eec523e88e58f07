//! `mosaic fleet ps` (SPEC §8, §8.1): gathers one snapshot of the fleet —
//! one `tmux list-panes -a` per socket, one multi-unit `systemctl show`, and
//! the rest from `/proc`, the env files and the heartbeat run dir — then joins
//! it with the roster in a pure function ([`join`]) into one record per agent
//! (plus one per unmanaged session), flagged `DRIFT`, `BOOT-ENABLE`, `STALE`,
//! `DEAD`, `UNMANAGED`. The number of processes started does not depend on the
//! number of agents.

use super::envfile;
use super::roster::{Agent, Roster};
use super::tmux::{self, Pane};
use crate::error::{Error, Result};
use crate::runner;
use crate::systemd::{self, UnitState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The `host` of the controller's agents in a report made on a host.
pub const CONTROLLER: &str = "(controller)";

/// Default `--stale-after`, seconds (SPEC §8.1).
pub const DEFAULT_STALE_AFTER: u64 = 60;

/// A heartbeat file (protocol v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Protocol version (1).
    pub v: u32,
    /// Agent name.
    pub agent: String,
    /// Unix seconds of the beat.
    pub ts: u64,
    /// The runtime's pid.
    pub pid: u32,
    /// `idle` or `busy`.
    pub state: String,
}

/// Parses a heartbeat for `agent`; an error says what is wrong with it.
pub fn parse_heartbeat(text: &str, agent: &str) -> std::result::Result<Heartbeat, String> {
    let hb: Heartbeat =
        serde_json::from_str(text.trim()).map_err(|e| format!("unreadable heartbeat: {e}"))?;
    if hb.v != 1 {
        return Err(format!("heartbeat protocol v{} (expected v1)", hb.v));
    }
    if hb.agent != agent {
        return Err(format!("heartbeat names agent {:?}", hb.agent));
    }
    Ok(hb)
}

/// One process of `/proc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proc {
    /// pid.
    pub pid: u32,
    /// Parent pid.
    pub ppid: u32,
    /// `/proc/PID/comm` (the kernel's 15-character name).
    pub comm: String,
    /// The command line.
    pub args: Vec<String>,
}

/// pid → process, read once from `/proc`.
pub type ProcTable = BTreeMap<u32, Proc>;

/// Reads every process's parent and name from `/proc` (no subprocess).
/// Command lines are filled in only for `wanted` trees (see [`fill_args`]).
pub fn read_proc() -> ProcTable {
    let mut t = ProcTable::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return t;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        t.insert(
            pid,
            Proc {
                pid,
                ppid,
                comm,
                args: Vec::new(),
            },
        );
    }
    t
}

/// Reads the command lines of `pids`.
pub fn fill_args(t: &mut ProcTable, pids: &[u32]) {
    for pid in pids {
        if let Some(p) = t.get_mut(pid) {
            if let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                p.args = raw
                    .split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
            }
        }
    }
}

/// `pid` and all its descendants, parents first.
pub fn tree(t: &ProcTable, pid: u32) -> Vec<u32> {
    if !t.contains_key(&pid) {
        return Vec::new();
    }
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in t.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            for &k in c {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        i += 1;
    }
    out
}

/// The program an agent is expected to run: the basename of the first word
/// of `MOSAIC_AGENT_COMMAND`'s final command (after shell prefixes such as
/// `cd DIR &&`, and skipping launchers such as `exec`, `env`, `nice`,
/// `nohup`, their `-options`, and `VAR=value`) when declared, else the
/// runtime's program.
pub fn expected_program(a: &Agent, declared: Option<&str>) -> String {
    match declared.and_then(crate::command::program_of) {
        Some(p) => p.to_string(),
        None => a.runtime.program().to_string(),
    }
}

/// Does a pane showing `current` (tmux's `pane_current_command`) run the
/// agent's runtime? The adapter's process classification decides (pi shows
/// `node` while starting, then `pi`; codex shows `node`), as well as the
/// expected program itself.
pub fn runtime_matches(a: &Agent, current: &str, expected: &str) -> bool {
    if current == expected {
        return true;
    }
    crate::adapters::Runtime::from_name(a.runtime.program())
        .is_some_and(|rt| rt.process().classify(current) != crate::adapters::PaneCommand::Other)
}

/// Does process `p` run `program`?
pub fn runs(p: &Proc, program: &str) -> bool {
    let comm_match = p.comm == program
        || (program.len() >= 15 && program.starts_with(&p.comm) && p.comm.len() >= 15);
    comm_match
        || p.args
            .first()
            .is_some_and(|a| crate::command::basename(a) == program)
        || p.args
            .get(1)
            .is_some_and(|a| crate::command::basename(a) == program)
}

/// What an agent's processes use, read from `/proc` (no subprocess): the
/// processes of its unit's cgroup (`cgroup.procs` of systemd's
/// `ControlGroup`), or the pane's process tree where that cannot be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Seconds since the pane's process (the runtime) started: since the
    /// last restart.
    pub uptime_seconds: Option<u64>,
    /// CPU time (user + system) of those processes, milliseconds.
    pub cpu_ms: u64,
    /// Resident memory of those processes, bytes.
    pub rss_bytes: u64,
}

fn proc_stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name, from 3 (state) on; numbers parse, the state not.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// The pids of the cgroup `control_group` (systemd's `ControlGroup=`), from
/// the unified hierarchy (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid host); `None` when it cannot be read.
pub fn cgroup_pids(control_group: &str) -> Option<Vec<u32>> {
    if control_group.is_empty() || control_group.contains("..") {
        return None;
    }
    let rel = control_group.trim_start_matches('/');
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let Ok(text) = std::fs::read_to_string(format!("{root}/{rel}/cgroup.procs")) else {
            continue;
        };
        return Some(text.lines().filter_map(|l| l.trim().parse().ok()).collect());
    }
    None
}

/// Sums CPU time and resident memory of `pids` and the uptime of `main`.
pub fn usage_of(main: u32, pids: &[u32]) -> Usage {
    // SAFETY: sysconf only reads a configuration value.
    let (tick, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let tick = u64::try_from(tick).unwrap_or(100).max(1);
    let page = u64::try_from(page).unwrap_or(4096);
    let boot_ticks = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|up| (up * tick as f64) as u64);
    let mut u = Usage::default();
    for &pid in pids {
        // After the name: [0]=state [11]=utime [12]=stime [19]=starttime.
        let Some(f) = proc_stat_fields(pid) else {
            continue;
        };
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        u.cpu_ms += ticks * 1000 / tick;
        if let Some(rss) = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            u.rss_bytes += rss * page;
        }
        if pid == main {
            if let (Some(now), Some(&start)) = (boot_ticks, f.get(19)) {
                u.uptime_seconds = Some(now.saturating_sub(start) / tick);
            }
        }
    }
    u
}

/// Everything `fleet ps` reads, gathered once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Unix seconds now.
    pub now: u64,
    /// Socket → its panes (`None` key = the default server); a socket with no
    /// server maps to an empty list.
    pub panes: BTreeMap<Option<String>, Vec<Pane>>,
    /// Unit → state; `None` when systemd could not be asked.
    pub units: Option<BTreeMap<String, UnitState>>,
    /// Agent → declared `MOSAIC_AGENT_COMMAND`.
    pub commands: BTreeMap<String, String>,
    /// Agent → heartbeat (or why it is unusable); absent = no file.
    pub heartbeats: BTreeMap<String, std::result::Result<Heartbeat, String>>,
    /// `/proc`.
    pub procs: ProcTable,
    /// This host's name.
    pub hostname: String,
    /// Problems met while gathering (printed as warnings).
    pub warnings: Vec<String>,
    /// The pane logs that exist, by agent (`H/fleet/run/NAME.log`).
    pub logs: BTreeMap<String, String>,
    /// Agent → runtime restarts by its supervisor (`H/fleet/run/NAME.restarts`).
    pub restarts: BTreeMap<String, u64>,
    /// Agent → what its processes use (live agents only).
    pub usage: BTreeMap<String, Usage>,
    /// Agent → its pane's visible screen (live local agents, full snapshots).
    pub screens: BTreeMap<String, String>,
}

/// The heartbeat as shown in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BeatView {
    /// Unix seconds of the last beat.
    pub ts: u64,
    /// `now - ts`.
    pub age_seconds: u64,
    /// pid in the beat.
    pub pid: u32,
    /// `idle` / `busy`.
    pub state: String,
    /// `age_seconds <= stale_after`.
    pub fresh: bool,
}

/// One record of `fleet ps` (see docs/fleet.md for the JSON shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Agent (or unmanaged session) name.
    pub name: String,
    /// In the roster.
    pub managed: bool,
    /// Tenant tag.
    pub tenant_id: String,
    /// Host the agent lives on.
    pub host: String,
    /// Lives on another host.
    pub remote: bool,
    /// For a remote agent, how its host answered (`ok`, `UNREACHABLE`,
    /// `TIMEOUT`, `AUTH`, `NOT-INSTALLED`); `null` for this machine's agents
    /// and agents no host here can observe.
    pub host_status: Option<String>,
    /// Roster runtime.
    pub runtime: Option<String>,
    /// Roster class.
    pub class: Option<String>,
    /// tmux socket (`null` = default server).
    pub socket: Option<String>,
    /// systemd unit.
    pub unit: Option<String>,
    /// Unit active (`null` = unknown).
    pub unit_active: Option<bool>,
    /// Unit enabled for boot (`null` = unknown).
    pub unit_enabled: Option<bool>,
    /// systemd's ActiveState.
    pub active_state: Option<String>,
    /// systemd's UnitFileState.
    pub unit_file_state: Option<String>,
    /// The exact session exists.
    pub session: bool,
    /// pid of the pane's process.
    pub pane_pid: Option<u32>,
    /// The pane's process is alive.
    pub pane_alive: bool,
    /// tmux's pane_current_command.
    pub current_command: Option<String>,
    /// Seconds since the window's last activity.
    pub idle_seconds: Option<u64>,
    /// What the pane should run (runtime or declared command).
    pub expected_command: Option<String>,
    /// The pane's process tree, parents first.
    pub processes: Vec<Proc>,
    /// The last heartbeat.
    pub heartbeat: Option<BeatView>,
    /// Why there is no usable heartbeat.
    pub heartbeat_problem: Option<String>,
    /// `running`, `stopped`, `dead`, `unknown` (its host did not answer),
    /// `remote` (not observable from here) or `unmanaged`.
    pub state: String,
    /// Running with a fresh heartbeat and no flag.
    pub healthy: bool,
    /// `DRIFT`, `BOOT-ENABLE`, `STALE`, `DEAD`, `UNMANAGED`.
    pub flags: Vec<String>,
    /// What the runtime's screen shows, classified by its adapter: `idle`
    /// (at its prompt), `busy`, `input` (text in the box), `prompt` (a
    /// permission prompt), `dialog` or `unknown`; null when not read.
    pub screen: Option<Screen>,
    /// Seconds since the runtime (the pane's process) last started.
    pub uptime_seconds: Option<u64>,
    /// Times the supervisor restarted the runtime since the unit started.
    pub restarts: Option<u64>,
    /// CPU time used by the agent's processes (its unit's cgroup), ms.
    pub cpu_ms: Option<u64>,
    /// Resident memory of the agent's processes (its unit's cgroup), bytes.
    pub rss_bytes: Option<u64>,
    /// The pane log (`H/fleet/run/NAME.log`) of a DEAD agent: its last words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// The holder, as shown by `fleet ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderView {
    /// Unit name.
    pub unit: String,
    /// Unit active (`null` = unknown).
    pub unit_active: Option<bool>,
    /// Unit enabled (`null` = unknown).
    pub unit_enabled: Option<bool>,
    /// Socket.
    pub socket: Option<String>,
    /// Holder session name.
    pub session: String,
    /// The session exists.
    pub session_present: bool,
}

/// The whole `fleet ps` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Shape version of this document.
    pub version: u32,
    /// Roster file.
    pub roster: String,
    /// Tenant tag.
    pub tenant_id: String,
    /// This host.
    pub host: String,
    /// Unix seconds of the snapshot.
    pub now: u64,
    /// Heartbeat age limit, seconds.
    pub stale_after: u64,
    /// The holder.
    pub holder: HolderView,
    /// One record per roster agent, in roster order, then unmanaged sessions.
    pub agents: Vec<Record>,
    /// One entry per other host the roster's agents live on.
    pub hosts: Vec<HostView>,
    /// Problems met while gathering.
    pub warnings: Vec<String>,
}

/// One other host, as `fleet ps` saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostView {
    /// The roster's name for it.
    pub name: String,
    /// ssh target.
    pub ssh: String,
    /// ssh port, if the roster sets one.
    pub port: Option<u16>,
    /// `ok`, `UNREACHABLE`, `TIMEOUT`, `AUTH` or `NOT-INSTALLED`.
    pub status: String,
    /// Seconds the call took.
    pub seconds: f64,
    /// One line, when the status is not `ok`.
    pub error: Option<String>,
    /// The host's own name (`uname -n`), when it answered.
    pub hostname: Option<String>,
    /// The host's clock, when it answered.
    pub now: Option<u64>,
    /// Its holder, when it answered.
    pub holder: Option<HolderView>,
    /// Its roster agents.
    pub agents: usize,
    /// Problems met on that host.
    pub warnings: Vec<String>,
}

impl Eq for HostView {}

fn unit_fields(
    s: &Snapshot,
    unit: &str,
) -> (Option<bool>, Option<bool>, Option<String>, Option<String>) {
    match s.units.as_ref().and_then(|u| u.get(unit)) {
        Some(u) => (
            Some(u.active()),
            Some(u.enabled()),
            Some(u.active_state.clone()),
            Some(u.unit_file_state.clone()),
        ),
        None => (None, None, None, None),
    }
}

fn find_pane<'a>(s: &'a Snapshot, socket: Option<&str>, session: &str) -> Option<&'a Pane> {
    let panes = s.panes.get(&socket.map(str::to_string))?;
    let mut of_session = panes.iter().filter(|p| p.session == session);
    let all: Vec<&Pane> = of_session.by_ref().collect();
    all.iter()
        .find(|p| p.window == 0 && p.pane == 0)
        .or(all.first())
        .copied()
}

/// What `fleet ps` says a runtime's screen shows (its adapter's
/// [`crate::adapters::ScreenState`], without the details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Screen {
    /// At its prompt, the input box empty.
    Idle,
    /// Working on a turn.
    Busy,
    /// Text in the input box.
    Input,
    /// A permission prompt.
    Prompt,
    /// Another dialog (onboarding, login, …).
    Dialog,
    /// Nothing its adapter recognises.
    Unknown,
}

impl Screen {
    /// The word for a screen state.
    pub fn of(s: &crate::adapters::ScreenState) -> Screen {
        use crate::adapters::ScreenState as S;
        match s {
            S::Ready => Screen::Idle,
            S::Busy => Screen::Busy,
            S::InputPending { .. } => Screen::Input,
            S::PermissionPrompt { .. } => Screen::Prompt,
            S::Dialog { .. } => Screen::Dialog,
            S::Unknown => Screen::Unknown,
        }
    }

    /// As `fleet ps` prints it (and `--json` spells it).
    pub fn as_str(self) -> &'static str {
        match self {
            Screen::Idle => "idle",
            Screen::Busy => "busy",
            Screen::Input => "input",
            Screen::Prompt => "prompt",
            Screen::Dialog => "dialog",
            Screen::Unknown => "unknown",
        }
    }
}

/// Joins the roster with a snapshot (pure).
pub fn join(roster: &Roster, roster_path: &Path, s: &Snapshot, stale_after: u64) -> Report {
    let tenant = roster.tenant();
    let mut agents = Vec::new();
    for a in &roster.agents {
        let name = a.name.as_str().to_string();
        let socket = roster.agent_socket(a).map(str::to_string);
        let unit = systemd::agent_unit(&name);
        let base = Record {
            name: name.clone(),
            managed: true,
            tenant_id: roster.agent_tenant(a),
            host: match a.host_name(roster) {
                Some(h) => h.to_string(),
                // Seen from a host, an agent without a host is the controller's.
                None if roster.me.is_some() => CONTROLLER.to_string(),
                None => s.hostname.clone(),
            },
            remote: !a.is_local(),
            host_status: None,
            runtime: Some(a.runtime.program().to_string()),
            class: a.class.map(|c| c.as_str().to_string()),
            socket: socket.clone(),
            unit: Some(unit.clone()),
            unit_active: None,
            unit_enabled: None,
            active_state: None,
            unit_file_state: None,
            session: false,
            pane_pid: None,
            pane_alive: false,
            current_command: None,
            idle_seconds: None,
            expected_command: None,
            processes: Vec::new(),
            heartbeat: None,
            heartbeat_problem: None,
            state: "remote".into(),
            healthy: false,
            flags: Vec::new(),
            screen: None,
            uptime_seconds: None,
            restarts: None,
            cpu_ms: None,
            rss_bytes: None,
            log: None,
        };
        if base.remote {
            agents.push(base);
            continue;
        }
        let mut r = base;
        (
            r.unit_active,
            r.unit_enabled,
            r.active_state,
            r.unit_file_state,
        ) = unit_fields(s, &unit);
        let expected = expected_program(a, s.commands.get(&name).map(String::as_str));
        r.expected_command = Some(expected.clone());
        let pane = find_pane(s, socket.as_deref(), &name);
        r.session = pane.is_some();
        if let Some(p) = pane {
            r.pane_pid = Some(p.pid);
            r.current_command = Some(p.command.clone());
            r.idle_seconds = Some(s.now.saturating_sub(p.activity));
            r.pane_alive = !p.dead && s.procs.contains_key(&p.pid);
            if r.pane_alive {
                r.processes = tree(&s.procs, p.pid)
                    .iter()
                    .filter_map(|pid| s.procs.get(pid).cloned())
                    .collect();
            }
        }
        r.restarts = s.restarts.get(&name).copied();
        if let (true, Some(screen)) = (r.pane_alive, s.screens.get(&name)) {
            let rt = s
                .commands
                .get(&name)
                .and_then(|c| crate::adapters::Runtime::for_command(c))
                .or_else(|| crate::adapters::Runtime::from_name(a.runtime.program()));
            r.screen = rt.map(|rt| Screen::of(&rt.screen_state(screen)));
        }
        if r.pane_alive {
            if let Some(u) = s.usage.get(&name) {
                r.uptime_seconds = u.uptime_seconds;
                r.cpu_ms = Some(u.cpu_ms);
                r.rss_bytes = Some(u.rss_bytes);
            }
        }
        match s.heartbeats.get(&name) {
            Some(Ok(hb)) => {
                let age = s.now.saturating_sub(hb.ts);
                r.heartbeat = Some(BeatView {
                    ts: hb.ts,
                    age_seconds: age,
                    pid: hb.pid,
                    state: hb.state.clone(),
                    fresh: age <= stale_after,
                });
            }
            Some(Err(e)) => r.heartbeat_problem = Some(e.clone()),
            None => r.heartbeat_problem = Some("no heartbeat file".into()),
        }
        r.state = if r.pane_alive {
            "running"
        } else if r.session || r.unit_active == Some(true) {
            "dead"
        } else {
            "stopped"
        }
        .into();
        if r.state == "running" {
            let runs_expected = r
                .current_command
                .as_deref()
                .is_some_and(|c| runtime_matches(a, c, &expected))
                || r.processes.iter().any(|p| runs(p, &expected));
            if !runs_expected {
                r.flags.push("DRIFT".into());
            }
        }
        if r.unit_active == Some(true) && r.unit_enabled == Some(false) {
            r.flags.push("BOOT-ENABLE".into());
        }
        if r.state == "running" && !r.heartbeat.as_ref().is_some_and(|h| h.fresh) {
            r.flags.push("STALE".into());
        }
        if r.state == "dead" {
            r.flags.push("DEAD".into());
            r.log = s.logs.get(&name).cloned();
        }
        r.healthy = r.state == "running" && r.flags.is_empty();
        agents.push(r);
    }

    // Sessions on a named fleet socket that no roster agent claims.
    let holder_socket = roster.socket().map(str::to_string);
    for (socket, panes) in &s.panes {
        let Some(sock) = socket else { continue }; // the default server is the operator's
        let claimed: BTreeSet<&str> = roster
            .agents
            .iter()
            .filter(|a| a.is_local() && roster.agent_socket(a) == Some(sock.as_str()))
            .map(|a| a.name.as_str())
            .collect();
        let mut seen = BTreeSet::new();
        for p in panes {
            let sess = p.session.as_str();
            if claimed.contains(sess) || !seen.insert(sess) {
                continue;
            }
            if socket == &holder_socket && sess == roster.holder_session() {
                continue;
            }
            let viewer =
                claimed.contains(p.group.as_str()) && tmux::viewer_pid(&p.group, sess).is_some();
            if viewer {
                continue;
            }
            let pane = find_pane(s, Some(sock), sess).unwrap_or(p);
            agents.push(Record {
                name: sess.to_string(),
                managed: false,
                tenant_id: tenant.clone(),
                host: roster
                    .me_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| s.hostname.clone()),
                remote: false,
                host_status: None,
                runtime: None,
                class: None,
                socket: Some(sock.clone()),
                unit: None,
                unit_active: None,
                unit_enabled: None,
                active_state: None,
                unit_file_state: None,
                session: true,
                pane_pid: Some(pane.pid),
                pane_alive: !pane.dead && s.procs.contains_key(&pane.pid),
                current_command: Some(pane.command.clone()),
                idle_seconds: Some(s.now.saturating_sub(pane.activity)),
                expected_command: None,
                processes: Vec::new(),
                heartbeat: None,
                heartbeat_problem: None,
                state: "unmanaged".into(),
                healthy: false,
                flags: vec!["UNMANAGED".into()],
                screen: None,
                uptime_seconds: None,
                restarts: None,
                cpu_ms: None,
                rss_bytes: None,
                log: None,
            });
        }
    }

    let (h_active, h_enabled, _, _) = unit_fields(s, systemd::HOLDER_UNIT);
    let holder = HolderView {
        unit: systemd::HOLDER_UNIT.to_string(),
        unit_active: h_active,
        unit_enabled: h_enabled,
        socket: holder_socket.clone(),
        session: roster.holder_session().to_string(),
        session_present: find_pane(s, holder_socket.as_deref(), roster.holder_session()).is_some(),
    };
    Report {
        version: 1,
        roster: roster_path.display().to_string(),
        tenant_id: tenant,
        host: s.hostname.clone(),
        now: s.now,
        stale_after,
        holder,
        agents,
        hosts: Vec::new(),
        warnings: s.warnings.clone(),
    }
}

/// What one host's call gave: its snapshot, or why there is none.
#[derive(Debug, Clone)]
pub struct HostResult {
    /// The host (lower-cased roster key).
    pub key: String,
    /// The snapshot, or the host's status and one line.
    pub outcome: std::result::Result<Snapshot, crate::ssh::HostError>,
    /// Seconds the call took.
    pub seconds: f64,
}

/// Joins the remote snapshots into the local report (pure): each host's
/// agents are joined by the same [`join`] as local ones (the roster seen
/// from that host), in roster order; its unmanaged sessions follow the
/// local ones; agents on a host that did not answer are `unknown` with the
/// host's status as their flag, never "stopped".
pub fn join_hosts(
    roster: &Roster,
    roster_path: &Path,
    mut local: Report,
    results: &[HostResult],
    stale_after: u64,
) -> Report {
    for res in results {
        let Some(h) = roster.host(&res.key) else {
            continue;
        };
        let mut view = HostView {
            name: h.name.clone(),
            ssh: h.target.clone(),
            port: h.port,
            status: "ok".into(),
            seconds: (res.seconds * 100.0).round() / 100.0,
            error: None,
            hostname: None,
            now: None,
            holder: None,
            agents: roster.agents_on(&res.key).count(),
            warnings: Vec::new(),
        };
        match &res.outcome {
            Ok(snap) => {
                let mut seen = roster.clone();
                // The key is a resolved host: set_me cannot fail.
                let _ = seen.set_me(Some(&res.key), roster_path);
                let there = join(&seen, roster_path, snap, stale_after);
                for r in there.agents {
                    let on_host = roster
                        .agents_on(&res.key)
                        .any(|a| a.name.as_str() == r.name);
                    if r.managed && !on_host {
                        continue;
                    }
                    if r.managed {
                        if let Some(slot) = local
                            .agents
                            .iter_mut()
                            .find(|x| x.managed && x.name == r.name)
                        {
                            *slot = Record {
                                remote: true,
                                host_status: Some("ok".into()),
                                ..r
                            };
                        }
                    } else {
                        local.agents.push(Record {
                            remote: true,
                            host: h.name.clone(),
                            host_status: Some("ok".into()),
                            ..r
                        });
                    }
                }
                view.hostname = Some(snap.hostname.clone());
                view.now = Some(snap.now);
                view.holder = Some(there.holder);
                view.warnings = there.warnings;
            }
            Err(e) => {
                view.status = e.status.as_str().into();
                view.error = Some(e.message.clone());
                for slot in local.agents.iter_mut().filter(|x| {
                    x.managed
                        && roster
                            .agents_on(&res.key)
                            .any(|a| a.name.as_str() == x.name)
                }) {
                    slot.state = "unknown".into();
                    slot.host_status = Some(e.status.as_str().into());
                    slot.flags = vec![e.status.as_str().into()];
                    slot.healthy = false;
                }
            }
        }
        local.hosts.push(view);
    }
    // Managed records first (roster order), then unmanaged ones.
    let (managed, unmanaged): (Vec<Record>, Vec<Record>) =
        local.agents.into_iter().partition(|r| r.managed);
    local.agents = managed;
    local.agents.extend(unmanaged);
    local
}

/// Calls every other host's snapshot script in parallel (one thread and one
/// ssh connection per host), each with the ssh deadline.
pub fn gather_hosts(roster: &Roster) -> Vec<HostResult> {
    let hosts = roster.remote_hosts();
    let deadline = crate::ssh::call_timeout();
    let script = crate::hosts::ps_script();
    std::thread::scope(|sc| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let key = h.name.to_ascii_lowercase();
                let words = crate::hosts::ps_words(roster, &key);
                let dest = crate::ssh::Dest::from(*h);
                let script = &script;
                sc.spawn(move || {
                    let started = std::time::Instant::now();
                    let outcome =
                        crate::ssh::call(&dest, script, &words, deadline).and_then(|reply| {
                            crate::hosts::parse_snapshot(&reply.stdout).map_err(|m| {
                                crate::ssh::HostError {
                                    status: crate::ssh::HostStatus::NotInstalled,
                                    message: format!(
                                        "host {} ({}): {m}{}",
                                        dest.name,
                                        dest.target,
                                        crate::ssh::useful_line(&reply.stderr)
                                            .map(|l| format!(" ({l})"))
                                            .unwrap_or_default()
                                    ),
                                }
                            })
                        });
                    let outcome = outcome.map(|mut snap| {
                        // Fill only the pane trees' command lines, as locally.
                        let roots: Vec<u32> =
                            snap.panes.values().flatten().map(|p| p.pid).collect();
                        let mut keep = std::collections::BTreeSet::new();
                        for r in roots {
                            keep.extend(tree(&snap.procs, r));
                        }
                        for (pid, p) in snap.procs.iter_mut() {
                            if !keep.contains(pid) {
                                p.args.clear();
                            }
                        }
                        snap
                    });
                    HostResult {
                        key,
                        outcome,
                        seconds: started.elapsed().as_secs_f64(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("host thread"))
            .collect()
    })
}

/// The local sockets the roster uses (holder's and every local agent's).
pub fn local_sockets(roster: &Roster) -> BTreeSet<Option<String>> {
    let mut set = BTreeSet::new();
    set.insert(roster.socket().map(str::to_string));
    for a in roster.agents.iter().filter(|a| a.is_local()) {
        set.insert(roster.agent_socket(a).map(str::to_string));
    }
    set
}

/// Lists every pane on `socket` (one tmux call). No server = empty.
pub fn panes_on(socket: Option<&str>) -> Result<(Vec<Pane>, bool)> {
    let argv = tmux::list_panes_all(socket);
    let out = runner::output(&argv)?;
    if out.status.success() {
        return Ok((
            tmux::parse_panes(&String::from_utf8_lossy(&out.stdout)),
            true,
        ));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if tmux::is_no_server(&err) {
        return Ok((Vec::new(), false));
    }
    Err(Error::Input(format!(
        "`{}` failed: {}",
        runner::display(&argv),
        runner::first_line(&out)
    )))
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One `capture-pane` list per socket for the live local agents' panes
/// ([`tmux::capture_screens`]); a socket whose call fails (a pane went away
/// in between) keeps the screens read before the failure.
fn read_screens(s: &mut Snapshot, roster: &Roster) {
    let mut by_socket: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for a in roster.agents.iter().filter(|a| a.is_local()) {
        let sock = roster.agent_socket(a);
        if find_pane(s, sock, a.name.as_str()).is_some_and(|p| !p.dead) {
            by_socket.entry(sock).or_default().push(a.name.as_str());
        }
    }
    for (sock, names) in by_socket {
        let Ok(out) = runner::output(&tmux::capture_screens(sock, &names)) else {
            continue;
        };
        for (n, screen) in tmux::parse_screens(&names, &String::from_utf8_lossy(&out.stdout)) {
            s.screens.insert(n.to_string(), screen);
        }
    }
}

/// Gathers a snapshot: one tmux call per socket, one systemctl call and one
/// screen capture per socket with live agents (when `with_units`), the rest
/// from files.
pub fn snapshot(home: &Path, roster: &Roster, with_units: bool) -> Result<Snapshot> {
    let mut s = Snapshot {
        now: now(),
        hostname: super::roster::local_hostname(),
        ..Default::default()
    };
    let mut any_pane = false;
    for socket in local_sockets(roster) {
        let (panes, _server) = panes_on(socket.as_deref())?;
        any_pane |= !panes.is_empty();
        s.panes.insert(socket, panes);
    }
    if with_units {
        let mut units = vec![systemd::HOLDER_UNIT.to_string()];
        units.extend(
            roster
                .agents
                .iter()
                .filter(|a| a.is_local())
                .map(|a| systemd::agent_unit(a.name.as_str())),
        );
        match systemd::show(&units) {
            Ok(u) => s.units = Some(u),
            Err(e) => s.warnings.push(format!("unit states unknown: {e}")),
        }
    }
    for a in roster.agents.iter().filter(|a| a.is_local()) {
        let name = a.name.as_str();
        let env = home.join("fleet/agents").join(format!("{name}.env"));
        if let Ok(text) = std::fs::read_to_string(&env) {
            if let Some(c) = envfile::parse(&text)
                .get("MOSAIC_AGENT_COMMAND")
                .filter(|c| !c.trim().is_empty())
            {
                s.commands.insert(name.to_string(), c.clone());
            }
        }
        let log = home.join("fleet/run").join(format!("{name}.log"));
        if log.is_file() {
            s.logs
                .insert(name.to_string(), log.to_string_lossy().into_owned());
        }
        if let Some(n) =
            std::fs::read_to_string(home.join("fleet/run").join(format!("{name}.restarts")))
                .ok()
                .and_then(|t| t.trim().parse().ok())
        {
            s.restarts.insert(name.to_string(), n);
        }
        let hb = home.join("fleet/run").join(format!("{name}.hb"));
        match std::fs::read_to_string(&hb) {
            Ok(text) => {
                s.heartbeats
                    .insert(name.to_string(), parse_heartbeat(&text, name));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                s.heartbeats
                    .insert(name.to_string(), Err(format!("{}: {e}", hb.display())));
            }
        }
    }
    if any_pane {
        s.procs = read_proc();
        let roots: Vec<u32> = s.panes.values().flatten().map(|p| p.pid).collect();
        let mut wanted = Vec::new();
        for r in roots {
            wanted.extend(tree(&s.procs, r));
        }
        fill_args(&mut s.procs, &wanted);
        if with_units {
            read_screens(&mut s, roster);
        }
        for a in roster.agents.iter().filter(|a| a.is_local()) {
            let name = a.name.as_str();
            let Some(p) = find_pane(&s, roster.agent_socket(a), name) else {
                continue;
            };
            if p.dead || !s.procs.contains_key(&p.pid) {
                continue;
            }
            let unit = systemd::agent_unit(name);
            let cg = s
                .units
                .as_ref()
                .and_then(|u| u.get(&unit))
                .and_then(|u| cgroup_pids(&u.control_group))
                .filter(|pids| pids.contains(&p.pid));
            let pids = cg.unwrap_or_else(|| tree(&s.procs, p.pid));
            let usage = usage_of(p.pid, &pids);
            s.usage.insert(name.to_string(), usage);
        }
    }
    Ok(s)
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

fn secs(v: Option<u64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

/// CPU time: `850ms`, `12.3s`, `4m`, `2h`.
fn cpu(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 100_000 {
        format!("{}.{}s", ms / 1000, ms % 1000 / 100)
    } else {
        secs(Some(ms / 1000))
    }
}

/// Memory: `812K`, `45M`, `1.2G` (binary units).
fn bytes(b: u64) -> String {
    const K: u64 = 1024;
    if b < K * K {
        format!("{}K", b / K)
    } else if b < K * K * K {
        format!("{}M", b / (K * K))
    } else {
        format!(
            "{}.{}G",
            b / (K * K * K),
            b % (K * K * K) * 10 / (K * K * K)
        )
    }
}

/// The human table: aligned columns; `paint` colours flags (a no-op off a TTY).
pub fn table(r: &Report, paint: &dyn Fn(&str, &str) -> String) -> String {
    let header = [
        "NAME", "RUNTIME", "UNIT", "SESSION", "PID", "COMMAND", "IDLE", "BEAT", "UPTIME",
        "RESTARTS", "CPU", "RSS", "FLAGS",
    ];
    let mut rows: Vec<[String; 13]> = Vec::new();
    for a in &r.agents {
        let unit = match (a.unit_active, a.unit_enabled) {
            _ if a.unit.is_none() => "-".to_string(),
            (Some(act), Some(en)) => format!(
                "{}/{}",
                if act {
                    "active"
                } else {
                    a.active_state.as_deref().unwrap_or("inactive")
                },
                if en {
                    "enabled"
                } else {
                    a.unit_file_state.as_deref().unwrap_or("disabled")
                }
            ),
            _ => "?".to_string(),
        };
        rows.push([
            a.name.clone(),
            a.runtime.clone().unwrap_or_else(|| "-".into()),
            unit,
            if a.remote && a.host_status.is_none() {
                format!("@{}", a.host)
            } else if a.remote {
                format!("{}@{}", a.state, a.host)
            } else {
                a.state.clone()
            },
            a.pane_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            a.current_command.clone().unwrap_or_else(|| "-".into()),
            secs(a.idle_seconds),
            match &a.heartbeat {
                // The screen, when read, says more than a wrapper's beat.
                Some(h) => format!(
                    "{} {}",
                    secs(Some(h.age_seconds)),
                    a.screen.map_or(h.state.as_str(), |w| w.as_str())
                ),
                None => "-".into(),
            },
            secs(a.uptime_seconds),
            a.restarts
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            a.cpu_ms.map(cpu).unwrap_or_else(|| "-".into()),
            a.rss_bytes.map(bytes).unwrap_or_else(|| "-".into()),
            if a.flags.is_empty() {
                if a.healthy {
                    "ok".into()
                } else {
                    "-".into()
                }
            } else {
                a.flags.join(",")
            },
        ]);
    }
    let mut widths = header.map(|h| h.len());
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String {
        let last = cells.len() - 1;
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { pad(&c, widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect()));
    out.push('\n');
    for (row, a) in rows.into_iter().zip(&r.agents) {
        let mut cells: Vec<String> = row.to_vec();
        let code = if a.flags.is_empty() {
            if a.healthy {
                "32"
            } else {
                "0"
            }
        } else if a.flags.iter().any(|f| f == "DEAD") {
            "31"
        } else {
            "33"
        };
        let flags = pad(&cells[12], 0);
        cells[12] = if code == "0" {
            flags
        } else {
            paint(code, &flags)
        };
        out.push_str(&line(cells));
        out.push('\n');
    }
    for a in r.agents.iter().filter(|a| a.log.is_some()) {
        out.push_str(&format!(
            "{} is DEAD; its last output: {} (mosaic agent logs {})\n",
            a.name,
            a.log.as_deref().unwrap_or(""),
            a.name
        ));
    }
    let h = &r.holder;
    let yn = |b: Option<bool>, y: &str, n: &str| match b {
        Some(true) => y.to_string(),
        Some(false) => n.to_string(),
        None => "?".to_string(),
    };
    out.push_str(&format!(
        "tenant {} on {}; {}; holder {} {}/{}, session {}; stale after {}s\n",
        r.tenant_id,
        r.host,
        tmux::where_(h.socket.as_deref()),
        h.unit,
        yn(h.unit_active, "active", "inactive"),
        yn(h.unit_enabled, "enabled", "not enabled"),
        if h.session_present {
            format!("{} up", h.session)
        } else {
            format!("{} absent", h.session)
        },
        r.stale_after
    ));
    for h in &r.hosts {
        let status = if h.status == "ok" {
            paint("32", "ok")
        } else {
            paint("31", &h.status)
        };
        out.push_str(&format!(
            "host {} ({}): {status} in {:.1}s, {} agent{}{}\n",
            h.name,
            h.ssh,
            h.seconds,
            h.agents,
            if h.agents == 1 { "" } else { "s" },
            h.error
                .as_ref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster;

    fn roster() -> Roster {
        roster::parse(
            "version: 1\ntenant_id: ops\ntmux: {socket_name: mosaic-fleet}\nagents:\n  - name: a\n    runtime: codex\n  - name: b\n    runtime: pi\n  - name: c\n    runtime: claude\n  - name: r\n    runtime: codex\n    host: 192.0.2.10\n",
            Path::new("/h/fleet/roster.yaml"),
        )
        .unwrap()
    }

    fn pane(session: &str, pid: u32, cmd: &str, group: &str) -> Pane {
        Pane {
            session: session.into(),
            window: 0,
            pane: 0,
            pid,
            dead: false,
            command: cmd.into(),
            activity: 990,
            group: group.into(),
        }
    }

    fn unit(id: &str, active: &str, file: &str) -> (String, UnitState) {
        (
            id.into(),
            UnitState {
                id: id.into(),
                load_state: "loaded".into(),
                active_state: active.into(),
                sub_state: "exited".into(),
                unit_file_state: file.into(),
                control_group: String::new(),
            },
        )
    }

    fn proc_(pid: u32, ppid: u32, comm: &str, args: &[&str]) -> (u32, Proc) {
        (
            pid,
            Proc {
                pid,
                ppid,
                comm: comm.into(),
                args: args.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    fn hb(agent: &str, ts: u64) -> std::result::Result<Heartbeat, String> {
        Ok(Heartbeat {
            v: 1,
            agent: agent.into(),
            ts,
            pid: 1,
            state: "idle".into(),
        })
    }

    #[test]
    fn join_flags_each_case() {
        let mut s = Snapshot {
            now: 1000,
            hostname: "box".into(),
            ..Default::default()
        };
        s.panes.insert(
            Some("mosaic-fleet".into()),
            vec![
                pane("_holder", 5, "bash", ""),
                pane("a", 10, "codex", ""),
                pane("b", 20, "stub-agent", ""),
                pane("stray", 30, "bash", ""),
                pane("a-watch-77", 10, "codex", "a"),
            ],
        );
        s.units = Some(
            [
                unit("mosaic-tmux-holder.service", "active", "enabled"),
                unit("mosaic-agent@a.service", "active", "enabled"),
                unit("mosaic-agent@b.service", "active", "disabled"),
                unit("mosaic-agent@c.service", "active", "enabled"),
            ]
            .into_iter()
            .collect(),
        );
        s.procs = [
            proc_(5, 1, "bash", &["bash"]),
            proc_(10, 1, "codex", &["codex"]),
            proc_(11, 10, "bash", &["bash", "/h/tools/fleet/heartbeat"]),
            proc_(20, 1, "bash", &["stub-agent", "/h/tools/fleet/stub-agent"]),
            proc_(30, 1, "bash", &["bash"]),
        ]
        .into_iter()
        .collect();
        s.heartbeats.insert("a".into(), hb("a", 990));
        s.heartbeats.insert("b".into(), hb("b", 900));
        for n in ["a", "c"] {
            s.logs.insert(n.into(), format!("/h/fleet/run/{n}.log"));
        }
        let r = join(&roster(), Path::new("/h/fleet/roster.yaml"), &s, 60);
        let by = |n: &str| r.agents.iter().find(|x| x.name == n).unwrap();
        // Only a DEAD agent points at its pane log.
        assert_eq!(by("a").log, None);
        assert_eq!(by("c").log.as_deref(), Some("/h/fleet/run/c.log"));
        let t = table(&r, &|_, s| s.to_string());
        assert!(
            t.contains("c is DEAD; its last output: /h/fleet/run/c.log (mosaic agent logs c)"),
            "{t}"
        );
        assert_eq!(by("a").flags, Vec::<String>::new());
        assert!(by("a").healthy);
        assert_eq!(by("a").state, "running");
        assert_eq!(by("a").processes.len(), 2);
        assert_eq!(by("a").idle_seconds, Some(10));
        assert_eq!(by("b").flags, ["DRIFT", "BOOT-ENABLE", "STALE"]);
        assert_eq!(by("c").flags, ["DEAD"]);
        assert_eq!(by("c").state, "dead");
        assert_eq!(by("r").state, "remote");
        assert_eq!(by("r").host, "192.0.2.10");
        assert_eq!(by("stray").flags, ["UNMANAGED"]);
        assert!(r
            .agents
            .iter()
            .all(|x| x.name != "a-watch-77" && x.name != "_holder"));
        assert!(r
            .agents
            .iter()
            .all(|x| x.tenant_id == "ops" && !x.host.is_empty()));
        assert!(r.holder.session_present && r.holder.unit_enabled == Some(true));
        assert_eq!(r.agents.len(), 5);
    }

    #[test]
    fn remote_snapshots_join_like_local_ones_and_failed_hosts_are_unknown() {
        let ro = roster::parse(
            "version: 1\ntenant_id: ops\ntmux: {socket_name: f}\nhosts:\n  B1: {ssh: ops@b1, tenant: bt}\n  b2: {ssh: b2}\nagents:\n  - name: a\n    runtime: codex\n  - name: r1\n    runtime: codex\n    host: b1\n  - name: r2\n    runtime: codex\n    host: b2\n",
            Path::new("/r.yaml"),
        )
        .unwrap();
        let local = Snapshot {
            now: 1000,
            hostname: "ctl".into(),
            ..Default::default()
        };
        let mut there = Snapshot {
            now: 2000,
            hostname: "b1.example".into(),
            ..Default::default()
        };
        there.panes.insert(
            Some("f".into()),
            vec![pane("r1", 10, "codex", ""), pane("odd", 11, "bash", "")],
        );
        there.procs = [
            proc_(10, 1, "codex", &["codex"]),
            proc_(11, 1, "bash", &["bash"]),
        ]
        .into_iter()
        .collect();
        there.heartbeats.insert("r1".into(), hb("r1", 1990));
        let rep = join(&ro, Path::new("/r.yaml"), &local, 60);
        assert_eq!(
            rep.agents.iter().find(|x| x.name == "r1").unwrap().state,
            "remote"
        );
        let results = vec![
            HostResult {
                key: "b1".into(),
                outcome: Ok(there),
                seconds: 0.123,
            },
            HostResult {
                key: "b2".into(),
                outcome: Err(crate::ssh::HostError {
                    status: crate::ssh::HostStatus::Timeout,
                    message: "host b2 (b2): no answer".into(),
                }),
                seconds: 5.0,
            },
        ];
        let rep = join_hosts(&ro, Path::new("/r.yaml"), rep, &results, 60);
        let by = |n: &str| rep.agents.iter().find(|x| x.name == n).unwrap();
        let r1 = by("r1");
        assert_eq!(
            (r1.state.as_str(), r1.host.as_str(), r1.tenant_id.as_str()),
            ("running", "B1", "bt")
        );
        assert!(r1.remote && r1.healthy, "{r1:?}");
        assert_eq!(
            r1.idle_seconds,
            Some(1010),
            "idle against the host's own clock"
        );
        assert_eq!(r1.host_status.as_deref(), Some("ok"));
        let r2 = by("r2");
        assert_eq!(
            (r2.state.as_str(), r2.flags.clone()),
            ("unknown", vec!["TIMEOUT".to_string()])
        );
        assert_eq!(by("a").state, "stopped");
        let odd = by("odd");
        assert_eq!(
            (odd.host.as_str(), odd.flags.clone()),
            ("B1", vec!["UNMANAGED".to_string()])
        );
        let names: Vec<&str> = rep.agents.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["a", "r1", "r2", "odd"]);
        assert_eq!(rep.hosts.len(), 2);
        assert_eq!(rep.hosts[0].status, "ok");
        assert_eq!(rep.hosts[0].hostname.as_deref(), Some("b1.example"));
        assert_eq!(rep.hosts[1].status, "TIMEOUT");
        assert_eq!(
            rep.hosts[1].error.as_deref(),
            Some("host b2 (b2): no answer")
        );
    }

    #[test]
    fn declared_command_decides_drift() {
        let ro = roster();
        let b = &ro.agents[1];
        assert_eq!(expected_program(b, None), "pi");
        assert_eq!(
            expected_program(b, Some("/h/tools/fleet/stub-agent")),
            "stub-agent"
        );
        assert_eq!(expected_program(b, Some("exec FOO=1 ~/bin/pi --x")), "pi");
        assert_eq!(
            expected_program(b, Some("env FOO=1 /h/stub-agent")),
            "stub-agent"
        );
        assert_eq!(
            expected_program(b, Some("nice -n 5 codex --model m")),
            "codex"
        );
        assert_eq!(
            expected_program(b, Some("nohup env -i A=b claude")),
            "claude"
        );
        assert_eq!(
            expected_program(b, Some("cd /srv/w && exec claude --x")),
            "claude"
        );
        assert_eq!(
            expected_program(b, Some("cd '/srv/my dir'; env A=1 nice codex")),
            "codex"
        );
        assert_eq!(
            expected_program(b, Some("node /opt/pi-coding-agent/dist/cli.js")),
            "node"
        );
        // The adapter's classification: pi shows node, then pi; codex node.
        let pi = &ro.agents[1];
        assert_eq!(pi.runtime.program(), "pi");
        let declared = expected_program(pi, Some("node /x/pi-coding-agent/dist/cli.js"));
        assert!(runtime_matches(pi, "node", &declared));
        assert!(runtime_matches(pi, "pi", &declared));
        assert!(runtime_matches(pi, "pi", "pi"));
        assert!(runtime_matches(pi, "node", "pi"));
        assert!(!runtime_matches(pi, "stub-agent", "pi"));
        assert!(!runtime_matches(pi, "bash", "pi"));
        let codex = &ro.agents[0];
        assert_eq!(codex.runtime.program(), "codex");
        assert!(runtime_matches(codex, "node", "codex"));
        assert!(!runtime_matches(codex, "python3", "codex"));
        let mut s = Snapshot {
            now: 1000,
            hostname: "box".into(),
            ..Default::default()
        };
        s.panes.insert(
            Some("mosaic-fleet".into()),
            vec![pane("b", 20, "stub-agent", "")],
        );
        s.procs = [proc_(
            20,
            1,
            "bash",
            &["stub-agent", "/h/tools/fleet/stub-agent"],
        )]
        .into_iter()
        .collect();
        s.heartbeats.insert("b".into(), hb("b", 1000));
        s.commands
            .insert("b".into(), "/h/tools/fleet/stub-agent".into());
        let r = join(&ro, Path::new("/r"), &s, 60);
        let b = r.agents.iter().find(|x| x.name == "b").unwrap();
        assert!(b.flags.is_empty(), "{:?}", b.flags);
        // Units unknown: no BOOT-ENABLE guess, still running.
        assert_eq!(b.unit_active, None);
        assert!(b.healthy);
    }

    #[test]
    fn heartbeat_parsing() {
        let h = parse_heartbeat(
            "{\"v\":1,\"agent\":\"a\",\"ts\":5,\"pid\":7,\"state\":\"busy\"}\n",
            "a",
        )
        .unwrap();
        assert_eq!((h.ts, h.pid, h.state.as_str()), (5, 7, "busy"));
        assert!(parse_heartbeat(
            "{\"v\":1,\"agent\":\"b\",\"ts\":5,\"pid\":7,\"state\":\"idle\"}",
            "a"
        )
        .is_err());
        assert!(parse_heartbeat("garbage", "a").is_err());
    }

    #[test]
    fn tree_walks_descendants() {
        let t: ProcTable = [
            proc_(1, 0, "init", &[]),
            proc_(2, 1, "a", &[]),
            proc_(3, 2, "b", &[]),
            proc_(4, 1, "c", &[]),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree(&t, 2), [2, 3]);
        assert_eq!(tree(&t, 9), Vec::<u32>::new());
    }

    #[test]
    fn table_is_aligned_and_plain_off_tty() {
        let mut s = Snapshot {
            now: 1000,
            hostname: "box".into(),
            ..Default::default()
        };
        s.panes.insert(Some("mosaic-fleet".into()), vec![]);
        let r = join(&roster(), Path::new("/r"), &s, 60);
        let t = table(&r, &|_, s| s.to_string());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME  RUNTIME  UNIT"), "{t}");
        let col = lines[0].find("RUNTIME").unwrap();
        assert_eq!(&lines[1][col..col + 5], "codex");
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn supervision_figures_are_joined_and_shown() {
        let mut s = Snapshot {
            now: 1000,
            hostname: "box".into(),
            ..Default::default()
        };
        s.panes.insert(
            Some("mosaic-fleet".into()),
            vec![pane("a", 10, "codex", ""), {
                let mut p = pane("b", 20, "pi", "");
                p.dead = true;
                p
            }],
        );
        s.procs = [
            proc_(10, 1, "codex", &["codex"]),
            proc_(20, 1, "pi", &["pi"]),
        ]
        .into_iter()
        .collect();
        s.restarts.insert("a".into(), 3);
        s.restarts.insert("b".into(), 0);
        let usage = Usage {
            uptime_seconds: Some(125),
            cpu_ms: 12_345,
            rss_bytes: 300 * 1024 * 1024,
        };
        s.usage.insert("a".into(), usage.clone());
        s.usage.insert("b".into(), usage);
        let r = join(&roster(), Path::new("/r"), &s, 60);
        let by = |n: &str| r.agents.iter().find(|x| x.name == n).unwrap();
        let a = by("a");
        assert_eq!(
            (a.restarts, a.uptime_seconds, a.cpu_ms, a.rss_bytes),
            (Some(3), Some(125), Some(12_345), Some(300 * 1024 * 1024))
        );
        // A dead pane has no live figures, but keeps its count.
        let b = by("b");
        assert_eq!(
            (b.restarts, b.uptime_seconds, b.cpu_ms, b.rss_bytes),
            (Some(0), None, None, None)
        );
        assert_eq!(by("c").restarts, None);
        let t = table(&r, &|_, s| s.to_string());
        let head = t.lines().next().unwrap();
        let line = t.lines().find(|l| l.starts_with("a ")).unwrap();
        for (col, want) in [
            ("UPTIME", "2m"),
            ("RESTARTS", "3"),
            ("CPU", "12.3s"),
            ("RSS", "300M"),
        ] {
            let at = head.find(col).unwrap();
            assert_eq!(
                line[at..].split_whitespace().next(),
                Some(want),
                "{col}\n{t}"
            );
        }
        let json = serde_json::to_value(a).unwrap();
        assert_eq!(json["restarts"], 3);
        assert_eq!(json["rss_bytes"], 300 * 1024 * 1024);
        assert_eq!(cpu(850), "850ms");
        assert_eq!(bytes(1536 * 1024 * 1024), "1.5G");
    }

    #[test]
    fn usage_of_this_process_is_read_from_proc() {
        let me = std::process::id();
        let u = usage_of(me, &[me, u32::MAX]);
        assert!(u.rss_bytes > 0, "{u:?}");
        assert!(u.uptime_seconds.is_some(), "{u:?}");
        assert_eq!(cgroup_pids(""), None);
        assert_eq!(cgroup_pids("/../etc"), None);
    }

    #[test]
    fn restart_policy_is_an_enum_in_the_roster() {
        let r = roster::parse(
            "version: 1\nagents:\n  - name: a\n    runtime: codex\n    restart: always\n  - name: b\n    runtime: pi\n",
            Path::new("/r.yaml"),
        )
        .unwrap();
        assert_eq!(r.agents[0].restart, Some(roster::RestartPolicy::Always));
        assert_eq!(
            r.agents[1].restart.unwrap_or_default().as_str(),
            "on-failure"
        );
        let err = roster::parse(
            "version: 1\nagents:\n  - name: a\n    runtime: codex\n    restart: sometimes\n",
            Path::new("/r.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("restart") || err.contains("sometimes"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}
