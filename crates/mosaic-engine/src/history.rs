//! Release history: what every earlier release shipped, so a binary can
//! recognise files of earlier releases on an install without a manifest
//! (SPEC §4.2 legacy row, §5.2). `cargo xtask release` writes one file per
//! release, `release-history/X.Y.Z.json`:
//!
//! ```json
//! { "version": "X.Y.Z", "files": { "PATH": "SHA256-HEX", … } }
//! ```
//!
//! `PATH` is relative to the framework root (`/`-separated, as in the
//! install manifest); the hash is the lowercase hex sha256 of the file's
//! bytes. This module only parses and indexes those documents (embedding
//! them is `build.rs`'s and `sync::release_history`'s business); it depends
//! on nothing but `serde_json` and `semver`.

use std::collections::{BTreeMap, BTreeSet};

/// The framework files one release shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseHashes {
    /// The release.
    pub version: semver::Version,
    /// Path → sha256 (lowercase hex).
    pub files: BTreeMap<String, String>,
}

/// Parses one `release-history/X.Y.Z.json`. The error is one line naming
/// what is wrong.
pub fn known_hashes(json: &str) -> Result<ReleaseHashes, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("release history: {e}"))?;
    let version = v
        .get("version")
        .and_then(|x| x.as_str())
        .ok_or("release history: no \"version\" string")?;
    let version = semver::Version::parse(version)
        .map_err(|e| format!("release history: version {version:?}: {e}"))?;
    let files = v
        .get("files")
        .and_then(|x| x.as_object())
        .ok_or("release history: no \"files\" object")?;
    let mut out = BTreeMap::new();
    for (path, hash) in files {
        let hash = hash
            .as_str()
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("release history {version}: {path}: not a sha256 hex string"))?;
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!("release history {version}: bad path {path:?}"));
        }
        out.insert(path.clone(), hash.to_ascii_lowercase());
    }
    Ok(ReleaseHashes {
        version,
        files: out,
    })
}

/// Every hash any earlier release shipped, per path.
#[derive(Debug, Default, Clone)]
pub struct History {
    by_path: BTreeMap<String, BTreeSet<crate::Sha256>>,
    versions: Vec<semver::Version>,
}

impl History {
    /// Indexes parsed release files.
    pub fn new(releases: impl IntoIterator<Item = ReleaseHashes>) -> History {
        let mut h = History::default();
        for r in releases {
            for (path, hash) in r.files {
                // Checked as 64 hex digits by [`known_hashes`].
                h.by_path
                    .entry(path)
                    .or_default()
                    .insert(crate::Sha256::parse_lenient(&hash));
            }
            h.versions.push(r.version);
        }
        h.versions.sort();
        h
    }

    /// Parses and indexes several history documents.
    pub fn parse_all<'a>(docs: impl IntoIterator<Item = &'a str>) -> Result<History, String> {
        let parsed = docs
            .into_iter()
            .map(known_hashes)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(History::new(parsed))
    }

    /// True when some earlier release shipped exactly these bytes at `path`
    /// (the file is an unedited shipped file).
    pub fn shipped(&self, path: &str, sha256: &crate::Sha256) -> bool {
        self.by_path.get(path).is_some_and(|s| s.contains(sha256))
    }

    /// True when some earlier release shipped any file at `path`.
    pub fn ever_shipped(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// Every path some earlier release shipped, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_path.keys().map(String::as_str)
    }

    /// The releases indexed, oldest first.
    pub fn versions(&self) -> &[semver::Version] {
        &self.versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_indexes() {
        let a = format!(
            r#"{{"version":"0.1.0","files":{{"fleet/README.md":"{}","tools/x.sh":"{}"}}}}"#,
            "a".repeat(64),
            "b".repeat(64)
        );
        let b = format!(
            r#"{{"version":"0.2.0","files":{{"fleet/README.md":"{}"}}}}"#,
            "C".repeat(64)
        );
        let h = History::parse_all([a.as_str(), b.as_str()]).unwrap();
        let x = |c: &str| crate::Sha256::parse(&c.repeat(64)).unwrap();
        assert!(h.shipped("fleet/README.md", &x("a")));
        assert!(h.shipped("fleet/README.md", &x("c")));
        assert!(!h.shipped("fleet/README.md", &x("b")));
        assert!(h.ever_shipped("tools/x.sh"));
        assert!(!h.ever_shipped("fleet/roster.yaml"));
        assert_eq!(
            h.paths().collect::<Vec<_>>(),
            vec!["fleet/README.md", "tools/x.sh"]
        );
        assert_eq!(h.versions().len(), 2);
    }

    #[test]
    fn rejects_bad_documents() {
        assert!(known_hashes("{}").is_err());
        assert!(known_hashes(r#"{"version":"x","files":{}}"#).is_err());
        assert!(known_hashes(r#"{"version":"0.1.0","files":{"a":"zz"}}"#).is_err());
        let bad_path = format!(
            r#"{{"version":"0.1.0","files":{{"../a":"{}"}}}}"#,
            "a".repeat(64)
        );
        assert!(known_hashes(&bad_path).is_err());
    }
}
