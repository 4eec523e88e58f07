//! clap definitions of `mosaic fleet …` and `mosaic agent …`.

use super::roster::{Class, Runtime};
use crate::cli::{enum_parser, DryRun};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Which roster to use.
#[derive(Debug, Clone, Args, Default)]
pub struct RosterArg {
    /// Roster file (default: HOME/fleet/roster.yaml).
    #[arg(long, value_name = "FILE", add = crate::complete::rosters())]
    pub roster: Option<PathBuf>,
}

/// `mosaic fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Write fleet/roster.yaml from a shipped example (never overwrites).
    Init {
        /// Example to start from: fleet/examples/PRESET.yaml.
        #[arg(long, default_value = "minimal", add = crate::complete::presets())]
        preset: String,
        /// Roster to write.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Add an agent to the roster, keeping its comments.
    Add {
        /// Agent name ([a-z0-9][a-z0-9_-]{0,62}).
        name: String,
        /// Runtime.
        #[arg(long, value_parser = enum_parser::<Runtime>(&["claude", "codex", "pi", "opencode"]))]
        runtime: Runtime,
        /// Role.
        #[arg(long, value_parser = enum_parser::<Class>(&["orchestrator", "enhancer", "implementer", "reviewer", "research"]))]
        class: Option<Class>,
        /// Model hint (becomes MOSAIC_AGENT_MODEL, then --model).
        #[arg(long)]
        model: Option<String>,
        /// Working directory (overrides defaults.working_directory).
        #[arg(long, value_name = "DIR")]
        workdir: Option<String>,
        /// Per-agent tmux socket.
        #[arg(long)]
        socket: Option<String>,
        /// The host the agent lives on: a `hosts:` name (or, with --ssh, a
        /// host of its own).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// How to reach --host when `hosts:` does not name it (USER@HOST or
        /// HOST; written as the agent's `ssh:`).
        #[arg(long, value_name = "TARGET", requires = "host")]
        ssh: Option<String>,
        /// A full command line that replaces the runtime's (written to
        /// fleet/agents/NAME.env as MOSAIC_AGENT_COMMAND, kept by `fleet install`).
        #[arg(long, value_name = "CMD")]
        command: Option<String>,
        /// Roster to edit.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Remove an agent from the roster, keeping its comments, then stop and
    /// disable its unit (`mosaic-agent@NAME.service`).
    Remove {
        /// Agent name.
        #[arg(add = crate::complete::agents())]
        name: String,
        /// Leave its unit running and enabled (only edit the roster).
        #[arg(long)]
        keep_running: bool,
        /// Roster to edit.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Write/merge the agents' env files, install the units, daemon-reload, enable for boot.
    Install {
        /// This machine is HOST of the roster's `hosts:` (install only its
        /// agents); default: $MOSAIC_HOST_NAME, else the controller.
        #[arg(long = "as", value_name = "HOST", add = crate::complete::hosts())]
        as_host: Option<String>,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Start the holder and the agents (all, or the named ones).
    Start {
        /// Agents (default: every local agent).
        #[arg(add = crate::complete::agents())]
        names: Vec<String>,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Stop the agents (named ones), or the whole fleet with its holder. A
    /// name no longer in the roster whose unit is still loaded stops that unit.
    Stop {
        /// Agents (default: every agent and the holder).
        #[arg(add = crate::complete::agents())]
        names: Vec<String>,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Restart the agents (named ones), or the whole fleet with its holder.
    Restart {
        /// Agents (default: every agent and the holder).
        #[arg(add = crate::complete::agents())]
        names: Vec<String>,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Undo the last fleet edit (roster or env files), when the files still hold what it wrote.
    Undo {
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
    },
    /// Show systemd's view of the fleet's units (exit 1 if any is not active).
    Status {
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// Check that every local agent has its exact session with a live pane
    /// running its runtime and a fresh heartbeat (exit 1 naming each MISSING,
    /// DEAD, DRIFT or STALE agent).
    Verify {
        /// A heartbeat older than this many seconds is STALE.
        #[arg(long, value_name = "SECS", default_value_t = super::ps::DEFAULT_STALE_AFTER)]
        stale_after: u64,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// One row per agent: unit, session, pane, process tree, heartbeat, flags.
    Ps {
        /// A heartbeat older than this many seconds is STALE.
        #[arg(long, value_name = "SECS", default_value_t = super::ps::DEFAULT_STALE_AFTER)]
        stale_after: u64,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// Put this mosaic binary on a host of the roster and run its `install` there.
    Deploy {
        /// Host (a name of the roster's `hosts:`).
        #[arg(add = crate::complete::hosts())]
        host: String,
        /// Remote directory of the binary (absolute; default: $HOME/.local/bin there).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<String>,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
        /// --dry-run: print the steps, connect to nothing.
        #[command(flatten)]
        dry: DryRun,
    },
}

/// `mosaic agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Deliver a message by bracketed paste, only when the agent is at its prompt.
    Send {
        /// Agent name.
        #[arg(add = crate::complete::agents())]
        name: String,
        /// The message (newlines and tabs kept; other control characters become spaces).
        #[arg(short = 'm', long = "message", allow_hyphen_values = true)]
        message: String,
        /// Source label shown as "[from SOURCE]".
        #[arg(long, default_value = "operator:mosaic-cli")]
        source: String,
        /// Read the runtime's own record back: exit 0 when it shows the message as a user turn, 1 when not.
        #[arg(long)]
        verify: bool,
        /// Deliver even when the agent is not at its prompt (a message may then answer a prompt).
        #[arg(long, conflicts_with = "queue")]
        force: bool,
        /// Wait (up to --timeout) for the agent to be at its prompt instead of refusing.
        #[arg(long)]
        queue: bool,
        /// How long --verify waits for the receipt (and --queue for the prompt), seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
        /// Refused: a message to a live agent cannot be rehearsed.
        #[arg(long, hide = true)]
        dry_run: bool,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// Watch an agent read-only (a grouped viewer session, removed on exit).
    Watch {
        /// Agent name.
        #[arg(add = crate::complete::agents())]
        name: String,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// Print the last lines of an agent's pane.
    Tail {
        /// Agent name.
        #[arg(add = crate::complete::agents())]
        name: String,
        /// Number of lines.
        #[arg(short = 'n', long = "lines", default_value_t = 40)]
        lines: usize,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// Deliver the runtime's reset command to that one agent and confirm it took.
    Reset {
        /// Agent name.
        #[arg(add = crate::complete::agents())]
        name: String,
        /// Wait (up to --timeout) for the prompt, and retry once a busy runtime refused.
        #[arg(long)]
        queue: bool,
        /// How long to wait for the confirmation (and --queue for the prompt), seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
        /// Refused: a reset of a live agent cannot be rehearsed.
        #[arg(long, hide = true)]
        dry_run: bool,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
    /// Print the agent's pane log (H/fleet/run/NAME.log, kept by tmux
    /// pipe-pane, rotated 1 MiB x 3): what a runtime printed before it died.
    Logs {
        /// Agent name.
        #[arg(add = crate::complete::agents())]
        name: String,
        /// Keep printing what is appended (until interrupted).
        #[arg(short = 'f', long)]
        follow: bool,
        /// Number of lines.
        #[arg(short = 'n', long = "lines", default_value_t = 40)]
        lines: usize,
        /// Roster.
        #[command(flatten)]
        roster: RosterArg,
    },
}
