//! Zigzag mapping of signed to unsigned integers (FRAME Timestamp Delta): 0, -1, 1, -2, ... become
//! 0, 1, 2, 3, ... so small deltas of either sign stay small varints.

/// Maps a signed value to its zigzag form.
pub const fn zigzag_encode(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Maps a zigzag value back to the signed value.
pub const fn zigzag_decode(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::{decode_varint, encode_varint};

    #[test]
    fn spec_values() {
        // moq-lite.md section 9, V2 "Zigzag checks".
        for (signed, unsigned) in [(0, 0), (-1, 1), (1, 2), (-2, 3), (-40, 79), (1000, 2000), (33, 66)] {
            assert_eq!(zigzag_encode(signed), unsigned, "encode {signed}");
            assert_eq!(zigzag_decode(unsigned), signed, "decode {unsigned}");
        }
        // The same checks as the spec prints them: varint bytes on the wire, both ways.
        for (signed, wire) in
            [(0, &[0x00][..]), (-1, &[0x01]), (1, &[0x02]), (-40, &[0x40, 0x4f]), (1000, &[0x47, 0xd0])]
        {
            let mut out = Vec::new();
            encode_varint(&mut out, zigzag_encode(signed)).unwrap();
            assert_eq!(out, wire, "encode {signed}");
            let mut input = wire;
            assert_eq!(zigzag_decode(decode_varint(&mut input).unwrap()), signed, "decode {wire:02x?}");
            assert!(input.is_empty());
        }
        assert_eq!(zigzag_decode(zigzag_encode(i64::MIN)), i64::MIN);
        assert_eq!(zigzag_decode(zigzag_encode(i64::MAX)), i64::MAX);
    }
}
