//! The media layer end to end: a hang broadcast published with `moqt::media` read back through a
//! session in every version (and, in interop_relay, through moq-relay), and moq-dev's `hang`
//! crate as the oracle for the catalog and the legacy container, both ways.

use crate::common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use moqt::media::{
    AudioConfig, CatalogReader, CatalogSettings, Container, MediaBroadcast, MediaError, MediaEvent, MediaTrackReader,
    MediaTrackWriter, ReadOptions, VideoConfig,
};
use moqt::model::{OriginProducer, Route};
use moqt::wire::Version;
use tokio::time::timeout;

/// The avcC that moq-dev's `moq` command published for a 640x360 libx264 clip (the fixture).
const AVCC: &str = "0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800";

pub fn video_config() -> VideoConfig {
    VideoConfig {
        codec: "avc1.64001e".into(),
        description: Some(hex_bytes(AVCC)),
        coded_width: Some(640),
        coded_height: Some(360),
        framerate: Some(30.0),
        bitrate: Some(1_000_000),
        ..Default::default()
    }
}

pub fn audio_config() -> AudioConfig {
    AudioConfig { codec: "opus".into(), sample_rate: 48000, number_of_channels: 2, ..Default::default() }
}

fn hex_bytes(text: &str) -> Bytes {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect::<Vec<u8>>().into()
}

/// Frame `f` of a test stream: its time, keyframe flag and bytes.
type Frames = fn(u64) -> (u64, bool, Bytes);

/// Video frame `f` of the stream: 30 fps, a keyframe every 10 frames.
fn video_frame(f: u64) -> (u64, bool, Bytes) {
    (f * 33_333, f % 10 == 0, Bytes::from(format!("video {f}")))
}

/// Audio frame `f`: 20 ms packets, every one a keyframe of its own group.
fn audio_frame(f: u64) -> (u64, bool, Bytes) {
    (f * 20_000, true, Bytes::from(format!("audio {f}")))
}

/// Publishes a video+audio hang broadcast at `room/media` in `publish`, reads it from `remote`
/// (filled by a session or a relay), and checks the catalog, every frame's time, keyframe flag
/// and bytes, a catalog update and the clean end. `label` names the case in failures.
pub async fn media_round_trip(publish: &OriginProducer, remote: &OriginProducer, label: &str) {
    let mut media = MediaBroadcast::new().unwrap();
    let mut video = media.add_video("video", video_config()).unwrap();
    let mut audio = media.add_audio("audio", audio_config()).unwrap();
    let _published = publish.publish(path("room/media"), media.consume(), Route::local()).unwrap();

    let broadcast = announced(remote, &path("room/media")).await;
    let mut catalogs = timeout(WAIT, CatalogReader::subscribe(&broadcast, CatalogSettings::default()))
        .await
        .unwrap_or_else(|_| panic!("{label}: catalog subscription in time"))
        .unwrap();
    let catalog = timeout(WAIT, catalogs.next()).await.unwrap_or_else(|_| panic!("{label}: catalog in time"));
    let catalog = catalog.unwrap().unwrap();
    assert_eq!(&catalog, media.catalog(), "{label}: the catalog as published");

    tracing::info!(label, "catalog read");
    // From the oldest group, not the live edge: on lite-06 a live-edge SUBSCRIBE travels with Max
    // Age 0 until SUBSCRIBE_UPDATE restores the real one (spec 3.4), and a relay that sees group 1
    // start before it applied that update expires group 0 mid-way (moq-relay resets it, a gap).
    // Live-edge joins are tested on their own (interop_relay's cached backlog, delivery_order.c);
    // this test is about the media round trip, so it must not depend on that race.
    let options = ReadOptions { start: moqt::model::GroupStart::Floor(0), max_latency: Duration::from_secs(5) };
    let mut video_in = MediaTrackReader::subscribe(&broadcast, &catalog, "video", options).await.unwrap();
    let mut audio_in = MediaTrackReader::subscribe(&broadcast, &catalog, "audio", options).await.unwrap();
    timeout(WAIT, video.used()).await.unwrap_or_else(|_| panic!("{label}: video subscribed"));
    timeout(WAIT, audio.used()).await.unwrap_or_else(|_| panic!("{label}: audio subscribed"));

    // A delta frame cannot open the track.
    assert!(matches!(video.write(0, false, Bytes::from_static(b"x")), Err(MediaError::KeyframeRequired)));
    // The first frame of each track is read before the rest is written, so each subscription is
    // known to be live before the burst.
    let tracks: [(&mut MediaTrackWriter, &mut MediaTrackReader, Frames, u64); 2] =
        [(&mut video, &mut video_in, video_frame, 30), (&mut audio, &mut audio_in, audio_frame, 10)];
    for (writer, reader, frames, count) in tracks {
        for f in 0..count {
            let (pts, key, payload) = frames(f);
            let group = writer.write(pts, key, payload).unwrap();
            if f == 0 {
                assert_eq!(group, 0, "{label}");
                expect_frame(reader, frames, 0, label).await;
            }
        }
        for f in 1..count {
            expect_frame(reader, frames, f, label).await;
        }
    }
    assert_eq!(
        video.write(30 * 33_333, true, Bytes::from_static(b"last")).unwrap(),
        3,
        "{label}: a group per keyframe"
    );
    expect_frame(&mut video_in, |_| (30 * 33_333, true, Bytes::from_static(b"last")), 30, label).await;
    video.finish().unwrap();
    audio.finish().unwrap();
    for reader in [&mut video_in, &mut audio_in] {
        let end = timeout(WAIT, reader.next()).await.unwrap_or_else(|_| panic!("{label}: the end in time"));
        assert!(end.unwrap().is_none(), "{label}: a clean end");
    }

    tracing::info!(label, "media tracks read to their end");
    // A new resolution publishes the catalog again; the reader sees it.
    media
        .update_video("video", VideoConfig { coded_width: Some(1280), coded_height: Some(720), ..video_config() })
        .unwrap();
    let updated = timeout(WAIT, catalogs.next()).await.unwrap_or_else(|_| panic!("{label}: catalog update in time"));
    assert_eq!(updated.unwrap().unwrap().video.renditions["video"].coded_width, Some(1280), "{label}");
    media.remove("audio").unwrap();
    let updated = timeout(WAIT, catalogs.next()).await.unwrap_or_else(|_| panic!("{label}: catalog update in time"));
    assert!(updated.unwrap().unwrap().audio.renditions.is_empty(), "{label}");
    tracing::info!(label, "catalog updates read");
    media.finish().unwrap();
    let end = timeout(WAIT, catalogs.next()).await.unwrap_or_else(|_| panic!("{label}: catalog end in time"));
    assert!(end.unwrap().is_none(), "{label}: the catalog track ends with the broadcast");
}

async fn expect_frame(reader: &mut MediaTrackReader, frames: Frames, f: u64, label: &str) {
    let event = timeout(WAIT, reader.next()).await.unwrap_or_else(|_| panic!("{label}: frame {f} in time"));
    let MediaEvent::Frame(frame) = event.unwrap().unwrap() else { panic!("{label}: a gap at frame {f}") };
    let (pts, key, payload) = frames(f);
    assert_eq!((frame.pts_us, frame.keyframe, frame.payload), (pts, key, payload), "{label}: frame {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_broadcast_round_trips_through_a_session_in_every_version() {
    init_logs();
    for version in Version::ALL {
        let published = OriginProducer::default();
        let server = serve(version, Some(published.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        media_round_trip(&published, &remote, &version.to_string()).await;
    }
}

#[test]
fn catalogs_written_by_moqt_parse_with_hang_and_hangs_parse_with_moqt() {
    // moqt -> hang
    let mut media = MediaBroadcast::new().unwrap();
    let _video = media.add_video("video", video_config()).unwrap();
    let _audio = media.add_audio("audio", audio_config()).unwrap();
    let json = media.catalog().to_json();
    let theirs = hang::catalog::Catalog::<()>::from_slice(&json).unwrap();
    let video = &theirs.video.renditions["video"];
    assert_eq!(video.codec.to_string(), "avc1.64001e");
    assert_eq!((video.coded_width, video.coded_height), (Some(640), Some(360)));
    assert_eq!(video.description.as_deref(), Some(&hex_bytes(AVCC)[..]));
    assert_eq!(video.container, hang::catalog::Container::Legacy);
    let audio = &theirs.audio.renditions["audio"];
    assert_eq!((audio.codec.to_string(), audio.sample_rate, audio.channel_count), ("opus".into(), 48000, 2));

    // hang -> moqt, CMAF included.
    let mut catalog = hang::catalog::Catalog::<()>::default();
    let mut config = hang::catalog::VideoConfig::new(hang::catalog::H264 {
        profile: 0x64,
        constraints: 0,
        level: 0x1f,
        inline: true,
    });
    config.coded_width = Some(1280);
    config.coded_height = Some(720);
    config.container = hang::catalog::Container::Cmaf { init: Bytes::from_static(b"\0\0\0\x08ftyp") };
    catalog.video.insert("hd", config).unwrap();
    let mut aac = hang::catalog::AudioConfig::new(hang::catalog::AAC { profile: 2 }, 44100, 1);
    aac.description = Some(Bytes::from_static(&[0x12, 0x08]));
    catalog.audio.insert("aac", aac).unwrap();
    let ours = moqt::media::Catalog::from_json(&catalog.to_vec().unwrap(), &CatalogSettings::default()).unwrap();
    let hd = &ours.video.renditions["hd"];
    assert_eq!((hd.codec.as_str(), hd.coded_width, hd.coded_height), ("avc3.64001f", Some(1280), Some(720)));
    assert_eq!(hd.container, Container::Cmaf { init: Bytes::from_static(b"\0\0\0\x08ftyp") });
    let aac = &ours.audio.renditions["aac"];
    assert_eq!((aac.codec.as_str(), aac.sample_rate, aac.number_of_channels), ("mp4a.40.2", 44100, 1));
    assert_eq!(aac.description.as_deref(), Some(&[0x12, 0x08][..]));
    // And back to hang unchanged.
    let again = hang::catalog::Catalog::<()>::from_slice(&ours.to_json()).unwrap();
    assert_eq!(again, catalog);
}

#[test]
fn legacy_frames_decode_with_hang_and_hangs_decode_with_moqt() {
    for micros in [0u64, 1, 33_333, 1_234_567, 10_000_000_000] {
        let ours = moqt::media::legacy::encode(micros, b"access unit").unwrap();
        let theirs = hang::container::Frame::decode(ours.clone()).unwrap();
        assert_eq!(theirs.timestamp.as_micros(), micros as u128);
        assert_eq!(&theirs.payload[..], b"access unit");

        let frame = hang::container::Frame {
            timestamp: hang::container::Timestamp::from_micros(micros).unwrap(),
            payload: Bytes::from_static(b"packet"),
        };
        let mut encoded = BytesMut::new();
        frame.encode(&mut encoded).unwrap();
        let encoded = encoded.freeze();
        assert_eq!(encoded, moqt::media::legacy::encode(micros, b"packet").unwrap(), "the same bytes");
        let (back, payload) = moqt::media::legacy::decode(&encoded).unwrap();
        assert_eq!((back, &payload[..]), (micros, &b"packet"[..]));
    }
}

/// A CMAF rendition (the fixture's H.264 track: its own init segment in the catalog, one
/// moof+mdat per group) comes back as samples with their times and keyframes, on a version with
/// frame timestamps and on one without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmaf_rendition_round_trips_through_a_session() {
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader};
    init_logs();
    let clip = include_bytes!("../fixtures/h264-opus-cmaf.mp4");
    let mut reader = Fmp4Reader::new();
    let events = reader.push(clip).unwrap();
    let init = reader.init().unwrap().track_init(1).unwrap();
    let fragments: Vec<_> = events
        .into_iter()
        .filter_map(|event| match event {
            Fmp4Event::Fragment(fragment) => Some(fragment),
            Fmp4Event::Init(_) => None,
        })
        .collect();
    for version in [Version::Lite06, Version::Lite03] {
        let published = OriginProducer::default();
        let server = serve(version, Some(published.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let mut media = MediaBroadcast::new().unwrap();
        let config = VideoConfig {
            codec: "avc1.64000c".into(),
            container: Container::Cmaf { init: init.clone() },
            ..Default::default()
        };
        let mut video = media.add_video("0.m4s", config).unwrap();
        let _published = published.publish(path("room/cmaf"), media.consume(), Route::local()).unwrap();
        let broadcast = announced(&remote, &path("room/cmaf")).await;
        let mut catalogs = CatalogReader::subscribe(&broadcast, CatalogSettings::default()).await.unwrap();
        let catalog = timeout(WAIT, catalogs.next()).await.unwrap().unwrap().unwrap();
        let options = ReadOptions { start: moqt::model::GroupStart::Floor(0), ..Default::default() };
        let mut track = MediaTrackReader::subscribe(&broadcast, &catalog, "0.m4s", options).await.unwrap();
        for fragment in &fragments {
            let part = fragment.split_by_track().unwrap().into_iter().find(|t| t.track_id == 1).unwrap();
            let first = fragment.track_samples(1).next().unwrap();
            video.write(first.presentation_time_us as u64, first.keyframe, part.bytes).unwrap();
        }
        video.finish().unwrap();
        let mut frames = Vec::new();
        while let Some(event) = timeout(WAIT, track.next()).await.unwrap().unwrap() {
            let MediaEvent::Frame(frame) = event else { panic!("{version}: a gap {event:?}") };
            frames.push(frame);
        }
        assert_eq!(frames.len(), 60, "{version}");
        let keyframes: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
        assert_eq!(keyframes, [0, 30], "{version}");
        let expected: Vec<i64> =
            fragments.iter().flat_map(|f| f.track_samples(1)).map(|s| s.presentation_time_us).collect();
        let got: Vec<i64> = frames.iter().map(|f| f.pts_us as i64).collect();
        assert_eq!(got, expected, "{version}: presentation times from the fragments");
        assert_eq!(frames[0].payload.len(), 2645, "{version}: the first sample's bytes");
    }
}

/// Samples moqt packs as CMAF itself (the init segment from the codec fields, one moof+mdat per
/// sample), through a session: each reads back with its time, keyframe flag and bytes (Annex-B
/// H.264 length-prefixed), the catalog holds a CMAF container whose init segment describes the
/// codec, and an update's new init segment is in the next catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_packed_as_cmaf_by_moqt_round_trip_through_a_session() {
    init_logs();
    let version = Version::Lite06;
    let published = OriginProducer::default();
    let server = serve(version, Some(published.clone()), None);
    let (_session, remote) = server.subscriber(version).await;
    let mut media = MediaBroadcast::new().unwrap();
    media.hold_catalog();
    // In band: avc3 with the avcC the init segment needs; samples Annex-B.
    let video_in_band = VideoConfig { codec: "avc3.64001e".into(), ..video_config() };
    let mut video = media.add_packed_cmaf_video("video", video_in_band.clone(), true).unwrap();
    let mut audio = media.add_packed_cmaf_audio("audio", audio_config()).unwrap();
    assert!(media.is_packed("video") && media.is_packed("audio"));
    media.release_catalog().unwrap();
    let _published = published.publish(path("room/packed"), media.consume(), Route::local()).unwrap();
    let broadcast = announced(&remote, &path("room/packed")).await;
    let mut catalogs = CatalogReader::subscribe(&broadcast, CatalogSettings::default()).await.unwrap();
    let catalog = timeout(WAIT, catalogs.next()).await.unwrap().unwrap().unwrap();
    let Container::Cmaf { init } = &catalog.video.renditions["video"].container else { panic!("{catalog:?}") };
    let mut reader = moqt::media::fmp4::Fmp4Reader::new();
    reader.push(init).unwrap();
    let entry = &reader.init().unwrap().tracks[0];
    assert_eq!((entry.video.unwrap().width, entry.video.unwrap().height), (640, 360), "the init's track header");
    assert!(matches!(catalog.audio.renditions["audio"].container, Container::Cmaf { .. }));

    let options = ReadOptions { start: moqt::model::GroupStart::Floor(0), ..Default::default() };
    let mut video_in = MediaTrackReader::subscribe(&broadcast, &catalog, "video", options).await.unwrap();
    let mut audio_in = MediaTrackReader::subscribe(&broadcast, &catalog, "audio", options).await.unwrap();
    for f in 0..30u64 {
        let sample = Bytes::from(vec![0, 0, 0, 1, 0x65, f as u8, 0xaa]);
        video.write(f * 33_333, f % 15 == 0, sample).unwrap();
    }
    for f in 0..10u64 {
        audio.write(f * 20_000, true, Bytes::from(vec![0xfc, f as u8])).unwrap();
    }
    // A new size: a new init segment in the catalog, samples go on.
    media
        .update_video("video", VideoConfig { coded_width: Some(1280), coded_height: Some(720), ..video_in_band })
        .unwrap();
    let updated = timeout(WAIT, catalogs.next()).await.unwrap().unwrap().unwrap();
    assert_ne!(updated.video.renditions["video"].container, catalog.video.renditions["video"].container);
    video.write(30 * 33_333, true, Bytes::from(vec![0, 0, 1, 0x65, 30, 0xaa])).unwrap();
    video.finish().unwrap();
    audio.finish().unwrap();

    let mut frames = Vec::new();
    while let Some(event) = timeout(WAIT, video_in.next()).await.unwrap().unwrap() {
        let MediaEvent::Frame(frame) = event else { panic!("a gap {event:?}") };
        frames.push(frame);
    }
    assert_eq!(frames.len(), 31);
    for (f, frame) in frames.iter().enumerate() {
        let f = f as u64;
        assert_eq!((frame.pts_us, frame.keyframe), (f * 33_333, f % 15 == 0), "video sample {f}");
        assert_eq!(frame.payload, Bytes::from(vec![0, 0, 0, 3, 0x65, f as u8, 0xaa]), "length-prefixed sample {f}");
    }
    let mut packets = Vec::new();
    while let Some(event) = timeout(WAIT, audio_in.next()).await.unwrap().unwrap() {
        let MediaEvent::Frame(frame) = event else { panic!("a gap {event:?}") };
        packets.push((frame.pts_us, frame.payload));
    }
    let expected: Vec<(u64, Bytes)> = (0..10u64).map(|f| (f * 20_000, Bytes::from(vec![0xfc, f as u8]))).collect();
    assert_eq!(packets, expected);
}

/// Reads every event of a rendition until its end.
async fn read_all(reader: &mut MediaTrackReader) -> Vec<MediaEvent> {
    let mut events = Vec::new();
    while let Some(event) = timeout(WAIT, reader.next()).await.expect("media in time").unwrap() {
        events.push(event);
    }
    events
}

/// The fixture clip through `Fmp4Import` into a broadcast and back out through `Fmp4Export`, in
/// memory: every sample comes back with its presentation time, keyframe flag and bytes, in both
/// containers; and a legacy H.264 rendition in Annex-B (no description, parameter sets in band)
/// is written as a valid track configured from its first keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fmp4_import_then_export_keeps_every_sample() {
    use moqt::media::codec::{annexb, h264};
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader, Sample};
    use moqt::media::{Fmp4Export, Fmp4Import, ImportContainer};
    let clip = include_bytes!("../fixtures/h264-opus-cmaf.mp4");
    let samples_of = |bytes: &[u8]| -> Vec<Sample> {
        let mut reader = Fmp4Reader::new();
        let events = reader.push(bytes).unwrap();
        events
            .into_iter()
            .filter_map(|e| match e {
                Fmp4Event::Fragment(f) => Some(f.samples),
                Fmp4Event::Init(_) => None,
            })
            .flatten()
            .collect()
    };
    let source = samples_of(clip);
    let from_zero = ReadOptions { start: moqt::model::GroupStart::Floor(0), ..Default::default() };
    for container in [ImportContainer::Legacy, ImportContainer::Cmaf] {
        let mut media = MediaBroadcast::new().unwrap();
        let mut import = Fmp4Import::new(container);
        let frames = import.push(&mut media, clip).unwrap();
        for frame in frames {
            import.write(frame).unwrap();
        }
        import.finish().unwrap();
        let catalog = media.catalog().clone();
        assert_eq!(catalog.renditions().map(|(n, _)| n).collect::<Vec<_>>(), ["video", "audio"]);
        let broadcast = media.consume();
        let mut export = Fmp4Export::new(&catalog, &["video", "audio"]).unwrap();
        let mut out = Vec::new();
        for (index, name) in ["video", "audio"].into_iter().enumerate() {
            let mut reader = MediaTrackReader::subscribe(&broadcast, &catalog, name, from_zero).await.unwrap();
            for event in read_all(&mut reader).await {
                out.extend(export.push(index, event).unwrap());
            }
        }
        out.extend(export.finish().unwrap());
        let written: Vec<u8> = out.concat();
        let back = samples_of(&written);
        assert_eq!(back.len(), source.len(), "{container:?}: every sample");
        for kind in [1u32, 2] {
            let ours: Vec<_> = back.iter().filter(|s| s.track_id == kind).collect();
            let theirs: Vec<_> = source.iter().filter(|s| s.track_id == kind).collect();
            assert_eq!(ours.len(), theirs.len(), "{container:?} track {kind}");
            for (a, b) in ours.iter().zip(&theirs) {
                assert_eq!(
                    (a.presentation_time_us, a.keyframe, &a.data),
                    (b.presentation_time_us, b.keyframe, &b.data),
                    "{container:?} track {kind}"
                );
            }
        }
    }

    // Annex-B: the clip's video as a legacy rendition without a description, parameter sets in
    // band before each keyframe.
    let mut reader = Fmp4Reader::new();
    reader.push(clip).unwrap();
    let avcc = match &reader.init().unwrap().track(1).unwrap().codec {
        mp4_atom::Codec::Avc1(entry) => entry.avcc.clone(),
        other => panic!("{other:?}"),
    };
    let start_code = |nal: &[u8]| [&[0u8, 0, 0, 1][..], nal].concat();
    let parameter_sets: Vec<u8> = avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avcc.picture_parameter_sets)
        .flat_map(|nal| start_code(nal))
        .collect();
    let mut media = MediaBroadcast::new().unwrap();
    let first = source.iter().find(|s| s.track_id == 1).unwrap();
    let first_au = [parameter_sets.clone(), annexb::length_prefixed_to_annexb(&first.data, 4).unwrap()].concat();
    let info = h264::info_from_annexb(&first_au, true).unwrap();
    assert!(info.codec.starts_with("avc3.") && info.description.is_none(), "{info:?}");
    let config = VideoConfig {
        codec: info.codec,
        coded_width: Some(info.coded_width),
        coded_height: Some(info.coded_height),
        ..Default::default()
    };
    let mut video = media.add_video("video", config).unwrap();
    let mut annexb_units = Vec::new();
    for sample in source.iter().filter(|s| s.track_id == 1) {
        let mut au = annexb::length_prefixed_to_annexb(&sample.data, 4).unwrap();
        if sample.keyframe {
            au = [parameter_sets.clone(), au].concat();
        }
        annexb_units.push(au.clone());
        video.write(sample.presentation_time_us as u64, sample.keyframe, Bytes::from(au)).unwrap();
    }
    video.finish().unwrap();
    let catalog = media.catalog().clone();
    let mut export = Fmp4Export::new(&catalog, &["video"]).unwrap();
    let mut reader = MediaTrackReader::subscribe(&media.consume(), &catalog, "video", from_zero).await.unwrap();
    let mut out = Vec::new();
    for event in read_all(&mut reader).await {
        out.extend(export.push(0, event).unwrap());
    }
    out.extend(export.finish().unwrap());
    let back = samples_of(&out.concat());
    assert_eq!(back.len(), annexb_units.len(), "every Annex-B access unit");
    for (sample, au) in back.iter().zip(&annexb_units) {
        assert_eq!(annexb::length_prefixed_to_annexb(&sample.data, 4).unwrap(), *au, "the same NAL units");
    }
    let mut check = Fmp4Reader::new();
    check.push(&out.concat()).unwrap();
    assert!(matches!(check.init().unwrap().track(1).unwrap().codec, mp4_atom::Codec::Avc3(_)), "an avc3 entry");
}

/// A CMAF rendition whose init segment changes (here its timescale, 1 kHz then 90 kHz): once told
/// the new container, the reader reads the fragments after it against it, so their times stay
/// right (against the old one they would be 90 times too late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmaf_reader_takes_a_changed_init_segment() {
    use moqt::media::fmp4::{Fmp4Reader, Fmp4Writer, FragmentSample, TrackConfig};
    let clip = include_bytes!("../fixtures/h264-opus-cmaf.mp4");
    let mut reader = Fmp4Reader::new();
    reader.push(clip).unwrap();
    let codec = reader.init().unwrap().track(1).unwrap().codec.clone();
    let writer = |timescale| {
        Fmp4Writer::new(vec![TrackConfig { track_id: 1, timescale, codec: codec.clone(), video: None, audio: None }])
            .unwrap()
    };
    let (mut slow, mut fast) = (writer(1000), writer(90_000));
    let config = |init| VideoConfig { container: Container::Cmaf { init }, ..video_config() };
    let mut media = MediaBroadcast::new().unwrap();
    let mut video = media.add_video("video", config(slow.init_segment().unwrap())).unwrap();
    let catalog = media.catalog().clone();
    let options = ReadOptions { start: moqt::model::GroupStart::Floor(0), ..Default::default() };
    let mut track = MediaTrackReader::subscribe(&media.consume(), &catalog, "video", options).await.unwrap();
    let sample = |keyframe, duration| FragmentSample {
        duration,
        composition_offset: 0,
        keyframe,
        data: Bytes::from_static(b"sample"),
    };
    // One second at 1 kHz, then one at 90 kHz from 1 s on.
    video.write(0, true, slow.fragment(1, 0, &[sample(true, 1000)]).unwrap()).unwrap();
    expect_frame(&mut track, |_| (0, true, Bytes::from_static(b"sample")), 0, "1 kHz").await;
    media.update_video("video", config(fast.init_segment().unwrap())).unwrap();
    let container = media.catalog().video.renditions["video"].container.clone();
    track.set_container(container).unwrap();
    video.write(1_000_000, true, fast.fragment(1, 90_000, &[sample(true, 90_000)]).unwrap()).unwrap();
    expect_frame(&mut track, |_| (1_000_000, true, Bytes::from_static(b"sample")), 1, "90 kHz").await;
    // A container that cannot be read is refused; the reader keeps the one it had.
    assert!(track.set_container(Container::Cmaf { init: Bytes::from_static(b"not an init segment") }).is_err());
    video.write(2_000_000, true, fast.fragment(1, 180_000, &[sample(true, 90_000)]).unwrap()).unwrap();
    expect_frame(&mut track, |_| (2_000_000, true, Bytes::from_static(b"sample")), 2, "kept").await;
}
