//! `cargo xtask release <patch|minor|major|X.Y.Z> [--dry-run]` (SPEC §9):
//! refuses on a dirty tree, bumps the version in every workspace
//! `Cargo.toml` and in `Cargo.lock`, moves CHANGELOG.md's `Unreleased`
//! section under the new version and date, records the framework manifest of
//! the release in `release-history/X.Y.Z.json`, commits and tags `vX.Y.Z`.
//! `--dry-run` prints the same plan and changes nothing.
//!
//! The date comes from the clock in UTC; `MOSAIC_RELEASE_DATE=YYYY-MM-DD`
//! overrides it (reproducible runs, tests).

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask release <patch|minor|major|X.Y.Z> [--dry-run]";

/// Runs `cargo xtask release ARGS…`.
pub fn run(args: &[String]) -> Result<()> {
    let mut dry_run = false;
    let mut level: Option<String> = None;
    for a in args {
        match a.as_str() {
            "--dry-run" | "-n" => dry_run = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => bail!("unknown option {s}; {USAGE}"),
            s if level.is_none() => level = Some(s.to_string()),
            s => bail!("unexpected argument {s}; {USAGE}"),
        }
    }
    let level = level.ok_or_else(|| anyhow::anyhow!("{USAGE}"))?;
    let root = repo_root()?;
    let plan = Plan::build(&root, &level)?;
    plan.print(dry_run);
    if dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }
    plan.apply()?;
    println!(
        "released v{}: commit and tag created. Next: git push origin HEAD v{} (see docs/releasing.md)",
        plan.new, plan.new
    );
    Ok(())
}

/// Everything a release changes, computed read-only.
struct Plan {
    root: PathBuf,
    old: semver::Version,
    new: semver::Version,
    date: String,
    /// (path relative to root, old content, new content)
    edits: Vec<(String, String, String)>,
    history_rel: String,
    history_json: String,
    history_files: usize,
    changelog_lines: usize,
}

impl Plan {
    fn build(root: &Path, level: &str) -> Result<Plan> {
        let dirty = git(root, &["status", "--porcelain", "--untracked-files=normal"])?;
        if !dirty.trim().is_empty() {
            bail!(
                "the working tree is dirty; commit or stash these first:\n{}",
                dirty.trim_end()
            );
        }
        // The binary embeds every file under framework/ and the history
        // records them: an ignored stray file there would ship, signed.
        let ignored = git(
            root,
            &[
                "status",
                "--porcelain",
                "--ignored",
                "--untracked-files=all",
                "--",
                "framework",
            ],
        )?;
        if !ignored.trim().is_empty() {
            bail!(
                "framework/ holds files git does not track (they would be embedded and recorded); remove them first:\n{}",
                ignored.trim_end()
            );
        }
        let root_toml_path = root.join("Cargo.toml");
        let root_toml = read(&root_toml_path)?;
        let old = package_version(&root_toml).context("Cargo.toml: no [package] version found")?;
        let old =
            semver::Version::parse(&old).with_context(|| format!("Cargo.toml version {old:?}"))?;
        let new = next_version(&old, level)?;
        // Equal is allowed once: releasing the version already in
        // Cargo.toml (the first release) when its tag does not exist yet.
        if new < old {
            bail!("the new version {new} must not be lower than the current {old}");
        }
        let tag = format!("v{new}");
        if !git(root, &["tag", "--list", &tag])?.trim().is_empty() {
            bail!("tag {tag} already exists");
        }
        let date = release_date()?;

        let mut edits = Vec::new();
        let mut member_names = Vec::new();
        for manifest in workspace_manifests(root, &root_toml)? {
            let rel = rel(root, &manifest);
            let text = read(&manifest)?;
            let (bumped, name) = bump_manifest(&text, &old, &new)
                .with_context(|| format!("{rel}: cannot bump the version"))?;
            if let Some(name) = name {
                member_names.push(name);
            }
            if bumped != text {
                edits.push((rel, text, bumped));
            }
        }
        let lock_path = root.join("Cargo.lock");
        if lock_path.exists() {
            let text = read(&lock_path)?;
            let bumped = bump_lock(&text, &member_names, &old, &new);
            if bumped != text {
                edits.push(("Cargo.lock".to_string(), text, bumped));
            }
        }
        let changelog_path = root.join("CHANGELOG.md");
        let changelog = read(&changelog_path)?;
        let (moved, changelog_lines) = move_unreleased(&changelog, &new, &date)?;
        edits.push(("CHANGELOG.md".to_string(), changelog, moved));

        let files = framework_hashes(&root.join("framework"))?;
        let history_files = files.len();
        let history = serde_json::json!({ "version": new.to_string(), "files": files });
        let history_json = serde_json::to_string_pretty(&history)? + "\n";
        let history_rel = format!("release-history/{new}.json");
        if root.join(&history_rel).exists() {
            bail!("{history_rel} already exists");
        }
        Ok(Plan {
            root: root.to_path_buf(),
            old,
            new,
            date,
            edits,
            history_rel,
            history_json,
            history_files,
            changelog_lines,
        })
    }

    fn print(&self, dry_run: bool) {
        let would = if dry_run { "would " } else { "" };
        println!("release {} → {} ({})", self.old, self.new, self.date);
        for (path, old, new) in &self.edits {
            println!("  {would}edit {path}");
            if path == "CHANGELOG.md" {
                println!(
                    "      ## [Unreleased] ({} lines) → ## [{}] - {}",
                    self.changelog_lines, self.new, self.date
                );
                continue;
            }
            for (a, b) in old.lines().zip(new.lines()) {
                if a != b {
                    println!("      - {a}\n      + {b}");
                }
            }
        }
        println!(
            "  {would}write {} ({} framework files)",
            self.history_rel, self.history_files
        );
        println!(
            "  {would}commit \"release v{}\" and tag v{}",
            self.new, self.new
        );
    }

    fn apply(&self) -> Result<()> {
        for (path, _, new) in &self.edits {
            write(&self.root.join(path), new)?;
        }
        let history = self.root.join(&self.history_rel);
        std::fs::create_dir_all(history.parent().unwrap())?;
        write(&history, &self.history_json)?;
        let mut paths: Vec<&str> = self.edits.iter().map(|(p, _, _)| p.as_str()).collect();
        paths.push(&self.history_rel);
        let mut add = vec!["add", "--"];
        add.extend(paths.iter().copied());
        git(&self.root, &add)?;
        let msg = format!("release v{}", self.new);
        git(&self.root, &["commit", "--quiet", "-m", &msg])?;
        let tag = format!("v{}", self.new);
        let tag_msg = format!("mosaic {}", self.new);
        git(&self.root, &["tag", "-a", &tag, "-m", &tag_msg])?;
        Ok(())
    }
}

fn repo_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    let top = git(&cwd, &["rev-parse", "--show-toplevel"])
        .context("cargo xtask release must run inside the mosaic git repository")?;
    Ok(PathBuf::from(top.trim()))
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

fn write(p: &Path, s: &str) -> Result<()> {
    let tmp = p.with_extension("xtask-tmp");
    std::fs::write(&tmp, s).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, p).with_context(|| format!("cannot rename onto {}", p.display()))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Computes the next version from `patch|minor|major|X.Y.Z`.
fn next_version(old: &semver::Version, level: &str) -> Result<semver::Version> {
    let v = match level {
        "patch" => semver::Version::new(old.major, old.minor, old.patch + 1),
        "minor" => semver::Version::new(old.major, old.minor + 1, 0),
        "major" => semver::Version::new(old.major + 1, 0, 0),
        other => semver::Version::parse(other.trim_start_matches('v'))
            .with_context(|| format!("{other:?} is not patch, minor, major or a semver version"))?,
    };
    Ok(v)
}

/// The `version` of the `[package]` table (or `[workspace.package]`).
fn package_version(toml: &str) -> Option<String> {
    let mut section = String::new();
    for line in toml.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
            continue;
        }
        if section == "[package]" || section == "[workspace.package]" {
            if let Some(v) = version_value(t) {
                return Some(v);
            }
        }
    }
    None
}

fn version_value(line: &str) -> Option<String> {
    let rest = line.strip_prefix("version")?.trim_start();
    let rest = rest.strip_prefix('=')?.trim();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Workspace manifests: the root and each `members` entry (literal paths).
fn workspace_manifests(root: &Path, root_toml: &str) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.join("Cargo.toml")];
    let Some(start) = root_toml.find("members") else {
        return Ok(out);
    };
    let rest = &root_toml[start..];
    let open = rest.find('[').context("workspace members: no list")?;
    let close = rest
        .find(']')
        .context("workspace members: unterminated list")?;
    for item in rest[open + 1..close].split(',') {
        let item = item.trim().trim_matches('"');
        if item.is_empty() || item == "." {
            continue;
        }
        if item.contains('*') {
            bail!("workspace member glob {item:?} is not supported by cargo xtask release");
        }
        out.push(root.join(item).join("Cargo.toml"));
    }
    Ok(out)
}

/// Rewrites the `[package]`/`[workspace.package]` version; returns the new
/// text and the package name.
fn bump_manifest(
    text: &str,
    old: &semver::Version,
    new: &semver::Version,
) -> Result<(String, Option<String>)> {
    let mut section = String::new();
    let mut name = None;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        } else if section == "[package]" || section == "[workspace.package]" {
            if section == "[package]" && t.starts_with("name") {
                name = t.split('"').nth(1).map(str::to_string);
            }
            if let Some(v) = version_value(t) {
                if v != old.to_string() {
                    bail!("version {v} differs from the workspace version {old}; align it first");
                }
                out.push_str(&line.replacen(&format!("\"{v}\""), &format!("\"{new}\""), 1));
                continue;
            }
        }
        out.push_str(line);
    }
    Ok((out, name))
}

/// Bumps the workspace members' entries of `Cargo.lock` (those without a
/// `source`, i.e. local packages).
fn bump_lock(text: &str, names: &[String], old: &semver::Version, new: &semver::Version) -> String {
    let mut out = String::with_capacity(text.len());
    let mut current: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t == "[[package]]" {
            current = None;
        } else if let Some(n) = t.strip_prefix("name = ") {
            current = Some(n.trim_matches('"').to_string());
        } else if t.starts_with("version = ")
            && current.as_ref().is_some_and(|n| names.contains(n))
            && version_value(t).as_deref() == Some(&old.to_string())
        {
            out.push_str(&line.replacen(&format!("\"{old}\""), &format!("\"{new}\""), 1));
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Moves the body of `## [Unreleased]` under `## [NEW] - DATE`, leaving an
/// empty Unreleased section. Returns the new text and the moved line count.
fn move_unreleased(text: &str, new: &semver::Version, date: &str) -> Result<(String, usize)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines
        .iter()
        .position(|l| l.trim().eq_ignore_ascii_case("## [Unreleased]"))
        .context("CHANGELOG.md has no \"## [Unreleased]\" heading")?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map(|i| start + 1 + i)
        .unwrap_or(lines.len());
    let body: String = lines[start + 1..end].concat();
    let moved = body.trim();
    if moved.is_empty() {
        bail!("CHANGELOG.md: the Unreleased section is empty; write down what this release changes first");
    }
    let mut out: String = lines[..=start].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("\n## [{new}] - {date}\n\n{moved}\n\n"));
    let tail: String = lines[end..].concat();
    out.push_str(&tail);
    let out = out.trim_end().to_string() + "\n";
    Ok((out, moved.lines().count()))
}

/// path → sha256 of every regular file of the framework tree.
fn framework_hashes(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot walk {}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir)?;
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let bytes = std::fs::read(entry.path())?;
        files.insert(rel.join("/"), hex::encode(Sha256::digest(&bytes)));
    }
    if files.is_empty() {
        bail!("{} holds no files", dir.display());
    }
    Ok(files)
}

fn release_date() -> Result<String> {
    if let Ok(d) = std::env::var("MOSAIC_RELEASE_DATE") {
        let ok = d.len() == 10
            && d.chars().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !ok {
            bail!("MOSAIC_RELEASE_DATE={d:?} is not YYYY-MM-DD");
        }
        return Ok(d);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    Ok(mosaic_engine::civil::date(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let v = semver::Version::parse("1.2.3").unwrap();
        assert_eq!(next_version(&v, "patch").unwrap().to_string(), "1.2.4");
        assert_eq!(next_version(&v, "minor").unwrap().to_string(), "1.3.0");
        assert_eq!(next_version(&v, "major").unwrap().to_string(), "2.0.0");
        assert_eq!(next_version(&v, "v1.5.0").unwrap().to_string(), "1.5.0");
        assert!(next_version(&v, "huge").is_err());
    }

    #[test]
    fn changelog_move() {
        let text = "# Changelog\n\n## [Unreleased]\n\n### Added\n- a thing\n\n## [0.1.0] - 2024-01-01\n\n- old\n";
        let v = semver::Version::parse("0.2.0").unwrap();
        let (out, n) = move_unreleased(text, &v, "2024-02-02").unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out,
            "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2024-02-02\n\n### Added\n- a thing\n\n## [0.1.0] - 2024-01-01\n\n- old\n"
        );
        assert!(move_unreleased("## [Unreleased]\n\n", &v, "x").is_err());
    }

    #[test]
    fn manifest_and_lock() {
        let old = semver::Version::parse("0.1.0").unwrap();
        let new = semver::Version::parse("0.1.1").unwrap();
        let toml = "[package]\nname = \"mosaic\"\nversion = \"0.1.0\"\n\n[dependencies]\nfoo = { version = \"0.1.0\" }\n";
        let (out, name) = bump_manifest(toml, &old, &new).unwrap();
        assert_eq!(name.as_deref(), Some("mosaic"));
        assert!(
            out.contains("version = \"0.1.1\"\n\n[dependencies]\nfoo = { version = \"0.1.0\" }")
        );
        let lock = "[[package]]\nname = \"foo\"\nversion = \"0.1.0\"\nsource = \"x\"\n\n[[package]]\nname = \"mosaic\"\nversion = \"0.1.0\"\n";
        let out = bump_lock(lock, &["mosaic".into()], &old, &new);
        assert_eq!(
            out,
            lock.replace(
                "mosaic\"\nversion = \"0.1.0\"",
                "mosaic\"\nversion = \"0.1.1\""
            )
        );
    }
}
