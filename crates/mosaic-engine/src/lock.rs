//! The update lock `H/.mosaic/lock` (SPEC §4.3 step 1): an advisory `flock`
//! held for the whole run, with the holder's pid written inside so a waiting
//! run can name it.

use crate::error::{Error, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
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
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    let pid = pid.trim();
                    return Err(Error::Locked {
                        pid: if pid.is_empty() {
                            "unknown".into()
                        } else {
                            pid.to_string()
                        },
                        home: home.to_path_buf(),
                    });
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
