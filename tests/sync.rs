//! Integration tests of the installer core against the real binary:
//! install, no-op, update with operator files everywhere, conflicts,
//! dry-run, rollback, status/verify, downgrade, blockers, legacy adoption,
//! symlinks, the lock, and a crash mid-apply.

mod sync_support;

use predicates::prelude::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use sync_support::*;

fn operator_files(w: &World) {
    w.write("fleet/roster.yaml", "# my roster\nagents: []\n");
    w.write("fleet/custom.yaml", "# my extra roster\n");
    w.write("fleet/agents/coder0.env", "MOSAIC_AGENT_COMMAND=/bin/x\n");
    w.write("fleet/run/coder0.hb", "{\"v\":1}\n");
    w.write("notes/mine.txt", "operator notes\n");
    w.write("tools/fleet/my-helper.sh", "#!/bin/sh\n");
    w.write("docs/guide.md.local", "mine too\n");
}

fn operator_snapshot(w: &World) -> Vec<(String, String)> {
    [
        "fleet/roster.yaml",
        "fleet/custom.yaml",
        "fleet/agents/coder0.env",
        "fleet/run/coder0.hb",
        "notes/mine.txt",
        "tools/fleet/my-helper.sh",
        "docs/guide.md.local",
    ]
    .iter()
    .map(|p| (p.to_string(), w.read(p)))
    .collect()
}

#[test]
fn fresh_install_of_the_embedded_framework_lands_every_file_with_its_mode() {
    let w = World::new();
    w.mosaic(None)
        .arg("install")
        .assert()
        .success()
        .stdout(predicate::str::contains("created"));
    let framework = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("framework");
    let mut count = 0;
    for e in walkdir::WalkDir::new(&framework) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        count += 1;
        let rel = e.path().strip_prefix(&framework).unwrap();
        let installed = w.home().join(rel);
        assert_eq!(
            std::fs::read(e.path()).unwrap(),
            std::fs::read(&installed).unwrap(),
            "{rel:?}"
        );
        let src_exec = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, if src_exec { 0o755 } else { 0o644 }, "{rel:?}");
    }
    assert!(count >= 4, "framework has files");
    let meta_mode = std::fs::metadata(w.path(".mosaic"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(meta_mode, 0o700);
    assert!(w.path(".mosaic/manifest.json").is_file());
    w.mosaic(None).arg("verify").assert().success();
    w.mosaic(None).arg("status").assert().success();
}

#[test]
fn reinstall_of_the_same_version_writes_nothing() {
    let w = World::new();
    let r = v1();
    w.mosaic(Some(&r)).arg("install").assert().success();
    operator_files(&w);
    let before = stamps(&w.home());
    let snap = snapshot(&w.home());
    let backups_before = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .count();
    w.mosaic(Some(&r))
        .arg("install")
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"));
    // The manifest aside: a no-op may record fingerprints that were racily
    // clean at the install and have settled since (when the machine is slow
    // enough for a second to pass in between).
    let mut before = before;
    let mut snap = snap;
    let mut after = stamps(&w.home());
    let mut snap_after = snapshot(&w.home());
    for m in [&mut before, &mut after] {
        m.remove(".mosaic/manifest.json");
    }
    for m in [&mut snap, &mut snap_after] {
        m.remove(".mosaic/manifest.json");
    }
    assert_eq!(after, before, "mtimes and inodes unchanged");
    assert_same(&snap, &snap_after, "no-op install");
    let backups_after = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .count();
    assert_eq!(backups_before, backups_after, "a no-op makes no backup");
}

#[test]
fn update_from_previous_release_keeps_every_operator_byte() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    operator_files(&w);
    let mine = operator_snapshot(&w);
    let out = w
        .mosaic(Some(&r2))
        .arg("update")
        .arg("--offline")
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("updated fleet/README.md"), "{stdout}");
    assert!(stdout.contains("created docs/new.md"), "{stdout}");
    assert!(stdout.contains("deleted docs/dropped.md"), "{stdout}");
    assert!(stdout.contains("deleted olddir/gone.md"), "{stdout}");
    assert!(
        !stdout.contains("fleet/roster.yaml"),
        "preserved roster is not mentioned: {stdout}"
    );
    // shipped files current
    for rel in [
        "fleet/README.md",
        "fleet/roster.schema.json",
        "fleet/examples/minimal.yaml",
        "tools/fleet/hello.sh",
        "docs/new.md",
    ] {
        assert_eq!(w.read(rel), r2.file(rel), "{rel}");
    }
    assert!(!w.path("docs/dropped.md").exists());
    assert!(
        !w.path("olddir").exists(),
        "empty dir we created is removed"
    );
    assert!(
        w.path("docs").is_dir(),
        "dir still holding shipped files stays"
    );
    // operator files, byte for byte
    assert_eq!(operator_snapshot(&w), mine);
    // the dropped file is in the backup
    let backups: Vec<_> = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let newest = backups.iter().max().unwrap();
    assert_eq!(
        std::fs::read_to_string(
            mosaic_engine::txn::backup_copy(newest, "docs/dropped.md").unwrap()
        )
        .unwrap(),
        "dropped v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(
            mosaic_engine::txn::backup_copy(newest, "fleet/README.md").unwrap()
        )
        .unwrap(),
        "fleet readme v1\n"
    );
    // second update: nothing
    let snap = snapshot(&w.home());
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"));
    assert_same_but_manifest(&snap, &snapshot(&w.home()), "second update");
    w.mosaic(Some(&r2)).arg("verify").assert().success();
}

#[test]
fn conflict_keeps_the_operators_file_and_writes_mosaic_new_then_settles() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("fleet/README.md", "my own readme\n");
    w.write("docs/guide.md", "my guide edit\n"); // release did not change it
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "conflict fleet/README.md → fleet/README.md.mosaic-new",
        ))
        .stdout(predicate::str::contains("docs/guide.md").not());
    assert_eq!(w.read("fleet/README.md"), "my own readme\n");
    assert_eq!(w.read("fleet/README.md.mosaic-new"), "fleet readme v2\n");
    assert_eq!(w.read("docs/guide.md"), "my guide edit\n");
    let snap = snapshot(&w.home());
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert_same_but_manifest(
        &snap,
        &snapshot(&w.home()),
        "second update after a conflict",
    );
    // status reports the edits, verify flags them
    w.mosaic(Some(&r2))
        .arg("status")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("fleet/README.md"));
    w.mosaic(Some(&r2))
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("modified fleet/README.md"));
}

#[test]
fn conflict_replace_backs_up_the_operators_bytes() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("fleet/README.md", "my own readme\n");
    w.mosaic(Some(&r2))
        .args(["update", "--offline", "--conflict", "replace"])
        .assert()
        .success();
    assert_eq!(w.read("fleet/README.md"), "fleet readme v2\n");
    assert!(!w.path("fleet/README.md.mosaic-new").exists());
    let backup = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(
            mosaic_engine::txn::backup_copy(&backup, "fleet/README.md").unwrap()
        )
        .unwrap(),
        "my own readme\n"
    );
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    // fresh home: dry-run creates not even the home
    w.mosaic(Some(&r1))
        .args(["install", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("created fleet/README.md"));
    assert!(!w.home().exists(), "dry-run wrote under H");
    assert!(!w.state().exists(), "dry-run wrote state");
    w.mosaic(Some(&r1)).arg("install").assert().success();
    operator_files(&w);
    let snap = snapshot(&w.home());
    let st = stamps(&w.home());
    w.mosaic(Some(&r2))
        .args(["update", "--offline", "--dry-run", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"dry_run\": true"));
    assert_same(&snap, &snapshot(&w.home()), "dry-run");
    assert_eq!(st, stamps(&w.home()));
}

#[test]
fn rollback_restores_the_previous_state_and_is_itself_undoable() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    operator_files(&w);
    let before = snapshot(&w.home());
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    let after = snapshot(&w.home());
    w.mosaic(None)
        .arg("backups")
        .assert()
        .success()
        .stdout(predicate::str::contains("1.0.0 → 1.1.0"));
    w.mosaic(None)
        .arg("rollback")
        .assert()
        .success()
        .stdout(predicate::str::contains("rolled back generation 2"));
    let mut rolled = snapshot(&w.home());
    let mut want = before.clone();
    // the manifest's fingerprints differ; its version must be back to 1.0.0
    let m = rolled.remove(".mosaic/manifest.json").unwrap();
    want.remove(".mosaic/manifest.json");
    let m =
        mosaic_engine::manifest::Manifest::parse(std::path::Path::new("manifest"), &m.2).unwrap();
    assert_eq!(m.version.to_string(), "1.0.0");
    assert_same(&want, &rolled, "rollback");
    // v1 is installed again: verify passes against the restored manifest
    w.mosaic(Some(&r1)).arg("verify").assert().success();
    // rolling back the rollback gives the updated tree again
    w.mosaic(None).arg("rollback").assert().success();
    let mut again = snapshot(&w.home());
    let mut after2 = after.clone();
    again.remove(".mosaic/manifest.json");
    after2.remove(".mosaic/manifest.json");
    assert_same(&after2, &again, "rollback of the rollback");
    w.mosaic(None)
        .args(["rollback", "no-such-id"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mosaic backups"));
}

#[test]
fn backups_are_pruned_to_five() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    for i in 0..7 {
        w.write("docs/guide.md", &format!("guide v1\n{i}\n"));
        // unedited → replaced? no: edited and release unchanged → kept. Use replace via rollback churn instead.
        std::fs::remove_file(w.path("fleet/README.md")).unwrap();
        w.mosaic(Some(&r1))
            .arg("install")
            .assert()
            .success()
            .stdout(predicate::str::contains("created fleet/README.md"));
    }
    let names = || -> Vec<String> {
        std::fs::read_dir(w.state().join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let listed = w.mosaic(None).arg("backups").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 5);
    assert_eq!(names().iter().filter(|n| !n.starts_with('.')).count(), 5);
    // The backup the last run pruned is renamed aside, not yet deleted
    // (each earlier one was deleted by the run after it); the next run
    // that takes the lock deletes it, a no-op too.
    let trash = |names: &[String]| names.iter().filter(|n| n.starts_with(".trash-")).count();
    assert_eq!(trash(&names()), 1, "{:?}", names());
    w.mosaic(Some(&r1))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert_eq!(trash(&names()), 0, "{:?}", names());
    assert_eq!(names().len(), 5, "{:?}", names());
}

#[test]
fn status_and_verify_exit_codes() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1))
        .arg("verify")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mosaic install"));
    w.mosaic(Some(&r1))
        .arg("status")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("A fleet/README.md"));
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.mosaic(Some(&r1)).arg("status").assert().code(0);
    w.mosaic(Some(&r1)).arg("verify").assert().code(0);
    std::fs::remove_file(w.path("docs/guide.md")).unwrap();
    w.mosaic(Some(&r1))
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("missing docs/guide.md"));
    w.mosaic(Some(&r1)).arg("status").assert().code(1);
    std::fs::set_permissions(
        w.path("tools/fleet/hello.sh"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    w.mosaic(Some(&r1))
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("tools/fleet/hello.sh"));
}

#[test]
fn diff_shows_what_an_update_would_change() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let out = w.mosaic(Some(&r2)).arg("diff").assert().success();
    let s = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        s.contains("--- a/fleet/README.md\n+++ b/fleet/README.md\n"),
        "{s}"
    );
    assert!(s.contains("-fleet readme v1\n+fleet readme v2\n"), "{s}");
    assert!(s.contains("+++ /dev/null"), "{s}");
    let out = w
        .mosaic(Some(&r2))
        .args(["diff", "docs"])
        .assert()
        .success();
    let s = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        !s.contains("fleet/README.md") && s.contains("docs/new.md"),
        "{s}"
    );
}

#[test]
fn older_binary_against_newer_install_is_refused_without_allow_downgrade() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r2)).arg("install").assert().success();
    let snap = snapshot(&w.home());
    w.mosaic(Some(&r1))
        .args(["update", "--offline"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("--allow-downgrade"));
    assert_same(&snap, &snapshot(&w.home()), "refused downgrade");
    w.mosaic(Some(&r1))
        .args(["update", "--offline", "--allow-downgrade"])
        .assert()
        .success();
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\n");
}

#[test]
fn directory_where_a_file_ships_blocks_and_replace_moves_it_to_the_backup() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    std::fs::create_dir_all(w.path("docs/new.md")).unwrap();
    w.write("docs/new.md/precious.txt", "operator data\n");
    let snap = snapshot(&w.home());
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "blocked docs/new.md (a directory at docs/new.md)",
        ))
        .stderr(predicate::str::contains("nothing was changed"));
    assert_same(&snap, &snapshot(&w.home()), "blocked update");
    w.mosaic(Some(&r2))
        .args(["update", "--offline", "--conflict", "replace"])
        .assert()
        .success();
    assert_eq!(w.read("docs/new.md"), "new in v2\n");
    let backup = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(
            mosaic_engine::txn::backup_copy(&backup, "docs/new.md/precious.txt").unwrap()
        )
        .unwrap(),
        "operator data\n"
    );
}

#[test]
fn legacy_install_without_manifest_is_adopted_with_backups() {
    let w = World::new();
    let r1 = v1();
    // what the old shell installer left: files, some different, no manifest
    w.write("fleet/README.md", "fleet readme from the old installer\n");
    w.write("docs/guide.md", "guide v1\n");
    w.write("fleet/roster.yaml", "# operator roster\n");
    w.mosaic(Some(&r1))
        .arg("update")
        .arg("--offline")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "updated fleet/README.md (legacy copy backed up)",
        ));
    assert_eq!(w.read("fleet/README.md"), "fleet readme v1\n");
    assert_eq!(w.read("fleet/roster.yaml"), "# operator roster\n");
    assert!(w.path(".mosaic/manifest.json").is_file());
    let backup = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(
            mosaic_engine::txn::backup_copy(&backup, "fleet/README.md").unwrap()
        )
        .unwrap(),
        "fleet readme from the old installer\n"
    );
    let snap = snapshot(&w.home());
    settle();
    w.mosaic(Some(&r1))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert_same_settled(&snap, &snapshot(&w.home()), "second run after adoption");
}

#[test]
fn symlinks_below_home_are_never_written_through_and_a_linked_home_works() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    // a home that is itself a symlink into a dotfiles repo
    let real = w.dir.path().join("dotfiles/mosaic");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(w.home().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, w.home()).unwrap();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    assert!(real.join("fleet/README.md").is_file());
    // a shipped file replaced by a link, and a linked dir pointing outside
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("target.md"), "outside file\n").unwrap();
    std::fs::remove_file(real.join("fleet/README.md")).unwrap();
    std::os::unix::fs::symlink(outside.join("target.md"), real.join("fleet/README.md")).unwrap();
    std::fs::remove_dir_all(real.join("tools")).unwrap();
    std::os::unix::fs::symlink(&outside, real.join("tools")).unwrap();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("a symlink at fleet/README.md"))
        .stdout(predicate::str::contains("a symlink at tools"));
    assert_eq!(
        std::fs::read_to_string(outside.join("target.md")).unwrap(),
        "outside file\n"
    );
    assert!(!outside.join("fleet").exists() && !outside.join("hello.sh").exists());
    // replace: the links move into the backup; their targets are untouched
    w.mosaic(Some(&r2))
        .args(["update", "--offline", "--conflict", "replace"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(outside.join("target.md")).unwrap(),
        "outside file\n"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert!(!std::fs::symlink_metadata(real.join("tools"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(real.join("tools/fleet/hello.sh")).unwrap(),
        r2.file("tools/fleet/hello.sh")
    );
}

#[test]
fn killed_mid_apply_the_next_run_recovers_and_converges() {
    for point in ["after-backup", "mid-apply", "before-manifest"] {
        let w = World::new();
        let (r1, r2) = (v1(), v2());
        w.mosaic(Some(&r1)).arg("install").assert().success();
        operator_files(&w);
        let mine = operator_snapshot(&w);
        let before = snapshot(&w.home());
        let out = w
            .mosaic(Some(&r2))
            .args(["update", "--offline"])
            .env("MOSAIC_FAILPOINT", point)
            .assert()
            .failure();
        assert!(
            out.get_output().status.code().is_none(),
            "{point}: killed by a signal"
        );
        if point != "after-backup" {
            assert!(
                snapshot(&w.home()) != before,
                "{point}: the crash left a half-applied tree"
            );
        }
        // the next run rolls back first, then applies
        w.mosaic(Some(&r2))
            .args(["update", "--offline"])
            .assert()
            .success()
            .stderr(predicate::str::contains("interrupted run was rolled back"));
        assert_eq!(operator_snapshot(&w), mine, "{point}");
        for rel in ["fleet/README.md", "tools/fleet/hello.sh", "docs/new.md"] {
            assert_eq!(w.read(rel), r2.file(rel), "{point}: {rel}");
        }
        assert!(!w.path("docs/dropped.md").exists());
        let temps: Vec<_> = walkdir::WalkDir::new(w.home())
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("mosaic-tmp"))
            .collect();
        assert!(temps.is_empty(), "{point}: temps left: {temps:?}");
        let snap = snapshot(&w.home());
        w.mosaic(Some(&r2))
            .args(["update", "--offline"])
            .assert()
            .success()
            .stdout(predicate::str::contains("up to date"));
        assert_same_but_manifest(&snap, &snapshot(&w.home()), point);
    }
}

#[test]
fn two_updates_at_once_one_waits_or_names_the_holder() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let mut holder = std::process::Command::new(assert_cmd::cargo::cargo_bin("mosaic"));
    holder
        .args(["update", "--offline"])
        .env("HOME", w.dir.path().join("user"))
        .env("MOSAIC_HOME", w.home())
        .env("MOSAIC_STATE_DIR", w.state())
        .env("MOSAIC_FRAMEWORK_DIR", r2.dir.path())
        .env("MOSAIC_FRAMEWORK_VERSION", &r2.version)
        .env("MOSAIC_FAILPOINT", "sleep:after-lock")
        .env("MOSAIC_FAILPOINT_SLEEP_MS", "3000")
        .stdout(std::process::Stdio::null());
    let mut child = holder.spawn().unwrap();
    // wait until the holder has the lock (its pid is written)
    let lock = w.path(".mosaic/lock");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim() != child.id().to_string())
        .unwrap_or(true)
    {
        assert!(t0.elapsed().as_secs() < 20, "holder never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // an impatient second run names the holder
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_LOCK_TIMEOUT_SECS", "1")
        .assert()
        .code(5)
        .stderr(predicate::str::contains(format!(
            "another mosaic update is running (pid {})",
            child.id()
        )));
    // a patient one waits, then finds nothing to do
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("up to date"));
    assert!(child.wait().unwrap().success());
    w.mosaic(Some(&r2)).arg("verify").assert().success();
}

#[test]
fn bad_inputs_get_one_line_errors() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(None)
        .arg("install")
        .env("MOSAIC_FRAMEWORK_DIR", r1.dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("MOSAIC_FRAMEWORK_VERSION"));
    w.mosaic(None)
        .arg("install")
        .env("MOSAIC_FRAMEWORK_DIR", r1.dir.path())
        .env("MOSAIC_FRAMEWORK_VERSION", "one")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a semver version"));
    w.mosaic(Some(&r1)).arg("install").assert().success();
    std::fs::write(w.path(".mosaic/manifest.json"), "{ not json").unwrap();
    let out = w.mosaic(Some(&r1)).arg("install").assert().code(7);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("manifest.json") && err.contains("backups"),
        "{err}"
    );
    std::fs::remove_file(w.path(".mosaic/manifest.json")).unwrap();
    std::fs::write(w.path(".mosaic/preserve"), "good/**\nbad[\n").unwrap();
    w.mosaic(Some(&r1))
        .arg("status")
        .assert()
        .failure()
        .stderr(predicate::str::contains("preserve:2"));
}

#[test]
fn a_json_manifest_of_an_older_release_is_migrated_to_the_index_by_a_no_op_update() {
    use mosaic_engine::manifest::{Encoding, Manifest};
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let path = w.path(".mosaic/manifest.json");
    let (m, enc) = Manifest::load_with_encoding(&path).unwrap().unwrap();
    assert_eq!(enc, Encoding::Index);
    // what an older release left: the same facts as JSON
    std::fs::write(&path, m.to_json()).unwrap();
    w.mosaic(Some(&r1))
        .args(["update", "--offline"])
        .assert()
        .success();
    let (again, enc) = Manifest::load_with_encoding(&path).unwrap().unwrap();
    assert_eq!(enc, Encoding::Index);
    assert_eq!(again, m);
    w.mosaic(Some(&r1)).arg("verify").assert().success();
    // a corrupt index is refused in one line naming the file
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&path, &bytes).unwrap();
    let out = w.mosaic(Some(&r1)).arg("status").assert().code(7);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("manifest.json: cannot parse (index truncated"),
        "{err}"
    );
}

#[test]
fn legacy_install_files_recognised_from_release_history_are_adopted_as_ours() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    // what the old installer left: an unedited v1 tree, one file edited, no manifest
    for e in walkdir::WalkDir::new(r1.dir.path()) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(r1.dir.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            w.write(&rel, &std::fs::read_to_string(e.path()).unwrap());
        }
    }
    w.write("docs/guide.md", "operator's guide edit\n");
    w.write("notes.md", "mine\n");
    // the history of v1, as `cargo xtask release` records it
    let hist = tempfile::tempdir().unwrap();
    let mut files = serde_json::Map::new();
    for e in walkdir::WalkDir::new(r1.dir.path()) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(r1.dir.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let sha = mosaic_engine::fsutil::sha256_hex(&std::fs::read(e.path()).unwrap());
            files.insert(rel, serde_json::Value::String(sha));
        }
    }
    std::fs::write(
        hist.path().join("1.0.0.json"),
        serde_json::json!({"version": "1.0.0", "files": files}).to_string(),
    )
    .unwrap();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_RELEASE_HISTORY_DIR", hist.path())
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    // recognised files: plain updates and deletions of dropped ones
    assert!(stdout.contains("updated fleet/README.md\n"), "{stdout}");
    assert!(stdout.contains("deleted docs/dropped.md"), "{stdout}");
    assert!(stdout.contains("deleted olddir/gone.md"), "{stdout}");
    assert!(!w.path("docs/dropped.md").exists());
    // the edited file is not recognised: legacy row (backed up, replaced)
    assert!(
        stdout.contains("updated docs/guide.md (legacy copy backed up)"),
        "{stdout}"
    );
    assert_eq!(w.read("notes.md"), "mine\n");
    let backup = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(mosaic_engine::txn::backup_copy(&backup, "docs/guide.md").unwrap())
            .unwrap(),
        "operator's guide edit\n"
    );
    // without the history, the dropped file would have been left as the operator's
    let w2 = World::new();
    w2.write("docs/dropped.md", "dropped v1\n");
    w2.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert!(w2.path("docs/dropped.md").exists());
}

#[test]
fn recovery_after_a_crash_keeps_edits_made_since_the_crash() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_FAILPOINT", "before-manifest")
        .assert()
        .failure();
    // after the crash the operator edits a file the run had written, and
    // one it had created
    w.write("tools/fleet/hello.sh", "#!/bin/sh\necho operator\n");
    w.write("docs/new.md", "operator notes\n");
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stderr(predicate::str::contains("interrupted run was rolled back"))
        .stderr(predicate::str::contains("kept as found"));
    assert_eq!(w.read("tools/fleet/hello.sh"), "#!/bin/sh\necho operator\n");
    assert_eq!(w.read("docs/new.md"), "operator notes\n");
    // untouched paths were rolled back and updated again
    assert_eq!(w.read("fleet/README.md"), r2.file("fleet/README.md"));
    // the interrupted run's backup is kept and listed
    w.mosaic(None)
        .arg("backups")
        .assert()
        .success()
        .stdout(predicate::str::contains("1.0.0 → 1.1.0"));
}

#[test]
fn an_edit_saved_while_an_update_runs_is_never_overwritten() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let before = snapshot(&w.home());
    let mut cmd = w.std_mosaic(Some(&r2));
    cmd.args(["update", "--offline"])
        .env("MOSAIC_FAILPOINT", "sleep:before-rename")
        .env("MOSAIC_FAILPOINT_SLEEP_MS", "1500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // wait until the update has written its temp files
    let t0 = std::time::Instant::now();
    loop {
        if !w.temps().is_empty() {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 20,
            "update never reached its renames"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    w.write("tools/fleet/hello.sh", "#!/bin/sh\necho saved meanwhile\n");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("changed while mosaic was updating it"),
        "{err}"
    );
    assert_eq!(
        w.read("tools/fleet/hello.sh"),
        "#!/bin/sh\necho saved meanwhile\n"
    );
    // everything else is as before the run
    let mut after = snapshot(&w.home());
    let mut want = before;
    after.remove("tools/fleet/hello.sh");
    want.remove("tools/fleet/hello.sh");
    assert_same(&want, &after, "failed update");
}

#[test]
fn rollback_never_acts_through_a_symlinked_directory() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    // the operator moves docs/ into a dotfiles dir and links it back
    let dots = w.dir.path().join("dots");
    std::fs::create_dir_all(&dots).unwrap();
    std::fs::rename(w.path("docs"), dots.join("docs")).unwrap();
    std::os::unix::fs::symlink(dots.join("docs"), w.path("docs")).unwrap();
    std::fs::write(dots.join("docs/new.md"), "operator's now\n").unwrap();
    // The rollback plans like an update: the link is a blocker, nothing changes.
    w.mosaic(None)
        .arg("rollback")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("blocked"));
    assert_eq!(
        std::fs::read_to_string(dots.join("docs/new.md")).unwrap(),
        "operator's now\n"
    );
}

#[test]
fn replace_clears_a_symlinked_parent_whose_target_holds_files_of_the_same_names() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let dots = w.dir.path().join("dots/tools");
    std::fs::create_dir_all(dots.join("fleet")).unwrap();
    std::fs::write(dots.join("fleet/hello.sh"), "dotfiles copy\n").unwrap();
    std::fs::remove_dir_all(w.path("tools")).unwrap();
    std::os::unix::fs::symlink(&dots, w.path("tools")).unwrap();
    w.mosaic(Some(&r2))
        .args(["update", "--offline", "--conflict", "replace"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(dots.join("fleet/hello.sh")).unwrap(),
        "dotfiles copy\n"
    );
    assert!(!std::fs::symlink_metadata(w.path("tools"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        w.read("tools/fleet/hello.sh"),
        r2.file("tools/fleet/hello.sh")
    );
}

#[test]
fn a_fifo_in_the_way_is_refused_not_dropped() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    std::fs::remove_file(w.path("docs/guide.md")).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(w.path("docs/guide.md"))
        .status()
        .unwrap();
    assert!(st.success());
    w.mosaic(Some(&r2))
        .args(["update", "--offline", "--conflict", "replace"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot be backed up"));
    assert!(std::fs::symlink_metadata(w.path("docs/guide.md"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn a_release_turning_our_file_into_a_directory_updates_cleanly() {
    let w = World::new();
    let r1 = Release::new("1.0.0", &[("docs/x", "a file in 1.0\n")]);
    let r2 = Release::new("1.1.0", &[("docs/x/y.md", "a file below a dir in 1.1\n")]);
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted docs/x"))
        .stdout(predicate::str::contains("created docs/x/y.md"));
    assert_eq!(w.read("docs/x/y.md"), "a file below a dir in 1.1\n");
    let snap = snapshot(&w.home());
    settle();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert_same_settled(&snap, &snapshot(&w.home()), "second update");
    // Back again: the directory the release made is in the way of the file
    // the earlier generation shipped, so the rollback plans a blocker and
    // changes nothing.
    w.mosaic(None).arg("rollback").assert().code(3);
    assert_eq!(w.read("docs/x/y.md"), "a file below a dir in 1.1\n");
}

/// A fresh install holds one descriptor per directory it writes into, not
/// one per file (a home of 100,000 files ran out of descriptors): 600 files
/// install under a limit of 128 open files.
#[test]
fn a_fresh_install_of_many_files_fits_a_small_descriptor_limit() {
    let w = World::new();
    let files: Vec<(String, String)> = (0..600)
        .map(|i| (format!("docs/many/f{i:04}.md"), format!("file {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = Release::new("1.0.0", &refs);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("mosaic"))
        .args(["install", "--quiet"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", w.dir.path().join("user"))
        .env("MOSAIC_HOME", w.home())
        .env("MOSAIC_STATE_DIR", w.state())
        .env("MOSAIC_FRAMEWORK_DIR", r.dir.path())
        .env("MOSAIC_FRAMEWORK_VERSION", &r.version)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.read("docs/many/f0599.md"), "file 599\n");
    assert_eq!(std::fs::read_dir(w.path("docs/many")).unwrap().count(), 600);
}

/// Git's racily-clean rule holds however long a run takes between its scan
/// and what it records: a file whose mtime falls in the tick the scan saw it
/// in is not trusted (an edit saved right after the scan would keep the
/// fingerprint), judged against when the scan started, not when the
/// transaction did. The pause after the load stretches that gap past the
/// rule's slack (a.md's mtime is just ahead of the run's start); a settled
/// file is trusted as before.
#[test]
fn a_fingerprint_the_scan_took_in_its_own_tick_is_not_trusted_however_long_the_run_takes() {
    use mosaic_engine::manifest::Manifest;
    let w = World::new();
    let files = [("a.md", "a\n"), ("b.md", "b\n"), ("c.md", "c v1\n")];
    let r1 = Release::new("1.0.0", &files);
    let r2 = Release::new("1.1.0", &[files[0], files[1], ("c.md", "c v2\n")]);
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let set_mtime = |rel: &str, t: std::time::SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(w.path(rel))
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let observed = |rel: &str| {
        let m = Manifest::load(&w.path(".mosaic/manifest.json"))
            .unwrap()
            .unwrap();
        m.files[rel].observed.is_some()
    };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    // The no-op that records settled fingerprints, and an update that writes.
    for (release, what) in [(&r1, "no-op"), (&r2, "update")] {
        // Half a second ahead: in the scan's window however slowly the run
        // starts, and past the old rule's slack once the pause is over.
        let soon = std::time::SystemTime::now() + std::time::Duration::from_millis(500);
        set_mtime("a.md", soon);
        set_mtime("b.md", hour_ago);
        w.mosaic(Some(release))
            .args(["update", "--offline"])
            .env("MOSAIC_FAILPOINT", "sleep:after-load")
            .env("MOSAIC_FAILPOINT_SLEEP_MS", "1500")
            .assert()
            .success();
        assert!(
            !observed("a.md"),
            "{what}: a.md was stat'ed in its own tick"
        );
        assert!(observed("b.md"), "{what}: b.md is settled");
    }
    assert_eq!(w.read("c.md"), "c v2\n");
}
