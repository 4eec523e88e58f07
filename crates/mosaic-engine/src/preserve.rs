//! The preserve set `P` (SPEC §4.1): glob patterns, relative to the home, of
//! paths that belong to the operator. A preserved path is seeded when it ships
//! and is absent, and is otherwise never overwritten or deleted.
//!
//! Globs use `/` as a literal separator: `fleet/*.yaml` matches
//! `fleet/roster.yaml` and never `fleet/examples/minimal.yaml`. A pattern that
//! matches a directory also covers everything below it (`fleet/agents` covers
//! `fleet/agents/coder0.env`).

use crate::error::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::Path;

/// Patterns every install preserves.
pub const BUILT_IN: &[&str] = &[
    "fleet/*.yaml",
    "fleet/agents/**",
    "fleet/run/**",
    ".mosaic/**",
];

/// A compiled preserve set.
#[derive(Debug, Clone)]
pub struct Preserve {
    set: GlobSet,
    patterns: Vec<String>,
    /// Each pattern's literal head (up to its first glob character): a path
    /// starting with none of them cannot match, nor can its ancestors.
    heads: Vec<String>,
}

impl Preserve {
    /// Compiles the built-in patterns plus `extra` (the operator's). `origin`
    /// names where the extra patterns came from, for error messages.
    pub fn new(extra: &[String], origin: &str) -> Result<Preserve> {
        let numbered: Vec<(usize, String)> = extra
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.clone()))
            .collect();
        Preserve::with_lines(&numbered, origin)
    }

    /// Like [`Preserve::new`], with each extra pattern's line number in `origin`.
    fn with_lines(extra: &[(usize, String)], origin: &str) -> Result<Preserve> {
        let mut builder = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        let all = BUILT_IN
            .iter()
            .map(|s| (0, s.to_string()))
            .chain(extra.iter().cloned());
        for (line, pat) in all {
            let glob = GlobBuilder::new(&pat)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    Error::Input(format!(
                    "{origin}:{line}: bad preserve pattern {pat:?} ({}); fix or remove that line",
                    e.kind()
                ))
                })?;
            builder.add(glob);
            patterns.push(pat);
        }
        let heads = patterns
            .iter()
            .map(|p| p[..p.find(['*', '?', '[', '{', '\\']).unwrap_or(p.len())].to_string())
            .collect();
        let set = builder.build().map_err(|e| {
            Error::Input(format!(
                "{origin}: bad preserve patterns ({e}); fix the file"
            ))
        })?;
        Ok(Preserve {
            set,
            patterns,
            heads,
        })
    }

    /// The built-in set alone.
    pub fn built_in() -> Preserve {
        Preserve::new(&[], "built-in").expect("built-in patterns compile")
    }

    /// Loads the built-in set plus the operator's `H/.mosaic/preserve` (one
    /// pattern per line; blank lines and `#` comments ignored).
    pub fn load(file: &Path) -> Result<Preserve> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(file, e)),
        };
        let extra = parse_lines(&text);
        Preserve::with_lines(&extra, &file.display().to_string())
    }

    /// Whether `rel` (a `/`-separated path relative to the home) is preserved:
    /// it, or one of its ancestors, matches a pattern.
    pub fn matches(&self, rel: &str) -> bool {
        // An ancestor that matches starts with a pattern's literal head, and
        // so does `rel`; a pattern without a literal path part (a bare
        // directory name like `notes`) has its whole text as head.
        if !self.heads.iter().any(|h| rel.starts_with(h.as_str())) {
            return false;
        }
        if self.set.is_match(rel) {
            return true;
        }
        let mut cur = rel;
        while let Some(idx) = cur.rfind('/') {
            cur = &cur[..idx];
            if self.set.is_match(cur) {
                return true;
            }
        }
        false
    }

    /// All patterns in force, built-in first.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Splits a preserve file into (line number, pattern), skipping blank lines
/// and `#` comments.
fn parse_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i, l.trim_end_matches('/').to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_yaml_glob_is_one_level_only() {
        let p = Preserve::built_in();
        assert!(p.matches("fleet/roster.yaml"));
        assert!(p.matches("fleet/custom.yaml"));
        assert!(!p.matches("fleet/examples/minimal.yaml"));
        assert!(!p.matches("fleet/roster.schema.json"));
        assert!(!p.matches("roster.yaml"));
    }

    #[test]
    fn agents_run_and_meta_dirs_are_preserved_recursively() {
        let p = Preserve::built_in();
        assert!(p.matches("fleet/agents/coder0.env"));
        assert!(p.matches("fleet/agents/deep/x"));
        assert!(p.matches("fleet/run/coder0.hb"));
        assert!(p.matches(".mosaic/manifest.json"));
        assert!(!p.matches("fleet/README.md"));
        assert!(!p.matches("tools/fleet/heartbeat"));
    }

    #[test]
    fn operator_patterns_add_to_the_set_and_cover_directories() {
        let p = Preserve::new(&["notes".to_string(), "tools/*.local".to_string()], "test").unwrap();
        assert!(p.matches("notes/a.md"));
        assert!(p.matches("notes"));
        assert!(p.matches("tools/x.local"));
        assert!(!p.matches("tools/fleet/x.local"));
        assert!(!p.matches("tools/fleet/heartbeat"));
    }

    #[test]
    fn preserve_file_is_parsed_with_comments_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("preserve");
        std::fs::write(&f, "# mine\n\nlocal/\n").unwrap();
        let p = Preserve::load(&f).unwrap();
        assert!(p.matches("local/x"));
        std::fs::write(&f, "# c\nok/**\nbad[\n").unwrap();
        let err = Preserve::load(&f).unwrap_err().to_string();
        assert!(err.contains("bad["), "{err}");
        assert!(err.contains(":3:"), "{err}");
    }
}
