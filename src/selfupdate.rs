//! Self-update from published releases (SPEC §9). (Being built: issue 6.)

use crate::cli::{Global, UpdateArgs};
use crate::error::Result;
use crate::report::Printer;

/// What the release check did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing newer (or the check was skipped/failed with a notice): sync
    /// the current binary's framework.
    Continue,
    /// A newer binary was installed and re-executed; it already synced. The
    /// value is its exit code.
    Reexeced(i32),
}

/// Checks for a newer release and, when one verifies, replaces this binary
/// and re-executes it.
pub fn check_and_update(_args: &UpdateArgs, _g: &Global, _p: &Printer) -> Result<Outcome> {
    Ok(Outcome::Continue)
}
