//! `mosaic man` and `mosaic docs` against the binary: one man page per
//! command (nested ones too), each clean under `man --warnings` and
//! `groff -ww` (what lintian's manpage-has-errors-from-man runs), with an
//! EXIT STATUS section that is `--help`'s exit-code list, and SEE ALSO
//! entries that all exist; `mosaic docs TOPIC` prints docs/TOPIC.md, and
//! `--help` names where the installed copies are. `man`/`groff` missing
//! skips, or fails under `MOSAIC_REQUIRE_REAL=1`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn mosaic() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("mosaic"));
    common::scrub_env(&mut c);
    c.env_remove("MOSAIC_COMPLETE")
        .env("SOURCE_DATE_EPOCH", "1767323096");
    c
}

fn run(args: &[&str]) -> Output {
    mosaic().args(args).output().unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `mosaic man --out DIR`: the pages written, by name.
fn pages(dir: &Path) -> BTreeSet<String> {
    let o = run(&["man", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", show(&o));
    let listed: BTreeSet<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, on_disk);
    listed
}

/// The rendered text of a page (`man -l`), plain.
fn rendered(page: &Path) -> String {
    let o = Command::new("man")
        .args(["--nh", "--nj", "-l", "-Tutf8", "-E", "UTF-8"])
        .arg(page)
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    // Drop overstrike (bold/underline) sequences.
    let mut out = String::new();
    let mut chars = String::from_utf8_lossy(&o.stdout)
        .chars()
        .collect::<Vec<_>>()
        .into_iter()
        .peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        out.push(c);
    }
    out.replace(['\u{2010}', '\u{2212}'], "-")
}

#[test]
fn a_page_per_command_clean_with_exit_status_and_see_also_that_exist() {
    if common::which("man").is_none() || common::which("groff").is_none() {
        common::skip("man or groff is not installed (apt-get install man-db groff-base)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let names = pages(dir.path());
    for want in [
        "mosaic.1",
        "mosaic-install.1",
        "mosaic-rollback.1",
        "mosaic-fleet.1",
        "mosaic-fleet-ps.1",
        "mosaic-fleet-add.1",
        "mosaic-agent.1",
        "mosaic-agent-send.1",
        "mosaic-man.1",
        "mosaic-docs.1",
        "mosaic-completions.1",
    ] {
        assert!(names.contains(want), "{want} not written: {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");

    // The exit codes, as `--help` lists them.
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    let codes_line = help
        .split("Exit codes: ")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .replace('\n', " ");
    let codes: Vec<(String, String)> = codes_line
        .trim_end_matches('.')
        .split("; ")
        .map(|c| {
            let (n, what) = c.split_once(' ').unwrap();
            (n.to_string(), what.to_string())
        })
        .collect();
    assert_eq!(codes.len(), 9, "{codes:?}");

    for name in &names {
        let page = dir.path().join(name);
        // man's own check (lintian's manpage-has-errors-from-man) and groff's.
        let o = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{name}: {}",
            show(&o)
        );
        let o = Command::new("groff")
            .args(["-ww", "-man", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{name}: {}",
            show(&o)
        );

        let text = rendered(&page);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let exit = flat
            .split("EXIT STATUS")
            .nth(1)
            .unwrap_or_else(|| panic!("{name} has no EXIT STATUS:\n{text}"));
        for (n, what) in &codes {
            let what = what.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                exit.contains(&format!("{n} {what}")),
                "{name}: exit {n} {what:?} missing:\n{exit}"
            );
        }
        assert!(!flat.contains("EXTRA"), "{name}");
        let see = flat
            .split("SEE ALSO")
            .nth(1)
            .unwrap_or_else(|| panic!("{name} has no SEE ALSO:\n{text}"));
        assert!(
            see.contains("/usr/share/doc/mosaic/") && see.contains("mosaic docs TOPIC"),
            "{name}: {see}"
        );
        // Every NAME(1) a page mentions is a page that was written.
        for word in flat.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some(stem) = word.strip_suffix("(1)") {
                if stem.starts_with("mosaic") {
                    assert!(
                        names.contains(&format!("{stem}.1")),
                        "{name} refers to {stem}(1), which is not generated"
                    );
                }
            }
        }
        if name != "mosaic.1" {
            assert!(see.contains("mosaic(1)"), "{name}: {see}");
        }
    }
    let fleet = rendered(&dir.path().join("mosaic-fleet.1"));
    assert!(fleet.contains("mosaic-fleet-ps(1)"), "{fleet}");

    // `mosaic man WORDS` prints the same page as the file.
    let o = run(&["man", "fleet", "ps"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(o.stdout == std::fs::read(dir.path().join("mosaic-fleet-ps.1")).unwrap());
    let o = run(&["man"]);
    assert!(o.stdout == std::fs::read(dir.path().join("mosaic.1")).unwrap());
}

#[test]
fn man_and_docs_refuse_unknown_names_in_one_line() {
    for (args, names) in [
        (&["man", "fleet", "nope"][..], "ps"),
        (&["man", "install", "x"][..], "mosaic man install"),
        (&["docs", "nope"][..], "install-and-update"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn docs_prints_the_shipped_pages_and_help_says_where_they_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = String::from_utf8(run(&["docs"]).stdout).unwrap();
    let topics: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    for t in [
        "install-and-update",
        "fleet",
        "runtimes",
        "migrations",
        "self-update",
        "install-sh",
    ] {
        assert!(topics.contains(&t), "{t} not listed:\n{list}");
    }
    for t in &topics {
        let o = run(&["docs", t]);
        assert!(o.status.success(), "{}", show(&o));
        assert!(
            o.stdout == std::fs::read(root.join(format!("docs/{t}.md"))).unwrap(),
            "{t}"
        );
    }
    let o = run(&["--json", "docs", "fleet"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["topic"], "fleet");
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    assert!(!help.contains("docs/install-and-update.md"), "{help}");
    for want in [
        "mosaic docs TOPIC",
        "/usr/share/doc/mosaic/",
        "docs/ of the release archive",
        "man mosaic-fleet-ps",
    ] {
        assert!(
            help.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(want),
            "{want:?} not in --help:\n{help}"
        );
    }
}
