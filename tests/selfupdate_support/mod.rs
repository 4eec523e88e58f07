//! Test support for self-update and packaging tests (issue 6): a loopback
//! HTTP server with a Gitea-shaped releases API, release builders (archive,
//! `SHA256SUMS`, minisign signature made with a key generated here), and a
//! stripped copy of the debug `mosaic` binary (small archives keep the tests
//! fast). No private key is committed: every key is generated per test.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The target triple the binary under test was built for (the build host).
pub fn target() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("host line")
        .to_string()
}

/// A stripped copy of the debug `mosaic` binary (once per test process).
pub fn small_mosaic() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mosaic-small-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("mosaic");
        std::fs::copy(env!("CARGO_BIN_EXE_mosaic"), &p).unwrap();
        // Without strip the tests still pass, only slower.
        let _ = std::process::Command::new("strip").arg(&p).status();
        p
    })
    .clone()
}

/// A minisign keypair made for one test.
pub struct Keys {
    /// Public key, base64 (for `MOSAIC_TRUSTED_PUBKEY`).
    pub public_b64: String,
    /// Public key file text.
    pub public_text: String,
    /// Secret key file text (unencrypted).
    pub secret_text: String,
    sk: minisign::SecretKey,
}

impl Keys {
    /// A fresh keypair.
    pub fn generate() -> Keys {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        Keys {
            public_b64: kp.pk.to_base64(),
            public_text: kp.pk.to_box().unwrap().into_string(),
            secret_text: kp.sk.to_box(None).unwrap().into_string(),
            sk: kp.sk,
        }
    }

    /// A minisign signature (file text) of `data`.
    pub fn sign(&self, data: &[u8]) -> String {
        minisign::sign(None, &self.sk, data, Some("file:SHA256SUMS"), None)
            .unwrap()
            .into_string()
    }
}

/// `mosaic-V-T.tar.gz` holding `mosaic-V-T/mosaic` = `bin`.
pub fn archive(version: &str, target: &str, bin: &[u8]) -> (String, Vec<u8>) {
    let stem = format!("mosaic-{version}-{target}");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(bin.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, format!("{stem}/mosaic"), bin)
        .unwrap();
    let bytes = tar.into_inner().unwrap().finish().unwrap();
    (format!("{stem}.tar.gz"), bytes)
}

/// sha256 hex.
pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One release: tag and assets (name → bytes).
#[derive(Clone)]
pub struct Release {
    /// e.g. `v0.2.0`.
    pub tag: String,
    /// Asset name → bytes, in listing order.
    pub assets: Vec<(String, Vec<u8>)>,
}

impl Release {
    /// A well-formed signed release carrying `bin` (and any `extra` assets).
    pub fn signed(version: &str, bin: &[u8], keys: &Keys) -> Release {
        let (name, bytes) = archive(version, &target(), bin);
        let sums = format!("{}  {name}\n", sha256(&bytes));
        let sig = keys.sign(sums.as_bytes());
        Release {
            tag: format!("v{version}"),
            assets: vec![
                (name, bytes),
                ("SHA256SUMS".into(), sums.into_bytes()),
                ("SHA256SUMS.minisig".into(), sig.into_bytes()),
            ],
        }
    }

    /// A signed release whose archive is called `STEM.tar.gz` (holding
    /// `STEM/mosaic`) and which carries a `release.json` naming it, as
    /// `cargo xtask dist` writes it; `SHA256SUMS` lists both.
    /// `edit_manifest` may change the manifest before it is summed and
    /// signed.
    pub fn signed_with_manifest(
        version: &str,
        stem: &str,
        bin: &[u8],
        keys: &Keys,
        edit_manifest: impl FnOnce(&mut serde_json::Value),
    ) -> Release {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(bin.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, format!("{stem}/mosaic"), bin)
            .unwrap();
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let name = format!("{stem}.tar.gz");
        let mut manifest = serde_json::json!({
            "name": "mosaic",
            "version": version,
            "tag": format!("v{version}"),
            "targets": [target()],
            "artefacts": [{
                "name": name,
                "kind": "archive",
                "sha256": sha256(&bytes),
                "size": bytes.len(),
                "target": target(),
                "static": false,
            }],
            "checksums": "SHA256SUMS",
            "signature": "SHA256SUMS.minisig",
        });
        edit_manifest(&mut manifest);
        let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
        let sums = format!(
            "{}  {name}\n{}  release.json\n",
            sha256(&bytes),
            sha256(&manifest)
        );
        let sig = keys.sign(sums.as_bytes());
        Release {
            tag: format!("v{version}"),
            assets: vec![
                (name, bytes),
                ("release.json".into(), manifest),
                ("SHA256SUMS".into(), sums.into_bytes()),
                ("SHA256SUMS.minisig".into(), sig.into_bytes()),
            ],
        }
    }

    /// Replaces an asset's bytes.
    pub fn set(&mut self, name_suffix: &str, bytes: Vec<u8>) {
        let a = self
            .assets
            .iter_mut()
            .find(|(n, _)| n.ends_with(name_suffix))
            .expect("asset");
        a.1 = bytes;
    }

    /// An asset's bytes.
    pub fn get(&self, name_suffix: &str) -> &[u8] {
        &self
            .assets
            .iter()
            .find(|(n, _)| n.ends_with(name_suffix))
            .expect("asset")
            .1
    }
}

/// A release server on 127.0.0.1, repository `ops/mosaic`: a Gitea-shaped
/// API at `/api/v1` and a GitHub-Enterprise-shaped one at `/api/v3`.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Every request path served (query stripped).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts serving `releases` (newest first, as Gitea lists them).
    pub fn start(releases: &[Release]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let files = Arc::new(Mutex::new(HashMap::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = Server {
            base,
            files: files.clone(),
            log: log.clone(),
        };
        server.publish(releases);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let files = files.clone();
                let log = log.clone();
                std::thread::spawn(move || serve(conn, &files, &log));
            }
        });
        server
    }

    /// The release URL for `MOSAIC_RELEASE_URL`.
    pub fn release_url(&self) -> String {
        format!("{}/ops/mosaic", self.base)
    }

    /// (Re)publishes the release listing and assets.
    pub fn publish(&self, releases: &[Release]) {
        let mut files = self.files.lock().unwrap();
        files.clear();
        let mut list = Vec::new();
        for r in releases {
            let mut assets = Vec::new();
            for (name, bytes) in &r.assets {
                let path = format!("/ops/mosaic/releases/download/{}/{name}", r.tag);
                // Gitea downloads `browser_download_url`; GitHub's API
                // `url` (with Accept: application/octet-stream).
                assets.push(serde_json::json!({
                    "name": name,
                    "size": bytes.len(),
                    "browser_download_url": format!("{}{path}", self.base),
                    "url": format!("{}{path}", self.base),
                }));
                files.insert(path, bytes.clone());
            }
            list.push(serde_json::json!({
                "tag_name": r.tag,
                "name": r.tag,
                "body": "",
                "created_at": "2026-01-01T00:00:00Z",
                "html_url": format!("{}/ops/mosaic/releases/tag/{}", self.base, r.tag),
                "assets": assets,
            }));
        }
        let listing = serde_json::to_vec(&list).unwrap();
        files.insert("/api/v1/repos/ops/mosaic/releases".into(), listing.clone());
        // The same listing in GitHub Enterprise's place (`github+` URLs).
        files.insert("/api/v3/repos/ops/mosaic/releases".into(), listing);
    }

    /// Requests served so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(mut conn: TcpStream, files: &Mutex<HashMap<String, Vec<u8>>>, log: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if req.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&req);
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let body = files.lock().unwrap().get(&path).cloned();
    let (status, ctype, body) = match body {
        Some(b) if path.starts_with("/api/") => ("200 OK", "application/json", b),
        Some(b) => ("200 OK", "application/octet-stream", b),
        None => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
    let _ = conn.flush();
}

/// A port on 127.0.0.1 that nothing listens on.
pub fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/ops/mosaic")
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if e.file_type().is_file() {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The `xtask` binary, built once per test process with the cargo running
/// the tests (a no-op when `cargo test --workspace` already built it).
pub fn xtask_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "xtask"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p xtask");
        assert!(status.success(), "cargo build -p xtask failed");
        // target/debug/deps/TEST-HASH → target/debug/xtask
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("xtask");
        assert!(bin.exists(), "{} not built", bin.display());
        bin
    })
    .clone()
}

/// Runs `program args` in `dir`, returning the output.
pub fn run_in(
    dir: &Path,
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut c = std::process::Command::new(program);
    c.args(args).current_dir(dir);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// stdout and stderr of an output, for assertion messages.
pub fn show(o: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
