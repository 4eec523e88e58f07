//! Migrations run by `install` / `update` inside the sync's transaction
//! (SPEC §5). Today: the legacy tmux socket name `mosaic-factory` becomes
//! `mosaic-fleet` in rosters (`socket_name`, per-agent `socket`) and agent env
//! files (`MOSAIC_TMUX_SOCKET`), keeping every other byte. An absent
//! `socket_name` (the default tmux server) is never rewritten. While tmux
//! sessions are live on the legacy socket the migration is deferred, unless
//! the operator asked for `--relaunch`.
//!
//! The text rewrites are pure functions; [`socket_rewrites`] reads the
//! files. Rosters are read and edited with [`crate::yamledit`] (so an
//! anchored value, a quoted key, a flow mapping, an alias or a merge key are
//! all understood), parsed again after the rewrite, and a socket that still
//! resolves to `mosaic-factory` is a warning naming the file and line, never
//! a silent success. Whether the legacy socket is in use is a fact the caller brings
//! (the fleet crate asks tmux).

use crate::error::{IoContext, Result};
use crate::yamledit::{self, Doc, NodeId, Seg};
use regex::Regex;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// The legacy socket name.
pub const LEGACY_SOCKET: &str = "mosaic-factory";
/// The production socket name.
pub const FLEET_SOCKET: &str = "mosaic-fleet";

fn env_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"^(\s*(?:export\s+)?MOSAIC_TMUX_SOCKET\s*=\s*)("mosaic-factory"|'mosaic-factory'|mosaic-factory)(\s*)$"#)
            .expect("valid regex")
    })
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

/// The socket values of a roster that resolve to the legacy name: where
/// the value is written (the scalar an alias or merge leads to), and the
/// field that reads it.
fn legacy_sockets(doc: &Doc<'_>) -> Vec<(NodeId, String)> {
    let mut out: Vec<(NodeId, String)> = Vec::new();
    let mut note = |id: NodeId, field: String| {
        let def = doc.deref(id);
        if doc.scalar(def) == Some(LEGACY_SOCKET) && !out.iter().any(|(d, _)| *d == def) {
            out.push((def, field));
        }
    };
    if let Some(id) = doc.get(&[Seg::Key("tmux"), Seg::Key("socket_name")]) {
        note(id, "tmux.socket_name".to_string());
    }
    if let Some(agents) = doc.get(&[Seg::Key("agents")]) {
        for (i, &item) in doc.items(agents).iter().enumerate() {
            if let Some((_, v)) = doc.get_key(item, "socket") {
                note(v, format!("agents[{i}].socket"));
            }
        }
    }
    out
}

/// What the socket migration does to one roster's text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterRewrite {
    /// The new text; `None` when nothing changes.
    pub text: Option<String>,
    /// Sockets that still resolve to the legacy name afterwards: (1-based
    /// line, field). Not empty means the migration of this file is not done.
    pub left: Vec<(usize, String)>,
    /// The file is not YAML the migration can read (line, message).
    pub unreadable: Option<(Option<usize>, String)>,
}

/// Rewrites the legacy socket in a roster's text: `tmux.socket_name` and
/// every `agents[].socket` whose value (through aliases and `<<` merges) is
/// `mosaic-factory`, at the scalar where that value is written, in its own
/// quoting; every other byte is kept. The result is parsed again and any
/// socket still resolving to the legacy name is reported in `left`.
pub fn rewrite_roster(text: &str) -> RosterRewrite {
    let doc = match Doc::parse(text) {
        Ok(d) => d,
        Err(e) => {
            return RosterRewrite {
                unreadable: text.contains(LEGACY_SOCKET).then_some((e.line, e.msg)),
                ..RosterRewrite::default()
            }
        }
    };
    let splices: Vec<_> = legacy_sockets(&doc)
        .into_iter()
        .filter_map(|(id, _)| doc.set_scalar(id, FLEET_SOCKET).ok())
        .collect();
    let mut new = (!splices.is_empty()).then(|| yamledit::apply(text, splices));
    // Only the sockets may change: a value shared through an anchor with
    // another field (`tenant_id: &t mosaic-factory` … `socket_name: *t`)
    // would change that field too. Then the file is left alone and the
    // sockets are reported below as not migrated.
    if let Some(t) = &new {
        if !only_sockets_changed(&doc, t) {
            new = None;
        }
    }
    let check = new.as_deref().unwrap_or(text);
    let left = match Doc::parse(check) {
        Ok(d) => legacy_sockets(&d)
            .into_iter()
            .map(|(id, field)| (d.node(id).line, field))
            .collect(),
        // Splicing a scalar for another never breaks a document; if it did,
        // leave the file alone.
        Err(e) => {
            return RosterRewrite {
                unreadable: Some((e.line, e.msg)),
                ..RosterRewrite::default()
            }
        }
    };
    RosterRewrite {
        text: new,
        left,
        unreadable: None,
    }
}

/// Whether `new` reads as `doc` but for socket values gone from the legacy
/// name to the new one (compared as data, aliases and merges resolved): any
/// other value that changed was shared with a socket through an anchor.
fn only_sockets_changed(doc: &Doc<'_>, new: &str) -> bool {
    fn blank_sockets(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    let is_socket = (k == "socket" || k == "socket_name")
                        && (v == LEGACY_SOCKET || v == FLEET_SOCKET);
                    if is_socket {
                        *v = serde_json::Value::Null;
                    } else {
                        blank_sockets(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(blank_sockets),
            _ => {}
        }
    }
    let (Ok(mut old), Ok(mut got)) = (doc.to_json(), Doc::parse(new).and_then(|d| d.to_json()))
    else {
        return false;
    };
    blank_sockets(&mut old);
    blank_sockets(&mut got);
    old == got
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

/// The socket migration of a home: the rewrites it needs (empty when done)
/// and the warnings about what it cannot do.
#[derive(Debug, Clone, Default)]
pub struct SocketMigration {
    /// Files to rewrite.
    pub rewrites: Vec<Rewrite>,
    /// One line each: a file whose socket still resolves to the legacy name
    /// after the rewrite, or that cannot be read as YAML.
    pub warnings: Vec<String>,
}

/// The socket migration for a home.
pub fn socket_rewrites(home: &Path) -> Result<SocketMigration> {
    let mut out = SocketMigration::default();
    for (dir, ext) in [("fleet", "yaml"), ("fleet/agents", "env")] {
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
            let rel = format!("{dir}/{name}");
            let new = if ext == "env" {
                rewrite_env(&text)
            } else {
                let r = rewrite_roster(&text);
                if let Some((line, msg)) = &r.unreadable {
                    let at = line.map(|l| format!("{rel}:{l}")).unwrap_or(rel.clone());
                    out.warnings.push(format!(
                        "{at}: not readable as YAML ({msg}), so its socket was not migrated from {LEGACY_SOCKET}; fix the file and run `mosaic update` again"
                    ));
                }
                for (line, field) in &r.left {
                    out.warnings.push(format!(
                        "{rel}:{line}: {field} still resolves to {LEGACY_SOCKET} after the socket migration (a value it cannot rewrite in place, or one an anchor shares with another field); write `{FLEET_SOCKET}` there by hand"
                    ));
                }
                r.text
            };
            if let Some(new) = new {
                out.rewrites.push(Rewrite {
                    rel,
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

    /// An anchor shared with another field: rewriting it would change that
    /// field too (`tenant_id` became `mosaic-fleet`), so the file is left
    /// alone and the socket reported as not migrated.
    #[test]
    fn a_value_an_anchor_shares_with_another_field_is_not_rewritten() {
        for src in [
            "version: 1\ntenant_id: &t mosaic-factory\ntmux: {socket_name: *t}\n",
            "version: 1\nx-sock: &t mosaic-factory\ntmux: {socket_name: *t}\n",
        ] {
            let r = rewrite_roster(src);
            assert_eq!(r.text, None, "{r:?}");
            assert_eq!(r.left, vec![(2, "tmux.socket_name".to_string())]);
        }
    }

    /// A comment between an anchor and its scalar stays (the splice covered
    /// it and the line break).
    #[test]
    fn a_comment_between_anchor_and_value_is_kept() {
        let src = "tmux:\n  socket_name: &s # keep me\n    mosaic-factory\n";
        assert_eq!(
            rewrite_roster(src).text.as_deref(),
            Some("tmux:\n  socket_name: &s # keep me\n    mosaic-fleet\n")
        );
    }

    #[test]
    fn roster_socket_name_and_agent_socket_are_rewritten_keeping_everything_else() {
        let src = "version: 1\n# the fleet socket (was mosaic-factory)\ntmux:\n  socket_name: mosaic-factory   # legacy\n  holder_session: _holder\nagents:\n  - name: a\n    socket: \"mosaic-factory\"\n  - { name: b, socket: 'mosaic-factory' }\n  - name: c\n    socket: mosaic-factory-2\n";
        let want = "version: 1\n# the fleet socket (was mosaic-factory)\ntmux:\n  socket_name: mosaic-fleet   # legacy\n  holder_session: _holder\nagents:\n  - name: a\n    socket: \"mosaic-fleet\"\n  - { name: b, socket: 'mosaic-fleet' }\n  - name: c\n    socket: mosaic-factory-2\n";
        assert_eq!(rewrite_roster(src).text.as_deref(), Some(want));
        assert_eq!(rewrite_roster(want), RosterRewrite::default(), "idempotent");
    }

    #[test]
    fn absent_socket_name_and_comments_are_never_rewritten() {
        let src = "version: 1\ntmux:\n  holder_session: _holder\n# socket_name: mosaic-factory\nmy_socket: mosaic-factory\n";
        assert_eq!(rewrite_roster(src), RosterRewrite::default());
    }

    #[test]
    fn crlf_line_ends_are_kept() {
        assert_eq!(
            rewrite_roster("tmux:\r\n  socket_name: mosaic-factory\r\n")
                .text
                .as_deref(),
            Some("tmux:\r\n  socket_name: mosaic-fleet\r\n")
        );
        assert_eq!(
            rewrite_env("MOSAIC_TMUX_SOCKET=mosaic-factory\r\n").as_deref(),
            Some("MOSAIC_TMUX_SOCKET=mosaic-fleet\r\n")
        );
    }

    /// Valid YAML the old line regex missed (and then reported success
    /// while the fleet stayed on the legacy socket).
    #[test]
    fn anchors_quoted_keys_flow_mappings_aliases_and_merges_are_migrated() {
        for (src, want) in [
            (
                "tmux:\n  socket_name: &s mosaic-factory # c\nagents:\n  - name: a\n    runtime: pi\n    socket: *s\n",
                "tmux:\n  socket_name: &s mosaic-fleet # c\nagents:\n  - name: a\n    runtime: pi\n    socket: *s\n",
            ),
            (
                "tmux:\n  \"socket_name\": mosaic-factory\n",
                "tmux:\n  \"socket_name\": mosaic-fleet\n",
            ),
            (
                "tmux: {holder_session: _h,\n  socket_name:\n    mosaic-factory}\n",
                "tmux: {holder_session: _h,\n  socket_name:\n    mosaic-fleet}\n",
            ),
            (
                "agents:\n  - name: a\n    socket: &sock 'mosaic-factory'\ntmux:\n  socket_name: *sock\n",
                "agents:\n  - name: a\n    socket: &sock 'mosaic-fleet'\ntmux:\n  socket_name: *sock\n",
            ),
            (
                "base: &base\n  socket_name: mosaic-factory\ntmux:\n  <<: *base\n  holder_session: _h\n",
                "base: &base\n  socket_name: mosaic-fleet\ntmux:\n  <<: *base\n  holder_session: _h\n",
            ),
            (
                "\u{feff}tmux:\r\n  socket_name: !!str mosaic-factory\r\n",
                "\u{feff}tmux:\r\n  socket_name: !!str mosaic-fleet\r\n",
            ),
        ] {
            let r = rewrite_roster(src);
            assert_eq!(r.text.as_deref(), Some(want), "{src:?}");
            assert!(r.left.is_empty() && r.unreadable.is_none(), "{r:?}");
            assert_eq!(rewrite_roster(want), RosterRewrite::default());
        }
    }

    /// The rosters of the migration matrix (M11), byte for byte.
    #[test]
    fn the_matrix_rosters_are_migrated_byte_for_byte() {
        let src = "# my fleet (it ran on mosaic-factory until the rename; keep this comment)\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-factory   # the old name\n  holder_session: _holder\nagents:\n  - name: coder0\n    runtime: codex\n    socket: mosaic-factory\n  - name: rev1\n    runtime: claude\n    socket: \"mosaic-factory\"  # quoted\n";
        let want = "# my fleet (it ran on mosaic-factory until the rename; keep this comment)\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-fleet   # the old name\n  holder_session: _holder\nagents:\n  - name: coder0\n    runtime: codex\n    socket: mosaic-fleet\n  - name: rev1\n    runtime: claude\n    socket: \"mosaic-fleet\"  # quoted\n";
        assert_eq!(rewrite_roster(src).text.as_deref(), Some(want));
        let src = "version: 1\ntmux:\n  holder_session: _holder\n  socket_name: 'mosaic-factory'\nagents:\n  - { name: flow0, runtime: pi, socket: mosaic-factory }\n";
        let want = "version: 1\ntmux:\n  holder_session: _holder\n  socket_name: 'mosaic-fleet'\nagents:\n  - { name: flow0, runtime: pi, socket: mosaic-fleet }\n";
        assert_eq!(rewrite_roster(src).text.as_deref(), Some(want));
        for untouched in [
            "# no socket_name: the default tmux server, never rewritten\nversion: 1\ntmux:\n  holder_session: _holder\nagents:\n  - name: solo\n    runtime: pi\n",
            "version: 1\ntmux:\n  socket_name: mosaic-fleet\nagents: []\n",
            "version: 1\ntmux:\n  socket_name: mosaic-factory-2\n  my_socket: mosaic-factory\nagents: []\n",
        ] {
            assert_eq!(rewrite_roster(untouched), RosterRewrite::default());
        }
    }

    #[test]
    fn a_socket_it_cannot_rewrite_is_reported_with_its_line() {
        let src = "version: 1\ntmux:\n  socket_name: >-\n    mosaic-factory\nagents:\n  - name: a\n    runtime: pi\n    socket: mosaic-factory\n";
        let r = rewrite_roster(src);
        assert_eq!(
            r.text.as_deref(),
            Some(
                src.replace("socket: mosaic-factory", "socket: mosaic-fleet")
                    .as_str()
            )
        );
        assert_eq!(r.left, vec![(4, "tmux.socket_name".to_string())]);
        let r = rewrite_roster("tmux: [\n socket_name: mosaic-factory\n");
        assert!(r.unreadable.is_some() && r.text.is_none(), "{r:?}");
        assert_eq!(rewrite_roster("a: [\n"), RosterRewrite::default());
    }

    #[test]
    fn socket_rewrites_warns_about_what_is_left() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("fleet")).unwrap();
        std::fs::write(
            home.path().join("fleet/r.yaml"),
            "tmux:\n  socket_name: |-\n    mosaic-factory\n",
        )
        .unwrap();
        let m = socket_rewrites(home.path()).unwrap();
        assert!(m.rewrites.is_empty());
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0]
                .starts_with("fleet/r.yaml:3: tmux.socket_name still resolves to mosaic-factory"),
            "{:?}",
            m.warnings
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
