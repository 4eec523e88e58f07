//! `THIRD-PARTY-LICENSES`: every crate linked into the `mosaic` binary,
//! with its licence expression and the licence texts it ships, generated
//! from data at dist time (nothing is maintained by hand):
//!
//! * which crates: `cargo tree -p mosaic --target TARGET -e
//!   normal,no-proc-macro` — the normal dependencies as cargo resolves them
//!   for the binary (build scripts, proc-macros and their dependencies run
//!   at compile time only and are not linked, dev-dependencies are for
//!   tests);
//! * what they are: `cargo metadata` (licence expression, `license-file`,
//!   repository, and the crate's source directory);
//! * the texts: every file at the top of the crate's source directory named
//!   `LICENSE*`, `LICENCE*`, `COPYING*`, `COPYRIGHT*`, `NOTICE*` or
//!   `UNLICENSE*`, plus its `license-file`.
//!
//! A crate with no licence text at all stops dist: a notice cannot be
//! invented. Identical texts are printed once and listed against every
//! crate that ships them.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Crate {
    name: String,
    version: String,
    license: String,
    repository: String,
    /// `(file name, text)`.
    texts: Vec<(String, String)>,
}

/// The file's bytes.
pub fn third_party(root: &Path, target: &str, version: &str) -> Result<Vec<u8>> {
    let linked = linked_crates(root, target)?;
    let meta = metadata(root)?;
    let mut crates = Vec::new();
    for (name, ver) in &linked {
        // The workspace's own crates are mosaic itself (LICENSE-MIT and
        // LICENSE-APACHE cover them), not third parties.
        if name == "mosaic" || name.starts_with("mosaic-") {
            continue;
        }
        let pkg = meta
            .get(&(name.clone(), ver.clone()))
            .with_context(|| format!("cargo metadata does not list {name} {ver}"))?;
        crates.push(describe(pkg)?);
    }
    Ok(render(&crates, version, target).into_bytes())
}

/// `(name, version)` of every crate `cargo tree` shows linked.
fn linked_crates(root: &Path, target: &str) -> Result<BTreeSet<(String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "tree",
            "--locked",
            "-p",
            "mosaic",
            "--target",
            target,
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(root)
        .output()
        .context("cannot run cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut set = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `name vX.Y.Z`, then ` (PATH)` for path crates, ` (*)` for repeats.
        let mut words = line.split_whitespace();
        let (Some(name), Some(ver)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(ver) = ver.strip_prefix('v') else {
            bail!("cannot read cargo tree line {line:?}");
        };
        set.insert((name.to_string(), ver.to_string()));
    }
    if !set.iter().any(|(n, _)| n == "mosaic") {
        bail!("cargo tree -p mosaic listed no mosaic crate");
    }
    Ok(set)
}

/// `cargo metadata` packages by `(name, version)`.
fn metadata(root: &Path) -> Result<BTreeMap<(String, String), serde_json::Value>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let mut map = BTreeMap::new();
    for p in doc["packages"].as_array().into_iter().flatten() {
        let key = (
            p["name"].as_str().unwrap_or_default().to_string(),
            p["version"].as_str().unwrap_or_default().to_string(),
        );
        map.insert(key, p.clone());
    }
    Ok(map)
}

fn is_licence_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "license",
        "licence",
        "copying",
        "copyright",
        "notice",
        "unlicense",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

fn describe(pkg: &serde_json::Value) -> Result<Crate> {
    let s = |k: &str| pkg[k].as_str().unwrap_or_default().to_string();
    let (name, version) = (s("name"), s("version"));
    let manifest = PathBuf::from(s("manifest_path"));
    let dir = manifest
        .parent()
        .with_context(|| format!("{name} {version}: no source directory"))?;
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() && is_licence_name(&entry.file_name().to_string_lossy()) {
            files.insert(entry.path());
        }
    }
    if let Some(lf) = pkg["license_file"].as_str() {
        let p = dir.join(lf);
        if p.is_file() {
            files.insert(p);
        }
    }
    let mut texts = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let text: Vec<&str> = text.lines().map(str::trim_end).collect();
        let text = text.join("\n").trim_matches('\n').to_string();
        if text.is_empty() {
            continue;
        }
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        texts.push((rel, text));
    }
    if texts.is_empty() {
        bail!(
            "{name} {version} ({}) ships no licence file; cannot write its notice",
            dir.display()
        );
    }
    let license = match pkg["license"].as_str() {
        Some(l) => l.to_string(),
        None => "see the licence text below".to_string(),
    };
    Ok(Crate {
        name,
        version,
        license,
        repository: s("repository"),
        texts,
    })
}

fn render(crates: &[Crate], version: &str, target: &str) -> String {
    // Distinct texts, numbered in order of first use.
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut users: Vec<Vec<String>> = Vec::new();
    for c in crates {
        for (file, text) in &c.texts {
            let id = *ids.entry(text.as_str()).or_insert_with(|| {
                order.push(text.as_str());
                users.push(Vec::new());
                order.len()
            });
            users[id - 1].push(format!("{} {} ({file})", c.name, c.version));
        }
    }
    let mut out = String::new();
    let title = format!("Third-party software in mosaic {version} ({target})");
    out.push_str(&format!(
        "{title}\n{}\n\n",
        "=".repeat(title.chars().count())
    ));
    out.push_str(&format!(
        "The mosaic binary links the {} Rust crates below. Each is listed with\n\
         its licence expression (SPDX, as the crate declares it) and the\n\
         numbers of the licence texts it ships, which follow the list. This file\n\
         is generated by `cargo xtask dist` from the crates themselves.\n\n",
        crates.len()
    ));
    out.push_str("Crates\n------\n\n");
    for c in crates {
        let nums: Vec<String> = c
            .texts
            .iter()
            .map(|(_, t)| format!("[{}]", ids[t.as_str()]))
            .collect();
        out.push_str(&format!(
            "{} {}\n  licence: {}\n",
            c.name, c.version, c.license
        ));
        if !c.repository.is_empty() {
            out.push_str(&format!("  source: {}\n", c.repository));
        }
        out.push_str(&format!("  texts: {}\n\n", nums.join(" ")));
    }
    out.push_str("Licence texts\n-------------\n");
    for (i, text) in order.iter().enumerate() {
        out.push_str(&format!(
            "\n[{}] shipped by {}\n\n{text}\n",
            i + 1,
            users[i].join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for yes in [
            "LICENSE",
            "LICENSE-MIT",
            "licence.txt",
            "COPYING",
            "NOTICE",
            "UNLICENSE",
            "COPYRIGHT",
        ] {
            assert!(is_licence_name(yes), "{yes}");
        }
        for no in ["README.md", "Cargo.toml", "src"] {
            assert!(!is_licence_name(no), "{no}");
        }
    }

    #[test]
    fn identical_texts_print_once() {
        let c = |n: &str, t: &str| Crate {
            name: n.into(),
            version: "1.0.0".into(),
            license: "MIT".into(),
            repository: String::new(),
            texts: vec![("LICENSE".into(), t.into())],
        };
        let r = render(
            &[c("a", "same"), c("b", "same"), c("c", "other")],
            "0.1.0",
            "t",
        );
        assert_eq!(r.matches("\nsame\n").count(), 1, "{r}");
        assert!(
            r.contains("[1] shipped by a 1.0.0 (LICENSE), b 1.0.0 (LICENSE)"),
            "{r}"
        );
        assert!(r.contains("c 1.0.0\n  licence: MIT\n  texts: [2]"), "{r}");
    }
}
