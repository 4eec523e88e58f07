//! A run's access to one home, decided once before anything is read
//! (SPEC §4.3 steps 1–2).
//!
//! Every command opens a [`Session`]: a read-only one ([`Session::inspect`])
//! for `status`, `diff`, `verify` and every `--dry-run`, or a locked one
//! ([`Session::lock`]) for a command that writes. Only a locked session has
//! the [`Locked`] token that [`crate::txn::apply`] demands, so a read-only
//! command, or a dry run, has no way to write: a forgotten check cannot
//! write. The locked session takes the lock *before* it reads anything and
//! recovers an interrupted run first; everything the command then reads is
//! read under the lock. It also deletes the backups earlier runs retired,
//! on a helper thread joined before the lock is let go.

use crate::error::{Error, Result};
use crate::lock::{self, Lock};
use crate::paths::Paths;
use crate::txn::{self, Recovered};
use std::os::unix::fs::DirBuilderExt;

/// The token of a held lock. It cannot be made outside this module: holding
/// one proves the run took the lock and recovered first.
#[derive(Debug)]
pub struct Locked {
    /// Deletes the backups earlier runs retired while this one reads and
    /// plans; joined when the token goes, before the lock is let go.
    trash: Option<std::thread::JoinHandle<()>>,
    _lock: Lock,
}

impl Drop for Locked {
    fn drop(&mut self) {
        // Runs before the fields drop: the lock is still held.
        if let Some(t) = self.trash.take() {
            let _ = t.join();
        }
    }
}

/// A read-only view: no lock taken, nothing created, nothing recovered.
#[derive(Debug)]
pub struct ReadOnly;

/// One run's view of a home; `A` is [`ReadOnly`] or [`Locked`].
#[derive(Debug)]
pub struct Session<A> {
    /// Where everything lives.
    pub paths: Paths,
    /// The interrupted run that was rolled back first, if any.
    pub recovered: Option<Recovered>,
    /// Problems worth telling that did not stop the run.
    pub warnings: Vec<String>,
    access: A,
}

impl Session<ReadOnly> {
    /// A read-only session: reads the home as it is, writes nothing at all
    /// (not even the lock file), and only reports a pending journal.
    pub fn inspect(paths: Paths) -> Result<Session<ReadOnly>> {
        let mut warnings = Vec::new();
        if let Some(problem) = txn::journal_problem(&paths) {
            warnings.push(format!(
                "the next command that writes will refuse this journal: {problem}"
            ));
        } else if txn::journal_pending(&paths) {
            warnings.push(
                "an interrupted run will be rolled back before the next command that writes"
                    .to_string(),
            );
        }
        Ok(Session {
            paths,
            recovered: None,
            warnings,
            access: ReadOnly,
        })
    }
}

impl Session<Locked> {
    /// A writing session: creates `H/.mosaic` when missing, takes the lock
    /// (waiting up to the lock timeout), then rolls back an interrupted run.
    pub fn lock(paths: Paths) -> Result<Session<Locked>> {
        ensure_meta_dir(&paths)?;
        let held = lock::acquire(&paths.lock(), &paths.home, lock::default_timeout())?;
        crate::failpoint::pause("after-lock");
        let mut warnings = Vec::new();
        let mut access = Locked {
            trash: None,
            _lock: held,
        };
        let recovered = txn::recover(&paths, &access)?;
        txn::sweep(&paths, &access);
        // Retired backups (see `txn::prune`) go on a helper thread: their
        // deletion waits on the disk, the run's scan on the CPU. Deleting
        // them here is the fallback when no thread can be had.
        let trash = txn::trash_of_dead_runs(&paths, &access);
        if !trash.is_empty() {
            let delete = |trash: &[std::path::PathBuf]| {
                for t in trash {
                    let _ = std::fs::remove_dir_all(t);
                }
            };
            let list = trash.clone();
            match std::thread::Builder::new()
                .name("mosaic-trash".into())
                .spawn(move || delete(&list))
            {
                Ok(h) => access.trash = Some(h),
                Err(_) => delete(&trash),
            }
        }
        if let Some(r) = &recovered {
            for k in &r.kept {
                warnings.push(format!(
                    "{k} changed after the interrupted run and was kept as found; its earlier copy is in backup {}",
                    r.id
                ));
            }
        }
        Ok(Session {
            paths,
            recovered,
            warnings,
            access,
        })
    }

    /// The proof of the held lock, for [`crate::txn::apply`].
    pub fn token(&self) -> &Locked {
        &self.access
    }
}

/// Creates `H/.mosaic` (0700) when missing; refuses a non-directory there.
fn ensure_meta_dir(paths: &Paths) -> Result<()> {
    let dir = paths.meta_dir();
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Input(format!(
            "{} is not a directory; move it aside so mosaic can keep its records there",
            dir.display()
        ))),
        Err(_) => {
            crate::fsutil::create_dirs(&paths.home, 0o755)?;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(&dir, e))
        }
    }
}
