//! What a misbehaving or greedy peer gets: protocol violations close the session with the right
//! code (spec 11.2-11.4), unknown streams are refused without harm, and every bound a peer could
//! push on holds for that peer only.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use moqt::coding::Path;
use moqt::coding::{SessionCode, StreamCode};
use moqt::model::{Error, TrackEvent};
use moqt::session::{SessionConfig, SessionError, SessionEvent};
use moqt::transport::{Connection, RecvStream, SendStream, StreamError, TransportError};
use moqt::wire::{BidiStream, Message, Setup, Subscribe, SubscribeWindow, UniStream, Version};
use tokio::time::timeout;

fn subscribe_bytes(version: Version, id: u64, track: &str) -> Vec<u8> {
    let mut out = Vec::new();
    BidiStream::Subscribe.encode(&mut out, version).unwrap();
    let subscribe = Subscribe {
        id,
        broadcast: Path::new("room/alice").unwrap(),
        track: track.into(),
        window: SubscribeWindow { priority: 1, max_age: 1000, ..Default::default() },
    };
    subscribe.encode(&mut out, version).unwrap();
    out
}

/// Opens a bidi stream, writes `bytes`, and returns how the server answered: the reset code, or
/// `None` if it kept the stream open for a moment.
async fn answer_to(conn: &moqt::transport::quic::QuicConnection, bytes: &[u8]) -> Option<StreamCode> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write(Bytes::copy_from_slice(bytes)).await.unwrap();
    loop {
        match timeout(Duration::from_millis(500), recv.read(1024)).await {
            Err(_) => return None,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return None,
            Ok(Err(StreamError::Reset(code))) => return Some(code),
            Ok(Err(other)) => panic!("stream failed: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_setup_in_time_closes_with_control_message_timeout() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let config = SessionConfig { setup_timeout: Duration::from_millis(500), ..Default::default() };
        let published = publish("room/alice");
        let server = serve_with(version, config, Some(published.origin.clone()), None);
        let healthy = healthy_subscriber(&server, version, &published).await;
        let conn = raw_connect(&server, version).await;
        assert_eq!(close_code(&conn).await, SessionCode::ControlMessageTimeout.to_u64(), "{version}");
        healthy.assert_flowing(&format!("{version}: after the setup timeout")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_duplicate_setup_is_a_protocol_violation() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let server = serve(version, None, None);
        // Probe (0x1) twice.
        let conn = raw_connect(&server, version).await;
        send_uni(&conn, &[0x01, 0x07, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02]).await;
        assert_eq!(close_code(&conn).await, SessionCode::ProtocolViolation.to_u64(), "{version}");
        // A second Setup stream.
        let conn = raw_connect(&server, version).await;
        send_uni(&conn, &client_setup_bytes(version)).await;
        send_uni(&conn, &client_setup_bytes(version)).await;
        assert_eq!(close_code(&conn).await, SessionCode::ProtocolViolation.to_u64(), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_streams_and_malformed_requests_are_refused_not_fatal() {
    init_logs();
    for version in Version::ALL {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let conn = raw_connect(&server, version).await;
        if version.has_setup() {
            send_uni(&conn, &client_setup_bytes(version)).await;
        }
        // Unknown bidi type: reset with CANCELLED.
        assert_eq!(answer_to(&conn, &[0x3f]).await, Some(StreamCode::Cancelled), "{version}");
        // A type the version lacks (Track before lite-05) is refused the same way.
        if !version.has_track_info() {
            assert_eq!(answer_to(&conn, &[0x06, 0x00]).await, Some(StreamCode::Cancelled), "{version}");
        }
        // Unknown uni type: STOP_SENDING only, with QUIC code 0 as moq-relay sends (it drops the
        // stream unread; tests/it/bad_peers.rs compares the two).
        let mut send = conn.open_uni().await.unwrap();
        send.write(Bytes::from_static(&[0x2a, 1, 2, 3])).await.unwrap();
        let stopped = timeout(WAIT, send.stopped()).await.unwrap();
        assert!(
            matches!(stopped, Ok(Some(StreamCode::Unmapped(0))) | Err(StreamError::Stopped(StreamCode::Unmapped(0)))),
            "{version}: {stopped:?}"
        );
        // A SUBSCRIBE whose Message Length is one short: that stream only is reset.
        let mut bad = subscribe_bytes(version, 0, "video");
        bad[1] -= 1;
        assert_eq!(answer_to(&conn, &bad).await, Some(StreamCode::Cancelled), "{version}");
        // The session is still up and serves a good request.
        assert_eq!(answer_to(&conn, &subscribe_bytes(version, 1, "video")).await, None, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_and_announce_bounds_hold_per_session() {
    init_logs();
    let version = Version::Lite06;
    let config = SessionConfig { max_subscriptions: 1, max_announce_requests: 1, ..Default::default() };
    let published = publish("room/alice");
    let server = serve_with(version, config, Some(published.origin.clone()), None);
    let healthy = healthy_subscriber(&server, version, &published).await;
    let greedy = raw_connect(&server, version).await;
    send_uni(&greedy, &client_setup_bytes(version)).await;
    // The first subscription is held open; the second is over the bound.
    let (mut first, _first_recv) = greedy.open_bi().await.unwrap();
    first.write(Bytes::from(subscribe_bytes(version, 0, "video"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(answer_to(&greedy, &subscribe_bytes(version, 1, "video")).await, Some(StreamCode::Cancelled));
    // Same for announce requests.
    let (mut announce, _announce_recv) = greedy.open_bi().await.unwrap();
    announce.write(Bytes::from_static(&[0x01, 0x01, 0x00])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(answer_to(&greedy, &[0x01, 0x01, 0x00]).await, Some(StreamCode::Cancelled));
    // Other sessions are unaffected: one already up keeps receiving, a new one is served.
    healthy.assert_flowing("after the subscription and announce bounds").await;
    let other = raw_connect(&server, version).await;
    send_uni(&other, &client_setup_bytes(version)).await;
    assert_eq!(answer_to(&other, &subscribe_bytes(version, 0, "video")).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_bound_resets_the_stream() {
    init_logs();
    let version = Version::Lite06;
    let config = SessionConfig { max_message_size: 256, ..Default::default() };
    let published = publish("room/alice");
    let server = serve_with(version, config, Some(published.origin.clone()), None);
    let healthy = healthy_subscriber(&server, version, &published).await;
    let conn = raw_connect(&server, version).await;
    send_uni(&conn, &client_setup_bytes(version)).await;
    let long = "x".repeat(1000);
    assert_eq!(answer_to(&conn, &subscribe_bytes(version, 0, &long)).await, Some(StreamCode::Cancelled));
    assert_eq!(answer_to(&conn, &subscribe_bytes(version, 1, "video")).await, None, "the session is still up");
    healthy.assert_flowing("after the message size bound").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_frame_bound_stops_an_oversized_group() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let healthy = healthy_subscriber(&server, version, &published).await;
        // The subscriber accepts at most 2 frames per group.
        let mut config = common::config(version);
        config.session.cache.group.max_frames = 2;
        let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
        let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config).unwrap();
        let remote = moqt::model::OriginProducer::default();
        let origins =
            moqt::session::Origins { publish: None, subscribe: Some(remote.clone().into()), ..Default::default() };
        let session = client.connect(server.addr, "localhost", None, origins).await.unwrap();
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_groups(&mut published.track, 1, 5);
        match next_event(&mut track).await {
            TrackEvent::Group(mut group) => {
                let mut frames = 0;
                let end = loop {
                    match timeout(WAIT, group.next_frame()).await.unwrap() {
                        Ok(Some(_)) => frames += 1,
                        other => break other,
                    }
                };
                assert!(frames <= 2, "{version}");
                assert_eq!(end, Err(Error::TooManyFrames { limit: 2 }), "{version}");
            }
            TrackEvent::Gap(gap) => assert!(
                matches!(gap.reason, moqt::model::GapReason::Aborted(Error::TooManyFrames { .. })),
                "{version}: {gap:?}"
            ),
        }
        assert_eq!(session.event(), SessionEvent::Active, "{version}");
        healthy.assert_flowing(&format!("{version}: after the group frame bound")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_outlives_the_idle_timeout_and_silence_does_not() {
    init_logs();
    let server = serve(Version::Lite06, None, None);
    let mut config = common::config(Version::Lite06);
    config.idle_timeout = Duration::from_millis(400);
    config.keep_alive = Duration::from_millis(100);
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
    let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config.clone()).unwrap();
    let session = client.connect(server.addr, "localhost", None, Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(session.event(), SessionEvent::Active, "keep-alive holds the session open");

    // A peer that sends nothing at all is dropped after the idle timeout: a server with a short
    // one and a setup timeout far longer, so nothing but the idle timeout can end the connection.
    let mut short = common::config(Version::Lite06);
    short.idle_timeout = Duration::from_millis(300);
    short.session.setup_timeout = Duration::from_secs(120);
    let cert = cert();
    let quiet_server = moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, short).unwrap();
    let addr = quiet_server.local_addr().unwrap();
    let (outcome_tx, outcome) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Some(incoming) = quiet_server.accept().await {
            let _ = outcome_tx.send(incoming.setup().await.err());
        }
    });
    // Connect at the QUIC level only (no keep-alive): the server sees no SETUP and no packets.
    let quiet = TestServer { addr, sessions: Default::default(), paths: Default::default(), cert };
    let started = tokio::time::Instant::now();
    let raw = raw_connect(&quiet, Version::Lite06).await;
    let reason = timeout(WAIT, raw.closed()).await.unwrap();
    // An idle timeout is silent: both ends time out, neither sends a close code.
    assert_eq!(reason, TransportError::TimedOut, "the client's view");
    assert!(started.elapsed() >= Duration::from_millis(250), "ended after {:?}", started.elapsed());
    let server_side = timeout(WAIT, outcome).await.expect("the server gave up in time").unwrap();
    assert!(
        matches!(
            server_side,
            Some(moqt::endpoint::EndpointError::Session(SessionError::Transport(TransportError::TimedOut)))
        ),
        "the server's view: {server_side:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bidi_stream_bound_holds() {
    init_logs();
    let version = Version::Lite06;
    let published = publish("room/alice");
    let mut config = common::config(version);
    config.max_concurrent_bidi_streams = 3;
    let server = serve_endpoint(config, Some(published.origin.clone()), None);
    let healthy = healthy_subscriber(&server, version, &published).await;
    let conn = raw_connect(&server, version).await;
    send_uni(&conn, &client_setup_bytes(version)).await;
    // Three request streams held open (announce requests the server answers and keeps).
    let mut held = Vec::new();
    for _ in 0..3 {
        let (mut send, recv) = timeout(WAIT, conn.open_bi()).await.unwrap().unwrap();
        send.write(Bytes::from_static(&[0x01, 0x01, 0x00])).await.unwrap();
        held.push((send, recv));
    }
    // A fourth cannot even be opened until one closes: QUIC flow control, for this peer only.
    let fourth = timeout(Duration::from_millis(300), async {
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write(Bytes::from_static(&[0x01, 0x01, 0x00])).await.unwrap();
    })
    .await;
    assert!(fourth.is_err(), "a fourth bidi stream opened past the bound of 3");
    healthy.assert_flowing("while the bidi stream bound holds").await;
    let (mut send, _recv) = held.pop().unwrap();
    send.finish().unwrap();
    drop(send);
    let next = timeout(WAIT, conn.open_bi()).await;
    assert!(next.is_ok(), "stream credit came back when a stream closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uni_stream_bound_holds() {
    init_logs();
    let version = Version::Lite06;
    let published = publish("room/alice");
    let mut config = common::config(version);
    config.max_concurrent_uni_streams = 2;
    let server = serve_endpoint(config, Some(published.origin.clone()), None);
    let healthy = healthy_subscriber(&server, version, &published).await;
    let conn = raw_connect(&server, version).await;
    send_uni(&conn, &client_setup_bytes(version)).await;
    // Two uni streams held open: each carries the first byte of a two-byte stream type, so the
    // server waits for the rest.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut send = timeout(WAIT, conn.open_uni()).await.expect("credit for two streams").unwrap();
        send.write(Bytes::from_static(&[0x40])).await.unwrap();
        held.push(send);
    }
    let third = timeout(Duration::from_millis(300), conn.open_uni()).await;
    assert!(third.is_err(), "a third uni stream opened past the bound of 2");
    healthy.assert_flowing("while the uni stream bound holds").await;
    let mut send = held.pop().unwrap();
    send.finish().unwrap();
    let next = timeout(WAIT, conn.open_uni()).await;
    assert!(next.is_ok(), "stream credit came back when a stream closed");
}

/// A peer starts with a small stream allowance (`initial_concurrent_streams`) that grows as it
/// opens streams, up to `max_concurrent_uni_streams` and no further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_stream_allowance_grows_with_use_up_to_its_maximum() {
    init_logs();
    let version = Version::Lite06;
    let published = publish("room/alice");
    let mut config = common::config(version);
    config.initial_concurrent_streams = 4;
    config.max_concurrent_uni_streams = 40;
    let server = serve_endpoint(config, Some(published.origin.clone()), None);
    let conn = raw_connect(&server, version).await;
    send_uni(&conn, &client_setup_bytes(version)).await;
    // 40 held open (SETUP's stream is finished), each with half of a two-byte stream type, so the
    // server holds them: ten times the initial allowance, so it had to grow.
    let mut held = Vec::new();
    for opened in 0..40 {
        let mut send = timeout(WAIT, conn.open_uni())
            .await
            .unwrap_or_else(|_| panic!("the allowance did not grow past {opened} streams"))
            .unwrap();
        send.write(Bytes::from_static(&[0x40])).await.unwrap();
        held.push(send);
    }
    let past = timeout(Duration::from_millis(300), conn.open_uni()).await;
    assert!(past.is_err(), "a uni stream opened past the maximum of 40");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_path_bound_closes_that_session_only() {
    init_logs();
    for version in Version::ALL {
        // The server publishes three broadcasts.
        let published = publish("room/alice");
        let extra: Vec<_> = ["room/x", "room/y"]
            .into_iter()
            .map(|at| {
                let broadcast = moqt::model::BroadcastProducer::default();
                let route = moqt::model::Route::local();
                let guard = published.origin.publish(path(at), broadcast.consume(), route).unwrap();
                (broadcast, guard)
            })
            .collect();
        let server = serve(version, Some(published.origin.clone()), None);
        let healthy = healthy_subscriber(&server, version, &published).await;
        server.wait_sessions(1).await;
        // A client that takes at most two announced paths.
        let mut config = common::config(version);
        config.session.max_announced = 2;
        let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
        let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config).unwrap();
        let remote = moqt::model::OriginProducer::default();
        let origins = moqt::session::Origins { publish: None, subscribe: Some(remote.into()), ..Default::default() };
        let mut session =
            timeout(WAIT, client.connect(server.addr, "localhost", None, origins)).await.unwrap().unwrap();
        let closed = timeout(WAIT, session.closed()).await.expect("closed in time");
        assert!(matches!(closed, SessionError::Limit(_)), "{version}: {closed:?}");
        // The server's side of that session was closed with PROTOCOL_VIOLATION.
        server.wait_sessions(2).await;
        let seen = timeout(WAIT, async {
            loop {
                let event = server.sessions.lock().unwrap()[1].event();
                if let SessionEvent::Closed(err) = event {
                    return err;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(seen.peer_code(), Some(SessionCode::ProtocolViolation), "{version}: {seen:?}");
        healthy.assert_flowing(&format!("{version}: after the announced-path bound")).await;
        drop(extra);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_announce_request_closes_that_session_only() {
    init_logs();
    let version = Version::Lite06;
    // The server subscribes: it opens an Announce stream to each client and waits for ANNOUNCE_OK.
    let config = SessionConfig { control_timeout: Duration::from_millis(300), ..Default::default() };
    let inbox = moqt::model::OriginProducer::default();
    let server = serve_with(version, config, None, Some(inbox.clone()));
    let healthy = healthy_publisher(&server, version, &inbox).await;
    // A client that never answers.
    let silent = raw_connect(&server, version).await;
    send_uni(&silent, &client_setup_bytes(version)).await;
    let (_send, _recv) = timeout(WAIT, silent.accept_bi()).await.expect("the server asks for announcements").unwrap();
    assert_eq!(close_code(&silent).await, SessionCode::ControlMessageTimeout.to_u64());
    healthy.assert_flowing("after the control-message timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_byte_bound_stops_an_oversized_group() {
    init_logs();
    let version = Version::Lite06;
    let mut published = publish("room/alice");
    let server = serve(version, Some(published.origin.clone()), None);
    let healthy = healthy_subscriber(&server, version, &published).await;
    let mut config = common::config(version);
    config.session.cache.group.max_bytes = 100;
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
    let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config).unwrap();
    let remote = moqt::model::OriginProducer::default();
    let origins =
        moqt::session::Origins { publish: None, subscribe: Some(remote.clone().into()), ..Default::default() };
    let session = client.connect(server.addr, "localhost", None, origins).await.unwrap();
    let broadcast = announced(&remote, &path("room/alice")).await;
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
    timeout(WAIT, published.track.used()).await.unwrap();
    let mut group = published.track.append_group().unwrap();
    for i in 0..4u64 {
        group.write(i, Bytes::from(vec![0u8; 60])).unwrap();
    }
    group.finish().unwrap();
    let outcome = match next_event(&mut track).await {
        TrackEvent::Group(mut group) => loop {
            match timeout(WAIT, group.next_frame()).await.unwrap() {
                Ok(Some(_)) => continue,
                other => break other.map(|_| ()),
            }
        },
        TrackEvent::Gap(gap) => Err(match gap.reason {
            moqt::model::GapReason::Aborted(err) => err,
            other => panic!("{other:?}"),
        }),
    };
    assert_eq!(outcome, Err(Error::TooManyBytes { limit: 100 }));
    assert_eq!(session.event(), SessionEvent::Active);
    healthy.assert_flowing("after the group byte bound").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_frame_bounds_are_honoured_on_lite_06() {
    use moqt::wire::{FrameTimestamps, GroupHeader, StreamReader};
    init_logs();
    let version = Version::Lite06;
    let mut published = publish("room/alice");
    let server = serve(version, Some(published.origin.clone()), None);
    let conn = raw_connect(&server, version).await;
    send_uni(&conn, &client_setup_bytes(version)).await;
    // Groups 0..=3 of 4 frames each, cached before the subscription.
    write_groups(&mut published.track, 4, 4);
    // Resume at frame 2 of group 1; stop after frame 1 of group 2.
    let mut request = Vec::new();
    BidiStream::Subscribe.encode(&mut request, version).unwrap();
    let window = SubscribeWindow {
        priority: 1,
        max_age: 60_000,
        group_start: Some(1),
        group_end: Some(2),
        frame_start: 2,
        frame_end: Some(1),
        ..Default::default()
    };
    Subscribe { id: 0, broadcast: Path::new("room/alice").unwrap(), track: "video".into(), window }
        .encode(&mut request, version)
        .unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write(Bytes::from(request)).await.unwrap();
    let mut groups = Vec::new();
    while groups.len() < 2 {
        let mut recv = timeout(WAIT, conn.accept_uni()).await.unwrap().unwrap();
        let mut reader = StreamReader::new(version, 1 << 20);
        while let Some(chunk) = timeout(WAIT, recv.read(4096)).await.unwrap().unwrap() {
            reader.push(&chunk).unwrap();
        }
        if reader.read_with(|b| UniStream::decode(b, version)).unwrap() != Some(UniStream::Group) {
            continue;
        }
        let header = reader.decode::<GroupHeader>().unwrap().unwrap();
        let mut stamps = FrameTimestamps::new();
        let mut payloads = Vec::new();
        while let Some(frame) = reader.read_frame(&mut stamps).unwrap() {
            payloads.push(frame.payload);
        }
        groups.push((header, payloads));
    }
    groups.sort_by_key(|(header, _)| header.sequence);
    let (first, first_frames) = &groups[0];
    assert_eq!((first.sequence, first.frame_start), (1, 2), "GROUP Frame Start names the first frame sent");
    assert_eq!(first_frames, &vec![payload(1, 2), payload(1, 3)]);
    let (last, last_frames) = &groups[1];
    assert_eq!((last.sequence, last.frame_start), (2, 0));
    assert_eq!(last_frames, &vec![payload(2, 0), payload(2, 1)], "Frame End is inclusive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_update_narrowing_the_end_ends_the_subscription() {
    use moqt::wire::{StreamReader, SubscribeResponse, SubscribeUpdate};
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let conn = raw_connect(&server, version).await;
        send_uni(&conn, &client_setup_bytes(version)).await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write(Bytes::from(subscribe_bytes(version, 0, "video"))).await.unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_groups(&mut published.track, 2, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Narrow the end to group 1: both groups are out, so the publisher ends at once.
        let window = SubscribeWindow { priority: 1, max_age: 1000, group_end: Some(1), ..Default::default() };
        send.write(Bytes::from(SubscribeUpdate { window }.to_bytes(version).unwrap())).await.unwrap();
        let mut reader = StreamReader::new(version, 1 << 16);
        let mut responses = Vec::new();
        let finished = timeout(WAIT, async {
            loop {
                while let Some(response) = reader.decode::<SubscribeResponse>().unwrap() {
                    responses.push(response);
                }
                match recv.read(4096).await.unwrap() {
                    Some(chunk) => reader.push(&chunk).unwrap(),
                    None => return,
                }
            }
        })
        .await;
        assert!(finished.is_ok(), "{version}: the subscription did not end: {responses:?}");
        assert_eq!(responses.last(), Some(&SubscribeResponse::End { group: 2 }), "{version}: {responses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_bounds_stop_the_publishers_stream_with_group_too_large() {
    use moqt::wire::FrameTimestamps;
    init_logs();
    for version in Version::ALL {
        // (frame bound, byte bound, frames of 60 bytes sent): one bound at a time.
        for (max_frames, max_bytes) in [(2, usize::MAX), (usize::MAX, 100)] {
            let raw = raw::raw_server(version);
            let mut config = SessionConfig::default();
            config.cache.group.max_frames = max_frames;
            config.cache.group.max_bytes = max_bytes;
            let (session, remote, peer, _announce) = raw.subscriber(config).await;
            let broadcast = announced(&remote, &path("room/alice")).await;
            let subscribing = tokio::spawn(async move { broadcast.subscribe_track("video").await });
            let (subscribe, _request) = peer.subscription().await;
            let _track = timeout(WAIT, subscribing).await.unwrap().unwrap().unwrap();
            let mut send = peer.group(subscribe.id, 0, 0).await;
            let mut timestamps = FrameTimestamps::new();
            let mut refused = None;
            for n in 0..5u64 {
                if let Err(err) = send.write(peer.frame(&mut timestamps, n * 33, &[7u8; 60])).await {
                    // STOP_SENDING may arrive before the last frames are written.
                    refused = Some(Err(err));
                    break;
                }
            }
            // The stream stays open: only the subscriber's STOP_SENDING can end it.
            let stopped = match refused {
                Some(refused) => refused,
                None => timeout(WAIT, send.stopped()).await.expect("STOP_SENDING in time"),
            };
            assert!(
                matches!(
                    stopped,
                    Ok(Some(StreamCode::GroupTooLarge)) | Err(StreamError::Stopped(StreamCode::GroupTooLarge))
                ),
                "{version} ({max_frames} frames, {max_bytes} bytes): {stopped:?}"
            );
            assert_eq!(session.event(), SessionEvent::Active, "{version}: only the group is refused");
        }
    }
}

/// A SETUP stream with these (ID, value) parameters, in order.
fn setup_with(params: &[(u64, &[u8])]) -> Vec<u8> {
    let mut body = vec![params.len() as u8];
    for (id, value) in params {
        body.push(*id as u8);
        body.push(value.len() as u8);
        body.extend_from_slice(value);
    }
    let mut out = vec![0x01, body.len() as u8];
    out.extend(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_setup_parameter_reaches_the_peer() {
    use moqt::wire::{ProbeLevel, Role};
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let server_config =
            SessionConfig { probe: ProbeLevel::Increase, hop_id: 77, cost: Some(3), ..Default::default() };
        let server = serve_with(version, server_config, None, None);
        let mut config = common::config(version);
        config.session.role = Role::Publisher;
        config.session.probe = ProbeLevel::Increase;
        config.session.cost = Some(7);
        config.session.hop_id = 42;
        let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
        let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config).unwrap();
        let session = timeout(WAIT, client.connect(server.addr, "localhost", Some("/room".into()), Default::default()))
            .await
            .unwrap()
            .unwrap();
        // The client's SETUP as the server read it.
        server.wait_sessions(1).await;
        let seen = server.sessions.lock().unwrap()[0].peer_setup().clone();
        assert_eq!(
            (seen.probe, seen.role, seen.cost, seen.hop, seen.path.as_deref()),
            (ProbeLevel::Increase, Role::Publisher, Some(7), Some(42), Some("/room")),
            "{version}"
        );
        // The server's SETUP as the client read it (servers send no Role or Path).
        let theirs = session.peer_setup();
        assert_eq!(
            (theirs.probe, theirs.role, theirs.cost, theirs.hop, theirs.path.as_deref()),
            (ProbeLevel::Increase, Role::Both, Some(3), Some(77), None),
            "{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_any_setup_parameter_is_a_protocol_violation() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let server = serve(version, None, None);
        // Probe, Path, Role, Cost, Hop and an unknown ID, each twice.
        for id in [0x1u64, 0x2, 0x3, 0x4, 0x5, 0x3e] {
            let conn = raw_connect(&server, version).await;
            send_uni(&conn, &setup_with(&[(id, b"a"), (id, b"a")])).await;
            assert_eq!(close_code(&conn).await, SessionCode::ProtocolViolation.to_u64(), "{version}: ID {id:#x}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_setup_parameters_are_ignored_both_ways() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        // Client to server: an unknown ID before Probe; the session is served.
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let conn = raw_connect(&server, version).await;
        send_uni(&conn, &setup_with(&[(0x3e, b"\x05\x06"), (0x1, b"\x01")])).await;
        assert_eq!(answer_to(&conn, &subscribe_bytes(version, 0, "video")).await, None, "{version}");
        server.wait_sessions(1).await;
        let seen = server.sessions.lock().unwrap()[0].peer_setup().clone();
        assert_eq!(seen.probe, moqt::wire::ProbeLevel::Report, "{version}");
        assert_eq!(seen.unknown.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![0x3e], "{version}");
        // Server to client: a moqt client takes a SETUP with an unknown ID and runs.
        let raw = raw::raw_server(version);
        let client = raw.client(SessionConfig::default());
        let mut unknown = moqt::coding::Parameters::new();
        unknown.set(0x3e, Bytes::from_static(b"\x07"));
        let ours = Setup { unknown, ..Default::default() };
        let accept = async {
            let incoming = raw.accept_bare().await;
            incoming.exchange_setup(&ours).await;
            incoming
        };
        let (session, _peer) =
            tokio::join!(timeout(WAIT, client.connect(raw.addr, "localhost", None, Default::default())), accept);
        let session = session.unwrap().unwrap();
        assert_eq!(session.peer_setup().unknown.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![0x3e]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(session.event(), SessionEvent::Active, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_level_none_refuses_probing_both_ways() {
    use moqt::wire::{Probe, ProbeLevel};
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let config = SessionConfig { probe: ProbeLevel::None, ..Default::default() };
        let published = publish("room/alice");
        let server = serve_with(version, config, Some(published.origin.clone()), None);
        // The client reads Probe level None in the server's SETUP and does not ask.
        let (session, _remote) = server.subscriber(version).await;
        assert_eq!(session.peer_setup().probe, ProbeLevel::None);
        let refused = session.set_probe_target(1_000_000).await;
        assert!(matches!(refused, Err(SessionError::Unsupported(_))), "{version}: {refused:?}");
        // A peer that opens a Probe stream anyway has it reset with CANCELLED; the session stays.
        let conn = raw_connect(&server, version).await;
        send_uni(&conn, &client_setup_bytes(version)).await;
        let mut probe = Vec::new();
        BidiStream::Probe.encode(&mut probe, version).unwrap();
        Probe { bitrate: 1_000_000, rtt: 0 }.encode(&mut probe, version).unwrap();
        assert_eq!(answer_to(&conn, &probe).await, Some(StreamCode::Cancelled), "{version}");
        assert_eq!(answer_to(&conn, &subscribe_bytes(version, 0, "video")).await, None, "{version}");
    }
}
