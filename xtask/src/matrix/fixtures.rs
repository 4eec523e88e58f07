//! The emulated release history of the matrix: "next" is a copy of the
//! repository's `framework/` (what this checkout ships), "previous" is
//! derived from it by changing, dropping and adding a few files, so every
//! keep-mode row is exercised on realistic content.

use super::world::{write_file, Release, Tmp};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Version of the previous release.
pub const PREV_VERSION: &str = "1.0.0";
/// Version of the next release (newer than the binary's own 0.x).
pub const NEXT_VERSION: &str = "1.1.0";

/// Files the next release changes: (path, line the previous release had
/// appended). Content of each is `next + line`.
pub const CHANGED: &[(&str, &str)] = &[
    (
        "fleet/README.md",
        "\nThis paragraph is from the previous release.\n",
    ),
    ("fleet/examples/minimal.yaml", "# previous release\n"),
    ("fleet/roster.schema.json", "\n"),
    ("fleet/roles/reviewer.md", "\n(previous release)\n"),
    ("tools/fleet/holder.sh", "# previous release\n"),
    ("systemd/user/mosaic-agent@.service", "# previous release\n"),
    (
        "systemd/user/mosaic-tmux-holder.service",
        "# previous release\n",
    ),
];

/// The holder unit's description line, changed by the next release.
pub const HOLDER_UNIT: &str = "systemd/user/mosaic-tmux-holder.service";

/// Files only the previous release shipped: (path, mode, content).
pub const DROPPED: &[(&str, u32, &str)] = &[
    (
        "docs/old-notes.md",
        0o644,
        "# Old notes\n\nShipped by the previous release only.\n",
    ),
    (
        "tools/legacy/run.sh",
        0o755,
        "#!/bin/sh\n# legacy runner, dropped by the next release\nexit 0\n",
    ),
    (
        "fleet/roles/old-role.md",
        0o644,
        "# Old role\n\nDropped by the next release.\n",
    ),
];

/// Files the next release adds (absent from the previous one).
pub const ADDED: &[&str] = &["docs/local-fleet-canary.md", "fleet/examples/team.yaml"];

/// Files both releases ship identically.
pub const UNCHANGED: &[&str] = &["fleet/roles/implementer.md", "tools/tmux/README.md"];

/// Builds (previous, next) from the repository's `framework/`.
pub fn releases(framework: &Path) -> Result<(Release, Release)> {
    let next = Release {
        tmp: Tmp::new("mosaic-matrix-next")?,
        version: NEXT_VERSION.to_string(),
    };
    copy_tree(framework, &next.dir())?;
    let prev = Release {
        tmp: Tmp::new("mosaic-matrix-prev")?,
        version: PREV_VERSION.to_string(),
    };
    copy_tree(framework, &prev.dir())?;
    for rel in CHANGED
        .iter()
        .map(|c| c.0)
        .chain(ADDED.iter().copied())
        .chain(UNCHANGED.iter().copied())
    {
        if !next.ships(rel) {
            bail!(
                "framework/{rel} is gone; update xtask/src/matrix/fixtures.rs to name another file"
            );
        }
    }
    for (rel, line) in CHANGED {
        let p = prev.dir().join(rel);
        let mode = std::fs::metadata(&p)?.permissions().mode() & 0o777;
        let mut bytes = std::fs::read(&p)?;
        bytes.extend_from_slice(line.as_bytes());
        write_file(&p, &bytes, mode)?;
    }
    for (rel, mode, content) in DROPPED {
        if next.ships(rel) {
            bail!("framework/{rel} exists; the matrix needs it to be dropped; rename it in fixtures.rs");
        }
        write_file(&prev.dir().join(rel), content.as_bytes(), *mode)?;
    }
    for rel in ADDED {
        std::fs::remove_file(prev.dir().join(rel))?;
    }
    Ok((prev, next))
}

/// Copies a framework tree (regular files and directories only), keeping
/// the executable bit.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(src).min_depth(1) {
        let e = e.with_context(|| format!("cannot walk {}", src.display()))?;
        let rel = e.path().strip_prefix(src)?;
        let to = dst.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to)?;
        } else if e.file_type().is_file() {
            let mode = if e.metadata()?.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            write_file(&to, &std::fs::read(e.path())?, mode)?;
        } else {
            bail!(
                "{}: only files and directories may be in a framework tree",
                e.path().display()
            );
        }
    }
    Ok(())
}
