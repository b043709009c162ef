//! Stream types: every stream starts with `Stream Type (i)`; bidi and uni types are separate spaces.
//! An unknown type, or one the negotiated version does not have, is reset, never fatal (spec 11.4).

use bytes::BufMut;

use super::Version;
use crate::coding::{DecodeError, EncodeError, decode_varint, encode_varint};

/// The kind of a bidirectional stream: one transaction each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BidiStream {
    /// 0x1: ANNOUNCE_REQUEST and announcements.
    Announce,
    /// 0x2: SUBSCRIBE and its responses.
    Subscribe,
    /// 0x3: FETCH and bare frames (lite-05+ here; see wire::fetch).
    Fetch,
    /// 0x4: PROBE both ways.
    Probe,
    /// 0x5: GOAWAY (lite-04+).
    Goaway,
    /// 0x6: TRACK and TRACK_INFO (lite-05+).
    Track,
}

impl BidiStream {
    /// The type number.
    pub const fn id(self) -> u64 {
        match self {
            BidiStream::Announce => 0x1,
            BidiStream::Subscribe => 0x2,
            BidiStream::Fetch => 0x3,
            BidiStream::Probe => 0x4,
            BidiStream::Goaway => 0x5,
            BidiStream::Track => 0x6,
        }
    }

    /// The first version that has this stream.
    pub const fn since(self) -> Version {
        match self {
            BidiStream::Announce | BidiStream::Subscribe | BidiStream::Probe => Version::Lite03,
            BidiStream::Goaway => Version::Lite04,
            BidiStream::Fetch | BidiStream::Track => Version::Lite05,
        }
    }

    /// The name used in logs.
    pub const fn name(self) -> &'static str {
        match self {
            BidiStream::Announce => "Announce stream",
            BidiStream::Subscribe => "Subscribe stream",
            BidiStream::Fetch => "Fetch stream",
            BidiStream::Probe => "Probe stream",
            BidiStream::Goaway => "Goaway stream",
            BidiStream::Track => "Track stream",
        }
    }

    /// Writes the stream type; fails if `version` does not have this stream.
    pub fn encode<B: BufMut>(self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        if version < self.since() {
            return Err(EncodeError::NotInVersion { what: self.name(), version: version.alpn() });
        }
        encode_varint(buf, self.id())
    }

    /// Reads a stream type: unknown numbers give [`DecodeError::UnknownType`], types the version
    /// lacks give [`DecodeError::NotInVersion`]; both mean "reset the stream".
    pub fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        let mut cursor = *buf;
        let id = decode_varint(&mut cursor)?;
        let kind = match id {
            0x1 => BidiStream::Announce,
            0x2 => BidiStream::Subscribe,
            0x3 => BidiStream::Fetch,
            0x4 => BidiStream::Probe,
            0x5 => BidiStream::Goaway,
            0x6 => BidiStream::Track,
            other => return Err(DecodeError::UnknownType { kind: "bidi stream", value: other }),
        };
        if version < kind.since() {
            return Err(DecodeError::NotInVersion { what: kind.name(), version: version.alpn() });
        }
        *buf = cursor;
        Ok(kind)
    }
}

/// The kind of a unidirectional stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniStream {
    /// 0x0: one group of frames.
    Group,
    /// 0x1: one SETUP (lite-05+), once per endpoint.
    Setup,
}

impl UniStream {
    /// The type number.
    pub const fn id(self) -> u64 {
        match self {
            UniStream::Group => 0x0,
            UniStream::Setup => 0x1,
        }
    }

    /// The first version that has this stream.
    pub const fn since(self) -> Version {
        match self {
            UniStream::Group => Version::Lite03,
            UniStream::Setup => Version::Lite05,
        }
    }

    /// The name used in logs.
    pub const fn name(self) -> &'static str {
        match self {
            UniStream::Group => "Group stream",
            UniStream::Setup => "Setup stream",
        }
    }

    /// Writes the stream type; fails if `version` does not have this stream.
    pub fn encode<B: BufMut>(self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        if version < self.since() {
            return Err(EncodeError::NotInVersion { what: self.name(), version: version.alpn() });
        }
        encode_varint(buf, self.id())
    }

    /// Reads a stream type, as [`BidiStream::decode`] does.
    pub fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        let mut cursor = *buf;
        let id = decode_varint(&mut cursor)?;
        let kind = match id {
            0x0 => UniStream::Group,
            0x1 => UniStream::Setup,
            other => return Err(DecodeError::UnknownType { kind: "uni stream", value: other }),
        };
        if version < kind.since() {
            return Err(DecodeError::NotInVersion { what: kind.name(), version: version.alpn() });
        }
        *buf = cursor;
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stream type with its number and the first version that has it: spec 3.1, with Fetch
    /// and Track refused before lite-05 and Setup before lite-05 as the reference does (spec 11.4).
    const BIDI: [(BidiStream, u8, Version); 6] = [
        (BidiStream::Announce, 0x1, Version::Lite03),
        (BidiStream::Subscribe, 0x2, Version::Lite03),
        (BidiStream::Fetch, 0x3, Version::Lite05),
        (BidiStream::Probe, 0x4, Version::Lite03),
        (BidiStream::Goaway, 0x5, Version::Lite04),
        (BidiStream::Track, 0x6, Version::Lite05),
    ];
    const UNI: [(UniStream, u8, Version); 2] =
        [(UniStream::Group, 0x0, Version::Lite03), (UniStream::Setup, 0x1, Version::Lite05)];

    /// Checks one stream type both ways on one version: the byte where the version has it, the
    /// same NotInVersion refusal both ways (consuming nothing) where it does not.
    fn check<K: Copy + PartialEq + std::fmt::Debug>(
        kind: K,
        id: u8,
        has_it: bool,
        name: &'static str,
        version: Version,
        encode: impl Fn(K, &mut Vec<u8>) -> Result<(), EncodeError>,
        decode: impl Fn(&mut &[u8]) -> Result<K, DecodeError>,
    ) {
        let mut out = Vec::new();
        let encoded = encode(kind, &mut out);
        let mut input: &[u8] = &[id];
        let decoded = decode(&mut input);
        if has_it {
            assert_eq!(encoded, Ok(()), "{kind:?} on {version}");
            assert_eq!(out, [id], "{kind:?} on {version}");
            assert_eq!(decoded, Ok(kind), "{kind:?} on {version}");
            assert!(input.is_empty());
        } else {
            assert_eq!(encoded, Err(EncodeError::NotInVersion { what: name, version: version.alpn() }));
            assert!(out.is_empty(), "{kind:?} on {version}: wrote {out:02x?}");
            assert_eq!(decoded, Err(DecodeError::NotInVersion { what: name, version: version.alpn() }));
            assert_eq!(input, [id], "{kind:?} on {version}: a refused type consumed input");
        }
    }

    #[test]
    fn every_stream_type_on_every_version() {
        for version in Version::ALL {
            for (kind, id, since) in BIDI {
                let decode = |input: &mut &[u8]| BidiStream::decode(input, version);
                check(kind, id, version >= since, kind.name(), version, |k, out| k.encode(out, version), decode);
            }
            for (kind, id, since) in UNI {
                let decode = |input: &mut &[u8]| UniStream::decode(input, version);
                check(kind, id, version >= since, kind.name(), version, |k, out| k.encode(out, version), decode);
            }
            // Every other number is an unknown type in both spaces, on every version.
            for id in 0..=0x3fu8 {
                if !BIDI.iter().any(|(_, known, _)| *known == id) {
                    let expected = DecodeError::UnknownType { kind: "bidi stream", value: u64::from(id) };
                    assert_eq!(BidiStream::decode(&mut &[id][..], version), Err(expected));
                }
                if !UNI.iter().any(|(_, known, _)| *known == id) {
                    let expected = DecodeError::UnknownType { kind: "uni stream", value: u64::from(id) };
                    assert_eq!(UniStream::decode(&mut &[id][..], version), Err(expected));
                }
            }
        }
    }
}
