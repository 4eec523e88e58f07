//! opencode (`opencode`, tested at 1.18.33): its screens, reset, process
//! shape and transcript.
//!
//! Screen: the prompt is a box of `┃`-prefixed lines closed by a
//! `╹▀▀▀…` line; its last `┃` line is the agent/model line
//! (`Build · Mock mock`), the lines above it the input. An empty box shows
//! a placeholder (`Ask anything… "…"`) on the home screen and nothing in a
//! session; a long paste shows `[Pasted ~40 lines]`. A running turn puts
//! `esc interrupt` in the line under the box. A tool call outside the
//! workdir raises `△ Permission required` with an `Allow once / Allow
//! always / Reject` row (it replaces the box).
//!
//! Process: one native process, `opencode` (~800 MiB RSS idle).
//!
//! Transcript: SQLite at `~/.local/share/opencode/opencode.db`
//! (`$XDG_DATA_HOME/opencode/`): tables `message` (JSON `data` with
//! `role`) and `part` (JSON `data` with `type`, `text`). mosaic reads it
//! with the `sqlite3` CLI ([`user_turns_query`]; no SQLite crate) and
//! [`user_turns`] parses that JSON. Without `sqlite3`, the screen signal is
//! the sent text drawn in a `┃` block above the box.

use super::{
    lines, DialogKind, ProcessShape, Reset, ScreenState, Transcript, TranscriptError,
    TranscriptFormat,
};
use serde_json::Value;
use std::path::Path;

/// `/new`: taken at once even while busy (it leaves the running turn).
pub const RESET: Reset = Reset {
    command: "/new",
    accepted_while_busy: true,
    refusal: None,
    confirm: "the home screen comes back (the logo over an empty box with its `Ask anything…` placeholder); the next message opens a new session in the database",
};

/// `~/.local/share/opencode/opencode.db` (SQLite).
pub const TRANSCRIPT: Transcript = Transcript {
    root_env: Some("XDG_DATA_HOME"),
    env_subdir: "opencode/opencode.db",
    root_in_home: ".local/share/opencode/opencode.db",
    files: "one database for every session (tables message, part)",
    format: TranscriptFormat::Sqlite,
};

/// One process, `opencode`.
pub fn process() -> ProcessShape {
    ProcessShape {
        pane_commands: &["opencode"],
        starting_commands: &[],
        daemon: None,
    }
}

/// The user text parts, oldest first, as JSON (`[{"session":…,"text":…}]`).
pub const USER_TURNS_SQL: &str =
    "SELECT m.session_id AS session, json_extract(p.data, '$.text') AS text \
FROM part p JOIN message m ON p.message_id = m.id \
WHERE json_extract(m.data, '$.role') = 'user' AND json_extract(p.data, '$.type') = 'text' \
AND coalesce(json_extract(p.data, '$.synthetic'), 0) = 0 \
ORDER BY m.time_created, p.id";

/// `sqlite3 -readonly -json DB SQL`: its stdout is what [`user_turns`] reads.
pub fn user_turns_query(db: &Path) -> Vec<String> {
    vec![
        "sqlite3".to_string(),
        "-readonly".to_string(),
        "-json".to_string(),
        db.to_string_lossy().into_owned(),
        USER_TURNS_SQL.to_string(),
    ]
}

fn box_lines<'a>(ls: &[&'a str]) -> Option<(usize, Vec<&'a str>)> {
    let end = ls.iter().rposition(|l| l.trim_start().starts_with("╹▀"))?;
    let mut start = end;
    // Climb the box's `┃` lines; a `┃ … ┃` row is the command popup drawn
    // over the conversation, not the box.
    while start > 0 {
        let t = ls[start - 1].trim();
        let popup = t.chars().count() > 1 && t.ends_with('┃');
        if !t.starts_with('┃') || popup {
            break;
        }
        start -= 1;
    }
    let inner: Vec<&str> = ls[start..end]
        .iter()
        .map(|l| l.trim_start().trim_start_matches('┃').trim())
        .collect();
    Some((end, inner))
}

/// What an opencode pane shows.
pub fn screen_state(capture: &str) -> ScreenState {
    let ls = lines(capture);
    if let Some(i) = ls.iter().rposition(|l| l.contains("Permission required")) {
        let what = ls[i + 1..]
            .iter()
            .map(|l| l.trim_start().trim_start_matches('┃').trim())
            .find(|l| !l.is_empty())
            .unwrap_or("Permission required");
        if ls[i..].iter().any(|l| l.contains("Allow once")) {
            return ScreenState::PermissionPrompt {
                what: what.trim_start_matches('←').trim().to_string(),
            };
        }
    }
    if capture.contains("Connect a provider") || capture.contains("Select provider") {
        return ScreenState::Dialog {
            kind: DialogKind::Login,
            what: "connect a provider".into(),
        };
    }
    let Some((end, inner)) = box_lines(&ls) else {
        return ScreenState::Unknown;
    };
    // The last inner line is the agent/model line.
    let input = &inner[..inner.len().saturating_sub(1)];
    if let Some(shown) = input
        .iter()
        .find(|l| !l.is_empty() && !l.starts_with("Ask anything…"))
    {
        return ScreenState::InputPending {
            shown: shown.to_string(),
        };
    }
    if ls.get(end + 1).is_some_and(|l| l.contains("esc interrupt")) {
        ScreenState::Busy
    } else {
        ScreenState::Ready
    }
}

/// After `/new`: the home screen (its placeholder), Ready.
pub fn reset_confirmed(capture: &str) -> bool {
    screen_state(capture) == ScreenState::Ready && capture.contains("Ask anything…")
}

/// The user messages from [`user_turns_query`]'s output (all sessions,
/// oldest first). Empty output (no rows) is no turns.
pub fn user_turns(json: &[u8]) -> Result<Vec<String>, TranscriptError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let rows: Value = serde_json::from_slice(json)
        .map_err(|e| TranscriptError::BadDocument(format!("sqlite3 -json output: {e}")))?;
    let rows = rows
        .as_array()
        .ok_or_else(|| TranscriptError::BadDocument("sqlite3 -json output is not a list".into()))?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get("text").and_then(Value::as_str).map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens() {
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/ready.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/after-reply.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/pending-short.txt")),
            ScreenState::InputPending {
                shown: "hello there".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/pending-long.txt")),
            ScreenState::InputPending {
                shown: "[Pasted ~40 lines]".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/busy.txt")),
            ScreenState::Busy
        );
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/busy-typed.txt")),
            ScreenState::InputPending {
                shown: "/new".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/opencode/permission.txt")),
            ScreenState::PermissionPrompt {
                what: "Access external directory /tmp".into()
            }
        );
        assert_eq!(screen_state(""), ScreenState::Unknown);
    }

    #[test]
    fn reset_confirmed_by_the_home_screen() {
        assert!(reset_confirmed(include_str!(
            "fixtures/opencode/after-new.txt"
        )));
        assert!(!reset_confirmed(include_str!(
            "fixtures/opencode/after-reply.txt"
        )));
    }

    #[test]
    fn transcript_user_turns() {
        let turns = user_turns(include_bytes!("fixtures/opencode/user_parts.json")).unwrap();
        assert_eq!(turns[0], "hello there");
        // A collapsed paste is stored with a trailing space.
        assert!(turns[1].starts_with("line 0 of a long message\n"));
        assert!(turns[1].ends_with("line 39 of a long message "));
        assert_eq!(turns[2], "SLOWPLEASE take your time");
        assert_eq!(turns[3], "PROBE please run it");
        assert_eq!(user_turns(b"").unwrap(), Vec::<String>::new());
        assert!(user_turns(b"{").is_err());
        let argv = user_turns_query(Path::new("/h/.local/share/opencode/opencode.db"));
        assert_eq!(argv[..3], ["sqlite3", "-readonly", "-json"]);
    }
}
