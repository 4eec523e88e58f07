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
/// Whether a `--json` document has been printed.
static PRINTED_DOC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this run printed a `--json` document already.
pub fn printed_doc() -> bool {
    PRINTED_DOC.load(std::sync::atomic::Ordering::Relaxed)
}

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

/// The shape of a `--json` document: its `"kind"`, its version and its
/// schema (`docs/schemas/KIND.schema.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Doc {
    /// `install`, `update`, `rollback` (dry runs included).
    Sync,
    /// `status`.
    Status,
    /// `verify`.
    Verify,
    /// `diff`.
    Diff,
    /// `resolve`.
    Resolve,
    /// `backups`.
    Backups,
    /// `doctor`.
    Doctor,
    /// `fleet init`.
    FleetInit,
    /// `fleet add`.
    FleetAdd,
    /// `fleet remove`.
    FleetRemove,
    /// `fleet install`.
    FleetInstall,
    /// `fleet start`, `fleet stop`, `fleet restart`.
    FleetUnits,
    /// `fleet undo`.
    FleetUndo,
    /// `fleet status`.
    FleetStatus,
    /// `fleet verify`.
    FleetVerify,
    /// `fleet ps`.
    FleetPs,
    /// `fleet deploy`.
    FleetDeploy,
    /// `agent send`.
    AgentSend,
    /// `agent reset`.
    AgentReset,
    /// `agent tail`.
    AgentTail,
    /// `agent logs`.
    AgentLogs,
    /// `docs` (the topic list).
    DocsTopics,
    /// `docs TOPIC`.
    DocsTopic,
    /// `man --out DIR`.
    ManPages,
    /// Any command that failed: the error and the exit code.
    Error,
}

impl Doc {
    /// Every shape.
    pub const ALL: [Doc; 25] = [
        Doc::Sync,
        Doc::Status,
        Doc::Verify,
        Doc::Diff,
        Doc::Resolve,
        Doc::Backups,
        Doc::Doctor,
        Doc::FleetInit,
        Doc::FleetAdd,
        Doc::FleetRemove,
        Doc::FleetInstall,
        Doc::FleetUnits,
        Doc::FleetUndo,
        Doc::FleetStatus,
        Doc::FleetVerify,
        Doc::FleetPs,
        Doc::FleetDeploy,
        Doc::AgentSend,
        Doc::AgentReset,
        Doc::AgentTail,
        Doc::AgentLogs,
        Doc::DocsTopics,
        Doc::DocsTopic,
        Doc::ManPages,
        Doc::Error,
    ];

    /// The `"kind"` value (and the schema's file stem).
    pub fn name(self) -> &'static str {
        match self {
            Doc::Sync => "sync",
            Doc::Status => "status",
            Doc::Verify => "verify",
            Doc::Diff => "diff",
            Doc::Resolve => "resolve",
            Doc::Backups => "backups",
            Doc::Doctor => "doctor",
            Doc::FleetInit => "fleet-init",
            Doc::FleetAdd => "fleet-add",
            Doc::FleetRemove => "fleet-remove",
            Doc::FleetInstall => "fleet-install",
            Doc::FleetUnits => "fleet-units",
            Doc::FleetUndo => "fleet-undo",
            Doc::FleetStatus => "fleet-status",
            Doc::FleetVerify => "fleet-verify",
            Doc::FleetPs => "fleet-ps",
            Doc::FleetDeploy => "fleet-deploy",
            Doc::AgentSend => "agent-send",
            Doc::AgentReset => "agent-reset",
            Doc::AgentTail => "agent-tail",
            Doc::AgentLogs => "agent-logs",
            Doc::DocsTopics => "docs-topics",
            Doc::DocsTopic => "docs-topic",
            Doc::ManPages => "man-pages",
            Doc::Error => "error",
        }
    }

    /// The shape's version: bumped when a field changes meaning or goes.
    pub fn version(self) -> u32 {
        match self {
            // 2: `what` (a sentence) gave way to `state`, an enum.
            Doc::Status => 2,
            // 2: `state` is an enum word (`not-a-file`, `mode`, `blocked`),
            // what it says beyond that is in `detail`.
            Doc::Verify => 2,
            _ => 1,
        }
    }
}

/// `kind` and `version` added to the value's own fields (a `version` the
/// value carries wins: `fleet ps` and `fleet deploy` version their own
/// structs). A value that is not an object goes under `"value"`.
pub fn stamp(doc: Doc, value: serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("kind".into(), doc.name().into());
    out.insert("version".into(), doc.version().into());
    match value {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k != "kind" {
                    out.insert(k, v);
                }
            }
        }
        other => {
            out.insert("value".into(), other);
        }
    }
    serde_json::Value::Object(out)
}

/// What `mosaic update`'s release check did, for `update --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfUpdate {
    /// The outcome.
    pub outcome: SelfUpdateOutcome,
    /// This binary's version (for `updated`: the version replaced).
    pub current: String,
    /// The newer release seen (`would-update`, `updated`, `refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    /// Why it was skipped or refused (one line; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the release manifest (`release.json`) was read.
    pub manifest: bool,
}

/// The outcome of the release check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelfUpdateOutcome {
    /// No newer release for this target.
    UpToDate,
    /// `--dry-run`: a newer release exists; nothing was downloaded.
    WouldUpdate,
    /// A newer release verified and replaced this binary (reported by the
    /// new binary, which ran the sync).
    Updated,
    /// A newer release did not verify; the binary is untouched (exit 8).
    Refused,
    /// `--offline`.
    SkippedOffline,
    /// The release check is off (`MOSAIC_RELEASE_URL=off`).
    SkippedOff,
    /// The release URL does not parse.
    SkippedBadUrl,
    /// The release server could not be reached.
    Unreachable,
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

    /// Prints one `--json` document of shape `doc`: the value (an object)
    /// with `"kind"` (the shape's name) and `"version"` (the shape's
    /// version, unless the value carries its own) added. Keys print in
    /// sorted order. The shapes and
    /// their schemas are listed in docs/json.md.
    pub fn doc<T: Serialize>(&self, doc: Doc, value: &T) {
        let value = serde_json::to_value(value).unwrap_or_else(
            |e| serde_json::json!({ "error": format!("cannot render the report: {e}") }),
        );
        self.json_out(&stamp(doc, value));
    }

    /// Prints a serialisable value as pretty JSON, as it is. Private: every
    /// document goes through [`Printer::doc`], so it has a kind, a version
    /// and a schema.
    fn json_out<T: Serialize>(&self, value: &T) {
        let mut text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the report: {e}\"}}"));
        text.push('\n');
        PRINTED_DOC.store(true, std::sync::atomic::Ordering::Relaxed);
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
        self.sync_report_with(r, None)
    }

    /// Prints a sync report; `update` adds what its release check did.
    pub fn sync_report_with(&self, r: &SyncReport, self_update: Option<&SelfUpdate>) {
        if self.json {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let (Some(s), Some(obj)) = (self_update, v.as_object_mut()) {
                obj.insert(
                    "self_update".into(),
                    serde_json::to_value(s).unwrap_or_default(),
                );
            }
            self.doc(Doc::Sync, &v);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_adds_kind_and_version_and_keeps_a_value_version() {
        let v = stamp(
            Doc::Backups,
            serde_json::json!({"backups": [], "kind": "x"}),
        );
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"backups":[],"kind":"backups","version":1}"#
        );
        let v = stamp(Doc::FleetPs, serde_json::json!({"version": 7}));
        assert_eq!(v["version"], 7);
        assert_eq!(v["kind"], "fleet-ps");
        let v = stamp(Doc::Diff, serde_json::json!("text"));
        assert_eq!(v["value"], "text");
        assert_eq!(v["version"], 1);
    }

    #[test]
    fn kinds_are_unique_and_kebab_case() {
        let mut names: Vec<&str> = Doc::ALL.iter().map(|d| d.name()).collect();
        for d in Doc::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Doc::ALL.len());
    }
}
