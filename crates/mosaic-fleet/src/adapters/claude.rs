//! Claude Code (`claude`, tested at 2.1.197): its screens, reset, process
//! shape and transcript.
//!
//! Screen (`capture-pane -p`): the input box is the last pair of full-width
//! `────` rules; its first line starts with `❯ ` (empty box: `❯` alone).
//! Footer lines under the lower rule (`? for shortcuts`, `esc to
//! interrupt`, `paste again to expand`) vary. A turn in progress shows a
//! spinner line above the box: a glyph (`✻ ✽ ✶ ✳ ✢ · *`) and a gerund
//! ending in `…` ("✽ Infusing…"), and `esc to interrupt` in the footer; a
//! finished turn leaves "✻ Brewed for 0s" (no ellipsis). A long paste shows
//! as `[Pasted text #1 +39 lines]` in the box. A tool call raises a
//! permission dialog below the last rule: "Do you want to proceed?" over a
//! numbered `❯ 1. Yes` menu. The trust dialog ("Do you trust the files in
//! this folder?"), the theme picker and login screens come before the box.
//!
//! Transcript: `~/.claude/projects/<cwd with / as ->/<session>.jsonl`; a user
//! turn is a `"type":"user"` record whose `message.content` is a string (or
//! text blocks) and that is not `isMeta`, not a local command
//! (`<command-name>`) and not a tool result. `/clear` starts a new file.

use super::{
    jsonl, lines, DialogKind, ProcessShape, Reset, ScreenState, Transcript, TranscriptError,
    TranscriptFormat,
};
use serde_json::Value;

/// `/clear`: queued while a turn runs, taken after it.
pub const RESET: Reset = Reset {
    command: "/clear",
    accepted_while_busy: true,
    refusal: None,
    confirm: "the screen is redrawn with only the banner and `❯ /clear` above the empty box; a new transcript file starts with the `<command-name>/clear</command-name>` record",
};

/// `~/.claude/projects/*/*.jsonl`.
pub const TRANSCRIPT: Transcript = Transcript {
    root_env: Some("CLAUDE_CONFIG_DIR"),
    env_subdir: "projects",
    root_in_home: ".claude/projects",
    files: "*/*.jsonl (one file per session; the newest is the live one)",
    format: TranscriptFormat::Jsonl,
};

/// One process, `claude` (a native binary).
pub fn process() -> ProcessShape {
    ProcessShape {
        pane_commands: &["claude"],
        starting_commands: &[],
        daemon: None,
    }
}

fn is_rule(l: &str) -> bool {
    let t = l.trim();
    t.chars().count() >= 20 && t.chars().all(|c| c == '─')
}

const SPINNERS: &[char] = &['✻', '✽', '✶', '✳', '✢', '·', '*', '∗', '⏺'];

fn is_spinner(l: &str) -> bool {
    let t = l.trim_start();
    let mut cs = t.chars();
    let Some(first) = cs.next() else { return false };
    SPINNERS.contains(&first)
        && cs.next() == Some(' ')
        && (t.contains('…') && !t.contains("for ") || t.contains("esc to interrupt"))
}

/// Hints claude draws inside an empty box.
const PLACEHOLDERS: &[&str] = &["Press up to edit queued messages"];

/// What a claude pane shows.
pub fn screen_state(capture: &str) -> ScreenState {
    let ls = lines(capture);
    if let Some(i) = ls
        .iter()
        .rposition(|l| l.contains("Do you want to proceed?"))
    {
        if ls[i..].iter().any(|l| l.contains("1. Yes")) {
            // What it asks: the first non-empty lines after the last rule above.
            let top = ls[..i]
                .iter()
                .rposition(|l| is_rule(l))
                .map_or(0, |r| r + 1);
            let what: Vec<&str> = ls[top..i]
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .take(2)
                .collect();
            return ScreenState::PermissionPrompt {
                what: what.join(": "),
            };
        }
    }
    let text = capture;
    if text.contains("Do you trust the files in this folder") || text.contains("trust this folder")
    {
        return ScreenState::Dialog {
            kind: DialogKind::Trust,
            what: "Do you trust the files in this folder?".into(),
        };
    }
    if text.contains("Choose the text style") || text.contains("Let's get started") {
        return ScreenState::Dialog {
            kind: DialogKind::Onboarding,
            what: "first-run setup (text style)".into(),
        };
    }
    if text.contains("Select login method") || text.contains("Paste code here") {
        return ScreenState::Dialog {
            kind: DialogKind::Login,
            what: "login method".into(),
        };
    }
    if text.contains("Detected a custom API key") {
        return ScreenState::Dialog {
            kind: DialogKind::Login,
            what: "use the custom API key?".into(),
        };
    }
    // The input box: the last two rules.
    let rules: Vec<usize> = ls
        .iter()
        .enumerate()
        .filter(|(_, l)| is_rule(l))
        .map(|(i, _)| i)
        .collect();
    let [.., top, bottom] = rules[..] else {
        return ScreenState::Unknown;
    };
    let boxed = &ls[top + 1..bottom];
    let Some(first) = boxed.first().filter(|l| l.starts_with('❯')) else {
        return ScreenState::Unknown;
    };
    let first = first.trim_start_matches('❯').trim();
    // Hints drawn inside an empty box.
    let first = if PLACEHOLDERS.contains(&first) {
        ""
    } else {
        first
    };
    let rest_empty = boxed[1..].iter().all(|l| l.trim().is_empty());
    if !first.is_empty() || !rest_empty {
        let shown = if first.is_empty() {
            boxed[1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .unwrap_or("")
        } else {
            first
        };
        return ScreenState::InputPending {
            shown: shown.to_string(),
        };
    }
    let footer_busy = ls[bottom + 1..]
        .iter()
        .any(|l| l.contains("esc to interrupt"));
    let spinner = ls[..top]
        .iter()
        .rev()
        .take_while(|l| !l.starts_with('❯'))
        .any(|l| is_spinner(l));
    if footer_busy || spinner {
        ScreenState::Busy
    } else {
        ScreenState::Ready
    }
}

/// After `/clear`: the conversation above the box is only `❯ /clear`.
pub fn reset_confirmed(capture: &str) -> bool {
    let ls = lines(capture);
    let Some(banner_end) = ls.iter().position(|l| l.trim_start().starts_with('╰')) else {
        return false;
    };
    let Some(top) = ls.iter().rposition(|l| is_rule(l)) else {
        return false;
    };
    let Some(box_top) = ls[..top].iter().rposition(|l| is_rule(l)) else {
        return false;
    };
    let between: Vec<&str> = ls[banner_end + 1..box_top]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    between == ["❯ /clear"] && matches!(screen_state(capture), ScreenState::Ready)
}

fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            if parts
                .iter()
                .any(|p| p.get("type").and_then(Value::as_str) == Some("tool_result"))
            {
                return None;
            }
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// The user messages of one session file.
pub fn user_turns(bytes: &[u8]) -> Result<Vec<String>, TranscriptError> {
    let mut out = Vec::new();
    for rec in jsonl(bytes)? {
        if rec.get("type").and_then(Value::as_str) != Some("user")
            || rec.get("isMeta").and_then(Value::as_bool) == Some(true)
            || rec.get("toolUseResult").is_some()
        {
            continue;
        }
        let Some(msg) = rec.get("message") else {
            continue;
        };
        if msg.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let Some(text) = msg.get("content").and_then(text_of) else {
            continue;
        };
        let t = text.trim_start();
        if t.starts_with("<command-name>")
            || t.starts_with("<local-command-")
            || t.starts_with("[Request interrupted")
        {
            continue;
        }
        out.push(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> &'static str {
        match name {
            "ready" => include_str!("fixtures/claude/ready.txt"),
            "pending-short" => include_str!("fixtures/claude/pending-short.txt"),
            "pending-long" => include_str!("fixtures/claude/pending-long.txt"),
            "busy" => include_str!("fixtures/claude/busy.txt"),
            "busy-queued" => include_str!("fixtures/claude/busy-queued.txt"),
            "busy-typed" => include_str!("fixtures/claude/busy-typed.txt"),
            "after-reply" => include_str!("fixtures/claude/after-reply.txt"),
            "permission" => include_str!("fixtures/claude/permission.txt"),
            "after-reset" => include_str!("fixtures/claude/after-reset.txt"),
            "onboarding" => include_str!("fixtures/claude/onboarding.txt"),
            _ => unreachable!(),
        }
    }

    #[test]
    fn screens() {
        assert_eq!(screen_state(fx("ready")), ScreenState::Ready);
        assert_eq!(screen_state(fx("after-reply")), ScreenState::Ready);
        assert_eq!(screen_state(fx("after-reset")), ScreenState::Ready);
        assert_eq!(
            screen_state(fx("pending-short")),
            ScreenState::InputPending {
                shown: "hello there".into()
            }
        );
        assert_eq!(
            screen_state(fx("pending-long")),
            ScreenState::InputPending {
                shown: "[Pasted text #1 +39 lines]".into()
            }
        );
        assert_eq!(screen_state(fx("busy")), ScreenState::Busy);
        // `/clear` typed while busy (the command menu open under the box)…
        assert_eq!(
            screen_state(fx("busy-typed")),
            ScreenState::InputPending {
                shown: "/clear".into()
            }
        );
        // …and queued: the box shows a hint, the footer "esc to interrupt".
        assert_eq!(screen_state(fx("busy-queued")), ScreenState::Busy);
        assert_eq!(
            screen_state(fx("permission")),
            ScreenState::PermissionPrompt {
                what: "Bash command: touch /tmp/mosaic-permission-probe".into()
            }
        );
        // First run without ~/.claude.json: the text-style picker, whose
        // `❯ 2. Dark mode` must not read as the input prompt.
        assert_eq!(
            screen_state(fx("onboarding")),
            ScreenState::Dialog {
                kind: DialogKind::Onboarding,
                what: "first-run setup (text style)".into()
            }
        );
        assert_eq!(screen_state(""), ScreenState::Unknown);
    }

    #[test]
    fn reset_is_confirmed_by_the_cleared_screen() {
        assert!(reset_confirmed(fx("after-reset")));
        assert!(!reset_confirmed(fx("after-reply")));
        assert!(!reset_confirmed(fx("busy-queued")));
    }

    #[test]
    fn transcript_user_turns() {
        let t = include_bytes!("fixtures/claude/session.jsonl");
        let turns = user_turns(t).unwrap();
        assert_eq!(turns[0], "hello there");
        assert!(turns[1].starts_with("line 0 of a long message\nline 1"));
        assert_eq!(turns[2], "SLOWPLEASE take your time");
        assert_eq!(turns.len(), 3);
        let cleared = include_bytes!("fixtures/claude/session-after-clear.jsonl");
        assert_eq!(user_turns(cleared).unwrap(), ["PROBE please run it"]);
        assert!(matches!(
            user_turns(b"{not json\n"),
            Err(TranscriptError::BadLine { line: 1, .. })
        ));
    }
}
