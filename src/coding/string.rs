//! Length-prefixed UTF-8 strings: `Length (i)` then that many bytes.

use bytes::{Buf, BufMut};

use super::varint::{decode_varint, encode_varint};
use super::{DecodeError, EncodeError};

/// The longest string moqt reads or writes (track names, paths, URIs are all far shorter). The
/// reference bounds strings only by the 64 MiB message cap; one path or name of 64 KiB is already
/// absurd, and a small bound keeps a hostile peer from making us allocate.
pub const MAX_STRING_LEN: u64 = 65_535;

/// Writes `Length (i)` and the bytes of `value`.
pub fn encode_string<B: BufMut>(buf: &mut B, value: &str, max: u64) -> Result<(), EncodeError> {
    let len = value.len() as u64;
    if len > max {
        return Err(EncodeError::TooLarge { what: "string length", value: len, max });
    }
    encode_varint(buf, len)?;
    buf.put_slice(value.as_bytes());
    Ok(())
}

/// Reads a string of at most `max` bytes. The length is checked before anything is allocated.
pub fn decode_string<B: Buf>(buf: &mut B, max: u64) -> Result<String, DecodeError> {
    let len = decode_varint(buf)?;
    if len > max {
        return Err(DecodeError::StringTooLong { length: len, max });
    }
    let len = len as usize;
    if buf.remaining() < len {
        return Err(DecodeError::Short);
    }
    let mut bytes = vec![0; len];
    buf.copy_to_slice(&mut bytes);
    String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        encode_string(&mut out, "video", MAX_STRING_LEN).unwrap();
        assert_eq!(out, b"\x05video");
        assert_eq!(decode_string(&mut out.as_slice(), MAX_STRING_LEN).unwrap(), "video");
    }

    #[test]
    fn bad_utf8_is_rejected() {
        let mut input: &[u8] = &[0x02, 0xc3, 0x28];
        assert_eq!(decode_string(&mut input, MAX_STRING_LEN), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn length_over_limit_is_rejected_before_reading() {
        let mut input: &[u8] = &[0x44, 0x00, b'x'];
        assert_eq!(decode_string(&mut input, 16), Err(DecodeError::StringTooLong { length: 1024, max: 16 }));
        let mut out = Vec::new();
        assert!(matches!(encode_string(&mut out, "0123456789abcdefg", 16), Err(EncodeError::TooLarge { .. })));
    }

    #[test]
    fn truncated_is_short() {
        let mut input: &[u8] = &[0x05, b'v', b'i'];
        assert_eq!(decode_string(&mut input, MAX_STRING_LEN), Err(DecodeError::Short));
    }
}
