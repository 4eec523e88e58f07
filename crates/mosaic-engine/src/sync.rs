//! The keep-mode sync engine (SPEC §4): loads the inputs, takes the lock,
//! recovers an interrupted run, plans, refuses on blockers or a downgrade,
//! and applies the plan through the transactional executor. Also the
//! read-only inspections built on the same plan: `status`, `verify`, `diff`,
//! and `rollback` / `backups` on the executor's records.

use crate::error::{Error, Result};
use crate::fsutil::join_rel;
use crate::manifest::{Entry, Manifest};
use crate::paths::Paths;
use crate::plan::{self, Action, ConflictMode, Disk, Plan};
use crate::preserve::Preserve;
use crate::scan;
use crate::session::{Locked, Session};
use crate::source::Source;
use crate::txn::{self, Op, RunInfo};
use semver::Version;
use serde::Serialize;
use std::collections::BTreeMap;

/// Options of `install` / `update`.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Print the plan and stop.
    pub dry_run: bool,
    /// How to settle conflicts and blockers.
    pub conflict: ConflictMode,
    /// Allow installing an older framework over a newer one.
    pub allow_downgrade: bool,
    /// `install` or `update`, for the backup record.
    pub command: String,
    /// Restart the fleet after the sync (and finish a deferred socket migration).
    pub relaunch: bool,
    /// A rollback towards an earlier generation: no migrations.
    pub rollback: bool,
    /// Refresh the active units even though this home is not the one they
    /// point at (`--units`; SPEC §6).
    pub units_for_other_home: bool,
}

/// What happened (or would happen) to a path; serialised as the words of
/// the human output.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// Created (it ships and was absent).
    #[serde(rename = "created")]
    Created,
    /// Replaced with the release's copy (or its mode fixed).
    #[serde(rename = "updated")]
    Updated,
    /// Removed (no longer shipped, unedited; backed up).
    #[serde(rename = "deleted")]
    Deleted,
    /// The operator's file, left as it is.
    #[serde(rename = "kept (yours)")]
    KeptYours,
    /// Both changed: the release's copy goes beside as `PATH.mosaic-new`.
    #[serde(rename = "conflict")]
    Conflict,
    /// A preserved file that ships and was absent.
    #[serde(rename = "seeded")]
    Seeded,
    /// Rewritten by a migration.
    #[serde(rename = "migrated")]
    Migrated,
    /// A type clash: nothing changes.
    #[serde(rename = "blocked")]
    Blocked,
}

impl Verb {
    /// The word in human output (and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Created => "created",
            Verb::Updated => "updated",
            Verb::Deleted => "deleted",
            Verb::KeptYours => "kept (yours)",
            Verb::Conflict => "conflict",
            Verb::Seeded => "seeded",
            Verb::Migrated => "migrated",
            Verb::Blocked => "blocked",
        }
    }

    /// Whether `--quiet` still prints it.
    pub fn is_problem(self) -> bool {
        matches!(self, Verb::Conflict | Verb::Blocked)
    }
}

/// One reported change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// Path relative to the home (or an absolute path outside it).
    pub path: String,
    /// Verb: `created`, `updated`, `deleted`, `kept (yours)`, `conflict`,
    /// `seeded`, `migrated`, `blocked`.
    pub action: Verb,
    /// Extra words (`→ PATH.mosaic-new`, why it was kept, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// True for facts human output leaves out (an edited file kept silently).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

/// One agent after `--relaunch`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentResult {
    /// Agent name.
    pub agent: String,
    /// Whether its session exists after the restart.
    pub session_up: bool,
}

/// What a sync did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize, Default)]
pub struct SyncReport {
    /// Home synced.
    pub home: String,
    /// Framework version before (`None` on a fresh or legacy home).
    pub from_version: Option<String>,
    /// Framework version after.
    pub to_version: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Every change, in path order.
    pub changes: Vec<Change>,
    /// The backup holding what was replaced or deleted.
    pub backup: Option<String>,
    /// Set when an interrupted run was rolled back first.
    pub recovered: Option<String>,
    /// Problems that did not stop the sync.
    pub warnings: Vec<String>,
    /// Counts per verb.
    pub summary: BTreeMap<String, usize>,
    /// Number of blockers; when non-zero nothing was changed and the caller
    /// reports [`Error::Blocked`].
    pub blocked: usize,
    /// For a rollback: the generation undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<u64>,
    /// Whether `systemctl --user daemon-reload` ran.
    pub daemon_reload: bool,
    /// Per-agent results of `--relaunch` (filled in by the caller).
    pub relaunch: Vec<AgentResult>,
}

impl SyncReport {
    /// Whether the run changed (or would change) the tree.
    pub fn changed(&self) -> bool {
        self.changes
            .iter()
            .any(|c| !c.quiet && c.action != Verb::Blocked && c.action != Verb::KeptYours)
    }
}

/// Everything loaded before planning.
pub struct Inputs {
    /// Resolved paths.
    pub paths: Paths,
    /// Source tree.
    pub source: Source,
    /// Manifest, if any.
    pub manifest: Option<Manifest>,
    /// Preserve set.
    pub preserve: Preserve,
    /// The disk view of the manifest's paths, when scanned ahead (while the
    /// source was loading).
    prescan: Option<plan::DiskView>,
    /// The manifest was read in the JSON of older releases: the next write
    /// migrates it to the index, even on a no-op.
    manifest_json: bool,
}

/// The manifest, the preserve set and the disk view of every path the
/// manifest lists: all that can be read before the source is known.
type Home = (Option<Manifest>, bool, Preserve, Option<plan::DiskView>);

fn read_home(paths: &Paths) -> Result<Home> {
    let (manifest, encoding) = match Manifest::load_with_encoding(&paths.manifest())? {
        Some((m, e)) => (Some(m), Some(e)),
        None => (None, None),
    };
    let manifest_json = encoding == Some(crate::manifest::Encoding::Json);
    let preserve = Preserve::load(&paths.preserve_file())?;
    let prescan = match &manifest {
        Some(m) => Some(scan::scan(
            &paths.home,
            m.files.keys().cloned(),
            Some(m),
            &preserve,
        )?),
        None => None,
    };
    Ok((manifest, manifest_json, preserve, prescan))
}

impl Inputs {
    /// Loads the source (with `load`) on this thread while the manifest is
    /// read and its paths are stat'ed on another: on a large tree the two
    /// halves of the work overlap.
    pub fn load_overlapped(
        paths: Paths,
        load: &mut (dyn FnMut(&Paths) -> Result<Source> + Send),
    ) -> Result<Inputs> {
        let (source, home) = std::thread::scope(|s| {
            let home = s.spawn(|| read_home(&paths));
            let source = load(&paths);
            (source, home.join().expect("the home reader does not panic"))
        });
        let source = source?;
        let (manifest, manifest_json, preserve, prescan) = home?;
        Ok(Inputs {
            paths,
            source,
            manifest,
            preserve,
            prescan,
            manifest_json,
        }
        .sharing_paths())
    }

    /// The manifest and the view scanned ahead, read at the same time as
    /// the source, hold a copy of each path the source holds too; they
    /// take the source's instead (at 100,000 files, 100,000 allocations
    /// of 50–60 bytes less through the plan, the run's peak).
    fn sharing_paths(mut self) -> Inputs {
        let source = &self.source.files;
        match (self.manifest.as_mut(), self.prescan.as_mut()) {
            (Some(m), Some(v)) => m.files.share_keys_with_twin(&mut v.paths, source),
            (Some(m), None) => m.files.share_keys(source),
            (None, Some(v)) => v.paths.share_keys(source),
            (None, None) => {}
        }
        self
    }

    /// Loads the source, the manifest and the preserve set for `paths`.
    pub fn load(paths: Paths) -> Result<Inputs> {
        let source = Source::from_env(Some(&paths.state), false)?;
        Inputs::with_source(paths, source)
    }

    /// Like [`Inputs::load`] with a given source.
    pub fn with_source(paths: Paths, source: Source) -> Result<Inputs> {
        let (manifest, manifest_json, preserve, prescan) = read_home(&paths)?;
        Ok(Inputs {
            paths,
            source,
            manifest,
            preserve,
            prescan,
            manifest_json,
        }
        .sharing_paths())
    }

    /// Scans the disk and plans (the view scanned ahead is used up).
    pub fn plan(&mut self, conflict: ConflictMode) -> Result<(Plan, plan::DiskView)> {
        let prescan = self.prescan.take();
        let shipped = || self.source.files.keys().cloned();
        let Some(m) = &self.manifest else {
            return self.plan_adopting(conflict);
        };
        let view = match prescan {
            // The manifest's paths are scanned; add what only the source has
            // (few: the view scanned ahead is moved, not copied).
            Some(mut view) => {
                // Both in path order: one walk, not a search per path.
                let mut recorded = m.files.cursor();
                let extra = shipped().filter(move |k| recorded.get(&**k).is_none());
                let more = scan::scan(&self.paths.home, extra, Some(m), &self.preserve)?;
                view.paths.extend(more.paths);
                for (k, v) in more.ancestors {
                    view.ancestors.entry(k).or_insert(v);
                }
                view
            }
            None => {
                let mut shipped_at = self.source.files.cursor();
                let dropped = m
                    .files
                    .keys()
                    .filter(move |&k| shipped_at.get(&**k).is_none())
                    .cloned();
                scan::scan(
                    &self.paths.home,
                    shipped().chain(dropped),
                    Some(m),
                    &self.preserve,
                )?
            }
        };
        let p = plan::plan(&self.source.files, Some(m), &view, &self.preserve, conflict);
        Ok((p, view))
    }

    /// No manifest: files an earlier release shipped (per the release
    /// history) and nobody edited are recognised as ours.
    fn plan_adopting(&self, conflict: ConflictMode) -> Result<(Plan, plan::DiskView)> {
        let known = release_history()?;
        let keys = self.source.files.keys().cloned().chain(
            known
                .paths()
                .filter(|k| !self.source.files.contains_key(*k) && !self.preserve.matches(k))
                .map(crate::Rel::from),
        );
        let mut view = scan::scan(&self.paths.home, keys, None, &self.preserve)?;
        let mut recognised = Manifest::new(self.source.version.clone());
        for (path, d) in &view.paths {
            if let Disk::File { sha256, mode, .. } = d {
                if known.shipped(path, sha256) {
                    recognised.files.insert(
                        path.clone(),
                        Entry {
                            sha256: *sha256,
                            mode: *mode,
                            observed: None,
                        },
                    );
                }
            }
        }
        // History paths that are not ours on disk are the operator's business.
        view.paths
            .retain(|p, _| self.source.files.contains_key(p) || recognised.files.contains_key(p));
        let p = plan::plan_adopting(
            &self.source.files,
            &recognised,
            &view,
            &self.preserve,
            conflict,
        );
        Ok((p, view))
    }
}

mod embedded_history {
    include!(concat!(env!("OUT_DIR"), "/history.rs"));
}

/// The release history in force: the `release-history/*.json` embedded at
/// build time, or the `*.json` files in `MOSAIC_RELEASE_HISTORY_DIR` (tests
/// and the matrix use it).
pub fn release_history() -> Result<crate::history::History> {
    let bad = |origin: &str, e: String| {
        Error::Input(format!(
            "{origin}: {e}; regenerate it with `cargo xtask release`"
        ))
    };
    match std::env::var_os("MOSAIC_RELEASE_HISTORY_DIR").filter(|v| !v.is_empty()) {
        None => crate::history::History::parse_all(embedded_history::HISTORY.iter().copied())
            .map_err(|e| bad("embedded release history", e)),
        Some(dir) => {
            let dir = std::path::Path::new(&dir);
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            paths.sort();
            let mut docs = Vec::new();
            for p in &paths {
                docs.push(std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?);
            }
            crate::history::History::parse_all(docs.iter().map(String::as_str))
                .map_err(|e| bad(&dir.display().to_string(), e))
        }
    }
}

/// Maps a plan item to its reported change, if it is reported at all.
pub fn describe(item: &plan::Item) -> Option<Change> {
    let ch = |action: Verb, detail: Option<String>| Change {
        path: item.path.to_string(),
        action,
        detail,
        quiet: false,
    };
    Some(match &item.action {
        Action::Unchanged | Action::Preserved | Action::Forget => return None,
        Action::Seed => ch(Verb::Seeded, None),
        Action::Create => ch(Verb::Created, None),
        Action::FixMode { from } => ch(Verb::Updated, Some(format!("mode {from:o} fixed"))),
        Action::Update => ch(Verb::Updated, None),
        Action::UpdateLegacy => ch(Verb::Updated, Some("legacy copy backed up".into())),
        Action::KeptYours => Change {
            quiet: true,
            ..ch(Verb::KeptYours, Some("edited; release unchanged".into()))
        },
        Action::Conflict => ch(Verb::Conflict, Some(format!("→ {}.mosaic-new", item.path))),
        Action::ConflictReplaced => ch(Verb::Updated, Some("conflict: your copy backed up".into())),
        Action::Delete => ch(Verb::Deleted, Some("no longer shipped; backed up".into())),
        Action::Orphaned => ch(
            Verb::KeptYours,
            Some("no longer shipped; edited, so kept".into()),
        ),
        Action::Blocked { obstacle, found } => {
            ch(Verb::Blocked, Some(format!("{found} at {obstacle}")))
        }
        Action::ObstacleReplaced { obstacle, found } => ch(
            Verb::Updated,
            Some(format!("{found} at {obstacle} moved into the backup")),
        ),
    })
}

/// Builds the executor's operations for a plan.
pub fn ops_for<'a>(plan: &Plan, source: &'a Source) -> Vec<Op<'a>> {
    let writes = plan
        .items
        .iter()
        .filter(|i| i.action.changes_tree())
        .count();
    let mut ops = Vec::with_capacity(writes);
    let mut obstacles = std::collections::BTreeSet::new();
    let mut shipped_at = source.files.cursor();
    for item in plan.items.iter().filter(|i| i.action.changes_tree()) {
        let shipped = shipped_at.get(&item.path);
        let write = |rel: crate::Rel| {
            let (key, s) = shipped.expect("written paths ship");
            Op::Write {
                rel,
                bytes: txn::Payload::of(key, s),
                mode: s.mode,
                sha256: s.sha256,
            }
        };
        match &item.action {
            Action::Seed
            | Action::Create
            | Action::FixMode { .. }
            | Action::Update
            | Action::UpdateLegacy
            | Action::ConflictReplaced => ops.push(write(item.path.clone())),
            Action::Conflict => ops.push(write(format!("{}.mosaic-new", item.path).into())),
            Action::ObstacleReplaced { obstacle, .. } => {
                if obstacles.insert(obstacle.clone()) {
                    ops.push(Op::Remove {
                        rel: obstacle.as_str().into(),
                    });
                }
                ops.push(write(item.path.clone()));
            }
            Action::Delete => ops.push(Op::Remove {
                rel: item.path.clone(),
            }),
            _ => {}
        }
    }
    for d in &plan.rmdirs {
        ops.push(Op::RemoveDirIfEmpty {
            rel: d.as_str().into(),
        });
    }
    ops
}

/// The manifest after the plan has landed: observes each tracked file again
/// (a stat, no read) so the next run can trust the hashes.
pub fn next_manifest(inputs: &Inputs, plan: &Plan, view: &plan::DiskView) -> Result<Manifest> {
    let mut m = Manifest::new(inputs.source.version.clone());
    m.dirs = next_dirs(inputs, plan);
    if let Some(old) = &inputs.manifest {
        m.units = old.units.clone();
    }
    m.files = next_files(inputs, plan, view)?
        .map(|(p, e)| (p.clone(), e))
        .collect();
    Ok(m)
}

/// [`next_manifest`] written into `file` as it is encoded (see
/// [`crate::manifest::encode_streamed_to`]): the entries are streamed in
/// path order, never held in a second map beside the old manifest nor as
/// bytes, with `units` and `generation` as given.
pub fn next_manifest_to(
    file: &mut std::fs::File,
    inputs: &Inputs,
    plan: &Plan,
    view: &plan::DiskView,
    units: Option<&BTreeMap<crate::Rel, crate::manifest::Entry>>,
    generation: u64,
) -> Result<()> {
    next_manifest_parts(inputs, plan, view, units, |n, files, dirs, units| {
        crate::manifest::encode_streamed_to(
            file,
            &inputs.source.version,
            generation,
            n,
            files,
            dirs,
            units,
        )
    })?
    .map_err(|e| Error::io(inputs.paths.manifest(), e))
}

/// What the next manifest is made of, handed to `encode`: the number of
/// files, their entries in path order, the directories and the units.
fn next_manifest_parts<R>(
    inputs: &Inputs,
    plan: &Plan,
    view: &plan::DiskView,
    units: Option<&BTreeMap<crate::Rel, crate::manifest::Entry>>,
    encode: impl FnOnce(
        usize,
        &mut dyn Iterator<Item = (&str, crate::manifest::Entry)>,
        &std::collections::BTreeSet<String>,
        &BTreeMap<crate::Rel, crate::manifest::Entry>,
    ) -> R,
) -> Result<R> {
    let n = plan
        .items
        .iter()
        .scan(inputs.source.files.cursor(), |c, i| {
            Some(plan::records_entry(i, c.get(&i.path).is_some()))
        })
        .filter(|recorded| *recorded)
        .count();
    let empty = BTreeMap::new();
    let units = units
        .or(inputs.manifest.as_ref().map(|m| &m.units))
        .unwrap_or(&empty);
    Ok(encode(
        n,
        &mut next_files(inputs, plan, view)?.map(|(p, e)| (&**p, e)),
        &next_dirs(inputs, plan),
        units,
    ))
}

fn next_dirs(inputs: &Inputs, plan: &Plan) -> std::collections::BTreeSet<String> {
    let mut dirs = inputs
        .manifest
        .as_ref()
        .map(|m| m.dirs.clone())
        .unwrap_or_default();
    for d in &plan.mkdirs {
        dirs.insert(d.clone());
    }
    for d in &plan.rmdirs {
        if !join_rel(&inputs.paths.home, d).exists() {
            dirs.remove(d);
        }
    }
    dirs
}

/// The next manifest's files in path order (the plan's), from the plan,
/// the source and the disk view alone (no file is stat'ed again).
fn next_files<'a>(
    inputs: &'a Inputs,
    plan: &'a Plan,
    view: &'a plan::DiskView,
) -> Result<impl Iterator<Item = (&'a crate::Rel, crate::manifest::Entry)> + 'a> {
    let mut shipped = inputs.source.files.cursor();
    let mut seen = view.paths.cursor();
    Ok(plan.items.iter().filter_map(move |item| {
        let (_, s) = shipped.get(&item.path)?;
        let observed = plan::observe_after(item, seen.get(&item.path).map(|(_, d)| d));
        plan::next_entry(item, Some(s), observed).map(|e| (&item.path, e))
    }))
}

/// The facts from outside the files that planning needs, supplied by the
/// caller (the fleet crate asks tmux): the engine itself runs nothing.
pub trait World {
    /// The tmux sessions live on the legacy socket (asked only when a
    /// socket migration is pending).
    /// An error (tmux past its deadline) ends the planning.
    fn legacy_sessions(&self) -> Result<Vec<String>>;
}

/// A world with no tmux: no legacy sessions.
pub struct NoWorld;

impl World for NoWorld {
    fn legacy_sessions(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The decided install/update: a value, rendered by the caller from
/// [`SyncPlan::report`], then executed only through a locked session
/// ([`SyncPlan::execute`] exists only for `SyncPlan<'_, Locked>`).
pub struct SyncPlan<'s, A> {
    session: &'s Session<A>,
    /// What the run will do (or, on a read-only session, would do).
    pub report: SyncReport,
    inputs: Inputs,
    plan: Plan,
    view: plan::DiskView,
    rewrites: Vec<crate::migrate::Rewrite>,
    units: Option<crate::units::UnitPlan>,
    /// How many of the report's changes, the first ones, describe the
    /// plan's items ([`describe`]); the rest come from elsewhere.
    described: usize,
    /// The legacy sessions live now (non-empty with `--relaunch` means the
    /// caller stops them before executing and restarts them after).
    pub legacy_live: Vec<String>,
    /// Whether the migration needs the legacy fleet stopped first.
    pub stop_legacy: bool,
    command: String,
}

impl<A> SyncPlan<'_, A> {
    /// Whether executing changes the active unit files (so the caller runs
    /// one `daemon-reload` afterwards).
    pub fn units_changed(&self) -> bool {
        self.units.as_ref().is_some_and(|u| !u.ops().is_empty())
    }

    /// Whether a fleet is installed in the active unit directory.
    pub fn fleet_installed(&self) -> bool {
        self.units.is_some()
    }

    /// The session the plan was made in.
    pub fn paths(&self) -> &Paths {
        &self.session.paths
    }
}

/// The transaction's ops for a plan, its rewrites and its unit refresh (a
/// function of those fields alone, so the run can let the old manifest go
/// while it holds them).
fn ops_of<'a>(
    plan: &'a Plan,
    source: &'a Source,
    rewrites: &'a [crate::migrate::Rewrite],
    units: Option<&'a crate::units::UnitPlan>,
) -> Vec<Op<'a>> {
    let mut ops = ops_for(plan, source);
    for r in rewrites {
        ops.push(Op::Write {
            rel: r.rel.as_str().into(),
            bytes: txn::Payload::Bytes(std::borrow::Cow::Borrowed(&r.bytes[..])),
            mode: r.mode,
            sha256: crate::Sha256::of(&r.bytes),
        });
    }
    if let Some(u) = units {
        ops.extend(u.ops());
    }
    ops
}

/// Plans `install` / `update` in `session` (SPEC §4.3 steps 3–4): loads the
/// source (with `load`, once the session is open, so its hash cache is never
/// written by two runs at once), reads the home, plans, and adds the socket
/// migration and the unit refresh. Nothing is written.
pub fn plan_sync<'s, A>(
    session: &'s Session<A>,
    opts: &SyncOptions,
    world: &dyn World,
    load: &mut (dyn FnMut(&Paths) -> Result<Source> + Send),
) -> Result<SyncPlan<'s, A>> {
    let paths = session.paths.clone();
    let mut report = SyncReport {
        home: paths.home.display().to_string(),
        dry_run: opts.dry_run,
        recovered: session.recovered.as_ref().map(|r| r.id.clone()),
        warnings: session.warnings.clone(),
        ..SyncReport::default()
    };
    let mut inputs = Inputs::load_overlapped(paths, load)?;
    // Tests stretch the time between the scan and everything after it.
    crate::failpoint::pause("after-load");
    report.to_version = inputs.source.version.to_string();
    report.from_version = inputs.manifest.as_ref().map(|m| m.version.to_string());
    check_downgrade(&inputs, opts.allow_downgrade)?;
    let (plan, view) = inputs.plan(opts.conflict)?;
    report.changes = plan.items.iter().filter_map(describe).collect();
    let described = report.changes.len();
    report.blocked = plan.blockers().count();

    // SPEC §5.1: the legacy socket, unless its sessions are live.
    let mut rewrites = if opts.rollback {
        Vec::new()
    } else {
        let m = crate::migrate::socket_rewrites(&inputs.paths.home)?;
        report.warnings.extend(m.warnings);
        m.rewrites
    };
    let legacy_live = if rewrites.is_empty() {
        Vec::new()
    } else {
        world.legacy_sessions()?
    };
    let mut stop_legacy = false;
    if !rewrites.is_empty() {
        if !legacy_live.is_empty() && !opts.relaunch {
            report.warnings.push(format!(
                "socket migration deferred: tmux sessions are live on {} ({}); finish it with `mosaic update --relaunch`, which stops the fleet there and starts it on {}",
                crate::migrate::LEGACY_SOCKET,
                legacy_live.join(", "),
                crate::migrate::FLEET_SOCKET
            ));
            rewrites.clear();
        } else {
            stop_legacy = !legacy_live.is_empty();
            for r in &rewrites {
                report.changes.push(Change {
                    path: r.rel.clone(),
                    action: Verb::Migrated,
                    detail: Some(format!(
                        "socket {} → {}",
                        crate::migrate::LEGACY_SOCKET,
                        crate::migrate::FLEET_SOCKET
                    )),
                    quiet: false,
                });
            }
        }
    }

    // SPEC §6: the active units, when a fleet is installed, and only from
    // the home they point at (`%E/mosaic`) unless asked explicitly.
    let fleet_installed = crate::units::fleet_installed(&inputs.paths.units);
    let ours = inputs.paths.owns_units() || opts.units_for_other_home;
    if fleet_installed && !ours {
        report.warnings.push(format!(
            "left the active units in {} alone: they belong to the home {} (their %E/mosaic), not to {}; pass --units to refresh them from this home anyway",
            inputs.paths.units.display(),
            inputs.paths.units_home.display(),
            inputs.paths.home.display()
        ));
    }
    let units = if fleet_installed && ours {
        Some(crate::units::plan_refresh(
            &inputs.source,
            inputs.manifest.as_ref(),
            &inputs.paths.units,
            opts.conflict,
        )?)
    } else {
        None
    };
    if let Some(u) = &units {
        report.changes.extend(u.changes());
        report.warnings.extend(u.warnings());
    }
    summarise(&mut report);
    // Collected through a filter, the list grew by doubling: up to half of
    // it spare, held to the end of the run (a change per file on a fresh
    // install).
    report.changes.shrink_to_fit();
    Ok(SyncPlan {
        session,
        report,
        inputs,
        plan,
        view,
        rewrites,
        units,
        described,
        legacy_live,
        stop_legacy,
        command: opts.command.clone(),
    })
}

impl SyncPlan<'_, Locked> {
    /// Executes the plan (SPEC §4.3 steps 5–6): one transaction, manifest
    /// last. Refuses a plan with blockers.
    pub fn execute(mut self) -> Result<SyncReport> {
        if self.report.blocked > 0 {
            return Err(Error::Blocked(self.report.blocked));
        }
        // Moved out, not copied: the plan is spent by this call, and a
        // report of a large install (a change per file) is a tenth of the
        // run's peak heap.
        let mut report = std::mem::take(&mut self.report);
        // The changes that describe the plan's items (one per file on a
        // fresh install) are let go through the transaction and described
        // again from the plan once it has landed (`describe` reads only the
        // plan, which this run does not change); the others are kept.
        #[cfg(debug_assertions)]
        let planned_changes = report.changes.clone();
        let others = report.changes.split_off(self.described);
        report.changes = Vec::new();
        // A run that writes no longer needs the old manifest's files (the
        // next manifest comes from the plan, the source and the disk view):
        // they go before the transaction, not after it, off the run's peak.
        let ops = ops_of(
            &self.plan,
            &self.inputs.source,
            &self.rewrites,
            self.units.as_ref(),
        );
        if !ops.is_empty() {
            if let Some(m) = self.inputs.manifest.as_mut() {
                m.files = crate::sorted::SortedMap::new();
            }
        }
        let make_manifest = || -> Result<Manifest> {
            let mut next = next_manifest(&self.inputs, &self.plan, &self.view)?;
            if let Some(u) = &self.units {
                next.units = u.next_entries();
            }
            Ok(next)
        };
        let paths = &self.session.paths;
        if ops.is_empty() {
            let next = || -> Result<Manifest> {
                let mut next = make_manifest()?;
                next.generation = self.inputs.manifest.as_ref().map_or(0, |m| m.generation);
                Ok(next)
            };
            // A no-op rewrites the manifest only when it has something new
            // to record: a fingerprint the last writing run could not trust
            // (racily clean: every file a fresh install writes) and that is
            // no longer racy now. Without it, every later no-op would read
            // every such file again. A manifest still in JSON is migrated
            // to the index once. Usually decided without building the next
            // manifest ([`SyncPlan::nothing_new`]).
            let slow = |next: &Manifest| {
                !self.inputs.manifest_json
                    && self
                        .inputs
                        .manifest
                        .as_ref()
                        .is_some_and(|old| nothing_new_to_record(old, next))
            };
            let generation = self.inputs.manifest.as_ref().map_or(0, |m| m.generation);
            let rewrite = match self.nothing_new() {
                Some(nothing) => {
                    debug_assert_eq!(nothing, slow(&next()?), "the quick no-op check agrees");
                    !nothing
                }
                None => !slow(&next()?),
            };
            if rewrite {
                // The next manifest comes from the plan, the source and the
                // disk view, streamed into its file: the old one's files go
                // first, off the run's peak.
                if let Some(m) = self.inputs.manifest.as_mut() {
                    m.files = crate::sorted::SortedMap::new();
                }
                txn::write_manifest(paths, self.session.token(), &mut |f| {
                    self.write_next_manifest(f, generation)
                })?;
            }
        } else {
            let info = RunInfo {
                command: self.command.clone(),
                from_version: report.from_version.clone(),
                to_version: report.to_version.clone(),
                kind: txn::Kind::Generation,
            };
            // What the plan saw at a path, checked again when the
            // transaction starts: looked up in the disk views the plan was
            // made from, not copied into a map of its own (a map entry per
            // written path was a tenth of a fresh install's peak heap).
            let planned = |rel: &str| {
                let disk = match (rel.strip_prefix('/'), &self.units) {
                    (Some(_), Some(u)) => std::path::Path::new(rel)
                        .strip_prefix(&u.dir)
                        .ok()
                        .and_then(|name| u.view.paths.get(name.to_str()?)),
                    (Some(_), None) => None,
                    (None, _) => self.view.paths.get(rel),
                };
                Some(match disk? {
                    Disk::Absent => txn::Seen::Absent,
                    Disk::File { fp, .. } => txn::Seen::File(*fp),
                    Disk::Dir => txn::Seen::Dir,
                    Disk::Symlink => txn::Seen::Symlink,
                    Disk::Other => txn::Seen::Other,
                })
            };
            let applied = txn::apply_planned(
                paths,
                self.session.token(),
                &ops,
                &planned,
                &info,
                Some(&mut |generation, file| self.write_next_manifest(file, generation)),
            )?;
            report.backup = applied.backup.map(|b| b.display().to_string());
            report.warnings.extend(applied.warnings);
        }
        report.changes = Vec::with_capacity(self.described + others.len());
        report
            .changes
            .extend(self.plan.items.iter().filter_map(describe));
        report.changes.extend(others);
        #[cfg(debug_assertions)]
        assert!(
            report.changes == planned_changes,
            "the changes described again are the planned ones"
        );
        Ok(report)
    }
}

impl<A> SyncPlan<'_, A> {
    /// Writes the next manifest of `generation` into `file` as it is
    /// encoded ([`next_manifest_to`], the units' entries as this run leaves
    /// them). Every debug build (so every test run) reads it back from the
    /// file as written and checks it is the map's encoding: the file is
    /// opened for writing only, so through another descriptor of it.
    fn write_next_manifest(&self, file: &mut std::fs::File, generation: u64) -> Result<()> {
        let units = self.units.as_ref().map(|u| u.next_entries());
        next_manifest_to(
            file,
            &self.inputs,
            &self.plan,
            &self.view,
            units.as_ref(),
            generation,
        )?;
        #[cfg(debug_assertions)]
        {
            use std::os::fd::AsRawFd;
            let mut m = next_manifest(&self.inputs, &self.plan, &self.view)?;
            if let Some(u) = &units {
                m.units = u.clone();
            }
            m.generation = generation;
            let again = format!("/proc/self/fd/{}", file.as_raw_fd());
            let written = std::fs::read(again).expect("read the manifest temp back");
            assert!(m.to_bytes() == written, "streamed manifest differs");
        }
        Ok(())
    }
}

impl<A> SyncPlan<'_, A> {
    /// For a plan with no ops: [`nothing_new_to_record`] of the old manifest
    /// and the next, decided in one merge of the plan, the source, the disk
    /// view and the old manifest, without building the next manifest (on a
    /// large home that is most of a no-op's own work). `None` where that
    /// does not apply (directories or units change, a JSON manifest): the
    /// caller builds the next manifest and compares.
    fn nothing_new(&self) -> Option<bool> {
        let old = self.inputs.manifest.as_ref()?;
        if self.inputs.manifest_json
            || self.units.is_some()
            || !self.plan.mkdirs.is_empty()
            || !self.plan.rmdirs.is_empty()
        {
            return None;
        }
        if old.format != crate::manifest::FORMAT || old.version != self.inputs.source.version {
            return Some(false);
        }
        let mut src = self.inputs.source.files.iter().peekable();
        let mut seen = self.view.paths.iter().peekable();
        let mut olds = old.files.iter();
        for item in &self.plan.items {
            if item.action.writes_shipped() {
                return None;
            }
            while src.peek().is_some_and(|(k, _)| ***k < *item.path) {
                src.next();
            }
            let Some(s) = src
                .peek()
                .filter(|(k, _)| **k == item.path)
                .map(|(_, s)| *s)
            else {
                continue;
            };
            // As `plan::next_entry`: these record no entry.
            if matches!(
                item.action,
                Action::Preserved | Action::Seed | Action::Blocked { .. }
            ) {
                continue;
            }
            while seen.peek().is_some_and(|(k, _)| ***k < *item.path) {
                seen.next();
            }
            // As `plan::observe_after` for a path the run does not write.
            let observed = match seen.peek() {
                Some((k, Disk::File { sha256, fp, .. }))
                    if **k == item.path && !crate::fsutil::racy(fp) =>
                {
                    Some((fp, sha256))
                }
                _ => None,
            };
            let Some((k, e)) = olds.next() else {
                return Some(false);
            };
            if *k != item.path || e.sha256 != s.sha256 || e.mode != s.mode {
                return Some(false);
            }
            if let Some((fp, sha)) = observed {
                if !e
                    .observed
                    .as_ref()
                    .is_some_and(|o| o.fp == *fp && o.sha256 == *sha)
                {
                    return Some(false);
                }
            }
        }
        Some(olds.next().is_none())
    }
}

/// Whether `next` would tell nothing `old` does not: the same files, modes
/// and hashes, and no fingerprint `next` trusts that `old` lacks (one `next`
/// cannot trust, racily clean now, is no news: `old`'s stays, and a stale
/// one only costs the next run a read).
fn nothing_new_to_record(old: &Manifest, next: &Manifest) -> bool {
    fn same_entries<'a>(
        a: impl ExactSizeIterator<Item = (&'a crate::Rel, &'a Entry)>,
        mut b: impl ExactSizeIterator<Item = (&'a crate::Rel, &'a Entry)>,
    ) -> bool {
        a.len() == b.len()
            && a.zip(&mut b).all(|((ka, ea), (kb, eb))| {
                ka == kb
                    && ea.sha256 == eb.sha256
                    && ea.mode == eb.mode
                    && (eb.observed.is_none() || ea.observed == eb.observed)
            })
    }
    old.format == next.format
        && old.version == next.version
        && old.generation == next.generation
        && old.dirs == next.dirs
        && same_entries(old.files.iter(), next.files.iter())
        && same_entries(old.units.iter(), next.units.iter())
}

fn check_downgrade(inputs: &Inputs, allow: bool) -> Result<()> {
    if let Some(m) = &inputs.manifest {
        if m.version > inputs.source.version && !allow {
            return Err(Error::Downgrade {
                home: inputs.paths.home.clone(),
                installed: m.version.clone(),
                ours: inputs.source.version.clone(),
            });
        }
    }
    Ok(())
}

fn summarise(report: &mut SyncReport) {
    let mut s = BTreeMap::new();
    for c in report.changes.iter().filter(|c| !c.quiet) {
        *s.entry(c.action.as_str().to_string()).or_insert(0) += 1;
    }
    report.summary = s;
}

/// One line of `mosaic status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusLine {
    /// Two-letter code (`A` to create, `U` update, `M` modified by you, `C`
    /// conflict, `D` to delete, `O` orphaned, `S` to seed, `B` blocked).
    pub code: String,
    /// Path.
    pub path: String,
    /// Explanation.
    pub what: String,
}

/// The status code and words for one planned path (`None`: nothing to say).
fn status_of(action: &Action) -> Option<(&'static str, String)> {
    Some(match action {
        Action::Unchanged | Action::Preserved | Action::Forget => return None,
        Action::Seed => ("S", "will be seeded (ships, absent)".to_string()),
        Action::Create => ("A", "ships, missing on disk".to_string()),
        Action::FixMode { from } => ("U", format!("mode {from:o} differs from the shipped mode")),
        Action::Update => (
            "U",
            "the release changes it; yours is untouched".to_string(),
        ),
        Action::UpdateLegacy => (
            "U",
            "differs from the shipped file (no manifest)".to_string(),
        ),
        Action::KeptYours => (
            "M",
            "edited by you; the release did not change it".to_string(),
        ),
        Action::Conflict | Action::ConflictReplaced => {
            ("C", "edited by you and changed by the release".to_string())
        }
        Action::Delete => ("D", "no longer shipped; unedited".to_string()),
        Action::Orphaned => ("O", "no longer shipped; edited by you".to_string()),
        Action::Blocked { obstacle, found } | Action::ObstacleReplaced { obstacle, found } => {
            ("B", format!("{found} at {obstacle} blocks it"))
        }
    })
}

/// The suffix of a release's copy written beside a file the operator edited.
pub const NEW_SUFFIX: &str = ".mosaic-new";

impl<A> SyncPlan<'_, A> {
    /// `mosaic status`: the same plan `update --dry-run` renders, one line
    /// per path that differs (home files, socket migrations, active units),
    /// plus every pending `PATH.mosaic-new` until it is resolved.
    pub fn status_lines(&self) -> Vec<StatusLine> {
        let home = &self.session.paths.home;
        let pending = |rel: &str| {
            std::fs::symlink_metadata(join_rel(home, &format!("{rel}{NEW_SUFFIX}")))
                .is_ok_and(|m| m.is_file())
        };
        let mut out = Vec::new();
        for item in &self.plan.items {
            if pending(&item.path) {
                out.push(StatusLine {
                    code: "C".to_string(),
                    path: item.path.to_string(),
                    what: format!(
                        "conflict pending: {}{NEW_SUFFIX} holds the release's copy; settle it with `mosaic resolve {} --keep|--take`",
                        item.path, item.path
                    ),
                });
                continue;
            }
            if let Some((code, what)) = status_of(&item.action) {
                out.push(StatusLine {
                    code: code.to_string(),
                    path: item.path.to_string(),
                    what,
                });
            }
        }
        for r in &self.rewrites {
            out.push(StatusLine {
                code: "U".to_string(),
                path: r.rel.clone(),
                what: format!(
                    "will be migrated: socket {} → {}",
                    crate::migrate::LEGACY_SOCKET,
                    crate::migrate::FLEET_SOCKET
                ),
            });
        }
        if let Some(u) = &self.units {
            for item in &u.plan.items {
                if let Some((code, what)) = status_of(&item.action) {
                    out.push(StatusLine {
                        code: code.to_string(),
                        path: u.dir.join(&*item.path).display().to_string(),
                        what: format!("active unit: {what}"),
                    });
                }
            }
        }
        out
    }
}

/// `mosaic status`: what differs between disk, manifest and source, as a
/// rendering of the update's own plan.
pub fn status<A>(
    session: &Session<A>,
    world: &dyn World,
) -> Result<(Option<Version>, Version, Vec<StatusLine>)> {
    let opts = SyncOptions {
        dry_run: true,
        allow_downgrade: true,
        command: "status".to_string(),
        ..SyncOptions::default()
    };
    let plan = plan_sync(session, &opts, world, &mut |paths| {
        Source::from_env(Some(&paths.state), false)
    })?;
    let from = plan.inputs.manifest.as_ref().map(|m| m.version.clone());
    Ok((
        from,
        plan.inputs.source.version.clone(),
        plan.status_lines(),
    ))
}

/// One finding of `mosaic verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyLine {
    /// Path.
    pub path: String,
    /// `ok`, `modified`, `missing`, `mode`, `not a file`.
    pub state: String,
}

/// `mosaic verify`: every installed shipped file against the manifest, by
/// content (the fingerprint shortcut is not used here).
pub fn verify<A>(session: &Session<A>) -> Result<Vec<VerifyLine>> {
    let paths = &session.paths;
    let manifest = Manifest::load(&paths.manifest())?.ok_or_else(|| {
        Error::Input(format!(
            "no manifest at {}; run `mosaic install` first",
            paths.manifest().display()
        ))
    })?;
    // Preserved paths are the operator's once seeded; `status` says nothing
    // about them, and neither does `verify`.
    let preserve = Preserve::load(&paths.preserve_file())?;
    let mut out = Vec::new();
    for (rel, entry) in &manifest.files {
        if preserve.matches(rel) {
            continue;
        }
        out.push(VerifyLine {
            path: rel.to_string(),
            state: verify_one(paths, rel, entry)?,
        });
    }
    Ok(out)
}

fn verify_one(paths: &Paths, rel: &str, entry: &Entry) -> Result<String> {
    let view = scan::scan(
        &paths.home,
        [crate::Rel::from(rel)],
        None,
        &Preserve::new(&[], "none")?,
    )?;
    if let Some(anc) = view
        .ancestors
        .iter()
        .find(|(_, d)| !matches!(d, Disk::Dir | Disk::Absent))
    {
        return Ok(format!("blocked by {}", anc.0));
    }
    Ok(match view.paths.get(rel) {
        Some(Disk::Absent) | None => "missing".into(),
        Some(Disk::File { sha256, mode, .. }) => {
            if *sha256 != entry.sha256 {
                "modified".into()
            } else if *mode != entry.mode {
                format!("mode {mode:o}, expected {:o}", entry.mode)
            } else {
                "ok".into()
            }
        }
        Some(_) => "not a file".into(),
    })
}

/// `mosaic diff [PATH…]`: unified diffs of what an update would change.
pub fn diff<A>(
    session: &Session<A>,
    filter: &[String],
    conflict: ConflictMode,
    world: &dyn World,
) -> Result<String> {
    let opts = SyncOptions {
        dry_run: true,
        conflict,
        allow_downgrade: true,
        command: "diff".to_string(),
        ..SyncOptions::default()
    };
    let plan = plan_sync(session, &opts, world, &mut |paths| {
        Source::from_env(Some(&paths.state), false)
    })?;
    plan.diff(filter)
}

fn read_at(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

impl<A> SyncPlan<'_, A> {
    /// `mosaic diff [PATH…]`: the unified diff of this plan — what an update
    /// changes, the operator's own edits to shipped files (against what was
    /// shipped), the socket migrations and the active units. A filter path
    /// that names nothing the plan, the release or the home knows is an error.
    pub fn diff(&self, filter: &[String]) -> Result<String> {
        let home = &self.session.paths.home;
        let wanted = |p: &str| {
            filter.is_empty()
                || filter.iter().any(|f| {
                    p == f.trim_end_matches('/')
                        || crate::fsutil::is_below(p, f.trim_end_matches('/'))
                })
        };
        for f in filter {
            let f = f.trim_end_matches('/');
            let known = self
                .plan
                .items
                .iter()
                .any(|i| &*i.path == f || crate::fsutil::is_below(&i.path, f))
                || self.rewrites.iter().any(|r| r.rel == f)
                || self.units.as_ref().is_some_and(|u| {
                    u.plan
                        .items
                        .iter()
                        .any(|i| u.dir.join(&*i.path).display().to_string() == f)
                })
                || std::fs::symlink_metadata(join_rel(home, f)).is_ok();
            if !known {
                return Err(Error::Input(format!(
                    "{f}: no such path in the home or in this release; name a path relative to {}",
                    home.display()
                )));
            }
        }
        let mut out = String::new();
        let source = &self.inputs.source;
        for item in &self.plan.items {
            if !wanted(&item.path) {
                continue;
            }
            let shipped = source
                .files
                .get(&item.path)
                .map(|s| s.read(&item.path))
                .transpose()?;
            let new = shipped.as_deref();
            let disk_path = join_rel(home, &item.path);
            let (old, new, label_old, label_new) = match &item.action {
                Action::Create | Action::Seed => {
                    (None, new, item.path.to_string(), item.path.to_string())
                }
                Action::Update
                | Action::UpdateLegacy
                | Action::ConflictReplaced
                | Action::FixMode { .. } => (
                    Some(read_at(&disk_path)?),
                    new,
                    item.path.to_string(),
                    item.path.to_string(),
                ),
                Action::Conflict => (
                    Some(read_at(&disk_path)?),
                    new,
                    item.path.to_string(),
                    format!("{}{NEW_SUFFIX}", item.path),
                ),
                Action::Delete => (
                    Some(read_at(&disk_path)?),
                    None,
                    item.path.to_string(),
                    item.path.to_string(),
                ),
                // The operator's own edit: what was shipped → what is on disk.
                Action::KeptYours => {
                    let yours = read_at(&disk_path)?;
                    out.push_str(&unified(
                        &format!("{} (shipped)", item.path),
                        new,
                        &format!("{} (yours)", item.path),
                        Some(&yours),
                    ));
                    continue;
                }
                _ => continue,
            };
            out.push_str(&unified(&label_old, old.as_deref(), &label_new, new));
        }
        for r in &self.rewrites {
            if !wanted(&r.rel) {
                continue;
            }
            let now = read_at(&join_rel(home, &r.rel))?;
            out.push_str(&unified(&r.rel, Some(&now), &r.rel, Some(&r.bytes)));
        }
        if let Some(u) = &self.units {
            for item in &u.plan.items {
                let abs = u.dir.join(&*item.path);
                let label = abs.display().to_string();
                if !filter.is_empty() && !filter.contains(&label) {
                    continue;
                }
                let shipped = u
                    .shipped
                    .get(&item.path)
                    .map(|s| s.read(&item.path))
                    .transpose()?;
                let (old, label_new) = match &item.action {
                    Action::Create => (None, label.clone()),
                    Action::Update
                    | Action::UpdateLegacy
                    | Action::ConflictReplaced
                    | Action::FixMode { .. } => (Some(read_at(&abs)?), label.clone()),
                    Action::Conflict => (Some(read_at(&abs)?), format!("{label}{NEW_SUFFIX}")),
                    _ => continue,
                };
                out.push_str(&unified(
                    &label,
                    old.as_deref(),
                    &label_new,
                    shipped.as_deref(),
                ));
            }
        }
        Ok(out)
    }
}

fn unified(old_label: &str, old: Option<&[u8]>, new_label: &str, new: Option<&[u8]>) -> String {
    let a = old.map(String::from_utf8_lossy).unwrap_or_default();
    let b = new.map(String::from_utf8_lossy).unwrap_or_default();
    let is_binary = |x: Option<&[u8]>| x.is_some_and(|x| x.contains(&0));
    let ol = if old.is_some() {
        format!("a/{old_label}")
    } else {
        "/dev/null".into()
    };
    let nl = if new.is_some() {
        format!("b/{new_label}")
    } else {
        "/dev/null".into()
    };
    if is_binary(old) || is_binary(new) {
        return format!("Binary files {ol} and {nl} differ\n");
    }
    let diff = similar::TextDiff::from_lines(a.as_ref(), b.as_ref());
    let mut s = diff
        .unified_diff()
        .context_radius(3)
        .header(&ol, &nl)
        .to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn paths(t: &std::path::Path) -> Paths {
        std::fs::create_dir_all(t.join("home")).unwrap();
        Paths {
            home: t.join("home"),
            units: t.join("units"),
            state: t.join("state"),
            units_home: t.join("home"),
        }
    }

    fn source() -> Source {
        let files = [("docs/a.md", "a"), ("tools/b", "b"), ("c", "c")]
            .into_iter()
            .map(|(p, b)| (crate::Rel::from(p), SourceFile::from_bytes(b.into(), 0o644)))
            .collect();
        Source {
            version: Version::new(1, 0, 0),
            files,
        }
    }

    fn sync(p: &Paths) {
        let s = Session::lock(p.clone()).unwrap();
        let opts = SyncOptions {
            command: "update".into(),
            ..SyncOptions::default()
        };
        let plan = plan_sync(&s, &opts, &NoWorld, &mut |_| Ok(source())).unwrap();
        plan.execute().unwrap();
    }

    fn trusted(p: &Paths) -> usize {
        let m = Manifest::load(&p.manifest()).unwrap().unwrap();
        m.files.values().filter(|e| e.observed.is_some()).count()
    }

    /// A fresh install cannot trust the fingerprints of the files it has
    /// just written (racily clean); the first no-op that sees them settled
    /// records them, so later no-ops read no file at all.
    #[test]
    fn a_no_op_records_fingerprints_that_are_no_longer_racy() {
        let t = tempfile::tempdir().unwrap();
        let p = paths(t.path());
        sync(&p);
        assert_eq!(trusted(&p), 0, "written within the run: racily clean");
        // Settled: every file's mtime an hour before this process started.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for rel in ["docs/a.md", "tools/b", "c"] {
            let f = std::fs::File::open(p.home.join(rel)).unwrap();
            f.set_modified(old).unwrap();
        }
        sync(&p);
        assert_eq!(
            trusted(&p),
            3,
            "the no-op recorded the settled fingerprints"
        );
        // Nothing new now: a further no-op leaves the manifest as it is.
        let stamp = |p: &Paths| {
            let m = std::fs::metadata(p.manifest()).unwrap();
            (
                std::os::unix::fs::MetadataExt::ino(&m),
                m.modified().unwrap(),
            )
        };
        let before = stamp(&p);
        sync(&p);
        assert_eq!(stamp(&p), before, "nothing new to record: not rewritten");
    }
}
