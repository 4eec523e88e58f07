//! The one YAML reader and editor of mosaic: rosters (`fleet add`,
//! `fleet remove`, the roster loader) and the socket migration go through it.
//!
//! [`Doc::parse`] reads a single YAML document with `saphyr-parser` (pure
//! Rust, YAML 1.2) into a tree whose every node carries its byte range and
//! line, anchors and aliases linked. Reading resolves aliases and `<<` merge
//! keys ([`Doc::get`], [`Doc::to_json`]); editing never re-emits the
//! document: an edit is a splice of bytes ([`Splice`]) computed from the
//! positions (a scalar's bytes, an item appended to a block sequence, an
//! item's lines removed), so every other byte — comments, CRLF line ends,
//! indentation, quoting style, a BOM — stays as it was. Callers re-parse the
//! result and check it says what they meant.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};
use std::collections::HashMap;

/// A YAML text that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct YamlError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong (one line).
    pub msg: String,
}

impl YamlError {
    fn at(line: usize, msg: impl Into<String>) -> YamlError {
        YamlError {
            line: Some(line),
            msg: msg.into(),
        }
    }
}

/// The quoting of a scalar as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// `'…'`.
    Single,
    /// `"…"`.
    Double,
    /// `|` or `>`.
    Block,
}

/// A node's id in its [`Doc`].
pub type NodeId = usize;

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar: its value (escapes resolved) and style; `tagged` when it
    /// carries an explicit tag.
    Scalar {
        /// The value.
        value: String,
        /// How it is written.
        style: Style,
        /// Has an explicit tag (`!!str`, …).
        tagged: bool,
    },
    /// A mapping: (key, value) pairs in order.
    Map(Vec<(NodeId, NodeId)>),
    /// A sequence.
    Seq(Vec<NodeId>),
    /// `*name`: the anchored node it stands for.
    Alias(NodeId),
}

/// One node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// First byte.
    pub start: usize,
    /// One past the last byte of its content (for a block collection: of
    /// its last child).
    pub end: usize,
    /// 1-based line of its first byte.
    pub line: usize,
    /// Written in flow style (`{…}` / `[…]`).
    pub flow: bool,
}

/// A parsed document.
#[derive(Debug, Clone)]
pub struct Doc<'t> {
    text: &'t str,
    nodes: Vec<Node>,
    root: Option<NodeId>,
}

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// Replace `text[start..end]` with `with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// First byte replaced.
    pub start: usize,
    /// One past the last byte replaced.
    pub end: usize,
    /// The new bytes.
    pub with: String,
}

/// Applies non-overlapping splices to `text`.
pub fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| (s.start, s.end));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for s in splices {
        debug_assert!(s.start >= at && s.end >= s.start);
        out.push_str(&text[at..s.start]);
        out.push_str(&s.with);
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

/// How many nodes alias expansion may produce (a "billion laughs" guard).
const EXPANSION_LIMIT: usize = 100_000;

enum Frame {
    Map(NodeId, Vec<NodeId>),
    Seq(NodeId, Vec<NodeId>),
}

struct Builder<'t> {
    text: &'t str,
    /// Byte offset of each char index (and of the end).
    bytes: Option<Vec<usize>>,
    nodes: Vec<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, NodeId>,
    root: Option<NodeId>,
    docs: usize,
    err: Option<YamlError>,
}

impl Builder<'_> {
    fn byte(&self, char_index: usize) -> usize {
        match &self.bytes {
            None => char_index.min(self.text.len()),
            Some(v) => v.get(char_index).copied().unwrap_or(self.text.len()),
        }
    }

    fn push(&mut self, kind: Kind, span: &Span, anchor: usize, flow: bool) -> NodeId {
        let (mut start, end) = (self.byte(span.start.index()), self.byte(span.end.index()));
        let mut line = span.start.line();
        // The span of a node with an anchor or a tag starts at them; the node
        // itself starts after them.
        if !matches!(kind, Kind::Alias(_)) {
            while start < end && self.text[start..].starts_with(['&', '!']) {
                let rest = &self.text[start..end];
                let mut k = rest.find([' ', '\t', '\r', '\n']).unwrap_or(rest.len());
                // Blanks, line ends and comments between the anchor or tag
                // and the node belong to neither.
                loop {
                    let after = &rest[k..];
                    k += after.len() - after.trim_start().len();
                    if !rest[k..].starts_with('#') {
                        break;
                    }
                    k += rest[k..].find('\n').unwrap_or(rest.len() - k);
                }
                line += rest[..k].matches('\n').count();
                start += k;
            }
        }
        let mut end = end.max(start);
        if let Kind::Scalar { style, .. } = &kind {
            // A scalar's span may run on to the next token, over blanks and
            // a comment: end it where the scalar ends.
            end = start + scalar_len(&self.text[start..end], *style);
        }
        let id = self.nodes.len();
        self.nodes.push(Node {
            kind,
            start,
            end,
            line,
            flow,
        });
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        self.attach(id);
        id
    }

    fn attach(&mut self, id: NodeId) {
        match self.stack.last_mut() {
            Some(Frame::Map(_, v)) | Some(Frame::Seq(_, v)) => v.push(id),
            None => {
                if self.root.is_none() {
                    self.root = Some(id);
                }
            }
        }
    }

    fn close(&mut self, span: &Span) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (id, kids) = match frame {
            Frame::Map(id, v) | Frame::Seq(id, v) => (id, v),
        };
        let last_end = kids.iter().map(|&k| self.nodes[k].end).max();
        let node_flow = self.nodes[id].flow;
        let end = if node_flow {
            // Just past the closing bracket.
            let at = self.byte(span.start.index());
            if self.text[at..].starts_with([']', '}']) {
                at + 1
            } else {
                self.byte(span.end.index())
            }
        } else {
            last_end.unwrap_or(self.nodes[id].start)
        };
        let is_map = matches!(self.nodes[id].kind, Kind::Map(_));
        if is_map {
            if kids.len() % 2 != 0 {
                self.err.get_or_insert(YamlError::at(
                    self.nodes[id].line,
                    "a mapping key without a value",
                ));
            }
            let pairs = kids
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0], c[1]));
            self.nodes[id].kind = Kind::Map(pairs.collect());
        } else {
            self.nodes[id].kind = Kind::Seq(kids);
        }
        self.nodes[id].end = end.max(self.nodes[id].start);
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder<'_> {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        match ev {
            Event::DocumentStart(_) => {
                self.docs += 1;
                if self.docs > 1 {
                    self.err.get_or_insert(YamlError::at(
                        span.start.line(),
                        "a second YAML document (`---`); keep one document per file",
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::Single,
                    ScalarStyle::DoubleQuoted => Style::Double,
                    _ => Style::Block,
                };
                let kind = Kind::Scalar {
                    value: value.into_owned(),
                    style,
                    tagged: tag.is_some(),
                };
                self.push(kind, &span, anchor, false);
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).copied() {
                Some(target) => {
                    self.push(Kind::Alias(target), &span, 0, false);
                }
                None => {
                    self.err.get_or_insert(YamlError::at(
                        span.start.line(),
                        "an alias to an unknown anchor",
                    ));
                }
            },
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let at = self.byte(span.start.index());
                let open = if is_map { '{' } else { '[' };
                // After an anchor or a tag, if any.
                let flow = self.text[at..]
                    .split_whitespace()
                    .find(|w| !w.starts_with(['&', '!']))
                    .is_some_and(|w| w.starts_with(open));
                let kind = if is_map {
                    Kind::Map(Vec::new())
                } else {
                    Kind::Seq(Vec::new())
                };
                let id = self.push(kind, &span, anchor, flow);
                self.stack.push(if is_map {
                    Frame::Map(id, Vec::new())
                } else {
                    Frame::Seq(id, Vec::new())
                });
            }
            Event::MappingEnd | Event::SequenceEnd => self.close(&span),
            _ => {}
        }
    }
}

/// The length of the scalar written at the start of `s` (which may run on
/// over blanks and a comment).
fn scalar_len(s: &str, style: Style) -> usize {
    let b = s.as_bytes();
    match style {
        Style::Double => {
            let mut i = 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return i + 1,
                    _ => i += 1,
                }
            }
            s.len()
        }
        Style::Single => {
            let mut i = 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            s.len()
        }
        Style::Plain => {
            let cut = [" #", "\t#"]
                .iter()
                .filter_map(|p| s.find(p))
                .min()
                .unwrap_or(s.len());
            s[..cut].trim_end().len()
        }
        Style::Block => s.trim_end().len(),
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub fn resolve_plain(s: &str) -> serde_json::Value {
    use serde_json::Value;
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(body, 10) {
        if let Ok(n) = s.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = body.parse::<u64>() {
            if !s.starts_with('-') {
                return Value::from(n);
            }
        }
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(h) = s.strip_prefix(prefix) {
            if digits(h, radix) {
                if let Ok(n) = u64::from_str_radix(h, radix) {
                    return Value::from(n);
                }
            }
        }
    }
    let lower = body.to_ascii_lowercase();
    if lower == ".inf" || lower == ".nan" {
        return Value::String(s.to_string()); // not representable in JSON
    }
    let floaty = body.chars().any(|c| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if floaty {
        if let Ok(f) = s.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    Value::String(s.to_string())
}

/// Whether `s` can be written as a plain scalar and read back as the same
/// string (names, paths, socket names).
pub fn plain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/@+-~".contains(c))
        && !s.starts_with(['-', '~', '@'])
        && resolve_plain(s) == serde_json::Value::String(s.to_string())
}

/// `s` as a scalar: plain when [`plain_ok`], else double-quoted.
pub fn scalar_text(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

impl<'t> Doc<'t> {
    /// Parses one YAML document (an empty text is an empty document).
    pub fn parse(text: &'t str) -> Result<Doc<'t>, YamlError> {
        let bytes = (!text.is_ascii()).then(|| {
            let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            v.push(text.len());
            v
        });
        let mut b = Builder {
            text,
            bytes,
            nodes: Vec::new(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            docs: 0,
            err: None,
        };
        let mut parser = Parser::new_from_str(text);
        if let Err(e) = parser.load(&mut b, true) {
            let msg = e.info().replace('\n', " ");
            return Err(YamlError::at(e.marker().line(), msg));
        }
        if let Some(e) = b.err {
            return Err(e);
        }
        Ok(Doc {
            text,
            nodes: b.nodes,
            root: b.root,
        })
    }

    /// The text the document was parsed from.
    pub fn text(&self) -> &'t str {
        self.text
    }

    /// The root node (`None` for an empty document).
    pub fn root(&self) -> Option<NodeId> {
        self.root
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Follows aliases to the node they stand for.
    pub fn deref(&self, mut id: NodeId) -> NodeId {
        // Anchors are defined before their aliases, so this ends.
        while let Kind::Alias(t) = self.nodes[id].kind {
            id = t;
        }
        id
    }

    /// The scalar value of a node (after aliases), if it is one.
    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.deref(id)].kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether node `id` is the merge key `<<`.
    fn is_merge_key(&self, id: NodeId) -> bool {
        matches!(&self.nodes[id].kind, Kind::Scalar { value, style: Style::Plain, tagged: false } if value == "<<")
    }

    /// The (key, value) pairs of mapping `id` as read: its own pairs, then
    /// those merged in with `<<` (an own key wins; the first merged wins).
    pub fn entries(&self, id: NodeId) -> Vec<(NodeId, NodeId)> {
        let mut out = Vec::new();
        self.entries_into(id, &mut out, 0);
        out
    }

    fn entries_into(&self, id: NodeId, out: &mut Vec<(NodeId, NodeId)>, depth: usize) {
        let Kind::Map(pairs) = &self.nodes[self.deref(id)].kind else {
            return;
        };
        if depth > 32 {
            return;
        }
        let mut merged = Vec::new();
        for &(k, v) in pairs {
            if self.is_merge_key(k) {
                merged.push(v);
            } else if !out.iter().any(|&(k2, _)| self.scalar(k2) == self.scalar(k)) {
                out.push((k, v));
            }
        }
        for m in merged {
            let m = self.deref(m);
            match &self.nodes[m].kind {
                Kind::Seq(items) => {
                    for &i in items {
                        self.entries_into(i, out, depth + 1);
                    }
                }
                _ => self.entries_into(m, out, depth + 1),
            }
        }
    }

    /// The value of `key` in mapping `id` (aliases and merges followed).
    pub fn get_key(&self, id: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        self.entries(id)
            .into_iter()
            .find(|&(k, _)| self.scalar(k) == Some(key))
    }

    /// The node at `path` (aliases and merges followed; the returned id may
    /// be an alias node — see [`Doc::deref`]).
    pub fn get(&self, path: &[Seg]) -> Option<NodeId> {
        let mut at = self.root?;
        for seg in path {
            at = match *seg {
                Seg::Key(k) => self.get_key(at, k)?.1,
                Seg::Index(i) => match &self.nodes[self.deref(at)].kind {
                    Kind::Seq(items) => *items.get(i)?,
                    _ => return None,
                },
            };
        }
        Some(at)
    }

    /// The items of a sequence node (after aliases).
    pub fn items(&self, id: NodeId) -> &[NodeId] {
        match &self.nodes[self.deref(id)].kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    /// The whole document as a JSON value (aliases expanded, merges applied,
    /// untagged plain scalars resolved by the core schema; quoted, block and
    /// tagged scalars are strings). A duplicate key is an error naming its
    /// line.
    pub fn to_json(&self) -> Result<serde_json::Value, YamlError> {
        let mut budget = EXPANSION_LIMIT;
        match self.root {
            None => Ok(serde_json::Value::Null),
            Some(r) => self.json(r, &mut budget),
        }
    }

    fn json(&self, id: NodeId, budget: &mut usize) -> Result<serde_json::Value, YamlError> {
        use serde_json::Value;
        let n = &self.nodes[id];
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| YamlError::at(n.line, "aliases expand to too many nodes"))?;
        Ok(match &n.kind {
            Kind::Alias(t) => self.json(*t, budget)?,
            Kind::Scalar {
                value,
                style,
                tagged,
            } => match style {
                Style::Plain if !tagged => resolve_plain(value),
                _ => Value::String(value.clone()),
            },
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|&i| self.json(i, budget))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map(pairs) => {
                let mut seen: Vec<&str> = Vec::new();
                for &(k, _) in pairs {
                    if self.is_merge_key(k) {
                        continue;
                    }
                    let Some(name) = self.scalar(k) else {
                        return Err(YamlError::at(
                            self.nodes[k].line,
                            "a mapping key that is not a scalar",
                        ));
                    };
                    if seen.contains(&name) {
                        return Err(YamlError::at(
                            self.nodes[k].line,
                            format!("duplicate key {name:?}"),
                        ));
                    }
                    seen.push(name);
                }
                let mut m = serde_json::Map::new();
                for (k, v) in self.entries(id) {
                    let key = self.scalar(k).unwrap_or_default().to_string();
                    m.insert(key, self.json(v, budget)?);
                }
                Value::Object(m)
            }
        })
    }

    /// The line end the text uses (`\r\n` when its first line ends so).
    pub fn eol(&self) -> &'static str {
        match self.text.find('\n') {
            Some(i) if i > 0 && self.text.as_bytes()[i - 1] == b'\r' => "\r\n",
            _ => "\n",
        }
    }

    /// Byte offset of the start of the line holding byte `at`.
    pub fn line_start(&self, at: usize) -> usize {
        self.text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)
    }

    /// Byte offset just past the line end of the line holding byte `at`
    /// (the text's length on a last line without one).
    pub fn line_end(&self, at: usize) -> usize {
        self.text[at..]
            .find('\n')
            .map(|i| at + i + 1)
            .unwrap_or(self.text.len())
    }

    /// A splice writing `new` as the value of scalar node `id` (not an
    /// alias), in the scalar's own quoting style.
    pub fn set_scalar(&self, id: NodeId, new: &str) -> Result<Splice, YamlError> {
        let n = &self.nodes[id];
        let Kind::Scalar { style, .. } = &n.kind else {
            return Err(YamlError::at(n.line, "not a scalar"));
        };
        let written = &self.text[n.start..n.end];
        let with = match style {
            Style::Plain if plain_ok(new) => new.to_string(),
            Style::Single if written.starts_with('\'') && written.ends_with('\'') => {
                format!("'{}'", new.replace('\'', "''"))
            }
            Style::Double if written.starts_with('"') && written.ends_with('"') => {
                serde_json::to_string(new).expect("a string serializes")
            }
            _ => {
                return Err(YamlError::at(
                    n.line,
                    "a scalar written in a style that cannot be rewritten in place",
                ))
            }
        };
        Ok(Splice {
            start: n.start,
            end: n.end,
            with,
        })
    }

    /// The column of the `-` of block sequence item `item` and the column
    /// its content starts at, when the item starts on its dash's line.
    fn dash_of(&self, item: NodeId) -> Option<(usize, usize, usize)> {
        let start = self.nodes[item].start;
        let ls = self.line_start(start);
        let before = &self.text[ls..start];
        let trimmed = before.trim_end_matches(' ');
        if !trimmed.ends_with('-') || !trimmed[..trimmed.len() - 1].chars().all(|c| c == ' ') {
            return None;
        }
        let dash = trimmed.len() - 1;
        Some((ls, dash, start - ls))
    }

    /// A splice appending an item to block sequence `seq` after its last
    /// item, its lines given without indentation or line ends (the first
    /// after the `- `); they are indented like the last item and end with
    /// the text's line end. `None` when `seq` is not a block sequence whose
    /// items start on their dash's line.
    pub fn append_item(&self, seq: NodeId, lines: &[String]) -> Option<Splice> {
        let n = &self.nodes[seq];
        let Kind::Seq(items) = &n.kind else {
            return None;
        };
        if n.flow {
            return None;
        }
        let last = *items.last()?;
        let (_, dash, content) = self.dash_of(last)?;
        let at = self.line_end(self.nodes[last].end);
        let eol = self.eol();
        let mut with = String::new();
        if !self.text[..at].ends_with('\n') {
            with.push_str(eol);
        }
        for (i, l) in lines.iter().enumerate() {
            if i == 0 {
                with.push_str(&" ".repeat(dash));
                with.push('-');
                with.push_str(&" ".repeat(content - dash - 1));
            } else {
                with.push_str(&" ".repeat(content));
            }
            with.push_str(l);
            with.push_str(eol);
        }
        Some(Splice {
            start: at,
            end: at,
            with,
        })
    }

    /// A splice removing item `idx` of block sequence `seq`: the lines from
    /// its dash to the end of its last content line (comment lines around it
    /// stay). `None` when it is not a block item on its own lines.
    pub fn remove_item(&self, seq: NodeId, idx: usize) -> Option<Splice> {
        let n = &self.nodes[seq];
        let Kind::Seq(items) = &n.kind else {
            return None;
        };
        if n.flow {
            return None;
        }
        let item = *items.get(idx)?;
        let (ls, _, _) = self.dash_of(item)?;
        let end = self.line_end(self.nodes[item].end);
        // Whatever follows the item on its last line must be a comment
        // (after the `:` of a last key whose value is empty: an empty
        // scalar's span sits before its key's colon).
        let mut tail = self.text[self.nodes[item].end..end].trim();
        let last_empty = match &self.nodes[item].kind {
            Kind::Map(pairs) => pairs.last().is_some_and(|(_, v)| {
                matches!(&self.nodes[*v].kind, Kind::Scalar { value, style: Style::Plain, .. } if value.is_empty())
            }),
            _ => false,
        };
        if last_empty {
            tail = tail.strip_prefix(':').map_or(tail, str::trim_start);
        }
        if !(tail.is_empty() || tail.starts_with('#')) {
            return None;
        }
        Some(Splice {
            start: ls,
            end,
            with: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_cover_the_scalar_as_written() {
        let t = "a: &x 'q'\nb: \"d\"\nc: plain # c\nd: *x\n";
        let d = Doc::parse(t).unwrap();
        for (k, want, line) in [("a", "'q'", 1), ("b", "\"d\"", 2), ("c", "plain", 3)] {
            let n = d.node(d.get(&[Seg::Key(k)]).unwrap());
            assert_eq!(&t[n.start..n.end], want);
            assert_eq!(n.line, line);
        }
        let alias = d.get(&[Seg::Key("d")]).unwrap();
        assert_eq!(&t[d.node(alias).start..d.node(alias).end], "*x");
        assert_eq!(d.scalar(alias), Some("q"));
    }

    #[test]
    fn unicode_and_bom_keep_byte_offsets() {
        let t = "\u{feff}# é\nname: \"é\"\nx: ü\n";
        let d = Doc::parse(t).unwrap();
        let n = d.node(d.get(&[Seg::Key("x")]).unwrap());
        assert_eq!(&t[n.start..n.end], "ü");
        let s = d
            .set_scalar(d.get(&[Seg::Key("name")]).unwrap(), "a")
            .unwrap();
        assert_eq!(apply(t, vec![s]), "\u{feff}# é\nname: \"a\"\nx: ü\n");
    }

    #[test]
    fn json_resolves_the_core_schema_aliases_and_merges() {
        let t = "base: &b {x: 1, y: two}\nm:\n  <<: *b\n  y: own\nq: '1'\nn: ~\nt: true\nf: 1.5\nl: [*b]\n";
        let v = Doc::parse(t).unwrap().to_json().unwrap();
        assert_eq!(v["m"], json!({"y": "own", "x": 1}));
        assert_eq!(v["q"], json!("1"));
        assert_eq!(v["n"], json!(null));
        assert_eq!(v["t"], json!(true));
        assert_eq!(v["f"], json!(1.5));
        assert_eq!(v["l"][0]["y"], json!("two"));
    }

    #[test]
    fn errors_carry_lines() {
        let e = Doc::parse("a: 1\nb: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        let e = Doc::parse("a: 1\nb: 2\na: 3\n")
            .unwrap()
            .to_json()
            .unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(Doc::parse("a: 1\n---\nb: 2\n").is_err());
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        assert!(Doc::parse(bomb).unwrap().to_json().is_err());
    }

    #[test]
    fn set_scalar_keeps_the_style_and_every_other_byte() {
        let t = "# top\r\nk1: old   # c\r\nk2: 'old' # 'c'\r\nk3: \"old\"  # \"c\"\r\nf: {k4: old, z: 1}\r\n";
        let d = Doc::parse(t).unwrap();
        let s: Vec<_> = ["k1", "k2", "k3"]
            .iter()
            .map(|k| d.set_scalar(d.get(&[Seg::Key(k)]).unwrap(), "new").unwrap())
            .chain([d
                .set_scalar(d.get(&[Seg::Key("f"), Seg::Key("k4")]).unwrap(), "new")
                .unwrap()])
            .collect();
        assert_eq!(
            apply(t, s),
            "# top\r\nk1: new   # c\r\nk2: 'new' # 'c'\r\nk3: \"new\"  # \"c\"\r\nf: {k4: new, z: 1}\r\n"
        );
        let d = Doc::parse("k: |\n  old\n").unwrap();
        assert!(d.set_scalar(d.get(&[Seg::Key("k")]).unwrap(), "x").is_err());
    }

    #[test]
    fn append_and_remove_items_of_a_block_sequence() {
        let t = "l:\r\n  # one\r\n  -   a: 1 # c\r\n      b: 2\r\n  - a: 3\r\n# end\r\n";
        let d = Doc::parse(t).unwrap();
        let seq = d.get(&[Seg::Key("l")]).unwrap();
        let s = d
            .append_item(seq, &["a: 4".to_string(), "b: 5".to_string()])
            .unwrap();
        let out = apply(t, vec![s]);
        assert_eq!(
            out,
            "l:\r\n  # one\r\n  -   a: 1 # c\r\n      b: 2\r\n  - a: 3\r\n  - a: 4\r\n    b: 5\r\n# end\r\n"
        );
        let d = Doc::parse(&out).unwrap();
        let seq = d.get(&[Seg::Key("l")]).unwrap();
        assert_eq!(d.items(seq).len(), 3);
        let out2 = apply(&out, vec![d.remove_item(seq, 0).unwrap()]);
        assert_eq!(
            out2,
            "l:\r\n  # one\r\n  - a: 3\r\n  - a: 4\r\n    b: 5\r\n# end\r\n"
        );
        // No line end at the end of the file.
        let t = "l:\n- x";
        let d = Doc::parse(t).unwrap();
        let s = d
            .append_item(d.get(&[Seg::Key("l")]).unwrap(), &["y".to_string()])
            .unwrap();
        assert_eq!(apply(t, vec![s]), "l:\n- x\n- y\n");
        // Flow sequences are not edited line-wise.
        let t = "l: [a, b]  # c\nm: {x: 1}\n";
        let d = Doc::parse(t).unwrap();
        let seq = d.get(&[Seg::Key("l")]).unwrap();
        assert_eq!(&t[d.node(seq).start..d.node(seq).end], "[a, b]");
        let m = d.node(d.get(&[Seg::Key("m")]).unwrap());
        assert_eq!(&t[m.start..m.end], "{x: 1}");
        assert!(d.append_item(seq, &["c".to_string()]).is_none());
        assert!(d.remove_item(seq, 0).is_none());
    }
}
