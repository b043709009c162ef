//! Datagrams (lite-05+): a group of exactly one frame, never retransmitted, sharing the sequence space
//! of the subscription's stream groups. `Subscribe ID (i) | Group Sequence (i) | Timestamp (i) |
//! Payload (to the end)`, at most 1200 bytes in all.

use bytes::{BufMut, Bytes};

use super::Version;
use super::message::{decode_since, encode_since};
use crate::coding::{DecodeError, EncodeError, decode_varint, encode_varint, varint_len};

/// The largest datagram (a wire rule).
pub const MAX_DATAGRAM_LEN: usize = 1200;

/// One datagram.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Datagram {
    /// The subscription it belongs to.
    pub subscribe_id: u64,
    /// The group's sequence number.
    pub sequence: u64,
    /// The frame's absolute timestamp, in the track's timescale.
    pub timestamp: u64,
    /// The frame payload.
    pub payload: Bytes,
}

impl Datagram {
    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        let v = |x: u64| varint_len(x).unwrap_or(8);
        v(self.subscribe_id) + v(self.sequence) + v(self.timestamp) + self.payload.len()
    }

    /// Appends the encoded datagram; fails if it would exceed [`MAX_DATAGRAM_LEN`].
    pub fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since("DATAGRAM", version, Version::Lite05)?;
        let len = self.encoded_len();
        if len > MAX_DATAGRAM_LEN {
            return Err(EncodeError::TooLarge { what: "datagram", value: len as u64, max: MAX_DATAGRAM_LEN as u64 });
        }
        encode_varint(buf, self.subscribe_id)?;
        encode_varint(buf, self.sequence)?;
        encode_varint(buf, self.timestamp)?;
        buf.put_slice(&self.payload);
        Ok(())
    }

    /// Reads a whole datagram; the payload shares `datagram`'s memory.
    pub fn decode(datagram: Bytes, version: Version) -> Result<Self, DecodeError> {
        decode_since("DATAGRAM", version, Version::Lite05)?;
        if datagram.len() > MAX_DATAGRAM_LEN {
            return Err(DecodeError::DatagramTooLarge { length: datagram.len(), max: MAX_DATAGRAM_LEN });
        }
        let mut cursor: &[u8] = &datagram;
        let subscribe_id = decode_varint(&mut cursor)?;
        let sequence = decode_varint(&mut cursor)?;
        let timestamp = decode_varint(&mut cursor)?;
        let payload = datagram.slice(datagram.len() - cursor.len()..);
        Ok(Datagram { subscribe_id, sequence, timestamp, payload })
    }
}
