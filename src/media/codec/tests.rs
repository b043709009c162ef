//! Tests against real encoder output and against moq-dev's `hang` crate, the reference for codec
//! strings (every string written here must parse there and print back the same).
//!
//! Vectors were made with ffmpeg 5.1 (libx264, libx265 3.5, libaom, libsvtav1 1.4, libvpx, the
//! native aac encoder, libopus) from `-f lavfi -i testsrc=size=640x360:rate=30 -t 0.1` (video,
//! `-pix_fmt yuv420p` unless noted) or `-i sine=frequency=440` (audio), written as raw streams
//! (`-f h264`, `-f hevc`, `-f obu`, `-f ogg`) or MP4, with the bytes of the NAL units or boxes
//! copied out as hex.

use std::str::FromStr;

use base64::Engine;
use mp4_atom::{Decode, Encode};

use super::*;

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex test vector")
}

/// The codec string parses with hang as the codec it names and prints back unchanged.
fn assert_hang_video(codec: &str) {
    let parsed = hang::catalog::VideoCodec::from_str(codec).unwrap_or_else(|e| panic!("hang refuses {codec}: {e}"));
    assert!(!matches!(parsed, hang::catalog::VideoCodec::Unknown(_)), "hang does not know {codec}");
    assert_eq!(parsed.to_string(), codec, "hang prints {codec} differently");
}

fn assert_hang_audio(codec: &str) {
    let parsed = hang::catalog::AudioCodec::from_str(codec).unwrap_or_else(|e| panic!("hang refuses {codec}: {e}"));
    assert!(!matches!(parsed, hang::catalog::AudioCodec::Unknown(_)), "hang does not know {codec}");
    assert_eq!(parsed.to_string(), codec, "hang prints {codec} differently");
}

/// The sample entry of the first track of an init segment (base64).
fn first_sample_entry(init_base64: &str) -> mp4_atom::Codec {
    let init = base64::engine::general_purpose::STANDARD.decode(init_base64).expect("base64 init");
    let mut buf = init.as_slice();
    mp4_atom::Ftyp::decode(&mut buf).expect("ftyp");
    let moov = mp4_atom::Moov::decode(&mut buf).expect("moov");
    moov.trak[0].mdia.minf.stbl.stsd.codecs[0].clone()
}

// The reference catalog (moq-dev tools, ffmpeg libx264 640x360 and aac 48 kHz), its init segments.
const FIXTURE_VIDEO_INIT: &str = "\
AAAAHGZ0eXBpc29tAAACAGlzb21pc282bXA0MQAAArJtb292AAAAeG12aGQBAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+gAAAAAAAAA\
AAABAAABAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
AAAAAAACAAAAKG12ZXgAAAAgdHJleAAAAAAAAAABAAAAAQAAAAAAAAAAAAAAAAAAAgp0cmFrAAAAaHRraGQBAAAHAAAAAAAAAAAA\
AAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAA\
AoAAAAFoAAAAAAGabWRpYQAAACxtZGhkAQAAAAAAAAAAAAAAAAAAAAAAAAAAADwAAAAAAAAAAABVxAAAAAAALWhkbHIAAAAAAAAA\
AHZpZGUAAAAAAAAAAAAAAABWaWRlb0hhbmRsZXIAAAABOW1pbmYAAAAkZGluZgAAABxkcmVmAAAAAAAAAAEAAAAMdXJsIAAAAAEA\
AAD5c3RibAAAAK1zdHNkAAAAAAAAAAEAAACdYXZjMQAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAKAAWgASAAAAEgAAAAAAAAAARVM\
YXZjNTkuMzcuMTAwIGxpYngyNjQAAAAAAAAAAAAAABj//wAAADdhdmNDAWQAHv/hABpnZAAerNlAoC/5cBEAAAMAAQAAAwA8DxYt\
lgEABmjr48siwP34+AAAAAAQcGFzcAAAAAEAAAABAAAAEHN0dHMAAAAAAAAAAAAAABBzdHNjAAAAAAAAAAAAAAAUc3RzegAAAAAA\
AAAAAAAAAAAAABBzdGNvAAAAAAAAAAAAAAAUdm1oZAAAAAEAAAAAAAAAAA==";
const FIXTURE_AUDIO_INIT: &str = "\
AAAAHGZ0eXBpc29tAAACAGlzb21pc282bXA0MQAAAnNtb292AAAAeG12aGQBAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+gAAAAAAAAA\
AAABAAABAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
AAAAAAACAAAAKG12ZXgAAAAgdHJleAAAAAAAAAACAAAAAQAAAAAAAAAAAAAAAAAAAct0cmFrAAAAaHRraGQBAAAHAAAAAAAAAAAA\
AAAAAAAAAAAAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEBAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAA\
AAAAAAAAAAAAAAFbbWRpYQAAACxtZGhkAQAAAAAAAAAAAAAAAAAAAAAAAAAAALuAAAAAAAAAAABVxAAAAAAALWhkbHIAAAAAAAAA\
AHNvdW4AAAAAAAAAAAAAAABTb3VuZEhhbmRsZXIAAAAA+m1pbmYAAAAkZGluZgAAABxkcmVmAAAAAAAAAAEAAAAMdXJsIAAAAAEA\
AAC+c3RibAAAAHJzdHNkAAAAAAAAAAEAAABibXA0YQAAAAAAAAABAAAAAAAAAAAAAgAQAAAAALuAAAAAAAAqZXNkcwAAAAADHAAC\
AAQUQBUAAAAAAQ2IAAENiAUFEYhW5QAGAQIAAAAUYnRydAAAAAAAAQ2IAAENiAAAABBzdHRzAAAAAAAAAAAAAAAQc3RzYwAAAAAA\
AAAAAAAAFHN0c3oAAAAAAAAAAAAAAAAAAAAQc3RjbwAAAAAAAAAAAAAAEHNtaGQAAAAAAAAAAA==";
const FIXTURE_AVCC: &str =
    "0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800";
const FIXTURE_ASC: &str = "118856e500";

// libx264 High, 640x360 (the fixture's stream): SPS and PPS from `-f h264`.
const H264_HIGH_SPS: &str = "6764001eacd940a02ff970110000030001000003003c0f162d96";
const H264_HIGH_PPS: &str = "68ebe3cb22c0";
// libx264 `-profile:v baseline`, 640x360.
const H264_BASELINE_SPS: &str = "6742c01ed900a02ff970110000030001000003003c0f162e48";
// libx264 `-preset ultrafast`, 1920x1080 (coded 1088, cropped).
const H264_1080_SPS: &str = "6742c028da01e0089f970110000003001000000303c0f1832a";
// libx264 from testsrc without -pix_fmt: High 4:4:4 Predictive, avcC from the MP4.
const H264_444_AVCC: &str =
    "01f4001effe1001b67f4001e919b281405ff138088000003000800000301e078b16cb001000668ebe3c44844fff8f800";

// libx265 Main, 640x360: VPS, SPS, PPS from `-f hevc`, and the hvcC of `-tag:v hvc1` MP4.
const H265_VPS: &str = "40010c01ffff01600000030090000003000003003f959809";
const H265_SPS: &str = "42010101600000030090000003000003003fa00502016965959a4932bc05a020000003002000000303c1";
const H265_PPS: &str = "4401c172b46240";
const H265_HVCC: &str = "0101600000009000000000003ff000fcfdf8f800000f03a00001001840010c01ffff016000000300900000030000\
03003f959809a10001002a42010101600000030090000003000003003fa00502016965959a4932bc05a020000003002000000303c1a2000100074401c172b46240";
// libx265 Main 10 `-preset ultrafast`, 1920x1080, `-pix_fmt yuv420p10le`: the hvcC of its MP4.
const H265_MAIN10_HVCC: &str = "01022000000090000000000078f000fcfdfafa00000f03200001001840010c01ffff0220000003009000000300\
00030078959409210001002d420101022000000300900000030000030078a003c0801107cad965654a4c2f016808000003000800000300f04022000100\
064401c073c189";

// libaom `-cpu-used 8`, 640x360: the start of `-f obu` (temporal delimiter, sequence header) and
// the av1C of its MP4.
const AV1_OBUS: &str = "12000a0b0000000cc4ff6736be4010";
const AV1_AV1C: &str = "81010c000a0b0000000cc4ff6736be4010";
// libsvtav1, `-pix_fmt yuv420p10le`: the start of `-f obu` and the av1C of an MP4 (another run).
const AV1_10BIT_OBUS: &str = "12000a0b0000000cc4ff673efe5010";
const AV1_10BIT_AV1C: &str = "81014c000a0b0000000cc4ff6700be1010";

// libvpx-vp9 MP4 vpcC box bodies: 8-bit, and 10-bit with `-color_primaries bt2020 -color_trc
// smpte2084 -colorspace bt2020nc`.
const VP9_VPCC: &str = "010000000015820202020000";
const VP9_HDR_VPCC: &str = "010000000215a20910090000";

// aac: AudioSpecificConfigs (esds DecoderSpecificInfo) of 48 kHz stereo, 44.1 kHz mono, 96 kHz 5.1.
const AAC_STEREO_48K: &str = "119056e500";
const AAC_MONO_44K: &str = "120856e500";
const AAC_51_96K: &str = "103056e500";

// libopus 48 kHz stereo: OpusHead of `-f ogg`, dOps of the MP4; 5.1 `-mapping_family 1` dOps.
const OPUS_HEAD: &str = "4f707573486561640102380180bb0000000000";
const OPUS_DOPS: &str = "000201380000bb80000000";
const OPUS_51_DOPS: &str = "000601380000bb800000010402000401020305";

#[test]
fn h264_sps_of_the_fixture_stream() {
    let sps = h264::Sps::parse(&unhex(H264_HIGH_SPS)).unwrap();
    assert_eq!((sps.profile_idc, sps.constraint_flags, sps.level_idc), (0x64, 0, 0x1e));
    assert_eq!((sps.coded_width, sps.coded_height), (640, 360));
    assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma, sps.bit_depth_chroma), (1, 8, 8));
    assert_eq!(sps.codec_string(false), "avc1.64001e");
    assert_eq!(sps.codec_string(true), "avc3.64001e");
    assert_hang_video(&sps.codec_string(false));
    assert_hang_video(&sps.codec_string(true));
}

#[test]
fn h264_sps_with_trailing_zero_bytes() {
    // Some muxers leave the byte stream's trailing_zero_8bits on a parameter set.
    let mut sps = unhex(H264_HIGH_SPS);
    sps.extend([0, 0]);
    assert_eq!(h264::Sps::parse(&sps).unwrap().codec_string(false), "avc1.64001e");
}

#[test]
fn h264_other_profiles_and_cropping() {
    let baseline = h264::Sps::parse(&unhex(H264_BASELINE_SPS)).unwrap();
    assert_eq!(baseline.codec_string(false), "avc1.42c01e");
    assert_eq!((baseline.coded_width, baseline.coded_height), (640, 360));
    let full_hd = h264::Sps::parse(&unhex(H264_1080_SPS)).unwrap();
    assert_eq!(full_hd.codec_string(true), "avc3.42c028");
    assert_eq!((full_hd.coded_width, full_hd.coded_height), (1920, 1080));
    assert_hang_video(&full_hd.codec_string(true));
    let info = h264::info_from_avcc(&unhex(H264_444_AVCC), false).unwrap();
    assert_eq!((info.codec.as_str(), info.coded_width, info.coded_height), ("avc1.f4001e", 640, 360));
    assert_hang_video(&info.codec);
}

#[test]
fn h264_avcc_built_from_parameter_sets_is_the_fixture_description() {
    let (sps, pps) = (unhex(H264_HIGH_SPS), unhex(H264_HIGH_PPS));
    assert_eq!(hex::encode(h264::build_avcc(&[&sps], &[&pps]).unwrap()), FIXTURE_AVCC);
    let avcc = h264::parse_avcc(&unhex(FIXTURE_AVCC)).unwrap();
    assert_eq!(avcc.length_size, 4);
    assert_eq!(avcc.sequence_parameter_sets, std::slice::from_ref(&sps));
    assert_eq!(avcc.picture_parameter_sets, std::slice::from_ref(&pps));
    let info = h264::info_from_avcc(&unhex(FIXTURE_AVCC), false).unwrap();
    assert_eq!((info.codec.as_str(), info.coded_width, info.coded_height), ("avc1.64001e", 640, 360));
    assert!(h264::build_avcc(&[], &[&pps]).is_err());
    assert!(h264::build_avcc(&[&sps], &[]).is_err());
}

#[test]
fn h264_annexb_keyframe_to_catalog_fields_and_samples() {
    let mut access_unit = vec![0, 0, 0, 1];
    access_unit.extend(unhex(H264_HIGH_SPS));
    access_unit.extend([0, 0, 0, 1]);
    access_unit.extend(unhex(H264_HIGH_PPS));
    access_unit.extend([0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x21]);
    assert!(h264::is_idr(&access_unit));
    let sets = h264::parameter_sets(&access_unit);
    assert_eq!((sets.sps.len(), sets.pps.len()), (1, 1));

    let in_band = h264::info_from_annexb(&access_unit, true).unwrap();
    assert_eq!((in_band.codec.as_str(), in_band.description.is_none()), ("avc3.64001e", true));
    let out_of_band = h264::info_from_annexb(&access_unit, false).unwrap();
    assert_eq!(out_of_band.codec, "avc1.64001e");
    assert_eq!(hex::encode(out_of_band.description.unwrap()), FIXTURE_AVCC);
    assert_eq!((out_of_band.coded_width, out_of_band.coded_height), (640, 360));

    let length_size = h264::parse_avcc(&unhex(FIXTURE_AVCC)).unwrap().length_size;
    let sample = annexb::annexb_to_length_prefixed(&access_unit, length_size).unwrap();
    let units: Vec<_> = annexb::length_prefixed_units(&sample, length_size).collect::<Result<_, _>>().unwrap();
    assert_eq!(units.len(), 3);
    assert_eq!(units[0], unhex(H264_HIGH_SPS));
    let back = annexb::length_prefixed_to_annexb(&sample, length_size).unwrap();
    assert_eq!(annexb::nal_units(&back).collect::<Vec<_>>(), annexb::nal_units(&access_unit).collect::<Vec<_>>());
}

#[test]
fn h265_sps_and_hvcc_match_x265() {
    let sps = h265::Sps::parse(&unhex(H265_SPS)).unwrap();
    assert_eq!((sps.coded_width, sps.coded_height), (640, 360));
    assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (1, 8));
    assert_eq!(sps.codec_string(false), "hvc1.1.6.L63.90");
    assert_eq!(sps.codec_string(true), "hev1.1.6.L63.90");
    assert_hang_video(&sps.codec_string(false));
    assert_hang_video(&sps.codec_string(true));

    let (vps, sps_nal, pps) = (unhex(H265_VPS), unhex(H265_SPS), unhex(H265_PPS));
    let sets = h265::ParameterSets { vps: vec![&vps], sps: vec![&sps_nal], pps: vec![&pps] };
    assert_eq!(hex::encode(h265::build_hvcc(&sets).unwrap()), H265_HVCC, "the hvcC ffmpeg wrote");
    let info = h265::info_from_hvcc(&unhex(H265_HVCC), false).unwrap();
    assert_eq!((info.codec.as_str(), info.coded_width, info.coded_height), ("hvc1.1.6.L63.90", 640, 360));
}

#[test]
fn h265_main10_full_hd() {
    let info = h265::info_from_hvcc(&unhex(H265_MAIN10_HVCC), true).unwrap();
    assert_eq!((info.codec.as_str(), info.coded_width, info.coded_height), ("hev1.2.4.L120.90", 1920, 1080));
    assert_hang_video(&info.codec);
    let hvcc = h265::parse_hvcc(&unhex(H265_MAIN10_HVCC)).unwrap();
    let sps = &hvcc.arrays.iter().find(|a| a.nal_unit_type == h265::NAL_SPS).unwrap().nalus[0];
    assert_eq!(h265::Sps::parse(sps).unwrap().bit_depth_luma, 10);
}

#[test]
fn h265_annexb_keyframe() {
    let mut access_unit = Vec::new();
    for nal in [H265_VPS, H265_SPS, H265_PPS, "2601af"] {
        access_unit.extend([0, 0, 0, 1]);
        access_unit.extend(unhex(nal));
    }
    assert!(h265::is_irap_access_unit(&access_unit));
    let info = h265::info_from_annexb(&access_unit, false).unwrap();
    assert_eq!(hex::encode(info.description.unwrap()), H265_HVCC);
    assert!(h265::info_from_annexb(&access_unit, true).unwrap().description.is_none());
}

#[test]
fn h265_codec_strings_like_hang() {
    let ptl = |space, high_tier, idc, compatibility, constraint, level| h265::ProfileTierLevel {
        profile_space: space,
        high_tier,
        profile_idc: idc,
        compatibility_flags: compatibility,
        constraint_flags: constraint,
        level_idc: level,
    };
    let cases = [
        (ptl(0, false, 1, [0x60, 0, 0, 0], [0xb0, 0, 0, 0, 0, 0], 93), true, "hev1.1.6.L93.B0"),
        (ptl(1, true, 4, [0x82, 0, 0, 0], [0xb0, 0x23, 0, 0, 0, 0], 120), true, "hev1.A4.41.H120.B0.23"),
        (ptl(0, false, 1, [0x60, 0, 0, 0], [0; 6], 150), false, "hvc1.1.6.L150"),
        (ptl(0, false, 1, [0, 0, 0, 0], [0; 6], 93), false, "hvc1.1.0.L93"),
        (ptl(0, false, 1, [0x60, 0x80, 0, 0], [0xb0, 0, 0x10, 0, 0, 0], 93), false, "hvc1.1.106.L93.B0.0.10"),
    ];
    for (ptl, in_band, expected) in cases {
        assert_eq!(ptl.codec_string(in_band), expected);
        assert_hang_video(expected);
    }
}

#[test]
fn av1_from_sequence_header_and_av1c() {
    let header = av1::find_sequence_header(&unhex(AV1_OBUS)).unwrap();
    assert_eq!(header.config.codec_string(), "av01.0.01M.08");
    assert_eq!((header.max_frame_width, header.max_frame_height), (640, 360));
    assert_eq!(hex::encode(av1::build_av1c(&unhex(AV1_OBUS)).unwrap()), AV1_AV1C, "the av1C ffmpeg wrote");
    let av1c = av1::parse_av1c(&unhex(AV1_AV1C)).unwrap();
    assert_eq!(av1::Av1Config::from_av1c(&av1c).codec_string(), "av01.0.01M.08");
    assert_hang_video("av01.0.01M.08");

    let ten_bit = av1::find_sequence_header(&unhex(AV1_10BIT_OBUS)).unwrap();
    assert_eq!(ten_bit.config.bit_depth, 10);
    assert_hang_video(&ten_bit.config.codec_string());
    let av1c = av1::parse_av1c(&unhex(AV1_10BIT_AV1C)).unwrap();
    assert_eq!(av1::Av1Config::from_av1c(&av1c).codec_string(), "av01.0.01M.10");
    assert!(av1::find_sequence_header(&unhex("1200")).is_err());
}

#[test]
fn av1_codec_strings_like_hang() {
    let hdr = av1::Av1Config {
        level: 4,
        bit_depth: 10,
        chroma_sample_position: 2,
        color_primaries: 9,
        transfer_characteristics: 16,
        matrix_coefficients: 9,
        ..Default::default()
    };
    assert_eq!(hdr.codec_string(), "av01.0.04M.10.0.112.09.16.09.0");
    for codec in ["av01.0.04M.10.0.112.09.16.09.0", "av01.0.01M.08", "av01.2.13H.12.1.110.01.01.01.1"] {
        let config = av1::Av1Config::from_codec_string(codec).unwrap();
        assert_eq!(config.codec_string(), codec);
        assert_hang_video(codec);
    }
    assert_eq!(av1::Av1Config::from_codec_string("av01.0.04M.10.0.112.09.16.09.0").unwrap(), hdr);
    for bad in ["av01", "av01.0.04", "av01.0.04X.08", "av01.0.é.08", "av01.0.04M.08.0.1é.01.01.01.0"] {
        assert!(av1::Av1Config::from_codec_string(bad).is_err(), "{bad}");
    }
}

#[test]
fn vp9_and_vp8() {
    let vpcc = vp9::parse_vpcc(&unhex(VP9_VPCC)).unwrap();
    let codec = vp9::Vp9Config::from_vpcc(&vpcc).codec_string();
    assert_eq!(codec, "vp09.00.21.08.01.02.02.02.00");
    assert_hang_video(&codec);
    let hdr = vp9::Vp9Config::from_vpcc(&vp9::parse_vpcc(&unhex(VP9_HDR_VPCC)).unwrap()).codec_string();
    assert_eq!(hdr, "vp09.02.21.10.01.09.16.09.00");
    assert_hang_video(&hdr);
    let short = vp9::Vp9Config { level: 41, ..Default::default() };
    assert_eq!(short.codec_string(), "vp09.00.41.08");
    assert_hang_video("vp09.00.41.08");
    for codec in ["vp09.00.41.08", "vp09.02.21.10.01.09.16.09.00"] {
        assert_eq!(vp9::Vp9Config::from_codec_string(codec).unwrap().codec_string(), codec);
    }
    assert!(vp9::Vp9Config::from_codec_string("vp09.00.41").is_err());
    assert_hang_video(vp9::VP8_CODEC);
}

#[test]
fn aac_configs_from_the_encoder() {
    let fixture = aac::AudioSpecificConfig::parse(&unhex(FIXTURE_ASC)).unwrap();
    // The fixture's config names one channel; its sample entry (and catalog) say two.
    assert_eq!((fixture.object_type, fixture.sample_rate, fixture.channel_config), (2, 48000, 1));
    assert_eq!(fixture.codec_string(), "mp4a.40.2");
    assert_hang_audio(&fixture.codec_string());
    for (config, rate, channels) in [(AAC_STEREO_48K, 48000, 2), (AAC_MONO_44K, 44100, 1), (AAC_51_96K, 96000, 6)] {
        let parsed = aac::AudioSpecificConfig::parse(&unhex(config)).unwrap();
        assert_eq!((parsed.object_type, parsed.output_sample_rate(), parsed.channel_count()), (2, rate, channels));
        // What we write is the encoder's first two bytes (it adds backward-compatible SBR signalling).
        assert_eq!(hex::encode(parsed.to_bytes().unwrap()), config[..4]);
    }
}

#[test]
fn aac_escape_object_type_explicit_rate_and_sbr() {
    let mut w = bits::BitWriter::default();
    w.bits(5, 31);
    w.bits(6, 42 - 32);
    w.bits(4, 3);
    w.bits(4, 2);
    let usac = aac::AudioSpecificConfig::parse(&w.finish()).unwrap();
    assert_eq!((usac.object_type, usac.sample_rate, usac.channel_config), (42, 48000, 2));
    assert_eq!(usac.codec_string(), "mp4a.40.42");
    assert_hang_audio("mp4a.40.42");

    let explicit =
        aac::AudioSpecificConfig { object_type: 2, sample_rate: 50000, channel_config: 2, extension_sample_rate: None };
    let bytes = explicit.to_bytes().unwrap();
    assert_eq!(aac::AudioSpecificConfig::parse(&bytes).unwrap(), explicit);

    // HE-AAC with explicit hierarchical signalling: 24 kHz core, 48 kHz output.
    let mut w = bits::BitWriter::default();
    for (count, value) in [(5, 5), (4, 6), (4, 2), (4, 3), (5, 2)] {
        w.bits(count, value);
    }
    let he = aac::AudioSpecificConfig::parse(&w.finish()).unwrap();
    assert_eq!((he.codec_string().as_str(), he.sample_rate, he.output_sample_rate()), ("mp4a.40.5", 24000, 48000));
    assert_hang_audio("mp4a.40.5");
    assert!(aac::AudioSpecificConfig::parse(&[0x16, 0x80]).is_err(), "reserved frequency index 13");
    assert!(aac::AudioSpecificConfig::parse(&[0x11]).is_err());
}

#[test]
fn opus_head_and_dops() {
    let from_ogg = opus::parse_opus_head(&unhex(OPUS_HEAD)).unwrap();
    assert_eq!((from_ogg.output_channel_count, from_ogg.pre_skip, from_ogg.input_sample_rate), (2, 312, 48000));
    let from_mp4: mp4_atom::Dops = decode_record(&unhex(OPUS_DOPS), "dOps").unwrap();
    assert_eq!(from_mp4, from_ogg);
    assert_eq!(hex::encode(opus::opus_head(&from_mp4).unwrap()), OPUS_HEAD);

    let surround: mp4_atom::Dops = decode_record(&unhex(OPUS_51_DOPS), "dOps").unwrap();
    let head = opus::opus_head(&surround).unwrap();
    assert_eq!(opus::parse_opus_head(&head).unwrap(), surround);
    assert_hang_audio(opus::OPUS_CODEC);
    assert!(opus::parse_opus_head(&head[..20]).is_err());
}

#[test]
fn fixture_init_segments_give_the_fixture_catalog() {
    let video = first_sample_entry(FIXTURE_VIDEO_INIT);
    let CodecInfo::Video(info) = from_sample_entry(&video).unwrap() else { panic!("not video") };
    assert_eq!(info.codec, "avc1.64001e");
    assert_eq!(hex::encode(info.description.as_ref().unwrap()), FIXTURE_AVCC);
    assert_eq!((info.coded_width, info.coded_height), (640, 360));
    assert_hang_video(&info.codec);

    let audio = first_sample_entry(FIXTURE_AUDIO_INIT);
    let CodecInfo::Audio(info) = from_sample_entry(&audio).unwrap() else { panic!("not audio") };
    assert_eq!(info.codec, "mp4a.40.2");
    assert_eq!(hex::encode(info.description.as_ref().unwrap()), FIXTURE_ASC);
    assert_eq!((info.sample_rate, info.channels), (48000, 2));
}

/// sample_entry then from_sample_entry gives back the same catalog fields, and the entry encodes.
fn assert_round_trip(info: CodecInfo) {
    let entry = sample_entry(&info).unwrap_or_else(|e| panic!("{info:?}: {e}"));
    let mut encoded = Vec::new();
    entry.encode(&mut encoded).unwrap();
    let decoded = mp4_atom::Codec::decode(&mut encoded.as_slice()).unwrap();
    assert_eq!(from_sample_entry(&decoded).unwrap(), info);
}

#[test]
fn sample_entries_round_trip() {
    let video = |codec: &str, description: Option<&str>| {
        CodecInfo::Video(VideoInfo {
            codec: codec.into(),
            description: description.map(|d| unhex(d).into()),
            coded_width: 640,
            coded_height: 360,
        })
    };
    let audio = |codec: &str, description: Option<&str>, channels| {
        CodecInfo::Audio(AudioInfo {
            codec: codec.into(),
            description: description.map(|d| unhex(d).into()),
            sample_rate: 48000,
            channels,
        })
    };
    for info in [
        video("avc1.64001e", Some(FIXTURE_AVCC)),
        video("avc3.64001e", Some(FIXTURE_AVCC)),
        video("hvc1.1.6.L63.90", Some(H265_HVCC)),
        video("hev1.1.6.L63.90", Some(H265_HVCC)),
        video("av01.0.01M.08", Some(AV1_AV1C)),
        video("vp09.00.21.08.01.02.02.02.00", None),
        video("vp09.00.41.08", None),
        video("vp8", None),
        audio("mp4a.40.2", Some(AAC_STEREO_48K), 2),
        audio("opus", Some(OPUS_HEAD), 2),
    ] {
        assert_round_trip(info);
    }
    // Without a description: AV1 from its string, AAC and Opus from rate and channels.
    let entry = sample_entry(&video("av01.0.04M.10.0.112.09.16.09.0", None)).unwrap();
    let CodecInfo::Video(info) = from_sample_entry(&entry).unwrap() else { panic!() };
    assert_eq!(info.codec, "av01.0.04M.10.0.112.09.16.09.0", "colour kept in a colr box");
    let entry = sample_entry(&audio("mp4a.40.2", None, 2)).unwrap();
    let CodecInfo::Audio(info) = from_sample_entry(&entry).unwrap() else { panic!() };
    assert_eq!((info.description.unwrap().as_ref(), info.channels), (&[0x11, 0x90][..], 2));
    assert!(sample_entry(&audio("opus", None, 2)).is_ok());
    assert!(sample_entry(&audio("opus", None, 6)).is_err());
    assert!(sample_entry(&video("avc1.64001e", None)).is_err());
    assert!(sample_entry(&video("theora", None)).is_err());
    assert!(
        sample_entry(&CodecInfo::Video(VideoInfo {
            coded_width: 70000,
            ..match video("vp8", None) {
                CodecInfo::Video(v) => v,
                _ => unreachable!(),
            }
        }))
        .is_err()
    );
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    for input in [&[][..], &[0x67], &[0x67, 0x64, 0, 0x1e], &[0x42, 0x01], &[0xff; 40], &[0; 40]] {
        let _ = h264::Sps::parse(input);
        let _ = h265::Sps::parse(input);
        let _ = h264::parse_avcc(input);
        let _ = h265::parse_hvcc(input);
        let _ = av1::find_sequence_header(input);
        let _ = av1::parse_av1c(input);
        let _ = vp9::parse_vpcc(input);
        let _ = aac::AudioSpecificConfig::parse(input);
        let _ = opus::parse_opus_head(input);
    }
    let sps = unhex(H265_SPS);
    // Only the prefix up to the bit depths is read: a cut inside it is an error.
    for cut in 0..sps.len() {
        let parsed = h265::Sps::parse(&sps[..cut]);
        assert!(cut >= 16 || parsed.is_err(), "SPS cut at {cut}");
    }
}
