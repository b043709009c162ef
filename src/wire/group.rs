//! Group streams (uni 0x0): a GROUP header, then FRAMEs, then FIN (or a reset: the group aborted).
//! FRAME has no outer length: `[Timestamp Delta (zigzag, lite-05+)] | Payload Length (i) | Payload`.
//! Fetch replies are bare FRAMEs with the same layout.

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_framed, encode_framed};
use super::message::{Message, encode_only_default};
use crate::coding::{DecodeError, MAX_FRAME_LEN, EncodeError, decode_varint, encode_varint, zigzag_decode, zigzag_encode};


/// GROUP { Message Length (i), Subscribe ID (i), Group Sequence (i), [Frame Start (i) on -06] }.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupHeader {
    /// The subscription this group answers.
    pub subscribe_id: u64,
    /// The group's sequence number.
    pub sequence: u64,
    /// lite-06: the index of the first FRAME on the stream; > 0 means leading frames are missing.
    pub frame_start: u64,
}

impl Message for GroupHeader {
    const NAME: &'static str = "GROUP";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        let has_frame_start = version >= Version::Lite06;
        if !has_frame_start {
            encode_only_default("GROUP Frame Start", version, self.frame_start == 0)?;
        }
        encode_framed(buf, |out| {
            encode_varint(out, self.subscribe_id)?;
            encode_varint(out, self.sequence)?;
            if has_frame_start {
                encode_varint(out, self.frame_start)?;
            }
            Ok(())
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            let subscribe_id = decode_varint(body)?;
            let sequence = decode_varint(body)?;
            let frame_start = if version >= Version::Lite06 { decode_varint(body)? } else { 0 };
            Ok(GroupHeader { subscribe_id, sequence, frame_start })
        })
    }
}

/// The part of a FRAME before its payload. The payload follows on the stream and is read (or
/// written) separately, so a large payload is never copied into a message struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    /// lite-05+: timestamp minus the previous frame's on this stream (the first against 0). Must be 0
    /// on older versions, which carry no timestamps.
    pub timestamp_delta: i64,
    /// How many payload bytes follow.
    pub payload_len: u64,
}

impl FrameHeader {
    #[cfg(any(test, feature = "testing"))]
    /// The encoded size of a header.
    pub fn encoded_len(&self, version: Version) -> usize {
        let delta = if version >= Version::Lite05 {
            crate::coding::varint_len(zigzag_encode(self.timestamp_delta)).unwrap_or(8)
        } else {
            0
        };
        delta + crate::coding::varint_len(self.payload_len).unwrap_or(8)
    }
}

impl Message for FrameHeader {
    const NAME: &'static str = "FRAME";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        if self.payload_len > MAX_FRAME_LEN {
            return Err(EncodeError::TooLarge { what: "frame payload", value: self.payload_len, max: MAX_FRAME_LEN });
        }
        if version >= Version::Lite05 {
            encode_varint(buf, zigzag_encode(self.timestamp_delta))?;
        } else {
            encode_only_default("FRAME timestamp", version, self.timestamp_delta == 0)?;
        }
        encode_varint(buf, self.payload_len)
    }

    /// Reads the header only; the caller then takes `payload_len` bytes. Consumes nothing on
    /// [`DecodeError::Short`].
    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        let mut cursor = *buf;
        let timestamp_delta = if version >= Version::Lite05 { zigzag_decode(decode_varint(&mut cursor)?) } else { 0 };
        let payload_len = decode_varint(&mut cursor)?;
        if payload_len > MAX_FRAME_LEN {
            return Err(DecodeError::FrameTooLarge { length: payload_len, max: MAX_FRAME_LEN });
        }
        *buf = cursor;
        Ok(FrameHeader { timestamp_delta, payload_len })
    }
}

/// Turns absolute frame timestamps into the deltas of one Group or Fetch stream and back. The first
/// frame of a stream is taken against 0, so its delta is its absolute timestamp.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameTimestamps {
    previous: u64,
}

impl FrameTimestamps {
    /// A new stream: the first frame is taken against 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The delta to send for `timestamp`, remembering it for the next frame.
    pub fn delta_for(&mut self, timestamp: u64) -> i64 {
        let delta = timestamp.wrapping_sub(self.previous) as i64;
        self.previous = timestamp;
        delta
    }

    /// The absolute timestamp a received delta names. A result below 0 or past u64 is an error
    /// (TIMESTAMP_MISMATCH on the stream).
    pub fn apply(&mut self, delta: i64) -> Result<u64, DecodeError> {
        let timestamp = self
            .previous
            .checked_add_signed(delta)
            .ok_or(DecodeError::InvalidValue { field: "frame timestamp", value: zigzag_encode(delta) })?;
        self.previous = timestamp;
        Ok(timestamp)
    }
}
