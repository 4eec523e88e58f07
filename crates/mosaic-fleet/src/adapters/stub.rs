//! The shipped stub runtime (`framework/tools/fleet/stub-agent`): a bash
//! loop that prints `stub-agent NAME ready`, a `> ` prompt, and answers each
//! line with `ACK <line>`.
//!
//! Screen: Ready when the last non-blank line is the bare prompt `>`; a
//! `> TEXT` last line is text not yet answered (typed, or submitted and
//! still being handled under `MOSAIC_STUB_DELAY` — a capture cannot tell
//! the two apart; the heartbeat's `busy` state can). It asks nothing, so
//! there are no permission or dialog screens. It reads with `read -r` and
//! never enables bracketed paste, so a multi-line paste arrives as one line
//! per line.
//!
//! Transcript: none; the pane is the record: each `ACK <line>` is a taken
//! user turn ([`user_turns`] reads a capture).

use super::{
    lines, ProcessShape, Reset, ScreenState, Transcript, TranscriptError, TranscriptFormat,
};

/// The stub keeps no context: any line "resets" it; `/reset` (or a
/// roster's `reset_command`, e.g. `/clear`) is answered like any other.
pub const RESET: Reset = Reset {
    command: "/reset",
    accepted_while_busy: true,
    refusal: None,
    confirm: "the pane's last receipt is `ACK /COMMAND` (the stub keeps no context)",
};

/// The pane itself.
pub const TRANSCRIPT: Transcript = Transcript {
    root_env: None,
    env_subdir: "",
    root_in_home: "",
    files: "none: `tmux capture-pane -p -S -` of the agent's pane",
    format: TranscriptFormat::Screen,
};

/// `stub-agent` (it re-executes bash under that name); `bash` for an instant.
pub fn process() -> ProcessShape {
    ProcessShape {
        pane_commands: &["stub-agent"],
        starting_commands: &["bash"],
        daemon: None,
    }
}

/// What a stub pane shows.
pub fn screen_state(capture: &str) -> ScreenState {
    let ls = lines(capture);
    let Some(last) = ls.last() else {
        return ScreenState::Unknown;
    };
    if *last == ">" {
        return ScreenState::Ready;
    }
    if let Some(text) = last.strip_prefix("> ") {
        return ScreenState::InputPending {
            shown: text.trim().to_string(),
        };
    }
    // An answer (`ACK …`) or the banner without a prompt after it: the stub
    // is still writing its heartbeat before it prints `> ` (a read that
    // times out keeps the prompt it printed, so `> ` is always last while
    // it waits). Text pasted now would land before the prompt (seen under
    // load), so neither is Ready; `--queue` waits for the prompt.
    ScreenState::Unknown
}

/// After a reset command: the last acknowledged line is a slash command
/// (`/reset`, or the roster's `reset_command`), and Ready.
pub fn reset_confirmed(capture: &str) -> bool {
    screen_state(capture) == ScreenState::Ready
        && user_turns(capture.as_bytes())
            .ok()
            .and_then(|t| t.last().cloned())
            .is_some_and(|l| l.starts_with('/'))
}

/// The lines the stub acknowledged, from a capture of its pane.
pub fn user_turns(capture: &[u8]) -> Result<Vec<String>, TranscriptError> {
    let text = String::from_utf8_lossy(capture);
    Ok(text
        .lines()
        .filter_map(|l| {
            // The prompt and the ACK can share a line when input came while
            // it printed (`> ACK x`).
            let l = l.strip_prefix("> ").unwrap_or(l);
            l.strip_prefix("ACK ").map(|t| t.trim_end().to_string())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_and_turns() {
        let ready = include_str!("fixtures/stub/ready.txt");
        assert_eq!(screen_state(ready), ScreenState::Ready);
        let pending = include_str!("fixtures/stub/pending.txt");
        assert_eq!(
            screen_state(pending),
            ScreenState::InputPending {
                shown: "not yet".into()
            }
        );
        assert_eq!(screen_state(""), ScreenState::Unknown);
        assert!(!reset_confirmed(ready));
        assert!(reset_confirmed("> /reset\nACK /reset\n> \n"));
        assert!(reset_confirmed("> /clear\nACK /clear\n> \n"));
        assert!(!reset_confirmed("> /clear\nACK /clear\n> hi\n"));
        assert_eq!(
            user_turns(ready.as_bytes()).unwrap(),
            ["hello there", "run `make test` now", "héllo wörld ✓"]
        );
    }
}
