//! Migration and reconnection over loopback QUIC: a client that receives GOAWAY moves to the new
//! URI (or reconnects to the same server for an empty one), and a client whose server restarts
//! reconnects with backoff. In both cases what it publishes is announced again, what it reads is
//! re-subscribed from the next group, and the application's track consumer keeps going: it sees a
//! state change and, at most, a gap.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use moqt::endpoint::{EndpointConfig, Server};
use moqt::model::{OriginProducer, TrackConsumer, TrackEvent, TrackProducer};
use moqt::reconnect::{ClientState, PersistentClient, ReconnectSettings, Target};
use moqt::session::{Origins, Session};
use moqt::transport::tls::Certificate;
use moqt::wire::Version;
use tokio::time::timeout;

fn target(addr: SocketAddr) -> Target {
    Target { addr, server_name: "localhost".into(), path: None, webtransport: None }
}

fn fast() -> ReconnectSettings {
    ReconnectSettings {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        give_up_after: Some(Duration::from_secs(20)),
        linger: Duration::from_secs(10),
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

/// Records every state the client passes through, from now on, in a task: a quick Migrating
/// between two Connected states is seen even if the test is not polling at that moment.
fn record_states(client: &PersistentClient) -> Arc<Mutex<Vec<ClientState>>> {
    let mut states = client.watch_state();
    let seen = Arc::new(Mutex::new(vec![states.borrow_and_update().clone()]));
    let recorded = seen.clone();
    tokio::spawn(async move {
        while states.changed().await.is_ok() {
            recorded.lock().unwrap().push(states.borrow_and_update().clone());
        }
    });
    seen
}

/// After the first session: Migrating to `uri`, then Connected again, and nothing in between
/// (no error, no Reconnecting).
async fn assert_migrated(seen: &Mutex<Vec<ClientState>>, uri: &str, version: Version) {
    let reconnected = |s: &ClientState| matches!(s, ClientState::Connected { reconnects: 1, .. });
    let recorded = timeout(WAIT, async {
        while !seen.lock().unwrap().iter().any(reconnected) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    recorded.await.unwrap_or_else(|_| panic!("{version}: the reconnection was not recorded"));
    let seen = seen.lock().unwrap().clone();
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

    // Stop the server (its sessions die with the task), publish while it is down, start it again.
    stop.send(()).unwrap();
    timeout(WAIT, server).await.unwrap().unwrap();
    let down = wait_state(&mut client, |s| matches!(s, ClientState::Reconnecting { .. })).await;
    assert!(matches!(down, ClientState::Reconnecting { .. }));
    write_groups(&mut published.track, 2, 1);
    let _restarted = start_server(addr, &cert, &published.origin);
    wait_state(&mut client, |s| matches!(s, ClientState::Connected { reconnects: 1, .. })).await;
    // Frames flow again on the same consumer; what was published while down (groups 1 and 2)
    // is either fetched on resubscription or reported as a gap, never silently lost.
    let mut seen_groups = Vec::new();
    let mut seen_gaps = Vec::new();
    write_groups(&mut published.track, 1, 1);
    let covered = |seq: u64, groups: &[u64], gaps: &[(u64, u64)]| {
        groups.contains(&seq) || gaps.iter().any(|(a, b)| (*a..=*b).contains(&seq))
    };
    // Newest first: 3 may come before 1 and 2, which must still come, as groups or gaps.
    while !(1..=3).all(|seq| covered(seq, &seen_groups, &seen_gaps)) {
        match next_event(&mut track).await {
            TrackEvent::Group(group) => seen_groups.push(group.sequence()),
            TrackEvent::Gap(gap) => seen_gaps.push((gap.start, gap.end)),
        }
    }
    assert!(seen_groups.contains(&3), "the group written after the restart is delivered: {seen_groups:?}");
}
