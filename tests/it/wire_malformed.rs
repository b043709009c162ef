//! Malformed input gives the specific error, never a panic and never a wrong value: truncation,
//! Message Length too short or too long, bad UTF-8, too many path segments, duplicate SETUP
//! parameters, unknown types, messages outside their version, and every value past its limit.

use bytes::Bytes;
use moqt::coding::params::MAX_PARAMETER_LEN;
use moqt::coding::{DecodeError, EncodeError, MAX_FRAME_LEN, MAX_STRING_LEN, Path};
use moqt::wire::*;

/// `Message Length | body`, with a proper varint length.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    moqt::coding::encode_varint(&mut out, body.len() as u64).unwrap();
    out.extend_from_slice(body);
    out
}

/// A string field: varint length and bytes.
fn string(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    moqt::coding::encode_varint(&mut out, text.len() as u64).unwrap();
    out.extend_from_slice(text.as_bytes());
    out
}

fn decode<M: Message>(bytes: &[u8], version: Version) -> Result<M, DecodeError> {
    let mut input = bytes;
    M::decode(&mut input, version)
}

/// A SUBSCRIBE body (lite-06) for `track` bytes, with a correct Message Length.
fn subscribe_with_track(track: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b'a', track.len() as u8];
    body.extend_from_slice(track);
    body.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let mut out = vec![body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn truncated_message_is_short() {
    let full = subscribe_with_track(b"video");
    assert_eq!(decode::<Subscribe>(&full[..full.len() - 1], Version::Lite06), Err(DecodeError::Short));
    assert!(decode::<Subscribe>(&full, Version::Lite06).is_ok());
}

#[test]
fn message_length_too_short_or_too_long() {
    let mut short = subscribe_with_track(b"video");
    short[0] -= 1;
    assert_eq!(
        decode::<Subscribe>(&short, Version::Lite06),
        Err(DecodeError::BodyTooShort { length: short[0] as u64 })
    );

    let mut long = subscribe_with_track(b"video");
    long[0] += 1;
    long.push(0x00);
    assert_eq!(
        decode::<Subscribe>(&long, Version::Lite06),
        Err(DecodeError::BodyTooLong { length: long[0] as u64, extra: 1 })
    );

    // ANNOUNCE_OK with a stray byte; TRACK_INFO missing its timescale.
    assert_eq!(
        decode::<AnnounceOk>(&[0x03, 0x2a, 0x01, 0x00], Version::Lite06),
        Err(DecodeError::BodyTooLong { length: 3, extra: 1 })
    );
    assert_eq!(
        decode::<TrackInfo>(&[0x03, 0x7f, 0x53, 0x88], Version::Lite06),
        Err(DecodeError::BodyTooShort { length: 3 })
    );
}

#[test]
fn bad_utf8_is_rejected() {
    let bytes = subscribe_with_track(&[0xc3, 0x28]);
    assert_eq!(decode::<Subscribe>(&bytes, Version::Lite06), Err(DecodeError::InvalidUtf8));
    // SETUP Path is raw UTF-8 too.
    assert_eq!(decode::<Setup>(&[0x05, 0x01, 0x02, 0x02, 0xc3, 0x28], Version::Lite06), Err(DecodeError::InvalidUtf8));
}

#[test]
fn too_many_path_segments() {
    let bytes = framed(&string(&vec!["s"; 33].join("/")));
    assert_eq!(
        decode::<AnnounceRequest>(&bytes, Version::Lite06),
        Err(DecodeError::TooManySegments { segments: 33, max: 32 })
    );
    // 32 segments, with slashes to normalise, are fine.
    let bytes = framed(&string(&format!("/{}/", vec!["s"; 32].join("//"))));
    let request = decode::<AnnounceRequest>(&bytes, Version::Lite06).unwrap();
    assert_eq!(request.prefix, Path::new(&vec!["s"; 32].join("/")).unwrap());
}

#[test]
fn duplicate_and_excess_setup_parameters() {
    assert_eq!(
        decode::<Setup>(&[0x07, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02], Version::Lite06),
        Err(DecodeError::DuplicateParameter(1))
    );
    assert_eq!(
        decode::<Setup>(&[0x02, 0x40, 0x41], Version::Lite06),
        Err(DecodeError::TooManyParameters { count: 65, max: 64 })
    );
    assert_eq!(
        decode::<Setup>(&[0x80, 0x01, 0x00, 0x01], Version::Lite06),
        Err(DecodeError::MessageTooLarge { length: 65537, max: MAX_SETUP_LEN })
    );
}

#[test]
fn unknown_types() {
    assert_eq!(
        decode::<SubscribeResponse>(&[0x07, 0x01, 0x00], Version::Lite06),
        Err(DecodeError::UnknownType { kind: "SUBSCRIBE response", value: 7 })
    );
    // SUBSCRIBE_END (type 1) does not exist before lite-05, where type 1 is DROP: a DROP body that
    // is too short is the error, not a misread END.
    assert_eq!(
        decode::<SubscribeResponse>(&[0x01, 0x01, 0x0a], Version::Lite04),
        Err(DecodeError::BodyTooShort { length: 1 })
    );
    // lite-03/04 know only SUBSCRIBE_OK (0x0) and SUBSCRIBE_DROP (0x1): 0x2, the lite-05 DROP, is
    // as unknown there as 0x7.
    for version in [Version::Lite03, Version::Lite04] {
        for kind in [0x02, 0x07] {
            assert_eq!(
                decode::<SubscribeResponse>(&[kind, 0x03, 0x06, 0x06, 0x00], version),
                Err(DecodeError::UnknownType { kind: "SUBSCRIBE response", value: u64::from(kind) }),
                "{version}"
            );
        }
    }
    assert_eq!(
        BidiStream::decode(&mut &[0x09][..], Version::Lite06),
        Err(DecodeError::UnknownType { kind: "bidi stream", value: 9 })
    );
    assert_eq!(
        UniStream::decode(&mut &[0x02][..], Version::Lite06),
        Err(DecodeError::UnknownType { kind: "uni stream", value: 2 })
    );
    // A lite-06 receiver skips an unknown announcement type by its length.
    let mut input: &[u8] = &[0x05, 0x02, 0xaa, 0xbb, 0x01, 0x01, 0x00];
    assert_eq!(Announcement::decode(&mut input, Version::Lite06), Ok(Announcement::Unknown { kind: 5 }));
    assert_eq!(Announcement::decode(&mut input, Version::Lite06), Ok(Announcement::End { id: 0 }));
}

#[test]
fn messages_outside_their_version() {
    let not = |what: &'static str, version: Version| DecodeError::NotInVersion { what, version: version.alpn() };
    assert_eq!(decode::<Goaway>(&[0x01, 0x00], Version::Lite03), Err(not("GOAWAY", Version::Lite03)));
    for v in [Version::Lite03, Version::Lite04] {
        assert_eq!(decode::<Setup>(&[0x01, 0x00], v), Err(not("SETUP", v)));
        assert_eq!(decode::<AnnounceOk>(&[0x02, 0x2a, 0x01], v), Err(not("ANNOUNCE_OK", v)));
        assert_eq!(decode::<TrackInfo>(&[0x05, 0x7f, 0x53, 0x88, 0x43, 0xe8], v), Err(not("TRACK_INFO", v)));
        assert_eq!(decode::<Fetch>(&[0x00], v), Err(not("FETCH", v)));
        let track = [
            0x11, 0x0a, b'r', b'o', b'o', b'm', b'/', b'a', b'l', b'i', b'c', b'e', 0x05, b'v', b'i', b'd', b'e', b'o',
        ];
        assert_eq!(decode::<TrackRequest>(&track, v), Err(not("TRACK", v)));
        assert_eq!(Datagram::decode(Bytes::from_static(&[0, 5, 0]), v), Err(not("DATAGRAM", v)));
        assert_eq!(BidiStream::decode(&mut &[0x03][..], v), Err(not("Fetch stream", v)));
        assert_eq!(BidiStream::decode(&mut &[0x06][..], v), Err(not("Track stream", v)));
        assert_eq!(UniStream::decode(&mut &[0x01][..], v), Err(not("Setup stream", v)));
        // ANNOUNCE status 2 (restart) is lite-05 only.
        assert_eq!(
            decode::<Announcement>(&[0x03, 0x02, 0x00, 0x00], v),
            Err(DecodeError::InvalidValue { field: "ANNOUNCE status", value: 2 })
        );
    }
    assert_eq!(BidiStream::decode(&mut &[0x05][..], Version::Lite03), Err(not("Goaway stream", Version::Lite03)));
    // One version's layout is an error on another, never a misread value: the lite-03/04
    // SUBSCRIBE_OK on lite-05/06, the lite-05/06 one on lite-03/04, ANNOUNCE_START before lite-06.
    let legacy_ok = [0x00, 0x05, 0x02, 0x00, 0x00, 0x06, 0x00];
    for v in [Version::Lite05, Version::Lite06] {
        assert_eq!(decode::<SubscribeResponse>(&legacy_ok, v), Err(DecodeError::BodyTooLong { length: 5, extra: 4 }));
    }
    for v in [Version::Lite03, Version::Lite04] {
        assert_eq!(decode::<SubscribeResponse>(&[0x00, 0x01, 0x05], v), Err(DecodeError::BodyTooShort { length: 1 }));
    }
    let start = [0x00, 0x0a, 0x05, b'a', b'l', b'i', b'c', b'e', 0x01, 0x07, 0x00, 0x03];
    assert_eq!(decode::<Announcement>(&start, Version::Lite05), Err(DecodeError::BodyTooShort { length: 0 }));
    // Status 3 is never valid.
    assert_eq!(
        decode::<Announcement>(&[0x03, 0x03, 0x00, 0x00], Version::Lite05),
        Err(DecodeError::InvalidValue { field: "ANNOUNCE status", value: 3 })
    );
}

/// Encoding `message` on `version` is refused, naming `what`.
fn refused<M: Message + std::fmt::Debug>(message: &M, version: Version, what: &'static str) {
    assert_eq!(
        message.to_bytes(version),
        Err(EncodeError::NotInVersion { what, version: version.alpn() }),
        "{message:?} on {version}"
    );
}

#[test]
fn encoding_refuses_what_a_version_cannot_carry() {
    use Version::*;
    let start = Announcement::Start { suffix: Path::root(), hops: vec![], warm_cost: 0, cold_cost: 0 };
    let update = Announcement::Update { id: 0, hops: vec![], warm_cost: 0, cold_cost: 0 };
    let legacy = |status| Announcement::Legacy { status, suffix: Path::root(), hops: vec![] };
    let mid_group = SubscribeWindow { frame_start: 3, ..Default::default() };
    let frame_end = SubscribeWindow { group_end: Some(1), frame_end: Some(0), ..Default::default() };
    let ordered = SubscribeWindow { ordered: true, ..Default::default() };
    let legacy_ok = SubscribeResponse::OkLegacy(SubscribeOkLegacy::default());

    for v in [Lite03, Lite04] {
        refused(&Setup::default(), v, "SETUP");
        refused(&AnnounceOk::default(), v, "ANNOUNCE_OK");
        refused(&TrackRequest::default(), v, "TRACK");
        refused(&TrackInfo::default(), v, "TRACK_INFO");
        refused(&Fetch::default(), v, "FETCH");
        assert_eq!(
            Datagram::default().encode(&mut Vec::new(), v),
            Err(EncodeError::NotInVersion { what: "DATAGRAM", version: v.alpn() })
        );
        refused(&SubscribeResponse::Ok { group: 5 }, v, "SUBSCRIBE_OK with a group");
        refused(&SubscribeResponse::End { group: 1 }, v, "SUBSCRIBE_END");
        refused(&legacy(AnnounceStatus::Restart), v, "ANNOUNCE status restart");
        refused(&FrameHeader { timestamp_delta: 1, payload_len: 0 }, v, "FRAME timestamp");
    }
    for v in [Lite03, Lite04, Lite05] {
        refused(&start, v, "this announcement form");
        refused(&update, v, "this announcement form");
        refused(&Announcement::End { id: 0 }, v, "this announcement form");
        refused(&SubscribeUpdate { window: mid_group }, v, "Frame Start");
        refused(&SubscribeUpdate { window: frame_end }, v, "Frame End");
        refused(&GroupHeader { frame_start: 1, ..Default::default() }, v, "GROUP Frame Start");
    }
    for v in [Lite05, Lite06] {
        refused(&legacy_ok, v, "SUBSCRIBE_OK with publisher parameters");
    }
    refused(&Goaway::default(), Lite03, "GOAWAY");
    refused(&Probe { bitrate: 1, rtt: 5 }, Lite03, "PROBE RTT");
    refused(
        &Announcement::Legacy { status: AnnounceStatus::Active, suffix: Path::root(), hops: vec![7] },
        Lite03,
        "hop IDs",
    );
    refused(&Fetch { frame_start: 1, ..Default::default() }, Lite05, "FETCH Frame Start");
    refused(&legacy(AnnounceStatus::Active), Lite06, "this announcement form");
    refused(&SubscribeUpdate { window: ordered }, Lite06, "the Ordered byte");
    refused(&TrackInfo { ordered: true, ..Default::default() }, Lite06, "the Ordered byte");
    for v in [Lite03, Lite06] {
        refused(&AnnounceRequest { prefix: Path::root(), exclude_hop: 7 }, v, "ANNOUNCE_REQUEST Exclude Hop");
    }

    // Stream types a version lacks (the full table is in src/wire/stream.rs).
    let stream_refused = |result: Result<(), EncodeError>, what: &'static str, v: Version| {
        assert_eq!(result, Err(EncodeError::NotInVersion { what, version: v.alpn() }));
    };
    for v in [Lite03, Lite04] {
        stream_refused(BidiStream::Fetch.encode(&mut Vec::new(), v), "Fetch stream", v);
        stream_refused(BidiStream::Track.encode(&mut Vec::new(), v), "Track stream", v);
        stream_refused(UniStream::Setup.encode(&mut Vec::new(), v), "Setup stream", v);
    }
    stream_refused(BidiStream::Goaway.encode(&mut Vec::new(), Lite03), "Goaway stream", Lite03);
}

#[test]
fn values_past_their_limits() {
    // Message Length over the 64 MiB cap is refused before waiting for the body.
    assert_eq!(
        decode::<Subscribe>(&[0xc0, 0, 0, 0, 0x04, 0, 0, 1], Version::Lite06),
        Err(DecodeError::MessageTooLarge { length: 64 * 1024 * 1024 + 1, max: MAX_MESSAGE_LEN })
    );
    // 33 hops; a repeated non-zero hop; repeated zeros are fine (unknown hops).
    let start = |hops: &[u8]| {
        let mut body = vec![0x00, hops.len() as u8];
        body.extend_from_slice(hops);
        body.extend([0x00, 0x00]);
        let mut out = vec![0x00];
        out.extend(framed(&body));
        out
    };
    let hops33: Vec<u8> = (1..=33).collect();
    assert_eq!(
        decode::<Announcement>(&start(&hops33), Version::Lite06),
        Err(DecodeError::TooManyHops { count: 33, max: 32 })
    );
    assert_eq!(decode::<Announcement>(&start(&[7, 7]), Version::Lite06), Err(DecodeError::DuplicateHop(7)));
    assert!(decode::<Announcement>(&start(&[0, 0]), Version::Lite06).is_ok());
    let hops32: Vec<u8> = (1..=32).collect();
    assert!(decode::<Announcement>(&start(&hops32), Version::Lite06).is_ok());
    // A hop count larger than the IDs that follow is detected, not waited on.
    assert_eq!(
        decode::<Announcement>(&[0x00, 0x04, 0x00, 0x03, 0x07, 0x00], Version::Lite06),
        Err(DecodeError::BodyTooShort { length: 4 })
    );

    // GOAWAY URI over 8192 bytes.
    let mut goaway = vec![0x80, 0x00, 0x20, 0x03, 0x60, 0x01];
    goaway.extend(vec![b'x'; 8193]);
    assert_eq!(decode::<Goaway>(&goaway, Version::Lite06), Err(DecodeError::StringTooLong { length: 8193, max: 8192 }));
    assert!(Goaway { uri: "x".repeat(8193) }.to_bytes(Version::Lite06).is_err());

    // Datagram over 1200 bytes, both ways.
    let big = Datagram { payload: Bytes::from(vec![0; 1200]), ..Default::default() };
    assert!(matches!(big.encode(&mut Vec::new(), Version::Lite06), Err(EncodeError::TooLarge { .. })));
    assert_eq!(
        Datagram::decode(Bytes::from(vec![0; 1201]), Version::Lite06),
        Err(DecodeError::DatagramTooLarge { length: 1201, max: 1200 })
    );

    // Frame payload over 32 MiB.
    assert_eq!(
        decode::<FrameHeader>(&[0x00, 0x82, 0x00, 0x00, 0x01], Version::Lite06),
        Err(DecodeError::FrameTooLarge { length: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN })
    );

    // Timescale 0, Frame End without Group End, FETCH Frame End below Frame Start, DROP end < start.
    assert_eq!(
        decode::<TrackInfo>(&[0x03, 0x7f, 0x00, 0x00], Version::Lite06),
        Err(DecodeError::InvalidValue { field: "Timescale", value: 0 })
    );
    assert_eq!(
        decode::<SubscribeUpdate>(&[0x06, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05], Version::Lite06),
        Err(DecodeError::InvalidValue { field: "Frame End without Group End", value: 0 })
    );
    let fetch = [0x08, 0x01, b'a', 0x01, b'v', 0x00, 0x07, 0x05, 0x03];
    assert_eq!(
        decode::<Fetch>(&fetch, Version::Lite06),
        Err(DecodeError::InvalidValue { field: "FETCH Frame End below Frame Start", value: 2 })
    );
    assert_eq!(
        decode::<SubscribeResponse>(&[0x02, 0x03, 0x07, 0x06, 0x00], Version::Lite06),
        Err(DecodeError::InvalidValue { field: "SUBSCRIBE_DROP end before start", value: 6 })
    );
    // A track name one byte over the string bound, with all its bytes present, is refused by its
    // length; one at the bound is read.
    let track = |len: usize| {
        let mut body = vec![0x00]; // the root broadcast path
        body.extend(string(&"x".repeat(len)));
        framed(&body)
    };
    assert_eq!(
        decode::<TrackRequest>(&track(MAX_STRING_LEN as usize + 1), Version::Lite06),
        Err(DecodeError::StringTooLong { length: MAX_STRING_LEN + 1, max: MAX_STRING_LEN })
    );
    assert_eq!(decode::<TrackRequest>(&track(MAX_STRING_LEN as usize), Version::Lite06).unwrap().track.len(), 65_535);

    // A SETUP parameter whose length is over the parameter bound is refused by that length alone.
    let mut setup = vec![0x01, 0x40, 0x99]; // one parameter, ID 0x99
    moqt::coding::encode_varint(&mut setup, MAX_PARAMETER_LEN + 1).unwrap();
    assert_eq!(
        decode::<Setup>(&framed(&setup), Version::Lite06),
        Err(DecodeError::StringTooLong { length: MAX_PARAMETER_LEN + 1, max: MAX_PARAMETER_LEN })
    );
}

#[test]
fn timestamps_that_go_below_zero_are_an_error() {
    let mut timestamps = FrameTimestamps::new();
    assert_eq!(timestamps.apply(10), Ok(10));
    assert!(matches!(timestamps.apply(-11), Err(DecodeError::InvalidValue { field: "frame timestamp", .. })));
}
