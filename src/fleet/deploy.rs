//! `mosaic fleet deploy HOST`: puts this binary on a host of the roster's
//! `hosts:` and runs its `install` there (SPEC §12, docs/fleet.md).
//!
//! One ssh call over the multiplexed connection: the fixed script of
//! [`mosaic_fleet::deploy`] on stdin, the binary right after it. Only
//! validated words travel on the command line (the sha256, the size, the
//! bin dir, the host name). `--dry-run` connects to nothing.

use super::cli::FleetCommand;
use super::Ctx;
use crate::cli::Global;
use crate::report::Printer;
use mosaic_engine::error::{Error, Result};
use mosaic_fleet::deploy as remote;
use mosaic_fleet::ssh;
use serde::Serialize;
use std::time::Duration;

/// The version of the `--json` document.
pub const JSON_VERSION: u64 = 1;

#[derive(Serialize)]
struct Step {
    step: String,
    detail: String,
}

#[derive(Serialize)]
struct Report<'a> {
    version: u64,
    host: &'a str,
    target: &'a str,
    bin_dir: String,
    binary: String,
    size: usize,
    sha256: &'a str,
    dry_run: bool,
    steps: Vec<Step>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Debug builds only: `MOSAIC_TEST_DEPLOY_STREAM=truncate|corrupt` sends
/// half the binary, or flips its last byte (tests of the failure paths).
fn test_stream(mut bin: Vec<u8>) -> Vec<u8> {
    if !cfg!(debug_assertions) {
        return bin;
    }
    match std::env::var("MOSAIC_TEST_DEPLOY_STREAM").as_deref() {
        Ok("truncate") => bin.truncate(bin.len() / 2),
        Ok("corrupt") => {
            if let Some(b) = bin.last_mut() {
                *b ^= 0xff;
            }
        }
        _ => {}
    }
    bin
}

/// Dispatches [`FleetCommand::Deploy`].
pub fn run(cmd: &FleetCommand, g: &Global, p: &Printer) -> Result<i32> {
    let FleetCommand::Deploy {
        host,
        bin_dir,
        roster,
        dry,
    } = cmd
    else {
        unreachable!("deploy::run is only called for FleetCommand::Deploy")
    };
    deploy(
        &Ctx::new(g, roster)?,
        host,
        bin_dir.as_deref(),
        dry.dry_run,
        p,
    )
}

/// Runs `fleet deploy`.
pub fn deploy(ctx: &Ctx, host: &str, bin_dir: Option<&str>, dry: bool, p: &Printer) -> Result<i32> {
    let roster = ctx.roster()?;
    let Some(h) = roster.host(host) else {
        let names: Vec<&str> = roster.resolved.values().map(|h| h.name.as_str()).collect();
        return Err(Error::Input(format!(
            "no host {host:?} in {} (hosts: {})",
            ctx.roster_path.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    if let Some(d) = bin_dir {
        remote::check_bin_dir(d).map_err(Error::Input)?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Input(format!("cannot find this mosaic binary: {e}")))?;
    let bin = std::fs::read(&exe).map_err(|e| Error::io(&exe, e))?;
    let sha = mosaic_engine::fsutil::sha256_hex(&bin);
    debug_assert!(remote::is_sha256(&sha));
    let size = bin.len();
    let dir_shown = bin_dir.unwrap_or("$HOME/.local/bin").to_string();
    let mut rep = Report {
        version: JSON_VERSION,
        host: &h.name,
        target: &h.target,
        bin_dir: dir_shown.clone(),
        binary: exe.display().to_string(),
        size,
        sha256: &sha,
        dry_run: dry,
        steps: Vec::new(),
        ok: true,
        status: None,
        error: None,
    };
    let d = ssh::Dest::from(h);
    p.line(&format!(
        "deploy {} ({} bytes, sha256 {}) to host {} ({}) as {dir_shown}/mosaic",
        exe.display(),
        size,
        sha,
        h.name,
        d.hint()
    ));
    if dry {
        for (s, what) in [
            (
                "stream",
                format!("{size} bytes to a temp file in {dir_shown}"),
            ),
            ("verify", format!("sha256 {sha}")),
            (
                "place",
                format!("chmod 755, rename over {dir_shown}/mosaic"),
            ),
            ("version", "mosaic --version".to_string()),
            ("install", "mosaic install".to_string()),
            (
                "fleet-install",
                format!(
                    "mosaic fleet install --as {} (only with a roster there)",
                    h.name
                ),
            ),
        ] {
            p.line(&format!("  would {s}: {what}"));
            rep.steps.push(Step {
                step: s.to_string(),
                detail: what,
            });
        }
        p.line("dry run: nothing was connected to or changed");
        if p.json {
            p.doc(crate::report::Doc::FleetDeploy, &rep);
        }
        return Ok(0);
    }
    let words = vec![
        sha.clone(),
        size.to_string(),
        bin_dir.unwrap_or("").to_string(),
        h.name.clone(),
    ];
    let input = remote::SCRIPT.as_bytes().to_vec();
    // A second per MiB on top of the call deadline: the stream takes time.
    let deadline = ssh::call_timeout() + Duration::from_secs(30 + (size as u64 >> 20));
    let failed = match ssh::call_bytes(&d, input, Some(test_stream(bin)), &words, deadline) {
        Err(e) => Some((e.status.as_str(), e.message)),
        Ok(r) => {
            for (s, detail) in remote::parse_steps(&r.stdout) {
                p.line(&format!("  {s}: {detail}"));
                rep.steps.push(Step { step: s, detail });
            }
            (r.code != 0).then(|| {
                (
                    "FAILED",
                    format!(
                        "host {}: deploy failed: {}",
                        h.name,
                        r.stderr
                            .lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| l.trim_start_matches("mosaic-remote: ").to_string())
                            .unwrap_or_else(|| format!("exit status {}", r.code))
                    ),
                )
            })
        }
    };
    if let Some((status, msg)) = failed {
        rep.ok = false;
        rep.status = Some(status);
        if p.json {
            rep.error = Some(msg);
            p.doc(crate::report::Doc::FleetDeploy, &rep);
        } else {
            eprintln!("mosaic: {}", msg.replace('\n', " "));
        }
        return Ok(1);
    }
    p.line(&format!("deployed to host {}", h.name));
    if p.json {
        p.doc(crate::report::Doc::FleetDeploy, &rep);
    }
    Ok(0)
}
