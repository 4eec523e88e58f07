//! The transactional executor (SPEC §4.3 steps 5–7): backs up everything it
//! will replace or remove, journals the run, applies the operations with
//! atomic writes, writes the manifest last, and on any error (or on the next
//! run after a crash) restores the tree from the backup. Also lists, prunes
//! and restores backups for `mosaic backups` / `mosaic rollback`.

use crate::dirfd::{self, split, Dir, Rename};
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fsutil::{self, join_rel, Fingerprint};
use crate::paths::Paths;
use crate::session::Locked;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many generations (install, update, rollback) per home are kept.
pub const KEEP_GENERATIONS: usize = 5;
/// How many fleet edits (roster, env files) per home are kept.
pub const KEEP_FLEET_EDITS: usize = 20;

/// What a transaction was: a generation of the framework tree, or a fleet
/// edit. The two have their own histories, so fleet edits never evict a
/// generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An install, update or rollback: a numbered generation with its manifest.
    #[default]
    Generation,
    /// A change to the roster or the agents' env files (`mosaic fleet …`).
    FleetEdit,
    /// A settled conflict (`mosaic resolve PATH --keep|--take`).
    Resolve,
}

/// Relative path of the manifest below the home.
pub const MANIFEST_REL: &str = ".mosaic/manifest.json";

/// The content of a written file.
#[derive(Debug, Clone)]
pub enum Payload<'a> {
    /// Bytes in memory.
    Bytes(Cow<'a, [u8]>),
    /// Streamed from a file, never held whole.
    File(&'a Path),
    /// Streamed from the file `rel` of the framework tree on disk at `root`.
    InTree {
        /// The tree.
        root: &'a Path,
        /// The file's path in it.
        rel: &'a str,
    },
}

impl<'a> Payload<'a> {
    /// The payload of the source file shipped at `rel`.
    pub fn of(rel: &'a str, file: &'a crate::source::SourceFile) -> Payload<'a> {
        match &file.content {
            crate::source::Content::Static(b) => Payload::Bytes(Cow::Borrowed(b)),
            crate::source::Content::Owned(b) => Payload::Bytes(Cow::Borrowed(b)),
            crate::source::Content::File(p) => Payload::File(p),
            crate::source::Content::InTree(root) => Payload::InTree { root, rel },
        }
    }
}

/// One operation below the home.
#[derive(Debug, Clone)]
pub enum Op<'a> {
    /// Atomically write a file.
    Write {
        /// Relative path.
        rel: crate::Rel,
        /// Content.
        bytes: Payload<'a>,
        /// Mode.
        mode: u32,
        /// sha256 of the content (how recovery recognises what it wrote).
        sha256: crate::Sha256,
    },
    /// Remove a file, a symlink (the link itself) or a directory tree.
    Remove {
        /// Relative path.
        rel: crate::Rel,
    },
    /// Remove a directory if it is empty.
    RemoveDirIfEmpty {
        /// Relative path.
        rel: crate::Rel,
    },
    /// Make `rel` what `from` holds (a file, link or tree), or absent.
    Restore {
        /// Relative path.
        rel: crate::Rel,
        /// Source in a backup, or `None` for "absent".
        from: Option<PathBuf>,
    },
}

impl Op<'_> {
    /// The relative path the operation is about.
    pub fn rel(&self) -> &str {
        self.shared_rel()
    }

    /// The same path, as the shared allocation the op holds (a backup
    /// record takes a reference to it, not a copy).
    pub fn shared_rel(&self) -> &crate::Rel {
        match self {
            Op::Write { rel, .. }
            | Op::Remove { rel }
            | Op::RemoveDirIfEmpty { rel }
            | Op::Restore { rel, .. } => rel,
        }
    }

    fn kind(&self) -> RecKind {
        match self {
            Op::Write { .. } => RecKind::Write,
            Op::Remove { .. } => RecKind::Remove,
            Op::RemoveDirIfEmpty { .. } => RecKind::Rmdir,
            Op::Restore { .. } => RecKind::Restore,
        }
    }
}

/// What a journal record is about (on disk: `write`, `remove`, `rmdir`,
/// `restore`, `manifest`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecKind {
    /// An atomic write.
    Write,
    /// A removal (file, link or tree).
    Remove,
    /// Removing a directory if empty.
    Rmdir,
    /// Making a path what a backup holds.
    Restore,
    /// The manifest, written last.
    Manifest,
}

/// What was at a path before the run (on disk: `absent`, `file`, `dir`,
/// `symlink`, `special`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Before {
    /// Nothing.
    Absent,
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A socket, fifo or device.
    Special,
}

impl Before {
    /// From the words the stat helpers use.
    fn of(word: &str) -> Before {
        match word {
            "absent" => Before::Absent,
            "file" => Before::File,
            "dir" => Before::Dir,
            "symlink" => Before::Symlink,
            _ => Before::Special,
        }
    }
}

/// What was at one path before the run (as recorded in the backup).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Relative path below the home (shared with the op and the plan).
    pub rel: crate::Rel,
    /// Operation kind.
    pub kind: RecKind,
    /// What was there before.
    pub before: Before,
    /// The stat fingerprint of the file that was there (checked again right
    /// before it is replaced, so an edit made meanwhile is never lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<Box<Fingerprint>>,
    /// What the run leaves there: `absent`, or the sha256 of the file it
    /// writes; unset when unknown. Recovery only undoes a path that still
    /// holds what the run left, never a later edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<After>,
}

/// What a run leaves at a path (on disk: `"absent"` or the hex sha256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Nothing.
    Absent,
    /// A file with this content.
    File(crate::Sha256),
}

impl Serialize for After {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            After::Absent => s.serialize_str("absent"),
            After::File(h) => h.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for After {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<After, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Ok(match &*s {
            "absent" => After::Absent,
            hex_text => After::File(crate::Sha256::parse_lenient(hex_text)),
        })
    }
}

/// The backup record, `STATE/backups/ID/meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupMeta {
    /// Backup id (its directory name).
    pub id: String,
    /// The home it belongs to.
    pub home: PathBuf,
    /// UTC time of the run, RFC 3339.
    pub created: String,
    /// What made it (`install`, `update`, `rollback`).
    pub command: String,
    /// Framework version before.
    pub from_version: Option<String>,
    /// Framework version after.
    pub to_version: String,
    /// Every path touched, with its prior state.
    pub records: Vec<Record>,
    /// Directories the run created, outermost first.
    pub mkdirs: Vec<String>,
    /// True once the run completed.
    pub complete: bool,
    /// The run's temp-file tag (temp files are `.NAME.mosaic-tmp-TAG`).
    #[serde(default)]
    pub tmp_tag: String,
    /// A generation or a fleet edit.
    #[serde(default)]
    pub kind: Kind,
    /// For a generation: its number (the manifest it wrote carries it too);
    /// 0 for a fleet edit.
    #[serde(default)]
    pub generation: u64,
    /// For a fleet edit: set once `mosaic fleet undo` undid it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undone: bool,
    /// How the backup keeps its copies (see [`Copies`]); a record without
    /// one was made before the flat layout.
    #[serde(default)]
    pub layout: Layout,
}

/// How a backup directory keeps the copies of what its run replaced or
/// removed. Only [`Copies`] reads it, for the backup's writer as for its
/// readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `files/` mirrors the home: `files/REL`, an absolute path under
    /// `files/_abs/`. Backups made before the flat layout.
    #[default]
    Tree,
    /// `copies/N` holds record N's copy (a recorded directory's whole tree
    /// below it; the manifest's is `copies/manifest.json`): no directory
    /// to make per changed file, and none per file to delete when the
    /// backup is pruned. (A binary that knows only `files/` finds no copy
    /// where it looks and stops there.)
    Flat,
}

impl Layout {
    /// The directory below the backup that holds the copies.
    pub fn dir_name(self) -> &'static str {
        match self {
            Layout::Tree => "files",
            Layout::Flat => "copies",
        }
    }
}

/// How far an interrupted run got, as its journal says. The on-disk names
/// are `backup` (backups being made, nothing applied) and `apply` (the tree
/// may be half-applied); anything else is refused, never acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// Backups were being taken; nothing below the home changed yet.
    Backup,
    /// Operations were being applied.
    Apply,
}

/// The journal `STATE/journal-KEY.json`: the commit record of a run in
/// progress. Its presence alone decides whether the next run rolls back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    backup: PathBuf,
    phase: Phase,
}

/// Describes the run for the backup record.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `install`, `update` or `rollback`.
    pub command: String,
    /// Version before.
    pub from_version: Option<String>,
    /// Version after.
    pub to_version: String,
    /// A generation or a fleet edit.
    pub kind: Kind,
}

/// UTC time as `YYYYMMDDTHHMMSS.ffffffZ` (sorts by time) and RFC 3339, from the system clock.
fn utc_now() -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}.{micros:06}Z"),
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
    )
}

/// Where `rel` lives: below the home, or as is when absolute (the active
/// systemd unit directory is outside the home).
pub fn target(home: &Path, rel: &str) -> PathBuf {
    if rel.starts_with('/') {
        PathBuf::from(rel)
    } else {
        join_rel(home, rel)
    }
}

/// Where the copy of `rel` lives below a mirrored tree (a [`Layout::Tree`]
/// backup's `files/`, or a backup's `late/`).
fn mirrored(files: &Path, rel: &str) -> PathBuf {
    match rel.strip_prefix('/') {
        Some(abs) => join_rel(&files.join("_abs"), abs),
        None => join_rel(files, rel),
    }
}

/// Where one backup's copies are: the one place that reads its
/// [`Layout`], for the backup's writer as for its readers. Built once per
/// use, then asked record by record or path by path.
pub struct Copies<'m> {
    root: PathBuf,
    meta: &'m BackupMeta,
    /// The recorded directories (copied whole: the paths below one have no
    /// copy of their own), with their record's index.
    trees: std::collections::HashMap<&'m str, usize>,
    /// Flat: every record that has a copy of its own, by path.
    own: std::collections::HashMap<&'m str, usize>,
}

/// The name of the manifest's copy in a flat backup (the others are
/// numbers), so an operator can find it: `copies/manifest.json`.
const MANIFEST_COPY: &str = "manifest.json";

impl<'m> Copies<'m> {
    /// The copies of the backup in `bdir` that `meta` describes.
    pub fn of(bdir: &Path, meta: &'m BackupMeta) -> Copies<'m> {
        let mut c = Copies {
            root: bdir.join(meta.layout.dir_name()),
            meta,
            trees: Default::default(),
            own: Default::default(),
        };
        for (r, rec) in meta.records.iter().enumerate() {
            if !has_copy(rec) {
                continue;
            }
            if rec.before == Before::Dir {
                c.trees.insert(&rec.rel, r);
            }
            if meta.layout == Layout::Flat {
                c.own.entry(&rec.rel).or_insert(r);
            }
        }
        c
    }

    /// Whether record `r` has a copy of its own: what it found existed, it
    /// is not a directory removal (whose contents have records of their
    /// own), and no recorded directory above it was copied whole.
    pub fn takes_own(&self, r: usize) -> bool {
        let rec = &self.meta.records[r];
        has_copy(rec) && self.tree_above(&rec.rel).is_none()
    }

    /// Below the copies' directory, where record `r`'s own copy is.
    pub fn own_name(&self, r: usize) -> Cow<'m, str> {
        let rec = &self.meta.records[r];
        match self.meta.layout {
            Layout::Tree => backup_inner(&rec.rel),
            Layout::Flat if rec.kind == RecKind::Manifest => MANIFEST_COPY.into(),
            Layout::Flat => r.to_string().into(),
        }
    }

    /// The outermost recorded directory strictly above `rel`: its index
    /// and the rest of `rel` below it.
    fn tree_above<'a>(&self, rel: &'a str) -> Option<(usize, &'a str)> {
        let mut found = None;
        let mut cur = rel;
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            if let Some(&t) = self.trees.get(cur) {
                found = Some((t, &rel[i + 1..]));
            }
        }
        found
    }

    /// Where the copy of `rel` is: its record's own, or the place in a
    /// recorded directory's copy that held it. A path the backup holds no
    /// copy of gets a path that does not exist.
    pub fn path(&self, rel: &str) -> PathBuf {
        if self.meta.layout == Layout::Tree {
            return mirrored(&self.root, rel);
        }
        if let Some((t, rest)) = self.tree_above(rel) {
            return join_rel(&self.root.join(&*self.own_name(t)), rest);
        }
        match self.own.get(rel) {
            Some(&r) => self.root.join(&*self.own_name(r)),
            None => self.root.join("none"),
        }
    }
}

/// Where the backup in `bdir` keeps its copy of `rel` (its record read
/// for the layout): for a reader outside a run, a test or the matrix.
pub fn backup_copy(bdir: &Path, rel: &str) -> Result<PathBuf> {
    let meta: BackupMeta = read_json(&bdir.join("meta.json"))?;
    Ok(Copies::of(bdir, &meta).path(rel))
}

/// Whether the backup takes a copy of what `rec` found (it existed, and
/// it is not a directory removal, whose contents have records of their own).
fn has_copy(rec: &Record) -> bool {
    rec.before != Before::Absent && rec.kind != RecKind::Rmdir
}

/// Handles on the roots a run acts below: the home, and the parent
/// directory of each absolute path (the active unit directory, a roster
/// given with `--roster`), each opened once by its ordinary path. Below a
/// root nothing is followed (see [`crate::dirfd`]). Directories below the
/// home are opened afresh for each operation (the renames: for each
/// directory's run of them, once every temp is written), so a directory
/// swapped for a link meanwhile fails that operation instead of being
/// written through.
struct Roots {
    home: Dir,
    abs: BTreeMap<PathBuf, Option<Dir>>,
}

impl Roots {
    fn new(home: &Path) -> Result<Roots> {
        Ok(Roots {
            home: Dir::open(home)?,
            abs: BTreeMap::new(),
        })
    }

    /// The directory holding `rel` and its final name; `None` when a
    /// directory on the way is missing. A link or a file on the way is an
    /// error naming it.
    fn parent(&mut self, rel: &str) -> Result<Option<(Dir, String)>> {
        if rel.starts_with('/') {
            let p = Path::new(rel);
            let (Some(parent), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str()))
            else {
                return Err(Error::Input(format!(
                    "{rel}: not a file path mosaic can write; check the path"
                )));
            };
            if !self.abs.contains_key(parent) {
                let d = match Dir::open(parent) {
                    Ok(d) => Some(d),
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        None
                    }
                    Err(e) => return Err(e),
                };
                self.abs.insert(parent.to_path_buf(), d);
            }
            return match &self.abs[parent] {
                Some(d) => Ok(Some((d.try_clone()?, name.to_string()))),
                None => Ok(None),
            };
        }
        let (dir, name) = split(rel);
        Ok(self.home.sub_opt(dir)?.map(|d| (d, name.to_string())))
    }

    /// Like [`Roots::parent`]; a missing directory is an error.
    fn parent_must(&mut self, rel: &str) -> Result<(Dir, String)> {
        self.parent(rel)?.ok_or_else(|| {
            Error::io(
                target(self.home.path(), rel),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "its directory is missing (removed while mosaic ran?)",
                ),
            )
        })
    }

    /// Creates the missing directories of `rel`'s parent (below the home
    /// only; an absolute path's directory must exist).
    fn parent_made(&mut self, rel: &str, mode: u32) -> Result<(Dir, String)> {
        if !rel.starts_with('/') {
            let (dir, name) = split(rel);
            let (d, _) = self.home.create_dirs(dir, mode)?;
            return Ok((d, name.to_string()));
        }
        self.parent_must(rel)
    }

    /// Flushes every root's file system and directory.
    fn sync(&self) -> Result<()> {
        self.home.syncfs()?;
        for d in self.abs.values().flatten() {
            d.syncfs()?;
            d.sync()?;
        }
        Ok(())
    }
}

fn kind_name(k: dirfd::Kind) -> &'static str {
    match k {
        dirfd::Kind::Absent => "absent",
        dirfd::Kind::File => "file",
        dirfd::Kind::Dir => "dir",
        dirfd::Kind::Symlink => "symlink",
        dirfd::Kind::Special => "special",
    }
}

/// What is at `rel` (never following a link) and, for a file, its fingerprint.
fn stat_of(roots: &mut Roots, rel: &str) -> Result<(&'static str, Option<Fingerprint>)> {
    let Some((dir, name)) = roots.parent(rel)? else {
        return Ok(("absent", None));
    };
    Ok(match dir.stat(&name)? {
        None => ("absent", None),
        Some(st) if st.kind == dirfd::Kind::File => ("file", Some(st.fp)),
        Some(st) => (kind_name(st.kind), None),
    })
}

fn kind_of(roots: &mut Roots, rel: &str) -> Result<&'static str> {
    Ok(stat_of(roots, rel)?.0)
}

/// Copies a file, symlink (as a link) or directory tree from `from` to `to`
/// (which must not exist), never following links.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let (src, sname) = open_parent_of(from)?;
    let (dst, dname) = open_parent_of(to)?;
    copy_tree_at(&src, &sname, &dst, &dname)
}

/// The handle on `path`'s parent (opened by its path) and its final name.
fn open_parent_of(path: &Path) -> Result<(Dir, String)> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(p), Some(n)) => Ok((Dir::open(p)?, n.to_string())),
        _ => Err(Error::Input(format!(
            "{}: not a file path mosaic can copy; check the path",
            path.display()
        ))),
    }
}

/// [`copy_tree`] through handles: `sname` in `src` to `dname` in `dst`.
fn copy_tree_at(src: &Dir, sname: &str, dst: &Dir, dname: &str) -> Result<()> {
    let Some(st) = src.stat(sname)? else {
        return Err(Error::io(
            src.join(sname),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    match st.kind {
        dirfd::Kind::Symlink => dst.symlink(&src.readlink(sname)?, dname),
        dirfd::Kind::Dir => {
            dst.mkdir(dname, 0o700)?;
            let (from, to) = (src.sub(sname)?, dst.sub(dname)?);
            for e in from.entries()? {
                copy_tree_at(&from, &e, &to, &e)?;
            }
            to.chmod_self(st.mode)
        }
        dirfd::Kind::File => {
            let mut f = src.open_read(sname)?;
            let mut out = dst
                .create(dname, st.mode)
                .map_err(|e| Error::io(dst.join(dname), e))?;
            std::io::copy(&mut f, &mut out).map_err(|e| Error::io(dst.join(dname), e))?;
            Ok(())
        }
        dirfd::Kind::Absent | dirfd::Kind::Special => Err(Error::Input(format!(
            "{}: a socket, fifo or device cannot be backed up; move it out of the way and re-run",
            src.join(sname).display()
        ))),
    }
}

/// Backs up the recorded file `sname` in `src` as a hard link `dname` in
/// the backup (`dst`): no data copied, none to flush. The run never
/// writes into a file it replaces (every write is a temp renamed over it,
/// a removal a rename aside), so the linked inode keeps the recorded
/// content once it is out of the home. The file must still be the
/// recorded one, fingerprint and all, right before the link, and the same
/// inode, size and mtime after it; the link moves its ctime, so the
/// fingerprint it returns (as the link left it) is the one the run checks
/// before replacing the file. `None`, and the caller copies it: the file
/// has other names (another recorded path or a name outside the home
/// would go on sharing the backup's inode), or the file system cannot link
/// there (the backups on another one, no hard links, too many). A file
/// changed or linked again by the time it is linked fails the run (no
/// link stays). A link the run did not replace after all is made a copy
/// again by [`unshare_backup`].
fn link_backup(
    (src, sname): (&Dir, &str),
    (dst, dname): (&Dir, &str),
    rec: &Record,
) -> Result<Option<Fingerprint>> {
    let Some(fp) = rec.fp.as_deref() else {
        return Ok(None);
    };
    let single = |st: &Option<dirfd::Stat>, nlink: u64| {
        st.as_ref().is_some_and(|st| {
            st.kind == dirfd::Kind::File
                && st.nlink == nlink
                && st.fp.size == fp.size
                && st.fp.mtime_ns == fp.mtime_ns
                && st.fp.ino == fp.ino
        })
    };
    let before = src.stat(sname)?;
    if !before
        .as_ref()
        .is_some_and(|st| st.kind == dirfd::Kind::File && st.fp == *fp)
    {
        return Err(changed(src, sname));
    }
    if !single(&before, 1) {
        return Ok(None);
    }
    match src.hard_link_to(sname, dst, dname) {
        Ok(()) => {}
        Err(e)
            if [
                libc::EXDEV,
                libc::EPERM,
                libc::EOPNOTSUPP,
                libc::EMLINK,
                libc::ENOSYS,
            ]
            .contains(&e.raw_os_error().unwrap_or(0)) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(Error::io(dst.join(dname), e)),
    }
    let st = dst.stat(dname)?;
    if single(&st, 2) {
        return Ok(st.map(|st| st.fp));
    }
    // Changed or linked again meanwhile: no link stays, and the run stops
    // before it writes anything in the home.
    dst.unlink(dname)
        .map_err(|e| Error::io(dst.join(dname), e))?;
    Err(changed(src, sname))
}

/// Makes each hard link the backup `bdir` still shares with a live file
/// (see [`link_backup`]) a copy of its own (written under a temp name,
/// flushed, renamed over the link): a run that did not replace a file it
/// linked (its rollback, a restore that found the file already right)
/// leaves no backup an edit of the home reaches into. One `fstatat` per
/// recorded file.
fn unshare_backup(bdir: &Path, meta: &BackupMeta) -> Result<()> {
    let Some(files) = Dir::open(bdir)?.sub_opt(meta.layout.dir_name())? else {
        return Ok(());
    };
    let copies = Copies::of(bdir, meta);
    // The handle on the last directory looked in (`None`: the backup has
    // none there, so nothing of it is shared).
    let mut held: Option<(String, Option<Dir>)> = None;
    for (r, rec) in meta.records.iter().enumerate() {
        if rec.before != Before::File || !copies.takes_own(r) {
            continue;
        }
        let inner = copies.own_name(r);
        let (parent, name) = split(&inner);
        if !matches!(&held, Some((p, _)) if p == parent) {
            let d = if parent.is_empty() {
                Some(files.try_clone()?)
            } else {
                files.sub_opt(parent)?
            };
            held = Some((parent.to_string(), d));
        }
        let Some((_, Some(dir))) = &held else {
            continue;
        };
        match dir.stat(name)? {
            Some(st) if st.kind == dirfd::Kind::File && st.nlink > 1 => {
                let mut from = dir.open_read(name)?;
                write_at(dir, name, &meta.tmp_tag, st.mode, &mut |f| {
                    std::io::copy(&mut from, f).map(|_| ())
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes whatever is at `rel` (a link is removed, not followed).
fn remove_any(roots: &mut Roots, rel: &str) -> Result<()> {
    match roots.parent(rel)? {
        Some((dir, name)) => dir.remove_tree(&name),
        None => Ok(()),
    }
}

/// Writes `name` in `dir` atomically: a temp file beside it filled by
/// `fill`, fsynced, renamed over `name`, then the directory fsynced.
fn write_at(
    dir: &Dir,
    name: &str,
    tag: &str,
    mode: u32,
    fill: &mut dyn FnMut(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_name(name, tag);
    let mut f = create_temp(dir, name, &tmp, mode)?;
    let r = fill(&mut f).and_then(|()| f.sync_all());
    if let Err(e) = r.and_then(|()| dir.rename_to(&tmp, dir, name, Rename::Replace)) {
        let _ = dir.unlink(&tmp);
        return Err(Error::io(dir.join(name), e));
    }
    dir.sync()
}

/// The temp name of `name` for the run tagged `tag` (see [`fsutil::temp_path`]).
fn temp_name(name: &str, tag: &str) -> String {
    format!(".{name}.mosaic-tmp-{tag}")
}

/// Creates the temp file `tmp` in `dir`; a stale regular file of that very
/// name (the same run tag) is ours and replaced, anything else is refused.
fn create_temp(dir: &Dir, name: &str, tmp: &str, mode: u32) -> Result<std::fs::File> {
    match dir.create(tmp, mode) {
        Ok(f) => Ok(f),
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && dir.kind(tmp)? == dirfd::Kind::File =>
        {
            dir.unlink(tmp).map_err(|e| Error::io(dir.join(name), e))?;
            dir.create(tmp, mode)
                .map_err(|e| Error::io(dir.join(name), e))
        }
        Err(e) => Err(Error::io(dir.join(name), e)),
    }
}

/// Makes `rel` hold what `src` (a path in a backup) holds, or nothing,
/// leaving an identical file alone. A file is streamed, never held whole.
fn restore_path(roots: &mut Roots, src: Option<&Path>, rel: &str, tag: &str) -> Result<()> {
    let Some(src) = src else {
        return remove_any(roots, rel);
    };
    let (sdir, sname) = open_parent_of(src)?;
    let Some(sst) = sdir.stat(&sname)? else {
        return Err(Error::io(
            src,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    if sst.kind == dirfd::Kind::File {
        if let Some((dir, name)) = roots.parent(rel)? {
            match dir.stat(&name)? {
                Some(d)
                    if d.kind == dirfd::Kind::File
                        && d.mode == sst.mode
                        && d.fp.size == sst.fp.size
                        && hash_at(&dir, &name)? == hash_at(&sdir, &sname)? =>
                {
                    return Ok(());
                }
                Some(d) if d.kind == dirfd::Kind::File => {}
                Some(_) => dir.remove_tree(&name)?,
                None => {}
            }
        }
        let (dir, name) = roots.parent_made(rel, 0o755)?;
        let mut from = sdir.open_read(&sname)?;
        return write_at(&dir, &name, tag, sst.mode, &mut |f| {
            std::io::copy(&mut from, f).map(|_| ())
        });
    }
    remove_any(roots, rel)?;
    let (dir, name) = roots.parent_made(rel, 0o755)?;
    copy_tree_at(&sdir, &sname, &dir, &name)
}

/// sha256 of the file `name` in `dir`, read through the handle.
fn hash_at(dir: &Dir, name: &str) -> Result<crate::Sha256> {
    use sha2::Digest;
    let mut f = dir.open_read(name)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(dir.join(name), e))?;
    Ok(crate::Sha256::finish(h))
}

/// Writes `value` as one line of JSON, atomically, streamed (the record of
/// a 100,000-file install is megabytes).
fn write_json<T: Serialize>(path: &Path, value: &T, mode: u32) -> Result<()> {
    let mut bad = None;
    let written = fsutil::write_atomic_with(path, mode, &mut |w| {
        serde_json::to_writer(&mut *w, value).map_err(|e| {
            if !e.is_io() {
                bad = Some(e.to_string());
            }
            std::io::Error::from(e)
        })?;
        w.write_all(b"\n")
    });
    match (written, bad) {
        (Err(_), Some(e)) => Err(Error::Input(format!(
            "{}: cannot record ({e}); use paths that are valid UTF-8",
            path.display()
        ))),
        (r, _) => r,
    }
}

/// Name of the empty marker file in a backup directory whose existence
/// says the backup's record (`meta.json`) is complete. It is created only
/// after the complete record is durably in place, so it never claims more
/// than the record; [`sweep`] checks it with one `stat` instead of reading
/// and parsing the record (which lists every file the run touched).
pub const COMPLETE_MARKER: &str = "complete";

/// Writes the complete record `meta` of backup `bdir` (atomically, durably),
/// then its [`COMPLETE_MARKER`]. A crash between the two leaves a complete
/// record without the marker, which [`sweep`] reads once and marks.
fn write_complete(bdir: &Path, meta: &BackupMeta) -> Result<()> {
    debug_assert!(meta.complete);
    write_json(&bdir.join("meta.json"), meta, 0o600)?;
    failpoint::hit("before-complete-marker");
    mark_complete(bdir)
}

/// Creates the [`COMPLETE_MARKER`] of `bdir` (the record already says
/// complete). Not fsynced: a marker lost in a crash only costs one read of
/// the record at the next run.
fn mark_complete(bdir: &Path) -> Result<()> {
    let m = bdir.join(COMPLETE_MARKER);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&m)
        .map(drop)
        .at(&m)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        msg: e.to_string(),
        fix: "move it aside and re-run".to_string(),
    })
}

/// The outcome of an apply.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The backup directory, when anything was backed up or changed.
    pub backup: Option<PathBuf>,
    /// Edits saved while the run replaced or removed a file, and where in
    /// the backup each one is (one line each, for the output).
    pub warnings: Vec<String>,
}

/// What `op` leaves at its path (see [`Record::after`]); the record of a
/// path takes it from the last op on that path.
fn after_of(op: &Op<'_>) -> Result<Option<After>> {
    Ok(match op {
        Op::Write { sha256, .. } => Some(After::File(*sha256)),
        Op::Remove { .. } | Op::Restore { from: None, .. } => Some(After::Absent),
        Op::Restore {
            from: Some(from), ..
        } => match std::fs::symlink_metadata(from) {
            Ok(m) if m.is_file() => Some(After::File(fsutil::hash_file(from)?)),
            _ => None,
        },
        Op::RemoveDirIfEmpty { .. } => None,
    })
}

/// What the plan saw at a path, checked again when the transaction starts
/// (see [`apply_planned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Nothing was there.
    Absent,
    /// A regular file with this fingerprint.
    File(Fingerprint),
    /// A directory.
    Dir,
    /// A symlink.
    Symlink,
    /// Something else.
    Other,
}

/// Writes the next manifest of the generation it is given into the file it
/// is given (a fresh temp, atomically renamed into place once written and
/// flushed), so a large one is streamed, never held whole.
pub type ManifestWriter<'a> = &'a mut dyn FnMut(u64, &mut std::fs::File) -> Result<()>;

/// Applies `ops` transactionally, then, when `manifest` is given, writes the
/// manifest it produces (called after every op has landed, so it can stat
/// the results).
/// On any error the tree is restored and the error returned.
pub fn apply(
    paths: &Paths,
    locked: &Locked,
    ops: &[Op<'_>],
    info: &RunInfo,
    manifest: Option<ManifestWriter<'_>>,
) -> Result<Applied> {
    apply_planned(paths, locked, ops, &|_| None, info, manifest)
}

/// Like [`apply`], first checking every path an op is on against what the
/// plan saw there (`planned` of the path; `None`: not checked): a path
/// changed since (an edit saved between plan and apply) fails the run
/// before anything is written, and the edit stays.
pub fn apply_planned(
    paths: &Paths,
    _locked: &Locked,
    ops: &[Op<'_>],
    planned: &dyn Fn(&str) -> Option<Seen>,
    info: &RunInfo,
    manifest: Option<ManifestWriter<'_>>,
) -> Result<Applied> {
    let home = &paths.home;
    fsutil::mark_run_start();
    failpoint::pause("before-prepare");
    let mut roots = Roots::new(home)?;
    // --- prepare: what exists now, and which directories must be made.
    let removed: BTreeSet<&str> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Remove { rel } => Some(&**rel),
            _ => None,
        })
        .collect();
    let under_removed = |rel: &str| under(rel, &removed);
    let mut dir_kinds: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut mkdirs: BTreeSet<String> = BTreeSet::new();
    let mut records: Vec<Record> = Vec::with_capacity(ops.len() + 1);
    // The record of each op (`rec_of[i]` indexes `records`): an op on a
    // path an earlier op is on shares that one's.
    let links = op_links(ops)?;
    let mut rec_of: Vec<u32> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        // The first op on a path sees its state before the run; that is what
        // the backup must hold.
        let rel = op.rel();
        let link = links[i] as usize;
        if link < i {
            let r = rec_of[link];
            rec_of.push(r);
            // A path is backed up unless every op on it only removes an
            // empty directory.
            let rec = &mut records[r as usize];
            if rec.kind == RecKind::Rmdir {
                rec.kind = op.kind();
            }
            continue;
        }
        let last = &ops[link];
        rec_of.push(index_u32(records.len()));
        let inside = !rel.starts_with('/');
        let below_removed = inside && under_removed(rel);
        // A path below a missing directory is missing too: not looked up
        // again (on a fresh install that is every path).
        let mut below_absent = false;
        if inside && !below_removed {
            // Never act through a link or over a file standing where a
            // directory must be (the planner blocks these; this guards every
            // caller, rollback included).
            let mut idx = 0;
            while let Some(pos) = rel[idx..].find('/') {
                let anc = &rel[..idx + pos];
                let kind = match dir_kinds.get(anc) {
                    Some(k) => *k,
                    // Below a missing directory: missing too, not looked up
                    // (a fresh install's every directory was a failed open).
                    None if below_absent => {
                        dir_kinds.insert(anc.to_string(), "absent");
                        "absent"
                    }
                    None => {
                        let k = kind_of(&mut roots, anc)?;
                        dir_kinds.insert(anc.to_string(), k);
                        k
                    }
                };
                match kind {
                    "dir" => {}
                    "absent" => {
                        below_absent = true;
                        if matches!(op, Op::Write { .. } | Op::Restore { from: Some(_), .. }) {
                            mkdirs.insert(anc.to_string());
                        }
                    }
                    other => {
                        return Err(Error::Input(format!(
                            "{}: a {other} is in the way of {rel}; mosaic never writes through links: move it aside and re-run",
                            join_rel(home, anc).display()
                        )))
                    }
                }
                idx += pos + 1;
            }
        } else if below_removed {
            let mut idx = 0;
            while let Some(pos) = rel[idx..].find('/') {
                let anc = &rel[..idx + pos];
                if removed.contains(anc) || under_removed(anc) {
                    mkdirs.insert(anc.to_string());
                }
                idx += pos + 1;
            }
        }
        let (before, fp) = if below_removed || below_absent {
            ("absent", None)
        } else {
            stat_of(&mut roots, rel)?
        };
        if let Some(want) = planned(rel) {
            let same = match (want, before) {
                (Seen::Absent, "absent") | (Seen::Dir, "dir") | (Seen::Symlink, "symlink") => true,
                (Seen::File(a), "file") => Some(a) == fp,
                (Seen::Other, b) => !matches!(b, "absent" | "file" | "dir" | "symlink"),
                _ => false,
            };
            if !same {
                return Err(Error::RolledBack(Box::new(Error::Input(format!(
                    "{} changed after mosaic planned this run and was left as it is; re-run to plan again",
                    target(home, rel).display()
                )))));
            }
        }
        records.push(Record {
            rel: op.shared_rel().clone(),
            kind: op.kind(),
            before: Before::of(before),
            // Boxed: only a path that held a file has one, and a record is
            // held for each path a run writes (a fresh install: none).
            fp: fp.map(Box::new),
            after: after_of(last)?,
        });
    }
    // The prepare's own maps (a path each) are done with; the transaction
    // holds the records and the ops from here.
    drop((links, dir_kinds));
    if manifest.is_some() {
        records.push(Record {
            rel: MANIFEST_REL.into(),
            kind: RecKind::Manifest,
            before: Before::of(kind_of(&mut roots, MANIFEST_REL)?),
            fp: None,
            after: None,
        });
    }
    let (stamp, rfc) = utc_now();
    let from = info
        .from_version
        .clone()
        .unwrap_or_else(|| "none".to_string());
    std::fs::create_dir_all(paths.backups()).at(paths.backups())?;
    let mut id = format!("{stamp}-{from}-{}", info.to_version);
    let mut n = 1;
    while paths.backups().join(&id).exists() {
        n += 1;
        id = format!("{stamp}-{from}-{}.{n}", info.to_version);
    }
    let bdir = paths.backups().join(&id);
    let mut meta = BackupMeta {
        id: id.clone(),
        home: home.clone(),
        created: rfc,
        command: info.command.clone(),
        from_version: info.from_version.clone(),
        to_version: info.to_version.clone(),
        records,
        mkdirs: mkdirs.into_iter().collect(),
        complete: false,
        tmp_tag: format!("{}-{}", std::process::id(), &stamp[9..]),
        kind: info.kind,
        undone: false,
        layout: Layout::Flat,
        generation: if info.kind == Kind::Generation {
            next_generation(paths)?
        } else {
            0
        },
    };
    // Made under a hidden name and renamed into place once its record is
    // written: a crash in between leaves a `.partial-…` that [`sweep`]
    // removes, never a backup without a record.
    let partial = paths
        .backups()
        .join(format!(".partial-{id}-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .at(&partial)?;
    write_json(&partial.join("meta.json"), &meta, 0o600)?;
    std::fs::rename(&partial, &bdir).at(&bdir)?;
    fsutil::fsync_dir(&paths.backups())?;
    let journal = paths.journal();
    write_json(
        &journal,
        &Journal {
            backup: bdir.clone(),
            phase: Phase::Backup,
        },
        0o600,
    )?;

    // --- back up everything that exists and will be touched.
    let result = (|| -> Result<Vec<(usize, Fingerprint)>> {
        let bd = Dir::open(&bdir)?;
        let dir_name = meta.layout.dir_name();
        bd.mkdir(dir_name, 0o700)?;
        let root = bd.sub(dir_name)?;
        let copies = Copies::of(&bdir, &meta);
        // A recorded file is linked where it can be (see [`link_backup`]).
        let mut linked = Vec::new();
        for (r, rec) in meta.records.iter().enumerate() {
            // A recorded directory is copied whole: paths below it are covered.
            if !copies.takes_own(r) {
                continue;
            }
            // Flat: a name in `copies/`, no directory made.
            let name = copies.own_name(r);
            let (sub, dname) = split(&name);
            let mirror;
            let dst = if sub.is_empty() {
                &root
            } else {
                mirror = root.create_dirs(sub, 0o700)?.0;
                &mirror
            };
            let (src, sname) = roots.parent_must(&rec.rel)?;
            if rec.before == Before::File {
                if let Some(fp) = link_backup((&src, &sname), (dst, dname), rec)? {
                    linked.push((r, fp));
                    continue;
                }
            }
            copy_tree_at(&src, &sname, dst, dname)?;
        }
        bd.syncfs()?;
        Ok(linked)
    })();
    match result {
        Ok(linked) => {
            for (r, fp) in linked {
                meta.records[r].fp = Some(Box::new(fp));
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(&journal);
            let _ = discard_dir(&bdir);
            return Err(e);
        }
    }
    failpoint::hit("after-backup");
    write_json(
        &journal,
        &Journal {
            backup: bdir.clone(),
            phase: Phase::Apply,
        },
        0o600,
    )?;

    // --- apply.
    let mut warnings = Vec::new();
    let mut touched = Touched(vec![false; meta.records.len()]);
    let applied = apply_ops(
        &mut roots,
        &bdir,
        (ops, &rec_of),
        &meta,
        manifest,
        &mut warnings,
        &mut touched,
    );
    match applied {
        Ok(()) => {
            // The tree is updated. The record is marked complete first (while
            // the journal still exists a crash rolls the run back whatever
            // the record says), then the journal — the commit record — goes:
            // a crash never leaves a committed run without its record.
            if let Err(e) = unshare_backup(&bdir, &meta) {
                warnings.push(format!(
                    "the backup {} may share files with the home ({e}); copy it before editing those files in place",
                    bdir.display()
                ));
            }
            let mut done = meta;
            done.complete = true;
            let _ = write_complete(&bdir, &done);
            std::fs::remove_file(&journal).at(&journal)?;
            let _ = fsutil::fsync_dir(&paths.state);
            let _ = prune(paths);
            Ok(Applied {
                backup: Some(bdir),
                warnings,
            })
        }
        Err(first) => match restore_touched(home, &bdir, &meta, Some(&touched)) {
            Ok(kept) if kept.is_empty() && warnings.is_empty() => {
                let _ = discard_dir(&bdir);
                let _ = std::fs::remove_file(&journal);
                Err(Error::RolledBack(Box::new(first)))
            }
            Ok(kept) if kept.is_empty() => {
                // A late edit moved into the backup: keep it there.
                keep_backup(&journal, &bdir, meta);
                Err(Error::RolledBack(Box::new(Error::Input(format!(
                    "{first}; {}",
                    warnings.join("; ")
                )))))
            }
            Ok(kept) => {
                keep_backup(&journal, &bdir, meta);
                Err(Error::RollbackFailed {
                    first: Box::new(first),
                    second: Box::new(Error::Input(format!(
                        "{} changed during the run and {} kept as found",
                        kept.join(", "),
                        if kept.len() == 1 { "was" } else { "were" }
                    ))),
                    backup: bdir,
                })
            }
            Err(second) => Err(Error::RollbackFailed {
                first: Box::new(first),
                second: Box::new(second),
                backup: bdir,
            }),
        },
    }
}

/// The handle on the directory below a backup's `files/` that holds the
/// copy of `rel` (made when missing), and the copy's name.
fn backup_parent(files: &Dir, rel: &str) -> Result<(Dir, String)> {
    let inner = backup_inner(rel);
    let (dir, name) = split(&inner);
    let (d, _) = files.create_dirs(dir, 0o700)?;
    Ok((d, name.to_string()))
}

/// Where the backup keeps `rel`, below its `files/` (an absolute path
/// under `_abs/`).
fn backup_inner(rel: &str) -> std::borrow::Cow<'_, str> {
    match rel.strip_prefix('/') {
        Some(abs) => format!("_abs/{abs}").into(),
        None => rel.into(),
    }
}

/// Rewrites the manifest alone (a run whose only change is the manifest's
/// refreshed fingerprints): `write` streams it into a fresh temp, renamed
/// into place once written and flushed.
pub fn write_manifest(
    paths: &Paths,
    _locked: &Locked,
    write: &mut dyn FnMut(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    write_manifest_in(&mut Roots::new(&paths.home)?, write)
}

/// Writes the manifest through `write` into a temp beside it and renames it
/// into place; the writer's own error (not an I/O one) is kept as it is.
fn write_manifest_in(
    roots: &mut Roots,
    write: &mut dyn FnMut(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let (dir, name) = roots.parent_made(MANIFEST_REL, 0o700)?;
    let mut failed = None;
    let written = write_at(&dir, &name, &fsutil::unique_tag(), 0o600, &mut |f| {
        write(f).map_err(|e| {
            let io = std::io::Error::other(e.to_string());
            failed = Some(e);
            io
        })
    });
    match failed {
        Some(e) => Err(e),
        None => written,
    }
}

/// Keeps a backup that still holds pre-run copies of paths recovery left
/// alone: marked complete so `mosaic backups` lists it; the journal goes.
fn keep_backup(journal: &Path, bdir: &Path, mut meta: BackupMeta) {
    // Best effort, like the rest of this failure path: a link left shared
    // loses nothing (it holds the recorded content, as the home does).
    let _ = unshare_backup(bdir, &meta);
    meta.complete = true;
    let _ = write_complete(bdir, &meta);
    let _ = std::fs::remove_file(journal);
}

/// The files with other names whose recorded name the run has replaced or
/// removed (inode → the ctime that left them with): the run's own
/// exchange and unlink move the inode's ctime, which every other name
/// shares, so a recorded path that is another name of one of them (two
/// shipped files an operator hard-linked together) is still the recorded
/// file when it shows the recorded fingerprint with that ctime. Any change
/// since (an edit, a chmod) moves the ctime again and is caught.
#[derive(Default)]
struct Moved(BTreeMap<u64, i64>);

/// Fails when `name` in `dir` is no longer what the run found at `rec`
/// (checked through the handle, immediately before acting).
fn unchanged(
    dir: &Dir,
    name: &str,
    rec: &Record,
    expect_absent: bool,
    moved: &Moved,
) -> Result<()> {
    let st = dir.stat(name)?;
    let same = if expect_absent {
        st.is_none()
    } else {
        match rec.before {
            Before::File => match (st, rec.fp.as_deref()) {
                (Some(s), Some(fp)) if s.kind == dirfd::Kind::File => {
                    s.fp == *fp
                        || moved.0.get(&fp.ino).is_some_and(|&ctime| {
                            s.fp == Fingerprint {
                                ctime_ns: ctime,
                                ..*fp
                            }
                        })
                }
                _ => false,
            },
            Before::Absent => st.is_none(),
            _ => true,
        }
    };
    if same {
        Ok(())
    } else {
        Err(changed(dir, name))
    }
}

/// `name` in `dir` is no longer what the run found there.
fn changed(dir: &Dir, name: &str) -> Error {
    Error::Input(format!(
        "{} changed while mosaic was updating it; re-run once it is saved",
        dir.join(name).display()
    ))
}

/// After `tmp` in `dir` took the place of the recorded file of `rec` (an
/// exchange, or a rename aside for a removal), `tmp` holds what was really
/// there. The recorded file is dropped (the backup has its copy); anything
/// else, an edit saved after the last check, goes into the backup's
/// `late/`, and the returned line says where.
fn settle_replaced(
    dir: &Dir,
    tmp: &str,
    (rel, name, verb): (&str, &str, &str),
    rec: &Record,
    bdir: &Path,
    moved: &mut Moved,
) -> Result<Option<String>> {
    let st = dir.stat(tmp)?;
    // The rename itself moves the ctime: type, size, mtime and inode decide.
    let recorded = match (st, rec.fp.as_deref()) {
        (None, _) => return Ok(None),
        (Some(s), Some(fp)) => {
            s.kind == dirfd::Kind::File
                && s.fp.size == fp.size
                && s.fp.mtime_ns == fp.mtime_ns
                && s.fp.ino == fp.ino
        }
        (Some(_), None) => false,
    };
    if recorded {
        match st {
            // Its other names show the ctime the unlink leaves (another
            // recorded path among them is checked against it, see
            // [`Moved`]); a link into this run's backup is one of them.
            Some(s) if s.nlink > 1 => {
                let (ino, ctime) = dir
                    .unlink_seen(tmp)
                    .map_err(|e| Error::io(dir.join(name), e))?;
                if ino == s.fp.ino {
                    moved.0.insert(ino, ctime);
                }
            }
            _ => dir.unlink(tmp).map_err(|e| Error::io(dir.join(name), e))?,
        }
        return Ok(None);
    }
    let late = Dir::open(bdir)?;
    late.mkdir("late", 0o700)?;
    let late = late.sub("late")?;
    let (dst, dname) = backup_parent(&late, rel)?;
    let kept_at = dst.join(&dname);
    match dir.rename_to(tmp, &dst, &dname, Rename::NoReplace) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_tree_at(dir, tmp, &dst, &dname)?;
            dir.remove_tree(tmp)?;
        }
        Err(e) => return Err(Error::io(dir.join(name), e)),
    }
    dst.sync()?;
    Ok(Some(format!(
        "{} was saved while mosaic {verb} it; that copy is in the backup at {}",
        dir.join(name).display(),
        kept_at.display()
    )))
}

/// Renames the temp `tmp` of `rel` into place in `dir` (opened afresh
/// after every temp was written, see [`apply_ops`]): the path checked
/// against `rec` through it, then a rename that never replaces (a path that
/// was absent) or an exchange whose outcome is settled (see
/// [`settle_replaced`]).
#[allow(clippy::too_many_arguments)]
fn rename_one(
    (dir, name): (&Dir, &str),
    tmp: &str,
    rel: &str,
    rec: &Record,
    fresh: bool,
    bdir: &Path,
    warnings: &mut Vec<String>,
    touched: &mut bool,
    moved: &mut Moved,
) -> Result<()> {
    let replacing = !fresh && rec.before == Before::File;
    // Only a recorded file needs a look first; a path that must be absent
    // is checked by the rename itself (`RENAME_NOREPLACE` refuses anything
    // that appeared), and a recorded directory or link is not replaced here.
    failpoint::pause_at("before-check", rel);
    if replacing {
        unchanged(dir, name, rec, fresh, moved)?;
    }
    failpoint::pause_at("after-check", rel);
    if !replacing {
        // Absent when checked: a file created since is never replaced.
        let how = if fresh || rec.before == Before::Absent {
            Rename::NoReplace
        } else {
            Rename::Replace
        };
        if how == Rename::Replace {
            *touched = true;
        }
        match dir.rename_to(tmp, dir, name, how) {
            Ok(()) => {
                *touched = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Input(format!(
                    "{} appeared while mosaic was writing it and was left as it is; re-run once it is saved",
                    dir.join(name).display()
                )))
            }
            Err(e) => return Err(Error::io(dir.join(name), e)),
        }
        return Ok(());
    }
    // Swap atomically, then look at what came out: whatever was there at
    // that instant ends up in the file's place or in the backup.
    *touched = true;
    match dir.rename_to(tmp, dir, name, Rename::Exchange) {
        Ok(()) => warnings.extend(settle_replaced(
            dir,
            tmp,
            (rel, name, "replaced"),
            rec,
            bdir,
            moved,
        )?),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // A file system without RENAME_EXCHANGE: the check above is
            // the last word.
            dir.rename_to(tmp, dir, name, Rename::Replace)
                .map_err(|e| Error::io(dir.join(name), e))?;
        }
        Err(e) => return Err(Error::io(dir.join(name), e)),
    }
    Ok(())
}

/// The directory renames are going into: opened afresh once every temp is
/// written, for its run of renames (they come one directory after
/// another), and looked at again after the last of them.
struct Renaming<'r> {
    /// Its path below the home; `None` for an absolute path's directory
    /// (a root, opened for each rename).
    parent: Option<&'r str>,
    dir: Dir,
    /// The last path renamed into it, and how many were.
    last: &'r str,
    renames: usize,
}

impl<'r> Renaming<'r> {
    /// Opens the directory of `rel` afresh (never through a link); the
    /// name to rename to in it.
    fn open(roots: &mut Roots, rel: &'r str) -> Result<(Renaming<'r>, String)> {
        let (dir, name) = roots.parent_must(rel)?;
        let parent = (!rel.starts_with('/')).then(|| split(rel).0);
        Ok((
            Renaming {
                parent,
                dir,
                last: rel,
                renames: 0,
            },
            name,
        ))
    }

    /// Whether `rel` is renamed into this directory.
    fn holds(&self, rel: &str) -> bool {
        !rel.starts_with('/') && self.parent == Some(split(rel).0)
    }

    /// After its last rename: the path still leads to this very directory,
    /// through no link. A directory swapped for a link or moved while its
    /// files were renamed fails the run here (it rolls back), not silently.
    /// One rename right after the open is what a fresh open per file did:
    /// nothing more to check (a 1% update's files are mostly alone in their
    /// directories).
    fn done(self, roots: &mut Roots) -> Result<()> {
        let Some(parent) = self.parent else {
            return Ok(());
        };
        if self.renames < 2 {
            return Ok(());
        }
        let at = target(roots.home.path(), parent);
        let replaced = || {
            Error::Input(format!(
                "{} was replaced while mosaic was writing into it and was left as it is; re-run once it is back",
                at.display()
            ))
        };
        let now = match roots.parent(self.last)? {
            Some((now, _)) => now,
            // Moved away with nothing in its place.
            None => return Err(replaced()),
        };
        if !now.is_same_dir(&self.dir)? {
            return Err(replaced());
        }
        Ok(())
    }
}

/// A directory the run creates, the outermost of a new subtree: made under
/// its temp name (`.NAME.mosaic-tmp-TAG` beside its place), filled through
/// its handle (its subdirectories, and its files under their own names),
/// flushed with every other temp, then renamed into place whole: one
/// rename for the subtree instead of one per file (on a fresh install,
/// nearly every file). Until then nothing of it is at its place; a failed
/// or crashed run's is removed whole (see [`restore_touched`]).
struct Staged<'m> {
    /// Its path below the home.
    rel: &'m str,
    /// Its temp name in its parent.
    tmp: String,
    /// The directory itself (named by its place in messages).
    dir: Dir,
}

impl<'m> Staged<'m> {
    /// Makes the directory of `rel` under its temp name for the run
    /// tagged `tag`.
    fn make(roots: &mut Roots, rel: &'m str, tag: &str) -> Result<Staged<'m>> {
        let (parent, name) = roots.parent_must(rel)?;
        // Its place must be free now (it is again at the rename): nothing
        // is written for a directory that cannot go there.
        match parent.kind(&name)? {
            dirfd::Kind::Absent => {}
            dirfd::Kind::Dir => {
                return Err(Error::Input(format!(
                    "{} appeared while mosaic was writing it and was left as it is; re-run once it is saved",
                    parent.join(&name).display()
                )))
            }
            other => {
                return Err(Error::Input(format!(
                    "{}: a {} is in the way where mosaic creates a directory; mosaic never writes through links: move it aside and re-run",
                    parent.join(&name).display(),
                    kind_name(other)
                )))
            }
        }
        let tmp = temp_name(&name, tag);
        if !parent.mkdir(&tmp, 0o755)? {
            return Err(Error::Input(format!(
                "{}: a directory is in the way of the one mosaic makes for {}; move it aside and re-run",
                parent.join(&tmp).display(),
                target(roots.home.path(), rel).display()
            )));
        }
        let dir = parent.sub(&tmp)?.named(target(roots.home.path(), rel));
        Ok(Staged { rel, tmp, dir })
    }

    /// `rel` (a path below this directory) relative to it.
    fn below<'a>(&self, rel: &'a str) -> &'a str {
        &rel[self.rel.len() + 1..]
    }

    /// The handle on its directory `sub` (`""`: itself).
    fn open(&self, sub: &str) -> Result<Dir> {
        if sub.is_empty() {
            self.dir.try_clone()
        } else {
            self.dir.sub(sub)
        }
    }

    /// Renames it into place, in its parent opened afresh: its temp name
    /// must still lead to this very directory, its place must still be
    /// free (`RENAME_NOREPLACE`), and afterwards its path must lead to it
    /// through no link. `renamed` is set once it is at its place.
    fn rename(&self, roots: &mut Roots, renamed: &mut bool) -> Result<()> {
        let at = target(roots.home.path(), self.rel);
        let (parent, name) = roots.parent_must(self.rel)?;
        let ours = |d: Result<Option<Dir>>| -> Result<bool> {
            match d {
                Ok(Some(d)) => d.is_same_dir(&self.dir),
                Ok(None) | Err(Error::Input(_)) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let swapped = || {
            Error::Input(format!(
            "{} (the new directory {} being filled) was replaced while mosaic was writing into it and was left as it is; re-run",
            parent.join(&self.tmp).display(),
            at.display()
        ))
        };
        if !ours(parent.sub_opt(&self.tmp))? {
            return Err(swapped());
        }
        failpoint::pause_at("after-dir-check", self.rel);
        match parent.rename_dir_no_replace(&self.tmp, &name) {
            Ok(()) => *renamed = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Input(format!(
                    "{} appeared while mosaic was writing it and was left as it is; re-run once it is saved",
                    at.display()
                )))
            }
            Err(e) => return Err(Error::io(at, e)),
        }
        if !ours(roots.home.sub_opt(self.rel))? {
            // A link swapped in for the temp after the check above went
            // into place with the rename: it goes back to the temp name it
            // was put at, and nothing of the run is at the place.
            if parent.kind(&name)? == dirfd::Kind::Symlink
                && parent
                    .rename_to(&name, &parent, &self.tmp, Rename::NoReplace)
                    .is_ok()
            {
                *renamed = false;
                return Err(swapped());
            }
            return Err(Error::Input(format!(
                "{} was replaced while mosaic was writing into it and was left as it is; re-run once it is back",
                at.display()
            )));
        }
        Ok(())
    }

    /// Removes it after a failure, before it was renamed into place:
    /// through its parent while its temp name still leads to it, else (it
    /// was moved) emptied through its own handle.
    fn discard(&self, roots: &mut Roots) {
        if let Ok(Some((parent, _))) = roots.parent(self.rel) {
            if let Ok(Some(d)) = parent.sub_opt(&self.tmp) {
                if d.is_same_dir(&self.dir).unwrap_or(false) {
                    let _ = parent.remove_tree(&self.tmp);
                    return;
                }
            }
        }
        if let Ok(names) = self.dir.entries() {
            for n in names {
                let _ = self.dir.remove_tree(&n);
            }
        }
    }
}

/// The new subtree (index into the run's [`Staged`] list, keyed by its
/// path in `at`) that `rel` is below, if any.
fn staged_in(rel: &str, at: &BTreeMap<&str, u32>) -> Option<u32> {
    if at.is_empty() {
        return None;
    }
    let mut idx = 0;
    while let Some(pos) = rel[idx..].find('/') {
        if let Some(&s) = at.get(&rel[..idx + pos]) {
            return Some(s);
        }
        idx += pos + 1;
    }
    None
}

fn apply_ops(
    roots: &mut Roots,
    bdir: &Path,
    (ops, rec_of): (&[Op<'_>], &[u32]),
    meta: &BackupMeta,
    manifest: Option<ManifestWriter<'_>>,
    warnings: &mut Vec<String>,
    touched: &mut Touched,
) -> Result<()> {
    // The record of op `i`, and its index.
    let record = |i: usize| {
        let r = rec_of[i] as usize;
        (&meta.records[r], r)
    };
    let tag = meta.tmp_tag.as_str();
    failpoint::pause("before-apply");
    let mut moved = Moved::default();
    // Removals first: an obstacle must go before its replacement is written.
    let mut removed = BTreeSet::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Remove { rel } = op {
            let (rec, r) = record(i);
            if let Some((dir, name)) = roots.parent(rel)? {
                unchanged(&dir, &name, rec, false, &moved)?;
                touched.0[r] = true;
                if rec.before == Before::File {
                    // Aside first, then look at what really moved: an edit
                    // saved after the check goes into the backup.
                    let tmp = temp_name(&name, tag);
                    dir.rename_to(&name, &dir, &tmp, Rename::NoReplace)
                        .map_err(|e| Error::io(dir.join(&name), e))?;
                    warnings.extend(settle_replaced(
                        &dir,
                        &tmp,
                        (rel, &name, "removed"),
                        rec,
                        bdir,
                        &mut moved,
                    )?);
                } else {
                    dir.remove_tree(&name)?;
                }
            }
            removed.insert(&**rel);
        }
    }
    // Each new subtree is made under a temp name beside its place, filled
    // and renamed into place whole (see [`Staged`]); `staged_at` finds the
    // one a path is in.
    // Each holds a handle: past STAGED of them (an update adding many
    // directories to existing ones) the rest are made in place, their
    // files renamed one by one.
    const STAGED: usize = 64;
    let mut staged: Vec<Staged<'_>> = Vec::new();
    let mut staged_at: BTreeMap<&str, u32> = BTreeMap::new();
    for d in &meta.mkdirs {
        match staged_in(d, &staged_at) {
            Some(s) => {
                let s = &staged[s as usize];
                let (parent, name) = split(s.below(d));
                s.open(parent)?.mkdir(name, 0o755)?;
            }
            None if staged.len() < STAGED => {
                staged_at.insert(d, index_u32(staged.len()));
                staged.push(Staged::make(roots, d, tag)?);
            }
            None => {
                let (dir, name) = roots.parent_must(d)?;
                dir.mkdir(&name, 0o755)?;
            }
        }
    }
    // Writes: every temp first, one flush per file system, then the renames.
    // A file in a new subtree is written under its own name into the
    // subtree's temp directory (the subtree is the temp). The ops come in
    // path order, so siblings share one handle on their directory for the
    // temp writes (the renames below open it afresh). At
    // most HELD handles stay open (a home of 100,000 files in 12,000
    // directories must not run out of descriptors); a temp whose handle was
    // closed is removed on failure through a fresh lookup of its directory.
    const HELD: usize = 256;
    // (index of the op, index of its directory's handle, index of the new
    // subtree it is in or NOT_STAGED); the temp's name is derived again
    // from the path and the run tag, not held.
    const NOT_STAGED: u32 = u32::MAX;
    let writes = ops.iter().filter(|o| matches!(o, Op::Write { .. })).count();
    let mut temps: Vec<(u32, u32, u32)> = Vec::with_capacity(writes);
    // Handles on the framework tree's directories, for its files' content.
    let mut source: Option<(&Path, crate::scan::Lookup)> = None;
    let mut dirs: Vec<(String, Option<Dir>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Write {
            rel, bytes, mode, ..
        } = op
        {
            let (parent, name) = split(rel);
            let name = name.to_string();
            let inside = staged_in(rel, &staged_at);
            let shared = matches!(dirs.last(), Some((p, Some(_))) if p == parent);
            if !shared {
                let d = match inside {
                    Some(s) => {
                        let s = &staged[s as usize];
                        s.open(split(s.below(rel)).0)?
                    }
                    None => roots.parent_must(rel)?.0,
                };
                if dirs.len() >= HELD {
                    let old = dirs.len() - HELD;
                    dirs[old].1 = None;
                }
                dirs.push((parent.to_string(), Some(d)));
            }
            let at = dirs.len() - 1;
            let dir = dirs[at].1.as_ref().expect("the newest handle is held");
            let tmp = match inside {
                Some(_) => name.clone(),
                None => temp_name(&name, tag),
            };
            let mut f = create_temp(dir, &name, &tmp, *mode)?;
            let filled = match bytes {
                Payload::Bytes(b) => std::io::Write::write_all(&mut f, b),
                Payload::InTree { root, rel } => {
                    // Through handles on the tree's directories (a few
                    // held: the ops come in path order), never a full path.
                    let fresh = !matches!(&source, Some((r, _)) if r == root);
                    if fresh {
                        source = Some((*root, crate::scan::Lookup::new(root)?));
                    }
                    let (_, tree) = source.as_mut().expect("set above");
                    let mut src = tree.open_file(rel)?;
                    fsutil::copy_all(&mut src, &mut f).map(|_| ())
                }
                Payload::File(from) => {
                    let mut src = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(from)
                        .at(from)?;
                    fsutil::copy_all(&mut src, &mut f).map(|_| ())
                }
            };
            if let Err(e) = filled {
                let _ = dir.unlink(&tmp);
                return Err(Error::io(dir.join(&name), e));
            }
            // Both fit: `rec_of` has an entry per op in a u32, and there
            // are no more handles than ops.
            temps.push((index_u32(i), index_u32(at), inside.unwrap_or(NOT_STAGED)));
        }
    }
    if !temps.is_empty() || !staged.is_empty() {
        roots.sync()?;
    }
    failpoint::hit("before-rename");
    failpoint::pause("before-rename");
    let tmp_of = |rel: &str| temp_name(split(rel).1, tag);
    // The file temps from the `from`th on are removed through the handles
    // they were made with (one in a directory moved out of the home
    // meanwhile too); recovery would not find that one.
    let remove_temps = |roots: &mut Roots, from: usize| {
        for &(i, at, s) in temps.iter().skip(from) {
            if s != NOT_STAGED {
                continue;
            }
            let rel = ops[i as usize].rel();
            let tmp = &tmp_of(rel);
            match &dirs[at as usize].1 {
                Some(dir) => {
                    let _ = dir.unlink(tmp);
                }
                None => {
                    if let Ok(Some((dir, _))) = roots.parent(rel) {
                        let _ = dir.unlink(tmp);
                    }
                }
            }
        }
    };
    // The new subtrees first, each renamed into place whole; what is in
    // one is the run's once it is (recovery would undo it).
    let mut placed = 0u32;
    let mut failed = None;
    for s in &staged {
        failpoint::pause_at("before-dir-rename", s.rel);
        let mut renamed = false;
        let done = s.rename(roots, &mut renamed);
        placed += u32::from(renamed);
        if let Err(e) = done {
            failed = Some(e);
            break;
        }
    }
    if placed > 0 {
        for &(i, _, s) in &temps {
            if s < placed {
                touched.0[record(i as usize).1] = true;
            }
        }
    }
    if let Some(e) = failed {
        for s in &staged[placed as usize..] {
            s.discard(roots);
        }
        remove_temps(roots, 0);
        return Err(e);
    }
    let mut renaming: Option<Renaming<'_>> = None;
    for (k, &(i, _, s)) in temps.iter().enumerate() {
        let rel = ops[i as usize].rel();
        let tmp = &tmp_of(rel);
        if k == temps.len() / 2 {
            failpoint::hit("mid-apply");
        }
        if s != NOT_STAGED {
            continue;
        }
        let fresh = removed.contains(rel) || under(rel, &removed);
        let (rec, r) = record(i as usize);
        // Each directory is opened afresh, once all temps are written, for
        // the renames of its files: one swapped for a link since its temps
        // were written fails here, and nothing is renamed through it. The
        // renames act on the directory itself, never on what a link names,
        // and it is looked at again after the last of them (see
        // [`Renaming`]). (An open per file cost 20,000 syscalls of a
        // 10,000-file fresh install.)
        let opened = match renaming.take() {
            Some(held) if held.holds(rel) => Ok((held, split(rel).1.to_string())),
            before => before
                .map_or(Ok(()), |d| d.done(roots))
                .and_then(|()| Renaming::open(roots, rel)),
        };
        let done = opened.and_then(|(held, name)| {
            let held = renaming.insert(held);
            held.last = rel;
            held.renames += 1;
            rename_one(
                (&held.dir, &name),
                tmp,
                rel,
                rec,
                fresh,
                bdir,
                warnings,
                &mut touched.0[r],
                &mut moved,
            )
        });
        if let Err(e) = done {
            // The `k`th's own temp is gone once its rename was acted on
            // (touched says so); the rest are not renamed yet.
            remove_temps(roots, if touched.0[r] { k + 1 } else { k });
            return Err(e);
        }
    }
    if let Some(last) = renaming {
        last.done(roots)?;
    }
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Restore { rel, from } => {
                let (rec, r) = record(i);
                // Still what the run found (an edit since is never lost).
                if let Some((dir, name)) = roots.parent(rel)? {
                    unchanged(&dir, &name, rec, false, &moved)?;
                }
                touched.0[r] = true;
                restore_path(roots, from.as_deref(), rel, tag)?
            }
            Op::RemoveDirIfEmpty { rel } => {
                touched.0[record(i).1] = true;
                let Some((dir, name)) = roots.parent(rel)? else {
                    continue;
                };
                if dir.kind(&name)? != dirfd::Kind::Dir {
                    continue;
                }
                match dir.rmdir(&name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(Error::io(dir.join(&name), e)),
                }
            }
            _ => {}
        }
    }
    roots.sync()?;
    // Let go before the next manifest is built, the run's peak on a large
    // fresh install: each is a list or map of every written path.
    drop((temps, dirs, removed, staged, staged_at));
    failpoint::hit("before-manifest");
    failpoint::pause("before-manifest");
    let Some(manifest) = manifest else {
        return Ok(());
    };
    // The manifest's record is the last one (see `apply_planned`).
    if let Some(t) = touched.0.last_mut() {
        *t = true;
    }
    let generation = meta.generation;
    write_manifest_in(roots, &mut |f| manifest(generation, f))
}

/// Which of a run's records (by index) it has acted on so far: a failed
/// run restores only those.
struct Touched(Vec<bool>);

/// How each op is linked to the other ops on its path: for the first op on
/// a path, the index of the last one (its own when it is alone); for any
/// later op, the index of the first (always smaller than its own). Op
/// indices are sorted by path (stable, so of equal paths the earliest
/// leads): 8 bytes an op, where maps by path of the first record and of the
/// last op's outcome were 80.
fn op_links(ops: &[Op<'_>]) -> Result<Vec<u32>> {
    if u32::try_from(ops.len()).is_err() {
        return Err(Error::Input(format!(
            "{} operations in one run, more than mosaic can record; split the change",
            ops.len()
        )));
    }
    let mut by_path: Vec<u32> = (0..ops.len()).map(index_u32).collect();
    by_path.sort_by(|&a, &b| ops[a as usize].rel().cmp(ops[b as usize].rel()));
    let mut links: Vec<u32> = (0..ops.len()).map(index_u32).collect();
    for group in by_path.chunk_by(|&a, &b| ops[a as usize].rel() == ops[b as usize].rel()) {
        let (lead, rest) = (group[0], &group[1..]);
        for &i in rest {
            links[i as usize] = lead;
        }
        if let Some(&last) = rest.last() {
            links[lead as usize] = last;
        }
    }
    Ok(links)
}

/// An op or handle index, which fits a u32 (checked before the records are
/// made: no more than u32::MAX ops, see [`op_links`]).
fn index_u32(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 4 billion ops")
}

fn under(rel: &str, dirs: &BTreeSet<&str>) -> bool {
    fsutil::is_below_any(rel, dirs.iter().copied())
}

/// What is at a path, for comparing the tree with a backup.
#[derive(Debug, PartialEq, Eq)]
enum Now {
    Absent,
    File(crate::Sha256, u32),
    Dir,
    Link(PathBuf),
    Special,
}

/// What is at `name` in `dir` (`None`: its directory is missing).
fn now_at(dir: Option<&Dir>, name: &str) -> Result<Now> {
    let Some(dir) = dir else {
        return Ok(Now::Absent);
    };
    Ok(match dir.stat(name)? {
        None => Now::Absent,
        Some(st) => match st.kind {
            dirfd::Kind::Absent => Now::Absent,
            dirfd::Kind::Dir => Now::Dir,
            dirfd::Kind::Symlink => Now::Link(dir.readlink(name)?),
            dirfd::Kind::File => Now::File(hash_at(dir, name)?, st.mode),
            dirfd::Kind::Special => Now::Special,
        },
    })
}

/// Puts every recorded path back as the backup holds it, removes the run's
/// temps and the directories it created. A path that no longer holds what
/// the run left there (the operator changed it after a crash, or while the
/// run was failing), or that can only be reached through a link now, is
/// left as found; those paths are returned.
fn restore_from(home: &Path, bdir: &Path, meta: &BackupMeta) -> Result<Vec<String>> {
    restore_touched(home, bdir, meta, None)
}

/// [`restore_from`], for a failed run that knows which paths it `touched`
/// (`None` after a crash: every recorded path may have been): the others
/// still hold what the run found, and only their temps are removed.
fn restore_touched(
    home: &Path,
    bdir: &Path,
    meta: &BackupMeta,
    touched: Option<&Touched>,
) -> Result<Vec<String>> {
    let copies = Copies::of(bdir, meta);
    let mut roots = Roots::new(home)?;
    let mut kept = Vec::new();
    let tag = if meta.tmp_tag.is_empty() {
        fsutil::unique_tag()
    } else {
        meta.tmp_tag.clone()
    };
    for (r, rec) in meta.records.iter().enumerate().rev() {
        let path = target(home, &rec.rel);
        let untouched = touched.is_some_and(|t| !t.0[r]);
        let parent = match roots.parent(&rec.rel) {
            Ok(p) => p,
            // Reachable only through a link now, and the run never acted
            // there: nothing of the run's is there to undo.
            Err(Error::Input(_)) if untouched => continue,
            // A link swapped in on the way: never followed, left as found.
            Err(Error::Input(_)) => {
                kept.push(path.display().to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some((dir, name)) = &parent {
            if !meta.tmp_tag.is_empty() {
                let tmp = temp_name(name, &meta.tmp_tag);
                if dir.kind(&tmp)? == dirfd::Kind::File {
                    dir.unlink(&tmp).map_err(|e| Error::io(dir.join(&tmp), e))?;
                }
            }
        }
        if untouched {
            continue;
        }
        let backup = copies.path(&rec.rel);
        match rec.kind {
            RecKind::Rmdir => {
                if parent.is_some() && kind_of(&mut roots, &rec.rel)? == "absent" {
                    roots.home.create_dirs(&rec.rel, 0o755)?;
                }
                continue;
            }
            RecKind::Manifest => {
                if rec.before == Before::Absent {
                    remove_any(&mut roots, &rec.rel)?;
                } else {
                    restore_path(&mut roots, Some(&backup), &rec.rel, &tag)?;
                }
                continue;
            }
            _ => {}
        }
        let now = now_at(
            parent.as_ref().map(|(d, _)| d),
            parent.as_ref().map_or("", |p| &p.1),
        )?;
        let before = if rec.before == Before::Absent {
            Now::Absent
        } else {
            let (bd, bn) = open_parent_of(&backup)?;
            now_at(Some(&bd), &bn)?
        };
        if now == before {
            continue;
        }
        let ours = match rec.after {
            Some(After::Absent) => now == Now::Absent,
            Some(After::File(sha)) => matches!(&now, Now::File(h, _) if *h == sha),
            None => true,
        };
        if !ours {
            kept.push(path.display().to_string());
            continue;
        }
        if rec.before == Before::Absent {
            remove_any(&mut roots, &rec.rel)?;
        } else {
            restore_path(&mut roots, Some(&backup), &rec.rel, &tag)?;
        }
    }
    // A new subtree still under its temp name (the run failed or crashed
    // before renaming it into place) goes whole: all in it is the run's.
    if !meta.tmp_tag.is_empty() {
        let made: BTreeSet<&str> = meta.mkdirs.iter().map(|d| &**d).collect();
        for d in &meta.mkdirs {
            if made.contains(split(d).0) {
                continue;
            }
            if let Ok(Some((dir, name))) = roots.parent(d) {
                let tmp = temp_name(&name, &meta.tmp_tag);
                if dir.kind(&tmp)? == dirfd::Kind::Dir {
                    dir.remove_tree(&tmp)?;
                }
            }
        }
    }
    for d in meta.mkdirs.iter().rev() {
        if let Ok(Some((dir, name))) = roots.parent(d) {
            let _ = dir.rmdir(&name);
        }
    }
    roots.sync()?;
    Ok(kept)
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The backup id the interrupted run had made.
    pub id: String,
    /// Paths changed after the crash, left as found (their pre-run copies
    /// stay in that backup, which is kept).
    pub kept: Vec<String>,
}

/// Whether an interrupted run left its journal (read-only check).
pub fn journal_pending(paths: &Paths) -> bool {
    std::fs::symlink_metadata(paths.journal()).is_ok()
}

/// Why the pending journal would be refused by the next command that
/// writes, if it would (read-only check, for `status` and dry runs).
pub fn journal_problem(paths: &Paths) -> Option<String> {
    let journal = paths.journal();
    if std::fs::symlink_metadata(&journal).is_err() {
        return None;
    }
    read_journal(paths, &journal).err().map(|e| e.to_string())
}

/// A journal or backup record that fails validation: refused with what to
/// do, never acted on (SPEC §4.3 step 2).
fn refused(path: &Path, msg: String, bdir: Option<&Path>) -> Error {
    let fix = match bdir {
        Some(b) => format!(
            "mosaic did not act on it: check the home against {} and then remove {} by hand",
            b.display(),
            path.display()
        ),
        None => format!(
            "mosaic did not act on it: check the home, then remove {} by hand",
            path.display()
        ),
    };
    Error::Corrupt {
        path: path.to_path_buf(),
        msg,
        fix,
    }
}

/// A backup id as mosaic makes them: one plain name, never `.`/`..`.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
}

/// A relative path below the home with no `..`, `.`, empty or absolute part.
fn safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// Reads and validates the journal: the backup it names must be exactly
/// `STATE/backups/<one safe name>`, the phase one mosaic writes. Returns
/// the backup's id and the phase.
fn read_journal(paths: &Paths, journal: &Path) -> Result<(String, Phase)> {
    let bytes = std::fs::read(journal).at(journal)?;
    let j: Journal = serde_json::from_slice(&bytes).map_err(|e| {
        refused(
            journal,
            format!("an interrupted run's journal mosaic does not understand: {e}"),
            None,
        )
    })?;
    let name = j.backup.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent_ok = j
        .backup
        .parent()
        .is_some_and(|p| crate::paths::canonical(p) == paths.backups());
    if !parent_ok || !safe_name(name) || j.backup.file_name().is_none() {
        return Err(refused(
            journal,
            format!(
                "it names {} as its backup, which is not a directory of {}",
                j.backup.display(),
                paths.backups().display()
            ),
            None,
        ));
    }
    Ok((name.to_string(), j.phase))
}

/// Validates a backup record before recovery acts on it: it is this home's,
/// and every path is a safe relative path below the home or an absolute
/// path inside the active unit directory.
fn check_meta(paths: &Paths, meta: &BackupMeta, mpath: &Path, bdir: &Path) -> Result<()> {
    if !paths.is_this_home(&meta.home) {
        return Err(refused(
            mpath,
            format!(
                "it is the record of home {}, not {}",
                meta.home.display(),
                paths.home.display()
            ),
            Some(bdir),
        ));
    }
    let units = paths.units.as_path();
    let ok_abs = |rel: &str| {
        let p = Path::new(rel);
        p.is_absolute()
            && rel
                .split('/')
                .skip(1)
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && p.parent().is_some_and(|d| {
                d == units || crate::paths::canonical(d) == crate::paths::canonical(units)
            })
    };
    let bad = meta
        .records
        .iter()
        .map(|r| &*r.rel)
        .find(|rel| !(safe_rel(rel) || ok_abs(rel)))
        .or_else(|| {
            meta.mkdirs
                .iter()
                .map(String::as_str)
                .find(|rel| !safe_rel(rel))
        });
    if let Some(rel) = bad {
        return Err(refused(
            mpath,
            format!("it names {rel:?}, which is neither below the home nor in the active unit directory"),
            Some(bdir),
        ));
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// If a journal from an interrupted run exists, rolls the tree back to the
/// state before that run (SPEC §4.3 step 6). Every step is idempotent and
/// the commit record goes first: the tree is restored, then the journal is
/// removed (durably), then the backup is cleaned up, so a crash at any
/// point leaves either a journal that recovers again or nothing to do. A
/// journal whose backup is already gone is simply removed. A journal or
/// backup record that fails validation is refused, never acted on.
pub fn recover(paths: &Paths, _locked: &Locked) -> Result<Option<Recovered>> {
    let journal = paths.journal();
    match std::fs::symlink_metadata(&journal) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(journal, e)),
        Ok(_) => {}
    }
    let (id, phase) = read_journal(paths, &journal)?;
    let bdir = paths.backups().join(&id);
    let mpath = bdir.join("meta.json");
    let mut kept = Vec::new();
    if phase == Phase::Apply && std::fs::symlink_metadata(&mpath).is_ok() {
        let meta: BackupMeta = read_json(&mpath)?;
        check_meta(paths, &meta, &mpath, &bdir)?;
        kept = restore_from(&paths.home, &bdir, &meta)?;
        if !kept.is_empty() {
            // Keep the backup (it holds the earlier copies of what was kept),
            // listed, sharing no file with the home; then the commit
            // record goes.
            unshare_backup(&bdir, &meta)?;
            let mut done = meta;
            done.complete = true;
            write_complete(&bdir, &done)?;
            remove_if_present(&journal)?;
            fsutil::fsync_dir(&paths.state)?;
            return Ok(Some(Recovered { id, kept }));
        }
    }
    // The commit record first: once it is gone the run is settled.
    remove_if_present(&journal)?;
    fsutil::fsync_dir(&paths.state)?;
    failpoint::hit("recover-cleanup");
    match std::fs::symlink_metadata(&bdir) {
        Ok(m) if m.is_dir() => discard_dir(&bdir)?,
        _ => {}
    }
    Ok(Some(Recovered { id, kept }))
}

/// Removes a backup directory so that a crash midway leaves nothing that
/// looks like a backup: it is first renamed to `.trash-NAME-PID` (one atomic
/// step), then deleted; the next locked session finishes what a killed run
/// left (see [`trash_of_dead_runs`]).
pub fn discard_dir(dir: &Path) -> Result<()> {
    match retire(dir)? {
        Some(trash) => std::fs::remove_dir_all(&trash).at(&trash),
        None => Ok(()),
    }
}

/// Renames the backup directory `dir` to `.trash-NAME-PID` beside it (one
/// atomic step: no longer a backup, listed or rolled back to), and returns
/// that name (`None`: it was gone already). Deleting it is left to the next
/// locked session of another process (see [`trash_of_dead_runs`]).
fn retire(dir: &Path) -> Result<Option<PathBuf>> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(None);
    };
    let trash = parent.join(format!(
        ".trash-{}-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    match std::fs::rename(dir, &trash) {
        Ok(()) => Ok(Some(trash)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// The backups that runs now gone retired (see [`retire`], [`prune`]) or
/// were deleting when they died: `.trash-NAME-PID` below the backups
/// directory whose process is not running. Only garbage: nothing lists,
/// restores from or rolls back to a name starting with a dot. A locked
/// session deletes them on a helper thread while its run reads and plans
/// ([`crate::session`]).
pub fn trash_of_dead_runs(paths: &Paths, _locked: &Locked) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(paths.backups()) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            e.file_type().is_ok_and(|t| t.is_dir())
                && leftover_of_dead_run(&e.file_name().to_string_lossy(), ".trash-")
        })
        .map(|e| e.path())
        .collect()
}

/// Whether the pid embedded after `prefix` in a leftover's name is gone.
fn leftover_of_dead_run(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let pid = rest.rsplit('-').next().unwrap_or("");
    pid.parse::<u32>()
        .is_ok_and(|p| p != std::process::id() && !Path::new("/proc").join(p.to_string()).exists())
}

/// Cleans what crashed runs can leave behind that no journal covers, under
/// the lock: backup directories of this home that never completed and that
/// no journal points at (a crash between creating one and journalling it),
/// and the temp files of one-off atomic writes (`.NAME.mosaic-tmp-PID-N`)
/// in `H/.mosaic` and the state directory whose process is gone. A backup
/// directory without a readable record is only removed once it is an hour
/// old (it may belong to another home's run that is starting right now).
/// Retired backups are not its business ([`trash_of_dead_runs`]).
/// Returns what it removed; a failure to remove is not an error.
pub fn sweep(paths: &Paths, _locked: &Locked) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut journalled = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(&paths.state) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("journal-") && name.ends_with(".json") {
                if let Ok(j) = read_json::<Journal>(&e.path()) {
                    journalled.insert(j.backup);
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(paths.backups()) {
        for e in rd.flatten() {
            let dir = e.path();
            if journalled.contains(&dir) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            // Trash is deleted apart (see [`trash_of_dead_runs`]).
            if name.starts_with(".trash-") {
                continue;
            }
            let leftover = leftover_of_dead_run(&name, ".partial-");
            // A marked backup is complete: one stat, its record is not read.
            let orphan = !leftover
                && !name.starts_with('.')
                && std::fs::symlink_metadata(dir.join(COMPLETE_MARKER)).is_err()
                && match read_json::<BackupMeta>(&dir.join("meta.json")) {
                    Ok(meta) => {
                        if meta.complete {
                            // Made before the marker existed (or a crash
                            // came between the record and its marker).
                            let _ = mark_complete(&dir);
                        }
                        !meta.complete && meta.home == paths.home
                    }
                    Err(_) => e
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 3600),
                };
            if (leftover || orphan) && std::fs::remove_dir_all(&dir).is_ok() {
                removed.push(dir);
            }
        }
    }
    for dir in [
        paths.meta_dir(),
        paths.state.clone(),
        paths.backups(),
        paths.state.join("source-cache"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.split_once(".mosaic-tmp-").map(|(_, r)| r) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            let gone = pid.parse::<u32>().is_ok_and(|p| {
                p != std::process::id() && !Path::new("/proc").join(p.to_string()).exists()
            });
            if name.starts_with('.')
                && gone
                && e.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed.push(e.path());
            }
        }
    }
    removed
}

/// Complete backups of this home, newest first.
pub fn list(paths: &Paths) -> Result<Vec<BackupMeta>> {
    records(
        paths,
        |mp| read_json::<BackupMeta>(mp).ok(),
        |m| {
            m.kind = kind_of_record(m.kind, m.generation, &m.command);
            m.complete && paths.is_this_home(&m.home)
        },
        |m| &m.id,
    )
}

/// The records below the backups directory that `read` reads and `keep`
/// keeps (after fixing them up), newest first by `id`.
fn records<T>(
    paths: &Paths,
    read: impl Fn(&Path) -> Option<T>,
    keep: impl Fn(&mut T) -> bool,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<T>> {
    let dir = paths.backups();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.at(&dir)?;
        // A dot name is never a backup: one being made, or retired.
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        if let Some(mut r) = read(&entry.path().join("meta.json")) {
            if keep(&mut r) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| id(b).cmp(id(a)));
    Ok(out)
}

/// The kind of a record: records written before kinds existed say
/// nothing, and fleet commands' are edits.
fn kind_of_record(kind: Kind, generation: u64, command: &str) -> Kind {
    if generation == 0 && command.starts_with("fleet") {
        Kind::FleetEdit
    } else {
        kind
    }
}

/// What [`prune`] and [`next_generation`] need of a backup record: its
/// head, read without its records (a fresh install's lists every file of
/// the tree: megabytes that would otherwise be parsed into memory on every
/// run, at the run's peak).
#[derive(Debug, Deserialize)]
struct Head {
    id: String,
    home: PathBuf,
    complete: bool,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    generation: u64,
    command: String,
    // Required as in [`BackupMeta`] (a record missing them is no record),
    // skipped without being parsed into memory.
    #[allow(dead_code)]
    created: serde::de::IgnoredAny,
    #[allow(dead_code)]
    to_version: serde::de::IgnoredAny,
    #[allow(dead_code)]
    records: serde::de::IgnoredAny,
    #[allow(dead_code)]
    mkdirs: serde::de::IgnoredAny,
}

/// The heads of the complete records of this home, newest first (as
/// [`list`] orders them), each streamed from its file.
fn list_heads(paths: &Paths) -> Result<Vec<Head>> {
    records(
        paths,
        |mp| {
            let f = std::fs::File::open(mp).ok()?;
            let reader = std::io::BufReader::with_capacity(64 * 1024, f);
            serde_json::from_reader::<_, Head>(reader).ok()
        },
        |h| {
            h.kind = kind_of_record(h.kind, h.generation, &h.command);
            h.complete && paths.is_this_home(&h.home)
        },
        |h| &h.id,
    )
}

/// Marks fleet edit `id` as undone (so the next undo goes further back).
pub fn mark_undone(paths: &Paths, id: &str) -> Result<()> {
    let mp = paths.backups().join(id).join("meta.json");
    let mut meta: BackupMeta = read_json(&mp)?;
    meta.undone = true;
    write_json(&mp, &meta, 0o600)
}

/// Complete records of one kind for this home, newest first.
pub fn list_kind(paths: &Paths, kind: Kind) -> Result<Vec<BackupMeta>> {
    Ok(list(paths)?
        .into_iter()
        .filter(|m| m.kind == kind)
        .collect())
}

/// The number the next generation gets: one past the highest recorded in
/// the manifest or in a kept backup.
fn next_generation(paths: &Paths) -> Result<u64> {
    let in_manifest = crate::manifest::generation_of(&paths.manifest());
    let in_backups = list_heads(paths)?
        .iter()
        .filter(|h| h.kind == Kind::Generation)
        .map(|m| m.generation)
        .max()
        .unwrap_or(0);
    Ok(in_manifest.max(in_backups) + 1)
}

/// Keeps the last [`KEEP_GENERATIONS`] generations and the last
/// [`KEEP_FLEET_EDITS`] fleet edits, each counted on its own.
fn prune(paths: &Paths) -> Result<()> {
    let heads = list_heads(paths)?;
    for (kind, keep) in [
        (Kind::Generation, KEEP_GENERATIONS),
        (Kind::FleetEdit, KEEP_FLEET_EDITS),
        (Kind::Resolve, KEEP_FLEET_EDITS),
    ] {
        // Renamed aside at once; the data is deleted by the next run, while
        // it reads and plans (a backup's files and directories took a
        // third of a 1% update's time to delete, waiting on the disk).
        for old in heads.iter().filter(|h| h.kind == kind).skip(keep) {
            retire(&paths.backups().join(&old.id))?;
        }
    }
    // Incomplete backups and other leftovers are [`sweep`]'s, at the start
    // of every locked session.
    Ok(())
}

/// The operations that put the tree back as backup `meta` found it: first
/// what must go (deepest first), then what comes back (parents first), then
/// the directories the run created.
pub fn rollback_ops(paths: &Paths, meta: &BackupMeta) -> Vec<Op<'static>> {
    let copies = Copies::of(&paths.backups().join(&meta.id), meta);
    let mut ops = Vec::new();
    for rec in &meta.records {
        if rec.kind == RecKind::Manifest || rec.kind == RecKind::Rmdir {
            continue;
        }
        let from = (rec.before != Before::Absent).then(|| copies.path(&rec.rel));
        ops.push(Op::Restore {
            rel: rec.rel.clone(),
            from,
        });
    }
    let depth = |op: &Op<'_>| op.rel().matches('/').count();
    ops.sort_by(|a, b| match (a, b) {
        (Op::Restore { from: None, .. }, Op::Restore { from: Some(_), .. }) => {
            std::cmp::Ordering::Less
        }
        (Op::Restore { from: Some(_), .. }, Op::Restore { from: None, .. }) => {
            std::cmp::Ordering::Greater
        }
        (Op::Restore { from: None, .. }, _) => depth(b).cmp(&depth(a)),
        _ => depth(a).cmp(&depth(b)),
    });
    for d in meta.mkdirs.iter().rev() {
        ops.push(Op::RemoveDirIfEmpty {
            rel: d.as_str().into(),
        });
    }
    ops
}

/// The manifest bytes a backup holds (`None` when the run started without one).
pub fn backed_up_manifest(paths: &Paths, meta: &BackupMeta) -> Result<Option<Vec<u8>>> {
    let p = Copies::of(&paths.backups().join(&meta.id), meta).path(MANIFEST_REL);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p, e)),
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;

    #[test]
    fn copies_are_found_in_either_layout_and_below_a_recorded_directory() {
        let rec = |rel: &str, kind, before| Record {
            rel: rel.into(),
            kind,
            before,
            fp: None,
            after: None,
        };
        let json = serde_json::json!({
            "id": "x", "home": "/h", "created": "t", "command": "update",
            "from_version": null, "to_version": "1.0.0", "records": [],
            "mkdirs": [], "complete": true,
        });
        // A record written before the flat layout has none: mirrored.
        let mut meta: BackupMeta = serde_json::from_value(json).unwrap();
        assert_eq!(meta.layout, Layout::Tree);
        meta.records = vec![
            rec("a/b.md", RecKind::Write, Before::File),
            rec("t", RecKind::Remove, Before::Dir),
            rec("t/x/y.md", RecKind::Remove, Before::File),
            rec("new.md", RecKind::Write, Before::Absent),
            rec("gone", RecKind::Rmdir, Before::Dir),
            rec("/units/u.service", RecKind::Write, Before::File),
            rec("t/inner", RecKind::Remove, Before::Dir),
            rec(MANIFEST_REL, RecKind::Manifest, Before::File),
        ];
        let b = Path::new("/b");
        let tree = Copies::of(b, &meta);
        assert_eq!(tree.path("a/b.md"), Path::new("/b/files/a/b.md"));
        assert_eq!(tree.path("t/x/y.md"), Path::new("/b/files/t/x/y.md"));
        assert_eq!(
            tree.path("/units/u.service"),
            Path::new("/b/files/_abs/units/u.service")
        );
        meta.layout = Layout::Flat;
        let flat = Copies::of(b, &meta);
        assert_eq!(flat.path("a/b.md"), Path::new("/b/copies/0"));
        assert_eq!(flat.path("t"), Path::new("/b/copies/1"));
        // Below a recorded directory: in its copy, the outermost one.
        assert_eq!(flat.path("t/x/y.md"), Path::new("/b/copies/1/x/y.md"));
        assert_eq!(flat.path("t/inner/z"), Path::new("/b/copies/1/inner/z"));
        assert_eq!(flat.path("/units/u.service"), Path::new("/b/copies/5"));
        // The manifest's copy has a name an operator can find.
        assert_eq!(
            flat.path(MANIFEST_REL),
            Path::new("/b/copies/manifest.json")
        );
        // What the writer gives its own copy is where a reader looks.
        for (r, rec) in meta.records.iter().enumerate() {
            if flat.takes_own(r) {
                assert_eq!(flat.root.join(&*flat.own_name(r)), flat.path(&rec.rel));
            }
        }
        assert!(!flat.takes_own(2), "below a recorded directory");
        assert!(!flat.takes_own(3) && !flat.takes_own(4), "absent, rmdir");
        // No copy (absent before, a directory removal, never recorded).
        for rel in ["new.md", "gone", "other.md"] {
            assert_eq!(flat.path(rel), Path::new("/b/copies/none"), "{rel}");
        }
        let back: BackupMeta =
            serde_json::from_str(&serde_json::to_string(&meta).unwrap()).unwrap();
        assert_eq!(back.layout, Layout::Flat);
    }

    #[test]
    fn backup_ids_and_record_paths_are_validated() {
        assert!(safe_name("20261201T101010.000001Z-1.0.0-1.1.0.2"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "x\n"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_rel("fleet/roster.yaml"));
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/."] {
            assert!(!safe_rel(bad), "{bad:?}");
        }
    }

    #[test]
    fn phases_keep_their_on_disk_names_and_unknown_ones_do_not_parse() {
        let j = Journal {
            backup: PathBuf::from("/s/backups/x"),
            phase: Phase::Apply,
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"backup":"/s/backups/x","phase":"apply"}"#
        );
        let b: Journal = serde_json::from_str(r#"{"backup":"/b","phase":"backup"}"#).unwrap();
        assert_eq!(b.phase, Phase::Backup);
        assert!(serde_json::from_str::<Journal>(r#"{"backup":"/b","phase":"applied"}"#).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_on_a_path_share_the_first_ones_record_and_the_last_ones_outcome() {
        let ops: Vec<Op<'static>> = ["b", "a", "b/c", "a", "c", "b", "a"]
            .iter()
            .map(|r| Op::Remove { rel: (*r).into() })
            .collect();
        // "b" is at 0 and 5, "a" at 1, 3 and 6: each first op names its
        // path's last, each later op its path's first.
        assert_eq!(op_links(&ops).unwrap(), [5, 6, 2, 1, 4, 0, 1]);
        assert!(op_links(&[]).unwrap().is_empty());
    }
    use crate::session::Session;

    fn paths(t: &Path) -> Paths {
        std::fs::create_dir_all(t.join("home")).unwrap();
        Paths {
            home: t.join("home"),
            units: t.join("units"),
            state: t.join("state"),
            units_home: t.join("home"),
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            command: "test".into(),
            from_version: None,
            to_version: "1.0.0".into(),
            kind: Kind::Generation,
        }
    }

    fn write(rel: &str, bytes: &'static [u8]) -> Op<'static> {
        Op::Write {
            rel: rel.into(),
            bytes: Payload::Bytes(Cow::Borrowed(bytes)),
            mode: 0o644,
            sha256: crate::Sha256::of(bytes),
        }
    }

    #[test]
    fn a_link_on_the_way_is_refused_and_nothing_lands_outside() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        std::fs::create_dir_all(t.path().join("out")).unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), p.home.join("docs")).unwrap();
        let s = Session::lock(p.clone()).unwrap();
        let e = apply(&p, s.token(), &[write("docs/x.md", b"x")], &info(), None).unwrap_err();
        assert!(e.to_string().contains("docs"), "{e}");
        assert!(std::fs::read_dir(t.path().join("out"))
            .unwrap()
            .next()
            .is_none());
    }

    #[test]
    fn a_replaced_file_is_backed_up_and_a_restore_streams_it_back() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        std::fs::create_dir_all(p.home.join("a")).unwrap();
        let big = vec![7u8; 3 * 1024 * 1024];
        std::fs::write(p.home.join("a/f"), &big).unwrap();
        let s = Session::lock(p.clone()).unwrap();
        let done = apply(&p, s.token(), &[write("a/f", b"new")], &info(), None).unwrap();
        assert!(done.warnings.is_empty(), "{:?}", done.warnings);
        assert_eq!(std::fs::read(p.home.join("a/f")).unwrap(), b"new");
        // The committed backup carries its complete marker next to the record.
        let bdir = done.backup.clone().unwrap();
        assert!(bdir.join(COMPLETE_MARKER).is_file());
        let meta: BackupMeta = read_json(&bdir.join("meta.json")).unwrap();
        assert!(meta.complete);
        let meta = list(&p).unwrap().remove(0);
        let ops = rollback_ops(&p, &meta);
        apply(&p, s.token(), &ops, &info(), None).unwrap();
        assert_eq!(std::fs::read(p.home.join("a/f")).unwrap(), big);
    }

    #[test]
    fn a_path_two_ops_are_on_is_recorded_once_as_it_was_before_and_as_the_last_leaves_it() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        std::fs::create_dir_all(p.home.join("a")).unwrap();
        std::fs::write(p.home.join("a/f"), b"old").unwrap();
        let s = Session::lock(p.clone()).unwrap();
        // The first leaves nothing known (a file is no empty directory),
        // the last leaves the path absent.
        let ops = [
            Op::RemoveDirIfEmpty { rel: "a/f".into() },
            write("b", b"b"),
            Op::Restore {
                rel: "a/f".into(),
                from: None,
            },
        ];
        let done = apply(&p, s.token(), &ops, &info(), None).unwrap();
        assert!(!p.home.join("a/f").exists());
        let meta: BackupMeta = read_json(&done.backup.unwrap().join("meta.json")).unwrap();
        let recs: Vec<_> = meta.records.iter().filter(|r| &*r.rel == "a/f").collect();
        assert_eq!(recs.len(), 1, "{:?}", meta.records);
        assert_eq!(recs[0].before, Before::File);
        assert_eq!(recs[0].after, Some(After::Absent));
        // The backup holds what was there before the first op.
        let meta = list(&p).unwrap().remove(0);
        apply(&p, s.token(), &rollback_ops(&p, &meta), &info(), None).unwrap();
        assert_eq!(std::fs::read(p.home.join("a/f")).unwrap(), b"old");
    }

    #[test]
    fn sweep_removes_orphans_only() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        let s = Session::lock(p.clone()).unwrap();
        let b = p.backups();
        let meta = |id: &str, complete: bool, home: &Path| {
            std::fs::create_dir_all(b.join(id)).unwrap();
            let m = serde_json::json!({
                "id": id, "home": home, "created": "x", "command": "update",
                "from_version": null, "to_version": "1", "records": [],
                "mkdirs": [], "complete": complete,
            });
            std::fs::write(b.join(id).join("meta.json"), m.to_string()).unwrap();
        };
        meta("orphan", false, &p.home);
        meta("done", true, &p.home);
        meta("other-home", false, Path::new("/elsewhere"));
        meta("journalled", false, &p.home);
        std::fs::create_dir_all(b.join("fresh-without-record")).unwrap();
        write_json(
            &p.state.join("journal-0000.json"),
            &Journal {
                backup: b.join("journalled"),
                phase: Phase::Apply,
            },
            0o600,
        )
        .unwrap();
        let dead = p.meta_dir().join(".manifest.json.mosaic-tmp-0-1");
        let live = p.meta_dir().join(".manifest.json.mosaic-tmp-1-1");
        std::fs::write(&dead, "x").unwrap();
        std::fs::write(&live, "x").unwrap();
        let removed = sweep(&p, s.token());
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!b.join("orphan").exists() && !dead.exists());
        for kept in ["done", "other-home", "journalled", "fresh-without-record"] {
            assert!(b.join(kept).exists(), "{kept}");
        }
        assert!(live.exists(), "pid 1 is alive");
        // A complete record made before the marker existed is read once and
        // marked, so the next sweep does not read it again.
        assert!(b.join("done").join(COMPLETE_MARKER).exists());
        assert!(!b.join("other-home").join(COMPLETE_MARKER).exists());
    }

    #[test]
    fn sweep_trusts_the_complete_marker_without_reading_the_record() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        let s = Session::lock(p.clone()).unwrap();
        let dir = p.backups().join("marked");
        std::fs::create_dir_all(&dir).unwrap();
        // Unreadable as a record: were it read, it would count as a backup
        // without a record (removed once an hour old) — and a directory
        // mode 000 would not be readable at all. The marker alone decides.
        std::fs::write(dir.join("meta.json"), "{\"complete\": false, \"home\": ").unwrap();
        std::fs::write(dir.join(COMPLETE_MARKER), "").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let f = std::fs::File::open(&dir).unwrap();
        f.set_modified(old).unwrap();
        let removed = sweep(&p, s.token());
        assert!(removed.is_empty(), "{removed:?}");
        assert!(dir.join("meta.json").exists());
        // The same directory without its marker is swept (an old directory
        // without a readable record): the test above is about the marker.
        std::fs::remove_file(dir.join(COMPLETE_MARKER)).unwrap();
        let f = std::fs::File::open(&dir).unwrap();
        f.set_modified(old).unwrap();
        assert_eq!(sweep(&p, s.token()), vec![dir]);
    }
}
