//! The one pipeline every writing command runs (SPEC §4.3): dry runs that
//! cannot write, flags only where they mean something, reads under the lock,
//! generations that rollback undoes with the update's three-way rules, fleet
//! edits with their own history, and inspections that render the same plan.
//! Each test names the defect of the engine-core issue it pins.

mod common;
mod json_contract;
mod sync_support;

use predicates::prelude::*;
use std::time::Duration;
use sync_support::*;

const ROSTER: &str = "# mine\nversion: 1\ntransport: tmux\ntmux:\n  socket_name: mosaic-fleet\nagents:\n  - name: coder0\n    runtime: codex\n";

fn installed_and_updated() -> (World, Release, Release) {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    (w, r1, r2)
}

fn agents(w: &World) -> Vec<String> {
    w.read("fleet/roster.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: ").map(str::to_string))
        .collect()
}

// Defect 1: `--dry-run` acted for real on `rollback`.
#[test]
fn rollback_dry_run_changes_nothing_and_says_what_it_would_do() {
    let (w, _, _) = installed_and_updated();
    let before = snapshot(&w.home());
    let state = snapshot(&w.state());
    w.mosaic(None)
        .args(["rollback", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would roll back generation 2"))
        .stdout(predicate::str::contains("deleted docs/new.md"));
    assert_same(
        &before,
        &snapshot(&w.home()),
        "home after rollback --dry-run",
    );
    assert_same(
        &state,
        &snapshot(&w.state()),
        "state after rollback --dry-run",
    );
}

// Defect 1: flags accepted by commands that ignore them.
#[test]
fn flags_live_only_on_the_commands_that_implement_them() {
    let w = World::new();
    for args in [
        &["fleet", "ps", "--conflict", "replace"][..],
        &["fleet", "ps", "--allow-downgrade"],
        &["completions", "bash", "--conflict", "keep"],
        &["status", "--dry-run"],
    ] {
        w.mosaic(None)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("unexpected argument"));
    }
    // Commands that talk to a live agent refuse a dry run in one line.
    for args in [
        &["agent", "send", "a", "-m", "hi", "--dry-run"][..],
        &["agent", "reset", "a", "--dry-run"],
    ] {
        let out = w.mosaic(None).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("has no --dry-run"), "{err}");
    }
}

// Defect 1: `--json --dry-run` printed nothing on fleet init/add/remove/stop.
#[test]
fn fleet_edits_render_their_plan_as_json_in_a_dry_run() {
    let w = World::new();
    w.mosaic(None).arg("install").assert().success();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = w.mosaic(None).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        json_contract::parse(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    };
    let v = json(&["--json", "fleet", "init", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert!(!w.path("fleet/roster.yaml").exists());
    w.write("fleet/roster.yaml", ROSTER);
    let v = json(&[
        "--json",
        "fleet",
        "add",
        "x1",
        "--runtime",
        "pi",
        "--dry-run",
    ]);
    assert_eq!(
        (v["dry_run"].clone(), v["added"].clone()),
        (true.into(), "x1".into())
    );
    let v = json(&["--json", "fleet", "remove", "coder0", "--dry-run"]);
    assert_eq!(v["removed"], "coder0");
    let v = json(&["--json", "fleet", "stop", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(w.read("fleet/roster.yaml"), ROSTER);
}

// Defects 2 and 3: rolling back after fleet edits deleted the manifest and
// reverted wholesale; five fleet edits evicted the update's backup.
#[test]
fn rollback_keeps_later_edits_the_roster_and_the_manifest() {
    let (w, r1, r2) = installed_and_updated();
    w.write("fleet/roster.yaml", ROSTER);
    for i in 1..=6 {
        w.mosaic(None)
            .args(["fleet", "add", &format!("x{i}"), "--runtime", "pi"])
            .assert()
            .success();
    }
    // After the update: an edit to a file the update changed, an edit to a
    // file it did not change, and a file of the operator's own.
    w.write("tools/fleet/hello.sh", "#!/bin/sh\necho mine\n");
    w.write("docs/guide.md", "my guide\n");
    w.write("docs/notes.md", "my notes\n");
    w.mosaic(None)
        .arg("rollback")
        .assert()
        .success()
        .stdout(predicate::str::contains("rolled back generation 2"));
    assert_eq!(
        agents(&w),
        ["coder0", "x1", "x2", "x3", "x4", "x5", "x6"],
        "the roster is never touched"
    );
    assert_eq!(w.read("tools/fleet/hello.sh"), "#!/bin/sh\necho mine\n");
    assert_eq!(
        w.read("tools/fleet/hello.sh.mosaic-new"),
        r1.file("tools/fleet/hello.sh")
    );
    assert_eq!(w.read("docs/guide.md"), "my guide\n");
    assert_eq!(w.read("docs/notes.md"), "my notes\n");
    assert_eq!(w.read("docs/dropped.md"), r1.file("docs/dropped.md"));
    assert!(!w.path("docs/new.md").exists());
    let path = w.path(".mosaic/manifest.json");
    let m =
        mosaic_engine::manifest::Manifest::parse(&path, &std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(m.version.to_string(), "1.0.0");
    // The next update is a plain three-way update again (no legacy adoption:
    // the operator's edit is kept, not overwritten).
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert_eq!(w.read("docs/guide.md"), "my guide\n");
    assert_eq!(w.read("docs/new.md"), r2.file("docs/new.md"));
}

// Defect 3: rollback of the install deleted the roster filled in since.
#[test]
fn the_first_install_is_not_rolled_back_and_nothing_is_lost() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("fleet/roster.yaml", ROSTER);
    let before = snapshot(&w.home());
    w.mosaic(None)
        .arg("rollback")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("first install"));
    assert_same(&before, &snapshot(&w.home()), "refused rollback");
}

// Fleet edits have their own history: undo, newest first.
#[test]
fn fleet_undo_restores_the_roster_before_the_last_edit() {
    let (w, _, _) = installed_and_updated();
    w.write("fleet/roster.yaml", ROSTER);
    w.mosaic(None)
        .args(["fleet", "add", "x1", "--runtime", "pi"])
        .assert()
        .success();
    w.mosaic(None)
        .args(["fleet", "undo", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would restore"));
    assert_eq!(agents(&w), ["coder0", "x1"]);
    w.mosaic(None).args(["fleet", "undo"]).assert().success();
    assert_eq!(w.read("fleet/roster.yaml"), ROSTER);
}

// Defect 4: two concurrent `fleet add`s lost one agent. The first run's
// flock is delayed by strace (deterministic): on the old code it had read
// the roster already and wrote back a roster without the second agent.
#[test]
fn concurrent_fleet_adds_both_land() {
    if common::which("strace").is_none() {
        common::skip("strace is not installed");
        return;
    }
    let (w, _, _) = installed_and_updated();
    w.write("fleet/roster.yaml", ROSTER);
    let mut first = std::process::Command::new("strace");
    first
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=flock", "-e"])
        .arg("inject=flock:delay_enter=1500000:when=1")
        .arg(assert_cmd::cargo::cargo_bin("mosaic"))
        .args(["fleet", "add", "a1", "--runtime", "pi"]);
    w.env(&mut first, None)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = first.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.mosaic(None)
        .args(["fleet", "add", "b1", "--runtime", "pi"])
        .assert()
        .success();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut names = agents(&w);
    names.sort();
    assert_eq!(names, ["a1", "b1", "coder0"]);
}

// Defect 4: a `fleet add` during an `update` wrote back the pre-migration roster.
#[test]
fn a_fleet_add_during_an_update_keeps_the_migration() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write(
        "fleet/roster.yaml",
        &ROSTER.replace("mosaic-fleet", "mosaic-factory"),
    );
    let child = w
        .std_mosaic(Some(&r1))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .args(["update", "--offline"])
        .env("MOSAIC_TMUX", "/bin/false")
        .env("MOSAIC_FAILPOINT", "sleep:after-lock")
        .env("MOSAIC_FAILPOINT_SLEEP_MS", "1500")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.mosaic(None)
        .args(["fleet", "add", "x1", "--runtime", "pi"])
        .assert()
        .success();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let roster = w.read("fleet/roster.yaml");
    assert!(roster.contains("socket_name: mosaic-fleet"), "{roster}");
    assert!(roster.contains("- name: x1"), "{roster}");
}

// Defect 10: pending `.mosaic-new` files vanished from `status`.
#[test]
fn status_lists_a_pending_conflict_until_it_is_resolved() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("tools/fleet/hello.sh", "#!/bin/sh\necho mine\n");
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    w.mosaic(Some(&r2))
        .arg("status")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("C tools/fleet/hello.sh"))
        .stdout(predicate::str::contains(
            "mosaic resolve tools/fleet/hello.sh",
        ));
    w.mosaic(None)
        .args(["resolve", "tools/fleet/hello.sh", "--take"])
        .assert()
        .success();
    assert_eq!(
        w.read("tools/fleet/hello.sh"),
        r2.file("tools/fleet/hello.sh")
    );
    assert!(!w.path("tools/fleet/hello.sh.mosaic-new").exists());
    w.mosaic(Some(&r2)).arg("status").assert().success();
    w.mosaic(None)
        .args(["resolve", "tools/fleet/hello.sh", "--keep"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no pending"));
}

// Defect 10: `status` said clean while `update --dry-run` would migrate.
#[test]
fn status_shows_a_pending_socket_migration() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write(
        "fleet/roster.yaml",
        &ROSTER.replace("mosaic-fleet", "mosaic-factory"),
    );
    w.mosaic(Some(&r1))
        .arg("status")
        .env("MOSAIC_TMUX", "/bin/false")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("fleet/roster.yaml"))
        .stdout(predicate::str::contains("migrated"));
}

// Defect 10: `diff` showed nothing for the operator's own edits, and
// `diff nosuch/path` exited 0.
#[test]
fn diff_shows_the_operators_edits_and_refuses_unknown_paths() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("docs/guide.md", "my guide\n");
    w.mosaic(Some(&r1))
        .args(["diff", "docs/guide.md"])
        .assert()
        .success()
        .stdout(predicate::str::contains("+my guide"))
        .stdout(predicate::str::contains("-guide v1"));
    w.mosaic(Some(&r1))
        .args(["diff", "nosuch/path"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nosuch/path"));
}

// Defect 5: `fleet add/remove/install` wrote through a symlinked `H/fleet`;
// `fleet install` replaced a symlinked env file.
#[test]
fn fleet_writes_never_follow_links_below_the_home() {
    let w = World::new();
    w.mosaic(None).arg("install").assert().success();
    w.write("fleet/roster.yaml", ROSTER);
    // H/fleet moved into a dotfiles dir and linked back.
    let dots = w.dir.path().join("dots");
    std::fs::create_dir_all(&dots).unwrap();
    std::fs::rename(w.path("fleet"), dots.join("fleet")).unwrap();
    std::os::unix::fs::symlink(dots.join("fleet"), w.path("fleet")).unwrap();
    w.mosaic(None)
        .args(["fleet", "add", "x1", "--runtime", "pi"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("symlink"));
    assert_eq!(
        std::fs::read_to_string(dots.join("fleet/roster.yaml")).unwrap(),
        ROSTER
    );
    // Back to a real directory; an env file that is a link is refused.
    std::fs::remove_file(w.path("fleet")).unwrap();
    std::fs::rename(dots.join("fleet"), w.path("fleet")).unwrap();
    std::fs::create_dir_all(w.path("fleet/agents")).unwrap();
    let target = dots.join("coder0.env");
    std::fs::write(&target, "MOSAIC_AGENT_COMMAND=mine\n").unwrap();
    std::os::unix::fs::symlink(&target, w.path("fleet/agents/coder0.env")).unwrap();
    w.mosaic(None)
        .args(["fleet", "install"])
        .env("MOSAIC_SYSTEMCTL", "/bin/true")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a symlink"));
    assert!(std::fs::symlink_metadata(w.path("fleet/agents/coder0.env"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "MOSAIC_AGENT_COMMAND=mine\n"
    );
}
