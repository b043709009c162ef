//! H.264/AVC: the SPS fields a catalog needs (parsed by `h264-reader`), `avc1.PPCCLL`/`avc3.`
//! codec strings, and the avcC record (read and written by `mp4-atom`).

use bytes::Bytes;

use super::{CodecError, VideoInfo, annexb, decode_record, encode_record};

/// NAL unit type of an IDR picture's slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// The type of an H.264 NAL unit (its first byte's low 5 bits).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// What the catalog needs from a sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// profile_idc (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the 2 reserved bits, as the byte between profile and level.
    pub constraint_flags: u8,
    /// level_idc: the level times ten (31 for level 3.1).
    pub level_idc: u8,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// Luma bit depth (bit_depth_luma_minus8 + 8).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (bit_depth_chroma_minus8 + 8).
    pub bit_depth_chroma: u8,
    /// Picture size with the SPS frame cropping applied.
    pub coded_width: u32,
    /// Picture height in pixels, with the SPS frame cropping applied.
    pub coded_height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (header byte included, no start code or length).
    pub fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        if nal_type(nal) != Some(NAL_SPS) {
            return Err(CodecError::invalid("H.264 SPS", "not an SPS NAL unit"));
        }
        if nal.len() < 4 {
            return Err(CodecError::Truncated { what: "H.264 SPS" });
        }
        let rbsp = h264_reader::rbsp::decode_nal(nal).map_err(|e| CodecError::invalid("H.264 SPS", e.to_string()))?;
        let sps = h264_reader::nal::sps::SeqParameterSet::from_bits(h264_reader::rbsp::BitReader::new(&rbsp[..]))
            .map_err(|e| CodecError::invalid("H.264 SPS", format!("{e:?}")))?;
        let (coded_width, coded_height) =
            sps.pixel_dimensions().map_err(|e| CodecError::invalid("H.264 SPS", format!("{e:?}")))?;
        Ok(Self {
            profile_idc: sps.profile_idc.into(),
            constraint_flags: sps.constraint_flags.into(),
            level_idc: sps.level_idc,
            chroma_format_idc: sps.chroma_info.chroma_format.to_u32().min(3) as u8,
            bit_depth_luma: sps.chroma_info.bit_depth_luma_minus8.saturating_add(8),
            bit_depth_chroma: sps.chroma_info.bit_depth_chroma_minus8.saturating_add(8),
            coded_width,
            coded_height,
        })
    }

    /// `avc1.PPCCLL` (parameter sets out of band, in the description) or `avc3.PPCCLL` (in band).
    pub fn codec_string(&self, in_band: bool) -> String {
        codec_string(in_band, self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

/// `avc1.PPCCLL` or, in band, `avc3.PPCCLL`, lower-case hex as moq-dev writes it.
pub fn codec_string(in_band: bool, profile_idc: u8, constraint_flags: u8, level_idc: u8) -> String {
    let prefix = if in_band { "avc3" } else { "avc1" };
    format!("{prefix}.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}")
}

/// The codec string an avcC advertises (its profile, compatibility and level bytes).
pub fn avcc_codec_string(avcc: &mp4_atom::Avcc, in_band: bool) -> String {
    codec_string(in_band, avcc.avc_profile_indication, avcc.profile_compatibility, avcc.avc_level_indication)
}

/// The SPS and PPS NAL units of an Annex-B access unit, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParameterSets<'a> {
    /// The SPS NAL units, header byte included, without start codes.
    pub sps: Vec<&'a [u8]>,
    /// The PPS NAL units, header byte included, without start codes.
    pub pps: Vec<&'a [u8]>,
}

/// Collects the parameter sets of an Annex-B access unit.
pub fn parameter_sets(access_unit: &[u8]) -> ParameterSets<'_> {
    let mut sets = ParameterSets::default();
    for nal in annexb::nal_units(access_unit) {
        match nal_type(nal) {
            Some(NAL_SPS) => sets.sps.push(nal),
            Some(NAL_PPS) => sets.pps.push(nal),
            _ => {}
        }
    }
    sets
}

/// Whether an Annex-B access unit holds an IDR slice (a point a decoder can start from).
pub fn is_idr(access_unit: &[u8]) -> bool {
    annexb::nal_units(access_unit).any(|nal| nal_type(nal) == Some(NAL_IDR))
}

/// Profiles whose avcC carries the chroma format and bit depth extension (ISO/IEC 14496-15
/// 5.3.3.1.2).
fn has_avcc_extension(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 144)
}

/// An avcC record body (the catalog's `description`) from SPS and PPS NAL units, 4-byte NAL
/// lengths; profile and level from the first SPS.
pub fn build_avcc(sps: &[&[u8]], pps: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
    let first = sps.first().ok_or(CodecError::Missing { what: "H.264 SPS" })?;
    if pps.is_empty() {
        return Err(CodecError::Missing { what: "H.264 PPS" });
    }
    if sps.len() > 31 || pps.len() > 255 {
        return Err(CodecError::invalid("avcC", "more parameter sets than the record can count"));
    }
    if sps.iter().chain(pps).any(|nal| nal.len() > usize::from(u16::MAX)) {
        return Err(CodecError::invalid("avcC", "a parameter set longer than 65535 bytes"));
    }
    let parsed = Sps::parse(first)?;
    let ext = has_avcc_extension(parsed.profile_idc).then(|| mp4_atom::AvccExt {
        chroma_format: parsed.chroma_format_idc,
        bit_depth_luma: parsed.bit_depth_luma,
        bit_depth_chroma: parsed.bit_depth_chroma,
        sequence_parameter_sets_ext: Vec::new(),
    });
    let avcc = mp4_atom::Avcc {
        configuration_version: 1,
        avc_profile_indication: parsed.profile_idc,
        profile_compatibility: parsed.constraint_flags,
        avc_level_indication: parsed.level_idc,
        length_size: 4,
        sequence_parameter_sets: sps.iter().map(|s| s.to_vec()).collect(),
        picture_parameter_sets: pps.iter().map(|p| p.to_vec()).collect(),
        ext,
    };
    encode_record(&avcc, "avcC")
}

/// Parses an avcC record body (the catalog's `description`).
pub fn parse_avcc(record: &[u8]) -> Result<mp4_atom::Avcc, CodecError> {
    decode_record(record, "avcC")
}

/// Catalog fields from an avcC record body: codec string from its bytes, size from its first SPS.
pub fn info_from_avcc(record: &[u8], in_band: bool) -> Result<VideoInfo, CodecError> {
    let avcc = parse_avcc(record)?;
    let sps = avcc.sequence_parameter_sets.first().ok_or(CodecError::Missing { what: "H.264 SPS in the avcC" })?;
    let sps = Sps::parse(sps)?;
    Ok(VideoInfo {
        codec: avcc_codec_string(&avcc, in_band),
        description: Some(Bytes::copy_from_slice(record)),
        coded_width: sps.coded_width,
        coded_height: sps.coded_height,
    })
}

/// Catalog fields from an Annex-B access unit holding SPS and PPS (a keyframe): in band gives
/// `avc3` and no description (frames stay Annex-B); out of band gives `avc1` with an avcC (frames
/// must then be sent length-prefixed, see [`annexb::annexb_to_length_prefixed`] with 4).
pub fn info_from_annexb(access_unit: &[u8], in_band: bool) -> Result<VideoInfo, CodecError> {
    let sets = parameter_sets(access_unit);
    let first = sets.sps.first().ok_or(CodecError::Missing { what: "H.264 SPS in the access unit" })?;
    let sps = Sps::parse(first)?;
    let description = if in_band { None } else { Some(Bytes::from(build_avcc(&sets.sps, &sets.pps)?)) };
    Ok(VideoInfo {
        codec: sps.codec_string(in_band),
        description,
        coded_width: sps.coded_width,
        coded_height: sps.coded_height,
    })
}
