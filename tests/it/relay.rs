//! moqt's relay over loopback QUIC: fan-out with one upstream subscription per track, session roots,
//! no reflection of a client's own broadcasts, and GOAWAY on shutdown, in every version where the
//! mechanism exists.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use moqt::auth::{AuthConfig, Claims, Key, KeyAlgorithm};
use moqt::endpoint::{Client, EndpointConfig, Server};
use moqt::model::{self, OriginProducer, TrackEvent};
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
async fn the_relays_own_setup_timeout_closes_a_silent_client() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        // The server's endpoint keeps the default 10 s; the relay's session settings say 300 ms.
        let mut relay_config = RelayConfig::default();
        relay_config.session.setup_timeout = Duration::from_millis(300);
        let relay = start_relay_with(version, relay_config);
        let endpoint = raw_endpoint(relay.cert.fingerprint(), version, quinn::TransportConfig::default());
        let conn = raw_connect_from(&endpoint, relay.addr).await;
        let started = tokio::time::Instant::now();
        assert_eq!(close_code(&conn).await, moqt::coding::SessionCode::ControlMessageTimeout.to_u64(), "{version}");
        let after = started.elapsed();
        assert!(after < Duration::from_secs(5), "{version}: closed after {after:?}, not the relay's 300 ms");
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
        // Six frames in once, out three times: the traffic counters say so.
        let bytes: u64 = (0..2).flat_map(|g| (0..3).map(move |f| payload(g, f).len() as u64)).sum();
        let expected = moqt::session::TrafficSnapshot {
            frames_in: 6,
            bytes_in: bytes,
            groups_in: 2,
            frames_out: 18,
            bytes_out: 3 * bytes,
            groups_out: 6,
            groups_dropped: 0,
            subscriptions_active: 3,
            subscriptions_total: 3,
        };
        // Streams report when they end, which may trail the last frame read.
        let counted = timeout(WAIT, async {
            while relay.relay.metrics().traffic != expected {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(counted.is_ok(), "{version}: {:?}", relay.relay.metrics().traffic);
        drop(subscribers);
        let released = timeout(WAIT, async {
            while relay.relay.metrics().traffic.subscriptions_active != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(released.is_ok(), "{version}: subscriptions still counted after their sessions ended");
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
    let priced: Vec<(usize, usize, Option<u64>)> = links.iter().map(|(from, to)| (*from, *to, None)).collect();
    priced_cluster(version, count, &priced).await
}

/// Like [`cluster`], each link with an optional price (`?cost=`).
async fn priced_cluster(
    version: Version,
    count: usize,
    links: &[(usize, usize, Option<u64>)],
) -> (Vec<TestRelay>, Vec<moqt::reconnect::PersistentClient>) {
    let relays: Vec<TestRelay> = (0..count).map(|_| start_relay(version)).collect();
    let mut peers = Vec::new();
    for (from, to, cost) in links {
        let trust = ClientTrust::Fingerprint(vec![relays[*to].cert.fingerprint()]);
        let target = moqt::reconnect::Target {
            addr: relays[*to].addr,
            server_name: "localhost".into(),
            path: None,
            webtransport: None,
        };
        let mut endpoint = EndpointConfig { versions: vec![version], ..Default::default() };
        endpoint.session.cost = *cost;
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
        let anon: moqt::auth::Patterns = ["anon/**".parse().unwrap()].into_iter().collect();
        let auth = AuthConfig { public_publish: anon.clone(), public_subscribe: anon, key: None };
        let relay = start_relay_with(version, RelayConfig { auth, ..Default::default() });
        let (session, _) = relay.subscriber(version, Some("/anon/room?lang=en")).await;
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

fn patterns(texts: &[&str]) -> moqt::auth::Patterns {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

/// A relay verifying tokens with a fresh key, and a signer for tokens rooted at `room`.
fn token_relay(version: Version) -> (TestRelay, impl Fn(&[&str], &[&str], u64) -> String) {
    let key = Key::generate(KeyAlgorithm::Hs256, None).unwrap();
    let auth = AuthConfig { key: Some(key.clone()), ..Default::default() };
    let relay = start_relay_with(version, RelayConfig { auth, ..Default::default() });
    let sign = move |publish: &[&str], subscribe: &[&str], seconds: u64| {
        let claims = Claims {
            root: "room".into(),
            publish: patterns(publish),
            subscribe: patterns(subscribe),
            expires: Some(std::time::SystemTime::now() + Duration::from_secs(seconds)),
            ..Default::default()
        };
        key.sign(&claims).unwrap()
    };
    (relay, sign)
}

async fn refusal(relay: &TestRelay, version: Version, path: &str) -> String {
    let rejected = relay.client(version).connect(relay.addr, "localhost", Some(path.into()), Default::default()).await;
    match rejected {
        Ok(mut session) => timeout(WAIT, session.closed()).await.unwrap().to_string(),
        Err(err) => err.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scope_what_a_session_may_publish_and_see() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let (relay, sign) = token_relay(version);
        // The publisher offers `eve` and `zed` but may publish only `zed`. Announcements go out in
        // path order, so once `zed` arrived `eve` was already refused.
        let mut published = publish("zed");
        let eve = model::BroadcastProducer::default();
        let _eve = published.origin.publish(path("eve"), eve.consume(), model::Route::local()).unwrap();
        let publisher_path = format!("/room?jwt={}", sign(&["zed"], &[], 60));
        let _publisher = relay
            .connect(
                version,
                Some(&publisher_path),
                Origins { publish: Some(published.origin.consume()), ..Default::default() },
            )
            .await;
        let (_watcher, everything) =
            relay.subscriber(version, Some(&format!("/room?jwt={}", sign(&[], &["**"], 60)))).await;
        let broadcast = announced(&everything, &path("zed")).await;
        assert!(relay.relay.origin().consume_broadcast(&path("room/eve")).is_none(), "{version}: eve was refused");
        // Frames flow to a session allowed to subscribe.
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_groups(&mut published.track, 1, 2);
        assert!(matches!(next_event(&mut track).await, TrackEvent::Group(_)), "{version}");
        // A session allowed only `bob` is admitted but sees nothing of `zed`.
        let (_narrow, narrow) =
            relay.subscriber(version, Some(&format!("/room?jwt={}", sign(&[], &["bob"], 60)))).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(narrow.consume_broadcast(&path("zed")).is_none(), "{version}: zed is outside the grant");
        // No token, a forged one, or a path outside the token's root: UNAUTHORIZED (0x2).
        let forged = Key::generate(KeyAlgorithm::Hs256, None)
            .unwrap()
            .sign(&Claims { subscribe: patterns(&["**"]), ..Default::default() });
        for path in [
            "/room".to_string(),
            format!("/room?jwt={}", forged.unwrap()),
            format!("/elsewhere?jwt={}", sign(&[], &["**"], 60)),
        ] {
            let refused = refusal(&relay, version, &path).await;
            assert!(refused.contains("code 0x2"), "{version} {path}: {refused}");
        }
        assert_eq!(relay.relay.metrics().sessions_rejected, 3, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_ends_its_session() {
    init_logs();
    let version = Version::Lite06;
    let (relay, sign) = token_relay(version);
    // `exp` counts whole seconds: this token ends one to two seconds from now.
    let (mut session, _) = relay.subscriber(version, Some(&format!("/room?jwt={}", sign(&[], &["**"], 2)))).await;
    let ended = timeout(Duration::from_secs(5), session.closed()).await.expect("closed at expiry");
    assert!(ended.to_string().contains("code 0x2"), "{ended}");
}

/// Graceful publisher relay switchover: relay A shuts down and sends its publisher to relay B;
/// relay C, peered with both, sees the broadcast's route move from A to B, and a subscriber on C
/// keeps its track: it loses at most the groups in flight during the move, each reported as a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_moving_between_relays_costs_subscribers_only_the_groups_in_flight() {
    use moqt::reconnect::{PersistentClient, ReconnectSettings, Target};
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let (a, b, c) = (start_relay(version), start_relay(version), start_relay(version));
        let trust = ClientTrust::Fingerprint(vec![a.cert.fingerprint(), b.cert.fingerprint(), c.cert.fingerprint()]);
        let endpoint = || EndpointConfig { versions: vec![version], ..Default::default() };
        let target = |relay: &TestRelay| Target {
            addr: relay.addr,
            server_name: "localhost".into(),
            path: None,
            webtransport: None,
        };
        let bind = "127.0.0.1:0".parse().unwrap();
        let _c_to_a = c.relay.connect_peer(bind, &trust, target(&a), endpoint()).unwrap();
        let _c_to_b = c.relay.connect_peer(bind, &trust, target(&b), endpoint()).unwrap();

        let mut published = publish("room/alice");
        let client = Client::new(bind, &trust, endpoint()).unwrap();
        let _publisher = PersistentClient::start(
            client,
            target(&a),
            Some(published.origin.consume()),
            None,
            ReconnectSettings::default(),
        );
        let (_subscriber, remote) = c.subscriber(version, None).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        let route = c.relay.origin().best_route(&path("room/alice")).unwrap();
        assert!(route.hops.contains(&a.relay.hop_id()), "{version}: first through A: {route:?}");

        // One single-frame group every 20 ms, for the whole test.
        let writer = tokio::spawn(async move {
            loop {
                write_groups(&mut published.track, 1, 1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut received = Vec::new();
        let mut gaps = Vec::new();
        let mut switched_at = None;
        let outcome = timeout(Duration::from_secs(20), async {
            loop {
                match next_event(&mut track).await {
                    TrackEvent::Group(group) => received.push(group.sequence()),
                    TrackEvent::Gap(gap) => gaps.push((gap.start, gap.end)),
                }
                let last = received.last().copied().unwrap_or(0);
                if switched_at.is_none() && received.len() >= 10 {
                    // A goes away, pointing every session at B.
                    a.relay.shutdown(&format!("moql://localhost:{}/", b.addr.port()));
                    switched_at = Some(last);
                }
                if switched_at.is_some_and(|at| last >= at + 50) {
                    return;
                }
            }
        })
        .await;
        writer.abort();
        assert!(outcome.is_ok(), "{version}: stalled after the switch: received {received:?}, gaps {gaps:?}");
        // Now served through B.
        let route = c.relay.origin().best_route(&path("room/alice")).unwrap();
        assert!(route.hops.contains(&b.relay.hop_id()), "{version}: then through B: {route:?}");
        assert!(!route.hops.contains(&a.relay.hop_id()), "{version}: then through B: {route:?}");
        // Every group from the first to the last was delivered or reported missing.
        let (first, last) = (received[0], *received.iter().max().unwrap());
        let lost: Vec<u64> = (first..=last).filter(|s| !received.contains(s)).collect();
        let reported = |s: &u64| gaps.iter().any(|(start, end)| start <= s && s <= end);
        assert!(lost.iter().all(reported), "{version}: lost {lost:?} but reported only {gaps:?}");
        // At most the groups in flight: 25 groups is half a second at this rate.
        assert!(lost.len() <= 25, "{version}: lost {} groups in the switch: {lost:?}", lost.len());
        eprintln!("{version}: switchover lost {} groups ({:?}), gaps reported {gaps:?}", lost.len(), lost);
    }
}

/// Over WebTransport the token travels in the CONNECT URL, so it works in versions without a
/// SETUP Path too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_over_webtransport_in_every_version() {
    init_logs();
    for version in Version::ALL {
        let (relay, sign) = token_relay(version);
        let url = |query: &str| format!("https://localhost:{}/room{query}", relay.addr.port());
        let remote = OriginProducer::default();
        let origins = Origins { subscribe: Some(remote.clone().into()), ..Default::default() };
        let token = format!("?jwt={}", sign(&[], &["**"], 60));
        let session = timeout(WAIT, relay.client(version).connect_webtransport(&url(&token), origins)).await.unwrap();
        assert_eq!(session.unwrap().event(), SessionEvent::Active, "{version}");
        let refused = match relay.client(version).connect_webtransport(&url(""), Default::default()).await {
            Ok(mut session) => timeout(WAIT, session.closed()).await.unwrap().to_string(),
            Err(err) => err.to_string(),
        };
        assert!(refused.contains("code 0x2") && refused.contains("token is required"), "{version}: {refused}");
    }
}

/// Link prices decide the route: relay 3 reaches the publisher's relay 0 through 1 or through 2,
/// and the subscription goes the cheaper way, whichever that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_travel_the_cheapest_route() {
    init_logs();
    let version = Version::Lite06;
    for (via_1, via_2, cheaper) in [(10, 1, 2), (0, 5, 1)] {
        let links = [(1, 0, None), (2, 0, None), (3, 1, Some(via_1)), (3, 2, Some(via_2))];
        let (relays, _peers) = priced_cluster(version, 4, &links).await;
        let mut published = publish("room/alice");
        let _publisher = relays[0]
            .connect(version, None, Origins { publish: Some(published.origin.consume()), ..Default::default() })
            .await;
        let (_subscriber, remote) = relays[3].subscriber(version, None).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        // Routes arrive in either order; wait until the best one is the cheaper one.
        let route = timeout(WAIT, async {
            loop {
                let route = relays[3].relay.origin().best_route(&path("room/alice")).unwrap();
                if route.hops.contains(&relays[cheaper].relay.hop_id()) {
                    return route;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("costs {via_1}/{via_2}: never routed through relay {cheaper}"));
        let price = if cheaper == 1 { via_1 } else { via_2 };
        // 1 for the publisher's session, 1 for the unpriced link from relay 0, plus the priced link.
        assert_eq!(route.warm_cost, price + 2, "{route:?}");
        // The subscription follows the route: relay `cheaper` subscribes upstream, the other does not.
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_groups(&mut published.track, 1, 1);
        assert!(matches!(next_event(&mut track).await, TrackEvent::Group(_)));
        let dearer = 3 - cheaper;
        // Traffic is counted per group when its upstream stream ends, which may come just after
        // the subscriber has the group: wait for the count rather than read it once.
        let counted = timeout(WAIT, async {
            while relays[cheaper].relay.metrics().traffic.frames_in == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert!(counted.await.is_ok(), "relay {cheaper} carried it");
        assert_eq!(relays[dearer].relay.metrics().traffic.frames_in, 0, "relay {dearer} did not");
    }
}

/// A slow subscriber falls behind alone: behind a 400 KB/s link it cannot take 48 KB groups every
/// 5 ms, and while it lags a fast subscriber of the same track gets every group on time. (What
/// the relay gives up for a subscriber past its in-flight bound is reported: the next test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_falls_behind_alone() {
    init_logs();
    let version = Version::Lite06;
    let relay = start_relay(version);
    let mut published = publish("room/alice");
    let _publisher =
        relay.connect(version, None, Origins { publish: Some(published.origin.consume()), ..Default::default() }).await;
    let (_fast_session, remote) = relay.subscriber(version, None).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let mut fast = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
    let conn = constrained_subscriber(relay.addr, relay.cert.fingerprint(), version).await;
    let completions = record_completions(conn.clone(), version);
    send_client_setup(&conn, version).await;
    let _slow = raw_subscribe(&conn, version, 0, "video", 1).await;
    let both = timeout(WAIT, async {
        while relay.relay.metrics().traffic.subscriptions_active < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(both.is_ok(), "both subscriptions reach the relay");
    let writer = tokio::spawn(async move {
        let big = bytes::Bytes::from(vec![5u8; 48 * 1024]);
        for g in 0..200u64 {
            let mut group = published.track.append_group().unwrap();
            group.write(g, big.clone()).unwrap();
            group.finish().unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        published
    });
    let mut seen = Vec::new();
    while seen.len() < 200 {
        match timeout(WAIT, fast.next_group()).await {
            Ok(Ok(Some(TrackEvent::Group(group)))) => seen.push(group.sequence()),
            other => panic!("the fast subscriber, after {} groups: {other:?}", seen.len()),
        }
    }
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<_>>(), "the fast subscriber gets every group");
    // When the fast subscriber has everything, the slow one is still far behind: it alone waits.
    let slow_done = completions.lock().unwrap().len();
    assert!(slow_done < 150, "the slow subscriber kept up ({slow_done} groups): the link is not the bottleneck");
    let _published = writer.await.unwrap();
}

/// A subscriber that cannot keep up has its oldest in-flight groups abandoned past
/// max_groups_in_flight, and is told so: SUBSCRIBE_DROP with TOO_FAR_BEHIND for each, on its
/// subscribe stream (a raw subscriber behind a 400 KB/s link reads them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_abandoned_past_the_in_flight_bound_are_reported() {
    use moqt::coding::Path as WirePath;
    use moqt::coding::StreamCode;
    use moqt::transport::{Connection, RecvStream, SendStream};
    use moqt::wire::{BidiStream, Message, StreamReader, Subscribe, SubscribeResponse, SubscribeWindow};
    init_logs();
    let version = Version::Lite06;
    let mut config = RelayConfig::default();
    config.session.max_groups_in_flight = 4;
    let relay = start_relay_with(version, config);
    let mut published = publish("room/alice");
    let _publisher =
        relay.connect(version, None, Origins { publish: Some(published.origin.consume()), ..Default::default() }).await;
    let (_watcher, remote) = relay.subscriber(version, None).await;
    announced(&remote, &path("room/alice")).await;
    let conn = tightly_constrained_subscriber(relay.addr, relay.cert.fingerprint(), version).await;
    let _completions = record_completions(conn.clone(), version);
    send_client_setup(&conn, version).await;
    let mut request = Vec::new();
    BidiStream::Subscribe.encode(&mut request, version).unwrap();
    let window = SubscribeWindow { priority: 1, max_age: 60_000, ..Default::default() };
    Subscribe { id: 0, broadcast: WirePath::new("room/alice").unwrap(), track: "video".into(), window }
        .encode(&mut request, version)
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write(bytes::Bytes::from(request)).await.unwrap();
    timeout(WAIT, published.track.used()).await.unwrap();
    // 80 groups of 128 KB at once, 10 MB, to a subscriber with small receive windows: the relay's
    // writes block on flow control, so behind a 400 KB/s link its group streams stay in flight.
    let big = bytes::Bytes::from(vec![5u8; 128 * 1024]);
    for g in 0..80u64 {
        let mut group = published.track.append_group().unwrap();
        group.write(g, big.clone()).unwrap();
        group.finish().unwrap();
    }
    let mut reader = StreamReader::new(version, 1 << 20);
    let mut drops = Vec::new();
    let read = timeout(Duration::from_secs(10), async {
        while drops.is_empty() {
            let Ok(Some(chunk)) = recv.read(64 * 1024).await else { break };
            reader.push(&chunk).unwrap();
            while let Some(response) = reader.decode::<SubscribeResponse>().unwrap() {
                if let SubscribeResponse::Drop { start, end, code } = response {
                    drops.push((start, end, code));
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no SUBSCRIBE_DROP arrived");
    let too_far = StreamCode::TooFarBehind.to_u64();
    // Single groups from the relay's bound, or ranges the publisher's own bound reported upstream
    // and the relay passed on: either way the subscriber is told why.
    assert!(drops.iter().all(|(start, end, code)| start <= end && *code == too_far), "{drops:?}");
}

/// More groups at once than a subscription may have in flight: the oldest are abandoned, and
/// each is reported (SUBSCRIBE_DROP), never lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_in_flight_bound_is_reported_not_lost() {
    init_logs();
    for version in [Version::Lite06, Version::Lite04] {
        let relay = start_relay(version);
        let mut published = publish("room/alice");
        let _publisher = relay
            .connect(version, None, Origins { publish: Some(published.origin.consume()), ..Default::default() })
            .await;
        let (_session, remote) = relay.subscriber(version, None).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        let big = bytes::Bytes::from(vec![5u8; 16 * 1024]);
        for g in 0..200u64 {
            let mut group = published.track.append_group().unwrap();
            group.write(g, big.clone()).unwrap();
            group.finish().unwrap();
        }
        let (mut delivered, mut reported) = (Vec::new(), Vec::new());
        while delivered.len() + reported.len() < 200 {
            match timeout(WAIT, track.next_group()).await {
                Ok(Ok(Some(TrackEvent::Group(group)))) => delivered.push(group.sequence()),
                Ok(Ok(Some(TrackEvent::Gap(gap)))) => reported.extend(gap.start..=gap.end),
                other => {
                    panic!(
                        "{version}: {} delivered, {} reported, then {other:?}; floor {:?}, latest {:?}",
                        delivered.len(),
                        reported.len(),
                        track.next_sequence(),
                        track.latest_sequence()
                    )
                }
            }
        }
        let mut all: Vec<u64> = delivered.iter().chain(&reported).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all, (0..200).collect::<Vec<_>>(), "{version}: every group delivered or reported");
    }
}

/// A publisher of room/alice and a subscriber of its video track through `relay`, the subscription
/// established upstream; `case` names the run in a failure.
struct Through {
    publisher: Session,
    published: Published,
    _subscriber: Session,
    consumer: model::TrackConsumer,
}

async fn through(relay: &TestRelay, version: Version, options: model::SubscribeOptions, case: &str) -> Through {
    let published = publish("room/alice");
    let origins = Origins { publish: Some(published.origin.consume()), ..Default::default() };
    let publisher = relay.connect(version, None, origins).await;
    let (_subscriber, remote) = relay.subscriber(version, None).await;
    let announced = announced(&remote, &path("room/alice")).await;
    let consumer = timeout(WAIT, announced.subscribe_track_with("video", options)).await.unwrap().unwrap();
    timeout(WAIT, published.track.used()).await.unwrap_or_else(|_| panic!("{case}: no subscription upstream"));
    Through { publisher, published, _subscriber, consumer }
}

/// Finishes the published track, waits for the flush to report everything delivered, then
/// closes the publisher's connection at once.
async fn finish_flush_and_leave(published: Published, publisher: Session, case: &str) {
    published.track.finish();
    let outcome = timeout(WAIT * 3, publisher.flushed())
        .await
        .unwrap_or_else(|_| panic!("{case}: the end never reached the relay"));
    assert_eq!(outcome, moqt::session::FlushOutcome::Delivered, "{case}");
    drop(publisher);
}

/// A publisher that finishes its track, flushes and leaves at once: the relay's subscribers read
/// every frame and then the track's end (not an abort, not the session's end), in every version;
/// frames carry their timestamps from moq-lite-05 on and say they have none before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_track_ends_cleanly_downstream_though_its_publisher_leaves_at_once() {
    init_logs();
    for version in Version::ALL {
        let relay = start_relay(version);
        let Through { publisher, mut published, _subscriber, mut consumer } =
            through(&relay, version, model::SubscribeOptions::default(), &version.to_string()).await;
        // Group 0 read first: the subscription is established end to end before the rest.
        write_groups(&mut published.track, 1, 2);
        let mut frames = Vec::new();
        let TrackEvent::Group(mut first) = next_event(&mut consumer).await else { panic!("{version}: a gap") };
        for (f, frame) in read_group(&mut first).await.into_iter().enumerate() {
            frames.push((first.sequence(), f as u64, frame.timestamp));
        }
        write_groups(&mut published.track, 2, 2);
        // Closes the connection at once: anything not acknowledged by now would be lost.
        finish_flush_and_leave(published, publisher, &version.to_string()).await;

        let end = loop {
            match timeout(WAIT, consumer.next_group()).await.expect("an event in time") {
                Ok(Some(TrackEvent::Group(mut group))) => {
                    let g = group.sequence();
                    for (f, frame) in read_group(&mut group).await.into_iter().enumerate() {
                        assert_eq!(frame.payload, payload(g, f as u64), "{version}");
                        frames.push((g, f as u64, frame.timestamp));
                    }
                }
                Ok(Some(TrackEvent::Gap(gap))) => panic!("{version}: {gap:?}"),
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        assert_eq!(end, Ok(()), "{version}: the track ends as finished, after {} frames", frames.len());
        frames.sort();
        let real = version.has_timestamps();
        let expected: Vec<_> =
            (0..3).flat_map(|g| (0..2).map(move |f| (g, f, if real { stamp(g, f, 2) } else { 0 }))).collect();
        assert_eq!(frames, expected, "{version}: every frame, with its timestamp where the version has them");
        assert_eq!(consumer.has_timestamps(), real, "{version}");
    }
}

/// A track that ends as soon as its subscription opens, then a flush and an immediate close: the
/// relay's subscribers see every group and the track's end. Two races used to break it. The
/// relay's SUBSCRIBE_UPDATE (lite-06 sends one after SUBSCRIBE_OK at the live edge) crosses the
/// publisher's end on the wire: the publisher took it for a protocol violation and the flush
/// reported the end undelivered. And the track's writer learns it is used before the publisher's
/// session counts the subscription as owed: a flush in that moment found nothing owed, and the
/// close cut the track short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_ended_and_flushed_at_once_reaches_the_relays_subscribers_whole() {
    init_logs();
    for version in Version::ALL {
        for round in 0..5 {
            let case = format!("{version}, round {round}");
            let relay = start_relay(version);
            // At the live edge in odd rounds: lite-06 then sends the update after SUBSCRIBE_OK.
            let start = if round % 2 == 1 { model::GroupStart::Latest } else { model::GroupStart::Floor(0) };
            let options = model::SubscribeOptions { start, ..Default::default() };
            let Through { publisher, mut published, _subscriber, mut consumer } =
                through(&relay, version, options, &case).await;
            write_groups(&mut published.track, 2, 2);
            finish_flush_and_leave(published, publisher, &case).await;
            let mut groups = Vec::new();
            let end = loop {
                match timeout(WAIT, consumer.next_group()).await.expect("an event in time") {
                    Ok(Some(TrackEvent::Group(mut group))) => {
                        assert_eq!(read_group(&mut group).await.len(), 2, "{case}: group {}", group.sequence());
                        groups.push(group.sequence());
                    }
                    Ok(Some(TrackEvent::Gap(gap))) => panic!("{case}: {gap:?}"),
                    Ok(None) => break Ok(()),
                    Err(err) => break Err(err),
                }
            };
            assert_eq!(end, Ok(()), "{case}: the track ends as finished");
            groups.sort();
            assert_eq!(groups.last(), Some(&1), "{case}: the last group");
        }
    }
}

/// When the last subscriber of a relayed track leaves, the relay cancels its upstream subscription
/// at once, as moq-relay does. A lite-05+ subscriber asks TRACK before SUBSCRIBE; behind a lite-04
/// publisher (which has no TRACK) the relay answers that TRACK with a lookup subscription, held
/// for the SUBSCRIBE that follows so the two share one upstream subscription. The hold is set far
/// beyond the test's wait: the upstream subscription can end in time only because the SUBSCRIBE
/// took the lookup over, never because the hold ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_subscription_ends_as_soon_as_the_last_subscriber_leaves() {
    init_logs();
    let cases = [
        (Version::Lite04, Version::Lite05),
        (Version::Lite04, Version::Lite06),
        (Version::Lite05, Version::Lite05),
        (Version::Lite06, Version::Lite06),
        (Version::Lite06, Version::Lite04),
    ];
    for (publisher_version, subscriber_version) in cases {
        let case = format!("{publisher_version} publisher, {subscriber_version} subscriber");
        let mut relay_config = RelayConfig::default();
        relay_config.session.track_lookup_hold = Duration::from_secs(3600);
        let cert = cert();
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), &cert, EndpointConfig::default()).unwrap();
        let relay = TestRelay { relay: Relay::new(relay_config), addr: server.local_addr().unwrap(), cert };
        let running = relay.relay.clone();
        tokio::spawn(async move { running.run(server).await });

        let mut published = publish("room/alice");
        let traffic = std::sync::Arc::new(moqt::session::Traffic::default());
        let trust = ClientTrust::Fingerprint(vec![relay.cert.fingerprint()]);
        let mut endpoint = EndpointConfig { versions: vec![publisher_version], ..Default::default() };
        endpoint.session.traffic = Some(traffic.clone());
        let origins = Origins { publish: Some(published.origin.consume()), ..Default::default() };
        let client = Client::new("127.0.0.1:0".parse().unwrap(), &trust, endpoint).unwrap();
        let _publisher = timeout(WAIT, client.connect(relay.addr, "localhost", None, origins)).await.unwrap().unwrap();

        let (_subscriber, remote) = relay.subscriber(subscriber_version, None).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap_or_else(|_| panic!("{case}: subscribed upstream"));
        write_groups(&mut published.track, 2, 3);
        for _ in 0..2 {
            match next_event(&mut track).await {
                TrackEvent::Group(mut group) => assert_eq!(read_group(&mut group).await.len(), 3, "{case}"),
                TrackEvent::Gap(gap) => panic!("{case}: {gap:?}"),
            }
        }
        assert_eq!(published.track.consumer_count(), 1, "{case}: one upstream subscription");

        // The last (only) subscriber leaves: the publisher sees its subscription cancelled.
        drop(track);
        timeout(WAIT, published.track.unused())
            .await
            .unwrap_or_else(|_| panic!("{case}: the upstream subscription was not cancelled"));
        assert_eq!(traffic.snapshot().subscriptions_total, 1, "{case}: TRACK and SUBSCRIBE shared one");
    }
}
