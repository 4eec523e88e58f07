//! Gathers the disk facts the planner needs (SPEC §4.2), read-only and never
//! following a symlink. When a file's stat fingerprint matches the one the
//! manifest recorded, the recorded hash is trusted and the file is not read:
//! a no-op update reads no file contents.

use crate::error::{Error, Result};
use crate::fsutil::{hash_file, join_rel, Fingerprint};
use crate::manifest::Manifest;
use crate::plan::{Disk, DiskView};
use crate::preserve::Preserve;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Reads what is at `path` without following a link. `known` is the
/// manifest's observation, trusted when the fingerprint matches; `hash`
/// says whether the content hash is needed at all.
pub fn stat_path(
    path: &Path,
    known: Option<&crate::manifest::Observed>,
    hash: bool,
) -> Result<Disk> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Disk::Absent),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Disk::Absent),
        Err(e) => return Err(Error::io(path, e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Ok(Disk::Symlink);
    }
    if ft.is_dir() {
        return Ok(Disk::Dir);
    }
    if !ft.is_file() {
        return Ok(Disk::Other);
    }
    let fp = Fingerprint::of(&meta);
    let mode = meta.permissions().mode() & 0o7777;
    let sha256 = match known {
        Some(o) if o.fp == fp => o.sha256.clone(),
        _ if hash => hash_file(path)?,
        _ => String::new(),
    };
    Ok(Disk::File { sha256, mode, fp })
}

/// Builds the [`DiskView`] for every path in `paths` below `home`. A path
/// below an ancestor that is not a real directory is not looked at (that
/// would follow the link); the planner reports it from the ancestor.
pub fn scan<'a>(
    home: &Path,
    paths: impl IntoIterator<Item = &'a str>,
    manifest: Option<&Manifest>,
    preserve: &Preserve,
) -> Result<DiskView> {
    let paths: Vec<&str> = paths.into_iter().collect();
    let mut view = DiskView::default();
    let mut ancestors: BTreeSet<&str> = BTreeSet::new();
    for rel in &paths {
        let mut cur = *rel;
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            ancestors.insert(cur);
        }
    }
    // Parents sort before children, so a blocked parent is known first.
    let mut blocked: Vec<&str> = Vec::new();
    for anc in ancestors {
        let under_blocked = crate::fsutil::is_below_any(anc, blocked.iter().copied());
        let d = if under_blocked {
            Disk::Absent
        } else {
            stat_path(&join_rel(home, anc), None, false)?
        };
        if !matches!(d, Disk::Dir | Disk::Absent) {
            blocked.push(anc);
        }
        view.ancestors.insert(anc.to_string(), d);
    }
    for rel in paths {
        let under_blocked = crate::fsutil::is_below_any(rel, blocked.iter().copied());
        let d = if under_blocked {
            Disk::Absent
        } else {
            // A preserved path only needs to be known present or absent.
            let need_hash = !preserve.matches(rel);
            let known = manifest
                .and_then(|m| m.files.get(rel))
                .and_then(|e| e.observed.as_ref());
            stat_path(&join_rel(home, rel), known, need_hash)?
        };
        view.paths.insert(rel.to_string(), d);
    }
    Ok(view)
}
