//! The bit-level reading and writing that no crate in use offers for our inputs: an MSB-first
//! reader with Exp-Golomb codes over an H.265 RBSP, and a writer for AudioSpecificConfig.
//! Every read is bounds-checked and reports truncation instead of panicking.

use super::CodecError;

/// Reads bits most significant first from a byte slice.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    position: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`; `what` names the structure in truncation errors.
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, position: 0, what }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, CodecError> {
        let byte = self.data.get(self.position / 8).ok_or(CodecError::Truncated { what: self.what })?;
        let bit = byte >> (7 - self.position % 8) & 1;
        self.position += 1;
        Ok(bit == 1)
    }

    /// Reads `count` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, count: u32) -> Result<u32, CodecError> {
        debug_assert!(count <= 32);
        let mut value = 0u64;
        for _ in 0..count.min(32) {
            value = value << 1 | u64::from(self.bit()?);
        }
        Ok(value as u32)
    }

    pub(crate) fn skip(&mut self, count: usize) -> Result<(), CodecError> {
        let end = self.position.checked_add(count).ok_or(CodecError::Truncated { what: self.what })?;
        if end > self.data.len() * 8 {
            return Err(CodecError::Truncated { what: self.what });
        }
        self.position = end;
        Ok(())
    }

    /// An unsigned Exp-Golomb code, ue(v); values past 32 bits are refused.
    pub(crate) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::invalid(self.what, "Exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }
}

/// Writes bits most significant first; the last byte is padded with zero bits.
#[derive(Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    /// Appends the low `count` bits of `value` (at most 32).
    pub(crate) fn bits(&mut self, count: u32, value: u32) {
        for i in (0..count.min(32)).rev() {
            if self.used % 8 == 0 {
                self.bytes.push(0);
            }
            let bit = (value >> i & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.used % 8);
            }
            self.used += 1;
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// The RBSP of an H.264/H.265 NAL unit payload: emulation prevention bytes (the 3 of 00 00 03)
/// removed.
pub(crate) fn unescape_rbsp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &byte in payload {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_values_and_truncation() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3, then truncated.
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000], "test");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert!(matches!(r.ue(), Err(CodecError::Truncated { .. })));
        let mut r = BitReader::new(&[0; 8], "test");
        assert!(r.ue().is_err());
    }

    #[test]
    fn writer_packs_msb_first() {
        let mut w = BitWriter::default();
        w.bits(5, 2);
        w.bits(4, 3);
        w.bits(4, 2);
        w.bits(3, 0);
        assert_eq!(w.finish(), [0x11, 0x90]);
    }

    #[test]
    fn rbsp_drops_emulation_prevention() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]), [0, 0, 1, 0, 0, 0, 0]);
    }
}
