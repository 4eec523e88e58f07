//! `mosaic doctor`: one line per check of what the fleet needs on this
//! machine — linger (`loginctl show-user`), a reachable systemd user manager,
//! the units' home (`%E/mosaic`, from XDG_CONFIG_HOME) being this home, the
//! tmux version, and every local roster runtime on PATH with its version.
//! Each line is `ok` or `problem`, a problem with its fix; exit 1 on any
//! problem; `--json` is one versioned document. argv are pure functions run
//! through `mosaic_fleet::runner` (with its deadlines).

use crate::cli::Global;
use crate::fleet::cli::RosterArg;
use crate::fleet::Ctx;
use crate::report::Printer;
use mosaic_engine::error::Result;
use mosaic_fleet::runner::{self, Exec};
use mosaic_fleet::systemd;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `--json` document's version.
pub const VERSION: u32 = 1;

/// The oldest tmux the fleet supports (`new-session -e`, `pipe-pane -o`,
/// `-F` formats it reads).
pub const MIN_TMUX: (u32, u32) = (3, 0);

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`linger`, `user-manager`, `units-home`, `tmux`,
    /// `runtime:NAME`).
    pub check: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (problems only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: &str, detail: String) -> Check {
    Check {
        check: check.into(),
        ok: true,
        detail,
        fix: None,
    }
}

fn problem(check: &str, detail: String, fix: String) -> Check {
    Check {
        check: check.into(),
        ok: false,
        detail,
        fix: Some(fix),
    }
}

/// `loginctl show-user USER --property=Linger`.
pub fn linger_argv(user: &str) -> Vec<String> {
    ["loginctl", "show-user", user, "--property=Linger"]
        .map(String::from)
        .to_vec()
}

/// `tmux -V`.
pub fn tmux_version_argv() -> Vec<String> {
    vec!["tmux".into(), "-V".into()]
}

/// `PROGRAM --version`.
pub fn version_argv(program: &Path) -> Vec<String> {
    vec![program.to_string_lossy().into_owned(), "--version".into()]
}

/// `Linger=yes` → `Some(true)`, `Linger=no` → `Some(false)`.
pub fn parse_linger(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Linger="))
        .map(|v| v.trim() == "yes")
}

/// `tmux 3.3a` → `(3, 3)`; `tmux next-3.4` → `(3, 4)`.
pub fn parse_tmux_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().nth(1)?;
    let v = v.trim_start_matches(|c: char| !c.is_ascii_digit());
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor: String = it
        .next()
        .unwrap_or("0")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().unwrap_or(0)))
}

/// `name` on `path` (a `PATH` value), when it is an executable file; a
/// name with a `/` is taken as is.
pub fn find_on_path(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return exe(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| exe(p))
}

fn first_line(out: &std::process::Output) -> String {
    let text = if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    };
    String::from_utf8_lossy(text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

fn run(argv: &[String]) -> std::result::Result<std::process::Output, String> {
    runner::RealExec
        .run(
            argv,
            None,
            Duration::from_secs(10).min(runner::default_deadline()),
        )
        .map_err(|e| e.to_string())
}

fn check_linger(user: &str) -> Check {
    let fix = format!(
        "loginctl enable-linger {user} (so the fleet outlives your login and starts at boot)"
    );
    match run(&linger_argv(user)) {
        Ok(out) if out.status.success() => {
            match parse_linger(&String::from_utf8_lossy(&out.stdout)) {
                Some(true) => ok("linger", format!("linger is on for {user}")),
                Some(false) => problem("linger", format!("linger is off for {user}"), fix),
                None => problem(
                    "linger",
                    "loginctl did not say whether linger is on".into(),
                    fix,
                ),
            }
        }
        Ok(out) => problem(
            "linger",
            format!("loginctl show-user {user} failed: {}", first_line(&out)),
            fix,
        ),
        Err(e) => problem("linger", format!("cannot ask logind: {e}"), fix),
    }
}

fn check_manager() -> Check {
    match systemd::check_manager() {
        Ok(()) => ok("user-manager", "the systemd user manager answers".into()),
        Err(e) => problem(
            "user-manager",
            e.to_string(),
            "log in with a user session (not `su`), or run `loginctl enable-linger $USER`; check XDG_RUNTIME_DIR".into(),
        ),
    }
}

fn check_units_home(home: &Path, units_home: &Path) -> Check {
    let same = |a: &Path, b: &Path| {
        std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf())
            == std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf())
    };
    if same(home, units_home) {
        ok(
            "units-home",
            format!(
                "the units' home %E/mosaic is this home ({})",
                home.display()
            ),
        )
    } else {
        problem(
            "units-home",
            format!(
                "the units run the home at %E/mosaic = {}, not this home {}",
                units_home.display(),
                home.display()
            ),
            format!(
                "use `--home {}`, or move this home there (the units' %E is XDG_CONFIG_HOME of the user manager, else ~/.config)",
                units_home.display()
            ),
        )
    }
}

fn check_tmux() -> Check {
    let fix = format!(
        "install tmux {}.{} or newer, or set MOSAIC_TMUX to its path",
        MIN_TMUX.0, MIN_TMUX.1
    );
    match run(&tmux_version_argv()) {
        Ok(out) if out.status.success() => {
            let line = first_line(&out);
            match parse_tmux_version(&line) {
                Some(v) if v >= MIN_TMUX => ok("tmux", line),
                Some(_) => problem("tmux", format!("{line} is too old"), fix),
                None => problem("tmux", format!("unknown tmux version {line:?}"), fix),
            }
        }
        Ok(out) => problem("tmux", format!("tmux -V failed: {}", first_line(&out)), fix),
        Err(e) => problem("tmux", e, fix),
    }
}

fn check_runtime(runtime: &str, program: &str, agents: &[String], path: &str) -> Check {
    let name = format!("runtime:{runtime}");
    let Some(exe) = find_on_path(program, path) else {
        return problem(
            &name,
            format!("{program} (for {}) is not on PATH", agents.join(", ")),
            format!(
                "install {runtime}, or set MOSAIC_AGENT_COMMAND in H/fleet/agents/NAME.env to its full path"
            ),
        );
    };
    match run(&version_argv(&exe)) {
        Ok(out) if out.status.success() => {
            ok(&name, format!("{} {}", exe.display(), first_line(&out)))
        }
        Ok(out) => problem(
            &name,
            format!("{} --version failed: {}", exe.display(), first_line(&out)),
            format!("run `{} --version` to see why", exe.display()),
        ),
        Err(e) => problem(
            &name,
            format!("{} --version: {e}", exe.display()),
            format!("run `{} --version` to see why", exe.display()),
        ),
    }
}

/// Runs `mosaic doctor`; exit 1 on any problem.
pub fn doctor(g: &Global, r: &RosterArg, p: &Printer) -> Result<i32> {
    let ctx = Ctx::new(g, r)?;
    let user = mosaic_fleet::roster::user_name();
    let mut checks = vec![
        check_linger(&user),
        check_manager(),
        check_units_home(&ctx.paths.home, &ctx.paths.units_home),
        check_tmux(),
    ];
    if ctx.roster_path.is_file() {
        match ctx.roster() {
            Ok(roster) => {
                let path = std::env::var("PATH").unwrap_or_default();
                // One check per program: the runtime's, or the declared command's.
                let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
                let mut order = Vec::new();
                let mut users: std::collections::BTreeMap<(String, String), Vec<String>> =
                    Default::default();
                for a in roster.agents.iter().filter(|a| a.is_local()) {
                    let env = ctx.env_file(a.name.as_str());
                    let declared = std::fs::read_to_string(&env).ok().and_then(|t| {
                        mosaic_fleet::envfile::parse(&t)
                            .get("MOSAIC_AGENT_COMMAND")
                            .cloned()
                    });
                    let program = match declared.as_deref().map(str::trim) {
                        Some(c) if !c.is_empty() => declared_word(c),
                        _ => a.runtime.program().to_string(),
                    };
                    let key = (a.runtime.program().to_string(), program);
                    if seen.insert(key.clone()) {
                        order.push(key.clone());
                    }
                    users
                        .entry(key)
                        .or_default()
                        .push(a.name.as_str().to_string());
                }
                for key in order {
                    checks.push(check_runtime(&key.0, &key.1, &users[&key], &path));
                }
            }
            Err(e) => checks.push(problem(
                "roster",
                e.to_string(),
                format!(
                    "fix {} (mosaic fleet ps names the field)",
                    ctx.roster_path.display()
                ),
            )),
        }
    } else {
        checks.push(ok(
            "roster",
            format!(
                "no roster at {} (no runtimes to check)",
                ctx.roster_path.display()
            ),
        ));
    }
    let bad = checks.iter().filter(|c| !c.ok).count();
    if p.json {
        p.doc(
            crate::report::Doc::Doctor,
            &serde_json::json!({"version": VERSION, "ok": bad == 0, "checks": checks}),
        );
    } else {
        for c in &checks {
            if c.ok {
                p.line(&format!(
                    "{} {}: {}",
                    p.paint("32", "ok"),
                    c.check,
                    c.detail
                ));
            } else {
                p.out(&format!(
                    "{} {}: {}; fix: {}",
                    p.paint("31", "problem"),
                    c.check,
                    c.detail,
                    c.fix.as_deref().unwrap_or("")
                ));
            }
        }
    }
    Ok(if bad == 0 { 0 } else { 1 })
}

/// The program word of a declared command, as `fleet ps` expects it but
/// kept whole (a path stays a path, so it can be checked as is).
fn declared_word(cmd: &str) -> String {
    let last = cmd
        .split("&&")
        .flat_map(|s| s.split(';'))
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.split_whitespace().next() != Some("cd"))
        .last()
        .unwrap_or(cmd);
    const LAUNCHERS: &[&str] = &[
        "exec", "env", "nice", "nohup", "ionice", "setsid", "stdbuf", "command",
    ];
    let mut after = false;
    last.split_whitespace()
        .find(|w| {
            let assignment = w.contains('=') && !w.starts_with(['/', '~', '.']);
            let launcher = LAUNCHERS.contains(w);
            let option = after && (w.starts_with('-') || w.chars().all(|c| c.is_ascii_digit()));
            after |= launcher;
            !launcher && !assignment && !option
        })
        .unwrap_or(last)
        .trim_matches(['"', '\''])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_and_parsing() {
        assert_eq!(
            linger_argv("ops"),
            ["loginctl", "show-user", "ops", "--property=Linger"]
        );
        assert_eq!(tmux_version_argv(), ["tmux", "-V"]);
        assert_eq!(version_argv(Path::new("/bin/pi")), ["/bin/pi", "--version"]);
        assert_eq!(parse_linger("Linger=yes\n"), Some(true));
        assert_eq!(parse_linger("Linger=no\n"), Some(false));
        assert_eq!(parse_linger(""), None);
        assert_eq!(parse_tmux_version("tmux 3.3a"), Some((3, 3)));
        assert_eq!(parse_tmux_version("tmux next-3.4"), Some((3, 4)));
        assert_eq!(parse_tmux_version("tmux 2.9"), Some((2, 9)));
        assert_eq!(parse_tmux_version("garbage"), None);
        assert_eq!(declared_word("cd /w && exec claude --x"), "claude");
        assert_eq!(
            declared_word("env A=1 nice -n 5 /opt/bin/codex"),
            "/opt/bin/codex"
        );
        assert_eq!(declared_word("node /x/pi-coding-agent/dist/cli.js"), "node");
    }

    #[test]
    fn path_lookup() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("rt");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.path().join("plain"), "").unwrap();
        let path = d.path().display().to_string();
        assert_eq!(find_on_path("rt", &path), Some(exe.clone()));
        assert_eq!(find_on_path("plain", &path), None);
        assert_eq!(find_on_path("nope", &path), None);
        assert_eq!(find_on_path(exe.to_str().unwrap(), ""), Some(exe));
    }
}
