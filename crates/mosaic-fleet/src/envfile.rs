//! Per-agent environment files (`H/fleet/agents/NAME.env`, `_holder.env`) in
//! systemd `EnvironmentFile` syntax: what `fleet install` generates, and the
//! merge that updates generated keys while keeping the operator's own keys
//! (such as `MOSAIC_AGENT_COMMAND`), comments and ordering.

use super::roster::{Agent, Roster};
use std::collections::BTreeMap;
use std::path::Path;

/// One generated key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gen {
    /// Key.
    pub key: &'static str,
    /// Value.
    pub value: String,
    /// When false, an existing value is kept (a default the operator may tune).
    pub overwrite: bool,
}

fn gen(key: &'static str, value: impl Into<String>) -> Gen {
    Gen {
        key,
        value: value.into(),
        overwrite: true,
    }
}

/// The default heartbeat interval, seconds.
pub const DEFAULT_HEARTBEAT_INTERVAL: u32 = 15;

/// The generated keys of agent `a`'s env file.
pub fn agent_keys(home: &Path, roster: &Roster, a: &Agent) -> Vec<Gen> {
    vec![
        gen("MOSAIC_HOME", home.to_string_lossy()),
        gen("MOSAIC_AGENT_NAME", a.name.as_str()),
        gen("MOSAIC_AGENT_RUNTIME", a.runtime.program()),
        gen(
            "MOSAIC_AGENT_CLASS",
            a.class.map(|c| c.as_str()).unwrap_or(""),
        ),
        gen(
            "MOSAIC_AGENT_MODEL",
            a.model_hint.as_ref().map(|m| m.as_str()).unwrap_or(""),
        ),
        gen("MOSAIC_AGENT_WORKDIR", roster.agent_workdir(a)),
        gen("MOSAIC_TMUX_SOCKET", roster.agent_socket(a).unwrap_or("")),
        gen("MOSAIC_TENANT_ID", roster.agent_tenant(a)),
        gen(
            "MOSAIC_AGENT_RESTART",
            a.restart.unwrap_or_default().as_str(),
        ),
        Gen {
            key: "MOSAIC_HEARTBEAT_INTERVAL",
            value: DEFAULT_HEARTBEAT_INTERVAL.to_string(),
            overwrite: false,
        },
    ]
}

/// The generated keys of `_holder.env`.
pub fn holder_keys(roster: &Roster) -> Vec<Gen> {
    vec![
        gen("MOSAIC_TMUX_SOCKET", roster.socket().unwrap_or("")),
        gen("MOSAIC_HOLDER_SESSION", roster.holder_session()),
    ]
}

/// A value as written to the file: empty is bare (`KEY=`), simple values are
/// bare, anything with spaces, quotes or backslashes is double-quoted.
pub fn format_value(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/:@+,%~=".contains(c))
    {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The key of a `KEY=value` line (leading blanks allowed), if it is one.
fn line_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with(';') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim_end();
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some(k)
    } else {
        None
    }
}

/// Merges `keys` into `existing` (None = a new file with `header`).
/// Generated keys are updated in place (later duplicates of them dropped, so
/// a stale copy cannot win: systemd takes the last one); keys marked
/// `overwrite: false` keep every existing line (the last still wins, as the
/// operator meant); every other line is kept as is; missing keys are
/// appended.
pub fn merge(existing: Option<&str>, keys: &[Gen], header: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    match existing {
        None => {
            out.extend(header.lines().map(str::to_string));
        }
        Some(text) => {
            for line in text.lines() {
                let gen = line_key(line).and_then(|k| keys.iter().find(|g| g.key == k));
                match gen {
                    None => out.push(line.to_string()),
                    // A key whose value is the operator's to set is kept on
                    // every line, so the operator's last one still wins.
                    Some(g) if !g.overwrite => {
                        if !done.contains(&g.key) {
                            done.push(g.key);
                        }
                        out.push(line.to_string());
                    }
                    Some(g) if done.contains(&g.key) => {} // duplicate: dropped
                    Some(g) => {
                        done.push(g.key);
                        if g.overwrite {
                            out.push(format!("{}={}", g.key, format_value(&g.value)));
                        } else {
                            out.push(line.to_string());
                        }
                    }
                }
            }
        }
    }
    for g in keys {
        if !done.contains(&g.key) {
            out.push(format!("{}={}", g.key, format_value(&g.value)));
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Reads `KEY=value` pairs as systemd does (comments skipped, one pair of
/// surrounding quotes removed, the last value of a key wins).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some(k) = line_key(line) else { continue };
        let (_, v) = line.split_once('=').expect("line_key saw '='");
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            let inner = &v[1..v.len() - 1];
            if v.starts_with('"') {
                inner.replace("\\\"", "\"").replace("\\\\", "\\")
            } else {
                inner.to_string()
            }
        } else {
            v.to_string()
        };
        m.insert(k.to_string(), v);
    }
    m
}

/// The header of a new agent env file.
pub fn agent_header(name: &str) -> String {
    format!(
        "# mosaic fleet agent {name}: written by `mosaic fleet install`.\n\
         # MOSAIC_* keys generated from the roster are updated on every install;\n\
         # your own keys (e.g. MOSAIC_AGENT_COMMAND=...) and comments are kept.\n"
    )
}

/// The header of a new `_holder.env`.
pub const HOLDER_HEADER: &str =
    "# mosaic fleet tmux holder: written by `mosaic fleet install` from the roster.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Gen> {
        vec![
            gen("MOSAIC_AGENT_NAME", "coder0"),
            gen("MOSAIC_AGENT_MODEL", ""),
            gen("MOSAIC_AGENT_WORKDIR", "/srv/new"),
            gen("MOSAIC_TMUX_SOCKET", "mosaic-fleet"),
            Gen {
                key: "MOSAIC_HEARTBEAT_INTERVAL",
                value: "15".into(),
                overwrite: false,
            },
        ]
    }

    #[test]
    fn new_file_has_header_and_bare_empty_values() {
        let s = merge(None, &keys(), "# head\n");
        assert_eq!(
            s,
            "# head\nMOSAIC_AGENT_NAME=coder0\nMOSAIC_AGENT_MODEL=\nMOSAIC_AGENT_WORKDIR=/srv/new\nMOSAIC_TMUX_SOCKET=mosaic-fleet\nMOSAIC_HEARTBEAT_INTERVAL=15\n"
        );
    }

    #[test]
    fn merge_updates_generated_keeps_the_rest() {
        let existing = "# my note\nMOSAIC_AGENT_NAME=coder0\nMOSAIC_AGENT_WORKDIR=/srv/old\nMOSAIC_AGENT_COMMAND=/home/op/canary.sh --fast\nMOSAIC_HEARTBEAT_INTERVAL=2\n# site note\nMOSAIC_AGENT_WORKDIR=/srv/stale\n";
        let s = merge(Some(existing), &keys(), "# head\n");
        assert_eq!(
            s,
            "# my note\nMOSAIC_AGENT_NAME=coder0\nMOSAIC_AGENT_WORKDIR=/srv/new\nMOSAIC_AGENT_COMMAND=/home/op/canary.sh --fast\nMOSAIC_HEARTBEAT_INTERVAL=2\n# site note\nMOSAIC_AGENT_MODEL=\nMOSAIC_TMUX_SOCKET=mosaic-fleet\n"
        );
        // Idempotent.
        assert_eq!(merge(Some(&s), &keys(), "# head\n"), s);
    }

    #[test]
    fn an_operator_value_appended_later_still_wins() {
        // `fleet install` wrote 15; the operator appended 5 (systemd takes
        // the last one): both lines stay, so 5 stays in force.
        let existing =
            "MOSAIC_AGENT_NAME=coder0\nMOSAIC_HEARTBEAT_INTERVAL=15\nMOSAIC_HEARTBEAT_INTERVAL=5\n";
        let s = merge(Some(existing), &keys(), "# head\n");
        assert_eq!(parse(&s)["MOSAIC_HEARTBEAT_INTERVAL"], "5", "{s}");
        assert_eq!(merge(Some(&s), &keys(), "# head\n"), s);
    }

    #[test]
    fn values_quote_only_when_needed() {
        assert_eq!(format_value(""), "");
        assert_eq!(format_value("~/src"), "~/src");
        assert_eq!(format_value("/a b"), "\"/a b\"");
        assert_eq!(format_value("x\"y"), "\"x\\\"y\"");
        let m = parse(&format!(
            "A={}\nB=\n# C=1\n D = 'q r'\n",
            format_value("/a b")
        ));
        assert_eq!(m["A"], "/a b");
        assert_eq!(m["B"], "");
        assert_eq!(m["D"], "q r");
        assert!(!m.contains_key("C"));
    }
}
