//! moqt's relay over loopback QUIC: fan-out with one upstream subscription per track, session roots,
//! no reflection of a client's own broadcasts, and GOAWAY on shutdown, in every version where the
//! mechanism exists.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use moqt::endpoint::{Client, EndpointConfig, Server};
use moqt::model::{OriginProducer, TrackEvent};
use moqt::relay::{Relay, RelayConfig};
use moqt::session::{Origins, Session, SessionEvent};
use moqt::transport::tls::{Certificate, ClientTrust};
use moqt::wire::Version;
use tokio::time::timeout;

struct TestRelay {
    relay: Relay,
    addr: SocketAddr,
    cert: Certificate,
}

fn start_relay(version: Version) -> TestRelay {
    start_relay_with(version, RelayConfig::default())
}

fn start_relay_with(version: Version, relay_config: RelayConfig) -> TestRelay {
    let cert = cert();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), &cert, config(version)).unwrap();
    let addr = server.local_addr().unwrap();
    let relay = Relay::new(relay_config);
    let running = relay.clone();
    tokio::spawn(async move { running.run(server).await });
    TestRelay { relay, addr, cert }
}

impl TestRelay {
    fn client(&self, version: Version) -> Client {
        let trust = ClientTrust::Fingerprint(vec![self.cert.fingerprint()]);
        Client::new(
            "127.0.0.1:0".parse().unwrap(),
            &trust,
            EndpointConfig { versions: vec![version], ..Default::default() },
        )
        .unwrap()
    }

    async fn connect(&self, version: Version, path: Option<&str>, origins: Origins) -> Session {
        let path = path.filter(|_| version.has_setup()).map(str::to_string);
        timeout(WAIT, self.client(version).connect(self.addr, "localhost", path, origins)).await.unwrap().unwrap()
    }

    async fn subscriber(&self, version: Version, path: Option<&str>) -> (Session, OriginProducer) {
        let remote = OriginProducer::default();
        let origins = Origins { subscribe: Some(remote.clone().into()), ..Default::default() };
        (self.connect(version, path, origins).await, remote)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_with_one_upstream_subscription() {
    init_logs();
    for version in Version::ALL {
        let relay = start_relay(version);
        let mut published = publish("room/alice");
        let _publisher = relay
            .connect(version, None, Origins { publish: Some(published.origin.consume()), ..Default::default() })
            .await;
        let mut subscribers = Vec::new();
        for _ in 0..3 {
            let (session, remote) = relay.subscriber(version, None).await;
            let broadcast = announced(&remote, &path("room/alice")).await;
            let track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
            subscribers.push((session, track));
        }
        timeout(WAIT, published.track.used()).await.unwrap();
        let metrics = relay.relay.metrics();
        assert_eq!(metrics.sessions_active, 4, "{version}: one publisher and three subscribers");
        assert!(metrics.sessions_by_version.contains(&(version, 4)), "{version}: {metrics:?}");
        assert_eq!(metrics.broadcasts, 1);
        assert!(metrics.prometheus().contains(&format!("moqt_sessions_total{{version=\"{version}\"}} 4")));
        // Let every downstream subscription reach the relay before counting upstream consumers.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(published.track.consumer_count(), 1, "{version}: one upstream subscription for three subscribers");
        write_groups(&mut published.track, 2, 3);
        for (_, track) in &mut subscribers {
            let mut seen = Vec::new();
            while seen.len() < 2 {
                match next_event(track).await {
                    TrackEvent::Group(mut group) => {
                        let g = group.sequence();
                        let frames = read_group(&mut group).await;
                        assert_eq!(
                            frames.iter().map(|f| f.payload.clone()).collect::<Vec<_>>(),
                            (0..3).map(|f| payload(g, f)).collect::<Vec<_>>(),
                            "{version}"
                        );
                        seen.push(g);
                    }
                    TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_scoped_to_their_root() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let relay = start_relay(version);
        let published = publish("x");
        let _publisher = relay
            .connect(version, Some("/a"), Origins { publish: Some(published.origin.consume()), ..Default::default() })
            .await;
        let (_same, same_root) = relay.subscriber(version, Some("/a")).await;
        announced(&same_root, &path("x")).await;
        let (_top, top) = relay.subscriber(version, Some("/")).await;
        announced(&top, &path("a/x")).await;
        let (_other, other_root) = relay.subscriber(version, Some("/b?jwt=ignored")).await;
        let mut announcements = other_root.consume();
        let nothing = timeout(Duration::from_millis(300), announcements.next_announcement()).await;
        assert!(nothing.is_err(), "{version}: /b saw {:?}", nothing);
        // The relay's origin holds it under the root.
        assert!(relay.relay.origin().consume_broadcast(&path("a/x")).is_some(), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_not_offered_its_own_broadcast() {
    init_logs();
    for version in Version::ALL {
        let relay = start_relay(version);
        let published = publish("mine");
        let inbox = OriginProducer::default();
        let origins = Origins {
            publish: Some(published.origin.consume()),
            subscribe: Some(inbox.clone().into()),
            ..Default::default()
        };
        let _both = relay.connect(version, None, origins).await;
        // Another client's broadcast arrives; our own never does.
        let theirs = publish("theirs");
        let _other = relay
            .connect(version, None, Origins { publish: Some(theirs.origin.consume()), ..Default::default() })
            .await;
        let mut announcements = inbox.consume();
        let first = timeout(WAIT, announcements.next_announcement()).await.unwrap().unwrap();
        assert_eq!(first.path(), &path("theirs"), "{version}");
        let more = timeout(Duration::from_millis(300), announcements.next_announcement()).await;
        assert!(more.is_err(), "{version}: also saw {more:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_goaway() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let relay = start_relay(version);
        let (mut session, _remote) = relay.subscriber(version, None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        relay.relay.shutdown("moql://127.0.0.1:4443/");
        let event = timeout(WAIT, session.next_event()).await.unwrap();
        assert_eq!(event, SessionEvent::GoingAway { uri: "moql://127.0.0.1:4443/".into() }, "{version}");
    }
}

/// Relays joined with `connect_peer`: `links` are (from, to) indexes; `from` dials `to`.
async fn cluster(
    version: Version,
    count: usize,
    links: &[(usize, usize)],
) -> (Vec<TestRelay>, Vec<moqt::reconnect::PersistentClient>) {
    let relays: Vec<TestRelay> = (0..count).map(|_| start_relay(version)).collect();
    let mut peers = Vec::new();
    for (from, to) in links {
        let trust = ClientTrust::Fingerprint(vec![relays[*to].cert.fingerprint()]);
        let target = moqt::reconnect::Target {
            addr: relays[*to].addr,
            server_name: "localhost".into(),
            path: None,
            webtransport: None,
        };
        let endpoint = EndpointConfig { versions: vec![version], ..Default::default() };
        peers.push(relays[*from].relay.connect_peer("127.0.0.1:0".parse().unwrap(), &trust, target, endpoint).unwrap());
    }
    (relays, peers)
}

async fn publish_and_read_across(version: Version, relays: &[TestRelay], from: usize, to: usize) {
    let mut published = publish("room/alice");
    let _publisher = relays[from]
        .connect(version, None, Origins { publish: Some(published.origin.consume()), ..Default::default() })
        .await;
    let (_subscriber, remote) = relays[to].subscriber(version, None).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
    timeout(WAIT, published.track.used())
        .await
        .unwrap_or_else(|_| panic!("{version}: no subscription reached the publisher"));
    write_groups(&mut published.track, 2, 2);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut track).await {
            TrackEvent::Group(mut group) => {
                let g = group.sequence();
                let frames = read_group(&mut group).await;
                assert_eq!(frames[1].payload, payload(g, 1), "{version}");
                seen.push(g);
            }
            TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
        }
    }
    assert_eq!(published.track.consumer_count(), 1, "{version}: one subscription upstream across the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_relays_carries_a_broadcast_end_to_end() {
    init_logs();
    for version in Version::ALL {
        // 0 <- 1 <- 2: relay 1 dials 0, relay 2 dials 1.
        let (relays, _peers) = cluster(version, 3, &[(1, 0), (2, 1)]).await;
        publish_and_read_across(version, &relays, 0, 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triangle_of_relays_forms_no_loop() {
    init_logs();
    let version = Version::Lite06;
    let (relays, _peers) = cluster(version, 3, &[(1, 0), (2, 1), (0, 2)]).await;
    publish_and_read_across(version, &relays, 0, 2).await;
    // Once the routes settled, announcements stop: a loop would keep them coming.
    let (_watcher, remote) = relays[1].subscriber(version, None).await;
    let mut announcements = remote.consume();
    let mut count = 0;
    while let Ok(Some(_)) = timeout(Duration::from_millis(500), announcements.next_announcement()).await {
        count += 1;
        assert!(count < 20, "announcements keep coming: a loop formed");
    }
    // Each relay holds one path: no duplicate routes from reflections.
    for relay in &relays {
        assert!(
            relay.relay.origin().broadcast_count() <= 1,
            "a relay holds {} paths",
            relay.relay.origin().broadcast_count()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_public_paths_are_open_to_anonymous_sessions() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let relay = start_relay_with(version, RelayConfig { public: vec!["anon/**".into()], ..Default::default() });
        let (session, _) = relay.subscriber(version, Some("/anon/room?jwt=none")).await;
        assert_eq!(session.event(), SessionEvent::Active, "{version}");
        let rejected =
            relay.client(version).connect(relay.addr, "localhost", Some("/secret".into()), Default::default()).await;
        // Refused with UNAUTHORIZED (0x2), during the SETUP exchange or right after it.
        let refusal = match rejected {
            Ok(mut session) => timeout(WAIT, session.closed()).await.unwrap().to_string(),
            Err(err) => err.to_string(),
        };
        assert!(refusal.contains("code 0x2"), "{version}: {refusal}");
        assert_eq!(relay.relay.metrics().sessions_rejected, 1, "{version}");
    }
}
