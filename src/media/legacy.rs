//! The legacy container: each moq frame is a QUIC varint presentation time in microseconds,
//! then the codec payload as it is (Annex-B or length-prefixed video, raw audio packets).

use bytes::{Buf, Bytes, BytesMut};

use super::MediaError;
use crate::coding::varint::{MAX_VARINT, decode_varint, encode_varint};

/// One frame's bytes: the timestamp, then the payload. One copy of the payload: the model keeps
/// a frame as one buffer.
pub fn encode(pts_us: u64, payload: &[u8]) -> Result<Bytes, MediaError> {
    if pts_us > MAX_VARINT {
        return Err(MediaError::Timestamp(format!("{pts_us} µs does not fit a varint")));
    }
    let mut frame = BytesMut::with_capacity(8 + payload.len());
    encode_varint(&mut frame, pts_us).map_err(|err| MediaError::Timestamp(err.to_string()))?;
    frame.extend_from_slice(payload);
    Ok(frame.freeze())
}

/// The timestamp (µs) and the payload of one frame; the payload shares the frame's buffer.
pub fn decode(frame: &Bytes) -> Result<(u64, Bytes), MediaError> {
    let mut cursor = frame.clone();
    let pts_us = decode_varint(&mut cursor)
        .map_err(|err| MediaError::Frame { container: "legacy", reason: format!("timestamp: {err}") })?;
    let payload = cursor.copy_to_bytes(cursor.remaining());
    Ok((pts_us, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_shares_the_payload() {
        for pts in [0, 63, 64, 16383, 16384, 1_234_567, MAX_VARINT] {
            let frame = encode(pts, b"payload").unwrap();
            let (back, payload) = decode(&frame).unwrap();
            assert_eq!((back, &payload[..]), (pts, &b"payload"[..]));
            assert_eq!(payload.as_ptr(), frame[frame.len() - 7..].as_ptr(), "no copy on decode");
        }
        assert_eq!(&encode(1_234_567, b"").unwrap()[..], &[0x80, 0x12, 0xd6, 0x87]);
    }

    #[test]
    fn truncated_or_oversized_timestamps_are_errors() {
        assert!(decode(&Bytes::new()).is_err());
        assert!(decode(&Bytes::from_static(&[0x80, 0x12])).is_err());
        assert!(encode(MAX_VARINT + 1, b"").is_err());
    }
}
