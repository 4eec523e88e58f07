//! Command-line conventions an operator's shell relies on: colour decided
//! per stream (`--color`, `NO_COLOR` non-empty, `CLICOLOR_FORCE`), so ANSI
//! codes never land in a redirected log.

mod sync_support;

use sync_support::*;

const ESC: &str = "\x1b[";

fn status_out(w: &World, r: &Release, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = w.mosaic(Some(r));
    c.env_remove("NO_COLOR").args(args).arg("status");
    for (k, v) in env {
        c.env(k, v);
    }
    String::from_utf8(c.output().unwrap().stdout).unwrap()
}

#[test]
fn colour_follows_color_no_color_and_clicolor_force_on_stdout() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    w.write("docs/guide.md", "my guide\n");
    // stdout is a pipe here: no colour unless forced.
    assert!(!status_out(&w, &r1, &[], &[]).contains(ESC));
    assert!(status_out(&w, &r1, &[], &[("CLICOLOR_FORCE", "1")]).contains(ESC));
    assert!(status_out(&w, &r1, &["--color", "always"], &[]).contains(ESC));
    // NO_COLOR wins over CLICOLOR_FORCE only when it is non-empty.
    assert!(!status_out(&w, &r1, &[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains(ESC));
    assert!(status_out(&w, &r1, &[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]).contains(ESC));
    assert!(!status_out(&w, &r1, &["--color", "never"], &[("CLICOLOR_FORCE", "1")]).contains(ESC));
    w.mosaic(Some(&r1))
        .args(["--color", "sometimes", "status"])
        .assert()
        .code(2);
}

#[test]
fn stderr_is_judged_on_its_own_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let w = World::new();
    let r1 = v1();
    // A fleet is installed for the default home; installing another home
    // warns (on stderr) that the active units are left alone.
    let units = w.dir.path().join("user/.config/systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("mosaic-tmux-holder.service"), "[Unit]\n").unwrap();
    let scratch = w.dir.path().join("user/scratch");
    let log = w.dir.path().join("stderr.log");
    let bin = assert_cmd::cargo::cargo_bin("mosaic");
    // stdout on a terminal (script's pty), stderr redirected to a file.
    let cmd = format!(
        "env -u NO_COLOR HOME={} MOSAIC_HOME={} MOSAIC_STATE_DIR={} MOSAIC_FRAMEWORK_DIR={} MOSAIC_FRAMEWORK_VERSION={} {} install 2>{}",
        w.dir.path().join("user").display(),
        scratch.display(),
        w.state().display(),
        r1.dir.path().display(),
        r1.version,
        bin.display(),
        log.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        !err.is_empty(),
        "expected a message on stderr; script said {out:?}"
    );
    assert!(
        !err.contains(ESC),
        "ANSI codes in a redirected stderr: {err:?}"
    );
}

#[test]
fn verbose_prints_each_external_command_and_help_shows_env() {
    let w = World::new();
    let r1 = v1();
    w.mosaic(Some(&r1)).arg("install").assert().success();
    // A legacy socket in the roster: status asks tmux whether it is in use.
    w.write(
        "fleet/roster.yaml",
        "version: 1\ntmux:\n  socket_name: mosaic-factory\nagents: []\n",
    );
    let out = w
        .mosaic(Some(&r1))
        .args(["-v", "status"])
        .env("MOSAIC_TMUX", "/bin/false")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.starts_with("mosaic: ran /bin/false ")
            && l.contains("-L mosaic-factory")
            && l.contains(" ms, exit 1)")),
        "{err}"
    );
    let quiet = w
        .mosaic(Some(&r1))
        .arg("status")
        .env("MOSAIC_TMUX", "/bin/false")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("mosaic: ran"));
    let help = w.mosaic(None).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("[env: MOSAIC_HOME="));
}
