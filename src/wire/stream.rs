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
