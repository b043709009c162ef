//! Fuzz entry points for media::codec, the parsers that read codec data from the network, from
//! MP4 files and from C: parameter sets, decoder configuration records, sample entries and
//! Annex-B streams. Nothing may panic; what parses must write back to the same thing.

use crate::media::codec::{self, CodecInfo, aac, annexb, av1, h264, h265, opus, vp9};

/// Byte 0 picks the parser the rest is fed to: 0 an H.264 SPS, 1 an avcC, 2 an H.264 Annex-B
/// access unit, 3 an H.265 SPS, 4 an hvcC, 5 an H.265 access unit, 6 AV1 OBUs, 7 an av1C,
/// 8 a vpcC, 9 a video codec string.
pub fn media_video(data: &[u8]) {
    let [selector, input @ ..] = data else { return };
    match selector % 10 {
        0 => {
            if let Ok(sps) = h264::Sps::parse(input) {
                let _ = sps.codec_string(false);
            }
        }
        1 => {
            let _ = h264::info_from_avcc(input, false);
            if let Ok(avcc) = h264::parse_avcc(input) {
                let sets: Vec<&[u8]> = avcc.sequence_parameter_sets.iter().map(Vec::as_slice).collect();
                let pps: Vec<&[u8]> = avcc.picture_parameter_sets.iter().map(Vec::as_slice).collect();
                let _ = h264::build_avcc(&sets, &pps);
            }
        }
        2 => {
            for in_band in [false, true] {
                if let Ok(info) = h264::info_from_annexb(input, in_band) {
                    if let Some(record) = &info.description {
                        let again = h264::info_from_avcc(record, in_band).expect("a built avcC reads back");
                        assert_eq!(again.codec, info.codec);
                    }
                }
            }
        }
        3 => {
            if let Ok(sps) = h265::Sps::parse(input) {
                let _ = sps.codec_string(true);
            }
        }
        4 => {
            let _ = h265::info_from_hvcc(input, false);
        }
        5 => {
            if let Ok(info) = h265::info_from_annexb(input, false) {
                let record = info.description.as_ref().expect("out of band has a description");
                let again = h265::info_from_hvcc(record, false).expect("a built hvcC reads back");
                assert_eq!(again.codec, info.codec);
            }
        }
        6 => {
            if let Ok(header) = av1::find_sequence_header(input) {
                let string = header.config.codec_string();
                if let Ok(record) = av1::build_av1c(input) {
                    let av1c = av1::parse_av1c(&record).expect("a built av1C reads back");
                    assert_eq!(av1::Av1Config::from_av1c(&av1c).codec_string(), string);
                }
            }
        }
        7 => {
            if let Ok(av1c) = av1::parse_av1c(input) {
                let config = av1::Av1Config::from_av1c(&av1c);
                let string = config.codec_string();
                let parsed = av1::Av1Config::from_codec_string(&string).expect("a written AV1 string reads back");
                assert_eq!(parsed.codec_string(), string);
            }
        }
        8 => {
            if let Ok(vpcc) = vp9::parse_vpcc(input) {
                let string = vp9::Vp9Config::from_vpcc(&vpcc).codec_string();
                let parsed = vp9::Vp9Config::from_codec_string(&string).expect("a written VP9 string reads back");
                assert_eq!(parsed.codec_string(), string);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(input);
            let _ = av1::Av1Config::from_codec_string(&text);
            let _ = vp9::Vp9Config::from_codec_string(&text);
            let _ = aac::AudioSpecificConfig::from_codec_string(&text, 48_000, 2);
        }
    }
}

/// Byte 0 picks the parser: even an AudioSpecificConfig, odd an OpusHead. What parses and can be
/// written again must read back the same.
pub fn media_audio(data: &[u8]) {
    let [selector, input @ ..] = data else { return };
    if selector % 2 == 0 {
        if let Ok(config) = aac::AudioSpecificConfig::parse(input) {
            if let Ok(bytes) = config.to_bytes() {
                assert_eq!(
                    aac::AudioSpecificConfig::parse(&bytes).as_ref(),
                    Ok(&config),
                    "AudioSpecificConfig round trip"
                );
            }
        }
    } else if let Ok(dops) = opus::parse_opus_head(input) {
        let head = opus::opus_head(&dops).expect("a parsed OpusHead writes");
        assert_eq!(opus::parse_opus_head(&head).as_ref(), Ok(&dops), "OpusHead round trip");
    }
}

/// Annex-B and length-prefixed conversion. Byte 0 is the length size (1, 2 or 4 are valid).
/// Converting an Annex-B stream and back must keep its NAL units.
pub fn media_annexb(data: &[u8]) {
    let [length_size, stream @ ..] = data else { return };
    let _ = h264::is_idr(stream);
    let _ = h265::is_irap_access_unit(stream);
    if let Ok(sample) = annexb::annexb_to_length_prefixed(stream, *length_size) {
        let back = annexb::length_prefixed_to_annexb(&sample, *length_size).expect("a written sample reads back");
        assert!(annexb::nal_units(&back).eq(annexb::nal_units(stream)), "NAL units changed");
    }
    let _ = annexb::length_prefixed_to_annexb(stream, *length_size);
}

/// An MP4 sample entry box, as an init segment's stsd holds it. What maps to catalog fields and
/// back to a sample entry must map to the same fields again.
pub fn media_sample_entry(data: &[u8]) {
    let mut input = data;
    let Ok(entry) = <mp4_atom::Codec as mp4_atom::Decode>::decode(&mut input) else { return };
    let Ok(info) = codec::from_sample_entry(&entry) else { return };
    match &info {
        CodecInfo::Video(video) => assert!(!video.codec.is_empty()),
        CodecInfo::Audio(audio) => assert!(!audio.codec.is_empty()),
    }
    if let Ok(written) = codec::sample_entry(&info) {
        let again = codec::from_sample_entry(&written).expect("a written sample entry maps back");
        assert_eq!(again, info, "sample entry round trip");
    }
}
