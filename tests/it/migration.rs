//! Migration and reconnection over loopback QUIC: a client that receives GOAWAY moves to the new
//! URI (or reconnects to the same server for an empty one), and a client whose server restarts
//! reconnects with backoff. In both cases what it publishes is announced again, what it reads is
//! re-subscribed from the next group, and the application's track consumer keeps going: it sees a
//! state change and, at most, a gap. A client whose own address changes (a new UDP socket) keeps
//! its session through QUIC connection migration, without any of that.

use crate::common;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use moqt::coding::SessionCode;
use moqt::endpoint::{EndpointConfig, Server};
use moqt::model::{Announcement, OriginProducer, TrackConsumer, TrackEvent, TrackProducer};
use moqt::reconnect::{ClientState, PersistentClient, ReconnectSettings, Target};
use moqt::session::{Mirror, Origins, Session, SessionEvent};
use moqt::transport::tls::{Certificate, ClientTrust};
use moqt::wire::Version;
use tokio::time::{Instant, timeout};

fn target(addr: SocketAddr) -> Target {
    Target { addr, server_name: "localhost".into(), path: None, webtransport: None }
}

fn fast() -> ReconnectSettings {
    ReconnectSettings {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        give_up_after: Some(Duration::from_secs(20)),
        linger: Duration::from_secs(10),
        ..Default::default()
    }
}

async fn wait_state(client: &mut PersistentClient, wanted: impl Fn(&ClientState) -> bool) -> ClientState {
    timeout(WAIT, async {
        loop {
            let state = client.state();
            if wanted(&state) {
                return state;
            }
            client.next_state().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("state never came; last {:?}", client.state()))
}

/// After the first session: Migrating to `uri`, then Connected again, and nothing in between
/// (no error, no Reconnecting).
async fn assert_migrated(seen: &Mutex<Vec<(Instant, ClientState)>>, uri: &str, version: Version) {
    let reconnected = |(_, s): &(Instant, ClientState)| matches!(s, ClientState::Connected { reconnects: 1, .. });
    let recorded = timeout(WAIT, async {
        while !seen.lock().unwrap().iter().any(reconnected) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    recorded.await.unwrap_or_else(|_| panic!("{version}: the reconnection was not recorded"));
    let seen: Vec<ClientState> = seen.lock().unwrap().iter().map(|(_, state)| state.clone()).collect();
    let first = seen.iter().position(|s| matches!(s, ClientState::Connected { reconnects: 0, .. }));
    let first = first.unwrap_or_else(|| panic!("{version}: never connected: {seen:?}"));
    let after: Vec<_> = seen[first + 1..].iter().take(2).cloned().collect();
    assert_eq!(
        after,
        vec![ClientState::Migrating { uri: uri.into() }, ClientState::Connected { version, reconnects: 1 }],
        "{version}: {seen:?}"
    );
}

/// Writes one group and waits for the consumer to read a group at least that new; returns the
/// sequences of the gaps seen on the way.
async fn write_and_read(producer: &mut TrackProducer, consumer: &mut TrackConsumer) -> Vec<(u64, u64)> {
    write_groups(producer, 1, 1);
    let wanted = producer.latest_sequence().unwrap();
    let mut gaps = Vec::new();
    loop {
        match next_event(consumer).await {
            TrackEvent::Group(mut group) => {
                let sequence = group.sequence();
                let frames = read_group(&mut group).await;
                assert_eq!(frames[0].payload, payload(sequence, 0));
                if sequence >= wanted {
                    return gaps;
                }
            }
            TrackEvent::Gap(gap) => gaps.push((gap.start, gap.end)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_with_an_empty_uri_reconnects_and_tracks_continue() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let remote = OriginProducer::default();
        let mut client =
            PersistentClient::start(server.client(version), target(server.addr), None, Some(remote.clone()), fast());
        let states = record_states(&client);
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { .. })).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_and_read(&mut published.track, &mut track).await;

        server.wait_sessions(1).await;
        {
            let sessions = server.sessions.lock().unwrap();
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(sessions[0].goaway(""))).unwrap();
        }
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;
        assert_migrated(&states, "", version).await;
        // The same consumer keeps reading: groups written after the move arrive.
        for _ in 0..3 {
            write_and_read(&mut published.track, &mut track).await;
        }
        assert!(matches!(client.state(), ClientState::Connected { reconnects: 1, .. }), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_with_a_uri_moves_to_the_other_server() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let mut published = publish("room/alice");
        let first = serve(version, Some(published.origin.clone()), None);
        let second = serve(version, Some(published.origin.clone()), None);
        let remote = OriginProducer::default();
        // The client trusts both servers' certificates by pinning both fingerprints.
        let trust =
            moqt::transport::tls::ClientTrust::Fingerprint(vec![first.cert.fingerprint(), second.cert.fingerprint()]);
        let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(version)).unwrap();
        let mut client = PersistentClient::start(client, target(first.addr), None, Some(remote.clone()), fast());
        let states = record_states(&client);
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { .. })).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_and_read(&mut published.track, &mut track).await;

        first.wait_sessions(1).await;
        let uri = format!("moql://127.0.0.1:{}/", second.addr.port());
        {
            let sessions = first.sessions.lock().unwrap();
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(sessions[0].goaway(&uri)))
                .unwrap();
        }
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;
        assert_migrated(&states, &uri, version).await;
        second.wait_sessions(1).await;
        for _ in 0..3 {
            write_and_read(&mut published.track, &mut track).await;
        }
    }
}

/// A server on a fixed address; sending on the returned channel stops it and frees the port.
fn start_server(
    addr: SocketAddr,
    cert: &Certificate,
    origin: &OriginProducer,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    // The previous server's socket closes asynchronously after it went idle: retry briefly.
    let mut attempts = 0;
    let server = loop {
        match Server::bind(addr, cert, EndpointConfig::default()) {
            Ok(server) => break server,
            Err(err) if attempts < 50 => {
                attempts += 1;
                tracing::debug!("rebinding {addr}: {err}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("cannot rebind {addr}: {err}"),
        }
    };
    let origin = origin.clone();
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut sessions = Vec::new();
        loop {
            let incoming = tokio::select! {
                incoming = server.accept() => incoming,
                _ = &mut stopped => break,
            };
            let Some(incoming) = incoming else { break };
            if let Ok(pending) = incoming.setup().await {
                let origins = Origins { publish: Some(origin.consume()), subscribe: None, ..Default::default() };
                if let Ok(session) = Session::accept(pending, origins, Default::default()).await {
                    sessions.push(session);
                }
            }
        }
        drop(sessions);
        server.close();
        server.wait_idle().await;
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts_and_reports_the_gap() {
    init_logs();
    let mut published = publish("room/alice");
    let cert = cert();
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let (stop, server) = start_server(addr, &cert, &published.origin);
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![cert.fingerprint()]);
    let client =
        moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, EndpointConfig::default()).unwrap();
    let remote = OriginProducer::default();
    let mut client = PersistentClient::start(client, target(addr), None, Some(remote.clone()), fast());
    wait_state(&mut client, |s| matches!(s, ClientState::Connected { .. })).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
    timeout(WAIT, published.track.used()).await.unwrap();
    write_and_read(&mut published.track, &mut track).await;
    assert_eq!(published.track.latest_sequence(), Some(0));

    // Stop the server (its sessions and its copy of the broadcast die with the task). The source
    // keeps producing while it is down: groups 1 and 2 go to the stopped server and are lost with
    // it. The restarted server starts from nothing and continues the source's numbering at 3.
    stop.send(()).unwrap();
    timeout(WAIT, server).await.unwrap().unwrap();
    wait_state(&mut client, |s| matches!(s, ClientState::Reconnecting { .. })).await;
    write_groups(&mut published.track, 2, 1);
    drop(published);
    let mut restarted = publish("room/alice");
    let mut group = restarted.track.create_group(3).unwrap();
    group.write(stamp(3, 0, 1), payload(3, 0)).unwrap();
    group.finish().unwrap();
    let _restarted = start_server(addr, &cert, &restarted.origin);
    wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;

    // The same consumer resumes from group 1: 1 and 2 no longer exist anywhere, so they must be
    // reported as a gap, exactly once, and group 3 delivered.
    let mut seen_groups = Vec::new();
    let mut seen_gaps = Vec::new();
    let gap_covers = |seq: u64, gaps: &[(u64, u64)]| gaps.iter().any(|(a, b)| (*a..=*b).contains(&seq));
    while !(seen_groups.contains(&3) && gap_covers(1, &seen_gaps) && gap_covers(2, &seen_gaps)) {
        match next_event(&mut track).await {
            TrackEvent::Group(mut group) => {
                let sequence = group.sequence();
                assert_eq!(read_group(&mut group).await[0].payload, payload(sequence, 0));
                seen_groups.push(sequence);
            }
            TrackEvent::Gap(gap) => seen_gaps.push((gap.start, gap.end)),
        }
    }
    assert_eq!(seen_groups, vec![3], "only the restarted server's group is delivered");
    assert_eq!(seen_gaps, vec![(1, 2)], "one gap for exactly the groups lost while the server was down");
    // Nothing more is pending: no duplicate group, no second report of the gap.
    assert!(timeout(Duration::from_millis(300), track.next_group()).await.is_err(), "an extra event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_doubles_up_to_the_max_then_gives_up_with_the_reason() {
    init_logs();
    // A server that refuses every attempt at once: it speaks only moq-lite-03 over raw QUIC, the
    // client only moq-lite-06, so the TLS handshake finds no common ALPN.
    let config = EndpointConfig { versions: vec![Version::Lite03], webtransport: false, ..Default::default() };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), &cert(), config).unwrap();
    let addr = server.local_addr().unwrap();
    let refusing = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = refusing.accept().await {
            tokio::spawn(incoming.setup());
        }
    });
    let trust = moqt::transport::tls::ClientTrust::InsecureSkipVerify;
    let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config_06()).unwrap();
    let settings = ReconnectSettings {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(800),
        give_up_after: Some(Duration::from_millis(2500)),
        linger: Duration::ZERO,
        ..Default::default()
    };
    let started = Instant::now();
    let mut client = PersistentClient::start(client, target(addr), None, None, settings);
    let states = record_states(&client);
    let gave_up = timeout(Duration::from_secs(20), async {
        loop {
            if let ClientState::GaveUp { reason } = client.state() {
                return reason;
            }
            client.next_state().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never gave up: {:?}", client.state()));
    assert!(started.elapsed() >= Duration::from_millis(2500), "gave up before give_up_after");
    // Let the recorder catch the last change.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let states = states.lock().unwrap().clone();
    let retries: Vec<(Instant, u32, Duration, String)> = states
        .iter()
        .filter_map(|(at, state)| match state {
            ClientState::Reconnecting { reason, attempt, retry_in } => Some((*at, *attempt, *retry_in, reason.clone())),
            _ => None,
        })
        .collect();
    let attempts: Vec<u32> = retries.iter().map(|r| r.1).collect();
    let delays: Vec<u64> = retries.iter().map(|r| r.2.as_millis() as u64).collect();
    assert!(attempts.len() >= 5, "too few attempts: {states:?}");
    assert_eq!(attempts, (1..=attempts.len() as u32).collect::<Vec<_>>(), "every attempt reported once");
    let expected: Vec<u64> = (0..delays.len() as u32).map(|i| (100u64 << i).min(800)).collect();
    assert_eq!(delays, expected, "the delay doubles from 100 ms up to the 800 ms max");
    // Each retry waited at least its delay.
    for pair in retries.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= pair[0].2, "attempt {} came early", pair[1].1);
    }
    for (_, _, _, reason) in &retries {
        assert!(reason.starts_with("connect failed"), "{reason}");
    }
    assert!(gave_up.starts_with("connect failed") && gave_up.contains("protocol"), "{gave_up}");
    assert!(matches!(states.last(), Some((_, ClientState::GaveUp { .. }))), "{states:?}");
    assert!(!states.iter().any(|(_, s)| matches!(s, ClientState::Connected { .. })), "{states:?}");
}

async fn next(announcements: &mut moqt::model::OriginConsumer) -> Announcement {
    timeout(WAIT, announcements.next_announcement()).await.expect("announcement in time").expect("origin open")
}

fn config_06() -> EndpointConfig {
    EndpointConfig { versions: vec![Version::Lite06], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_publisher_announces_again() {
    init_logs();
    for version in [Version::Lite06, Version::Lite04] {
        // The server mirrors what clients publish into its origin, where a local subscriber looks.
        let on_server = OriginProducer::default();
        let server = serve(version, None, Some(on_server.clone()));
        let mut announcements = on_server.consume();
        let mut published = publish("room/alice");
        let mut client = PersistentClient::start(
            server.client(version),
            target(server.addr),
            Some(published.origin.consume()),
            None,
            fast(),
        );
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 0, .. })).await;
        assert!(
            matches!(next(&mut announcements).await, Announcement::Start { path, .. } if path.as_str() == "room/alice")
        );

        // The server drops the publisher's connection: the broadcast goes away on the server...
        server.wait_sessions(1).await;
        server.sessions.lock().unwrap()[0].close(SessionCode::NoError, "dropped by the test");
        assert!(
            matches!(next(&mut announcements).await, Announcement::End { path } if path.as_str() == "room/alice"),
            "{version}"
        );
        // ...the publisher reconnects and announces it again, and frames flow from it.
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;
        let broadcast = match next(&mut announcements).await {
            Announcement::Start { path, broadcast, .. } if path.as_str() == "room/alice" => broadcast,
            other => panic!("{version}: {other:?}"),
        };
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        write_and_read(&mut published.track, &mut track).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_moved_by_goaway_announces_again() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let on_server = OriginProducer::default();
        let server = serve(version, None, Some(on_server.clone()));
        let mut announcements = on_server.consume();
        let mut published = publish("room/alice");
        let mut client = PersistentClient::start(
            server.client(version),
            target(server.addr),
            Some(published.origin.consume()),
            None,
            fast(),
        );
        let states = record_states(&client);
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 0, .. })).await;
        assert!(
            matches!(next(&mut announcements).await, Announcement::Start { path, .. } if path.as_str() == "room/alice")
        );

        // A graceful move, not a close: GOAWAY with an empty URI (this same server).
        server.wait_sessions(1).await;
        let first = server.sessions.lock().unwrap().remove(0);
        timeout(WAIT, first.goaway("")).await.expect("the publisher left in time").unwrap();
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;
        assert_migrated(&states, "", version).await;
        server.wait_sessions(1).await;

        // The old session is gone, so whatever the server still sees at room/alice comes from the
        // new one: the broadcast must be announced on it again (a Start after the old End, or an
        // Update to the new route while the old one was draining) and its frames must flow.
        timeout(WAIT, async {
            loop {
                if let Announcement::Start { path, .. } | Announcement::Update { path, .. } =
                    next(&mut announcements).await
                    && path.as_str() == "room/alice"
                {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{version}: room/alice was not announced again after GOAWAY"));
        // The old session ends (its drain may trail the new announcement); what remains at
        // room/alice is the new session's.
        let mut first = first;
        timeout(WAIT, first.closed()).await.unwrap_or_else(|_| panic!("{version}: the old session did not end"));
        let broadcast = on_server
            .consume_broadcast(&path("room/alice"))
            .unwrap_or_else(|| panic!("{version}: room/alice is gone after the old session ended"));
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        write_and_read(&mut published.track, &mut track).await;
    }
}

/// The client's address changes mid-session (its endpoint moves to a new UDP socket, as after a
/// network change): QUIC connection migration keeps the session, so frames go on flowing on the
/// same consumer with no reconnect, no state change and no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_change_keeps_the_session() {
    init_logs();
    for version in [Version::Lite06, Version::Lite04] {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let remote = OriginProducer::default();
        let endpoint = server.client(version);
        let quinn = endpoint.quinn_endpoint();
        let before = endpoint.local_addr().unwrap();
        let mut client = PersistentClient::start(endpoint, target(server.addr), None, Some(remote.clone()), fast());
        let states = record_states(&client);
        wait_state(&mut client, |s| matches!(s, ClientState::Connected { .. })).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        assert!(write_and_read(&mut published.track, &mut track).await.is_empty());

        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let after = socket.local_addr().unwrap();
        assert_ne!(after, before);
        quinn.rebind(socket).unwrap();
        assert_eq!(quinn.local_addr().unwrap(), after);
        for _ in 0..5 {
            let gaps = write_and_read(&mut published.track, &mut track).await;
            assert!(gaps.is_empty(), "{version}: gaps {gaps:?} across the address change");
        }
        // The old socket is gone once traffic arrived on the new one: its port can be bound
        // again, so the frames above did travel the new path.
        let freed = timeout(WAIT, async {
            loop {
                if std::net::UdpSocket::bind(before).is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        freed.await.unwrap_or_else(|_| panic!("{version}: the old socket {before} is still open"));
        assert_eq!(server.sessions.lock().unwrap().len(), 1, "{version}: one session on the server, never a second");
        // The recorder may have started after Connecting: everything from Connected on counts.
        let seen: Vec<ClientState> =
            states.lock().unwrap().iter().map(|(_, s)| s.clone()).filter(|s| *s != ClientState::Connecting).collect();
        assert_eq!(seen, vec![ClientState::Connected { version, reconnects: 0 }], "{version}");
        assert_eq!(client.state(), ClientState::Connected { version, reconnects: 0 });
    }
}

/// A client started by URL before its server exists: `connect_url` returns a client at once,
/// connecting; what it publishes and a wait for the server's broadcast are set up before any
/// session, and its first attempt goes unanswered; when the server starts on that port the
/// client connects by itself, its broadcast is announced, and the server's broadcast reaches the
/// waiting subscriber, frames included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_started_by_url_before_its_server_connects_once_it_starts() {
    init_logs();
    // The port is held by a socket that never answers until the server takes it over, so the
    // client's first attempt is under way, unanswered, before the server exists.
    let holder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = holder.local_addr().unwrap().port();
    let mine = publish("room/alice");
    let remote = OriginProducer::default();
    let url = format!("moql://localhost:{port}/");
    let mut client = PersistentClient::connect_url(
        &url,
        ClientTrust::InsecureSkipVerify,
        EndpointConfig::default(),
        Some(mine.origin.consume()),
        Some(remote.clone()),
        fast(),
    )
    .unwrap();
    let states = record_states(&client);
    assert_eq!(client.state(), ClientState::Connecting);
    assert!(client.session().is_none());
    let waiting = {
        let remote = remote.clone();
        tokio::spawn(async move { remote.consume().announced(&path("room/bob")).await })
    };

    let mut packet = [0u8; 2048];
    timeout(WAIT, holder.recv_from(&mut packet)).await.expect("the client's first packet arrives").unwrap();
    assert_eq!(client.state(), ClientState::Connecting);
    drop(holder);

    let mut theirs = publish("room/bob");
    let inbox = OriginProducer::default();
    let server = serve_at(
        ([127, 0, 0, 1], port).into(),
        EndpointConfig::default(),
        Some(theirs.origin.clone()),
        Some(inbox.clone()),
    );
    wait_state(&mut client, |s| matches!(s, ClientState::Connected { .. })).await;
    server.wait_sessions(1).await;
    announced(&inbox, &path("room/alice")).await;
    let broadcast = timeout(WAIT, waiting).await.expect("the waiting subscriber sees the broadcast").unwrap();
    let broadcast = broadcast.expect("announced, not closed");
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
    timeout(WAIT, theirs.track.used()).await.unwrap();
    write_and_read(&mut theirs.track, &mut track).await;
    assert_eq!(states.lock().unwrap()[0].1, ClientState::Connecting, "connecting before any server existed");
    assert!(matches!(client.state(), ClientState::Connected { reconnects: 0, .. }), "{:?}", client.state());
}

/// Closing a client whose server never answers ends the attempt at once: the close is a signal
/// the attempt is abandoned on, not a timeout. The silent server receives the client's first
/// packet (so a handshake is under way, one QUIC would only give up after its 30 s idle timeout)
/// and never replies; `shutdown` still returns promptly, with the state Closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_client_whose_server_never_answers_cancels_the_attempt_at_once() {
    init_logs();
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let url = format!("moql://localhost:{}/", silent.local_addr().unwrap().port());
    let settings = ReconnectSettings { give_up_after: None, ..fast() };
    let client = PersistentClient::connect_url(
        &url,
        ClientTrust::InsecureSkipVerify,
        EndpointConfig::default(),
        None,
        None,
        settings,
    )
    .unwrap();
    let states = client.watch_state();
    let mut packet = [0u8; 2048];
    timeout(WAIT, silent.recv_from(&mut packet)).await.expect("the client's first packet arrives").unwrap();
    assert_eq!(client.state(), ClientState::Connecting);
    let closing = Instant::now();
    timeout(WAIT, client.shutdown()).await.expect("shutdown does not wait out the handshake");
    let took = closing.elapsed();
    assert!(took < Duration::from_secs(2), "closing took {took:?}");
    assert_eq!(*states.borrow(), ClientState::Closed);
}

/// `connect_url` checks the URL's form at once (scheme, host) and reports what is wrong; only
/// the network part waits for the background.
#[tokio::test]
async fn a_client_started_by_url_refuses_a_malformed_url_at_once() {
    let start = |url: &str| {
        PersistentClient::connect_url(
            url,
            ClientTrust::InsecureSkipVerify,
            EndpointConfig::default(),
            None,
            None,
            ReconnectSettings::default(),
        )
        .err()
    };
    assert!(start("gopher://relay.example/").is_some_and(|e| matches!(e, moqt::UrlError::UnknownScheme { .. })));
    assert!(start("http://relay.example/").is_some_and(|e| e.to_string().contains("certificate.sha256")));
    assert!(start("not a url").is_some_and(|e| matches!(e, moqt::UrlError::Malformed { .. })));
    assert!(start("moql://localhost:1/").is_none());
}

/// A client started by URL follows GOAWAY to a new URI too: the URI is resolved by the next
/// attempt, as the first URL was, and the client lands on the other server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_started_by_url_follows_goaway_to_the_new_uri() {
    init_logs();
    let version = Version::Lite06;
    let mut published = publish("room/alice");
    let first = serve(version, Some(published.origin.clone()), None);
    let second = serve(version, Some(published.origin.clone()), None);
    let remote = OriginProducer::default();
    let trust = ClientTrust::Fingerprint(vec![first.cert.fingerprint(), second.cert.fingerprint()]);
    let url = format!("moql://127.0.0.1:{}/", first.addr.port());
    let mut client =
        PersistentClient::connect_url(&url, trust, config(version), None, Some(remote.clone()), fast()).unwrap();
    let states = record_states(&client);
    wait_state(&mut client, |s| matches!(s, ClientState::Connected { .. })).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
    timeout(WAIT, published.track.used()).await.unwrap();
    write_and_read(&mut published.track, &mut track).await;

    first.wait_sessions(1).await;
    let uri = format!("moql://127.0.0.1:{}/", second.addr.port());
    {
        let sessions = first.sessions.lock().unwrap();
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(sessions[0].goaway(&uri))).unwrap();
    }
    wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;
    assert_migrated(&states, &uri, version).await;
    second.wait_sessions(1).await;
    write_and_read(&mut published.track, &mut track).await;
}

/// A resumed track that a server going away refuses as not there waits for the next session
/// instead of ending. (moq-relay, draining after SIGTERM, answers UNROUTABLE for a broadcast whose
/// publisher session has already left; the track must survive that and resume on the next relay.)
/// Plain sessions sharing one lingering mirror, so the test decides when each one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_track_refused_by_a_server_going_away_resumes_on_the_next_session() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let mut published = publish("room/alice");
        // A copy of the broadcast whose track requests the test answers, served by the second session.
        let refusing = OriginProducer::default();
        let settings = moqt::model::BroadcastSettings { serve_requests: true, ..Default::default() };
        let empty = moqt::model::BroadcastProducer::new(settings);
        let _held = refusing.publish(path("room/alice"), empty.consume(), moqt::model::Route::local()).unwrap();
        let good = serve(version, Some(published.origin.clone()), None);
        let bad = serve(version, Some(refusing.clone()), None);
        let mirror = Mirror::with_linger(OriginProducer::default(), Duration::from_secs(30));
        let connect = |server: &TestServer| {
            let origins = Origins { subscribe: Some(mirror.clone()), ..Default::default() };
            let client = server.client(version);
            let addr = server.addr;
            async move { timeout(WAIT, client.connect(addr, "localhost", None, origins)).await.unwrap().unwrap() }
        };

        let first = connect(&good).await;
        let broadcast = announced(mirror.origin(), &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_and_read(&mut published.track, &mut track).await;
        drop(first);

        // The second session resumes the track, then goes away, and only then refuses it.
        let mut second = connect(&bad).await;
        let request = timeout(WAIT, empty.next_request()).await.expect("the resumed subscription in time");
        let request = request.expect("a track request");
        assert_eq!(request.name(), "video", "{version}");
        bad.wait_sessions(1).await;
        {
            let sessions = bad.sessions.lock().unwrap();
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(sessions[0].goaway(""))).unwrap();
        }
        let event = timeout(WAIT, second.next_event()).await.expect("GOAWAY in time");
        assert!(matches!(event, SessionEvent::GoingAway { .. }), "{version}: {event:?}");
        // The refusal goes out before the server ends the session, so it arrives first.
        request.reject(moqt::model::Error::NotFound);
        bad.sessions.lock().unwrap()[0].close(SessionCode::NoError, "drained");
        timeout(WAIT, second.closed()).await.expect("the second session ends");

        // The third session serves the track again: the same consumer reads on, with no error.
        let _third = connect(&good).await;
        write_and_read(&mut published.track, &mut track).await;
        write_and_read(&mut published.track, &mut track).await;
    }
}
