//! Directory handles (SPEC §4.3 step 5): every read and write below the home
//! and the active unit directory goes through a [`Dir`], an open descriptor
//! of a directory, and names relative to it. Below a root nothing is ever
//! followed: a directory below it is opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, or, where the kernel has no `openat2` (ENOSYS), by
//! a walk that opens one component at a time with `O_NOFOLLOW`; the final
//! name of every operation is acted on with the `*at` calls that do not
//! follow it (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`, `unlinkat`, `renameat2`).
//! A link swapped in at any moment makes that one operation fail with an
//! error naming the path. The root itself (the resolved home, the unit
//! directory, a roster's parent) is opened by its ordinary path, once.

use crate::error::{Error, Result};
use crate::fsutil::Fingerprint;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
use std::cell::Cell;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once `openat2` returned ENOSYS: every later open walks.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// An open directory and the path it was reached by (for messages only;
/// nothing is ever resolved through the path).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Where its read position in the directory stands (see
    /// [`Dir::typed_entries`]). A `Cell`, so a `Dir` is not `Sync`: no two
    /// threads list one handle at once.
    pos: Cell<Pos>,
}

/// A handle's read position in its directory, as its listings need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Just opened: at the start.
    Start,
    /// Listed before: a seek to the start first.
    Moved,
    /// A [`Dir::try_clone`]: the open file description, and with it the
    /// position, belong to the handle it was cloned from; it lists through
    /// a fresh open of the directory and never moves that position.
    Shared,
}

/// What is at a name, never following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing there.
    Absent,
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A socket, fifo or device.
    Special,
}

/// How [`Dir::rename_to`] treats what is at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// Replace it (`renameat`).
    Replace,
    /// Fail with EEXIST when something is there (`RENAME_NOREPLACE`).
    NoReplace,
    /// Swap the two atomically (`RENAME_EXCHANGE`): what was at the
    /// destination is at the source name afterwards.
    Exchange,
}

/// The facts of one `fstatat` that the transaction compares.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Size, mtime, ctime and inode.
    pub fp: Fingerprint,
    /// How many names it has (hard links).
    pub nlink: u64,
}

fn kind_of_mode(mode: u32) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Special,
    }
}

/// Whether an error means "a link, a file or an escape is in the way".
pub fn is_in_the_way(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::ENOTDIR)
    )
}

/// Splits `a/b/c` into (`a/b`, `c`); a single name has the parent "".
pub fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

fn check_name(name: &str) -> std::io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a plain file name",
        ));
    }
    Ok(())
}

impl Dir {
    /// Opens a root directory by its ordinary path (the one place a path is
    /// resolved by the kernel the usual way).
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(path, e.into()))?;
        Ok(Dir::own(fd, path.to_path_buf()))
    }

    /// The path this handle was reached by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        crate::fsutil::join_rel(&self.path, name)
    }

    /// Whether `other` is a handle on this very directory (same device
    /// and inode), wherever either now sits.
    pub fn is_same_dir(&self, other: &Dir) -> Result<bool> {
        let a = rustix::fs::fstat(&self.fd).map_err(|e| Error::io(&self.path, e.into()))?;
        let b = rustix::fs::fstat(&other.fd).map_err(|e| Error::io(&other.path, e.into()))?;
        Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    }

    /// The same handle, named `path` in messages (a directory filled under
    /// a temp name is named by the place it goes to).
    pub fn named(self, path: PathBuf) -> Dir {
        Dir { path, ..self }
    }

    /// Another handle on the same directory (a `dup`, which shares the
    /// read position: it lists through an open of its own, see
    /// [`Dir::typed_entries`], so this handle remains the one handle that
    /// moves the position).
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(|e| Error::io(&self.path, e))?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
            pos: Cell::new(Pos::Shared),
        })
    }

    /// A handle on a directory just opened (its description its own).
    fn own(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir {
            fd,
            path,
            pos: Cell::new(Pos::Start),
        }
    }

    /// Opens the directory `rel` (`/`-separated, `""` for this one) below
    /// this one, following no link at any component. A link, a file or a
    /// missing directory on the way is an error naming the component.
    pub fn sub(&self, rel: &str) -> Result<Dir> {
        match self.sub_raw(rel, true) {
            Ok(d) => Ok(d),
            Err((at, e)) if is_in_the_way(&e) => Err(Error::Input(format!(
                "{}: a symlink or file is in the way; mosaic never follows links below {}: move it aside and re-run",
                self.join(at).display(),
                self.path.display()
            ))),
            Err((at, e)) => Err(Error::io(self.join(at), e)),
        }
    }

    /// Like [`Dir::sub`], `None` when a component is missing.
    pub fn sub_opt(&self, rel: &str) -> Result<Option<Dir>> {
        match self.sub_raw(rel, false) {
            Ok(d) => Ok(Some(d)),
            Err((_, e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => self.sub(rel).map(Some),
        }
    }

    /// The opener behind [`Dir::sub`]: on failure, the prefix of `rel` at
    /// fault and the OS error. A missing component is looked for only when
    /// `name_missing` (else the error names `rel`): [`Dir::sub_opt`] needs
    /// no name, and on a fresh install that search was a second failed open
    /// for every directory.
    fn sub_raw<'r>(
        &self,
        rel: &'r str,
        name_missing: bool,
    ) -> std::result::Result<Dir, (&'r str, std::io::Error)> {
        if rel.is_empty() {
            return self.try_clone().map_err(|_| {
                (
                    rel,
                    std::io::Error::other("cannot duplicate a directory handle"),
                )
            });
        }
        for part in rel.split('/') {
            check_name(part).map_err(|e| (rel, e))?;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                &self.fd,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => return Ok(Dir::own(fd, self.join(rel))),
                Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // With no link followed, ENOENT is a missing component.
                Err(rustix::io::Errno::NOENT) if !name_missing => {
                    return Err((rel, std::io::Error::from(rustix::io::Errno::NOENT)))
                }
                // Any other failure: the walk (as strict) names the
                // component at fault, or succeeds after an EAGAIN.
                Err(_) => {}
            }
        }
        walk(self, rel, flags)
    }

    /// What is at `name` (never following it), `None` when absent.
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    pub fn stat(&self, name: &str) -> Result<Option<Stat>> {
        check_name(name).map_err(|e| Error::io(self.join(name), e))?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let mode = st.st_mode as u32;
                Ok(Some(Stat {
                    kind: kind_of_mode(mode),
                    mode: mode & 0o7777,
                    fp: Fingerprint {
                        size: st.st_size as u64,
                        mtime_ns: crate::fsutil::time_ns(
                            st.st_mtime as i64,
                            st.st_mtime_nsec as i64,
                        ),
                        ctime_ns: crate::fsutil::time_ns(
                            st.st_ctime as i64,
                            st.st_ctime_nsec as i64,
                        ),
                        ino: st.st_ino as u64,
                    },
                    nlink: st.st_nlink as u64,
                }))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io(self.join(name), e.into())),
        }
    }

    /// The kind of what is at `name`.
    pub fn kind(&self, name: &str) -> Result<Kind> {
        Ok(self.stat(name)?.map_or(Kind::Absent, |s| s.kind))
    }

    /// Creates the directory `name` with exactly `mode`; `false` when a
    /// directory is already there (anything else there is an error).
    pub fn mkdir(&self, name: &str, mode: u32) -> Result<bool> {
        check_name(name).map_err(|e| Error::io(self.join(name), e))?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => {
                let d = self.sub(name)?;
                rustix::fs::fchmod(&d.fd, Mode::from_raw_mode(mode))
                    .map_err(|e| Error::io(self.join(name), e.into()))?;
                Ok(true)
            }
            Err(rustix::io::Errno::EXIST) => match self.kind(name)? {
                Kind::Dir => Ok(false),
                other => Err(Error::Input(format!(
                    "{}: a {} is in the way where mosaic creates a directory; mosaic never follows links below {}: move it aside and re-run",
                    self.join(name).display(),
                    match other {
                        Kind::Symlink => "symlink",
                        Kind::File => "file",
                        _ => "special file",
                    },
                    self.path.display()
                ))),
            },
            Err(e) => Err(Error::io(self.join(name), e.into())),
        }
    }

    /// Creates the file `name` (which must not exist; a link there is never
    /// followed) with exactly `mode`, open for writing.
    pub fn create(&self, name: &str, mode: u32) -> std::io::Result<File> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// Opens the regular file `name` for reading, never following a link.
    pub fn open_read(&self, name: &str) -> Result<File> {
        check_name(name).map_err(|e| Error::io(self.join(name), e))?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| Error::io(self.join(name), e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(self.join(name), e.into()))?;
        if kind_of_mode(st.st_mode as u32) != Kind::File {
            return Err(Error::Input(format!(
                "{}: not a regular file; move it aside and re-run",
                self.join(name).display()
            )));
        }
        Ok(File::from(fd))
    }

    /// Renames `from` in this directory to `to` in `dest`.
    pub fn rename_to(&self, from: &str, dest: &Dir, to: &str, how: Rename) -> std::io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        let flags = match how {
            Rename::Replace => RenameFlags::empty(),
            Rename::NoReplace => RenameFlags::NOREPLACE,
            Rename::Exchange => RenameFlags::EXCHANGE,
        };
        match rustix::fs::renameat_with(&self.fd, from, &dest.fd, to, flags) {
            // A file system without RENAME_NOREPLACE: a hard link never
            // replaces either (a file only; the caller handles EINVAL else).
            Err(rustix::io::Errno::INVAL) if how == Rename::NoReplace => {
                rustix::fs::linkat(&self.fd, from, &dest.fd, to, AtFlags::empty())?;
                rustix::fs::unlinkat(&self.fd, from, AtFlags::empty())?;
                Ok(())
            }
            Err(e) => Err(e.into()),
            Ok(()) => Ok(()),
        }
    }

    /// Makes `to` in `dest` a hard link to `from` in this directory (a
    /// link at `from` is linked itself, never followed); never replaces.
    pub fn hard_link_to(&self, from: &str, dest: &Dir, to: &str) -> std::io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        rustix::fs::linkat(&self.fd, from, &dest.fd, to, AtFlags::empty())?;
        Ok(())
    }

    /// Renames the directory `from` in this directory to `to` here, never
    /// replacing anything at `to` (`RENAME_NOREPLACE`; `AlreadyExists`
    /// when something is there). Where the file system lacks the flag, `to`
    /// is made empty first (which fails if anything is there) and the
    /// directory renamed over it (which fails once anything was put in it).
    pub fn rename_dir_no_replace(&self, from: &str, to: &str) -> std::io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        match rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
            Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
            Ok(()) => return Ok(()),
        }
        rustix::fs::mkdirat(&self.fd, to, Mode::from_raw_mode(0o700))?;
        match rustix::fs::renameat(&self.fd, from, &self.fd, to) {
            Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST) => {
                Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
            }
            Err(e) => Err(e.into()),
            Ok(()) => Ok(()),
        }
    }

    /// Removes the file or link `name` (the link itself).
    pub fn unlink(&self, name: &str) -> std::io::Result<()> {
        check_name(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?;
        Ok(())
    }

    /// Removes the file `name` and returns its inode and the ctime the
    /// removal left it with (nanoseconds), which its other names, if it has
    /// any, go on showing: read through a handle opened on it first
    /// (`O_PATH`, never following a link), after the unlink.
    pub fn unlink_seen(&self, name: &str) -> std::io::Result<(u64, i64)> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        Ok((
            st.st_ino as u64,
            crate::fsutil::time_ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        ))
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &str) -> std::io::Result<()> {
        check_name(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?;
        Ok(())
    }

    /// The target of the link `name`.
    pub fn readlink(&self, name: &str) -> Result<PathBuf> {
        check_name(name).map_err(|e| Error::io(self.join(name), e))?;
        let t = rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| Error::io(self.join(name), e.into()))?;
        Ok(PathBuf::from(OsString::from_vec(t.into_bytes())))
    }

    /// Creates the link `name` pointing at `target` (the link is data; it is
    /// never followed).
    pub fn symlink(&self, target: &Path, name: &str) -> Result<()> {
        check_name(name).map_err(|e| Error::io(self.join(name), e))?;
        rustix::fs::symlinkat(target, &self.fd, name)
            .map_err(|e| Error::io(self.join(name), e.into()))
    }

    /// Sets the permission bits of this directory.
    pub fn chmod_self(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::io(&self.path, e.into()))
    }

    /// The names in this directory (without `.` and `..`) in the order the
    /// file system gives them, each with its kind when the directory entry
    /// tells it (`None`: stat it). A name that is not UTF-8 is refused.
    pub fn typed_entries(&self) -> Result<Vec<(String, Option<Kind>)>> {
        use rustix::fs::FileType;
        let err = |e: rustix::io::Errno| Error::io(&self.path, e.into());
        // This descriptor, from the start, when the position is its own (a
        // walk lists each directory it opens once: no open, `fcntl`, seek
        // or close for it, a third of the syscalls of its listings); a
        // fresh open of "." for a clone, as rustix's `Dir::read_from` does
        // for any handle.
        let reopened;
        let fd = match self.pos.get() {
            Pos::Shared => {
                reopened = rustix::fs::openat(
                    &self.fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(err)?;
                reopened.as_fd()
            }
            Pos::Moved => {
                rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Start(0)).map_err(err)?;
                self.fd.as_fd()
            }
            Pos::Start => {
                self.pos.set(Pos::Moved);
                self.fd.as_fd()
            }
        };
        let mut buf = Vec::with_capacity(32 * 1024);
        let mut d = rustix::fs::RawDir::new(fd, buf.spare_capacity_mut());
        let mut out = Vec::new();
        while let Some(ent) = d.next() {
            let ent = ent.map_err(err)?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match ent.file_type() {
                FileType::RegularFile => Some(Kind::File),
                FileType::Directory => Some(Kind::Dir),
                FileType::Symlink => Some(Kind::Symlink),
                FileType::Unknown => None,
                _ => Some(Kind::Special),
            };
            match std::str::from_utf8(name) {
                Ok(s) => out.push((s.to_string(), kind)),
                Err(_) => {
                    return Err(Error::Input(format!(
                        "{}: holds a name that is not UTF-8; move it aside and re-run",
                        self.path.display()
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The names in this directory (without `.` and `..`), sorted.
    pub fn entries(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self.typed_entries()?.into_iter().map(|(n, _)| n).collect();
        out.sort();
        Ok(out)
    }

    /// Removes whatever is at `name`: a file or link (the link itself), or a
    /// directory tree, walking it through handles. Absent is fine.
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        match self.kind(name)? {
            Kind::Absent => Ok(()),
            Kind::Dir => {
                let sub = self.sub(name)?;
                for e in sub.entries()? {
                    sub.remove_tree(&e)?;
                }
                match self.rmdir(name) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io(self.join(name), e)),
                }
            }
            _ => match self.unlink(name) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(self.join(name), e)),
            },
        }
    }

    /// fsyncs this directory (renames and unlinks in it become durable).
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| Error::io(&self.path, e.into()))
    }

    /// Flushes the whole file system holding this directory.
    pub fn syncfs(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(|e| Error::io(&self.path, e.into()))
    }

    /// Creates the directories of `rel` below this one that are missing
    /// (each with `mode`), returning the handle on the last one and the
    /// prefixes it created, outermost first. Never passes through a link.
    pub fn create_dirs(&self, rel: &str, mode: u32) -> Result<(Dir, Vec<String>)> {
        let mut made = Vec::new();
        let mut cur = self.try_clone()?;
        if rel.is_empty() {
            return Ok((cur, made));
        }
        let mut idx = 0;
        for part in rel.split('/') {
            idx += part.len();
            if cur.mkdir(part, mode)? {
                made.push(rel[..idx].to_string());
            }
            idx += 1;
            cur = cur.sub(part)?;
        }
        Ok((cur, made))
    }
}

/// The component-by-component `O_NOFOLLOW` walk (kernels without `openat2`).
fn walk<'r>(
    root: &Dir,
    rel: &'r str,
    flags: OFlags,
) -> std::result::Result<Dir, (&'r str, std::io::Error)> {
    let mut cur: Option<OwnedFd> = None;
    let mut idx = 0;
    for part in rel.split('/') {
        idx += part.len();
        let at = match &cur {
            Some(fd) => fd.as_fd(),
            None => root.fd.as_fd(),
        };
        let fd = rustix::fs::openat(at, part, flags, Mode::empty())
            .map_err(|e| (&rel[..idx], std::io::Error::from(e)))?;
        cur = Some(fd);
        idx += 1;
    }
    match cur {
        Some(fd) => Ok(Dir::own(fd, root.join(rel))),
        None => Err((rel, std::io::Error::other("empty path"))),
    }
}

/// Opens the directory `rel` below `root` with the component walk only
/// (used by tests to exercise the fallback on kernels that have openat2).
pub fn sub_by_walk(root: &Dir, rel: &str) -> Result<Dir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    walk(root, rel, flags).map_err(|(at, e)| Error::io(root.join(at), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tree() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("home/a/b")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(t.path().join("outside"), t.path().join("home/a/link")).unwrap();
        let d = Dir::open(&t.path().join("home")).unwrap();
        (t, d)
    }

    #[test]
    fn opens_below_and_refuses_a_link_at_any_component() {
        let (_t, home) = tree();
        assert!(home.sub("a/b").is_ok());
        let e = home.sub("a/link").unwrap_err().to_string();
        assert!(e.contains("a/link") && e.contains("in the way"), "{e}");
        let e = home.sub("a/link/x").unwrap_err().to_string();
        assert!(e.contains("a/link"), "{e}");
        assert!(home.sub("../home").is_err());
        assert!(home.sub("a/../a").is_err());
        assert!(home.sub_opt("a/missing/c").unwrap().is_none());
    }

    #[test]
    fn a_missing_component_is_named_by_sub_and_only_absent_to_sub_opt() {
        let (t, home) = tree();
        // `sub` names the component at fault, not the whole path.
        let e = home.sub("a/missing/c").unwrap_err().to_string();
        assert!(e.contains("a/missing") && !e.contains("a/missing/c"), "{e}");
        // `sub_opt` takes a missing one as absent, never a link.
        assert!(home.sub_opt("a/missing").unwrap().is_none());
        assert!(home.sub_opt("a/link").is_err());
        assert!(home.sub_opt("a/link/x").is_err());
        std::os::unix::fs::symlink(t.path().join("nowhere"), t.path().join("home/a/dangling"))
            .unwrap();
        assert!(
            home.sub_opt("a/dangling").is_err(),
            "a dangling link is no absent dir"
        );
        // The same directory through two handles, and not another.
        let b1 = home.sub("a/b").unwrap();
        let b2 = home.sub("a").unwrap().sub("b").unwrap();
        assert!(b1.is_same_dir(&b2).unwrap());
        assert!(!b1.is_same_dir(&home).unwrap());
    }

    #[test]
    fn the_walk_refuses_a_link_too() {
        let (_t, home) = tree();
        assert!(sub_by_walk(&home, "a/b").is_ok());
        assert!(sub_by_walk(&home, "a/link").is_err());
        assert!(sub_by_walk(&home, "a/link/x").is_err());
    }

    #[test]
    fn create_never_follows_a_link_and_noreplace_never_replaces() {
        let (t, home) = tree();
        let a = home.sub("a").unwrap();
        assert!(a.create("link", 0o644).is_err());
        let mut f = a.create("tmp", 0o600).unwrap();
        f.write_all(b"new").unwrap();
        std::fs::write(t.path().join("home/a/there"), "operator's").unwrap();
        let e = a
            .rename_to("tmp", &a, "there", Rename::NoReplace)
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        a.rename_to("tmp", &a, "there", Rename::Exchange).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("home/a/tmp")).unwrap(),
            "operator's"
        );
        assert_eq!(a.kind("link").unwrap(), Kind::Symlink);
        assert_eq!(a.kind("nope").unwrap(), Kind::Absent);
    }

    #[test]
    fn remove_tree_removes_a_link_not_its_target() {
        let (t, home) = tree();
        std::fs::write(t.path().join("outside/keep"), "x").unwrap();
        std::fs::write(t.path().join("home/a/b/f"), "x").unwrap();
        home.remove_tree("a").unwrap();
        assert!(!t.path().join("home/a").exists());
        assert!(t.path().join("outside/keep").exists());
    }

    #[test]
    fn create_dirs_reports_what_it_made() {
        let (_t, home) = tree();
        let (_d, made) = home.create_dirs("a/x/y", 0o755).unwrap();
        assert_eq!(made, vec!["a/x".to_string(), "a/x/y".to_string()]);
        assert!(home.create_dirs("a/link/z", 0o755).is_err());
    }

    /// A directory of `n` files, open.
    fn many(n: usize) -> (tempfile::TempDir, Dir, Vec<String>) {
        let t = tempfile::tempdir().unwrap();
        // Long names: a listing takes several `getdents` calls.
        let mut names: Vec<String> = (0..n).map(|i| format!("{i:0>200}")).collect();
        for n in &names {
            std::fs::write(t.path().join(n), "").unwrap();
        }
        names.sort();
        let d = Dir::open(t.path()).unwrap();
        (t, d, names)
    }

    #[test]
    fn a_handle_listed_again_lists_everything_again() {
        // Its own descriptor is read from where the last listing left it:
        // without the seek back, the second listing is empty.
        let (t, d, mut names) = many(400);
        assert_eq!(d.entries().unwrap(), names);
        std::fs::write(t.path().join("late"), "").unwrap();
        names.push("late".into());
        names.sort();
        assert_eq!(d.entries().unwrap(), names);
    }

    #[test]
    fn a_clone_and_its_original_list_everything_whichever_goes_first() {
        // A clone shares the descriptor's position: it lists through an
        // open of its own, so neither starts where the other stopped (at
        // the end) and the original's own listing is never disturbed.
        let (_t, d, names) = many(400);
        let c = d.try_clone().unwrap();
        assert_eq!(c.entries().unwrap(), names);
        assert_eq!(d.entries().unwrap(), names);
        let c2 = c.try_clone().unwrap();
        assert_eq!(c2.entries().unwrap(), names);
        assert_eq!(c.entries().unwrap(), names);
        // And the sub-handles a walk opens each hold their own.
        let (t, d, names) = many(3);
        std::fs::create_dir(t.path().join("sub")).unwrap();
        let sub = d.sub("sub").unwrap();
        assert!(sub.entries().unwrap().is_empty());
        assert_eq!(d.entries().unwrap().len(), names.len() + 1);
    }
}
