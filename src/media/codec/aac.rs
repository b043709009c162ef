//! AAC: the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), which is the catalog's `description`
//! and the esds DecoderSpecificInfo, and `mp4a.40.N` codec strings.

use super::CodecError;
use super::bits::{BitReader, BitWriter};

/// The esds objectTypeIndication of MPEG-4 audio, the `40` in `mp4a.40.N`.
pub const MPEG4_AUDIO_OBJECT_TYPE_INDICATION: u8 = 0x40;

/// Sample rates by samplingFrequencyIndex; 13 and 14 are reserved, 15 means explicit.
const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Object types with a GASpecificConfig, the ones [`AudioSpecificConfig::to_bytes`] can write.
const GENERAL_AUDIO: [u8; 11] = [1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22];

/// The leading fields of an AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// audioObjectType, escape (31 + 6 bits) resolved: 2 AAC-LC, 5 SBR (HE-AAC), 29 PS.
    pub object_type: u8,
    /// The core sample rate (from the index table or the explicit 24-bit field).
    pub sample_rate: u32,
    /// channelConfiguration: 1..=6 that many channels, 7 is 8; 0 means a program config element.
    pub channel_config: u8,
    /// For explicit SBR/PS signalling (object type 5 or 29): the output (extension) sample rate.
    pub extension_sample_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// Parses the leading fields; the object-type specific rest is not read.
    pub fn parse(config: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(config, "AudioSpecificConfig");
        let object_type = read_object_type(&mut r)?;
        let sample_rate = read_sample_rate(&mut r)?;
        let channel_config = r.bits(4)? as u8;
        let extension_sample_rate = match object_type {
            5 | 29 => Some(read_sample_rate(&mut r)?),
            _ => None,
        };
        Ok(Self { object_type, sample_rate, channel_config, extension_sample_rate })
    }

    /// `mp4a.40.N` with N the object type.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The rate a decoder outputs: the extension rate with explicit SBR, the core rate otherwise.
    pub fn output_sample_rate(&self) -> u32 {
        self.extension_sample_rate.unwrap_or(self.sample_rate)
    }

    /// Channels the channel configuration names; 0 when a program config element does.
    pub fn channel_count(&self) -> u8 {
        match self.channel_config {
            7 => 8,
            n @ 0..=6 => n,
            _ => 0,
        }
    }

    /// A config for a codec string `mp4a.40.N`, a rate and a channel count (1..=6 or 8).
    pub fn from_codec_string(codec: &str, sample_rate: u32, channels: u32) -> Result<Self, CodecError> {
        let object_type = codec
            .strip_prefix("mp4a.40.")
            .and_then(|n| n.parse::<u8>().ok())
            .ok_or_else(|| CodecError::invalid("AAC codec string", codec.to_string()))?;
        let channel_config = match channels {
            1..=6 => channels as u8,
            8 => 7,
            other => return Err(CodecError::invalid("AAC channels", format!("{other} need a program config element"))),
        };
        Ok(Self { object_type, sample_rate, channel_config, extension_sample_rate: None })
    }

    /// Writes the config for a general audio object type (AAC main, LC, SSR, LTP, scalable,
    /// TwinVQ, ER variants) with a default GASpecificConfig: 1024-sample frames, no core coder.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        if !GENERAL_AUDIO.contains(&self.object_type) || self.extension_sample_rate.is_some() {
            return Err(CodecError::Unsupported(format!("writing an AudioSpecificConfig for {}", self.codec_string())));
        }
        if self.channel_config > 15 || self.sample_rate == 0 || self.sample_rate >= 1 << 24 {
            return Err(CodecError::invalid("AudioSpecificConfig", "channel config or sample rate out of range"));
        }
        let mut w = BitWriter::default();
        if self.object_type >= 32 {
            w.bits(5, 31);
            w.bits(6, u32::from(self.object_type - 32));
        } else {
            w.bits(5, u32::from(self.object_type));
        }
        match SAMPLE_RATES.iter().position(|r| *r == self.sample_rate) {
            Some(index) => w.bits(4, index as u32),
            None => {
                w.bits(4, 15);
                w.bits(24, self.sample_rate);
            }
        }
        w.bits(4, u32::from(self.channel_config));
        w.bits(3, 0); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
        Ok(w.finish())
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let object_type = r.bits(5)? as u8;
    Ok(if object_type == 31 { 32 + r.bits(6)? as u8 } else { object_type })
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    match r.bits(4)? {
        15 => r.bits(24),
        index => SAMPLE_RATES.get(index as usize).copied().ok_or_else(|| {
            CodecError::invalid("AudioSpecificConfig", format!("reserved sampling frequency index {index}"))
        }),
    }
}

/// An esds for MPEG-4 audio carrying `audio_specific_config`.
pub fn esds(audio_specific_config: Vec<u8>) -> mp4_atom::Esds {
    let (profile, freq_index, chan_conf) = match audio_specific_config.as_slice() {
        [a, b, ..] => (a >> 3, ((a & 7) << 1) | (b >> 7), (b >> 3) & 0xf),
        _ => (0, 0, 0),
    };
    mp4_atom::Esds {
        es_desc: mp4_atom::esds::EsDescriptor {
            es_id: 1,
            dec_config: mp4_atom::esds::DecoderConfig {
                object_type_indication: MPEG4_AUDIO_OBJECT_TYPE_INDICATION,
                stream_type: 5, // audio
                up_stream: 0,
                dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                    profile,
                    freq_index,
                    chan_conf,
                    raw: audio_specific_config,
                }),
                ..Default::default()
            },
            ..Default::default()
        },
    }
}
