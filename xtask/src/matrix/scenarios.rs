//! The scenarios M01–M20 of SPEC §10 (and M21–M25 for the pipeline), each against the real binary in its
//! own throw-away world. Every scenario checks the files it names byte for
//! byte and ends with an immediate second update that must change nothing.
//! A scenario returns `Ok(Outcome::Pass)` only after all its checks ran.

use super::fixtures::{ADDED, CHANGED, DROPPED, HOLDER_UNIT, NEXT_VERSION, UNCHANGED};
use super::realsys::{mosaic_with_read_only_dir, Manager, TmuxServer};
use super::world::{
    check_absent, check_file, clip, newest_backup, same, snapshot, snapshot_into, write_file, Ctx,
    Release, Snapshot, World,
};
use anyhow::{bail, ensure, Context, Result};

/// How a scenario ended when it did not fail.
pub enum Outcome {
    /// Every check ran and held.
    Pass,
    /// This machine cannot run it (and `MOSAIC_REQUIRE_REAL` is not set).
    Skip(String),
}

/// One scenario: id, title, body.
pub struct Scenario {
    /// `M01`…
    pub id: &'static str,
    /// What it checks (SPEC §10 wording).
    pub title: &'static str,
    /// The body.
    pub run: fn(&Ctx) -> Result<Outcome>,
}

macro_rules! scenarios {
    ($($id:literal $f:ident $title:literal,)*) => {
        /// Every scenario, in order.
        pub const ALL: &[Scenario] = &[$(Scenario { id: $id, title: $title, run: $f },)*];
    };
}

scenarios! {
    "M01" m01 "fresh install into an empty home",
    "M02" m02 "re-install of the same version: zero writes",
    "M03" m03 "update from the previous version, nothing edited: shipped replaced, dropped deleted",
    "M04" m04 "operator edited a shipped file the release also changed: kept, .mosaic-new written",
    "M05" m05 "operator edited a shipped file the release did not change: kept silently",
    "M06" m06 "operator's rosters, agents/, run/ survive; examples/ refreshed; schema seeded",
    "M07" m07 "operator's own files outside the preserve set survive",
    "M08" m08 "shipped file dropped by the release, unedited: deleted (and backed up)",
    "M09" m09 "shipped file dropped by the release, edited: kept, reported",
    "M10" m10 "legacy install without a manifest: adopted, differing files backed up",
    "M11" m11 "legacy socket in rosters and env files: migrated, comments kept",
    "M12" m12 "legacy socket with live sessions: migration deferred, sessions intact",
    "M13" m13 "active units present: refreshed, daemon-reload once, drop-ins and other units untouched",
    "M14" m14 "no fleet installed: no units written, no daemon-reload",
    "M15" m15 "systemctl missing or failing: sync succeeds with a warning",
    "M16" m16 "type clash (directory where a file ships): blocker reported, nothing changed",
    "M17" m17 "symlinks below H (file replaced by a link, linked directory): never written through",
    "M18" m18 "unwritable path mid-update: error, everything rolled back",
    "M19" m19 "a previous update was killed mid-apply: next run recovers and converges",
    "M20" m20 "older binary against a newer install: refused without --allow-downgrade",
    "M21" m21 "concurrent writers: two fleet adds during an update all land",
    "M22" m22 "rollback keeps the roster and the operator's later edits; the manifest stays",
    "M23" m23 "two spellings of one home: a crash under H/ is recovered by a run spelled H",
    "M24" m24 "a second home leaves the active units alone (no refresh, no daemon-reload)",
    "M25" m25 "link swap: a directory swapped for a symlink mid-update is never followed; rolled back",
}

/// Operator files in the preserve set: (path, content, mode).
const PRESERVED: &[(&str, &str, u32)] = &[
    (
        "fleet/roster.yaml",
        "# my roster: keep every byte\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-fleet\n  holder_session: _holder\nagents:\n  - name: coder0\n    runtime: codex   # mine\n",
        0o644,
    ),
    ("fleet/staging.yaml", "# an extra roster\nversion: 1\nagents: []\n", 0o644),
    ("fleet/agents/coder0.env", "MOSAIC_AGENT=coder0\nMOSAIC_AGENT_COMMAND=codex --yolo\n", 0o600),
    ("fleet/agents/keys/token.txt", "not really a secret\n", 0o600),
    (
        "fleet/run/coder0.hb",
        "{\"v\":1,\"agent\":\"coder0\",\"ts\":1700000000,\"pid\":42,\"state\":\"idle\"}\n",
        0o644,
    ),
];

/// Operator files outside the preserve set that no release ships.
const OWN: &[(&str, &str, u32)] = &[
    ("notes/mine.txt", "operator notes\n", 0o644),
    ("tools/fleet/my helper.sh", "#!/bin/sh\necho mine\n", 0o755),
    ("docs/Ünïcødé notes.md", "ünïcødé\n", 0o644),
    (
        "tools/legacy/mine.txt",
        "in a directory the release drops\n",
        0o644,
    ),
    ("fleet/examples/my-own.yaml", "# my own example\n", 0o644),
    ("fleet/roles/custom-role.md", "# my role\n", 0o600),
];

fn put_all(w: &World, files: &[(&str, &str, u32)]) -> Result<()> {
    for (rel, content, mode) in files {
        w.write(rel, content.as_bytes(), *mode)?;
    }
    Ok(())
}

fn check_all(w: &World, files: &[(&str, &str, u32)], what: &str) -> Result<()> {
    for (rel, content, mode) in files {
        check_file(&w.path(rel), content.as_bytes(), Some(*mode), what)?;
    }
    Ok(())
}

/// Fails if any stdout line names one of `rels`.
fn not_mentioned(out: &super::world::Out, rels: &[&str]) -> Result<()> {
    for rel in rels {
        if let Some(l) = out.stdout.lines().find(|l| l.contains(rel)) {
            bail!("`{}` mentioned {rel}: {l:?}", out.what);
        }
    }
    Ok(())
}

/// Every file `release` ships is installed byte for byte with its mode,
/// except the paths in `except`.
fn check_release(w: &World, release: &Release, except: &[&str]) -> Result<()> {
    for (rel, (mode, bytes)) in release.files()? {
        if except.contains(&rel.as_str()) {
            continue;
        }
        check_file(&w.path(&rel), &bytes, Some(mode), &format!("shipped {rel}"))?;
    }
    Ok(())
}

fn verify_clean(ctx: &Ctx, w: &World, release: &Release) -> Result<()> {
    w.mosaic(ctx, Some(release), &["verify"], &[])?
        .expect(0)
        .context("mosaic verify")?;
    Ok(())
}

fn skip_or_fail(ctx: &Ctx, reason: String) -> Result<Outcome> {
    if ctx.require_real {
        bail!("{reason} (MOSAIC_REQUIRE_REAL=1 forbids skipping)");
    }
    Ok(Outcome::Skip(reason))
}

/// The home's manifest (a binary index since the compact manifest; the
/// engine decodes it).
fn read_manifest(w: &World) -> Result<mosaic_engine::manifest::Manifest> {
    let path = w.path(".mosaic/manifest.json");
    let bytes = w.read(".mosaic/manifest.json")?;
    mosaic_engine::manifest::Manifest::parse(&path, &bytes).map_err(|e| anyhow::anyhow!("{e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn m01(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    check_absent(&w.home(), "before the install")?;
    let out = w.mosaic(ctx, Some(&ctx.next), &["install"], &[])?;
    out.expect(0)?;
    check_release(&w, &ctx.next, &[])?;
    for rel in ctx.next.files()?.keys() {
        let reported = out
            .stdout
            .lines()
            .any(|l| l == format!("created {rel}") || l == format!("seeded {rel}"));
        ensure!(
            reported,
            "no `created {rel}` line; stdout: {:?}",
            clip(&out.stdout)
        );
    }
    let meta = std::fs::metadata(w.path(".mosaic"))?;
    ensure!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777 == 0o700,
        "H/.mosaic is not 0700"
    );
    let manifest = read_manifest(&w)?;
    ensure!(
        manifest.version.to_string() == NEXT_VERSION,
        "manifest version is {}, expected {NEXT_VERSION}",
        manifest.version
    );
    check_absent(&w.units(), "no unit dir without a fleet")?;
    verify_clean(ctx, &w, &ctx.next)?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

fn m02(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.next)?;
    // The one write a no-op may make: once the install's files have
    // settled (their mtimes older than a run's start less the racy-clean
    // granularity, 50 ms), the next run records their fingerprints as
    // trusted in the manifest (docs/architecture.md, "Racily clean").
    // Settled here first, so whether the re-install or the second update
    // came first after it is not a matter of timing.
    std::thread::sleep(std::time::Duration::from_millis(150));
    w.update(ctx, &ctx.next)?.expect(0)?;
    put_all(&w, PRESERVED)?;
    put_all(&w, OWN)?;
    let stamps = w.stamps()?;
    let snap = w.snapshot()?;
    let out = w.mosaic(ctx, Some(&ctx.next), &["install"], &[])?;
    out.expect(0)?;
    ensure!(
        out.stdout.contains("up to date"),
        "re-install did not say up to date: {:?}",
        clip(&out.stdout)
    );
    ensure!(
        out.change_lines().is_empty(),
        "re-install reported {:?}",
        out.change_lines()
    );
    same(&snap, &w.snapshot()?, "the re-install")?;
    ensure!(
        w.stamps()? == stamps,
        "the re-install touched mtimes or inodes below H"
    );
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    let now = w.stamps()?;
    let moved: Vec<&String> = now
        .iter()
        .filter(|(k, v)| stamps.get(*k) != Some(v))
        .map(|(k, _)| k)
        .chain(stamps.keys().filter(|k| !now.contains_key(*k)))
        .collect();
    ensure!(
        moved.is_empty(),
        "the second update touched mtimes or inodes below H: {moved:?}"
    );
    check_all(&w, PRESERVED, "operator file")?;
    check_release(&w, &ctx.next, &[])?;
    Ok(Outcome::Pass)
}

fn m03(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    check_release(&w, &ctx.prev, &[])?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    check_release(&w, &ctx.next, &[])?;
    for (rel, _) in CHANGED {
        out.has_line(&format!("updated {rel}"))?;
    }
    for rel in ADDED {
        out.has_line(&format!("created {rel}"))?;
    }
    for (rel, _, _) in DROPPED {
        out.has_line(&format!("deleted {rel}"))?;
        check_absent(&w.path(rel), "dropped file")?;
    }
    check_absent(&w.path("tools/legacy"), "emptied directory mosaic created")?;
    not_mentioned(&out, UNCHANGED)?;
    verify_clean(ctx, &w, &ctx.next)?;
    w.mosaic(ctx, Some(&ctx.next), &["status"], &[])?
        .expect(0)
        .context("mosaic status after the update")?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

fn m04(ctx: &Ctx) -> Result<Outcome> {
    let rel = "fleet/README.md";
    let mine = b"# My fleet notes\n\nI rewrote this file.\n";
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    w.write(rel, mine, 0o644)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    out.has_line(&format!("conflict {rel}"))?;
    ensure!(
        out.stdout.contains(&format!("{rel}.mosaic-new")),
        "the conflict line does not name {rel}.mosaic-new: {:?}",
        clip(&out.stdout)
    );
    check_file(&w.path(rel), mine, Some(0o644), "operator's edited file")?;
    check_file(
        &w.path(&format!("{rel}.mosaic-new")),
        &ctx.next.file(rel),
        None,
        "the new release's file beside it",
    )?;
    check_release(&w, &ctx.next, &[rel])?;
    let second = w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    not_mentioned(&second, &[".mosaic-new"])?;
    Ok(Outcome::Pass)
}

fn m05(ctx: &Ctx) -> Result<Outcome> {
    let rel = UNCHANGED[0];
    let mine = b"# Implementer\n\nMy own instructions.\n";
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    w.write(rel, mine, 0o644)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    not_mentioned(&out, &[rel])?;
    check_file(&w.path(rel), mine, Some(0o644), "operator's edited file")?;
    check_absent(
        &w.path(&format!("{rel}.mosaic-new")),
        "no .mosaic-new when the release did not change it",
    )?;
    check_release(&w, &ctx.next, &[rel])?;
    let second = w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    not_mentioned(&second, &[rel])?;
    Ok(Outcome::Pass)
}

fn m06(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, PRESERVED)?;
    w.write("fleet/examples/my-own.yaml", b"# my own example\n", 0o644)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    check_all(&w, PRESERVED, "preserved operator file")?;
    let names: Vec<&str> = PRESERVED.iter().map(|p| p.0).collect();
    not_mentioned(&out, &names)?;
    check_file(
        &w.path("fleet/examples/my-own.yaml"),
        b"# my own example\n",
        Some(0o644),
        "operator's example",
    )?;
    let mut examples = 0;
    for (rel, (mode, bytes)) in ctx.next.files()? {
        if rel.starts_with("fleet/examples/") || rel == "fleet/roster.schema.json" {
            check_file(&w.path(&rel), &bytes, Some(mode), "refreshed")?;
            examples += 1;
        }
    }
    ensure!(examples > 2, "the release ships no examples to check");
    out.has_line("updated fleet/examples/minimal.yaml")?;
    out.has_line("updated fleet/roster.schema.json")?;
    check_release(&w, &ctx.next, &[])?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;

    // Seeding: the schema and the examples missing from disk come back.
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, PRESERVED)?;
    std::fs::remove_file(w.path("fleet/roster.schema.json"))?;
    std::fs::remove_dir_all(w.path("fleet/examples"))?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    check_all(&w, PRESERVED, "preserved operator file")?;
    check_release(&w, &ctx.next, &[])?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

fn m07(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, OWN)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    check_all(&w, OWN, "operator's own file")?;
    let names: Vec<&str> = OWN.iter().map(|p| p.0).collect();
    not_mentioned(&out, &names)?;
    out.has_line("deleted tools/legacy/run.sh")?;
    check_absent(
        &w.path("tools/legacy/run.sh"),
        "dropped file beside an operator file",
    )?;
    check_release(&w, &ctx.next, &[])?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    check_all(&w, OWN, "operator's own file")?;
    Ok(Outcome::Pass)
}

fn m08(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    let backup = newest_backup(&w)?;
    for (rel, _, content) in DROPPED {
        out.has_line(&format!("deleted {rel}"))?;
        check_absent(&w.path(rel), "dropped, unedited file")?;
        check_file(
            &mosaic_engine::txn::backup_copy(&backup, rel)?,
            content.as_bytes(),
            None,
            "the backup copy",
        )?;
    }
    check_absent(&w.path("tools/legacy"), "emptied directory mosaic created")?;
    check_release(&w, &ctx.next, &[])?;
    verify_clean(ctx, &w, &ctx.next)?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

fn m09(ctx: &Ctx) -> Result<Outcome> {
    let rel = "docs/old-notes.md";
    let mine = b"# Old notes\n\nI added my own notes here.\n";
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    w.write(rel, mine, 0o644)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    out.has_line(&format!("kept (yours) {rel}"))?;
    check_file(&w.path(rel), mine, Some(0o644), "dropped but edited file")?;
    check_absent(&w.path("tools/legacy/run.sh"), "the unedited dropped file")?;
    check_release(&w, &ctx.next, &[])?;
    verify_clean(ctx, &w, &ctx.next)?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    check_file(&w.path(rel), mine, Some(0o644), "dropped but edited file")?;
    Ok(Outcome::Pass)
}

fn m10(ctx: &Ctx) -> Result<Outcome> {
    let edited = "fleet/README.md";
    let legacy_edit = b"edited under the old shell installer\n";
    let w = World::new(ctx)?;
    super::fixtures::copy_tree(&ctx.prev.dir(), &w.home())?;
    w.write(edited, legacy_edit, 0o644)?;
    put_all(&w, PRESERVED)?;
    check_absent(&w.path(".mosaic"), "a legacy install has no records")?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    check_release(&w, &ctx.next, &[])?;
    check_all(&w, PRESERVED, "preserved operator file")?;
    let manifest = read_manifest(&w).context("no manifest written")?;
    ensure!(
        manifest.version.to_string() == NEXT_VERSION,
        "manifest version {}",
        manifest.version
    );
    let backup = newest_backup(&w)?;
    let copy = |rel: &str| mosaic_engine::txn::backup_copy(&backup, rel);
    check_file(
        &copy(edited)?,
        legacy_edit,
        None,
        "backup of the edited legacy file",
    )?;
    for (rel, _) in CHANGED.iter().filter(|c| c.0 != edited) {
        check_file(
            &copy(rel)?,
            &ctx.prev.file(rel),
            None,
            "backup of a differing legacy file",
        )?;
        out.has_line(&format!("updated {rel}"))?;
    }
    // Files the old installer left that no release ships any more are the
    // operator's now (nothing proves they are ours): never touched.
    for (rel, mode, content) in DROPPED {
        check_file(
            &w.path(rel),
            content.as_bytes(),
            Some(*mode),
            "legacy file without a manifest entry",
        )?;
    }
    verify_clean(ctx, &w, &ctx.next)?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

/// (path, mode, before, expected after) for the socket migration.
fn socket_files() -> Vec<(&'static str, u32, &'static str, &'static str)> {
    vec![
        (
            "fleet/roster.yaml",
            0o644,
            "# my fleet (it ran on mosaic-factory until the rename; keep this comment)\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-factory   # the old name\n  holder_session: _holder\nagents:\n  - name: coder0\n    runtime: codex\n    socket: mosaic-factory\n  - name: rev1\n    runtime: claude\n    socket: \"mosaic-factory\"  # quoted\n",
            "# my fleet (it ran on mosaic-factory until the rename; keep this comment)\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-fleet   # the old name\n  holder_session: _holder\nagents:\n  - name: coder0\n    runtime: codex\n    socket: mosaic-fleet\n  - name: rev1\n    runtime: claude\n    socket: \"mosaic-fleet\"  # quoted\n",
        ),
        (
            "fleet/team.yaml",
            0o644,
            "version: 1\ntmux:\n  holder_session: _holder\n  socket_name: 'mosaic-factory'\nagents:\n  - { name: flow0, runtime: pi, socket: mosaic-factory }\n",
            "version: 1\ntmux:\n  holder_session: _holder\n  socket_name: 'mosaic-fleet'\nagents:\n  - { name: flow0, runtime: pi, socket: mosaic-fleet }\n",
        ),
        (
            "fleet/agents/coder0.env",
            0o600,
            "# written by mosaic fleet install\nMOSAIC_AGENT=coder0\nMOSAIC_TMUX_SOCKET=mosaic-factory\nMOSAIC_AGENT_COMMAND=codex --note mosaic-factory\n",
            "# written by mosaic fleet install\nMOSAIC_AGENT=coder0\nMOSAIC_TMUX_SOCKET=mosaic-fleet\nMOSAIC_AGENT_COMMAND=codex --note mosaic-factory\n",
        ),
        (
            "fleet/agents/_holder.env",
            0o600,
            "MOSAIC_TMUX_SOCKET=mosaic-factory\nMOSAIC_HOLDER_SESSION=_holder\n",
            "MOSAIC_TMUX_SOCKET=mosaic-fleet\nMOSAIC_HOLDER_SESSION=_holder\n",
        ),
    ]
}

/// Files the socket migration must never touch.
const SOCKET_UNTOUCHED: &[(&str, &str, u32)] = &[
    (
        "fleet/default-socket.yaml",
        "# no socket_name: the default tmux server, never rewritten\nversion: 1\ntmux:\n  holder_session: _holder\nagents:\n  - name: solo\n    runtime: pi\n",
        0o644,
    ),
    ("fleet/already.yaml", "version: 1\ntmux:\n  socket_name: mosaic-fleet\nagents: []\n", 0o644),
    ("fleet/agents/default.env", "MOSAIC_TMUX_SOCKET=\nMOSAIC_AGENT=default\n", 0o600),
    (
        "fleet/lookalike.yaml",
        "version: 1\ntmux:\n  socket_name: mosaic-factory-2\n  my_socket: mosaic-factory\nagents: []\n",
        0o644,
    ),
];

fn m11(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    for (rel, mode, before, _) in socket_files() {
        w.write(rel, before.as_bytes(), mode)?;
    }
    put_all(&w, SOCKET_UNTOUCHED)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    for (rel, mode, _, after) in socket_files() {
        check_file(&w.path(rel), after.as_bytes(), Some(mode), "migrated file")?;
        out.has_line(&format!("migrated {rel}"))?;
    }
    check_all(&w, SOCKET_UNTOUCHED, "file the migration must not touch")?;
    let names: Vec<&str> = SOCKET_UNTOUCHED.iter().map(|p| p.0).collect();
    not_mentioned(&out, &names)?;
    check_release(&w, &ctx.next, &[])?;
    let second = w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    ensure!(
        !second.stdout.contains("migrated"),
        "the second update migrated again: {:?}",
        clip(&second.stdout)
    );
    Ok(Outcome::Pass)
}

fn m12(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    for (rel, mode, before, _) in socket_files() {
        w.write(rel, before.as_bytes(), mode)?;
    }
    let server = match TmuxServer::start(ctx, &w, "mosaic-factory", "coder0", "sleep 600")? {
        Ok(s) => s,
        Err(reason) => return skip_or_fail(ctx, reason),
    };
    ensure!(
        server.has_session("coder0")?,
        "the legacy session did not start"
    );
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    for needle in ["deferred", "mosaic update --relaunch"] {
        ensure!(
            out.stderr.contains(needle),
            "no warning containing {needle:?} on stderr: {:?}",
            clip(&out.stderr)
        );
    }
    for (rel, mode, before, _) in socket_files() {
        check_file(
            &w.path(rel),
            before.as_bytes(),
            Some(mode),
            "deferred migration leaves the file",
        )?;
    }
    ensure!(
        !out.stdout.contains("migrated"),
        "migrated despite live sessions: {:?}",
        clip(&out.stdout)
    );
    ensure!(
        server.has_session("coder0")?,
        "the live legacy session is gone after the update"
    );
    check_release(&w, &ctx.next, &[])?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    ensure!(
        server.has_session("coder0")?,
        "the live legacy session is gone after the second update"
    );
    drop(server);
    Ok(Outcome::Pass)
}

const UNITS: &[&str] = &["mosaic-tmux-holder.service", "mosaic-agent@.service"];

/// Installs the previous release's units into the active dir, as
/// `mosaic fleet install` would have, plus drop-ins and a foreign unit.
fn install_fleet_units(ctx: &Ctx, w: &World) -> Result<()> {
    for u in UNITS {
        write_file(
            &w.units().join(u),
            &ctx.prev.file(&format!("systemd/user/{u}")),
            0o644,
        )?;
    }
    foreign_units(w)
}

fn foreign_units(w: &World) -> Result<()> {
    write_file(
        &w.units().join("mosaic-agent@.service.d/override.conf"),
        b"[Service]\nEnvironment=MY_OVERRIDE=1\n",
        0o644,
    )?;
    write_file(
        &w.units().join("mosaic-tmux-holder.service.d/10-local.conf"),
        b"[Unit]\nDescription=my holder\n",
        0o644,
    )?;
    write_file(
        &w.units().join("foo.service"),
        b"[Unit]\nDescription=not mosaic's\n\n[Service]\nExecStart=/bin/true\n",
        0o644,
    )
}

/// The active dir without the shipped units: drop-ins and other units.
fn foreign_snapshot(w: &World) -> Result<Snapshot> {
    let mut s = Snapshot::new();
    snapshot_into(&mut s, "", &w.units())?;
    s.retain(|k, _| !UNITS.contains(&k.as_str()));
    Ok(s)
}

fn check_units_current(ctx: &Ctx, w: &World) -> Result<()> {
    let entries: std::collections::BTreeSet<String> = std::fs::read_dir(w.units())?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let expected: std::collections::BTreeSet<String> = [
        "foo.service",
        "mosaic-agent@.service",
        "mosaic-agent@.service.d",
        "mosaic-tmux-holder.service",
        "mosaic-tmux-holder.service.d",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ensure!(
        entries == expected,
        "the active unit dir holds {entries:?}, expected exactly {expected:?}"
    );
    for u in UNITS {
        check_file(
            &w.units().join(u),
            &ctx.next.file(&format!("systemd/user/{u}")),
            None,
            "active unit",
        )?;
    }
    Ok(())
}

fn m13(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    install_fleet_units(ctx, &w)?;
    let mgr = match Manager::start(ctx, &w)? {
        Ok(m) => m,
        Err(reason) => return skip_or_fail(ctx, reason),
    };
    mgr.systemctl(ctx, &w, &["daemon-reload"])?.expect(0)?;
    let holder = UNITS[0];
    let old = mgr.systemctl(ctx, &w, &["cat", holder])?;
    old.expect(0)?;
    ensure!(
        old.stdout.contains("# previous release"),
        "systemd does not see the previous holder unit: {:?}",
        clip(&old.stdout)
    );
    let foreign = foreign_snapshot(&w)?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(0)?;
    check_release(&w, &ctx.next, &[])?;
    check_units_current(ctx, &w)?;
    for u in UNITS {
        let named = out.stdout.lines().any(|l| {
            l.contains(&format!("systemd/user/{u}")) && (l.contains(".config/") || l.contains("~/"))
        });
        ensure!(
            named,
            "no line names the refreshed active unit {u}; stdout: {:?}",
            clip(&out.stdout)
        );
    }
    same(
        &foreign,
        &foreign_snapshot(&w)?,
        "the unit refresh (drop-ins, other units)",
    )?;
    ensure!(
        w.daemon_reloads() == 1,
        "expected exactly one daemon-reload, systemctl saw: {:?}",
        w.systemctl_calls()
    );
    ensure!(
        w.systemctl_calls()
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["--user", "daemon-reload"]),
        "no `systemctl --user daemon-reload`: {:?}",
        w.systemctl_calls()
    );
    let need = mgr.systemctl(ctx, &w, &["show", "-p", "NeedDaemonReload", holder])?;
    need.expect(0)?;
    ensure!(
        need.stdout.trim() == "NeedDaemonReload=no",
        "systemd still needs a reload: {:?}",
        need.stdout.trim()
    );
    let cat = mgr.systemctl(ctx, &w, &["cat", holder])?;
    cat.expect(0)?;
    ensure!(
        cat.stdout.contains(&text(&ctx.next.file(HOLDER_UNIT)))
            && !cat.stdout.contains("# previous release"),
        "systemd does not show the new holder unit: {:?}",
        clip(&cat.stdout)
    );
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    ensure!(
        w.daemon_reloads() == 1,
        "the second update ran daemon-reload again: {:?}",
        w.systemctl_calls()
    );
    drop(mgr);
    Ok(Outcome::Pass)
}

fn m14(ctx: &Ctx) -> Result<Outcome> {
    // (a) no active unit dir at all; (b) a unit dir holding only other units.
    for with_dir in [false, true] {
        let w = World::new(ctx)?;
        w.install(ctx, &ctx.prev)?;
        if with_dir {
            foreign_units(&w)?;
        }
        let foreign = foreign_snapshot(&w)?;
        let out = w.update(ctx, &ctx.next)?;
        out.expect(0)?;
        check_release(&w, &ctx.next, &[])?;
        if with_dir {
            for u in UNITS {
                check_absent(&w.units().join(u), "a unit without a fleet")?;
            }
            same(&foreign, &foreign_snapshot(&w)?, "the update (other units)")?;
        } else {
            check_absent(&w.units(), "the active unit dir without a fleet")?;
        }
        ensure!(
            w.daemon_reloads() == 0,
            "daemon-reload without a fleet: {:?}",
            w.systemctl_calls()
        );
        w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
        ensure!(
            w.daemon_reloads() == 0,
            "daemon-reload on the second update: {:?}",
            w.systemctl_calls()
        );
    }
    Ok(Outcome::Pass)
}

fn m15(ctx: &Ctx) -> Result<Outcome> {
    for failing in ["missing", "failing"] {
        let mut w = World::new(ctx)?;
        w.systemctl = if failing == "missing" {
            "/nonexistent/systemctl".into()
        } else {
            w.write_wrapper(
                "systemctl-failing",
                "echo 'Failed to connect to bus: No medium found' >&2\nexit 1\n",
            )?
            .into_os_string()
        };
        w.install(ctx, &ctx.prev)?;
        install_fleet_units(ctx, &w)?;
        let foreign = foreign_snapshot(&w)?;
        let out = w
            .update(ctx, &ctx.next)
            .with_context(|| format!("systemctl {failing}"))?;
        out.expect(0)
            .with_context(|| format!("systemctl {failing}"))?;
        ensure!(
            out.stderr.to_lowercase().contains("warning") && out.stderr.contains("systemctl"),
            "systemctl {failing}: no warning mentioning systemctl on stderr: {:?}",
            clip(&out.stderr)
        );
        check_release(&w, &ctx.next, &[])?;
        check_units_current(ctx, &w).with_context(|| format!("systemctl {failing}"))?;
        same(
            &foreign,
            &foreign_snapshot(&w)?,
            "the unit refresh (drop-ins, other units)",
        )?;
        if failing == "failing" {
            ensure!(
                w.daemon_reloads() >= 1,
                "the failing systemctl was never asked to daemon-reload: {:?}",
                w.systemctl_calls()
            );
        }
        w.second_update_changes_nothing(ctx, &ctx.next, 0)
            .with_context(|| format!("systemctl {failing}"))?;
    }
    Ok(Outcome::Pass)
}

fn m16(ctx: &Ctx) -> Result<Outcome> {
    let rel = "fleet/README.md";
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    std::fs::remove_file(w.path(rel))?;
    w.write(
        &format!("{rel}/mine.txt"),
        b"operator data inside the clash\n",
        0o644,
    )?;
    let before = w.snapshot()?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(3)?;
    out.has_line(&format!("blocked {rel}"))?;
    ensure!(
        out.stderr.contains("blocked") && out.stderr.contains("nothing was changed"),
        "stderr does not say the update was blocked: {:?}",
        clip(&out.stderr)
    );
    same(&before, &w.snapshot()?, "the blocked update")?;
    check_file(
        &w.path(&format!("{rel}/mine.txt")),
        b"operator data inside the clash\n",
        Some(0o644),
        "operator data",
    )?;
    w.second_update_changes_nothing(ctx, &ctx.next, 3)?;
    Ok(Outcome::Pass)
}

fn m17(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    let outside = w.root().join("outside");
    std::fs::create_dir_all(&outside)?;
    // (a) a shipped file the release changes, replaced by a link to a file
    // outside H
    let target = outside.join("my-holder.sh");
    write_file(&target, b"#!/bin/sh\n# the operator's own holder\n", 0o755)?;
    std::fs::remove_file(w.path("tools/fleet/holder.sh"))?;
    std::os::unix::fs::symlink(&target, w.path("tools/fleet/holder.sh"))?;
    // (b) a shipped directory moved into a dotfiles repo and linked back
    let dotfiles = outside.join("dotfiles-roles");
    std::fs::rename(w.path("fleet/roles"), &dotfiles)?;
    std::os::unix::fs::symlink(&dotfiles, w.path("fleet/roles"))?;
    let outside_before = snapshot(&outside)?;
    let before = w.snapshot()?;
    let out = w.update(ctx, &ctx.next)?;
    out.expect(3)?;
    out.has_line("blocked tools/fleet/holder.sh")?;
    ensure!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("blocked fleet/roles/")),
        "no blocker reported below the linked fleet/roles: {:?}",
        clip(&out.stdout)
    );
    same(
        &outside_before,
        &snapshot(&outside)?,
        "the blocked update (link targets outside H)",
    )?;
    same(&before, &w.snapshot()?, "the blocked update")?;
    w.second_update_changes_nothing(ctx, &ctx.next, 3)?;
    same(
        &outside_before,
        &snapshot(&outside)?,
        "the second update (link targets outside H)",
    )?;
    // --dry-run never writes through them either
    w.mosaic(
        ctx,
        Some(&ctx.next),
        &["update", "--offline", "--dry-run"],
        &[],
    )?;
    same(
        &outside_before,
        &snapshot(&outside)?,
        "a dry run (link targets outside H)",
    )?;
    Ok(Outcome::Pass)
}

fn m18(ctx: &Ctx) -> Result<Outcome> {
    if !ctx.can_unshare {
        return skip_or_fail(
            ctx,
            "a real read-only mount needs root and `unshare -m` (with mount)".to_string(),
        );
    }
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, PRESERVED)?;
    put_all(&w, OWN)?;
    let before = snapshot(&w.home())?;
    // The next release changes docs/, fleet/ and systemd/ files (written
    // first) and tools/fleet/holder.sh, which sits on the read-only mount.
    let out = mosaic_with_read_only_dir(
        ctx,
        &w,
        &ctx.next,
        &w.path("tools/fleet"),
        &["update", "--offline"],
    )?;
    out.expect(4)?;
    for needle in ["tools/fleet/", "Read-only file system", "rolled back"] {
        ensure!(
            out.stderr.contains(needle),
            "stderr does not say {needle:?}: {:?}",
            clip(&out.stderr)
        );
    }
    let mut after = snapshot(&w.home())?;
    after.remove(".mosaic/lock");
    let mut before = before;
    before.remove(".mosaic/lock");
    same(&before, &after, "the failed update (rolled back)")?;
    // Without the fault the same update lands.
    w.update(ctx, &ctx.next)?
        .expect(0)
        .context("the update after the fault")?;
    check_release(&w, &ctx.next, &[])?;
    check_all(&w, PRESERVED, "preserved operator file")?;
    check_all(&w, OWN, "operator's own file")?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

fn m19(ctx: &Ctx) -> Result<Outcome> {
    for point in ["after-backup", "mid-apply", "before-manifest"] {
        let w = World::new(ctx)?;
        w.install(ctx, &ctx.prev)?;
        put_all(&w, PRESERVED)?;
        put_all(&w, OWN)?;
        let crashed = w.mosaic(
            ctx,
            Some(&ctx.next),
            &["update", "--offline"],
            &[("MOSAIC_FAILPOINT", point)],
        )?;
        ensure!(
            crashed.code.is_none(),
            "{point}: the update was not killed (exit {}); is the binary a debug build? stderr: {:?}",
            crashed.status_text(),
            clip(&crashed.stderr)
        );
        let out = w.update(ctx, &ctx.next)?;
        out.expect(0)
            .with_context(|| format!("the run after a crash at {point}"))?;
        check_release(&w, &ctx.next, &[]).with_context(|| format!("after a crash at {point}"))?;
        check_all(&w, PRESERVED, "preserved operator file")?;
        check_all(&w, OWN, "operator's own file")?;
        for (rel, _, _) in DROPPED {
            check_absent(&w.path(rel), "dropped file after recovery")?;
        }
        let journals: Vec<_> = std::fs::read_dir(w.state())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("journal"))
            .map(|e| e.file_name())
            .collect();
        ensure!(
            journals.is_empty(),
            "{point}: a journal is left: {journals:?}"
        );
        verify_clean(ctx, &w, &ctx.next).with_context(|| format!("after a crash at {point}"))?;
        w.second_update_changes_nothing(ctx, &ctx.next, 0)
            .with_context(|| format!("after a crash at {point}"))?;
    }
    Ok(Outcome::Pass)
}

fn m20(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.next)?;
    put_all(&w, PRESERVED)?;
    let before = w.snapshot()?;
    // This binary's own (embedded) framework is 0.x, older than 1.1.0.
    let own = w.mosaic(ctx, None, &["update", "--offline"], &[])?;
    own.expect(6).context("the embedded (older) framework")?;
    ensure!(
        own.stderr.contains("--allow-downgrade"),
        "the refusal does not name --allow-downgrade: {:?}",
        clip(&own.stderr)
    );
    same(&before, &w.snapshot()?, "the refused downgrade")?;
    let prev = w.update(ctx, &ctx.prev)?;
    prev.expect(6).context("the previous release")?;
    same(&before, &w.snapshot()?, "the refused downgrade")?;
    w.second_update_changes_nothing(ctx, &ctx.prev, 6)?;
    check_release(&w, &ctx.next, &[])?;
    // Asked for explicitly, the downgrade lands.
    w.mosaic(
        ctx,
        Some(&ctx.prev),
        &["update", "--offline", "--allow-downgrade"],
        &[],
    )?
    .expect(0)
    .context("--allow-downgrade")?;
    check_release(&w, &ctx.prev, &[])?;
    for rel in ADDED {
        check_absent(&w.path(rel), "a file only the newer release ships")?;
    }
    check_all(&w, PRESERVED, "preserved operator file")?;
    w.second_update_changes_nothing(ctx, &ctx.prev, 0)?;
    Ok(Outcome::Pass)
}

fn m21(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, PRESERVED)?;
    // The update holds the lock (paused right after taking it); both fleet
    // adds start meanwhile, wait for the lock, and read the roster under it.
    let spawn = |args: &[&str], env: &[(&str, &str)]| -> Result<std::process::Child> {
        let mut cmd = std::process::Command::new(&ctx.bin);
        cmd.args(args);
        w.prepare(ctx, &mut cmd, Some(&ctx.next), env);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Ok(cmd.spawn()?)
    };
    let update = spawn(
        &["update", "--offline"],
        &[
            ("MOSAIC_FAILPOINT", "sleep:after-lock"),
            ("MOSAIC_FAILPOINT_SLEEP_MS", "1000"),
        ],
    )?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let adds = [
        spawn(&["fleet", "add", "a1", "--runtime", "pi"], &[])?,
        spawn(&["fleet", "add", "b1", "--runtime", "claude"], &[])?,
    ];
    for (what, child) in
        std::iter::once(("update", update)).chain(adds.into_iter().map(|c| ("fleet add", c)))
    {
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "{what} failed: {}",
            clip(&text(&out.stderr))
        );
    }
    let roster = text(&w.read("fleet/roster.yaml")?);
    for name in ["coder0", "a1", "b1"] {
        ensure!(
            roster.contains(&format!("- name: {name}")),
            "agent {name} is missing from the roster:\n{roster}"
        );
    }
    ensure!(
        roster.starts_with("# my roster: keep every byte\n"),
        "the roster's comments were lost"
    );
    check_release(&w, &ctx.next, &["fleet/roster.yaml"])?;
    w.second_update_changes_nothing(ctx, &ctx.next, 0)?;
    Ok(Outcome::Pass)
}

fn m22(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    w.update(ctx, &ctx.next)?.expect(0)?;
    put_all(&w, PRESERVED)?;
    put_all(&w, OWN)?;
    // Fleet edits after the update never push its generation out.
    for i in 0..6 {
        w.mosaic(
            ctx,
            None,
            &["fleet", "add", &format!("x{i}"), "--runtime", "pi"],
            &[],
        )?
        .expect(0)?;
    }
    let roster = w.read("fleet/roster.yaml")?;
    // An edit after the update to a file the update changed.
    let (changed, _) = CHANGED[0];
    w.write(changed, b"operator's edit after the update\n", 0o644)?;
    w.mosaic(ctx, None, &["rollback"], &[])?
        .expect(0)
        .context("mosaic rollback")?;
    check_file(
        &w.path("fleet/roster.yaml"),
        &roster,
        None,
        "the roster after rollback",
    )?;
    check_all(&w, OWN, "operator's own file after rollback")?;
    check_file(
        &w.path(changed),
        b"operator's edit after the update\n",
        None,
        "the operator's later edit",
    )?;
    check_file(
        &w.path(&format!("{changed}.mosaic-new")),
        &ctx.prev.file(changed),
        None,
        "the earlier generation's copy beside it",
    )?;
    let manifest = read_manifest(&w)?;
    ensure!(
        manifest.version.to_string() == ctx.prev.version,
        "the manifest after rollback is not at {}",
        ctx.prev.version
    );
    for (rel, _, _) in DROPPED {
        check_file(
            &w.path(rel),
            &ctx.prev.file(rel),
            None,
            "a file the update dropped, back",
        )?;
    }
    Ok(Outcome::Pass)
}

fn m23(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, PRESERVED)?;
    let slash = format!("{}/", w.home().display());
    let crashed = w.mosaic(
        ctx,
        Some(&ctx.next),
        &["update", "--offline"],
        &[("MOSAIC_HOME", &slash), ("MOSAIC_FAILPOINT", "mid-apply")],
    )?;
    ensure!(
        crashed.code.is_none(),
        "the update was not killed (exit {})",
        crashed.status_text()
    );
    // Spelled without the slash: the same home, so the same journal.
    w.update(ctx, &ctx.next)?
        .expect(0)
        .context("the run spelled H after a crash spelled H/")?;
    check_release(&w, &ctx.next, &[])?;
    check_all(&w, PRESERVED, "preserved operator file")?;
    let journals: Vec<_> = std::fs::read_dir(w.state())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal"))
        .collect();
    ensure!(journals.is_empty(), "a journal is left after recovery");
    // A later run spelled H/ finds nothing to replay and changes nothing.
    let snap = w.snapshot()?;
    w.mosaic(
        ctx,
        Some(&ctx.next),
        &["update", "--offline"],
        &[("MOSAIC_HOME", &slash)],
    )?
    .expect(0)?;
    same(&snap, &w.snapshot()?, "a run spelled H/ after recovery")?;
    verify_clean(ctx, &w, &ctx.next)?;
    Ok(Outcome::Pass)
}

fn m24(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    install_fleet_units(ctx, &w)?;
    let units_before = foreign_snapshot(&w)?;
    let mut units = Snapshot::new();
    snapshot_into(&mut units, "units/", &w.units())?;
    // Another home of the same user: the active units point at %E/mosaic,
    // not at it.
    let scratch = w.user().join("scratch-home");
    let scratch_s = scratch.display().to_string();
    let out = w.mosaic(
        ctx,
        Some(&ctx.next),
        &["install"],
        &[("MOSAIC_HOME", &scratch_s)],
    )?;
    out.expect(0)?;
    ensure!(
        out.stderr.contains("active unit") || out.stderr.contains("--units"),
        "no notice that the units were left alone: {:?}",
        clip(&out.stderr)
    );
    let mut after = Snapshot::new();
    snapshot_into(&mut after, "units/", &w.units())?;
    same(
        &units,
        &after,
        "the active unit dir after installing another home",
    )?;
    same(
        &units_before,
        &foreign_snapshot(&w)?,
        "drop-ins and other units",
    )?;
    ensure!(
        w.daemon_reloads() == 0,
        "another home ran daemon-reload: {:?}",
        w.systemctl_calls()
    );
    // The default home still refreshes them.
    w.update(ctx, &ctx.next)?.expect(0)?;
    check_units_current(ctx, &w)?;
    Ok(Outcome::Pass)
}

fn m25(ctx: &Ctx) -> Result<Outcome> {
    let w = World::new(ctx)?;
    w.install(ctx, &ctx.prev)?;
    put_all(&w, PRESERVED)?;
    let before = w.snapshot()?;
    // docs/ gets a new file and loses a dropped one in this update; the
    // operator (or an attacker) swaps it for a link to a directory outside
    // the home after the run planned and before it writes.
    let outside = w.root().join("elsewhere");
    std::fs::create_dir_all(&outside)?;
    let signal = w.root().join("signal");
    let mut cmd = std::process::Command::new(&ctx.bin);
    cmd.args(["update", "--offline"]);
    let signal_s = signal.display().to_string();
    w.prepare(
        ctx,
        &mut cmd,
        Some(&ctx.next),
        &[
            ("MOSAIC_FAILPOINT", "sleep:before-apply"),
            ("MOSAIC_FAILPOINT_SIGNAL", &signal_s),
            ("MOSAIC_FAILPOINT_SLEEP_MS", "30000"),
        ],
    );
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn()?;
    let t0 = std::time::Instant::now();
    while !signal.with_extension("paused").exists() {
        ensure!(
            t0.elapsed().as_secs() < 30,
            "the update never reached its pause point"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let docs = w.path("docs");
    let moved = w.root().join("moved-docs");
    std::fs::rename(&docs, &moved)?;
    std::os::unix::fs::symlink(&outside, &docs)?;
    std::fs::write(signal.with_extension("resume"), "")?;
    let out = child.wait_with_output()?;
    let err = text(&out.stderr);
    ensure!(
        out.status.code() == Some(4),
        "expected exit 4 (rolled back), got {:?}: {}",
        out.status.code(),
        clip(&err)
    );
    ensure!(
        std::fs::read_dir(&outside)?.next().is_none(),
        "something landed outside the home, through the link"
    );
    // Put the directory back: the tree is exactly as before the run, and the
    // next update converges.
    std::fs::remove_file(&docs)?;
    std::fs::rename(&moved, &docs)?;
    same(&before, &w.snapshot()?, "the tree after the refused run")?;
    w.update(ctx, &ctx.next)?.expect(0)?;
    check_release(&w, &ctx.next, &[])?;
    check_all(&w, PRESERVED, "preserved operator file")?;
    Ok(Outcome::Pass)
}
