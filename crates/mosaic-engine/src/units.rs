//! Refreshing the active systemd user units after a sync (SPEC §6). systemd
//! runs units from `~/.config/systemd/user`, not from the home, so when a
//! fleet is installed there (any `mosaic-*.service`), each shipped
//! `systemd/user/mosaic-*.service` is brought up to date in the active
//! directory with the same three-way rules as the home (the active copies'
//! hashes are kept in the manifest's `units`). Drop-in directories and other
//! units are never touched. The caller runs one `daemon-reload` when
//! anything changed.

use crate::error::Result;
use crate::manifest::{Entry, Manifest};
use crate::plan::{self, Action, ConflictMode, Plan};
use crate::preserve::Preserve;
use crate::source::{Source, SourceFile};
use crate::txn::Op;
use std::collections::BTreeMap;
use std::path::Path;

/// Where shipped units live in the framework tree.
pub const SHIPPED_DIR: &str = "systemd/user/";

fn is_mosaic_unit(name: &str) -> bool {
    name.starts_with("mosaic-") && name.ends_with(".service") && !name.contains('/')
}

/// Whether a fleet is installed: any `mosaic-*.service` in the active dir.
pub fn fleet_installed(units_dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(units_dir) else {
        return false;
    };
    rd.filter_map(|e| e.ok()).any(|e| {
        is_mosaic_unit(&e.file_name().to_string_lossy())
            && std::fs::symlink_metadata(e.path()).is_ok_and(|m| !m.is_dir())
    })
}

/// The shipped units, by file name.
pub fn shipped(source: &Source) -> crate::sorted::SortedMap<crate::Rel, SourceFile> {
    source
        .files
        .iter()
        .filter_map(|(p, f)| {
            let name = p.strip_prefix(SHIPPED_DIR)?;
            is_mosaic_unit(name).then(|| (crate::Rel::from(name), f.detached(p)))
        })
        .collect()
}

/// The refresh of the active dir: a plan keyed by unit file name, plus the
/// disk view it was made from.
pub struct UnitPlan {
    /// The active unit directory.
    pub dir: std::path::PathBuf,
    /// Shipped units by name.
    pub shipped: crate::sorted::SortedMap<crate::Rel, SourceFile>,
    /// Decisions by name.
    pub plan: Plan,
    /// What was on disk.
    pub view: plan::DiskView,
}

/// Plans the refresh. Without any recorded active copy, a differing unit is
/// replaced after a backup (the older tools overwrote these on every run).
pub fn plan_refresh(
    source: &Source,
    manifest: Option<&Manifest>,
    dir: &Path,
    conflict: ConflictMode,
) -> Result<UnitPlan> {
    let shipped = shipped(source);
    // The active copies mosaic recorded; before it recorded any (a fleet
    // installed by `fleet install`, or by older tools), what it last shipped
    // into the home is what the active copy should hold if unedited.
    let recorded = manifest.map(|m| {
        let mut u = Manifest::new(m.version.clone());
        u.files = if m.units.is_empty() {
            shipped
                .keys()
                .filter_map(|name| {
                    m.files
                        .get(format!("{SHIPPED_DIR}{name}").as_str())
                        .map(|e| {
                            (
                                name.clone(),
                                Entry {
                                    observed: None,
                                    ..e.clone()
                                },
                            )
                        })
                })
                .collect()
        } else {
            m.units
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect()
        };
        u
    });
    let recorded = recorded.filter(|u| !u.files.is_empty());
    let mut keys: Vec<crate::Rel> = shipped.keys().cloned().collect();
    if let Some(r) = &recorded {
        keys.extend(
            r.files
                .keys()
                .filter(|k| !shipped.contains_key(*k))
                .cloned(),
        );
    }
    let none = Preserve::new(&[], "units")?;
    let view = crate::scan::scan(dir, keys, recorded.as_ref(), &none)?;
    let mut p = plan::plan(&shipped, recorded.as_ref(), &view, &none, conflict);
    // Never delete or move an active unit: a unit the release dropped, or
    // one in the way (a link made by `systemctl link`), is left alone.
    for item in &mut p.items {
        if matches!(
            item.action,
            Action::Delete
                | Action::Orphaned
                | Action::Blocked { .. }
                | Action::ObstacleReplaced { .. }
        ) {
            item.action = match item.action {
                Action::Blocked { .. } | Action::ObstacleReplaced { .. } => Action::Preserved,
                _ => Action::Forget,
            };
        }
    }
    p.mkdirs.clear();
    p.rmdirs.clear();
    Ok(UnitPlan {
        dir: dir.to_path_buf(),
        shipped,
        plan: p,
        view,
    })
}

impl UnitPlan {
    fn abs(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The executor's operations (absolute paths in the active dir).
    pub fn ops(&self) -> Vec<Op<'_>> {
        let mut ops = Vec::new();
        for item in &self.plan.items {
            let Some((key, s)) = self.shipped.get_key_value(&item.path) else {
                continue;
            };
            let write = |rel: String| Op::Write {
                rel: rel.into(),
                bytes: crate::txn::Payload::of(key, s),
                mode: s.mode,
                sha256: s.sha256,
            };
            match item.action {
                Action::Create
                | Action::FixMode { .. }
                | Action::Update
                | Action::UpdateLegacy
                | Action::ConflictReplaced => ops.push(write(self.abs(&item.path))),
                Action::Conflict => ops.push(write(format!("{}.mosaic-new", self.abs(&item.path)))),
                _ => {}
            }
        }
        ops
    }

    /// The reported changes, with absolute paths.
    pub fn changes(&self) -> Vec<crate::sync::Change> {
        let mut out = Vec::new();
        for item in &self.plan.items {
            if let Some(mut c) = crate::sync::describe(item) {
                c.path = self.abs(&item.path);
                if c.action == crate::sync::Verb::Conflict {
                    c.detail = Some(format!("→ {}.mosaic-new", c.path));
                }
                out.push(c);
            }
        }
        out
    }

    /// Warnings for active units left alone because something is in the way.
    pub fn warnings(&self) -> Vec<String> {
        self.plan
            .items
            .iter()
            .filter(|i| i.action == Action::Preserved)
            .map(|i| {
                format!(
                    "{} is not a regular file; left alone (not refreshed)",
                    self.abs(&i.path)
                )
            })
            .collect()
    }

    /// The manifest's `units` after the refresh landed (stats, no reads).
    pub fn next_entries(&self) -> BTreeMap<crate::Rel, Entry> {
        let mut out = BTreeMap::new();
        for item in &self.plan.items {
            let Some(s) = self.shipped.get(&item.path) else {
                continue;
            };
            if item.action == Action::Preserved {
                continue;
            }
            let observed = plan::observe_after(item, self.view.paths.get(&item.path));
            out.insert(
                item.path.clone(),
                Entry {
                    sha256: s.sha256,
                    mode: s.mode,
                    observed,
                },
            );
        }
        out
    }
}
