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

    #[test]
    fn spec_values() {
        // moq-lite.md section 9, V2 "Zigzag checks".
        for (signed, unsigned) in [(0, 0), (-1, 1), (1, 2), (-2, 3), (-40, 79), (1000, 2000), (33, 66)] {
            assert_eq!(zigzag_encode(signed), unsigned, "encode {signed}");
            assert_eq!(zigzag_decode(unsigned), signed, "decode {unsigned}");
        }
        assert_eq!(zigzag_decode(zigzag_encode(i64::MIN)), i64::MIN);
        assert_eq!(zigzag_decode(zigzag_encode(i64::MAX)), i64::MAX);
    }
}
