//! AV1: `av01.P.LLT.DD[.M.CCC.cp.tc.mc.F]` codec strings (AV1 ISOBMFF binding, "Codecs
//! Parameter String"), from a sequence header OBU (read here: the AV1 header crate panics on hostile input) or an av1C record
//! (read and written by `mp4-atom`).

use super::bits::BitReader;
use super::{CodecError, decode_record, encode_record};

/// The fields of an AV1 codec string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    /// seq_profile: 0 Main, 1 High, 2 Professional.
    pub profile: u8,
    /// seq_level_idx of operating point 0.
    pub level: u8,
    /// seq_tier of operating point 0: the high tier (`H` in the codec string, `M` otherwise).
    pub high_tier: bool,
    /// Bits per sample: 8, 10 or 12.
    pub bit_depth: u8,
    /// mono_chrome: luma only, no chroma planes.
    pub monochrome: bool,
    /// subsampling_x: chroma at half the horizontal resolution.
    pub chroma_subsampling_x: bool,
    /// subsampling_y: chroma at half the vertical resolution.
    pub chroma_subsampling_y: bool,
    /// chroma_sample_position: 0 unknown, 1 vertical, 2 colocated.
    pub chroma_sample_position: u8,
    /// color_primaries, an ISO/IEC 23091-4 code point (1 is BT.709).
    pub color_primaries: u8,
    /// transfer_characteristics, an ISO/IEC 23091-4 code point (1 is BT.709).
    pub transfer_characteristics: u8,
    /// matrix_coefficients, an ISO/IEC 23091-4 code point (1 is BT.709).
    pub matrix_coefficients: u8,
    /// color_range: full-range samples rather than limited (studio) range.
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
    /// The codec string fields the header holds.
    pub config: Av1Config,
    /// Largest frame width in pixels (max_frame_width_minus_1 + 1).
    pub max_frame_width: u32,
    /// Largest frame height in pixels (max_frame_height_minus_1 + 1).
    pub max_frame_height: u32,
    /// The whole OBU, rewritten with a size field as av1C's configOBUs requires.
    pub obu: Vec<u8>,
}

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// Finds and parses the sequence header in OBUs of the low-overhead format (a temporal unit as
/// encoders and WebCodecs give it, or av1C's configOBUs).
pub fn find_sequence_header(obus: &[u8]) -> Result<SequenceHeader, CodecError> {
    const WHAT: &str = "AV1 OBU";
    let mut rest = obus;
    while let [first, after @ ..] = rest {
        if first & 0x80 != 0 {
            return Err(CodecError::invalid(WHAT, "forbidden bit set"));
        }
        let obu_type = (first >> 3) & 0x0f;
        let has_extension = first & 0x04 != 0;
        let has_size = first & 0x02 != 0;
        let mut header_len = 1 + usize::from(has_extension);
        if after.len() < header_len - 1 {
            return Err(CodecError::Truncated { what: WHAT });
        }
        let size = if has_size {
            let (size, len) = read_leb128(&rest[header_len..])?;
            header_len += len;
            usize::try_from(size)
                .ok()
                .filter(|s| *s <= rest.len() - header_len)
                .ok_or(CodecError::Truncated { what: WHAT })?
        } else {
            rest.len() - header_len
        };
        let payload = &rest[header_len..header_len + size];
        if obu_type == OBU_SEQUENCE_HEADER {
            return parse_sequence_header(&rest[..1 + usize::from(has_extension)], payload);
        }
        rest = &rest[header_len + size..];
    }
    Err(CodecError::Missing { what: "AV1 sequence header OBU" })
}

/// leb128(): the value and how many bytes it took (at most 8).
fn read_leb128(data: &[u8]) -> Result<(u64, usize), CodecError> {
    let mut value = 0u64;
    for (i, byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(CodecError::Truncated { what: "AV1 OBU size" })
}

/// Skips uvlc() (AV1 4.10.3).
fn skip_uvlc(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    let mut zeros = 0u32;
    while !r.bit()? {
        zeros += 1;
    }
    if zeros < 32 {
        r.bits(zeros)?;
    }
    Ok(())
}

/// sequence_header_obu() up to color_config() (AV1 5.5), the fields a codec string and av1C need.
fn parse_sequence_header(header: &[u8], payload: &[u8]) -> Result<SequenceHeader, CodecError> {
    const WHAT: &str = "AV1 sequence header";
    let mut r = BitReader::new(payload, WHAT);
    let profile = r.bits(3)? as u8;
    if profile > 2 {
        return Err(CodecError::invalid(WHAT, format!("reserved profile {profile}")));
    }
    let _still_picture = r.bit()?;
    let reduced_still_picture_header = r.bit()?;
    let (level, high_tier);
    if reduced_still_picture_header {
        level = r.bits(5)? as u8;
        high_tier = false;
    } else {
        let mut buffer_delay_length = None;
        if r.bit()? {
            // timing_info()
            r.skip(64)?;
            if r.bit()? {
                skip_uvlc(&mut r)?;
            }
            if r.bit()? {
                // decoder_model_info()
                buffer_delay_length = Some(r.bits(5)? as usize + 1);
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        let (mut first_level, mut first_tier) = (0, false);
        for i in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            let seq_level_idx = r.bits(5)? as u8;
            let seq_tier = seq_level_idx > 7 && r.bit()?;
            if let Some(delay_bits) = buffer_delay_length {
                if r.bit()? {
                    r.skip(2 * delay_bits + 1)?;
                }
            }
            if initial_display_delay_present && r.bit()? {
                r.skip(4)?;
            }
            if i == 0 {
                (first_level, first_tier) = (seq_level_idx, seq_tier);
            }
        }
        (level, high_tier) = (first_level, first_tier);
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let max_frame_width = r.bits(width_bits)?.saturating_add(1);
    let max_frame_height = r.bits(height_bits)?.saturating_add(1);
    if !reduced_still_picture_header && r.bit()? {
        r.skip(4 + 3)?; // frame id lengths
    }
    r.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced_still_picture_header {
        r.skip(4)?; // interintra compound, masked compound, warped motion, dual filter
        let enable_order_hint = r.bit()?;
        if enable_order_hint {
            r.skip(2)?; // jnt_comp, ref_frame_mvs
        }
        let force_screen_content_tools = if r.bit()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.bit()? {
            r.skip(1)?; // seq_force_integer_mv
        }
        if enable_order_hint {
            r.skip(3)?;
        }
    }
    r.skip(3)?; // superres, cdef, restoration
    let config = read_color_config(&mut r, profile, level, high_tier)?;
    Ok(SequenceHeader { config, max_frame_width, max_frame_height, obu: config_obu(header, payload) })
}

/// color_config() (AV1 5.5.2); absent colour description reads as the codec string's defaults.
fn read_color_config(r: &mut BitReader<'_>, profile: u8, level: u8, high_tier: bool) -> Result<Av1Config, CodecError> {
    let high_bitdepth = r.bit()?;
    let bit_depth = match (profile, high_bitdepth) {
        (2, true) if r.bit()? => 12,
        (_, true) => 10,
        (_, false) => 8,
    };
    let monochrome = profile != 1 && r.bit()?;
    let defaults = Av1Config::default();
    let (color_primaries, transfer_characteristics, matrix_coefficients) = if r.bit()? {
        (r.bits(8)? as u8, r.bits(8)? as u8, r.bits(8)? as u8)
    } else {
        (defaults.color_primaries, defaults.transfer_characteristics, defaults.matrix_coefficients)
    };
    let mut config = Av1Config {
        profile,
        level,
        high_tier,
        bit_depth,
        monochrome,
        color_primaries,
        transfer_characteristics,
        matrix_coefficients,
        ..defaults
    };
    if monochrome {
        config.full_range = r.bit()?;
    } else if (color_primaries, transfer_characteristics, matrix_coefficients) == (1, 13, 0) {
        // sRGB: full range 4:4:4.
        config.full_range = true;
        (config.chroma_subsampling_x, config.chroma_subsampling_y) = (false, false);
    } else {
        config.full_range = r.bit()?;
        (config.chroma_subsampling_x, config.chroma_subsampling_y) = match profile {
            0 => (true, true),
            1 => (false, false),
            _ if bit_depth == 12 => {
                let x = r.bit()?;
                (x, x && r.bit()?)
            }
            _ => (true, false),
        };
        if config.chroma_subsampling_x && config.chroma_subsampling_y {
            config.chroma_sample_position = r.bits(2)? as u8;
        }
    }
    Ok(config)
}

/// The OBU header with obu_has_size_field set, then leb128(size), then the payload: the form
/// av1C's configOBUs requires.
fn config_obu(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut obu = header.to_vec();
    if let Some(first) = obu.first_mut() {
        *first |= 0x02;
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
    obu
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
