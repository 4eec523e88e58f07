//! Runtime adapters: everything that differs between the agent runtimes
//! mosaic drives (claude, codex, pi, opencode and the shipped stub-agent)
//! lives here, one small module each, and nowhere else (SPEC §8.2).
//!
//! Each adapter is a set of pure functions over inputs the caller gathers
//! (a `tmux capture-pane -p` text, a transcript's bytes, a
//! `pane_current_command`):
//!
//! * [`Runtime::screen_state`]: what the pane shows ([`ScreenState`]);
//! * [`Runtime::reset`]: the reset command, how a refusal reads and how to
//!   confirm it took ([`Reset`]);
//! * [`Runtime::process`]: the process-tree shape ([`ProcessShape`]);
//! * [`Runtime::transcript`] / [`Runtime::user_turns`]: where the runtime's
//!   own transcript lives and the user messages in it;
//! * [`delivery`]: the bracketed-paste delivery recipe as argv builders
//!   (shared: it is the same for every runtime).
//!
//! Dispatch is a plain `match` on [`Runtime`]; nothing here runs a process.
//! The per-runtime modules hold the detection rules, pinned by unit tests
//! against screens and transcripts captured from the real runtimes
//! (`fixtures/`).

pub mod claude;
pub mod codex;
pub mod opencode;
pub mod pi;
pub mod stub;

use std::fmt;
use std::path::{Path, PathBuf};

/// A runtime mosaic knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Anthropic's Claude Code (`claude`).
    Claude,
    /// OpenAI's Codex CLI (`codex`).
    Codex,
    /// pi-coding-agent (`pi`).
    Pi,
    /// opencode (`opencode`).
    Opencode,
    /// The shipped `framework/tools/fleet/stub-agent`.
    Stub,
}

/// What a pane shows, as far as delivering a message is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenState {
    /// At its input prompt with an empty input box: a message may be pasted.
    Ready,
    /// Text is still in the input box (pasted or typed, not submitted).
    InputPending {
        /// The first line of what the box shows (placeholders included,
        /// e.g. claude's `[Pasted text #1 +12 lines]`), trimmed.
        shown: String,
    },
    /// Working on a turn (spinner / "esc to interrupt" / "Working").
    Busy,
    /// Asking the operator to allow a tool call.
    PermissionPrompt {
        /// What it asks, e.g. `Bash command: touch /tmp/x`.
        what: String,
    },
    /// Any other screen that is not the input prompt: onboarding, login,
    /// trust, an update or selection dialog.
    Dialog {
        /// Which kind.
        kind: DialogKind,
        /// A short description of what is on screen.
        what: String,
    },
    /// None of the above (starting up, exited, an unknown screen).
    Unknown,
}

/// The kind of a [`ScreenState::Dialog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKind {
    /// First-run setup (theme, tips, security notes).
    Onboarding,
    /// Sign-in / API key screens.
    Login,
    /// "Do you trust this folder?".
    Trust,
    /// Anything else modal.
    Other,
}

impl ScreenState {
    /// May a message be pasted now (the prompt with an empty box)?
    pub fn is_ready(&self) -> bool {
        matches!(self, ScreenState::Ready)
    }
}

impl fmt::Display for ScreenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScreenState::Ready => write!(f, "at its input prompt"),
            ScreenState::InputPending { shown } => {
                write!(f, "text waiting in its input box ({shown})")
            }
            ScreenState::Busy => write!(f, "busy with a turn"),
            ScreenState::PermissionPrompt { what } => {
                write!(f, "a permission prompt ({what})")
            }
            ScreenState::Dialog { kind, what } => {
                let k = match kind {
                    DialogKind::Onboarding => "an onboarding screen",
                    DialogKind::Login => "a login screen",
                    DialogKind::Trust => "a trust dialog",
                    DialogKind::Other => "a dialog",
                };
                write!(f, "{k} ({what})")
            }
            ScreenState::Unknown => write!(f, "an unrecognised screen"),
        }
    }
}

/// How a runtime is reset and how to tell the reset took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// The text to deliver (as a message) to start a fresh conversation.
    pub command: &'static str,
    /// Whether the runtime takes the command while a turn runs (`false`:
    /// wait for [`ScreenState::Ready`] first).
    pub accepted_while_busy: bool,
    /// How a refusal reads on screen, when the runtime can refuse.
    pub refusal: Option<&'static str>,
    /// What shows that it took.
    pub confirm: &'static str,
}

/// Where a runtime keeps its own transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The variable that moves the root, if any (`CODEX_HOME`).
    pub root_env: Option<&'static str>,
    /// The root below that variable's directory (`sessions`; empty: the
    /// variable names the root itself).
    pub env_subdir: &'static str,
    /// The root relative to HOME when that variable is unset.
    pub root_in_home: &'static str,
    /// The files below the root, as a description (`*/*.jsonl`).
    pub files: &'static str,
    /// Their format.
    pub format: TranscriptFormat,
}

/// The format of a [`Transcript`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    /// JSON Lines, one event per line; [`Runtime::user_turns`] reads the bytes.
    Jsonl,
    /// An SQLite database; [`Runtime::user_turns`] reads the JSON that
    /// [`opencode::user_turns_query`] prints (`sqlite3 -json`).
    Sqlite,
    /// No transcript: the pane itself (the stub's `ACK` lines).
    Screen,
}

impl Transcript {
    /// The root directory (or database file) for a HOME and an environment.
    pub fn root(&self, home: &Path, env: impl Fn(&str) -> Option<String>) -> PathBuf {
        match self.root_env.and_then(&env).filter(|v| !v.is_empty()) {
            Some(v) if self.env_subdir.is_empty() => PathBuf::from(v),
            Some(v) => PathBuf::from(v).join(self.env_subdir),
            None => home.join(self.root_in_home),
        }
    }
}

/// The process-tree shape of a runtime, for `fleet ps` and supervision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessShape {
    /// `pane_current_command` values once it is up.
    pub pane_commands: &'static [&'static str],
    /// `pane_current_command` values seen while it starts (before it
    /// renames itself), e.g. pi's `node`.
    pub starting_commands: &'static [&'static str],
    /// A helper process that outlives the pane (setsid'd; not in the pane's
    /// tree), which supervision must end by PID.
    pub daemon: Option<Daemon>,
}

/// A [`ProcessShape::daemon`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// Words its command line contains.
    pub cmdline_contains: &'static [&'static str],
    /// What it is shared by.
    pub shared_per: &'static str,
}

/// What a `pane_current_command` says about a runtime's pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneCommand {
    /// The runtime is up.
    Runtime,
    /// What it shows while starting (ambiguous: could be anything else).
    Starting,
    /// Something else runs in the pane.
    Other,
}

impl ProcessShape {
    /// Classify a `pane_current_command`.
    pub fn classify(&self, pane_current_command: &str) -> PaneCommand {
        let c = pane_current_command.trim();
        if self.pane_commands.contains(&c) {
            PaneCommand::Runtime
        } else if self.starting_commands.contains(&c) {
            PaneCommand::Starting
        } else {
            PaneCommand::Other
        }
    }
}

/// Why a transcript could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptError {
    /// Line `line` (1-based) is not JSON.
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        msg: String,
    },
    /// The input is not the expected document (e.g. sqlite3 JSON output).
    BadDocument(String),
}

impl fmt::Display for TranscriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranscriptError::BadLine { line, msg } => {
                write!(f, "transcript line {line} is not JSON: {msg}")
            }
            TranscriptError::BadDocument(m) => write!(f, "transcript not readable: {m}"),
        }
    }
}

impl std::error::Error for TranscriptError {}

impl Runtime {
    /// Every runtime, the stub last.
    pub const ALL: [Runtime; 5] = [
        Runtime::Claude,
        Runtime::Codex,
        Runtime::Pi,
        Runtime::Opencode,
        Runtime::Stub,
    ];

    /// The roster's name for it (`claude`, `codex`, `pi`, `opencode`, `stub`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Claude => "claude",
            Runtime::Codex => "codex",
            Runtime::Pi => "pi",
            Runtime::Opencode => "opencode",
            Runtime::Stub => "stub",
        }
    }

    /// The runtime a roster name means.
    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What the pane shows, from `tmux capture-pane -p` of the visible screen.
    pub fn screen_state(self, capture: &str) -> ScreenState {
        match self {
            Runtime::Claude => claude::screen_state(capture),
            Runtime::Codex => codex::screen_state(capture),
            Runtime::Pi => pi::screen_state(capture),
            Runtime::Opencode => opencode::screen_state(capture),
            Runtime::Stub => stub::screen_state(capture),
        }
    }

    /// The reset command and how to confirm it.
    pub fn reset(self) -> Reset {
        match self {
            Runtime::Claude => claude::RESET,
            Runtime::Codex => codex::RESET,
            Runtime::Pi => pi::RESET,
            Runtime::Opencode => opencode::RESET,
            Runtime::Stub => stub::RESET,
        }
    }

    /// Did the screen refuse the reset command? (codex: a turn is running).
    pub fn reset_refused(self, capture: &str) -> bool {
        self.reset().refusal.is_some_and(|r| capture.contains(r))
    }

    /// Does the screen show that the reset command took? (See
    /// [`Reset::confirm`]; each adapter's `reset_confirmed`.)
    pub fn reset_confirmed(self, capture: &str) -> bool {
        match self {
            Runtime::Claude => claude::reset_confirmed(capture),
            Runtime::Codex => codex::reset_confirmed(capture),
            Runtime::Pi => pi::reset_confirmed(capture),
            Runtime::Opencode => opencode::reset_confirmed(capture),
            Runtime::Stub => stub::reset_confirmed(capture),
        }
    }

    /// Is `recorded` (a user turn of the transcript, or the text that reached
    /// the model) the message `sent`? Exact, except that opencode stores a
    /// pasted message with one trailing space appended (1.18.33).
    pub fn same_message(self, sent: &str, recorded: &str) -> bool {
        match self {
            Runtime::Opencode => recorded == sent || recorded.strip_suffix(' ') == Some(sent),
            _ => recorded == sent,
        }
    }

    /// The process-tree shape.
    pub fn process(self) -> ProcessShape {
        match self {
            Runtime::Claude => claude::process(),
            Runtime::Codex => codex::process(),
            Runtime::Pi => pi::process(),
            Runtime::Opencode => opencode::process(),
            Runtime::Stub => stub::process(),
        }
    }

    /// Where the transcript lives.
    pub fn transcript(self) -> Transcript {
        match self {
            Runtime::Claude => claude::TRANSCRIPT,
            Runtime::Codex => codex::TRANSCRIPT,
            Runtime::Pi => pi::TRANSCRIPT,
            Runtime::Opencode => opencode::TRANSCRIPT,
            Runtime::Stub => stub::TRANSCRIPT,
        }
    }

    /// The user messages in a transcript, oldest first, exactly as the
    /// runtime recorded them (for the stub: the pane capture).
    pub fn user_turns(self, bytes: &[u8]) -> Result<Vec<String>, TranscriptError> {
        match self {
            Runtime::Claude => claude::user_turns(bytes),
            Runtime::Codex => codex::user_turns(bytes),
            Runtime::Pi => pi::user_turns(bytes),
            Runtime::Opencode => opencode::user_turns(bytes),
            Runtime::Stub => stub::user_turns(bytes),
        }
    }
}

impl Runtime {
    /// The runtime an agent's launch command runs, by the program's file
    /// name against each adapter's [`ProcessShape::pane_commands`] (leading
    /// `env` and `VAR=value` words skipped); `None` when no adapter claims it.
    pub fn for_command(command: &str) -> Option<Runtime> {
        let base = crate::command::program_of(command)?;
        Runtime::ALL
            .into_iter()
            .find(|r| r.process().pane_commands.contains(&base))
    }

    /// For a [`TranscriptFormat::Sqlite`] transcript: the argv that prints
    /// its user turns as JSON for [`Runtime::user_turns`] (`db` is
    /// [`Transcript::root`]); `None` for the other formats.
    pub fn transcript_query(self, db: &Path) -> Option<Vec<String>> {
        match self {
            Runtime::Opencode => Some(opencode::user_turns_query(db)),
            _ => None,
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The delivery of one message by bracketed paste, as argv: run
/// [`Delivery::load`] with the message on its stdin, then
/// [`Delivery::paste`], then — once the screen shows the paste taken in
/// ([`ScreenState::InputPending`]) — [`Delivery::enter`]. The text never
/// travels as keystrokes or on a command line a shell parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `tmux [-L S] load-buffer -b NAME -` (the text on stdin).
    pub load: Vec<String>,
    /// `tmux [-L S] paste-buffer -p -d -b NAME -t =SESSION:0.0` (bracketed
    /// when the application asked for it; the buffer deleted after).
    pub paste: Vec<String>,
    /// `tmux [-L S] send-keys -t =SESSION:0.0 Enter`.
    pub enter: Vec<String>,
}

/// The delivery recipe for `session` on `socket` through buffer `buffer`
/// (a name unique to this delivery, e.g. `mosaic-send-PID-N`).
pub fn delivery(socket: Option<&str>, session: &str, buffer: &str) -> Delivery {
    let target = crate::tmux::pane_target(session);
    let with = |args: &[&str]| {
        let mut v = crate::tmux::base(socket);
        v.extend(args.iter().map(|a| a.to_string()));
        v
    };
    Delivery {
        load: with(&["load-buffer", "-b", buffer, "-"]),
        paste: with(&["paste-buffer", "-p", "-d", "-b", buffer, "-t", &target]),
        enter: with(&["send-keys", "-t", &target, "Enter"]),
    }
}

/// The lines of a capture with trailing blank lines dropped.
pub(crate) fn lines(capture: &str) -> Vec<&str> {
    let mut v: Vec<&str> = capture.lines().map(|l| l.trim_end()).collect();
    while v.last().is_some_and(|l| l.trim().is_empty()) {
        v.pop();
    }
    v
}

/// Parse JSON Lines, skipping blank lines.
pub(crate) fn jsonl(bytes: &[u8]) -> Result<Vec<serde_json::Value>, TranscriptError> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line).map_err(|e| TranscriptError::BadLine {
                line: i + 1,
                msg: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_is_a_bracketed_paste_from_stdin_then_enter() {
        let d = delivery(Some("fleet"), "coder0", "mosaic-send-42-1");
        assert_eq!(
            d.load,
            [
                "tmux",
                "-L",
                "fleet",
                "load-buffer",
                "-b",
                "mosaic-send-42-1",
                "-"
            ]
        );
        assert_eq!(
            d.paste,
            [
                "tmux",
                "-L",
                "fleet",
                "paste-buffer",
                "-p",
                "-d",
                "-b",
                "mosaic-send-42-1",
                "-t",
                "=coder0:0.0"
            ]
        );
        assert_eq!(
            d.enter,
            [
                "tmux",
                "-L",
                "fleet",
                "send-keys",
                "-t",
                "=coder0:0.0",
                "Enter"
            ]
        );
        assert_eq!(delivery(None, "a", "b").load[1], "load-buffer");
    }

    #[test]
    fn same_message_is_exact_but_for_opencodes_paste_space() {
        assert!(Runtime::Claude.same_message("a\nb", "a\nb"));
        assert!(!Runtime::Claude.same_message("a\nb", "a\nb "));
        assert!(Runtime::Opencode.same_message("a\nb", "a\nb "));
        assert!(!Runtime::Opencode.same_message("a\nb", "a\nb  "));
        assert!(!Runtime::Opencode.same_message("a\nb", "a b"));
    }

    #[test]
    fn launch_commands_name_their_runtime() {
        assert_eq!(
            Runtime::for_command("/h/tools/fleet/stub-agent"),
            Some(Runtime::Stub)
        );
        assert_eq!(
            Runtime::for_command("env FOO=1 /h/stub-agent x"),
            Some(Runtime::Stub)
        );
        assert_eq!(Runtime::for_command("/usr/bin/frobnicate"), None);
        assert!(Runtime::Opencode
            .transcript_query(Path::new("/x.db"))
            .is_some());
        assert!(Runtime::Claude.transcript_query(Path::new("/x")).is_none());
    }

    #[test]
    fn names_round_trip() {
        for r in Runtime::ALL {
            assert_eq!(Runtime::from_name(r.name()), Some(r));
        }
        assert_eq!(Runtime::from_name("gemini"), None);
    }

    #[test]
    fn transcript_root_honours_codex_home() {
        let t = Runtime::Codex.transcript();
        let home = Path::new("/home/op");
        assert_eq!(
            t.root(home, |_| None),
            Path::new("/home/op/.codex/sessions")
        );
        assert_eq!(
            t.root(home, |k| (k == "CODEX_HOME")
                .then(|| "/srv/codex".to_string())),
            Path::new("/srv/codex/sessions")
        );
        assert_eq!(
            Runtime::Claude.transcript().root(home, |_| None),
            Path::new("/home/op/.claude/projects")
        );
        assert_eq!(
            Runtime::Pi
                .transcript()
                .root(home, |k| (k == "PI_CODING_AGENT_SESSION_DIR")
                    .then(|| "/s".to_string())),
            Path::new("/s")
        );
    }

    #[test]
    fn pane_commands_classify() {
        let pi = Runtime::Pi.process();
        assert_eq!(pi.classify("pi"), PaneCommand::Runtime);
        assert_eq!(pi.classify("node"), PaneCommand::Starting);
        assert_eq!(pi.classify("bash"), PaneCommand::Other);
        assert_eq!(
            Runtime::Codex.process().classify("node"),
            PaneCommand::Runtime
        );
    }
}
