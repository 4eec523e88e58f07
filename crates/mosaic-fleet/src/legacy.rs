//! The legacy tmux socket as the fleet sees it: which sessions are live on
//! `mosaic-factory` (a fact the engine's socket migration needs), and how to
//! stop its server for `--relaunch`.

use crate::error::{Error, Result};
use mosaic_engine::migrate::LEGACY_SOCKET;

/// The sessions live on the legacy socket (empty when no server runs there
/// or tmux is not installed).
pub fn legacy_sessions() -> Vec<String> {
    match crate::runner::output(&crate::tmux::list_sessions(Some(LEGACY_SOCKET))) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// argv that stops the legacy socket's tmux server.
pub fn kill_legacy_server_argv() -> Vec<String> {
    let mut argv = crate::tmux::base(Some(LEGACY_SOCKET));
    argv.push("kill-server".to_string());
    argv
}

/// Stops the tmux server on the legacy socket, if one runs.
pub fn kill_legacy_server() -> Result<()> {
    let out = crate::runner::output(&kill_legacy_server_argv())?;
    if out.status.success() || legacy_sessions().is_empty() {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "could not stop the tmux server on {LEGACY_SOCKET}: {}; stop it with `tmux -L {LEGACY_SOCKET} kill-server`",
            crate::runner::first_line(&out)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_exact() {
        assert_eq!(
            kill_legacy_server_argv(),
            ["tmux", "-L", "mosaic-factory", "kill-server"]
        );
    }
}
