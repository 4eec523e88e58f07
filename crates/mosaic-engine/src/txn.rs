//! The transactional executor (SPEC §4.3 steps 5–7): backs up everything it
//! will replace or remove, journals the run, applies the operations with
//! atomic writes, writes the manifest last, and on any error (or on the next
//! run after a crash) restores the tree from the backup. Also lists, prunes
//! and restores backups for `mosaic backups` / `mosaic rollback`.

use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fsutil::{self, join_rel, temp_path, Fingerprint};
use crate::paths::Paths;
use crate::session::Locked;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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
    /// Streamed from a file (a framework tree on disk), never held whole.
    File(&'a Path),
}

impl<'a> Payload<'a> {
    /// The payload of a source file.
    pub fn of(file: &'a crate::source::SourceFile) -> Payload<'a> {
        match &file.content {
            crate::source::Content::Static(b) => Payload::Bytes(Cow::Borrowed(b)),
            crate::source::Content::Owned(b) => Payload::Bytes(Cow::Borrowed(b)),
            crate::source::Content::File(p) => Payload::File(p),
        }
    }
}

/// One operation below the home.
#[derive(Debug, Clone)]
pub enum Op<'a> {
    /// Atomically write a file.
    Write {
        /// Relative path.
        rel: String,
        /// Content.
        bytes: Payload<'a>,
        /// Mode.
        mode: u32,
        /// sha256 of the content (how recovery recognises what it wrote).
        sha256: String,
    },
    /// Remove a file, a symlink (the link itself) or a directory tree.
    Remove {
        /// Relative path.
        rel: String,
    },
    /// Remove a directory if it is empty.
    RemoveDirIfEmpty {
        /// Relative path.
        rel: String,
    },
    /// Make `rel` what `from` holds (a file, link or tree), or absent.
    Restore {
        /// Relative path.
        rel: String,
        /// Source in a backup, or `None` for "absent".
        from: Option<PathBuf>,
    },
}

impl Op<'_> {
    /// The relative path the operation is about.
    pub fn rel(&self) -> &str {
        match self {
            Op::Write { rel, .. }
            | Op::Remove { rel }
            | Op::RemoveDirIfEmpty { rel }
            | Op::Restore { rel, .. } => rel,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Write { .. } => "write",
            Op::Remove { .. } => "remove",
            Op::RemoveDirIfEmpty { .. } => "rmdir",
            Op::Restore { .. } => "restore",
        }
    }
}

/// What was at one path before the run (as recorded in the backup).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Relative path below the home.
    pub rel: String,
    /// Operation kind (`write`, `remove`, `rmdir`, `restore`, `manifest`).
    pub kind: String,
    /// What was there before: `absent`, `file`, `dir`, `symlink`.
    pub before: String,
    /// The stat fingerprint of the file that was there (checked again right
    /// before it is replaced, so an edit made meanwhile is never lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<Fingerprint>,
    /// What the run leaves there: `absent`, or the sha256 of the file it
    /// writes; unset when unknown. Recovery only undoes a path that still
    /// holds what the run left, never a later edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
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

/// Where the backup copy of `rel` lives below a backup's `files/`.
pub fn backup_copy(files: &Path, rel: &str) -> PathBuf {
    match rel.strip_prefix('/') {
        Some(abs) => join_rel(&files.join("_abs"), abs),
        None => join_rel(files, rel),
    }
}

/// What is at `path` (never following a link) and, for a file, its fingerprint.
fn stat_of(path: &Path) -> Result<(&'static str, Option<Fingerprint>)> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(("symlink", None)),
        Ok(m) if m.is_dir() => Ok(("dir", None)),
        Ok(m) if m.is_file() => Ok(("file", Some(Fingerprint::of(&m)))),
        Ok(_) => Ok(("special", None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(("absent", None)),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(("absent", None)),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn kind_of(path: &Path) -> Result<&'static str> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok("symlink"),
        Ok(m) if m.is_dir() => Ok("dir"),
        Ok(_) => Ok("file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("absent"),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok("absent"),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Copies a file, symlink (as a link) or directory tree from `from` to `to`
/// (which must not exist), never following links.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).at(from)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).at(from)?;
        std::os::unix::fs::symlink(&target, to).at(to)?;
    } else if meta.is_dir() {
        std::fs::DirBuilder::new().mode(0o700).create(to).at(to)?;
        for entry in std::fs::read_dir(from).at(from)? {
            let entry = entry.at(from)?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions()).at(to)?;
    } else if meta.is_file() {
        std::fs::copy(from, to).at(to)?;
        std::fs::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )
        .at(to)?;
    } else {
        return Err(Error::Input(format!(
            "{}: a socket, fifo or device cannot be backed up; move it out of the way and re-run",
            from.display()
        )));
    }
    Ok(())
}

/// Removes whatever is at `path` (a link is removed, not followed).
fn remove_any(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).at(path),
        Ok(_) => std::fs::remove_file(path).at(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Makes `dst` hold what `src` holds (or nothing), leaving an identical file alone.
fn restore_path(src: Option<&Path>, dst: &Path) -> Result<()> {
    let Some(src) = src else {
        return remove_any(dst);
    };
    let sm = std::fs::symlink_metadata(src).at(src)?;
    if sm.is_file() {
        if let Ok(dm) = std::fs::symlink_metadata(dst) {
            if dm.is_file()
                && dm.permissions().mode() == sm.permissions().mode()
                && dm.len() == sm.len()
                && fsutil::hash_file(dst)? == fsutil::hash_file(src)?
            {
                return Ok(());
            }
        }
        let bytes = std::fs::read(src).at(src)?;
        remove_if_not_file(dst)?;
        if let Some(parent) = dst.parent() {
            fsutil::create_dirs(parent, 0o755)?;
        }
        return fsutil::write_atomic(dst, &bytes, sm.permissions().mode() & 0o7777);
    }
    remove_any(dst)?;
    if let Some(parent) = dst.parent() {
        fsutil::create_dirs(parent, 0o755)?;
    }
    copy_tree(src, dst)
}

fn remove_if_not_file(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => remove_any(path),
        Err(_) => Ok(()),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T, mode: u32) -> Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(|e| {
        Error::Input(format!(
            "{}: cannot record ({e}); use paths that are valid UTF-8",
            path.display()
        ))
    })?;
    bytes.push(b'\n');
    fsutil::write_atomic(path, &bytes, mode)
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
}

/// What the last op on each path leaves there (see [`Record::after`]).
fn afters(ops: &[Op<'_>]) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for op in ops {
        let after = match op {
            Op::Write { sha256, .. } => Some(sha256.clone()),
            Op::Remove { .. } | Op::Restore { from: None, .. } => Some("absent".to_string()),
            Op::Restore {
                from: Some(from), ..
            } => match std::fs::symlink_metadata(from) {
                Ok(m) if m.is_file() => Some(fsutil::hash_file(from)?),
                _ => None,
            },
            Op::RemoveDirIfEmpty { .. } => None,
        };
        out.insert(op.rel().to_string(), after);
    }
    Ok(out)
}

/// Applies `ops` transactionally, then, when `manifest` is given, writes the
/// manifest it produces (called after every op has landed, so it can stat
/// the results; `None` from it removes the manifest).
/// On any error the tree is restored and the error returned.
pub fn apply(
    paths: &Paths,
    _locked: &Locked,
    ops: &[Op<'_>],
    info: &RunInfo,
    manifest: Option<&mut dyn FnMut(u64) -> Result<Option<Vec<u8>>>>,
) -> Result<Applied> {
    let home = &paths.home;
    // --- prepare: what exists now, and which directories must be made.
    let removed: BTreeSet<&str> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Remove { rel } => Some(rel.as_str()),
            _ => None,
        })
        .collect();
    let under_removed = |rel: &str| under(rel, &removed);
    let mut dir_kinds: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut mkdirs: BTreeSet<String> = BTreeSet::new();
    let mut afters = afters(ops)?;
    let mut records = Vec::with_capacity(ops.len() + 1);
    let mut seen = BTreeSet::new();
    for op in ops {
        // The first op on a path sees its state before the run; that is what
        // the backup must hold.
        let rel = op.rel();
        if !seen.insert(rel) {
            continue;
        }
        let inside = !rel.starts_with('/');
        let below_removed = inside && under_removed(rel);
        if inside && !below_removed {
            // Never act through a link or over a file standing where a
            // directory must be (the planner blocks these; this guards every
            // caller, rollback included).
            let mut idx = 0;
            while let Some(pos) = rel[idx..].find('/') {
                let anc = &rel[..idx + pos];
                let kind = match dir_kinds.get(anc) {
                    Some(k) => *k,
                    None => {
                        let k = kind_of(&join_rel(home, anc))?;
                        dir_kinds.insert(anc.to_string(), k);
                        k
                    }
                };
                match kind {
                    "dir" => {}
                    "absent" => {
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
        let (before, fp) = if below_removed {
            ("absent", None)
        } else {
            stat_of(&target(home, rel))?
        };
        records.push(Record {
            rel: rel.to_string(),
            kind: op.kind().to_string(),
            before: before.to_string(),
            fp,
            after: afters.remove(rel).flatten(),
        });
    }
    if manifest.is_some() {
        records.push(Record {
            rel: MANIFEST_REL.to_string(),
            kind: "manifest".to_string(),
            before: kind_of(&paths.manifest())?.to_string(),
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
    let meta = BackupMeta {
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
        generation: if info.kind == Kind::Generation {
            next_generation(paths)?
        } else {
            0
        },
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&bdir)
        .at(&bdir)?;
    write_json(&bdir.join("meta.json"), &meta, 0o600)?;
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
    let files = bdir.join("files");
    let result = (|| -> Result<()> {
        // A recorded directory is copied whole: paths below it are covered.
        let trees: BTreeSet<&str> = meta
            .records
            .iter()
            .filter(|r| r.before == "dir" && r.kind != "rmdir")
            .map(|r| r.rel.as_str())
            .collect();
        for rec in &meta.records {
            if rec.before == "absent" || rec.kind == "rmdir" || under(&rec.rel, &trees) {
                continue;
            }
            let dst = backup_copy(&files, &rec.rel);
            fsutil::create_dirs(dst.parent().expect("below files/"), 0o700)?;
            copy_tree(&target(home, &rec.rel), &dst)?;
        }
        fsutil::syncfs(&bdir)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&bdir);
        let _ = std::fs::remove_file(&journal);
        return Err(e);
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
    match apply_ops(home, ops, &meta, manifest) {
        Ok(()) => {
            // The tree is updated: only the journal decides whether the next
            // run rolls back, so it goes first; the rest is bookkeeping.
            std::fs::remove_file(&journal).at(&journal)?;
            let _ = fsutil::fsync_dir(&paths.state);
            let mut done = meta;
            done.complete = true;
            let _ = write_json(&bdir.join("meta.json"), &done, 0o600);
            let _ = prune(paths);
            Ok(Applied { backup: Some(bdir) })
        }
        Err(first) => match restore_from(home, &bdir, &meta) {
            Ok(kept) if kept.is_empty() => {
                let _ = std::fs::remove_dir_all(&bdir);
                let _ = std::fs::remove_file(&journal);
                Err(Error::RolledBack(Box::new(first)))
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

/// Rewrites the manifest alone (a run whose only change is the manifest's
/// refreshed fingerprints).
pub fn write_manifest(paths: &Paths, _locked: &Locked, bytes: &[u8]) -> Result<()> {
    let mpath = paths.manifest();
    fsutil::create_dirs(mpath.parent().expect("below .mosaic"), 0o700)?;
    fsutil::write_atomic(&mpath, bytes, 0o600)
}

/// Keeps a backup that still holds pre-run copies of paths recovery left
/// alone: marked complete so `mosaic backups` lists it; the journal goes.
fn keep_backup(journal: &Path, bdir: &Path, mut meta: BackupMeta) {
    meta.complete = true;
    let _ = write_json(&bdir.join("meta.json"), &meta, 0o600);
    let _ = std::fs::remove_file(journal);
}

/// Fails when `path` is no longer what the run found there.
fn unchanged(path: &Path, rec: &Record) -> Result<()> {
    let (kind, fp) = stat_of(path)?;
    let same = match rec.before.as_str() {
        "file" => kind == "file" && fp == rec.fp,
        "absent" => kind == "absent",
        _ => true,
    };
    if same {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "{} changed while mosaic was updating it; re-run once it is saved",
            path.display()
        )))
    }
}

fn apply_ops(
    home: &Path,
    ops: &[Op<'_>],
    meta: &BackupMeta,
    manifest: Option<&mut dyn FnMut(u64) -> Result<Option<Vec<u8>>>>,
) -> Result<()> {
    let record: BTreeMap<&str, &Record> =
        meta.records.iter().map(|r| (r.rel.as_str(), r)).collect();
    // Removals first: an obstacle must go before its replacement is written.
    let mut removed = BTreeSet::new();
    for op in ops {
        if let Op::Remove { rel } = op {
            let path = target(home, rel);
            unchanged(&path, record[rel.as_str()])?;
            remove_any(&path)?;
            removed.insert(rel.as_str());
        }
    }
    for d in &meta.mkdirs {
        let p = join_rel(home, d);
        if kind_of(&p)? == "absent" {
            std::fs::DirBuilder::new().mode(0o755).create(&p).at(&p)?;
        }
    }
    // Writes: every temp first, one flush per file system, then the renames.
    let mut temps = Vec::new();
    let mut outside: BTreeSet<&Path> = BTreeSet::new();
    for op in ops {
        if let Op::Write {
            rel, bytes, mode, ..
        } = op
        {
            let path = target(home, rel);
            let tmp = match bytes {
                Payload::Bytes(b) => fsutil::write_temp(&path, &meta.tmp_tag, b, *mode, false)?,
                Payload::File(from) => fsutil::copy_temp(&path, &meta.tmp_tag, from, *mode, false)?,
            };
            if rel.starts_with('/') {
                outside.extend(Path::new(rel.as_str()).parent());
            }
            temps.push((tmp, path, rel.as_str()));
        }
    }
    if !temps.is_empty() {
        fsutil::syncfs(home)?;
        for dir in &outside {
            fsutil::syncfs(dir)?;
        }
    }
    failpoint::pause("before-rename");
    for (i, (tmp, path, rel)) in temps.iter().enumerate() {
        if i == temps.len() / 2 {
            failpoint::hit("mid-apply");
        }
        if !removed.contains(rel) && !under(rel, &removed) {
            unchanged(path, record[rel])?;
        }
        std::fs::rename(tmp, path).at(path)?;
    }
    for op in ops {
        match op {
            Op::Restore { rel, from } => restore_path(from.as_deref(), &target(home, rel))?,
            Op::RemoveDirIfEmpty { rel } => {
                let p = target(home, rel);
                if kind_of(&p)? != "dir" {
                    continue;
                }
                match std::fs::remove_dir(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
                    Err(e) => return Err(Error::io(p, e)),
                }
            }
            _ => {}
        }
    }
    fsutil::syncfs(home)?;
    for dir in outside {
        if dir.is_dir() {
            fsutil::fsync_dir(dir)?;
        }
    }
    failpoint::hit("before-manifest");
    let Some(manifest) = manifest else {
        return Ok(());
    };
    let mpath = join_rel(home, MANIFEST_REL);
    match manifest(meta.generation)? {
        Some(bytes) => {
            fsutil::create_dirs(mpath.parent().expect("below .mosaic"), 0o700)?;
            fsutil::write_atomic(&mpath, &bytes, 0o600)?;
        }
        None => remove_any(&mpath)?,
    }
    Ok(())
}

fn under(rel: &str, dirs: &BTreeSet<&str>) -> bool {
    fsutil::is_below_any(rel, dirs.iter().copied())
}

/// What is at a path, for comparing the tree with a backup.
#[derive(Debug, PartialEq, Eq)]
enum Now {
    Absent,
    File(String, u32),
    Dir,
    Link(PathBuf),
    Special,
}

fn now_at(path: &Path) -> Result<Now> {
    Ok(match stat_of(path)?.0 {
        "absent" => Now::Absent,
        "dir" => Now::Dir,
        "symlink" => Now::Link(std::fs::read_link(path).at(path)?),
        "file" => {
            let mode = std::fs::symlink_metadata(path)
                .at(path)?
                .permissions()
                .mode()
                & 0o7777;
            Now::File(fsutil::hash_file(path)?, mode)
        }
        _ => Now::Special,
    })
}

/// Puts every recorded path back as the backup holds it, removes the run's
/// temps and the directories it created. A path that no longer holds what
/// the run left there (the operator changed it after a crash, or while the
/// run was failing) is left as found; those paths are returned.
fn restore_from(home: &Path, bdir: &Path, meta: &BackupMeta) -> Result<Vec<String>> {
    let files = bdir.join("files");
    let mut kept = Vec::new();
    for rec in meta.records.iter().rev() {
        let path = target(home, &rec.rel);
        if !meta.tmp_tag.is_empty() {
            let tmp = temp_path(&path, &meta.tmp_tag);
            if std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&tmp).at(&tmp)?;
            }
        }
        let backup = backup_copy(&files, &rec.rel);
        match rec.kind.as_str() {
            "rmdir" => {
                if kind_of(&path)? == "absent" {
                    fsutil::create_dirs(&path, 0o755)?;
                }
                continue;
            }
            "manifest" => {
                if rec.before == "absent" {
                    remove_any(&path)?;
                } else {
                    restore_path(Some(&backup), &path)?;
                }
                continue;
            }
            _ => {}
        }
        let now = now_at(&path)?;
        let before = if rec.before == "absent" {
            Now::Absent
        } else {
            now_at(&backup)?
        };
        if now == before {
            continue;
        }
        let ours = match rec.after.as_deref() {
            Some("absent") => now == Now::Absent,
            Some(sha) => matches!(&now, Now::File(h, _) if h == sha),
            None => true,
        };
        if !ours {
            kept.push(path.display().to_string());
            continue;
        }
        if rec.before == "absent" {
            remove_any(&path)?;
        } else {
            restore_path(Some(&backup), &path)?;
        }
    }
    for d in meta.mkdirs.iter().rev() {
        let _ = std::fs::remove_dir(join_rel(home, d));
    }
    fsutil::syncfs(home)?;
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
        .map(|r| r.rel.as_str())
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
            // listed; then the commit record goes.
            let mut done = meta;
            done.complete = true;
            write_json(&mpath, &done, 0o600)?;
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
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&bdir).at(&bdir)?,
        _ => {}
    }
    Ok(Some(Recovered { id, kept }))
}

/// Complete backups of this home, newest first.
pub fn list(paths: &Paths) -> Result<Vec<BackupMeta>> {
    let dir = paths.backups();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.at(&dir)?;
        let mp = entry.path().join("meta.json");
        let Ok(mut meta) = read_json::<BackupMeta>(&mp) else {
            continue;
        };
        // Records written before kinds existed: fleet commands' are edits.
        if meta.generation == 0 && meta.command.starts_with("fleet") {
            meta.kind = Kind::FleetEdit;
        }
        if meta.complete && paths.is_this_home(&meta.home) {
            out.push(meta);
        }
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
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
    let in_manifest = crate::manifest::Manifest::load(&paths.manifest())
        .ok()
        .flatten()
        .map(|m| m.generation)
        .unwrap_or(0);
    let in_backups = list_kind(paths, Kind::Generation)?
        .iter()
        .map(|m| m.generation)
        .max()
        .unwrap_or(0);
    Ok(in_manifest.max(in_backups) + 1)
}

/// Keeps the last [`KEEP_GENERATIONS`] generations and the last
/// [`KEEP_FLEET_EDITS`] fleet edits, each counted on its own.
fn prune(paths: &Paths) -> Result<()> {
    for (kind, keep) in [
        (Kind::Generation, KEEP_GENERATIONS),
        (Kind::FleetEdit, KEEP_FLEET_EDITS),
        (Kind::Resolve, KEEP_FLEET_EDITS),
    ] {
        for old in list_kind(paths, kind)?.into_iter().skip(keep) {
            let d = paths.backups().join(&old.id);
            std::fs::remove_dir_all(&d).at(&d)?;
        }
    }
    sweep_orphans(paths)
}

/// Removes this home's incomplete backups that no journal names: what a
/// crash during recovery's cleanup leaves (the journal, the commit record,
/// went first). Only under the lock, only when this home has no journal,
/// and only records of exactly this home's canonical path.
fn sweep_orphans(paths: &Paths) -> Result<()> {
    if journal_pending(paths) {
        return Ok(());
    }
    let dir = paths.backups();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in rd.flatten() {
        let Ok(meta) = read_json::<BackupMeta>(&entry.path().join("meta.json")) else {
            continue;
        };
        let name = entry.file_name();
        if !meta.complete && meta.home == paths.home && name.to_str() == Some(meta.id.as_str()) {
            let d = entry.path();
            std::fs::remove_dir_all(&d).at(&d)?;
        }
    }
    Ok(())
}

/// The operations that put the tree back as backup `meta` found it: first
/// what must go (deepest first), then what comes back (parents first), then
/// the directories the run created.
pub fn rollback_ops(paths: &Paths, meta: &BackupMeta) -> Vec<Op<'static>> {
    let files = paths.backups().join(&meta.id).join("files");
    let mut ops = Vec::new();
    for rec in &meta.records {
        if rec.kind == "manifest" || rec.kind == "rmdir" {
            continue;
        }
        let from = (rec.before != "absent").then(|| backup_copy(&files, &rec.rel));
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
        ops.push(Op::RemoveDirIfEmpty { rel: d.clone() });
    }
    ops
}

/// The manifest bytes a backup holds (`None` when the run started without one).
pub fn backed_up_manifest(paths: &Paths, meta: &BackupMeta) -> Result<Option<Vec<u8>>> {
    let p = join_rel(&paths.backups().join(&meta.id).join("files"), MANIFEST_REL);
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
