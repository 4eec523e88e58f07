//! The update lock `H/.mosaic/lock` (SPEC §4.3 step 1): an advisory `flock`
//! held for the whole run, with the holder's pid written inside so a waiting
//! run can name it.
//!
//! A run that gives up waiting names the holder. The lock is held, so the
//! holder is alive: the pid comes from the kernel's lock table
//! (`/proc/locks`) when it can be read, else from the file, and the
//! holder's command line from `/proc/PID/cmdline`. The lock file is never to
//! be deleted by hand: a held flock is released only when its holder ends,
//! and deleting the file would let a third run take a lock on a new file
//! while the holder still writes.

use crate::error::{Error, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How long a second run waits: 30 s, or `MOSAIC_LOCK_TIMEOUT_SECS`.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("MOSAIC_LOCK_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// The pid holding an flock on the file with `dev`/`ino`, from the kernel's
/// lock table (`/proc/locks`: `1: FLOCK ADVISORY WRITE PID MAJ:MIN:INO 0 EOF`).
fn holder_from_proc_locks(dev: u64, ino: u64) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    let (maj, min) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    table.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        // "N:" "FLOCK" "ADVISORY" "WRITE" pid dev:ino …; blocked waiters have "->".
        if words.get(1) != Some(&"FLOCK") || words.contains(&"->") {
            return None;
        }
        let pid = words.get(4)?.parse::<u32>().ok()?;
        let mut id = words.get(5)?.split(':');
        let (a, b, i) = (id.next()?, id.next()?, id.next()?);
        let same = u64::from_str_radix(a, 16).ok()? == maj
            && u64::from_str_radix(b, 16).ok()? == min
            && i.parse::<u64>().ok()? == ino;
        same.then_some(pid)
    })
}

/// The command line of a live process, words joined by spaces.
fn cmdline(pid: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Takes the lock at `path`, waiting up to `timeout`.
pub fn acquire(path: &Path, home: &Path, timeout: Duration) -> Result<Lock> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .at(path)?;
    let start = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Err(holder_error(&mut file, home));
                }
                if !announced {
                    eprintln!(
                        "mosaic: waiting for another mosaic run to finish on {}",
                        home.display()
                    );
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
    }
    file.set_len(0).at(path)?;
    file.rewind().at(path)?;
    write!(file, "{}", std::process::id()).at(path)?;
    Ok(Lock { _file: file })
}

/// The error naming the live holder of a lock we could not take.
fn holder_error(file: &mut File, home: &Path) -> Error {
    let from_table = file
        .metadata()
        .ok()
        .and_then(|m| holder_from_proc_locks(m.dev(), m.ino()))
        .map(|p| p.to_string());
    let pid = from_table.unwrap_or_else(|| {
        let mut s = String::new();
        let _ = file.read_to_string(&mut s);
        let s = s.trim();
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
            "unknown".to_string()
        } else {
            s.to_string()
        }
    });
    let command = if pid == "unknown" {
        None
    } else {
        cmdline(&pid)
    };
    Error::Locked {
        pid,
        command,
        home: home.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_names_its_live_holder_and_never_advises_deleting_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let _held = acquire(&p, d.path(), Duration::ZERO).unwrap();
        let e = acquire(&p, d.path(), Duration::ZERO).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(!msg.contains("remove"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
