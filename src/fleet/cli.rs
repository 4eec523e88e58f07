//! clap definitions of `mosaic fleet …` and `mosaic agent …`.

use clap::Subcommand;

/// `mosaic fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Show systemd's view of the fleet's units.
    Status,
}

/// `mosaic agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Print the last lines of an agent's pane.
    Tail {
        /// Agent name.
        name: String,
    },
}
