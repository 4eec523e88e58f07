//! `mosaic fleet deploy` against a real sshd host on this machine (see
//! `tests/hosts_support`): the binary lands in the remote bin dir with this
//! binary's sha256, runs there, and `mosaic install` wrote the remote
//! home's manifest; a truncated or corrupted stream (debug-build hook
//! `MOSAIC_TEST_DEPLOY_STREAM`) leaves the old binary; a host that is down
//! is one line naming it; `--dry-run` connects to nothing.
//!
//! Needs root, sshd, unshare, nsenter, ip, tmux, dash and zsh: skips with a
//! printed reason elsewhere, fails under `MOSAIC_REQUIRE_REAL=1`.

mod common;
mod hosts_support;
mod json_contract;

use hosts_support::{HostSpec, Rig};
use serde_json::Value;
use std::path::Path;

const ROSTER: &str = "version: 1
tmux:
  socket_name: mosaic-fleet
hosts:
  HostA: { ssh: hosta }
  down: { ssh: down }
agents:
  - name: lead
    runtime: claude
";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sha(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn deploy_to_a_real_sshd_host() {
    if let Some(why) = hosts_support::missing() {
        common::skip(&why);
        return;
    }
    let rig = Rig::start(&[HostSpec {
        name: "hosta",
        shell: "bash",
        netns: false,
        systemd: false,
    }]);
    let roster = rig.write_roster(ROSTER);
    let roster = roster.to_str().unwrap();
    let host = rig.host("hosta");
    let meta = host.home().join(".mosaic");
    let _ = std::fs::remove_dir_all(&meta);
    let remote_bin = host.dir.join("root/.local/bin/mosaic");
    let ours = sha(Path::new(env!("CARGO_BIN_EXE_mosaic")));

    // --dry-run: the plan, no connection (the host's sshd log stays empty).
    let before = host.connections();
    let (o, _) = rig.mosaic(
        &[
            "fleet",
            "deploy",
            "hosta",
            "--dry-run",
            "--json",
            "--roster",
            roster,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = json_contract::parse(&o.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["sha256"], ours.as_str());
    assert_eq!(host.connections(), before);
    assert!(!remote_bin.exists());

    // The real deploy.
    let (o, _) = rig.mosaic(
        &["fleet", "deploy", "HOSTA", "--json", "--roster", roster],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = json_contract::parse(&o.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["host"], "HostA");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["verified", "placed", "version", "install", "fleet-install"],
        "{v}"
    );
    assert_eq!(sha(&remote_bin), ours);
    let out = host.inside(Path::new("/root/.local/bin/mosaic"), &["--version"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mosaic"));
    assert!(
        std::fs::read_dir(&meta)
            .map(|d| d
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("manifest")))
            .unwrap_or(false),
        "no manifest in {}",
        meta.display()
    );
    // No roster there: fleet install was skipped, and said so.
    assert!(
        v["steps"][4]["detail"]
            .as_str()
            .unwrap()
            .starts_with("skipped"),
        "{v}"
    );

    // A truncated or corrupted stream leaves the old binary and no temp file.
    std::fs::write(&remote_bin, "#!/bin/sh\necho old\n").unwrap();
    for (mode, want) in [("truncate", "stream ended"), ("corrupt", "sha256 mismatch")] {
        let (o, _) = rig.mosaic(
            &["fleet", "deploy", "hosta", "--roster", roster],
            &[("MOSAIC_TEST_DEPLOY_STREAM", mode)],
        );
        assert_eq!(o.status.code(), Some(1), "{mode}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{mode}: {err}");
        assert!(
            err.contains("host HostA") && err.contains(want),
            "{mode}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&remote_bin).unwrap(),
            "#!/bin/sh\necho old\n"
        );
        let left: Vec<_> = std::fs::read_dir(remote_bin.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{mode}: {left:?}");
    }

    // --bin-dir: another absolute directory.
    let (o, _) = rig.mosaic(
        &[
            "fleet",
            "deploy",
            "hosta",
            "--bin-dir",
            "/root/opt/bin",
            "--roster",
            roster,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sha(&host.dir.join("root/opt/bin/mosaic")), ours);
    let (o, _) = rig.mosaic(
        &[
            "fleet",
            "deploy",
            "hosta",
            "--bin-dir",
            "opt/bin",
            "--roster",
            roster,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A host that is down: one line naming it, exit 1.
    let (o, _) = rig.mosaic(&["fleet", "deploy", "down", "--roster", roster], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("down"), "{err}");
    let (o, _) = rig.mosaic(
        &["fleet", "deploy", "down", "--json", "--roster", roster],
        &[],
    );
    let v: Value = json_contract::parse(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], "UNREACHABLE", "{v}");
}
