//! `cargo xtask matrix` (SPEC §10): the migration matrix. Builds the debug
//! `mosaic` binary once (debug, so `MOSAIC_FAILPOINT` works), derives the
//! previous and next releases from the repository's `framework/`, and runs
//! scenarios M01–M25 against the real binary in throw-away homes, printing
//! one line per scenario and a closing `N passed, N failed`; exits non-zero
//! when any failed.
//!
//! Options: `--only M05,M11` runs just those; `--list` prints the scenarios.
//! `MOSAIC_REQUIRE_REAL=1` turns a skip (no root for a mount namespace, no
//! tmux, no systemd) into a failure; `MOSAIC_MATRIX_KEEP=1` keeps the
//! throw-away directories for inspection.
//!
//! Submodules: `world` (homes, running the binary, snapshots), `fixtures`
//! (the emulated releases), `realsys` (real systemd, tmux, mounts),
//! `scenarios` (M01–M25).

mod fixtures;
mod realsys;
mod scenarios;
mod world;

use anyhow::{bail, Context, Result};
use scenarios::{Outcome, ALL};
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: cargo xtask matrix [--only M01,M05,…] [--list]";

/// Runs `cargo xtask matrix ARGS…`.
pub fn run(args: &[String]) -> Result<()> {
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => {
                let list = it.next().context(USAGE)?;
                only = Some(
                    list.split(',')
                        .map(|s| s.trim().to_ascii_uppercase())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            "--list" => {
                for s in ALL {
                    println!("{} {}", s.id, s.title);
                }
                return Ok(());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unexpected argument {other}; {USAGE}"),
        }
    }
    if let Some(only) = &only {
        for id in only {
            if !ALL.iter().any(|s| s.id == id) {
                bail!("no scenario {id}; see cargo xtask matrix --list");
            }
        }
    }
    let root = workspace_root();
    let bin = crate::build::debug_mosaic(&root)?;
    let (prev, next) = fixtures::releases(&root.join("framework"))?;
    let ctx = world::Ctx {
        bin,
        prev,
        next,
        path_env: std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        systemctl: realsys::which("systemctl"),
        require_real: std::env::var("MOSAIC_REQUIRE_REAL").is_ok_and(|v| v == "1"),
        can_unshare: realsys::can_unshare(),
    };

    let (mut passed, mut failed, mut skipped) = (0, 0, Vec::new());
    let t0 = std::time::Instant::now();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for s in ALL {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|id| id == s.id))
        {
            continue;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.run)(&ctx)));
        let result = match result {
            Ok(r) => r,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".to_string());
                Err(anyhow::anyhow!("panicked: {msg}"))
            }
        };
        match result {
            Ok(Outcome::Pass) => {
                passed += 1;
                println!("ok   {} {}", s.id, s.title);
            }
            Ok(Outcome::Skip(why)) => {
                skipped.push(s.id);
                println!("skip {} {}: {why}", s.id, s.title);
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {} {}: {}", s.id, s.title, one_line(&format!("{e:#}")));
            }
        }
    }
    std::panic::set_hook(default_hook);
    if !skipped.is_empty() {
        println!(
            "skipped {} (set MOSAIC_REQUIRE_REAL=1 to make that a failure)",
            skipped.join(", ")
        );
    }
    eprintln!("matrix took {:.1} s", t0.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    drop(ctx);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
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
