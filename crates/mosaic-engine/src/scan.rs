//! Gathers the disk facts the planner needs (SPEC §4.2), read-only and never
//! following a symlink: every path is looked at through a handle on its
//! parent directory opened below the root without following a link at any
//! component ([`crate::dirfd`]), so a directory swapped for a link while the
//! scan runs is never read through. When a file's stat fingerprint matches the one the
//! manifest recorded, the recorded hash is trusted and the file is not read:
//! a no-op update reads no file contents.

use crate::dirfd::{self, Dir};
use crate::error::{Error, Result};
use crate::fsutil::{hash_file, Fingerprint};
use crate::manifest::Manifest;
use crate::plan::{Disk, DiskView};
use crate::preserve::Preserve;
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
        Some(o) if o.fp == fp => o.sha256,
        _ if hash => hash_file(path)?,
        _ => crate::Sha256::UNKNOWN,
    };
    Ok(Disk::File { sha256, mode, fp })
}

/// Like [`stat_path`] for `name` in the directory handle `dir` (`None`: the
/// directory is missing, so the path is absent).
pub fn stat_at(
    dir: Option<&Dir>,
    name: &str,
    known: Option<&crate::manifest::Observed>,
    hash: bool,
) -> Result<Disk> {
    let Some(dir) = dir else {
        return Ok(Disk::Absent);
    };
    let Some(st) = dir.stat(name)? else {
        return Ok(Disk::Absent);
    };
    Ok(match st.kind {
        dirfd::Kind::Absent => Disk::Absent,
        dirfd::Kind::Symlink => Disk::Symlink,
        dirfd::Kind::Dir => Disk::Dir,
        dirfd::Kind::Special => Disk::Other,
        dirfd::Kind::File => {
            let sha256 = match known {
                Some(o) if o.fp == st.fp => o.sha256,
                _ if hash => hash_open(dir, name)?,
                _ => crate::Sha256::UNKNOWN,
            };
            Disk::File {
                sha256,
                mode: st.mode,
                fp: st.fp,
            }
        }
    })
}

/// sha256 of `name` in `dir`, read through the handle.
fn hash_open(dir: &Dir, name: &str) -> Result<crate::Sha256> {
    use sha2::Digest;
    let mut f = dir.open_read(name)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(dir.join(name), e))?;
    Ok(crate::Sha256::finish(h))
}

/// How many directory handles a [`Lookup`] keeps open (the home's scan
/// holds its own, one per level: see [`Walk`]). The paths come sorted,
/// so a directory's files are contiguous but for its subdirectories' runs
/// between them: a few handles cover that. Keeping every directory open
/// would grow the descriptor table past 64, 128, 256… and each growth
/// waits for an RCU grace period (milliseconds) while the source is
/// walked on another thread.
const HELD_DIRS: usize = 8;

/// Handles on the directories a [`Lookup`] reads in: the [`HELD_DIRS`]
/// used last.
struct Parents {
    root: Option<Dir>,
    /// (directory, handle or `None` for a missing one), most recent last.
    open: Vec<(String, Option<Dir>)>,
}

impl Parents {
    fn new(root: &Path) -> Result<Parents> {
        let root = match Dir::open(root) {
            Ok(d) => Some(d),
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Parents {
            root,
            open: Vec::with_capacity(HELD_DIRS),
        })
    }

    /// The full path of `rel` (for messages).
    fn path_of(&self, rel: &str) -> std::path::PathBuf {
        match &self.root {
            Some(r) => r.join(rel),
            None => std::path::PathBuf::from(rel),
        }
    }

    /// The handle on `rel`'s directory and its final name.
    fn of<'r>(&mut self, rel: &'r str) -> Result<(Option<&Dir>, &'r str)> {
        let (dir, name) = dirfd::split(rel);
        let Some(root) = &self.root else {
            return Ok((None, name));
        };
        match self.open.iter().rposition(|(d, _)| d == dir) {
            Some(i) => {
                let hit = self.open.remove(i);
                self.open.push(hit);
            }
            None => {
                if self.open.len() == HELD_DIRS {
                    self.open.remove(0);
                }
                let d = root.sub_opt(dir)?;
                self.open.push((dir.to_string(), d));
            }
        }
        let (_, d) = self.open.last().expect("just pushed");
        Ok((d.as_ref(), name))
    }
}

/// Opens files below a root through [`HELD_DIRS`] handles on their
/// directories (for paths that come mostly in order), never following a
/// link.
pub struct Lookup {
    parents: Parents,
}

impl Lookup {
    /// Lookups below `root` (a missing root holds nothing).
    pub fn new(root: &Path) -> Result<Lookup> {
        Ok(Lookup {
            parents: Parents::new(root)?,
        })
    }

    /// Opens the regular file at `rel` for reading (never through a link).
    pub fn open_file(&mut self, rel: &str) -> Result<std::fs::File> {
        match self.parents.of(rel)? {
            (Some(dir), name) => dir.open_read(name),
            (None, _) => Err(Error::io(
                self.parents.path_of(rel),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )),
        }
    }
}

/// Handles on the directories from the home down to the one a scan looked
/// in last, each opened relative to the one above it (one component, never
/// through a link). Opening a directory is what tells it is one: its
/// verdict goes into the ancestors once, and the handle serves the stats of
/// its files (a stat of each directory by name, and an open of its whole
/// path from the home, were two more lookups per directory).
struct Walk {
    root: Option<Dir>,
    /// (directory, handle or `None` when it is not a real directory),
    /// outermost first.
    stack: Vec<(String, Option<Dir>)>,
}

impl Walk {
    /// The handle on `dir` (`None`: it is not a real directory, or one
    /// above it is not), opening what it must; the verdict on each
    /// directory opened goes into `ancestors`.
    fn enter(
        &mut self,
        dir: &str,
        ancestors: &mut std::collections::BTreeMap<String, Disk>,
    ) -> Result<Option<&Dir>> {
        if dir.is_empty() {
            self.stack.clear();
            return Ok(self.root.as_ref());
        }
        while let Some((top, _)) = self.stack.last() {
            if dir == top || (dir.starts_with(top.as_str()) && dir.as_bytes()[top.len()] == b'/') {
                break;
            }
            self.stack.pop();
        }
        let done = self.stack.last().map_or(0, |(top, _)| top.len() + 1);
        if done <= dir.len() {
            for (i, _) in dir[done..]
                .match_indices('/')
                .map(|(i, m)| (done + i, m))
                .chain(std::iter::once((dir.len(), "")))
            {
                let sub = &dir[..i];
                let name = &sub[sub.rfind('/').map_or(0, |j| j + 1)..];
                // An empty component would open the directory above again
                // (paths are validated before; this keeps it so here).
                if name.is_empty() {
                    return Err(Error::Input(format!(
                        "{dir}: a path with an empty component; name each directory once"
                    )));
                }
                let above = match self.stack.last() {
                    Some((_, d)) => d.as_ref(),
                    None => self.root.as_ref(),
                };
                let (verdict, handle) = match above {
                    None => (Disk::Absent, None),
                    Some(above) => match above.sub_opt(name) {
                        Ok(Some(d)) => (Disk::Dir, Some(d)),
                        Ok(None) => (Disk::Absent, None),
                        // A link, a file…: a stat says which (rare). A real
                        // directory that cannot be opened is an error.
                        Err(e) => match stat_at(Some(above), name, None, false)? {
                            Disk::Dir => return Err(e),
                            d => (d, None),
                        },
                    },
                };
                ancestors.entry(sub.to_string()).or_insert(verdict);
                self.stack.push((sub.to_string(), handle));
            }
        }
        Ok(self.stack.last().and_then(|(_, d)| d.as_ref()))
    }
}

/// Builds the [`DiskView`] for every path in `paths` below `home`. A path
/// below an ancestor that is not a real directory is not looked at (that
/// would follow the link); the planner reports it from the ancestor.
pub fn scan(
    home: &Path,
    paths: impl IntoIterator<Item = crate::Rel>,
    manifest: Option<&Manifest>,
    preserve: &Preserve,
) -> Result<DiskView> {
    crate::fsutil::mark_run_start();
    let mut view = DiskView::default();
    let mut walk = Walk {
        root: Parents::new(home)?.root,
        stack: Vec::new(),
    };
    // The manifest's entries are found by a cursor while the paths come in
    // order (they usually do: the manifest's own keys), by lookup if not.
    let mut recorded = manifest.map(|m| m.files.cursor());
    let paths = paths.into_iter();
    let mut found = Vec::with_capacity(paths.size_hint().0);
    for key in paths {
        let rel: &str = &key;
        let (parent, name) = dirfd::split(rel);
        let d = match walk.enter(parent, &mut view.ancestors)? {
            // Below what is not a real directory: taken as missing (through
            // a link that would follow it).
            None => Disk::Absent,
            Some(dir) => {
                // A preserved path only needs to be known present or absent.
                let need_hash = !preserve.matches(rel);
                let entry = recorded.as_mut().and_then(|c| c.get(rel)).map(|(_, e)| e);
                let known = entry.and_then(|e| e.observed.as_ref());
                stat_at(Some(dir), name, known, need_hash)?
            }
        };
        found.push((key, d));
    }
    // In order already (the usual case), the vector is the map as it is.
    view.paths = found.into_iter().collect();
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_holds_a_few_directory_handles_not_one_per_directory() {
        let t = tempfile::tempdir().unwrap();
        let mut rels = Vec::new();
        for d in 0..40 {
            for s in 0..3 {
                let dir = t.path().join(format!("d{d:02}/s{s}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("f"), "x").unwrap();
                std::fs::write(t.path().join(format!("d{d:02}/g{s}")), "y").unwrap();
                rels.push(format!("d{d:02}/s{s}/f"));
                rels.push(format!("d{d:02}/g{s}"));
            }
        }
        rels.sort();
        let mut parents = Parents::new(t.path()).unwrap();
        for rel in &rels {
            let (dir, name) = parents.of(rel).unwrap();
            assert!(dir.unwrap().stat(name).unwrap().is_some(), "{rel}");
            assert!(parents.open.len() <= HELD_DIRS);
        }
        let none = Preserve::new(&[], "none").unwrap();
        let view = scan(
            t.path(),
            rels.iter().map(|r| crate::Rel::from(r.as_str())),
            None,
            &none,
        )
        .unwrap();
        assert_eq!(view.paths.len(), 240);
        assert!(view.paths.values().all(|d| matches!(d, Disk::File { .. })));
    }

    #[test]
    fn recorded_hashes_are_trusted_whatever_order_the_paths_come_in() {
        let t = tempfile::tempdir().unwrap();
        let mut m = Manifest::new(semver::Version::new(1, 0, 0));
        let trusted = crate::Sha256([9; 32]);
        for rel in ["a", "b/x", "c"] {
            let f = t.path().join(rel);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, rel).unwrap();
            let fp = crate::fsutil::Fingerprint::of(&std::fs::symlink_metadata(&f).unwrap());
            m.files.insert(
                rel.into(),
                crate::manifest::Entry {
                    sha256: trusted,
                    mode: 0o644,
                    observed: Some(crate::manifest::Observed {
                        fp,
                        sha256: trusted,
                    }),
                },
            );
        }
        let none = Preserve::new(&[], "none").unwrap();
        for order in [["a", "b/x", "c"], ["c", "a", "b/x"], ["b/x", "a", "c"]] {
            let view = scan(t.path(), order.map(crate::Rel::from), Some(&m), &none).unwrap();
            for rel in order {
                assert!(
                    matches!(view.paths[rel], Disk::File { sha256, .. } if sha256 == trusted),
                    "{order:?}: {rel} was read, not trusted"
                );
            }
        }
    }

    #[test]
    fn every_ancestor_is_looked_at_whatever_order_the_paths_come_in() {
        // The ancestor set is filled with shortcuts (a climb stops at a
        // directory already there); out of order, deep after shallow and
        // back, none may be missed: a link at any of them must be seen.
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        for d in ["a/b/c", "a/x", "z/y"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        std::os::unix::fs::symlink(t.path(), home.join("a/b/l")).unwrap();
        let none = Preserve::new(&[], "none").unwrap();
        let keys = [
            "a/x/f",
            "a/b/c/f",
            "a/b/g",
            "z/y/q",
            "a/b/c/h",
            "a/b/l/m/n",
            "top",
        ];
        let view = scan(&home, keys.map(crate::Rel::from), None, &none).unwrap();
        let mut got: Vec<&str> = view.ancestors.keys().map(|k| k.as_str()).collect();
        got.sort();
        assert_eq!(
            got,
            ["a", "a/b", "a/b/c", "a/b/l", "a/b/l/m", "a/x", "z", "z/y"]
        );
        assert_eq!(view.ancestors["a/b/l"], Disk::Symlink);
        assert_eq!(view.paths["a/b/l/m/n"], Disk::Absent);
    }

    #[test]
    fn a_path_with_an_empty_component_is_refused_not_looked_up_as_its_parent() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a")).unwrap();
        std::fs::write(t.path().join("a/b"), "x").unwrap();
        let none = Preserve::new(&[], "none").unwrap();
        for bad in ["a//b", "a//", "x//y/z"] {
            let got = scan(t.path(), [crate::Rel::from(bad)], None, &none);
            assert!(got.is_err(), "{bad}: {:?}", got.map(|v| v.ancestors));
        }
    }

    #[test]
    fn a_path_below_a_link_is_never_looked_at() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join("real")).unwrap();
        std::fs::create_dir_all(t.path().join("out")).unwrap();
        std::fs::write(t.path().join("out/f"), "outside").unwrap();
        std::fs::write(home.join("real/f"), "inside").unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), home.join("link")).unwrap();
        let none = Preserve::new(&[], "none").unwrap();
        let view = scan(
            &home,
            ["real/f", "link/f", "missing/f"].map(crate::Rel::from),
            None,
            &none,
        )
        .unwrap();
        assert!(matches!(view.paths["real/f"], Disk::File { .. }));
        assert_eq!(view.ancestors["link"], Disk::Symlink);
        assert_eq!(view.paths["link/f"], Disk::Absent);
        assert_eq!(view.paths["missing/f"], Disk::Absent);
        // A missing home is an empty one.
        let view = scan(
            &t.path().join("nope"),
            ["a/b"].map(crate::Rel::from),
            None,
            &none,
        )
        .unwrap();
        assert_eq!(view.paths["a/b"], Disk::Absent);
    }
}
