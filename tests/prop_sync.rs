//! Property test of keep-mode sync against the real binary: random operator
//! states (own files at random paths, odd names with spaces and unicode,
//! edits and deletions of shipped files, preserved rosters and env files)
//! crossed with random release changes (changed, added, dropped files).
//!
//! After `install` of the first release, the operator's changes, and
//! `update` to the second release, for every path the outcome is exactly
//! what SPEC §4.2 says; in particular no operator byte is lost, every
//! shipped file is current or reported as a conflict / kept, a second
//! update is a no-op, and `verify` flags exactly the edited shipped files.
//!
//! 48 cases by default; `PROPTEST_CASES=N` changes that and
//! `PROPTEST_RNG_SEED=N` fixes the seed.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
mod json_contract;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Candidate shipped paths. Two of them match the preserve set.
const POOL: &[&str] = &[
    "docs/guide.md",
    "docs/sub/deep.md",
    "tools/run.sh",
    "tools/lib/helper.sh",
    "fleet/README.md",
    "fleet/examples/min.yaml",
    "fleet/roles/r.md",
    "fleet/roster.yaml",
    "fleet/agents/default.env",
    "systemd/user/mosaic-demo.service",
    "top.txt",
    "deep/a/b/c.txt",
    "odd dir/ünï côdé.txt",
    "with space/file name.md",
];

/// Directories where the operator drops files of their own.
const EXTRA_DIRS: &[&str] = &[
    "",
    "docs/",
    "tools/",
    "fleet/",
    "fleet/agents/",
    "fleet/run/",
    "notes/",
    "odd dir/",
    "deep/a/",
];

const SUFFIXES: &[&str] = &["", ".yaml", ".txt", ".env", ".md"];

fn preserved(path: &str) -> bool {
    let fleet_yaml = path
        .strip_prefix("fleet/")
        .is_some_and(|r| !r.contains('/') && r.ends_with(".yaml"));
    fleet_yaml || path.starts_with("fleet/agents/") || path.starts_with("fleet/run/")
}

fn mode_for(path: &str) -> u32 {
    if path.ends_with(".sh") {
        0o755
    } else {
        0o644
    }
}

/// What happens to one pool path.
#[derive(Debug, Clone)]
struct PathCase {
    /// 0 never shipped, 1 dropped by v2, 2 unchanged, 3 changed, 4 added by v2.
    kind: u8,
    v1: String,
    /// The operator: 0 leaves it, 1 edits (or creates) it, 2 deletes it.
    op: u8,
    edit: String,
}

#[derive(Debug, Clone)]
struct Case {
    paths: Vec<PathCase>,
    extras: BTreeMap<String, String>,
}

impl PathCase {
    fn in_v1(&self) -> bool {
        matches!(self.kind, 1..=3)
    }
    fn in_v2(&self) -> bool {
        matches!(self.kind, 2..=4)
    }
    fn v2(&self) -> String {
        if self.kind == 3 || self.kind == 4 {
            format!("{}\nv2 of this file\n", self.v1)
        } else {
            self.v1.clone()
        }
    }
}

fn content() -> impl Strategy<Value = String> {
    "[a-z \n]{0,24}"
}

fn case() -> impl Strategy<Value = Case> {
    let path_case =
        (0u8..5, content(), 0u8..4, content()).prop_map(|(kind, v1, op, edit)| PathCase {
            kind,
            v1,
            op: if op == 3 { 0 } else { op },
            edit: format!("edit:{edit}"),
        });
    let extra = (
        0..EXTRA_DIRS.len(),
        "[a-zA-Z0-9][a-zA-Z0-9 _.üé漢-]{0,10}",
        0..SUFFIXES.len(),
        content(),
    );
    (
        proptest::collection::vec(path_case, POOL.len()),
        proptest::collection::vec(extra, 0..8),
    )
        .prop_map(|(paths, extras)| {
            let mut map = BTreeMap::new();
            for (d, name, s, c) in extras {
                let p = format!("{}{}{}", EXTRA_DIRS[d], name, SUFFIXES[s]);
                let clashes = POOL.iter().any(|q| {
                    *q == p || q.starts_with(&format!("{p}/")) || p.starts_with(&format!("{q}/"))
                });
                if clashes || p.ends_with(".mosaic-new") || p.ends_with('.') {
                    continue;
                }
                map.insert(p, format!("mine:{c}"));
            }
            Case { paths, extras: map }
        })
}

/// One throw-away world.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn home(&self) -> PathBuf {
        self.dir.path().join("user/.config/mosaic")
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.home().join(rel)
    }
    fn mosaic(&self, release: &Path, version: &str, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        Command::new(env!("CARGO_BIN_EXE_mosaic"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", d.join("user"))
            .env("MOSAIC_HOME", self.home())
            .env("MOSAIC_STATE_DIR", d.join("state"))
            .env("XDG_CONFIG_HOME", d.join("user/.config"))
            .env("XDG_STATE_HOME", d.join("user/.local/state"))
            .env("XDG_RUNTIME_DIR", d.join("runtime"))
            .env("TMUX_TMPDIR", d.join("tmux"))
            .env("MOSAIC_SYSTEMCTL", "/nonexistent/systemctl")
            .env("NO_COLOR", "1")
            .env("MOSAIC_FRAMEWORK_DIR", release)
            .env("MOSAIC_FRAMEWORK_VERSION", version)
            .output()
            .expect("run mosaic")
    }
}

fn write(p: &Path, content: &str, mode: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn read(p: &Path) -> Option<String> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => Some(String::from_utf8(std::fs::read(p).unwrap()).unwrap()),
        Ok(_) => Some("<not a file>".to_string()),
        Err(_) => None,
    }
}

/// path → (mode, bytes) of every file and directory below `root`, without the lock.
fn snapshot(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
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
        let bytes = if m.is_file() {
            std::fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.insert(rel, (m.permissions().mode() & 0o7777, bytes));
    }
    // The manifest as what it says, without the stat fingerprints it
    // caches: a no-op records those once the files the last run wrote are
    // no longer racily clean, which depends on the clock, not on the run.
    if let Some((_, bytes)) = out.get_mut(".mosaic/manifest.json") {
        let path = root.join(".mosaic/manifest.json");
        let mut m =
            mosaic_engine::manifest::Manifest::parse(&path, bytes).expect("the manifest parses");
        for e in m.files.values_mut().chain(m.units.values_mut()) {
            e.observed = None;
        }
        *bytes = m.to_json();
    }
    out
}

fn ok(out: &std::process::Output, what: &str) -> Result<serde_json::Value, TestCaseError> {
    prop_assert!(
        out.status.success(),
        "{what} exited {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = json_contract::parse(&out.stdout)
        .map_err(|e| TestCaseError::fail(format!("{what}: --json output is not JSON ({e})")))?;
    Ok(v)
}

/// (path, action) of every reported change.
fn changes(report: &serde_json::Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in report["changes"].as_array().into_iter().flatten() {
        if let (Some(p), Some(a)) = (c["path"].as_str(), c["action"].as_str()) {
            m.entry(p.to_string()).or_default().insert(a.to_string());
        }
    }
    m
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let world = World {
        dir: tempfile::tempdir().unwrap(),
    };
    let releases = tempfile::tempdir().unwrap();
    let (r1, r2) = (releases.path().join("v1"), releases.path().join("v2"));
    std::fs::create_dir_all(&r1).unwrap();
    std::fs::create_dir_all(&r2).unwrap();
    // Every release ships at least one file.
    write(&r1.join("VERSION.md"), "1.0.0\n", 0o644);
    write(&r2.join("VERSION.md"), "1.1.0\n", 0o644);
    for (path, pc) in POOL.iter().zip(&case.paths) {
        if pc.in_v1() {
            write(&r1.join(path), &pc.v1, mode_for(path));
        }
        if pc.in_v2() {
            write(&r2.join(path), &pc.v2(), mode_for(path));
        }
    }

    ok(
        &world.mosaic(&r1, "1.0.0", &["install", "--json"]),
        "install",
    )?;

    // The operator's changes; `before` is each pool path's content after them.
    let mut before: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for (path, pc) in POOL.iter().zip(&case.paths) {
        let p = world.path(path);
        match pc.op {
            1 => write(&p, &pc.edit, 0o644),
            2 => {
                let _ = std::fs::remove_file(&p);
            }
            _ => {}
        }
        before.insert(path, read(&p));
    }
    for (rel, c) in &case.extras {
        write(&world.path(rel), c, 0o640);
    }

    let report = ok(
        &world.mosaic(&r2, "1.1.0", &["update", "--offline", "--json"]),
        "update",
    )?;
    let reported = changes(&report);
    let said = |p: &str, a: &str| reported.get(p).is_some_and(|s| s.contains(a));

    let mut edited_tracked = BTreeSet::new();
    for (path, pc) in POOL.iter().zip(&case.paths) {
        let now = read(&world.path(path));
        let new_beside = read(&world.path(&format!("{path}.mosaic-new")));
        let had = before[path].clone();
        let operator_wrote = pc.op == 1;
        if preserved(path) {
            let expected = match (&had, pc.in_v2()) {
                (None, true) => Some(pc.v2()),
                _ => had.clone(),
            };
            prop_assert_eq!(&now, &expected, "preserved {}", path);
            prop_assert!(
                new_beside.is_none(),
                "no .mosaic-new for preserved {}",
                path
            );
            continue;
        }
        match (pc.kind, operator_wrote, had.is_some()) {
            // never shipped: only the operator's own file, untouched
            (0, _, _) => prop_assert_eq!(&now, &had, "operator's own {}", path),
            // dropped: unedited goes, edited stays and is reported
            (1, true, _) => {
                prop_assert_eq!(&now, &had, "dropped but edited {}", path);
                prop_assert!(
                    said(path, "kept (yours)"),
                    "{} reported as kept: {:?}",
                    path,
                    reported.get(*path)
                );
            }
            (1, false, _) => prop_assert_eq!(&now, &None, "dropped {} is deleted", path),
            // shipped by v2 and edited (or the operator's own file where v2
            // now ships one): the operator's bytes stay
            (2..=4, true, _) => {
                prop_assert_eq!(&now, &had, "edited {} keeps the operator's bytes", path);
                edited_tracked.insert(path.to_string());
                if pc.kind == 2 {
                    prop_assert!(new_beside.is_none(), "no .mosaic-new for {}", path);
                    prop_assert!(
                        said(path, "kept (yours)"),
                        "{} reported as kept (quiet)",
                        path
                    );
                } else {
                    prop_assert_eq!(&new_beside, &Some(pc.v2()), "{}.mosaic-new", path);
                    prop_assert!(said(path, "conflict"), "{} reported as conflict", path);
                }
            }
            // shipped, untouched or deleted by the operator: current
            (2..=4, false, _) => {
                prop_assert_eq!(&now, &Some(pc.v2()), "shipped {} is current", path);
                let mode = std::fs::metadata(world.path(path))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777;
                prop_assert_eq!(mode, mode_for(path), "mode of {}", path);
            }
            _ => unreachable!(),
        }
    }
    for (rel, c) in &case.extras {
        prop_assert_eq!(
            read(&world.path(rel)),
            Some(c.clone()),
            "operator's extra {}",
            rel
        );
    }
    prop_assert_eq!(read(&world.path("VERSION.md")), Some("1.1.0\n".to_string()));

    // A second update changes nothing. It runs after the files the first
    // one wrote have settled (older than the racily-clean slack), as on a
    // slow machine, so it may record their fingerprints in the manifest.
    std::thread::sleep(std::time::Duration::from_millis(80));
    let snap = snapshot(&world.home());
    let second = ok(
        &world.mosaic(&r2, "1.1.0", &["update", "--offline", "--json"]),
        "second update",
    )?;
    for (p, actions) in changes(&second) {
        for a in actions {
            prop_assert!(a == "kept (yours)", "second update: {} {}", a, p);
        }
    }
    let after = snapshot(&world.home());
    let differ: Vec<&String> = snap
        .keys()
        .chain(after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| snap.get(*k) != after.get(*k))
        .collect();
    prop_assert!(
        differ.is_empty(),
        "the second update changed the tree at {:?}",
        differ
    );

    // verify flags exactly the edited shipped files.
    let out = world.mosaic(&r2, "1.1.0", &["verify", "--json"]);
    let v: serde_json::Value = json_contract::parse(&out.stdout)
        .map_err(|e| TestCaseError::fail(format!("verify --json: {e}")))?;
    let problems: BTreeSet<String> = v["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["path"].as_str().map(str::to_string))
        .collect();
    prop_assert_eq!(&problems, &edited_tracked, "verify problems");
    prop_assert_eq!(
        out.status.success(),
        edited_tracked.is_empty(),
        "verify exit status"
    );
    Ok(())
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 48;
    }
    c.failure_persistence = None;
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn update_keeps_every_operator_byte_and_converges(case in case()) {
        run_case(&case)?;
    }
}
