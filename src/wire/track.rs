//! The Track stream (bidi 0x6, lite-05+): TRACK asks for a track's fixed parameters, TRACK_INFO
//! answers them (priority, max age, timescale), then FIN.

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_byte, decode_framed, encode_framed};
use super::message::{Message, decode_since, encode_only_default, encode_since};
use crate::coding::{
    DecodeError, EncodeError, MAX_STRING_LEN, Path, decode_string, decode_varint, encode_string, encode_varint,
};

/// TRACK { Message Length (i), Broadcast Path (s), Track Name (s) }.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackRequest {
    /// The broadcast, relative to the session root.
    pub broadcast: Path,
    /// The track name.
    pub track: String,
}

impl Message for TrackRequest {
    const NAME: &'static str = "TRACK";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since(Self::NAME, version, Version::Lite05)?;
        encode_framed(buf, |out| {
            self.broadcast.encode(out)?;
            encode_string(out, &self.track, MAX_STRING_LEN)
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_since(Self::NAME, version, Version::Lite05)?;
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            Ok(TrackRequest { broadcast: Path::decode(body)?, track: decode_string(body, MAX_STRING_LEN)? })
        })
    }
}

/// TRACK_INFO { Message Length (i), Publisher Priority (8), [Ordered (8) on -05], Max Age (i),
/// Timescale (i) }.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackInfo {
    /// Publisher priority, a tie-breaker after subscriber priority.
    pub priority: u8,
    /// lite-05 Ordered byte; must be false on lite-06.
    pub ordered: bool,
    /// Publisher Max Age (retention) in milliseconds.
    pub max_age: u64,
    /// Timestamp units per second; never 0.
    pub timescale: u64,
}

impl Default for TrackInfo {
    /// The reference's defaults: priority 127, max age 5000 ms, timescale 1000.
    fn default() -> Self {
        TrackInfo { priority: 127, ordered: false, max_age: 5000, timescale: 1000 }
    }
}

impl Message for TrackInfo {
    const NAME: &'static str = "TRACK_INFO";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since(Self::NAME, version, Version::Lite05)?;
        if self.timescale == 0 {
            return Err(EncodeError::InvalidValue { field: "Timescale", value: 0 });
        }
        if version >= Version::Lite06 {
            encode_only_default("the Ordered byte", version, !self.ordered)?;
        }
        encode_framed(buf, |out| {
            out.put_u8(self.priority);
            if version < Version::Lite06 {
                out.put_u8(u8::from(self.ordered));
            }
            encode_varint(out, self.max_age)?;
            encode_varint(out, self.timescale)
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_since(Self::NAME, version, Version::Lite05)?;
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            let priority = decode_byte(body)?;
            let ordered = if version < Version::Lite06 { decode_byte(body)? != 0 } else { false };
            let max_age = decode_varint(body)?;
            let timescale = decode_varint(body)?;
            if timescale == 0 {
                return Err(DecodeError::InvalidValue { field: "Timescale", value: 0 });
            }
            Ok(TrackInfo { priority, ordered, max_age, timescale })
        })
    }
}
