//! `cargo xtask dist` and `packaging/install.sh` (SPEC §9, issue 6): the
//! artefacts exist and verify, the .deb passes `dpkg-deb --info/--contents`
//! and installs into a scratch root with `dpkg --root`, and install.sh
//! installs from a loopback release server into a scratch HOME. The binary
//! packaged is a stripped copy of the debug build (a release build would be
//! too slow for the test suite); the signing key is generated here.

mod common;
mod selfupdate_support;

use selfupdate_support::{
    run_in, sha256, show, small_mosaic, target, xtask_bin, Keys, Release, Server,
};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    if !have("dpkg-deb") || !have("dpkg") {
        eprintln!("SKIP: dpkg-deb/dpkg missing (apt-get install dpkg)");
        return;
    }
    let d = dist();
    let t = target();
    let v = &d.version;
    let archive = format!("mosaic-{v}-{t}.tar.gz");
    let deb = format!("mosaic_{v}_amd64.deb");
    for f in [
        archive.as_str(),
        deb.as_str(),
        "install.sh",
        "SHA256SUMS",
        "SHA256SUMS.minisig",
        "mosaic.1",
        "completions/mosaic.bash",
        "completions/_mosaic",
        "completions/mosaic.fish",
    ] {
        assert!(d.out.join(f).is_file(), "missing {f}");
    }

    // SHA256SUMS lists the archive, the .deb and install.sh, correctly, and
    // its signature verifies with the key (as `mosaic update` checks it).
    let sums = std::fs::read_to_string(d.out.join("SHA256SUMS")).unwrap();
    for f in [&archive, &deb, &"install.sh".to_string()] {
        let line = format!("{}  {f}", sha256(&std::fs::read(d.out.join(f)).unwrap()));
        assert!(
            sums.lines().any(|l| l == line),
            "{f} not in SHA256SUMS:\n{sums}"
        );
    }
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

    // Completions and man page come from clap.
    let bash = std::fs::read_to_string(d.out.join("completions/mosaic.bash")).unwrap();
    assert!(bash.contains("_mosaic()") && bash.contains("update"));
    assert!(std::fs::read_to_string(d.out.join("completions/_mosaic"))
        .unwrap()
        .starts_with("#compdef mosaic"));
    assert!(
        std::fs::read_to_string(d.out.join("completions/mosaic.fish"))
            .unwrap()
            .contains("complete -c mosaic")
    );
    assert!(std::fs::read_to_string(d.out.join("mosaic.1"))
        .unwrap()
        .contains(".TH mosaic 1"));

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
        "./usr/share/doc/mosaic/copyright",
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

    // install.sh: from a loopback server serving the dist artefacts, into a
    // scratch HOME; it checks the sha256, installs to ~/.local/bin, runs
    // `mosaic install`.
    let mut assets = Vec::new();
    for f in [
        archive.as_str(),
        "SHA256SUMS",
        "SHA256SUMS.minisig",
        "install.sh",
    ] {
        assets.push((f.to_string(), std::fs::read(d.out.join(f)).unwrap()));
    }
    let server = Server::start(&[Release {
        tag: format!("v{v}"),
        assets,
    }]);
    let home = d._dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let sh = Command::new("sh")
        .arg(d.out.join("install.sh"))
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

    // A tampered archive is refused and nothing is installed.
    let mut bad = Release {
        tag: format!("v{v}"),
        assets: Vec::new(),
    };
    for f in [archive.as_str(), "SHA256SUMS"] {
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
/// (but `embedded-library libyaml`, from serde_yaml_ng, which is being
/// dropped), and every info it still prints is explained in
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
        .args(["--no-cfg", "-I", "-E", "--pedantic"])
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
        let known_libyaml = tag == "embedded-library" && line.contains("libyaml");
        match level {
            "E" | "W" if !known_libyaml => bad.push(line.to_string()),
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
