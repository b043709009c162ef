//! Sessions over real loopback QUIC with real TLS: a publisher and a subscriber exchange frames in
//! each of the four versions, in both directions (server publishes, client publishes), checking
//! every byte, group boundaries, order within groups and timestamps.

use crate::common;

use common::*;
use moqt::endpoint::EndpointConfig;
use moqt::model::{self, BroadcastConsumer, OriginProducer, TrackProducer};
use moqt::session::Origins;
use moqt::transport::tls::ClientTrust;
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

/// A client offering `offered` to a server accepting `accepted`: the version they settle on.
async fn negotiated(accepted: Vec<Version>, offered: Vec<Version>) -> Version {
    let server = serve_endpoint(EndpointConfig { versions: accepted, ..Default::default() }, None, None);
    let trust = ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
    let client_config = EndpointConfig { versions: offered, ..Default::default() };
    let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, client_config).unwrap();
    let session = timeout(WAIT, client.connect(server.addr, "localhost", None, Origins::default()))
        .await
        .expect("connect in time")
        .expect("connect");
    session.version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_the_server_picks_among_what_the_client_offers() {
    init_logs();
    // A client offering all four (the default) gets the one version a narrowed server accepts.
    for version in Version::ALL {
        assert_eq!(negotiated(vec![version], Version::ALL.to_vec()).await, version);
    }
    // A server accepting all four picks its first preference the client offers: 06 when the
    // client offers everything.
    assert_eq!(negotiated(Version::ALL.to_vec(), Version::ALL.to_vec()).await, Version::Lite06);
    assert_eq!(negotiated(Version::ALL.to_vec(), vec![Version::Lite03, Version::Lite04]).await, Version::Lite04);
    assert_eq!(negotiated(Version::ALL.to_vec(), vec![Version::Lite03]).await, Version::Lite03);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lite_03_and_04_raw_quic_sessions_get_the_root_path() {
    init_logs();
    for version in [Version::Lite04, Version::Lite03] {
        let server = serve(version, None, None);
        // The path cannot travel without SETUP (spec 10.9): the server's application sees the root.
        let path = Some("/room/alice?jwt=x".to_string());
        let session = timeout(WAIT, server.client(version).connect(server.addr, "localhost", path, Origins::default()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.version(), version);
        server.wait_sessions(1).await;
        assert_eq!(server.paths.lock().unwrap().clone(), vec![String::new()], "{version}");
    }
}
