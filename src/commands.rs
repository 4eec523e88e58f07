//! Command handlers: turn parsed CLI arguments into library calls and
//! printed output, and map errors to exit codes. No decisions live here.

use crate::cli::{Cli, Command, Global};
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::report::Printer;
use crate::sync::{self, SyncOptions};
use clap::CommandFactory;

/// Runs the parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> i32 {
    let printer = Printer::new(cli.global.json, cli.global.quiet);
    match run(&cli, &printer) {
        Ok(code) => code,
        Err(e) => {
            if printer.json {
                printer.json_out(
                    &serde_json::json!({ "error": e.to_string(), "exit_code": e.exit_code() }),
                );
            }
            eprintln!("mosaic: {}", one_line(&e));
            e.exit_code()
        }
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
        Command::Install => run_sync(g, p, "install", false),
        Command::Update(args) => {
            if !args.offline {
                if let crate::selfupdate::Outcome::Reexeced(code) =
                    crate::selfupdate::check_and_update(args, g, p)?
                {
                    return Ok(code);
                }
            }
            run_sync(g, p, "update", args.relaunch)
        }
        Command::Fleet { command } => crate::fleet::run_fleet(command, g, p),
        Command::Agent { command } => crate::fleet::run_agent(command, g, p),
        Command::Status => {
            let (from, to, lines) = sync::status(paths(g)?)?;
            if p.json {
                p.json_out(&serde_json::json!({
                    "installed": from.map(|v| v.to_string()),
                    "source": to.to_string(),
                    "paths": lines,
                }));
            } else {
                for l in &lines {
                    println!("{} {}  ({})", p.paint("33", &l.code), l.path, l.what);
                }
                if lines.is_empty() {
                    p.line("clean: the install matches this release");
                }
            }
            Ok(if lines.is_empty() { 0 } else { 1 })
        }
        Command::Verify => {
            let lines = sync::verify(paths(g)?)?;
            let bad: Vec<_> = lines.iter().filter(|l| l.state != "ok").collect();
            if p.json {
                p.json_out(&serde_json::json!({ "files": lines.len(), "problems": bad }));
            } else {
                for l in &bad {
                    println!("{} {}", p.paint("31", &l.state), l.path);
                }
                p.line(&format!(
                    "{} files checked, {} problem(s)",
                    lines.len(),
                    bad.len()
                ));
            }
            Ok(if bad.is_empty() { 0 } else { 1 })
        }
        Command::Diff { paths: filter } => {
            let out = sync::diff(paths(g)?, filter, g.conflict)?;
            if p.json {
                p.json_out(&serde_json::json!({ "diff": out }));
            } else {
                print!("{out}");
            }
            Ok(0)
        }
        Command::Rollback { id } => {
            let (restored, backup) = sync::rollback(paths(g)?, id.as_deref())?;
            if p.json {
                p.json_out(&serde_json::json!({ "restored": restored, "backup": backup }));
            } else {
                p.line(&format!(
                    "restored backup {restored}; the state before the rollback is in {}",
                    backup.as_deref().unwrap_or("(nothing changed)")
                ));
            }
            Ok(0)
        }
        Command::Backups => {
            let list = crate::txn::list(&paths(g)?)?;
            if p.json {
                p.json_out(&list);
            } else {
                for b in &list {
                    println!(
                        "{}  {}  {} → {}  ({} paths)",
                        b.id,
                        b.command,
                        b.from_version.as_deref().unwrap_or("none"),
                        b.to_version,
                        b.records.len()
                    );
                }
                if list.is_empty() {
                    p.line("no backups yet");
                }
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "mosaic", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            man.render(&mut std::io::stdout())
                .map_err(|e| Error::io("stdout", e))?;
            Ok(0)
        }
    }
}

fn run_sync(g: &Global, p: &Printer, command: &str, relaunch: bool) -> Result<i32> {
    let opts = SyncOptions {
        dry_run: g.dry_run,
        conflict: g.conflict,
        allow_downgrade: g.allow_downgrade,
        command: command.to_string(),
        relaunch,
    };
    let report = sync::sync(paths(g)?, &opts)?;
    p.sync_report(&report);
    if report.blocked > 0 {
        return Err(Error::Blocked(report.blocked));
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
