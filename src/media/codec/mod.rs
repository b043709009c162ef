//! Codec helpers that fill the hang catalog correctly: RFC 6381 codec strings, the decoder
//! `description` bytes (avcC, hvcC, av1C, AudioSpecificConfig, OpusHead), coded sizes and audio
//! parameters, read from bitstreams or from MP4 sample entries, and sample entries written back
//! for an MP4 init segment.
//!
//! The rule hang follows from WebCodecs: a video rendition with a `description` carries
//! length-prefixed NAL units (the record names the length size); one without carries Annex-B with
//! its parameter sets in band. Records are parsed and written with `mp4-atom`, H.264 SPS with
//! `h264-reader`; only what no crate reads safely is read here: the H.265 SPS prefix, the AV1
//! sequence header and the AudioSpecificConfig bits. Nothing panics on any input: these see bytes
//! from the network and from C.

mod bits;

pub mod aac;
pub mod annexb;
pub mod av1;
pub mod h264;
pub mod h265;
pub mod opus;
pub mod vp9;

use bytes::Bytes;

/// Why codec data could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ends before the structure does.
    #[error("{what} is truncated")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// The input is there but breaks the structure's rules.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Which rule it breaks.
        reason: String,
    },
    /// Something the result needs is absent (an SPS in an access unit, a description).
    #[error("no {what}")]
    Missing {
        /// What is absent.
        what: &'static str,
    },
    /// A codec or variant these helpers do not handle.
    #[error("unsupported codec: {0}")]
    Unsupported(String),
}

impl CodecError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { what, reason: reason.into() }
    }
}

/// What a hang catalog rendition says about its codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecInfo {
    /// A video rendition's fields.
    Video(VideoInfo),
    /// An audio rendition's fields.
    Audio(AudioInfo),
}

/// A video rendition's codec fields in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// RFC 6381 codec string, e.g. `avc1.64001e`.
    pub codec: String,
    /// The decoder configuration record (avcC, hvcC, av1C body); `None` when the stream carries
    /// its configuration in band (Annex-B H.264/H.265, VP8, VP9).
    pub description: Option<Bytes>,
    /// Picture size after cropping (what hang calls `codedWidth`/`codedHeight`).
    pub coded_width: u32,
    /// Picture height after cropping, in pixels (`codedHeight`).
    pub coded_height: u32,
}

/// An audio rendition's codec fields in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// Codec string: `mp4a.40.N` or `opus`.
    pub codec: String,
    /// AudioSpecificConfig for AAC, OpusHead for Opus.
    pub description: Option<Bytes>,
    /// Sample rate in Hz (`sampleRate`).
    pub sample_rate: u32,
    /// Channel count (`numberOfChannels`).
    pub channels: u32,
}

/// Decodes a decoder configuration record body (what the catalog's `description` holds) with
/// mp4-atom, refusing trailing bytes.
pub(crate) fn decode_record<T: mp4_atom::Atom>(record: &[u8], what: &'static str) -> Result<T, CodecError> {
    let mut buf = record;
    let value = T::decode_body(&mut buf).map_err(|e| CodecError::invalid(what, e.to_string()))?;
    if !buf.is_empty() {
        return Err(CodecError::invalid(what, format!("{} trailing bytes", buf.len())));
    }
    Ok(value)
}

/// Encodes a record body (no box header), as the catalog's `description` holds it.
pub(crate) fn encode_record<T: mp4_atom::Atom>(value: &T, what: &'static str) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    value.encode_body(&mut out).map_err(|e| CodecError::invalid(what, e.to_string()))?;
    Ok(out)
}

/// The catalog fields of an MP4 sample entry (an `stsd` child of an init segment).
///
/// Video sizes come from the sample entry. Audio: the sample rate from the AudioSpecificConfig
/// or dOps when the entry's 16-bit field cannot hold it, the channel count from the entry (as
/// moq-dev's importer does), each falling back to the other when zero.
pub fn from_sample_entry(entry: &mp4_atom::Codec) -> Result<CodecInfo, CodecError> {
    use mp4_atom::Codec;
    let video = |codec: String, description: Option<Vec<u8>>, visual: &mp4_atom::Visual| {
        CodecInfo::Video(VideoInfo {
            codec,
            description: description.map(Bytes::from),
            coded_width: u32::from(visual.width),
            coded_height: u32::from(visual.height),
        })
    };
    Ok(match entry {
        Codec::Avc1(e) => {
            video(h264::avcc_codec_string(&e.avcc, false), Some(encode_record(&e.avcc, "avcC")?), &e.visual)
        }
        Codec::Avc3(e) => {
            video(h264::avcc_codec_string(&e.avcc, true), Some(encode_record(&e.avcc, "avcC")?), &e.visual)
        }
        Codec::Hvc1(e) => {
            video(h265::hvcc_codec_string(&e.hvcc, false), Some(encode_record(&e.hvcc, "hvcC")?), &e.visual)
        }
        Codec::Hev1(e) => {
            video(h265::hvcc_codec_string(&e.hvcc, true), Some(encode_record(&e.hvcc, "hvcC")?), &e.visual)
        }
        Codec::Av01(e) => {
            let config = av1::Av1Config::from_av1c(&e.av1c).with_colr(&e.av1c, e.colr.as_ref());
            video(config.codec_string(), Some(encode_record(&e.av1c, "av1C")?), &e.visual)
        }
        Codec::Vp09(e) => video(vp9::Vp9Config::from_vpcc(&e.vpcc).codec_string(), None, &e.visual),
        Codec::Vp08(e) => video(vp9::VP8_CODEC.to_string(), None, &e.visual),
        Codec::Mp4a(e) => {
            let config = &e.esds.es_desc.dec_config;
            if config.object_type_indication != aac::MPEG4_AUDIO_OBJECT_TYPE_INDICATION {
                return Err(CodecError::Unsupported(format!(
                    "mp4a with object type indication {:#04x}, not MPEG-4 audio",
                    config.object_type_indication
                )));
            }
            let raw = config
                .dec_specific
                .as_ref()
                .map(|d| d.raw.clone())
                .ok_or(CodecError::Missing { what: "AudioSpecificConfig in the esds" })?;
            let asc = aac::AudioSpecificConfig::parse(&raw)?;
            let entry_rate = u32::from(e.audio.sample_rate.integer());
            let sample_rate = if asc.output_sample_rate() != 0 { asc.output_sample_rate() } else { entry_rate };
            let entry_channels = u32::from(e.audio.channel_count);
            let channels = if entry_channels != 0 { entry_channels } else { u32::from(asc.channel_count()) };
            CodecInfo::Audio(AudioInfo {
                codec: asc.codec_string(),
                description: Some(raw.into()),
                sample_rate,
                channels,
            })
        }
        Codec::Opus(e) => {
            let entry_channels = u32::from(e.audio.channel_count);
            let channels = if entry_channels != 0 { entry_channels } else { u32::from(e.dops.output_channel_count) };
            CodecInfo::Audio(AudioInfo {
                codec: opus::OPUS_CODEC.to_string(),
                description: Some(opus::opus_head(&e.dops)?.into()),
                // Opus always decodes at 48 kHz; the input rate is informational only.
                sample_rate: opus::OPUS_SAMPLE_RATE,
                channels,
            })
        }
        other => return Err(CodecError::Unsupported(sample_entry_name(other))),
    })
}

/// The four-character name of a sample entry, for error messages.
fn sample_entry_name(entry: &mp4_atom::Codec) -> String {
    if let mp4_atom::Codec::Unknown(kind, _) = entry {
        return kind.to_string();
    }
    let mut out = Vec::new();
    let _ = mp4_atom::Encode::encode(entry, &mut out);
    out.get(4..8)
        .map_or_else(|| "an unknown sample entry".to_string(), |kind| String::from_utf8_lossy(kind).into_owned())
}

/// An MP4 sample entry for a catalog rendition, for writing an init segment: the reverse of
/// [`from_sample_entry`]. H.264/H.265 need the record in `description`; AV1 builds an av1C from
/// the codec string when there is none; AAC builds an AudioSpecificConfig, Opus a dOps, from
/// the rate and channels when there is none.
pub fn sample_entry(info: &CodecInfo) -> Result<mp4_atom::Codec, CodecError> {
    match info {
        CodecInfo::Video(video) => video_sample_entry(video),
        CodecInfo::Audio(audio) => audio_sample_entry(audio),
    }
}

fn video_sample_entry(info: &VideoInfo) -> Result<mp4_atom::Codec, CodecError> {
    use mp4_atom::{Av01, Avc1, Avc3, Hev1, Hvc1, Vp08, Vp09};
    let size = |value: u32, what| {
        u16::try_from(value).map_err(|_| CodecError::invalid(what, format!("{value} does not fit a sample entry")))
    };
    let visual = mp4_atom::Visual {
        data_reference_index: 1,
        width: size(info.coded_width, "coded width")?,
        height: size(info.coded_height, "coded height")?,
        ..Default::default()
    };
    let description = || {
        info.description.as_deref().ok_or(CodecError::Missing { what: "description (decoder configuration record)" })
    };
    let codec = info.codec.as_str();
    let prefix = codec.split('.').next().unwrap_or_default();
    Ok(match prefix {
        "avc1" => Avc1 { visual, avcc: h264::parse_avcc(description()?)?, ..Default::default() }.into(),
        "avc3" => Avc3 { visual, avcc: h264::parse_avcc(description()?)?, ..Default::default() }.into(),
        "hvc1" => Hvc1 { visual, hvcc: h265::parse_hvcc(description()?)?, ..Default::default() }.into(),
        "hev1" => Hev1 { visual, hvcc: h265::parse_hvcc(description()?)?, ..Default::default() }.into(),
        "av01" => {
            // The string's colour fields also go in a colr box, which is where a reader finds
            // them when the av1C has no sequence header.
            let config = av1::Av1Config::from_codec_string(codec)?;
            let av1c = match &info.description {
                Some(record) => av1::parse_av1c(record)?,
                None => config.to_av1c(Vec::new())?,
            };
            let colr = config.has_colour().then(|| config.colr());
            Av01 { visual, av1c, colr, ..Default::default() }.into()
        }
        "vp09" => {
            Vp09 { visual, vpcc: vp9::Vp9Config::from_codec_string(codec)?.to_vpcc()?, ..Default::default() }.into()
        }
        "vp8" => Vp08 { visual, vpcc: vp9::vp8_vpcc(), ..Default::default() }.into(),
        _ => return Err(CodecError::Unsupported(codec.to_string())),
    })
}

fn audio_sample_entry(info: &AudioInfo) -> Result<mp4_atom::Codec, CodecError> {
    let channel_count = u16::try_from(info.channels)
        .map_err(|_| CodecError::invalid("channel count", format!("{} channels", info.channels)))?;
    // The 16.16 field cannot hold rates above 65535 Hz; 0 there, the record has the real rate.
    let rate = u16::try_from(info.sample_rate).unwrap_or(0);
    let audio = mp4_atom::Audio {
        data_reference_index: 1,
        channel_count,
        sample_size: 16,
        sample_rate: mp4_atom::FixedPoint::new(rate, 0),
    };
    let codec = info.codec.as_str();
    if codec == opus::OPUS_CODEC {
        let dops = match &info.description {
            Some(head) => opus::parse_opus_head(head)?,
            None => opus::stereo_dops(channel_count, info.sample_rate)?,
        };
        return Ok(mp4_atom::Opus { audio, dops, btrt: None }.into());
    }
    if codec.starts_with("mp4a.40.") {
        let asc = match &info.description {
            Some(asc) => {
                aac::AudioSpecificConfig::parse(asc)?;
                asc.to_vec()
            }
            None => aac::AudioSpecificConfig::from_codec_string(codec, info.sample_rate, info.channels)?.to_bytes()?,
        };
        return Ok(mp4_atom::Mp4a { audio, esds: aac::esds(asc), btrt: None, taic: None }.into());
    }
    Err(CodecError::Unsupported(codec.to_string()))
}

#[cfg(test)]
mod tests;
