//! Crash points for tests and the migration matrix: `MOSAIC_FAILPOINT=NAME`
//! aborts the process (as a `kill -9` would) when execution reaches the point
//! called NAME. Compiled into debug builds and builds with the `failpoints`
//! feature only; a release binary ignores the variable.

/// Aborts the process if `MOSAIC_FAILPOINT` names this point.
#[inline]
pub fn hit(name: &str) {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    {
        if let Some(v) = std::env::var_os("MOSAIC_FAILPOINT") {
            if v == name {
                eprintln!("mosaic: failpoint {name} hit, aborting");
                std::process::abort();
            }
        }
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    let _ = name;
}

/// Sleeps for `MOSAIC_FAILPOINT_SLEEP_MS` milliseconds if `MOSAIC_FAILPOINT`
/// names this point with a `sleep:` prefix (used to hold the lock in tests).
#[inline]
pub fn pause(name: &str) {
    pause_at(name, "");
}

/// Like [`pause`], for a point reached once per path: `sleep:NAME` pauses
/// at every path, `sleep:NAME@REL` only at `rel`. With
/// `MOSAIC_FAILPOINT_SIGNAL=FILE` set, the pause is a handshake instead of a
/// sleep: it creates `FILE.paused` and waits (at most
/// `MOSAIC_FAILPOINT_SLEEP_MS`, default 20 s) until `FILE.resume` exists, so
/// a test acts exactly while the run stands still.
#[inline]
pub fn pause_at(name: &str, rel: &str) {
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    {
        let Some(v) = std::env::var_os("MOSAIC_FAILPOINT") else {
            return;
        };
        let Some(point) = v.to_str().and_then(|s| s.strip_prefix("sleep:")) else {
            return;
        };
        let here = point == name
            || point
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('@'))
                .is_some_and(|r| r == rel);
        if !here {
            return;
        }
        let ms = std::env::var("MOSAIC_FAILPOINT_SLEEP_MS")
            .ok()
            .and_then(|s| s.parse().ok());
        match std::env::var_os("MOSAIC_FAILPOINT_SIGNAL").filter(|s| !s.is_empty()) {
            Some(sig) => {
                let mut paused = sig.clone();
                paused.push(".paused");
                let mut resume = sig;
                resume.push(".resume");
                let _ = std::fs::write(&paused, format!("{name}@{rel}\n"));
                let t0 = std::time::Instant::now();
                let limit = std::time::Duration::from_millis(ms.unwrap_or(20_000));
                while std::fs::symlink_metadata(&resume).is_err() && t0.elapsed() < limit {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            None => std::thread::sleep(std::time::Duration::from_millis(ms.unwrap_or(2000))),
        }
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    let _ = (name, rel);
}
