//! Robustness tests against the real binary (the defects): one
//! identity per home whatever its spelling, recovery that cannot wedge and
//! never acts on a bad journal, deadlines on external programs, no panic on
//! a closed or full stdout, refused homes and paths, the active units
//! belonging to one home, and a lock error that names its live holder.

mod sync_support;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use sync_support::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn one_line(s: &str) -> &str {
    assert_eq!(s.trim_end().lines().count(), 1, "not one line: {s}");
    s.trim_end()
}

/// The one journal in the state directory.
fn journal_of(w: &World) -> PathBuf {
    let found: Vec<_> = std::fs::read_dir(w.state())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("journal-")
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// Installs v1, then crashes an update to v2 at `point`; returns the releases.
fn crashed(w: &World, point: &str) -> (Release, Release) {
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_FAILPOINT", point)
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "{point}: killed by a signal");
    (r1, r2)
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// --- 1. one identity per home -------------------------------------------

#[test]
fn a_crash_under_one_spelling_of_the_home_is_recovered_under_another() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    let h = w.home().display().to_string();
    let slashed = format!("{h}/");
    w.mosaic(Some(&r1))
        .args(["--home", &h, "install"])
        .assert()
        .success();
    let out = w
        .mosaic(Some(&r2))
        .args(["--home", &slashed, "update", "--offline"])
        .env("MOSAIC_FAILPOINT", "mid-apply")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "killed");
    // The run spelled without the slash sees and recovers the crash.
    let out = w
        .mosaic(Some(&r2))
        .args(["--home", &h, "update", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("interrupted run was rolled back"),
        "{}",
        stderr_of(&out)
    );
    // A later run spelled with the slash finds nothing stale to replay.
    let out = w
        .mosaic(Some(&r2))
        .args(["--home", &slashed, "update", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("rolled back"),
        "{}",
        stderr_of(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    for rel in ["fleet/README.md", "tools/fleet/hello.sh", "docs/new.md"] {
        assert_eq!(w.read(rel), r2.file(rel), "{rel}");
    }
}

#[test]
fn backups_of_one_home_are_listed_whatever_the_spelling() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    std::fs::create_dir_all(w.path("sub")).unwrap();
    let dotted = format!("{}/sub/..", w.home().display());
    w.mosaic(Some(&r2))
        .args(["--home", &dotted, "update", "--offline"])
        .assert()
        .success();
    let out = w.mosaic(None).args(["backups"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
}

#[test]
fn relative_homes_and_state_dirs_are_refused_in_one_line() {
    let w = World::new();
    let cwd = w.dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = w
        .mosaic(Some(&v1()))
        .current_dir(&cwd)
        .args(["--home", "relhome", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(one_line(&err).contains("--home \"$PWD/relhome\""), "{err}");
    assert!(!cwd.join("relhome").exists(), "nothing created silently");
    let out = w
        .mosaic(Some(&v1()))
        .current_dir(&cwd)
        .env("MOSAIC_STATE_DIR", "relstate")
        .arg("install")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&stderr_of(&out)).contains("MOSAIC_STATE_DIR"));
    assert!(!cwd.join("relstate").exists());
    assert!(!w.home().exists());
}

// --- 2. recovery that cannot wedge ------------------------------------------

#[test]
fn a_journal_whose_backup_is_gone_is_removed_not_a_wedge() {
    let w = World::new();
    let (_r1, r2) = crashed(&w, "after-backup");
    let journal = journal_of(&w);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    let backup = PathBuf::from(j["backup"].as_str().unwrap());
    // What an older recovery left when it crashed between deleting the
    // backup and deleting the journal.
    std::fs::remove_dir_all(&backup).unwrap();
    std::fs::write(
        &journal,
        serde_json::json!({"backup": backup, "phase": "apply"}).to_string(),
    )
    .unwrap();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!journal.exists());
    w.mosaic(Some(&r2)).arg("verify").assert().success();
}

#[test]
fn a_crash_before_new_directories_are_renamed_into_place_leaves_none_of_them_after_recovery() {
    // A fresh install puts every file in a new directory: each new subtree
    // is filled under a temp name and renamed into place whole. Killed
    // before the renames, the temps are all there is; recovery removes them.
    let w = World::new();
    let r1 = v1();
    let out = w
        .mosaic(Some(&r1))
        .arg("install")
        .env("MOSAIC_FAILPOINT", "before-rename")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "killed");
    let left = w.temps();
    assert!(
        left.iter().any(|p| p.starts_with(".fleet.mosaic-tmp-")),
        "the crash left the new fleet/ under its temp name: {left:?}"
    );
    assert!(std::fs::symlink_metadata(w.path("fleet")).is_err());
    // The next run rolls the crashed one back (its temps go with it: the
    // new run's own have another tag), then installs.
    let out = w.mosaic(Some(&r1)).arg("install").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("interrupted run was rolled back"),
        "{}",
        stderr_of(&out)
    );
    assert!(w.temps().is_empty(), "recovery left {:?}", w.temps());
    w.mosaic(Some(&r1)).arg("verify").assert().success();
}

#[test]
fn a_crash_during_recovery_cleanup_does_not_wedge_the_home() {
    let w = World::new();
    let (_r1, r2) = crashed(&w, "mid-apply");
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_FAILPOINT", "recover-cleanup")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "killed in recovery");
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    w.mosaic(Some(&r2)).arg("verify").assert().success();
    // The backup the crashed cleanup left is swept by the next transaction.
    let listed = w.mosaic(None).arg("backups").output().unwrap();
    let on_disk = std::fs::read_dir(w.state().join("backups"))
        .unwrap()
        .count();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        on_disk,
        "an orphaned backup was left"
    );
}

#[test]
fn a_journal_naming_the_state_dir_itself_is_refused_and_never_acted_on() {
    let w = World::new();
    let (_r1, r2) = crashed(&w, "after-backup");
    let journal = journal_of(&w);
    let marker = w.state().join("keep-me");
    std::fs::write(&marker, "x").unwrap();
    let evil = w.state().join("backups").join("..");
    let text = serde_json::json!({"backup": evil, "phase": "backup"}).to_string();
    std::fs::write(&journal, &text).unwrap();
    for _ in 0..2 {
        let out = w
            .mosaic(Some(&r2))
            .args(["update", "--offline"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(one_line(&err).contains("did not act on it"), "{err}");
        assert!(marker.exists(), "STATE was deleted");
        assert_eq!(std::fs::read_to_string(&journal).unwrap(), text);
    }
}

#[test]
fn a_journal_with_an_unknown_phase_keeps_its_backup_and_is_refused() {
    let w = World::new();
    let (_r1, r2) = crashed(&w, "after-backup");
    let journal = journal_of(&w);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    let backup = PathBuf::from(j["backup"].as_str().unwrap());
    std::fs::write(
        &journal,
        serde_json::json!({"backup": backup, "phase": "applying"}).to_string(),
    )
    .unwrap();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(one_line(&err).contains("did not act on it"), "{err}");
    assert!(!err.contains("rolled back"), "{err}");
    assert!(backup.join("meta.json").exists(), "backup discarded");
    assert!(journal.exists());
}

#[test]
fn a_backup_record_naming_paths_outside_the_home_is_refused() {
    let w = World::new();
    let (_r1, r2) = crashed(&w, "mid-apply");
    let journal = journal_of(&w);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    let mpath = PathBuf::from(j["backup"].as_str().unwrap()).join("meta.json");
    let victim = w.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    for rel in ["../../../victim.txt", "/etc/passwd"] {
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
        meta["records"][0]["rel"] = rel.into();
        std::fs::write(&mpath, meta.to_string()).unwrap();
        let out = w
            .mosaic(Some(&r2))
            .args(["update", "--offline"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{rel}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(one_line(&err).contains("neither below the home"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(journal.exists());
    }
}

// --- 3. deadlines on external programs ---------------------------------------

#[test]
fn a_hung_tmux_fails_update_within_the_deadline_and_releases_the_lock() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    // A pending legacy-socket migration makes the update ask tmux.
    w.write(
        "fleet/agents/coder0.env",
        "MOSAIC_TMUX_SOCKET=mosaic-factory\n",
    );
    let hung = w.dir.path().join("hung-tmux");
    write_script(&hung, "sleep 1000");
    let t0 = Instant::now();
    let out = w
        .mosaic(Some(&r1))
        .args(["update", "--offline"])
        .env("MOSAIC_TMUX", &hung)
        .env("MOSAIC_EXEC_TIMEOUT_SECS", "1")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(out.status.code(), Some(7), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    let line = one_line(&err);
    assert!(
        line.contains("hung-tmux") && line.contains("within 1 s"),
        "{line}"
    );
    // The lock is free again: an impatient run gets it at once.
    let ok = w.dir.path().join("no-tmux");
    write_script(&ok, "exit 1");
    let out = w
        .mosaic(Some(&r1))
        .args(["update", "--offline"])
        .env("MOSAIC_TMUX", &ok)
        .env("MOSAIC_LOCK_TIMEOUT_SECS", "0")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(w.read("fleet/agents/coder0.env").contains("mosaic-fleet"));
}

#[test]
fn a_hung_tmux_fails_fleet_ps_within_the_deadline() {
    let w = World::new();
    w.mosaic(None).arg("install").assert().success();
    let stub = w.dir.path().join("systemctl");
    write_script(&stub, "exit 1");
    w.mosaic(None)
        .args(["fleet", "init", "--preset", "pair"])
        .env("MOSAIC_SYSTEMCTL", &stub)
        .assert()
        .success();
    let hung = w.dir.path().join("hung-tmux");
    write_script(&hung, "sleep 1000 & sleep 1000");
    let t0 = Instant::now();
    let out = w
        .mosaic(None)
        .args(["fleet", "ps"])
        .env("MOSAIC_TMUX", &hung)
        .env("MOSAIC_SYSTEMCTL", &stub)
        .env("MOSAIC_EXEC_TIMEOUT_SECS", "1")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        one_line(&err).contains("did not finish within 1 s"),
        "{err}"
    );
}

// --- 4. no panic reaches the user --------------------------------------------

/// Runs `cmd` with stdout a pipe whose reading end is already closed.
fn with_closed_stdout(mut cmd: std::process::Command) -> std::process::Output {
    let (r, wr) = std::io::pipe().unwrap();
    drop(r);
    cmd.stdout(wr).stderr(std::process::Stdio::piped());
    cmd.output().unwrap()
}

#[test]
fn a_closed_stdout_ends_quietly_with_zero() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    for args in [&["status"][..], &["completions", "bash"], &["backups"]] {
        let mut cmd = w.std_mosaic(Some(&r1));
        cmd.args(args);
        let out = with_closed_stdout(cmd);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        assert_eq!(stderr_of(&out), "", "{args:?}");
    }
}

#[test]
fn a_full_stdout_is_one_line_and_says_the_update_landed() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = w
        .std_mosaic(Some(&r2))
        .args(["update", "--offline"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    let line = one_line(&err);
    assert!(
        line.contains("No space left") && line.contains("update was applied"),
        "{line}"
    );
    assert_eq!(w.read("docs/new.md"), r2.file("docs/new.md"));
    w.mosaic(Some(&r2)).arg("verify").assert().success();
}

#[test]
fn non_utf8_homes_and_rosters_are_refused_in_one_line() {
    let w = World::new();
    let bad = std::ffi::OsStr::from_bytes(b"h\xff");
    let home = w.dir.path().join(bad);
    let out = w
        .mosaic(Some(&v1()))
        .arg("--home")
        .arg(&home)
        .arg("install")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(one_line(&stderr_of(&out)).contains("UTF-8"));
    assert!(!home.exists());

    w.mosaic(None).arg("install").assert().success();
    let dir = w.dir.path().join("rosters");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [&b"r\xff.yaml"[..], b"r\nx.yaml"] {
        let out = w
            .mosaic(None)
            .args(["fleet", "add", "coder9", "--runtime", "claude", "--roster"])
            .arg(dir.join(std::ffi::OsStr::from_bytes(name)))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        assert!(one_line(&stderr_of(&out)).contains("--roster"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "file written");
    }
}

// --- 5. refused homes -------------------------------------------------------

#[test]
fn root_system_directories_and_home_itself_are_refused_as_a_home() {
    let w = World::new();
    let user = w.dir.path().join("user");
    let mut homes: Vec<PathBuf> = ["/", "/etc", "/usr", "/var", "/tmp", "/lib", "/etc/"]
        .iter()
        .map(PathBuf::from)
        .collect();
    homes.push(user.clone());
    homes.push(user.join("."));
    for h in &homes {
        for cmd in [&["install", "--dry-run"][..], &["status"]] {
            let out = w
                .mosaic(Some(&v1()))
                .arg("--home")
                .arg(h)
                .args(cmd)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{h:?} {cmd:?}: {}",
                stderr_of(&out)
            );
            assert!(one_line(&stderr_of(&out)).contains("refusing"), "{h:?}");
        }
    }
    let nl = w.dir.path().join("a\nb");
    let out = w
        .mosaic(Some(&v1()))
        .arg("--home")
        .arg(&nl)
        .arg("install")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&stderr_of(&out)).contains("control character"));
    assert!(!nl.exists());
}

// --- 6. the active units belong to one home -----------------------------------

#[test]
fn a_sync_of_another_home_leaves_the_active_units_alone_unless_asked() {
    let w = World::new();
    let r1 = v1();
    let config = w.dir.path().join("user/.config");
    let units = config.join("systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    let active = units.join("mosaic-tmux-holder.service");
    let theirs = "[Unit]\nDescription=the default home's unit\n";
    std::fs::write(&active, theirs).unwrap();
    let calls = w.dir.path().join("systemctl.calls");
    let stub = w.dir.path().join("systemctl");
    write_script(&stub, &format!("echo \"$@\" >> '{}'", calls.display()));
    let scratch = w.dir.path().join("scratch");
    let run = |home: &Path, extra: &[&str]| {
        let mut c = w.mosaic(Some(&r1));
        c.env("XDG_CONFIG_HOME", &config)
            .env("MOSAIC_SYSTEMCTL", &stub)
            .arg("--home")
            .arg(home)
            .arg("install")
            .args(extra);
        c.output().unwrap()
    };
    let out = run(&scratch, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("left the active units") && err.contains("--units"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&active).unwrap(), theirs);
    assert!(!calls.exists(), "no daemon-reload for another home's units");
    // Nothing of theirs was backed up under the scratch home, and no unit is
    // recorded in its manifest.
    let mpath = scratch.join(".mosaic/manifest.json");
    let manifest = String::from_utf8(
        mosaic_engine::manifest::Manifest::parse(&mpath, &std::fs::read(&mpath).unwrap())
            .unwrap()
            .to_json(),
    )
    .unwrap();
    assert!(
        !manifest.contains(&units.display().to_string()),
        "{manifest}"
    );
    // The scratch home's later status does not claim the units as edited.
    let out = w
        .mosaic(Some(&r1))
        .env("XDG_CONFIG_HOME", &config)
        .arg("--home")
        .arg(&scratch)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Asked explicitly, it plans the refresh.
    let out = run(&w.dir.path().join("scratch2"), &["--units", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("left the active units"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mosaic-tmux-holder.service"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// --- 7. the lock names its live holder ------------------------------------------

#[test]
fn a_held_lock_names_the_live_holder_and_never_advises_deleting_the_lock() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    w.mosaic(Some(&r1)).arg("install").assert().success();
    let mut holder = w.std_mosaic(Some(&r2));
    holder
        .args(["update", "--offline"])
        .env("MOSAIC_FAILPOINT", "sleep:after-lock")
        .env("MOSAIC_FAILPOINT_SLEEP_MS", "4000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = holder.spawn().unwrap();
    let lock = w.path(".mosaic/lock");
    let t0 = Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim() != child.id().to_string())
        .unwrap_or(true)
    {
        assert!(t0.elapsed().as_secs() < 20, "holder never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .env("MOSAIC_LOCK_TIMEOUT_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = stderr_of(&out);
    let line = one_line(err.lines().last().unwrap());
    assert!(line.contains(&format!("pid {}", child.id())), "{line}");
    assert!(
        line.contains("update --offline"),
        "holder's command: {line}"
    );
    assert!(!line.contains("remove"), "{line}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_crash_with_active_units_in_the_record_still_recovers() {
    let w = World::new();
    let (r1, r2) = (v1(), v2());
    let config = w.dir.path().join("user/.config");
    let units = config.join("systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    let active = units.join("mosaic-tmux-holder.service");
    std::fs::write(&active, r1.file("systemd/user/mosaic-tmux-holder.service")).unwrap();
    let stub = w.dir.path().join("systemctl");
    write_script(&stub, "exit 0");
    let run = |r: &Release, point: Option<&str>| {
        let mut c = w.mosaic(Some(r));
        c.env("XDG_CONFIG_HOME", &config)
            .env("MOSAIC_SYSTEMCTL", &stub)
            .args(["update", "--offline"]);
        if let Some(p) = point {
            c.env("MOSAIC_FAILPOINT", p);
        }
        c.output().unwrap()
    };
    assert!(run(&r1, None).status.success());
    let out = run(&r2, Some("before-manifest"));
    assert!(out.status.code().is_none(), "killed");
    let journal = journal_of(&w);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    let meta =
        std::fs::read_to_string(PathBuf::from(j["backup"].as_str().unwrap()).join("meta.json"))
            .unwrap();
    assert!(
        meta.contains(&active.display().to_string()),
        "the unit is in the record: {meta}"
    );
    let out = run(&r2, None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("interrupted run was rolled back"));
    assert_eq!(
        std::fs::read_to_string(&active).unwrap(),
        r2.file("systemd/user/mosaic-tmux-holder.service")
    );
}
