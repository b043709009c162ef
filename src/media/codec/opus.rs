//! Opus: the `opus` codec string and the OpusHead identification header (RFC 7845 5.1), which
//! WebCodecs takes as `description` and MP4 carries as dOps (same fields, big-endian).

use super::{CodecError, encode_record};

/// The codec string of Opus, which has no parameters.
pub const OPUS_CODEC: &str = "opus";
/// The rate every Opus decoder outputs.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;

const MAGIC: &[u8; 8] = b"OpusHead";

/// Parses an OpusHead (magic, version 1, channels, pre-skip, input rate, gain, mapping) into the
/// dOps fields, checking the channel mapping table.
pub fn parse_opus_head(head: &[u8]) -> Result<mp4_atom::Dops, CodecError> {
    const WHAT: &str = "OpusHead";
    if head.len() < 19 {
        return Err(CodecError::Truncated { what: WHAT });
    }
    if &head[..8] != MAGIC {
        return Err(CodecError::invalid(WHAT, "no OpusHead magic"));
    }
    // Major version 0 (the high 4 bits) is the one this layout describes.
    if head[8] >> 4 != 0 {
        return Err(CodecError::invalid(WHAT, format!("version {}", head[8])));
    }
    let channels = head[9];
    if channels == 0 {
        return Err(CodecError::invalid(WHAT, "zero channels"));
    }
    let family = head[18];
    let channel_mapping = if family == 0 {
        if channels > 2 {
            return Err(CodecError::invalid(WHAT, "mapping family 0 with more than 2 channels"));
        }
        None
    } else {
        let table = head.get(19..21 + usize::from(channels)).ok_or(CodecError::Truncated { what: WHAT })?;
        Some(mp4_atom::OpusChannelMapping {
            family,
            stream_count: table[0],
            coupled_count: table[1],
            channel_mapping: table[2..].to_vec(),
        })
    };
    let dops = mp4_atom::Dops {
        output_channel_count: channels,
        pre_skip: u16::from_le_bytes([head[10], head[11]]),
        input_sample_rate: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
        output_gain: i16::from_le_bytes([head[16], head[17]]),
        channel_mapping,
    };
    // mp4-atom validates the mapping table when writing dOps.
    encode_record(&dops, WHAT)?;
    Ok(dops)
}

/// The OpusHead for a dOps record.
pub fn opus_head(dops: &mp4_atom::Dops) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(19 + usize::from(dops.output_channel_count) + 2);
    out.extend_from_slice(MAGIC);
    out.push(1);
    out.push(dops.output_channel_count);
    out.extend_from_slice(&dops.pre_skip.to_le_bytes());
    out.extend_from_slice(&dops.input_sample_rate.to_le_bytes());
    out.extend_from_slice(&dops.output_gain.to_le_bytes());
    match &dops.channel_mapping {
        None if dops.output_channel_count <= 2 => out.push(0),
        None => return Err(CodecError::invalid("dOps", "more than 2 channels without a mapping table")),
        Some(mapping) => {
            if mapping.channel_mapping.len() != usize::from(dops.output_channel_count) {
                return Err(CodecError::invalid("dOps", "channel mapping table does not match the channel count"));
            }
            out.push(mapping.family);
            out.push(mapping.stream_count);
            out.push(mapping.coupled_count);
            out.extend_from_slice(&mapping.channel_mapping);
        }
    }
    Ok(out)
}

/// A mono or stereo dOps (mapping family 0, no pre-skip) for when no OpusHead is at hand.
pub fn stereo_dops(channels: u16, input_sample_rate: u32) -> Result<mp4_atom::Dops, CodecError> {
    let output_channel_count = match channels {
        1 | 2 => channels as u8,
        other => {
            return Err(CodecError::invalid("Opus", format!("{other} channels need an OpusHead with a mapping table")));
        }
    };
    Ok(mp4_atom::Dops { output_channel_count, pre_skip: 0, input_sample_rate, output_gain: 0, channel_mapping: None })
}
