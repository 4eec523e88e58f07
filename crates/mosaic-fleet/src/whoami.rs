//! Who runs mosaic: the user name, without NSS.
//!
//! `getpwuid(3)` goes through glibc's Name Service Switch, which a
//! statically linked glibc binary (the release archive's) cannot load
//! safely: it would `dlopen` the host's `libnss_*.so` of another glibc
//! version. So the name comes from `$USER` / `$LOGNAME`, else from
//! `/etc/passwd` read and parsed here (the entry of the effective uid),
//! else it is the uid itself.

use std::path::Path;

/// The user name: `$USER`, `$LOGNAME`, else the `/etc/passwd` entry of the
/// effective uid, else the uid in decimal.
pub fn user_name() -> String {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::geteuid() };
    user_name_from(|var| std::env::var(var).ok(), Path::new("/etc/passwd"), uid)
}

/// [`user_name`] with its inputs given: `env` looks a variable up,
/// `passwd` is the file to read, `uid` the effective uid.
pub fn user_name_from(env: impl Fn(&str) -> Option<String>, passwd: &Path, uid: u32) -> String {
    for var in ["USER", "LOGNAME"] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            return v;
        }
    }
    std::fs::read(passwd)
        .ok()
        .and_then(|bytes| passwd_name(&String::from_utf8_lossy(&bytes), uid))
        .unwrap_or_else(|| uid.to_string())
}

/// The name of the first entry for `uid` in passwd(5) text
/// (`name:password:uid:gid:gecos:dir:shell`); comments, blank, short and
/// NIS (`+`/`-`) lines are skipped.
pub fn passwd_name(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|line| {
        if line.starts_with(['#', '+', '-']) {
            return None;
        }
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let entry_uid: u32 = fields.next()?.trim().parse().ok()?;
        (entry_uid == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment
root:x:0:0:root:/root:/bin/bash
+nisuser::0:0:::
broken
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
ada:x:1000:1000:Ada,,,:/home/ada:/bin/bash
dup:x:1000:1000::/home/dup:/bin/sh
";

    #[test]
    fn passwd_entry_of_the_uid_first_match() {
        assert_eq!(passwd_name(PASSWD, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(PASSWD, 1000).as_deref(), Some("ada"));
        assert_eq!(passwd_name(PASSWD, 1).as_deref(), Some("daemon"));
        assert_eq!(passwd_name(PASSWD, 4242), None);
        assert_eq!(passwd_name("", 0), None);
    }

    #[test]
    fn env_first_then_passwd_then_uid() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, PASSWD).unwrap();
        let env = |user: Option<&str>, logname: Option<&str>| {
            let (u, l) = (user.map(str::to_string), logname.map(str::to_string));
            move |v: &str| match v {
                "USER" => u.clone(),
                "LOGNAME" => l.clone(),
                _ => None,
            }
        };
        assert_eq!(
            user_name_from(env(Some("eve"), Some("bob")), &passwd, 1000),
            "eve"
        );
        assert_eq!(
            user_name_from(env(Some(""), Some("bob")), &passwd, 1000),
            "bob"
        );
        assert_eq!(user_name_from(env(None, None), &passwd, 1000), "ada");
        assert_eq!(user_name_from(env(None, None), &passwd, 4242), "4242");
        let missing = dir.path().join("nope");
        assert_eq!(user_name_from(env(None, None), &missing, 1000), "1000");
    }
}
