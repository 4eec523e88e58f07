//! The framework trees the bench installs: a copy of the shipped
//! `framework/`, and synthetic trees of N files (the shipped tree topped up
//! with generated text files in one of two [`Shape`]s). Each comes as a pair: `a`,
//! the base release, and `b`, the next release with 1% of the shipped files
//! (at least one) changed; preserved paths (`fleet/*.yaml`) are never picked.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the generated files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 100 files to a directory, `gen/dNNN/`, 200 B – 8 KiB.
    Flat,
    /// About 8 files to a directory, two levels deep: `gen/tNN/sMM/`, 13
    /// leaf directories under each top one (10,000 files: 97 × 13 = 1,261
    /// directories, the tree), 200 B – 6 KB.
    Deep,
}

/// A base release and its 1%-changed successor.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Label for the table (`shipped`, `1,000 files`, …).
    pub name: String,
    /// Number of files.
    pub files: usize,
    /// Total content bytes.
    pub bytes: u64,
    /// The base release.
    pub a: PathBuf,
    /// The next release: `a` with `changed` files edited.
    pub b: PathBuf,
    /// How many files differ between `a` and `b`.
    pub changed: usize,
    /// Installed from the tree embedded in the binary (no
    /// `MOSAIC_FRAMEWORK_DIR`): `a` is the shipped `framework/` and there
    /// is no next release.
    pub embedded: bool,
}

/// Every regular file below `dir`, relative, `/`-separated, sorted.
pub fn list(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir)?.to_string_lossy().into_owned();
            out.push((rel, e.metadata()?.len()));
        }
    }
    Ok(out)
}

fn cp_a(from: &Path, to: &Path) -> Result<()> {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("cannot run cp")?;
    if !st.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// A tiny deterministic generator (xorshift), so every run builds the same trees.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: &[&str] = &[
    "agent",
    "fleet",
    "tmux",
    "session",
    "roster",
    "unit",
    "heartbeat",
    "pane",
    "socket",
    "update",
    "keep",
    "manifest",
    "backup",
    "journal",
    "release",
    "runtime",
    "the",
    "a",
    "of",
    "and",
    "to",
    "is",
];

fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(len + 16);
    let mut col = 0;
    while s.len() < len {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
        s.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 72 {
            s.push(b'\n');
            col = 0;
        } else {
            s.push(b' ');
        }
    }
    s.truncate(len);
    s.push(b'\n');
    s
}

/// Builds the pair for `name` below `root`: the shipped tree (`files` =
/// None) or the shipped tree topped up to `files` files.
pub fn build(
    root: &Path,
    framework: &Path,
    name: &str,
    files: Option<usize>,
    shape: Shape,
) -> Result<Tree> {
    let dir = root.join(name.replace([' ', ','], ""));
    std::fs::create_dir_all(&dir)?;
    let a = dir.join("a");
    let b = dir.join("b");
    cp_a(framework, &a)?;
    if let Some(n) = files {
        let have = list(&a)?.len();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let extra = n.saturating_sub(have);
        // Deep: 13 leaf directories per top one, about 8 files in each.
        let leaves = (extra.div_ceil(13 * 8) * 13).max(1);
        for i in 0..extra {
            let (d, first) = match shape {
                Shape::Flat => (a.join(format!("gen/d{:03}", i / 100)), i % 100 == 0),
                Shape::Deep => {
                    let leaf = i % leaves;
                    (
                        a.join(format!("gen/t{:03}/s{:02}", leaf / 13, leaf % 13)),
                        i < leaves,
                    )
                }
            };
            if first {
                std::fs::create_dir_all(&d)?;
            }
            let len = match shape {
                // Sizes 200 B .. 8 KiB, skewed small like docs and scripts.
                Shape::Flat => 200 + (rng.next() % 2000) as usize * (1 + (rng.next() % 4) as usize),
                Shape::Deep => 200 + (rng.next() % 5800) as usize,
            };
            let (file, mode) = if i % 20 == 0 {
                (d.join(format!("tool{i:05}.sh")), 0o755)
            } else {
                (d.join(format!("note{i:05}.md")), 0o644)
            };
            std::fs::write(&file, text(&mut rng, len))?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
        }
    }
    cp_a(&a, &b)?;
    let listed = list(&a)?;
    let eligible: Vec<&String> = listed
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !is_preserved(p))
        .collect();
    let changed = listed.len().div_ceil(100).max(1);
    let step = (eligible.len() / changed).max(1);
    for p in eligible.iter().step_by(step).take(changed) {
        let f = b.join(p);
        let mut bytes = std::fs::read(&f)?;
        bytes.extend_from_slice(b"# changed by the next release\n");
        std::fs::write(&f, bytes)?;
    }
    Ok(Tree {
        name: name.to_string(),
        files: listed.len(),
        bytes: listed.iter().map(|(_, n)| n).sum(),
        a,
        b,
        changed,
        embedded: false,
    })
}

/// The shipped `framework/` as the binary embeds it (no next release).
pub fn embedded(framework: &Path) -> Result<Tree> {
    let listed = list(framework)?;
    Ok(Tree {
        name: "embedded (no MOSAIC_FRAMEWORK_DIR)".into(),
        files: listed.len(),
        bytes: listed.iter().map(|(_, n)| n).sum(),
        a: framework.to_path_buf(),
        b: framework.to_path_buf(),
        changed: 0,
        embedded: true,
    })
}

/// The built-in preserve set (SPEC §4.1) as far as a shipped tree can hit it.
fn is_preserved(rel: &str) -> bool {
    let in_fleet_top = rel
        .strip_prefix("fleet/")
        .is_some_and(|r| !r.contains('/') && r.ends_with(".yaml"));
    in_fleet_top
        || rel.starts_with("fleet/agents/")
        || rel.starts_with("fleet/run/")
        || rel.starts_with(".mosaic/")
}

/// A stat snapshot of a home (path → inode, mtime, size), `.mosaic/` left
/// out, to count the files a run wrote.
pub fn snapshot(home: &Path) -> Result<std::collections::BTreeMap<String, (u64, i64, i64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    for e in walkdir::WalkDir::new(home) {
        let e = e?;
        let rel = e.path().strip_prefix(home)?.to_string_lossy().into_owned();
        if rel == ".mosaic" || rel.starts_with(".mosaic/") || !e.file_type().is_file() {
            continue;
        }
        let m = e.metadata()?;
        out.insert(rel, (m.ino(), m.mtime(), m.mtime_nsec(), m.size()));
    }
    Ok(out)
}

/// How many paths were created, rewritten or removed between two snapshots.
pub fn written(
    before: &std::collections::BTreeMap<String, (u64, i64, i64, u64)>,
    after: &std::collections::BTreeMap<String, (u64, i64, i64, u64)>,
) -> usize {
    let changed = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .count();
    let removed = before.keys().filter(|p| !after.contains_key(*p)).count();
    changed + removed
}
