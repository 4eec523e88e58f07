//! The compact binary index format shared by the install manifest
//! ([`crate::manifest`]) and the source hash cache ([`crate::source`]).
//!
//! It owns the container and the primitive encodings, not what is stored:
//!
//! ```text
//! magic     8 bytes  "MOSAICIX"
//! version   u32 LE   [`VERSION`]
//! kind      u32 LE   [`Kind`]
//! body_len  u64 LE   bytes of body that follow the checksum
//! checksum  32 bytes sha256 of the body
//! body      body_len bytes
//! ```
//!
//! Inside the body: integers are LEB128 varints (or fixed little-endian
//! where noted), hashes are 32 raw bytes (a tag byte keeps a non-hex hash
//! readable), fingerprints are four fixed fields, and paths of a sorted
//! list are front-coded: the length of the prefix shared with the previous
//! path, then the rest. A reader checks the length, the checksum and that
//! each list is strictly sorted, so a truncated, corrupt or hand-edited
//! index is refused instead of misread. The manifest is read with one
//! `read` and decoded in one pass; the source hash cache is streamed
//! through a 64 KiB window ([`Reader::stream`]) and its checksum checked
//! once read ([`Reader::verify`]), so it is never held whole.

use crate::fsutil::Fingerprint;
use sha2::{Digest, Sha256};

/// The magic bytes every index starts with.
pub const MAGIC: &[u8; 8] = b"MOSAICIX";

/// Current container version.
pub const VERSION: u32 = 1;

const HEADER: usize = 8 + 4 + 4 + 8 + 32;

/// What an index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// The install manifest `H/.mosaic/manifest.json`.
    Manifest = 1,
    /// A source tree's stat-fingerprint hash cache.
    SourceCache = 2,
}

/// Whether `bytes` look like an index (rather than a legacy JSON document).
pub fn is_index(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Builds a body, then [`Writer::finish`] wraps it in the container; or,
/// made with [`Writer::to_file`], writes it to a file as it goes (a window
/// at a time) and [`Writer::finish_file`] puts the header in front.
#[derive(Debug)]
pub struct Writer<'f> {
    buf: Vec<u8>,
    prev: Vec<u8>,
    sink: Option<Sink<'f>>,
}

/// Where a streaming [`Writer`] spills its body.
#[derive(Debug)]
struct Sink<'f> {
    file: &'f mut std::fs::File,
    hasher: Sha256,
    /// Body bytes written to the file so far.
    written: u64,
    /// Whether the header's place was written (the first spill).
    started: bool,
    /// The first write error; reported by [`Writer::finish_file`].
    failed: Option<std::io::Error>,
}

impl Writer<'static> {
    /// An empty body with room for about `cap` bytes.
    pub fn new(cap: usize) -> Writer<'static> {
        let mut buf = Vec::with_capacity(HEADER + cap);
        buf.resize(HEADER, 0);
        Writer {
            buf,
            prev: Vec::new(),
            sink: None,
        }
    }
}

impl<'f> Writer<'f> {
    /// A body written to `file` (empty, at its start) as it is built: the
    /// header's place is kept and filled by [`Writer::finish_file`]; no
    /// more than about one window of it is held.
    pub fn to_file(file: &'f mut std::fs::File) -> Writer<'f> {
        let mut buf = Vec::with_capacity(HEADER + CHUNK + 4096);
        buf.resize(HEADER, 0);
        Writer {
            buf,
            prev: Vec::new(),
            sink: Some(Sink {
                file,
                hasher: Sha256::new(),
                written: 0,
                started: false,
                failed: None,
            }),
        }
    }

    /// Writes what was built to the file, when streaming and a window is
    /// full (called between entries).
    fn spill(&mut self, at_least: usize) {
        use std::io::Write;
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if self.buf.len() < at_least {
            return;
        }
        // The header's place, the first time: its bytes come last.
        let body_from = if sink.started { 0 } else { HEADER };
        sink.started = true;
        sink.hasher.update(&self.buf[body_from..]);
        sink.written += (self.buf.len() - body_from) as u64;
        if sink.failed.is_none() {
            if let Err(e) = sink.file.write_all(&self.buf) {
                sink.failed = Some(e);
            }
        }
        self.buf.clear();
    }

    /// Finishes a body made with [`Writer::to_file`]: the rest of it, then
    /// the header and checksum at the start of the file.
    pub fn finish_file(mut self, kind: Kind) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        // A body that fit in one window still has the header's place.
        self.spill(0);
        let sink = self
            .sink
            .take()
            .expect("finish_file is for to_file writers");
        if let Some(e) = sink.failed {
            return Err(e);
        }
        let mut head = [0u8; HEADER];
        head[..8].copy_from_slice(MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        head[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
        head[16..24].copy_from_slice(&sink.written.to_le_bytes());
        head[24..56].copy_from_slice(&sink.hasher.finalize());
        sink.file.write_all_at(&head, 0)
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// An unsigned varint.
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A fixed 16-byte little-endian signed integer.
    pub fn i128(&mut self, v: i128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Starts a new sorted list of paths (front coding restarts).
    pub fn list(&mut self, len: usize) {
        self.varint(len as u64);
        self.prev.clear();
    }

    /// The next path of the current list (callers give them sorted).
    pub fn path(&mut self, p: &str) {
        self.spill(CHUNK);
        let p = p.as_bytes();
        let shared = p.iter().zip(&self.prev).take_while(|(a, b)| a == b).count();
        self.varint(shared as u64);
        self.bytes(&p[shared..]);
        self.prev.clear();
        self.prev.extend_from_slice(p);
    }

    /// A sha256: tag 0, then its 32 raw bytes. (Tag 1, text, was written
    /// for hashes that were not 64 hex digits; it is still read.)
    pub fn hash(&mut self, h: &crate::Sha256) {
        self.u8(0);
        self.buf.extend_from_slice(&h.0);
    }

    /// A stat fingerprint.
    pub fn fingerprint(&mut self, fp: &Fingerprint) {
        self.varint(fp.size);
        self.i128(i128::from(fp.mtime_ns));
        self.i128(i128::from(fp.ctime_ns));
        self.varint(fp.ino);
    }

    /// The finished file: header, checksum and body (of a writer made with
    /// [`Writer::new`]).
    pub fn finish(mut self, kind: Kind) -> Vec<u8> {
        assert!(self.sink.is_none(), "finish is for in-memory writers");
        let body_len = (self.buf.len() - HEADER) as u64;
        let sum = Sha256::digest(&self.buf[HEADER..]);
        self.buf[..8].copy_from_slice(MAGIC);
        self.buf[8..12].copy_from_slice(&VERSION.to_le_bytes());
        self.buf[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
        self.buf[16..24].copy_from_slice(&body_len.to_le_bytes());
        self.buf[24..56].copy_from_slice(&sum);
        self.buf
    }
}

/// Why an index was refused (rendered into `Error::Corrupt` by the caller).
pub type DecodeResult<T> = std::result::Result<T, String>;

/// Reads a body written by [`Writer`]: from bytes in memory
/// ([`Reader::open`], checksum checked first) or streamed from a file
/// through a small window ([`Reader::stream`], checksum checked by
/// [`Reader::verify`] once read), so a large index need not be held whole.
#[derive(Debug)]
pub struct Reader<'a> {
    src: Src<'a>,
    prev: String,
}

/// Where a [`Reader`]'s body bytes come from.
#[derive(Debug)]
enum Src<'a> {
    /// The whole body in memory, its checksum already checked.
    Slice { buf: &'a [u8], pos: usize },
    /// A file, read in chunks into `window[lo..]` and hashed as it is read.
    Stream(Box<Stream>),
}

#[derive(Debug)]
struct Stream {
    file: std::fs::File,
    window: Vec<u8>,
    /// The first unconsumed byte of `window`.
    lo: usize,
    /// Body bytes consumed by the decoder.
    pos: u64,
    /// Body bytes read from the file (and hashed).
    read: u64,
    body_len: u64,
    sum: [u8; 32],
    hasher: Sha256,
}

/// The chunk a streamed [`Reader`] reads at a time.
const CHUNK: usize = 64 * 1024;

impl Stream {
    /// Reads until `n` unconsumed bytes are in the window or the body ends.
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        use std::io::Read;
        if self.window.len() - self.lo >= n {
            return Ok(());
        }
        self.window.drain(..self.lo);
        self.lo = 0;
        while self.window.len() < n && self.read < self.body_len {
            let want = (self.body_len - self.read).min(CHUNK.max(n) as u64) as usize;
            let at = self.window.len();
            self.window.resize(at + want, 0);
            let got = self.file.read(&mut self.window[at..])?;
            self.window.truncate(at + got);
            if got == 0 {
                break;
            }
            self.hasher.update(&self.window[at..]);
            self.read += got as u64;
        }
        Ok(())
    }
}

impl Src<'_> {
    fn pos(&self) -> u64 {
        match self {
            Src::Slice { pos, .. } => *pos as u64,
            Src::Stream(s) => s.pos,
        }
    }

    fn len(&self) -> u64 {
        match self {
            Src::Slice { buf, .. } => buf.len() as u64,
            Src::Stream(s) => s.body_len,
        }
    }

    fn take(&mut self, n: usize) -> DecodeResult<&[u8]> {
        let early = |pos: u64| format!("index ends early at byte {pos}");
        match self {
            Src::Slice { buf, pos } => {
                let end = pos
                    .checked_add(n)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| early(*pos as u64))?;
                let s = &buf[*pos..end];
                *pos = end;
                Ok(s)
            }
            Src::Stream(s) => {
                if (n as u64) > s.body_len - s.pos {
                    return Err(early(s.pos));
                }
                s.fill(n)
                    .map_err(|e| format!("reading the index failed: {e}"))?;
                if s.window.len() - s.lo < n {
                    return Err(early(s.pos));
                }
                let at = s.lo;
                s.lo += n;
                s.pos += n as u64;
                Ok(&s.window[at..at + n])
            }
        }
    }
}

/// Checks the header (magic, version, kind) of `head` and returns the body
/// length it gives.
fn check_header(head: &[u8], kind: Kind) -> DecodeResult<u64> {
    if !is_index(head) {
        return Err("not a mosaic index (bad magic)".into());
    }
    if head.len() < HEADER {
        return Err(format!(
            "index truncated: {} bytes, the header alone is {HEADER}",
            head.len()
        ));
    }
    let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    let version = u32_at(8);
    if version != VERSION {
        return Err(format!(
            "index version {version}, this mosaic reads version {VERSION}"
        ));
    }
    let k = u32_at(12);
    if k != kind as u32 {
        return Err(format!(
            "index of kind {k}, expected {} ({kind:?})",
            kind as u32
        ));
    }
    Ok(u64::from_le_bytes(
        head[16..24].try_into().expect("8 bytes"),
    ))
}

fn truncated(body: u64, body_len: u64) -> String {
    format!("index truncated or padded: body is {body} bytes, header says {body_len}")
}

const CHECKSUM_MISMATCH: &str = "index checksum mismatch (the file is damaged)";

impl<'a> Reader<'a> {
    /// Checks the container (magic, version, kind, length, checksum) and
    /// returns a reader over its body.
    pub fn open(bytes: &'a [u8], kind: Kind) -> DecodeResult<Reader<'a>> {
        let body_len = check_header(bytes, kind)?;
        let body = &bytes[HEADER..];
        if body.len() as u64 != body_len {
            return Err(truncated(body.len() as u64, body_len));
        }
        if Sha256::digest(body).as_slice() != &bytes[24..56] {
            return Err(CHECKSUM_MISMATCH.into());
        }
        Ok(Reader {
            src: Src::Slice { buf: body, pos: 0 },
            prev: String::new(),
        })
    }

    /// Checks the container's header and length and returns a reader that
    /// streams the body from `file` (at its start). Nothing read from it
    /// may be trusted until [`Reader::verify`] has checked the checksum.
    pub fn stream(mut file: std::fs::File, kind: Kind) -> DecodeResult<Reader<'static>> {
        use std::io::Read;
        let size = file
            .metadata()
            .map_err(|e| format!("reading the index failed: {e}"))?
            .len();
        let mut head = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the index failed: {e}")),
            }
        }
        let body_len = check_header(&head[..got], kind)?;
        let body = size.saturating_sub(HEADER as u64);
        if body != body_len {
            return Err(truncated(body, body_len));
        }
        Ok(Reader {
            src: Src::Stream(Box::new(Stream {
                file,
                window: Vec::with_capacity(CHUNK),
                lo: 0,
                pos: 0,
                read: 0,
                body_len,
                sum: head[24..56].try_into().expect("32 bytes"),
                hasher: Sha256::new(),
            })),
            prev: String::new(),
        })
    }

    /// Reads the rest of a streamed body and checks its checksum (a reader
    /// over bytes was checked when opened).
    pub fn verify(self) -> DecodeResult<()> {
        let Src::Stream(mut s) = self.src else {
            return Ok(());
        };
        while s.read < s.body_len {
            s.lo = s.window.len();
            let before = s.read;
            s.fill(CHUNK)
                .map_err(|e| format!("reading the index failed: {e}"))?;
            if s.read == before {
                return Err(truncated(s.read, s.body_len));
            }
        }
        if s.hasher.finalize().as_slice() != s.sum {
            return Err(CHECKSUM_MISMATCH.into());
        }
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.src.take(1)?[0])
    }

    /// An unsigned varint.
    pub fn varint(&mut self) -> DecodeResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("bad varint at byte {}", self.src.pos()))
    }

    /// A count of items that each take at least `min_item` bytes (bounded
    /// by what is left, so a corrupt count cannot allocate without limit).
    pub fn count(&mut self, min_item: usize) -> DecodeResult<usize> {
        let n = self.varint()?;
        let left = self.src.len() - self.src.pos();
        if n.saturating_mul(min_item.max(1) as u64) > left {
            return Err(format!("count {n} exceeds the index size"));
        }
        Ok(n as usize)
    }

    /// A fixed 16-byte little-endian signed integer.
    pub fn i128(&mut self) -> DecodeResult<i128> {
        Ok(i128::from_le_bytes(
            self.src.take(16)?.try_into().expect("16 bytes"),
        ))
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> DecodeResult<&[u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| format!("length {n} too large"))?;
        self.src.take(n)
    }

    /// Length-prefixed UTF-8.
    pub fn str(&mut self) -> DecodeResult<&str> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("a string is not UTF-8 ({e})"))
    }

    /// Starts a list of at most what is left; returns its length.
    pub fn list(&mut self) -> DecodeResult<usize> {
        self.prev.clear();
        self.count(2)
    }

    /// The next path of the current list; it must sort after the previous one.
    pub fn path(&mut self) -> DecodeResult<String> {
        let shared = self.varint()? as usize;
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| format!("length {n} too large"))?;
        let rest = self.src.take(n)?;
        if shared > self.prev.len() || !self.prev.is_char_boundary(shared) {
            return Err(format!("bad path prefix at byte {}", self.src.pos()));
        }
        let rest = std::str::from_utf8(rest).map_err(|e| format!("a path is not UTF-8 ({e})"))?;
        let mut p = String::with_capacity(shared + rest.len());
        p.push_str(&self.prev[..shared]);
        p.push_str(rest);
        if !self.prev.is_empty() && p.as_str() <= self.prev.as_str() || p.is_empty() {
            return Err(format!("paths out of order at {p:?}"));
        }
        self.prev.clear();
        self.prev.push_str(&p);
        Ok(p)
    }

    /// A hash (a text one, tag 1, as [`crate::Sha256::parse_lenient`] reads it).
    pub fn hash(&mut self) -> DecodeResult<crate::Sha256> {
        match self.u8()? {
            0 => Ok(crate::Sha256(
                self.src
                    .take(32)?
                    .try_into()
                    .expect("take returns 32 bytes"),
            )),
            1 => Ok(crate::Sha256::parse_lenient(self.str()?)),
            t => Err(format!("bad hash tag {t}")),
        }
    }

    /// A stat fingerprint.
    pub fn fingerprint(&mut self) -> DecodeResult<Fingerprint> {
        Ok(Fingerprint {
            size: self.varint()?,
            mtime_ns: i64::try_from(self.i128()?).map_err(|_| "bad mtime".to_string())?,
            ctime_ns: i64::try_from(self.i128()?).map_err(|_| "bad ctime".to_string())?,
            ino: self.varint()?,
        })
    }

    /// Refuses trailing bytes after the last field.
    pub fn end(&self) -> DecodeResult<()> {
        let (pos, len) = (self.src.pos(), self.src.len());
        if pos == len {
            Ok(())
        } else {
            Err(format!(
                "{} unexpected bytes after the last entry",
                len - pos
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip_and_damage_is_refused() {
        let fp = Fingerprint {
            size: 300,
            mtime_ns: -5,
            ctime_ns: 1_700_000_000_123_456_789,
            ino: u64::MAX,
        };
        let h = crate::Sha256([0xab; 32]);
        let mut w = Writer::new(0);
        w.list(3);
        for p in ["a/b", "a/bc", "b"] {
            w.path(p);
        }
        w.hash(&h);
        // A text hash (tag 1) as older releases wrote one.
        w.u8(1);
        w.bytes(b"not-hex");
        w.fingerprint(&fp);
        w.varint(u64::MAX);
        let bytes = w.finish(Kind::SourceCache);
        let mut r = Reader::open(&bytes, Kind::SourceCache).unwrap();
        assert_eq!(r.list().unwrap(), 3);
        for p in ["a/b", "a/bc", "b"] {
            assert_eq!(r.path().unwrap(), p);
        }
        assert_eq!(r.hash().unwrap(), h);
        assert_eq!(r.hash().unwrap(), crate::Sha256::UNKNOWN);
        assert_eq!(r.fingerprint().unwrap(), fp);
        assert_eq!(r.varint().unwrap(), u64::MAX);
        r.end().unwrap();

        assert!(Reader::open(&bytes, Kind::Manifest).is_err());
        for n in [0, 10, HEADER, bytes.len() - 1] {
            assert!(Reader::open(&bytes[..n], Kind::SourceCache).is_err(), "{n}");
        }
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        let err = Reader::open(&bad, Kind::SourceCache).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }

    /// An index that crosses many stream windows: paths, hashes and
    /// fingerprints, and one item larger than a window.
    fn big_index() -> (Vec<u8>, Vec<String>, Vec<u8>) {
        let paths: Vec<String> = (0..5000)
            .map(|i| format!("dir{:03}/file{i:05}.md", i / 40))
            .collect();
        let blob: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut w = Writer::new(0);
        w.list(paths.len());
        for (i, p) in paths.iter().enumerate() {
            w.path(p);
            w.hash(&crate::Sha256([i as u8; 32]));
        }
        w.bytes(&blob);
        w.varint(42);
        (w.finish(Kind::SourceCache), paths, blob)
    }

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, std::fs::File) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i.idx");
        std::fs::write(&p, bytes).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        (d, f)
    }

    #[test]
    fn a_streamed_index_reads_as_the_bytes_do_and_damage_is_refused() {
        let (bytes, paths, blob) = big_index();
        for streamed in [false, true] {
            let (_d, f) = file_of(&bytes);
            let mut r = if streamed {
                Reader::stream(f, Kind::SourceCache).unwrap()
            } else {
                Reader::open(&bytes, Kind::SourceCache).unwrap()
            };
            assert_eq!(r.list().unwrap(), paths.len());
            for (i, p) in paths.iter().enumerate() {
                assert_eq!(&r.path().unwrap(), p, "streamed: {streamed}");
                assert_eq!(r.hash().unwrap(), crate::Sha256([i as u8; 32]));
            }
            assert_eq!(r.bytes().unwrap(), &blob[..]);
            assert_eq!(r.varint().unwrap(), 42);
            r.end().unwrap();
            assert!(r.varint().unwrap_err().contains("ends early"));
            r.verify().unwrap();
        }
        // Verified without being read to the end: the rest is read then.
        let (_d, f) = file_of(&bytes);
        let mut r = Reader::stream(f, Kind::SourceCache).unwrap();
        r.list().unwrap();
        r.path().unwrap();
        r.verify().unwrap();
        // A truncated or padded file is refused before any entry is read.
        for cut in [bytes.len() - 1, HEADER + 3, HEADER, 30, 0] {
            let (_d, f) = file_of(&bytes[..cut]);
            assert!(Reader::stream(f, Kind::SourceCache).is_err(), "{cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        let (_d, f) = file_of(&padded);
        assert!(Reader::stream(f, Kind::SourceCache)
            .unwrap_err()
            .contains("padded"));
        let (_d, f) = file_of(&bytes);
        assert!(Reader::stream(f, Kind::Manifest).is_err());
        // A damaged byte in an entry decodes, but the checksum catches it.
        let mut bad = bytes.clone();
        let at = bad.len() - 3 * CHUNK;
        bad[at] ^= 1;
        let (_d, f) = file_of(&bad);
        let mut r = Reader::stream(f, Kind::SourceCache).unwrap();
        r.list().unwrap();
        let err = r.verify().unwrap_err();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_body_written_to_a_file_as_it_goes_is_the_body_built_in_memory() {
        let fill = |w: &mut Writer<'_>, n: usize| {
            w.varint(7);
            w.list(n);
            for i in 0..n {
                w.path(&format!("dir{:03}/file{i:05}.md", i / 40));
                w.hash(&crate::Sha256([i as u8; 32]));
            }
            w.bytes(b"tail");
        };
        // One entry (within the first window) and many windows' worth.
        for n in [0, 1, 5000] {
            let mut mem = Writer::new(0);
            fill(&mut mem, n);
            let want = mem.finish(Kind::Manifest);
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("m.idx");
            let mut f = std::fs::File::create(&p).unwrap();
            let mut w = Writer::to_file(&mut f);
            fill(&mut w, n);
            w.finish_file(Kind::Manifest).unwrap();
            drop(f);
            let got = std::fs::read(&p).unwrap();
            assert!(
                got == want,
                "{n} entries: {} vs {} bytes",
                got.len(),
                want.len()
            );
            Reader::open(&got, Kind::Manifest).unwrap();
        }
    }

    #[test]
    fn unsorted_paths_are_refused() {
        let mut w = Writer::new(0);
        w.list(2);
        w.path("b");
        w.path("a");
        let bytes = w.finish(Kind::Manifest);
        let mut r = Reader::open(&bytes, Kind::Manifest).unwrap();
        r.list().unwrap();
        r.path().unwrap();
        assert!(r.path().unwrap_err().contains("out of order"));
    }
}
