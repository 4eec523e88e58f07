//! The man pages: mosaic(1) and one page per command, nested ones too
//! (mosaic-install(1), mosaic-fleet(1), mosaic-fleet-ps(1),
//! mosaic-agent-send(1), ...), made from the clap definitions with
//! clap_mangen. Every page has an EXIT STATUS section (from
//! [`crate::cli::EXIT_CODES`], the one table `--help` uses too) and a SEE
//! ALSO section naming only pages that are generated here. `mosaic man
//! [COMMAND...]` prints one; `mosaic man --out DIR` writes them all (what
//! `cargo xtask dist` ships in the .deb and the archive's `man/`).

use crate::cli::{Cli, DOCS_WHERE, ENVIRONMENT, EXIT_CODES, HOMES};
use crate::report::{Doc, Printer};
use clap::{Args, CommandFactory};
use mosaic_engine::error::{Error, Result};
use roff::{bold, roman, Roff};
use std::path::{Path, PathBuf};

/// Options of `mosaic man`.
#[derive(Debug, Args, Clone, Default)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `fleet ps` for mosaic-fleet-ps(1)
    /// (default: mosaic(1)).
    #[arg(add = command_words())]
    pub command: Vec<String>,
    /// Write every page (mosaic.1, mosaic-install.1, mosaic-fleet-ps.1, ...)
    /// into DIR, replacing older copies, and print their paths.
    #[arg(long, value_name = "DIR", conflicts_with = "command", value_hint = clap::ValueHint::DirPath)]
    pub out: Option<PathBuf>,
}

/// Completion of `mosaic man WORDS`: the commands below the words typed
/// so far, each with its one-line description.
pub fn command_words() -> clap_complete::engine::ArgValueCandidates {
    clap_complete::engine::ArgValueCandidates::new(|| {
        let words = crate::complete::words();
        let before = &words[..words.len().saturating_sub(1)];
        let typed: Vec<String> = before
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .skip_while(|w| w != "man")
            .skip(1)
            .filter(|w| !w.starts_with('-'))
            .collect();
        let mut cmd = Cli::command();
        for w in &typed {
            match cmd.find_subcommand(w) {
                Some(sub) => cmd = sub.clone(),
                None => return Vec::new(),
            }
        }
        visible(&cmd)
            .filter(|s| s.get_name() != "help")
            .map(|s| {
                clap_complete::CompletionCandidate::new(s.get_name()).help(s.get_about().cloned())
            })
            .collect::<Vec<_>>()
    })
}

/// One man page.
pub struct Page {
    /// The page's name, `mosaic` or `mosaic-fleet-ps` (the file is NAME.1).
    pub name: String,
    /// The words of the command, `["fleet", "ps"]`.
    pub path: Vec<String>,
    /// The roff source.
    pub roff: Vec<u8>,
}

/// Every page: mosaic(1) first, then each command's, depth first.
pub fn pages() -> Vec<Page> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, &[], None, &mut out);
    out
}

fn visible(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

fn page_name(path: &[String]) -> String {
    std::iter::once("mosaic")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("-")
}

fn walk(cmd: &clap::Command, path: &[String], parent: Option<&str>, out: &mut Vec<Page>) {
    let name = page_name(path);
    out.push(Page {
        name: name.clone(),
        path: path.to_vec(),
        roff: render(cmd, &name, path, parent),
    });
    for sub in visible(cmd) {
        let mut p = path.to_vec();
        p.push(sub.get_name().to_string());
        walk(sub, &p, Some(&name), out);
    }
}

fn render(cmd: &clap::Command, name: &str, path: &[String], parent: Option<&str>) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name)
        .section("1")
        .date(date())
        .source(format!("mosaic {}", env!("CARGO_PKG_VERSION")))
        .manual("mosaic manual");
    let mut w = Vec::new();
    // Rendering into a Vec cannot fail.
    let ok = (|| -> std::io::Result<()> {
        man.render_title(&mut w)?;
        man.render_name_section(&mut w)?;
        man.render_synopsis_section(&mut w)?;
        man.render_description_section(&mut w)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut w)?;
        }
        if visible(cmd).next().is_some() {
            man.render_subcommands_section(&mut w)?;
        }
        Ok(())
    })();
    debug_assert!(ok.is_ok());
    let mut roff = Roff::new();
    if path.is_empty() {
        section(
            &mut roff,
            "ENVIRONMENT",
            ENVIRONMENT.trim_start_matches("Environment: "),
        );
        section(&mut roff, "HOMES", HOMES.trim_start_matches("Homes: "));
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in EXIT_CODES {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*what)]);
    }
    // SEE ALSO: the pages above this one and below it, all generated here.
    let mut see: Vec<String> = Vec::new();
    for i in 0..path.len() {
        see.push(page_name(&path[..i]));
    }
    debug_assert!(parent.is_none() || see.last().map(String::as_str) == parent);
    for sub in visible(cmd) {
        see.push(format!("{name}-{}", sub.get_name()));
    }
    roff.control("SH", ["SEE ALSO"]);
    if !see.is_empty() {
        let mut words = Vec::new();
        for (i, s) in see.iter().enumerate() {
            words.push(bold(s.clone()));
            words.push(roman(if i + 1 < see.len() { "(1), " } else { "(1)" }));
        }
        roff.text(words);
        roff.control("PP", []);
    }
    roff.text([roman(format!(
        "Documentation: {}.",
        DOCS_WHERE.replace('`', "")
    ))]);
    roff.control("SH", ["VERSION"]);
    roff.text([roman(format!("v{}", env!("CARGO_PKG_VERSION")))]);
    w.extend_from_slice(roff.render().as_bytes());
    w
}

/// The pages' date: the day of `SOURCE_DATE_EPOCH` (what `cargo xtask
/// dist` sets, so a release's pages are reproducible), else today (UTC).
fn date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    mosaic_engine::civil::date(secs)
}

fn section(roff: &mut Roff, title: &str, text: &str) {
    roff.control("SH", [title]);
    roff.text([roman(text)]);
}

/// The page of `mosaic WORDS...`, or an error naming the commands there are.
pub fn page(words: &[String]) -> Result<Page> {
    let all = pages();
    let want = page_name(words);
    if let Some(i) = all.iter().position(|p| p.name == want) {
        return Ok(all.into_iter().nth(i).expect("found above"));
    }
    // The longest known prefix, to name what could follow it.
    let mut known = &words[..0];
    while known.len() < words.len() && all.iter().any(|p| p.path == words[..=known.len()]) {
        known = &words[..=known.len()];
    }
    let below: Vec<&str> = all
        .iter()
        .filter(|p| p.path.len() == known.len() + 1 && p.path.starts_with(known))
        .map(|p| p.path[known.len()].as_str())
        .collect();
    let at = std::iter::once("mosaic")
        .chain(known.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    Err(Error::Input(if below.is_empty() {
        format!(
            "`{at}` has no subcommands, so no man page for `mosaic {}`; run `mosaic man {}`",
            words.join(" "),
            known.join(" ")
        )
    } else {
        format!(
            "no command `mosaic {}`, so no man page for it; after `{at}` come: {}",
            words.join(" "),
            below.join(", ")
        )
    }))
}

/// Runs `mosaic man`.
pub fn run(args: &ManArgs, p: &Printer) -> Result<i32> {
    match &args.out {
        None => {
            p.raw(&page(&args.command)?.roff);
            Ok(0)
        }
        Some(dir) => {
            let written = write_all(dir)?;
            if p.json {
                p.doc(Doc::ManPages, &serde_json::json!({"pages": written}));
            } else {
                for w in &written {
                    p.out(&w.display().to_string());
                }
            }
            Ok(0)
        }
    }
}

/// Writes every page into `dir` (made if missing), each through a temp file
/// renamed into place; returns the paths.
fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    mosaic_engine::paths::check_plain("--out", dir)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    for page in pages() {
        let dest = dir.join(format!("{}.1", page.name));
        let tmp = dir.join(format!(".{}.1.tmp-{}", page.name, std::process::id()));
        std::fs::write(&tmp, &page.roff).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&dest, e)
        })?;
        written.push(dest);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_see_also_names_a_generated_page() {
        let all = pages();
        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        assert!(names.contains(&"mosaic-fleet-ps") && names.contains(&"mosaic-agent-send"));
        for p in &all {
            let text = String::from_utf8(p.roff.clone()).unwrap();
            assert!(text.contains(".SH \"EXIT STATUS\""), "{}", p.name);
            assert!(!text.contains("EXTRA"), "{}", p.name);
            for r in text.split(|c: char| c.is_whitespace() || c == ',') {
                let r = r
                    .trim_start_matches("\\fB")
                    .replace("\\fR", "")
                    .replace("\\-", "-");
                if let Some(stem) = r.strip_suffix("(1)") {
                    assert!(
                        names.contains(&stem),
                        "{} names {stem}(1), which is not generated",
                        p.name
                    );
                }
            }
        }
    }
}
