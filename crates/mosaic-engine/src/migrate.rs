//! Migrations run by `install` / `update` inside the sync's transaction
//! (SPEC §5). Today: the legacy tmux socket name `mosaic-factory` becomes
//! `mosaic-fleet` in rosters (`socket_name`, per-agent `socket`) and agent env
//! files (`MOSAIC_TMUX_SOCKET`), keeping every other byte. An absent
//! `socket_name` (the default tmux server) is never rewritten. While tmux
//! sessions are live on the legacy socket the migration is deferred, unless
//! the operator asked for `--relaunch`.
//!
//! The text rewrites are pure functions; [`socket_rewrites`] reads the
//! files. Whether the legacy socket is in use is a fact the caller brings
//! (the fleet crate asks tmux).

use crate::error::{IoContext, Result};
use regex::Regex;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// The legacy socket name.
pub const LEGACY_SOCKET: &str = "mosaic-factory";
/// The production socket name.
pub const FLEET_SOCKET: &str = "mosaic-fleet";

fn yaml_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(^|[\s{,])(socket_name|socket)(\s*:\s*)("mosaic-factory"|'mosaic-factory'|mosaic-factory)([ \t]*(?:[,}]|$))"#,
        )
        .expect("valid regex")
    })
}

fn env_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"^(\s*(?:export\s+)?MOSAIC_TMUX_SOCKET\s*=\s*)("mosaic-factory"|'mosaic-factory'|mosaic-factory)(\s*)$"#)
            .expect("valid regex")
    })
}

/// Splits a YAML line into code and comment (a `#` at the start or after
/// white space, outside quotes).
fn split_comment(line: &str) -> (&str, &str) {
    let (mut single, mut double) = (false, false);
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return (&line[..i], &line[i..]),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    (line, "")
}

/// Splits a line into its body and its end (`\r\n`, `\n` or nothing).
fn split_eol(line: &str) -> (&str, &str) {
    if let Some(b) = line.strip_suffix("\r\n") {
        (b, "\r\n")
    } else if let Some(b) = line.strip_suffix('\n') {
        (b, "\n")
    } else {
        (line, "")
    }
}

/// Rewrites the legacy socket in a roster's text; `None` when nothing changes.
pub fn rewrite_roster(text: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = split_eol(line);
        let (code, comment) = split_comment(body);
        let new_code = yaml_re().replace_all(code, |c: &regex::Captures<'_>| {
            let value = c[4].replace(LEGACY_SOCKET, FLEET_SOCKET);
            format!("{}{}{}{}{}", &c[1], &c[2], &c[3], value, &c[5])
        });
        if new_code != code {
            changed = true;
        }
        out.push_str(&new_code);
        out.push_str(comment);
        out.push_str(nl);
    }
    changed.then_some(out)
}

/// Rewrites `MOSAIC_TMUX_SOCKET=mosaic-factory` in an env file's text;
/// `None` when nothing changes.
pub fn rewrite_env(text: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = split_eol(line);
        match env_re().captures(body) {
            Some(c) => {
                changed = true;
                out.push_str(&c[1]);
                out.push_str(&c[2].replace(LEGACY_SOCKET, FLEET_SOCKET));
                out.push_str(&c[3]);
            }
            None => out.push_str(body),
        }
        out.push_str(nl);
    }
    changed.then_some(out)
}

/// One file the socket migration rewrites.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Path relative to the home.
    pub rel: String,
    /// New content.
    pub bytes: Vec<u8>,
    /// The file's current mode (kept).
    pub mode: u32,
}

/// The socket migration for a home: the rewrites it needs (empty when done).
pub fn socket_rewrites(home: &Path) -> Result<Vec<Rewrite>> {
    let mut out = Vec::new();
    for (dir, ext, f) in [
        (
            "fleet",
            "yaml",
            rewrite_roster as fn(&str) -> Option<String>,
        ),
        (
            "fleet/agents",
            "env",
            rewrite_env as fn(&str) -> Option<String>,
        ),
    ] {
        let d = home.join(dir);
        // Never follow a linked directory below the home.
        match std::fs::symlink_metadata(&d) {
            Ok(m) if m.is_dir() => {}
            _ => continue,
        }
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .at(&d)?
            .filter_map(|e| e.ok())
            .collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).at(&path)?;
            if !meta.is_file() || path.extension().and_then(|e| e.to_str()) != Some(ext) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            // A name that is not UTF-8 cannot be named in the manifest or the
            // report; such a file is left for the operator.
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if let Some(new) = f(&text) {
                out.push(Rewrite {
                    rel: format!("{dir}/{name}"),
                    bytes: new.into_bytes(),
                    mode: meta.permissions().mode() & 0o7777,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_socket_name_and_agent_socket_are_rewritten_keeping_everything_else() {
        let src = "version: 1\n# the fleet socket (was mosaic-factory)\ntmux:\n  socket_name: mosaic-factory   # legacy\n  holder_session: _holder\nagents:\n  - name: a\n    socket: \"mosaic-factory\"\n  - { name: b, socket: 'mosaic-factory' }\n  - name: c\n    socket: mosaic-factory-2\n";
        let want = "version: 1\n# the fleet socket (was mosaic-factory)\ntmux:\n  socket_name: mosaic-fleet   # legacy\n  holder_session: _holder\nagents:\n  - name: a\n    socket: \"mosaic-fleet\"\n  - { name: b, socket: 'mosaic-fleet' }\n  - name: c\n    socket: mosaic-factory-2\n";
        assert_eq!(rewrite_roster(src).as_deref(), Some(want));
        assert_eq!(rewrite_roster(want), None, "idempotent");
    }

    #[test]
    fn absent_socket_name_and_comments_are_never_rewritten() {
        let src = "version: 1\ntmux:\n  holder_session: _holder\n# socket_name: mosaic-factory\nmy_socket: mosaic-factory\n";
        assert_eq!(rewrite_roster(src), None);
    }

    #[test]
    fn crlf_line_ends_are_kept() {
        assert_eq!(
            rewrite_roster("tmux:\r\n  socket_name: mosaic-factory\r\n").as_deref(),
            Some("tmux:\r\n  socket_name: mosaic-fleet\r\n")
        );
        assert_eq!(
            rewrite_env("MOSAIC_TMUX_SOCKET=mosaic-factory\r\n").as_deref(),
            Some("MOSAIC_TMUX_SOCKET=mosaic-fleet\r\n")
        );
    }

    #[test]
    fn env_files_are_rewritten_line_by_line() {
        let src = "# generated\nMOSAIC_AGENT_NAME=a\nMOSAIC_TMUX_SOCKET=mosaic-factory\nMOSAIC_AGENT_COMMAND=run --socket mosaic-factory\n";
        let want = "# generated\nMOSAIC_AGENT_NAME=a\nMOSAIC_TMUX_SOCKET=mosaic-fleet\nMOSAIC_AGENT_COMMAND=run --socket mosaic-factory\n";
        assert_eq!(rewrite_env(src).as_deref(), Some(want));
        assert_eq!(rewrite_env(want), None);
        assert_eq!(
            rewrite_env("MOSAIC_TMUX_SOCKET=\n"),
            None,
            "default server stays default"
        );
        assert_eq!(
            rewrite_env("MOSAIC_TMUX_SOCKET='mosaic-factory'").as_deref(),
            Some("MOSAIC_TMUX_SOCKET='mosaic-fleet'")
        );
    }
}
