//! `cargo xtask bench [--quick] [--write] [--no-build] [--no-100k]` (issue
//! 7): builds the release `mosaic` and measures it side by side with `rsync`
//! and `cp -a && sync` on the embedded tree, the shipped tree and synthetic
//! trees (1,000, 10,000 and 100,000 files, flat and deep), plus `fleet ps` over 3 and
//! 30 stub agents on real tmux; prints one markdown table whose ratios (not
//! absolute times) are judged against the targets. `--write` puts the table
//! and a description of the machine into `docs/benchmarks.md`, between the
//! `<!-- bench:begin -->` / `<!-- bench:end -->` markers (hand-written notes
//! outside them are kept).
//!
//! Submodules: [`measure`] (one child's wall time, peak RSS, I/O counters),
//! [`trees`] (the trees installed), [`install`] (sync figures), [`fleet`]
//! (`fleet ps` figures).

mod fleet;
mod install;
mod measure;
mod trees;

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

/// What every part of the bench shares.
pub struct Ctx {
    /// The release `mosaic`.
    pub bin: PathBuf,
    /// Scratch root (removed at the end).
    pub root: PathBuf,
    /// `HOME` for every child.
    pub fake_home: PathBuf,
    /// Timed runs per figure (after one warm-up).
    pub runs: usize,
    /// `rchar` of `mosaic --version`: what process start-up alone reads.
    pub baseline_rchar: u64,
    /// Whether rsync is installed.
    pub rsync: bool,
}

/// A target and whether the figures meet it.
pub struct Target {
    text: String,
    met: bool,
}

impl Target {
    /// A target described by `text`.
    pub fn new(text: &str, met: bool) -> Target {
        Target {
            text: text.to_string(),
            met,
        }
    }
}

/// One line of the table.
pub struct Row {
    /// Tree or fleet size.
    pub tree: String,
    /// What was measured.
    pub measurement: String,
    /// Median wall time of mosaic.
    pub mosaic: Option<Duration>,
    /// Median wall time of rsync.
    pub rsync: Option<Duration>,
    /// Median wall time of `cp -a` + `sync`.
    pub cp: Option<Duration>,
    /// Highest peak RSS over mosaic's timed runs, KiB.
    pub peak_rss_kib: Option<u64>,
    /// Median bytes of file content read (see the doc).
    pub content_read: Option<u64>,
    /// Free text.
    pub note: String,
    /// Targets this row is judged on.
    pub targets: Vec<Target>,
}

/// `1.2 MiB`-style byte counts.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64()),
        _ => "—".into(),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cargo xtask bench ARGS…`.
pub fn run(args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut write = false;
    let mut build = true;
    let mut no_100k = false;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            "--write" => write = true,
            "--no-build" => build = false,
            "--no-100k" => no_100k = true,
            other => bail!("unknown argument {other:?}; usage: cargo xtask bench [--quick] [--write] [--no-build] [--no-100k]"),
        }
    }
    let ws = workspace_root();
    if build {
        eprintln!("bench: cargo build --release --bin mosaic");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&ws)
            .args(["build", "--release", "--bin", "mosaic"])
            .status()
            .context("cannot run cargo")?;
        if !st.success() {
            bail!("cargo build --release --bin mosaic failed");
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { ws.join(t) })
        .unwrap_or_else(|| ws.join("target"));
    let bin = target.join("release/mosaic");
    if !bin.is_file() {
        bail!("{} is missing; run without --no-build", bin.display());
    }
    let root = std::env::temp_dir().join(format!("mosaic-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let result = bench(&ws, bin, &root, &Opts { quick, no_100k });
    measure::cleanup();
    let _ = std::fs::remove_dir_all(&root);
    let (table, notes) = result?;
    println!("{table}");
    for n in &notes {
        println!("{n}");
    }
    if write {
        let doc = ws.join("docs/benchmarks.md");
        write_doc(&doc, &table, &notes, &root, quick)?;
        eprintln!("bench: wrote {}", doc.display());
    }
    Ok(())
}

/// What the command line chose.
struct Opts {
    quick: bool,
    no_100k: bool,
}

fn bench(ws: &Path, bin: PathBuf, root: &Path, opts: &Opts) -> Result<(String, Vec<String>)> {
    let quick = opts.quick;
    let fake_home = root.join("home");
    std::fs::create_dir_all(&fake_home)?;
    let baseline = measure::run_ok(Command::new(&bin).arg("--version").env_clear())?;
    let rsync = Command::new("rsync")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let ctx = Ctx {
        bin,
        root: root.to_path_buf(),
        fake_home,
        runs: if quick { 3 } else { 7 },
        baseline_rchar: baseline.rchar,
        rsync,
    };
    let mut notes = Vec::new();
    if !rsync {
        notes.push("- rsync is not installed: its column is empty.".to_string());
    }
    let framework = ws.join("framework");
    let trees_root = root.join("trees");
    use trees::Shape::{Deep, Flat};
    let mut specs: Vec<(&str, Option<usize>, trees::Shape)> =
        vec![("shipped", None, Flat), ("1,000 files", Some(1000), Flat)];
    if !quick {
        specs.push(("10,000 files", Some(10_000), Flat));
        specs.push(("10,000 files, deep", Some(10_000), Deep));
        if !opts.no_100k {
            specs.push(("100,000 files", Some(100_000), Flat));
            specs.push(("100,000 files, deep", Some(100_000), Deep));
        }
    }
    let mut rows = Vec::new();
    eprintln!("bench: embedded tree");
    let (r, _) = install::bench(&ctx, &trees::embedded(&framework)?, ctx.runs)?;
    rows.extend(r);
    // No-op medians of the 10,000-file trees, by shape, for the scaling goal.
    let mut noop_10k = Vec::new();
    for (name, files, shape) in specs {
        eprintln!("bench: {name}");
        let tree = trees::build(&trees_root, &framework, name, files, shape)?;
        // 100,000-file trees take minutes a run: 3 timed runs.
        let runs = if tree.files >= 100_000 {
            ctx.runs.min(3)
        } else {
            ctx.runs
        };
        let (r, noop) = install::bench(&ctx, &tree, runs)?;
        rows.extend(r);
        if files == Some(10_000) {
            noop_10k.push((shape, noop));
        } else if files == Some(100_000) {
            if let Some((_, ten)) = noop_10k.iter().find(|(s, _)| *s == shape) {
                let k = noop.as_secs_f64() / ten.as_secs_f64().max(1e-9);
                rows.push(Row {
                    tree: name.to_string(),
                    measurement: "no-op scaling 10,000 → 100,000".into(),
                    mosaic: Some(noop),
                    rsync: None,
                    cp: None,
                    peak_rss_kib: None,
                    content_read: None,
                    note: format!("{k:.1}× the 10,000-file no-op ({})", ms(*ten)),
                    targets: vec![Target::new("≤ 11× the 10,000-file no-op", k <= 11.0)],
                });
            }
        }
        // The trees of 100,000 files are big: free the scratch space.
        let _ = std::fs::remove_dir_all(tree.a.parent().unwrap_or(&tree.a));
    }
    eprintln!("bench: fleet ps");
    match fleet::unavailable(&ctx) {
        Some(why) => notes.push(format!("- fleet ps skipped: {why}.")),
        None => rows.extend(fleet::bench(&ctx)?),
    }
    // Every goal, met or missed, one line each.
    let goals: Vec<(bool, String)> = rows
        .iter()
        .flat_map(|r| {
            r.targets
                .iter()
                .map(move |t| (t.met, format!("{} / {}: {}", r.tree, r.measurement, t.text)))
        })
        .collect();
    let missed = goals.iter().filter(|(met, _)| !met).count();
    for (met, g) in &goals {
        notes.push(format!(
            "- {}: {g}",
            if *met { "met" } else { "**MISSED**" }
        ));
    }
    notes.push(format!(
        "- {} of {} goals met.",
        goals.len() - missed,
        goals.len()
    ));
    Ok((table(&rows, ctx.runs), notes))
}

fn table(rows: &[Row], runs: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| tree | measurement | mosaic | rsync | cp -a && sync | mosaic ÷ rsync | mosaic ÷ cp | mosaic peak RSS | content read | notes | targets |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let opt = |d: Option<Duration>| d.map(ms).unwrap_or_else(|| "—".into());
    for r in rows {
        let targets = r
            .targets
            .iter()
            .map(|t| format!("{}: {}", t.text, if t.met { "met" } else { "**MISSED**" }))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.tree,
            r.measurement,
            opt(r.mosaic),
            opt(r.rsync),
            opt(r.cp),
            ratio(r.mosaic, r.rsync),
            ratio(r.mosaic, r.cp),
            r.peak_rss_kib
                .map(|k| bytes(k * 1024))
                .unwrap_or_else(|| "—".into()),
            r.content_read.map(bytes).unwrap_or_else(|| "—".into()),
            r.note,
            if targets.is_empty() {
                "—".into()
            } else {
                targets
            },
        );
    }
    let _ = write!(t, "\nTimes are medians of {runs} runs after one warm-up.");
    t
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The file system type of the mount holding `path` (longest matching mount point).
fn fs_type(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let p = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2).then(|| (f[1].to_string(), format!("{} on {}", f[2], f[0])))
        })
        .filter(|(m, _)| p.starts_with(m.as_str()))
        .max_by_key(|(m, _)| m.len())
        .map(|(m, d)| format!("{d} (mounted at {m})"))
        .unwrap_or_else(|| "unknown".into())
}

fn machine(root: &Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    format!(
        "- kernel: {}\n- CPU: {cpu}, {cores} cores available\n- memory: {mem}\n- scratch dir: {} — {}\n- tools: {}, {}, {}\n- date: {}",
        first_line("uname", &["-srm"]),
        root.display(),
        fs_type(root),
        first_line("rsync", &["--version"]),
        first_line("cp", &["--version"]),
        first_line("tmux", &["-V"]),
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    )
}

fn write_doc(doc: &Path, table: &str, notes: &[String], root: &Path, quick: bool) -> Result<()> {
    let block = format!(
        "{BEGIN}\n<!-- generated by `cargo xtask bench{}--write`; edit outside the markers -->\n\n### Machine\n\n{}\n\n### Figures\n\n{table}\n\n{}\n{END}",
        if quick { " --quick " } else { " " },
        machine(root),
        notes.join("\n"),
    );
    let old = std::fs::read_to_string(doc).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("# Benchmarks\n\n{block}\n"),
    };
    std::fs::write(doc, new).with_context(|| format!("cannot write {}", doc.display()))
}
