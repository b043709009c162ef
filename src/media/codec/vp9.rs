//! VP9 (`vp09.PP.LL.DD[.CC.cp.tc.mc.FF]`, from the VP9 ISOBMFF binding's vpcC) and VP8 (`vp8`).

use super::{CodecError, decode_record};

/// The codec string of VP8, which has no parameters.
pub const VP8_CODEC: &str = "vp8";

/// The fields of a VP9 codec string, as the vpcC record holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp9Config {
    /// VP9 profile, 0 to 3.
    pub profile: u8,
    /// Level times ten (10 for level 1, 41 for 4.1).
    pub level: u8,
    /// Bits per sample: 8, 10 or 12.
    pub bit_depth: u8,
    /// 0 4:2:0 vertical, 1 4:2:0 colocated, 2 4:2:2, 3 4:4:4.
    pub chroma_subsampling: u8,
    /// colour_primaries, an ISO/IEC 23091-4 code point (1 is BT.709).
    pub color_primaries: u8,
    /// transfer_characteristics, an ISO/IEC 23091-4 code point (1 is BT.709).
    pub transfer_characteristics: u8,
    /// matrix_coefficients, an ISO/IEC 23091-4 code point (1 is BT.709).
    pub matrix_coefficients: u8,
    /// video_full_range_flag: full-range samples rather than limited (studio) range.
    pub full_range: bool,
}

impl Default for Vp9Config {
    /// The values the short codec string implies: 4:2:0 colocated, BT.709, limited range.
    fn default() -> Self {
        Self {
            profile: 0,
            level: 0,
            bit_depth: 8,
            chroma_subsampling: 1,
            color_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            full_range: false,
        }
    }
}

impl Vp9Config {
    /// The codec string, with the optional fields only when they differ from the defaults.
    pub fn codec_string(&self) -> String {
        let mut out = format!("vp09.{:02}.{:02}.{:02}", self.profile, self.level, self.bit_depth);
        let short = Self { profile: self.profile, level: self.level, bit_depth: self.bit_depth, ..Default::default() };
        if *self != short {
            out.push_str(&format!(
                ".{:02}.{:02}.{:02}.{:02}.{:02}",
                self.chroma_subsampling,
                self.color_primaries,
                self.transfer_characteristics,
                self.matrix_coefficients,
                u8::from(self.full_range)
            ));
        }
        out
    }

    /// Reads a codec string back (for writing a vpcC).
    pub fn from_codec_string(codec: &str) -> Result<Self, CodecError> {
        let bad = || CodecError::invalid("VP9 codec string", codec.to_string());
        let parts = codec
            .strip_prefix("vp09.")
            .ok_or_else(bad)?
            .split('.')
            .map(|p| p.parse::<u8>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config = match parts[..] {
            [profile, level, bit_depth, ..] => Self { profile, level, bit_depth, ..Default::default() },
            _ => return Err(bad()),
        };
        match parts[..] {
            [_, _, _] => {}
            [_, _, _, chroma, primaries, transfer, matrix, full_range] if full_range <= 1 => {
                config.chroma_subsampling = chroma;
                config.color_primaries = primaries;
                config.transfer_characteristics = transfer;
                config.matrix_coefficients = matrix;
                config.full_range = full_range == 1;
            }
            _ => return Err(bad()),
        }
        Ok(config)
    }

    /// The fields of a vpcC record.
    pub fn from_vpcc(vpcc: &mp4_atom::VpcC) -> Self {
        Self {
            profile: vpcc.profile,
            level: vpcc.level,
            bit_depth: vpcc.bit_depth,
            chroma_subsampling: vpcc.chroma_subsampling,
            color_primaries: vpcc.color_primaries,
            transfer_characteristics: vpcc.transfer_characteristics,
            matrix_coefficients: vpcc.matrix_coefficients,
            full_range: vpcc.video_full_range_flag,
        }
    }

    /// A vpcC with these fields; refuses what the record cannot hold.
    pub fn to_vpcc(&self) -> Result<mp4_atom::VpcC, CodecError> {
        if self.bit_depth > 15 || self.chroma_subsampling > 3 {
            return Err(CodecError::invalid("vpcC", "bit depth or chroma subsampling out of range"));
        }
        if self.matrix_coefficients == 0 && self.chroma_subsampling != 3 {
            return Err(CodecError::invalid("vpcC", "RGB (matrix 0) needs 4:4:4"));
        }
        Ok(mp4_atom::VpcC {
            profile: self.profile,
            level: self.level,
            bit_depth: self.bit_depth,
            chroma_subsampling: self.chroma_subsampling,
            video_full_range_flag: self.full_range,
            color_primaries: self.color_primaries,
            transfer_characteristics: self.transfer_characteristics,
            matrix_coefficients: self.matrix_coefficients,
            codec_initialization_data: Vec::new(),
        })
    }
}

/// Parses a vpcC box body (version and flags first).
pub fn parse_vpcc(record: &[u8]) -> Result<mp4_atom::VpcC, CodecError> {
    decode_record(record, "vpcC")
}

/// The vpcC a VP8 sample entry carries: 8-bit 4:2:0, BT.709.
pub fn vp8_vpcc() -> mp4_atom::VpcC {
    mp4_atom::VpcC { chroma_subsampling: 1, ..Default::default() }
}
