//! Property tests: every message of every version survives encode then decode unchanged, consumes
//! exactly its own bytes, and every strict prefix of its encoding reads as "need more bytes" without
//! consuming anything (what incremental decoding relies on).

use bytes::Bytes;
use moqt::coding::{DecodeError, MAX_FRAME_LEN, MAX_VARINT, Parameters, Path};
use moqt::wire::*;
use proptest::prelude::*;

fn check<M: Message + PartialEq + std::fmt::Debug>(message: &M, version: Version) -> Result<(), TestCaseError> {
    let bytes = message.to_bytes(version).map_err(|e| TestCaseError::fail(format!("{version}: encode: {e}")))?;
    let mut input = &bytes[..];
    let decoded = M::decode(&mut input, version).map_err(|e| TestCaseError::fail(format!("{version}: decode: {e}")))?;
    prop_assert_eq!(&decoded, message, "{}", version);
    prop_assert!(input.is_empty(), "{}: {} bytes left", version, input.len());
    for cut in 0..bytes.len() {
        let mut prefix = &bytes[..cut];
        prop_assert_eq!(M::decode(&mut prefix, version), Err(DecodeError::Short), "{} prefix {}", version, cut);
        prop_assert_eq!(prefix.len(), cut, "a failed decode consumed input");
    }
    Ok(())
}

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.to_vec())
}

fn version_since(since: Version) -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.iter().copied().filter(|v| *v >= since).collect::<Vec<_>>())
}

fn varint() -> impl Strategy<Value = u64> {
    prop_oneof![0..64u64, 0..16384u64, 0..=MAX_VARINT]
}

/// Values that the "+1" form can carry.
fn plus_one() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(prop_oneof![0..1000u64, 0..MAX_VARINT])
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec("[a-z0-9._-]{1,6}|\\PC{1,3}", 0..=32).prop_filter_map(
        "segments without slashes",
        |segments| {
            let text = segments.join("/");
            let path = Path::new(&text).ok()?;
            (path.segment_count() == segments.len()).then_some(path)
        },
    )
}

fn name() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn hops(with_ids: bool) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(varint(), 0..=32).prop_map(move |list| {
        if !with_ids {
            return vec![0; list.len()];
        }
        let mut seen = Vec::new();
        list.into_iter()
            .filter(|hop| {
                *hop == 0
                    || (!seen.contains(hop) && {
                        seen.push(*hop);
                        true
                    })
            })
            .collect()
    })
}

fn window(version: Version) -> impl Strategy<Value = SubscribeWindow> {
    let modern = version >= Version::Lite06;
    (any::<u8>(), any::<bool>(), varint(), plus_one(), plus_one(), varint(), plus_one()).prop_map(
        move |(priority, ordered, max_age, group_start, group_end, frame_start, frame_end)| {
            if modern {
                SubscribeWindow {
                    priority,
                    ordered: false,
                    max_age,
                    group_start: group_start.filter(|g| *g != 0),
                    group_end,
                    frame_start,
                    frame_end: group_end.and(frame_end),
                }
            } else {
                SubscribeWindow { priority, ordered, max_age, group_start, group_end, frame_start: 0, frame_end: None }
            }
        },
    )
}

fn setup() -> impl Strategy<Value = Setup> {
    let probe = prop::sample::select(vec![ProbeLevel::None, ProbeLevel::Report, ProbeLevel::Increase]);
    let role = prop::sample::select(vec![Role::Both, Role::Publisher, Role::Subscriber]);
    let unknown = prop::collection::btree_map(6..10_000u64, prop::collection::vec(any::<u8>(), 0..16), 0..8);
    (probe, prop::option::of("\\PC{1,40}"), role, prop::option::of(varint()), prop::option::of(varint()), unknown)
        .prop_map(|(probe, path, role, cost, hop, unknown)| {
            let mut params = Parameters::new();
            for (id, value) in unknown {
                params.set(id, Bytes::from(value));
            }
            Setup { probe, path, role, cost, hop, unknown: params }
        })
}

fn announcement(version: Version) -> BoxedStrategy<Announcement> {
    if version >= Version::Lite06 {
        prop_oneof![
            (path(), hops(true), varint(), varint()).prop_map(|(suffix, hops, warm_cost, cold_cost)| {
                Announcement::Start { suffix, hops, warm_cost, cold_cost }
            }),
            varint().prop_map(|id| Announcement::End { id }),
            (varint(), hops(true), varint(), varint())
                .prop_map(|(id, hops, warm_cost, cold_cost)| Announcement::Update { id, hops, warm_cost, cold_cost }),
        ]
        .boxed()
    } else {
        let mut statuses = vec![AnnounceStatus::Ended, AnnounceStatus::Active];
        if version >= Version::Lite05 {
            statuses.push(AnnounceStatus::Restart);
        }
        (prop::sample::select(statuses), path(), hops(version >= Version::Lite04))
            .prop_map(|(status, suffix, hops)| Announcement::Legacy { status, suffix, hops })
            .boxed()
    }
}

fn subscribe_response(version: Version) -> BoxedStrategy<SubscribeResponse> {
    let drop = (varint(), varint(), varint()).prop_map(|(a, b, code)| SubscribeResponse::Drop {
        start: a.min(b),
        end: a.max(b),
        code,
    });
    if version >= Version::Lite05 {
        prop_oneof![
            varint().prop_map(|group| SubscribeResponse::Ok { group }),
            varint().prop_map(|group| SubscribeResponse::End { group }),
            drop,
        ]
        .boxed()
    } else {
        let ok = (any::<u8>(), any::<bool>(), varint(), plus_one(), plus_one()).prop_map(
            |(priority, ordered, max_latency, start, end)| {
                SubscribeResponse::OkLegacy(SubscribeOkLegacy { priority, ordered, max_latency, start, end })
            },
        );
        prop_oneof![ok, drop].boxed()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn setup_round_trips(v in version_since(Version::Lite05), message in setup()) {
        check(&message, v)?;
    }

    #[test]
    fn announce_request_round_trips(v in version(), prefix in path(), exclude in varint()) {
        let exclude_hop = if matches!(v, Version::Lite04 | Version::Lite05) { exclude } else { 0 };
        check(&AnnounceRequest { prefix, exclude_hop }, v)?;
    }

    #[test]
    fn announce_ok_round_trips(v in version_since(Version::Lite05), hop_id in varint(), active_count in varint()) {
        check(&AnnounceOk { hop_id, active_count }, v)?;
    }

    #[test]
    fn announcements_round_trip((v, message) in version().prop_flat_map(|v| (Just(v), announcement(v)))) {
        check(&message, v)?;
    }

    #[test]
    fn subscribe_round_trips(
        (v, window) in version().prop_flat_map(|v| (Just(v), window(v))),
        id in varint(), broadcast in path(), track in name(),
    ) {
        check(&Subscribe { id, broadcast, track, window }, v)?;
    }

    #[test]
    fn subscribe_update_round_trips((v, window) in version().prop_flat_map(|v| (Just(v), window(v)))) {
        check(&SubscribeUpdate { window }, v)?;
    }

    #[test]
    fn subscribe_responses_round_trip((v, message) in version().prop_flat_map(|v| (Just(v), subscribe_response(v)))) {
        check(&message, v)?;
    }

    #[test]
    fn track_round_trips(
        v in version_since(Version::Lite05), broadcast in path(), track in name(),
        priority in any::<u8>(), ordered in any::<bool>(), max_age in varint(), timescale in 1..=MAX_VARINT,
    ) {
        check(&TrackRequest { broadcast, track }, v)?;
        let ordered = ordered && v < Version::Lite06;
        check(&TrackInfo { priority, ordered, max_age, timescale }, v)?;
    }

    #[test]
    fn fetch_round_trips(
        v in version_since(Version::Lite05), broadcast in path(), track in name(), priority in any::<u8>(),
        group in varint(), frame_start in 0..1_000_000u64, extra in plus_one(),
    ) {
        let (frame_start, frame_end) = if v >= Version::Lite06 {
            (frame_start, extra.map(|e| frame_start.saturating_add(e).min(MAX_VARINT - 1)))
        } else {
            (0, None)
        };
        check(&Fetch { broadcast, track, priority, group, frame_start, frame_end }, v)?;
    }

    #[test]
    fn probe_round_trips(v in version(), bitrate in varint(), rtt in varint()) {
        let rtt = if v >= Version::Lite04 { rtt } else { 0 };
        check(&Probe { bitrate, rtt }, v)?;
    }

    #[test]
    fn goaway_round_trips(v in version_since(Version::Lite04), uri in "\\PC{0,200}") {
        check(&Goaway { uri }, v)?;
    }

    #[test]
    fn group_and_frame_headers_round_trip(
        v in version(), subscribe_id in varint(), sequence in varint(), frame_start in varint(),
        timestamp_delta in -(1i64 << 61)..(1i64 << 61), payload_len in 0..=MAX_FRAME_LEN,
    ) {
        let frame_start = if v >= Version::Lite06 { frame_start } else { 0 };
        check(&GroupHeader { subscribe_id, sequence, frame_start }, v)?;
        let timestamp_delta = if v >= Version::Lite05 { timestamp_delta } else { 0 };
        check(&FrameHeader { timestamp_delta, payload_len }, v)?;
    }

    #[test]
    fn datagrams_round_trip(
        v in version_since(Version::Lite05), subscribe_id in varint(), sequence in varint(), timestamp in varint(),
        payload in prop::collection::vec(any::<u8>(), 0..1170),
    ) {
        let datagram = Datagram { subscribe_id, sequence, timestamp, payload: Bytes::from(payload) };
        let mut out = Vec::new();
        match datagram.encode(&mut out, v) {
            Ok(()) => prop_assert_eq!(Datagram::decode(Bytes::from(out), v).unwrap(), datagram),
            Err(_) => prop_assert!(datagram.encoded_len() > MAX_DATAGRAM_LEN),
        }
    }

    #[test]
    fn timestamps_survive_delta_coding(stamps in prop::collection::vec(any::<u32>(), 1..50)) {
        let mut sender = FrameTimestamps::new();
        let mut receiver = FrameTimestamps::new();
        for ts in stamps {
            let delta = sender.delta_for(u64::from(ts));
            prop_assert_eq!(receiver.apply(delta).unwrap(), u64::from(ts));
        }
    }
}
