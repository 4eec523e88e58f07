//! Static checks of the shipped framework tree (`framework/`, issue 3): the
//! roster schema and the example presets, the shell scripts (shellcheck,
//! strict mode, exec bits), the unit files' contract, and the sanitize rule
//! (no private hosts, home paths, private addresses or e-mail addresses).

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fw(rel: &str) -> PathBuf {
    common::framework_dir().join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fw(rel)).unwrap_or_else(|e| panic!("read framework/{rel}: {e}"))
}

fn schema() -> Value {
    serde_json::from_str(&read("fleet/roster.schema.json")).expect("roster.schema.json is JSON")
}

fn yaml_to_json(text: &str) -> Value {
    mosaic_engine::yamledit::Doc::parse(text)
        .and_then(|d| d.to_json())
        .expect("valid YAML")
}

/// Validate; on failure return one line per error naming the field path.
fn validate(instance: &Value) -> Result<(), Vec<String>> {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn examples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fw("fleet/examples")).expect("fleet/examples") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((name, yaml_to_json(&text)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn agent_names(roster: &Value) -> Vec<String> {
    roster["agents"]
        .as_array()
        .expect("agents array")
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "declares draft 2020-12"
    );
    assert!(
        jsonschema::meta::is_valid(&schema),
        "roster.schema.json is not a valid JSON Schema"
    );
    let agent = &schema["$defs"]["agent"];
    assert_eq!(agent["required"], serde_json::json!(["name", "runtime"]));
    assert_eq!(agent["additionalProperties"], false);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["$defs"]["agent_name"]["pattern"],
        "^[a-z0-9][a-z0-9_-]{0,62}$"
    );
    assert_eq!(
        schema["$defs"]["runtime"]["enum"],
        serde_json::json!(["claude", "codex", "pi", "opencode"])
    );
}

#[test]
fn every_example_validates_and_the_presets_are_what_operators_expect() {
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|(n, _)| n.as_str()).collect();
    assert!(examples.len() >= 6, "expected six presets, found {names:?}");
    for (name, roster) in &examples {
        if let Err(errors) = validate(roster) {
            panic!(
                "fleet/examples/{name}.yaml does not validate:\n{}",
                errors.join("\n")
            );
        }
        // Presets name the isolated socket explicitly: an operator starting
        // from one never lands on the default tmux server by accident.
        assert_eq!(
            roster["tmux"]["socket_name"], "mosaic-fleet",
            "{name}.yaml must set tmux.socket_name: mosaic-fleet"
        );
        let agents = agent_names(roster);
        let unique: BTreeSet<&String> = agents.iter().collect();
        assert_eq!(
            unique.len(),
            agents.len(),
            "{name}.yaml has duplicate agent names"
        );
    }
    let get = |n: &str| {
        &examples
            .iter()
            .find(|(name, _)| name == n)
            .unwrap_or_else(|| panic!("missing preset {n}.yaml in {names:?}"))
            .1
    };
    assert_eq!(
        agent_names(get("minimal")).len(),
        1,
        "minimal has one agent"
    );
    let canary = get("local-canary");
    assert_eq!(agent_names(canary), ["lead", "coder0", "reviewer0"]);
    assert_eq!(canary["tmux"]["socket_name"], "mosaic-fleet");
}

#[test]
fn every_class_has_a_role_prompt() {
    let schema = schema();
    let classes: BTreeSet<String> = schema["$defs"]["agent"]["properties"]["class"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "orchestrator",
        "enhancer",
        "implementer",
        "reviewer",
        "research",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(classes, expected);
    for class in &classes {
        let text = read(&format!("fleet/roles/{class}.md"));
        assert!(
            text.len() > 200,
            "roles/{class}.md is too thin to be a prompt"
        );
    }
}

/// (what is wrong, roster YAML, a field name the error must mention)
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "unknown runtime",
        "version: 1\nagents:\n  - name: coder0\n    runtime: gpt\n",
        "runtime",
    ),
    (
        "missing runtime",
        "version: 1\nagents:\n  - name: coder0\n",
        "runtime",
    ),
    (
        "typo in an agent field",
        "version: 1\nagents:\n  - name: coder0\n    runtime: codex\n    runtme: claude\n",
        "runtme",
    ),
    (
        "typo at the top level",
        "version: 1\nagnets: []\n",
        "agnets",
    ),
    (
        "typo in tmux",
        "version: 1\ntmux:\n  socket: mosaic-fleet\nagents: []\n",
        "socket",
    ),
    (
        "agent name with a slash",
        "version: 1\nagents:\n  - name: ../etc\n    runtime: pi\n",
        "name",
    ),
    (
        "agent name with a space",
        "version: 1\nagents:\n  - name: coder 0\n    runtime: pi\n",
        "name",
    ),
    (
        "agent name with upper case",
        "version: 1\nagents:\n  - name: Coder0\n    runtime: pi\n",
        "name",
    ),
    (
        "agent name too long",
        "version: 1\nagents:\n  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    runtime: pi\n",
        "name",
    ),
    (
        "shell metacharacters in the socket",
        "version: 1\ntmux:\n  socket_name: \"x;rm -rf\"\nagents: []\n",
        "socket_name",
    ),
    (
        "unknown class",
        "version: 1\nagents:\n  - name: coder0\n    runtime: pi\n    class: implementor\n",
        "class",
    ),
    (
        "wrong version",
        "version: 2\nagents: []\n",
        "version",
    ),
    (
        "missing agents",
        "version: 1\ntransport: tmux\n",
        "agents",
    ),
    (
        "unknown runtime under runtimes",
        "version: 1\nruntimes:\n  gemini: { reset_command: /clear }\nagents: []\n",
        "gemini",
    ),
];

#[test]
fn broken_rosters_fail_with_the_field_named() {
    for (what, yaml, field) in BROKEN {
        let errors = match validate(&yaml_to_json(yaml)) {
            Ok(()) => panic!("roster with {what} validated:\n{yaml}"),
            Err(errors) => errors,
        };
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "roster with {what}: no error names `{field}`: {errors:?}"
        );
    }
}

#[test]
fn absent_socket_name_is_valid_and_means_default_server() {
    let roster = yaml_to_json("version: 1\nagents:\n  - name: canary-pi\n    runtime: pi\n");
    validate(&roster).expect("a socket-less roster is valid");
    let schema = schema();
    assert!(
        schema["properties"]["tmux"]["properties"]["socket_name"]
            .get("default")
            .is_none(),
        "socket_name must not default to a named socket"
    );
}

/// Every regular file under framework/ as (relative path, absolute path).
fn framework_files() -> Vec<(String, PathBuf)> {
    let root = common::framework_dir();
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, entry.path().to_path_buf()));
        }
    }
    out
}

fn scripts() -> Vec<(String, PathBuf)> {
    framework_files()
        .into_iter()
        .filter(|(_, p)| {
            std::fs::read(p)
                .map(|b| b.starts_with(b"#!"))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn scripts_are_strict_bash_and_executable() {
    let scripts = scripts();
    let names: Vec<&str> = scripts.iter().map(|(r, _)| r.as_str()).collect();
    for expected in [
        "tools/fleet/start-agent-session.sh",
        "tools/fleet/stop-agent-session.sh",
        "tools/fleet/holder.sh",
        "tools/fleet/heartbeat",
        "tools/fleet/stub-agent",
        "tools/tmux/agent-send.sh",
        "tools/tmux/send-message.sh",
    ] {
        assert!(
            names.contains(&expected),
            "missing script {expected}: {names:?}"
        );
    }
    for (rel, path) in &scripts {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("#!/usr/bin/env bash"), "{rel}: shebang");
        let first = lines
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        assert_eq!(
            first,
            Some("set -euo pipefail"),
            "{rel}: the first command must be `set -euo pipefail`"
        );
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{rel} is not executable (mode {mode:o})");
    }
    // Executable files are exactly the scripts (the build ships 0755 for
    // executables, 0644 for everything else).
    for (rel, path) in framework_files() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        let is_script = scripts.iter().any(|(r, _)| *r == rel);
        assert_eq!(mode & 0o111 != 0, is_script, "{rel}: exec bit vs shebang");
    }
}

#[test]
fn scripts_parse_with_bash() {
    for (rel, path) in scripts() {
        let out = Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "bash -n {rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn scripts_pass_shellcheck() {
    let Some(shellcheck) = common::which("shellcheck") else {
        common::skip("shellcheck is not installed");
        return;
    };
    let scripts = scripts();
    let out = Command::new(shellcheck)
        .args(["--shell=bash", "--severity=style", "--external-sources"])
        .args(scripts.iter().map(|(_, p)| p))
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "shellcheck findings:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn units_follow_the_contract() {
    let holder = read("systemd/user/mosaic-tmux-holder.service");
    let agent = read("systemd/user/mosaic-agent@.service");
    let has = |text: &str, line: &str| text.lines().any(|l| l.trim() == line);
    for line in [
        "Type=oneshot",
        "RemainAfterExit=yes",
        "KillMode=process",
        "EnvironmentFile=-%E/mosaic/fleet/agents/_holder.env",
        "ExecStart=%E/mosaic/tools/fleet/holder.sh start",
        "ExecStop=%E/mosaic/tools/fleet/holder.sh stop",
        "WantedBy=default.target",
    ] {
        assert!(has(&holder, line), "holder unit lacks `{line}`");
    }
    for line in [
        "EnvironmentFile=%E/mosaic/fleet/agents/%i.env",
        // Supervision: the agent's processes are this unit's (docs/fleet.md).
        "Type=forking",
        "PIDFile=%E/mosaic/fleet/run/%i.supervisor.pid",
        "Delegate=yes",
        "KillMode=control-group",
        "ExecStart=%E/mosaic/tools/fleet/agent-supervisor %i",
        "ExecStop=%E/mosaic/tools/fleet/stop-agent-session.sh %i",
        "After=mosaic-tmux-holder.service",
        "BindsTo=mosaic-tmux-holder.service",
        "PartOf=mosaic-tmux-holder.service",
        "WantedBy=default.target",
    ] {
        assert!(has(&agent, line), "agent unit lacks `{line}`");
    }
    // The holder never assumes a socket: no Environment= default for it.
    assert!(
        !holder.contains("Environment=MOSAIC_TMUX_SOCKET"),
        "the holder must not default the socket"
    );
    // Every script a unit runs exists and is executable.
    for unit in [&holder, &agent] {
        for l in unit.lines().filter(|l| l.starts_with("Exec")) {
            let cmd = l.split_once('=').unwrap().1.trim_start_matches('-');
            let path = cmd.split_whitespace().next().unwrap();
            let rel = path
                .strip_prefix("%E/mosaic/")
                .expect("runs from %E/mosaic");
            let mode = std::fs::metadata(fw(rel)).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{rel} is not executable");
        }
    }
}

#[test]
fn every_documented_file_exists() {
    for rel in [
        "fleet/README.md",
        "fleet/roster.schema.json",
        "systemd/user/README.md",
        "tools/tmux/README.md",
        "docs/local-fleet-canary.md",
    ] {
        assert!(fw(rel).is_file(), "framework/{rel} is missing");
    }
    // The agent-send message format is documented where --verify relies on it.
    let readme = read("tools/tmux/README.md");
    assert!(readme.contains("[from SOURCE] MESSAGE"));
    assert!(readme.contains("ACK [from SOURCE] MESSAGE"));
}

// ---------------------------------------------------------------------------
// Sanitize: nothing shipped may leak a private host, a user's home path, a
// private-range address or an e-mail address.

/// Host names that belong to private networks.
const PRIVATE_SUFFIXES: &[&str] = &[
    ".local",
    ".lan",
    ".internal",
    ".intranet",
    ".corp",
    ".home.arpa",
    ".localdomain",
    ".ts.net",
];

/// Names of private machines and people seen in upstream material.
const PRIVATE_NAMES: &[&str] = &["jarvis", "ultron", "secrev", "dragon-lin"];

/// systemd unit suffixes: `mosaic-agent@coder0.service` is no e-mail address.
const UNIT_SUFFIXES: &[&str] = &[
    "service", "socket", "target", "timer", "path", "mount", "slice", "scope",
];

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ".-".contains(c)
}

fn emails(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut found = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if c != '@' {
            continue;
        }
        let mut s = i;
        while s > 0 && is_local_char(chars[s - 1]) {
            s -= 1;
        }
        let mut e = i + 1;
        while e < chars.len() && is_domain_char(chars[e]) {
            e += 1;
        }
        let local: String = chars[s..i].iter().collect();
        let domain: String = chars[i + 1..e].iter().collect();
        let domain = domain.trim_end_matches(['.', '-']);
        let labels: Vec<&str> = domain.split('.').collect();
        if local.is_empty() || labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            continue;
        }
        let tld = labels[labels.len() - 1];
        if tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        if UNIT_SUFFIXES.contains(&tld) {
            continue;
        }
        found.push(format!("{local}@{domain}"));
    }
    found
}

fn ipv4s(line: &str) -> Vec<[u8; 4]> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
            j += 1;
        }
        let token = line[i..j].trim_end_matches('.');
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() == 4 {
            let nums: Vec<Option<u8>> = parts.iter().map(|p| p.parse::<u8>().ok()).collect();
            if nums.iter().all(Option::is_some) {
                out.push([
                    nums[0].unwrap(),
                    nums[1].unwrap(),
                    nums[2].unwrap(),
                    nums[3].unwrap(),
                ]);
            }
        }
        i = j;
    }
    out
}

fn is_private_v4(ip: [u8; 4]) -> bool {
    matches!(ip, [10, ..])
        || matches!(ip, [172, b, ..] if (16..=31).contains(&b))
        || matches!(ip, [192, 168, ..])
        || matches!(ip, [100, b, ..] if (64..=127).contains(&b))
        || matches!(ip, [169, 254, ..])
}

fn is_documentation_v4(ip: [u8; 4]) -> bool {
    matches!(ip, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _])
}

fn home_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["/home/", "/Users/"] {
        let mut rest = line;
        while let Some(pos) = rest.find(prefix) {
            let after = &rest[pos + prefix.len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect();
            if !name.is_empty() {
                out.push(format!("{prefix}{name}"));
            }
            rest = after;
        }
    }
    out
}

fn private_hosts(line: &str) -> Vec<String> {
    let lower = line.to_ascii_lowercase();
    let mut out = Vec::new();
    for word in lower.split(|c: char| !(c.is_ascii_alphanumeric() || ".-_".contains(c))) {
        let word = word.trim_end_matches('.');
        if word.is_empty() {
            continue;
        }
        if PRIVATE_SUFFIXES
            .iter()
            .any(|s| word.ends_with(s) && word.len() > s.len())
        {
            out.push(word.to_string());
        }
        if PRIVATE_NAMES.contains(&word) {
            out.push(word.to_string());
        }
    }
    out
}

/// Every finding in `text`, as "line N: what".
fn sanitize_findings(text: &str) -> Vec<String> {
    let mut findings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        for p in home_paths(line) {
            findings.push(format!("line {n}: home path {p}"));
        }
        for ip in ipv4s(line) {
            if is_private_v4(ip) {
                findings.push(format!(
                    "line {n}: private address {}.{}.{}.{}",
                    ip[0], ip[1], ip[2], ip[3]
                ));
            }
        }
        for e in emails(line) {
            findings.push(format!("line {n}: e-mail address {e}"));
        }
        for h in private_hosts(line) {
            findings.push(format!("line {n}: private host {h}"));
        }
    }
    findings
}

#[test]
fn sanitizer_catches_what_it_should() {
    for bad in [
        "see /home/alice/src",
        "cd /Users/bob",
        "host: 10.0.0.7",
        "ssh ops@172.20.1.1",
        "at 192.168.1.20.",
        "mail admin@example-corp.io",
        "box.lan is up",
        "build.internal",
        "ssh jarvis",
        "tailnet 100.101.1.2",
    ] {
        assert!(!sanitize_findings(bad).is_empty(), "missed: {bad}");
    }
    for good in [
        "host: 192.0.2.10",
        "ssh: ops@198.51.100.7",
        "203.0.113.5 and 127.0.0.1",
        "mosaic-agent@coder0.service",
        "agent-send.sh -H USER@HOST",
        "version 1.2.3.4 of 172.15.0.1",
        "~/.config/mosaic and $HOME/src",
        "operator:mosaic-cli",
    ] {
        assert_eq!(
            sanitize_findings(good),
            Vec::<String>::new(),
            "false alarm: {good}"
        );
    }
}

#[test]
fn framework_tree_is_sanitized() {
    let mut all = Vec::new();
    for (rel, path) in framework_files() {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{rel} is not UTF-8 text"));
        for f in sanitize_findings(&text) {
            all.push(format!("framework/{rel}: {f}"));
        }
    }
    assert!(all.is_empty(), "sanitize findings:\n{}", all.join("\n"));
}

#[test]
fn remote_hosts_in_examples_are_documentation_addresses() {
    for (name, roster) in examples() {
        for agent in roster["agents"].as_array().unwrap() {
            for key in ["host", "ssh"] {
                let Some(value) = agent.get(key).and_then(Value::as_str) else {
                    continue;
                };
                let host = value.rsplit('@').next().unwrap();
                let doc_ip = ipv4s(host)
                    .first()
                    .copied()
                    .is_some_and(is_documentation_v4);
                let doc_name = [
                    ".example",
                    ".test",
                    ".invalid",
                    "example.com",
                    "example.net",
                    "example.org",
                ]
                .iter()
                .any(|s| host.ends_with(s));
                assert!(
                    doc_ip || doc_name,
                    "{name}.yaml: {key}: {value} is not a documentation address (RFC 5737 / RFC 2606)"
                );
            }
        }
    }
}

#[test]
fn shipped_text_is_ascii_path_safe() {
    // Paths become tmux/systemd arguments and manifest keys: keep them plain.
    for (rel, _) in framework_files() {
        assert!(
            rel.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._@-".contains(c)),
            "odd file name: {rel}"
        );
        assert!(!Path::new(&rel).is_absolute());
    }
}
