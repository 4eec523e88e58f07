//! The fleet runtime commands (SPEC §7–§8): `mosaic fleet …` (roster edits,
//! install, start/stop/restart, status, verify, ps) and `mosaic agent …`
//! (send, watch, tail, reset, logs).
//!
//! Sub-modules, one concern each:
//! - [`roster`]: the roster model, validation and comment-keeping edits;
//! - [`envfile`]: the per-agent env files and their merge;
//! - [`tmux`]: exact tmux command lines (pure);
//! - [`ps`]: the `fleet ps` snapshot and its pure join;
//! - [`agent`]: the per-agent commands;
//! - [`logs`]: `agent logs`, the pane log kept by tmux pipe-pane;
//! - [`cli`]: the clap definitions.
//!
//! Every process is started through [`mosaic_fleet::runner`]; systemd calls go
//! through [`mosaic_fleet::systemd`].

pub mod agent;
pub mod cli;
pub mod deploy;
pub mod logs;
pub use mosaic_fleet::{envfile, ps, roster, tmux};

use crate::cli::Global;
use crate::report::Printer;
use cli::{FleetCommand, RosterArg};
use mosaic_engine::error::{Error, IoContext, Result};
use mosaic_engine::fsutil;
use mosaic_engine::paths::Paths;
use mosaic_engine::session::{Locked, Session};
use mosaic_engine::txn;
use mosaic_fleet::systemd;
use roster::Roster;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Resolved paths and the roster file of one fleet command.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Resolved paths.
    pub paths: Paths,
    /// The roster file.
    pub roster_path: PathBuf,
}

impl Ctx {
    /// Resolves the home and the roster path.
    pub fn new(g: &Global, r: &RosterArg) -> Result<Ctx> {
        let paths = Paths::resolve(g.home.as_deref())?;
        if let Some(p) = &r.roster {
            mosaic_engine::paths::check_plain("--roster", p)?;
        }
        let roster_path = match &r.roster {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => std::env::current_dir().at(".")?.join(p),
            None => roster::default_path(&paths.home),
        };
        Ok(Ctx { paths, roster_path })
    }

    /// Loads and validates the roster (nothing acts on an invalid one).
    pub fn roster(&self) -> Result<Roster> {
        roster::load(&self.roster_path)
    }

    /// `H/fleet/agents`.
    pub fn agents_dir(&self) -> PathBuf {
        self.paths.home.join("fleet").join("agents")
    }

    /// `H/fleet/agents/NAME.env`.
    pub fn env_file(&self, name: &str) -> PathBuf {
        self.agents_dir().join(format!("{name}.env"))
    }
}

/// Runs a `mosaic fleet …` command; returns the exit code.
pub fn run_fleet(cmd: &FleetCommand, g: &Global, p: &Printer) -> Result<i32> {
    match cmd {
        FleetCommand::Init {
            preset,
            roster,
            dry,
        } => init(&Ctx::new(g, roster)?, preset, dry.dry_run, p),
        FleetCommand::Add {
            name,
            runtime,
            class,
            model,
            workdir,
            socket,
            host,
            ssh,
            command,
            roster,
            dry,
        } => {
            let new = roster::NewAgent {
                name: name.clone(),
                runtime: *runtime,
                class: *class,
                model: model.clone(),
                workdir: workdir.clone(),
                socket: socket.clone(),
                host: host.clone(),
                ssh: ssh.clone(),
            };
            add(
                &Ctx::new(g, roster)?,
                &new,
                command.as_deref(),
                dry.dry_run,
                p,
            )
        }
        FleetCommand::Remove {
            name,
            keep_running,
            roster,
            dry,
        } => remove(&Ctx::new(g, roster)?, name, *keep_running, dry.dry_run, p),
        FleetCommand::Install {
            as_host,
            roster,
            dry,
        } => install(&Ctx::new(g, roster)?, as_host.as_deref(), dry.dry_run, p),
        FleetCommand::Start { names, roster, dry } => {
            control(&Ctx::new(g, roster)?, "start", names, dry.dry_run, p)
        }
        FleetCommand::Stop { names, roster, dry } => {
            control(&Ctx::new(g, roster)?, "stop", names, dry.dry_run, p)
        }
        FleetCommand::Restart { names, roster, dry } => {
            control(&Ctx::new(g, roster)?, "restart", names, dry.dry_run, p)
        }
        FleetCommand::Undo { roster, dry } => undo(&Ctx::new(g, roster)?, dry.dry_run, p),
        FleetCommand::Status { roster } => status(&Ctx::new(g, roster)?, p),
        FleetCommand::Verify {
            stale_after,
            roster,
        } => verify(&Ctx::new(g, roster)?, *stale_after, p),
        FleetCommand::Ps {
            stale_after,
            roster,
        } => fleet_ps(&Ctx::new(g, roster)?, *stale_after, p),
        c @ FleetCommand::Deploy { .. } => deploy::run(c, g, p),
    }
}

/// Runs a `mosaic agent …` command; returns the exit code.
pub fn run_agent(cmd: &cli::AgentCommand, g: &Global, p: &Printer) -> Result<i32> {
    agent::run(cmd, g, p)
}

fn mode_of(path: &Path, default: u32) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(default)
}

fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    fsutil::create_dirs(dir, mode).map(|_| ())
}

// ---- init / add / remove ----

fn preset_text(home: &Path, preset: &str) -> Result<String> {
    if preset.is_empty()
        || !preset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::Input(format!(
            "invalid preset name {preset:?}; use a name from fleet/examples/"
        )));
    }
    let rel = format!("fleet/examples/{preset}.yaml");
    let on_disk = home.join(&rel);
    if let Ok(t) = std::fs::read_to_string(&on_disk) {
        return Ok(t);
    }
    let src = mosaic_engine::source::Source::from_env(None, false)?;
    if let Some(f) = src.files.get(rel.as_str()) {
        return Ok(String::from_utf8_lossy(&f.read(&rel)?).into_owned());
    }
    let names: Vec<String> = src
        .files
        .keys()
        .filter_map(|k| {
            k.strip_prefix("fleet/examples/")?
                .strip_suffix(".yaml")
                .map(str::to_string)
        })
        .collect();
    Err(Error::Input(format!(
        "unknown preset {preset:?}; choose one of: {}",
        names.join(", ")
    )))
}

fn init(ctx: &Ctx, preset: &str, dry: bool, p: &Printer) -> Result<i32> {
    let path = ctx.roster_path.clone();
    let mut agents = Vec::new();
    edit(ctx, "fleet init", dry, p, |_| {
        // Read under the lock: a roster made meanwhile is never replaced (and
        // the transaction refuses to rename over one that appears later).
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::Input(format!(
                "{} already exists; mosaic never overwrites a roster: edit it, or move it aside and re-run",
                path.display()
            )));
        }
        let text = preset_text(&ctx.paths.home, preset)?;
        let r = roster::parse(&text, Path::new(&format!("fleet/examples/{preset}.yaml")))?;
        agents = r
            .agents
            .iter()
            .map(|a| a.name.as_str().to_string())
            .collect();
        Ok(vec![PendingWrite::new(&path, text.into_bytes(), 0o644)])
    })?;
    let verb = if dry { "would write" } else { "wrote" };
    if p.json {
        p.doc(crate::report::Doc::FleetInit, &serde_json::json!({"roster": path, "preset": preset, "agents": agents, "dry_run": dry}));
    } else {
        p.line(&format!(
            "{verb} {} from preset {preset}: {}",
            path.display(),
            agents.join(", ")
        ));
        if !dry {
            p.line("next: mosaic fleet install");
        }
    }
    Ok(0)
}

/// One file a fleet edit writes, decided from what was read in the session.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    path: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
}

impl PendingWrite {
    fn new(path: &Path, bytes: Vec<u8>, mode: u32) -> PendingWrite {
        PendingWrite {
            path: path.to_path_buf(),
            bytes,
            mode,
        }
    }
}

/// The fleet-edit pipeline (SPEC §4.3): open the session first (read-only
/// for a dry run, locked otherwise), let `decide` read and decide inside it,
/// and execute the decided writes only in a locked session, as one
/// backed-up transaction recorded as a fleet edit (`mosaic fleet undo`).
/// Returns the writes (executed, or with a dry run only decided).
fn edit(
    ctx: &Ctx,
    command: &str,
    dry: bool,
    _p: &Printer,
    decide: impl FnOnce(&Paths) -> Result<Vec<PendingWrite>>,
) -> Result<Vec<PendingWrite>> {
    if dry {
        let session = Session::inspect(ctx.paths.clone())?;
        return decide(&session.paths);
    }
    let session = Session::lock(ctx.paths.clone())?;
    let writes = decide(&session.paths)?;
    apply_writes(&session, command, &writes)?;
    Ok(writes)
}

/// Rewrites the roster text decided by `change` from the text read in the
/// session. A roster that is a symlink (kept in a dotfiles repository) is
/// never written through or replaced; the line endings are the file's own.
fn edit_roster(
    ctx: &Ctx,
    command: &str,
    dry: bool,
    p: &Printer,
    change: impl FnOnce(&str) -> Result<String>,
) -> Result<()> {
    let path = ctx.roster_path.clone();
    edit(ctx, command, dry, p, |_| {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Input(format!(
                "{} is a symlink; mosaic never writes through links: make the change in the file it points to",
                path.display()
            )));
        }
        let text = roster::read(&path)?;
        let out = change(&text)?;
        Ok(vec![PendingWrite::new(
            &path,
            out.into_bytes(),
            mode_of(&path, 0o644),
        )])
    })?;
    Ok(())
}

fn add(
    ctx: &Ctx,
    new: &roster::NewAgent,
    command: Option<&str>,
    dry: bool,
    p: &Printer,
) -> Result<i32> {
    if new.ssh.is_some() && new.host.is_none() {
        return Err(Error::Input(
            "--ssh says how to reach the agent's host: give --host NAME with it".to_string(),
        ));
    }
    if let Some(c) = command {
        if c.trim().is_empty() || c.contains(['\n', '\r']) {
            return Err(Error::Input(format!(
                "--command {c:?}: must be one non-empty line (it becomes MOSAIC_AGENT_COMMAND)"
            )));
        }
    }
    let env = ctx.env_file(&new.name);
    edit(ctx, "fleet add", dry, p, |_| {
        let path = &ctx.roster_path;
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Input(format!(
                "{} is a symlink; mosaic never writes through links: make the change in the file it points to",
                path.display()
            )));
        }
        let text = roster::add_agent(&roster::read(path)?, path, new)?;
        let mut writes = vec![PendingWrite::new(
            path,
            text.into_bytes(),
            mode_of(path, 0o644),
        )];
        // The command is the operator's key of the agent's env file, kept by
        // every `fleet install`.
        if let Some(c) = command {
            let existing = match std::fs::read_to_string(&env) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io(&env, e)),
            };
            let key = envfile::Gen {
                key: "MOSAIC_AGENT_COMMAND",
                value: c.to_string(),
                overwrite: true,
            };
            let text = envfile::merge(
                existing.as_deref(),
                &[key],
                &envfile::agent_header(&new.name),
            );
            if !dry {
                ensure_dir(&ctx.agents_dir(), 0o700)?;
            }
            writes.push(PendingWrite::new(&env, text.into_bytes(), 0o600));
        }
        Ok(writes)
    })?;
    let verb = if dry { "would add" } else { "added" };
    if p.json {
        p.doc(
            crate::report::Doc::FleetAdd,
            &serde_json::json!({"roster": ctx.roster_path, "added": new.name, "dry_run": dry,
                "command_env_file": command.map(|_| &env)}),
        );
    } else {
        p.line(&format!(
            "{verb} {} to {}",
            new.name,
            ctx.roster_path.display()
        ));
        if command.is_some() {
            let set = if dry { "would set" } else { "set" };
            p.line(&format!("{set} MOSAIC_AGENT_COMMAND in {}", env.display()));
        }
        if !dry {
            p.line(&format!(
                "next: mosaic fleet install && mosaic fleet start {}",
                new.name
            ));
        }
    }
    Ok(0)
}

fn remove(ctx: &Ctx, name: &str, keep_running: bool, dry: bool, p: &Printer) -> Result<i32> {
    edit_roster(ctx, "fleet remove", dry, p, |text| {
        roster::remove_agent(text, &ctx.roster_path, name)
    })?;
    let unit = systemd::agent_unit(name);
    let argv = systemd::verb_argv("disable", &["--now", unit.as_str()]);
    // After the roster edit landed: the unit of an agent the roster no
    // longer names is stopped and disabled (unless --keep-running).
    let mut stopped = false;
    let mut warning = None;
    if !dry && !keep_running {
        match systemd::check_manager().and_then(|_| systemd::show(&[unit.as_str()])) {
            Ok(states) => {
                let st = states.get(&unit);
                if st.is_some_and(|s| s.load_state == "loaded" || s.active() || s.enabled()) {
                    match systemd::run_user(&argv) {
                        Ok(_) => stopped = true,
                        Err(e) => warning = Some(e.to_string()),
                    }
                }
            }
            Err(e) => warning = Some(e.to_string()),
        }
    }
    let verb = if dry { "would remove" } else { "removed" };
    if p.json {
        p.doc(
            crate::report::Doc::FleetRemove,
            &serde_json::json!({
                "roster": ctx.roster_path,
                "removed": name,
                "dry_run": dry,
                "unit": unit,
                "unit_stopped": stopped,
                "keep_running": keep_running,
                "would_run": if dry && !keep_running { Some(&argv) } else { None },
            }),
        );
    } else {
        p.line(&format!("{verb} {name} from {}", ctx.roster_path.display()));
        if keep_running {
            if !dry {
                p.line(&format!(
                    "its unit keeps running until you stop it: mosaic fleet stop {name}"
                ));
            }
        } else if dry {
            p.line(&format!(
                "would run: {}",
                mosaic_fleet::runner::display(&argv)
            ));
        } else if stopped {
            p.line(&format!("stopped and disabled {unit}"));
        }
    }
    if let Some(w) = warning {
        p.warn(&format!(
            "{w}; stop the unit yourself: {}",
            mosaic_fleet::runner::display(&argv)
        ));
        return Ok(1);
    }
    Ok(0)
}

/// `fleet stop NAME…` of names the roster no longer has: those whose unit is
/// still loaded are stopped (returned); any other is an unknown agent.
fn stop_orphans(
    ctx: &Ctx,
    roster: &Roster,
    names: &[String],
    dry: bool,
    p: &Printer,
) -> Result<Vec<String>> {
    let orphans: Vec<&String> = names
        .iter()
        .filter(|n| !roster.agents.iter().any(|a| a.name.as_str() == n.as_str()))
        .collect();
    if orphans.is_empty() {
        return Ok(Vec::new());
    }
    for n in &orphans {
        if roster::check_agent_name(n).is_err() {
            roster.agent(n, &ctx.roster_path)?;
        }
    }
    let units: Vec<String> = orphans.iter().map(|n| systemd::agent_unit(n)).collect();
    let states = if systemd::manager_reachable() {
        systemd::show(&units)?
    } else {
        Default::default()
    };
    for (n, u) in orphans.iter().zip(&units) {
        if !states.get(u).is_some_and(|s| {
            s.load_state == "loaded" && (s.active() || s.enabled() || s.active_state == "failed")
        }) {
            // Not in the roster and no unit: the roster's own error.
            roster.agent(n, &ctx.roster_path)?;
        }
    }
    let argv = systemd::verb_argv("stop", &units);
    if dry {
        p.line(&format!(
            "would run: {}",
            mosaic_fleet::runner::display(&argv)
        ));
    } else {
        systemd::run_user(&argv)?;
        if !p.json {
            p.line(&format!(
                "stopped: {} (not in {}; `systemctl --user disable {}` keeps it from starting at boot)",
                units.join(" "),
                ctx.roster_path.display(),
                units.join(" ")
            ));
        }
    }
    Ok(orphans.into_iter().cloned().collect())
}

fn undo(ctx: &Ctx, dry: bool, p: &Printer) -> Result<i32> {
    let outcome = if dry {
        let session = Session::inspect(ctx.paths.clone())?;
        mosaic_engine::generations::plan_undo_fleet_edit(&session)?
    } else {
        let session = Session::lock(ctx.paths.clone())?;
        mosaic_engine::generations::undo_fleet_edit(&session)?
    };
    if p.json {
        p.doc(
            crate::report::Doc::FleetUndo,
            &serde_json::json!({"version": 1, "dry_run": dry, "undo": outcome}),
        );
    } else {
        let verb = if dry { "would restore" } else { "restored" };
        for path in &outcome.restored {
            p.line(&format!("{verb} {path}"));
        }
        for path in &outcome.kept {
            p.warn(&format!(
                "{path} changed after that edit; kept as it is (its earlier copy stays in backup {})",
                outcome.id
            ));
        }
        p.line(&format!(
            "{} fleet edit {} ({})",
            if dry { "would undo" } else { "undid" },
            outcome.id,
            outcome.command
        ));
    }
    Ok(0)
}

// ---- install ----

/// What `fleet install` did to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileAction {
    /// Path.
    pub path: PathBuf,
    /// `created`, `updated`, `unchanged` (or `would …` with --dry-run).
    pub action: String,
}

/// The `fleet install` report.
#[derive(Debug, Clone, Serialize, Default)]
pub struct InstallReport {
    /// Env files.
    pub env_files: Vec<FileAction>,
    /// Unit files in the active directory.
    pub units: Vec<FileAction>,
    /// `daemon-reload` ran.
    pub daemon_reload: bool,
    /// Units enabled for boot.
    pub enabled: Vec<String>,
    /// The `hosts:` name this machine was installed as (`null` = the controller).
    pub installed_as: Option<String>,
    /// Agents of other hosts (or of the controller), skipped.
    pub skipped_remote: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// Decides one write of `fleet install`; the write itself is queued in
/// `pending` and applied with the others as one backed-up transaction.
fn write_if_changed(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    dry: bool,
    pending: &mut Vec<PendingWrite>,
) -> Result<FileAction> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Input(format!(
            "{} is a symlink; mosaic never writes through or replaces links: make it a regular file (or remove it) and re-run",
            path.display()
        )));
    }
    let old = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    let same_mode = mode_of(path, 0) == mode;
    let action = match &old {
        Some(b) if b == bytes && same_mode => "unchanged",
        Some(_) => "updated",
        None => "created",
    };
    if action != "unchanged" && !dry {
        pending.push(PendingWrite::new(path, bytes.to_vec(), mode));
    }
    let action = if dry && action != "unchanged" {
        format!("would be {action}")
    } else {
        action.to_string()
    };
    Ok(FileAction {
        path: path.to_path_buf(),
        action,
    })
}

/// `$XDG_CONFIG_HOME/mosaic`, else `~/.config/mosaic`: where the units look.
fn unit_home() -> Option<PathBuf> {
    let cfg = match std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(cfg.join("mosaic"))
}

fn same_path(a: &Path, b: &Path) -> bool {
    let ca = std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf());
    let cb = std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf());
    ca == cb
}

/// Executes the writes a fleet command decided, in its locked session, as
/// one transaction recorded as a fleet edit: every replaced env file, unit
/// or roster is backed up first (undone by `mosaic fleet undo`). Paths below
/// the home travel as relative paths, so the transaction's no-link rule
/// covers every component below the home.
fn apply_writes(session: &Session<Locked>, command: &str, writes: &[PendingWrite]) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let paths = &session.paths;
    let ops: Vec<txn::Op<'_>> = writes
        .iter()
        .map(|w| txn::Op::Write {
            rel: match w.path.strip_prefix(&paths.home) {
                Ok(rel) => rel.to_string_lossy().into_owned().into(),
                Err(_) => w.path.to_string_lossy().into_owned().into(),
            },
            bytes: txn::Payload::Bytes(std::borrow::Cow::Borrowed(&w.bytes[..])),
            mode: w.mode,
            sha256: mosaic_engine::Sha256::of(&w.bytes),
        })
        .collect();
    let version = mosaic_engine::manifest::Manifest::load(&paths.manifest())?
        .map(|m| m.version.to_string())
        .unwrap_or_else(|| "none".to_string());
    let info = txn::RunInfo {
        command: command.to_string(),
        from_version: Some(version.clone()),
        to_version: version,
        kind: txn::Kind::FleetEdit,
    };
    txn::apply(paths, session.token(), &ops, &info, None)?;
    crate::report::landed(&format!("the fleet edit ({command})"));
    Ok(())
}

fn install(ctx: &Ctx, as_host: Option<&str>, dry: bool, p: &Printer) -> Result<i32> {
    let mut roster_out = None;
    let mut rep = InstallReport::default();
    let writes = edit(ctx, "fleet install", dry, p, |_| {
        plan_install(ctx, as_host, dry, &mut rep, &mut roster_out)
    })?;
    let _ = writes;
    let roster = roster_out.expect("planned");
    let mut enable = vec![systemd::HOLDER_UNIT.to_string()];
    enable.extend(
        roster
            .agents
            .iter()
            .filter(|a| a.is_local())
            .map(|a| systemd::agent_unit(a.name.as_str())),
    );
    let systemd_result = if dry {
        Ok(())
    } else {
        (|| -> Result<()> {
            systemd::check_manager()?;
            systemd::daemon_reload()?;
            rep.daemon_reload = true;
            systemd::run_user(&systemd::verb_argv("enable", &enable))?;
            rep.enabled = enable.clone();
            Ok(())
        })()
    };

    if p.json {
        let mut v = serde_json::to_value(&rep).expect("serialisable");
        if let Err(e) = &systemd_result {
            v["error"] = serde_json::Value::String(e.to_string());
        }
        p.doc(crate::report::Doc::FleetInstall, &v);
    } else {
        for f in rep.env_files.iter().chain(&rep.units) {
            if f.action != "unchanged" || !p.quiet {
                let code = if f.action == "unchanged" { "0" } else { "32" };
                p.line(&format!(
                    "{} {}",
                    p.paint(code, &f.action),
                    f.path.display()
                ));
            }
        }
        for r in &rep.skipped_remote {
            let hint = match roster
                .agent(r, &ctx.roster_path)
                .ok()
                .and_then(|a| roster.host_of(a))
            {
                Some(h) => format!(
                    "run `{} mosaic fleet install --as {}` (with this roster) there",
                    mosaic_fleet::ssh::Dest::from(h).hint(),
                    h.name
                ),
                None => {
                    "it belongs to the controller; run `mosaic fleet install` there".to_string()
                }
            };
            p.line(&format!("skipped {r}: it runs on another host; {hint}"));
        }
        if dry {
            p.line(&format!(
                "would run: systemctl --user daemon-reload; systemctl --user enable {}",
                enable.join(" ")
            ));
        } else if rep.daemon_reload {
            p.line("systemctl --user daemon-reload");
            p.line(&format!("enabled for boot: {}", enable.join(" ")));
            p.line("next: mosaic fleet start");
        }
    }
    for w in &rep.warnings {
        p.warn(w);
    }
    match systemd_result {
        Ok(()) => Ok(0),
        Err(e) => Err(Error::Input(format!(
            "env files and units were written, but systemd was not updated: {e}; fix that and re-run `mosaic fleet install`"
        ))),
    }
}

/// Reads (in the session) and decides every env file and unit `fleet install` writes.
fn plan_install(
    ctx: &Ctx,
    as_host: Option<&str>,
    dry: bool,
    rep: &mut InstallReport,
    roster_out: &mut Option<Roster>,
) -> Result<Vec<PendingWrite>> {
    let mut roster = ctx.roster()?;
    if as_host.is_some() {
        roster.set_me(as_host, &ctx.roster_path)?;
    }
    rep.installed_as = roster.me_name().map(str::to_string);
    let home = &ctx.paths.home;
    let shipped = home.join("systemd/user");
    let unit_files = [systemd::HOLDER_UNIT, systemd::AGENT_TEMPLATE];
    for u in unit_files {
        if !shipped.join(u).is_file() {
            return Err(Error::Input(format!(
                "{} is missing; install the framework first: mosaic --home {} install",
                shipped.join(u).display(),
                home.display()
            )));
        }
    }
    if let Some(expected) = unit_home() {
        if !same_path(home, &expected) {
            rep.warnings.push(format!(
                "the units look for the framework at %E/mosaic = {}, but this home is {}; the fleet will not start from it (install into {} or point XDG_CONFIG_HOME at its parent)",
                expected.display(),
                home.display(),
                expected.display()
            ));
        }
    }
    let mut pending = Vec::new();
    let agents_dir = ctx.agents_dir();
    if !dry {
        ensure_dir(&agents_dir, 0o700)?;
    }
    for a in &roster.agents {
        if !a.is_local() {
            rep.skipped_remote.push(a.name.as_str().to_string());
            continue;
        }
        let path = ctx.env_file(a.name.as_str());
        let existing = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let text = envfile::merge(
            existing.as_deref(),
            &envfile::agent_keys(home, &roster, a),
            &envfile::agent_header(a.name.as_str()),
        );
        rep.env_files.push(write_if_changed(
            &path,
            text.as_bytes(),
            0o600,
            dry,
            &mut pending,
        )?);
    }
    let holder_path = agents_dir.join("_holder.env");
    let existing = std::fs::read_to_string(&holder_path).ok();
    check_holder_owner(ctx, &roster, existing.as_deref(), &holder_path)?;
    let text = envfile::merge(
        existing.as_deref(),
        &envfile::holder_keys(&roster),
        envfile::HOLDER_HEADER,
    );
    rep.env_files.push(write_if_changed(
        &holder_path,
        text.as_bytes(),
        0o600,
        dry,
        &mut pending,
    )?);

    if !dry {
        ensure_dir(&ctx.paths.units, 0o755)?;
    }
    for u in unit_files {
        let bytes = std::fs::read(shipped.join(u)).at(shipped.join(u))?;
        rep.units.push(write_if_changed(
            &ctx.paths.units.join(u),
            &bytes,
            0o644,
            dry,
            &mut pending,
        )?);
    }
    *roster_out = Some(roster);
    Ok(pending)
}

/// One holder serves one tmux server, and it follows the home's own roster
/// (`H/fleet/roster.yaml`). Another roster (`--roster extra.yaml`) may share
/// it, but must not move it: when `_holder.env` already keeps a socket or
/// session that roster does not use, installing it is refused.
fn check_holder_owner(
    ctx: &Ctx,
    roster: &Roster,
    existing: Option<&str>,
    holder_path: &Path,
) -> Result<()> {
    let default = roster::default_path(&ctx.paths.home);
    let Some(text) = existing else { return Ok(()) };
    if same_path(&ctx.roster_path, &default) {
        return Ok(());
    }
    let kept = envfile::parse(text);
    let socket = kept
        .get("MOSAIC_TMUX_SOCKET")
        .map(String::as_str)
        .unwrap_or("");
    let session = kept
        .get("MOSAIC_HOLDER_SESSION")
        .map(String::as_str)
        .unwrap_or(roster::DEFAULT_HOLDER);
    let want = roster.socket().unwrap_or("");
    if socket == want && session == roster.holder_session() {
        return Ok(());
    }
    let name = |s: &str| {
        if s.is_empty() {
            "the default tmux server".to_string()
        } else {
            format!("tmux socket {s}")
        }
    };
    let mut fix = Vec::new();
    if socket != want {
        fix.push(if socket.is_empty() {
            "leave out `tmux.socket_name`".to_string()
        } else {
            format!("set `tmux.socket_name: {socket}`")
        });
    }
    if session != roster.holder_session() {
        fix.push(format!("set `tmux.holder_session: {session}`"));
    }
    Err(Error::Input(format!(
        "{} keeps the holder on {} (session {session}) for {}, but {} uses {} (session {}); a second roster shares the one holder: {} in {}, or remove {} to move the holder",
        holder_path.display(),
        name(socket),
        default.display(),
        ctx.roster_path.display(),
        name(want),
        roster.holder_session(),
        fix.join(" and "),
        ctx.roster_path.display(),
        holder_path.display()
    )))
}

// ---- start / stop / restart / status ----

/// The agents a start/stop/restart acts on: no names = this machine's;
/// names = those agents, here or on other hosts (returned apart, by host).
#[allow(clippy::type_complexity)]
fn pick_agents<'a>(
    roster: &'a Roster,
    names: &[String],
    path: &Path,
) -> Result<(
    Vec<&'a roster::Agent>,
    Vec<(&'a roster::ResolvedHost, Vec<&'a roster::Agent>)>,
)> {
    if names.is_empty() {
        return Ok((
            roster.agents.iter().filter(|a| a.is_local()).collect(),
            Vec::new(),
        ));
    }
    let mut here = Vec::new();
    let mut there: Vec<(&roster::ResolvedHost, Vec<&roster::Agent>)> = Vec::new();
    for n in names {
        let a = roster.agent(n, path)?;
        if a.is_local() {
            here.push(a);
            continue;
        }
        let Some(h) = roster.host_of(a) else {
            return Err(Error::Input(format!(
                "agent {n} belongs to the controller, and this machine is host {}; run this on the controller",
                roster.me_name().unwrap_or("?")
            )));
        };
        match there.iter_mut().find(|(x, _)| x.name == h.name) {
            Some((_, v)) => v.push(a),
            None => there.push((h, vec![a])),
        }
    }
    Ok((here, there))
}

/// `systemctl --user VERB UNITS…` on another host (a fixed script).
fn remote_systemctl(h: &roster::ResolvedHost, verb: &str, units: &[String]) -> Result<()> {
    let d = mosaic_fleet::ssh::Dest::from(h);
    let mut words = vec![verb.to_string()];
    words.extend(units.iter().cloned());
    let script = mosaic_fleet::hosts::SYSTEMCTL_SCRIPT;
    let r = mosaic_fleet::ssh::call(&d, script, &words, mosaic_fleet::ssh::call_timeout())
        .map_err(|e| Error::Input(e.message))?;
    if r.code != 0 {
        return Err(Error::Input(format!(
            "`systemctl --user {verb} {}` on host {} failed: {}; see `{} systemctl --user status {}`",
            units.join(" "),
            h.name,
            mosaic_fleet::ssh::useful_line(&r.stderr).unwrap_or_else(|| format!("exit status {}", r.code)),
            d.hint(),
            units.first().map(String::as_str).unwrap_or("")
        )));
    }
    Ok(())
}

fn control(ctx: &Ctx, verb: &str, names: &[String], dry: bool, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let rest: Vec<String>;
    let names = if verb == "stop" && !names.is_empty() {
        let orphans = stop_orphans(ctx, &roster, names, dry, p)?;
        rest = names
            .iter()
            .filter(|n| !orphans.contains(n))
            .cloned()
            .collect();
        if rest.is_empty() {
            if p.json {
                let units: Vec<String> = orphans.iter().map(|n| systemd::agent_unit(n)).collect();
                p.doc(crate::report::Doc::FleetUnits, &serde_json::json!({"action": verb, "units": units, "dry_run": dry, "not_in_roster": orphans}));
            }
            return Ok(0);
        }
        &rest[..]
    } else {
        names
    };
    let (agents, remote) = pick_agents(&roster, names, &ctx.roster_path)?;
    if agents.is_empty() && !remote.is_empty() {
        return control_remote(ctx, &roster, verb, &remote, dry, p);
    }
    if !remote.is_empty() {
        return Err(Error::Input(format!(
            "{verb}: name agents of one place at a time (this machine, or one host): {} run elsewhere",
            remote
                .iter()
                .flat_map(|(_, v)| v.iter().map(|a| a.name.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let whole = names.is_empty();
    if verb != "stop" {
        for a in &agents {
            let env = ctx.env_file(a.name.as_str());
            if !env.is_file() {
                return Err(Error::Input(format!(
                    "{} is missing; run `mosaic fleet install` first",
                    env.display()
                )));
            }
        }
        for u in [systemd::HOLDER_UNIT, systemd::AGENT_TEMPLATE] {
            if !ctx.paths.units.join(u).is_file() {
                return Err(Error::Input(format!(
                    "{} is not installed; run `mosaic fleet install` first",
                    ctx.paths.units.join(u).display()
                )));
            }
        }
    }
    let mut units: Vec<String> = agents
        .iter()
        .map(|a| systemd::agent_unit(a.name.as_str()))
        .collect();
    match verb {
        // The holder first so the server exists before any agent starts.
        "start" => units.insert(0, systemd::HOLDER_UNIT.to_string()),
        _ if whole => units.push(systemd::HOLDER_UNIT.to_string()),
        _ => {}
    }
    let argv = systemd::verb_argv(verb, &units);
    if dry {
        if p.json {
            p.doc(crate::report::Doc::FleetUnits, &serde_json::json!({"action": verb, "units": units, "dry_run": true, "would_run": argv}));
        } else {
            p.line(&format!(
                "would run: {}",
                mosaic_fleet::runner::display(&argv)
            ));
        }
        return Ok(0);
    }
    systemd::check_manager()?;
    systemd::run_user(&argv)?;
    let dead_panes = || -> Result<Vec<String>> {
        let snap = ps::snapshot(&ctx.paths.home, &roster, false)?;
        let report = ps::join(&roster, &ctx.roster_path, &snap, ps::DEFAULT_STALE_AFTER);
        Ok(agents
            .iter()
            .filter_map(|a| {
                report
                    .agents
                    .iter()
                    .find(|r| r.managed && r.name == a.name.as_str())
                    .filter(|r| !r.pane_alive)
                    .map(|r| r.name.clone())
            })
            .collect())
    };
    let mut missing = if verb == "stop" {
        Vec::new()
    } else {
        dead_panes()?
    };
    if verb == "start" && !missing.is_empty() {
        // A unit stays active while its runtime is dead (its supervisor
        // waits out a back-off, or `restart: never`), so `start` alone
        // would not bring it back.
        let dead: Vec<String> = missing.iter().map(|n| systemd::agent_unit(n)).collect();
        systemd::run_user(&systemd::verb_argv("restart", &dead))?;
        missing = dead_panes()?;
    }
    let hint = format!(
        "its last output: `mosaic agent logs {}`; see also `systemctl --user status mosaic-agent@NAME.service` and `mosaic fleet ps`",
        missing.first().map(String::as_str).unwrap_or("NAME")
    );
    Ok(report_units(p, verb, &units, &missing, &hint))
}

/// The past tense `fleet start/stop/restart` reports.
fn done_word(verb: &str) -> &'static str {
    match verb {
        "start" => "started",
        "stop" => "stopped",
        _ => "restarted",
    }
}

/// The report of `fleet start/stop/restart` (local or remote units): the
/// units acted on, then a warning naming agents with no live session and
/// `hint`; exit 1 when there are any.
fn report_units(p: &Printer, verb: &str, units: &[String], missing: &[String], hint: &str) -> i32 {
    if p.json {
        p.doc(
            crate::report::Doc::FleetUnits,
            &serde_json::json!({"action": verb, "units": units, "missing_sessions": missing}),
        );
    } else {
        p.line(&format!("{}: {}", done_word(verb), units.join(" ")));
    }
    if missing.is_empty() {
        return 0;
    }
    p.warn(&format!(
        "no live session for {} after {verb}; {hint}",
        missing.join(", ")
    ));
    1
}

/// start/stop/restart of agents on other hosts: their units over ssh, then
/// (start, restart) one snapshot per host to check their sessions.
fn control_remote(
    ctx: &Ctx,
    roster: &Roster,
    verb: &str,
    remote: &[(&roster::ResolvedHost, Vec<&roster::Agent>)],
    dry: bool,
    p: &Printer,
) -> Result<i32> {
    let mut done_units = Vec::new();
    for (h, agents) in remote {
        let mut units: Vec<String> = agents
            .iter()
            .map(|a| systemd::agent_unit(a.name.as_str()))
            .collect();
        if verb == "start" {
            units.insert(0, systemd::HOLDER_UNIT.to_string());
        }
        if dry {
            p.line(&format!(
                "would run on host {}: systemctl --user {verb} {}",
                h.name,
                units.join(" ")
            ));
            continue;
        }
        remote_systemctl(h, verb, &units)?;
        done_units.push(format!("{}@{}", units.join(" "), h.name));
    }
    if dry {
        return Ok(0);
    }
    let names: Vec<&str> = remote
        .iter()
        .flat_map(|(_, v)| v.iter().map(|a| a.name.as_str()))
        .collect();
    let mut missing: Vec<String> = Vec::new();
    if verb != "stop" {
        let report = full_report(ctx, roster, false, ps::DEFAULT_STALE_AFTER)?;
        missing = report
            .agents
            .iter()
            .filter(|r| r.managed && names.contains(&r.name.as_str()) && !r.pane_alive)
            .map(|r| r.name.clone())
            .collect();
        if verb == "start" && !missing.is_empty() {
            for (h, agents) in remote {
                let dead: Vec<String> = agents
                    .iter()
                    .filter(|a| missing.iter().any(|m| m == a.name.as_str()))
                    .map(|a| systemd::agent_unit(a.name.as_str()))
                    .collect();
                if !dead.is_empty() {
                    remote_systemctl(h, "restart", &dead)?;
                }
            }
            let report = full_report(ctx, roster, false, ps::DEFAULT_STALE_AFTER)?;
            missing = report
                .agents
                .iter()
                .filter(|r| r.managed && names.contains(&r.name.as_str()) && !r.pane_alive)
                .map(|r| r.name.clone())
                .collect();
        }
    }
    Ok(report_units(
        p,
        verb,
        &done_units,
        &missing,
        "see `mosaic fleet ps`",
    ))
}

fn status(ctx: &Ctx, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let mut units = vec![systemd::HOLDER_UNIT.to_string()];
    units.extend(
        roster
            .agents
            .iter()
            .filter(|a| a.is_local())
            .map(|a| systemd::agent_unit(a.name.as_str())),
    );
    systemd::check_manager()?;
    let states = systemd::show(&units)?;
    let rows: Vec<systemd::UnitState> = units
        .iter()
        .map(|u| {
            states
                .get(u)
                .cloned()
                .unwrap_or_else(|| systemd::UnitState {
                    id: u.clone(),
                    ..Default::default()
                })
        })
        .collect();
    let mut rows = rows;
    // Other hosts: their units from one snapshot each (in parallel).
    let mut hosts_down = Vec::new();
    for res in ps::gather_hosts(&roster) {
        let Some(h) = roster.host(&res.key) else {
            continue;
        };
        let mut ids = vec![systemd::HOLDER_UNIT.to_string()];
        ids.extend(
            roster
                .agents_on(&res.key)
                .map(|a| systemd::agent_unit(a.name.as_str())),
        );
        match &res.outcome {
            Ok(snap) => {
                for u in ids {
                    let mut st = snap
                        .units
                        .as_ref()
                        .and_then(|m| m.get(&u).cloned())
                        .unwrap_or_else(|| systemd::UnitState {
                            id: u.clone(),
                            ..Default::default()
                        });
                    st.id = format!("{u}@{}", h.name);
                    rows.push(st);
                }
            }
            Err(e) => hosts_down.push(serde_json::json!({"host": h.name, "status": e.status.as_str(), "error": e.message})),
        }
    }
    let all_active = rows.iter().all(|r| r.active()) && hosts_down.is_empty();
    if p.json {
        p.doc(
            crate::report::Doc::FleetStatus,
            &serde_json::json!({"units": rows, "hosts_down": hosts_down, "all_active": all_active}),
        );
    } else {
        let w = rows.iter().map(|r| r.id.len()).max().unwrap_or(4).max(4);
        p.out(&format!(
            "{:w$}  {:9}  {:10}  {:8}  ENABLED",
            "UNIT", "LOAD", "ACTIVE", "SUB"
        ));
        for r in &rows {
            let code = if r.active() { "32" } else { "31" };
            let active = format!("{:10}", r.active_state);
            p.out(&format!(
                "{:w$}  {:9}  {}  {:8}  {}",
                r.id,
                r.load_state,
                p.paint(code, &active),
                r.sub_state,
                r.unit_file_state
            ));
        }
        for h in &hosts_down {
            println!(
                "{} {}",
                p.paint("31", h["status"].as_str().unwrap_or("?")),
                h["error"].as_str().unwrap_or("")
            );
        }
    }
    Ok(if all_active { 0 } else { 1 })
}

// ---- verify / ps ----

fn verify(ctx: &Ctx, stale_after: u64, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let report = full_report(ctx, &roster, false, stale_after)?;
    let mut results = Vec::new();
    for r in report
        .agents
        .iter()
        .filter(|r| r.managed && r.state != "remote")
    {
        let why = verify_problem(&report, r, stale_after);
        results.push((r.name.clone(), why));
    }
    let bad = results.iter().filter(|(_, w)| w.is_some()).count();
    let hosts_down: Vec<&ps::HostView> = report.hosts.iter().filter(|h| h.status != "ok").collect();
    if p.json {
        let v: Vec<_> = results
            .iter()
            .map(|(n, w)| {
                serde_json::json!({
                    "agent": n,
                    "ok": w.is_none(),
                    "flag": w.as_ref().map(|(f, _)| f),
                    "problem": w.as_ref().map(|(_, m)| m),
                })
            })
            .collect();
        p.doc(crate::report::Doc::FleetVerify, &serde_json::json!({"agents": v, "hosts": report.hosts, "stale_after": stale_after, "ok": bad == 0 && hosts_down.is_empty()}));
    } else {
        for h in &hosts_down {
            println!(
                "{} host {}: {}",
                p.paint("31", &h.status),
                h.name,
                h.error.as_deref().unwrap_or("")
            );
        }
        for (n, w) in &results {
            match w {
                None => p.line(&format!("{} {n}", p.paint("32", "ok"))),
                Some((flag, w)) => p.out(&format!("{} {n}: {w}", p.paint("31", flag))),
            }
        }
        p.line(&format!(
            "{} of {} agents have their session and are healthy",
            results.len() - bad,
            results.len()
        ));
    }
    Ok(if bad == 0 { 0 } else { 1 })
}

/// Why `fleet verify` fails an agent: `(FLAG, one-line reason)`, or `None`.
fn verify_problem(
    report: &ps::Report,
    r: &ps::Record,
    stale_after: u64,
) -> Option<(&'static str, String)> {
    if r.state == "unknown" {
        let h = report.hosts.iter().find(|h| h.name == r.host);
        return Some((
            "UNKNOWN",
            format!(
                "host {} is {}{}",
                r.host,
                r.host_status.as_deref().unwrap_or("?"),
                h.and_then(|h| h.error.as_ref())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if !r.pane_alive {
        return Some(if r.session {
            (
                "DEAD",
                format!(
                    "its pane's process has exited; see `mosaic agent logs {}`",
                    r.name
                ),
            )
        } else {
            (
                "MISSING",
                format!(
                    "no session ={} on {}",
                    r.name,
                    tmux::where_(r.socket.as_deref())
                ),
            )
        });
    }
    let has = |f: &str| r.flags.iter().any(|x| x == f);
    if has("DRIFT") {
        return Some((
            "DRIFT",
            format!(
                "the pane runs {}, not {}; fix MOSAIC_AGENT_COMMAND in {} or restart it",
                r.current_command.as_deref().unwrap_or("?"),
                r.expected_command.as_deref().unwrap_or("?"),
                format_args!("fleet/agents/{}.env", r.name)
            ),
        ));
    }
    if has("STALE") {
        let why = match (&r.heartbeat, &r.heartbeat_problem) {
            (Some(h), _) => format!("last heartbeat {}s ago", h.age_seconds),
            (None, Some(e)) => e.clone(),
            (None, None) => "no heartbeat".into(),
        };
        return Some((
            "STALE",
            format!("{why} (more than --stale-after {stale_after}s)"),
        ));
    }
    None
}

/// The whole fleet's report: this machine's snapshot, and every other
/// host's (one connection each, in parallel), joined.
fn full_report(
    ctx: &Ctx,
    roster: &Roster,
    with_units: bool,
    stale_after: u64,
) -> Result<ps::Report> {
    let (local, remote) = std::thread::scope(|sc| {
        let remote = sc.spawn(|| ps::gather_hosts(roster));
        let local = ps::snapshot(&ctx.paths.home, roster, with_units);
        (local, remote.join().expect("hosts thread"))
    });
    let report = ps::join(roster, &ctx.roster_path, &local?, stale_after);
    Ok(ps::join_hosts(
        roster,
        &ctx.roster_path,
        report,
        &remote,
        stale_after,
    ))
}

fn fleet_ps(ctx: &Ctx, stale_after: u64, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let report = full_report(ctx, &roster, true, stale_after)?;
    if p.json {
        p.doc(crate::report::Doc::FleetPs, &report);
    } else {
        p.raw(ps::table(&report, &|c, s| p.paint(c, s)).as_bytes());
        for w in &report.warnings {
            p.warn(w);
        }
    }
    Ok(0)
}
