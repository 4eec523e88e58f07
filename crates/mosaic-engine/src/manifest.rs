//! The install manifest `M` (SPEC §4.1): what the last successful run
//! shipped, per path, with the stat fingerprint of what it last saw on disk so
//! a no-op update can trust hashes without reading file contents.
//!
//! On disk it is a binary [`crate::index`] (sorted, front-coded paths,
//! 32-byte raw hashes, a checksum), read in one `read` and decoded in one
//! pass; the file keeps its name `H/.mosaic/manifest.json` so journals,
//! backups and generations written before the index find it where they
//! always did. [`Manifest::parse`] reads both encodings (old installs and
//! old backups hold JSON); [`Manifest::to_bytes`] writes the index, so an
//! old install is migrated by its next successful run. `mosaic status
//! --json` and `mosaic verify` are the human-readable views, and
//! [`Manifest::to_json`] is a debug export.

use crate::error::{Error, Result};
use crate::fsutil::Fingerprint;
use crate::index::{self, Kind, Reader, Writer};
use semver::Version;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What to do about a manifest that does not parse (`mosaic rollback` reads
/// the manifest too, so it cannot be the fix).
const CORRUPT_FIX: &str = "copy the last good one back from the newest backup (`ls STATE/backups/*/copies/manifest.json`, or `files/.mosaic/manifest.json` in an older one), or move it aside to have the install adopted as a legacy install (files that differ from this release are backed up before they are replaced)";

/// Current on-disk format number.
pub const FORMAT: u32 = 1;

/// What was last seen on disk for a tracked path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Stat fingerprint at the time of hashing.
    pub fp: Fingerprint,
    /// Hash of the content with that fingerprint.
    pub sha256: crate::Sha256,
}

/// One tracked file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Hash of the file as shipped (`h_m`).
    pub sha256: crate::Sha256,
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
    /// Shipped files below the home, by relative path (shared, not copied,
    /// by the disk view and the plan: see [`crate::Rel`]).
    pub files: crate::sorted::SortedMap<crate::Rel, Entry>,
    /// Directories below the home that mosaic created (removed again when
    /// they become empty after the release drops their files).
    #[serde(default)]
    pub dirs: BTreeSet<String>,
    /// Active systemd unit copies (file name → entry) in the user unit dir.
    #[serde(default)]
    pub units: BTreeMap<crate::Rel, Entry>,
    /// The generation that wrote this manifest (0 before generations were
    /// numbered).
    #[serde(default)]
    pub generation: u64,
}

/// How manifest bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The binary index this release writes.
    Index,
    /// The JSON document of older releases (read, never written).
    Json,
}

impl Encoding {
    /// The encoding of `bytes`, by their first bytes.
    pub fn of(bytes: &[u8]) -> Encoding {
        if index::is_index(bytes) {
            Encoding::Index
        } else {
            Encoding::Json
        }
    }
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
            files: crate::sorted::SortedMap::new(),
            dirs: BTreeSet::new(),
            units: BTreeMap::new(),
            generation: 0,
        }
    }

    /// Loads the manifest, or `None` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Manifest>> {
        Ok(Manifest::load_with_encoding(path)?.map(|(m, _)| m))
    }

    /// Like [`Manifest::load`], also saying how the file was encoded (a
    /// run rewrites a JSON manifest as the index even when nothing else
    /// changed: that is the migration).
    pub fn load_with_encoding(path: &Path) -> Result<Option<(Manifest, Encoding)>> {
        // One read(2) of the whole file (std sizes the buffer from fstat).
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let enc = Encoding::of(&bytes);
        Manifest::parse_owned(path, bytes).map(|m| Some((m, enc)))
    }

    /// Parses manifest bytes read from `path`: the binary index, or the
    /// JSON document of older releases.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let m = if index::is_index(bytes) {
            decode(bytes).map(Decoded::into_manifest)
        } else {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())
        };
        Manifest::checked(path, m)
    }

    /// Like [`Manifest::parse`], dropping `bytes` once they are decoded,
    /// before the maps are built: on a large home the file and the decoded
    /// entries are not held at once, at the run's peak.
    pub fn parse_owned(path: &Path, bytes: Vec<u8>) -> Result<Manifest> {
        if !index::is_index(&bytes) {
            return Manifest::parse(path, &bytes);
        }
        let decoded = decode(&bytes);
        drop(bytes);
        Manifest::checked(path, decoded.map(Decoded::into_manifest))
    }

    /// A decoded manifest, refused unless every path is a plain one.
    fn checked(path: &Path, m: index::DecodeResult<Manifest>) -> Result<Manifest> {
        let m = m.map_err(|msg| Error::Corrupt {
            path: path.to_path_buf(),
            msg,
            fix: CORRUPT_FIX.to_string(),
        })?;
        for key in m
            .files
            .keys()
            .map(|k| &**k)
            .chain(m.dirs.iter().map(String::as_str))
        {
            if !is_safe_rel(key) {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    msg: format!("it names {key:?}, which is not a plain path inside the home"),
                    fix: CORRUPT_FIX.to_string(),
                });
            }
        }
        for key in m.units.keys() {
            if key.contains('/') || key.is_empty() || &**key == "." || &**key == ".." {
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

    /// Serialises to the binary index (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_streamed(
            &self.version,
            self.generation,
            self.files.len(),
            self.files.iter().map(|(p, e)| (&**p, e.clone())),
            &self.dirs,
            &self.units,
        )
    }

    /// The same facts as compact JSON with a trailing newline (the format
    /// of older releases; a debug export, never written by a run).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }
}

/// Observation flags of an entry in the index.
const NOT_OBSERVED: u8 = 0;
const OBSERVED_OWN_HASH: u8 = 1;
const OBSERVED_AS_SHIPPED: u8 = 2;

/// The index of a manifest ([`FORMAT`]) whose `n` files come as a stream
/// sorted by path, so the next manifest of a run is written without being
/// held in a map beside the old one. The stream must yield exactly `n`
/// entries (the list length is written first); a stream that does not is a
/// bug, and panics rather than write a manifest that would be refused.
pub fn encode_streamed<'a>(
    version: &Version,
    generation: u64,
    n: usize,
    files: impl Iterator<Item = (&'a str, Entry)>,
    dirs: &BTreeSet<String>,
    units: &BTreeMap<crate::Rel, Entry>,
) -> Vec<u8> {
    let mut w = Writer::new(100 * (n + units.len()) + 16 * dirs.len());
    encode_body(&mut w, version, generation, n, files, dirs, units);
    w.finish(Kind::Manifest)
}

/// Like [`encode_streamed`], written to `file` (empty, at its start) as it
/// is encoded instead of returned: a transaction writes the next manifest
/// of a large install without holding its bytes (10 MB at 100,000 files).
pub fn encode_streamed_to<'a>(
    file: &mut std::fs::File,
    version: &Version,
    generation: u64,
    n: usize,
    files: impl Iterator<Item = (&'a str, Entry)>,
    dirs: &BTreeSet<String>,
    units: &BTreeMap<crate::Rel, Entry>,
) -> std::io::Result<()> {
    let mut w = Writer::to_file(file);
    encode_body(&mut w, version, generation, n, files, dirs, units);
    w.finish_file(Kind::Manifest)
}

fn encode_body<'a>(
    w: &mut Writer<'_>,
    version: &Version,
    generation: u64,
    n: usize,
    files: impl Iterator<Item = (&'a str, Entry)>,
    dirs: &BTreeSet<String>,
    units: &BTreeMap<crate::Rel, Entry>,
) {
    w.varint(u64::from(FORMAT));
    w.bytes(version.to_string().as_bytes());
    w.varint(generation);
    w.list(n);
    let mut got = 0;
    for (path, e) in files {
        entry(w, path, &e);
        got += 1;
    }
    assert_eq!(
        got, n,
        "the manifest stream yields the entries it announced"
    );
    w.list(dirs.len());
    for d in dirs {
        w.path(d);
    }
    entries(w, units);
}

fn entries(w: &mut Writer<'_>, map: &BTreeMap<crate::Rel, Entry>) {
    w.list(map.len());
    for (path, e) in map {
        entry(w, path, e);
    }
}

fn entry(w: &mut Writer<'_>, path: &str, e: &Entry) {
    {
        w.path(path);
        w.hash(&e.sha256);
        w.varint(u64::from(e.mode));
        match &e.observed {
            None => w.u8(NOT_OBSERVED),
            Some(o) if o.sha256 == e.sha256 => {
                w.u8(OBSERVED_AS_SHIPPED);
                w.fingerprint(&o.fp);
            }
            Some(o) => {
                w.u8(OBSERVED_OWN_HASH);
                w.fingerprint(&o.fp);
                w.hash(&o.sha256);
            }
        }
    }
}

fn read_entries(r: &mut Reader<'_>) -> index::DecodeResult<Vec<(crate::Rel, Entry)>> {
    let n = r.list()?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let path = r.path()?;
        let sha256 = r.hash()?;
        let mode = u32::try_from(r.varint()?).map_err(|_| format!("{path}: bad mode"))?;
        let observed = match r.u8()? {
            NOT_OBSERVED => None,
            OBSERVED_AS_SHIPPED => Some(Observed {
                fp: r.fingerprint()?,
                sha256,
            }),
            OBSERVED_OWN_HASH => Some(Observed {
                fp: r.fingerprint()?,
                sha256: r.hash()?,
            }),
            t => return Err(format!("{path}: bad observation flag {t}")),
        };
        v.push((
            crate::Rel::from(path),
            Entry {
                sha256,
                mode,
                observed,
            },
        ));
    }
    // Sorted (the reader checked): [`Decoded::into_manifest`] bulk-builds
    // the map in one pass, its nodes full.
    Ok(v)
}

/// The generation the manifest at `path` records (0 when there is none, it
/// does not parse, or it predates generations): from an index, only its
/// head is decoded once the checksum holds.
pub fn generation_of(path: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    if !index::is_index(&bytes) {
        return Manifest::parse(path, &bytes).map_or(0, |m| m.generation);
    }
    let head = || -> index::DecodeResult<u64> {
        let mut r = Reader::open(&bytes, Kind::Manifest)?;
        r.varint()?;
        r.str()?;
        r.varint()
    };
    head().unwrap_or(0)
}

/// A manifest's fields as decoded, in file order, before the maps are
/// built (see [`Manifest::parse_owned`]).
struct Decoded {
    format: u32,
    version: Version,
    generation: u64,
    files: Vec<(crate::Rel, Entry)>,
    dirs: Vec<String>,
    units: Vec<(crate::Rel, Entry)>,
}

impl Decoded {
    /// The maps, bulk-built from the sorted lists (full nodes).
    fn into_manifest(self) -> Manifest {
        Manifest {
            format: self.format,
            version: self.version,
            files: self.files.into_iter().collect(),
            dirs: self.dirs.into_iter().collect(),
            units: self.units.into_iter().collect(),
            generation: self.generation,
        }
    }
}

fn decode(bytes: &[u8]) -> index::DecodeResult<Decoded> {
    let mut r = Reader::open(bytes, Kind::Manifest)?;
    let format = u32::try_from(r.varint()?).map_err(|_| "bad format number".to_string())?;
    let version = r.str()?;
    let version = Version::parse(version).map_err(|e| format!("bad version {version:?} ({e})"))?;
    let generation = r.varint()?;
    let files = read_entries(&mut r)?;
    let n = r.list()?;
    let mut dirs = Vec::with_capacity(n);
    for _ in 0..n {
        dirs.push(r.path()?);
    }
    let units = read_entries(&mut r)?;
    r.end()?;
    Ok(Decoded {
        format,
        version,
        generation,
        files,
        dirs,
        units,
    })
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

    fn sample() -> Manifest {
        let fp = |n: u64| Fingerprint {
            size: n,
            mtime_ns: 1_700_000_000_000_000_000 + n as i64,
            ctime_ns: 1_700_000_000_000_000_001,
            ino: 1000 + n,
        };
        let h = |c: char| crate::Sha256::parse(&c.to_string().repeat(64)).unwrap();
        let mut m = Manifest::new(Version::parse("1.2.3-rc.1").unwrap());
        m.generation = 7;
        m.files.insert(
            "bin/tool".into(),
            Entry {
                sha256: h('a'),
                mode: 0o755,
                observed: Some(Observed {
                    fp: fp(1),
                    sha256: h('a'),
                }),
            },
        );
        m.files.insert(
            "bin/tool2".into(),
            Entry {
                sha256: h('b'),
                mode: 0o644,
                observed: Some(Observed {
                    fp: fp(2),
                    sha256: h('c'),
                }),
            },
        );
        m.files.insert(
            "docs/ü é.md".into(),
            Entry {
                sha256: crate::Sha256::UNKNOWN,
                mode: 0o644,
                observed: None,
            },
        );
        m.dirs.insert("bin".into());
        m.dirs.insert("docs".into());
        m.units.insert(
            "mosaic-agent@.service".into(),
            Entry {
                sha256: h('d'),
                mode: 0o644,
                observed: None,
            },
        );
        m
    }

    #[test]
    fn the_generation_is_read_from_the_head_alone() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("manifest.json");
        assert_eq!(generation_of(&f), 0, "missing");
        let m = sample();
        std::fs::write(&f, m.to_bytes()).unwrap();
        assert_eq!(generation_of(&f), 7);
        std::fs::write(&f, m.to_json()).unwrap();
        assert_eq!(generation_of(&f), 7, "an older release's JSON");
        let mut bad = m.to_bytes();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&f, bad).unwrap();
        assert_eq!(generation_of(&f), 0, "a checksum that fails");
    }

    #[test]
    fn the_index_round_trips_and_json_is_still_read() {
        let p = Path::new("m");
        let m = sample();
        let bytes = m.to_bytes();
        assert!(index::is_index(&bytes));
        assert_eq!(Manifest::parse(p, &bytes).unwrap(), m);
        assert_eq!(Manifest::parse(p, &m.to_json()).unwrap(), m);
        assert_eq!(
            Manifest::parse(p, &Manifest::new(Version::new(1, 0, 0)).to_bytes())
                .unwrap()
                .files
                .len(),
            0
        );
    }

    #[test]
    fn a_corrupt_or_truncated_index_is_refused_in_one_line() {
        let p = Path::new("H/.mosaic/manifest.json");
        let bytes = sample().to_bytes();
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        for (what, bad) in [
            ("truncated", bytes[..bytes.len() - 3].to_vec()),
            ("header only", bytes[..20].to_vec()),
            ("flipped", flipped),
        ] {
            let err = Manifest::parse(p, &bad).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
            let line = err.to_string();
            assert!(!line.contains('\n'), "{what}: {line}");
            assert!(
                line.starts_with("H/.mosaic/manifest.json: cannot parse ("),
                "{what}: {line}"
            );
        }
    }

    #[test]
    fn an_index_naming_a_path_outside_the_home_is_refused() {
        let mut m = sample();
        m.files.insert("../x".into(), m.files["bin/tool"].clone());
        let err = Manifest::parse(Path::new("m"), &m.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a plain path"), "{err}");
    }
}
