//! mosaic-fleet: the fleet layer, between the engine and the binary.
//!
//! It knows the roster ([`roster`], [`envfile`]), how to talk to tmux
//! ([`tmux`]) and systemd ([`systemd`]) as pure argv builders and output
//! parsers, the `fleet ps` snapshot and its pure join ([`ps`]), the
//! `--relaunch` choreography ([`relaunch`]) and the legacy-socket facts
//! ([`legacy`]), and other hosts: the ssh transport ([`ssh`]) and the
//! fixed remote scripts ([`hosts`]). Every external program runs through [`runner`]. Files
//! below the home are written only through the engine's transaction.
#![warn(missing_docs)]

pub mod adapters;
pub mod command;
pub mod deploy;
pub mod envfile;
pub mod hosts;
pub mod legacy;
pub mod ps;
pub mod relaunch;
pub mod roster;
pub mod runner;
pub mod ssh;
pub mod systemd;
pub mod tmux;
pub mod whoami;

pub use mosaic_engine::{error, Error, Result};
