//! `cargo xtask dist` and `packaging/install.sh` (SPEC §9): the artefacts
//! exist and verify, the .deb passes `dpkg-deb --info/--contents`, installs
//! into a scratch root with `dpkg --root` and is lintian-clean, dist is
//! reproducible, and install.sh installs from (and uninstalls after) a
//! loopback release server in a scratch HOME, with and without `minisign`
//! and `curl` on PATH. The binary packaged is a stripped copy of the debug
//! build (a release build would be too slow for the test suite); every
//! signing key is generated here. Tests that need dpkg, lintian, minisign,
//! wget or script skip with a reason when it is missing, and fail instead
//! under `MOSAIC_REQUIRE_REAL=1` (CI).

mod common;
mod selfupdate_support;

use selfupdate_support::{
    run_in, sha256, show, small_mosaic, target, xtask_bin, Keys, Release, Server,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Dist {
    _dir: tempfile::TempDir,
    out: PathBuf,
    keys: Keys,
    version: String,
}

fn dist() -> Dist {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let out = dir.path().join("dist");
    let bin = small_mosaic();
    let o = run_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &xtask_bin(),
        &[
            "dist",
            "--binary",
            bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[("MOSAIC_SIGNING_KEY", &keys.secret_text)],
    );
    assert!(o.status.success(), "{}", show(&o));
    Dist {
        _dir: dir,
        out,
        keys,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

#[test]
fn dist_builds_verifiable_artefacts_a_deb_and_an_installer() {
    if !have_deb_tools(&["dpkg"]) {
        return;
    }
    let d = dist();
    let t = target();
    let v = &d.version;
    let archive = format!("mosaic-{v}-{t}.tar.gz");
    let deb = format!("mosaic_{v}_amd64.deb");
    let archive_latest = format!("mosaic-{t}.tar.gz");
    let deb_latest = "mosaic_amd64.deb".to_string();
    let published = [
        archive.clone(),
        archive_latest.clone(),
        deb.clone(),
        deb_latest.clone(),
        "install.sh".to_string(),
        "release.json".to_string(),
    ];
    for f in [
        archive.as_str(),
        deb.as_str(),
        archive_latest.as_str(),
        deb_latest.as_str(),
        "install.sh",
        "release.json",
        "SHA256SUMS",
        "SHA256SUMS.minisig",
        "man/mosaic.1",
        "man/mosaic-install.1",
        "man/mosaic-fleet-ps.1",
        "man/mosaic-agent-send.1",
        "completions/mosaic.bash",
        "completions/_mosaic",
        "completions/mosaic.fish",
    ] {
        assert!(d.out.join(f).is_file(), "missing {f}");
    }

    // SHA256SUMS lists every published artefact, correctly, each has its
    // own NAME.sha256, and the signature verifies with the key (as `mosaic
    // update` checks it). The version-less names are the same bytes.
    let sums = std::fs::read_to_string(d.out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), published.len(), "{sums}");
    for f in &published {
        let line = format!("{}  {f}", sha256(&std::fs::read(d.out.join(f)).unwrap()));
        assert!(
            sums.lines().any(|l| l == line),
            "{f} not in SHA256SUMS:\n{sums}"
        );
        assert_eq!(
            std::fs::read_to_string(d.out.join(format!("{f}.sha256"))).unwrap(),
            format!("{line}\n")
        );
    }
    let read = |f: &str| std::fs::read(d.out.join(f)).unwrap();
    assert!(read(&archive) == read(&archive_latest));
    assert!(read(&deb) == read(&deb_latest));

    // release.json names the version, the target and every other artefact
    // with its sha256 and size.
    let manifest: serde_json::Value = serde_json::from_slice(&read("release.json")).unwrap();
    assert_eq!(manifest["version"], v.as_str());
    assert_eq!(manifest["targets"], serde_json::json!([t]));
    let listed = manifest["artefacts"].as_array().unwrap();
    assert_eq!(listed.len(), published.len() - 1, "{manifest:#}");
    for a in listed {
        let name = a["name"].as_str().unwrap();
        let bytes = read(name);
        assert_eq!(a["sha256"], sha256(&bytes).as_str(), "{name}");
        assert_eq!(a["size"], bytes.len(), "{name}");
    }
    let kind_of = |n: &str| {
        listed
            .iter()
            .find(|a| a["name"] == n)
            .map(|a| a["kind"].clone())
    };
    assert_eq!(kind_of(&archive), Some("archive".into()));
    assert_eq!(kind_of(&deb_latest), Some("deb".into()));

    // The archive carries the licences and the third-party notices.
    for f in ["LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY-LICENSES"] {
        let root_copy = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let shipped = tar_member(&d.out.join(&archive), &format!("/{f}"));
        if f != "THIRD-PARTY-LICENSES" {
            assert!(shipped == std::fs::read(root_copy).unwrap(), "{f}");
        }
    }
    let third =
        String::from_utf8(tar_member(&d.out.join(&archive), "/THIRD-PARTY-LICENSES")).unwrap();
    // Linked crates are listed with their licence text; dev-dependencies,
    // build-only and proc-macro crates are not (they are not in the binary).
    for linked in ["\nclap ", "\nserde ", "\nureq ", "\nminisign-verify "] {
        assert!(third.contains(linked), "{linked:?} missing");
    }
    for absent in ["\nproptest ", "\nassert_cmd ", "\nserde_derive ", "\nsyn "] {
        assert!(!third.contains(absent), "{absent:?} listed");
    }
    assert!(third.contains("Permission is hereby granted"));
    assert!(third.contains("Apache License"));
    let pk = minisign::PublicKey::from_base64(&d.keys.public_b64).unwrap();
    let sig = minisign::SignatureBox::from_string(
        &std::fs::read_to_string(d.out.join("SHA256SUMS.minisig")).unwrap(),
    )
    .unwrap();
    minisign::verify(
        &pk,
        &sig,
        std::io::Cursor::new(sums.as_bytes()),
        true,
        false,
        false,
    )
    .unwrap();

    // Completions (the dynamic registrations: they ask the binary) and the
    // man pages come from clap; the archive carries every page and the docs
    // `mosaic docs` lists, byte for byte what the binary prints.
    let bash = std::fs::read_to_string(d.out.join("completions/mosaic.bash")).unwrap();
    assert!(bash.contains("_clap_complete_mosaic()") && bash.contains("MOSAIC_COMPLETE=\"bash\""));
    assert!(std::fs::read_to_string(d.out.join("completions/_mosaic"))
        .unwrap()
        .starts_with("#compdef mosaic"));
    assert!(
        std::fs::read_to_string(d.out.join("completions/mosaic.fish"))
            .unwrap()
            .contains("--command mosaic")
    );
    assert!(std::fs::read_to_string(d.out.join("man/mosaic.1"))
        .unwrap()
        .contains(".TH mosaic 1"));
    let pages: Vec<String> = std::fs::read_dir(d.out.join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(pages.len() > 20, "{pages:?}");
    for page in &pages {
        let shipped = tar_member(&d.out.join(&archive), &format!("/man/{page}"));
        assert!(
            shipped == std::fs::read(d.out.join("man").join(page)).unwrap(),
            "{page}"
        );
    }
    for topic in ["install-and-update", "fleet", "runtimes", "self-update"] {
        let shipped = tar_member(&d.out.join(&archive), &format!("/docs/{topic}.md"));
        let repo =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/{topic}.md")))
                .unwrap();
        assert!(shipped == repo, "docs/{topic}.md differs in the archive");
    }

    // The .deb: metadata and contents.
    let debp = d.out.join(&deb);
    let info = Command::new("dpkg-deb")
        .arg("--info")
        .arg(&debp)
        .output()
        .unwrap();
    assert!(info.status.success(), "{}", show(&info));
    let info = String::from_utf8_lossy(&info.stdout);
    for want in [
        "Package: mosaic",
        &format!("Version: {v}"),
        "Architecture: amd64",
        "Maintainer: ",
        "Description: ",
    ] {
        assert!(info.contains(want), "{want:?} not in\n{info}");
    }
    let contents = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&debp)
        .output()
        .unwrap();
    assert!(contents.status.success(), "{}", show(&contents));
    let contents = String::from_utf8_lossy(&contents.stdout);
    for want in [
        "-rwxr-xr-x root/root",
        "./usr/bin/mosaic",
        "./usr/share/bash-completion/completions/mosaic",
        "./usr/share/zsh/vendor-completions/_mosaic",
        "./usr/share/fish/vendor_completions.d/mosaic.fish",
        "./usr/share/man/man1/mosaic.1.gz",
        "./usr/share/man/man1/mosaic-fleet-ps.1.gz",
        "./usr/share/man/man1/mosaic-agent-send.1.gz",
        "./usr/share/doc/mosaic/fleet.md.gz",
        "./usr/share/doc/mosaic/install-and-update.md.gz",
        "./usr/share/doc/mosaic/copyright",
        "./usr/share/doc/mosaic/changelog.gz",
        "./usr/share/doc/mosaic/LICENSE-MIT",
        "./usr/share/doc/mosaic/LICENSE-APACHE.gz",
        "./usr/share/doc/mosaic/THIRD-PARTY-LICENSES.gz",
    ] {
        assert!(contents.contains(want), "{want:?} not in\n{contents}");
    }
    assert!(!contents.contains("DEBIAN"), "{contents}");

    // Installs into a scratch root.
    let root = d._dir.path().join("root");
    for sub in ["var/lib/dpkg/updates", "var/lib/dpkg/info", "var/log"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    // The scratch root's dpkg database knows the packages the .deb
    // depends on as this host has them, so the Depends: dpkg-shlibdeps
    // derived must be satisfied by the host's own libc6 and libgcc-s1.
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .expect("the .deb has a Depends: field")
        .to_string();
    let host_status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let mut seeded = String::new();
    for dep in depends.split(',') {
        let name = dep.split_whitespace().next().unwrap();
        let para = host_status
            .split("\n\n")
            .find(|p| p.lines().next() == Some(&format!("Package: {name}")))
            .unwrap_or_else(|| panic!("the host has no {name} installed"));
        seeded.push_str(para.trim_end());
        seeded.push_str("\n\n");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), seeded).unwrap();
    let inst = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-not-root", "--force-script-chrootless", "-i"])
        .arg(&debp)
        .output()
        .unwrap();
    assert!(inst.status.success(), "{}", show(&inst));
    let installed = root.join("usr/bin/mosaic");
    let shipped = tar_member(&d.out.join(&archive), "/mosaic");
    assert!(std::fs::read(&installed).unwrap() == shipped);
    let ver = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ver.stdout).trim(),
        format!("mosaic {v}")
    );
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(
        status.contains("Package: mosaic") && status.contains("Status: install ok installed"),
        "{status}"
    );
    // The docs are where `--help` says they are, and are what `mosaic
    // docs` prints; every page has its man page.
    let help = Command::new(&installed).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("/usr/share/doc/mosaic/"));
    for topic in ["fleet", "install-and-update"] {
        let gz = std::fs::read(root.join(format!("usr/share/doc/mosaic/{topic}.md.gz"))).unwrap();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
        let printed = Command::new(&installed)
            .args(["docs", topic])
            .output()
            .unwrap();
        assert!(
            text == printed.stdout,
            "{topic}.md.gz is not what `mosaic docs {topic}` prints"
        );
    }
    for page in std::fs::read_dir(d.out.join("man")).unwrap() {
        let name = page.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            root.join(format!("usr/share/man/man1/{name}.gz")).is_file(),
            "{name} not installed"
        );
    }

    // install.sh: from a loopback server serving the dist artefacts, into a
    // scratch HOME; it checks the sha256, installs to ~/.local/bin, runs
    // `mosaic install`.
    let mut assets = Vec::new();
    for f in [
        archive.as_str(),
        "SHA256SUMS",
        "SHA256SUMS.minisig",
        "install.sh",
        // The self-update below reads it (issue 13).
        "release.json",
    ] {
        assets.push((f.to_string(), std::fs::read(d.out.join(f)).unwrap()));
    }
    let server = Server::start(&[Release {
        tag: format!("v{v}"),
        assets,
    }]);
    let home = d._dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let pubkey = d._dir.path().join("test-key.pub");
    std::fs::write(&pubkey, &d.keys.public_text).unwrap();
    let sh = Command::new("sh")
        .arg(d.out.join("install.sh"))
        .arg("-y")
        .arg("--pubkey")
        .arg(&pubkey)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("MOSAIC_RELEASE_URL", server.release_url())
        .env("MOSAIC_TARGET", &t)
        .env("MOSAIC_SYSTEMCTL", "/bin/false")
        .output()
        .unwrap();
    let text = show(&sh);
    println!("{text}");
    assert!(sh.status.success(), "{text}");
    let bin = home.join(".local/bin/mosaic");
    assert!(std::fs::read(&bin).unwrap() == shipped, "{text}");
    assert!(
        home.join(".config/mosaic/.mosaic/manifest.json").is_file(),
        "{text}"
    );
    assert!(
        home.join(".config/mosaic/fleet/roster.schema.json")
            .is_file(),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&sh.stderr).contains(&format!("sha256 of {archive} verified")),
        "{text}"
    );
    if common::which("minisign").is_some() {
        assert!(
            String::from_utf8_lossy(&sh.stderr).contains("signature of SHA256SUMS verified"),
            "{text}"
        );
    }
    let reqs = server.requests();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("/api/v1/repos/ops/mosaic/releases")),
        "{reqs:?}"
    );

    // The whole pipeline: an older mosaic (MOSAIC_SELF_VERSION, debug
    // only) updates itself from the artefacts `dist` signed.
    let older = d._dir.path().join("older");
    std::fs::create_dir_all(&older).unwrap();
    std::fs::copy(&bin, older.join("mosaic")).unwrap();
    let up = Command::new(older.join("mosaic"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("MOSAIC_SYSTEMCTL", "/bin/false")
        .env("MOSAIC_RELEASE_URL", server.release_url())
        .env("MOSAIC_SELF_VERSION", "0.0.1")
        .env("MOSAIC_TRUSTED_PUBKEY", &d.keys.public_b64)
        .arg("update")
        .output()
        .unwrap();
    let text = show(&up);
    println!("{text}");
    assert!(up.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&up.stdout).contains(&format!(
            "updated mosaic 0.0.1 → {v} (sha256 and signature verified)"
        )),
        "{text}"
    );
    // The archive was found through dist's own release.json.
    assert!(
        String::from_utf8_lossy(&up.stdout).contains("archive named by release.json"),
        "{text}"
    );

    // A tampered archive is refused and nothing is installed.
    let mut bad = Release {
        tag: format!("v{v}"),
        assets: Vec::new(),
    };
    for f in [archive.as_str(), "SHA256SUMS", "SHA256SUMS.minisig"] {
        let mut b = std::fs::read(d.out.join(f)).unwrap();
        if f == archive {
            let mid = b.len() / 2;
            b[mid] ^= 1;
        }
        bad.assets.push((f.to_string(), b));
    }
    server.publish(&[bad]);
    let home2 = d._dir.path().join("home2");
    std::fs::create_dir_all(&home2).unwrap();
    let sh = Command::new("sh")
        .arg(d.out.join("install.sh"))
        .arg("-y")
        .arg("--pubkey")
        .arg(&pubkey)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home2)
        .env("MOSAIC_RELEASE_URL", server.release_url())
        .env("MOSAIC_VERSION", v)
        .env("MOSAIC_TARGET", &t)
        .output()
        .unwrap();
    let text = show(&sh);
    assert!(!sh.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&sh.stderr).contains("sha256 mismatch"),
        "{text}"
    );
    assert!(!home2.join(".local/bin/mosaic").exists(), "{text}");

    // With minisign installed, a release whose signature file is missing is
    // refused (a fake minisign that would accept anything proves the
    // refusal does not depend on it).
    let fakebin = d._dir.path().join("fakebin");
    std::fs::create_dir_all(&fakebin).unwrap();
    std::fs::write(fakebin.join("minisign"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        fakebin.join("minisign"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut unsigned = Release {
        tag: format!("v{v}"),
        assets: Vec::new(),
    };
    for f in [archive.as_str(), "SHA256SUMS"] {
        unsigned
            .assets
            .push((f.to_string(), std::fs::read(d.out.join(f)).unwrap()));
    }
    server.publish(&[unsigned]);
    let home3 = d._dir.path().join("home3");
    std::fs::create_dir_all(&home3).unwrap();
    let sh = Command::new("sh")
        .arg(d.out.join("install.sh"))
        .arg("-y")
        .arg("--pubkey")
        .arg(&pubkey)
        .stdin(Stdio::null())
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", fakebin.display()),
        )
        .env("HOME", &home3)
        .env("MOSAIC_RELEASE_URL", server.release_url())
        .env("MOSAIC_VERSION", v)
        .env("MOSAIC_TARGET", &t)
        .output()
        .unwrap();
    let text = show(&sh);
    assert!(!sh.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&sh.stderr).contains("no SHA256SUMS.minisig"),
        "{text}"
    );
    assert!(!home3.join(".local/bin/mosaic").exists(), "{text}");
}

/// The bytes of the archive member whose path ends with `suffix`.
fn tar_member(archive: &Path, suffix: &str) -> Vec<u8> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap());
    let mut tar = tar::Archive::new(gz);
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().ends_with(suffix) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("{} holds no *{suffix}", archive.display());
}

#[test]
fn dist_refuses_to_run_without_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let bin = small_mosaic();
    let out = dir.path().join("dist");
    let o = Command::new(xtask_bin())
        .args([
            "dist",
            "--binary",
            bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env_remove("MOSAIC_SIGNING_KEY")
        .env_remove("MOSAIC_SIGNING_KEY_FILE")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no signing key"),
        "{}",
        show(&o)
    );
}

#[test]
fn install_sh_is_posix_and_carries_the_release_key() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
            .unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    let pubkey = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/minisign.pub"),
    )
    .unwrap();
    let b64 = pubkey.lines().last().unwrap().trim();
    assert!(
        script.contains(&format!("PUBKEY=\"{b64}\"")),
        "install.sh and packaging/minisign.pub disagree"
    );
    for shell in ["sh", "dash"] {
        if have(shell) {
            let o = Command::new(shell)
                .arg("-n")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
                .output()
                .unwrap();
            assert!(o.status.success(), "{shell} -n: {}", show(&o));
        }
    }
    if have("shellcheck") {
        let o = Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
    }
}

/// Runs `cargo xtask dist` on the small binary into `out` with `envs`.
fn run_dist(out: &Path, envs: &[(&str, &str)]) -> std::process::Output {
    let bin = small_mosaic();
    run_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &xtask_bin(),
        &[
            "dist",
            "--binary",
            bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        envs,
    )
}

/// The programs `cargo xtask dist` needs to build the .deb; `false` (after
/// a skip message, or a panic under `MOSAIC_REQUIRE_REAL=1`) when one is
/// missing.
fn have_deb_tools(extra: &[&str]) -> bool {
    for prog in ["dpkg-deb", "dpkg-shlibdeps", "strip"].iter().chain(extra) {
        if !have(prog) {
            common::skip(&format!(
                "{prog} is not installed (apt-get install dpkg-dev binutils lintian)"
            ));
            return false;
        }
    }
    true
}

/// Every file below `dir`, relative, sorted.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

/// `lintian -I -E --pedantic` on the .deb reports no error and no warning
/// (`embedded-library libyaml` is a false positive, overridden in the
/// package by `packaging/deb/lintian-overrides`: lintian matches the
/// message "did not find expected <stream-start>", which the pure-Rust
/// saphyr-parser shares with libyaml; [`no_libyaml_in_the_dependency_tree`]
/// proves no libyaml is linked, and no other tag is overridden), and every info it still prints is explained in
/// docs/releasing.md. Two dist runs with the same `SOURCE_DATE_EPOCH` give
/// byte-identical artefacts, and the .deb's files carry that date.
#[test]
fn deb_is_lintian_clean_and_dist_is_reproducible() {
    if !have_deb_tools(&["lintian"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let epoch = "1767323096"; // 2026-01-02 03:04:56 UTC
    let envs = [
        ("SOURCE_DATE_EPOCH", epoch),
        ("MOSAIC_SIGNING_KEY", keys.secret_text.as_str()),
    ];
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for out in [&a, &b] {
        let o = run_dist(out, &envs);
        assert!(o.status.success(), "{}", show(&o));
    }
    let v = env!("CARGO_PKG_VERSION");
    let deb = a.join(format!("mosaic_{v}_amd64.deb"));

    // Reproducible: the same files, the same bytes (but the signature:
    // minisign's signatures are randomised; both verify).
    let files = files_below(&a);
    assert_eq!(files, files_below(&b));
    for f in files.iter().filter(|f| !f.ends_with("SHA256SUMS.minisig")) {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{} differs between two dist runs with SOURCE_DATE_EPOCH={epoch}",
            f.display()
        );
    }
    let contents = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(contents.status.success(), "{}", show(&contents));
    let contents = String::from_utf8_lossy(&contents.stdout);
    for line in contents.lines() {
        assert!(
            line.contains(" 2026-01-02 03:04 "),
            "not dated SOURCE_DATE_EPOCH: {line}"
        );
    }

    // lintian, with no user or site configuration, unpacking in our temp dir.
    let o = Command::new("lintian")
        .args(["--no-cfg", "-I", "-E", "--pedantic", "--show-overrides"])
        .arg(&deb)
        .env("TMPDIR", dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("lintian:\n{text}");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/releasing.md"))
            .unwrap();
    let mut bad = Vec::new();
    for line in text.lines() {
        let Some((level, rest)) = line.split_once(": mosaic") else {
            continue;
        };
        let tag = rest
            .trim_start_matches([':', ' '])
            .split_whitespace()
            .next()
            .unwrap_or("");
        match level {
            "E" | "W" => bad.push(line.to_string()),
            "O" if !(tag == "embedded-library" && line.contains("libyaml")) => bad.push(format!(
                "{line} (overridden, but only libyaml's lookalike may be)"
            )),
            "I" | "P" | "X" if !docs.contains(&format!("`{tag}`")) => {
                bad.push(format!("{line} (not explained in docs/releasing.md)"))
            }
            _ => {}
        }
    }
    assert!(bad.is_empty(), "lintian:\n{}", bad.join("\n"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("I: ") || l.starts_with("E: ")),
        "lintian printed nothing; did it run?\n{}",
        show(&o)
    );
}

/// No YAML crate with libyaml inside (C, or its Rust translation) is in the
/// dependency tree: lintian's `embedded-library libyaml` has nothing to find.
#[test]
fn no_libyaml_in_the_dependency_tree() {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    for name in [
        "unsafe-libyaml",
        "libyaml",
        "serde_yaml",
        "serde_yaml_ng",
        "yaml-rust",
    ] {
        assert!(
            !lock.contains(&format!("name = \"{name}\"\n")),
            "{name} is in Cargo.lock"
        );
    }
}

// ---------------------------------------------------------------------------
// install.sh against a loopback release server (a release of the small
// binary, signed with a key made here), in a scratch HOME.

/// The programs install.sh uses, for a PATH made of exactly these.
const INSTALL_SH_TOOLS: &[&str] = &[
    "sh",
    "uname",
    "mktemp",
    "rm",
    "mkdir",
    "rmdir",
    "cp",
    "chmod",
    "mv",
    "tr",
    "sed",
    "grep",
    "head",
    "tail",
    "awk",
    "cut",
    "sort",
    "tar",
    "gzip",
    "sha256sum",
    "cat",
    "dirname",
    "paste",
    "curl",
    "wget",
    "minisign",
];

/// One scratch install site: a release server, a HOME, the test key.
struct Site {
    dir: tempfile::TempDir,
    home: PathBuf,
    server: Server,
    keys: Keys,
    /// The test key as a minisign public key file (for `--pubkey`).
    pubkey: PathBuf,
    release: Release,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::generate();
        let bin = std::fs::read(small_mosaic()).unwrap();
        let release = Release::signed(env!("CARGO_PKG_VERSION"), &bin, &keys);
        let server = Server::start(std::slice::from_ref(&release));
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let pubkey = dir.path().join("test.pub");
        std::fs::write(&pubkey, &keys.public_text).unwrap();
        Site {
            dir,
            home,
            server,
            keys,
            pubkey,
            release,
        }
    }

    /// A directory of links to the programs install.sh uses, without
    /// `exclude`; `None` (after a skip) when a program in `require` is not
    /// installed here.
    fn toolbin(&self, name: &str, exclude: &[&str], require: &[&str]) -> Option<PathBuf> {
        let bin = self.dir.path().join(name);
        std::fs::create_dir_all(&bin).unwrap();
        for tool in INSTALL_SH_TOOLS.iter().filter(|t| !exclude.contains(t)) {
            match common::which(tool) {
                Some(p) => std::os::unix::fs::symlink(p, bin.join(tool)).unwrap(),
                None if require.contains(tool) => {
                    common::skip(&format!("{tool} is not installed (apt-get install {tool})"));
                    return None;
                }
                None => {}
            }
        }
        Some(bin)
    }

    /// A PATH with every program install.sh may use but minisign, so the
    /// outcome does not depend on whether this host has it.
    fn plain_path(&self) -> String {
        self.toolbin("tools-plain", &["minisign"], &[])
            .unwrap()
            .display()
            .to_string()
    }

    /// `sh install.sh ARGS` in a new session (no controlling terminal, so
    /// it never prompts), with only `path` on PATH, this site's HOME and
    /// server, and `env`. `mosaic install` is skipped unless `env` sets
    /// `MOSAIC_NO_INSTALL` otherwise.
    fn run(&self, script: &Path, args: &[&str], path: &str, env: &[(&str, &str)]) -> Output {
        // Absolute paths: the child's PATH is `path`.
        let sh = common::which("sh").expect("sh");
        let mut c = match common::which("setsid") {
            Some(setsid) => {
                let mut c = Command::new(setsid);
                c.arg("-w").arg(sh);
                c
            }
            None => Command::new(sh),
        };
        c.arg(script)
            .args(args)
            .stdin(Stdio::null())
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("MOSAIC_RELEASE_URL", self.server.release_url())
            .env("MOSAIC_TARGET", target())
            .env("MOSAIC_SYSTEMCTL", "/bin/false")
            .env("MOSAIC_NO_INSTALL", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn install_sh(&self, args: &[&str], path: &str, env: &[(&str, &str)]) -> Output {
        self.run(&install_sh_path(), args, path, env)
    }

    fn receipt(&self) -> String {
        std::fs::read_to_string(self.home.join(".local/state/mosaic/install-receipt"))
            .unwrap_or_default()
    }
}

fn install_sh_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/install.sh")
}

/// Every path below `dir` with its bytes (`None` for a directory).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
            let bytes = e
                .file_type()
                .is_file()
                .then(|| std::fs::read(e.path()).unwrap());
            (rel, bytes)
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn install_sh_help_and_bad_input_install_nothing() {
    let site = Site::new();
    let path = site.plain_path();
    let o = site.install_sh(&["--help"], &path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    for want in [
        "Usage: install.sh [OPTIONS]",
        "-y, --yes",
        "-q, --quiet",
        "--version X.Y.Z",
        "--bin-dir DIR",
        "$XDG_BIN_HOME",
        "--no-modify-path",
        "--pubkey FILE",
        "--uninstall",
        "-h, --help",
    ] {
        assert!(help.contains(want), "{want:?} not in --help:\n{help}");
    }
    let junk_key = site.dir.path().join("junk.pub");
    std::fs::write(&junk_key, "not a key\n").unwrap();
    let junk = junk_key.to_str().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--bogus"], &[], "unknown option --bogus"),
        (
            &["-y", "--version", "1.2"],
            &[],
            "--version 1.2 is not X.Y.Z",
        ),
        (&["-y", "--version"], &[], "--version needs a value"),
        (&["-y", "--bin-dir="], &[], "--bin-dir needs a value"),
        (
            &["-y", "--bin-dir", "rel/bin"],
            &[],
            "is not an absolute path",
        ),
        (
            &["-y", "--pubkey", "/nonexistent/key.pub"],
            &[],
            "no such readable file",
        ),
        (
            &["-y", "--pubkey", junk],
            &[],
            "is not a minisign public key file",
        ),
        (
            &["-y"],
            &[("MOSAIC_RELEASE_URL", "http://example.org/ops/mosaic")],
            "must use https",
        ),
        (&["-y"], &[("MOSAIC_VERSION", "latest")], "is not X.Y.Z"),
        (&["-y", "--uninstall"], &[], "no receipt at"),
    ];
    for (args, env, want) in cases {
        let o = site.install_sh(args, &path, env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", show(&o));
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
        assert!(
            err.starts_with("mosaic-install: error: ") && err.contains(want),
            "{args:?}: {want:?} not in {err}"
        );
    }
    assert!(
        snapshot(&site.home).is_empty(),
        "{:?}",
        snapshot(&site.home)
    );
    assert!(
        site.server.requests().is_empty(),
        "{:?}",
        site.server.requests()
    );
}

/// A download cut off anywhere before the last line runs nothing: non-zero,
/// no request to the server, nothing in HOME.
#[test]
fn install_sh_cut_off_installs_nothing() {
    let site = Site::new();
    let path = site.plain_path();
    let full = std::fs::read_to_string(install_sh_path()).unwrap();
    assert!(full.ends_with("\nmain \"$@\" || exit 1\n"));
    let lines: Vec<&str> = full.lines().collect();
    let n = lines.len();
    let mut cuts: Vec<String> = [n / 4, n / 2, 3 * n / 4, n - 1]
        .iter()
        .map(|&k| lines[..k].join("\n") + "\n")
        .collect();
    // Mid-line, inside the last line.
    cuts.push(lines[..n - 1].join("\n") + "\nmai");
    cuts.push(full[..full.len() / 3].to_string());
    for (i, text) in cuts.iter().enumerate() {
        let script = site.dir.path().join(format!("cut{i}.sh"));
        std::fs::write(&script, text).unwrap();
        let o = site.run(&script, &["-y"], &path, &[]);
        assert!(!o.status.success(), "cut {i} exited 0: {}", show(&o));
        assert!(snapshot(&site.home).is_empty(), "cut {i}: {}", show(&o));
    }
    let whole_but_last = site.dir.path().join("cut3.sh");
    let o = site.run(&whole_but_last, &["-y"], &path, &[]);
    assert!(stderr(&o).contains("cut off"), "{}", show(&o));
    assert!(
        site.server.requests().is_empty(),
        "{:?}",
        site.server.requests()
    );
}

/// `-y` installs; the receipt records version, target, URL, the binary,
/// the profiles edited and the directories made; a second run adds nothing
/// twice; `--uninstall` leaves HOME exactly as it was before.
#[test]
fn install_sh_installs_records_a_receipt_and_uninstalls_exactly() {
    let site = Site::new();
    let path = site.plain_path();
    let home = &site.home;
    let v = env!("CARGO_PKG_VERSION");
    let t = target();
    std::fs::write(home.join(".bashrc"), "alias ll='ls -l'").unwrap(); // no final newline
    let before = snapshot(home);

    let o = site.install_sh(&["-y"], &path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    let bin = home.join(".local/bin/mosaic");
    assert!(std::fs::read(&bin).unwrap() == std::fs::read(small_mosaic()).unwrap());
    let line = format!("export PATH=\"{}/.local/bin:$PATH\"", home.display());
    let marked = format!("{line} # added by mosaic install.sh");
    assert!(
        stderr(&o).lines().any(|l| l == line),
        "the exact PATH line is not printed:\n{}",
        show(&o)
    );
    assert_eq!(
        std::fs::read_to_string(home.join(".profile")).unwrap(),
        format!("{marked}\n")
    );
    assert_eq!(
        std::fs::read_to_string(home.join(".bashrc")).unwrap(),
        format!("alias ll='ls -l'\n{marked}\n")
    );
    assert!(!home.join(".zshrc").exists());
    let receipt = site.receipt();
    let h = home.display();
    for want in [
        format!("version={v}"),
        format!("target={t}"),
        format!(
            "url={}/releases/download/v{v}/mosaic-{v}-{t}.tar.gz",
            site.server.release_url()
        ),
        format!("binary={h}/.local/bin/mosaic"),
        format!("profile={h}/.profile"),
        format!("profile={h}/.bashrc"),
        format!("created={h}/.profile"),
        format!("path_line={marked}"),
        format!("dir={h}/.local/bin"),
        format!("dir={h}/.local"),
        format!("dir={h}/.local/state/mosaic"),
        format!("dir={h}/.local/state"),
    ] {
        assert!(
            receipt.lines().any(|l| l == want),
            "{want:?} not in receipt:\n{receipt}"
        );
    }

    // Again: nothing is added twice.
    let o = site.install_sh(&["-y"], &path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    for f in [".profile", ".bashrc"] {
        let text = std::fs::read_to_string(home.join(f)).unwrap();
        assert_eq!(text.matches(&marked).count(), 1, "{f}:\n{text}");
    }
    let lines = |r: &str| {
        r.lines()
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(lines(&site.receipt()), lines(&receipt));

    // The operator adds a line of their own after ours; uninstall keeps it.
    let mut bashrc = std::fs::read_to_string(home.join(".bashrc")).unwrap();
    bashrc.push_str("export EDITOR=vi\n");
    std::fs::write(home.join(".bashrc"), &bashrc).unwrap();
    let o = site.install_sh(&["-y", "--uninstall"], &path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        std::fs::read_to_string(home.join(".bashrc")).unwrap(),
        "alias ll='ls -l'\nexport EDITOR=vi\n"
    );
    std::fs::write(home.join(".bashrc"), "alias ll='ls -l'").unwrap();
    assert_eq!(snapshot(home), before, "{}", show(&o));

    let o = site.install_sh(&["-y", "--uninstall"], &path, &[]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("no receipt"), "{}", show(&o));
}

/// `--no-modify-path` edits no profile and prints the line; `-q` prints
/// only warnings; `XDG_BIN_HOME` is the default directory and `--bin-dir`
/// overrides it; `--version` skips the releases API; a directory already
/// on PATH needs no line; uninstall removes every binary the receipt lists.
#[test]
fn install_sh_no_modify_path_quiet_and_bin_dirs() {
    let site = Site::new();
    let path = site.plain_path();
    let home = &site.home;
    let v = env!("CARGO_PKG_VERSION");
    let xdg = home.join("xdg-bin");
    let xdg_s = xdg.to_str().unwrap();

    let o = site.install_sh(
        &["-y", "-q", "--no-modify-path", "--version", v],
        &path,
        &[("XDG_BIN_HOME", xdg_s)],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(xdg.join("mosaic").is_file());
    assert!(!home.join(".profile").exists() && !home.join(".local/bin").exists());
    let line = format!("export PATH=\"{xdg_s}:$PATH\"");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.contains(&line.as_str()), "{err}");
    for l in &lines {
        assert!(
            *l == line || l.starts_with("mosaic-install: warning: "),
            "-q printed {l:?}"
        );
    }
    assert!(!site.receipt().contains("profile="), "{}", site.receipt());
    assert!(
        !site
            .server
            .requests()
            .iter()
            .any(|r| r.starts_with("/api/")),
        "--version still asked the API: {:?}",
        site.server.requests()
    );

    // --bin-dir wins over XDG_BIN_HOME; a directory on PATH needs no line.
    let explicit = home.join("explicit");
    let o = site.install_sh(
        &["-y", "--bin-dir", explicit.to_str().unwrap()],
        &format!("{}:{path}", explicit.display()),
        &[("XDG_BIN_HOME", xdg_s)],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(explicit.join("mosaic").is_file());
    assert!(!stderr(&o).contains("export PATH="), "{}", show(&o));
    assert!(!home.join(".profile").exists());
    assert!(site
        .server
        .requests()
        .iter()
        .any(|r| r.starts_with("/api/")));

    let o = site.install_sh(&["-y", "--uninstall"], &path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(snapshot(home).is_empty(), "{:?}", snapshot(home));
}

/// On a terminal install.sh asks first: "n" installs nothing; `-y` does
/// not ask.
#[test]
fn install_sh_asks_on_a_terminal_unless_y() {
    if !have("script") {
        common::skip("script is not installed (apt-get install bsdutils)");
        return;
    }
    let site = Site::new();
    let path = site.plain_path();
    let on_tty = |args: &str, input: &str| {
        let cmd = format!("sh {} {args}", install_sh_path().display());
        let mut child = Command::new(common::which("script").unwrap())
            .args(["-qec", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &site.home)
            .env("MOSAIC_RELEASE_URL", site.server.release_url())
            .env("MOSAIC_TARGET", target())
            .env("MOSAIC_NO_INSTALL", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        // Keep the terminal open until the script has read its answer.
        let out = std::thread::spawn(move || child.wait_with_output().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(stdin);
        out.join().unwrap()
    };
    let o = on_tty("", "n\n");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!o.status.success(), "{}", show(&o));
    assert!(text.contains("[Y/n]"), "{text}");
    assert!(text.contains("cancelled; nothing was installed"), "{text}");
    assert!(!site.home.join(".local/bin/mosaic").exists(), "{text}");

    let o = on_tty("-y --no-modify-path", "");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{}", show(&o));
    assert!(!text.contains("[Y/n]"), "{text}");
    assert!(site.home.join(".local/bin/mosaic").is_file(), "{text}");
}

/// With minisign on PATH the signature is checked, against `--pubkey` or
/// else the key built into the script (which did not sign this test
/// release, so it refuses); a bad or missing signature is refused. Without
/// minisign only the sha256 is checked, and install.sh says so.
#[test]
fn install_sh_checks_the_signature_when_minisign_is_installed() {
    let site = Site::new();
    let key = site.pubkey.to_str().unwrap();
    let bin = site.home.join(".local/bin/mosaic");

    // Without minisign.
    let path = site.plain_path();
    let o = site.install_sh(&["-y", "--no-modify-path", "--pubkey", key], &path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stderr(&o).contains("minisign is not installed"),
        "{}",
        show(&o)
    );
    assert!(stderr(&o).contains("sha256 of mosaic-"), "{}", show(&o));
    std::fs::remove_file(&bin).unwrap();

    // With it.
    let Some(tools) = site.toolbin("tools-minisign", &[], &["minisign"]) else {
        return;
    };
    let path = tools.to_str().unwrap();
    let o = site.install_sh(&["-y", "--no-modify-path", "--pubkey", key], path, &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stderr(&o).contains("signature of SHA256SUMS verified"),
        "{}",
        show(&o)
    );
    assert!(bin.is_file());
    std::fs::remove_file(&bin).unwrap();

    let o = site.install_sh(&["-y", "--no-modify-path"], path, &[]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", show(&o));
    assert!(!bin.exists());

    let other = Keys::generate();
    let mut forged = site.release.clone();
    forged.set(
        "SHA256SUMS.minisig",
        other.sign(site.release.get("SHA256SUMS")).into_bytes(),
    );
    site.server.publish(&[forged]);
    let o = site.install_sh(&["-y", "--no-modify-path", "--pubkey", key], path, &[]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", show(&o));
    assert!(!bin.exists());

    let mut unsigned = site.release.clone();
    unsigned.assets.retain(|(n, _)| n != "SHA256SUMS.minisig");
    site.server.publish(&[unsigned]);
    let o = site.install_sh(&["-y", "--no-modify-path", "--pubkey", key], path, &[]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("no SHA256SUMS.minisig"), "{}", show(&o));
    assert!(!bin.exists());
    let _ = &site.keys;
}

/// Without curl, install.sh downloads with wget.
#[test]
fn install_sh_falls_back_to_wget() {
    let site = Site::new();
    let Some(tools) = site.toolbin("tools-wget", &["curl", "minisign"], &["wget"]) else {
        return;
    };
    let o = site.install_sh(&["-y", "--no-modify-path"], tools.to_str().unwrap(), &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(site.home.join(".local/bin/mosaic").is_file());
    let reqs = site.server.requests();
    assert!(reqs.iter().any(|r| r.ends_with("/SHA256SUMS")), "{reqs:?}");
}

/// The debug `mosaic` built for the host target with `+crt-static` (as
/// `cargo xtask dist` builds the archive's binary), in this target
/// directory's `TARGET/debug/`, where it does not disturb the normal build.
fn static_mosaic() -> PathBuf {
    let t = target();
    let var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        t.to_ascii_uppercase().replace(['-', '.'], "_")
    );
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "mosaic", "--target", &t])
        .env(var, "-C target-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "the static build failed");
    // target/debug/deps/TEST-HASH → target
    let exe = std::env::current_exe().unwrap();
    let root = exe.ancestors().nth(3).unwrap();
    let bin = root.join(&t).join("debug/mosaic");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// Runs `/NAME --version` in `root` as an empty chroot (through `unshare
/// -r` when not root).
fn in_chroot(root: &Path, name: &str) -> Output {
    in_chroot_run(root, &[&format!("/{name}"), "--version"], &[])
}

/// Runs `ARGV` in `root` as a chroot, with only `env` (through `unshare
/// -r` when not root, so the uid inside is 0 either way).
fn in_chroot_run(root: &Path, argv: &[&str], env: &[(&str, &str)]) -> Output {
    let chroot = common::which("chroot").expect("chroot");
    let mut c = if common::euid() == Some(0) {
        Command::new(chroot)
    } else {
        let mut c = Command::new(common::which("unshare").expect("unshare"));
        c.arg("-r").arg(chroot);
        c
    };
    c.arg(root).args(argv).env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The archive's binary is statically linked (glibc with `+crt-static`)
/// and runs in an empty chroot, where the .deb's (dynamic) binary cannot
/// even start; release.json says the archive is static.
#[test]
fn archive_binary_is_static_and_runs_in_an_empty_chroot() {
    let t = target();
    if !t.ends_with("-linux-gnu") {
        common::skip(&format!(
            "the static build is for *-linux-gnu targets, not {t}"
        ));
        return;
    }
    if !have_deb_tools(&["chroot"]) {
        return;
    }
    if common::euid() != Some(0) && !have("unshare") {
        common::skip("not root and unshare is not installed");
        return;
    }
    let static_bin = static_mosaic();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let o = run_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &xtask_bin(),
        &[
            "dist",
            "--unsigned",
            "--binary",
            small_mosaic().to_str().unwrap(),
            "--static-binary",
            static_bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", show(&o));
    let v = env!("CARGO_PKG_VERSION");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let archived = tar_member(&out.join(format!("mosaic-{v}-{t}.tar.gz")), "/mosaic");
    std::fs::write(root.join("mosaic"), archived).unwrap();
    std::fs::set_permissions(
        root.join("mosaic"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let o = in_chroot(&root, "mosaic");
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("mosaic {v}")
    );

    // The .deb's binary needs ld.so and libc, which the chroot lacks.
    let deb_root = dir.path().join("deb");
    let x = Command::new("dpkg-deb")
        .arg("-x")
        .arg(out.join(format!("mosaic_{v}_amd64.deb")))
        .arg(&deb_root)
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", show(&x));
    std::fs::copy(deb_root.join("usr/bin/mosaic"), root.join("dynamic")).unwrap();
    let o = in_chroot(&root, "dynamic");
    assert!(
        !o.status.success(),
        "the dynamic binary ran in the empty chroot: {}",
        show(&o)
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("release.json")).unwrap()).unwrap();
    for a in manifest["artefacts"].as_array().unwrap() {
        if a["kind"] == "archive" {
            assert_eq!(a["static"], true, "{a}");
        }
    }
    // dist refuses a "static" binary that is not.
    let o = run_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &xtask_bin(),
        &[
            "dist",
            "--unsigned",
            "--binary",
            small_mosaic().to_str().unwrap(),
            "--static-binary",
            small_mosaic().to_str().unwrap(),
            "--out",
            dir.path().join("dist2").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is dynamically linked"),
        "{}",
        show(&o)
    );
}

/// The static binary names the user without NSS: in an empty chroot whose
/// `/etc/nsswitch.conf` sends `passwd` to a module that is not there (as
/// an sssd/LDAP host's would, for a static glibc), with no `USER` or
/// `LOGNAME`, `doctor`'s linger fix names the `/etc/passwd` entry of the
/// uid (getpwuid would have found nothing and left the bare uid).
#[test]
fn static_binary_reads_the_user_name_from_etc_passwd_not_nss() {
    let t = target();
    if !t.ends_with("-linux-gnu") {
        common::skip(&format!(
            "the static build is for *-linux-gnu targets, not {t}"
        ));
        return;
    }
    if !have_deb_tools(&["chroot"]) {
        return;
    }
    if common::euid() != Some(0) && !have("unshare") {
        common::skip("not root and unshare is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["etc", "h"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(static_mosaic(), root.join("mosaic")).unwrap();
    // Inside the chroot the uid is 0 (root, or mapped by `unshare -r`).
    std::fs::write(
        root.join("etc/passwd"),
        "chrootop:x:0:0:operator:/h:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/nsswitch.conf"), "passwd: ldap\n").unwrap();
    let o = in_chroot_run(
        root,
        &["/mosaic", "--json", "--home", "/h/mosaic", "doctor"],
        &[("HOME", "/h")],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("loginctl enable-linger chrootop"),
        "{}",
        show(&o)
    );
}
