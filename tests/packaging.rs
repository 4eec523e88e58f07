//! `cargo xtask dist` and `packaging/install.sh` (SPEC §9, issue 6): the
//! artefacts exist and verify, the .deb passes `dpkg-deb --info/--contents`
//! and installs into a scratch root with `dpkg --root`, and install.sh
//! installs from a loopback release server into a scratch HOME. The binary
//! packaged is a stripped copy of the debug build (a release build would be
//! too slow for the test suite); the signing key is generated here.

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
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let inst = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-not-root", "--force-script-chrootless", "-i"])
        .arg(&debp)
        .output()
        .unwrap();
    assert!(inst.status.success(), "{}", show(&inst));
    let installed = root.join("usr/bin/mosaic");
    assert!(std::fs::read(&installed).unwrap() == std::fs::read(small_mosaic()).unwrap());
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
    assert!(
        std::fs::read(&bin).unwrap() == std::fs::read(small_mosaic()).unwrap(),
        "{text}"
    );
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
