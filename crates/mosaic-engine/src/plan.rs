//! The keep-mode planner (SPEC §4.2): a pure function from the source tree,
//! the manifest, what is on disk and the preserve set to one decision per
//! path. It reads nothing and writes nothing; `crate::scan` gathers the disk
//! facts and `crate::sync` turns the plan into transactional operations.

use crate::fsutil::Fingerprint;
use crate::manifest::{Entry, Manifest, Observed};
use crate::preserve::Preserve;
use crate::source::SourceFile;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What is at a path on disk (never following a symlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disk {
    /// Nothing there.
    Absent,
    /// A regular file.
    File {
        /// Content hash (from the file, or trusted from the manifest's
        /// fingerprint; [`crate::Sha256::UNKNOWN`] when not read: a
        /// preserved path only needs to be known present).
        sha256: crate::Sha256,
        /// Permission bits.
        mode: u32,
        /// Stat fingerprint.
        fp: Fingerprint,
    },
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (socket, fifo, device).
    Other,
}

impl Disk {
    fn describe(&self) -> &'static str {
        match self {
            Disk::Absent => "nothing",
            Disk::File { .. } => "a file",
            Disk::Dir => "a directory",
            Disk::Symlink => "a symlink",
            Disk::Other => "a special file",
        }
    }
}

/// The disk facts the planner needs: the state of every considered path and
/// of each of their ancestor directories below the home.
#[derive(Debug, Clone, Default)]
pub struct DiskView {
    /// Relative path → state, for every path in the source or the manifest.
    pub paths: crate::sorted::SortedMap<crate::Rel, Disk>,
    /// Relative directory path → state, for every ancestor of those paths.
    pub ancestors: BTreeMap<String, Disk>,
}

/// How to settle a file both the operator and the release changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictMode {
    /// Keep the operator's file; write the new one beside it as `PATH.mosaic-new`.
    #[default]
    Keep,
    /// Back the operator's file up and install the new one.
    Replace,
}

impl ConflictMode {
    /// Every mode, in the order `--help` lists them.
    pub const ALL: &'static [ConflictMode] = &[ConflictMode::Keep, ConflictMode::Replace];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictMode::Keep => "keep",
            ConflictMode::Replace => "replace",
        }
    }
}

impl std::str::FromStr for ConflictMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown conflict mode {s:?}: use keep or replace"))
    }
}

/// The decision for one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Preserved path that ships and is absent: create it.
    Seed,
    /// Shipped and absent: create it.
    Create,
    /// Shipped and identical on disk.
    Unchanged,
    /// Shipped and identical but for the mode: fix the mode.
    FixMode {
        /// Mode found on disk.
        from: u32,
    },
    /// Shipped, untouched since we wrote it: replace.
    Update,
    /// Shipped, no manifest (legacy install), differs: back up and replace.
    UpdateLegacy,
    /// Operator edited it and the release did not change it: keep, silently.
    KeptYours,
    /// Both changed: keep the operator's, write `PATH.mosaic-new`.
    Conflict,
    /// Both changed, `--conflict replace`: back up the operator's and install.
    ConflictReplaced,
    /// Dropped by the release, unedited: back up and delete.
    Delete,
    /// Dropped by the release, edited (or no longer a file): keep, report.
    Orphaned,
    /// Dropped by the release and already gone from disk: forget it.
    Forget,
    /// Matches the preserve set: never overwritten, never deleted.
    Preserved,
    /// Type clash: nothing may be written here without touching operator data.
    Blocked {
        /// The path in the way (the path itself or an ancestor).
        obstacle: String,
        /// What is in the way.
        found: String,
    },
    /// Type clash resolved by `--conflict replace`: the obstacle moves into
    /// the backup whole, the shipped file is installed.
    ObstacleReplaced {
        /// The path moved into the backup.
        obstacle: String,
        /// What was in the way.
        found: String,
    },
}

impl Action {
    /// Whether applying this action writes or removes anything.
    pub fn changes_tree(&self) -> bool {
        !matches!(
            self,
            Action::Unchanged
                | Action::KeptYours
                | Action::Orphaned
                | Action::Forget
                | Action::Preserved
                | Action::Blocked { .. }
        )
    }
}

/// One row of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Relative path.
    pub path: crate::Rel,
    /// Decision.
    #[serde(flatten)]
    pub action: Action,
}

/// A whole plan.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One item per considered path, sorted by path.
    pub items: Vec<Item>,
    /// Directories mosaic will create (outermost first).
    pub mkdirs: Vec<String>,
    /// Directories mosaic created earlier that may go once empty (deepest first).
    pub rmdirs: Vec<String>,
    /// True when there was no manifest (a legacy install or a fresh home).
    pub legacy: bool,
}

impl Plan {
    /// The blocked items.
    pub fn blockers(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| matches!(i.action, Action::Blocked { .. }))
    }

    /// Whether applying the plan changes anything below the home.
    pub fn changes_tree(&self) -> bool {
        self.items.iter().any(|i| i.action.changes_tree()) || !self.rmdirs.is_empty()
    }
}

/// Decides every path (SPEC §4.2; rows are read top-down).
pub fn plan(
    source: &crate::sorted::SortedMap<crate::Rel, SourceFile>,
    manifest: Option<&Manifest>,
    disk: &DiskView,
    preserve: &Preserve,
    conflict: ConflictMode,
) -> Plan {
    plan_inner(
        source,
        manifest,
        manifest.is_some(),
        disk,
        preserve,
        conflict,
    )
}

/// Plans an install without a manifest, given the files on disk that the
/// release history `recognised` as shipped and unedited (a manifest-shaped
/// record of them): those are ours (replaced, or deleted when no longer
/// shipped); every other differing shipped file takes the legacy row.
pub fn plan_adopting(
    source: &crate::sorted::SortedMap<crate::Rel, SourceFile>,
    recognised: &Manifest,
    disk: &DiskView,
    preserve: &Preserve,
    conflict: ConflictMode,
) -> Plan {
    plan_inner(source, Some(recognised), false, disk, preserve, conflict)
}

fn plan_inner(
    source: &crate::sorted::SortedMap<crate::Rel, SourceFile>,
    manifest: Option<&Manifest>,
    have_manifest: bool,
    disk: &DiskView,
    preserve: &Preserve,
    conflict: ConflictMode,
) -> Plan {
    // One merge of three path-sorted maps (source, manifest, disk view):
    // every path of the source or the manifest once, in path order, without
    // a lookup per path.
    let mut src = source.iter().peekable();
    let mut man = manifest.into_iter().flat_map(|m| m.files.iter()).peekable();
    let mut dsk = disk.paths.iter().peekable();
    let mut items = Vec::with_capacity(source.len());
    let mut ancestors = Ancestors::new(disk);
    loop {
        let key: &crate::Rel = match (src.peek(), man.peek()) {
            (None, None) => break,
            (Some((a, _)), None) => a,
            (None, Some((b, _))) => b,
            (Some((a, _)), Some((b, _))) => std::cmp::min(*a, *b),
        };
        let path: &str = key;
        let shipped = match src.peek() {
            Some((k, _)) if &***k == path => src.next().map(|(_, v)| v),
            _ => None,
        };
        let recorded = match man.peek() {
            Some((k, _)) if &***k == path => man.next().map(|(_, v)| v),
            _ => None,
        };
        while dsk.peek().is_some_and(|(k, _)| &***k < path) {
            dsk.next();
        }
        let d = match dsk.peek() {
            Some((k, v)) if &***k == path => *v,
            _ => &Disk::Absent,
        };
        let action = decide(
            path,
            shipped,
            recorded,
            have_manifest,
            d,
            &mut ancestors,
            preserve,
            conflict,
        );
        items.push(Item {
            path: key.clone(),
            action,
        });
    }
    // A file of ours that the release drops is no obstacle to a directory
    // the release puts in its place: it is deleted (and backed up) first.
    let deleting: BTreeSet<crate::Rel> = items
        .iter()
        .filter(|i| i.action == Action::Delete)
        .map(|i| i.path.clone())
        .collect();
    for item in &mut items {
        if let Action::Blocked { obstacle, .. } = &item.action {
            if deleting.contains(obstacle.as_str()) && !deleting.contains(&*item.path) {
                item.action = Action::Create;
            }
        }
    }
    let mkdirs = dirs_to_create(&items, disk, &deleting);
    let rmdirs = dirs_to_remove(&items, source, manifest);
    Plan {
        items,
        mkdirs,
        rmdirs,
        legacy: !have_manifest,
    }
}

/// [`blocking_ancestor`] remembered for the last parent directory asked
/// about: the plan asks in path order, so a directory's files ask one after
/// another, and the answer depends on the parent alone.
struct Ancestors<'a> {
    disk: &'a DiskView,
    /// The parent of the last path asked about (`None` before the first).
    parent: Option<String>,
    found: Option<(String, &'a Disk)>,
}

impl<'a> Ancestors<'a> {
    fn new(disk: &'a DiskView) -> Self {
        Ancestors {
            disk,
            parent: None,
            found: None,
        }
    }

    fn blocking(&mut self, path: &str) -> Option<(String, &'a Disk)> {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        if self.parent.as_deref() != Some(parent) {
            self.found = blocking_ancestor(path, self.disk);
            let p = self.parent.get_or_insert_with(String::new);
            p.clear();
            p.push_str(parent);
        }
        self.found.clone()
    }
}

/// The first ancestor of `path` that is not a real directory.
fn blocking_ancestor<'a>(path: &str, disk: &'a DiskView) -> Option<(String, &'a Disk)> {
    let mut idx = 0;
    while let Some(pos) = path[idx..].find('/') {
        let anc = &path[..idx + pos];
        match disk.ancestors.get(anc) {
            Some(Disk::Dir) | Some(Disk::Absent) | None => {}
            Some(other) => return Some((anc.to_string(), other)),
        }
        idx += pos + 1;
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn decide(
    path: &str,
    shipped: Option<&SourceFile>,
    recorded: Option<&Entry>,
    have_manifest: bool,
    d: &Disk,
    ancestors: &mut Ancestors<'_>,
    preserve: &Preserve,
    conflict: ConflictMode,
) -> Action {
    let blocked = |obstacle: String, what: &Disk| {
        let found = what.describe().to_string();
        match conflict {
            ConflictMode::Keep => Action::Blocked { obstacle, found },
            ConflictMode::Replace => Action::ObstacleReplaced { obstacle, found },
        }
    };
    if preserve.matches(path) {
        // Seed only through real directories; a linked parent is the
        // operator's business and is never written through.
        return match (shipped, d) {
            (Some(_), Disk::Absent) if ancestors.blocking(path).is_none() => Action::Seed,
            _ => Action::Preserved,
        };
    }
    let Some(s) = shipped else {
        // Not shipped any more: only what the manifest proves we wrote is ours.
        let Some(m) = recorded else {
            return Action::Preserved;
        };
        if ancestors.blocking(path).is_some() {
            return Action::Orphaned;
        }
        return match d {
            Disk::Absent => Action::Forget,
            Disk::File { sha256, .. } if *sha256 == m.sha256 => Action::Delete,
            _ => Action::Orphaned,
        };
    };
    if let Some((anc, what)) = ancestors.blocking(path) {
        return blocked(anc, what);
    }
    match d {
        Disk::Absent => Action::Create,
        Disk::Dir | Disk::Symlink | Disk::Other => blocked(path.to_string(), d),
        Disk::File {
            sha256: h_d, mode, ..
        } => {
            if *h_d == s.sha256 {
                return if *mode == s.mode {
                    Action::Unchanged
                } else {
                    Action::FixMode { from: *mode }
                };
            }
            match recorded {
                Some(m) if *h_d == m.sha256 => Action::Update,
                Some(m) if s.sha256 == m.sha256 => Action::KeptYours,
                // Both changed, or the operator's own file sits where a new
                // release now ships one: theirs stays unless told otherwise.
                Some(_) => conflict_action(conflict),
                None if have_manifest => conflict_action(conflict),
                None => Action::UpdateLegacy,
            }
        }
    }
}

fn conflict_action(conflict: ConflictMode) -> Action {
    match conflict {
        ConflictMode::Keep => Action::Conflict,
        ConflictMode::Replace => Action::ConflictReplaced,
    }
}

/// Ancestors of written paths that do not exist yet, outermost first.
fn dirs_to_create(items: &[Item], disk: &DiskView, deleting: &BTreeSet<crate::Rel>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for item in items {
        let writes = matches!(
            item.action,
            Action::Seed | Action::Create | Action::ObstacleReplaced { .. }
        );
        if !writes {
            continue;
        }
        let mut idx = 0;
        while let Some(pos) = item.path[idx..].find('/') {
            let anc = &item.path[..idx + pos];
            let absent = matches!(disk.ancestors.get(anc), Some(Disk::Absent) | None)
                || deleting.contains(anc);
            let replaced = matches!(&item.action, Action::ObstacleReplaced { obstacle, .. } if obstacle == anc);
            if absent || replaced {
                out.insert(anc.to_string());
            }
            idx += pos + 1;
        }
    }
    // BTreeSet order puts a parent before its children.
    out.into_iter().collect()
}

/// Directories we created that hold no shipped file any more, deepest first.
fn dirs_to_remove(
    items: &[Item],
    source: &crate::sorted::SortedMap<crate::Rel, SourceFile>,
    manifest: Option<&Manifest>,
) -> Vec<String> {
    let Some(m) = manifest else { return Vec::new() };
    let gone = || {
        items
            .iter()
            .filter(|i| matches!(i.action, Action::Delete | Action::Forget))
    };
    // Most runs delete nothing: no ancestor set of every shipped path then.
    if gone().next().is_none() {
        return Vec::new();
    }
    let mut still_used: BTreeSet<&str> = BTreeSet::new();
    let mut last_parent = None;
    for path in source.keys() {
        // In path order, a directory's files follow one another.
        let parent = path.rsplit_once('/').map(|(p, _)| p);
        if parent == last_parent {
            continue;
        }
        last_parent = parent;
        let mut cur: &str = path;
        while let Some(idx) = cur.rfind('/') {
            cur = &cur[..idx];
            still_used.insert(cur);
        }
    }
    let mut out = BTreeSet::new();
    for item in gone() {
        let mut cur: &str = &item.path;
        while let Some(idx) = cur.rfind('/') {
            cur = &cur[..idx];
            if m.dirs.contains(cur) && !still_used.contains(cur) {
                out.insert(cur.to_string());
            }
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by(|a, b| {
        b.matches('/')
            .count()
            .cmp(&a.matches('/').count())
            .then(b.cmp(a))
    });
    v
}

impl Action {
    /// Whether applying this action writes the shipped file at its path.
    pub fn writes_shipped(&self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::FixMode { .. }
                | Action::Update
                | Action::UpdateLegacy
                | Action::ConflictReplaced
                | Action::ObstacleReplaced { .. }
        )
    }
}

/// What to record as observed for `item` after the apply: what the scan
/// saw, unless that fingerprint is racily clean ([`crate::fsutil::racy`]).
/// A file this run writes is never recorded: its mtime is the run's own,
/// racily clean by construction, so it is not even stat'ed (the first
/// no-op after it has settled records it). Never a read.
pub fn observe_after(item: &Item, seen: Option<&Disk>) -> Option<Observed> {
    // A fingerprint within the run's own time window is not trusted: an
    // edit saved in the same tick would look identical (racily clean).
    let observed = match seen {
        _ if item.action.writes_shipped() => None,
        Some(Disk::File { sha256, fp, .. }) => Some(Observed {
            fp: *fp,
            sha256: *sha256,
        }),
        _ => None,
    };
    observed.filter(|o| !crate::fsutil::racy(&o.fp))
}

/// Whether [`next_entry`] records an entry for `item` (its path `shipped`
/// or not), decided from the action alone.
pub fn records_entry(item: &Item, shipped: bool) -> bool {
    shipped
        && !matches!(
            item.action,
            Action::Preserved | Action::Seed | Action::Blocked { .. }
        )
}

/// The manifest entry to record for a path after the plan has been applied,
/// given the file's observation after the apply (`None` when absent).
pub fn next_entry(
    item: &Item,
    shipped: Option<&SourceFile>,
    observed: Option<Observed>,
) -> Option<Entry> {
    let s = shipped?;
    match item.action {
        _ if !records_entry(item, true) => None,
        _ => Some(Entry {
            sha256: s.sha256,
            mode: s.mode,
            observed,
        }),
    }
}

#[cfg(test)]
mod tests;
