//! The install manifest `M` (SPEC §4.1): what the last successful run
//! shipped, per path, with the stat fingerprint of what it last saw on disk so
//! a no-op update can trust hashes without reading file contents.

use crate::error::{Error, Result};
use crate::fsutil::Fingerprint;
use semver::Version;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What to do about a manifest that does not parse (`mosaic rollback` reads
/// the manifest too, so it cannot be the fix).
const CORRUPT_FIX: &str = "copy the last good one back from the newest backup (`ls STATE/backups/*/files/.mosaic/manifest.json`), or move it aside to have the install adopted as a legacy install (files that differ from this release are backed up before they are replaced)";

/// Current on-disk format number.
pub const FORMAT: u32 = 1;

/// What was last seen on disk for a tracked path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Stat fingerprint at the time of hashing.
    pub fp: Fingerprint,
    /// Hash of the content with that fingerprint.
    pub sha256: String,
}

/// One tracked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Hash of the file as shipped (`h_m`).
    pub sha256: String,
    /// Mode as shipped.
    pub mode: u32,
    /// The last observation of the file on disk, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// The manifest document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format number ([`FORMAT`]).
    pub format: u32,
    /// Framework version installed (`V_old` for the next run).
    pub version: Version,
    /// Shipped files below the home, by relative path.
    pub files: BTreeMap<String, Entry>,
    /// Directories below the home that mosaic created (removed again when
    /// they become empty after the release drops their files).
    #[serde(default)]
    pub dirs: BTreeSet<String>,
    /// Active systemd unit copies (file name → entry) in the user unit dir.
    #[serde(default)]
    pub units: BTreeMap<String, Entry>,
    /// The generation that wrote this manifest (0 before generations were
    /// numbered).
    #[serde(default)]
    pub generation: u64,
}

/// Whether `rel` is a relative, `/`-separated path with no empty, `.` or
/// `..` component (so it can only name something inside the home).
pub fn is_safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

impl Manifest {
    /// An empty manifest for `version`.
    pub fn new(version: Version) -> Manifest {
        Manifest {
            format: FORMAT,
            version,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            units: BTreeMap::new(),
            generation: 0,
        }
    }

    /// Loads the manifest, or `None` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Manifest>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        Manifest::parse(path, &bytes).map(Some)
    }

    /// Parses manifest bytes read from `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            msg: e.to_string(),
            fix: CORRUPT_FIX.to_string(),
        })?;
        for key in m.files.keys().chain(m.dirs.iter()) {
            if !is_safe_rel(key) {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    msg: format!("it names {key:?}, which is not a plain path inside the home"),
                    fix: CORRUPT_FIX.to_string(),
                });
            }
        }
        for key in m.units.keys() {
            if key.contains('/') || key.is_empty() || key == "." || key == ".." {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    msg: format!("it names the unit {key:?}, which is not a file name"),
                    fix: CORRUPT_FIX.to_string(),
                });
            }
        }
        if m.format > FORMAT {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                msg: format!(
                    "manifest format {} is newer than this mosaic understands",
                    m.format
                ),
                fix: "update the mosaic binary".to_string(),
            });
        }
        Ok(m)
    }

    /// Serialises to compact JSON with a trailing newline (it can list tens
    /// of thousands of files; `jq .` pretty-prints it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escaping_the_home_are_refused() {
        let p = Path::new("m.json");
        for bad in ["/etc/passwd", "../x", "a/../../x", "a//b", "", "./a"] {
            let doc = serde_json::json!({"format": 1, "version": "1.0.0", "files": {bad: {"sha256": "x", "mode": 420}}});
            let err = Manifest::parse(p, doc.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a plain path"), "{bad}: {err}");
        }
        let ok = serde_json::json!({"format": 1, "version": "1.0.0", "files": {"a/b c/ü.md": {"sha256": "x", "mode": 420}}});
        Manifest::parse(p, ok.to_string().as_bytes()).unwrap();
    }
}
