//! The command-line interface: clap definitions only (parsed in `main.rs`,
//! dispatched by `crate::commands`). Also used by `mosaic completions` and
//! `mosaic man`, and by `cargo xtask dist` through those.

use crate::plan::ConflictMode;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes: 0 ok; 1 differences found (status, verify) or an I/O error; 2 bad input;
3 update blocked by a type clash (nothing changed); 4 update failed and was rolled back;
5 another mosaic run holds the lock; 6 the install is newer than this mosaic.

Environment: MOSAIC_HOME (framework home), MOSAIC_STATE_DIR (backups, journal),
MOSAIC_FRAMEWORK_DIR + MOSAIC_FRAMEWORK_VERSION (install another framework tree),
MOSAIC_TMUX, MOSAIC_SYSTEMCTL (programs), MOSAIC_RELEASE_URL (release source),
NO_COLOR. Docs: docs/install-and-update.md, docs/fleet.md.";

/// Installer, updater and fleet tool for long-lived coding agents.
///
/// mosaic keeps the framework tree in ~/.config/mosaic up to date without
/// ever losing the operator's files, and runs the agent fleet in tmux under
/// systemd user units.
#[derive(Debug, Parser)]
#[command(
    name = "mosaic",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Framework home (default: $MOSAIC_HOME, else $XDG_CONFIG_HOME/mosaic, else ~/.config/mosaic).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Show what would change and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Print one JSON document instead of human lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only problems.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// How to settle files both you and the release changed (and type clashes).
    #[arg(long, global = true, value_enum, default_value_t = ConflictMode::Keep)]
    pub conflict: ConflictMode,
    /// Allow installing an older framework over a newer install.
    #[arg(long, global = true)]
    pub allow_downgrade: bool,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the framework into the home (keep mode: your files are never lost).
    Install,
    /// Update the framework in the home (keep mode), after checking for a newer mosaic.
    Update(UpdateArgs),
    /// Show what differs between disk, the install manifest and this release (exit 1 if anything).
    Status,
    /// Check every installed shipped file against the manifest (exit 1 on a modified or missing file).
    Verify,
    /// Show the unified diff of what an update would change.
    Diff {
        /// Limit to these paths (relative to the home).
        paths: Vec<String>,
    },
    /// Restore the tree from a backup (default: the newest); itself backed up.
    Rollback {
        /// Backup id, as listed by `mosaic backups`.
        id: Option<String>,
    },
    /// List the backups of this home, newest first.
    Backups,
    /// Manage the agent fleet (roster, units, sessions).
    Fleet {
        /// Fleet command.
        #[command(subcommand)]
        command: crate::fleet::cli::FleetCommand,
    },
    /// Talk to or watch one agent.
    Agent {
        /// Agent command.
        #[command(subcommand)]
        command: crate::fleet::cli::AgentCommand,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Options of `mosaic update`.
#[derive(Debug, Args, Clone, Default)]
pub struct UpdateArgs {
    /// Skip the check for a newer mosaic release; only sync the framework.
    #[arg(long)]
    pub offline: bool,
    /// After the sync, restart the fleet's units that were active and check each agent's session.
    #[arg(long)]
    pub relaunch: bool,
}
