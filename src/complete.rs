//! Shell completion: the registration scripts `mosaic completions SHELL`
//! prints, and the dynamic candidates they ask this binary for.
//!
//! The scripts are clap_complete's `CompleteEnv` ones: on TAB the shell
//! runs `MOSAIC_COMPLETE=SHELL mosaic -- WORDS...` (handled in `main` before
//! anything else), and the value completers here look at the home the
//! words name (`--home`, else `MOSAIC_HOME`, else the default) and its
//! roster (`--roster`, else `HOME/fleet/roster.yaml`):
//!
//! * [`agents`]: the roster's agent names (`fleet start/stop/...`, `agent ...`);
//! * [`hosts`]: the roster's `hosts:` names (`fleet deploy`, `fleet install --as`);
//! * [`presets`]: `fleet/examples/*.yaml` of the home and of the framework
//!   built into this binary (`fleet init --preset`);
//! * [`backups`]: generation numbers and backup ids of the home (`rollback`);
//! * [`rosters`]: files, plus the home's `fleet/*.yaml` (`--roster`);
//! * `crate::manpages::command_words`: the commands that have a page (`man`).
//!
//! Completion only reads; a roster or home that cannot be read offers
//! nothing rather than an error.

use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter, PathCompleter, ValueCompleter};
use clap_complete::env::EnvCompleter;
use clap_complete::CompletionCandidate;
use mosaic_engine::paths::Paths;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The environment variable the registration scripts set. Not clap's
/// generic `COMPLETE`: a variable of that name left in some environment
/// would turn every mosaic run into a completion request.
pub const VAR: &str = "MOSAIC_COMPLETE";

/// Answers a completion request when `MOSAIC_COMPLETE` is set (and exits);
/// returns at once otherwise. Call before anything is printed.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(<crate::cli::Cli as clap::CommandFactory>::command)
        .var(VAR)
        .complete();
}

/// The registration script for `shell`: it calls `mosaic` (found on PATH)
/// for every completion.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    use clap_complete::env::{Bash, Elvish, Fish, Powershell, Zsh};
    use clap_complete::Shell as S;
    let completer: &dyn EnvCompleter = match shell {
        S::Bash => &Bash,
        S::Zsh => &Zsh,
        S::Fish => &Fish,
        S::Elvish => &Elvish,
        S::PowerShell => &Powershell,
        _ => &Bash,
    };
    let mut buf = Vec::new();
    completer
        .write_registration(VAR, "mosaic", "mosaic", "mosaic", &mut buf)
        .expect("writing into a Vec cannot fail");
    if shell == S::Zsh {
        // Autoloaded from $fpath as _mosaic, the file's body runs as the
        // completion function itself: complete this first TAB too.
        buf.extend_from_slice(
            b"if [[ \"${funcstack[1]-}\" == _mosaic ]]; then\n    _clap_dynamic_completer_mosaic \"$@\"\nfi\n",
        );
    }
    buf
}

/// The words of the command line being completed (after the `--`; the
/// last is the word at the cursor).
pub(crate) fn words() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The value of `--NAME V` / `--NAME=V` (bash: `--NAME = V`) in `words`
/// (the last one given).
fn flag(words: &[OsString], name: &str) -> Option<PathBuf> {
    let long = format!("--{name}");
    let eq = format!("--{name}=");
    let mut found = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let s = w.to_string_lossy();
        if s == long {
            // bash splits `--roster=FILE` at the `=` (COMP_WORDBREAKS).
            found = match it.next() {
                Some(v) if v == "=" => it.next().map(PathBuf::from),
                v => v.map(PathBuf::from),
            };
        } else if let Some(v) = s.strip_prefix(&eq) {
            found = Some(PathBuf::from(v));
        }
    }
    found.filter(|p| !p.as_os_str().is_empty())
}

/// The home the command line names, resolved as the command would.
fn home(words: &[OsString]) -> Option<Paths> {
    Paths::resolve(flag(words, "home").as_deref()).ok()
}

/// The roster the command line names.
fn roster(words: &[OsString]) -> Option<mosaic_fleet::roster::Roster> {
    let path = match flag(words, "roster") {
        Some(p) if p.is_absolute() => p,
        Some(p) => std::env::current_dir().ok()?.join(p),
        None => mosaic_fleet::roster::default_path(&home(words)?.home),
    };
    mosaic_fleet::roster::load(&path).ok()
}

/// Agent names of the roster, with runtime and class as help.
pub fn agents() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(r) = roster(&words()) else {
            return Vec::new();
        };
        r.agents
            .iter()
            .map(|a| {
                let mut help = a.runtime.program().to_string();
                if let Some(c) = &a.class {
                    help.push_str(&format!(", {}", c.as_str()));
                }
                CompletionCandidate::new(a.name.as_str()).help(Some(help.into()))
            })
            .collect::<Vec<_>>()
    })
}

/// Host names of the roster's `hosts:`.
pub fn hosts() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(r) = roster(&words()) else {
            return Vec::new();
        };
        r.resolved
            .values()
            .map(|h| CompletionCandidate::new(&h.name).help(Some(h.target.clone().into())))
            .collect::<Vec<_>>()
    })
}

/// Preset names: `fleet/examples/*.yaml` of the home and of the built-in framework.
pub fn presets() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let mut names = std::collections::BTreeSet::new();
        if let Some(paths) = home(&words()) {
            if let Ok(rd) = std::fs::read_dir(paths.home.join("fleet/examples")) {
                for e in rd.flatten() {
                    if let Some(n) = e.file_name().to_str().and_then(|n| n.strip_suffix(".yaml")) {
                        names.insert(n.to_string());
                    }
                }
            }
        }
        if let Ok(src) = mosaic_engine::source::Source::from_env(None, false) {
            for k in src.files.keys() {
                if let Some(n) = k
                    .strip_prefix("fleet/examples/")
                    .and_then(|k| k.strip_suffix(".yaml"))
                {
                    names.insert(n.to_string());
                }
            }
        }
        names
            .into_iter()
            .filter(|n| !n.contains('/'))
            .map(CompletionCandidate::new)
            .collect::<Vec<_>>()
    })
}

/// Generation numbers (then backup ids) of the home, newest first.
pub fn backups() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(paths) = home(&words()) else {
            return Vec::new();
        };
        let Ok(list) = mosaic_engine::txn::list(&paths) else {
            return Vec::new();
        };
        let gens = list
            .iter()
            .filter(|b| b.kind == mosaic_engine::txn::Kind::Generation);
        let mut out: Vec<CompletionCandidate> = gens
            .clone()
            .map(|b| {
                CompletionCandidate::new(b.generation.to_string()).help(Some(
                    format!(
                        "{} {} → {}",
                        b.command,
                        b.from_version.as_deref().unwrap_or("none"),
                        b.to_version
                    )
                    .into(),
                ))
            })
            .collect();
        out.extend(gens.map(|b| {
            CompletionCandidate::new(&b.id)
                .help(Some(format!("generation {}", b.generation).into()))
        }));
        out
    })
}

/// Roster files: what the path completion offers, plus the home's
/// `fleet/*.yaml` (absolute, so they work from any directory).
pub fn rosters() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let mut out = PathCompleter::file().complete(current);
        let typed = current.to_string_lossy();
        if let Some(paths) = home(&words()) {
            let dir = paths.home.join("fleet");
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension() == Some(OsStr::new("yaml")) && p.is_file())
                .collect();
            found.sort();
            for p in found {
                let s = p.to_string_lossy().into_owned();
                if s.starts_with(typed.as_ref())
                    && !out.iter().any(|c| c.get_value() == p.as_os_str())
                {
                    out.push(CompletionCandidate::new(&s).help(Some(roster_help(&p).into())));
                }
            }
        }
        out
    })
}

fn roster_help(p: &Path) -> String {
    match mosaic_fleet::roster::load(p) {
        Ok(r) => format!("roster, {} agents", r.agents.len()),
        Err(_) => "not a valid roster".to_string(),
    }
}
