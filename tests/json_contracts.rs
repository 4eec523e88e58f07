//! The `--json` contracts (issue 13): every schema under `docs/schemas/` is
//! a valid draft 2020-12 schema, every document kind the binary prints
//! (`mosaic::report::Doc`) has one and is covered by a test that validates
//! real output, and the commands that need no tmux, systemd or sshd are run
//! here, in a throw-away home, with their output validated. The commands
//! that do need them are validated where they already run for real
//! (`json_contract::parse` in those tests): see [`COVERED_ELSEWHERE`].

mod json_contract;

use mosaic::report::Doc;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kinds whose real output is validated by other integration tests (they
/// need a live tmux pane, a systemd user manager or an sshd host).
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    ("fleet-status", "tests/fleet_real.rs"),
    ("fleet-verify", "tests/fleet_real.rs"),
    (
        "fleet-ps",
        "tests/fleet_ops.rs, tests/fleet_real.rs, tests/hosts.rs",
    ),
    ("fleet-deploy", "tests/deploy.rs"),
    ("agent-send", "tests/agent_delivery.rs"),
    ("agent-reset", "tests/agent_delivery.rs"),
    ("agent-tail", "tests/fleet_real.rs"),
    ("agent-logs", "tests/fleet_ops.rs"),
];

struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for d in ["u", "run", "tmux"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        Home { _dir: dir, root }
    }

    /// The home the active units point at (`%E/mosaic`), so `fleet
    /// install` has nothing to warn about.
    fn home(&self) -> PathBuf {
        self.root.join("u/.config/mosaic")
    }

    /// Runs `args` with `--json`; the exit code must be `code`, stdout one
    /// document of `kind` (and its version) valid against its schema.
    fn doc(&self, args: &[&str], code: i32, kind: Doc) -> Value {
        let doc = self.doc_env(args, &[], code, kind);
        assert_eq!(doc["version"], kind.version(), "{doc:#}");
        doc
    }
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema() {
    let mut n = 0;
    for e in std::fs::read_dir(json_contract::schema_dir()).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let schema: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema",
            "{}",
            path.display()
        );
        assert!(
            jsonschema::meta::is_valid(&schema),
            "{} is not a valid schema",
            path.display()
        );
        jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // kind and version are pinned by every schema.
        let stem = path.file_name().unwrap().to_str().unwrap();
        let kind = stem.strip_suffix(".schema.json").expect("NAME.schema.json");
        assert_eq!(schema["properties"]["kind"]["const"], kind, "{stem}");
        assert!(
            schema["properties"]["version"]["const"].is_u64(),
            "{stem}: version must be a const"
        );
        n += 1;
    }
    assert_eq!(n, Doc::ALL.len());
}

#[test]
fn every_kind_has_a_schema_of_its_version_and_a_test() {
    let here = include_str!("json_contracts.rs");
    let dir = json_contract::schema_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = Doc::ALL
        .iter()
        .map(|d| format!("{}.schema.json", d.name()))
        .collect();
    want.sort();
    assert_eq!(names, want, "docs/schemas/ and mosaic::report::Doc differ");
    let docs_page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md"))
            .expect("docs/json.md");
    for d in Doc::ALL {
        let schema = json_contract::schema(d.name());
        assert_eq!(
            schema["properties"]["version"]["const"],
            d.version(),
            "{}: the schema's version is not the binary's",
            d.name()
        );
        assert!(
            docs_page.contains(&format!("schemas/{}.schema.json", d.name())),
            "docs/json.md does not list {}",
            d.name()
        );
        // Either a test here prints it, or another test validates it.
        let variant = format!("Doc::{d:?}");
        let here_count = here.matches(&variant).count();
        let elsewhere = COVERED_ELSEWHERE.iter().find(|(k, _)| *k == d.name());
        assert!(
            here_count > 0 || elsewhere.is_some(),
            "no test validates real output of kind {}",
            d.name()
        );
        if let Some((_, files)) = elsewhere {
            for f in files.split(", ") {
                let text =
                    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap();
                assert!(
                    text.contains("json_contract::parse"),
                    "{f} is said to validate {} but does not use json_contract::parse",
                    d.name()
                );
            }
        }
    }
}

#[test]
fn framework_commands_print_documents_that_match_their_schemas() {
    let h = Home::new();
    let dry = h.doc(&["install", "--dry-run"], 0, Doc::Sync);
    assert_eq!(dry["dry_run"], true);
    assert!(!h.home().exists(), "a dry run wrote the home");
    let done = h.doc(&["install"], 0, Doc::Sync);
    assert!(done["backup"].is_string());
    assert!(
        done.get("self_update").is_none(),
        "install has no release check"
    );

    let st = h.doc(&["status"], 0, Doc::Status);
    assert_eq!(st["clean"], true);
    h.doc(&["verify"], 0, Doc::Verify);

    // An edit: status carries data, not sentences.
    let f = h.home().join("fleet/README.md");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("mine\n");
    std::fs::write(&f, text).unwrap();
    let st = h.doc(&["status"], 1, Doc::Status);
    assert_eq!(st["clean"], false);
    assert_eq!(
        st["paths"][0],
        serde_json::json!({"path": "fleet/README.md", "code": "M", "state": "modified", "unit": false})
    );
    // A mode change: the enum word, the numbers in detail.
    use std::os::unix::fs::PermissionsExt;
    let script = h.home().join("tools/fleet/holder.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let v = h.doc(&["verify"], 1, Doc::Verify);
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems.contains(&serde_json::json!({"path": "fleet/README.md", "state": "modified"})),
        "{v:#}"
    );
    assert!(
        problems.contains(&serde_json::json!({"path": "tools/fleet/holder.sh", "state": "mode", "detail": "644, expected 755"})),
        "{v:#}"
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = h.doc(&["diff"], 0, Doc::Diff);
    assert!(d["diff"].as_str().unwrap().contains("+mine"));

    // update: the release check's outcome is in the document.
    let u = h.doc(&["update"], 0, Doc::Sync);
    assert_eq!(u["self_update"]["outcome"], "skipped-off");
    let u = h.doc(&["update", "--offline", "--dry-run"], 0, Doc::Sync);
    assert_eq!(u["self_update"]["outcome"], "skipped-offline");
    assert_eq!(u["dry_run"], true);

    let b = h.doc(&["backups"], 0, Doc::Backups);
    assert_eq!(b["backups"][0]["kind"], "generation");

    // A failing command prints exactly one document: the error.
    let e = h.doc(&["resolve", "fleet/README.md", "--keep"], 2, Doc::Error);
    assert!(e["error"].as_str().unwrap().contains("fleet/README.md"));
    let e = h.doc(&["rollback", "--dry-run"], 2, Doc::Error);
    assert_eq!(e["exit_code"], 2);

    // A conflict to resolve: an update from a release that changed the
    // file the operator edited.
    let fw = h.root.join("fw");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("framework"),
        &fw,
    );
    std::fs::write(fw.join("fleet/README.md"), "the release's new text\n").unwrap();
    let u = h.doc_env(
        &["update", "--offline"],
        &[
            ("MOSAIC_FRAMEWORK_DIR", fw.to_str().unwrap()),
            ("MOSAIC_FRAMEWORK_VERSION", "9.0.0"),
        ],
        0,
        Doc::Sync,
    );
    assert!(
        u["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "conflict"),
        "{u:#}"
    );
    let r = h.doc_env(
        &["resolve", "fleet/README.md", "--take", "--dry-run"],
        &[
            ("MOSAIC_FRAMEWORK_DIR", fw.to_str().unwrap()),
            ("MOSAIC_FRAMEWORK_VERSION", "9.0.0"),
        ],
        0,
        Doc::Resolve,
    );
    assert_eq!(r["dry_run"], true);
    let r = h.doc_env(
        &["rollback", "--dry-run"],
        &[
            ("MOSAIC_FRAMEWORK_DIR", fw.to_str().unwrap()),
            ("MOSAIC_FRAMEWORK_VERSION", "9.0.0"),
        ],
        0,
        Doc::Sync,
    );
    assert!(r["rolled_back"].is_u64(), "{r:#}");
}

// A blocked install used to print its report and then an error document:
// two documents, not one parseable JSON value.
#[test]
fn a_blocked_sync_prints_one_document() {
    let h = Home::new();
    std::fs::create_dir_all(h.home().join("fleet/README.md")).unwrap();
    std::fs::write(h.home().join("fleet/README.md/mine"), "operator data\n").unwrap();
    let v = h.doc(&["install"], 3, Doc::Sync);
    assert!(v["blocked"].as_u64().unwrap() > 0, "{v:#}");
    let v = h.doc(&["install", "--dry-run"], 3, Doc::Sync);
    assert_eq!(v["dry_run"], true);
}

#[test]
fn fleet_edits_and_doctor_print_documents_that_match_their_schemas() {
    let h = Home::new();
    h.doc(&["install"], 0, Doc::Sync);
    let v = h.doc(&["fleet", "init", "--dry-run"], 0, Doc::FleetInit);
    assert_eq!(v["dry_run"], true);
    h.doc(&["fleet", "init"], 0, Doc::FleetInit);
    let v = h.doc(
        &["fleet", "add", "zed", "--runtime", "codex", "--dry-run"],
        0,
        Doc::FleetAdd,
    );
    assert_eq!(v["added"], "zed");
    h.doc(
        &["fleet", "add", "zed", "--runtime", "codex"],
        0,
        Doc::FleetAdd,
    );
    let v = h.doc(
        &["fleet", "remove", "zed", "--dry-run"],
        0,
        Doc::FleetRemove,
    );
    assert_eq!(v["removed"], "zed");
    h.doc(&["fleet", "undo", "--dry-run"], 0, Doc::FleetUndo);
    h.doc(&["fleet", "install", "--dry-run"], 0, Doc::FleetInstall);
    // systemctl fails here (MOSAIC_SYSTEMCTL=/bin/false): the files are
    // written, the report carries the error, and it is the only document.
    let v = h.doc(&["fleet", "install"], 2, Doc::FleetInstall);
    assert!(v["error"].as_str().unwrap().contains("systemd"), "{v:#}");
    let v = h.doc(&["fleet", "start", "--dry-run"], 0, Doc::FleetUnits);
    assert_eq!(v["action"], "start");
    h.doc(&["fleet", "stop", "--dry-run"], 0, Doc::FleetUnits);
    // doctor finds problems here (no linger, no user manager): exit 1, and
    // still one document.
    let d = h.doc(&["doctor"], 1, Doc::Doctor);
    assert_eq!(d["ok"], false);
    // A runtime failure of an agent command is an error document.
    let e = h.doc(&["agent", "logs", "zed"], 2, Doc::Error);
    assert!(e["error"].as_str().unwrap().contains("zed"));
}

impl Home {
    /// [`Home::doc`] with extra environment.
    fn doc_env(&self, args: &[&str], env: &[(&str, &str)], code: i32, kind: Doc) -> Value {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mosaic"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.join("u"))
            .env("XDG_CONFIG_HOME", self.root.join("u/.config"))
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env("TMUX_TMPDIR", self.root.join("tmux"))
            .env("MOSAIC_HOME", self.home())
            .env("MOSAIC_STATE_DIR", self.root.join("s"))
            .env("MOSAIC_SYSTEMCTL", "/bin/false")
            .env("MOSAIC_RELEASE_URL", "off")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.arg("--json").args(args).output().unwrap();
        let text = format!(
            "mosaic --json {args:?}: {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "{text}");
        let doc = json_contract::parse(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(doc["kind"], kind.name(), "{text}");
        doc
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

#[test]
fn docs_and_man_print_documents_that_match_their_schemas() {
    let h = Home::new();
    let list = h.doc(&["docs"], 0, Doc::DocsTopics);
    let topics = list["topics"].as_array().expect("topics");
    assert!(topics.iter().any(|t| t["topic"] == "fleet"), "{list:#}");
    let one = h.doc(&["docs", "fleet"], 0, Doc::DocsTopic);
    assert_eq!(one["topic"], "fleet");
    assert!(one["text"].as_str().unwrap().contains("fleet"));
    let out = h.root.join("man");
    let pages = h.doc(&["man", "--out", out.to_str().unwrap()], 0, Doc::ManPages);
    let pages = pages["pages"].as_array().expect("pages");
    assert!(pages.len() > 10, "{pages:?}");
    for p in pages {
        assert!(Path::new(p.as_str().unwrap()).is_file(), "{p} not written");
    }
}
