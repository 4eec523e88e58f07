//! mosaic-engine: the keep-mode engine, the bottom layer of mosaic.
//!
//! It owns the files: where they live ([`paths`]), what was shipped
//! ([`source`], [`history`]), what was installed ([`manifest`], encoded by
//! [`index`]), what the
//! operator keeps ([`preserve`]), the disk facts ([`scan`]), the pure
//! decision per path ([`plan`], [`units`] for the active unit directory,
//! [`migrate`] for pure text rewrites), and the one way to change them: the
//! locked, journalled, backed-up transaction ([`session`], [`txn`],
//! [`lock`]) that [`sync`] and every other writing command drive. It has no CLI, runs no tmux or systemctl and prints
//! nothing: facts about the world outside the files come in as values, and
//! reports go out as values.
#![warn(missing_docs)]

pub mod civil;
pub mod digest;
pub mod dirfd;
pub mod error;
pub mod failpoint;
pub mod fsutil;
pub mod generations;
pub mod history;
pub mod index;
pub mod lock;
pub mod manifest;
pub mod migrate;
pub mod paths;
pub mod plan;
pub mod preserve;
pub mod scan;
pub mod session;
pub mod sorted;
pub mod source;
pub mod sync;
pub mod txn;
pub mod units;
pub mod yamledit;

pub use digest::Sha256;

/// A path below a root (the home, a framework tree), `/`-separated: one
/// allocation shared by every map that names the path (the source, the
/// manifest, the disk view, the plan) instead of a copy in each.
pub type Rel = std::sync::Arc<str>;
pub use error::{Error, Result};
