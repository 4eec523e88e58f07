//! The content hash every part of the engine compares: a sha256 held as 32
//! raw bytes ([`Sha256`]), `Copy`, compared with one 32-byte `memcmp` and
//! stored without an allocation. Text (lower-case hex) exists only at the
//! edges: JSON documents, the journal and what is printed.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The sha256 of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// What a hash that is not 64 hex digits (hand-edited, or damaged, in
    /// an older JSON manifest) is read as: all zeros, the hash of no
    /// content, so the file counts as changed by someone and is backed up
    /// before anything replaces it.
    pub const UNKNOWN: Sha256 = Sha256([0; 32]);

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// The hash a finished hasher holds.
    pub fn finish(h: sha2::Sha256) -> Sha256 {
        use sha2::Digest;
        Sha256(h.finalize().into())
    }

    /// 64 hex digits (either case), else `None`.
    pub fn parse(hex_text: &str) -> Option<Sha256> {
        let mut raw = [0u8; 32];
        (hex_text.len() == 64 && hex::decode_to_slice(hex_text, &mut raw).is_ok())
            .then_some(Sha256(raw))
    }

    /// Like [`Sha256::parse`], reading anything else as [`Sha256::UNKNOWN`].
    pub fn parse_lenient(hex_text: &str) -> Sha256 {
        Sha256::parse(hex_text).unwrap_or(Sha256::UNKNOWN)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 bytes hold 32 in hex");
        f.write_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq<str> for Sha256 {
    fn eq(&self, other: &str) -> bool {
        Sha256::parse(other) == Some(*self)
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    /// Lenient (see [`Sha256::UNKNOWN`]): documents of older releases are
    /// read, never refused over one hash.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sha256, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(Sha256::parse_lenient(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_anything_else_is_unknown() {
        let h = Sha256::of(b"abc");
        assert_eq!(
            h.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256::parse(&h.to_hex()), Some(h));
        assert_eq!(Sha256::parse(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(Sha256::parse("abc"), None);
        assert_eq!(Sha256::parse_lenient("legacy-not-hex"), Sha256::UNKNOWN);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{h}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), h);
        assert_eq!(
            serde_json::from_str::<Sha256>("\"x\"").unwrap(),
            Sha256::UNKNOWN
        );
        assert!(h == *h.to_hex().as_str());
    }
}
