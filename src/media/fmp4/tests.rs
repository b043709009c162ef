//! Against a real ffmpeg fragmented MP4 (tests/fixtures/h264-opus-cmaf.mp4, see the README there):
//! 2 s of 160x120 H.264 at 30 fps with a keyframe every 30 frames, and 48 kHz mono Opus, in two
//! fragments of two trafs each.

use bytes::Bytes;
use mp4_atom::{Codec, Decode, Encode, Mfhd, Moof, Moov, Tfdt, Tfhd, Traf, Trun, TrunSamples};

use super::*;

const FIXTURE: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h264-opus-cmaf.mp4"));
const VIDEO: u32 = 1;
const AUDIO: u32 = 2;

/// Every event of `input`, pushed `chunk` bytes at a time.
fn read_chunked(input: &[u8], chunk: usize) -> Result<Vec<Fmp4Event>, Fmp4Error> {
    let mut reader = Fmp4Reader::new();
    let mut events = Vec::new();
    for piece in input.chunks(chunk) {
        events.extend(reader.push(piece)?);
    }
    reader.finish()?;
    Ok(events)
}

fn read_all(input: &[u8]) -> (InitSegment, Vec<Fragment>) {
    let mut init = None;
    let mut fragments = Vec::new();
    for event in read_chunked(input, usize::MAX).unwrap() {
        match event {
            Fmp4Event::Init(i) => init = Some(*i),
            Fmp4Event::Fragment(f) => fragments.push(f),
        }
    }
    (init.expect("an init segment"), fragments)
}

fn samples_of(fragments: &[Fragment], track_id: u32) -> Vec<Sample> {
    fragments.iter().flat_map(|f| f.track_samples(track_id).cloned()).collect()
}

#[test]
fn reads_the_init_segment_of_the_fixture() {
    let (init, _) = read_all(FIXTURE);
    assert!(FIXTURE.starts_with(&init.bytes[..]), "the init segment is the stream's first bytes");
    assert_eq!(init.bytes.len(), 28 + 1195, "ftyp + moov");
    assert_eq!(init.tracks.len(), 2);

    let video = init.track(VIDEO).unwrap();
    assert_eq!(video.kind, TrackKind::Video);
    assert_eq!(video.timescale, 15360);
    assert!(matches!(video.codec, Codec::Avc1(_)), "{:?}", video.codec);
    assert_eq!(video.video, Some(VideoSize { width: 160, height: 120 }));
    assert_eq!(video.audio, None);

    let audio = init.track(AUDIO).unwrap();
    assert_eq!(audio.kind, TrackKind::Audio);
    assert_eq!(audio.timescale, 48000);
    assert!(matches!(audio.codec, Codec::Opus(_)), "{:?}", audio.codec);
    assert_eq!(audio.audio, Some(AudioFormat { sample_rate: 48000, channels: 1 }));
}

#[test]
fn reads_the_samples_of_the_fixture() {
    let (_, fragments) = read_all(FIXTURE);
    assert_eq!(fragments.len(), 2, "frag_keyframe: one fragment per group of pictures");
    assert_eq!(fragments.iter().map(|f| f.bytes.len()).sum::<usize>() + 28 + 1195 + 148, FIXTURE.len());
    for fragment in &fragments {
        assert_eq!(fragment.track_ids().collect::<Vec<_>>(), [VIDEO, AUDIO]);
        assert!(fragment.track_samples(VIDEO).next().unwrap().keyframe, "a fragment starts with a keyframe");
    }

    let video = samples_of(&fragments, VIDEO);
    assert_eq!(video.len(), 60);
    let keyframes: Vec<usize> = video.iter().enumerate().filter(|(_, s)| s.keyframe).map(|(i, _)| i).collect();
    assert_eq!(keyframes, [0, 30]);
    for (index, sample) in video.iter().enumerate() {
        assert_eq!(sample.decode_time, 512 * index as u64, "frame {index}");
        assert_eq!(sample.duration, 512);
        // A trun of version 1: signed composition offsets, one B-frame at the end.
        let offset = match index {
            58 => 512,
            59 => -512,
            _ => 0,
        };
        assert_eq!(sample.composition_offset(), offset, "frame {index}");
        assert_eq!(sample.decode_time_us, ticks_to_micros(sample.decode_time, 15360).unwrap());
    }
    assert_eq!((video[58].presentation_time, video[58].presentation_time_us), (30208, 1_966_667));
    assert_eq!(video[30].decode_time_us, 1_000_000);
    assert_eq!(video[0].data.len(), 2645, "the first frame's size as ffprobe reports it");
    assert_eq!(video[1].data.len(), 133);

    let audio = samples_of(&fragments, AUDIO);
    assert_eq!(audio.len(), 101);
    for (index, sample) in audio.iter().enumerate() {
        assert_eq!(sample.decode_time, 960 * index as u64, "packet {index}");
        assert_eq!(sample.presentation_time, sample.decode_time as i64);
        // Opus trims its last packet to the end of the audio.
        assert_eq!(sample.duration, if index == 100 { 312 } else { 960 });
        assert!(sample.keyframe);
    }
    assert_eq!(audio[50].presentation_time_us, 1_000_000);
    assert_eq!(audio[0].data.len(), 115);
}

#[test]
fn sample_data_is_a_slice_of_the_fragment() {
    let (_, fragments) = read_all(FIXTURE);
    let fragment = &fragments[0];
    let range = fragment.bytes.as_ptr_range();
    for sample in &fragment.samples {
        assert!(range.contains(&sample.data.as_ptr()), "sample data was copied");
    }
}

#[test]
fn tiny_chunks_give_the_same_result() {
    let whole = read_chunked(FIXTURE, usize::MAX).unwrap();
    for chunk in [1, 7, 4096] {
        assert_eq!(read_chunked(FIXTURE, chunk).unwrap(), whole, "chunks of {chunk}");
    }
}

#[test]
fn a_box_over_the_limit_is_an_error_before_it_is_buffered() {
    let limits = ReaderLimits { max_box_size: 4096, ..Default::default() };
    let mut reader = Fmp4Reader::with_limits(limits);
    // The init segment fits; the first mdat (9866 bytes) does not.
    let error = reader.push(FIXTURE).unwrap_err();
    assert!(matches!(error, Fmp4Error::BoxTooLarge { ref kind, max: 4096, .. } if kind == "mdat"), "{error}");

    // A header declaring 1 TiB is refused from its first 16 bytes.
    let mut reader = Fmp4Reader::new();
    let mut header = 1u32.to_be_bytes().to_vec();
    header.extend_from_slice(b"free");
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert!(matches!(reader.push(&header), Err(Fmp4Error::BoxTooLarge { .. })));
    assert_eq!(DEFAULT_MAX_BOX_SIZE, 64 << 20);
}

#[test]
fn too_many_samples_is_an_error() {
    let (init, _) = read_all(FIXTURE);
    let limits = ReaderLimits { max_samples_per_fragment: 100, ..Default::default() };
    let mut reader = Fmp4Reader::with_limits(limits);
    assert_eq!(reader.push(&init.bytes).unwrap().len(), 1);
    // 30 video + 50 audio samples per fragment fit; 4 billion inherited ones do not.
    let moof = Moof {
        mfhd: Mfhd { sequence_number: 1 },
        traf: vec![Traf {
            tfhd: Tfhd { track_id: VIDEO, default_base_is_moof: true, ..Default::default() },
            trun: vec![Trun {
                data_offset: None,
                samples: TrunSamples::Inherited { count: u32::MAX, first_flags: None },
            }],
            ..Default::default()
        }],
    };
    let error = reader.push(&fragment_bytes(&moof, b"")).unwrap_err();
    assert!(matches!(error, Fmp4Error::TooManySamples { max: 100 }), "{error}");
}

fn fragment_bytes(moof: &Moof, mdat: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    moof.encode(&mut out).unwrap();
    mp4_atom::Mdat { data: mdat.to_vec() }.encode(&mut out).unwrap();
    out
}

/// Defaults come from trex, then tfhd, then the trun's first-sample flags, each overriding the last.
#[test]
fn sample_defaults_are_inherited_from_trex_tfhd_and_first_sample_flags() {
    let (init, _) = read_all(FIXTURE);
    let mut moov = init.moov.clone();
    for trex in &mut moov.mvex.as_mut().unwrap().trex {
        trex.default_sample_flags = 0x0101_0000; // non-sync
        trex.default_sample_duration = 512;
        trex.default_sample_size = 3;
    }
    let mut input = Vec::new();
    moov.encode(&mut input).unwrap();
    let run = |first_flags| Trun { data_offset: None, samples: TrunSamples::Inherited { count: 2, first_flags } };
    let moof = Moof {
        mfhd: Mfhd { sequence_number: 1 },
        traf: vec![
            // trex defaults, the first sample flagged sync by the run.
            Traf {
                tfhd: Tfhd { track_id: VIDEO, default_base_is_moof: true, ..Default::default() },
                tfdt: Some(Tfdt { base_media_decode_time: 1024 }),
                trun: vec![run(Some(0x0200_0000))],
                ..Default::default()
            },
            // tfhd defaults over trex; its data follows the previous traf's (no base flag).
            Traf {
                tfhd: Tfhd {
                    track_id: AUDIO,
                    default_sample_duration: Some(960),
                    default_sample_size: Some(2),
                    default_sample_flags: Some(0),
                    ..Default::default()
                },
                tfdt: Some(Tfdt { base_media_decode_time: 0 }),
                trun: vec![run(None)],
                ..Default::default()
            },
        ],
    };
    // The first run starts right after the mdat header; setting its offset adds 4 bytes to the moof.
    let mut unset = Vec::new();
    moof.encode(&mut unset).unwrap();
    let mut moof = moof;
    moof.traf[0].trun[0].data_offset = Some(unset.len() as i32 + 4 + 8);
    input.extend(fragment_bytes(&moof, b"aaabbbccdd"));
    let mut reader = Fmp4Reader::new();
    let events = reader.push(&input).unwrap();
    reader.finish().unwrap();
    let Some(Fmp4Event::Fragment(fragment)) = events.last() else { panic!("no fragment: {events:?}") };
    let summary: Vec<_> =
        fragment.samples.iter().map(|s| (s.track_id, s.decode_time, s.duration, s.keyframe, &s.data[..])).collect();
    assert_eq!(
        summary,
        [
            (VIDEO, 1024, 512, true, &b"aaa"[..]),
            (VIDEO, 1536, 512, false, b"bbb"),
            (AUDIO, 0, 960, true, b"cc"),
            (AUDIO, 960, 960, true, b"dd"),
        ]
    );
}

#[test]
fn malformed_streams_are_errors() {
    let (init, fragments) = read_all(FIXTURE);
    let fragment = &fragments[0].bytes;

    let error = read_chunked(fragment, 100).unwrap_err();
    assert!(matches!(error, Fmp4Error::FragmentBeforeInit), "{error}");

    let mut mdat = Vec::new();
    mp4_atom::Mdat { data: vec![1, 2, 3] }.encode(&mut mdat).unwrap();
    assert!(matches!(read_chunked(&mdat, 100), Err(Fmp4Error::NotFragmented)));

    let error = read_chunked(&FIXTURE[..FIXTURE.len() - 1], 100).unwrap_err();
    assert!(matches!(error, Fmp4Error::Truncated(147)), "{error}");

    // moof followed by a free box.
    let moof_size = fragments[0].moof_size;
    let mut input = init.bytes.to_vec();
    input.extend_from_slice(&fragment[..moof_size]);
    input.extend_from_slice(b"\0\0\0\x08free");
    assert!(matches!(read_chunked(&input, 100), Err(Fmp4Error::MoofWithoutMdat(kind)) if kind == "free"));

    // A data offset past the mdat.
    let mut moof = fragments[0].moof.clone();
    moof.traf[1].trun[0].data_offset = Some(1 << 20);
    let mut input = init.bytes.to_vec();
    moof.encode(&mut input).unwrap();
    input.extend_from_slice(&fragment[moof_size..]);
    let error = read_chunked(&input, 100).unwrap_err();
    assert!(matches!(error, Fmp4Error::SampleOutsideMdat { track_id: AUDIO, .. }), "{error}");

    // A box of size 0 (to the end of the file).
    assert!(matches!(read_chunked(b"\0\0\0\0free", 100), Err(Fmp4Error::UnsizedBox(_))));
    // A traf of a track the moov does not declare.
    let mut moof = fragments[0].moof.clone();
    moof.traf[0].tfhd.track_id = 9;
    let mut input = init.bytes.to_vec();
    moof.encode(&mut input).unwrap();
    input.extend_from_slice(&fragment[moof_size..]);
    assert!(matches!(read_chunked(&input, 100), Err(Fmp4Error::UnknownTrack(9))));
    // Garbage inside the moov.
    // An mvhd that claims more bytes than its moov.
    let mut input = init.bytes.to_vec();
    input[28 + 8..28 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(read_chunked(&input, 100), Err(Fmp4Error::Atom { context: "moov", .. })));
}

/// What a reader reports of each sample, its duration aside.
fn summary(samples: &[Sample]) -> Vec<(u32, u64, i64, u64, i64, bool, Bytes)> {
    samples
        .iter()
        .map(|s| {
            (
                s.track_id,
                s.decode_time,
                s.presentation_time,
                s.decode_time_us,
                s.presentation_time_us,
                s.keyframe,
                s.data.clone(),
            )
        })
        .collect()
}

/// `fragment` with its moof edited by `edit` and its data offsets moved by the change in the
/// moof's size, so they still point at the same mdat bytes.
fn reencode(fragment: &Fragment, edit: impl FnOnce(&mut Moof)) -> Vec<u8> {
    let mut moof = fragment.moof.clone();
    edit(&mut moof);
    let mut edited = Vec::new();
    moof.encode(&mut edited).unwrap();
    let growth = edited.len() as i32 - fragment.moof_size as i32;
    for trun in moof.traf.iter_mut().flat_map(|t| &mut t.trun) {
        trun.data_offset = trun.data_offset.map(|offset| offset + growth);
    }
    let mut out = Vec::new();
    moof.encode(&mut out).unwrap();
    out.extend_from_slice(&fragment.bytes[fragment.moof_size..]);
    out
}

/// A traf without tfdt continues where its track's previous fragment ended; an absolute base data
/// offset counts from the first byte of the stream.
#[test]
fn missing_tfdt_and_absolute_base_offsets_are_honoured() {
    let (init, fragments) = read_all(FIXTURE);
    let mut input = init.bytes.to_vec();
    input.extend_from_slice(&fragments[0].bytes);
    let second = input.len() as u64;
    input.extend(reencode(&fragments[1], |moof| {
        for traf in &mut moof.traf {
            traf.tfdt = None;
            traf.tfhd.base_data_offset = Some(second);
            traf.tfhd.default_base_is_moof = false;
        }
    }));
    let (_, again) = read_all(&input);
    for track_id in [VIDEO, AUDIO] {
        assert_eq!(summary(&samples_of(&again, track_id)), summary(&samples_of(&fragments, track_id)));
    }
}

#[test]
fn split_fragments_and_init_segments_hold_one_track_each() {
    let (init, fragments) = read_all(FIXTURE);
    for track_id in [VIDEO, AUDIO] {
        let mut stream = init.track_init(track_id).unwrap().to_vec();
        for fragment in &fragments {
            let parts = fragment.split_by_track().unwrap();
            assert_eq!(parts.iter().map(|p| p.track_id).collect::<Vec<_>>(), [VIDEO, AUDIO]);
            let part = parts.iter().find(|p| p.track_id == track_id).unwrap();
            stream.extend_from_slice(&part.bytes);
        }
        let (track_init, track_fragments) = read_all(&stream);
        assert_eq!(track_init.tracks.len(), 1);
        assert_eq!(track_init.tracks[0], *init.track(track_id).unwrap());
        for fragment in &track_fragments {
            assert_eq!(fragment.track_ids().collect::<Vec<_>>(), [track_id]);
            // Already one track: passed through as is.
            assert_eq!(fragment.split_by_track().unwrap()[0].bytes, fragment.bytes);
        }
        assert_eq!(
            summary(&samples_of(&track_fragments, track_id)),
            summary(&samples_of(&fragments, track_id)),
            "track {track_id}"
        );
        assert_eq!(track_init.track_init(track_id).unwrap(), track_init.bytes);
        let expected = if track_id == VIDEO { "h264,160,120,2.000000,60" } else { "opus,2.006500,101" };
        ffprobe_check(&format!("split-{track_id}"), &stream, &[expected]);
    }
    assert!(matches!(init.track_init(7), Err(Fmp4Error::UnknownTrack(7))));
}

/// Writes every sample read from the fixture, in stream order, one fragment per sample.
fn rewrite(init: &InitSegment, fragments: &[Fragment]) -> Vec<u8> {
    let configs = init.tracks.iter().map(TrackConfig::from_track).collect();
    let mut writer = Fmp4Writer::new(configs).unwrap();
    let mut out = writer.init_segment().unwrap().to_vec();
    for sample in fragments.iter().flat_map(|f| &f.samples) {
        let timed = TimedSample {
            track_id: sample.track_id,
            decode_time: sample.decode_time,
            composition_offset: sample.composition_offset() as i32,
            keyframe: sample.keyframe,
            data: sample.data.clone(),
        };
        if let Some(fragment) = writer.push(timed).unwrap() {
            out.extend_from_slice(&fragment);
        }
    }
    for fragment in writer.finish().unwrap() {
        out.extend_from_slice(&fragment);
    }
    out
}

#[test]
fn reader_writer_reader_round_trip_gives_the_same_samples() {
    let (init, fragments) = read_all(FIXTURE);
    let written = rewrite(&init, &fragments);
    let (written_init, written_fragments) = read_all(&written);
    assert_eq!(written_fragments.len(), 60 + 101, "one fragment per sample");
    for track in &init.tracks {
        let again = written_init.track(track.track_id).unwrap();
        assert_eq!((again.kind, again.timescale, &again.codec), (track.kind, track.timescale, &track.codec));
        assert_eq!((again.video, again.audio), (track.video, track.audio));
        let before = samples_of(&fragments, track.track_id);
        let after = samples_of(&written_fragments, track.track_id);
        assert_eq!(summary(&after), summary(&before), "track {}", track.track_id);
        // Durations come from the gaps between samples; the last sample reuses the one before.
        let durations = |samples: &[Sample]| samples.iter().map(|s| s.duration).collect::<Vec<_>>();
        let (last, others) = durations(&after).split_last().map(|(l, o)| (*l, o.to_vec())).unwrap();
        assert_eq!(others, durations(&before)[..before.len() - 1]);
        assert_eq!(last, before[before.len() - 2].duration);
    }
    // Opus's last packet is 312 ticks long in the fixture, 960 (its predecessor's) once rewritten.
    ffprobe_check("rewrite", &written, &["h264,160,120,2.000000,60", "opus,2.020000,101"]);
}

#[test]
fn writer_groups_samples_and_refuses_what_it_cannot_write() {
    let (init, fragments) = read_all(FIXTURE);
    let video = init.track(VIDEO).unwrap();
    let mut writer = Fmp4Writer::new(vec![TrackConfig::from_track(video)]).unwrap();
    let group: Vec<FragmentSample> = samples_of(&fragments, VIDEO)[..30]
        .iter()
        .map(|s| FragmentSample {
            duration: s.duration,
            composition_offset: s.composition_offset() as i32,
            keyframe: s.keyframe,
            data: s.data.clone(),
        })
        .collect();
    let mut out = writer.init_segment().unwrap().to_vec();
    out.extend_from_slice(&writer.fragment(VIDEO, 0, &group).unwrap());
    out.extend_from_slice(&writer.fragment(VIDEO, 30 * 512, &group).unwrap());
    let (_, written) = read_all(&out);
    assert_eq!(written.len(), 2);
    assert_eq!(written[1].moof.mfhd.sequence_number, 2);
    let samples = samples_of(&written, VIDEO);
    assert_eq!(samples.len(), 60);
    assert_eq!(samples[59].decode_time, 59 * 512);
    assert_eq!(samples.iter().filter(|s| s.keyframe).count(), 2);

    let sample = |decode_time| TimedSample {
        track_id: VIDEO,
        decode_time,
        composition_offset: 0,
        keyframe: true,
        data: Bytes::from_static(b"x"),
    };
    assert!(writer.push(sample(1000)).unwrap().is_none());
    assert!(matches!(writer.push(sample(999)), Err(Fmp4Error::Writer(_))));
    assert!(matches!(writer.push(TimedSample { track_id: 5, ..sample(0) }), Err(Fmp4Error::UnknownTrack(5))));
    assert_eq!(writer.finish().unwrap().len(), 1, "the pending sample survives the refused one");
    // A track that ends before the others writes its last sample with the duration before it, once.
    assert!(writer.push(sample(2000)).unwrap().is_none());
    assert!(writer.push(sample(2100)).unwrap().is_some());
    let last = writer.finish_track(VIDEO).unwrap().expect("the pending sample");
    let (_, written) = read_all(&[writer.init_segment().unwrap().to_vec(), last.to_vec()].concat());
    let samples = samples_of(&written, VIDEO);
    assert_eq!((samples.len(), samples[0].decode_time, samples[0].duration), (1, 2100, 100));
    assert!(writer.finish_track(VIDEO).unwrap().is_none());
    assert!(matches!(writer.finish_track(5), Err(Fmp4Error::UnknownTrack(5))));

    assert!(Fmp4Writer::new(vec![]).is_err());
    let mut zero = TrackConfig::from_track(video);
    zero.timescale = 0;
    assert!(Fmp4Writer::new(vec![zero]).is_err());
    assert!(Fmp4Writer::new(vec![TrackConfig::from_track(video), TrackConfig::from_track(video)]).is_err());
}

/// The decoded moov of a written init segment: what a player sees.
#[test]
fn written_init_segment_declares_fragments() {
    let (init, _) = read_all(FIXTURE);
    let configs = init.tracks.iter().map(TrackConfig::from_track).collect();
    let bytes = Fmp4Writer::new(configs).unwrap().init_segment().unwrap();
    let mut rest = &bytes[..];
    let ftyp = mp4_atom::Ftyp::decode(&mut rest).unwrap();
    assert_eq!(ftyp, default_ftyp());
    let moov = Moov::decode(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(moov.mvex.unwrap().trex.len(), 2);
    assert_eq!(moov.trak[0].tkhd.width.integer(), 160);
    assert_eq!(moov.mvhd.next_track_id, 3);
}

/// Runs ffprobe over `stream` (written to a temporary file) and compares its line per stream
/// (codec, width and height for video, duration in seconds, packet count).
fn ffprobe_check(name: &str, stream: &[u8], expected: &[&str]) {
    let entries = ["-count_packets", "-show_entries", "stream=codec_name,width,height,duration,nb_read_packets"];
    let Some(text) = ffprobe(name, stream, &entries) else { return };
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{name}");
}

/// What ffprobe prints (`-of csv=p=0` and `args`) for `stream`, written to a temporary file; it
/// must read it without a word on stderr. `None` when ffprobe is missing, except in CI, where it
/// must be there.
pub(crate) fn ffprobe(name: &str, stream: &[u8], args: &[&str]) -> Option<String> {
    if std::process::Command::new("ffprobe").arg("-version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "ffprobe is required in CI");
        eprintln!("ffprobe not found: skipping the check of {name}");
        return None;
    }
    let path = std::env::temp_dir().join(format!("moqt-fmp4-{}-{name}.mp4", std::process::id()));
    std::fs::write(&path, stream).unwrap();
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "csv=p=0"])
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{name}: {stderr}");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// ffmpeg writes 2 channels in every AAC sample entry; the AudioSpecificConfig has the real count.
#[test]
fn aac_channels_come_from_its_decoder_config() {
    use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor};
    use mp4_atom::{Audio, Esds, Mp4a};
    let mp4a = Mp4a {
        audio: Audio { data_reference_index: 1, channel_count: 2, sample_size: 16, sample_rate: 44100.into() },
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: 2,
                dec_config: DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 5,
                    dec_specific: Some(DecoderSpecific { profile: 2, freq_index: 4, chan_conf: 1, raw: Vec::new() }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    };
    let config = TrackConfig { track_id: 1, timescale: 44100, codec: mp4a.into(), video: None, audio: None };
    let (init, fragments) = read_all(&Fmp4Writer::new(vec![config]).unwrap().init_segment().unwrap());
    assert!(fragments.is_empty());
    assert_eq!(init.tracks[0].kind, TrackKind::Audio);
    assert_eq!(init.tracks[0].audio, Some(AudioFormat { sample_rate: 44100, channels: 1 }));
}
