//! Embeds `framework/` into the binary: every regular file with its bytes,
//! its sha256 and its mode (0755 when the file is executable in the
//! repository, else 0644). The result is `$OUT_DIR/framework.rs`, included by
//! `src/source.rs`.
//!
//! `MOSAIC_EMBED_FRAMEWORK_DIR` embeds another tree instead (the benchmark
//! uses it to build binaries carrying synthetic trees).

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn main() {
    // The repository root: this crate lives at crates/mosaic-engine.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    println!("cargo:rerun-if-env-changed=MOSAIC_EMBED_FRAMEWORK_DIR");
    let root = match std::env::var_os("MOSAIC_EMBED_FRAMEWORK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => manifest_dir.join("framework"),
    };
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let entry = entry.expect("walk framework/");
        println!("cargo:rerun-if-changed={}", entry.path().display());
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = rel_path(&root, entry.path());
        files.push((rel, entry.path().to_path_buf()));
    }
    let mut out = String::new();
    out.push_str("/// Every file of the embedded framework tree, sorted by path.\n");
    out.push_str("pub static EMBEDDED: &[EmbeddedFile] = &[\n");
    for (rel, abs) in &files {
        let bytes = std::fs::read(abs).expect("read framework file");
        let meta = std::fs::metadata(abs).expect("stat framework file");
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let hash = hex::encode(Sha256::digest(&bytes));
        writeln!(
            out,
            "    EmbeddedFile {{ path: {rel:?}, sha256: {hash:?}, mode: 0o{mode:o}, bytes: include_bytes!({:?}) }},",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("framework.rs");
    std::fs::write(dest, out).expect("write framework.rs");
    embed_history(&manifest_dir.join("release-history"));
}

/// Embeds every `release-history/X.Y.Z.json` (written by `cargo xtask
/// release`) as `$OUT_DIR/history.rs`, for recognising files shipped by
/// earlier releases on installs without a manifest.
fn embed_history(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut jsons: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    jsons.sort();
    let mut out = String::from("/// The release history manifests, one JSON document each.\n");
    out.push_str("pub static HISTORY: &[&str] = &[\n");
    for j in &jsons {
        println!("cargo:rerun-if-changed={}", j.display());
        writeln!(out, "    include_str!({:?}),", j.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("history.rs");
    std::fs::write(dest, out).expect("write history.rs");
}

fn rel_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).expect("under root");
    let parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .expect("framework paths are UTF-8")
                .to_string()
        })
        .collect();
    parts.join("/")
}
