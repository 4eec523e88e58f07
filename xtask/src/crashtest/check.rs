//! What must hold after a crash and the recovery run: operator files intact
//! (or, for the command's own edit, exactly before or exactly after), no
//! journal, no temp litter, only complete backups, and convergence to what
//! the uncrashed command leaves (same tree, same `status`, same `verify`,
//! and a re-run that changes nothing).

use super::scenarios::{is_operator, Spec};
use super::world::{diff, snapshot_into, tree, Ctx, Node, Out, Snapshot, World};
use anyhow::Result;
use std::path::Path;

/// The operator's files (and links) in H and the active unit dir.
pub fn operator_files(w: &World) -> Result<Snapshot> {
    let mut s = Snapshot::new();
    snapshot_into(&mut s, "H/", &w.home())?;
    snapshot_into(&mut s, "UNITS/", &w.units())?;
    s.retain(|k, n| n.kind != 'd' && is_operator(k));
    Ok(s)
}

/// Each operator file is byte-identical to `before`, or for the command's
/// intended edit exactly `before` or exactly `after`.
pub fn operator_intact(
    spec: &Spec,
    before: &Snapshot,
    after: &Snapshot,
    now: &Snapshot,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .chain(now.keys())
        .collect();
    let mut bad = Vec::new();
    for k in keys {
        let (b, a, n) = (before.get(k), after.get(k), now.get(k));
        let ok = n == b || ((spec.intended)(k) && n == a);
        if !ok {
            bad.push(explain(k, b, n, (spec.intended)(k)));
        }
    }
    bad
}

fn explain(k: &str, before: Option<&Node>, now: Option<&Node>, intended: bool) -> String {
    let what = match (before, now) {
        (_, None) => "is missing".to_string(),
        (None, Some(_)) => "appeared".to_string(),
        (Some(b), Some(n)) if b.kind == n.kind && b.bytes == n.bytes => {
            format!("has mode {:o}, expected {:o}", n.mode, b.mode)
        }
        (Some(_), Some(n)) => format!(
            "holds {} bytes that are neither before nor after",
            n.bytes.len()
        ),
    };
    format!(
        "operator file {k} {what}{}",
        if intended {
            " (exactly before or after allowed)"
        } else {
            ""
        }
    )
}

/// Every path below `root` whose name contains `.mosaic-tmp`.
fn litter_in(ctx: &Ctx, w: &World, root: &Path, out: &mut Vec<String>) {
    if !root.exists() {
        return;
    }
    for e in walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .flatten()
    {
        if e.file_name().to_string_lossy().contains(".mosaic-tmp") {
            out.push(format!(
                "temp litter {}",
                w.normalize(ctx, &e.path().to_string_lossy())
            ));
        }
    }
}

/// No temp files anywhere under H, the state dir or the unit dir; no
/// journal; every backup directory complete.
pub fn leftovers(ctx: &Ctx, w: &World) -> Vec<String> {
    let mut bad = Vec::new();
    litter_in(ctx, w, &w.home(), &mut bad);
    litter_in(ctx, w, &w.state(), &mut bad);
    litter_in(ctx, w, &w.units(), &mut bad);
    // A journal: any `journal*` file in the state dir, outside the backups'
    // copies of the operator's files.
    for e in walkdir::WalkDir::new(w.state())
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| e.file_name() != "files" && e.file_name() != "copies")
        .flatten()
    {
        let name = e.file_name().to_string_lossy();
        if name.starts_with("journal") && !name.contains(".mosaic-tmp") {
            bad.push(format!(
                "journal left {}",
                w.normalize(ctx, &e.path().to_string_lossy())
            ));
        }
    }
    bad.extend(incomplete_backups(ctx, w));
    bad
}

/// Backup (generation) directories without a complete `meta.json`.
fn incomplete_backups(ctx: &Ctx, w: &World) -> Vec<String> {
    let mut bad = Vec::new();
    for dir in ["backups", "generations"] {
        let d = w.state().join(dir);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = w.normalize(ctx, &p.to_string_lossy());
            if !p.is_dir() {
                if !e.file_name().to_string_lossy().contains(".mosaic-tmp") {
                    bad.push(format!("stray file {name}"));
                }
                continue;
            }
            match std::fs::read(p.join("meta.json")) {
                Err(_) => bad.push(format!("incomplete backup {name} (no meta.json)")),
                Ok(b) => match serde_json::from_slice::<serde_json::Value>(&b) {
                    Err(_) => bad.push(format!("incomplete backup {name} (meta.json is not JSON)")),
                    Ok(v) if v["complete"] != serde_json::Value::Bool(true) => bad.push(format!(
                        "incomplete backup {name} (meta.json complete={})",
                        v["complete"]
                    )),
                    Ok(_) => {}
                },
            }
        }
    }
    bad
}

/// `mosaic backups --json` lists only complete backups (and every complete
/// one on disk).
pub fn backups_listed(ctx: &Ctx, w: &World, spec: &Spec) -> Result<Vec<String>> {
    let out = w.mosaic(ctx, spec.rel, &["backups".into(), "--json".into()])?;
    if out.code != Some(0) {
        return Ok(vec![format!(
            "{} (expected exit 0)",
            w.normalize(ctx, &out.brief())
        )]);
    }
    let v: serde_json::Value = match serde_json::from_str(&out.stdout) {
        Ok(v) => v,
        Err(e) => return Ok(vec![format!("mosaic backups --json is not JSON: {e}")]),
    };
    // `{"version": 1, "backups": [...]}`.
    let Some(list) = v.get("backups").and_then(|b| b.as_array()) else {
        return Ok(vec!["mosaic backups --json has no backups list".to_string()]);
    };
    let mut bad = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    for b in list {
        let id = b["id"].as_str().unwrap_or("?").to_string();
        if b.get("complete")
            .is_some_and(|c| c != &serde_json::Value::Bool(true))
        {
            bad.push(format!("mosaic backups lists incomplete backup {id}"));
        }
        listed.insert(id);
    }
    if let Ok(rd) = std::fs::read_dir(w.state().join("backups")) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            // A dot name is a backup being made or retired, never one.
            if id.starts_with('.') {
                continue;
            }
            let complete = std::fs::read(e.path().join("meta.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["complete"] == serde_json::Value::Bool(true));
            if complete && !listed.contains(&id) {
                bad.push(format!(
                    "complete backup {} is not listed by mosaic backups",
                    super::world::normalize_ids(&id)
                ));
            }
        }
    }
    Ok(bad)
}

/// What the uncrashed command leaves, to compare every trial with.
pub struct Reference {
    /// Exit code of the command.
    pub code: i32,
    /// Exit code of running it again right after.
    pub rerun_code: i32,
    /// Operator files before the command.
    pub before: Snapshot,
    /// Operator files after it.
    pub after: Snapshot,
    /// H and the active units after the command and the re-run.
    pub tree: Snapshot,
    /// `mosaic status`: exit code and normalised output.
    pub status: Said,
    /// `mosaic verify`: exit code and normalised output.
    pub verify: Said,
}

fn norm_out(ctx: &Ctx, w: &World, o: &Out) -> Said {
    (o.code, w.normalize(ctx, &o.stdout))
}

/// What a command printed that must match: exit code, normalised stdout.
pub type Said = (Option<i32>, String);

/// What [`converge`] saw.
pub struct Converged {
    /// H and the active units at the end.
    pub tree: Snapshot,
    /// `mosaic status`.
    pub status: Said,
    /// `mosaic verify`.
    pub verify: Said,
    /// Exit code of the re-run.
    pub rerun: Option<i32>,
    /// What did not hold.
    pub problems: Vec<String>,
}

/// After the command (or its recovery) ran: runs it again, which must
/// change nothing in H or the units and exit like the uncrashed re-run;
/// then `status` and `verify` must say what they say after the uncrashed
/// command, and the tree must be the uncrashed one (when `reference` is
/// given; without, this builds the reference).
pub fn converge(
    ctx: &Ctx,
    w: &World,
    spec: &Spec,
    reference: Option<&Reference>,
) -> Result<Converged> {
    let mut bad = Vec::new();
    let t0 = tree(w)?;
    let rerun = w.mosaic(ctx, spec.rel, &spec.args)?;
    let t1 = tree(w)?;
    if t0 != t1 {
        bad.push(format!(
            "running the command again changed {}",
            diff(&t0, &t1, 4).join(", ")
        ));
    }
    let status = norm_out(ctx, w, &w.mosaic(ctx, spec.rel, &["status".into()])?);
    let verify = norm_out(ctx, w, &w.mosaic(ctx, spec.rel, &["verify".into()])?);
    if let Some(r) = reference {
        if rerun.code != Some(r.rerun_code) {
            bad.push(format!(
                "running it again: {} (expected exit {})",
                w.normalize(ctx, &rerun.brief()),
                r.rerun_code
            ));
        }
        if status != r.status {
            bad.push(format!(
                "mosaic status differs from the uncrashed run's: exit {:?} {:?}, expected exit {:?} {:?}",
                status.0,
                super::world::clip(&status.1),
                r.status.0,
                super::world::clip(&r.status.1)
            ));
        }
        if verify != r.verify {
            bad.push(format!(
                "mosaic verify differs from the uncrashed run's: exit {:?} {:?}, expected exit {:?} {:?}",
                verify.0,
                super::world::clip(&verify.1),
                r.verify.0,
                super::world::clip(&r.verify.1)
            ));
        }
        if t1 != r.tree {
            bad.push(format!(
                "the tree differs from the uncrashed run's after converging: {}",
                diff(&r.tree, &t1, 6).join(", ")
            ));
        }
    }
    bad.extend(
        leftovers(ctx, w)
            .into_iter()
            .map(|m| format!("{m} (after converging)")),
    );
    Ok(Converged {
        tree: t1,
        status,
        verify,
        rerun: rerun.code,
        problems: bad,
    })
}
