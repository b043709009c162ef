//! AV1: `av01.P.LLT.DD[.M.CCC.cp.tc.mc.F]` codec strings (AV1 ISOBMFF binding, "Codecs
//! Parameter String"), from a sequence header OBU (parsed by `scuffle-av1`) or an av1C record
//! (read and written by `mp4-atom`).

use std::io::Cursor;

use scuffle_av1::{ObuHeader, ObuType, seq::SequenceHeaderObu};

use super::{CodecError, decode_record, encode_record};

/// The fields of an AV1 codec string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    pub profile: u8,
    /// seq_level_idx of operating point 0.
    pub level: u8,
    pub high_tier: bool,
    pub bit_depth: u8,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub color_primaries: u8,
    pub transfer_characteristics: u8,
    pub matrix_coefficients: u8,
    pub full_range: bool,
}

impl Default for Av1Config {
    /// The values the short codec string implies: 4:2:0, BT.709, limited range.
    fn default() -> Self {
        Self {
            profile: 0,
            level: 0,
            high_tier: false,
            bit_depth: 8,
            monochrome: false,
            chroma_subsampling_x: true,
            chroma_subsampling_y: true,
            chroma_sample_position: 0,
            color_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            full_range: false,
        }
    }
}

impl Av1Config {
    /// The codec string, with the optional colour fields only when they differ from the defaults.
    pub fn codec_string(&self) -> String {
        let tier = if self.high_tier { 'H' } else { 'M' };
        let mut out = format!("av01.{}.{:02}{tier}.{:02}", self.profile, self.level, self.bit_depth);
        let short = Self {
            profile: self.profile,
            level: self.level,
            high_tier: self.high_tier,
            bit_depth: self.bit_depth,
            ..Default::default()
        };
        if *self != short {
            out.push_str(&format!(
                ".{}.{}{}{}.{:02}.{:02}.{:02}.{}",
                u8::from(self.monochrome),
                u8::from(self.chroma_subsampling_x),
                u8::from(self.chroma_subsampling_y),
                self.chroma_sample_position,
                self.color_primaries,
                self.transfer_characteristics,
                self.matrix_coefficients,
                u8::from(self.full_range),
            ));
        }
        out
    }

    /// Reads a codec string back (for writing an av1C when no record is at hand).
    pub fn from_codec_string(codec: &str) -> Result<Self, CodecError> {
        let bad = || CodecError::invalid("AV1 codec string", codec.to_string());
        let rest = codec.strip_prefix("av01.").ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 3 && parts.len() != 9 {
            return Err(bad());
        }
        let number = |s: &str| s.parse::<u8>().map_err(|_| bad());
        let flag = |s: &str| match s {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(bad()),
        };
        let level_tier = parts[1];
        let (level, tier) = match level_tier.char_indices().last() {
            Some((at, _)) => level_tier.split_at(at),
            None => return Err(bad()),
        };
        let mut config = Self {
            profile: number(parts[0])?,
            level: number(level)?,
            high_tier: match tier {
                "M" => false,
                "H" => true,
                _ => return Err(bad()),
            },
            bit_depth: number(parts[2])?,
            ..Default::default()
        };
        if parts.len() == 9 {
            let &[x, y, position] = parts[4].as_bytes() else { return Err(bad()) };
            let digit = |b: u8| if b.is_ascii_digit() { Ok(b - b'0') } else { Err(bad()) };
            config.monochrome = flag(parts[3])?;
            config.chroma_subsampling_x = digit(x)? == 1;
            config.chroma_subsampling_y = digit(y)? == 1;
            config.chroma_sample_position = digit(position)?;
            config.color_primaries = number(parts[5])?;
            config.transfer_characteristics = number(parts[6])?;
            config.matrix_coefficients = number(parts[7])?;
            config.full_range = flag(parts[8])?;
        }
        Ok(config)
    }

    /// From an av1C record: its own fields, and colour from the sequence header in its config
    /// OBUs when there is one (defaults otherwise).
    pub fn from_av1c(av1c: &mp4_atom::Av1c) -> Self {
        let colour = find_sequence_header(&av1c.config_obus).ok().map(|s| s.config);
        let base = colour.unwrap_or_default();
        Self {
            profile: av1c.seq_profile,
            level: av1c.seq_level_idx_0,
            high_tier: av1c.seq_tier_0,
            bit_depth: match (av1c.high_bitdepth, av1c.twelve_bit) {
                (true, true) => 12,
                (true, false) => 10,
                _ => 8,
            },
            monochrome: av1c.monochrome,
            chroma_subsampling_x: av1c.chroma_subsampling_x,
            chroma_subsampling_y: av1c.chroma_subsampling_y,
            chroma_sample_position: av1c.chroma_sample_position,
            ..base
        }
    }

    /// Takes the colour from a sample entry's nclx `colr` box when the av1C has no sequence
    /// header to take it from.
    pub fn with_colr(self, av1c: &mp4_atom::Av1c, colr: Option<&mp4_atom::Colr>) -> Self {
        if find_sequence_header(&av1c.config_obus).is_ok() {
            return self;
        }
        match colr {
            Some(mp4_atom::Colr::Nclx {
                colour_primaries,
                transfer_characteristics,
                matrix_coefficients,
                full_range_flag,
            }) => {
                let narrow = |value: &u16, default: u8| u8::try_from(*value).unwrap_or(default);
                Self {
                    color_primaries: narrow(colour_primaries, self.color_primaries),
                    transfer_characteristics: narrow(transfer_characteristics, self.transfer_characteristics),
                    matrix_coefficients: narrow(matrix_coefficients, self.matrix_coefficients),
                    full_range: *full_range_flag,
                    ..self
                }
            }
            _ => self,
        }
    }

    /// Whether the colour fields differ from the codec string's defaults (BT.709, limited range).
    pub fn has_colour(&self) -> bool {
        let defaults = Self::default();
        (self.color_primaries, self.transfer_characteristics, self.matrix_coefficients, self.full_range)
            != (
                defaults.color_primaries,
                defaults.transfer_characteristics,
                defaults.matrix_coefficients,
                defaults.full_range,
            )
    }

    /// The nclx `colr` box of these colour fields.
    pub fn colr(&self) -> mp4_atom::Colr {
        mp4_atom::Colr::Nclx {
            colour_primaries: self.color_primaries.into(),
            transfer_characteristics: self.transfer_characteristics.into(),
            matrix_coefficients: self.matrix_coefficients.into(),
            full_range_flag: self.full_range,
        }
    }

    /// An av1C with these fields and `config_obus` (a sequence header OBU, or empty).
    pub fn to_av1c(&self, config_obus: Vec<u8>) -> Result<mp4_atom::Av1c, CodecError> {
        if self.profile > 7 || self.level > 31 || self.chroma_sample_position > 3 {
            return Err(CodecError::invalid("av1C", "profile, level or chroma sample position out of range"));
        }
        if !matches!(self.bit_depth, 8 | 10 | 12) {
            return Err(CodecError::invalid("av1C", format!("bit depth {}", self.bit_depth)));
        }
        Ok(mp4_atom::Av1c {
            seq_profile: self.profile,
            seq_level_idx_0: self.level,
            seq_tier_0: self.high_tier,
            high_bitdepth: self.bit_depth > 8,
            twelve_bit: self.bit_depth == 12,
            monochrome: self.monochrome,
            chroma_subsampling_x: self.chroma_subsampling_x,
            chroma_subsampling_y: self.chroma_subsampling_y,
            chroma_sample_position: self.chroma_sample_position,
            initial_presentation_delay: None,
            config_obus,
        })
    }
}

/// A sequence header found in a run of OBUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceHeader {
    pub config: Av1Config,
    pub max_frame_width: u32,
    pub max_frame_height: u32,
    /// The whole OBU, rewritten with a size field as av1C's configOBUs requires.
    pub obu: Vec<u8>,
}

/// Finds and parses the sequence header in OBUs of the low-overhead format (a temporal unit as
/// encoders and WebCodecs give it, or av1C's configOBUs).
pub fn find_sequence_header(obus: &[u8]) -> Result<SequenceHeader, CodecError> {
    const WHAT: &str = "AV1 OBU";
    let mut rest = obus;
    while !rest.is_empty() {
        let mut cursor = Cursor::new(rest);
        let header = ObuHeader::parse(&mut cursor).map_err(|e| CodecError::invalid(WHAT, e.to_string()))?;
        let header_len = cursor.position() as usize;
        let available = rest.len() - header_len;
        let size = match header.size {
            Some(size) => {
                usize::try_from(size).ok().filter(|s| *s <= available).ok_or(CodecError::Truncated { what: WHAT })?
            }
            None => available,
        };
        let payload = &rest[header_len..header_len + size];
        if header.obu_type == ObuType::SequenceHeader {
            let parsed = SequenceHeaderObu::parse(header, &mut &payload[..])
                .map_err(|e| CodecError::invalid("AV1 sequence header", e.to_string()))?;
            return Ok(sequence_header(&parsed, &rest[..header_len], payload));
        }
        rest = &rest[header_len + size..];
    }
    Err(CodecError::Missing { what: "AV1 sequence header OBU" })
}

fn sequence_header(parsed: &SequenceHeaderObu, header: &[u8], payload: &[u8]) -> SequenceHeader {
    let first = parsed.operating_points.first();
    let colour = &parsed.color_config;
    // No colour description (all "unspecified") reads as the codec string's defaults.
    let unspecified =
        colour.color_primaries == 2 && colour.transfer_characteristics == 2 && colour.matrix_coefficients == 2;
    let defaults = Av1Config::default();
    let config = Av1Config {
        profile: parsed.seq_profile,
        level: first.map_or(0, |op| op.seq_level_idx),
        high_tier: first.is_some_and(|op| op.seq_tier),
        bit_depth: colour.bit_depth.clamp(0, 255) as u8,
        monochrome: colour.mono_chrome,
        chroma_subsampling_x: colour.subsampling_x,
        chroma_subsampling_y: colour.subsampling_y,
        chroma_sample_position: colour.chroma_sample_position,
        color_primaries: if unspecified { defaults.color_primaries } else { colour.color_primaries },
        transfer_characteristics: if unspecified {
            defaults.transfer_characteristics
        } else {
            colour.transfer_characteristics
        },
        matrix_coefficients: if unspecified { defaults.matrix_coefficients } else { colour.matrix_coefficients },
        full_range: colour.full_color_range,
    };
    // The OBU header with obu_has_size_field set, then leb128(size), then the payload.
    let extension = header.first().is_some_and(|b| b & 0x04 != 0);
    let mut obu = vec![header.first().copied().unwrap_or(0x08) | 0x02];
    if extension {
        obu.push(header.get(1).copied().unwrap_or(0));
    }
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        obu.push(if size > 0 { byte | 0x80 } else { byte });
        if size == 0 {
            break;
        }
    }
    obu.extend_from_slice(payload);
    SequenceHeader {
        config,
        max_frame_width: u32::try_from(parsed.max_frame_width).unwrap_or(u32::MAX),
        max_frame_height: u32::try_from(parsed.max_frame_height).unwrap_or(u32::MAX),
        obu,
    }
}

/// An av1C record body (the catalog's `description`) from the sequence header in `obus`.
pub fn build_av1c(obus: &[u8]) -> Result<Vec<u8>, CodecError> {
    let header = find_sequence_header(obus)?;
    encode_record(&header.config.to_av1c(header.obu)?, "av1C")
}

/// Parses an av1C record body.
pub fn parse_av1c(record: &[u8]) -> Result<mp4_atom::Av1c, CodecError> {
    decode_record(record, "av1C")
}
