//! pi-coding-agent (`pi`, tested at 0.73.1): its screens, reset, process
//! shape and transcript.
//!
//! Screen: the editor is the last pair of full-width `────` rules, with no
//! prompt glyph: an empty editor is two adjacent rules; text (or a long
//! paste's `[paste #1 +40 lines]`) sits between them. Under it, the cwd line
//! and a token/model line. A running turn shows a braille spinner line
//! `⠼ Working...` above the editor; a message sent while busy is queued as
//! `Steering: TEXT`. pi has no permission prompts (tools run at once) and no
//! `/clear` (an unknown slash command goes to the model as a message); `/new`
//! aborts a running turn and prints `✓ New session started`.
//!
//! Process: `node` for the first second or so, then it renames itself `pi`
//! (one process).
//!
//! Transcript: `~/.pi/agent/sessions/--<cwd with / as ->--/<ts>_<id>.jsonl`;
//! a user turn is a `"type":"message"` record whose `message.role` is
//! `user`. `/new` starts a new file.

use super::{
    jsonl, lines, ProcessShape, Reset, ScreenState, Transcript, TranscriptError, TranscriptFormat,
};
use serde_json::Value;

/// `/new`: taken at once even while busy (it aborts the running turn).
pub const RESET: Reset = Reset {
    command: "/new",
    accepted_while_busy: true,
    refusal: None,
    confirm: "the screen is redrawn with the startup header and `✓ New session started` above the empty editor; a new session file starts",
};

/// `~/.pi/agent/sessions/*/*.jsonl`.
pub const TRANSCRIPT: Transcript = Transcript {
    root_env: Some("PI_CODING_AGENT_SESSION_DIR"),
    env_subdir: "",
    root_in_home: ".pi/agent/sessions",
    files: "--<cwd>--/<timestamp>_<id>.jsonl (the newest is the live one)",
    format: TranscriptFormat::Jsonl,
};

/// `node` while starting, then `pi`.
pub fn process() -> ProcessShape {
    ProcessShape {
        pane_commands: &["pi"],
        starting_commands: &["node"],
        daemon: None,
    }
}

fn is_rule(l: &str) -> bool {
    let t = l.trim();
    t.chars().count() >= 20 && t.chars().all(|c| c == '─')
}

fn is_spinner(l: &str) -> bool {
    let t = l.trim_start();
    t.chars()
        .next()
        .is_some_and(|c| ('\u{2800}'..='\u{28ff}').contains(&c))
        && t.contains("...")
}

/// What a pi pane shows.
pub fn screen_state(capture: &str) -> ScreenState {
    let ls = lines(capture);
    let rules: Vec<usize> = ls
        .iter()
        .enumerate()
        .filter(|(_, l)| is_rule(l))
        .map(|(i, _)| i)
        .collect();
    let [.., top, bottom] = rules[..] else {
        return ScreenState::Unknown;
    };
    // The footer (cwd, tokens/model) follows the lower rule.
    if bottom + 1 >= ls.len() {
        return ScreenState::Unknown;
    }
    if let Some(shown) = ls[top + 1..bottom]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
    {
        return ScreenState::InputPending {
            shown: shown.to_string(),
        };
    }
    let above = ls[..top]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if is_spinner(above) {
        ScreenState::Busy
    } else {
        ScreenState::Ready
    }
}

/// After `/new`: Ready, with `✓ New session started` as the last line
/// above the editor.
pub fn reset_confirmed(capture: &str) -> bool {
    let ls = lines(capture);
    let Some(top) = ls
        .iter()
        .rposition(|l| is_rule(l))
        .and_then(|b| ls[..b].iter().rposition(|l| is_rule(l)))
    else {
        return false;
    };
    screen_state(capture) == ScreenState::Ready
        && ls[..top]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            == Some("✓ New session started")
}

/// The user messages of one session file.
pub fn user_turns(bytes: &[u8]) -> Result<Vec<String>, TranscriptError> {
    let mut out = Vec::new();
    for rec in jsonl(bytes)? {
        if rec.get("type").and_then(Value::as_str) != Some("message") {
            continue;
        }
        let Some(m) = rec.get("message") else {
            continue;
        };
        if m.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let text = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => continue,
        };
        out.push(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens() {
        assert_eq!(
            screen_state(include_str!("fixtures/pi/ready.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/pi/after-reply.txt")),
            ScreenState::Ready
        );
        // One second in: the header is drawn under the offline notices.
        assert_eq!(
            screen_state(include_str!("fixtures/pi/starting.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/pi/tool-call.txt")),
            ScreenState::Ready
        );
        assert_eq!(
            screen_state(include_str!("fixtures/pi/pending-short.txt")),
            ScreenState::InputPending {
                shown: "hello there".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/pi/pending-long.txt")),
            ScreenState::InputPending {
                shown: "[paste #1 +40 lines]".into()
            }
        );
        assert_eq!(
            screen_state(include_str!("fixtures/pi/busy.txt")),
            ScreenState::Busy
        );
        assert_eq!(
            screen_state(include_str!("fixtures/pi/busy-typed.txt")),
            ScreenState::InputPending {
                shown: "/new".into()
            }
        );
    }

    #[test]
    fn reset_confirmed_by_the_new_session_line() {
        assert!(reset_confirmed(include_str!("fixtures/pi/after-new.txt")));
        assert!(!reset_confirmed(include_str!(
            "fixtures/pi/after-reply.txt"
        )));
        assert!(!reset_confirmed(include_str!("fixtures/pi/busy-typed.txt")));
    }

    #[test]
    fn transcript_user_turns() {
        let turns = user_turns(include_bytes!("fixtures/pi/session.jsonl")).unwrap();
        assert_eq!(turns[0], "hello there");
        assert!(turns[1].starts_with("line 0 of a long message\n"));
        // Interrupted by /new: recorded, never answered.
        assert_eq!(turns[2], "SLOWPLEASE take your time");
        assert_eq!(turns.len(), 3);
        let after = user_turns(include_bytes!("fixtures/pi/session-after-new.jsonl")).unwrap();
        assert_eq!(after, ["PROBE please run it"]);
    }
}
