//! Small file-system primitives every writer in mosaic goes through: hashing,
//! stat fingerprints, atomic writes (temp file in the same directory, fsync,
//! rename, fsync of the directory) and durable directory syncs.

use crate::error::{IoContext, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Lower-case hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The sha256 of a file's content, never following a symlink.
pub fn hash_file(path: &Path) -> Result<crate::Sha256> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .at(path)?;
    hash_open(f, path)
}

/// The sha256 of the rest of the open file `f` (`path` names it in errors).
pub fn hash_open(f: File, path: &Path) -> Result<crate::Sha256> {
    hash_rest(f).at(path)
}

/// The sha256 of the rest of the open file `f`.
pub fn hash_rest(mut f: File) -> std::io::Result<crate::Sha256> {
    // One buffer per thread, zeroed once: a fresh 64 KiB array per file
    // was 4% of a 10,000-file fresh install in `memset` alone.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        if buf.is_empty() {
            buf.resize(64 * 1024, 0);
        }
        let mut hasher = Sha256::new();
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(crate::Sha256::finish(hasher))
    })
}

/// Copies the rest of `from` into `to` in the kernel (`copy_file_range`,
/// which `std::io::copy` also uses, without the two `statx` it asks first),
/// or by reads and writes where the file system cannot.
pub fn copy_all(from: &mut File, to: &mut File) -> std::io::Result<u64> {
    let mut total = 0u64;
    loop {
        match rustix::fs::copy_file_range(&*from, None, &*to, None, 1 << 30) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e)
                if total == 0
                    && [
                        rustix::io::Errno::XDEV,
                        rustix::io::Errno::NOSYS,
                        rustix::io::Errno::OPNOTSUPP,
                        rustix::io::Errno::INVAL,
                        rustix::io::Errno::PERM,
                    ]
                    .contains(&e) =>
            {
                return std::io::copy(from, to);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A stat fingerprint: when it matches, a recorded hash may be trusted
/// without reading the file (like git's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (an `i64` holds
    /// 1677–2262; times outside saturate).
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
}

impl Fingerprint {
    /// What a cache records for a file whose fingerprint is racily clean
    /// ([`racy`]): no file has it (inode 0, size `u64::MAX`), so the file is
    /// hashed again next time.
    pub const UNTRUSTED: Fingerprint = Fingerprint {
        size: u64::MAX,
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
        ino: 0,
    };
}

/// When the current run started looking at files, nanoseconds since the
/// epoch (see [`mark_run_start`]).
static RUN_START_NS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Marks the start of this process's run, once: the first call wins. Every
/// place that takes fingerprints calls it before its first stat (the home's
/// scan, the source tree's walk, the transaction), so the start is never
/// later than any fingerprint the run judges: a start marked after a file
/// was stat'ed would let a fingerprint through that an edit saved just
/// after the stat still matches.
pub fn mark_run_start() {
    RUN_START_NS.get_or_init(now_ns);
}

/// Git's racily-clean rule: a fingerprint whose mtime falls within the
/// run's own time window (at or after its start, less the file system's
/// timestamp granularity; the start is now when the run marked none) cannot
/// tell a later edit from the file it saw, so it is never trusted as clean.
pub fn racy(fp: &Fingerprint) -> bool {
    racy_at(fp, RUN_START_NS.get().copied().unwrap_or_else(now_ns))
}

/// [`racy`] against a given run start. The granularity allowed for: a
/// second when the mtime is a whole second (a file system that keeps only
/// seconds, or a timestamp set by hand), else [`FINE_SLACK_NS`]: the
/// kernel stamps files from its coarse clock, which lags the real time by
/// at most one tick (10 ms at HZ=100), so an edit after the run started
/// always gets an mtime later than that.
pub fn racy_at(fp: &Fingerprint, start_ns: i64) -> bool {
    let slack = if fp.mtime_ns % 1_000_000_000 == 0 {
        1_000_000_000
    } else {
        FINE_SLACK_NS
    };
    fp.mtime_ns >= start_ns.saturating_sub(slack)
}

/// The slack of [`racy_at`] for sub-second timestamps: five ticks of a
/// HZ=100 kernel.
pub const FINE_SLACK_NS: i64 = 50_000_000;

/// Seconds and nanoseconds as nanoseconds since the epoch, saturating.
pub fn time_ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

impl Fingerprint {
    /// The fingerprint of already-read metadata.
    pub fn of(meta: &std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            size: meta.size(),
            mtime_ns: time_ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: time_ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// The temp name used beside `path` while it is being written by the run
/// tagged `tag` (unique per run, so two runs never share a temp file).
pub fn temp_path(path: &Path, tag: &str) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".mosaic-tmp-");
    name.push(tag);
    path.with_file_name(name)
}

/// A tag unique to this process and call, for one-off atomic writes.
pub fn unique_tag() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `bytes` to the temp file beside `path` with `mode`, optionally
/// fsyncing it. Returns the temp path. The caller renames it into place.
pub fn write_temp(path: &Path, tag: &str, bytes: &[u8], mode: u32, fsync: bool) -> Result<PathBuf> {
    write_temp_with(path, tag, mode, fsync, &mut |f| f.write_all(bytes))
}

/// Like [`write_temp`], streaming the content of the file `from` (errors
/// reading it name `from`).
pub fn copy_temp(path: &Path, tag: &str, from: &Path, mode: u32, fsync: bool) -> Result<PathBuf> {
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .at(from)?;
    write_temp_with(path, tag, mode, fsync, &mut |f| {
        std::io::copy(&mut src, f).map(|_| ())
    })
}

/// The temp writer behind [`write_temp`] and [`copy_temp`].
fn write_temp_with(
    path: &Path,
    tag: &str,
    mode: u32,
    fsync: bool,
    fill: &mut dyn FnMut(&mut File) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let tmp = temp_path(path, tag);
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)
    };
    let mut f = match open() {
        // A stale regular temp file of this very tag is ours; anything else
        // there (a directory, a link) is not, and is never removed.
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) =>
        {
            std::fs::remove_file(&tmp).at(path)?;
            open().at(path)?
        }
        other => other.at(path)?,
    };
    let result = (|| -> std::io::Result<()> {
        fill(&mut f)?;
        // The umask may have narrowed the mode; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if fsync {
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(crate::error::Error::io(path, e));
    }
    Ok(tmp)
}

/// Atomically replaces `path` with `bytes`: temp file in the same directory,
/// fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, &mut |f| f.write_all(bytes))
}

/// Like [`write_atomic`], the content written by `fill` (through a
/// buffer: a large document is streamed, never held whole).
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = write_temp_with(path, &unique_tag(), mode, true, &mut |f| {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        fill(&mut w)?;
        w.flush()
    })?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(crate::error::Error::io(path, e));
    }
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory so renames and unlinks in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Flushes the whole file system holding `path` (one `syncfs(2)`), used to
/// make a batch of temp files durable with one call instead of one fsync each.
pub fn syncfs(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(path).at(path)?;
    // SAFETY: syncfs takes a valid open descriptor, which `f` holds.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(crate::error::Error::io(
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Creates `dir` and its missing parents (each with `mode`), returning the
/// ones it created, outermost first. Refuses to pass through a symlink.
pub fn create_dirs(dir: &Path, mode: u32) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = dir.to_path_buf();
    loop {
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(crate::error::Error::io(
                    &cur,
                    std::io::Error::new(std::io::ErrorKind::AlreadyExists, "not a directory"),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(cur.clone());
                match cur.parent() {
                    Some(p) => cur = p.to_path_buf(),
                    None => break,
                }
            }
            Err(e) => return Err(crate::error::Error::io(&cur, e)),
        }
    }
    missing.reverse();
    for d in &missing {
        match std::fs::DirBuilder::new().mode(mode).create(d) {
            Ok(()) => {}
            // Another run made it meanwhile: fine if it is a directory.
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) =>
            {
                continue
            }
            Err(e) => return Err(crate::error::Error::io(d, e)),
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).at(d)?;
    }
    Ok(missing)
}

/// Whether the `/`-separated relative path `rel` lies strictly below `dir`.
pub fn is_below(rel: &str, dir: &str) -> bool {
    rel.len() > dir.len() && rel.starts_with(dir) && rel.as_bytes()[dir.len()] == b'/'
}

/// Whether `rel` lies strictly below any of `dirs`.
pub fn is_below_any<'a>(rel: &str, dirs: impl IntoIterator<Item = &'a str>) -> bool {
    dirs.into_iter().any(|d| is_below(rel, d))
}

/// Joins a `/`-separated relative path onto `base`.
pub fn join_rel(base: &Path, rel: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    for part in rel.split('/') {
        p.push(part);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racily_clean_allows_for_the_timestamp_granularity() {
        let fp = |mtime_ns: i64| Fingerprint {
            size: 1,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 1,
        };
        let start = 1_700_000_000_500_000_000;
        // Sub-second timestamps: only the last few ticks are racy.
        assert!(racy_at(&fp(start + 1), start));
        assert!(racy_at(&fp(start - 10_000_000), start));
        assert!(!racy_at(&fp(start - 60_000_000), start));
        // A whole-second mtime may be a truncated one: a second of slack.
        assert!(racy_at(&fp(1_700_000_000_000_000_000), start));
        assert!(!racy_at(&fp(1_699_999_999_000_000_000), start));
    }

    #[test]
    fn a_fingerprint_within_the_run_window_is_racy() {
        mark_run_start();
        let old = Fingerprint {
            size: 1,
            mtime_ns: 1_000_000_000,
            ctime_ns: 0,
            ino: 1,
        };
        assert!(!racy(&old));
        let now = Fingerprint {
            mtime_ns: now_ns(),
            ..old
        };
        assert!(racy(&now));
        // A tick of the kernel's coarse clock before the start counts as
        // the run's (see `racily_clean_allows_for_the_timestamp_granularity`).
        let just_before = Fingerprint {
            mtime_ns: *RUN_START_NS.get().unwrap() - 10_000_001,
            ..old
        };
        assert!(racy(&just_before));
    }
}
