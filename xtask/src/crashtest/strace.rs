//! Driving `strace`: enumerating a command's mutating system calls (its
//! *points*) and killing it right before one of them.
//!
//! How `when=` counts (strace(1), "-e inject"): "Accounting of syscalls that
//! are subject to injection is done per syscall and per tracee". So the kill
//! before point N is `-e inject=SYSCALL:signal=KILL:when=K`, where K counts
//! *every* invocation of SYSCALL in the tracee up to point N — read-only
//! `openat`s and writes to stdout included — not just the mutating ones. The
//! enumeration run (`-f -ff`, one trace file per tracee) gives K directly.
//! A point in the main thread (all of them, in today's binary) is injected
//! without `-f`, so no worker thread or child (the `systemctl` stub) can
//! reach its own K-th call of that syscall first; a point in another tracee
//! is injected with `-f` and then verified like the rest.
//!
//! Verification: the injection run's trace must end in the main tracee with
//! that syscall, unfinished (`= ?`), followed by `+++ killed by SIGKILL +++`,
//! its K-th of that name, and with the same normalised description as the
//! enumerated point. A kill that lands anywhere else is reported as missed.

use super::world::{run_limited, Ctx, Out, Rel, World};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The system calls traced (the mutating ones, plus `openat`/`write` whose
/// flags or descriptor decide).
pub const TRACED: &str = "openat,write,fsync,fdatasync,syncfs,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,chmod,fchmod,fchmodat,copy_file_range,linkat,symlinkat";

/// One mutating system call of a command.
#[derive(Debug, Clone)]
pub struct Point {
    /// 1-based number among the command's points.
    pub n: usize,
    /// System call name.
    pub syscall: String,
    /// Its ordinal among all calls of `syscall` in its tracee (`when=K`).
    pub k: usize,
    /// Made by the main thread of the command's process.
    pub leader: bool,
    /// Normalised description: syscall, paths, flags.
    pub desc: String,
}

impl Point {
    /// `#N SYSCALL PATH… (SYSCALL call #K)`.
    pub fn label(&self) -> String {
        format!(
            "#{} {} ({} call #{}{})",
            self.n,
            self.desc,
            self.syscall,
            self.k,
            if self.leader {
                ""
            } else {
                ", not the main thread"
            }
        )
    }
}

/// One parsed trace line.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    args: Vec<String>,
    ret: String,
}

/// An argument: a quoted string, or something with a `<path>` annotation (`-y`).
fn arg_string(a: &str) -> Option<String> {
    let a = a.trim();
    let body = a.strip_prefix('"')?;
    let mut out = Vec::new();
    let mut it = body.bytes().peekable();
    while let Some(c) = it.next() {
        match c {
            b'"' => break,
            b'\\' => match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(b'r') => out.push(b'\r'),
                Some(b'v') => out.push(0x0b),
                Some(b'f') => out.push(0x0c),
                Some(b'x') => {
                    let h: String = [it.next(), it.next()]
                        .iter()
                        .flatten()
                        .map(|&b| b as char)
                        .collect();
                    out.push(u8::from_str_radix(&h, 16).unwrap_or(b'?'));
                }
                Some(d @ b'0'..=b'7') => {
                    let mut v = (d - b'0') as u32;
                    for _ in 0..2 {
                        match it.peek() {
                            Some(&e @ b'0'..=b'7') => {
                                v = v * 8 + (e - b'0') as u32;
                                it.next();
                            }
                            _ => break,
                        }
                    }
                    out.push(v as u8);
                }
                Some(o) => out.push(o),
                None => break,
            },
            o => out.push(o),
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The `<…>` annotation of a descriptor argument (`4</tmp/x>`, `AT_FDCWD</w>`).
fn arg_fd_path(a: &str) -> Option<String> {
    let a = a.trim();
    let open = a.find('<')?;
    let close = a.rfind('>')?;
    (close > open).then(|| a[open + 1..close].to_string())
}

/// The descriptor number of an argument (`4</tmp/x>` → 4).
fn arg_fd(a: &str) -> Option<i64> {
    let a = a.trim();
    let end = a.find('<').unwrap_or(a.len());
    a[..end].parse().ok()
}

/// Parses `name(args…) = ret`; `None` for signal, exit and other lines.
fn parse_line(line: &str) -> Option<Call> {
    let line = line.trim_end();
    if line.starts_with("---") || line.starts_with("+++") || line.is_empty() {
        return None;
    }
    let open = line.find('(')?;
    let name = &line[..open];
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    let b = line.as_bytes();
    let mut args = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut in_str, mut in_ann) = (0i32, false, false);
    let mut i = open + 1;
    let mut close = None;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' && i + 1 < b.len() {
                cur.push(c as char);
                cur.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
        } else if in_ann {
            if c == b'>' {
                in_ann = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'<' if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') => {
                    in_ann = true
                }
                b'(' | b'[' | b'{' => depth += 1,
                b']' | b'}' => depth -= 1,
                b')' if depth == 0 => {
                    close = Some(i);
                    break;
                }
                b')' => depth -= 1,
                b',' if depth == 0 => {
                    args.push(std::mem::take(&mut cur).trim().to_string());
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Byte-wise copy; the line is ASCII apart from string contents,
        // which strace escapes.
        cur.push(c as char);
        i += 1;
    }
    let close = close?;
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_string());
    }
    let rest = line[close + 1..].trim_start();
    let ret = rest.strip_prefix('=').unwrap_or(rest).trim().to_string();
    Some(Call {
        name: name.to_string(),
        args,
        ret,
    })
}

/// Joins a `*at` path argument to its directory descriptor's path.
fn at_path(dirfd: Option<&String>, path: Option<&String>) -> String {
    let p = path.and_then(|a| arg_string(a)).unwrap_or_default();
    if p.starts_with('/') {
        return p;
    }
    match dirfd.and_then(|d| arg_fd_path(d)) {
        Some(d) => format!("{}/{p}", d.trim_end_matches('/')),
        None => p,
    }
}

/// Whether a call changes the file system, and how to describe it.
fn mutating(c: &Call) -> Option<String> {
    let a = |i: usize| c.args.get(i);
    let s = |i: usize| a(i).and_then(|x| arg_string(x)).unwrap_or_default();
    let fdp = |i: usize| a(i).and_then(|x| arg_fd_path(x)).unwrap_or_default();
    let d = match c.name.as_str() {
        "openat" => {
            let flags = a(2).cloned().unwrap_or_default();
            let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]
                .iter()
                .any(|f| flags.split('|').any(|x| x == *f));
            if !writes {
                return None;
            }
            let shown: Vec<&str> = flags
                .split('|')
                .filter(|f| !matches!(*f, "O_CLOEXEC" | "O_NOFOLLOW" | "O_LARGEFILE"))
                .collect();
            format!("openat {} {}", at_path(a(0), a(1)), shown.join("|"))
        }
        "write" => {
            if matches!(a(0).and_then(|x| arg_fd(x)), Some(1) | Some(2)) {
                return None;
            }
            format!("write {}", fdp(0))
        }
        "fsync" | "fdatasync" | "syncfs" | "fchmod" => format!("{} {}", c.name, fdp(0)),
        "rename" => format!("rename {} → {}", s(0), s(1)),
        "renameat" | "renameat2" => {
            format!(
                "{} {} → {}",
                c.name,
                at_path(a(0), a(1)),
                at_path(a(2), a(3))
            )
        }
        "unlink" | "rmdir" | "mkdir" | "chmod" => format!("{} {}", c.name, s(0)),
        "unlinkat" | "mkdirat" | "fchmodat" => format!("{} {}", c.name, at_path(a(0), a(1))),
        "copy_file_range" => format!("copy_file_range {} → {}", fdp(0), fdp(2)),
        "linkat" => format!("linkat {} → {}", at_path(a(0), a(1)), at_path(a(2), a(3))),
        "symlinkat" => format!("symlinkat {} → {}", at_path(a(1), a(2)), s(0)),
        _ => return None,
    };
    Some(d)
}

/// The trace of one tracee.
struct TraceFile {
    tid: u32,
    lines: Vec<String>,
}

fn read_traces(prefix: &Path) -> Result<Vec<TraceFile>> {
    let dir = prefix.parent().expect("a trace dir");
    let stem = format!(
        "{}.",
        prefix.file_name().expect("a file name").to_string_lossy()
    );
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(tid) = name.strip_prefix(&stem).and_then(|t| t.parse().ok()) else {
            continue;
        };
        let text = std::fs::read(e.path())?;
        out.push(TraceFile {
            tid,
            lines: String::from_utf8_lossy(&text)
                .lines()
                .map(str::to_string)
                .collect(),
        });
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// The command line of an enumeration or injection run.
fn strace_args(
    follow: bool,
    out: &Path,
    inject: Option<&Point>,
    bin: &Path,
    args: &[String],
) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if follow {
        v.extend(["-f".into(), "-ff".into()]);
    }
    v.extend([
        "-qq".into(),
        "-y".into(),
        "-o".into(),
        out.to_string_lossy().into_owned(),
        "-e".into(),
        format!("trace={TRACED},execve"),
    ]);
    if let Some(p) = inject {
        v.extend([
            "-e".into(),
            format!("inject={}:signal=KILL:when={}", p.syscall, p.k),
        ]);
    }
    v.push("--".into());
    v.push(bin.to_string_lossy().into_owned());
    v.extend(args.iter().cloned());
    v
}

/// A fresh, empty directory for one run's traces.
fn trace_dir(w: &World, tag: &str) -> Result<PathBuf> {
    let d = w.scratch.join(tag);
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Runs `mosaic ARGS…` once under `strace -f` and numbers its mutating
/// system calls.
pub fn enumerate(
    ctx: &Ctx,
    w: &World,
    rel: Rel,
    args: &[String],
    tag: &str,
) -> Result<(Out, Vec<Point>)> {
    let dir = trace_dir(w, tag)?;
    let prefix = dir.join("t");
    let sargs = strace_args(true, &prefix, None, &ctx.bin, args);
    let cmd = w.command(ctx, rel, &ctx.strace, &sargs);
    let out = run_limited(
        cmd,
        format!("strace -f mosaic {}", args.join(" ")),
        &w.scratch,
    )?;
    let traces = read_traces(&prefix)?;
    let bin = ctx.bin.to_string_lossy().into_owned();
    let leader = traces
        .iter()
        .find(|t| {
            t.lines
                .first()
                .and_then(|l| parse_line(l))
                .is_some_and(|c| {
                    c.name == "execve"
                        && c.args.first().and_then(|a| arg_string(a)) == Some(bin.clone())
                })
        })
        .map(|t| t.tid)
        .context("no trace of the mosaic process (is strace allowed to ptrace here?)")?;
    // Points in the order the main thread made them, then the other tracees'.
    let mut points = Vec::new();
    let mut order: Vec<&TraceFile> = traces.iter().collect();
    order.sort_by_key(|t| (t.tid != leader, t.tid));
    for t in order {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for l in &t.lines {
            let Some(c) = parse_line(l) else { continue };
            let k = counts.entry(c.name.clone()).or_default();
            *k += 1;
            if let Some(d) = mutating(&c) {
                points.push(Point {
                    n: 0,
                    syscall: c.name.clone(),
                    k: *k,
                    leader: t.tid == leader,
                    desc: w.normalize(ctx, &d),
                });
            }
        }
    }
    for (i, p) in points.iter_mut().enumerate() {
        p.n = i + 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((out, points))
}

/// How an injection run ended.
pub struct Killed {
    /// The run.
    pub out: Out,
    /// `Err(why)` when the kill did not land on the intended point.
    pub landed: std::result::Result<(), String>,
    /// The tail of the main tracee's trace (for a kept failure).
    pub tail: Vec<String>,
}

/// Runs `mosaic ARGS…` and kills it right before `point`.
pub fn kill_at(
    ctx: &Ctx,
    w: &World,
    rel: Rel,
    args: &[String],
    point: &Point,
    tag: &str,
) -> Result<Killed> {
    let dir = trace_dir(w, tag)?;
    let prefix = dir.join("t");
    let sargs = strace_args(!point.leader, &prefix, Some(point), &ctx.bin, args);
    let cmd = w.command(ctx, rel, &ctx.strace, &sargs);
    let out = run_limited(
        cmd,
        format!("mosaic {} killed before point #{}", args.join(" "), point.n),
        &w.scratch,
    )?;
    let files: Vec<TraceFile> = if point.leader {
        let text =
            std::fs::read(&prefix).with_context(|| format!("no trace {}", prefix.display()))?;
        vec![TraceFile {
            tid: 0,
            lines: String::from_utf8_lossy(&text)
                .lines()
                .map(str::to_string)
                .collect(),
        }]
    } else {
        read_traces(&prefix)?
    };
    let mut landed = Err("no trace".to_string());
    let mut tail = Vec::new();
    for f in &files {
        let last: Vec<String> = f.lines.iter().rev().take(12).rev().cloned().collect();
        match check_landing(ctx, w, f, point) {
            Ok(()) => {
                landed = Ok(());
                tail = last;
                break;
            }
            Err(e) if tail.is_empty() => {
                landed = Err(e);
                tail = last;
            }
            Err(_) => {}
        }
    }
    if out.code.is_some() {
        landed = Err(format!(
            "the command was not killed ({}); the point was never reached",
            out.status_text()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Killed { out, landed, tail })
}

fn check_landing(
    ctx: &Ctx,
    w: &World,
    f: &TraceFile,
    point: &Point,
) -> std::result::Result<(), String> {
    let lines: Vec<&String> = f.lines.iter().filter(|l| !l.trim().is_empty()).collect();
    let Some(last) = lines.last() else {
        return Err("empty trace".to_string());
    };
    if !last.contains("killed by SIGKILL") {
        return Err(format!("the trace does not end in a SIGKILL: {last:?}"));
    }
    let Some(call) = lines
        .iter()
        .rev()
        .skip(1)
        .filter_map(|l| parse_line(l))
        .next()
    else {
        return Err("no system call before the kill".to_string());
    };
    let k = f
        .lines
        .iter()
        .filter_map(|l| parse_line(l))
        .filter(|c| c.name == point.syscall)
        .count();
    let desc = mutating(&call).map(|d| w.normalize(ctx, &d));
    if call.name != point.syscall
        || call.ret != "?"
        || k != point.k
        || desc.as_deref() != Some(&point.desc)
    {
        return Err(format!(
            "killed at {} call #{k} ({}) = {}, not at {}",
            call.name,
            desc.unwrap_or_else(|| "not a mutating call".into()),
            call.ret,
            point.label()
        ));
    }
    Ok(())
}

/// Fails with the apt package to install when strace is missing.
pub fn find_strace() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path) {
        let p = d.join("strace");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("strace is not installed; install it with `sudo apt-get install strace` (Debian/Ubuntu package: strace)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(
            crate::crashtest::world::normalize_ids(
                "$STATE/backups/20261201T232025.565777Z-1.0.0-1.1.0/.meta.json.mosaic-tmp-30809-1 $STATE/journal-7bbd71b337e9a6d1.json"
            ),
            "$STATE/backups/<ID>/.meta.json.mosaic-tmp-* $STATE/journal-<hash>.json"
        );
    }

    #[test]
    fn parses_calls() {
        let c = parse_line(r#"openat(AT_FDCWD</tmp/cp>, "/tmp/a b/.x.mosaic-tmp-1-2", O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600) = 4</tmp/a b/.x.mosaic-tmp-1-2>"#).unwrap();
        assert_eq!(c.name, "openat");
        assert_eq!(c.args.len(), 4);
        assert_eq!(
            mutating(&c).unwrap(),
            "openat /tmp/a b/.x.mosaic-tmp-1-2 O_WRONLY|O_CREAT|O_EXCL"
        );
        let c = parse_line(r#"write(4</tmp/x>, "a, b) = \"c\""..., 88) = 88"#).unwrap();
        assert_eq!(c.args.len(), 3);
        assert_eq!(c.ret, "88");
        assert_eq!(mutating(&c).unwrap(), "write /tmp/x");
        let c = parse_line(r#"write(1</tmp/out>, "hi\n", 3) = 3"#).unwrap();
        assert!(mutating(&c).is_none());
        let c = parse_line(r#"unlinkat(5</tmp/d>, "f", 0) = ?"#).unwrap();
        assert_eq!(c.ret, "?");
        assert_eq!(mutating(&c).unwrap(), "unlinkat /tmp/d/f");
        let c = parse_line(
            r#"openat(AT_FDCWD</w>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>"#,
        )
        .unwrap();
        assert!(mutating(&c).is_none());
        assert!(parse_line("+++ killed by SIGKILL +++").is_none());
        let c = parse_line(r#"rename("/a/.b.mosaic-tmp-9", "/a/b") = 0"#).unwrap();
        assert_eq!(mutating(&c).unwrap(), "rename /a/.b.mosaic-tmp-9 → /a/b");
    }
}
