//! Shared helpers of the installer-core integration tests: throw-away homes,
//! emulated releases (framework trees for `MOSAIC_FRAMEWORK_DIR`), and tree
//! snapshots compared byte for byte.
#![allow(dead_code)]

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One throw-away world: a user HOME, a framework home and a state dir.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        World { dir }
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("user/.config/mosaic")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home().join(rel)
    }
    /// Puts this world's environment on `c` (no release URL, no units):
    /// for runs of `mosaic` in the background or under strace or prlimit.
    pub fn env<'c>(
        &self,
        c: &'c mut std::process::Command,
        release: Option<&Release>,
    ) -> &'c mut std::process::Command {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("user"))
            .env("MOSAIC_HOME", self.home())
            .env("MOSAIC_STATE_DIR", self.state())
            .env("NO_COLOR", "1");
        if let Some(r) = release {
            c.env("MOSAIC_FRAMEWORK_DIR", r.dir.path())
                .env("MOSAIC_FRAMEWORK_VERSION", &r.version);
        }
        c
    }
    /// A std `mosaic` command bound to this world.
    pub fn std_mosaic(&self, release: Option<&Release>) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mosaic"));
        self.env(&mut c, release);
        c
    }
    /// A `mosaic` command bound to this world (no release URL, no units).
    pub fn mosaic(&self, release: Option<&Release>) -> Command {
        Command::from_std(self.std_mosaic(release))
    }
    /// Every name below the home that carries a run's temp tag
    /// (`.NAME.mosaic-tmp-TAG`: a temp file or a staged directory), as
    /// paths relative to the home, sorted. Not looked through links.
    pub fn temps(&self) -> Vec<String> {
        let mut left: Vec<String> = walkdir::WalkDir::new(self.home())
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".mosaic-tmp-"))
            .map(|e| {
                let rel = e.path().strip_prefix(self.home()).unwrap();
                rel.display().to_string()
            })
            .collect();
        left.sort();
        left
    }
    pub fn write(&self, rel: &str, bytes: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

/// An emulated release: a framework tree and its version.
pub struct Release {
    pub dir: tempfile::TempDir,
    pub version: String,
}

impl Release {
    pub fn new(version: &str, files: &[(&str, &str)]) -> Release {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            let mode = if rel.ends_with(".sh") { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        Release {
            dir,
            version: version.to_string(),
        }
    }
    pub fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap()
    }
}

/// The previous release of the emulated history.
pub fn v1() -> Release {
    Release::new(
        "1.0.0",
        &[
            ("fleet/README.md", "fleet readme v1\n"),
            ("fleet/roster.schema.json", "{\"v\":1}\n"),
            ("fleet/examples/minimal.yaml", "version: 1\n# v1\n"),
            ("fleet/roster.yaml", "# seed roster (v1)\n"),
            ("tools/fleet/hello.sh", "#!/bin/sh\necho v1\n"),
            ("docs/guide.md", "guide v1\n"),
            ("docs/dropped.md", "dropped v1\n"),
            ("olddir/gone.md", "gone v1\n"),
            (
                "systemd/user/mosaic-tmux-holder.service",
                "[Unit]\nDescription=v1\n",
            ),
        ],
    )
}

/// The next release: changes, adds and drops files.
pub fn v2() -> Release {
    Release::new(
        "1.1.0",
        &[
            ("fleet/README.md", "fleet readme v2\n"),
            ("fleet/roster.schema.json", "{\"v\":2}\n"),
            ("fleet/examples/minimal.yaml", "version: 1\n# v2\n"),
            ("fleet/roster.yaml", "# seed roster (v2)\n"),
            ("tools/fleet/hello.sh", "#!/bin/sh\necho v2\n"),
            ("docs/guide.md", "guide v1\n"),
            ("docs/new.md", "new in v2\n"),
            (
                "systemd/user/mosaic-tmux-holder.service",
                "[Unit]\nDescription=v2\n",
            ),
        ],
    )
}

/// What a tree holds: path → (kind, mode, content or link target).
pub type Snapshot = BTreeMap<String, (char, u32, Vec<u8>)>;

/// Snapshot of `root`, skipping the lock file (its pid changes each run).
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".mosaic/lock" {
            continue;
        }
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let v = if m.file_type().is_symlink() {
            (
                'l',
                0,
                std::fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if m.is_dir() {
            ('d', mode, Vec::new())
        } else {
            ('f', mode, std::fs::read(e.path()).unwrap())
        };
        out.insert(rel, v);
    }
    out
}

/// (mtime, inode) of every entry, for "wrote nothing" checks.
pub fn stamps(root: &Path) -> BTreeMap<String, (i64, i64, u64)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".mosaic/lock" {
            continue;
        }
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        out.insert(rel, (m.mtime(), m.mtime_nsec(), m.ino()));
    }
    out
}

/// [`assert_same`] for a no-op run, which may rewrite the manifest alone: it
/// records the fingerprints of files the last run wrote once they are no
/// longer racily clean (older than a tick of the kernel clock), so whether
/// it does depends on how long ago that run was. Every other path must be
/// untouched.
pub fn assert_same_but_manifest(a: &Snapshot, b: &Snapshot, what: &str) {
    let strip = |s: &Snapshot| {
        let mut s = s.clone();
        s.remove(".mosaic/manifest.json");
        s
    };
    assert_same(&strip(a), &strip(b), what);
}

/// [`assert_same`] for a second run that must change nothing but may record
/// fingerprints: the manifest is compared as what it says, without the stat
/// fingerprints (`observed`) it caches. A no-op run records them for files
/// the last run wrote once they are no longer racily clean, so whether it
/// does depends on how long ago that run was (CI failed on a comparison of
/// the raw bytes). Every other path, and every other field of the manifest,
/// must be the same.
pub fn assert_same_settled(a: &Snapshot, b: &Snapshot, what: &str) {
    let norm = |s: &Snapshot| {
        let mut s = s.clone();
        if let Some((_, _, bytes)) = s.get_mut(".mosaic/manifest.json") {
            let mut m =
                mosaic_engine::manifest::Manifest::parse(Path::new(".mosaic/manifest.json"), bytes)
                    .expect("the manifest parses");
            for e in m.files.values_mut().chain(m.units.values_mut()) {
                e.observed = None;
            }
            *bytes = m.to_json();
        }
        s
    };
    assert_same(&norm(a), &norm(b), what);
}

/// Waits until the files the last run wrote are past the racy slack of
/// `fsutil::racy_at`, so the next no-op run records their fingerprints (the
/// path [`assert_same_settled`] exists for) every time rather than by luck.
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(80));
}

/// Panics with the differing paths when two snapshots differ.
pub fn assert_same(a: &Snapshot, b: &Snapshot, what: &str) {
    if a != b {
        let mut diffs = Vec::new();
        for k in a
            .keys()
            .chain(b.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if a.get(k) != b.get(k) {
                diffs.push(k.clone());
            }
        }
        panic!("{what}: trees differ at {diffs:?}");
    }
}
