//! Fleet operations against real tmux and a private systemd user manager,
//! every agent running the shipped stub-agent: `fleet ps` / `fleet verify`
//! with `LANG` unset (tmux must not turn the `-F` tabs into `_`), a declared
//! `cd DIR && exec …` command that is not DRIFT, `fleet remove` stopping and
//! disabling the unit (and `--keep-running` not), `fleet stop NAME` of a name
//! the roster lost, `update --relaunch` restarting nobody when nothing
//! changed, the pane log outliving its agent (`agent logs`, ps pointing at
//! it), `doctor`. Skipped (with the reason) where a user manager cannot
//! run, failed instead under MOSAIC_REQUIRE_REAL=1.

mod common;
mod json_contract;

use common::UserManager;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Fleet<'a> {
    um: &'a UserManager,
    h: PathBuf,
}

impl Fleet<'_> {
    /// `mosaic ARGS` with no locale at all (as from cron or `ssh host cmd`).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.um.command(assert_cmd::cargo::cargo_bin("mosaic"));
        c.env("NO_COLOR", "1")
            .env_remove("LANG")
            .env_remove("LC_ALL")
            .env_remove("LC_CTYPE")
            .env_remove("LANGUAGE")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run_with_timeout(&mut self.cmd(args), Duration::from_secs(90)).unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "mosaic {args:?}: {}", text(&out));
        out
    }

    fn ps(&self) -> Value {
        let out = self.ok(&["fleet", "ps", "--json", "--stale-after", "100000"]);
        json_contract::parse(&out.stdout)
            .unwrap_or_else(|e| panic!("ps --json: {e}: {}", text(&out)))
    }

    fn unit_state(&self, unit: &str) -> (String, String) {
        let a = self.um.systemctl(&["is-active", unit]);
        let e = self.um.systemctl(&["is-enabled", unit]);
        (
            String::from_utf8_lossy(&a.stdout).trim().to_string(),
            String::from_utf8_lossy(&e.stdout).trim().to_string(),
        )
    }
}

fn row<'v>(doc: &'v Value, name: &str) -> &'v Value {
    doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {doc:#}"))
}

#[test]
fn fleet_ops_without_a_locale() {
    let Some(um) = UserManager::start() else {
        return;
    };
    let f = Fleet {
        um: &um,
        h: um.config_home().join("mosaic"),
    };
    let h = f.h.clone();
    let stub = h.join("tools/fleet/stub-agent").display().to_string();

    f.ok(&["--home", h.to_str().unwrap(), "install"]);
    f.ok(&["fleet", "init", "--preset", "local-canary"]);
    f.ok(&["fleet", "install"]);

    // doctor: one line per check; the runtimes are not installed here.
    let out = f.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let d: Value = json_contract::parse(&out.stdout).unwrap();
    assert_eq!(d["version"], 1, "{d:#}");
    assert_eq!(d["ok"], false, "{d:#}");
    let check = |name: &str| {
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {d:#}"))
            .clone()
    };
    assert_eq!(check("user-manager")["ok"], true, "{d:#}");
    assert_eq!(check("units-home")["ok"], true, "{d:#}");
    assert_eq!(check("tmux")["ok"], true, "{d:#}");
    assert!(check("linger")["detail"].is_string(), "{d:#}");
    let missing: Vec<Value> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"].as_str().unwrap().starts_with("runtime:") && c["ok"] == false)
        .cloned()
        .collect();
    assert!(!missing.is_empty(), "{d:#}");
    assert!(missing.iter().all(|c| c["fix"].is_string()), "{d:#}");
    let out = f.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let human = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(human.contains("ok tmux: tmux "), "{human}");
    assert!(human.contains("problem runtime:"), "{human}");
    assert!(human.contains("; fix: "), "{human}");
    assert!(
        human
            .lines()
            .all(|l| l.starts_with("ok ") || l.starts_with("problem ")),
        "{human}"
    );

    for a in ["lead", "coder0", "reviewer0"] {
        let env = h.join("fleet/agents").join(format!("{a}.env"));
        let mut body = std::fs::read_to_string(&env).unwrap();
        // A shell prefix before the program: `cd DIR && exec PROGRAM`.
        body.push_str(&format!("MOSAIC_AGENT_COMMAND=cd /tmp && exec {stub}\n"));
        // The pane-log checks below need a runtime that stays dead once killed.
        body.push_str("MOSAIC_AGENT_RESTART=never\n");
        std::fs::write(&env, body).unwrap();
    }

    // Locale-proof: with LANG unset, start/verify/ps see every agent.
    f.ok(&["fleet", "start"]);
    let out = f.ok(&["fleet", "verify", "--stale-after", "100000"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 of 3 agents"),
        "{}",
        text(&out)
    );
    let doc = f.ps();
    for a in ["lead", "coder0", "reviewer0"] {
        let r = row(&doc, a);
        assert_eq!(r["state"], "running", "{a}: {r:#}");
        assert_eq!(r["session"], true, "{a}: {r:#}");
        assert_eq!(r["expected_command"], "stub-agent", "{a}: {r:#}");
        assert!(
            !r["flags"].as_array().unwrap().iter().any(|x| x == "DRIFT"),
            "{a}: {r:#}"
        );
    }
    let table = String::from_utf8_lossy(&f.ok(&["fleet", "ps"]).stdout).into_owned();
    assert!(!table.contains("dead"), "{table}");

    // update --relaunch with nothing changed restarts nobody, and says so.
    let pid = row(&doc, "lead")["pane_pid"].as_u64();
    let out = f.ok(&["update", "--offline", "--relaunch"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no agent restarted"),
        "{}",
        text(&out)
    );
    assert_eq!(row(&f.ps(), "lead")["pane_pid"].as_u64(), pid);

    // remove: the roster edit, then the unit stopped and disabled.
    let unit = "mosaic-agent@coder0.service";
    assert_eq!(f.unit_state(unit), ("active".into(), "enabled".into()));
    let out = f.ok(&["fleet", "remove", "coder0"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped and disabled mosaic-agent@coder0"),
        "{}",
        text(&out)
    );
    let (active, enabled) = f.unit_state(unit);
    assert_ne!(active, "active", "{unit} still active");
    assert_ne!(enabled, "enabled", "{unit} still enabled");

    // --keep-running: only the roster; then `fleet stop NAME` stops the unit.
    let unit = "mosaic-agent@reviewer0.service";
    f.ok(&["fleet", "remove", "reviewer0", "--keep-running"]);
    assert_eq!(f.unit_state(unit).0, "active");
    let out = f.ok(&["fleet", "stop", "reviewer0"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not in"),
        "{}",
        text(&out)
    );
    assert_ne!(f.unit_state(unit).0, "active", "{unit} still active");
    // A name with neither roster entry nor unit is still unknown.
    let out = f.run(&["fleet", "stop", "nobody9"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));

    // The rest of the fleet is untouched.
    let doc = f.ps();
    assert_eq!(row(&doc, "lead")["state"], "running", "{doc:#}");

    // The pane log: written while the agent runs, kept after it dies, and
    // pointed at by ps.
    let log = h.join("fleet/run/lead.log");
    assert!(
        common::wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("stub-agent lead ready"))),
        "no pane log at {}: {:?}; {:?}",
        log.display(),
        std::fs::read_to_string(&log),
        std::fs::read_dir(h.join("fleet/run"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
    );
    f.ok(&[
        "agent",
        "send",
        "lead",
        "-m",
        "last words",
        "--verify",
        "--queue",
    ]);
    let pid = row(&doc, "lead")["pane_pid"].as_u64().unwrap();
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    assert!(
        common::wait_until(Duration::from_secs(10), || row(&f.ps(), "lead")["state"]
            == "dead"),
        "lead not dead"
    );
    let doc = f.ps();
    assert_eq!(
        row(&doc, "lead")["log"].as_str(),
        Some(log.to_str().unwrap()),
        "{doc:#}"
    );
    let table = String::from_utf8_lossy(&f.ok(&["fleet", "ps"]).stdout).into_owned();
    assert!(table.contains("lead is DEAD; its last output:"), "{table}");
    let logs = json_contract::parse(&f.ok(&["agent", "logs", "lead", "-n", "3", "--json"]).stdout)
        .unwrap();
    assert_eq!(logs["agent"], "lead", "{logs:#}");
    let out = f.ok(&["agent", "logs", "lead", "-n", "3"]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains("ACK [from operator:mosaic-cli] last words"),
        "{shown}"
    );
    assert!(shown.lines().count() <= 3, "{shown}");
    assert!(
        !shown.contains('\x1b') && !shown.contains('\r'),
        "{shown:?}"
    );
    let out = f.run(&["fleet", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        // The dead pane stays (remain-on-exit) until the agent is restarted.
        String::from_utf8_lossy(&out.stdout).contains("DEAD lead"),
        "{}",
        text(&out)
    );
    f.ok(&["fleet", "stop"]);
}
