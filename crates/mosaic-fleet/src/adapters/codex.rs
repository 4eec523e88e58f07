//! OpenAI Codex CLI (`codex`, tested at 0.171.0): its screens, reset,
//! process shape and transcript.
//!
//! Screen: the composer is the last line starting with `› `; an empty
//! composer shows a placeholder ("Ask Codex to do anything", "Ask a
//! follow-up question"), a long paste `[Pasted Content 1029 chars]`. Sent
//! messages stay in the history as `› TEXT` lines above it. A running turn
//! shows a status line `• Working (2s • esc to interrupt)` (the header
//! word varies) above the composer. `/clear` while a turn runs is refused
//! with "■ '/clear' is disabled while a task is in progress." A command
//! approval reads "Would you like to run the following command?".
//!
//! Process: the pane runs `node` (the npm wrapper) → the native `codex` →
//! `codex app-server --managed-daemon` (+ a `pid-update-loop`), shared per
//! `CODEX_HOME`, that can outlive the pane: supervision ends it by PID.
//!
//! Transcript: `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`; a user turn
//! is a `response_item` whose payload is a `message` with role `user`, minus
//! the context codex injects itself (`<environment_context>`, AGENTS.md
//! instructions).

use super::{
    jsonl, lines, Daemon, DialogKind, ProcessShape, Reset, ScreenState, Transcript,
    TranscriptError, TranscriptFormat,
};
use serde_json::Value;

/// `/clear`: refused while a turn runs; wait for Ready first.
pub const RESET: Reset = Reset {
    command: "/clear",
    accepted_while_busy: false,
    refusal: Some("'/clear' is disabled while a task is in progress"),
    confirm: "the screen is redrawn with the banner and an empty composer, no `› ` history line above it; the next message starts a new rollout file",
};

/// `$CODEX_HOME/sessions/…/rollout-*.jsonl` (`CODEX_HOME` defaults to `~/.codex`).
pub const TRANSCRIPT: Transcript = Transcript {
    root_env: Some("CODEX_HOME"),
    env_subdir: "sessions",
    root_in_home: ".codex/sessions",
    files: "YYYY/MM/DD/rollout-<timestamp>-<id>.jsonl (the newest is the live one)",
    format: TranscriptFormat::Jsonl,
};

/// `node` in the pane; a setsid'd app-server daemon per `CODEX_HOME`.
pub fn process() -> ProcessShape {
    ProcessShape {
        pane_commands: &["node", "codex"],
        starting_commands: &[],
        daemon: Some(Daemon {
            cmdline_contains: &["codex", "app-server"],
            shared_per: "CODEX_HOME",
        }),
    }
}

/// What an empty composer shows.
const PLACEHOLDERS: &[&str] = &["Ask Codex to do anything", "Ask a follow-up question"];

/// What a codex pane shows.
pub fn screen_state(capture: &str) -> ScreenState {
    let ls = lines(capture);
    if let Some(i) = ls.iter().rposition(|l| {
        l.contains("Would you like to run the following command?")
            || l.contains("Would you like to make the following edits?")
    }) {
        return ScreenState::PermissionPrompt {
            what: ls[i].trim().to_string(),
        };
    }
    if capture.contains("Sign in with ChatGPT") {
        return ScreenState::Dialog {
            kind: DialogKind::Login,
            what: "Sign in with ChatGPT".into(),
        };
    }
    if capture.contains("Update available!") {
        return ScreenState::Dialog {
            kind: DialogKind::Other,
            what: "update available".into(),
        };
    }
    if capture.contains("trust the contents of this directory")
        || capture.contains("Do you trust this directory")
    {
        return ScreenState::Dialog {
            kind: DialogKind::Trust,
            what: "trust this directory?".into(),
        };
    }
    let Some(c) = ls.iter().rposition(|l| l.starts_with("› ") || *l == "›") else {
        return ScreenState::Unknown;
    };
    let text = ls[c].trim_start_matches('›').trim();
    if !text.is_empty() && !PLACEHOLDERS.contains(&text) {
        return ScreenState::InputPending {
            shown: text.to_string(),
        };
    }
    let busy = ls[..c]
        .iter()
        .rev()
        .take_while(|l| !l.starts_with("› ") || l.contains("esc to interrupt"))
        .any(|l| l.contains("esc to interrupt)"));
    if busy {
        ScreenState::Busy
    } else {
        ScreenState::Ready
    }
}

/// After `/clear`: Ready, and no sent message (`› ` line) above the composer.
pub fn reset_confirmed(capture: &str) -> bool {
    let ls = lines(capture);
    let Some(c) = ls.iter().rposition(|l| l.starts_with("› ")) else {
        return false;
    };
    screen_state(capture) == ScreenState::Ready
        && !ls[..c]
            .iter()
            .any(|l| l.starts_with("› ") || l.starts_with("• "))
}

/// Context codex adds as user messages of its own.
const INJECTED: &[&str] = &[
    "<environment_context>",
    "<user_instructions>",
    "<skills_instructions>",
    "<turn_aborted>",
    "# AGENTS.md instructions",
];

/// The user messages of one rollout file.
pub fn user_turns(bytes: &[u8]) -> Result<Vec<String>, TranscriptError> {
    let mut out = Vec::new();
    for rec in jsonl(bytes)? {
        if rec.get("type").and_then(Value::as_str) != Some("response_item") {
            continue;
        }
        let Some(p) = rec.get("payload") else {
            continue;
        };
        if p.get("type").and_then(Value::as_str) != Some("message")
            || p.get("role").and_then(Value::as_str) != Some("user")
        {
            continue;
        }
        let texts: Vec<&str> = p
            .get("content")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|c| c.get("type").and_then(Value::as_str) == Some("input_text"))
                    .filter_map(|c| c.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if texts.is_empty() {
            continue;
        }
        let text = texts.join("\n");
        if INJECTED.iter().any(|t| text.trim_start().starts_with(t)) {
            continue;
        }
        out.push(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens() {
        let ready = include_str!("fixtures/codex/ready.txt");
        assert_eq!(screen_state(ready), ScreenState::Ready);
        assert_eq!(
            screen_state(include_str!("fixtures/codex/starting.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/codex/after-busy.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/codex/pending-short.txt")),
            ScreenState::InputPending {
                shown: "hello there".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/codex/pending-long.txt")),
            ScreenState::InputPending {
                shown: "[Pasted Content 1029 chars]".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/codex/busy.txt")),
            ScreenState::Busy
        );
        assert_eq!(
            screen_state(include_str!("fixtures/codex/busy-typed.txt")),
            ScreenState::InputPending {
                shown: "/clear".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/codex/clear-refused.txt")),
            ScreenState::Busy
        );
        assert_eq!(screen_state("nothing here"), ScreenState::Unknown);
    }

    #[test]
    fn clear_is_refused_while_busy_and_confirmed_after() {
        let refused = include_str!("fixtures/codex/clear-refused.txt");
        assert!(super::super::Runtime::Codex.reset_refused(refused));
        assert!(
            !super::super::Runtime::Codex.reset_refused(include_str!("fixtures/codex/busy.txt"))
        );
        assert!(reset_confirmed(include_str!(
            "fixtures/codex/after-reset.txt"
        )));
        assert!(!reset_confirmed(include_str!(
            "fixtures/codex/after-busy.txt"
        )));
        assert!(!reset_confirmed(include_str!("fixtures/codex/busy.txt")));
    }

    #[test]
    fn transcript_user_turns() {
        let turns = user_turns(include_bytes!("fixtures/codex/rollout.jsonl")).unwrap();
        assert_eq!(turns.len(), 4, "{turns:?}");
        assert_eq!(turns[0], "hello there");
        assert!(turns[1].starts_with("line 0 of a long message\n"));
        assert_eq!(turns[2], "SLOWPLEASE take your time");
        assert_eq!(turns[3], "PROBE please run it");
    }
}
