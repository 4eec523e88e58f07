//! `cargo xtask crashtest [--quick] [--cmd NAME]… [--keep] [--point N[/M],…] [-v]`:
//! kills each writing command at every one of its mutating system calls and
//! checks that the next run recovers, loses nothing and converges.
//!
//! For each scenario (`install`, `update`, `rollback`, `fleet-add`, `fleet-install`,
//! see [`scenarios`]): build a throw-away world through the CLI, run the
//! command once under `strace -f` to number its mutating system calls (the
//! *points*) and to record what the uncrashed command leaves (the
//! reference), then for every point (every k-th with `--quick`): start from
//! a fresh copy of the world, kill the command with SIGKILL right before
//! that point (strace fault injection, verified to land there), check the
//! operator's files right after the crash, run the recovery (the same
//! command again: recovery happens at the start of every writing command),
//! and check: operator files, journal, temp litter, backups, convergence
//! ([`check`]). For a sample of points the recovery run itself is killed at
//! each of its own points, then run once more, and checked the same way.
//!
//! Driven only through the `mosaic` binary (`cargo build -p mosaic`); the
//! product's library is never linked. Docs: docs/crashtest.md.

mod check;
mod scenarios;
mod strace;
mod world;

use anyhow::{bail, Context, Result};
use check::Reference;
use scenarios::{Scenario, Spec, ALL};
use std::path::{Path, PathBuf};
use std::time::Instant;
use strace::Point;
use world::{reset, Ctx, World};

const USAGE: &str = "usage: cargo xtask crashtest [--quick] [--cmd install|update|rollback|fleet-add|fleet-install]… [--keep] [--point N[/M],…] [-v]";

/// `--quick`: first-level points tried per scenario (every k-th).
const QUICK_POINTS: usize = 24;
/// `--quick`: recovery runs killed per scenario, and points tried in each.
const QUICK_SECOND: (usize, usize) = (1, 12);
/// Full run: recovery runs killed per scenario (each at all its points).
const FULL_SECOND: usize = 3;

struct Opts {
    quick: bool,
    keep: bool,
    only: Vec<String>,
    /// `--point N` (a point of the command) or `N/M` (point M of the
    /// recovery run after a crash at N).
    points: Option<Vec<(usize, Option<usize>)>>,
    verbose: bool,
}

fn parse(args: &[String]) -> Result<Option<Opts>> {
    let mut o = Opts {
        quick: false,
        keep: false,
        only: Vec::new(),
        points: None,
        verbose: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--keep" => o.keep = true,
            "-v" | "--verbose" => o.verbose = true,
            "--cmd" => {
                let v = it.next().context(USAGE)?;
                for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let name = name.replace(' ', "-");
                    if !ALL.iter().any(|s| s.name == name) {
                        bail!("no scenario {name}; {USAGE}");
                    }
                    o.only.push(name);
                }
            }
            "--point" => {
                let v = it.next().context(USAGE)?;
                let mut ps = Vec::new();
                for n in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let bad = || format!("bad point {n:?} (N or N/M); {USAGE}");
                    let (a, b) = match n.split_once('/') {
                        Some((a, b)) => (a, Some(b.parse().with_context(bad)?)),
                        None => (n, None),
                    };
                    ps.push((a.parse().with_context(bad)?, b));
                }
                o.points = Some(ps);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unexpected argument {other}; {USAGE}"),
        }
    }
    Ok(Some(o))
}

/// A directory removed on drop.
struct Tmp(PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cargo xtask crashtest ARGS…`.
pub fn run(args: &[String]) -> Result<()> {
    let Some(opts) = parse(args)? else {
        return Ok(());
    };
    let strace = strace::find_strace()?;
    let t0 = Instant::now();
    let root = workspace_root();
    let tmp = Tmp(std::env::temp_dir().join(format!("mosaic-crashtest-{}", std::process::id())));
    if tmp.0.exists() {
        std::fs::remove_dir_all(&tmp.0)?;
    }
    std::fs::create_dir_all(&tmp.0)?;
    let (prev, next) = (tmp.0.join("releases/prev"), tmp.0.join("releases/next"));
    scenarios::releases(&root.join("framework"), &prev, &next)?;
    let bin = crate::build::debug_mosaic(&root)?;
    let ctx = Ctx {
        bin,
        strace,
        prev,
        next,
        path_env: std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        verbose: opts.verbose,
    };
    let keep_root = opts.keep.then(|| {
        std::env::temp_dir().join(format!("mosaic-crashtest-kept-{}", std::process::id()))
    });
    println!(
        "crashtest: {} mode; systemctl is a stub that succeeds, tmux a stub that fails (the crash test is about the file system, not systemd)",
        if opts.quick { "quick" } else { "full" }
    );
    let mut total = Tally::default();
    for s in ALL {
        if !opts.only.is_empty() && !opts.only.iter().any(|n| n == s.name) {
            continue;
        }
        let ts = Instant::now();
        match scenario(&ctx, s, &opts, &tmp.0, keep_root.as_deref()) {
            Ok(t) => {
                t.print(s.name, ts.elapsed().as_secs_f64());
                total.add(&t);
            }
            Err(e) => {
                println!("{}: ERROR {}", s.name, one_line(&format!("{e:#}")));
                total.errors += 1;
            }
        }
    }
    eprintln!("crashtest took {:.1} s", t0.elapsed().as_secs_f64());
    if total.missed > 0 || total.errors > 0 {
        println!(
            "crashtest: {} kill(s) missed their point, {} scenario(s) could not run",
            total.missed, total.errors
        );
    }
    println!(
        "crashtest: {} tried, {} held, {} broken",
        total.tried, total.held, total.broken
    );
    drop(tmp);
    if total.broken > 0 || total.missed > 0 || total.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    /// The command (`mosaic ARGS…`).
    args: Vec<String>,
    points: usize,
    tried: usize,
    held: usize,
    broken: usize,
    missed: usize,
    errors: usize,
    second_runs: usize,
    second_tried: usize,
    second_held: usize,
    second_broken: usize,
    lines: Vec<String>,
    /// Problem → the points where it was seen: (first-level point, point of
    /// its recovery run).
    groups: Vec<(String, Vec<At>)>,
}

/// A trial's point: (first-level point, point of its recovery run).
type At = (usize, Option<usize>);

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.tried += t.tried + t.second_tried;
        self.held += t.held + t.second_held;
        self.broken += t.broken + t.second_broken;
        self.missed += t.missed;
    }

    fn print(&self, name: &str, secs: f64) {
        println!(
            "{name} [mosaic {}]: {} points enumerated, {} tried, {} held, {} broken; recovery killed: {} run(s), {} tried, {} held, {} broken{} ({secs:.1} s)",
            world::normalize_ids(&self.args.join(" ")),
            self.points,
            self.tried,
            self.held,
            self.broken,
            self.second_runs,
            self.second_tried,
            self.second_held,
            self.second_broken,
            if self.missed > 0 {
                format!("; {} missed", self.missed)
            } else {
                String::new()
            },
        );
        for l in &self.lines {
            println!("  {l}");
        }
        if !self.groups.is_empty() {
            println!("  {name}: broken points by problem:");
            for (problem, at) in &self.groups {
                println!("    {problem}: at {}", ranges(at));
            }
        }
    }

    fn note(&mut self, problems: &[String], at: At) {
        for p in problems {
            match self.groups.iter_mut().find(|(q, _)| q == p) {
                Some((_, v)) => v.push(at),
                None => self.groups.push((p.clone(), vec![at])),
            }
        }
    }
}

/// `#4–#7, #12, after #47: #17–#21` for a list of points.
fn ranges(at: &[At]) -> String {
    let mut by: std::collections::BTreeMap<Option<usize>, Vec<usize>> = Default::default();
    for (n, m) in at {
        match m {
            None => by.entry(None).or_default().push(*n),
            Some(m) => by.entry(Some(*n)).or_default().push(*m),
        }
    }
    let mut parts = Vec::new();
    for (outer, mut ns) in by {
        ns.sort_unstable();
        ns.dedup();
        let mut runs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < ns.len() {
            let mut j = i;
            while j + 1 < ns.len() && ns[j + 1] == ns[j] + 1 {
                j += 1;
            }
            runs.push(if j > i {
                format!("#{}–#{}", ns[i], ns[j])
            } else {
                format!("#{}", ns[i])
            });
            i = j + 1;
        }
        let runs = runs.join(", ");
        parts.push(match outer {
            None => runs,
            Some(o) => format!("recovery after #{o}: {runs}"),
        });
    }
    parts.join("; ")
}

/// Every k-th of `n` items (0-based indices), about `target` of them, the
/// first at k/2; all when `n <= target`.
fn sample(n: usize, target: usize) -> Vec<usize> {
    if n <= target || target == 0 {
        return (0..n).collect();
    }
    let k = n.div_ceil(target);
    (0..n).filter(|i| i % k == k / 2).collect()
}

/// How one trial ended.
enum Verdict {
    Held,
    Broken(Vec<String>),
    Missed(String),
}

fn scenario(
    ctx: &Ctx,
    s: &Scenario,
    opts: &Opts,
    tmp: &Path,
    keep: Option<&Path>,
) -> Result<Tally> {
    let sdir = tmp.join(s.name);
    std::fs::create_dir_all(&sdir)?;
    let w = World::create(sdir.join("w"), sdir.join("scratch"))?;
    let spec = (s.setup)(ctx, &w).with_context(|| format!("setting up the {} world", s.name))?;
    let template = sdir.join("template");
    reset(&template, &w.root)?;

    // The reference: the uncrashed command, enumerated.
    reset(&w.root, &template)?;
    let before = check::operator_files(&w)?;
    let (out, points) = strace::enumerate(ctx, &w, spec.rel, &spec.args, "enum")?;
    let code = out
        .code
        .with_context(|| format!("the uncrashed `mosaic {}` was killed", spec.args.join(" ")))?;
    if code != 0 {
        bail!("the uncrashed {} (expected exit 0)", out.brief());
    }
    let after = check::operator_files(&w)?;
    let mut problems = check::leftovers(ctx, &w);
    for k in before.keys().chain(after.keys()) {
        if !(spec.intended)(k) && before.get(k) != after.get(k) {
            problems.push(format!("the uncrashed command changed operator file {k}"));
        }
    }
    let c = check::converge(ctx, &w, &spec, None)?;
    problems.extend(c.problems);
    if !problems.is_empty() {
        bail!(
            "the uncrashed `mosaic {}` itself fails the checks: {}",
            spec.args.join(" "),
            problems.join("; ")
        );
    }
    let reference = Reference {
        code,
        rerun_code: c.rerun.context("the re-run was killed")?,
        before,
        after,
        tree: c.tree,
        status: c.status,
        verify: c.verify,
    };
    if ctx.verbose {
        println!("{}: {}; {} points:", s.name, spec.about, points.len());
        for p in &points {
            println!("  {}", p.label());
        }
    }

    let mut t = Tally {
        args: spec.args.clone(),
        points: points.len(),
        ..Tally::default()
    };
    let chosen: Vec<usize> = match &opts.points {
        Some(ns) => ns
            .iter()
            .filter(|(n, m)| m.is_none() && *n >= 1 && *n <= points.len())
            .map(|(n, _)| n - 1)
            .collect(),
        None if opts.quick => sample(points.len(), QUICK_POINTS),
        None => (0..points.len()).collect(),
    };
    let trial_ctx = Trial {
        ctx,
        w: &w,
        spec: &spec,
        reference: &reference,
        keep,
        scenario: s.name,
        lastcrash: sdir.join("lastcrash"),
    };
    let mut with_journal = Vec::new();
    for &i in &chosen {
        let p = &points[i];
        let (v, journal) = trial_ctx.run(&template, &spec.args, p, None)?;
        t.tried += 1;
        // The recovery runs killed in the second level are those of crashes
        // that held: what breaks there is the recovery's own doing.
        if journal && matches!(v, Verdict::Held) {
            with_journal.push(i);
        }
        match v {
            Verdict::Held => t.held += 1,
            Verdict::Broken(why) => {
                t.broken += 1;
                t.note(&why, (p.n, None));
                t.lines
                    .push(format!("BROKEN {}: {}", p.label(), why.join("; ")));
            }
            Verdict::Missed(why) => {
                t.missed += 1;
                t.tried -= 1;
                t.lines.push(format!("MISSED {}: {why}", p.label()));
            }
        }
    }

    // Second level: kill the recovery run itself.
    let (runs, per_run) = if opts.quick {
        QUICK_SECOND
    } else {
        (FULL_SECOND, usize::MAX)
    };
    // (first-level point index, which of its recovery's points: None = the
    // sample for this mode).
    let second: Vec<(usize, Option<Vec<usize>>)> = match &opts.points {
        Some(ns) => {
            let mut by: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (n, m) in ns {
                if let Some(m) = m {
                    if *n >= 1 && *n <= points.len() && *m >= 1 {
                        by.entry(n - 1).or_default().push(m - 1);
                    }
                }
            }
            by.into_iter().map(|(n, ms)| (n, Some(ms))).collect()
        }
        None => sample(with_journal.len(), runs)
            .into_iter()
            .map(|j| (with_journal[j], None))
            .collect(),
    };
    let crashed = sdir.join("crashed");
    for (first, which) in second {
        let p = &points[first];
        reset(&w.root, &template)?;
        let k = strace::kill_at(ctx, &w, spec.rel, &spec.args, p, "l2-crash")?;
        if let Err(why) = k.landed {
            t.missed += 1;
            t.lines.push(format!(
                "MISSED {} (before killing its recovery): {why}",
                p.label()
            ));
            continue;
        }
        reset(&crashed, &w.root)?;
        let (_, rpoints) = strace::enumerate(ctx, &w, spec.rel, &spec.args, "l2-enum")?;
        t.second_runs += 1;
        let pick: Vec<usize> = match which {
            Some(ms) => ms.into_iter().filter(|m| *m < rpoints.len()).collect(),
            None if per_run == usize::MAX => (0..rpoints.len()).collect(),
            None => sample(rpoints.len(), per_run),
        };
        for i in pick {
            let q = &rpoints[i];
            let (v, _) = trial_ctx.run(&crashed, &spec.args, q, Some(p))?;
            t.second_tried += 1;
            match v {
                Verdict::Held => t.second_held += 1,
                Verdict::Broken(why) => {
                    t.second_broken += 1;
                    t.note(&why, (p.n, Some(q.n)));
                    t.lines.push(format!(
                        "BROKEN recovery after #{} killed at {}: {}",
                        p.n,
                        q.label(),
                        why.join("; ")
                    ));
                }
                Verdict::Missed(why) => {
                    t.missed += 1;
                    t.second_tried -= 1;
                    t.lines.push(format!(
                        "MISSED recovery after #{} at {}: {why}",
                        p.n,
                        q.label()
                    ));
                }
            }
        }
        if rpoints.is_empty() {
            t.lines.push(format!(
                "note: the recovery after #{} makes no mutating call",
                p.n
            ));
        }
    }
    Ok(t)
}

struct Trial<'a> {
    ctx: &'a Ctx,
    w: &'a World,
    spec: &'a Spec,
    reference: &'a Reference,
    keep: Option<&'a Path>,
    scenario: &'a str,
    lastcrash: PathBuf,
}

impl Trial<'_> {
    /// From a fresh copy of `from`, kills the command at `p`, then runs it
    /// again (the recovery) and checks everything. `outer` is the first-level
    /// point when `p` is a point of the recovery run. Returns the verdict and
    /// whether the crash left a journal.
    fn run(
        &self,
        from: &Path,
        args: &[String],
        p: &Point,
        outer: Option<&Point>,
    ) -> Result<(Verdict, bool)> {
        let (ctx, w, spec, r) = (self.ctx, self.w, self.spec, self.reference);
        reset(&w.root, from)?;
        let tag = match outer {
            Some(o) => format!("k{}-{}", o.n, p.n),
            None => format!("k{}", p.n),
        };
        let killed = strace::kill_at(ctx, w, spec.rel, args, p, &tag)?;
        if let Err(why) = killed.landed {
            return Ok((Verdict::Missed(why), false));
        }
        let journal = check::leftovers(ctx, w)
            .iter()
            .any(|m| m.starts_with("journal left"));
        if self.keep.is_some() {
            reset(&self.lastcrash, &w.root)?;
        }
        let mut bad = Vec::new();
        let mut log = vec![format!("killed: {}", killed.out.what)];
        // Right after the crash: every operator file is before or after.
        let now = check::operator_files(w)?;
        bad.extend(
            check::operator_intact(spec, &r.before, &r.after, &now)
                .into_iter()
                .map(|m| format!("right after the crash: {m}")),
        );
        // The recovery run.
        let rec = w.mosaic(ctx, spec.rel, &spec.args)?;
        log.push(format!(
            "recovery: {}\n{}{}",
            rec.what, rec.stdout, rec.stderr
        ));
        if rec.code != Some(r.code) && rec.code != Some(r.rerun_code) {
            bad.push(format!(
                "the recovery run: {}",
                w.normalize(ctx, &rec.brief())
            ));
        }
        let now = check::operator_files(w)?;
        bad.extend(check::operator_intact(spec, &r.before, &r.after, &now));
        bad.extend(check::leftovers(ctx, w));
        bad.extend(check::backups_listed(ctx, w, spec)?);
        let t = world::tree(w)?;
        if t != r.tree {
            bad.push(format!(
                "the tree differs from the uncrashed run's after the recovery run: {}",
                world::diff(&r.tree, &t, 6).join(", ")
            ));
        }
        for m in check::converge(ctx, w, spec, Some(r))?.problems {
            // What is still wrong after converging was reported already.
            let seen = m
                .strip_suffix(" (after converging)")
                .is_some_and(|base| bad.iter().any(|b| b == base))
                || m.split_once(" after converging: ").is_some_and(|(_, d)| {
                    bad.iter().any(|b| {
                        b.split_once(" after the recovery run: ")
                            .is_some_and(|(_, e)| e == d)
                    })
                });
            if !seen && !bad.contains(&m) {
                bad.push(m);
            }
        }
        if ctx.verbose {
            println!(
                "  {} {}{}",
                if bad.is_empty() { "held  " } else { "BROKEN" },
                outer
                    .map(|o| format!("recovery after #{} at ", o.n))
                    .unwrap_or_default(),
                p.label()
            );
        }
        if bad.is_empty() {
            return Ok((Verdict::Held, journal));
        }
        if let Some(keep) = self.keep {
            let dir = keep.join(format!("{}-{tag}", self.scenario));
            reset(&dir.join("crashed"), &self.lastcrash)?;
            reset(&dir.join("final"), &w.root)?;
            let mut report = format!(
                "scenario {}: mosaic {}\npoint {}\n{}\nproblems:\n  {}\n\ntrace tail:\n{}\n\n{}\n\nworld paths: W={} (crashed/ and final/ are copies of W)\n",
                self.scenario,
                spec.args.join(" "),
                p.label(),
                outer.map(|o| format!("(the recovery run after a crash at {})", o.label())).unwrap_or_default(),
                bad.join("\n  "),
                killed.tail.join("\n"),
                log.join("\n"),
                w.root.display(),
            );
            report.push('\n');
            std::fs::write(dir.join("report.txt"), report)?;
            println!("{}: kept {} ({})", self.scenario, dir.display(), p.label());
        }
        Ok((Verdict::Broken(bad), journal))
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_every_kth() {
        assert_eq!(sample(5, 12), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            sample(24, 12),
            (0..24).filter(|i| i % 2 == 1).collect::<Vec<_>>()
        );
        assert!((10..=12).contains(&sample(100, 12).len()));
        assert_eq!(sample(3, 1), vec![1]);
    }
}
