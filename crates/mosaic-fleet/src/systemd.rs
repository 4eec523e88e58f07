//! systemd user units of the fleet: the unit names, the exact
//! `systemctl --user …` command lines (pure builders, unit-tested), parsing
//! of `systemctl show`, and the few calls the rest of mosaic makes through
//! [`crate::runner`]: [`daemon_reload`], [`manager_reachable`] /
//! [`check_manager`], [`show`] and [`run_user`].

use crate::error::{Error, Result};
use crate::runner;
use std::collections::BTreeMap;

/// The holder unit: keeps the fleet's tmux server alive.
pub const HOLDER_UNIT: &str = "mosaic-tmux-holder.service";

/// The agent template unit as shipped.
pub const AGENT_TEMPLATE: &str = "mosaic-agent@.service";

/// The unit of agent `name`: `mosaic-agent@NAME.service`.
pub fn agent_unit(name: &str) -> String {
    format!("mosaic-agent@{name}.service")
}

/// The properties [`show`] asks for.
pub const SHOW_PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,UnitFileState,ControlGroup";

/// `systemctl --user ARGS…`.
pub fn user_argv<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut v = vec!["systemctl".to_string(), "--user".to_string()];
    v.extend(args.iter().map(|a| a.as_ref().to_string()));
    v
}

/// `systemctl --user daemon-reload`.
pub fn daemon_reload_argv() -> Vec<String> {
    user_argv(&["daemon-reload"])
}

/// `systemctl --user VERB UNIT…` (start, stop, restart, enable, disable).
pub fn verb_argv<S: AsRef<str>>(verb: &str, units: &[S]) -> Vec<String> {
    let mut v = user_argv(&[verb]);
    v.extend(units.iter().map(|u| u.as_ref().to_string()));
    v
}

/// One `systemctl --user show` for many units at once.
pub fn show_argv<S: AsRef<str>>(units: &[S]) -> Vec<String> {
    let mut v = user_argv(&["show", &format!("--property={SHOW_PROPERTIES}")]);
    v.extend(units.iter().map(|u| u.as_ref().to_string()));
    v
}

/// `systemctl --user show --property=Version`: answers only when the user
/// manager is reachable.
pub fn probe_argv() -> Vec<String> {
    user_argv(&["show", "--property=Version"])
}

/// What systemd says about one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    /// Unit name.
    pub id: String,
    /// `loaded`, `not-found`, …
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, …
    pub active_state: String,
    /// `exited`, `running`, `dead`, …
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, … (empty when unknown).
    pub unit_file_state: String,
    /// The unit's cgroup below the manager's hierarchy (`ControlGroup`;
    /// empty when inactive): where `fleet ps` finds an agent's processes.
    #[serde(skip)]
    pub control_group: String,
}

impl UnitState {
    /// `ActiveState=active` (or reloading).
    pub fn active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }

    /// Enabled for boot (`enabled` or `enabled-runtime`, or `linked`).
    pub fn enabled(&self) -> bool {
        matches!(self.unit_file_state.as_str(), "enabled" | "enabled-runtime")
    }
}

/// Parses `systemctl show` output: blocks of `Key=Value` lines separated by
/// blank lines, one per unit, keyed by `Id`.
pub fn parse_show(text: &str) -> BTreeMap<String, UnitState> {
    let mut out = BTreeMap::new();
    let mut cur = UnitState::default();
    let mut flush = |cur: &mut UnitState| {
        if !cur.id.is_empty() {
            out.insert(cur.id.clone(), std::mem::take(cur));
        } else {
            *cur = UnitState::default();
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut cur);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.to_string();
        match k {
            "Id" => cur.id = v,
            "LoadState" => cur.load_state = v,
            "ActiveState" => cur.active_state = v,
            "SubState" => cur.sub_state = v,
            "UnitFileState" => cur.unit_file_state = v,
            "ControlGroup" => cur.control_group = v,
            _ => {}
        }
    }
    flush(&mut cur);
    out
}

/// Runs `systemctl --user ARGS…`; a non-zero exit becomes one error line
/// naming the command and what systemctl said.
pub fn run_user(argv: &[String]) -> Result<String> {
    let out = runner::output(argv)?;
    if !out.status.success() {
        return Err(Error::Input(format!(
            "`{}` failed: {}",
            runner::display(argv),
            runner::first_line(&out)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ok when `systemctl --user` reaches a user manager; otherwise one line
/// saying why (systemctl missing, or no user manager) and what to do.
pub fn check_manager() -> Result<()> {
    let argv = probe_argv();
    let out = runner::output(&argv)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "the systemd user manager is not reachable ({}); log in with a user session or run `loginctl enable-linger $USER`",
            runner::first_line(&out)
        )))
    }
}

/// Whether `systemctl --user` reaches a user manager (false when systemctl
/// is missing too).
pub fn manager_reachable() -> bool {
    check_manager().is_ok()
}

/// `systemctl --user daemon-reload`.
pub fn daemon_reload() -> Result<()> {
    run_user(&daemon_reload_argv()).map(|_| ())
}

/// The state of `units`, in one `systemctl show` call.
pub fn show<S: AsRef<str>>(units: &[S]) -> Result<BTreeMap<String, UnitState>> {
    if units.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(parse_show(&run_user(&show_argv(units))?))
}

/// Runs `systemctl --user daemon-reload` after a sync changed active units; a
/// failure is returned as the warning to print (the sync itself succeeded).
pub fn daemon_reload_after_sync() -> std::result::Result<(), String> {
    daemon_reload().map_err(|e| {
        format!("{e}; the unit files are updated: run `systemctl --user daemon-reload` yourself")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_shapes_are_exact() {
        assert_eq!(
            daemon_reload_argv(),
            ["systemctl", "--user", "daemon-reload"]
        );
        assert_eq!(
            verb_argv("enable", &[HOLDER_UNIT.to_string(), agent_unit("coder0")]),
            [
                "systemctl",
                "--user",
                "enable",
                "mosaic-tmux-holder.service",
                "mosaic-agent@coder0.service"
            ]
        );
        assert_eq!(
            show_argv(&["mosaic-agent@a.service", "mosaic-agent@b.service"]),
            [
                "systemctl",
                "--user",
                "show",
                "--property=Id,LoadState,ActiveState,SubState,UnitFileState,ControlGroup",
                "mosaic-agent@a.service",
                "mosaic-agent@b.service"
            ]
        );
        assert_eq!(
            probe_argv(),
            ["systemctl", "--user", "show", "--property=Version"]
        );
    }

    #[test]
    fn parse_show_reads_blocks() {
        let text = "Id=mosaic-tmux-holder.service\nLoadState=loaded\nActiveState=active\nSubState=exited\nUnitFileState=enabled\n\nLoadState=loaded\nId=mosaic-agent@a.service\nActiveState=inactive\nSubState=dead\nUnitFileState=disabled\nControlGroup=\n\nId=mosaic-agent@b.service\nActiveState=active\nControlGroup=/app.slice/app-mosaic\\x2dagent.slice/mosaic-agent@b.service\n";
        let m = parse_show(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m["mosaic-agent@b.service"].control_group,
            "/app.slice/app-mosaic\\x2dagent.slice/mosaic-agent@b.service"
        );
        assert_eq!(m["mosaic-agent@a.service"].control_group, "");
        let h = &m["mosaic-tmux-holder.service"];
        assert!(h.active() && h.enabled());
        let a = &m["mosaic-agent@a.service"];
        assert!(!a.active() && !a.enabled());
        assert_eq!(a.sub_state, "dead");
    }
}
