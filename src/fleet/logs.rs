//! `mosaic agent logs NAME [-f] [-n N]`: the agent's pane output as kept by
//! `tmux pipe-pane` into `H/fleet/run/NAME.log` (rotated by
//! `tools/fleet/pane-log`: 1 MiB × 3, `NAME.log.1`, `NAME.log.2`), so the
//! last words of a runtime that died are still there. Terminal escapes and
//! carriage returns are removed for display; `-f` follows the file across
//! rotations until interrupted.

use super::cli::AgentCommand;
use super::Ctx;
use crate::cli::Global;
use crate::report::Printer;
use mosaic_engine::error::{Error, IoContext, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pane log of agent `name` under home `home`.
pub fn log_path(home: &Path, name: &str) -> PathBuf {
    home.join("fleet/run").join(format!("{name}.log"))
}

/// The log files of `name`, oldest first (`NAME.log.2`, `NAME.log.1`, `NAME.log`).
fn log_files(home: &Path, name: &str) -> Vec<PathBuf> {
    let cur = log_path(home, name);
    let mut v: Vec<PathBuf> = (1..=9)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", cur.display())))
        .filter(|p| p.is_file())
        .collect();
    if cur.is_file() {
        v.push(cur);
    }
    v
}

/// Removes terminal escape sequences (CSI, OSC, two-byte escapes) and
/// carriage returns; keeps newlines and tabs.
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\x1b' => match it.next() {
                Some('[') => {
                    // CSI: parameters and intermediates, then one final byte.
                    for d in it.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    // OSC/DCS/APC/PM: up to BEL or ESC \.
                    while let Some(d) = it.next() {
                        if d == '\x07' {
                            break;
                        }
                        if d == '\x1b' {
                            if it.peek() == Some(&'\\') {
                                it.next();
                            }
                            break;
                        }
                    }
                }
                Some('(') | Some(')') | Some('*') | Some('+') => {
                    it.next();
                }
                _ => {}
            },
            '\r' => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The last `n` non-blank lines of `text`.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].to_vec()
}

/// Runs `mosaic agent logs`.
pub fn run(cmd: &AgentCommand, g: &Global, p: &Printer) -> Result<i32> {
    let AgentCommand::Logs {
        name,
        follow,
        lines,
        roster,
    } = cmd
    else {
        return Err(Error::Input("agent logs: not a logs command".into()));
    };
    let ctx = Ctx::new(g, roster)?;
    let home = ctx.paths.home.clone();
    // A name the roster lost may still have its log (after `fleet remove`).
    let files = log_files(&home, name);
    if files.is_empty() {
        ctx.roster()?.agent(name, &ctx.roster_path)?;
        return Err(Error::Input(format!(
            "no pane log for {name} ({} is missing); it is written from the agent's next start (`mosaic fleet restart {name}`)",
            log_path(&home, name).display()
        )));
    }
    let mut text = Vec::new();
    for f in &files {
        text.extend(std::fs::read(f).at(f)?);
    }
    let text = strip_escapes(&String::from_utf8_lossy(&text));
    let shown = last_lines(&text, *lines);
    if p.json {
        p.doc(
            crate::report::Doc::AgentLogs,
            &serde_json::json!({
                "version": 1,
                "agent": name,
                "log": log_path(&home, name),
                "files": files,
                "lines": shown,
            }),
        );
        return Ok(0);
    }
    for l in &shown {
        p.out(l);
    }
    if *follow {
        follow_file(&log_path(&home, name), p)?;
    }
    Ok(0)
}

/// Prints what is appended to `path` from its current end, reopening it when
/// it is rotated (it shrinks or is replaced); runs until interrupted.
fn follow_file(path: &Path, p: &Printer) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let open = |path: &Path| -> Option<(std::fs::File, u64)> {
        let f = std::fs::File::open(path).ok()?;
        let ino = f.metadata().ok()?.ino();
        Some((f, ino))
    };
    let mut cur = open(path);
    if let Some((f, _)) = cur.as_mut() {
        f.seek(SeekFrom::End(0)).at(path)?;
    }
    let mut pending = String::new();
    loop {
        let mut buf = Vec::new();
        if let Some((f, _)) = cur.as_mut() {
            f.read_to_end(&mut buf).at(path)?;
        }
        if !buf.is_empty() {
            pending.push_str(&strip_escapes(&String::from_utf8_lossy(&buf)));
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                let line = line.trim_end_matches('\n');
                if !line.trim().is_empty() {
                    p.out(line);
                }
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(250));
        // Rotated: a new file (another inode) at the path; read it from the start.
        let now = std::fs::metadata(path).ok().map(|m| m.ino());
        if now.is_some() && now != cur.as_ref().map(|(_, i)| *i) {
            cur = open(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_carriage_returns_are_removed() {
        assert_eq!(
            strip_escapes("\x1b[1;32mok\x1b[0m\r\n\x1b]0;title\x07a\tb\x1b(B\x1b[?25l\n"),
            "ok\na\tb\n"
        );
        assert_eq!(strip_escapes("x\x1b]8;;u\x1b\\y"), "xy");
    }

    #[test]
    fn last_lines_skip_blanks() {
        assert_eq!(last_lines("a\n\nb\n  \nc\n", 2), ["b", "c"]);
        assert_eq!(last_lines("a\n", 5), ["a"]);
    }

    #[test]
    fn log_files_are_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("fleet/run");
        std::fs::create_dir_all(&run).unwrap();
        for f in ["a.log", "a.log.1", "a.log.2", "ab.log"] {
            std::fs::write(run.join(f), f).unwrap();
        }
        let v = log_files(d.path(), "a");
        let names: Vec<_> = v
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.log.2", "a.log.1", "a.log"]);
    }
}
