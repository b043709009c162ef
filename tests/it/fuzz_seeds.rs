//! Replays the committed fuzz seed corpus (fuzz/seeds/<target>/) through the same entry points the
//! cargo-fuzz targets use, so every seed, including each past finding, is an ordinary test.
//!
//! `cargo test --test fuzz_seeds -- --ignored write_seed_corpus` regenerates the generated seeds
//! (files named `seed-*`) from the encoders; findings are kept as `crash-*` files beside them, and
//! `found-*` files are inputs the fuzzer discovered (a sample of its corpus), kept as regressions.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use moqt::coding::Path as BroadcastPath;
use moqt::fuzzing::TARGETS;
use moqt::wire::*;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

#[test]
fn replay_committed_seeds() {
    for (name, target) in TARGETS {
        let dir = seeds_dir().join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("readable seed directory").path();
            let data = std::fs::read(&path).expect("readable seed");
            target(&data);
            count += 1;
        }
        assert!(count >= 4, "{name}: only {count} seeds in {}", dir.display());
    }
}

/// Byte 0 of a fuzz input: version index in Version::ALL (low 2 bits) and direction (bit 2).
fn selector(version: Version, response: bool) -> u8 {
    let index = Version::ALL.iter().position(|v| *v == version).expect("known version") as u8;
    index | if response { 0x4 } else { 0 }
}

#[test]
#[ignore = "writes files; run by hand to regenerate the seed corpus"]
fn write_seed_corpus() {
    let path = |t: &str| BroadcastPath::new(t).unwrap();
    let mut seeds: Vec<(&str, Version, bool, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, version: Version, response: bool, bytes: Vec<u8>| {
        seeds.push((target, version, response, bytes));
    };
    for v in Version::ALL {
        let exclude_hop = if matches!(v, Version::Lite04 | Version::Lite05) { 9 } else { 0 };
        add("announce_stream", v, false, AnnounceRequest { prefix: path("room"), exclude_hop }.to_bytes(v).unwrap());
        let mut reply = Vec::new();
        if v.has_setup() {
            AnnounceOk { hop_id: 42, active_count: 1 }.encode(&mut reply, v).unwrap();
        }
        let announcements = if v >= Version::Lite06 {
            vec![
                Announcement::Start { suffix: path("alice"), hops: vec![7], warm_cost: 0, cold_cost: 3 },
                Announcement::Update { id: 0, hops: vec![7, 8], warm_cost: 1, cold_cost: 3 },
                Announcement::End { id: 0 },
            ]
        } else {
            let hops = if v >= Version::Lite04 { vec![7, 8] } else { vec![0, 0] };
            vec![
                Announcement::Legacy { status: AnnounceStatus::Active, suffix: path("alice"), hops },
                Announcement::Legacy { status: AnnounceStatus::Ended, suffix: path("alice"), hops: vec![] },
            ]
        };
        for a in announcements {
            a.encode(&mut reply, v).unwrap();
        }
        add("announce_stream", v, true, reply);

        let window = SubscribeWindow {
            priority: 2,
            max_age: 500,
            group_start: Some(5),
            group_end: Some(9),
            ..Default::default()
        };
        let mut request =
            Subscribe { id: 1, broadcast: path("room/alice"), track: "video".into(), window }.to_bytes(v).unwrap();
        SubscribeUpdate { window: SubscribeWindow { priority: 9, ..window } }.encode(&mut request, v).unwrap();
        add("subscribe_stream", v, false, request);
        let mut responses = Vec::new();
        if v >= Version::Lite05 {
            SubscribeResponse::Ok { group: 5 }.encode(&mut responses, v).unwrap();
            SubscribeResponse::End { group: 10 }.encode(&mut responses, v).unwrap();
        } else {
            let ok = SubscribeOkLegacy { priority: 2, ordered: false, max_latency: 0, start: Some(5), end: None };
            SubscribeResponse::OkLegacy(ok).encode(&mut responses, v).unwrap();
        }
        SubscribeResponse::Drop { start: 6, end: 7, code: 0x34 }.encode(&mut responses, v).unwrap();
        add("subscribe_stream", v, true, responses);

        let mut frames = Vec::new();
        let mut timestamps = FrameTimestamps::new();
        for (ts, payload) in [(1000u64, &b"hi"[..]), (1033, &b"yo"[..]), (1066, &b""[..])] {
            let delta = if v >= Version::Lite05 { timestamps.delta_for(ts) } else { 0 };
            FrameHeader { timestamp_delta: delta, payload_len: payload.len() as u64 }.encode(&mut frames, v).unwrap();
            frames.extend_from_slice(payload);
        }
        let mut group = GroupHeader { subscribe_id: 0, sequence: 5, frame_start: 0 }.to_bytes(v).unwrap();
        group.extend_from_slice(&frames);
        add("group_stream", v, false, group);

        if v >= Version::Lite05 {
            let fetch = Fetch {
                broadcast: path("room/alice"),
                track: "video".into(),
                priority: 2,
                group: 7,
                ..Default::default()
            };
            add("fetch_stream", v, false, fetch.to_bytes(v).unwrap());
            add("fetch_stream", v, true, frames.clone());
            add(
                "track_stream",
                v,
                false,
                TrackRequest { broadcast: path("room/alice"), track: "video".into() }.to_bytes(v).unwrap(),
            );
            add("track_stream", v, true, TrackInfo::default().to_bytes(v).unwrap());
            let setup = Setup {
                probe: ProbeLevel::Report,
                path: Some("/anon/room?jwt=x".into()),
                hop: Some(42),
                cost: Some(1),
                ..Default::default()
            };
            add("setup_stream", v, false, setup.to_bytes(v).unwrap());
            let mut out = Vec::new();
            Datagram { subscribe_id: 0, sequence: 5, timestamp: 1000, payload: Bytes::from_static(b"hi") }
                .encode(&mut out, v)
                .unwrap();
            add("datagram", v, false, out);
        }
        let rtt = if v >= Version::Lite04 { 40 } else { 0 };
        let mut probes = Probe { bitrate: 1_000_000, rtt }.to_bytes(v).unwrap();
        Probe { bitrate: 0, rtt: 0 }.encode(&mut probes, v).unwrap();
        add("probe_stream", v, false, probes);
        if v.has_goaway() {
            add("goaway_stream", v, false, Goaway { uri: String::new() }.to_bytes(v).unwrap());
            add("goaway_stream", v, true, Goaway { uri: "https://relay.example/anon".into() }.to_bytes(v).unwrap());
        }
        for id in 0..7u8 {
            add("stream_type", v, false, vec![id]);
        }
        add("stream_type", v, true, vec![0]);
        add("stream_type", v, true, vec![1]);
    }
    for (i, (target, version, response, bytes)) in seeds.iter().enumerate() {
        let dir = seeds_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for chunk in [0u8, 1, 3] {
            let mut data = vec![selector(*version, *response), chunk];
            data.extend_from_slice(bytes);
            let side = if *response { "reply" } else { "request" };
            let file = dir.join(format!("seed-{version}-{side}-{i}-chunk{chunk}"));
            std::fs::write(file, data).unwrap();
        }
    }
}

/// Seeds of `fmp4_reader`: the real fixture's init segment, and small streams from the fmp4 writer
/// with the fixture's tracks and tiny samples (one track per fragment, then two trafs in one moof,
/// then one track's init segment and fragments), each at a few chunk sizes (byte 0).
#[test]
#[ignore = "writes files; run by hand to regenerate the seed corpus"]
fn write_fmp4_seed_corpus() {
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader, Fmp4Writer, TimedSample, TrackConfig};
    use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry};

    let fixture = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/h264-opus-cmaf.mp4"))
        .expect("the fmp4 fixture");
    let mut reader = Fmp4Reader::new();
    let events = reader.push(&fixture).unwrap();
    let Some(Fmp4Event::Init(init)) = events.first() else { panic!("no init segment") };

    let configs = init.tracks.iter().map(TrackConfig::from_track).collect();
    let mut writer = Fmp4Writer::new(configs).unwrap();
    let mut per_track = writer.init_segment().unwrap().to_vec();
    let mut video_only = init.track_init(1).unwrap().to_vec();
    for index in 0..4u64 {
        for (track_id, duration) in [(1, 512), (2, 960)] {
            let sample = TimedSample {
                track_id,
                decode_time: index * duration,
                composition_offset: if track_id == 1 && index == 2 { -512 } else { 0 },
                keyframe: track_id == 2 || index == 0,
                data: Bytes::from(vec![index as u8; 5]),
            };
            if let Some(fragment) = writer.push(sample).unwrap() {
                per_track.extend_from_slice(&fragment);
                if track_id == 1 {
                    video_only.extend_from_slice(&fragment);
                }
            }
        }
    }
    for fragment in writer.finish().unwrap() {
        per_track.extend_from_slice(&fragment);
    }

    // Two trafs in one moof, the second's data following the first's.
    let entry = |keyframe: bool| TrunEntry {
        duration: Some(512),
        size: Some(3),
        flags: Some(if keyframe { 0x0200_0000 } else { 0x0101_0000 }),
        cts: None,
    };
    let traf = |track_id, base_is_moof| Traf {
        tfhd: Tfhd { track_id, default_base_is_moof: base_is_moof, ..Default::default() },
        tfdt: Some(Tfdt { base_media_decode_time: 0 }),
        trun: vec![Trun { data_offset: None, samples: vec![entry(true), entry(false)].into() }],
        ..Default::default()
    };
    let mut moof = Moof { mfhd: Mfhd { sequence_number: 1 }, traf: vec![traf(1, true), traf(2, false)] };
    let mut unset = Vec::new();
    moof.encode(&mut unset).unwrap();
    moof.traf[0].trun[0].data_offset = Some(unset.len() as i32 + 4 + 8);
    let mut two_trafs = init.bytes.to_vec();
    moof.encode(&mut two_trafs).unwrap();
    mp4_atom::Mdat { data: b"aaabbbccdd..".to_vec() }.encode(&mut two_trafs).unwrap();

    let dir = seeds_dir().join("fmp4_reader");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds: [(&str, &[u8], &[u8]); 4] = [
        ("fixture-init", &init.bytes, &[255]),
        ("per-track", &per_track, &[0, 6, 255]),
        ("two-trafs", &two_trafs, &[0, 255]),
        ("video-only", &video_only, &[3]),
    ];
    for (name, stream, chunks) in seeds {
        assert!(stream.len() < 4096, "{name}: {} bytes, over fuzz/run.sh's -max_len", stream.len());
        for chunk in chunks {
            let mut data = vec![*chunk];
            data.extend_from_slice(stream);
            std::fs::write(dir.join(format!("seed-{name}-chunk{chunk}")), data).unwrap();
        }
    }
}

/// A short, deterministic stand-in for a fuzzing run of `fmp4_reader` in every test run: each seed
/// with a few bytes overwritten, and sometimes cut short, must not panic.
#[test]
fn fmp4_reader_survives_mutated_seeds() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        // xorshift64: enough to scatter mutations, and the same ones every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    let mut runs = 0;
    for entry in std::fs::read_dir(seeds_dir().join("fmp4_reader")).expect("fmp4_reader seeds") {
        let seed = std::fs::read(entry.expect("readable seed directory").path()).expect("readable seed");
        for _ in 0..1000 {
            let mut data = seed.clone();
            for _ in 0..1 + random() % 4 {
                let at = random() % data.len();
                data[at] = random() as u8;
            }
            if random() % 4 == 0 {
                data.truncate(random() % data.len());
            }
            moqt::fuzzing::fmp4_reader(&data);
            runs += 1;
        }
    }
    assert!(runs >= 4000, "only {runs} runs");
}
