//! `mosaic update --relaunch` (SPEC §5.1, §6): note which fleet units were
//! active before the sync, stop the fleet on the legacy socket when the
//! socket migration needs it, and after the sync restart the holder and every
//! agent that was running, then check each agent's tmux session exists.
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

/// Restarts the holder and every agent that was running, then checks each
/// agent's session. Returns per-agent results and warnings.
pub fn after(paths: &Paths, b: &Before) -> (Vec<AgentResult>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut units = vec![HOLDER_UNIT.to_string()];
    units.extend(units_of(b));
    match crate::runner::output(&verb_argv("restart", &units)) {
        Ok(out) if out.status.success() => {}
        Ok(out) => warnings.push(format!(
            "relaunch: systemctl --user restart failed: {}; check `mosaic fleet status`",
            crate::runner::first_line(&out)
        )),
        Err(e) => warnings.push(format!("relaunch skipped: {e}")),
    }
    let mut results = Vec::new();
    for agent in &b.agents {
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
