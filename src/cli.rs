//! The command-line interface: clap definitions only (parsed in `main.rs`,
//! dispatched by `crate::commands`). Also used by `mosaic completions` and
//! `mosaic man`, and by `cargo xtask dist` through those.

use clap::{Args, Parser, Subcommand};
use mosaic_engine::plan::ConflictMode;
use std::path::PathBuf;

/// The process exit codes, one source of truth: `--help` (after_help) and
/// every man page's EXIT STATUS section are made from this table. The codes
/// themselves are decided in `crate::commands` (a unit test there checks
/// that its constants agree with this table).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "ok"),
    (
        1,
        "differences found (status, verify, fleet verify, send --verify not accepted)",
    ),
    (2, "bad input"),
    (3, "update blocked by a type clash (nothing changed)"),
    (4, "update failed and was rolled back"),
    (
        5,
        "another mosaic run holds the lock (it is named: never delete the lock file)",
    ),
    (6, "the install is newer than this mosaic"),
    (
        7,
        "trouble: an I/O error, a damaged manifest or journal (refused, not acted on), a program past its deadline, or stdout not writable",
    ),
    (
        8,
        "update refused a newer release that did not verify (the framework sync of this mosaic still ran)",
    ),
];

/// Where the installed documentation is, as the help footer and the man
/// pages say it.
pub const DOCS_WHERE: &str = "`mosaic docs` lists the topics and `mosaic docs TOPIC` prints one \
(the same pages are installed in /usr/share/doc/mosaic/ by the .deb, gzipped when large, and \
are in docs/ of the release archive); `man mosaic`, `man mosaic-fleet-ps`, ... for each command";

/// The text after `mosaic --help`: exit codes (from [`EXIT_CODES`]),
/// homes, environment, where the docs are.
pub fn after_help() -> String {
    let codes: Vec<String> = EXIT_CODES
        .iter()
        .map(|(code, what)| format!("{code} {what}"))
        .collect();
    format!(
        "Exit codes: {}.\n\n{HOMES}\n\n{ENVIRONMENT}\n\nDocs: {DOCS_WHERE}.",
        codes.join("; ")
    )
}

/// The homes paragraph of `--help` and mosaic(1).
pub const HOMES: &str = "\
Homes: --home, MOSAIC_HOME and MOSAIC_STATE_DIR must be absolute; /, system directories \
(/etc, /usr, /var, /tmp, ...) and your HOME itself are refused, as are paths with control \
characters or not in UTF-8. Only the home the active units point at (%E/mosaic) refreshes \
them; give install/update --units to refresh them from another home.";

/// The environment paragraph of `--help` and mosaic(1).
pub const ENVIRONMENT: &str = "\
Environment: MOSAIC_HOME (framework home), MOSAIC_STATE_DIR (backups, journal), \
MOSAIC_FRAMEWORK_DIR + MOSAIC_FRAMEWORK_VERSION (install another framework tree), \
MOSAIC_TMUX, MOSAIC_SYSTEMCTL (programs), MOSAIC_EXEC_TIMEOUT_SECS (deadline of each \
program, default 10), MOSAIC_LOCK_TIMEOUT_SECS (lock wait, default 30), MOSAIC_RELEASE_URL \
(release source), NO_COLOR, MOSAIC_COMPLETE (set by the shell completion scripts).";

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
    after_long_help = after_help()
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
    /// Framework home (default: $XDG_CONFIG_HOME/mosaic, else ~/.config/mosaic).
    #[arg(long, global = true, value_name = "DIR", env = "MOSAIC_HOME", value_hint = clap::ValueHint::DirPath)]
    pub home: Option<PathBuf>,
    /// Print one JSON document instead of human lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only problems.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print each external command (tmux, systemctl, ssh, scripts) with its duration, on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// When to colour output: auto (each of stdout and stderr on its own terminal, never with
    /// NO_COLOR, always with CLICOLOR_FORCE), always, never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto",
          value_parser = enum_parser::<crate::report::ColorWhen>(&["auto", "always", "never"]))]
    pub color: crate::report::ColorWhen,
}

/// `--dry-run`, on the commands that write: the plan is printed and the run
/// stops before anything is written (the command then has no write access).
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct DryRun {
    /// Show what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A clap parser for a clap-free domain enum: its names as the possible
/// values (so `--help` and completions list them), parsed with `FromStr`.
pub fn enum_parser<T>(
    names: &'static [&'static str],
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Debug,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names)
        .map(|s| s.parse::<T>().expect("a listed name parses"))
}

/// How to settle conflicts, for the commands that plan a sync.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ConflictArg {
    /// How to settle files both you and the release changed (and type clashes).
    #[arg(long, default_value = "keep", value_parser = enum_parser::<ConflictMode>(&["keep", "replace"]))]
    pub conflict: ConflictMode,
}

/// Options of `install` / `update`.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct SyncArgs {
    /// --dry-run.
    #[command(flatten)]
    pub dry: DryRun,
    /// --conflict.
    #[command(flatten)]
    pub conflict: ConflictArg,
    /// Allow installing an older framework over a newer install.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Refresh the active systemd units even though this home is not the one
    /// they point at (%E/mosaic); without it such a home leaves them alone.
    #[arg(long)]
    pub units: bool,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the framework into the home (keep mode: your files are never lost).
    Install(SyncArgs),
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
        /// --conflict, as the update would run.
        #[command(flatten)]
        conflict: ConflictArg,
    },
    /// Undo a generation (default: the last install/update/rollback), keeping your later edits.
    ///
    /// Restores the shipped files of the generation before it with the same
    /// three-way rules as an update: files you changed or added since are
    /// kept (a conflict goes beside as PATH.mosaic-new), the roster and your
    /// other files are never touched, and the manifest is rewritten. The
    /// rollback is itself a generation, so it can be rolled back too.
    Rollback {
        /// Generation number (or backup id), as listed by `mosaic backups`.
        #[arg(add = crate::complete::backups())]
        id: Option<String>,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
        /// --conflict.
        #[command(flatten)]
        conflict: ConflictArg,
    },
    /// Settle a pending conflict: keep your file, or take the release's PATH.mosaic-new.
    Resolve {
        /// The path (relative to the home) that has a PATH.mosaic-new beside it.
        path: String,
        /// Keep your file; the release's copy is removed (backed up).
        #[arg(long, conflicts_with = "take", required_unless_present = "take")]
        keep: bool,
        /// Take the release's copy; your file is backed up and replaced.
        #[arg(long)]
        take: bool,
        /// --dry-run.
        #[command(flatten)]
        dry: DryRun,
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
    /// Check what the fleet needs here: linger, the user manager, the units'
    /// home, tmux, each roster runtime on PATH (exit 1 on any problem).
    Doctor {
        /// Roster.
        #[command(flatten)]
        roster: crate::fleet::cli::RosterArg,
    },
    /// Print the shell completion script (it asks this mosaic for agent
    /// names, presets, generations and rosters as you type).
    ///
    /// bash: `source <(mosaic completions bash)` in ~/.bashrc; zsh: `source
    /// <(mosaic completions zsh)` in ~/.zshrc (or the file as _mosaic in
    /// $fpath); fish: `mosaic completions fish | source` in
    /// ~/.config/fish/config.fish. The .deb installs them for all three.
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff): mosaic(1), or the page of a command
    /// (`mosaic man fleet ps` is mosaic-fleet-ps(1)); `--out DIR` writes them all.
    Man(crate::manpages::ManArgs),
    /// Print a documentation page (Markdown), or list them.
    ///
    /// The pages are the ones installed in /usr/share/doc/mosaic/ by the .deb
    /// and shipped in docs/ of the release archive, built into this binary.
    Docs {
        /// Topic (without it: the list of topics).
        #[arg(add = crate::help::topics())]
        topic: Option<String>,
    },
}

/// Options of `mosaic update`.
#[derive(Debug, Args, Clone, Default)]
pub struct UpdateArgs {
    /// --dry-run, --conflict, --allow-downgrade.
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Skip the check for a newer mosaic release; only sync the framework.
    #[arg(long)]
    pub offline: bool,
    /// After the sync, restart the active fleet units it changed (units or fleet
    /// scripts: the whole fleet; an env file: that agent; nothing: none) and
    /// check each agent's session.
    #[arg(long)]
    pub relaunch: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_engine::error::Error;

    /// The table `--help` and the man pages print agrees with the codes the
    /// binary exits with.
    #[test]
    fn exit_code_table_matches_the_codes_used() {
        let codes: Vec<i32> = EXIT_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, (0..=8).collect::<Vec<_>>());
        let what = |c: i32| EXIT_CODES[c as usize].1;
        assert_eq!(crate::commands::exit_code(&Error::Input("x".into())), 2);
        assert!(what(2).contains("bad input"));
        assert!(what(crate::commands::EXIT_TROUBLE).starts_with("trouble"));
        assert!(what(crate::commands::EXIT_REFUSED_RELEASE).contains("did not verify"));
        let help = after_help();
        for (c, w) in EXIT_CODES {
            assert!(help.contains(&format!("{c} {w}")), "{c}");
        }
    }
}
