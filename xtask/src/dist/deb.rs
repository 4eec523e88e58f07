//! The .deb (`mosaic_X.Y.Z_ARCH.deb`), built with `dpkg-deb --build
//! --root-owner-group` from a staging tree, lintian-clean
//! (`lintian -I -E --pedantic`, see docs/releasing.md for what remains):
//!
//! * `/usr/bin/mosaic` (stripped by dist), bash/zsh/fish completions,
//!   `/usr/share/man/man1/NAME.1.gz` for every page (`gzip -9n`);
//! * `/usr/share/doc/mosaic/`: `copyright` (DEP-5, from
//!   `packaging/deb/copyright.in`), `changelog.gz` (a Debian-format changelog
//!   generated from CHANGELOG.md, as a native package has), `LICENSE-MIT`,
//!   `LICENSE-APACHE.gz`, `THIRD-PARTY-LICENSES.gz` and the operator docs
//!   `TOPIC.md` (each compressed above 4 KiB, as dh_compress does);
//! * `DEBIAN/control` from `packaging/deb/control.in`, with `Depends:` from
//!   `dpkg-shlibdeps` run on the binary, and `DEBIAN/md5sums`.
//!
//! Reproducible: every file's mtime and dpkg-deb's (via `SOURCE_DATE_EPOCH`)
//! are the epoch; dpkg-deb sorts the tree.
//!
//! The maintainer is `MOSAIC_DEB_MAINTAINER` (`Name <address>`), else
//! [`DEFAULT_MAINTAINER`].

use super::{gzip9n, Payload};
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A role address under the `.invalid` top-level domain (RFC 2606: it never
/// resolves, so it cannot be anybody's mailbox). Lintian accepts it (it
/// checks the host's syntax, not its TLD); a published release should set
/// `MOSAIC_DEB_MAINTAINER` to a contact that is read.
pub const DEFAULT_MAINTAINER: &str = "The mosaic developers <maintainers@mosaic.invalid>";

/// The year mosaic's first commit was made: the start of the copyright
/// years (the end is the year of the release's `SOURCE_DATE_EPOCH`).
const FIRST_YEAR: i64 = 2026;

/// Docs above this size are shipped gzipped (Debian policy 12.3).
const COMPRESS_ABOVE: usize = 4096;

/// The `Maintainer:` value: `MOSAIC_DEB_MAINTAINER` or the default; checked.
pub fn maintainer() -> Result<String> {
    check_maintainer(std::env::var("MOSAIC_DEB_MAINTAINER").ok())
}

fn check_maintainer(value: Option<String>) -> Result<String> {
    let m = value
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_MAINTAINER.to_string());
    let ok = (|| {
        let (name, rest) = m.split_once(" <")?;
        let addr = rest.strip_suffix('>')?;
        let (user, host) = addr.split_once('@')?;
        let good = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        };
        (!name.trim().is_empty()
            && !name.contains(['<', '>', '\n'])
            && good(user)
            && good(host)
            && host.contains('.')
            && !host.starts_with('.')
            && !host.ends_with('.'))
        .then_some(())
    })();
    if ok.is_none() {
        bail!("MOSAIC_DEB_MAINTAINER={m:?} is not \"Name <user@host.domain>\"");
    }
    Ok(m)
}

/// The Debian architecture of a Rust target triple.
pub fn arch(target: &str) -> Result<&'static str> {
    let arch = target.split('-').next().unwrap_or("");
    Ok(match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7" => "armhf",
        "i686" => "i386",
        "riscv64gc" => "riscv64",
        other => bail!("no Debian architecture known for {other}"),
    })
}

/// One .deb to build.
pub struct Spec<'a> {
    pub payload: &'a Payload,
    pub arch: &'a str,
    pub epoch: u64,
    pub maintainer: &'a str,
    /// Scratch space (removed by the caller).
    pub work: &'a Path,
    pub out: &'a Path,
}

/// Builds the .deb at `spec.out`.
pub fn build(spec: &Spec) -> Result<()> {
    let p = spec.payload;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace");
    let staging = spec.work.join(format!("deb-{}", spec.arch));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let doc = "usr/share/doc/mosaic";
    let mut files: Vec<(String, Vec<u8>, u32)> = vec![
        ("usr/bin/mosaic".into(), p.binary.clone(), 0o755),
        (
            format!("{doc}/copyright"),
            copyright(root, &p.license_mit, spec.epoch)?.into_bytes(),
            0o644,
        ),
        (
            format!("{doc}/changelog.gz"),
            gzip9n(
                changelog(&p.changelog_md, &p.version, spec.maintainer, spec.epoch)?.as_bytes(),
            )?,
            0o644,
        ),
    ];
    // A documented false positive, overridden where lintian looks for it.
    let overrides = std::fs::read(root.join("packaging/deb/lintian-overrides"))
        .context("cannot read packaging/deb/lintian-overrides")?;
    files.push((
        "usr/share/lintian/overrides/mosaic".into(),
        overrides,
        0o644,
    ));
    for (name, roff) in &p.man {
        files.push((
            format!("usr/share/man/man1/{name}.1.gz"),
            gzip9n(roff)?,
            0o644,
        ));
    }
    let docs: Vec<(String, &Vec<u8>)> = p
        .docs
        .iter()
        .map(|(topic, text)| (format!("{topic}.md"), text))
        .collect();
    for (name, bytes) in [
        ("LICENSE-MIT".to_string(), &p.license_mit),
        ("LICENSE-APACHE".to_string(), &p.license_apache),
        ("THIRD-PARTY-LICENSES".to_string(), &p.third_party),
    ]
    .into_iter()
    .chain(docs)
    {
        if bytes.len() > COMPRESS_ABOVE {
            files.push((format!("{doc}/{name}.gz"), gzip9n(bytes)?, 0o644));
        } else {
            files.push((format!("{doc}/{name}"), bytes.clone(), 0o644));
        }
    }
    for (name, text) in &p.completions {
        let dest = match *name {
            "mosaic.bash" => "usr/share/bash-completion/completions/mosaic",
            "_mosaic" => "usr/share/zsh/vendor-completions/_mosaic",
            "mosaic.fish" => "usr/share/fish/vendor_completions.d/mosaic.fish",
            other => bail!("no place in the .deb for completion file {other}"),
        };
        files.push((dest.into(), text.clone(), 0o644));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut md5sums = String::new();
    let mut dirs = std::collections::BTreeSet::new();
    let mut size_kib = 0u64;
    for (rel, bytes, mode) in &files {
        let path = staging.join(rel);
        let parent = path.parent().expect("a path inside staging");
        std::fs::create_dir_all(parent)?;
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
        md5sums.push_str(&format!("{}  {rel}\n", hex::encode(Md5::digest(bytes))));
        // As dpkg-gencontrol counts: each file rounded up to 1 KiB, plus
        // 1 KiB per directory.
        size_kib += (bytes.len() as u64).div_ceil(1024);
        let mut d = Path::new(rel.as_str()).parent();
        while let Some(dir) = d.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            d = dir.parent();
        }
    }
    size_kib += dirs.len() as u64;

    let depends = shlibdeps(spec.work, &staging.join("usr/bin/mosaic"))?;
    let control = std::fs::read_to_string(root.join("packaging/deb/control.in"))
        .context("cannot read packaging/deb/control.in")?
        .replace("@VERSION@", &p.version)
        .replace("@ARCH@", spec.arch)
        .replace("@MAINTAINER@", spec.maintainer)
        .replace("@DEPENDS@", &depends)
        .replace("@INSTALLED_SIZE@", &size_kib.to_string());
    if let Some(ph) = leftover_placeholder(&control) {
        bail!("packaging/deb/control.in has a placeholder dist does not fill: {ph}");
    }
    let debian = staging.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    std::fs::write(debian.join("control"), control)?;
    std::fs::write(debian.join("md5sums"), md5sums)?;
    for f in ["control", "md5sums"] {
        std::fs::set_permissions(debian.join(f), std::fs::Permissions::from_mode(0o644))?;
    }
    // dpkg-deb insists on 0755 directories; every mtime is the epoch.
    for entry in walkdir::WalkDir::new(&staging) {
        let entry = entry?;
        if entry.file_type().is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        set_mtime(entry.path(), spec.epoch)?;
    }
    let output = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zgzip", "-z9"])
        .env("SOURCE_DATE_EPOCH", spec.epoch.to_string())
        .arg(&staging)
        .arg(spec.out)
        .output()
        .context("cannot run dpkg-deb (apt-get install dpkg)")?;
    if !output.status.success() {
        bail!(
            "dpkg-deb --build failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `@NAME@` left in a filled template.
fn leftover_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(i) = rest.find('@') {
        let after = &rest[i + 1..];
        let n = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        if n > 0 && after[n..].starts_with('@') {
            return Some(&rest[i..i + n + 2]);
        }
        rest = after;
    }
    None
}

fn set_mtime(path: &Path, epoch: u64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let t = libc::timespec {
        tv_sec: epoch as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: c is a valid NUL-terminated path and times a two-element array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        bail!(
            "cannot set the mtime of {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `Depends:` for the binary, from `dpkg-shlibdeps` (which maps each
/// `NEEDED` library to the installed package that provides it and the
/// lowest version with the symbols used).
fn shlibdeps(work: &Path, binary: &Path) -> Result<String> {
    let dir = work.join("shlibdeps");
    std::fs::create_dir_all(dir.join("debian"))?;
    std::fs::write(
        dir.join("debian/control"),
        "Source: mosaic\n\nPackage: mosaic\nArchitecture: any\n",
    )?;
    let out = Command::new("dpkg-shlibdeps")
        .arg("-O")
        .arg(format!("-e{}", binary.display()))
        .current_dir(&dir)
        .output()
        .context("cannot run dpkg-shlibdeps (apt-get install dpkg-dev)")?;
    if !out.status.success() {
        bail!(
            "dpkg-shlibdeps failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let deps = text
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or("")
        .trim()
        .to_string();
    if deps.is_empty() {
        bail!("dpkg-shlibdeps found no shared library for {} (a static binary goes in the archive, not the .deb)", binary.display());
    }
    Ok(deps)
}

/// DEP-5 `copyright` from `packaging/deb/copyright.in`, with the MIT text
/// (`@MIT@`) from LICENSE-MIT, indented as DEP-5 wants (blank lines as ` .`).
fn copyright(root: &Path, mit: &[u8], epoch: u64) -> Result<String> {
    let tpl = std::fs::read_to_string(root.join("packaging/deb/copyright.in"))
        .context("cannot read packaging/deb/copyright.in")?;
    let mit = String::from_utf8_lossy(mit);
    // The licence text without its title and copyright line (those are the
    // paragraph's License: and Copyright: fields).
    let body: Vec<&str> = mit
        .lines()
        .skip_while(|l| !l.starts_with("Permission is hereby granted"))
        .collect();
    if body.is_empty() {
        bail!("LICENSE-MIT does not hold the MIT licence text");
    }
    let indented: Vec<String> = body
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                " .".to_string()
            } else {
                format!(" {l}")
            }
        })
        .collect();
    let year = year_of(epoch);
    let years = if year > FIRST_YEAR {
        format!("{FIRST_YEAR}-{year}")
    } else {
        FIRST_YEAR.to_string()
    };
    let text = tpl
        .replace("@MIT@", &indented.join("\n"))
        .replace("@YEARS@", &years);
    if let Some(ph) = leftover_placeholder(&text) {
        bail!("packaging/deb/copyright.in has a placeholder dist does not fill: {ph}");
    }
    Ok(text)
}

/// One section of CHANGELOG.md.
struct Section {
    version: String,
    /// `YYYY-MM-DD`, when released.
    date: Option<String>,
    /// Lines of the section's body.
    body: Vec<String>,
}

fn sections(md: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in md.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            let (head, date) = match rest.split_once(" - ") {
                Some((h, d)) => (h, Some(d.trim().to_string())),
                None => (rest, None),
            };
            let version = head.trim().trim_start_matches('[').trim_end_matches(']');
            out.push(Section {
                version: version.to_string(),
                date,
                body: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            // Link definitions (`[0.1.0]: https://…`) are not entries.
            let t = line.trim_start();
            if t.starts_with('[') && t.contains("]: ") {
                continue;
            }
            s.body.push(line.to_string());
        }
    }
    out
}

/// A Debian changelog (deb-changelog(5)) for `version` and every release
/// before it, from CHANGELOG.md. The `Unreleased` section stands for
/// `version` when CHANGELOG.md has no section for it (a build between
/// releases). Entries are dated at midnight UTC of their release date; the
/// newest at `epoch`.
pub fn changelog(md: &str, version: &str, maintainer: &str, epoch: u64) -> Result<String> {
    let all = sections(md);
    let has_own = all.iter().any(|s| s.version == version);
    let mut out = String::new();
    let mut first = true;
    for s in &all {
        let v = if s.version.eq_ignore_ascii_case("unreleased") {
            if has_own {
                continue;
            }
            version
        } else {
            s.version.as_str()
        };
        if semver::Version::parse(v).is_err() {
            bail!(
                "CHANGELOG.md: section {:?} is not Unreleased or X.Y.Z",
                s.version
            );
        }
        let when = if first {
            epoch
        } else {
            match &s.date {
                Some(d) => date_epoch(d).with_context(|| {
                    format!("CHANGELOG.md: section {v} has date {d:?}, not YYYY-MM-DD")
                })?,
                None => epoch,
            }
        };
        first = false;
        out.push_str(&format!("mosaic ({v}) stable; urgency=medium\n\n"));
        let changes = render_changes(&s.body);
        if changes.is_empty() {
            out.push_str("  * No changes recorded.\n");
        } else {
            out.push_str(&changes);
        }
        out.push_str(&format!("\n -- {maintainer}  {}\n\n", rfc2822(when)));
    }
    if out.is_empty() {
        bail!("CHANGELOG.md has no section for {version} and no Unreleased section");
    }
    out.pop();
    Ok(out)
}

/// Markdown bullets (`- text`, continued by indented lines) under `###`
/// headings → `  Heading:` and `  * text`, wrapped at 78 columns.
fn render_changes(body: &[String]) -> String {
    let mut out = String::new();
    let mut item: Option<String> = None;
    let flush = |item: &mut Option<String>, out: &mut String| {
        if let Some(text) = item.take() {
            out.push_str(&wrap(&text, "  * ", "    ", 78));
        }
    };
    for line in body {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("### ") {
            flush(&mut item, &mut out);
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("  {}:\n", h.trim()));
        } else if let Some(b) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")) {
            flush(&mut item, &mut out);
            item = Some(b.to_string());
        } else if t.is_empty() {
            flush(&mut item, &mut out);
        } else if let Some(text) = item.as_mut() {
            text.push(' ');
            text.push_str(t);
        } else {
            out.push_str(&wrap(t, "  ", "  ", 78));
        }
    }
    flush(&mut item, &mut out);
    out
}

fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `YYYY-MM-DD` → seconds at midnight UTC.
fn date_epoch(d: &str) -> Option<u64> {
    let mut it = d.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let day: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    u64::try_from(days * 86400).ok()
}

/// Seconds since 1970 → (year, month, day) in UTC (civil_from_days).
fn civil(epoch: u64) -> (i64, i64, i64) {
    let days = (epoch / 86400) as i64;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn year_of(epoch: u64) -> i64 {
    civil(epoch).0
}

/// Seconds since 1970 → `Thu, 01 Jan 2026 00:00:00 +0000`.
fn rfc2822(epoch: u64) -> String {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    let (y, m, d) = civil(epoch);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        WD[(days.rem_euclid(7)) as usize],
        MON[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822(date_epoch("2026-05-01").unwrap() + 3661),
            "Fri, 01 May 2026 01:01:01 +0000"
        );
        assert_eq!(
            rfc2822(date_epoch("2024-02-29").unwrap()),
            "Thu, 29 Feb 2024 00:00:00 +0000"
        );
        assert!(date_epoch("2026-13-01").is_none());
        assert!(date_epoch("yesterday").is_none());
    }

    #[test]
    fn changelog_from_keep_a_changelog() {
        let md = "# Changelog\n\nintro\n\n## [Unreleased]\n\n### Added\n- one\n  two\n- three\n\n### Fixed\n- four\n\n## [0.1.0] - 2026-01-02\n\n### Added\n- first\n\n[0.1.0]: https://example.org/x\n";
        let c = changelog(md, "0.2.0", "A B <a@b.invalid>", 86400 * 3).unwrap();
        assert_eq!(
            c,
            "mosaic (0.2.0) stable; urgency=medium\n\n  Added:\n  * one two\n  * three\n\n  Fixed:\n  * four\n\n -- A B <a@b.invalid>  Sun, 04 Jan 1970 00:00:00 +0000\n\nmosaic (0.1.0) stable; urgency=medium\n\n  Added:\n  * first\n\n -- A B <a@b.invalid>  Fri, 02 Jan 2026 00:00:00 +0000\n"
        );
        // A release build: the Unreleased section (empty) is not an entry.
        let c = changelog(md, "0.1.0", "A B <a@b.invalid>", 5).unwrap();
        assert!(c.starts_with("mosaic (0.1.0)"), "{c}");
        assert!(!c.contains("(0.2.0)"), "{c}");
    }

    #[test]
    fn long_lines_wrap() {
        let long = "word ".repeat(40);
        let w = wrap(&long, "  * ", "    ", 78);
        assert!(w.lines().all(|l| l.len() <= 78), "{w}");
        assert!(w.lines().skip(1).all(|l| l.starts_with("    word")), "{w}");
    }

    #[test]
    fn maintainer_is_checked() {
        assert_eq!(check_maintainer(None).unwrap(), DEFAULT_MAINTAINER);
        assert_eq!(
            check_maintainer(Some("Ops Team <ops@example.org>".into())).unwrap(),
            "Ops Team <ops@example.org>"
        );
        for bad in [
            "ops@example.org",
            "Ops <ops@localhost>",
            "<ops@x.org>",
            "Ops <ops@x.org",
        ] {
            let e = check_maintainer(Some(bad.into())).unwrap_err().to_string();
            assert!(e.contains("MOSAIC_DEB_MAINTAINER"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn placeholders_left_are_found() {
        assert_eq!(leftover_placeholder("a@b.invalid @X@"), Some("@X@"));
        assert_eq!(leftover_placeholder("Maintainer: A <a@b.invalid>"), None);
    }
}
