//! The fleet runtime commands (SPEC §7–§8): roster, env files, systemd and
//! tmux control, `fleet ps`, and the per-agent commands.
//!
//! (Being built: see issue 4.)

pub mod cli;

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::report::Printer;

/// Runs a `mosaic fleet …` command; returns the exit code.
pub fn run_fleet(_cmd: &cli::FleetCommand, _g: &Global, _p: &Printer) -> Result<i32> {
    Err(Error::Input("mosaic fleet is not built yet".into()))
}

/// Runs a `mosaic agent …` command; returns the exit code.
pub fn run_agent(_cmd: &cli::AgentCommand, _g: &Global, _p: &Printer) -> Result<i32> {
    Err(Error::Input("mosaic agent is not built yet".into()))
}
