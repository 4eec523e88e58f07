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
    #[cfg(any(debug_assertions, feature = "failpoints"))]
    {
        if let Some(v) = std::env::var_os("MOSAIC_FAILPOINT") {
            if v.to_str().and_then(|s| s.strip_prefix("sleep:")) == Some(name) {
                let ms = std::env::var("MOSAIC_FAILPOINT_SLEEP_MS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(2000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
    }
    #[cfg(not(any(debug_assertions, feature = "failpoints")))]
    let _ = name;
}
