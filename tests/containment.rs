//! Containment and compare-and-swap (SPEC §4.3 step 5) against the real
//! binary, with the races driven deterministically through the debug
//! build's pause points (`MOSAIC_FAILPOINT=sleep:POINT[@REL]` with the
//! `MOSAIC_FAILPOINT_SIGNAL` handshake): a link swapped in below the home
//! is never followed (writes, removes, rmdirs, restores), an edit saved
//! while a run is under way ends up in the file or in the backup, and a
//! fingerprint taken within the run's own time window is not trusted.

mod sync_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use sync_support::*;

/// A run of `mosaic ARGS` in `w` held at pause point `point`.
struct Paused {
    child: Child,
    signal: PathBuf,
}

impl Paused {
    fn start(w: &World, release: Option<&Release>, args: &[&str], point: &str) -> Paused {
        let signal = w.dir.path().join("signal");
        let _ = std::fs::remove_file(signal.with_extension("paused"));
        let _ = std::fs::remove_file(signal.with_extension("resume"));
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("mosaic"));
        cmd.args(args);
        w.env(&mut cmd, release);
        cmd.env("MOSAIC_FAILPOINT", format!("sleep:{point}"))
            .env("MOSAIC_FAILPOINT_SIGNAL", &signal)
            .env("MOSAIC_FAILPOINT_SLEEP_MS", "30000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        let p = Paused { child, signal };
        let paused = p.signal.with_extension("paused");
        let t0 = std::time::Instant::now();
        while !paused.exists() {
            assert!(
                t0.elapsed().as_secs() < 30,
                "the run never reached pause point {point}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        p
    }

    /// Lets the run go on; its exit code, stdout and stderr.
    fn finish(self) -> (Option<i32>, String, String) {
        std::fs::write(self.signal.with_extension("resume"), "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// v2 plus a file in a directory no earlier release had.
fn v2_adding_a_dir() -> Release {
    let r = v2();
    let p = r.dir.path().join("extras/new.md");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "extras v2\n").unwrap();
    r
}

/// A release after v2 that changes `tools/fleet/hello.sh` again.
fn v3() -> Release {
    let r = v2();
    std::fs::write(
        r.dir.path().join("tools/fleet/hello.sh"),
        "#!/bin/sh\necho v3\n",
    )
    .unwrap();
    Release {
        version: "1.2.0".to_string(),
        ..r
    }
}

/// Moves the directory `rel` of the home out to `outside` and links it back.
fn swap_for_link(w: &World, rel: &str, outside: &Path) {
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::rename(w.path(rel), outside).unwrap();
    std::os::unix::fs::symlink(outside, w.path(rel)).unwrap();
}

/// The manifest as JSON text (it is stored as a binary index).
fn manifest(w: &World) -> String {
    let path = w.path(".mosaic/manifest.json");
    let m =
        mosaic_engine::manifest::Manifest::parse(&path, &std::fs::read(&path).unwrap()).unwrap();
    String::from_utf8(m.to_json()).unwrap()
}

#[test]
fn a_symlink_swapped_in_for_a_directory_the_release_adds_is_never_followed() {
    let w = World::new();
    let r2 = v2_adding_a_dir();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let before = snapshot(&w.home());
    let outside = w.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let run = Paused::start(&w, Some(&r2), &["update", "--offline"], "before-apply");
    std::os::unix::fs::symlink(&outside, w.path("extras")).unwrap();
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("extras"), "the error names the path: {err}");
    assert!(err.contains("rolled back, nothing changed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing lands outside the home"
    );
    assert!(!manifest(&w).contains("extras/new.md"));
    // The operator's link stays; everything else is as before the run.
    let mut after = snapshot(&w.home());
    assert!(after.remove("extras").is_some_and(|(k, _, _)| k == 'l'));
    assert_same(&before, &after, "after the refused run");
}

#[test]
fn a_directory_swapped_for_a_link_after_planning_is_never_written_removed_or_rmdired_through() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let before = snapshot(&w.home());
    let dots = w.dir.path().join("dots");
    let r2 = v2();
    let run = Paused::start(&w, Some(&r2), &["update", "--offline"], "before-apply");
    // docs/ gets a write (new.md) and a removal (dropped.md); olddir/ a
    // removal and an rmdir.
    swap_for_link(&w, "docs", &dots.join("docs"));
    swap_for_link(&w, "olddir", &dots.join("olddir"));
    let outside_before = snapshot(&dots);
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("docs") || err.contains("olddir"), "{err}");
    assert_same(&outside_before, &snapshot(&dots), "outside the home");
    // Put the operator's move back: the tree is as before the run.
    for rel in ["docs", "olddir"] {
        std::fs::remove_file(w.path(rel)).unwrap();
        std::fs::rename(dots.join(rel), w.path(rel)).unwrap();
    }
    assert_same(&before, &snapshot(&w.home()), "after the refused run");
}

#[test]
fn the_rollback_of_a_failed_run_never_restores_through_a_link() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let dots = w.dir.path().join("dots");
    // All temp files are written; the renames have not started.
    let run = Paused::start(&w, Some(&v2()), &["update", "--offline"], "before-rename");
    swap_for_link(&w, "tools", &dots.join("tools"));
    let outside_before = snapshot(&dots);
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("tools"), "{err}");
    assert!(err.contains("rolled back, nothing changed"), "{err}");
    // The moved directory is left exactly as the operator moved it (the
    // temp file the run had made there removed), and the rest is rolled
    // back.
    let mut outside_want = outside_before;
    outside_want.retain(|k, _| !k.contains(".mosaic-tmp-"));
    assert_same(&outside_want, &snapshot(&dots), "outside the home");
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\n");
    assert_eq!(w.read("docs/dropped.md"), "dropped v1\n");
    assert!(!manifest(&w).contains("1.1.0"));
}

#[test]
fn an_edit_saved_between_plan_and_apply_survives() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let run = Paused::start(&w, Some(&v2()), &["update", "--offline"], "before-prepare");
    w.write("tools/fleet/hello.sh", "#!/bin/sh\necho mine\n");
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("tools/fleet/hello.sh"), "{err}");
    assert_eq!(w.read("tools/fleet/hello.sh"), "#!/bin/sh\necho mine\n");
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\n");
    // The next run plans again and sees the edit as a conflict.
    w.mosaic(Some(&v2()))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stdout(predicates::str::contains("conflict"));
    assert_eq!(w.read("tools/fleet/hello.sh"), "#!/bin/sh\necho mine\n");
}

#[test]
fn an_edit_saved_after_the_last_check_ends_up_in_the_backup_and_the_output_says_so() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let run = Paused::start(
        &w,
        Some(&v2()),
        &["update", "--offline"],
        "after-check@tools/fleet/hello.sh",
    );
    w.write("tools/fleet/hello.sh", "#!/bin/sh\necho mine, saved late\n");
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(w.read("tools/fleet/hello.sh"), "#!/bin/sh\necho v2\n");
    let said = format!("{out}{err}");
    let line = said
        .lines()
        .find(|l| l.contains("tools/fleet/hello.sh") && l.contains("backup"))
        .unwrap_or_else(|| panic!("the output says where the edit went: {said}"));
    assert_eq!(
        said.matches("was saved while mosaic").count(),
        1,
        "only the edited file is reported: {said}"
    );
    // The edit is where the line says.
    let kept: PathBuf = walkdir::WalkDir::new(w.state())
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        // In `late/`: the linked copy of the file may hold the edit too.
        .find(|p| {
            p.is_file()
                && p.components().any(|c| c.as_os_str() == "late")
                && std::fs::read_to_string(p)
                    .is_ok_and(|s| s == "#!/bin/sh\necho mine, saved late\n")
        })
        .expect("the late edit is in the backup");
    assert!(line.contains(&kept.display().to_string()), "{line}");
}

#[test]
fn a_file_created_after_the_last_check_is_never_replaced() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let run = Paused::start(
        &w,
        Some(&v2()),
        &["update", "--offline"],
        "after-check@docs/new.md",
    );
    w.write("docs/new.md", "the operator's own new.md\n");
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("docs/new.md"), "{err}");
    assert!(err.contains("rolled back, nothing changed"), "{err}");
    assert_eq!(w.read("docs/new.md"), "the operator's own new.md\n");
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\n");
}

#[test]
fn an_edit_saved_during_the_final_flush_is_not_recorded_as_pristine() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let run = Paused::start(&w, Some(&v2()), &["update", "--offline"], "before-manifest");
    w.write(
        "tools/fleet/hello.sh",
        "#!/bin/sh\necho mine, during the flush\n",
    );
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(0), "{out}{err}");
    // The next release changes the file: the edit is a conflict, not lost.
    let r3 = v3();
    w.mosaic(Some(&r3))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stdout(predicates::str::contains("conflict"));
    assert_eq!(
        w.read("tools/fleet/hello.sh"),
        "#!/bin/sh\necho mine, during the flush\n"
    );
    assert_eq!(
        w.read("tools/fleet/hello.sh.mosaic-new"),
        "#!/bin/sh\necho v3\n"
    );
}

#[test]
fn orphan_backups_and_stale_temps_are_swept_under_the_lock() {
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    // A crash between creating a backup directory and journalling it, and
    // a one-off write killed before its rename (pid 0 is never a run).
    let orphan = w.state().join("backups/20000101T000000.000000Z-none-0.0.1");
    std::fs::create_dir_all(orphan.join("files")).unwrap();
    let record = serde_json::json!({
        "id": "20000101T000000.000000Z-none-0.0.1", "home": w.home(),
        "created": "2000-01-01T00:00:00Z", "command": "install",
        "from_version": null, "to_version": "0.0.1", "records": [],
        "mkdirs": [], "complete": false,
    });
    std::fs::write(orphan.join("meta.json"), record.to_string()).unwrap();
    let stale = w.path(".mosaic/.manifest.json.mosaic-tmp-0-7");
    std::fs::write(&stale, "half").unwrap();
    w.mosaic(Some(&v2()))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert!(!orphan.exists(), "the orphan backup is removed");
    assert!(!stale.exists(), "the stale temp is removed");
    // A complete backup is kept.
    w.mosaic(None)
        .arg("backups")
        .assert()
        .success()
        .stdout(predicates::str::contains("1.0.0 → 1.1.0"));
}

#[test]
fn a_directory_swapped_for_a_link_while_its_files_are_renamed_fails_the_run() {
    // The renames of one directory's files share one handle on it, opened
    // after every temp is written; the path is checked again after its last
    // rename, so a swap in the middle fails the run as a fresh open per
    // file would have. The renames act on the directory itself, wherever
    // it was moved: what they put there is kept as found and reported, the
    // files it replaced are in the backup.
    let files = |v: &str| {
        [
            ("grp/a.md", format!("a {v}\n")),
            ("grp/b.md", format!("b {v}\n")),
            ("grp/c.md", format!("c {v}\n")),
            ("other.md", format!("other {v}\n")),
        ]
    };
    let release = |version: &str, v: &str| {
        let f = files(v);
        let refs: Vec<(&str, &str)> = f.iter().map(|(p, c)| (*p, c.as_str())).collect();
        Release::new(version, &refs)
    };
    let (r1, r2) = (release("1.0.0", "v1"), release("1.1.0", "v2"));
    let w = World::new();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let dots = w.dir.path().join("dots");
    let run = Paused::start(
        &w,
        Some(&r2),
        &["update", "--offline"],
        "after-check@grp/a.md",
    );
    swap_for_link(&w, "grp", &dots.join("grp"));
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(err.contains("grp"), "the error names the directory: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // The run did not commit, and the rest of the home rolled back.
    assert!(!manifest(&w).contains("1.1.0"), "the run is not recorded");
    assert_eq!(w.read("other.md"), "other v1\n", "the rest rolled back");
    // The moved directory holds what was renamed in it before the check,
    // each path reported as kept; the files it replaced are in the backup.
    for f in ["a.md", "b.md", "c.md"] {
        let name = f.trim_end_matches(".md");
        assert_eq!(
            std::fs::read_to_string(dots.join("grp").join(f)).unwrap(),
            format!("{name} v2\n")
        );
        assert!(err.contains(&format!("grp/{f}")), "{f} is reported: {err}");
        let backed_up: Vec<PathBuf> = std::fs::read_dir(w.state().join("backups"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|b| !b.file_name().unwrap().to_string_lossy().starts_with('.'))
            .filter_map(|b| mosaic_engine::txn::backup_copy(&b, &format!("grp/{f}")).ok())
            .collect();
        assert!(
            backed_up
                .iter()
                .any(|p| std::fs::read_to_string(p).is_ok_and(|s| s == format!("{name} v1\n"))),
            "{f}'s v1 is in the backup: {backed_up:?}"
        );
    }
}

/// v1 installed, then an update to v2 plus `extras/` (a new directory)
/// held right before `extras` is renamed into place; and the home as it
/// was before the update.
fn held_before_extras_is_renamed() -> (World, Release, Paused, Snapshot) {
    held_at_extras("before-dir-rename@extras")
}

/// [`held_before_extras_is_renamed`], held at pause point `point`.
fn held_at_extras(point: &str) -> (World, Release, Paused, Snapshot) {
    let w = World::new();
    let r2 = v2_adding_a_dir();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let before = snapshot(&w.home());
    let run = Paused::start(&w, Some(&r2), &["update", "--offline"], point);
    (w, r2, run, before)
}

/// The temp names (`.NAME.mosaic-tmp-…`) in the home's top level.
fn staged_dirs(w: &World) -> Vec<String> {
    w.temps().into_iter().filter(|p| !p.contains('/')).collect()
}

#[test]
fn a_new_directory_is_filled_under_a_temp_name_and_renamed_into_place_whole() {
    let (w, r2, run, _) = held_before_extras_is_renamed();
    // Nothing of it is at its place yet: its file is in the temp
    // directory beside it, under its own name, flushed with the others.
    assert!(std::fs::symlink_metadata(w.path("extras")).is_err());
    let tmp = staged_dirs(&w);
    assert_eq!(tmp.len(), 1, "{tmp:?}");
    assert!(tmp[0].starts_with(".extras.mosaic-tmp-"), "{tmp:?}");
    assert_eq!(
        std::fs::read_to_string(w.path(&tmp[0]).join("new.md")).unwrap(),
        "extras v2\n"
    );
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(w.read("extras/new.md"), "extras v2\n");
    assert!(staged_dirs(&w).is_empty(), "{:?}", staged_dirs(&w));
    w.mosaic(Some(&r2)).arg("verify").assert().success();
}

#[test]
fn a_directory_made_where_a_new_one_goes_fails_the_run_and_is_left_as_it_is() {
    let (w, _r2, run, before) = held_before_extras_is_renamed();
    w.write("extras/mine.md", "the operator's own\n");
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("extras") && err.contains("appeared"), "{err}");
    assert!(err.contains("rolled back, nothing changed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // The operator's directory is as they made it, the run's temp is gone,
    // and the rest of the home is as before the run.
    assert_eq!(w.read("extras/mine.md"), "the operator's own\n");
    assert!(!w.path("extras/new.md").exists());
    assert!(staged_dirs(&w).is_empty(), "{:?}", staged_dirs(&w));
    let mut after = snapshot(&w.home());
    assert!(after.remove("extras/mine.md").is_some());
    assert!(after.remove("extras").is_some());
    assert_same(&before, &after, "after the refused run");
}

/// The new directory's temp swapped for a link (to the filled directory,
/// moved out of the home) while the run is held at `point`: the run fails
/// in one line, nothing is at its place (no link moved there), the filled
/// directory is emptied through its own handle, the link is left at the
/// temp name it was put at, and the rest is rolled back.
fn a_swap_for_a_link_at(point: &str) {
    let (w, _r2, run, _) = held_at_extras(point);
    let tmp = staged_dirs(&w).pop().expect("the temp directory");
    let moved = w.dir.path().join("dots/moved");
    swap_for_link(&w, &tmp, &moved);
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("extras") && err.contains("replaced"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        std::fs::symlink_metadata(w.path("extras")).is_err(),
        "the link was left at the new directory's place"
    );
    assert!(std::fs::read_dir(&moved).unwrap().next().is_none());
    assert!(std::fs::symlink_metadata(w.path(&tmp))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!manifest(&w).contains("extras/new.md"));
    assert_eq!(
        w.read("fleet/README.md"),
        "fleet readme v1\n",
        "rolled back"
    );
}

#[test]
fn a_new_directory_swapped_for_a_link_before_its_rename_is_never_put_in_place() {
    a_swap_for_a_link_at("before-dir-rename@extras");
}

#[test]
fn a_new_directory_swapped_for_a_link_after_its_check_is_put_back_and_never_left_in_place() {
    // The same swap in the window between the check of the temp name and
    // the rename: the link goes into place with the rename, is seen there,
    // and goes back to where it was put.
    a_swap_for_a_link_at("after-dir-check@extras");
}

#[test]
fn more_new_directories_than_are_staged_are_made_in_place_and_all_land() {
    // Each staged subtree holds a handle until it is renamed; past 64 the
    // rest are made in place with their files renamed one by one, so an
    // update adding hundreds of directories does not run out of
    // descriptors (450 here: 300 staged handles on top of the 256 the
    // temp writes keep would not fit). Both kinds land, no temp is left.
    let names: Vec<(String, String)> = (0..300)
        .map(|i| (format!("many/d{i:03}/f.md"), format!("file {i}\n")))
        .collect();
    let mut files: Vec<(&str, &str)> = names
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    files.push(("many/keep.md", "kept\n"));
    let r1 = Release::new("1.0.0", &[("many/keep.md", "kept\n")]);
    let r2 = Release::new("1.1.0", &files);
    let w = World::new();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=450")
        .arg(assert_cmd::cargo::cargo_bin("mosaic"))
        .args(["update", "--offline"]);
    w.env(&mut cmd, Some(&r2));
    let out = cmd.output().expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (p, c) in &names {
        assert_eq!(&w.read(p), c);
    }
    let left = w.temps();
    assert!(left.is_empty(), "{left:?}");
    w.mosaic(Some(&r2)).arg("verify").assert().success();
}

// --- backups are hard links to the files they keep ------------------------

/// The newest backup of the world's state dir `state`.
fn newest_backup(state: &Path) -> PathBuf {
    std::fs::read_dir(state.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .max()
        .expect("a backup")
}

/// Rolls `w` back to backup `b` (of a v1 → v2 update): v1's files again.
fn rolled_back_to_v1(w: &World, b: &Path) {
    let id = b.file_name().unwrap().to_string_lossy().into_owned();
    w.mosaic(Some(&v2()))
        .args(["rollback", &id])
        .assert()
        .success();
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\n");
    assert_eq!(w.read("docs/dropped.md"), "dropped v1\n");
}

/// Where backup `b` keeps its copy of `rel`.
fn copy(b: &Path, rel: &str) -> PathBuf {
    mosaic_engine::txn::backup_copy(b, rel).unwrap()
}

/// The file's identity: device and inode.
fn ino(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.dev(), m.ino())
}

/// Every file in the state dir's backups with more than one name.
fn shared_backup_files(state: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(state.join("backups"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.metadata().unwrap().nlink() > 1)
        .map(|e| e.path().display().to_string())
        .collect()
}

#[test]
fn a_replaced_or_removed_file_is_backed_up_as_a_hard_link_to_the_file_it_was() {
    // No data copied into the backup, none to flush: the run never writes
    // into a file it replaces, so the old inode keeps the old content.
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let replaced = ino(&w.path("fleet/README.md"));
    let removed = ino(&w.path("docs/dropped.md"));
    w.mosaic(Some(&v2()))
        .args(["update", "--offline"])
        .assert()
        .success();
    let b = newest_backup(&w.state());
    assert_eq!(ino(&copy(&b, "fleet/README.md")), replaced);
    assert_eq!(ino(&copy(&b, "docs/dropped.md")), removed);
    assert_ne!(ino(&w.path("fleet/README.md")), replaced);
    assert_eq!(
        std::fs::read_to_string(copy(&b, "fleet/README.md")).unwrap(),
        "fleet readme v1\n"
    );
    assert_eq!(w.read("fleet/README.md"), "fleet readme v2\n");
    // Rolled back from those links, the home is v1 again, in new files
    // (a later edit of the home never reaches into the backup).
    rolled_back_to_v1(&w, &b);
    assert_ne!(ino(&w.path("fleet/README.md")), replaced);
}

#[test]
fn a_backup_keeps_its_copies_flat_and_one_in_the_mirrored_layout_still_rolls_back() {
    // Record N's copy is `copies/N`: backing up a changed file makes no
    // directory (mirroring the home cost about two mkdirs per changed file
    // of a deep home, and as many removals when the backup was pruned).
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    w.mosaic(Some(&v2()))
        .args(["update", "--offline"])
        .assert()
        .success();
    let b = newest_backup(&w.state());
    let dirs: Vec<String> = walkdir::WalkDir::new(&b)
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(&b).unwrap().display().to_string())
        .collect();
    assert_eq!(dirs, ["copies"], "no directory below the copies");
    assert_eq!(
        std::fs::read_to_string(copy(&b, "docs/dropped.md")).unwrap(),
        "dropped v1\n"
    );
    // The same backup as a binary before the flat layout made it: `files/`
    // mirroring the home, no layout in its record. It still rolls back.
    let meta_path = b.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["layout"], "flat");
    meta.as_object_mut().unwrap().remove("layout");
    let mut moved = 0;
    for rec in meta["records"].as_array().unwrap() {
        let rel = rec["rel"].as_str().unwrap();
        let from = copy(&b, rel);
        if !from.exists() {
            continue;
        }
        let to = match rel.strip_prefix('/') {
            Some(abs) => b.join("files/_abs").join(abs),
            None => b.join("files").join(rel),
        };
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(&from, &to).unwrap();
        moved += 1;
    }
    assert!(
        moved >= 3,
        "the replaced and the removed file, the manifest: {moved}"
    );
    std::fs::remove_dir(b.join("copies")).unwrap();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    assert_eq!(copy(&b, "docs/dropped.md"), b.join("files/docs/dropped.md"));
    rolled_back_to_v1(&w, &b);
}

#[test]
fn an_edit_saved_in_place_after_the_backup_is_linked_fails_the_run_and_is_kept() {
    // The link shares the inode, so an edit written into the file (not
    // renamed over it) after the backup reaches the backup too: the run
    // sees the file changed before it replaces it, stops, and the home
    // keeps the edit.
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let before = snapshot(&w.home());
    let r2 = v2();
    let run = Paused::start(&w, Some(&r2), &["update", "--offline"], "before-apply");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(w.path("fleet/README.md"))
            .unwrap();
        f.write_all(b"my note\n").unwrap();
    }
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("fleet/README.md") && err.contains("changed"),
        "{err}"
    );
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\nmy note\n");
    let mut after = snapshot(&w.home());
    let mut want = before;
    assert!(after.remove("fleet/README.md").is_some());
    assert!(want.remove("fleet/README.md").is_some());
    assert_same(&want, &after, "everything else as before the run");
}

#[test]
fn backups_on_another_file_system_are_copies() {
    // A state dir on another file system (tmpfs here) cannot hold a hard
    // link to a file in the home: the file is copied, as before.
    let w = World::new();
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        assert!(
            std::env::var_os("MOSAIC_REQUIRE_REAL").is_none(),
            "/dev/shm is needed for a second file system"
        );
        eprintln!("skipped: no /dev/shm for a second file system");
        return;
    };
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
    if dev(shm.path()) == dev(w.dir.path()) {
        assert!(
            std::env::var_os("MOSAIC_REQUIRE_REAL").is_none(),
            "/dev/shm is on the same file system as {}",
            w.dir.path().display()
        );
        eprintln!("skipped: /dev/shm is on the test's file system");
        return;
    }
    let state = shm.path().join("state");
    let run = |r: &Release, args: &[&str]| {
        w.mosaic(Some(r))
            .args(args)
            .env("MOSAIC_STATE_DIR", &state)
            .assert()
            .success();
    };
    run(&v1(), &["install"]);
    let replaced = ino(&w.path("fleet/README.md"));
    run(&v2(), &["update", "--offline"]);
    let b = newest_backup(&state);
    assert_ne!(ino(&copy(&b, "fleet/README.md")), replaced);
    assert_eq!(
        std::fs::read_to_string(copy(&b, "fleet/README.md")).unwrap(),
        "fleet readme v1\n"
    );
    assert_eq!(w.read("fleet/README.md"), "fleet readme v2\n");
}

#[test]
fn a_file_with_a_name_outside_the_home_is_backed_up_as_a_copy() {
    // A link would go on sharing the backup with that other name: an edit
    // written through it in place would reach into the backup.
    let w = World::new();
    w.mosaic(Some(&v1())).arg("install").assert().success();
    let outside = w.dir.path().join("dotfiles-readme.md");
    std::fs::hard_link(w.path("fleet/README.md"), &outside).unwrap();
    w.mosaic(Some(&v2()))
        .args(["update", "--offline"])
        .assert()
        .success();
    let b = newest_backup(&w.state());
    assert_ne!(ino(&copy(&b, "fleet/README.md")), ino(&outside));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&outside)
            .unwrap();
        f.write_all(b"edited elsewhere\n").unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(copy(&b, "fleet/README.md")).unwrap(),
        "fleet readme v1\n"
    );
    assert!(shared_backup_files(&w.state()).is_empty());
}

#[test]
fn a_backup_kept_after_recovery_shares_no_file_with_the_home() {
    // Killed halfway through its renames, the run's untouched files are
    // still the inodes it linked into its backup; recovery keeps the backup
    // (an edit since the crash is kept as found) and makes those links
    // copies. The next run is a no-op, so nothing replaces them meanwhile.
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_FAILPOINT", "mid-apply")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "killed");
    assert_eq!(
        w.read("docs/new.md"),
        "new in v2\n",
        "renamed before the crash"
    );
    assert_eq!(
        w.read("tools/fleet/hello.sh"),
        "#!/bin/sh\necho v1\n",
        "not reached before the crash"
    );
    w.write("docs/new.md", "operator notes\n");
    let out = w
        .mosaic(Some(&r1))
        .args(["update", "--offline"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("kept as found"), "{err}");
    assert_eq!(w.read("docs/new.md"), "operator notes\n");
    assert_eq!(w.read("tools/fleet/hello.sh"), "#!/bin/sh\necho v1\n");
    let shared = shared_backup_files(&w.state());
    assert!(shared.is_empty(), "{shared:?}");
}

#[test]
fn shipped_files_hard_linked_together_are_replaced_and_removed_in_one_run() {
    // An operator's dedup tool made three shipped files with the same
    // content one inode. Replacing or removing one name moves the inode's
    // ctime, which the others share: the run's own hand, not an edit, so
    // the next name is still the recorded file and the run goes on.
    let same = "same in v1\n";
    let r1 = Release::new(
        "1.0.0",
        &[
            ("docs/a.md", same),
            ("docs/b.md", same),
            ("docs/c.md", same),
        ],
    );
    let r2 = Release::new("1.1.0", &[("docs/a.md", "a v2\n"), ("docs/b.md", "b v2\n")]);
    let w = World::new();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    for rel in ["docs/b.md", "docs/c.md"] {
        std::fs::remove_file(w.path(rel)).unwrap();
        std::fs::hard_link(w.path("docs/a.md"), w.path(rel)).unwrap();
    }
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(w.read("docs/a.md"), "a v2\n");
    assert_eq!(w.read("docs/b.md"), "b v2\n");
    assert!(!w.path("docs/c.md").exists(), "removed");
    // Each kept apart in the backup (an inode with other names is copied):
    // rolled back, all three are the shipped content again.
    let b = newest_backup(&w.state());
    for rel in ["docs/a.md", "docs/b.md", "docs/c.md"] {
        assert_eq!(std::fs::read_to_string(copy(&b, rel)).unwrap(), same);
    }
    assert!(shared_backup_files(&w.state()).is_empty());
    let id = b.file_name().unwrap().to_string_lossy().into_owned();
    w.mosaic(Some(&r2))
        .args(["rollback", &id])
        .assert()
        .success();
    for rel in ["docs/a.md", "docs/b.md", "docs/c.md"] {
        assert_eq!(w.read(rel), same);
    }
}

#[test]
fn an_edit_of_hard_linked_shipped_files_after_one_name_is_replaced_is_caught() {
    // The run replaced docs/a.md; docs/b.md, another name of that inode,
    // is then edited in place with its size and mtime kept (what
    // `rsync --inplace -t` does). Only its ctime tells: the run's own
    // exchange is forgiven at exactly the ctime it left, not any later one.
    let same = "same in v1\n";
    let r1 = Release::new("1.0.0", &[("docs/a.md", same), ("docs/b.md", same)]);
    let r2 = Release::new("1.1.0", &[("docs/a.md", "a v2\n"), ("docs/b.md", "b v2\n")]);
    let w = World::new();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    std::fs::remove_file(w.path("docs/b.md")).unwrap();
    std::fs::hard_link(w.path("docs/a.md"), w.path("docs/b.md")).unwrap();
    let run = Paused::start(
        &w,
        Some(&r2),
        &["update", "--offline"],
        "before-check@docs/b.md",
    );
    assert_eq!(
        w.read("docs/a.md"),
        "a v2\n",
        "a.md replaced before the pause"
    );
    {
        use std::io::{Seek, Write};
        let p = w.path("docs/b.md");
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(b"SAME IN V1\n").unwrap();
        f.set_modified(mtime).unwrap();
    }
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("docs/b.md") && err.contains("changed"),
        "{err}"
    );
    assert_eq!(w.read("docs/b.md"), "SAME IN V1\n", "the edit is kept");
    assert_eq!(w.read("docs/a.md"), same, "rolled back");
}
