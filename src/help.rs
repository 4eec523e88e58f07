//! `mosaic docs [TOPIC]`: the operator documentation built into the binary.
//!
//! The pages are `docs/*.md` of the source tree (the table [`TOPICS`]),
//! embedded with `include_str!`, so `mosaic docs fleet` prints exactly what
//! the .deb installs as `/usr/share/doc/mosaic/fleet.md(.gz)` and the
//! release archive carries as `docs/fleet.md` (`cargo xtask dist` takes the
//! list and the bytes from the binary, so the three cannot drift apart).

use crate::report::{Doc, Printer};
use mosaic_engine::error::{Error, Result};

/// One documentation page: its topic name (the file stem) and its text.
pub struct Topic {
    /// The name given to `mosaic docs` (the file is `docs/NAME.md`).
    pub name: &'static str,
    /// The Markdown text.
    pub text: &'static str,
}

impl Topic {
    /// The page's title: its first line without the `# `.
    pub fn title(&self) -> &'static str {
        self.text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches('#')
            .trim()
    }
}

macro_rules! topics {
    ($($name:literal),* $(,)?) => {
        /// Every page, in the order `mosaic docs` lists them.
        pub const TOPICS: &[Topic] = &[
            $(Topic { name: $name, text: include_str!(concat!("../docs/", $name, ".md")) },)*
        ];
    };
}

topics!(
    "install-and-update",
    "fleet",
    "runtimes",
    "migrations",
    "self-update",
    "install-sh",
);

/// The page named `name`.
pub fn find(name: &str) -> Option<&'static Topic> {
    let name = name.strip_suffix(".md").unwrap_or(name);
    TOPICS.iter().find(|t| t.name == name)
}

/// The completion candidates of a topic argument: every topic, with its title.
pub fn topics() -> clap_complete::engine::ArgValueCandidates {
    clap_complete::engine::ArgValueCandidates::new(|| {
        TOPICS
            .iter()
            .map(|t| clap_complete::CompletionCandidate::new(t.name).help(Some(t.title().into())))
            .collect::<Vec<_>>()
    })
}

/// Runs `mosaic docs [TOPIC]`.
pub fn run(topic: Option<&str>, p: &Printer) -> Result<i32> {
    match topic {
        None => {
            if p.json {
                let list: Vec<_> = TOPICS
                    .iter()
                    .map(|t| serde_json::json!({"topic": t.name, "title": t.title()}))
                    .collect();
                p.doc(Doc::DocsTopics, &serde_json::json!({"topics": list}));
            } else {
                for t in TOPICS {
                    p.out(&format!("{:<20}{}", t.name, t.title()));
                }
            }
            Ok(0)
        }
        Some(name) => {
            let t = find(name).ok_or_else(|| {
                Error::Input(format!(
                    "no documentation topic {name:?}; choose one of: {} (`mosaic docs` lists them)",
                    TOPICS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
            if p.json {
                p.doc(
                    Doc::DocsTopic,
                    &serde_json::json!({"topic": t.name, "title": t.title(), "text": t.text}),
                );
            } else {
                p.raw(t.text.as_bytes());
            }
            Ok(0)
        }
    }
}
