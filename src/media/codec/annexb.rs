//! H.264/H.265 byte streams: Annex-B (NAL units after 00 00 01 start codes, what encoders and
//! MPEG-TS give) and the length-prefixed form of MP4/CMAF samples (each NAL unit after its size in
//! `length_size` bytes, the size named by the avcC/hvcC record).

use super::CodecError;

/// The NAL units of an Annex-B stream, without start codes or trailing zero bytes. Bytes before
/// the first start code are skipped; empty units are left out.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(stream) {
        Some((_, after)) => &stream[after..],
        None => &stream[stream.len()..],
    };
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (unit, next) = match find_start_code(rest) {
                Some((at, after)) => (&rest[..at], &rest[after..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let end = unit.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            if end > 0 {
                return Some(&unit[..end]);
            }
        }
        None
    })
}

/// The offset of the first 00 00 01 and the offset just past it.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3).position(|w| w == [0, 0, 1]).map(|at| (at, at + 3))
}

/// The NAL units of a length-prefixed sample, in order; an error for a size that runs past the
/// end or a `length_size` other than 1, 2 or 4.
pub fn length_prefixed_units(sample: &[u8], length_size: u8) -> impl Iterator<Item = Result<&[u8], CodecError>> {
    let mut rest = sample;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        let unit = split_length_prefixed(&mut rest, length_size);
        failed = unit.is_err();
        Some(unit)
    })
}

fn split_length_prefixed<'a>(rest: &mut &'a [u8], length_size: u8) -> Result<&'a [u8], CodecError> {
    check_length_size(length_size)?;
    let size = usize::from(length_size);
    if rest.len() < size {
        return Err(CodecError::Truncated { what: "NAL unit length" });
    }
    let (prefix, tail) = rest.split_at(size);
    let len = prefix.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
    if tail.len() < len {
        return Err(CodecError::Truncated { what: "length-prefixed NAL unit" });
    }
    let (unit, tail) = tail.split_at(len);
    *rest = tail;
    Ok(unit)
}

fn check_length_size(length_size: u8) -> Result<(), CodecError> {
    match length_size {
        1 | 2 | 4 => Ok(()),
        other => Err(CodecError::invalid("NAL unit length size", format!("{other} bytes, not 1, 2 or 4"))),
    }
}

/// An Annex-B access unit as a length-prefixed MP4 sample, each size in `length_size` bytes.
pub fn annexb_to_length_prefixed(access_unit: &[u8], length_size: u8) -> Result<Vec<u8>, CodecError> {
    check_length_size(length_size)?;
    let max = if length_size == 4 { u64::from(u32::MAX) } else { (1u64 << (8 * u32::from(length_size))) - 1 };
    let mut out = Vec::with_capacity(access_unit.len() + 16);
    for unit in nal_units(access_unit) {
        let len = unit.len() as u64;
        if len > max {
            return Err(CodecError::invalid("NAL unit", format!("{len} bytes do not fit a {length_size}-byte length")));
        }
        out.extend_from_slice(&len.to_be_bytes()[8 - usize::from(length_size)..]);
        out.extend_from_slice(unit);
    }
    Ok(out)
}

/// A length-prefixed MP4 sample as an Annex-B access unit (4-byte start codes).
pub fn length_prefixed_to_annexb(sample: &[u8], length_size: u8) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(sample.len() + 16);
    for unit in length_prefixed_units(sample, length_size) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let stream = [9, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 0, 0, 1];
        let units: Vec<_> = nal_units(&stream).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn converts_both_ways() {
        let annexb = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3];
        for size in [1, 2, 4] {
            let prefixed = annexb_to_length_prefixed(&annexb, size).unwrap();
            assert_eq!(
                length_prefixed_to_annexb(&prefixed, size).unwrap(),
                [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]
            );
        }
        let prefixed = annexb_to_length_prefixed(&annexb, 4).unwrap();
        assert_eq!(prefixed, [0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3]);
        assert!(annexb_to_length_prefixed(&annexb, 3).is_err());
        assert!(length_prefixed_to_annexb(&[0, 0, 0, 9, 1], 4).is_err());
        assert!(annexb_to_length_prefixed(&[0, 0, 1, 5u8].into_iter().chain([7; 300]).collect::<Vec<_>>(), 1).is_err());
    }
}
