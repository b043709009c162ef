//! Encode and decode of each moq-lite message kind, in lite-06 (the default) and, where the form
//! differs, lite-03. Run: `cargo bench --bench codec`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use moqt::coding::Path;
use moqt::wire::*;

fn path(text: &str) -> Path {
    Path::new(text).unwrap()
}

/// Benchmarks encoding `message` and decoding its bytes.
fn both<M: Message>(c: &mut Criterion, name: &str, version: Version, message: M) {
    let bytes = message.to_bytes(version).unwrap();
    let mut out = Vec::with_capacity(bytes.len() * 2);
    c.bench_function(&format!("encode/{version}/{name}"), |b| {
        b.iter(|| {
            out.clear();
            black_box(&message).encode(&mut out, version).unwrap();
            black_box(out.len())
        })
    });
    c.bench_function(&format!("decode/{version}/{name}"), |b| {
        b.iter(|| {
            let mut buf = black_box(&bytes[..]);
            black_box(M::decode(&mut buf, version).unwrap())
        })
    });
}

fn messages(c: &mut Criterion) {
    for version in [Version::Lite06, Version::Lite03] {
        let setup =
            Setup { path: Some("/anon/room?jwt=abc".into()), hop: Some(42), cost: Some(1), ..Default::default() };
        if version.has_setup() {
            both(c, "setup", version, setup);
        }
        both(c, "announce_request", version, AnnounceRequest { prefix: path("room"), exclude_hop: 0 });
        let announcement = if version >= Version::Lite06 {
            Announcement::Start { suffix: path("alice"), hops: vec![7, 8], warm_cost: 1, cold_cost: 3 }
        } else {
            Announcement::Legacy { status: AnnounceStatus::Active, suffix: path("alice"), hops: vec![0, 0] }
        };
        both(c, "announce", version, announcement);
        let window = SubscribeWindow { priority: 2, max_age: 500, group_start: Some(5), ..Default::default() };
        let subscribe = Subscribe { id: 1, broadcast: path("room/alice"), track: "video".into(), window };
        both(c, "subscribe", version, subscribe);
        both(c, "subscribe_update", version, SubscribeUpdate { window });
        let ok = if version >= Version::Lite05 {
            SubscribeResponse::Ok { group: 5 }
        } else {
            SubscribeResponse::OkLegacy(SubscribeOkLegacy {
                priority: 2,
                ordered: false,
                max_latency: 0,
                start: Some(5),
                end: None,
            })
        };
        both(c, "subscribe_ok", version, ok);
        both(c, "subscribe_drop", version, SubscribeResponse::Drop { start: 6, end: 7, code: 0x34 });
        both(c, "group", version, GroupHeader { subscribe_id: 3, sequence: 1234, frame_start: 0 });
        // Timestamps from lite-05, RTT from lite-04.
        let timestamp_delta = if version >= Version::Lite05 { 33 } else { 0 };
        both(c, "frame_header", version, FrameHeader { timestamp_delta, payload_len: 4096 });
        let rtt = if version >= Version::Lite04 { 40 } else { 0 };
        both(c, "probe", version, Probe { bitrate: 8_000_000, rtt });
        if version >= Version::Lite05 {
            both(c, "track", version, TrackRequest { broadcast: path("room/alice"), track: "video".into() });
            both(c, "track_info", version, TrackInfo::default());
            let fetch = Fetch {
                broadcast: path("room/alice"),
                track: "video".into(),
                priority: 2,
                group: 7,
                ..Default::default()
            };
            both(c, "fetch", version, fetch);
        }
        if version.has_goaway() {
            both(c, "goaway", version, Goaway { uri: "https://relay.example/anon".into() });
        }
    }
    // A DATAGRAM carries its payload: encode copies it, decode shares it.
    let datagram = Datagram { subscribe_id: 0, sequence: 5, timestamp: 1000, payload: Bytes::from(vec![7u8; 1000]) };
    let mut out = Vec::with_capacity(1100);
    c.bench_function("encode/moq-lite-06/datagram_1000B", |b| {
        b.iter(|| {
            out.clear();
            datagram.encode(&mut out, Version::Lite06).unwrap();
            black_box(out.len())
        })
    });
    let bytes = Bytes::from(out.clone());
    c.bench_function("decode/moq-lite-06/datagram_1000B", |b| {
        b.iter(|| black_box(Datagram::decode(black_box(bytes.clone()), Version::Lite06).unwrap()))
    });
}

criterion_group!(benches, messages);
criterion_main!(benches);
