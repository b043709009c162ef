//! Sessions over real loopback QUIC with real TLS: a publisher and a subscriber exchange frames in
//! each of the four versions, in both directions (server publishes, client publishes), checking
//! every byte, group boundaries, order within groups and timestamps.

mod common;

use common::*;
use moqt::model::{self, BroadcastConsumer, OriginProducer, TrackProducer};
use moqt::session::Origins;
use moqt::wire::Version;
use tokio::time::timeout;

/// Writes the groups once the track has a subscriber.
async fn produce(mut track: TrackProducer, groups: u64, frames: u64) -> TrackProducer {
    timeout(WAIT, track.used()).await.expect("a subscriber arrives");
    write_groups(&mut track, groups, frames);
    track
}

/// Reads `groups` groups and checks every frame; lite-05+ carries timestamps, older versions 0.
async fn check_received(broadcast: BroadcastConsumer, version: Version, groups: u64, frames: u64) {
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.expect("subscribe in time").expect("track");
    let mut seen = Vec::new();
    while seen.len() < groups as usize {
        let mut group = match next_event(&mut track).await {
            model::TrackEvent::Group(group) => group,
            model::TrackEvent::Gap(gap) => panic!("{version}: unexpected gap {gap:?}"),
        };
        let g = group.sequence();
        let received = read_group(&mut group).await;
        assert_eq!(received.len() as u64, frames, "{version}: frames in group {g}");
        for (f, frame) in received.iter().enumerate() {
            let f = f as u64;
            assert_eq!(frame.payload, payload(g, f), "{version}");
            let expected = if version >= Version::Lite05 { stamp(g, f, frames) } else { 0 };
            assert_eq!(frame.timestamp, expected, "{version}: timestamp of group {g} frame {f}");
        }
        seen.push(g);
    }
    seen.sort();
    assert_eq!(seen, (0..groups).collect::<Vec<_>>(), "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_publishes_client_subscribes_each_version() {
    init_logs();
    for version in Version::ALL {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (session, remote) = server.subscriber(version).await;
        assert_eq!(session.version(), version);
        let broadcast = announced(&remote, &path("room/alice")).await;
        let producer = tokio::spawn(produce(published.track, 3, 4));
        check_received(broadcast, version, 3, 4).await;
        drop(producer.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publishes_server_subscribes_each_version() {
    init_logs();
    for version in Version::ALL {
        let remote = OriginProducer::default();
        let server = serve(version, None, Some(remote.clone()));
        let published = publish("room/bob");
        let origins = Origins { publish: Some(published.origin.consume()), subscribe: None, ..Default::default() };
        let _session = timeout(WAIT, server.client(version).connect(server.addr, "localhost", None, origins))
            .await
            .unwrap()
            .unwrap();
        let broadcast = announced(&remote, &path("room/bob")).await;
        let producer = tokio::spawn(produce(published.track, 2, 3));
        check_received(broadcast, version, 2, 3).await;
        drop(producer.await.unwrap());
    }
}
