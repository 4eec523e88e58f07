//! Output: human lines (colour only on a TTY and never with `NO_COLOR`),
//! `--json` documents, and `--quiet`.

use mosaic_engine::sync::{Change, SyncReport};
use serde::Serialize;
use std::io::IsTerminal;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// One JSON document on stdout.
    pub json: bool,
    /// Only problems.
    pub quiet: bool,
    /// ANSI colour.
    pub color: bool,
}

impl Printer {
    /// A printer for the given flags, detecting the terminal.
    pub fn new(json: bool, quiet: bool) -> Printer {
        let color =
            !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer { json, quiet, color }
    }

    /// Colours `s` with the ANSI code `code` when colour is on.
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Prints a serialisable value as pretty JSON.
    pub fn json_out<T: Serialize>(&self, value: &T) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("serialisable")
        );
    }

    /// Prints a human line unless quiet.
    pub fn line(&self, s: &str) {
        if !self.quiet && !self.json {
            println!("{s}");
        }
    }

    /// Prints a warning to stderr (also when quiet).
    pub fn warn(&self, s: &str) {
        eprintln!("{} {s}", self.paint("33", "warning:"));
    }

    /// Prints a sync report.
    pub fn sync_report(&self, r: &SyncReport) {
        if self.json {
            self.json_out(r);
            return;
        }
        if let Some(id) = &r.recovered {
            self.warn(&format!(
                "an interrupted run was rolled back first (backup {id})"
            ));
        }
        for c in &r.changes {
            if c.quiet {
                continue;
            }
            let problem = matches!(c.action.as_str(), "conflict" | "blocked");
            if self.quiet && !problem {
                continue;
            }
            println!("{}", self.change_line(c));
        }
        for w in &r.warnings {
            self.warn(w);
        }
        if self.quiet {
            return;
        }
        let verb = if r.dry_run { "would change" } else { "changed" };
        let counts: Vec<String> = r.summary.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let from = r.from_version.as_deref().unwrap_or("none");
        if let Some(g) = r.rolled_back {
            let verb = if r.dry_run {
                "would roll back"
            } else {
                "rolled back"
            };
            print!("{verb} generation {g}: ");
        }
        let mut s = if counts.is_empty() {
            format!(
                "mosaic {from} → {}: up to date, nothing to do",
                r.to_version
            )
        } else {
            format!(
                "mosaic {from} → {}: {verb} {}",
                r.to_version,
                counts.join(", ")
            )
        };
        if let Some(b) = &r.backup {
            s.push_str(&format!("; backup {b}"));
        }
        println!("{s}");
    }

    fn change_line(&self, c: &Change) -> String {
        let code = match c.action.as_str() {
            "created" | "seeded" => "32",
            "updated" | "migrated" => "36",
            "deleted" => "31",
            "conflict" | "blocked" => "1;33",
            _ => "0",
        };
        let verb = self.paint(code, &c.action);
        match (&c.action[..], &c.detail) {
            ("conflict", Some(d)) => format!("{verb} {} {d}", c.path),
            (_, Some(d)) => format!("{verb} {} ({d})", c.path),
            (_, None) => format!("{verb} {}", c.path),
        }
    }
}
