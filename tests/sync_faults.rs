//! Real faults during an update, not mocks: a full disk (a tiny tmpfs) and a
//! read-only bind mount, each hit mid-apply. The update must exit non-zero
//! with one line naming the path, and leave the tree exactly as before.
//!
//! Mounting needs root and a private mount namespace, so each test re-runs
//! itself inside `unshare -m`; without root or `unshare` it skips (and fails
//! under `MOSAIC_REQUIRE_REAL=1`).

mod common;
mod sync_support;

use std::process::Command;
use sync_support::*;

const INNER: &str = "MOSAIC_FAULT_TEST_INNER";

/// Runs test `name` again inside a private mount namespace; returns true when
/// the caller is already inside and should do the work.
fn inside_namespace(name: &str) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    if common::euid() != Some(0)
        || common::which("unshare").is_none()
        || common::which("mount").is_none()
    {
        common::skip("fault tests need root, unshare and mount (a private mount namespace)");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inner run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "inner run did not run the test:\n{stdout}\n{stderr}"
    );
    false
}

fn mount(args: &[&str]) {
    let st = Command::new("mount").args(args).status().unwrap();
    assert!(st.success(), "mount {args:?}");
}

fn umount(path: &std::path::Path) {
    let _ = Command::new("umount").arg(path).status();
}

fn one_line_naming(stderr: &[u8], needle: &str, os_error: &str) {
    let err = String::from_utf8_lossy(stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "names {needle}: {err}");
    assert!(err.contains(os_error), "says {os_error}: {err}");
    assert!(err.contains("rolled back"), "{err}");
}

#[test]
fn full_disk_mid_update_rolls_everything_back() {
    if !inside_namespace("full_disk_mid_update_rolls_everything_back") {
        return;
    }
    let w = World::new();
    std::fs::create_dir_all(w.home()).unwrap();
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=256k",
        "tmpfs",
        w.home().to_str().unwrap(),
    ]);
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("fleet/roster.yaml", "# mine\n");
    let before = snapshot(&w.home());
    // the next release adds a file larger than the disk, after others
    let r2 = v2();
    std::fs::write(
        r2.dir.path().join("tools/zz-big.bin"),
        vec![7u8; 1024 * 1024],
    )
    .unwrap();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .code(4);
    one_line_naming(
        &out.get_output().stderr,
        "tools/zz-big.bin",
        "No space left on device",
    );
    assert_same(&before, &snapshot(&w.home()), "after a full disk");
    // once there is room, the same update lands
    std::fs::remove_file(r2.dir.path().join("tools/zz-big.bin")).unwrap();
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert_eq!(w.read("fleet/README.md"), r2.file("fleet/README.md"));
    umount(&w.home());
}

#[test]
fn read_only_directory_mid_update_rolls_everything_back() {
    if !inside_namespace("read_only_directory_mid_update_rolls_everything_back") {
        return;
    }
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("notes/mine.txt", "mine\n");
    let before = snapshot(&w.home());
    let tools = w.path("tools");
    let t = tools.to_str().unwrap();
    mount(&["--bind", t, t]);
    mount(&["-o", "remount,bind,ro", t]);
    // v2 deletes docs/dropped.md and olddir/, rewrites fleet/ files, then
    // fails on tools/fleet/hello.sh: all of it must be undone.
    let r2 = v2();
    let out = w
        .mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .code(4);
    one_line_naming(
        &out.get_output().stderr,
        "tools/fleet/hello.sh",
        "Read-only file system",
    );
    assert_same(&before, &snapshot(&w.home()), "after a read-only failure");
    umount(&tools);
    w.mosaic(Some(&r2))
        .args(["update", "--offline"])
        .assert()
        .success();
    assert!(!w.path("docs/dropped.md").exists());
}
