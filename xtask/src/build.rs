//! Builds the debug `mosaic` binary the matrix and the crash test drive
//! (debug, so the `MOSAIC_FAILPOINT` pause and crash points exist), once per
//! run, and finds it whatever `CARGO_TARGET_DIR` says.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo build -p mosaic --bin mosaic` (debug) and the path of the binary.
pub fn debug_mosaic(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--quiet", "-p", "mosaic", "--bin", "mosaic"])
        .current_dir(root);
    // What `cargo run` sets for xtask itself: passed on, they make build
    // scripts that track them (ring tracks CARGO_MANIFEST_DIR) rebuild, here
    // and again in the next plain `cargo build`.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_MANIFEST_PATH"
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_CRATE_NAME"
            || k == "CARGO_BIN_NAME"
            || k.starts_with("CARGO_PKG_")
        {
            build.env_remove(&*k);
        }
    }
    let status = build.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build -p mosaic --bin mosaic failed");
    }
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                root.join(d)
            }
        }
        None => {
            let out = Command::new(&cargo)
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .current_dir(root)
                .output()
                .context("cannot run cargo metadata")?;
            if !out.status.success() {
                bail!(
                    "cargo metadata failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            PathBuf::from(
                v["target_directory"]
                    .as_str()
                    .context("cargo metadata: no target_directory")?,
            )
        }
    };
    let bin = target_dir.join("debug/mosaic");
    if !bin.is_file() {
        bail!("{} is missing after the build", bin.display());
    }
    Ok(bin)
}
