//! What a declared `MOSAIC_AGENT_COMMAND` finally runs: the one reading of
//! a shell command line that `fleet ps` (DRIFT) and the runtime adapters
//! (which adapter an agent gets) share.

/// The last `/`-separated part of a path.
pub fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Launchers that run the real program as their argument.
const LAUNCHERS: &[&str] = &[
    "exec", "env", "nice", "nohup", "ionice", "setsid", "stdbuf", "command",
];

/// The command of a declared `MOSAIC_AGENT_COMMAND` that finally runs: the
/// last `&&`/`;` segment that is not a `cd` (so `cd DIR && exec claude`
/// is `exec claude`).
fn final_segment(cmd: &str) -> &str {
    let segs: Vec<&str> = cmd.split("&&").flat_map(|s| s.split(';')).collect();
    segs.into_iter()
        .rev()
        .map(str::trim)
        .find(|s| !s.is_empty() && s.split_whitespace().next() != Some("cd"))
        .unwrap_or(cmd)
}

/// The basename of the program a declared command finally runs: the first
/// word of its final `&&`/`;` segment that is not a `cd`, skipping launchers
/// (`exec`, `env`, `nice`, `nohup`, …), their `-options` and `VAR=value`
/// words. `None` for an empty command.
pub fn program_of(cmd: &str) -> Option<&str> {
    let cmd = cmd.trim();
    if cmd.is_empty() {
        return None;
    }
    let cmd = final_segment(cmd);
    let mut after_launcher = false;
    let word = cmd
        .split_whitespace()
        .find(|w| {
            let assignment = w.contains('=') && !w.starts_with(['/', '~', '.']);
            let launcher = LAUNCHERS.contains(w);
            let option =
                after_launcher && (w.starts_with('-') || w.chars().all(|c| c.is_ascii_digit()));
            after_launcher |= launcher;
            !launcher && !assignment && !option
        })
        .unwrap_or(cmd);
    Some(basename(word.trim_matches(['"', '\''])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_prefixes_and_launchers_are_skipped() {
        assert_eq!(
            program_of("cd /tmp && exec /x/stub-agent"),
            Some("stub-agent")
        );
        assert_eq!(program_of("nohup env -i A=b claude --flag"), Some("claude"));
        assert_eq!(program_of("nice -n 5 codex"), Some("codex"));
        assert_eq!(program_of("  "), None);
    }
}
