//! The legacy tmux socket as the fleet sees it: which sessions are live on
//! `mosaic-factory` (a fact the engine's socket migration needs), and how to
//! stop its server for `--relaunch`.

use crate::error::{Error, Result};
use mosaic_engine::migrate::LEGACY_SOCKET;

/// The sessions live on the legacy socket (empty when no server runs there
/// or tmux is not installed); a tmux that does not answer within the
/// runner's deadline is an error, never a wait.
pub fn legacy_sessions() -> Result<Vec<String>> {
    legacy_sessions_with(&crate::runner::RealExec)
}

/// [`legacy_sessions`] through a given runner.
pub fn legacy_sessions_with(exec: &dyn crate::runner::Exec) -> Result<Vec<String>> {
    let argv = crate::tmux::list_sessions(Some(LEGACY_SOCKET));
    match exec.run(&argv, None, crate::runner::default_deadline()) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()),
        Err(e @ Error::Timeout { .. }) => Err(e),
        _ => Ok(Vec::new()),
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
    if out.status.success() || legacy_sessions()?.is_empty() {
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

    #[test]
    fn legacy_sessions_asks_the_legacy_socket_and_passes_a_timeout_on() {
        use crate::runner::FakeExec;
        let fake = FakeExec::new(vec![FakeExec::reply(0, "a\nb\n")]);
        assert_eq!(legacy_sessions_with(&fake).unwrap(), ["a", "b"]);
        assert_eq!(
            fake.argvs(),
            [[
                "tmux",
                "-u",
                "-L",
                "mosaic-factory",
                "list-sessions",
                "-F",
                "#{session_name}"
            ]]
        );
        let hung = FakeExec::new(vec![Err(Error::Timeout {
            command: "tmux".into(),
            secs: 1,
        })]);
        assert!(matches!(
            legacy_sessions_with(&hung),
            Err(Error::Timeout { .. })
        ));
        let missing = FakeExec::new(vec![FakeExec::reply(1, "")]);
        assert!(legacy_sessions_with(&missing).unwrap().is_empty());
    }
}
