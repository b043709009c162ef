//! Key-value parameter lists (SETUP, lite-05+): `Count (i)` then `{ ID (i), Length (i), Value }` per
//! parameter. Order is free on the wire; an ID twice is an error; unknown IDs are kept as raw bytes so
//! the typed layer can read the ones it knows and set the rest aside.

use bytes::{Buf, BufMut, Bytes};

use super::varint::{decode_varint, encode_varint};
use super::{DecodeError, EncodeError};

/// The most parameters one list may hold (the reference's limit).
pub const MAX_PARAMETERS: u64 = 64;

/// The largest single parameter value. A SETUP body is at most 64 KiB, so no value can be larger.
pub const MAX_PARAMETER_LEN: u64 = 65_536;

/// A list of parameters in wire order, with distinct IDs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parameters {
    entries: Vec<(u64, Bytes)>,
}

impl Parameters {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `id` to `value`, replacing an earlier value for the same ID.
    pub fn set(&mut self, id: u64, value: impl Into<Bytes>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == id) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((id, value)),
        }
    }

    /// Sets `id` to a varint value.
    pub fn set_varint(&mut self, id: u64, value: u64) -> Result<(), EncodeError> {
        let mut bytes = Vec::with_capacity(8);
        encode_varint(&mut bytes, value)?;
        self.set(id, bytes);
        Ok(())
    }

    /// The raw value of `id`.
    pub fn get(&self, id: u64) -> Option<&Bytes> {
        self.entries.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    /// Removes `id` and returns its raw value.
    pub fn take(&mut self, id: u64) -> Option<Bytes> {
        let index = self.entries.iter().position(|(k, _)| *k == id)?;
        Some(self.entries.remove(index).1)
    }

    /// Removes `id` and reads its value as one varint that must fill the value exactly.
    pub fn take_varint(&mut self, id: u64) -> Result<Option<u64>, DecodeError> {
        let Some(mut value) = self.take(id) else {
            return Ok(None);
        };
        let length = value.len() as u64;
        let number = decode_varint(&mut value).map_err(|_| DecodeError::BodyTooShort { length })?;
        if value.has_remaining() {
            return Err(DecodeError::BodyTooLong { length, extra: value.remaining() as u64 });
        }
        Ok(Some(number))
    }

    /// The parameters in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Bytes)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the count and every parameter.
    pub fn encode<B: BufMut>(&self, buf: &mut B) -> Result<(), EncodeError> {
        let count = self.entries.len() as u64;
        if count > MAX_PARAMETERS {
            return Err(EncodeError::TooLarge { what: "parameter count", value: count, max: MAX_PARAMETERS });
        }
        encode_varint(buf, count)?;
        for (id, value) in &self.entries {
            encode_varint(buf, *id)?;
            encode_varint(buf, value.len() as u64)?;
            buf.put_slice(value);
        }
        Ok(())
    }

    /// Reads a list. Fails on a duplicate ID, too many parameters or an oversized value.
    pub fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let count = decode_varint(buf)?;
        if count > MAX_PARAMETERS {
            return Err(DecodeError::TooManyParameters { count, max: MAX_PARAMETERS });
        }
        let mut entries: Vec<(u64, Bytes)> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = decode_varint(buf)?;
            let len = decode_varint(buf)?;
            if len > MAX_PARAMETER_LEN {
                return Err(DecodeError::StringTooLong { length: len, max: MAX_PARAMETER_LEN });
            }
            if buf.remaining() < len as usize {
                return Err(DecodeError::Short);
            }
            if entries.iter().any(|(k, _)| *k == id) {
                return Err(DecodeError::DuplicateParameter(id));
            }
            entries.push((id, buf.copy_to_bytes(len as usize)));
        }
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_and_unknown_ids() {
        let mut params = Parameters::new();
        params.set_varint(1, 1).unwrap();
        params.set(0x99, &b"opaque"[..]);
        let mut wire = Vec::new();
        params.encode(&mut wire).unwrap();
        assert_eq!(wire, [2, 1, 1, 1, 0x40, 0x99, 6, b'o', b'p', b'a', b'q', b'u', b'e']);
        let mut decoded = Parameters::decode(&mut wire.as_slice()).unwrap();
        assert_eq!(decoded, params);
        assert_eq!(decoded.take_varint(1), Ok(Some(1)));
        assert_eq!(decoded.take_varint(1), Ok(None));
        assert_eq!(decoded.get(0x99).map(|v| &v[..]), Some(&b"opaque"[..]));
    }

    #[test]
    fn duplicate_id_is_an_error() {
        let wire: &[u8] = &[2, 1, 1, 1, 1, 1, 2];
        assert_eq!(Parameters::decode(&mut &wire[..]), Err(DecodeError::DuplicateParameter(1)));
    }

    #[test]
    fn too_many_parameters() {
        let wire: &[u8] = &[0x40, 65];
        assert_eq!(Parameters::decode(&mut &wire[..]), Err(DecodeError::TooManyParameters { count: 65, max: 64 }));
    }

    #[test]
    fn varint_value_must_fill_the_parameter() {
        let mut params = Parameters::new();
        params.set(1, &[1u8, 2][..]);
        assert!(matches!(params.take_varint(1), Err(DecodeError::BodyTooLong { .. })));
        params.set(1, &[0x40u8][..]);
        assert!(matches!(params.take_varint(1), Err(DecodeError::BodyTooShort { .. })));
    }

    #[test]
    fn truncated_value_is_short() {
        let wire: &[u8] = &[1, 1, 4, 0, 0];
        assert_eq!(Parameters::decode(&mut &wire[..]), Err(DecodeError::Short));
    }
}
