//! H.265/HEVC: the SPS fields a catalog needs, `hev1.`/`hvc1.` codec strings (ISO/IEC 14496-15
//! annex E), and the hvcC record (read and written by `mp4-atom`).
//!
//! The SPS prefix (profile_tier_level to the bit depths) is read here: the one H.265 SPS crate
//! parses the whole SPS with unchecked arithmetic that panics on hostile input.

use bytes::Bytes;

use super::bits::{BitReader, unescape_rbsp};
use super::{CodecError, VideoInfo, annexb, decode_record, encode_record};

/// NAL unit type of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;

/// The type of an H.265 NAL unit (bits 1..7 of its first header byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// Whether a NAL unit type is an IRAP picture's slice (BLA, IDR or CRA: a decoder can start there).
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// The general profile, tier and level, as the SPS and the hvcC both carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileTierLevel {
    /// 0..3; 1..3 are written as A..C in the codec string.
    pub profile_space: u8,
    /// general_tier_flag: the high tier (`H` in the codec string, `L` otherwise).
    pub high_tier: bool,
    /// general_profile_idc (1 Main, 2 Main 10, ...).
    pub profile_idc: u8,
    /// general_profile_compatibility_flag[0..32], flag 0 the top bit of the first byte.
    pub compatibility_flags: [u8; 4],
    /// The 48 bits from general_progressive_source_flag on.
    pub constraint_flags: [u8; 6],
    /// general_level_idc: the level times 30 (93 for level 3.1).
    pub level_idc: u8,
}

impl ProfileTierLevel {
    /// `hev1.` (parameter sets in band) or `hvc1.` (only in the hvcC), e.g. `hvc1.1.6.L93.B0`:
    /// profile space letter and idc, the compatibility flags bit-reversed in hex, tier and level,
    /// then the constraint bytes in hex without the trailing zero ones.
    pub fn codec_string(&self, in_band: bool) -> String {
        let mut out = String::from(if in_band { "hev1." } else { "hvc1." });
        if let Some(space) =
            [None, Some('A'), Some('B'), Some('C')].get(usize::from(self.profile_space & 3)).copied().flatten()
        {
            out.push(space);
        }
        let compatibility = u32::from_be_bytes(self.compatibility_flags).reverse_bits();
        let tier = if self.high_tier { 'H' } else { 'L' };
        out.push_str(&format!("{}.{compatibility:X}.{tier}{}", self.profile_idc, self.level_idc));
        let significant = self.constraint_flags.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        for byte in &self.constraint_flags[..significant] {
            out.push_str(&format!(".{byte:X}"));
        }
        out
    }

    fn from_hvcc(hvcc: &mp4_atom::Hvcc) -> Self {
        Self {
            profile_space: hvcc.general_profile_space,
            high_tier: hvcc.general_tier_flag,
            profile_idc: hvcc.general_profile_idc,
            compatibility_flags: hvcc.general_profile_compatibility_flags,
            constraint_flags: hvcc.general_constraint_indicator_flags,
            level_idc: hvcc.general_level_idc,
        }
    }
}

/// The codec string an hvcC advertises.
pub fn hvcc_codec_string(hvcc: &mp4_atom::Hvcc, in_band: bool) -> String {
    ProfileTierLevel::from_hvcc(hvcc).codec_string(in_band)
}

/// What the catalog and the hvcC need from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// The general profile, tier and level.
    pub profile_tier_level: ProfileTierLevel,
    /// sps_max_sub_layers_minus1 + 1.
    pub max_sub_layers: u8,
    /// sps_temporal_id_nesting_flag.
    pub temporal_id_nesting: bool,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// Luma bit depth (bit_depth_luma_minus8 + 8).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (bit_depth_chroma_minus8 + 8).
    pub bit_depth_chroma: u8,
    /// Picture size with the conformance window applied.
    pub coded_width: u32,
    /// Picture height in pixels, with the conformance window applied.
    pub coded_height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (2-byte header included, no start code or length).
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        const WHAT: &str = "H.265 SPS";
        if nal_type(nal) != Some(NAL_SPS) {
            return Err(CodecError::invalid(WHAT, "not an SPS NAL unit"));
        }
        let rbsp = unescape_rbsp(nal.get(2..).ok_or(CodecError::Truncated { what: WHAT })?);
        let mut r = BitReader::new(&rbsp, WHAT);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)? as u8;
        if max_sub_layers_minus1 > 6 {
            return Err(CodecError::invalid(WHAT, "more than 7 sub-layers"));
        }
        let temporal_id_nesting = r.bit()?;
        let profile_tier_level = read_profile_tier_level(&mut r, max_sub_layers_minus1)?;
        if r.ue()? > 15 {
            return Err(CodecError::invalid(WHAT, "sps_seq_parameter_set_id above 15"));
        }
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::invalid(WHAT, "chroma_format_idc above 3"));
        }
        let separate_colour_plane = chroma_format_idc == 3 && r.bit()?;
        let width = r.ue()?;
        let height = r.ue()?;
        if width == 0 || height == 0 {
            return Err(CodecError::invalid(WHAT, "zero picture size"));
        }
        let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let (mut crop_x, mut crop_y) = (0u64, 0u64);
        if r.bit()? {
            let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            crop_x = sub_width * (u64::from(left) + u64::from(right));
            crop_y = sub_height * (u64::from(top) + u64::from(bottom));
        }
        let cropped = |size: u32, crop: u64| {
            u64::from(size)
                .checked_sub(crop)
                .filter(|s| *s > 0)
                .map(|s| s as u32)
                .ok_or_else(|| CodecError::invalid(WHAT, "conformance window larger than the picture"))
        };
        let coded_width = cropped(width, crop_x)?;
        let coded_height = cropped(height, crop_y)?;
        let bit_depth_luma = r.ue()?;
        let bit_depth_chroma = r.ue()?;
        if bit_depth_luma > 8 || bit_depth_chroma > 8 {
            return Err(CodecError::invalid(WHAT, "bit depth above 16"));
        }
        Ok(Self {
            profile_tier_level,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma: bit_depth_luma as u8 + 8,
            bit_depth_chroma: bit_depth_chroma as u8 + 8,
            coded_width,
            coded_height,
        })
    }

    /// `hev1.`/`hvc1.` codec string of this SPS's profile, tier and level.
    pub fn codec_string(&self, in_band: bool) -> String {
        self.profile_tier_level.codec_string(in_band)
    }
}

/// profile_tier_level(1, max_sub_layers_minus1): the general part, sub-layer parts skipped.
fn read_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u8) -> Result<ProfileTierLevel, CodecError> {
    let profile_space = r.bits(2)? as u8;
    let high_tier = r.bit()?;
    let profile_idc = r.bits(5)? as u8;
    let compatibility_flags = r.bits(32)?.to_be_bytes();
    let mut constraint_flags = [0u8; 6];
    for byte in &mut constraint_flags {
        *byte = r.bits(8)? as u8;
    }
    let level_idc = r.bits(8)? as u8;
    let mut present = [(false, false); 8];
    for layer in present.iter_mut().take(usize::from(max_sub_layers_minus1)) {
        *layer = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - usize::from(max_sub_layers_minus1)))?; // reserved_zero_2bits
    }
    for (profile, level) in present.iter().take(usize::from(max_sub_layers_minus1)) {
        if *profile {
            r.skip(88)?;
        }
        if *level {
            r.skip(8)?;
        }
    }
    Ok(ProfileTierLevel { profile_space, high_tier, profile_idc, compatibility_flags, constraint_flags, level_idc })
}

/// The VPS, SPS and PPS NAL units of an Annex-B access unit, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParameterSets<'a> {
    /// The VPS NAL units, 2-byte header included, without start codes.
    pub vps: Vec<&'a [u8]>,
    /// The SPS NAL units, 2-byte header included, without start codes.
    pub sps: Vec<&'a [u8]>,
    /// The PPS NAL units, 2-byte header included, without start codes.
    pub pps: Vec<&'a [u8]>,
}

/// Collects the parameter sets of an Annex-B access unit.
pub fn parameter_sets(access_unit: &[u8]) -> ParameterSets<'_> {
    let mut sets = ParameterSets::default();
    for nal in annexb::nal_units(access_unit) {
        match nal_type(nal) {
            Some(NAL_VPS) => sets.vps.push(nal),
            Some(NAL_SPS) => sets.sps.push(nal),
            Some(NAL_PPS) => sets.pps.push(nal),
            _ => {}
        }
    }
    sets
}

/// Whether an Annex-B access unit holds an IRAP slice.
pub fn is_irap_access_unit(access_unit: &[u8]) -> bool {
    annexb::nal_units(access_unit).any(|nal| nal_type(nal).is_some_and(is_irap))
}

/// An hvcC record body (the catalog's `description`) from VPS, SPS and PPS NAL units, 4-byte NAL
/// lengths; the general profile, tier, level and formats from the first SPS.
pub fn build_hvcc(sets: &ParameterSets<'_>) -> Result<Vec<u8>, CodecError> {
    let first = sets.sps.first().ok_or(CodecError::Missing { what: "H.265 SPS" })?;
    if sets.vps.is_empty() {
        return Err(CodecError::Missing { what: "H.265 VPS" });
    }
    if sets.pps.is_empty() {
        return Err(CodecError::Missing { what: "H.265 PPS" });
    }
    let groups = [(NAL_VPS, &sets.vps), (NAL_SPS, &sets.sps), (NAL_PPS, &sets.pps)];
    if groups
        .iter()
        .any(|(_, nals)| nals.len() > usize::from(u16::MAX) || nals.iter().any(|n| n.len() > usize::from(u16::MAX)))
    {
        return Err(CodecError::invalid("hvcC", "a parameter set or set count too large for the record"));
    }
    let sps = Sps::parse(first)?;
    let ptl = &sps.profile_tier_level;
    let hvcc = mp4_atom::Hvcc {
        configuration_version: 1,
        general_profile_space: ptl.profile_space,
        general_tier_flag: ptl.high_tier,
        general_profile_idc: ptl.profile_idc,
        general_profile_compatibility_flags: ptl.compatibility_flags,
        general_constraint_indicator_flags: ptl.constraint_flags,
        general_level_idc: ptl.level_idc,
        min_spatial_segmentation_idc: 0,
        parallelism_type: 0,
        chroma_format_idc: sps.chroma_format_idc,
        bit_depth_luma_minus8: sps.bit_depth_luma - 8,
        bit_depth_chroma_minus8: sps.bit_depth_chroma - 8,
        avg_frame_rate: 0,
        constant_frame_rate: 0,
        num_temporal_layers: sps.max_sub_layers,
        temporal_id_nested: sps.temporal_id_nesting,
        length_size_minus_one: 3,
        arrays: groups
            .iter()
            .map(|(nal_unit_type, nals)| mp4_atom::HvcCArray {
                completeness: true,
                nal_unit_type: *nal_unit_type,
                nalus: nals.iter().map(|n| n.to_vec()).collect(),
            })
            .collect(),
    };
    encode_record(&hvcc, "hvcC")
}

/// Parses an hvcC record body (the catalog's `description`).
pub fn parse_hvcc(record: &[u8]) -> Result<mp4_atom::Hvcc, CodecError> {
    decode_record(record, "hvcC")
}

/// Catalog fields from an hvcC record body: codec string from its general fields, size from its
/// first SPS.
pub fn info_from_hvcc(record: &[u8], in_band: bool) -> Result<VideoInfo, CodecError> {
    let hvcc = parse_hvcc(record)?;
    let sps = hvcc
        .arrays
        .iter()
        .filter(|a| a.nal_unit_type == NAL_SPS)
        .flat_map(|a| a.nalus.first())
        .next()
        .ok_or(CodecError::Missing { what: "H.265 SPS in the hvcC" })?;
    let sps = Sps::parse(sps)?;
    Ok(VideoInfo {
        codec: hvcc_codec_string(&hvcc, in_band),
        description: Some(Bytes::copy_from_slice(record)),
        coded_width: sps.coded_width,
        coded_height: sps.coded_height,
    })
}

/// Catalog fields from an Annex-B access unit holding VPS, SPS and PPS: in band gives `hev1` and
/// no description; out of band gives `hvc1` with an hvcC (frames then sent length-prefixed).
pub fn info_from_annexb(access_unit: &[u8], in_band: bool) -> Result<VideoInfo, CodecError> {
    let sets = parameter_sets(access_unit);
    let first = sets.sps.first().ok_or(CodecError::Missing { what: "H.265 SPS in the access unit" })?;
    let sps = Sps::parse(first)?;
    let description = if in_band { None } else { Some(Bytes::from(build_hvcc(&sets)?)) };
    Ok(VideoInfo {
        codec: sps.codec_string(in_band),
        description,
        coded_width: sps.coded_width,
        coded_height: sps.coded_height,
    })
}
