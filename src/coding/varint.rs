//! QUIC variable-length integers (RFC 9000 section 16): the top two bits of the first byte give the
//! length (1, 2, 4 or 8 bytes), the rest is the value, big-endian. Encoding is always minimal;
//! decoding accepts any valid length, as the RFC requires.

use bytes::{Buf, BufMut};

use super::{DecodeError, EncodeError};

/// The largest value a varint can carry: 2^62 - 1.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// How many bytes the minimal encoding of `value` takes, or `None` if it does not fit.
pub const fn varint_len(value: u64) -> Option<usize> {
    if value < (1 << 6) {
        Some(1)
    } else if value < (1 << 14) {
        Some(2)
    } else if value < (1 << 30) {
        Some(4)
    } else if value <= MAX_VARINT {
        Some(8)
    } else {
        None
    }
}

/// Writes `value` in its minimal encoding.
pub fn encode_varint<B: BufMut>(buf: &mut B, value: u64) -> Result<(), EncodeError> {
    match varint_len(value) {
        Some(1) => buf.put_u8(value as u8),
        Some(2) => buf.put_u16(0x4000 | value as u16),
        Some(4) => buf.put_u32(0x8000_0000 | value as u32),
        Some(_) => buf.put_u64(0xc000_0000_0000_0000 | value),
        None => return Err(EncodeError::VarintTooLarge(value)),
    }
    Ok(())
}

/// Reads one varint. Leaves `buf` untouched and returns [`DecodeError::Short`] when the input ends
/// inside the varint.
pub fn decode_varint<B: Buf>(buf: &mut B) -> Result<u64, DecodeError> {
    if !buf.has_remaining() {
        return Err(DecodeError::Short);
    }
    let first = buf.chunk()[0];
    let len = 1usize << (first >> 6);
    if buf.remaining() < len {
        return Err(DecodeError::Short);
    }
    let value = match len {
        1 => u64::from(buf.get_u8()),
        2 => u64::from(buf.get_u16() & 0x3fff),
        4 => u64::from(buf.get_u32() & 0x3fff_ffff),
        _ => buf.get_u64() & 0x3fff_ffff_ffff_ffff,
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(&mut out, value).unwrap();
        out
    }

    #[test]
    fn spec_vectors_both_ways() {
        // moq-lite.md section 9 "Varints", plus RFC 9000 appendix A.1.
        let vectors: &[(u64, &[u8])] = &[
            (37, &[0x25]),
            (64, &[0x40, 0x40]),
            (15293, &[0x7b, 0xbd]),
            (16384, &[0x80, 0x00, 0x40, 0x00]),
            (494878333, &[0x9d, 0x7f, 0x3e, 0x7d]),
            (151288809941952652, &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
        ];
        for (value, bytes) in vectors {
            assert_eq!(encoded(*value), *bytes, "encode {value}");
            let mut slice = *bytes;
            assert_eq!(decode_varint(&mut slice), Ok(*value), "decode {value}");
            assert!(slice.is_empty());
        }
    }

    #[test]
    fn non_minimal_encodings_are_accepted() {
        // RFC 9000 A.1: 37 as a two-byte varint.
        let mut slice: &[u8] = &[0x40, 0x25];
        assert_eq!(decode_varint(&mut slice), Ok(37));
        let mut slice: &[u8] = &[0xc0, 0, 0, 0, 0, 0, 0, 0x25];
        assert_eq!(decode_varint(&mut slice), Ok(37));
    }

    #[test]
    fn boundaries() {
        for (value, len) in
            [(0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4), ((1 << 30) - 1, 4), (1 << 30, 8), (MAX_VARINT, 8)]
        {
            let bytes = encoded(value);
            assert_eq!(bytes.len(), len, "length of {value}");
            assert_eq!(decode_varint(&mut bytes.as_slice()), Ok(value));
        }
        assert_eq!(encode_varint(&mut Vec::new(), MAX_VARINT + 1), Err(EncodeError::VarintTooLarge(MAX_VARINT + 1)));
    }

    #[test]
    fn truncated_input_is_short_and_not_consumed() {
        for bytes in [&[][..], &[0x40], &[0x80, 0, 0], &[0xc0, 0, 0, 0, 0, 0, 0]] {
            let mut slice = bytes;
            assert_eq!(decode_varint(&mut slice), Err(DecodeError::Short));
            assert_eq!(slice.len(), bytes.len());
        }
    }
}
