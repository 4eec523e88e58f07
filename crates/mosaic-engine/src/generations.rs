//! Generations and fleet-edit history (SPEC §4.3 step 7).
//!
//! Every install, update and rollback that changes the tree is a numbered
//! generation: its backup record carries the number and the manifest it
//! wrote carries it too. `mosaic rollback [GEN]` undoes one generation
//! (default: the last) by planning a sync *towards the generation before
//! it*, with the same three-way rules as an update: the previous shipped
//! files come from the generation's backup (or, where the two generations
//! agree, from this binary's tree or the untouched file on disk); files the
//! operator changed or added since are kept, a conflict goes beside as
//! `.mosaic-new`, preserved files (the roster) are never touched, and the
//! manifest is rewritten, never deleted. The rollback is itself a generation.
//!
//! Fleet edits (roster, env files) are their own history: `mosaic fleet
//! undo` puts back what the last edit replaced, path by path, only where
//! the file still holds what the edit wrote.

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{hash_file, join_rel, Fingerprint};
use crate::manifest::Manifest;
use crate::paths::Paths;
use crate::session::{Locked, Session};
use crate::source::{Content, Source, SourceFile};
use crate::sync::{self, SyncOptions, SyncPlan, World};
use crate::txn::{self, BackupMeta, Kind, Op, RunInfo};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The generation record `GEN` names (a number, or a backup id), or the
/// last generation when `None`.
pub fn find_generation(paths: &Paths, which: Option<&str>) -> Result<BackupMeta> {
    let gens = txn::list_kind(paths, Kind::Generation)?;
    let home = paths.home.display();
    match which {
        None => gens.into_iter().next().ok_or_else(|| {
            Error::Input(format!(
                "no generation of {home} to roll back; see `mosaic backups`"
            ))
        }),
        Some(w) => {
            let by_number = w.parse::<u64>().ok();
            gens.into_iter()
                .find(|g| Some(g.generation) == by_number || g.id == w)
                .ok_or_else(|| {
                    Error::Input(format!(
                        "no generation {w:?} of {home} is kept; list them with `mosaic backups`"
                    ))
                })
        }
    }
}

/// Plans `mosaic rollback [GEN]`: a sync from the current tree towards the
/// generation before `GEN`. Nothing is written.
pub fn plan_rollback<'s, A>(
    session: &'s Session<A>,
    which: Option<&str>,
    conflict: crate::plan::ConflictMode,
    current: Source,
) -> Result<SyncPlan<'s, A>> {
    let paths = &session.paths;
    let meta = find_generation(paths, which)?;
    let Some(prev_bytes) = txn::backed_up_manifest(paths, &meta)? else {
        return Err(Error::Input(format!(
            "generation {} ({} {}) was the first install of {}; there is no earlier generation to go back to",
            meta.generation,
            meta.command,
            meta.to_version,
            paths.home.display()
        )));
    };
    let prev = Manifest::parse(&paths.manifest(), &prev_bytes)?;
    let now = Manifest::load(&paths.manifest())?.ok_or_else(|| {
        Error::Input(format!(
            "no manifest at {}; run `mosaic install` first",
            paths.manifest().display()
        ))
    })?;
    let source = previous_source(paths, &meta, &prev, &now, &current)?;
    let opts = SyncOptions {
        dry_run: false,
        conflict,
        allow_downgrade: true,
        command: "rollback".to_string(),
        relaunch: false,
        rollback: true,
        units_for_other_home: false,
    };
    let mut source = Some(source);
    let mut plan = sync::plan_sync(session, &opts, &NoTmux, &mut |_| {
        Ok(source.take().expect("loaded once"))
    })?;
    plan.report.rolled_back = Some(meta.generation);
    Ok(plan)
}

struct NoTmux;
impl World for NoTmux {
    fn legacy_sessions(&self) -> crate::error::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The shipped tree of the generation before `meta`, as far as its bytes
/// can be had: from the backup (what `meta`'s run replaced or deleted), or,
/// where the two generations agree, from this binary's tree or the file on
/// disk that the manifest saw untouched. Paths whose bytes cannot be had
/// are left out (the planner then keeps the file as it is).
fn previous_source(
    paths: &Paths,
    meta: &BackupMeta,
    prev: &Manifest,
    now: &Manifest,
    current: &Source,
) -> Result<Source> {
    let copies = txn::Copies::of(&paths.backups().join(&meta.id), meta);
    let mut files = BTreeMap::new();
    for (rel, e) in &prev.files {
        let backup = copies.path(rel);
        let from_backup = std::fs::symlink_metadata(&backup)
            .is_ok_and(|m| m.is_file())
            .then(|| hash_file(&backup))
            .transpose()?
            .filter(|h| *h == e.sha256)
            .map(|_| Content::File(backup));
        let from_current = || {
            current
                .files
                .get(rel)
                .filter(|s| s.sha256 == e.sha256)
                .map(|s| s.content.clone())
        };
        let from_disk = || -> Option<Content> {
            let n = now.files.get(rel)?;
            if n.sha256 != e.sha256 {
                return None;
            }
            let path = join_rel(&paths.home, rel);
            let m = std::fs::symlink_metadata(&path).ok()?;
            if !m.is_file() {
                return None;
            }
            // A fingerprint the manifest could not trust (racily clean) is
            // settled by reading the file.
            let seen = n
                .observed
                .as_ref()
                .is_some_and(|obs| Fingerprint::of(&m) == obs.fp && obs.sha256 == e.sha256);
            (seen || hash_file(&path).is_ok_and(|h| h == e.sha256)).then_some(Content::File(path))
        };
        if let Some(content) = from_backup.or_else(from_current).or_else(from_disk) {
            files.insert(
                rel.clone(),
                SourceFile {
                    sha256: e.sha256,
                    mode: e.mode,
                    content,
                },
            );
        }
    }
    Ok(Source {
        version: prev.version.clone(),
        files: files.into_iter().collect(),
    })
}

/// What `mosaic fleet undo` did (or would do).
#[derive(Debug, Clone, Serialize, Default)]
pub struct UndoOutcome {
    /// The fleet edit undone.
    pub id: String,
    /// The command that made it (`fleet add`, `fleet install`, …).
    pub command: String,
    /// Paths put back as they were before the edit.
    pub restored: Vec<String>,
    /// Paths that changed after the edit and were kept as they are.
    pub kept: Vec<String>,
}

fn last_fleet_edit(paths: &Paths) -> Result<BackupMeta> {
    txn::list_kind(paths, Kind::FleetEdit)?
        .into_iter()
        .find(|m| m.command != "fleet undo" && !m.undone)
        .ok_or_else(|| {
            Error::Input(format!(
                "no fleet edit of {} to undo; fleet edits are recorded by `mosaic fleet init/add/remove/install`",
                paths.home.display()
            ))
        })
}

/// Decides the undo of the last fleet edit: each path it wrote goes back to
/// its backed-up copy (or away, if the edit created it) when it still holds
/// what the edit wrote.
/// Each path to put back, with its backed-up copy (`None`: remove it).
type Restores = Vec<(crate::Rel, Option<PathBuf>)>;

fn decide_undo(paths: &Paths) -> Result<(UndoOutcome, Restores)> {
    let meta = last_fleet_edit(paths)?;
    let copies = txn::Copies::of(&paths.backups().join(&meta.id), &meta);
    let mut out = UndoOutcome {
        id: meta.id.clone(),
        command: meta.command.clone(),
        ..UndoOutcome::default()
    };
    let mut restores = Vec::new();
    for rec in &meta.records {
        if rec.kind != txn::RecKind::Write {
            continue;
        }
        let path = txn::target(&paths.home, &rec.rel);
        let holds_ours = match (&rec.after, std::fs::symlink_metadata(&path)) {
            (Some(txn::After::File(sha)), Ok(m)) if m.is_file() => hash_file(&path)? == *sha,
            _ => false,
        };
        if !holds_ours {
            out.kept.push(path.display().to_string());
            continue;
        }
        let from = (rec.before != txn::Before::Absent).then(|| copies.path(&rec.rel));
        if let Some(f) = &from {
            std::fs::symlink_metadata(f).at(f)?;
        }
        out.restored.push(path.display().to_string());
        restores.push((rec.rel.clone(), from));
    }
    Ok((out, restores))
}

/// `mosaic fleet undo --dry-run`: what the undo would do.
pub fn plan_undo_fleet_edit<A>(session: &Session<A>) -> Result<UndoOutcome> {
    Ok(decide_undo(&session.paths)?.0)
}

/// `mosaic fleet undo`: undoes the last fleet edit as a transaction of its
/// own (recorded as a fleet edit, so it can itself be inspected).
pub fn undo_fleet_edit(session: &Session<Locked>) -> Result<UndoOutcome> {
    let paths = &session.paths;
    let (out, restores) = decide_undo(paths)?;
    let ops: Vec<Op<'static>> = restores
        .into_iter()
        .map(|(rel, from)| Op::Restore { rel, from })
        .collect();
    if !ops.is_empty() {
        let version = Manifest::load(&paths.manifest())?
            .map(|m| m.version.to_string())
            .unwrap_or_else(|| "none".to_string());
        let info = RunInfo {
            command: "fleet undo".to_string(),
            from_version: Some(version.clone()),
            to_version: version,
            kind: Kind::FleetEdit,
        };
        txn::apply(paths, session.token(), &ops, &info, None)?;
        // The undone edit is spent: mark it so a second undo goes further back.
        txn::mark_undone(paths, &out.id)?;
    }
    Ok(out)
}

/// How `mosaic resolve` settles a pending conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Keep your file; drop the release's `PATH.mosaic-new` (backed up).
    Keep,
    /// Take the release's copy: your file is backed up and replaced.
    Take,
}

/// What `mosaic resolve` does (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct ResolveOutcome {
    /// The path settled, relative to the home.
    pub path: String,
    /// How.
    pub resolution: Resolution,
    /// The backup holding what was replaced or removed (after a real run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

fn check_resolve(paths: &Paths, rel: &str) -> Result<(String, Vec<u8>, u32)> {
    let rel = rel.trim_end_matches('/').to_string();
    if !crate::manifest::is_safe_rel(&rel) {
        return Err(Error::Input(format!(
            "{rel:?} is not a path inside the home; name it relative to {}",
            paths.home.display()
        )));
    }
    let new_rel = format!("{rel}{}", sync::NEW_SUFFIX);
    let new_path = join_rel(&paths.home, &new_rel);
    match std::fs::symlink_metadata(&new_path) {
        Ok(m) if m.is_file() => {
            use std::os::unix::fs::PermissionsExt;
            let bytes = std::fs::read(&new_path).at(&new_path)?;
            Ok((new_rel, bytes, m.permissions().mode() & 0o7777))
        }
        _ => Err(Error::Input(format!(
            "{rel} has no pending {}; `mosaic status` lists the conflicts waiting",
            sync::NEW_SUFFIX
        ))),
    }
}

/// `mosaic resolve PATH --keep|--take --dry-run`.
pub fn plan_resolve<A>(session: &Session<A>, rel: &str, how: Resolution) -> Result<ResolveOutcome> {
    check_resolve(&session.paths, rel)?;
    Ok(ResolveOutcome {
        path: rel.trim_end_matches('/').to_string(),
        resolution: how,
        backup: None,
    })
}

/// `mosaic resolve PATH --keep|--take`: one transaction (recorded as a
/// resolve, so it evicts no generation).
pub fn resolve(session: &Session<Locked>, rel: &str, how: Resolution) -> Result<ResolveOutcome> {
    let paths = &session.paths;
    let (new_rel, bytes, mode) = check_resolve(paths, rel)?;
    let rel = rel.trim_end_matches('/').to_string();
    let mut ops = vec![Op::Remove {
        rel: new_rel.as_str().into(),
    }];
    if how == Resolution::Take {
        ops.push(Op::Write {
            rel: rel.as_str().into(),
            sha256: crate::Sha256::of(&bytes),
            bytes: txn::Payload::Bytes(std::borrow::Cow::Borrowed(&bytes[..])),
            mode,
        });
    }
    let version = Manifest::load(&paths.manifest())?
        .map(|m| m.version.to_string())
        .unwrap_or_else(|| "none".to_string());
    let info = RunInfo {
        command: format!(
            "resolve --{}",
            if how == Resolution::Take {
                "take"
            } else {
                "keep"
            }
        ),
        from_version: Some(version.clone()),
        to_version: version,
        kind: Kind::Resolve,
    };
    let applied = txn::apply(paths, session.token(), &ops, &info, None)?;
    Ok(ResolveOutcome {
        path: rel,
        resolution: how,
        backup: applied.backup.map(|b| b.display().to_string()),
    })
}
