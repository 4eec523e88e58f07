//! mosaic: installer, updater and fleet tool for long-lived coding agents.
//!
//! The library holds every behaviour; `main.rs` only parses and dispatches.
//! Modules, one concern each:
//! - [`source`]: the embedded framework tree (or `MOSAIC_FRAMEWORK_DIR`);
//! - [`manifest`]: the install manifest; [`history`]: what earlier releases shipped;
//! - [`preserve`]: the operator's preserve set;
//! - [`scan`] and [`plan`]: disk facts and the pure keep-mode planner;
//! - [`txn`]: backups, journal, atomic apply and recovery;
//! - [`sync`]: the install/update engine and its inspections;
//! - [`migrate`], [`units`], [`relaunch`]: socket migration, active-unit
//!   refresh and `--relaunch`, inside the update;
//! - [`lock`], [`fsutil`], [`paths`], [`failpoint`]: plumbing;
//! - [`fleet`]: the fleet runtime commands;
//! - [`selfupdate`]: updating the binary from verified releases;
//! - [`cli`], [`commands`], [`report`]: the command line and its output.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod failpoint;
pub mod fleet;
pub mod fsutil;
pub mod history;
pub mod lock;
pub mod manifest;
pub mod migrate;
pub mod paths;
pub mod plan;
pub mod preserve;
pub mod relaunch;
pub mod report;
pub mod runner;
pub mod scan;
pub mod selfupdate;
pub mod source;
pub mod sync;
pub mod systemd;
pub mod txn;
pub mod units;
