//! Where things live (SPEC §3): the framework home, the active systemd user
//! unit directory, the state directory, and the external programs. Resolved
//! once from flags and the environment into a [`Paths`] value.

use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// Resolved locations for one run.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Framework home `H`, with a symlinked home resolved once.
    pub home: PathBuf,
    /// Active systemd user unit directory.
    pub units: PathBuf,
    /// State directory (backups, journal).
    pub state: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn user_home() -> Result<PathBuf> {
    env_path("HOME")
        .ok_or_else(|| Error::Input("HOME is not set; set HOME or pass --home DIR".to_string()))
}

fn config_dir() -> Result<PathBuf> {
    match env_path("XDG_CONFIG_HOME") {
        Some(p) if p.is_absolute() => Ok(p),
        _ => Ok(user_home()?.join(".config")),
    }
}

impl Paths {
    /// Resolves the paths from an optional `--home` flag and the environment.
    pub fn resolve(home_flag: Option<&Path>) -> Result<Paths> {
        let raw_home = match home_flag
            .map(Path::to_path_buf)
            .or_else(|| env_path("MOSAIC_HOME"))
        {
            Some(h) => h,
            None => config_dir()?.join("mosaic"),
        };
        let raw_home = if raw_home.is_absolute() {
            raw_home
        } else {
            std::env::current_dir().at(".")?.join(raw_home)
        };
        let home = resolve_home(&raw_home)?;
        let units = config_dir()?.join("systemd").join("user");
        let state = match env_path("MOSAIC_STATE_DIR") {
            Some(p) => p,
            None => match env_path("XDG_STATE_HOME") {
                Some(p) if p.is_absolute() => p.join("mosaic"),
                _ => user_home()?.join(".local").join("state").join("mosaic"),
            },
        };
        Ok(Paths { home, units, state })
    }

    /// `H/.mosaic`.
    pub fn meta_dir(&self) -> PathBuf {
        self.home.join(".mosaic")
    }

    /// `H/.mosaic/manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.meta_dir().join("manifest.json")
    }

    /// `H/.mosaic/lock`.
    pub fn lock(&self) -> PathBuf {
        self.meta_dir().join("lock")
    }

    /// `H/.mosaic/preserve`: the operator's extra preserve patterns.
    pub fn preserve_file(&self) -> PathBuf {
        self.meta_dir().join("preserve")
    }

    /// `STATE/backups`.
    pub fn backups(&self) -> PathBuf {
        self.state.join("backups")
    }

    /// The journal of an apply in progress for this home. Keyed by the home so
    /// two homes sharing one state directory never see each other's journal.
    pub fn journal(&self) -> PathBuf {
        use sha2::{Digest, Sha256};
        let key = hex::encode(&Sha256::digest(self.home.as_os_str().as_encoded_bytes())[..8]);
        self.state.join(format!("journal-{key}.json"))
    }
}

/// Resolves a home that is itself a symlink (operators keep it in a dotfiles
/// repository) exactly once. Below the home nothing is ever followed.
fn resolve_home(raw: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(raw) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(raw).map_err(|e| {
            Error::Input(format!(
                "home {} is a symlink that does not resolve ({e}); fix the link or pass --home DIR",
                raw.display()
            ))
        }),
        Ok(m) if !m.is_dir() => Err(Error::Input(format!(
            "home {} exists but is not a directory; move it aside or pass --home DIR",
            raw.display()
        ))),
        _ => Ok(raw.to_path_buf()),
    }
}

/// The program to run for `name` (`systemctl`, `tmux`), honouring the
/// `MOSAIC_SYSTEMCTL` / `MOSAIC_TMUX` overrides.
pub fn program(name: &str) -> String {
    let var = format!("MOSAIC_{}", name.to_ascii_uppercase());
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| name.to_string())
}
