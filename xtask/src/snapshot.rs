//! Snapshots of directory trees (kind, mode, bytes per entry) for the
//! migration matrix and the crash test to compare before and after a run:
//! one definition both use.

use anyhow::Result;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `f`ile, `d`irectory, `l`ink or `o`ther.
    pub kind: char,
    /// Permission bits (0 for links).
    pub mode: u32,
    /// File bytes or link target.
    pub bytes: Vec<u8>,
}

/// Key (a prefix such as `H/` and the path below its root) → node.
pub type Snapshot = BTreeMap<String, Node>;

/// Adds every entry below `root` to `s`, keys prefixed with `prefix`.
pub fn snapshot_into(s: &mut Snapshot, prefix: &str, root: &Path) -> Result<()> {
    if std::fs::symlink_metadata(root).is_err() {
        return Ok(());
    }
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e?;
        let rel = e.path().strip_prefix(root)?.to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(e.path())?;
        let ft = m.file_type();
        let mode = m.permissions().mode() & 0o7777;
        let node = if ft.is_symlink() {
            Node {
                kind: 'l',
                mode: 0,
                bytes: std::fs::read_link(e.path())?
                    .into_os_string()
                    .into_encoded_bytes(),
            }
        } else if ft.is_dir() {
            Node {
                kind: 'd',
                mode,
                bytes: Vec::new(),
            }
        } else if ft.is_file() {
            Node {
                kind: 'f',
                mode,
                bytes: std::fs::read(e.path())?,
            }
        } else {
            Node {
                kind: 'o',
                mode,
                bytes: Vec::new(),
            }
        };
        s.insert(format!("{prefix}{rel}"), node);
    }
    Ok(())
}
