//! The sync figures (issue 7): fresh install, no-op update and a 1% update
//! of one [`Tree`], each by `mosaic`, by `rsync -a --delete` with the old
//! installer's excludes, and by `cp -a` followed by `sync`, interleaved run
//! by run so the three see the same machine. Each tool has its own home.

use super::measure::{self, median, median_u64, Sample};
use super::trees::{self, Tree};
use super::{Ctx, Row, Target};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The old shell installer's `rsync` excludes, anchored at the tree root.
const RSYNC_EXCLUDES: &[&str] = &["/fleet/*.yaml", "/fleet/agents", "/fleet/run"];

struct Homes {
    mosaic: PathBuf,
    state: PathBuf,
    rsync: PathBuf,
    cp: PathBuf,
    /// mosaic installs the tree embedded in the binary.
    embedded: bool,
}

fn mosaic(ctx: &Ctx, homes: &Homes, tree: &Path, version: &str, args: &[&str]) -> Command {
    let mut c = Command::new(&ctx.bin);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &ctx.fake_home)
        .env("XDG_CONFIG_HOME", ctx.fake_home.join(".config"))
        .env("XDG_STATE_HOME", ctx.fake_home.join(".local/state"))
        .env("MOSAIC_HOME", &homes.mosaic)
        .env("MOSAIC_STATE_DIR", &homes.state)
        .env("NO_COLOR", "1");
    if !homes.embedded {
        c.env("MOSAIC_FRAMEWORK_DIR", tree)
            .env("MOSAIC_FRAMEWORK_VERSION", version);
    }
    c
}

fn rsync(tree: &Path, home: &Path) -> Command {
    let mut c = Command::new("rsync");
    c.arg("-a").arg("--delete");
    for x in RSYNC_EXCLUDES {
        c.arg(format!("--exclude={x}"));
    }
    let mut src = tree.as_os_str().to_owned();
    src.push("/");
    let mut dst = home.as_os_str().to_owned();
    dst.push("/");
    c.arg(src).arg(dst);
    c
}

/// `cp -a TREE/. HOME` then `sync`: the wall time of both.
fn cp_sync(tree: &Path, home: &Path) -> Result<Duration> {
    let mut src = tree.as_os_str().to_owned();
    src.push("/.");
    let cp = measure::run_ok(Command::new("cp").arg("-a").arg(src).arg(home))?;
    let sync = measure::run_ok(&mut Command::new("sync"))?;
    Ok(cp.wall + sync.wall)
}

fn reset(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Bytes of mosaic's own metadata a run may read, sized before the run:
/// every file below `H/.mosaic/` (manifest, preserve file, lock) and below
/// the state dir except `backups/` (the source hash cache, a journal).
fn metadata_bytes(homes: &Homes) -> u64 {
    let files = |dir: &Path, skip: Option<&Path>| -> u64 {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_entry(|e| Some(e.path()) != skip)
            .flatten()
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    files(&homes.mosaic.join(".mosaic"), None)
        + files(&homes.state, Some(&homes.state.join("backups")))
}

/// Bytes read beyond process start-up (`mosaic --version`) and mosaic's
/// own metadata: file content.
fn content(ctx: &Ctx, s: &Sample, meta: u64) -> u64 {
    s.rchar
        .saturating_sub(ctx.baseline_rchar)
        .saturating_sub(meta)
}

#[derive(Default)]
struct Series {
    mosaic: Vec<Sample>,
    content: Vec<u64>,
    rsync: Vec<Duration>,
    cp: Vec<Duration>,
    written: Vec<usize>,
}

impl Series {
    fn mosaic_median(&self) -> Duration {
        median(self.mosaic.iter().map(|s| s.wall).collect())
    }
    fn peak_rss(&self) -> u64 {
        self.mosaic.iter().map(|s| s.max_rss_kib).max().unwrap_or(0)
    }
    fn content_median(&self) -> u64 {
        median_u64(self.content.clone())
    }
}

/// The peak RSS goal for a tree of `files` files, if it has one.
fn rss_goal(files: usize) -> Option<(&'static str, u64)> {
    if files >= 100_000 {
        Some(("peak RSS ≤ 64 MiB", 64 * 1024))
    } else if files >= 10_000 {
        Some(("peak RSS ≤ 16 MiB", 16 * 1024))
    } else {
        None
    }
}

/// Runs the three scenarios on `tree` (`runs` timed runs each); returns
/// their rows and the no-op update's median wall time.
pub fn bench(ctx: &Ctx, tree: &Tree, runs: usize) -> Result<(Vec<Row>, Duration)> {
    let base = ctx
        .root
        .join("homes")
        .join(tree.name.replace([' ', ','], ""));
    // Each fresh install gets homes of its own, never made where a home was
    // just deleted: ext4 skips inodes freed in the last seconds when it
    // allocates (`recently_deleted`), so creating 10,000 files right after
    // deleting 10,000 cost cp 0.15–0.92 s and mosaic 0.3–2.5 s, whichever
    // the allocator happened to pick. The later series use the last run's.
    let homes_of = |run: usize| Homes {
        mosaic: base.join(format!("run{run}/mosaic")),
        state: base.join(format!("run{run}/state")),
        rsync: base.join(format!("run{run}/rsync")),
        cp: base.join(format!("run{run}/cp")),
        embedded: tree.embedded,
    };
    let has_rsync = ctx.rsync;
    let big = tree.files >= 10_000;
    let rss_target =
        |s: &Series| rss_goal(tree.files).map(|(text, kib)| Target::new(text, s.peak_rss() <= kib));

    // Fresh install: an empty home every run.
    let mut fresh = Series::default();
    for i in 0..=runs {
        let homes = homes_of(i);
        reset(&homes.mosaic)?;
        reset(&homes.state)?;
        let meta = metadata_bytes(&homes);
        measure::settle();
        let s = measure::run_ok(&mut mosaic(
            ctx,
            &homes,
            &tree.a,
            "1.0.0",
            &["install", "--quiet"],
        ))?;
        if has_rsync {
            reset(&homes.rsync)?;
            measure::settle();
            let r = measure::run_ok(&mut rsync(&tree.a, &homes.rsync))?;
            if i > 0 {
                fresh.rsync.push(r.wall);
            }
        }
        reset(&homes.cp)?;
        measure::settle();
        let c = cp_sync(&tree.a, &homes.cp)?;
        if i > 0 {
            fresh.mosaic.push(s);
            fresh.content.push(content(ctx, &s, meta));
            fresh.cp.push(c);
        }
    }
    // The earlier runs' homes go now, before the series that create few
    // files.
    for i in 0..runs {
        std::fs::remove_dir_all(base.join(format!("run{i}")))?;
    }
    let homes = homes_of(runs);
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    if big {
        let cp = median(fresh.cp.clone());
        targets.push(Target::new(
            "≤ 1.2× cp -a && sync",
            fresh.mosaic_median().as_secs_f64() <= 1.2 * cp.as_secs_f64(),
        ));
    }
    targets.extend(rss_target(&fresh));
    rows.push(row(
        tree,
        "fresh install (durable)",
        &fresh,
        targets,
        String::new(),
    ));

    // No-op update: the homes as the fresh install left them.
    let mut noop = Series::default();
    for i in 0..=runs {
        let meta = metadata_bytes(&homes);
        measure::settle();
        let s = measure::run_ok(&mut mosaic(
            ctx,
            &homes,
            &tree.a,
            "1.0.0",
            &["update", "--offline", "--quiet"],
        ))?;
        if has_rsync {
            measure::settle();
            let r = measure::run_ok(&mut rsync(&tree.a, &homes.rsync))?;
            if i > 0 {
                noop.rsync.push(r.wall);
            }
        }
        measure::settle();
        let c = cp_sync(&tree.a, &homes.cp)?;
        if i > 0 {
            noop.mosaic.push(s);
            noop.content.push(content(ctx, &s, meta));
            noop.cp.push(c);
        }
    }
    let mut targets = Vec::new();
    if has_rsync {
        let r = median(noop.rsync.clone());
        let (text, k) = if big {
            ("≤ 0.3× rsync", 0.3)
        } else {
            ("≤ 0.5× rsync", 0.5)
        };
        targets.push(Target::new(
            text,
            noop.mosaic_median().as_secs_f64() <= k * r.as_secs_f64(),
        ));
    }
    targets.push(Target::new("0 B content read", noop.content_median() == 0));
    targets.extend(rss_target(&noop));
    rows.push(row(tree, "no-op update", &noop, targets, String::new()));
    let noop_median = noop.mosaic_median();
    if tree.embedded {
        // The embedded tree has no next release to update to.
        return Ok((rows, noop_median));
    }

    // 1% update: put every home back on `a` (untimed), then time `a` → `b`.
    let mut upd = Series::default();
    for i in 0..=runs {
        let (va, vb) = (format!("1.1.{}", 2 * i), format!("1.1.{}", 2 * i + 1));
        measure::run_ok(&mut mosaic(
            ctx,
            &homes,
            &tree.a,
            &va,
            &["update", "--offline", "--quiet"],
        ))?;
        let before = trees::snapshot(&homes.mosaic)?;
        let meta = metadata_bytes(&homes);
        measure::settle();
        let s = measure::run_ok(&mut mosaic(
            ctx,
            &homes,
            &tree.b,
            &vb,
            &["update", "--offline", "--quiet"],
        ))?;
        let after = trees::snapshot(&homes.mosaic)?;
        if has_rsync {
            measure::run_ok(&mut rsync(&tree.a, &homes.rsync))?;
            measure::settle();
            let r = measure::run_ok(&mut rsync(&tree.b, &homes.rsync))?;
            if i > 0 {
                upd.rsync.push(r.wall);
            }
        }
        measure::settle();
        let c = cp_sync(&tree.b, &homes.cp)?;
        if i > 0 {
            upd.mosaic.push(s);
            upd.content.push(content(ctx, &s, meta));
            upd.cp.push(c);
            upd.written.push(trees::written(&before, &after));
        }
    }
    let written = upd.written.iter().copied().max().unwrap_or(0);
    let mut targets = Vec::new();
    if big && has_rsync {
        let r = median(upd.rsync.clone());
        targets.push(Target::new(
            "≤ 0.5× rsync",
            upd.mosaic_median().as_secs_f64() <= 0.5 * r.as_secs_f64(),
        ));
    }
    if big {
        targets.push(Target::new(
            "only changed files written",
            written == tree.changed,
        ));
    }
    targets.extend(rss_target(&upd));
    let note = format!(
        "{written} of {} files written in H (expected {}), {} written in all",
        tree.files,
        tree.changed,
        super::bytes(median_u64(upd.mosaic.iter().map(|s| s.wchar).collect()))
    );
    rows.push(row(tree, "1% update (durable)", &upd, targets, note));
    Ok((rows, noop_median))
}

fn row(tree: &Tree, what: &str, s: &Series, targets: Vec<Target>, note: String) -> Row {
    Row {
        tree: format!(
            "{} ({} files, {})",
            tree.name,
            tree.files,
            super::bytes(tree.bytes)
        ),
        measurement: what.to_string(),
        mosaic: Some(s.mosaic_median()),
        rsync: (!s.rsync.is_empty()).then(|| median(s.rsync.clone())),
        cp: (!s.cp.is_empty()).then(|| median(s.cp.clone())),
        peak_rss_kib: Some(s.peak_rss()),
        content_read: Some(s.content_median()),
        note,
        targets,
    }
}
