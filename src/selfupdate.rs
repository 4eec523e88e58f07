//! Self-update from published releases (SPEC §9): owns the release check
//! of `mosaic update`, the verification of a downloaded release (sha256 from
//! `SHA256SUMS`, a minisign signature over `SHA256SUMS` made with the key
//! embedded in this binary), the atomic replacement of the running binary,
//! and the re-execution of the new binary so it syncs the framework it
//! embeds.
//!
//! The `self_update` crate does the release listing (Gitea and GitHub
//! APIs), the download (with a progress bar on a TTY), the extraction of the
//! archive; the `self-replace` crate swaps the binary (a rename in the same
//! directory); the checks are done here with `sha2` and `minisign-verify`.
//!
//! Where releases come from: `MOSAIC_RELEASE_URL`, else the first line of
//! `H/.mosaic/release-url`, else [`DEFAULT_RELEASE_URL`]. The URL is the
//! repository's web address, `https://HOST/OWNER/REPO`: `github.com` means
//! the GitHub API, any other host a Gitea instance (`HOST/api/v1`).
//! `github+https://HOST/api/v3/OWNER/REPO` names a GitHub Enterprise API.
//! `off` (or `none`) disables the check.
//!
//! Debug builds only (tests): `MOSAIC_SELF_VERSION=X.Y.Z` pretends this
//! binary is that version, and `MOSAIC_TRUSTED_PUBKEY` (a minisign public
//! key, base64 or the `.pub` file's text) replaces the embedded key. Release
//! builds ignore both.

use crate::cli::{Global, UpdateArgs};
use crate::report::{Printer, SelfUpdate, SelfUpdateOutcome};
use mosaic_engine::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The release source used when neither `MOSAIC_RELEASE_URL` nor
/// `H/.mosaic/release-url` names one.
pub const DEFAULT_RELEASE_URL: &str = "https://github.com/mosaic-fleet/mosaic";

/// The minisign public key release signatures are checked against (its
/// secret half is a CI secret, never in the repository).
pub const RELEASE_PUBLIC_KEY: &str = include_str!("../packaging/minisign.pub");

/// The checksum file every release carries, and its signature.
pub const SUMS_ASSET: &str = "SHA256SUMS";
/// The minisign signature of [`SUMS_ASSET`].
pub const SIG_ASSET: &str = "SHA256SUMS.minisig";

/// What the release check did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing newer (or the check was skipped/failed with a notice): sync
    /// the current binary's framework.
    Continue,
    /// A newer binary was installed and re-executed; it already synced. The
    /// value is its exit code.
    Reexeced(i32),
    /// A newer release was refused (it did not verify); the binary is
    /// untouched, the caller syncs its framework and exits non-zero.
    Refused,
}

/// Which releases API to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A Gitea instance: `HOST/api/v1/repos/OWNER/REPO/releases`.
    Gitea {
        /// `scheme://host[:port]`.
        host: String,
    },
    /// GitHub or GitHub Enterprise: `API_BASE/repos/OWNER/REPO/releases`.
    GitHub {
        /// e.g. `https://api.github.com`.
        api_base: String,
    },
}

/// A parsed release source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The API kind and base.
    pub backend: Backend,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
}

impl Source {
    /// Parses a release URL (see the module docs for the forms).
    pub fn parse(url: &str) -> std::result::Result<Source, String> {
        let url = url.trim().trim_end_matches('/');
        let bad = || format!("release URL {url:?} is not https://HOST/OWNER/REPO");
        let (forced, rest) = if let Some(r) = url.strip_prefix("github+") {
            (Some("github"), r)
        } else if let Some(r) = url.strip_prefix("gitea+") {
            (Some("gitea"), r)
        } else {
            (None, url)
        };
        let scheme_end = rest.find("://").ok_or_else(bad)?;
        let scheme = &rest[..scheme_end];
        if scheme != "https" && scheme != "http" {
            return Err(bad());
        }
        let after = &rest[scheme_end + 3..];
        let mut parts: Vec<&str> = after.split('/').collect();
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let repo = parts.pop().unwrap().to_string();
        let owner = parts.pop().unwrap().to_string();
        let host = parts[0];
        let base = format!("{scheme}://{}", parts.join("/"));
        let backend = match forced {
            Some("github") => Backend::GitHub { api_base: base },
            Some(_) => Backend::Gitea { host: base },
            None if host == "github.com" || host == "www.github.com" => Backend::GitHub {
                api_base: "https://api.github.com".into(),
            },
            None if parts.len() == 1 => Backend::Gitea { host: base },
            None => return Err(bad()),
        };
        Ok(Source {
            backend,
            owner,
            repo,
        })
    }
}

/// The version this binary reports for self-update (debug builds honour
/// `MOSAIC_SELF_VERSION`).
pub fn current_version() -> semver::Version {
    if cfg!(debug_assertions) {
        if let Some(v) = std::env::var("MOSAIC_SELF_VERSION")
            .ok()
            .and_then(|v| semver::Version::parse(&v).ok())
        {
            return v;
        }
    }
    semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("the package version is semver")
}

/// The trusted public key (debug builds honour `MOSAIC_TRUSTED_PUBKEY`).
pub fn trusted_key() -> std::result::Result<minisign_verify::PublicKey, String> {
    let text = match std::env::var("MOSAIC_TRUSTED_PUBKEY") {
        Ok(k) if cfg!(debug_assertions) && !k.trim().is_empty() => k,
        _ => RELEASE_PUBLIC_KEY.to_string(),
    };
    parse_public_key(&text)
}

fn parse_public_key(text: &str) -> std::result::Result<minisign_verify::PublicKey, String> {
    let b64 = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .unwrap_or("");
    minisign_verify::PublicKey::from_base64(b64)
        .map_err(|e| format!("the trusted public key is unusable: {e}"))
}

/// Checks `sums` against its minisign signature `sig` and `archive`'s
/// sha256 against the line for `archive_name` in `sums`. The error is one
/// line saying what failed.
pub fn verify_release(
    archive: &[u8],
    archive_name: &str,
    sums: &[u8],
    sig: &str,
    key: &minisign_verify::PublicKey,
) -> std::result::Result<(), String> {
    verify_sums(sums, sig, key)?;
    let want = expected_sha256(sums, archive_name)?;
    let got = hex::encode(Sha256::digest(archive));
    if want != got {
        return Err(format!(
            "sha256 mismatch for {archive_name}: {SUMS_ASSET} says {want}, the download is {got}"
        ));
    }
    Ok(())
}

/// Checks the minisign signature `sig` of `sums`.
pub fn verify_sums(
    sums: &[u8],
    sig: &str,
    key: &minisign_verify::PublicKey,
) -> std::result::Result<(), String> {
    let signature = minisign_verify::Signature::decode(sig)
        .map_err(|e| format!("{SIG_ASSET} is malformed ({e})"))?;
    key.verify(sums, &signature, false).map_err(|e| {
        format!("the signature of {SUMS_ASSET} does not verify with the trusted key ({e})")
    })
}

/// Checks a downloaded file's sha256 against the line for `name` in `sums`.
pub fn check_listed(bytes: &[u8], name: &str, sums: &[u8]) -> std::result::Result<(), String> {
    let want = expected_sha256(sums, name)?;
    let got = hex::encode(Sha256::digest(bytes));
    if want != got {
        return Err(format!(
            "sha256 mismatch for {name}: {SUMS_ASSET} says {want}, the download is {got}"
        ));
    }
    Ok(())
}

/// The sha256 `SHA256SUMS` lists for `name` (`HEX  NAME` or `HEX *NAME`).
pub fn expected_sha256(sums: &[u8], name: &str) -> std::result::Result<String, String> {
    let text = std::str::from_utf8(sums).map_err(|_| format!("{SUMS_ASSET} is not text"))?;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(hash), Some(file)) = (it.next(), it.next()) else {
            continue;
        };
        if file.trim_start_matches('*') == name {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{SUMS_ASSET} has a malformed hash for {name}"));
            }
            return Ok(hash.to_ascii_lowercase());
        }
    }
    Err(format!("{SUMS_ASSET} does not list {name}"))
}

/// The release manifest `cargo xtask dist` writes (docs/releasing.md).
pub const MANIFEST_ASSET: &str = "release.json";

/// The archive the release manifest names for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPick {
    /// The archive's file name.
    pub name: String,
    /// Its sha256, as the manifest lists it (lower-case hex).
    pub sha256: String,
}

/// Reads `release.json` (already checked against the signed `SHA256SUMS`)
/// and picks the archive for `target`. The manifest must be for `version`,
/// and the sha256 it lists for that archive must be the one `SHA256SUMS`
/// lists: the manifest chooses among what the signature covers, it never
/// adds to it. Errors are one line saying what disagrees.
pub fn pick_from_manifest(
    manifest: &[u8],
    sums: &[u8],
    version: &semver::Version,
    target: &str,
) -> std::result::Result<ManifestPick, String> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        version: String,
        artefacts: Vec<Artefact>,
    }
    #[derive(serde::Deserialize)]
    struct Artefact {
        name: String,
        kind: String,
        sha256: String,
        #[serde(default)]
        target: Option<String>,
    }
    let m: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("{MANIFEST_ASSET} is not a release manifest ({e})"))?;
    if m.version != version.to_string() {
        return Err(format!(
            "{MANIFEST_ASSET} is for version {}, the release is {version}",
            m.version
        ));
    }
    let a = m
        .artefacts
        .iter()
        .find(|a| a.kind == "archive" && a.target.as_deref() == Some(target))
        .ok_or_else(|| format!("{MANIFEST_ASSET} lists no archive for {target}"))?;
    if a.name.is_empty() || a.name.contains('/') || a.name.starts_with('.') {
        return Err(format!(
            "{MANIFEST_ASSET} names the archive {:?}, not a file name",
            a.name
        ));
    }
    let listed = expected_sha256(sums, &a.name)?;
    let claimed = a.sha256.to_ascii_lowercase();
    if listed != claimed {
        return Err(format!(
            "{MANIFEST_ASSET} disagrees with {SUMS_ASSET} about {}: {claimed} against {listed}",
            a.name
        ));
    }
    Ok(ManifestPick {
        name: a.name.clone(),
        sha256: listed,
    })
}

/// The archive name of a release for a target.
pub fn archive_name(version: &semver::Version, target: &str) -> String {
    format!("mosaic-{version}-{target}.tar.gz")
}

/// A release newer than this binary, with the assets it needs.
#[derive(Debug)]
struct Candidate {
    version: semver::Version,
    /// The archive under the conventional name, if the release lists one.
    archive: Option<self_update::update::ReleaseAsset>,
    sums: Option<self_update::update::ReleaseAsset>,
    sig: Option<self_update::update::ReleaseAsset>,
    /// `release.json`, if the release lists one.
    manifest: Option<self_update::update::ReleaseAsset>,
    /// Every asset, for the archive the manifest names.
    assets: Vec<self_update::update::ReleaseAsset>,
}

/// The newest stable release above `current` that ships an archive for
/// `target` under its conventional name, or a release manifest (which may
/// name it otherwise; read in [`install`]) beside an asset whose name
/// carries `target`.
fn newest(
    releases: &[self_update::update::Release],
    current: &semver::Version,
    target: &str,
) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    for r in releases {
        let Ok(v) = semver::Version::parse(r.version()) else {
            continue;
        };
        if v <= *current || !v.pre.is_empty() || best.as_ref().is_some_and(|b| b.version >= v) {
            continue;
        }
        let name = archive_name(&v, target);
        let find = |n: &str| r.assets().iter().find(|a| a.name() == n).cloned();
        let archive = find(&name);
        // A manifest may name the archive otherwise, but a release with no
        // asset naming this target builds nothing for it: an older one
        // that does is the candidate (not a refusal).
        let for_target = r.assets().iter().any(|a| a.name().contains(target));
        let manifest = find(MANIFEST_ASSET).filter(|_| for_target);
        if archive.is_none() && manifest.is_none() {
            continue;
        }
        best = Some(Candidate {
            version: v,
            archive,
            sums: find(SUMS_ASSET),
            sig: find(SIG_ASSET),
            manifest,
            assets: r.assets().to_vec(),
        });
    }
    best
}

/// The configured release URL, or `None` when the check is disabled.
fn release_url(g: &Global) -> Option<String> {
    if let Ok(u) = std::env::var("MOSAIC_RELEASE_URL") {
        return disabled_or(u);
    }
    if let Ok(paths) = mosaic_engine::paths::Paths::resolve(g.home.as_deref()) {
        if let Ok(text) = std::fs::read_to_string(paths.meta_dir().join("release-url")) {
            if let Some(line) = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
            {
                return disabled_or(line.to_string());
            }
        }
    }
    Some(DEFAULT_RELEASE_URL.to_string())
}

fn disabled_or(u: String) -> Option<String> {
    let t = u.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        None
    } else {
        Some(t.to_string())
    }
}

fn list_releases(src: &Source) -> std::result::Result<Vec<self_update::update::Release>, String> {
    let timeout = Duration::from_secs(20);
    let releases = match &src.backend {
        Backend::Gitea { host } => self_update::backends::gitea::ReleaseList::configure()
            .host(host.clone())
            .repo_owner(src.owner.clone())
            .repo_name(src.repo.clone())
            .timeout(timeout)
            .build()
            .and_then(|l| l.fetch()),
        Backend::GitHub { api_base } => self_update::backends::github::ReleaseList::configure()
            .api_base_url(api_base.clone())
            .repo_owner(src.owner.clone())
            .repo_name(src.repo.clone())
            .timeout(timeout)
            .build()
            .and_then(|l| l.fetch()),
    };
    releases
        .map(|r| r.into_vec())
        .map_err(|e| one_line(&e.to_string()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn download(
    asset: &self_update::update::ReleaseAsset,
    max: u64,
    progress: bool,
) -> std::result::Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    self_update::Download::from_url(asset.download_url())
        .request_header(
            self_update::http::header::ACCEPT,
            "application/octet-stream",
        )
        .show_download_progress(progress)
        .timeout(Duration::from_secs(600))
        .max_download_size(max)
        .download_to(&mut buf)
        .map_err(|e| {
            format!(
                "cannot download {}: {}",
                asset.name(),
                one_line(&e.to_string())
            )
        })?;
    Ok(buf)
}

/// The operator's flags, for the re-executed binary; `--offline` stops it
/// from checking again.
pub fn reexec_args(args: &UpdateArgs, g: &Global) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = Vec::new();
    if let Some(h) = &g.home {
        v.push("--home".into());
        v.push(h.clone().into_os_string());
    }
    if g.json {
        v.push("--json".into());
    }
    if g.quiet {
        v.push("--quiet".into());
    }
    v.push("update".into());
    v.push("--offline".into());
    if args.sync.dry.dry_run {
        v.push("--dry-run".into());
    }
    if args.sync.allow_downgrade {
        v.push("--allow-downgrade".into());
    }
    if args.sync.units {
        v.push("--units".into());
    }
    v.push("--conflict".into());
    v.push(args.sync.conflict.conflict.as_str().into());
    if args.relaunch {
        v.push("--relaunch".into());
    }
    v
}

/// The environment variable a replaced binary sets for the new one it runs
/// (`FROM TO`), so the new binary's `update --json` reports the self-update.
pub const UPDATED_ENV: &str = "MOSAIC_SELF_UPDATED";

/// The mark [`UPDATED_ENV`] carried when this process started. It is
/// taken out of the environment at start ([`take_updated_mark`]), so
/// nothing this binary runs (tmux, systemctl, a relaunched agent) inherits
/// a claim meant for this one report.
static UPDATED_MARK: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Takes [`UPDATED_ENV`] out of the environment; called first thing in
/// `main`, while the process has one thread.
pub fn take_updated_mark() {
    let v = std::env::var(UPDATED_ENV).ok();
    if v.is_some() {
        std::env::remove_var(UPDATED_ENV);
    }
    let _ = UPDATED_MARK.set(v);
}

fn updated_mark() -> Option<String> {
    UPDATED_MARK
        .get_or_init(|| std::env::var(UPDATED_ENV).ok())
        .clone()
}

/// What the re-executed binary reports: `updated FROM → TO` when the binary
/// that ran it set [`UPDATED_ENV`], else `skipped-offline`.
pub fn offline_outcome() -> SelfUpdate {
    let current = current_version().to_string();
    if let Some(v) = updated_mark() {
        let mut it = v.split_whitespace();
        if let (Some(from), Some(to), manifest) = (it.next(), it.next(), it.next()) {
            return SelfUpdate {
                outcome: SelfUpdateOutcome::Updated,
                current: from.to_string(),
                available: Some(to.to_string()),
                reason: None,
                manifest: manifest == Some("manifest"),
            };
        }
    }
    report(SelfUpdateOutcome::SkippedOffline, &current, None, None)
}

fn report(
    outcome: SelfUpdateOutcome,
    current: &str,
    available: Option<&semver::Version>,
    reason: Option<String>,
) -> SelfUpdate {
    SelfUpdate {
        outcome,
        current: current.to_string(),
        available: available.map(|v| v.to_string()),
        reason,
        manifest: false,
    }
}

/// Checks for a newer release and, when one verifies, replaces this binary
/// and re-executes it. Any failure of the check (no network, nothing newer,
/// a bad checksum or signature, a binary that cannot be replaced) prints one
/// line and returns [`Outcome::Continue`] with the binary untouched. The
/// [`SelfUpdate`] says what happened, for `update --json`.
pub fn check_and_update(
    args: &UpdateArgs,
    g: &Global,
    p: &Printer,
) -> Result<(Outcome, SelfUpdate)> {
    let current = current_version();
    let cur = current.to_string();
    let Some(url) = release_url(g) else {
        p.line("self-update: the release check is off (MOSAIC_RELEASE_URL=off); syncing this mosaic's framework");
        return Ok((
            Outcome::Continue,
            report(SelfUpdateOutcome::SkippedOff, &cur, None, None),
        ));
    };
    let src = match Source::parse(&url) {
        Ok(s) => s,
        Err(e) => {
            p.warn(&format!(
                "self-update skipped: {e}; syncing mosaic {current}'s framework"
            ));
            return Ok((
                Outcome::Continue,
                report(SelfUpdateOutcome::SkippedBadUrl, &cur, None, Some(e)),
            ));
        }
    };
    let releases = match list_releases(&src) {
        Ok(r) => r,
        Err(e) => {
            p.warn(&format!(
                "offline: cannot reach the release server at {url} ({e}); syncing mosaic {current}'s framework"
            ));
            return Ok((
                Outcome::Continue,
                report(SelfUpdateOutcome::Unreachable, &cur, None, Some(e)),
            ));
        }
    };
    let target = self_update::get_target();
    let Some(cand) = newest(&releases, &current, target) else {
        p.line(&format!(
            "mosaic {current} is the newest release for {target}"
        ));
        return Ok((
            Outcome::Continue,
            report(SelfUpdateOutcome::UpToDate, &cur, None, None),
        ));
    };
    let v = cand.version.clone();
    if args.sync.dry.dry_run {
        p.line(&format!(
            "would update mosaic {current} → {v} (dry run: not downloaded)"
        ));
        return Ok((
            Outcome::Continue,
            report(SelfUpdateOutcome::WouldUpdate, &cur, Some(&v), None),
        ));
    }
    match install(&cand, target, p) {
        Ok((exe, manifest)) => {
            p.line(&format!(
                "updated mosaic {current} → {v} (sha256 and signature verified){}; running the new binary",
                if manifest { "; archive named by release.json" } else { "" }
            ));
            let mark = format!("{current} {v}{}", if manifest { " manifest" } else { "" });
            let status = std::process::Command::new(&exe)
                .args(reexec_args(args, g))
                .env(UPDATED_ENV, mark)
                .status()
                .map_err(|e| Error::io(&exe, e))?;
            let mut done = report(SelfUpdateOutcome::Updated, &cur, Some(&v), None);
            done.manifest = manifest;
            Ok((Outcome::Reexeced(status.code().unwrap_or(1)), done))
        }
        Err(e) => {
            p.warn(&format!(
                "refused mosaic {v}: {e}; the binary was not changed; syncing mosaic {current}'s framework"
            ));
            Ok((
                Outcome::Refused,
                report(SelfUpdateOutcome::Refused, &cur, Some(&v), Some(e)),
            ))
        }
    }
}

/// Downloads, verifies and installs `cand`; returns the path of the
/// replaced executable and whether the release manifest was read.
///
/// Order of trust: the signature over `SHA256SUMS` first; then, when the
/// release has a `release.json`, its bytes must be the ones `SHA256SUMS`
/// lists, and the archive it names for this target must be listed in
/// `SHA256SUMS` with the same sha256 ([`pick_from_manifest`]); without a
/// manifest the archive is the conventional `mosaic-X.Y.Z-TARGET.tar.gz`.
/// Last, the archive's bytes against `SHA256SUMS`.
fn install(
    cand: &Candidate,
    target: &str,
    p: &Printer,
) -> std::result::Result<(PathBuf, bool), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the running binary: {e}"))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    if exe.starts_with("/usr/bin") || exe.starts_with("/bin") {
        return Err(format!(
            "{} belongs to the system package manager; upgrade the mosaic package instead",
            exe.display()
        ));
    }
    let key = trusted_key()?;
    let (sums, sig) = match (&cand.sums, &cand.sig) {
        (Some(s), Some(g)) => (s, g),
        _ => return Err(format!("the release has no {SUMS_ASSET} and {SIG_ASSET}")),
    };
    let sums = download(sums, 1 << 20, false)?;
    let sig = download(sig, 1 << 16, false)?;
    let sig = String::from_utf8(sig).map_err(|_| format!("{SIG_ASSET} is not text"))?;
    verify_sums(&sums, &sig, &key)?;
    let (archive_asset, manifest) = match &cand.manifest {
        Some(m) => {
            let bytes = download(m, 1 << 20, false)?;
            check_listed(&bytes, MANIFEST_ASSET, &sums)?;
            let pick = pick_from_manifest(&bytes, &sums, &cand.version, target)?;
            let asset = cand
                .assets
                .iter()
                .find(|a| a.name() == pick.name)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "{MANIFEST_ASSET} names {} for {target}, which the release does not carry",
                        pick.name
                    )
                })?;
            (asset, true)
        }
        None => (
            cand.archive
                .clone()
                .ok_or_else(|| format!("the release has no archive for {target}"))?,
            false,
        ),
    };
    let progress = !p.quiet && !p.json && std::io::stderr().is_terminal();
    let archive = download(&archive_asset, 1 << 30, progress);
    if progress {
        // The finished bar leaves the cursor at the end of its line.
        eprintln!();
    }
    let archive = archive?;
    verify_release(&archive, archive_asset.name(), &sums, &sig, &key)?;

    // Stage next to the binary so the final rename stays on one file system.
    let dir = exe
        .parent()
        .ok_or("the running binary has no parent directory")?;
    let stage = tempfile::Builder::new()
        .prefix(".mosaic-update-")
        .tempdir_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let archive_path = stage.path().join(archive_asset.name());
    std::fs::write(&archive_path, &archive)
        .map_err(|e| format!("cannot write {}: {e}", archive_path.display()))?;
    let stem = archive_asset
        .name()
        .strip_suffix(".tar.gz")
        .ok_or_else(|| format!("{} is not a .tar.gz archive", archive_asset.name()))?;
    let inner = format!("{stem}/mosaic");
    self_update::Extract::from_source(&archive_path)
        .archive(self_update::ArchiveKind::Tar(Some(
            self_update::Compression::Gz,
        )))
        .extract_file(stage.path(), &inner)
        .map_err(|e| format!("the archive holds no {inner}: {}", one_line(&e.to_string())))?;
    let new_bin = stage.path().join(&inner);
    // Only a regular file is taken: a link in the archive is never followed
    // (by the chmod below, or by the copy that replaces this binary).
    match std::fs::symlink_metadata(&new_bin) {
        Ok(m) if m.file_type().is_file() => {}
        _ => {
            return Err(format!(
                "{inner} in the archive is not a regular file; refused"
            ))
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&new_bin, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod the new binary: {e}"))?;
    check_runs(&new_bin, &cand.version)?;
    self_replace::self_replace(&new_bin)
        .map_err(|e| format!("cannot replace {}: {e}", exe.display()))?;
    Ok((exe, manifest))
}

/// The new binary must run here and (in release builds) report the
/// release's version.
fn check_runs(bin: &Path, version: &semver::Version) -> std::result::Result<(), String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("the new binary does not run here: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.starts_with("mosaic ") {
        return Err("the new binary does not run here (mosaic --version failed)".into());
    }
    let reported = text.split_whitespace().nth(1).unwrap_or("");
    let emulated = cfg!(debug_assertions) && std::env::var_os("MOSAIC_SELF_VERSION").is_some();
    if !emulated && reported != version.to_string() {
        return Err(format!(
            "the new binary reports version {reported}, not {version}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        let s = Source::parse("https://git.example.com/ops/mosaic/").unwrap();
        assert_eq!(
            s.backend,
            Backend::Gitea {
                host: "https://git.example.com".into()
            }
        );
        assert_eq!((s.owner.as_str(), s.repo.as_str()), ("ops", "mosaic"));
        let s = Source::parse("http://127.0.0.1:8080/o/r").unwrap();
        assert_eq!(
            s.backend,
            Backend::Gitea {
                host: "http://127.0.0.1:8080".into()
            }
        );
        let s = Source::parse("https://github.com/o/r").unwrap();
        assert_eq!(
            s.backend,
            Backend::GitHub {
                api_base: "https://api.github.com".into()
            }
        );
        let s = Source::parse("github+https://ghe.corp/api/v3/o/r").unwrap();
        assert_eq!(
            s.backend,
            Backend::GitHub {
                api_base: "https://ghe.corp/api/v3".into()
            }
        );
        assert!(Source::parse("ftp://x/o/r").is_err());
        assert!(Source::parse("https://x/o").is_err());
        assert!(Source::parse("https://x/a/o/r").is_err());
    }

    #[test]
    fn embedded_key_parses() {
        parse_public_key(RELEASE_PUBLIC_KEY).unwrap();
    }

    #[test]
    fn sums_lookup() {
        let h = "a".repeat(64);
        let sums = format!("{h}  one.tar.gz\n{}  *two.tar.gz\n", "B".repeat(64));
        assert_eq!(expected_sha256(sums.as_bytes(), "one.tar.gz").unwrap(), h);
        assert_eq!(
            expected_sha256(sums.as_bytes(), "two.tar.gz").unwrap(),
            "b".repeat(64)
        );
        assert!(expected_sha256(sums.as_bytes(), "three").is_err());
    }

    #[test]
    fn manifest_picks_the_archive_signed_sums_list() {
        let t = "x86_64-unknown-linux-gnu";
        let v = semver::Version::new(0, 2, 0);
        let h = "c".repeat(64);
        let sums = format!("{h}  a.tar.gz\n");
        let m = |ver: &str, name: &str, sha: &str, target: &str| {
            serde_json::json!({"version": ver, "artefacts": [
                {"name": "x.deb", "kind": "deb", "sha256": sha},
                {"name": name, "kind": "archive", "sha256": sha, "target": target},
            ]})
            .to_string()
        };
        let pick = pick_from_manifest(
            m("0.2.0", "a.tar.gz", &h, t).as_bytes(),
            sums.as_bytes(),
            &v,
            t,
        )
        .unwrap();
        assert_eq!(pick.name, "a.tar.gz");
        let err =
            |text: String| pick_from_manifest(text.as_bytes(), sums.as_bytes(), &v, t).unwrap_err();
        assert!(err(m("0.3.0", "a.tar.gz", &h, t)).contains("is for version 0.3.0"));
        assert!(err(m("0.2.0", "a.tar.gz", &"d".repeat(64), t)).contains("disagrees"));
        assert!(err(m("0.2.0", "b.tar.gz", &h, t)).contains("does not list b.tar.gz"));
        assert!(err(m("0.2.0", "a.tar.gz", &h, "other")).contains("no archive for"));
        assert!(err(m("0.2.0", "../a.tar.gz", &h, t)).contains("not a file name"));
        assert!(err("{".into()).contains("not a release manifest"));
    }

    #[test]
    fn picks_newest_stable_with_asset() {
        use self_update::update::{Release, ReleaseAsset};
        let t = "x86_64-unknown-linux-gnu";
        let rel = |v: &str, with: bool| {
            let mut b = Release::builder();
            b.version(v).name(v).date("2024-01-01");
            if with {
                let ver = semver::Version::parse(v).unwrap();
                b.asset(ReleaseAsset::new(archive_name(&ver, t), "u"));
            }
            b.build().unwrap()
        };
        let list = vec![
            rel("0.1.0", true),
            rel("0.3.0", false),
            rel("0.2.0", true),
            rel("0.4.0-rc.1", true),
        ];
        let cur = semver::Version::new(0, 1, 0);
        assert_eq!(
            newest(&list, &cur, t).unwrap().version,
            semver::Version::new(0, 2, 0)
        );
        assert!(newest(&list, &semver::Version::new(0, 2, 0), t).is_none());
        // A newer release with a manifest but built for another target only
        // is passed over for the older one that has this target's archive
        // (it used to be picked, then refused: exit 8 on every update).
        let other = {
            let mut b = Release::builder();
            b.version("0.5.0").name("0.5.0").date("2024-01-01");
            b.asset(ReleaseAsset::new(MANIFEST_ASSET.to_string(), "u"));
            b.asset(ReleaseAsset::new(
                "mosaic-aarch64-unknown-linux-gnu.tar.gz".to_string(),
                "u",
            ));
            b.build().unwrap()
        };
        let mut list = list;
        list.push(other);
        assert_eq!(
            newest(&list, &cur, t).unwrap().version,
            semver::Version::new(0, 2, 0)
        );
        // With an asset for this target under another name it is the one.
        let renamed = {
            let mut b = Release::builder();
            b.version("0.6.0").name("0.6.0").date("2024-01-01");
            b.asset(ReleaseAsset::new(MANIFEST_ASSET.to_string(), "u"));
            b.asset(ReleaseAsset::new(format!("mosaic-{t}.tar.gz"), "u"));
            b.build().unwrap()
        };
        list.push(renamed);
        let c = newest(&list, &cur, t).unwrap();
        assert_eq!(c.version, semver::Version::new(0, 6, 0));
        assert!(c.manifest.is_some());
    }
}
