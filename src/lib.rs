//! mosaic: the binary's library, the top layer.
//!
//! It owns the command line ([`cli`], with [`complete`] for shell completion,
//! [`manpages`] and the built-in docs [`help`]), the command handlers ([`commands`],
//! [`fleet`] for `mosaic fleet …` / `mosaic agent …`, [`doctor`]), all output
//! ([`report`]), exit codes and the self-update ([`selfupdate`]). Files are
//! changed only through `mosaic_engine`'s pipeline; tmux, systemctl and ssh
//! only through `mosaic_fleet`'s runner.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod complete;
pub mod doctor;
pub mod fleet;
pub mod help;
pub mod manpages;
pub mod report;
pub mod selfupdate;
