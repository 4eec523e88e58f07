//! `mosaic update --relaunch` (SPEC §5.1, §6): note which fleet units were
//! active before the sync, stop the fleet on the legacy socket when the
//! socket migration needs it, and after the sync restart what the sync
//! changed ([`to_relaunch`]: every agent that was running when the units,
//! the fleet scripts or the legacy socket changed, else only the agents whose
//! env file changed, else nothing), then check each agent's tmux session.
//!
//! argv are built by pure functions and run through [`crate::runner`].

use crate::error::Result;
use mosaic_engine::paths::Paths;
use std::collections::BTreeSet;

use crate::systemd::{agent_unit, verb_argv, HOLDER_UNIT};

/// argv listing the active mosaic units.
pub fn list_active_argv() -> Vec<String> {
    crate::systemd::user_argv(&[
        "list-units",
        "--plain",
        "--no-legend",
        "--state=active",
        "mosaic-*",
    ])
}

/// The agent name of a unit `mosaic-agent@NAME.service`.
pub fn agent_of(unit: &str) -> Option<&str> {
    unit.strip_prefix("mosaic-agent@")?
        .strip_suffix(".service")
        .filter(|n| !n.is_empty())
}

/// Parses `list-units --plain --no-legend` output into unit names.
pub fn parse_units(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.ends_with(".service"))
        .map(String::from)
        .collect()
}

/// What was running before the sync.
#[derive(Debug, Clone, Default)]
pub struct Before {
    /// Agents whose units were active (or whose sessions were live on the
    /// legacy socket).
    pub agents: BTreeSet<String>,
    /// Whether systemctl answered.
    pub systemd: bool,
}

pub use mosaic_engine::sync::AgentResult;

/// Records the active fleet units.
pub fn before(legacy_sessions: &[String]) -> Before {
    let mut b = Before::default();
    if let Ok(out) = crate::runner::output(&list_active_argv()) {
        if out.status.success() {
            b.systemd = true;
            for u in parse_units(&String::from_utf8_lossy(&out.stdout)) {
                if let Some(a) = agent_of(&u) {
                    b.agents.insert(a.to_string());
                }
            }
        }
    }
    b.agents.extend(
        legacy_sessions
            .iter()
            .filter(|s| !s.starts_with('_'))
            .cloned(),
    );
    b
}

fn units_of(b: &Before) -> Vec<String> {
    b.agents.iter().map(|a| agent_unit(a)).collect()
}

/// Stops the fleet (agents, then the holder) before the legacy socket's
/// configuration is rewritten.
pub fn stop(b: &Before) -> Result<()> {
    if b.systemd {
        let mut units = units_of(b);
        units.push(HOLDER_UNIT.to_string());
        let _ = crate::runner::output(&verb_argv("stop", &units))?;
    }
    crate::legacy::kill_legacy_server()
}

fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// What the relaunch restarts after a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relaunch {
    /// Restart the holder too (units, scripts or socket changed).
    pub holder: bool,
    /// The agents to restart (a subset of [`Before::agents`]).
    pub agents: BTreeSet<String>,
}

/// Decides the relaunch from the sync's changed paths (relative to the
/// home): unit files changed, `tools/fleet/` scripts changed or the legacy
/// fleet was stopped → the holder and every agent that ran; otherwise only
/// the running agents whose `fleet/agents/NAME.env` changed; nothing else.
pub fn to_relaunch<S: AsRef<str>>(
    b: &Before,
    changed: &[S],
    units_changed: bool,
    stopped_legacy: bool,
) -> Relaunch {
    let fleet_wide = units_changed
        || stopped_legacy
        || changed.iter().any(|c| {
            let c = c.as_ref();
            c.starts_with("tools/fleet/") || c.contains("systemd/user/")
        });
    if fleet_wide {
        return Relaunch {
            holder: true,
            agents: b.agents.clone(),
        };
    }
    let agents = changed
        .iter()
        .filter_map(|c| {
            c.as_ref()
                .strip_prefix("fleet/agents/")?
                .strip_suffix(".env")
                .map(str::to_string)
        })
        .filter(|a| b.agents.contains(a))
        .collect();
    Relaunch {
        holder: false,
        agents,
    }
}

/// Restarts the holder and every agent that was running, then checks each
/// agent's session. Returns per-agent results and warnings.
pub fn after(paths: &Paths, b: &Before) -> (Vec<AgentResult>, Vec<String>) {
    after_only(
        paths,
        &Relaunch {
            holder: true,
            agents: b.agents.clone(),
        },
    )
}

/// Restarts what `r` names (the holder first), then checks each agent's
/// session. Returns per-agent results and warnings.
pub fn after_only(paths: &Paths, r: &Relaunch) -> (Vec<AgentResult>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut units = Vec::new();
    if r.holder {
        units.push(HOLDER_UNIT.to_string());
    }
    units.extend(r.agents.iter().map(|a| agent_unit(a)));
    if units.is_empty() {
        return (Vec::new(), warnings);
    }
    match crate::runner::output(&verb_argv("restart", &units)) {
        Ok(out) if out.status.success() => {}
        Ok(out) => warnings.push(format!(
            "relaunch: systemctl --user restart failed: {}; check `mosaic fleet status`",
            crate::runner::first_line(&out)
        )),
        Err(e) => warnings.push(format!("relaunch skipped: {e}")),
    }
    let mut results = Vec::new();
    for agent in &r.agents {
        let env =
            std::fs::read_to_string(paths.home.join("fleet/agents").join(format!("{agent}.env")))
                .unwrap_or_default();
        let socket = env_value(&env, "MOSAIC_TMUX_SOCKET");
        let up = crate::runner::output(&crate::tmux::has_session(socket.as_deref(), agent))
            .is_ok_and(|o| o.status.success());
        results.push(AgentResult {
            agent: agent.clone(),
            session_up: up,
        });
    }
    (results, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_shapes() {
        assert_eq!(
            list_active_argv(),
            [
                "systemctl",
                "--user",
                "list-units",
                "--plain",
                "--no-legend",
                "--state=active",
                "mosaic-*"
            ]
        );
    }

    #[test]
    fn relaunch_follows_what_changed() {
        let b = Before {
            agents: ["a", "b"].iter().map(|s| s.to_string()).collect(),
            systemd: true,
        };
        let none: [&str; 0] = [];
        assert_eq!(to_relaunch(&b, &none, false, false), Relaunch::default());
        assert_eq!(
            to_relaunch(&b, &["docs/x.md", "fleet/agents/c.env"], false, false),
            Relaunch::default()
        );
        let one = to_relaunch(&b, &["fleet/agents/b.env"], false, false);
        assert!(!one.holder);
        assert_eq!(one.agents.iter().collect::<Vec<_>>(), ["b"]);
        for all in [
            to_relaunch(&b, &none, true, false),
            to_relaunch(&b, &none, false, true),
            to_relaunch(&b, &["tools/fleet/start-agent-session.sh"], false, false),
        ] {
            assert!(all.holder);
            assert_eq!(all.agents, b.agents);
        }
    }

    #[test]
    fn parses_units_and_agents() {
        let out = "mosaic-agent@coder0.service loaded active exited mosaic fleet agent coder0\nmosaic-tmux-holder.service loaded active exited holder\n";
        let u = parse_units(out);
        assert_eq!(
            u,
            ["mosaic-agent@coder0.service", "mosaic-tmux-holder.service"]
        );
        assert_eq!(agent_of(&u[0]), Some("coder0"));
        assert_eq!(agent_of(&u[1]), None);
        assert_eq!(
            env_value("A=1\nMOSAIC_TMUX_SOCKET=\"x\"\n", "MOSAIC_TMUX_SOCKET").as_deref(),
            Some("x")
        );
    }
}
