//! Fleet commands without a systemd user manager: roster init/add/remove,
//! validation, `fleet add --host/--ssh/--command`, CRLF rosters, one holder
//! for a second roster, `fleet install`'s env-file merge and unit copies (systemctl
//! replaced by a logging stand-in), one-line errors, and the constant
//! subprocess count of `fleet ps` (real tmux, private socket dir).

mod common;
mod json_contract;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn mosaic_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("mosaic")
}

/// A throw-away user: HOME, XDG_CONFIG_HOME, a fake systemctl that logs.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::Builder::new()
            .prefix("mosaic-fleet-cli")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join(".config")).unwrap();
        let fake = dir.path().join("fake-systemctl");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\nexit 0\n",
                dir.path().join("systemctl.log").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        Home { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The framework home H = HOME/.config/mosaic.
    fn h(&self) -> PathBuf {
        self.root().join(".config/mosaic")
    }

    fn systemctl_log(&self) -> String {
        std::fs::read_to_string(self.root().join("systemctl.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(mosaic_bin());
        common::scrub_env(&mut c)
            .env("HOME", self.root())
            .env("XDG_CONFIG_HOME", self.root().join(".config"))
            .env("XDG_STATE_HOME", self.root().join(".local/state"))
            .env("MOSAIC_SYSTEMCTL", self.root().join("fake-systemctl"))
            .env("NO_COLOR", "1")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run_with_timeout(&mut self.cmd(args), Duration::from_secs(60)).unwrap()
    }

    fn install_framework(&self) {
        let out = self.run(&["--home", self.h().to_str().unwrap(), "install"]);
        assert!(out.status.success(), "mosaic install: {}", text(&out));
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(common::framework_dir().join(format!("fleet/examples/{name}.yaml")))
        .unwrap()
}

#[test]
fn init_add_remove_keep_the_operators_text() {
    let home = Home::new();
    let roster = home.h().join("fleet/roster.yaml");
    let out = home.run(&["fleet", "init", "--preset", "pair"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&roster).unwrap(), example("pair"));

    // Never overwrites.
    std::fs::write(&roster, format!("# mine\n{}", example("pair"))).unwrap();
    let out = home.run(&["fleet", "init", "--preset", "minimal"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("already exists"), "{}", text(&out));
    assert!(std::fs::read_to_string(&roster)
        .unwrap()
        .starts_with("# mine\n"));

    let out = home.run(&[
        "fleet",
        "add",
        "research0",
        "--runtime",
        "pi",
        "--class",
        "research",
        "--model",
        "m-1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let after_add = std::fs::read_to_string(&roster).unwrap();
    assert_eq!(
        after_add,
        format!(
            "# mine\n{}  - name: research0\n    runtime: pi\n    class: research\n    model_hint: m-1\n",
            example("pair")
        )
    );

    let out = home.run(&["fleet", "add", "research0", "--runtime", "pi"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("already"), "{}", text(&out));

    let out = home.run(&["fleet", "remove", "coder0"]);
    assert!(out.status.success(), "{}", text(&out));
    let after_rm = std::fs::read_to_string(&roster).unwrap();
    let expected = format!("# mine\n{}", example("pair")).replace(
        "  - name: coder0\n    runtime: codex\n    class: implementer\n    model_hint: gpt-5\n",
        "",
    )
        + "  - name: research0\n    runtime: pi\n    class: research\n    model_hint: m-1\n";
    assert_eq!(after_rm, expected);
    assert!(after_rm.contains("# pair: one implementer and one reviewer"));

    // Each edit is in the fleet-edit history: undo brings the text before
    // `remove` back, a second undo the one before `add`.
    let out = home.run(&["fleet", "undo"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&roster).unwrap(), after_add);
    let out = home.run(&["fleet", "undo"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&roster).unwrap(),
        format!("# mine\n{}", example("pair"))
    );
    // Fleet edits never count as generations: there is none to roll back here.
    let out = home.run(&["rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    std::fs::write(&roster, &after_rm).unwrap();

    // A roster that is a symlink is never replaced.
    let real = home.root().join("dotfiles-roster.yaml");
    std::fs::rename(&roster, &real).unwrap();
    std::os::unix::fs::symlink(&real, &roster).unwrap();
    let out = home.run(&["fleet", "remove", "research0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("is a symlink"), "{}", text(&out));
    assert!(std::fs::symlink_metadata(&roster)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), after_rm);
    std::fs::remove_file(&roster).unwrap();
    std::fs::rename(&real, &roster).unwrap();

    let out = home.run(&["fleet", "remove", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown agent \"nobody\""),
        "{}",
        text(&out)
    );

    let out = home.run(&["fleet", "add", "Bad/Name", "--runtime", "pi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid agent name"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_roster_is_never_acted_on() {
    let home = Home::new();
    home.install_framework();
    let roster = home.h().join("fleet/roster.yaml");
    std::fs::create_dir_all(roster.parent().unwrap()).unwrap();
    let bad = "version: 1\ntmux: {socket_name: mosaic-fleet}\nagents:\n  - name: coder0\n    runtme: codex\n";
    std::fs::write(&roster, bad).unwrap();
    for args in [
        &["fleet", "install"][..],
        &["fleet", "start"],
        &["fleet", "ps"],
        &["fleet", "add", "x", "--runtime", "pi"],
        &["agent", "tail", "coder0"],
    ] {
        let out = home.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("roster.yaml:5:") && err.contains("runtme"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&roster).unwrap(), bad);
    assert!(!home.h().join("fleet/agents").exists());
    assert_eq!(home.systemctl_log(), "");
}

#[test]
fn install_merges_env_files_and_installs_units() {
    let home = Home::new();
    home.install_framework();
    let h = home.h();
    let out = home.run(&["fleet", "init", "--preset", "pair"]);
    assert!(out.status.success(), "{}", text(&out));
    let agents = h.join("fleet/agents");
    std::fs::create_dir_all(&agents).unwrap();
    let env = agents.join("coder0.env");
    std::fs::write(
        &env,
        "# my note\nMOSAIC_AGENT_WORKDIR=/srv/old\nMOSAIC_AGENT_COMMAND=/opt/canary.sh --fast\nMOSAIC_HEARTBEAT_INTERVAL=5\n# site note\n",
    )
    .unwrap();

    let out = home.run(&["fleet", "install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stderr(&out).contains("warning"), "{}", text(&out));
    let hs = h.display().to_string();
    let tenant = std::env::var("USER").ok().filter(|u| !u.is_empty());
    let coder = std::fs::read_to_string(&env).unwrap();
    let expect_prefix = format!(
        "# my note\nMOSAIC_AGENT_WORKDIR=~/src\nMOSAIC_AGENT_COMMAND=/opt/canary.sh --fast\nMOSAIC_HEARTBEAT_INTERVAL=5\n# site note\nMOSAIC_HOME={hs}\nMOSAIC_AGENT_NAME=coder0\nMOSAIC_AGENT_RUNTIME=codex\nMOSAIC_AGENT_CLASS=implementer\nMOSAIC_AGENT_MODEL=gpt-5\nMOSAIC_TMUX_SOCKET=mosaic-fleet\nMOSAIC_TENANT_ID="
    );
    assert!(coder.starts_with(&expect_prefix), "{coder}");
    if let Some(t) = &tenant {
        assert!(
            coder.ends_with(&format!(
                "MOSAIC_TENANT_ID={t}\nMOSAIC_AGENT_RESTART=on-failure\n"
            )),
            "{coder}"
        );
    }
    let reviewer = std::fs::read_to_string(agents.join("reviewer0.env")).unwrap();
    assert!(
        reviewer.contains("\nMOSAIC_AGENT_MODEL=\n"),
        "empty values are bare: {reviewer}"
    );
    assert!(
        reviewer.contains("\nMOSAIC_HEARTBEAT_INTERVAL=15\n"),
        "{reviewer}"
    );
    assert!(
        reviewer.starts_with("# mosaic fleet agent reviewer0"),
        "{reviewer}"
    );
    let holder = std::fs::read_to_string(agents.join("_holder.env")).unwrap();
    assert!(
        holder.ends_with("MOSAIC_TMUX_SOCKET=mosaic-fleet\nMOSAIC_HOLDER_SESSION=_holder\n"),
        "{holder}"
    );
    for f in ["coder0.env", "reviewer0.env", "_holder.env"] {
        let mode = std::fs::metadata(agents.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let units = home.root().join(".config/systemd/user");
    for u in ["mosaic-tmux-holder.service", "mosaic-agent@.service"] {
        assert_eq!(
            std::fs::read(units.join(u)).unwrap(),
            std::fs::read(h.join("systemd/user").join(u)).unwrap(),
            "{u}"
        );
    }
    let log = home.systemctl_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("--property=Version"))
        .collect();
    assert_eq!(
        lines,
        [
            "--user daemon-reload",
            "--user enable mosaic-tmux-holder.service mosaic-agent@coder0.service mosaic-agent@reviewer0.service"
        ],
        "{log}"
    );

    // The env file it rewrote is in a backup, byte for byte.
    let backups = home.root().join(".local/state/mosaic/backups");
    let found = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|b| !b.file_name().unwrap().to_string_lossy().starts_with('.'))
        .filter_map(|b| mosaic_engine::txn::backup_copy(&b, "fleet/agents/coder0.env").ok())
        .any(|copy| {
            std::fs::read_to_string(copy).is_ok_and(|s| {
                s == "# my note\nMOSAIC_AGENT_WORKDIR=/srv/old\nMOSAIC_AGENT_COMMAND=/opt/canary.sh --fast\nMOSAIC_HEARTBEAT_INTERVAL=5\n# site note\n"
            })
        });
    assert!(
        found,
        "the replaced env file is backed up under {}",
        backups.display()
    );

    // A second install changes nothing in the env files.
    let before = std::fs::read_to_string(&env).unwrap();
    let out = home.run(&["fleet", "install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&env).unwrap(), before);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unchanged"),
        "{}",
        text(&out)
    );

    // A home the units cannot find is warned about.
    let other = home.root().join("elsewhere");
    let out = home.run(&["--home", other.to_str().unwrap(), "install"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::create_dir_all(other.join("fleet")).unwrap();
    std::fs::write(other.join("fleet/roster.yaml"), example("minimal")).unwrap();
    let out = home.run(&["--home", other.to_str().unwrap(), "fleet", "install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("%E/mosaic"), "{}", text(&out));
}

#[test]
fn missing_things_get_one_clear_line() {
    let home = Home::new();
    // Missing roster.
    let out = home.run(&["fleet", "ps"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("no roster at") && stderr(&out).contains("fleet init"),
        "{}",
        text(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);

    home.install_framework();
    assert!(home
        .run(&["fleet", "init", "--preset", "pair"])
        .status
        .success());

    // Unknown agent.
    let out = home.run(&["agent", "send", "nobody", "-m", "hi"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("unknown agent \"nobody\""),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).contains("coder0, reviewer0"), "{}", text(&out));

    // tmux missing.
    let mut c = home.cmd(&["fleet", "ps"]);
    c.env("MOSAIC_TMUX", "/nonexistent/tmux");
    let out = common::run_with_timeout(&mut c, Duration::from_secs(30)).unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("/nonexistent/tmux not found")
            && stderr(&out).contains("MOSAIC_TMUX"),
        "{}",
        text(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", text(&out));

    // systemctl missing.
    assert!(home.run(&["fleet", "install"]).status.success());
    let mut c = home.cmd(&["fleet", "start"]);
    c.env("MOSAIC_SYSTEMCTL", "/nonexistent/systemctl");
    let out = common::run_with_timeout(&mut c, Duration::from_secs(30)).unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("/nonexistent/systemctl not found"),
        "{}",
        text(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", text(&out));

    // A dead socket (needs tmux).
    let Some(tmux) = common::TmuxEnv::new() else {
        return;
    };
    let mut c = home.cmd(&["agent", "tail", "coder0"]);
    c.env("TMUX_TMPDIR", tmux.tmpdir());
    let out = common::run_with_timeout(&mut c, Duration::from_secs(30)).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("no tmux server on socket mosaic-fleet"),
        "{}",
        text(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", text(&out));
    let mut c = home.cmd(&["agent", "send", "coder0", "-m", "hi", "--verify"]);
    c.env("TMUX_TMPDIR", tmux.tmpdir());
    let out = common::run_with_timeout(&mut c, Duration::from_secs(30)).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("no tmux server"), "{}", text(&out));
}

fn roster_of(n: usize) -> String {
    let mut s = String::from("version: 1\ntenant_id: bench\ntmux:\n  socket_name: cnt\nagents:\n");
    for i in 0..n {
        s.push_str(&format!("  - name: a{i}\n    runtime: codex\n"));
    }
    s
}

fn spawned_by_ps(
    home: &Home,
    tmux: &common::TmuxEnv,
    n: usize,
) -> (Vec<String>, serde_json::Value) {
    let roster = home.root().join(format!("roster-{n}.yaml"));
    std::fs::write(&roster, roster_of(n)).unwrap();
    let log = home.root().join(format!("spawn-{n}.log"));
    let mut c = home.cmd(&[
        "fleet",
        "ps",
        "--json",
        "--roster",
        roster.to_str().unwrap(),
    ]);
    c.env("TMUX_TMPDIR", tmux.tmpdir())
        .env("MOSAIC_SPAWN_LOG", &log);
    let out = common::run_with_timeout(&mut c, Duration::from_secs(60)).unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = json_contract::parse(&out.stdout).unwrap();
    let lines = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (lines, doc)
}

#[test]
fn fleet_ps_spawns_the_same_processes_for_3_and_30_agents() {
    let Some(tmux) = common::TmuxEnv::new() else {
        return;
    };
    let home = Home::new();
    home.install_framework();
    // 30 sessions on the socket; the 3-agent roster leaves 27 of them unmanaged.
    for i in 0..30 {
        let out = tmux
            .tmux(Some("cnt"))
            .args(["new-session", "-d", "-s", &format!("a{i}"), "sleep 600"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let (small, doc3) = spawned_by_ps(&home, &tmux, 3);
    let (big, doc30) = spawned_by_ps(&home, &tmux, 30);
    assert_eq!(
        small.len(),
        big.len(),
        "3 agents: {small:#?}\n30 agents: {big:#?}"
    );
    // list-panes, systemctl show, and one capture-pane list for the screens.
    assert_eq!(small.len(), 3, "{small:#?}");
    assert!(big.iter().any(|l| l.contains("list-panes -a")), "{big:#?}");
    assert!(
        big.iter()
            .any(|l| l
                .contains("capture-pane -p -t =a0:0.0 ; display-message -p @@mosaic-screen-end@@")),
        "{big:#?}"
    );
    assert!(big.iter().any(|l| l.contains("--user show")), "{big:#?}");
    let rows30 = doc30["agents"].as_array().unwrap();
    assert_eq!(rows30.len(), 30);
    assert!(
        rows30
            .iter()
            .all(|r| r["session"] == true && r["pane_alive"] == true),
        "{doc30:#}"
    );
    let rows3 = doc3["agents"].as_array().unwrap();
    assert_eq!(rows3.iter().filter(|r| r["managed"] == true).count(), 3);
    assert_eq!(
        rows3
            .iter()
            .filter(|r| r["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "UNMANAGED"))
            .count(),
        27
    );
    assert!(rows3
        .iter()
        .all(|r| r["tenant_id"] == "bench" && r["host"].as_str().is_some_and(|h| !h.is_empty())));
}

#[test]
fn every_shipped_example_satisfies_schema_and_validator_alike() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::framework_dir().join("fleet/roster.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let home = Home::new();
    let mut cases: Vec<(String, String)> = Vec::new();
    for e in std::fs::read_dir(common::framework_dir().join("fleet/examples")).unwrap() {
        let p = e.unwrap().path();
        cases.push((
            p.display().to_string(),
            std::fs::read_to_string(&p).unwrap(),
        ));
    }
    for bad in [
        "version: 1\nagents:\n  - name: a\n    runtime: codex\n    extra: 1\n",
        "version: 1\nagents:\n  - name: a b\n    runtime: codex\n",
        "version: 1\nagents:\n  - name: a\n    runtime: gpt\n",
        "version: 1\ntmux: {socket_name: 'a b'}\nagents: []\n",
        "version: 2\nagents: []\n",
        "version: 1\nagents:\n  - name: a\n    runtime: codex\n    class: boss\n",
        "version: 1\nagents:\n  - name: a\n    runtime: codex\n    model_hint: 'x y'\n",
        "version: 1\nruntimes: {codex: {reset: /clear}}\nagents: []\n",
    ] {
        cases.push(("bad".into(), bad.into()));
    }
    for (i, (label, yaml)) in cases.iter().enumerate() {
        let value: serde_json::Value = mosaic_engine::yamledit::Doc::parse(yaml)
            .and_then(|d| d.to_json())
            .unwrap();
        let schema_ok = validator.is_valid(&value);
        let roster = home.root().join(format!("r{i}.yaml"));
        std::fs::write(&roster, yaml).unwrap();
        let out = home.run(&[
            "fleet",
            "add",
            "zz9",
            "--runtime",
            "pi",
            "--dry-run",
            "--roster",
            roster.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.success(),
            schema_ok,
            "{label}: schema says {schema_ok}\n{yaml}\n{}",
            text(&out)
        );
        assert_eq!(label != "bad", schema_ok, "{label}");
    }
}

/// `fleet add` had no `--host`, `--ssh` or `--command`, and joined the
/// roster's lines with `\n`, turning a CRLF roster into LF.
#[test]
fn add_writes_host_ssh_and_command_and_add_remove_keep_crlf() {
    let home = Home::new();
    let roster = home.h().join("fleet/roster.yaml");
    std::fs::create_dir_all(roster.parent().unwrap()).unwrap();
    let crlf = "# mine\r\nversion: 1\r\ntmux:\r\n  socket_name: mosaic-fleet # ours\r\nagents:\r\n  - name: lead\r\n    runtime: claude\r\n";
    std::fs::write(&roster, crlf).unwrap();
    let out = home.run(&[
        "fleet",
        "add",
        "far0",
        "--runtime",
        "codex",
        "--host",
        "build1",
        "--ssh",
        "ops@build1.example.org",
        "--command",
        "/opt/wrap.sh --fast \"x y\"",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("set MOSAIC_AGENT_COMMAND in "),
        "{}",
        text(&out)
    );
    let after_add = std::fs::read_to_string(&roster).unwrap();
    assert_eq!(
        after_add,
        format!("{crlf}  - name: far0\r\n    runtime: codex\r\n    host: build1\r\n    ssh: ops@build1.example.org\r\n")
    );
    let env = std::fs::read_to_string(home.h().join("fleet/agents/far0.env")).unwrap();
    assert!(
        env.ends_with("\nMOSAIC_AGENT_COMMAND=\"/opt/wrap.sh --fast \\\"x y\\\"\"\n"),
        "{env}"
    );
    let mode = std::fs::metadata(home.h().join("fleet/agents/far0.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = home.run(&["fleet", "add", "x1", "--runtime", "pi", "--ssh", "h1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--host"), "{}", text(&out));
    let out = home.run(&["fleet", "add", "x1", "--runtime", "pi", "--command", ""]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--command"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&roster).unwrap(), after_add);

    let out = home.run(&["fleet", "remove", "far0", "--keep-running"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&roster).unwrap(), crlf);
    // Undo puts the CRLF text with the agent back, byte for byte.
    let out = home.run(&["fleet", "undo"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&roster).unwrap(), after_add);
}

/// A second roster without a socket rewrote `_holder.env` onto the
/// operator's default tmux server, moving the only holder.
#[test]
fn a_second_roster_does_not_move_the_holder() {
    let home = Home::new();
    home.install_framework();
    let h = home.h();
    let out = home.run(&["fleet", "init", "--preset", "pair"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = home.run(&["fleet", "install"]);
    assert!(out.status.success(), "{}", text(&out));
    let holder = h.join("fleet/agents/_holder.env");
    let before = std::fs::read_to_string(&holder).unwrap();
    assert!(
        before.contains("MOSAIC_TMUX_SOCKET=mosaic-fleet\n"),
        "{before}"
    );

    let extra = home.root().join("extra.yaml");
    std::fs::write(
        &extra,
        "version: 1\nagents:\n  - name: side0\n    runtime: pi\n",
    )
    .unwrap();
    let out = home.run(&["fleet", "install", "--roster", extra.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("_holder.env")
            && err.contains("tmux socket mosaic-fleet")
            && err.contains("the default tmux server")
            && err.contains("set `tmux.socket_name: mosaic-fleet`"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&holder).unwrap(), before);
    assert!(!h.join("fleet/agents/side0.env").exists());

    // Sharing the holder's socket works, and leaves the holder as it was.
    std::fs::write(
        &extra,
        "version: 1\ntmux: {socket_name: mosaic-fleet}\nagents:\n  - name: side0\n    runtime: pi\n",
    )
    .unwrap();
    let out = home.run(&["fleet", "install", "--roster", extra.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&holder).unwrap(), before);
    assert!(h.join("fleet/agents/side0.env").exists());

    // The home's own roster still moves it (the operator changed its socket).
    let roster = h.join("fleet/roster.yaml");
    let text0 = std::fs::read_to_string(&roster).unwrap();
    std::fs::write(
        &roster,
        text0.replace("socket_name: mosaic-fleet", "socket_name: other1"),
    )
    .unwrap();
    let out = home.run(&["fleet", "install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::read_to_string(&holder)
        .unwrap()
        .contains("MOSAIC_TMUX_SOCKET=other1\n"));
}
