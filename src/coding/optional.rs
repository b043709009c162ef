//! The "+1 optional" encoding: 0 means absent, n > 0 means the value n - 1. Group End and Frame End
//! use it in every version, Group Start in lite-03 to -05.

use bytes::{Buf, BufMut};

use super::varint::{MAX_VARINT, decode_varint, encode_varint};
use super::{DecodeError, EncodeError};

/// Writes `None` as 0 and `Some(n)` as n + 1.
pub fn encode_plus_one<B: BufMut>(buf: &mut B, value: Option<u64>) -> Result<(), EncodeError> {
    match value {
        None => encode_varint(buf, 0),
        Some(v) if v >= MAX_VARINT => Err(EncodeError::VarintTooLarge(v.saturating_add(1))),
        Some(v) => encode_varint(buf, v + 1),
    }
}

/// Reads 0 as `None` and n > 0 as `Some(n - 1)`.
pub fn decode_plus_one<B: Buf>(buf: &mut B) -> Result<Option<u64>, DecodeError> {
    Ok(decode_varint(buf)?.checked_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_zero_present_is_plus_one() {
        let mut out = Vec::new();
        encode_plus_one(&mut out, None).unwrap();
        encode_plus_one(&mut out, Some(0)).unwrap();
        encode_plus_one(&mut out, Some(9)).unwrap();
        assert_eq!(out, [0x00, 0x01, 0x0a]);
        let mut input = out.as_slice();
        assert_eq!(decode_plus_one(&mut input), Ok(None));
        assert_eq!(decode_plus_one(&mut input), Ok(Some(0)));
        assert_eq!(decode_plus_one(&mut input), Ok(Some(9)));
        assert!(encode_plus_one(&mut out, Some(MAX_VARINT)).is_err());
    }
}
