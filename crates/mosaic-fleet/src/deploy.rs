//! The remote half of `mosaic fleet deploy` (SPEC §12): one fixed POSIX sh
//! script, sent on ssh's stdin and followed there by the binary itself.
//!
//! The script's last line calls its one function, which prints
//! [`crate::ssh::READY_MARK`] before `head -c SIZE` reads the binary; the
//! controller sends the binary only after that mark ([`crate::ssh::call_bytes`]),
//! so the shell (dash reads its script in 8 KiB blocks) never swallows it. Words (validated, in
//! POSIX single quotes, see [`crate::ssh::quote_word`]): `SHA256` (64
//! lowercase hex digits), `SIZE` (bytes), `BINDIR` (absolute, or empty =
//! `$HOME/.local/bin`), `HOST` (the roster's name for the host).
//!
//! Steps, each printed as `S<TAB>step<TAB>detail` on stdout: the binary is
//! written to a temp file in BINDIR, its size and `sha256sum` checked, made
//! executable, renamed over `BINDIR/mosaic` (atomic in one directory),
//! `mosaic --version` and `mosaic install` run there, then `mosaic fleet
//! install --as HOST` only when the remote home has `fleet/roster.yaml`.
//! Until the rename the old binary is untouched; the temp file is removed on
//! every exit.

/// Exit codes of [`SCRIPT`] (the step that failed).
pub mod exit {
    /// `sha256sum` or `head` missing.
    pub const TOOLS: i32 = 10;
    /// BINDIR could not be created or written.
    pub const BIN_DIR: i32 = 11;
    /// The stream ended early (fewer bytes than SIZE).
    pub const SHORT: i32 = 12;
    /// The sha256 differs.
    pub const SHA: i32 = 13;
    /// chmod or the rename failed.
    pub const PLACE: i32 = 14;
    /// The new binary does not run (`--version`).
    pub const RUN: i32 = 15;
    /// `mosaic install` failed there.
    pub const INSTALL: i32 = 16;
    /// `mosaic fleet install --as HOST` failed there.
    pub const FLEET_INSTALL: i32 = 17;
}

/// The deploy script (see the module docs).
pub const SCRIPT: &str = r#"deploy() {
sha=$1 size=$2 dir=$3 host=$4
[ -n "$dir" ] || dir=$HOME/.local/bin
H=${MOSAIC_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/mosaic}
n=$(uname -n)
for t in head sha256sum; do
  command -v $t >/dev/null 2>&1 || { echo "mosaic-remote: $t is not installed on $n" >&2; exit 10; }
done
mkdir -p "$dir" 2>/dev/null || { echo "mosaic-remote: cannot create $dir on $n" >&2; exit 11; }
tmp=$dir/.mosaic.deploy.$$
trap 'rm -f "$tmp"' EXIT
trap 'exit 129' HUP INT TERM PIPE
echo mosaic-ready
( umask 077; head -c "$size" > "$tmp" ) 2>/dev/null || { echo "mosaic-remote: cannot write $tmp on $n" >&2; exit 11; }
got=$(wc -c < "$tmp" | tr -d ' ')
[ "$got" = "$size" ] || { echo "mosaic-remote: the stream ended after $got of $size bytes; $dir/mosaic is unchanged" >&2; exit 12; }
sum=$(sha256sum "$tmp" | cut -d ' ' -f 1)
[ "$sum" = "$sha" ] || { echo "mosaic-remote: sha256 mismatch (got $sum, want $sha); $dir/mosaic is unchanged" >&2; exit 13; }
printf 'S\tverified\t%s\n' "$sum"
chmod 755 "$tmp" && mv -f "$tmp" "$dir/mosaic" || { echo "mosaic-remote: cannot place $dir/mosaic on $n" >&2; exit 14; }
printf 'S\tplaced\t%s\n' "$dir/mosaic"
v=$("$dir/mosaic" --version 2>&1) || { echo "mosaic-remote: $dir/mosaic --version failed on $n: $v" >&2; exit 15; }
printf 'S\tversion\t%s\n' "$v"
out=$("$dir/mosaic" --quiet install 2>&1) || { printf '%s\n' "$out" >&2; echo "mosaic-remote: mosaic install failed on $n" >&2; exit 16; }
printf 'S\tinstall\t%s\n' "$H"
if [ -f "$H/fleet/roster.yaml" ]; then
  out=$("$dir/mosaic" --quiet fleet install --as "$host" 2>&1) || { printf '%s\n' "$out" >&2; echo "mosaic-remote: mosaic fleet install --as $host failed on $n" >&2; exit 17; }
  printf 'S\tfleet-install\t%s\n' "$host"
else
  printf 'S\tfleet-install\tskipped: no %s\n' "$H/fleet/roster.yaml"
fi
}
deploy "$@"
"#;

/// Whether `s` is a sha256 as the script compares it (64 lowercase hex).
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a `--bin-dir`: absolute, UTF-8 without control characters, no
/// `.`/`..` components, and a word that can travel ([`crate::ssh::quote_word`]).
pub fn check_bin_dir(dir: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("--bin-dir {dir:?} {why}"));
    if !dir.starts_with('/') {
        return bad("is not an absolute path");
    }
    if dir.split('/').any(|c| c == "." || c == "..") {
        return bad("has a . or .. component");
    }
    if dir
        .chars()
        .any(|c| c.is_control() || c == '\'' || c == '\\')
    {
        return bad("contains a quote, a backslash or a control character");
    }
    Ok(())
}

/// The `S<TAB>step<TAB>detail` lines of the script's stdout.
pub fn parse_steps(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("S\t"))
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap_or((l, ""));
            (a.to_string(), b.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn run(sh: &str, dir: &std::path::Path, data: &[u8], sha: &str, size: usize) -> (i32, String) {
        let mut c = Command::new(sh)
            .args(["-s", "--", sha, &size.to_string()])
            .arg(dir)
            .arg("h")
            .env("MOSAIC_HOME", dir.join("home"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut i = c.stdin.take().unwrap();
        i.write_all(SCRIPT.as_bytes()).unwrap();
        // The gate of ssh::call_bytes: the data only after the mark.
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0) > 0
            && line != crate::ssh::READY_MARK
        {
            line.clear();
        }
        let _ = i.write_all(data);
        drop(i);
        let o = c.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    #[test]
    fn a_short_or_wrong_stream_leaves_the_old_file_in_dash_and_bash() {
        let data = b"#!/bin/sh\necho new\n".repeat(5000);
        let sha = mosaic_engine::fsutil::sha256_hex(&data);
        for sh in ["dash", "bash"] {
            if Command::new(sh).arg("-c").arg(":").status().is_err() {
                continue;
            }
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("mosaic"), "old").unwrap();
            let (code, err) = run(sh, d.path(), &data[..1000], &sha, data.len());
            assert_eq!(code, exit::SHORT, "{sh}: {err}");
            let (code, err) = run(sh, d.path(), &data, &"0".repeat(64), data.len());
            assert_eq!(code, exit::SHA, "{sh}: {err}");
            assert_eq!(
                std::fs::read_to_string(d.path().join("mosaic")).unwrap(),
                "old"
            );
            let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "{sh}: temp file left");
        }
    }

    #[test]
    fn words_are_checked() {
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)) && !is_sha256("ab"));
        assert!(check_bin_dir("/opt/my bin").is_ok());
        for bad in ["rel/bin", "/a/../b", "/a'b", "/a\nb", "/a/./b"] {
            assert!(check_bin_dir(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_steps("x\nS\tverified\tab\nS\tplaced\t/b/mosaic\n"),
            [
                ("verified".into(), "ab".into()),
                ("placed".into(), "/b/mosaic".into())
            ]
        );
    }
}
