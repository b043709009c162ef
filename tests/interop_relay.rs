//! Interop with the reference relay, moq-relay 0.17.10, on loopback: a moqt publisher through
//! moq-relay to a moqt subscriber, every version forced with --listen-version.

mod common;

#[path = "common/relay.rs"]
mod relay;

use std::time::Duration;

use common::*;
use moqt::endpoint::{Client, EndpointConfig};
use moqt::model::{OriginProducer, TrackEvent};
use moqt::session::Origins;
use moqt::transport::tls::ClientTrust;
use moqt::wire::Version;
use relay::{Relay, require_relay};
use tokio::time::timeout;

fn client(relay: &Relay, version: Version) -> Client {
    let trust = ClientTrust::Fingerprint(vec![relay.fingerprint]);
    Client::new(
        "127.0.0.1:0".parse().unwrap(),
        &trust,
        EndpointConfig { versions: vec![version], ..Default::default() },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_to_subscriber_through_moq_relay_each_version() {
    init_logs();
    let Some(binary) = require_relay("publisher_to_subscriber_through_moq_relay_each_version") else { return };
    for version in Version::ALL {
        let relay = Relay::start(&binary, Some(version));
        let mut published = publish("room/alice");
        let path = if version.has_setup() { Some("/".to_string()) } else { None };
        let origins = Origins { publish: Some(published.origin.consume()), subscribe: None };
        let _publisher = timeout(WAIT, client(&relay, version).connect(relay.addr, "localhost", path.clone(), origins))
            .await
            .unwrap_or_else(|_| panic!("{version}: publisher connect timed out"))
            .unwrap_or_else(|e| panic!("{version}: publisher connect: {e}"));
        let remote = OriginProducer::default();
        let origins = Origins { publish: None, subscribe: Some(remote.clone().into()) };
        let _subscriber = timeout(WAIT, client(&relay, version).connect(relay.addr, "localhost", path, origins))
            .await
            .unwrap_or_else(|_| panic!("{version}: subscriber connect timed out"))
            .unwrap_or_else(|e| panic!("{version}: subscriber connect: {e}"));
        let broadcast = announced(&remote, &common::path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap_or_else(|_| panic!("{version}: the relay never subscribed"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        write_groups(&mut published.track, 3, 4);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match next_event(&mut track).await {
                TrackEvent::Group(mut group) => {
                    let g = group.sequence();
                    let frames = read_group(&mut group).await;
                    assert_eq!(frames.len(), 4, "{version}");
                    for (f, frame) in frames.iter().enumerate() {
                        assert_eq!(frame.payload, payload(g, f as u64), "{version}");
                        if version >= Version::Lite05 {
                            assert_eq!(frame.timestamp, stamp(g, f as u64, 4), "{version}");
                        }
                    }
                    seen.push(g);
                }
                TrackEvent::Gap(gap) => panic!("{version}: gap {gap:?}"),
            }
        }
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2], "{version}");
    }
}
