//! Dynamic shell completion in the real shells: `mosaic completions SHELL`
//! is sourced (bash, fish) or autoloaded from `$fpath` as `_mosaic` (zsh,
//! as the .deb installs it) and TAB must offer what the throw-away home
//! holds: the roster's agent names (and another roster's with `--roster`),
//! the framework's presets, the home's generations, roster files, docs
//! topics and the commands `mosaic man` has pages for. bash: the registered
//! function is called with `COMP_WORDS`/`COMP_CWORD` set and `COMPREPLY`
//! read; zsh: an interactive zsh in a pty (`zsh/zpty`) with `compadd`
//! wrapped to print its matches; fish: `complete -C`. A missing shell
//! skips, or fails under `MOSAIC_REQUIRE_REAL=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throw-away HOME, framework home (installed, so it has generation 1),
/// a second roster, and a PATH whose `mosaic` is the binary under test.
struct Site {
    dir: tempfile::TempDir,
}

const ROSTER: &str = "\
version: 1
agents:
  - name: alpha-coder
    runtime: claude
    class: implementer
  - name: beta-review
    runtime: codex
";

const OTHER: &str = "\
version: 1
agents:
  - name: gamma-solo
    runtime: pi
";

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let s = Site { dir };
        for d in ["bin", "user", "home/fleet", "state"] {
            std::fs::create_dir_all(s.path(d)).unwrap();
        }
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("mosaic"), s.path("bin/mosaic"))
            .unwrap();
        let o = s
            .cmd(&assert_cmd::cargo::cargo_bin("mosaic"))
            .arg("install")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        std::fs::write(s.path("home/fleet/roster.yaml"), ROSTER).unwrap();
        std::fs::write(s.path("other.yaml"), OTHER).unwrap();
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `program` with only this site's environment.
    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        common::scrub_env(&mut c);
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("HOME", self.path("user"))
            .env("XDG_CONFIG_HOME", self.path("user/.config"))
            .env("XDG_DATA_HOME", self.path("user/.local/share"))
            .env("XDG_CACHE_HOME", self.path("user/.cache"))
            .env("MOSAIC_HOME", self.path("home"))
            .env("MOSAIC_STATE_DIR", self.path("state"))
            .env_remove("MOSAIC_COMPLETE")
            .current_dir(self.dir.path());
        c
    }

    /// What `mosaic completions SHELL` prints (through the site's PATH).
    fn script(&self, shell: &str) -> String {
        let o = self
            .cmd(&self.path("bin/mosaic"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        String::from_utf8(o.stdout).unwrap()
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shell(name: &str) -> Option<PathBuf> {
    let found = common::which(name);
    if found.is_none() {
        common::skip(&format!("{name} is not installed"));
    }
    found
}

/// The cases every shell must get right: (command line before the cursor,
/// candidates that must be offered, candidates that must not).
fn cases(site: &Site) -> Vec<(String, Vec<String>, Vec<String>)> {
    let other = site.path("other.yaml");
    let roster = site.path("home/fleet/roster.yaml").display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            "mosaic fleet start ".into(),
            vec!["alpha-coder", "beta-review"],
            vec!["gamma-solo"],
        ),
        (
            "mosaic agent send ".into(),
            vec!["alpha-coder", "beta-review"],
            vec![],
        ),
        (
            "mosaic agent tail al".into(),
            vec!["alpha-coder"],
            vec!["beta-review"],
        ),
        (
            format!("mosaic --roster {} agent logs ", other.display()),
            vec!["gamma-solo"],
            vec!["alpha-coder"],
        ),
        (
            format!("mosaic fleet stop --roster={} ", other.display()),
            vec!["gamma-solo"],
            vec!["alpha-coder"],
        ),
        (
            "mosaic fleet init --preset ".into(),
            vec!["minimal", "team", "pair"],
            vec![],
        ),
        ("mosaic rollback ".into(), vec!["1"], vec![]),
        (
            "mosaic docs ".into(),
            vec!["fleet", "install-and-update"],
            vec![],
        ),
        (
            "mosaic man fleet ".into(),
            vec!["ps", "deploy"],
            vec!["send"],
        ),
        (
            "mosaic man ".into(),
            vec!["fleet", "agent", "install"],
            vec!["help"],
        ),
        // Roster files: the home's fleet/*.yaml (absolute), and files here.
        (
            "mosaic fleet ps --roster ".into(),
            vec![roster.as_str(), "other.yaml"],
            vec![],
        ),
    ];
    cases
        .into_iter()
        .map(|(line, want, not)| (line, s(&want), s(&not)))
        .collect()
}

fn check(shell: &str, line: &str, got: &[String], want: &[String], not: &[String]) {
    for w in want {
        assert!(
            got.iter().any(|g| g == w),
            "{shell}: `{line}<TAB>` did not offer {w}; got {got:?}"
        );
    }
    for n in not {
        assert!(
            !got.iter().any(|g| g == n),
            "{shell}: `{line}<TAB>` offered {n}; got {got:?}"
        );
    }
}

#[test]
fn bash_offers_agents_presets_generations_and_roster_agents() {
    let Some(bash) = shell("bash") else { return };
    let site = Site::new();
    let script = site.path("mosaic.bash");
    std::fs::write(&script, site.script("bash")).unwrap();
    for (line, want, not) in cases(&site) {
        // COMP_WORDS as bash splits the line; the word at the cursor last.
        let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.ends_with(' ') {
            words.pop();
            words.push(String::new());
        }
        let words: Vec<String> = words
            .iter()
            .flat_map(|w| match w.split_once('=') {
                Some((a, b)) if a.starts_with("--") => {
                    vec![a.to_string(), "=".into(), b.to_string()]
                }
                _ => vec![w.clone()],
            })
            .collect();
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cword = words.len() - 1;
        let prog = format!(
            "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
             _clap_complete_mosaic mosaic '{}' '{}' 2>/dev/null\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script.display(),
            quoted.join(" "),
            words[cword],
            words[cword.saturating_sub(1)],
        );
        let o = site
            .cmd(&bash)
            .args(["--norc", "--noprofile", "-c", &prog])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        let got: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        check("bash", &line, &got, &want, &not);
    }
}

#[test]
fn zsh_autoloaded_from_fpath_offers_them_on_the_first_tab() {
    let Some(zsh) = shell("zsh") else { return };
    let site = Site::new();
    std::fs::create_dir_all(site.path("zfunc")).unwrap();
    std::fs::write(site.path("zfunc/_mosaic"), site.script("zsh")).unwrap();
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/completions_support/zsh-capture.zsh");
    for (line, want, not) in cases(&site) {
        let mut c = site.cmd(&zsh);
        c.arg("-f")
            .arg(&capture)
            .env("ZFUNC", site.path("zfunc"))
            .env("LINE", &line);
        let o = common::run_with_timeout(&mut c, std::time::Duration::from_secs(30)).unwrap();
        let text = String::from_utf8_lossy(&o.stdout).replace('\r', "");
        assert!(
            text.contains("DONE=COMPLETION"),
            "zsh: the completion of `{line}<TAB>` did not finish:\n{text}"
        );
        // Every batch of matches the completion of the word added.
        let mut got = Vec::new();
        for part in text.split("HITS=").skip(1) {
            if let Some((hits, _)) = part.split_once("=END") {
                got.extend(hits.split('|').map(str::to_string));
            }
        }
        assert!(
            !got.is_empty(),
            "zsh: no matches for `{line}<TAB>`:\n{text}"
        );
        check("zsh", &line, &got, &want, &not);
    }
}

#[test]
fn fish_offers_them_with_descriptions() {
    let Some(fish) = shell("fish") else { return };
    let site = Site::new();
    let script = site.path("mosaic.fish");
    std::fs::write(&script, site.script("fish")).unwrap();
    for (line, want, not) in cases(&site) {
        let prog = format!("source {}; complete -C '{line}'", script.display());
        let o = site
            .cmd(&fish)
            .args(["--no-config", "-c", &prog])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let got: Vec<String> = out
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect();
        check("fish", &line, &got, &want, &not);
        if line == "mosaic fleet start " {
            assert!(out.contains("alpha-coder\tclaude, implementer"), "{out}");
        }
    }
}

/// The registration scripts ask the binary (MOSAIC_COMPLETE=SHELL), so they hold no
/// agent name of their own; a home without a roster offers no names and no error.
#[test]
fn scripts_are_registrations_and_a_missing_roster_offers_nothing() {
    let site = Site::new();
    for sh in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let s = site.script(sh);
        assert!(s.contains("MOSAIC_COMPLETE"), "{sh}: {s}");
        assert!(!s.contains("alpha-coder"), "{sh}");
    }
    assert!(site.script("zsh").starts_with("#compdef mosaic"));
    std::fs::remove_file(site.path("home/fleet/roster.yaml")).unwrap();
    let o = site
        .cmd(&site.path("bin/mosaic"))
        .env("MOSAIC_COMPLETE", "fish")
        .args(["--", "mosaic", "fleet", "start", ""])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("alpha-coder") && out.contains("--roster"),
        "{out}"
    );
    assert!(o.stderr.is_empty(), "{}", show(&o));
    // clap's generic COMPLETE variable is not ours: a normal run stays one.
    let o = site
        .cmd(&site.path("bin/mosaic"))
        .env("COMPLETE", "bash")
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("mosaic "),
        "{}",
        show(&o)
    );
}
