//! The moq-lite-03..06 byte vectors of spec section 9 (moq-lite.md), checked in both directions: our
//! encoder must produce the bytes the reference produced, and our decoder must read them back to the
//! same value. Stream-type prefixes are checked through BidiStream / UniStream.
//!
//! The legacy-fallback CLIENT_SETUP / SERVER_SETUP vectors are not encoded or decoded: that path only
//! ever negotiates lite-01, lite-02 or moqt-14 (spec 1.2), none of which moqt speaks, so moqt refuses
//! it at the handshake (no `moql` ALPN, HTTP 400 without `wt-protocol`); the one thing checked is that
//! such bytes, should they arrive on a bidi stream anyway, are an unknown stream type (reset, spec 2).

use bytes::Bytes;
use moqt::coding::Path;
use moqt::wire::*;

fn hex(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        if word == "|" {
            continue;
        }
        if let Some(ascii) = word.strip_prefix('"') {
            out.extend_from_slice(ascii.trim_end_matches('"').as_bytes());
        } else {
            out.push(u8::from_str_radix(word, 16).expect("hex byte"));
        }
    }
    out
}

fn path(text: &str) -> Path {
    Path::new(text).unwrap()
}

/// Encodes `message` and compares with `bytes`, then decodes `bytes` and compares with `message`,
/// requiring the decoder to consume every byte.
fn both_ways<M: Message + PartialEq + std::fmt::Debug>(message: &M, version: Version, bytes: &[u8]) {
    assert_eq!(message.to_bytes(version).unwrap(), bytes, "{version}: encoding {message:?}");
    let mut input = bytes;
    let decoded = M::decode(&mut input, version).unwrap_or_else(|e| panic!("{version}: decoding {bytes:02x?}: {e}"));
    assert_eq!(&decoded, message, "{version}: decoded value");
    assert!(input.is_empty(), "{version}: {} bytes left over", input.len());
}

fn bidi_prefix(kind: BidiStream, version: Version, id: u8) {
    let mut out = Vec::new();
    kind.encode(&mut out, version).unwrap();
    assert_eq!(out, [id]);
    assert_eq!(BidiStream::decode(&mut &[id][..], version), Ok(kind));
}

fn uni_prefix(kind: UniStream, version: Version, id: u8) {
    let mut out = Vec::new();
    kind.encode(&mut out, version).unwrap();
    assert_eq!(out, [id]);
    assert_eq!(UniStream::decode(&mut &[id][..], version), Ok(kind));
}

/// Reads a whole Group stream (type, GROUP, FRAMEs) through the incremental reader, `chunk` bytes
/// at a time, as a session receives it.
fn read_group_stream(bytes: &[u8], version: Version, chunk: usize) -> (UniStream, GroupHeader, Vec<FrameData>) {
    let mut reader = StreamReader::new(version, 1024);
    let mut timestamps = FrameTimestamps::new();
    let (mut kind, mut header, mut frames) = (None, None, Vec::new());
    for piece in bytes.chunks(chunk) {
        reader.push(piece).unwrap();
        if kind.is_none() {
            kind = reader.read_with(|cursor| UniStream::decode(cursor, version)).unwrap();
        }
        if kind.is_some() && header.is_none() {
            header = reader.decode::<GroupHeader>().unwrap();
        }
        if header.is_some() {
            while let Some(frame) = reader.read_frame(&mut timestamps).unwrap() {
                frames.push(frame);
            }
        }
    }
    reader.finish().expect("no bytes left at FIN");
    (kind.expect("stream type"), header.expect("GROUP header"), frames)
}

fn subscribe(id: u64, window: SubscribeWindow) -> Subscribe {
    Subscribe { id, broadcast: path("room/alice"), track: "video".into(), window }
}

#[test]
fn v1_subscribe() {
    bidi_prefix(BidiStream::Subscribe, Version::Lite06, 0x02);
    let plain = subscribe(0, SubscribeWindow { priority: 2, max_age: 500, ..Default::default() });
    both_ways(&plain, Version::Lite06, &hex(r#"19 00 0a "room/alice" 05 "video" 02 41 f4 00 00 00 00"#));
    both_ways(&plain, Version::Lite05, &hex(r#"18 00 0a "room/alice" 05 "video" 02 00 41 f4 00 00"#));

    let ranged = subscribe(
        1,
        SubscribeWindow { priority: 2, max_age: 500, group_start: Some(7), group_end: Some(9), ..Default::default() },
    );
    both_ways(&ranged, Version::Lite05, &hex(r#"18 01 0a "room/alice" 05 "video" 02 00 41 f4 08 0a"#));
    both_ways(&ranged, Version::Lite06, &hex(r#"19 01 0a "room/alice" 05 "video" 02 41 f4 07 0a 00 00"#));

    let mid_group = subscribe(
        2,
        SubscribeWindow { priority: 2, max_age: 500, group_start: Some(5), frame_start: 3, ..Default::default() },
    );
    both_ways(&mid_group, Version::Lite06, &hex(r#"19 02 0a "room/alice" 05 "video" 02 41 f4 05 00 03 00"#));
}

#[test]
fn v2_group_stream_with_two_frames() {
    for version in Version::ALL {
        uni_prefix(UniStream::Group, version, 0x00);
    }

    let header = GroupHeader { subscribe_id: 0, sequence: 5, frame_start: 0 };
    both_ways(&header, Version::Lite06, &hex("03 00 05 00"));
    for version in [Version::Lite05, Version::Lite04, Version::Lite03] {
        both_ways(&header, version, &hex("02 00 05"));
    }

    let frames = [(1000u64, &b"hi"[..]), (1033, &b"yo"[..])];
    let encode_frames = |version: Version| {
        let mut out = Vec::new();
        let mut timestamps = FrameTimestamps::new();
        for (ts, payload) in frames {
            let delta = if version >= Version::Lite05 { timestamps.delta_for(ts) } else { 0 };
            FrameHeader { timestamp_delta: delta, payload_len: payload.len() as u64 }
                .encode(&mut out, version)
                .unwrap();
            out.extend_from_slice(payload);
        }
        out
    };
    let lite06_frames = hex(r#"47 d0 02 "hi" 40 42 02 "yo""#);
    assert_eq!(encode_frames(Version::Lite06), lite06_frames);
    assert_eq!(encode_frames(Version::Lite05), lite06_frames);
    assert_eq!(encode_frames(Version::Lite04), hex(r#"02 "hi" 02 "yo""#));
    assert_eq!(encode_frames(Version::Lite03), hex(r#"02 "hi" 02 "yo""#));

    let old_frames = hex(r#"02 "hi" 02 "yo""#);
    let cases = [
        (Version::Lite06, "03 00 05 00", &lite06_frames, [1000, 1033]),
        (Version::Lite05, "02 00 05", &lite06_frames, [1000, 1033]),
        (Version::Lite04, "02 00 05", &old_frames, [0, 0]),
        (Version::Lite03, "02 00 05", &old_frames, [0, 0]),
    ];
    for (version, group, frame_bytes, timestamps) in cases {
        let expected: Vec<FrameData> = frames
            .iter()
            .zip(timestamps)
            .map(|((_, payload), timestamp)| FrameData { timestamp, payload: Bytes::copy_from_slice(payload) })
            .collect();

        // The frames alone, as a Fetch reply carries them.
        let mut reader = StreamReader::new(version, 1024);
        reader.push(frame_bytes).unwrap();
        let mut running = FrameTimestamps::new();
        for frame in &expected {
            assert_eq!(reader.read_frame(&mut running).unwrap().as_ref(), Some(frame), "{version}");
        }
        assert_eq!(reader.buffered(), 0, "{version}");

        // The whole stream: `00 | GROUP | FRAME FRAME`, in pieces of every size.
        let mut stream = hex("00");
        stream.extend(hex(group));
        stream.extend_from_slice(frame_bytes);
        for chunk in 1..=stream.len() {
            let (kind, decoded, got) = read_group_stream(&stream, version, chunk);
            assert_eq!(kind, UniStream::Group, "{version} chunk {chunk}");
            assert_eq!(decoded, header, "{version} chunk {chunk}");
            assert_eq!(got, expected, "{version} chunk {chunk}");
        }
    }
}

#[test]
fn v3_setup() {
    for version in [Version::Lite05, Version::Lite06] {
        uni_prefix(UniStream::Setup, version, 0x01);
        both_ways(&Setup { probe: ProbeLevel::Report, ..Default::default() }, version, &hex("04 01 01 01 01"));
        both_ways(
            &Setup { path: Some("/anon/room?jwt=x".into()), ..Default::default() },
            version,
            &hex(r#"13 01 02 10 "/anon/room?jwt=x""#),
        );
        both_ways(&Setup::default(), version, &hex("01 00"));
    }
}

#[test]
fn v4_announce_stream() {
    bidi_prefix(BidiStream::Announce, Version::Lite06, 0x01);
    let v = Version::Lite06;
    both_ways(&AnnounceRequest { prefix: path("room"), exclude_hop: 0 }, v, &hex(r#"05 04 "room""#));
    both_ways(&AnnounceOk { hop_id: 42, active_count: 1 }, v, &hex("02 2a 01"));
    both_ways(
        &Announcement::Start { suffix: path("alice"), hops: vec![7], warm_cost: 0, cold_cost: 3 },
        v,
        &hex(r#"00 0a 05 "alice" 01 07 00 03"#),
    );
    both_ways(
        &Announcement::Update { id: 0, hops: vec![7], warm_cost: 1, cold_cost: 3 },
        v,
        &hex("02 05 00 01 07 01 03"),
    );
    both_ways(&Announcement::End { id: 0 }, v, &hex("01 01 00"));

    for v in [Version::Lite05, Version::Lite04] {
        both_ways(&AnnounceRequest { prefix: path("room"), exclude_hop: 0 }, v, &hex(r#"06 04 "room" 00"#));
        both_ways(
            &Announcement::Legacy { status: AnnounceStatus::Active, suffix: path("alice"), hops: vec![7] },
            v,
            &hex(r#"09 01 05 "alice" 01 07"#),
        );
        both_ways(
            &Announcement::Legacy { status: AnnounceStatus::Ended, suffix: path("alice"), hops: vec![] },
            v,
            &hex(r#"08 00 05 "alice" 00"#),
        );
    }

    let v = Version::Lite03;
    both_ways(&AnnounceRequest { prefix: path("room"), exclude_hop: 0 }, v, &hex(r#"05 04 "room""#));
    both_ways(
        &Announcement::Legacy { status: AnnounceStatus::Active, suffix: path("alice"), hops: vec![0] },
        v,
        &hex(r#"08 01 05 "alice" 01"#),
    );
}

#[test]
fn v5_track_and_subscribe_responses() {
    bidi_prefix(BidiStream::Track, Version::Lite06, 0x06);
    let request = TrackRequest { broadcast: path("room/alice"), track: "video".into() };
    for v in [Version::Lite05, Version::Lite06] {
        both_ways(&request, v, &hex(r#"11 0a "room/alice" 05 "video""#));
        both_ways(&SubscribeResponse::Ok { group: 5 }, v, &hex("00 01 05"));
        both_ways(&SubscribeResponse::End { group: 10 }, v, &hex("01 01 0a"));
        both_ways(&SubscribeResponse::Drop { start: 6, end: 6, code: 0 }, v, &hex("02 03 06 06 00"));
    }
    both_ways(&TrackInfo::default(), Version::Lite06, &hex("05 7f 53 88 43 e8"));
    both_ways(&TrackInfo::default(), Version::Lite05, &hex("06 7f 00 53 88 43 e8"));

    for v in [Version::Lite03, Version::Lite04] {
        both_ways(&SubscribeResponse::Drop { start: 6, end: 6, code: 0 }, v, &hex("01 03 06 06 00"));
        let ok = SubscribeOkLegacy { priority: 2, ordered: false, max_latency: 0, start: Some(5), end: None };
        both_ways(&SubscribeResponse::OkLegacy(ok), v, &hex("00 05 02 00 00 06 00"));
    }
}

#[test]
fn other_generated_bytes() {
    bidi_prefix(BidiStream::Probe, Version::Lite04, 0x04);
    let probe = Probe { bitrate: 1_000_000, rtt: 40 };
    for v in [Version::Lite04, Version::Lite05, Version::Lite06] {
        both_ways(&probe, v, &hex("05 80 0f 42 40 28"));
    }
    both_ways(&Probe { bitrate: 1_000_000, rtt: 0 }, Version::Lite03, &hex("04 80 0f 42 40"));

    bidi_prefix(BidiStream::Goaway, Version::Lite04, 0x05);
    both_ways(&Goaway { uri: String::new() }, Version::Lite06, &hex("01 00"));

    let datagram = Datagram { subscribe_id: 0, sequence: 5, timestamp: 1000, payload: Bytes::from_static(b"hi") };
    let bytes = hex(r#"00 05 43 e8 "hi""#);
    let mut out = Vec::new();
    datagram.encode(&mut out, Version::Lite06).unwrap();
    assert_eq!(out, bytes);
    assert_eq!(Datagram::decode(Bytes::from(bytes), Version::Lite06).unwrap(), datagram);

    bidi_prefix(BidiStream::Fetch, Version::Lite05, 0x03);
    let fetch =
        Fetch { broadcast: path("room/alice"), track: "video".into(), priority: 2, group: 7, ..Default::default() };
    both_ways(&fetch, Version::Lite05, &hex(r#"13 0a "room/alice" 05 "video" 02 07"#));
    both_ways(&fetch, Version::Lite06, &hex(r#"15 0a "room/alice" 05 "video" 02 07 00 00"#));
}

#[test]
fn legacy_fallback_setup_is_an_unknown_stream_type() {
    // CLIENT_SETUP of the moqt-14-framed fallback (spec 9): 0x20 is no moq-lite-03..06 bidi type.
    let client_setup = hex("20 00 1a 03 c0 00 00 00 ff 0d ad 02 c0 00 00 00 ff 0d ad 01 c0 00 00 00 ff 00 00 0e 00");
    for version in Version::ALL {
        let mut input = &client_setup[..];
        assert_eq!(
            BidiStream::decode(&mut input, version),
            Err(moqt::coding::DecodeError::UnknownType { kind: "bidi stream", value: 0x20 })
        );
        assert_eq!(input.len(), client_setup.len(), "{version}: a refused stream type consumes nothing");
    }
}
