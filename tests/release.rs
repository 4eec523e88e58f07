//! `cargo xtask release` on a scratch clone of this repository (SPEC §9,
//! issue 6): `--dry-run` shows the bump and changes nothing; a real run makes
//! the commit, the tag, the CHANGELOG entry and `release-history/X.Y.Z.json`;
//! a dirty tree is refused.

mod selfupdate_support;

use selfupdate_support::{run_in, sha256, show, xtask_bin};
use std::path::{Path, PathBuf};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, Path::new("git"), args, &[]);
    assert!(out.status.success(), "git {args:?}\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A clone of the committed repository, with one Unreleased changelog line
/// committed on top (so the test never depends on the state of the real
/// CHANGELOG).
fn scratch_clone() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("mosaic");
    let out = run_in(
        dir.path(),
        Path::new("git"),
        &[
            "clone",
            "--quiet",
            "--no-hardlinks",
            env!("CARGO_MANIFEST_DIR"),
            "mosaic",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    git(&clone, &["config", "user.email", "release-test@invalid"]);
    git(&clone, &["config", "user.name", "release test"]);
    git(&clone, &["config", "commit.gpgsign", "false"]);
    git(&clone, &["config", "tag.gpgsign", "false"]);
    let cl = clone.join("CHANGELOG.md");
    let text = std::fs::read_to_string(&cl).unwrap();
    let text = text.replacen(
        "## [Unreleased]\n",
        "## [Unreleased]\n\n- release test entry\n",
        1,
    );
    std::fs::write(&cl, text).unwrap();
    git(
        &clone,
        &["commit", "--quiet", "-am", "test: changelog entry"],
    );
    (dir, clone)
}

fn current() -> semver::Version {
    semver::Version::parse(env!("CARGO_PKG_VERSION")).unwrap()
}

#[test]
fn dry_run_shows_the_bump_and_changes_nothing() {
    let (_d, clone) = scratch_clone();
    let head = git(&clone, &["rev-parse", "HEAD"]);
    let cur = current();
    let next = semver::Version::new(cur.major, cur.minor, cur.patch + 1);
    let out = run_in(
        &clone,
        &xtask_bin(),
        &["release", "patch", "--dry-run"],
        &[("MOSAIC_RELEASE_DATE", "2030-01-02")],
    );
    let text = show(&out);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("release {cur} → {next} (2030-01-02)")),
        "{text}"
    );
    for f in [
        "Cargo.toml",
        "xtask/Cargo.toml",
        "Cargo.lock",
        "CHANGELOG.md",
    ] {
        assert!(stdout.contains(&format!("would edit {f}")), "{f}\n{text}");
    }
    assert!(
        stdout.contains(&format!("+ version = \"{next}\"")),
        "{text}"
    );
    assert!(
        stdout.contains(&format!("would write release-history/{next}.json")),
        "{text}"
    );
    assert!(
        stdout.contains(&format!("would commit \"release v{next}\" and tag v{next}")),
        "{text}"
    );
    assert_eq!(git(&clone, &["status", "--porcelain"]), "");
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&clone, &["tag", "--list"]), "");
}

#[test]
fn real_run_commits_tags_and_records_history() {
    let (_d, clone) = scratch_clone();
    let cur = current();
    let next = semver::Version::new(cur.major, cur.minor + 1, 0);
    let out = run_in(
        &clone,
        &xtask_bin(),
        &["release", "minor"],
        &[("MOSAIC_RELEASE_DATE", "2030-01-02")],
    );
    let text = show(&out);
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert_eq!(
        git(&clone, &["status", "--porcelain"]),
        "",
        "the release left the tree dirty"
    );
    assert_eq!(
        git(&clone, &["log", "-1", "--format=%s"]).trim(),
        format!("release v{next}")
    );
    assert_eq!(git(&clone, &["tag", "--list"]).trim(), format!("v{next}"));
    assert_eq!(
        git(&clone, &["rev-parse", &format!("v{next}^{{commit}}")]),
        git(&clone, &["rev-parse", "HEAD"])
    );

    // Versions.
    for f in ["Cargo.toml", "xtask/Cargo.toml"] {
        let t = std::fs::read_to_string(clone.join(f)).unwrap();
        assert!(t.contains(&format!("\nversion = \"{next}\"\n")), "{f}");
    }
    let lock = std::fs::read_to_string(clone.join("Cargo.lock")).unwrap();
    assert!(lock.contains(&format!("name = \"mosaic\"\nversion = \"{next}\"")));
    assert!(lock.contains(&format!("name = \"xtask\"\nversion = \"{next}\"")));

    // CHANGELOG: an empty Unreleased, then the new version with the entry.
    let cl = std::fs::read_to_string(clone.join("CHANGELOG.md")).unwrap();
    let want = format!("## [Unreleased]\n\n## [{next}] - 2030-01-02\n\n- release test entry\n");
    assert!(cl.contains(&want), "{cl}");

    // History: every framework file with its sha256.
    let hist: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(clone.join(format!("release-history/{next}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(hist["version"], next.to_string());
    let files = hist["files"].as_object().unwrap();
    let fw = clone.join("framework");
    let mut n = 0;
    for e in walkdir::WalkDir::new(&fw) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        n += 1;
        let rel = e
            .path()
            .strip_prefix(&fw)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            files[&rel],
            sha256(&std::fs::read(e.path()).unwrap()),
            "{rel}"
        );
    }
    assert_eq!(files.len(), n);
    // The library's reader accepts it, and recognises every file of it.
    let doc = std::fs::read_to_string(clone.join(format!("release-history/{next}.json"))).unwrap();
    let parsed = mosaic_engine::history::known_hashes(&doc).unwrap();
    assert_eq!(parsed.version, next);
    let history = mosaic_engine::history::History::parse_all([doc.as_str()]).unwrap();
    for (path, hash) in files {
        assert!(
            history.shipped(
                path,
                &mosaic_engine::Sha256::parse(hash.as_str().unwrap()).unwrap()
            ),
            "{path}"
        );
    }

    // A second release of the same version is refused (tag exists).
    let again = run_in(&clone, &xtask_bin(), &["release", &next.to_string()], &[]);
    assert!(!again.status.success());
}

#[test]
fn dirty_tree_is_refused() {
    let (_d, clone) = scratch_clone();
    std::fs::write(clone.join("stray.txt"), "x").unwrap();
    let out = run_in(
        &clone,
        &xtask_bin(),
        &["release", "patch", "--dry-run"],
        &[],
    );
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("working tree is dirty"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stray.txt"),
        "{text}"
    );
    assert_eq!(git(&clone, &["tag", "--list"]), "");
}

#[test]
fn an_ignored_stray_file_under_framework_is_refused() {
    let (_d, clone) = scratch_clone();
    std::fs::write(clone.join(".git/info/exclude"), "*.swp\n").unwrap();
    std::fs::write(clone.join("framework/.notes.md.swp"), "editor junk").unwrap();
    assert_eq!(
        git(&clone, &["status", "--porcelain"]).trim(),
        "",
        "ignored, so not dirty"
    );
    let out = run_in(
        &clone,
        &xtask_bin(),
        &["release", "patch", "--dry-run"],
        &[],
    );
    let text = show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".notes.md.swp"),
        "{text}"
    );
}
