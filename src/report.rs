//! Output: human lines (colour only on a TTY and never with `NO_COLOR`),
//! `--json` documents, and `--quiet`.
//!
//! Every byte mosaic prints to stdout goes through [`Printer::out`] /
//! [`Printer::raw`], writes that return their errors instead of panicking
//! (`println!` panics on a closed or full stdout). The first error is kept
//! and later output is dropped; [`finish`] flushes and hands it to
//! `commands::dispatch`, which decides once what a closed (`EPIPE`) or full
//! (`ENOSPC`) stdout means. Commands that changed something say so with
//! [`landed`], so a report that could not be printed still tells that the
//! change is in place.

use mosaic_engine::sync::{Change, SyncReport};
use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;

/// The first error writing stdout, if any.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);
/// What this run changed, once it has (`update`, `install`, …).
static LANDED: Mutex<Option<String>> = Mutex::new(None);

/// Writes `bytes` to stdout unless an earlier write failed; keeps the first
/// error.
fn write_stdout(bytes: &[u8]) {
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes) {
        *failed = Some(e);
    }
}

/// Flushes stdout and returns the first error writing it, if any.
pub fn finish() -> Option<std::io::Error> {
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none() {
        if let Err(e) = std::io::stdout().lock().flush() {
            *failed = Some(e);
        }
    }
    failed.take()
}

/// Records that `what` (`the update`, `the fleet edit`, …) has landed: the
/// files are changed whatever happens to the report.
pub fn landed(what: &str) {
    *LANDED.lock().unwrap_or_else(|e| e.into_inner()) = Some(what.to_string());
}

/// What [`landed`] recorded.
pub fn what_landed() -> Option<String> {
    LANDED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// One JSON document on stdout.
    pub json: bool,
    /// Only problems.
    pub quiet: bool,
    /// ANSI colour on stdout.
    pub color: bool,
    /// ANSI colour on stderr (judged on its own: a redirected log gets none).
    pub color_err: bool,
}

/// `--color`: when to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set (non-empty); `CLICOLOR_FORCE`
    /// (non-empty) forces it.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl std::str::FromStr for ColorWhen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ColorWhen::Auto),
            "always" => Ok(ColorWhen::Always),
            "never" => Ok(ColorWhen::Never),
            _ => Err(format!(
                "unknown colour choice {s:?}: use auto, always or never"
            )),
        }
    }
}

/// Whether a stream gets colour: anstream's rules (NO_COLOR non-empty,
/// CLICOLOR_FORCE, CLICOLOR, TERM, the stream's own terminal).
fn colour_for<S: anstream::stream::RawStream>(when: ColorWhen, stream: &S) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => !matches!(
            anstream::AutoStream::choice(stream),
            anstream::ColorChoice::Never
        ),
    }
}

impl Printer {
    /// A printer for the given flags, judging stdout and stderr each on
    /// its own terminal.
    pub fn new(json: bool, quiet: bool, when: ColorWhen) -> Printer {
        Printer {
            json,
            quiet,
            color: !json && colour_for(when, &std::io::stdout()),
            color_err: colour_for(when, &std::io::stderr()),
        }
    }

    /// Colours `s` for stderr.
    pub fn paint_err(&self, code: &str, s: &str) -> String {
        if self.color_err {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
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
        let mut text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the report: {e}\"}}"));
        text.push('\n');
        write_stdout(text.as_bytes());
    }

    /// Prints one line to stdout (always; the caller decides about quiet).
    pub fn out(&self, s: &str) {
        let mut line = String::with_capacity(s.len() + 1);
        line.push_str(s);
        line.push('\n');
        write_stdout(line.as_bytes());
    }

    /// Prints bytes to stdout as they are.
    pub fn raw(&self, bytes: &[u8]) {
        write_stdout(bytes);
    }

    /// Prints a human line unless quiet.
    pub fn line(&self, s: &str) {
        if !self.quiet && !self.json {
            self.out(s);
        }
    }

    /// Prints a warning to stderr (also when quiet).
    pub fn warn(&self, s: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "{} {s}",
            self.paint_err("33", "warning:")
        );
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
            let problem = c.action.is_problem();
            if self.quiet && !problem {
                continue;
            }
            self.out(&self.change_line(c));
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
        let mut s = String::new();
        if let Some(g) = r.rolled_back {
            let verb = if r.dry_run {
                "would roll back"
            } else {
                "rolled back"
            };
            s.push_str(&format!("{verb} generation {g}: "));
        }
        s.push_str(&if counts.is_empty() {
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
        });
        if let Some(b) = &r.backup {
            s.push_str(&format!("; backup {b}"));
        }
        self.out(&s);
    }

    fn change_line(&self, c: &Change) -> String {
        let code = match c.action.as_str() {
            "created" | "seeded" => "32",
            "updated" | "migrated" => "36",
            "deleted" => "31",
            "conflict" | "blocked" => "1;33",
            _ => "0",
        };
        let verb = self.paint(code, c.action.as_str());
        match (c.action.as_str(), &c.detail) {
            ("conflict", Some(d)) => format!("{verb} {} {d}", c.path),
            (_, Some(d)) => format!("{verb} {} ({d})", c.path),
            (_, None) => format!("{verb} {}", c.path),
        }
    }
}
