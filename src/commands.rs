//! Command handlers: turn parsed CLI arguments into library calls and
//! printed output, and map errors to exit codes. No decisions live here.

use crate::cli::{Cli, Command, Global, SyncArgs};
use crate::report::{Doc, Printer};
use mosaic_engine::error::{Error, Result};
use mosaic_engine::paths::Paths;
use mosaic_engine::session::Session;
use mosaic_engine::sync::{self, SyncOptions};

/// Runs the parsed command line; returns the process exit code.
///
/// Output errors are decided here, once: a closed stdout (`EPIPE`, as in
/// `mosaic status | head -1`) ends quietly with the command's own code; any
/// other (`ENOSPC` on `> /dev/full`) is one line on stderr and exit 7, and
/// when the command had already changed the files the line says so.
pub fn dispatch(cli: Cli) -> i32 {
    use std::io::Write;
    let printer = Printer::new(cli.global.json, cli.global.quiet, cli.global.color);
    if cli.global.verbose {
        mosaic_fleet::runner::set_trace(|cmd, took, code| {
            let how = match code {
                Some(c) => format!("exit {c}"),
                None => "killed at its deadline".to_string(),
            };
            let _ = writeln!(
                std::io::stderr(),
                "mosaic: ran {cmd} ({} ms, {how})",
                took.as_millis()
            );
        });
    }
    let code = match run(&cli, &printer) {
        Ok(code) => code,
        Err(e) => {
            // One document per run: a command that printed its report
            // before failing (a blocked update) says it there.
            if printer.json && !crate::report::printed_doc() {
                printer.doc(
                    crate::report::Doc::Error,
                    &serde_json::json!({ "error": one_line(&e), "exit_code": exit_code(&e) }),
                );
            }
            let _ = writeln!(std::io::stderr(), "mosaic: {}", one_line(&e));
            exit_code(&e)
        }
    };
    match crate::report::finish() {
        None => code,
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Some(e) => {
            let done = match crate::report::what_landed() {
                Some(what) => format!("; {what} was applied all the same (see `mosaic status`)"),
                None => String::new(),
            };
            let _ = writeln!(
                std::io::stderr(),
                "mosaic: cannot write to stdout: {e}{done}; free space or redirect the output elsewhere"
            );
            EXIT_TROUBLE
        }
    }
}

/// Exit code for trouble (an I/O error, damaged records, a program past its
/// deadline, an unwritable stdout), kept apart from 1, "differences found".
pub const EXIT_TROUBLE: i32 = 7;

/// Exit code of an `update` that refused a newer release it could not
/// verify (bad checksum or signature); the framework sync itself ran.
pub const EXIT_REFUSED_RELEASE: i32 = 8;

/// The process exit code for an error (documented in
/// docs/install-and-update.md and the `--help` text).
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Input(_) => 2,
        Error::Blocked(_) => 3,
        Error::RolledBack(_) | Error::RollbackFailed { .. } => 4,
        Error::Locked { .. } => 5,
        Error::Downgrade { .. } => 6,
        Error::Io { .. } | Error::Corrupt { .. } | Error::Timeout { .. } => EXIT_TROUBLE,
    }
}

fn one_line(e: &Error) -> String {
    e.to_string().replace('\n', " ")
}

fn paths(g: &Global) -> Result<Paths> {
    Paths::resolve(g.home.as_deref())
}

fn run(cli: &Cli, p: &Printer) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Install(args) => run_sync(g, p, args, "install", false),
        Command::Update(args) => {
            use crate::selfupdate::Outcome;
            let (outcome, checked) = if args.offline {
                (Outcome::Continue, crate::selfupdate::offline_outcome())
            } else {
                crate::selfupdate::check_and_update(args, g, p)?
            };
            let sync = |p: &Printer| {
                run_sync_with(g, p, &args.sync, "update", args.relaunch, Some(&checked))
            };
            match outcome {
                Outcome::Reexeced(code) => Ok(code),
                Outcome::Continue => sync(p),
                // The sync of this binary's framework still runs; the exit
                // code says a release was refused (tampered or unsigned).
                Outcome::Refused => {
                    sync(p)?;
                    Ok(EXIT_REFUSED_RELEASE)
                }
            }
        }
        Command::Fleet { command } => crate::fleet::run_fleet(command, g, p),
        Command::Agent { command } => crate::fleet::run_agent(command, g, p),
        Command::Doctor { roster } => crate::doctor::doctor(g, roster, p),
        Command::Status => {
            let (from, to, lines) = sync::status(&Session::inspect(paths(g)?)?, &Tmux)?;
            if p.json {
                let paths: Vec<_> = lines
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "path": l.path,
                            "code": l.code,
                            "state": status_state(&l.code),
                            "unit": l.path.starts_with('/'),
                        })
                    })
                    .collect();
                p.doc(
                    Doc::Status,
                    &serde_json::json!({
                        "installed": from.map(|v| v.to_string()),
                        "source": to.to_string(),
                        "clean": lines.is_empty(),
                        "paths": paths,
                    }),
                );
            } else {
                for l in &lines {
                    p.out(&format!(
                        "{} {}  ({})",
                        p.paint("33", &l.code),
                        l.path,
                        l.what
                    ));
                }
                if lines.is_empty() {
                    p.line("clean: the install matches this release");
                }
            }
            Ok(if lines.is_empty() { 0 } else { 1 })
        }
        Command::Verify => {
            let lines = sync::verify(&Session::inspect(paths(g)?)?)?;
            let bad: Vec<_> = lines.iter().filter(|l| l.state != "ok").collect();
            if p.json {
                let problems: Vec<_> = bad
                    .iter()
                    .map(|l| {
                        let (state, detail) = verify_state(&l.state);
                        let mut v = serde_json::json!({ "path": l.path, "state": state });
                        if let Some(d) = detail {
                            v["detail"] = d.into();
                        }
                        v
                    })
                    .collect();
                p.doc(
                    Doc::Verify,
                    &serde_json::json!({ "files": lines.len(), "problems": problems }),
                );
            } else {
                for l in &bad {
                    p.out(&format!("{} {}", p.paint("31", &l.state), l.path));
                }
                p.line(&format!(
                    "{} files checked, {} problem(s)",
                    lines.len(),
                    bad.len()
                ));
            }
            Ok(if bad.is_empty() { 0 } else { 1 })
        }
        Command::Diff {
            paths: filter,
            conflict,
        } => {
            let out = sync::diff(
                &Session::inspect(paths(g)?)?,
                filter,
                conflict.conflict,
                &Tmux,
            )?;
            if p.json {
                p.doc(Doc::Diff, &serde_json::json!({ "diff": out }));
            } else {
                p.raw(out.as_bytes());
            }
            Ok(0)
        }
        Command::Rollback { id, dry, conflict } => {
            let paths = paths(g)?;
            let current = || mosaic_engine::source::Source::from_env(None, false);
            if dry.dry_run {
                let session = Session::inspect(paths)?;
                let mut plan = mosaic_engine::generations::plan_rollback(
                    &session,
                    id.as_deref(),
                    conflict.conflict,
                    current()?,
                )?;
                plan.report.dry_run = true;
                p.sync_report(&plan.report);
                return blocked_code(&plan.report);
            }
            let session = Session::lock(paths)?;
            let plan = mosaic_engine::generations::plan_rollback(
                &session,
                id.as_deref(),
                conflict.conflict,
                current()?,
            )?;
            if plan.report.blocked > 0 {
                p.sync_report(&plan.report);
                return blocked_code(&plan.report);
            }
            let units_changed = plan.units_changed();
            let mut report = plan.execute()?;
            crate::report::landed("the rollback");
            if units_changed {
                match mosaic_fleet::systemd::daemon_reload_after_sync() {
                    Ok(()) => report.daemon_reload = true,
                    Err(w) => report.warnings.push(w),
                }
            }
            p.sync_report(&report);
            Ok(0)
        }
        Command::Resolve {
            path,
            keep: _,
            take,
            dry,
        } => {
            use mosaic_engine::generations::{self, Resolution};
            let how = if *take {
                Resolution::Take
            } else {
                Resolution::Keep
            };
            let paths = paths(g)?;
            let out = if dry.dry_run {
                generations::plan_resolve(&Session::inspect(paths)?, path, how)?
            } else {
                generations::resolve(&Session::lock(paths)?, path, how)?
            };
            if p.json {
                p.doc(
                    Doc::Resolve,
                    &serde_json::json!({"dry_run": dry.dry_run, "resolve": out}),
                );
            } else {
                let verb = match (dry.dry_run, how) {
                    (true, Resolution::Keep) => "would keep yours",
                    (true, Resolution::Take) => "would take the release's copy",
                    (false, Resolution::Keep) => "kept yours",
                    (false, Resolution::Take) => "took the release's copy",
                };
                let mut line = format!("{verb}: {path}");
                if let Some(b) = &out.backup {
                    line.push_str(&format!("; backup {b}"));
                }
                p.line(&line);
            }
            Ok(0)
        }
        Command::Backups => {
            use mosaic_engine::txn::Kind;
            let list = mosaic_engine::txn::list(&paths(g)?)?;
            if p.json {
                p.doc(Doc::Backups, &serde_json::json!({"backups": list}));
            } else {
                for b in &list {
                    let what = match b.kind {
                        Kind::Generation => format!("gen {:<3}", b.generation),
                        Kind::FleetEdit => "fleet  ".to_string(),
                        Kind::Resolve => "resolve".to_string(),
                    };
                    let versions = match b.kind {
                        Kind::Generation => format!(
                            "  {} → {}",
                            b.from_version.as_deref().unwrap_or("none"),
                            b.to_version
                        ),
                        _ => String::new(),
                    };
                    p.out(&format!(
                        "{what}  {}  {}{versions}  ({} paths){}",
                        b.id,
                        b.command,
                        b.records.len(),
                        if b.undone { "  undone" } else { "" }
                    ));
                }
                if list.is_empty() {
                    p.line("no backups yet");
                }
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            p.raw(&crate::complete::script(*shell));
            Ok(0)
        }
        Command::Man(args) => crate::manpages::run(args, p),
        Command::Docs { topic } => crate::help::run(topic.as_deref(), p),
    }
}

/// What the sync asks of the world outside the files: tmux, through the
/// fleet crate's runner (a tmux past its deadline ends the planning, and
/// the lock is released).
struct Tmux;

impl sync::World for Tmux {
    fn legacy_sessions(&self) -> Result<Vec<String>> {
        mosaic_fleet::legacy::legacy_sessions()
    }
}

/// `install` / `update`: the pipeline. A dry run opens a read-only session
/// (no lock file, no recovery, no way to write), renders the plan and stops;
/// a real run locks first, reads and plans under the lock, renders, then
/// executes the plan it rendered.
fn run_sync(
    g: &Global,
    p: &Printer,
    args: &SyncArgs,
    command: &str,
    relaunch: bool,
) -> Result<i32> {
    run_sync_with(g, p, args, command, relaunch, None)
}

/// [`run_sync`], with what `update`'s release check did for its report.
fn run_sync_with(
    g: &Global,
    p: &Printer,
    args: &SyncArgs,
    command: &str,
    relaunch: bool,
    checked: Option<&crate::report::SelfUpdate>,
) -> Result<i32> {
    let opts = SyncOptions {
        dry_run: args.dry.dry_run,
        conflict: args.conflict.conflict,
        allow_downgrade: args.allow_downgrade,
        command: command.to_string(),
        relaunch,
        rollback: false,
        units_for_other_home: args.units,
    };
    let paths = paths(g)?;
    if opts.dry_run {
        let session = Session::inspect(paths)?;
        let plan = sync::plan_sync(&session, &opts, &Tmux, &mut |paths| {
            mosaic_engine::source::Source::from_env(Some(&paths.state), false)
        })?;
        p.sync_report_with(&plan.report, checked);
        return blocked_code(&plan.report);
    }
    let session = Session::lock(paths)?;
    let plan = sync::plan_sync(&session, &opts, &Tmux, &mut |paths| {
        mosaic_engine::source::Source::from_env(Some(&paths.state), true)
    })?;
    if plan.report.blocked > 0 {
        p.sync_report_with(&plan.report, checked);
        return blocked_code(&plan.report);
    }
    let units_changed = plan.units_changed();
    let fleet_installed = plan.fleet_installed();
    let before = relaunch.then(|| mosaic_fleet::relaunch::before(&plan.legacy_live));
    let stop_legacy = plan.stop_legacy;
    if stop_legacy {
        if let Some(b) = &before {
            mosaic_fleet::relaunch::stop(b)?;
        }
    }
    let paths = plan.paths().clone();
    let mut report = match plan.execute() {
        Ok(r) => {
            crate::report::landed(&format!("the {command}"));
            r
        }
        Err(e) => {
            if let (true, Some(b)) = (stop_legacy, &before) {
                // The files are back as they were: bring the fleet back too,
                // on the socket they name.
                let _ = mosaic_fleet::relaunch::after(&paths, b);
            }
            return Err(e);
        }
    };
    if units_changed || (relaunch && fleet_installed) {
        match mosaic_fleet::systemd::daemon_reload_after_sync() {
            Ok(()) => report.daemon_reload = true,
            Err(w) => report.warnings.push(w),
        }
    }
    let mut relaunch_plan = None;
    if let Some(b) = &before {
        // Only what the sync changed: units/scripts → the whole fleet, an
        // env file → that agent, nothing → nobody.
        let changed: Vec<&str> = report
            .changes
            .iter()
            .filter(|c| !c.action.is_problem() && c.action != mosaic_engine::sync::Verb::KeptYours)
            .map(|c| c.path.as_str())
            .collect();
        let r = mosaic_fleet::relaunch::to_relaunch(b, &changed, units_changed, stop_legacy);
        let (results, warnings) = mosaic_fleet::relaunch::after_only(&paths, &r);
        report.relaunch = results;
        report.warnings.extend(warnings);
        relaunch_plan = Some(r);
    }
    p.sync_report_with(&report, checked);
    if let Some(r) = &relaunch_plan {
        if !r.holder && r.agents.is_empty() {
            p.line("relaunch: no fleet unit or env file changed; no agent restarted");
        } else if r.holder {
            p.line("relaunch: restarted the holder (units or fleet scripts changed)");
        }
        for a in &report.relaunch {
            p.line(&format!(
                "relaunched {}{}",
                a.agent,
                if a.session_up { "" } else { " (no session)" }
            ));
        }
    }
    let down: Vec<&str> = report
        .relaunch
        .iter()
        .filter(|a| !a.session_up)
        .map(|a| a.agent.as_str())
        .collect();
    if !down.is_empty() {
        return Err(Error::Input(format!(
            "relaunch incomplete: no tmux session for {}; see `mosaic fleet status` and `journalctl --user -u mosaic-agent@NAME`",
            down.join(", ")
        )));
    }
    Ok(0)
}

/// The word for a status letter in `status --json` (see
/// `mosaic_engine::sync::StatusLine`).
fn status_state(code: &str) -> &'static str {
    match code {
        "A" => "create",
        "U" => "update",
        "M" => "modified",
        "C" => "conflict",
        "D" => "delete",
        "O" => "orphaned",
        "S" => "seed",
        "B" => "blocked",
        _ => "other",
    }
}

/// A `mosaic_engine::sync::VerifyLine` state as an enum word and its
/// detail (`mode 644, expected 755` → `mode` + the rest; `blocked by D` →
/// `blocked` + `D`).
fn verify_state(state: &str) -> (&'static str, Option<&str>) {
    match state {
        "ok" => ("ok", None),
        "modified" => ("modified", None),
        "missing" => ("missing", None),
        "not a file" => ("not-a-file", None),
        s => match (s.strip_prefix("mode "), s.strip_prefix("blocked by ")) {
            (Some(d), _) => ("mode", Some(d)),
            (_, Some(d)) => ("blocked", Some(d)),
            _ => ("other", Some(s)),
        },
    }
}

fn blocked_code(report: &sync::SyncReport) -> Result<i32> {
    if report.blocked > 0 {
        return Err(Error::Blocked(report.blocked));
    }
    Ok(0)
}
