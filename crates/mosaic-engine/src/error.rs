//! Typed errors of the library. Every variant renders as one line that names
//! the thing at fault and, where there is one, the fix.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mosaic's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An OS-level failure on a named path.
    #[error("{path}: {source}{}", hint(source))]
    Io {
        /// The path the operation was about.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file mosaic owns (manifest, journal, backup record) could not be parsed.
    #[error("{path}: cannot parse ({msg}); {fix}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        msg: String,
        /// What the operator can do.
        fix: String,
    },
    /// Bad configuration or input given by the operator.
    #[error("{0}")]
    Input(String),
    /// The plan contains blockers; nothing was changed.
    #[error("update blocked by {0} path(s) (see above); nothing was changed. Move them aside, or re-run with --conflict replace to back them up and install the shipped files")]
    Blocked(usize),
    /// Another run holds the lock. It is alive (the lock is held): it is
    /// named, and deleting the lock file is never the fix.
    #[error("another mosaic update is running (pid {pid}) on {home}{}; wait for it to finish, or stop that process and re-run (never delete the lock file: the flock is released when its holder ends)", command.as_deref().map(|c| format!(" (`{c}`)")).unwrap_or_default())]
    Locked {
        /// The holder's pid ("unknown" when unreadable).
        pid: String,
        /// The holder's command line, from `/proc/PID/cmdline`.
        command: Option<String>,
        /// The home being updated.
        home: PathBuf,
    },
    /// An external program did not finish within its deadline and was
    /// killed (with its whole process group).
    #[error("`{command}` did not finish within {secs} s and was killed; check why it hangs, or raise MOSAIC_EXEC_TIMEOUT_SECS")]
    Timeout {
        /// The command line, for display.
        command: String,
        /// The deadline, in seconds.
        secs: u64,
    },
    /// The installed framework is newer than the one this binary carries.
    #[error("the install at {home} is version {installed}, newer than this mosaic's framework {ours}; update the mosaic binary, or re-run with --allow-downgrade")]
    Downgrade {
        /// Home.
        home: PathBuf,
        /// Version recorded in the manifest.
        installed: semver::Version,
        /// Version of the source tree.
        ours: semver::Version,
    },
    /// Applying failed; the tree was restored from the backup.
    #[error("update failed and was rolled back, nothing changed: {0}")]
    RolledBack(Box<Error>),
    /// Applying failed and so did the rollback: the operator must act.
    #[error("update failed ({first}) and the automatic rollback also failed ({second}); the backup is at {backup}: run `mosaic rollback` once the cause is fixed")]
    RollbackFailed {
        /// The original failure.
        first: Box<Error>,
        /// The failure during rollback.
        second: Box<Error>,
        /// Backup directory.
        backup: PathBuf,
    },
}

impl Error {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// What an operator can do about common OS errors.
fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "; free some space and re-run",
        Some(libc::EROFS) => {
            "; the file system is read-only: remount it read-write, or pass --home DIR"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => "; check the owner and permissions of that path",
        Some(libc::ELOOP) => {
            "; a symlink is in the way: mosaic never writes through links, move it aside"
        }
        _ => "",
    }
}

/// Adds a path to an `io::Result`.
pub trait IoContext<T> {
    /// Maps the error to [`Error::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
