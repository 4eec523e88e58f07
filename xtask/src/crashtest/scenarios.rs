//! The emulated releases and the six scenario worlds.
//!
//! Releases: "next" (1.1.0) is a copy of the repository's `framework/`;
//! "previous" (1.0.0) is derived from it: a few files changed (one line
//! appended), two files the next release adds are absent, three files exist
//! only in the previous release (one in a directory the next release drops);
//! the next release also adds a whole new subtree (`NEW_TREE`, a directory
//! with a file and a subdirectory: filled under a temp name, renamed whole).
//! Both trees get an old fixed mtime, so no fingerprint is ever "racily clean".
//!
//! Worlds (all driven through the CLI, plus the operator's own edits):
//! * `install`: an empty home; runs `install` of 1.1.0 (every directory
//!   new).
//! * `update`: 1.0.0 installed, roster from `fleet init --preset pair`, fleet
//!   installed (env files, active units), operator files; runs
//!   `update --offline` to 1.1.0.
//! * `rollback`: the same world after that update; runs `rollback ID` with the
//!   update's backup id (an explicit id, so that running it again is
//!   idempotent).
//! * `fleet-add`: 1.1.0 installed, fleet installed; runs
//!   `fleet add coder9 --runtime claude --class reviewer`.
//! * `fleet-install`: 1.1.0 installed, roster, no fleet installed yet (no
//!   active unit dir, one operator-written env file to merge); runs
//!   `fleet install`.
//! * `prune`: the `update` world after three rounds of update and rollback
//!   (7 generations, the last run's pruned backup retired, not yet
//!   deleted); runs `update --offline` to 1.1.0, which deletes that one on
//!   its helper thread and retires the oldest of its own.

use super::world::{write_file, Ctx, Rel, World};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Files the next release changes (the previous one had a line appended).
const CHANGED: &[&str] = &[
    "fleet/README.md",
    "fleet/roles/reviewer.md",
    "tools/fleet/holder.sh",
    "systemd/user/mosaic-tmux-holder.service",
    "systemd/user/mosaic-agent@.service",
];

/// Files the next release adds (absent from the previous one).
const ADDED: &[&str] = &["docs/local-fleet-canary.md", "fleet/examples/team.yaml"];

/// Files only the next release ships, in directories no earlier release
/// had: (path, mode, content).
const NEW_TREE: &[(&str, u32, &str)] = &[
    (
        "tools/extras/new-tool.sh",
        0o755,
        "#!/bin/sh\n# added by the next release, in a new directory\nexit 0\n",
    ),
    (
        "tools/extras/more/notes.md",
        0o644,
        "# Notes\n\nIn a new directory's new subdirectory.\n",
    ),
];

/// Files only the previous release ships: (path, mode, content).
const DROPPED: &[(&str, u32, &str)] = &[
    (
        "docs/old-notes.md",
        0o644,
        "# Old notes\n\nShipped by the previous release only.\n",
    ),
    (
        "tools/legacy/run.sh",
        0o755,
        "#!/bin/sh\n# legacy runner, dropped by the next release\nexit 0\n",
    ),
    (
        "fleet/roles/old-role.md",
        0o644,
        "# Old role\n\nDropped by the next release.\n",
    ),
];

/// A shipped file the operator edits and the next release does not change.
pub const EDIT_KEPT: &str = "fleet/roles/implementer.md";
/// A shipped file the operator edits and the next release changes (conflict).
pub const EDIT_CONFLICT: &str = "fleet/README.md";
/// The operator's own files outside the preserve set.
pub const OWN: &[&str] = &["notes/mine.txt", "tools/fleet/my helper.sh"];

/// Builds the previous and next release trees below `dir`.
pub fn releases(framework: &Path, prev: &Path, next: &Path) -> Result<()> {
    copy_framework(framework, next)?;
    copy_framework(framework, prev)?;
    for rel in CHANGED.iter().chain(ADDED).chain([&EDIT_KEPT]) {
        if !next.join(rel).is_file() {
            bail!("framework/{rel} is gone; update xtask/src/crashtest/scenarios.rs to name another file");
        }
    }
    for rel in CHANGED {
        let p = prev.join(rel);
        let mode = std::fs::metadata(&p)?.permissions().mode() & 0o777;
        let mut bytes = std::fs::read(&p)?;
        bytes.extend_from_slice(b"\n# (previous release)\n");
        write_file(&p, &bytes, mode)?;
    }
    for rel in ADDED {
        std::fs::remove_file(prev.join(rel))?;
    }
    for (rel, mode, content) in DROPPED {
        if next.join(rel).exists() {
            bail!("framework/{rel} exists; the crash test needs it to be dropped; rename it in scenarios.rs");
        }
        write_file(&prev.join(rel), content.as_bytes(), *mode)?;
    }
    for (rel, mode, content) in NEW_TREE {
        if next.join(rel).exists() {
            bail!("framework/{rel} exists; the crash test needs it to be new; rename it in scenarios.rs");
        }
        write_file(&next.join(rel), content.as_bytes(), *mode)?;
    }
    for root in [prev, next] {
        age(root)?;
    }
    Ok(())
}

fn copy_framework(src: &Path, dst: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(src).min_depth(1) {
        let e = e.with_context(|| format!("cannot walk {}", src.display()))?;
        let to = dst.join(e.path().strip_prefix(src)?);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to)?;
        } else if e.file_type().is_file() {
            let mode = if e.metadata()?.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            write_file(&to, &std::fs::read(e.path())?, mode)?;
        } else {
            bail!(
                "{}: only files and directories may be in a framework tree",
                e.path().display()
            );
        }
    }
    Ok(())
}

/// Sets every mtime below `root` to 2024-01-01 (deepest first).
fn age(root: &Path) -> Result<()> {
    let t = libc::timespec {
        tv_sec: 1_704_067_200,
        tv_nsec: 0,
    };
    let mut all: Vec<_> = walkdir::WalkDir::new(root)
        .contents_first(true)
        .into_iter()
        .collect::<std::result::Result<_, _>>()?;
    all.push(
        walkdir::WalkDir::new(root)
            .max_depth(0)
            .into_iter()
            .next()
            .expect("root")?,
    );
    for e in all {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(e.path().as_os_str().as_bytes())?;
        let times = [t, t];
        // SAFETY: a valid NUL-terminated path and two timespecs.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
        if rc != 0 {
            bail!("cannot set the times of {}", e.path().display());
        }
    }
    Ok(())
}

/// What a scenario runs and which operator files it may change.
pub struct Spec {
    /// `mosaic ARGS…`.
    pub args: Vec<String>,
    /// The framework source it runs with.
    pub rel: Rel,
    /// The command's own intended edit: operator files (snapshot keys) that
    /// may be exactly before or exactly after; every other operator file
    /// must stay byte-identical.
    pub intended: fn(&str) -> bool,
    /// What the command does, for the report.
    pub about: &'static str,
}

/// One scenario.
pub struct Scenario {
    /// `--cmd` name.
    pub name: &'static str,
    /// Builds the world in `w` and says what to run.
    pub setup: fn(&Ctx, &World) -> Result<Spec>,
}

/// Every scenario, in run order.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "install",
        setup: setup_install,
    },
    Scenario {
        name: "update",
        setup: setup_update,
    },
    Scenario {
        name: "rollback",
        setup: setup_rollback,
    },
    Scenario {
        name: "fleet-add",
        setup: setup_fleet_add,
    },
    Scenario {
        name: "fleet-install",
        setup: setup_fleet_install,
    },
    Scenario {
        name: "prune",
        setup: setup_prune,
    },
];

/// Whether a snapshot key (`H/…`, `UNITS/…`) is the operator's: the preserve
/// set (`fleet/*.yaml`, `fleet/agents/**`, `fleet/run/**`), the operator's own
/// files, the shipped files they edited, and in the active unit dir
/// everything but the top-level `mosaic-*.service` units (drop-ins, other
/// units).
pub fn is_operator(key: &str) -> bool {
    // The product's temp files are litter, checked on their own.
    if key
        .rsplit('/')
        .next()
        .is_some_and(|n| n.contains(".mosaic-tmp"))
    {
        return false;
    }
    if let Some(rel) = key.strip_prefix("H/") {
        if let Some(name) = rel.strip_prefix("fleet/") {
            if !name.contains('/') && name.ends_with(".yaml") {
                return true;
            }
        }
        return rel.starts_with("fleet/agents/")
            || rel.starts_with("fleet/run/")
            || rel == EDIT_KEPT
            || rel == EDIT_CONFLICT
            || OWN.contains(&rel);
    }
    if let Some(rel) = key.strip_prefix("UNITS/") {
        let top = rel.split('/').next().unwrap_or(rel);
        return top.ends_with(".service.d") || !top.starts_with("mosaic-");
    }
    false
}

fn nothing(_: &str) -> bool {
    false
}

/// Installs `rel`, fills in a roster and the operator's files.
fn common(ctx: &Ctx, w: &World, rel: Rel) -> Result<()> {
    w.must(ctx, rel, &["install"]).context("install")?;
    w.must(ctx, rel, &["fleet", "init", "--preset", "pair"])
        .context("fleet init --preset pair")?;
    let roster = w.path("fleet/roster.yaml");
    let mut bytes = std::fs::read(&roster)?;
    bytes.extend_from_slice(b"# operator: keep this comment, byte for byte\n");
    std::fs::write(&roster, bytes)?;
    w.write(
        "fleet/agents/coder0.env",
        b"# my own settings for coder0\nMOSAIC_AGENT_COMMAND=codex --yolo\n",
        0o600,
    )?;
    w.write(
        "fleet/staging.yaml",
        b"# an extra roster\nversion: 1\nagents: []\n",
        0o644,
    )?;
    w.write(
        "fleet/run/coder0.hb",
        b"{\"v\":1,\"agent\":\"coder0\",\"ts\":1700000000,\"pid\":42,\"state\":\"idle\"}\n",
        0o644,
    )?;
    w.write(OWN[0], b"operator notes\n", 0o644)?;
    w.write(OWN[1], b"#!/bin/sh\necho mine\n", 0o755)?;
    for rel in [EDIT_KEPT, EDIT_CONFLICT] {
        let mut bytes = std::fs::read(w.path(rel))?;
        bytes.extend_from_slice(b"\n<!-- the operator's edit -->\n");
        std::fs::write(w.path(rel), bytes)?;
    }
    Ok(())
}

/// `fleet install` plus the operator's drop-in and own unit.
fn fleet_installed(ctx: &Ctx, w: &World, rel: Rel) -> Result<()> {
    w.must(ctx, rel, &["fleet", "install"])
        .context("fleet install")?;
    write_file(
        &w.units().join("mosaic-agent@.service.d/override.conf"),
        b"[Service]\nEnvironment=MY_SETTING=1\n",
        0o644,
    )?;
    write_file(
        &w.units().join("my-own.service"),
        b"[Unit]\nDescription=not mosaic's\n",
        0o644,
    )?;
    Ok(())
}

fn setup_install(_: &Ctx, w: &World) -> Result<Spec> {
    std::fs::create_dir_all(w.home())?;
    // The shipped files the other worlds' operator edits are the install's
    // own here: absent before, shipped after.
    fn edited_elsewhere(k: &str) -> bool {
        k.strip_prefix("H/")
            .is_some_and(|rel| rel == EDIT_KEPT || rel == EDIT_CONFLICT)
    }
    Ok(Spec {
        args: vec!["install".into()],
        rel: Rel::Next,
        intended: edited_elsewhere,
        about:
            "install of 1.1.0 into an empty home (every directory new, renamed into place whole)",
    })
}

fn setup_update(ctx: &Ctx, w: &World) -> Result<Spec> {
    common(ctx, w, Rel::Prev)?;
    fleet_installed(ctx, w, Rel::Prev)?;
    Ok(Spec {
        args: vec!["update".into(), "--offline".into()],
        rel: Rel::Next,
        intended: nothing,
        about: "update --offline 1.0.0 → 1.1.0 (changed, added, dropped files; units refreshed; a conflict)",
    })
}

fn setup_prune(ctx: &Ctx, w: &World) -> Result<Spec> {
    common(ctx, w, Rel::Prev)?;
    fleet_installed(ctx, w, Rel::Prev)?;
    for _ in 0..3 {
        w.must(ctx, Rel::Next, &["update", "--offline"])
            .context("update --offline")?;
        w.must(ctx, Rel::Next, &["rollback"]).context("rollback")?;
    }
    let retired = std::fs::read_dir(w.state().join("backups"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".trash-"))
        .count();
    if retired != 1 {
        bail!("the prune world holds {retired} retired backups, not the one the last run left");
    }
    Ok(Spec {
        args: vec!["update".into(), "--offline".into()],
        rel: Rel::Next,
        intended: nothing,
        about: "update --offline 1.0.0 → 1.1.0 past the last 5 generations (a retired backup deleted on the helper thread, the oldest retired)",
    })
}

fn setup_rollback(ctx: &Ctx, w: &World) -> Result<Spec> {
    common(ctx, w, Rel::Prev)?;
    fleet_installed(ctx, w, Rel::Prev)?;
    w.must(ctx, Rel::Next, &["update", "--offline"])
        .context("update --offline")?;
    let out = w.must(ctx, Rel::Next, &["backups", "--json"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).context("mosaic backups --json is not JSON")?;
    let id = v["backups"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|b| b["command"] == "update")
                .and_then(|b| b["id"].as_str())
        })
        .context("mosaic backups --json lists no update")?
        .to_string();
    Ok(Spec {
        args: vec!["rollback".into(), id],
        rel: Rel::Next,
        intended: nothing,
        about: "rollback of that update (by its backup id)",
    })
}

fn setup_fleet_add(ctx: &Ctx, w: &World) -> Result<Spec> {
    common(ctx, w, Rel::Next)?;
    fleet_installed(ctx, w, Rel::Next)?;
    fn roster(k: &str) -> bool {
        k == "H/fleet/roster.yaml"
    }
    Ok(Spec {
        args: [
            "fleet",
            "add",
            "coder9",
            "--runtime",
            "claude",
            "--class",
            "reviewer",
        ]
        .map(String::from)
        .to_vec(),
        rel: Rel::Next,
        intended: roster,
        about: "fleet add coder9 (the roster is exactly before or exactly after)",
    })
}

fn setup_fleet_install(ctx: &Ctx, w: &World) -> Result<Spec> {
    common(ctx, w, Rel::Next)?;
    fn env_files(k: &str) -> bool {
        k.starts_with("H/fleet/agents/")
    }
    Ok(Spec {
        args: vec!["fleet".into(), "install".into()],
        rel: Rel::Next,
        intended: env_files,
        about: "fleet install (env files merged/created, units copied, stub systemctl)",
    })
}
