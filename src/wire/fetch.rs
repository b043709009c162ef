//! The Fetch stream (bidi 0x3): FETCH names one group (and on lite-06 a frame range); the reply is
//! bare FRAMEs, then FIN, or a reset if the whole range cannot be served.
//!
//! The lite-03 draft already had FETCH, but the reference refuses Fetch streams before lite-05
//! (spec 11.4), so moqt treats FETCH as a lite-05+ message: interop is the truth.

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_byte, decode_framed, encode_framed};
use super::message::{Message, decode_since, encode_only_default, encode_since};
use crate::coding::{
    DecodeError, EncodeError, MAX_STRING_LEN, Path, decode_plus_one, decode_string, decode_varint, encode_plus_one,
    encode_string, encode_varint,
};

/// FETCH { Message Length (i), Broadcast Path (s), Track Name (s), Subscriber Priority (8),
/// Group Sequence (i), [Frame Start (i), Frame End (i, +1) on -06] }.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetch {
    /// The broadcast, relative to the session root.
    pub broadcast: Path,
    /// The track name.
    pub track: String,
    /// Subscriber priority.
    pub priority: u8,
    /// The group to read.
    pub group: u64,
    /// lite-06: the first frame; 0 elsewhere.
    pub frame_start: u64,
    /// lite-06: the last frame, inclusive; `None` = to the end of the group.
    pub frame_end: Option<u64>,
}

impl Message for Fetch {
    const NAME: &'static str = "FETCH";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since(Self::NAME, version, Version::Lite05)?;
        let frames = version >= Version::Lite06;
        if !frames {
            encode_only_default("FETCH Frame Start", version, self.frame_start == 0)?;
            encode_only_default("FETCH Frame End", version, self.frame_end.is_none())?;
        }
        if let Some(end) = self.frame_end.filter(|end| *end < self.frame_start) {
            return Err(EncodeError::InvalidValue { field: "FETCH Frame End below Frame Start", value: end });
        }
        encode_framed(buf, |out| {
            self.broadcast.encode(out)?;
            encode_string(out, &self.track, MAX_STRING_LEN)?;
            out.put_u8(self.priority);
            encode_varint(out, self.group)?;
            if frames {
                encode_varint(out, self.frame_start)?;
                encode_plus_one(out, self.frame_end)?;
            }
            Ok(())
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_since(Self::NAME, version, Version::Lite05)?;
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            let mut fetch = Fetch {
                broadcast: Path::decode(body)?,
                track: decode_string(body, MAX_STRING_LEN)?,
                priority: decode_byte(body)?,
                group: decode_varint(body)?,
                frame_start: 0,
                frame_end: None,
            };
            if version >= Version::Lite06 {
                fetch.frame_start = decode_varint(body)?;
                fetch.frame_end = decode_plus_one(body)?;
                if let Some(end) = fetch.frame_end.filter(|end| *end < fetch.frame_start) {
                    return Err(DecodeError::InvalidValue { field: "FETCH Frame End below Frame Start", value: end });
                }
            }
            Ok(fetch)
        })
    }
}
