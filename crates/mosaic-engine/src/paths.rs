//! Where things live (SPEC §3): the framework home, the active systemd user
//! unit directory, the state directory, and the external programs. Resolved
//! once from flags and the environment into a [`Paths`] value.
//!
//! It also owns the home's one identity (SPEC §4.3): the home is resolved to
//! its canonical path once (symlinks, `.`, `..` and trailing slashes gone),
//! so the journal, the backups and the lock are the same however `--home` is
//! spelled, and the checks that refuse a home mosaic must never write into
//! (`/`, system directories, the user's HOME itself, relative, non-UTF-8 or
//! control-character paths).

use crate::error::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Resolved locations for one run.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Framework home `H`: its canonical path (a symlinked home, or one
    /// below a symlinked directory, resolved once).
    pub home: PathBuf,
    /// Active systemd user unit directory.
    pub units: PathBuf,
    /// State directory (backups, journal), canonical like the home.
    pub state: PathBuf,
    /// The home the active units point at (`%E/mosaic`), canonical: only a
    /// sync of that home refreshes them (SPEC §6).
    pub units_home: PathBuf,
}

/// What identifies a home whatever its spelling: its canonical path and,
/// when it exists, its device and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeId {
    /// The canonical path.
    pub path: PathBuf,
    /// `(st_dev, st_ino)` of the directory, when it exists.
    pub dev_ino: Option<(u64, u64)>,
}

impl HomeId {
    /// The identity of the directory at `path` (canonicalised first).
    pub fn of(path: &Path) -> HomeId {
        let path = canonical(path);
        let dev_ino = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        HomeId { path, dev_ino }
    }

    /// Same home: the same directory when both exist, else the same
    /// canonical path.
    pub fn same(&self, other: &HomeId) -> bool {
        match (self.dev_ino, other.dev_ino) {
            (Some(a), Some(b)) => a == b,
            _ => self.path == other.path,
        }
    }
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

/// Refuses a path that cannot be written into an env file or a unit line,
/// or shown on one line: not UTF-8, or holding a control character.
/// `what` names where it came from (`--home`, `MOSAIC_STATE_DIR`, …).
pub fn check_plain(what: &str, path: &Path) -> Result<()> {
    let Some(s) = path.to_str() else {
        return Err(Error::Input(format!(
            "{what} {} is not valid UTF-8; mosaic writes this path into env files and units: rename it or use another path",
            path.display()
        )));
    };
    if s.chars().any(char::is_control) {
        return Err(Error::Input(format!(
            "{what} {:?} contains a control character (newline, tab, …); mosaic writes this path into env files and units: use a path without one",
            s
        )));
    }
    Ok(())
}

/// Refuses a relative path: it would name another place in another working
/// directory. The error suggests the absolute spelling.
fn check_absolute(what: &str, flag: &str, path: &Path) -> Result<()> {
    if path.is_absolute() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{what} {} is relative, so it would name another directory from another working directory; pass an absolute path, e.g. {flag}\"$PWD/{}\"",
        path.display(),
        path.display()
    )))
}

/// The canonical spelling of `path` (absolute): the longest existing prefix
/// is resolved by the OS (links followed), the rest is normalised
/// lexically (`.` dropped, `..` taken off).
pub fn canonical(path: &Path) -> PathBuf {
    let comps: Vec<Component<'_>> = path.components().collect();
    for i in (1..=comps.len()).rev() {
        let prefix: PathBuf = comps[..i].iter().collect();
        if let Ok(mut out) = std::fs::canonicalize(&prefix) {
            for c in &comps[i..] {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
    }
    lexical(path)
}

fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Directories that are never a home: installing there would write
/// `.mosaic/` and the framework tree into the system (or over the user's
/// dotfiles).
const SYSTEM_DIRS: &[&str] = &[
    "/", "/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/var", "/run", "/tmp",
    "/opt", "/srv", "/home", "/root", "/mnt", "/media",
];

fn is_system_dir(p: &Path) -> bool {
    if SYSTEM_DIRS.iter().any(|d| p == Path::new(d)) {
        return true;
    }
    // `/lib`, `/lib64`, `/libx32`, …
    let mut comps = p.components();
    matches!(
        (comps.next(), comps.next(), comps.next()),
        (Some(Component::RootDir), Some(Component::Normal(n)), None)
            if n.to_string_lossy().starts_with("lib")
    )
}

/// Refuses `/`, the system directories and the user's HOME itself as a home.
fn check_home_place(home: &Path) -> Result<()> {
    if is_system_dir(home) {
        return Err(Error::Input(format!(
            "refusing {} as the home: it is a system directory; pass a directory of its own, e.g. --home ~/.config/mosaic",
            home.display()
        )));
    }
    if let Some(user) = env_path("HOME") {
        if HomeId::of(&user).same(&HomeId::of(home)) {
            return Err(Error::Input(format!(
                "refusing {} as the home: it is your HOME itself; pass a directory of its own, e.g. --home {}/.config/mosaic",
                home.display(),
                user.display()
            )));
        }
    }
    Ok(())
}

impl Paths {
    /// Resolves the paths from an optional `--home` flag and the environment.
    /// A relative `--home`, `MOSAIC_HOME` or `MOSAIC_STATE_DIR` is refused
    /// (it would name another place from another working directory), and so
    /// is a path that is not UTF-8 or holds a control character, `/`, a
    /// system directory, and the user's HOME itself as a home.
    pub fn resolve(home_flag: Option<&Path>) -> Result<Paths> {
        let raw_home = match (home_flag, env_path("MOSAIC_HOME")) {
            (Some(h), _) => {
                check_plain("--home", h)?;
                check_absolute("--home", "--home ", h)?;
                h.to_path_buf()
            }
            (None, Some(h)) => {
                check_plain("MOSAIC_HOME", &h)?;
                check_absolute("MOSAIC_HOME", "MOSAIC_HOME=", &h)?;
                h
            }
            (None, None) => {
                let h = config_dir()?.join("mosaic");
                check_plain("the default home", &h)?;
                check_absolute("the default home", "--home ", &h)?;
                h
            }
        };
        // Both spellings: `/lib` is a link to `/usr/lib` on merged-/usr systems.
        check_home_place(&lexical(&raw_home))?;
        let home = resolve_home(&raw_home)?;
        check_home_place(&home)?;
        let units = config_dir()?.join("systemd").join("user");
        check_plain("the active unit directory", &units)?;
        let units_home = canonical(&config_dir()?.join("mosaic"));
        let state = match env_path("MOSAIC_STATE_DIR") {
            Some(p) => {
                check_plain("MOSAIC_STATE_DIR", &p)?;
                check_absolute("MOSAIC_STATE_DIR", "MOSAIC_STATE_DIR=", &p)?;
                p
            }
            None => match env_path("XDG_STATE_HOME") {
                Some(p) if p.is_absolute() => p.join("mosaic"),
                _ => user_home()?.join(".local").join("state").join("mosaic"),
            },
        };
        check_plain("the state directory", &state)?;
        let state = canonical(&state);
        Ok(Paths {
            home,
            units,
            state,
            units_home,
        })
    }

    /// The home's identity (see [`HomeId`]).
    pub fn home_id(&self) -> HomeId {
        HomeId::of(&self.home)
    }

    /// Whether `other` (a home recorded in a backup, in any spelling) is
    /// this home.
    pub fn is_this_home(&self, other: &Path) -> bool {
        other == self.home || HomeId::of(other).same(&self.home_id())
    }

    /// Whether the active unit directory belongs to this home: its units
    /// point at `%E/mosaic`, and this home is that directory (SPEC §6).
    pub fn owns_units(&self) -> bool {
        HomeId::of(&self.units_home).same(&self.home_id())
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

    /// The journal of an apply in progress for this home. Keyed by the
    /// home's canonical path (not its spelling), so `--home H/` and
    /// `--home H` share one journal, and two homes sharing one state
    /// directory never see each other's. (Not keyed by device and inode:
    /// device numbers of some file systems change across reboots, and a
    /// journal must survive the crash it is for.)
    pub fn journal(&self) -> PathBuf {
        use sha2::{Digest, Sha256};
        let key = hex::encode(&Sha256::digest(self.home.as_os_str().as_encoded_bytes())[..8]);
        self.state.join(format!("journal-{key}.json"))
    }
}

/// Resolves the home to its canonical path exactly once (a home that is a
/// symlink, as operators keep it in a dotfiles repository, or one below a
/// linked directory). Below the home nothing is ever followed.
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
        _ => {
            let home = canonical(raw);
            check_plain("the home", &home)?;
            Ok(home)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_home_are_one_path() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().join("h");
        std::fs::create_dir(&h).unwrap();
        let base = canonical(&h);
        for s in ["h/", "h/.", "./h", "x/../h", "h//"] {
            assert_eq!(canonical(&d.path().join(s)), base, "{s}");
        }
        // not yet existing: normalised lexically below the existing part
        assert_eq!(
            canonical(&d.path().join("new/./a/../b/")),
            canonical(d.path()).join("new/b")
        );
    }

    #[test]
    fn system_directories_are_never_a_home() {
        for p in [
            "/", "/etc", "/usr", "/lib", "/lib64", "/tmp", "/var", "/proc",
        ] {
            assert!(is_system_dir(Path::new(p)), "{p}");
        }
        for p in ["/tmp/x", "/var/lib/mosaic", "/usr/local/mosaic", "/etc2"] {
            assert!(!is_system_dir(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn control_characters_and_non_utf8_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        assert!(check_plain("--home", Path::new("/a\nb")).is_err());
        assert!(check_plain("--home", Path::new("/a\tb")).is_err());
        let bad = std::ffi::OsStr::from_bytes(b"/a\xffb");
        let e = check_plain("--home", Path::new(bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("UTF-8") && !e.contains('\n'), "{e}");
        assert!(check_plain("--home", Path::new("/a b/ü")).is_ok());
    }
}
