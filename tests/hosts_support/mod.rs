//! A rig of real sshd "hosts" on this machine for `tests/hosts.rs`
//! (recipe: /work/shared/notes/real-sshd-hosts-in-tests.md).
//!
//! Each host is `sshd -D` in its own mount + UTS namespace (`unshare -m -u
//! --propagation private`), with its own hostname, its own `/root` (a bind
//! of `DIR/root`: HOME, `~/.ssh/authorized_keys`, the mosaic home), a tmpfs
//! `/run`, its own `TMUX_TMPDIR` (sshd `SetEnv`) and its own login shell (a
//! passwd copy bind-mounted over `/etc/passwd` inside that namespace only).
//! A host can also live in its own network namespace joined by a veth pair
//! (addresses from 10.213.0.0/16, only on interfaces the rig creates). The
//! controller (`mosaic`) runs in a mount namespace of its own too, with
//! `/root` bound to the rig's controller dir, because OpenSSH reads
//! `~/.ssh/config` from the passwd home, not `$HOME`.
//!
//! Everything lives under one temp dir; [`Rig`]'s `Drop` kills the recorded
//! pids (sshd, tmux servers) and deletes the network namespaces it made.
#![allow(dead_code)]

use crate::common;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a host of the rig is.
pub struct HostSpec {
    /// Roster and `~/.ssh/config` alias name.
    pub name: &'static str,
    /// Login shell of root on that host.
    pub shell: &'static str,
    /// In its own network namespace.
    pub netns: bool,
    /// Runs a `systemd --user` manager (units, `fleet start`).
    pub systemd: bool,
}

/// One running host.
pub struct Host {
    pub name: String,
    pub dir: PathBuf,
    pub addr: String,
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl Host {
    /// The mosaic home on the host, as seen from here.
    pub fn home(&self) -> PathBuf {
        self.dir.join("root/.config/mosaic")
    }

    pub fn tmux_tmpdir(&self) -> PathBuf {
        self.dir.join("tmux")
    }

    /// `tmux -L SOCKET` of this host (its `TMUX_TMPDIR`).
    pub fn tmux(&self, socket: &str) -> Command {
        let mut c = Command::new("tmux");
        common::scrub_env(&mut c)
            .env("TMUX_TMPDIR", self.tmux_tmpdir())
            .env("LANG", "C.UTF-8")
            .args(["-L", socket]);
        c
    }

    /// "Accepted publickey" lines in sshd's log: one per connection.
    pub fn connections(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }

    /// `PROGRAM ARGS` inside this host's mount + UTS namespaces (as its
    /// sshd sees the world), with the host's login environment.
    pub fn inside(&self, program: &Path, args: &[&str]) -> Output {
        let pid = std::fs::read_to_string(self.dir.join("sshd.pid")).unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .args(["-t", pid.trim(), "-m", "-u", "--"])
            .arg("env")
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .args([
                "HOME=/root",
                "USER=root",
                "LANG=C.UTF-8",
                "XDG_RUNTIME_DIR=/run/user/0",
            ])
            .arg(format!("TMUX_TMPDIR={}", self.tmux_tmpdir().display()))
            .arg(program)
            .args(args);
        common::run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("nsenter")
    }

    /// Starts agent `name` running the stub on `socket` (remain-on-exit on).
    pub fn start_stub(&self, socket: &str, name: &str) {
        start_stub(&mut self.tmux(socket), &self.home(), name);
    }
}

/// `tmux new-session -d -s NAME stub-agent` with its home, then remain-on-exit.
pub fn start_stub(tmux: &mut Command, home: &Path, name: &str) {
    let stub = home.join("tools/fleet/stub-agent");
    let out = tmux
        .args(["new-session", "-d", "-x", "200", "-y", "50", "-s", name])
        .arg("env")
        .arg(format!("MOSAIC_HOME={}", home.display()))
        .arg(format!("MOSAIC_AGENT_NAME={name}"))
        .arg("MOSAIC_HEARTBEAT_INTERVAL=2")
        .arg(&stub)
        .output()
        .expect("tmux");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The whole rig.
pub struct Rig {
    pub tmp: tempfile::TempDir,
    pub hosts: Vec<Host>,
    netns: Vec<String>,
    /// Controller dir (bound over /root for mosaic).
    pub ctl: PathBuf,
    /// Controller's XDG_RUNTIME_DIR (ssh control sockets).
    pub ctl_run: PathBuf,
    /// Controller's TMUX_TMPDIR.
    pub ctl_tmux: PathBuf,
    /// Addresses for the aliases that are not hosts: (alias, addr, port).
    pub extra: Vec<(String, String, u16)>,
}

fn run(cmd: &mut Command) -> Output {
    let out = common::run_with_timeout(cmd, Duration::from_secs(30)).expect("spawn");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) -> Output {
    run(Command::new("ip").args(args))
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mosaic-test", "-f"])
        .arg(path));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Why the rig cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    if common::euid() != Some(0) {
        return Some("real sshd hosts need root (unshare -m -u, ip netns)".into());
    }
    for p in [
        "ssh",
        "ssh-keygen",
        "unshare",
        "nsenter",
        "setsid",
        "ip",
        "tmux",
        "dash",
        "zsh",
        "bash",
    ] {
        if common::which(p).is_none() {
            return Some(format!("{p} is not installed (apt-get install openssh-client openssh-server iproute2 util-linux tmux dash zsh)"));
        }
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("/usr/sbin/sshd is missing (apt-get install openssh-server)".into());
    }
    None
}

impl Rig {
    /// Starts every host of `specs`; also sets up the aliases `down`
    /// (connection refused), `hole` (a netns address whose replies are
    /// blackholed: connect timeout) and `changed` (the first host's sshd
    /// under an alias whose known_hosts key is another one).
    pub fn start(specs: &[HostSpec]) -> Rig {
        let tmp = tempfile::Builder::new()
            .prefix("mh")
            .tempdir_in("/tmp")
            .unwrap();
        let ctl = tmp.path().join("ctl");
        let ctl_run = tmp.path().join("run");
        let ctl_tmux = tmp.path().join("ctmux");
        for d in [&ctl, &ctl.join(".ssh"), &ctl_run, &ctl_tmux] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        keygen(&ctl.join(".ssh/id"));
        keygen(&tmp.path().join("otherkey"));
        let pubkey = std::fs::read_to_string(ctl.join(".ssh/id.pub")).unwrap();
        let tag = std::process::id() % 200 + 20;
        let mut rig = Rig {
            ctl,
            ctl_run,
            ctl_tmux,
            hosts: Vec::new(),
            netns: Vec::new(),
            extra: Vec::new(),
            tmp,
        };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (i, spec) in specs.iter().enumerate() {
            let dir = rig.tmp.path().join(spec.name);
            let root = dir.join("root");
            std::fs::create_dir_all(root.join(".ssh")).unwrap();
            std::fs::create_dir_all(dir.join("tmux")).unwrap();
            for d in [&root, &root.join(".ssh"), &dir.join("tmux")] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
            }
            write(&root.join(".ssh/authorized_keys"), &pubkey, 0o600);
            common::install_framework(&root.join(".config/mosaic"));
            keygen(&dir.join("hostkey"));
            let shell = common::which(spec.shell).unwrap();
            let pw: String = passwd
                .lines()
                .map(|l| {
                    if l.starts_with("root:") {
                        let mut f: Vec<&str> = l.split(':').collect();
                        let s = shell.to_str().unwrap();
                        if f.len() == 7 {
                            f[6] = s;
                        }
                        f.join(":")
                    } else {
                        l.to_string()
                    }
                })
                .map(|l| l + "\n")
                .collect();
            write(&dir.join("passwd"), &pw, 0o644);
            let (addr, port, netns) = if spec.netns {
                let ns = format!("mh{tag}n{i}");
                let a = format!("mh{tag}a{i}");
                let b = format!("mh{tag}b{i}");
                let net = format!("10.213.{tag}.{}", i * 4);
                let me = format!("10.213.{tag}.{}", i * 4 + 1);
                let there = format!("10.213.{tag}.{}", i * 4 + 2);
                let _ = net;
                ip(&["netns", "add", &ns]);
                rig.netns.push(ns.clone());
                ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
                ip(&["link", "set", &b, "netns", &ns]);
                ip(&["addr", "add", &format!("{me}/30"), "dev", &a]);
                ip(&["link", "set", &a, "up"]);
                ip(&["-n", &ns, "addr", "add", &format!("{there}/30"), "dev", &b]);
                ip(&["-n", &ns, "link", "set", &b, "up"]);
                ip(&["-n", &ns, "link", "set", "lo", "up"]);
                (there, 22, Some(ns))
            } else {
                ("127.0.0.1".to_string(), free_port(), None)
            };
            let log = dir.join("sshd.log");
            let cfg = format!(
                "ListenAddress {addr}:{port}\nHostKey {hk}\nPidFile {d}/sshd.pid\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes yes\nLogLevel VERBOSE\nMaxStartups 200:30:400\nAcceptEnv LANG LC_*\nSetEnv TMUX_TMPDIR={d}/tmux XDG_RUNTIME_DIR=/run/user/0 PATH={path_env} LANG=C.UTF-8\n",
                hk = dir.join("hostkey").display(),
                d = dir.display(),
            );
            write(&dir.join("sshd_config"), &cfg, 0o600);
            let manager = if spec.systemd {
                format!(
                    "mkdir -p /run/systemd/system\nenv -i PATH={path_env} HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 XDG_RUNTIME_DIR=/run/user/0 XDG_CONFIG_HOME=/root/.config TMUX_TMPDIR={d}/tmux /usr/lib/systemd/systemd --user >{d}/manager.log 2>&1 &\necho $! >{d}/manager.pid\ni=0\nuntil XDG_RUNTIME_DIR=/run/user/0 systemctl --user list-units >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 150 ] || exit 1; sleep 0.1; done\n",
                    d = dir.display()
                )
            } else {
                String::new()
            };
            let init = format!(
                "set -e\nhostname {name}\nmount --bind {root} /root\nmount --bind {d}/passwd /etc/passwd\nmount -t tmpfs tmpfs /run\nmkdir -p /run/sshd /run/user/0\nchmod 700 /run/user/0\n{manager}exec /usr/sbin/sshd -D -f {d}/sshd_config -E {log}\n",
                name = spec.name,
                root = root.display(),
                d = dir.display(),
                log = log.display()
            );
            write(&dir.join("init.sh"), &init, 0o700);
            let mut cmd = Command::new("setsid");
            cmd.env_clear().env("PATH", path_env);
            if let Some(ns) = &netns {
                cmd.arg("nsenter").arg(format!("--net=/run/netns/{ns}"));
            }
            cmd.args(["unshare", "-m", "-u", "--propagation", "private", "sh"])
                .arg(dir.join("init.sh"))
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.join("init.out")).unwrap())
                .stderr(std::fs::File::create(dir.join("init.err")).unwrap());
            let child = cmd.spawn().expect("start host");
            let host = Host {
                name: spec.name.to_string(),
                dir: dir.clone(),
                addr: addr.clone(),
                port,
                log: log.clone(),
                child,
            };
            rig.hosts.push(host);
            let up = common::wait_until(Duration::from_secs(25), || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("Server listening")
            });
            assert!(
                up,
                "sshd of {} did not come up: {}{}",
                spec.name,
                std::fs::read_to_string(dir.join("init.err")).unwrap_or_default(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // A blackholed host: a netns whose replies to us go nowhere.
        {
            let i = specs.len();
            let ns = format!("mh{tag}n{i}");
            let a = format!("mh{tag}a{i}");
            let b = format!("mh{tag}b{i}");
            let me = format!("10.213.{tag}.{}", i * 4 + 1);
            let there = format!("10.213.{tag}.{}", i * 4 + 2);
            ip(&["netns", "add", &ns]);
            rig.netns.push(ns.clone());
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &b, "netns", &ns]);
            ip(&["addr", "add", &format!("{me}/30"), "dev", &a]);
            ip(&["link", "set", &a, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{there}/30"), "dev", &b]);
            ip(&["-n", &ns, "link", "set", &b, "up"]);
            ip(&["-n", &ns, "route", "add", "blackhole", &me]);
            rig.extra.push(("hole".into(), there, 22));
        }
        rig.extra
            .push(("down".into(), "127.0.0.1".into(), free_port()));
        let first = &rig.hosts[0];
        // Another HostName for the same sshd: its own ControlPath (%C
        // hashes the HostName, port and user), so no master is shared.
        rig.extra
            .push(("changed".into(), "localhost".into(), first.port));
        // The controller's ~/.ssh/config and known_hosts.
        let mut config = String::new();
        let mut known = String::new();
        let kh = "/root/.ssh/known_hosts";
        let mut alias = |name: &str, addr: &str, port: u16| {
            config.push_str(&format!(
                "Host {name}\n  HostName {addr}\n  Port {port}\n  User root\n  HostKeyAlias {name}\n  IdentityFile /root/.ssh/id\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n\n"
            ));
        };
        for h in &rig.hosts {
            alias(&h.name, &h.addr, h.port);
            let key = std::fs::read_to_string(h.dir.join("hostkey.pub")).unwrap();
            known.push_str(&format!("{} {}", h.name, key));
        }
        for (name, addr, port) in &rig.extra {
            alias(name, addr, *port);
            let key = if name == "changed" {
                std::fs::read_to_string(rig.tmp.path().join("otherkey.pub")).unwrap()
            } else {
                std::fs::read_to_string(rig.hosts[0].dir.join("hostkey.pub")).unwrap()
            };
            known.push_str(&format!("{name} {key}"));
        }
        write(&rig.ctl.join(".ssh/config"), &config, 0o600);
        write(&rig.ctl.join(".ssh/known_hosts"), &known, 0o600);
        common::install_framework(&rig.ctl.join(".config/mosaic"));
        rig
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    /// The controller's mosaic home, as seen from here.
    pub fn ctl_home(&self) -> PathBuf {
        self.ctl.join(".config/mosaic")
    }

    /// `tmux -L SOCKET` of the controller.
    pub fn ctl_tmux(&self, socket: &str) -> Command {
        let mut c = Command::new("tmux");
        common::scrub_env(&mut c)
            .env("TMUX_TMPDIR", &self.ctl_tmux)
            .env("LANG", "C.UTF-8")
            .args(["-L", socket]);
        c
    }

    /// Writes the controller's roster (its own path, as seen by mosaic).
    pub fn write_roster(&self, text: &str) -> PathBuf {
        let p = self.ctl_home().join("fleet/roster.yaml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        PathBuf::from("/root/.config/mosaic/fleet/roster.yaml")
    }

    /// `unshare -m sh -c SETUP` that runs `mosaic ARGS` as the controller:
    /// `/root` = the controller dir, `HOME=/root`, `runtime_dir` as
    /// `XDG_RUNTIME_DIR`. `setup` (run by sh, `$0` the controller dir)
    /// ends with `exec "$@"`.
    fn controller(&self, setup: &str, args: &[&str], runtime_dir: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        common::scrub_env(&mut cmd);
        cmd.args(["-m", "--propagation", "private", "sh", "-c", setup])
            .arg(&self.ctl)
            .arg(env!("CARGO_BIN_EXE_mosaic"))
            .args(args)
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LANG", "C.UTF-8")
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .env("MOSAIC_SSH_CONNECT_TIMEOUT_SECS", "2")
            .env("MOSAIC_SSH_TIMEOUT_SECS", "8")
            .env_remove("XDG_CONFIG_HOME");
        cmd
    }

    /// Runs `mosaic ARGS` as the controller: its own mount namespace with
    /// `/root` = the controller dir, `HOME=/root`, the rig's runtime dir.
    pub fn mosaic(&self, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
        let mut cmd = self.controller(
            "mount --bind \"$0\" /root && exec \"$@\"",
            args,
            &self.ctl_run,
        );
        cmd.env("TMUX_TMPDIR", &self.ctl_tmux);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let t = Instant::now();
        let out = common::run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("mosaic");
        (out, t.elapsed())
    }

    /// [`Rig::mosaic`] with `XDG_RUNTIME_DIR` set to `runtime_dir` (below
    /// `/root`, the controller dir) and a private tmpfs on `/tmp` in its
    /// namespace, so a fallback below `/tmp` stays in the test.
    pub fn mosaic_private_tmp(&self, args: &[&str], runtime_dir: &str) -> Output {
        let mut cmd = self.controller(
            "mount --bind \"$0\" /root && mount -t tmpfs tmpfs /tmp && mkdir -m 0700 -p \"$XDG_RUNTIME_DIR\" && exec \"$@\"",
            args,
            Path::new(runtime_dir),
        );
        common::run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("mosaic")
    }

    /// Removes the controller's ssh control sockets (masters exit with them
    /// gone? no: ask each to exit), for a cold start.
    pub fn close_masters(&self) {
        let dir = self.ctl_run.join("mosaic/ssh");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let _ = Command::new("ssh")
                    .args(["-o", &format!("ControlPath={}", e.path().display())])
                    .args(["-O", "exit", "x"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Changes the login shell of root on `host` (its passwd copy).
    pub fn set_shell(&self, host: &str, shell: &str) {
        let h = self.host(host);
        let p = h.dir.join("passwd");
        let text = std::fs::read_to_string(&p).unwrap();
        let sh = common::which(shell).unwrap();
        let out: String = text
            .lines()
            .map(|l| {
                if l.starts_with("root:") {
                    let mut f: Vec<String> = l.split(':').map(str::to_string).collect();
                    f[6] = sh.display().to_string();
                    f.join(":")
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect();
        // The bind mount follows the inode: rewrite in place.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.write_all(out.as_bytes()).unwrap();
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.close_masters();
        for h in &mut self.hosts {
            if let Ok(pid) = std::fs::read_to_string(h.dir.join("manager.pid")) {
                if let Ok(pid) = pid.trim().parse::<u32>() {
                    // The user manager this rig started: it stops its units.
                    let _ = Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                    let gone = common::wait_until(Duration::from_secs(10), || {
                        !Path::new(&format!("/proc/{pid}")).exists()
                            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                                .is_ok_and(|s| s.contains(") Z "))
                    });
                    if !gone {
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                    }
                }
            }
            if let Ok(pid) = std::fs::read_to_string(h.dir.join("sshd.pid")) {
                if let Ok(pid) = pid.trim().parse::<u32>() {
                    // The sshd this rig started, by its recorded pid.
                    let _ = Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
            }
            let _ = h.child.kill();
            let _ = h.child.wait();
            common::kill_tmux_servers(&h.tmux_tmpdir());
        }
        common::kill_tmux_servers(&self.ctl_tmux);
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
