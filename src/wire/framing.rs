//! Message Length framing (spec section 2): `Message Length (i) | body`, or `Type (i) | Message Length
//! (i) | body` for the typed responses. The body must be consumed exactly: fields that need more bytes
//! than the length gave, or bytes left over, are errors.
//!
//! Decoders read from a contiguous `&[u8]` and never consume a partial message: on
//! [`DecodeError::Short`] the input is left as it was, and finding out that a message is incomplete
//! costs one or two varint reads, not a re-parse of the body.

use bytes::{Buf, BufMut};

use crate::coding::{DecodeError, EncodeError, decode_varint, encode_varint};

/// The largest control message body the reference accepts (64 MiB). Sessions set tighter limits.
pub const MAX_MESSAGE_LEN: u64 = 64 * 1024 * 1024;

/// The largest SETUP body (64 KiB).
pub const MAX_SETUP_LEN: u64 = 64 * 1024;

/// Writes `Message Length` and the body that `body` writes. The body is built in a scratch buffer
/// first because its length goes in front.
pub fn encode_framed<B: BufMut>(
    buf: &mut B,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let mut scratch = Vec::with_capacity(64);
    body(&mut scratch)?;
    encode_varint(buf, scratch.len() as u64)?;
    buf.put_slice(&scratch);
    Ok(())
}

/// Writes `Type | Message Length | body`.
pub fn encode_typed<B: BufMut>(
    buf: &mut B,
    kind: u64,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    encode_varint(buf, kind)?;
    encode_framed(buf, body)
}

/// Reads `Message Length` (at most `max`) and decodes exactly that many bytes with `body`.
/// Consumes nothing and returns [`DecodeError::Short`] while the message is incomplete.
pub fn decode_framed<T>(
    buf: &mut &[u8],
    max: u64,
    body: impl FnOnce(&mut &[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut cursor = *buf;
    let value = decode_length_body(&mut cursor, max, body)?;
    *buf = cursor;
    Ok(value)
}

/// Reads `Type | Message Length | body`, handing the type and the body to `body`.
/// Consumes nothing and returns [`DecodeError::Short`] while the message is incomplete.
pub fn decode_typed<T>(
    buf: &mut &[u8],
    max: u64,
    body: impl FnOnce(u64, &mut &[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut cursor = *buf;
    let kind = decode_varint(&mut cursor)?;
    let value = decode_length_body(&mut cursor, max, |b| body(kind, b))?;
    *buf = cursor;
    Ok(value)
}

fn decode_length_body<T>(
    cursor: &mut &[u8],
    max: u64,
    body: impl FnOnce(&mut &[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let length = decode_varint(cursor)?;
    if length > max {
        return Err(DecodeError::MessageTooLarge { length, max });
    }
    if (cursor.len() as u64) < length {
        return Err(DecodeError::Short);
    }
    let (mut inner, rest) = cursor.split_at(length as usize);
    let value = body(&mut inner).map_err(|err| match err {
        DecodeError::Short => DecodeError::BodyTooShort { length },
        other => other,
    })?;
    if !inner.is_empty() {
        return Err(DecodeError::BodyTooLong { length, extra: inner.len() as u64 });
    }
    *cursor = rest;
    Ok(value)
}

/// Reads one raw byte (priorities, the Ordered byte).
pub fn decode_byte(body: &mut &[u8]) -> Result<u8, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Short);
    }
    Ok(body.get_u8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_length_is_required() {
        let read_one = |b: &mut &[u8]| decode_varint(b);
        // length 1, body 05
        let mut ok: &[u8] = &[0x01, 0x05, 0xff];
        assert_eq!(decode_framed(&mut ok, 100, read_one), Ok(5));
        assert_eq!(ok, &[0xff]);
        // length 2 with one varint inside: too long
        let mut long: &[u8] = &[0x02, 0x05, 0x06];
        assert_eq!(decode_framed(&mut long, 100, read_one), Err(DecodeError::BodyTooLong { length: 2, extra: 1 }));
        // length 1 but the varint needs 2 bytes: too short
        let mut short: &[u8] = &[0x01, 0x40, 0x05];
        assert_eq!(decode_framed(&mut short, 100, read_one), Err(DecodeError::BodyTooShort { length: 1 }));
    }

    #[test]
    fn incomplete_consumes_nothing() {
        let input: &[u8] = &[0x03, 0x01];
        let mut cursor = input;
        assert_eq!(decode_framed(&mut cursor, 100, |b| decode_varint(b)), Err(DecodeError::Short));
        assert_eq!(cursor, input);
    }

    #[test]
    fn limit_is_checked_before_waiting_for_the_body() {
        let mut input: &[u8] = &[0x44, 0x00];
        assert_eq!(
            decode_framed(&mut input, 1000, |b| decode_varint(b)),
            Err(DecodeError::MessageTooLarge { length: 1024, max: 1000 })
        );
    }
}
