//! Session mechanics over loopback QUIC, in every version that has them: FETCH, start groups,
//! SUBSCRIBE_UPDATE, refusals, gaps, GOAWAY with drain timeout, PROBE, datagrams, SETUP Path and
//! session rejection.

use crate::common;

use std::time::Duration;

use common::*;
use moqt::coding::{SessionCode, StreamCode};
use moqt::model::{self, Error, GapReason, GroupStart, SubscribeOptions, TrackEvent};
use moqt::session::{FetchRequest, SessionConfig, SessionError, SessionEvent};
use moqt::transport::{SendStream, TransportError};
use moqt::wire::{Message, Version};
use tokio::time::timeout;

const SINCE_05: [Version; 2] = [Version::Lite06, Version::Lite05];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reads_a_past_group_and_refuses_a_missing_one() {
    init_logs();
    for version in SINCE_05 {
        let mut published = publish("room/alice");
        write_groups(&mut published.track, 3, 4);
        let server = serve(version, Some(published.origin.clone()), None);
        let (session, _remote) = server.subscriber(version).await;
        let request = |group, frame_start, frame_end| FetchRequest {
            broadcast: path("room/alice"),
            track: "video".into(),
            group,
            frame_start,
            frame_end,
            priority: 1,
        };
        let mut group = timeout(WAIT, session.fetch(request(1, 0, None))).await.unwrap().unwrap();
        let frames = read_group(&mut group).await;
        assert_eq!(
            frames.iter().map(|f| f.payload.clone()).collect::<Vec<_>>(),
            (0..4).map(|f| payload(1, f)).collect::<Vec<_>>()
        );
        assert_eq!(frames[0].timestamp, stamp(1, 0, 4), "{version}: the first delta is taken against 0");
        if version >= Version::Lite06 {
            let mut part = timeout(WAIT, session.fetch(request(2, 1, Some(2)))).await.unwrap().unwrap();
            let frames = read_group(&mut part).await;
            assert_eq!(
                frames.iter().map(|f| f.payload.clone()).collect::<Vec<_>>(),
                vec![payload(2, 1), payload(2, 2)]
            );
            assert_eq!(frames[0].timestamp, stamp(2, 1, 4));
        }
        let mut missing = timeout(WAIT, session.fetch(request(9, 0, None))).await.unwrap().unwrap();
        let result = timeout(WAIT, missing.next_frame()).await.unwrap();
        assert_eq!(result, Err(Error::Aborted(StreamCode::NotFound)), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_is_refused_before_lite_05() {
    for version in [Version::Lite04, Version::Lite03] {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (session, _remote) = server.subscriber(version).await;
        let request = FetchRequest {
            broadcast: path("room/alice"),
            track: "video".into(),
            group: 0,
            frame_start: 0,
            frame_end: None,
            priority: 0,
        };
        assert!(matches!(session.fetch(request).await, Err(SessionError::Unsupported(_))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_group_skips_older_groups() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        write_groups(&mut published.track, 4, 1);
        let server = serve(version, Some(published.origin.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let options = SubscribeOptions { start: GroupStart::Floor(2), ..Default::default() };
        let mut track = timeout(WAIT, broadcast.subscribe_track_with("video", options)).await.unwrap().unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            match next_event(&mut track).await {
                TrackEvent::Group(group) => seen.push(group.sequence()),
                TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
            }
        }
        seen.sort();
        assert_eq!(seen, vec![2, 3], "{version}");
    }
}

/// The publisher can only start above the floor asked for (the groups below are gone from its
/// cache): the subscriber is told, by SUBSCRIBE_OK.Group from lite-05 on and by SUBSCRIBE_DROP
/// before, and reports those sequences as a gap instead of waiting for them at its floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_above_the_requested_floor_is_a_gap_in_every_version() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        for _ in 0..3 {
            published.track.append_group().unwrap().abort(Error::Aborted(StreamCode::InternalError));
        }
        write_groups(&mut published.track, 2, 1);
        let server = serve(version, Some(published.origin.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let options = SubscribeOptions { start: GroupStart::Floor(0), ..Default::default() };
        let mut track = timeout(WAIT, broadcast.subscribe_track_with("video", options)).await.unwrap().unwrap();
        let (mut groups, mut gaps) = (Vec::new(), Vec::new());
        while groups.len() < 2 || gaps.is_empty() {
            match next_event(&mut track).await {
                TrackEvent::Group(group) => groups.push(group.sequence()),
                TrackEvent::Gap(gap) => gaps.push((gap.start, gap.end)),
            }
        }
        groups.sort();
        assert_eq!((groups, gaps), (vec![3, 4], vec![(0, 2)]), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_track_and_unknown_broadcast_are_clean_errors() {
    init_logs();
    for version in Version::ALL {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let result = timeout(WAIT, async {
            let mut track = broadcast.subscribe_track("nope").await?;
            track.next_group().await.map(|_| ())
        })
        .await
        .unwrap();
        assert_eq!(result, Err(Error::Aborted(StreamCode::NotFound)), "{version}");
        // The session is unaffected.
        assert_eq!(session.event(), SessionEvent::Active);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_priority_travels_and_updates_live() {
    init_logs();
    for version in Version::ALL {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let options = SubscribeOptions { priority: Some(9), ..Default::default() };
        let mut track = timeout(WAIT, broadcast.subscribe_track_with("video", options)).await.unwrap().unwrap();
        let mut interest = published.track.interest();
        let seen = timeout(WAIT, async {
            loop {
                if let Some(current) = interest.current().filter(|o| o.priority == Some(9)) {
                    return current;
                }
                interest.changed().await;
            }
        });
        assert_eq!(seen.await.expect("SUBSCRIBE carries the priority").priority, Some(9), "{version}");
        track.set_preferences(Some(200), None);
        let updated = timeout(WAIT, async {
            loop {
                if interest.changed().await.and_then(|o| o.priority) == Some(200) {
                    return;
                }
            }
        });
        updated.await.unwrap_or_else(|_| panic!("{version}: SUBSCRIBE_UPDATE did not arrive"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_groups_reach_the_subscriber_as_gaps() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_groups(&mut published.track, 1, 1);
        assert!(matches!(next_event(&mut track).await, TrackEvent::Group(g) if g.sequence() == 0));
        // The publisher gives up on 1..=2 (SUBSCRIBE_DROP), then continues at 3.
        published.track.drop_groups(1, 2, Error::Aborted(StreamCode::TooFarBehind));
        let mut group = published.track.create_group(3).unwrap();
        group.write(5000, payload(3, 0)).unwrap();
        group.finish().unwrap();
        let mut events = Vec::new();
        for _ in 0..2 {
            events.push(next_event(&mut track).await);
        }
        let gap = events.iter().find_map(|e| match e {
            TrackEvent::Gap(gap) => Some(gap.clone()),
            TrackEvent::Group(_) => None,
        });
        let gap = gap.unwrap_or_else(|| panic!("{version}: no gap in {events:?}"));
        assert_eq!((gap.start, gap.end), (1, 2), "{version}");
        assert_eq!(gap.reason, GapReason::Aborted(Error::Aborted(StreamCode::TooFarBehind)), "{version}");
        assert!(events.iter().any(|e| matches!(e, TrackEvent::Group(g) if g.sequence() == 3)), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_reaches_the_client_and_the_drain_timeout_closes() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let session_config = SessionConfig { drain_timeout: Duration::from_millis(300), ..Default::default() };
        let published = publish("room/alice");
        let server = serve_with(version, session_config, Some(published.origin.clone()), None);
        let (mut session, _remote) = server.subscriber(version).await;
        server.wait_sessions(1).await;
        {
            let sessions = server.sessions.lock().unwrap();
            let server_session = &sessions[0];
            let goaway = server_session.goaway("https://other.example/anon");
            futures_lite_block(goaway).unwrap();
        }
        let event = timeout(WAIT, session.next_event()).await.unwrap();
        assert_eq!(event, SessionEvent::GoingAway { uri: "https://other.example/anon".into() }, "{version}");
        // We stay: the server closes with GOAWAY_TIMEOUT after its drain timeout.
        let closed = timeout(WAIT, session.closed()).await.unwrap();
        assert_eq!(
            closed,
            SessionError::Transport(TransportError::ClosedByPeer {
                code: SessionCode::GoawayTimeout.to_u64(),
                reason: "GOAWAY drain timeout".into()
            }),
            "{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_is_refused_on_lite_03() {
    let server = serve(Version::Lite03, None, None);
    let (session, _remote) = server.subscriber(Version::Lite03).await;
    assert!(matches!(session.goaway("").await, Err(SessionError::Unsupported(_))));
}

/// Runs a short future to completion from synchronous code inside a multi-thread runtime.
fn futures_lite_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_the_path_stats_and_targets_reach_the_publisher() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        write_groups(&mut published.track, 2, 2);
        let server = serve(version, Some(published.origin.clone()), None);
        // A path with about 80 ms of RTT: far above loopback's, so a reported RTT that matches it
        // was measured, not a floor.
        let link = delayed_link(server.addr, Duration::from_millis(40)).await;
        let origins = moqt::session::Origins::default();
        let session =
            timeout(WAIT, server.client(version).connect(link, "localhost", None, origins)).await.unwrap().unwrap();
        server.wait_sessions(1).await;
        session.set_probe_target(2_000_000).await.unwrap();
        let report = timeout(WAIT, async {
            loop {
                if let Some(report) = session.probe_report() {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("a PROBE report");
        let publisher = server.sessions.lock().unwrap()[0].stats();
        let ours = session.stats();
        if version >= Version::Lite04 {
            let rtt = Duration::from_millis(report.rtt_ms);
            assert!(rtt >= Duration::from_millis(70), "{version}: {report:?}");
            for (side, stats) in [("publisher", publisher), ("subscriber", ours)] {
                let ratio = rtt.as_secs_f64() / stats.rtt.as_secs_f64();
                assert!((0.5..2.0).contains(&ratio), "{version}: reported {rtt:?}, {side}'s path RTT {:?}", stats.rtt);
            }
        } else {
            assert_eq!(report.rtt_ms, 0, "lite-03 has no RTT field");
        }
        // The bitrate is the publisher's congestion window over its RTT, as its stats say now.
        let ratio = report.bitrate as f64 / publisher.send_bitrate as f64;
        assert!((0.25..4.0).contains(&ratio), "{version}: reported {report:?}, path stats {publisher:?}");
        // The subscriber's target reaches the publisher, and so does a change of it.
        for target in [2_000_000, 3_500_000] {
            session.set_probe_target(target).await.unwrap();
            let reached = timeout(WAIT, async {
                loop {
                    if server.sessions.lock().unwrap()[0].peer_probe_target() == Some(target) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            assert!(reached.is_ok(), "{version}: target {target} did not reach the publisher");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_carry_one_frame_groups() {
    init_logs();
    for version in SINCE_05 {
        let mut published = publish("room/alice");
        let session_config = SessionConfig { datagram_groups: true, ..Default::default() };
        let server = serve_with(version, session_config, Some(published.origin.clone()), None);
        let (session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        let mut received = Vec::new();
        // Datagrams may be lost even on loopback, and a group the publisher sees before it is
        // complete goes on a stream: send until three groups arrived as datagrams.
        for round in 0..50u64 {
            write_groups(&mut published.track, 1, 1);
            if let Ok(event) = timeout(Duration::from_millis(200), track.next_group()).await {
                if let Some(TrackEvent::Group(mut group)) = event.unwrap() {
                    let frames = read_group(&mut group).await;
                    assert_eq!(frames.len(), 1);
                    assert_eq!(frames[0].payload, payload(group.sequence(), 0));
                    assert_eq!(frames[0].timestamp, stamp(group.sequence(), 0, 1), "{version}: datagram timestamp");
                    received.push(group.sequence());
                }
            }
            if (received.len() >= 3 && session.stats().datagrams_received >= 3) || round == 49 {
                break;
            }
        }
        assert!(received.len() >= 3, "{version}: only {received:?} arrived");
        // They came as DATAGRAM frames: the transport counted them on both ends (and counts none
        // without `datagram_groups`, see below).
        let arrived = session.stats().datagrams_received;
        assert!(arrived >= 3, "{version}: {arrived} datagrams for {received:?}");
        server.wait_sessions(1).await;
        let sent = server.sessions.lock().unwrap()[0].stats().datagrams_sent;
        assert!(sent >= arrived, "{version}: {sent} sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_go_on_streams_without_datagram_groups_or_above_1200_bytes() {
    init_logs();
    for version in SINCE_05 {
        for (datagram_groups, size) in [(false, 10), (true, 1500)] {
            let mut published = publish("room/alice");
            let session_config = SessionConfig { datagram_groups, ..Default::default() };
            let server = serve_with(version, session_config, Some(published.origin.clone()), None);
            let (session, remote) = server.subscriber(version).await;
            let broadcast = announced(&remote, &path("room/alice")).await;
            let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
            timeout(WAIT, published.track.used()).await.unwrap();
            for _ in 0..3 {
                let mut group = published.track.append_group().unwrap();
                group.write(1000, bytes::Bytes::from(vec![9u8; size])).unwrap();
                group.finish().unwrap();
                match next_event(&mut track).await {
                    TrackEvent::Group(mut group) => {
                        let frames = read_group(&mut group).await;
                        assert_eq!(frames.len(), 1);
                        assert_eq!(frames[0].payload.len(), size, "{version}");
                    }
                    TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
                }
            }
            server.wait_sessions(1).await;
            let what = format!("{version}, datagram groups {datagram_groups}, {size} bytes");
            assert_eq!(session.stats().datagrams_received, 0, "{what}");
            assert_eq!(server.sessions.lock().unwrap()[0].stats().datagrams_sent, 0, "{what}");
        }
    }
}

/// A live-edge subscription on lite-06 sends SUBSCRIBE together with TRACK, without waiting for
/// TRACK_INFO (spec 3.5): a joining viewer saves a round trip on every hop. A group that comes
/// before TRACK_INFO is kept for the track, not refused. On the old path the SUBSCRIBE never came
/// while TRACK was unanswered, so the second request below was not there in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_edge_subscription_sends_track_and_subscribe_together() {
    use moqt::wire::{Subscribe, SubscribeResponse, TrackInfo, TrackRequest};
    init_logs();
    let version = Version::Lite06;
    let raw = raw::raw_server(version);
    let (_session, remote, peer, _announce) = raw.subscriber(SessionConfig::default()).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let options = SubscribeOptions { start: GroupStart::Latest, ..Default::default() };
    let subscribing = tokio::spawn(async move { broadcast.subscribe_track_with("video", options).await });
    let mut track = peer.request().await;
    assert_eq!(track.kind, moqt::wire::BidiStream::Track);
    let asked: TrackRequest = track.message().await;
    assert_eq!(asked.track, "video");
    // TRACK is not answered yet, and the SUBSCRIBE is here.
    let mut request = peer.request().await;
    assert_eq!(request.kind, moqt::wire::BidiStream::Subscribe);
    let subscribe: Subscribe = request.message().await;
    assert_eq!((subscribe.track.as_str(), subscribe.window.max_age, subscribe.window.group_start), ("video", 0, None));
    // The live edge and its first group, then TRACK_INFO.
    request.send(&SubscribeResponse::Ok { group: 7 }, version).await;
    peer.send_group(subscribe.id, 7, 0, &[payload(7, 0), payload(7, 1)]).await;
    let info = TrackInfo { priority: 9, ordered: false, max_age: 10_000, timescale: 1000 };
    track.send(&info, version).await;
    track.send.finish().unwrap();
    let mut consumer = timeout(WAIT, subscribing).await.expect("the track in time").unwrap().unwrap();
    assert_eq!(consumer.info().priority, 9, "the publisher's TRACK_INFO");
    let event = timeout(WAIT, consumer.next_group()).await.expect("group 7 in time").unwrap().unwrap();
    let mut group = event.into_group().expect("a group, not a gap");
    assert_eq!(group.sequence(), 7);
    let frames = read_group(&mut group).await;
    let payloads: Vec<_> = frames.iter().map(|f| f.payload.clone()).collect();
    assert_eq!(payloads, [payload(7, 0), payload(7, 1)]);
    // With TRACK_INFO known, the SUBSCRIBE_UPDATE after SUBSCRIBE_OK carries the publisher's
    // priority and Max Age from the live edge on.
    let update: moqt::wire::SubscribeUpdate = request.message().await;
    assert_eq!((update.window.priority, update.window.max_age, update.window.group_start), (9, 10_000, Some(7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_arriving_twice_is_delivered_once() {
    init_logs();
    for version in SINCE_05 {
        let raw = raw::raw_server(version);
        let (_session, remote, peer, _announce) = raw.subscriber(SessionConfig::default()).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let subscribing = tokio::spawn(async move { broadcast.subscribe_track("video").await });
        let (subscribe, _request) = peer.subscription().await;
        let mut track = timeout(WAIT, subscribing).await.unwrap().unwrap().unwrap();
        // Group 0 as a datagram, again and again until it is delivered (datagrams may be lost).
        let first = timeout(WAIT, async {
            loop {
                peer.datagram(subscribe.id, 0, 1000, payload(0, 0));
                peer.datagram(subscribe.id, 0, 1000, payload(0, 0));
                if let Ok(event) = timeout(Duration::from_millis(100), track.next_group()).await {
                    return event.unwrap().unwrap();
                }
            }
        })
        .await
        .expect("group 0 in time");
        let mut group = first.into_group().expect("a group");
        assert_eq!(group.sequence(), 0);
        let frames = read_group(&mut group).await;
        assert_eq!((frames.len(), frames[0].payload.clone(), frames[0].timestamp), (1, payload(0, 0), 1000));
        // The same group once more on a stream: refused with STOP_SENDING.
        let mut again = peer.group(subscribe.id, 0, 0).await;
        let mut timestamps = moqt::wire::FrameTimestamps::new();
        let stopped = match again.write(peer.frame(&mut timestamps, 1000, b"other")).await {
            // STOP_SENDING may come as soon as the header is read.
            Err(err) => Err(err),
            Ok(()) => timeout(WAIT, again.stopped()).await.expect("stopped in time"),
        };
        assert!(matches!(stopped, Ok(Some(_)) | Err(moqt::transport::StreamError::Stopped(_))), "{stopped:?}");
        // And as a datagram; then group 1 is the next and only event.
        peer.datagram(subscribe.id, 0, 1000, payload(0, 0));
        peer.send_group(subscribe.id, 1, 0, &[payload(1, 0)]).await;
        match next_event(&mut track).await {
            TrackEvent::Group(group) => assert_eq!(group.sequence(), 1, "{version}"),
            TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
        }
        let more = timeout(Duration::from_millis(300), track.next_group()).await;
        assert!(more.is_err(), "{version}: a duplicate was delivered: {more:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_path_reaches_the_server_and_rejection_is_unauthorized() {
    init_logs();
    for version in SINCE_05 {
        let server = serve(version, None, None);
        let origins = moqt::session::Origins::default();
        let mut session = timeout(
            WAIT,
            server.client(version).connect(server.addr, "localhost", Some("/anon/room?jwt=x".into()), origins),
        )
        .await
        .unwrap()
        .unwrap();
        server.wait_sessions(1).await;
        assert_eq!(server.paths.lock().unwrap()[0], "/anon/room?jwt=x", "{version}");
        session.close(SessionCode::NoError, "");
        let _ = timeout(WAIT, session.closed()).await;

        let rejected = server
            .client(version)
            .connect(server.addr, "localhost", Some("/forbidden".into()), moqt::session::Origins::default())
            .await;
        let mut rejected = match rejected {
            Ok(session) => session,
            Err(err) => {
                assert!(err.to_string().contains("0x2"), "{version}: {err}");
                continue;
            }
        };
        let closed = timeout(WAIT, rejected.closed()).await.unwrap();
        assert!(
            matches!(closed, SessionError::Transport(TransportError::ClosedByPeer { code: 0x2, .. })),
            "{version}: {closed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_departure_is_announced() {
    init_logs();
    for version in Version::ALL {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let mut announcements = remote.consume();
        let first = timeout(WAIT, announcements.next_announcement()).await.unwrap().unwrap();
        assert!(matches!(first, model::Announcement::Start { ref path, .. } if path.as_str() == "room/alice"));
        published.broadcast.finish();
        let next = timeout(WAIT, announcements.next_announcement()).await.unwrap().unwrap();
        assert!(
            matches!(next, model::Announcement::End { ref path } if path.as_str() == "room/alice"),
            "{version}: {next:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_group_is_reset_with_old() {
    init_logs();
    for version in Version::ALL {
        let info = model::TrackInfo { priority: 1, max_age: Duration::from_millis(100), timescale: 1000 };
        let mut published = publish_with("room/alice", info);
        let server = serve(version, Some(published.origin.clone()), None);
        let producer = &mut published.track;
        let (_session, remote) = server.subscriber(version).await;
        let remote_broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, remote_broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, producer.used()).await.unwrap();
        // Group 0 stays open; group 1 moves 100 ms past it, so group 0 expires mid-stream.
        let mut old = producer.append_group().unwrap();
        old.write(0, payload(0, 0)).unwrap();
        let mut first = match next_event(&mut track).await {
            TrackEvent::Group(group) => group,
            TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
        };
        assert_eq!(timeout(WAIT, first.next_frame()).await.unwrap().unwrap().unwrap().payload, payload(0, 0));
        let mut new = producer.append_group().unwrap();
        new.write(200, payload(1, 0)).unwrap();
        new.write(300, payload(1, 1)).unwrap();
        let end = timeout(WAIT, first.next_frame()).await.unwrap();
        // lite-05+ subscribers see the expiry in their own cache (timestamps travel); older ones
        // learn it from the reset with OLD. Either way it reads as Expired.
        assert_eq!(end, Err(Error::Expired), "{version}");
        drop(old);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_publishes_and_subscribes_both_ways() {
    init_logs();
    for version in Version::ALL {
        let server_side = publish("from/server");
        let server_inbox = model::OriginProducer::default();
        let server = serve(version, Some(server_side.origin.clone()), Some(server_inbox.clone()));
        let client_side = publish("from/client");
        let client_inbox = model::OriginProducer::default();
        let origins = moqt::session::Origins {
            publish: Some(client_side.origin.consume()),
            subscribe: Some(client_inbox.clone().into()),
            ..Default::default()
        };
        let _session = timeout(WAIT, server.client(version).connect(server.addr, "localhost", None, origins))
            .await
            .unwrap()
            .unwrap();
        for (published, inbox, at) in
            [(server_side, &client_inbox, "from/server"), (client_side, &server_inbox, "from/client")]
        {
            let broadcast = announced(inbox, &path(at)).await;
            let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
            let mut producer = published.track;
            timeout(WAIT, producer.used()).await.unwrap();
            write_groups(&mut producer, 1, 2);
            match next_event(&mut track).await {
                TrackEvent::Group(mut group) => {
                    let frames = read_group(&mut group).await;
                    assert_eq!(frames.len(), 2, "{version} {at}");
                    assert_eq!(frames[1].payload, payload(0, 1), "{version} {at}");
                }
                TrackEvent::Gap(gap) => panic!("{version} {at}: {gap:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_goaway_no_new_requests_are_opened() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        let published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let (mut session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        server.wait_sessions(1).await;
        {
            let sessions = server.sessions.lock().unwrap();
            futures_lite_block(sessions[0].goaway("")).unwrap();
        }
        let event = timeout(WAIT, session.next_event()).await.unwrap();
        assert_eq!(event, SessionEvent::GoingAway { uri: String::new() }, "{version}");
        // A new subscription fails at once with GOING_AWAY and never reaches the publisher.
        let result = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().map(|_| ());
        assert_eq!(result, Err(Error::Aborted(StreamCode::GoingAway)), "{version}");
        let track = published.track;
        assert!(timeout(Duration::from_millis(300), track.used()).await.is_err(), "{version}: SUBSCRIBE was sent");
        if version >= Version::Lite05 {
            let request = FetchRequest {
                broadcast: path("room/alice"),
                track: "video".into(),
                group: 0,
                frame_start: 0,
                frame_end: None,
                priority: 0,
            };
            assert!(matches!(session.fetch(request).await, Err(SessionError::GoingAway)), "{version}");
        }
        assert_eq!(session.event(), SessionEvent::GoingAway { uri: String::new() }, "{version}: still draining");
    }
}

/// GOAWAY with `uri` on a new bidi stream.
fn goaway_bytes(version: Version, uri: &str) -> Vec<u8> {
    use moqt::wire::{BidiStream, Goaway, Message};
    let mut out = Vec::new();
    BidiStream::Goaway.encode(&mut out, version).unwrap();
    Goaway { uri: uri.into() }.encode(&mut out, version).unwrap();
    out
}

async fn open_with(conn: &moqt::transport::quic::QuicConnection, bytes: Vec<u8>) -> impl Send {
    use moqt::transport::Connection;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write(bytes::Bytes::from(bytes)).await.unwrap();
    (send, recv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_goaway_is_a_protocol_violation() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05, Version::Lite04] {
        for same_stream in [false, true] {
            let raw = raw::raw_server(version);
            let (session, peer) = raw.connect(SessionConfig::default(), Default::default()).await;
            let mut session = session;
            let _first = if same_stream {
                let mut twice = goaway_bytes(version, "");
                twice.extend_from_slice(&goaway_bytes(version, "")[1..]);
                open_with(&peer.conn, twice).await
            } else {
                let first = open_with(&peer.conn, goaway_bytes(version, "")).await;
                let event = timeout(WAIT, session.next_event()).await.unwrap();
                assert_eq!(event, SessionEvent::GoingAway { uri: String::new() }, "{version}");
                let _second = open_with(&peer.conn, goaway_bytes(version, "")).await;
                first
            };
            let what = format!("{version}, second GOAWAY on the same stream: {same_stream}");
            assert_eq!(close_code(&peer.conn).await, SessionCode::ProtocolViolation.to_u64(), "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_goaway_uri_is_a_violation_from_lite_06_on() {
    init_logs();
    for version in [Version::Lite06, Version::Lite05] {
        let server = serve(version, None, None);
        let conn = raw_connect(&server, version).await;
        send_client_setup(&conn, version).await;
        let _goaway = open_with(&conn, goaway_bytes(version, "moql://elsewhere.example/")).await;
        if version >= Version::Lite06 {
            assert_eq!(close_code(&conn).await, SessionCode::ProtocolViolation.to_u64(), "{version}");
        } else {
            // The empty-URI rule is a lite-06 addition: on lite-05 the server just sees GOAWAY.
            server.wait_sessions(1).await;
            let seen = timeout(WAIT, async {
                loop {
                    let event = server.sessions.lock().unwrap()[0].event();
                    if event != SessionEvent::Active {
                        return event;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .unwrap();
            assert_eq!(seen, SessionEvent::GoingAway { uri: "moql://elsewhere.example/".into() }, "{version}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_resets_an_expired_group_with_old_on_the_wire() {
    use moqt::transport::{RecvStream, StreamError};
    use moqt::wire::{FrameTimestamps, GroupHeader, SubscribeWindow};
    init_logs();
    for version in Version::ALL {
        let info = model::TrackInfo { priority: 1, max_age: Duration::from_millis(100), timescale: 1000 };
        let mut published = publish_with("room/alice", info);
        let server = serve(version, Some(published.origin.clone()), None);
        let producer = &mut published.track;
        // The test is the subscriber: what the publisher does to the stream is seen as sent.
        let conn = raw_connect(&server, version).await;
        send_client_setup(&conn, version).await;
        let window = SubscribeWindow { priority: 1, max_age: 100, ..Default::default() };
        let request = subscribe_request(version, 0, "video", window);
        let _subscription = open_with(&conn, request).await;
        timeout(WAIT, producer.used()).await.unwrap();
        // Group 0 stays open after one frame.
        let mut old = producer.append_group().unwrap();
        old.write(0, payload(0, 0)).unwrap();
        // The first uni stream that is not the server's SETUP is group 0.
        let (mut recv, mut reader) = next_group_stream(&conn, version).await;
        let mut timestamps = FrameTimestamps::new();
        let mut header = None;
        let first = loop {
            if header.is_none() {
                header = reader.decode::<GroupHeader>().unwrap();
            }
            if header.is_some() {
                if let Some(frame) = reader.read_frame(&mut timestamps).unwrap() {
                    break frame;
                }
            }
            let chunk = timeout(WAIT, recv.read(4096)).await.unwrap().unwrap().expect("group 0 data");
            reader.push(&chunk).unwrap();
        };
        assert_eq!((header.unwrap().sequence, first.payload), (0, payload(0, 0)), "{version}");
        // Group 1 moves 200 ms past it: group 0 is expired and its stream reset with OLD.
        let mut new = producer.append_group().unwrap();
        new.write(200, payload(1, 0)).unwrap();
        new.write(300, payload(1, 1)).unwrap();
        let end = timeout(WAIT, async {
            loop {
                match recv.read(4096).await {
                    Ok(Some(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("group 0 ended in time");
        assert_eq!(end, Err(StreamError::Reset(StreamCode::Old)), "{version}");
        drop(old);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_ok_past_the_requested_start_is_a_gap() {
    use moqt::wire::SubscribeResponse;
    init_logs();
    // A floor of 0 too: on lite-06 it travels as "no floor", and the groups below SUBSCRIBE_OK's
    // are still skipped (a subscriber waiting for them at its floor would wait forever).
    for (version, floor) in SINCE_05.into_iter().flat_map(|version| [(version, 2), (version, 0)]) {
        let raw = raw::raw_server(version);
        let (_session, remote, peer, _announce) = raw.subscriber(SessionConfig::default()).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let options = SubscribeOptions { start: GroupStart::Floor(floor), ..Default::default() };
        let subscribing = tokio::spawn(async move { broadcast.subscribe_track_with("video", options).await });
        let (subscribe, mut request) = peer.subscription().await;
        let on_the_wire = if version >= Version::Lite06 && floor == 0 { None } else { Some(floor) };
        assert_eq!(subscribe.window.group_start, on_the_wire, "{version}");
        let mut track = timeout(WAIT, subscribing).await.unwrap().unwrap().unwrap();
        // The publisher can start at 5 only.
        request.send(&SubscribeResponse::Ok { group: 5 }, version).await;
        peer.send_group(subscribe.id, 5, 0, &[payload(5, 0)]).await;
        let (mut gaps, mut groups) = (Vec::new(), Vec::new());
        while groups.is_empty() || gaps.is_empty() {
            match next_event(&mut track).await {
                TrackEvent::Group(group) => groups.push(group.sequence()),
                TrackEvent::Gap(gap) => gaps.push(gap),
            }
        }
        assert_eq!(groups, vec![5], "{version}");
        assert_eq!(gaps.iter().map(|g| (g.start, g.end)).collect::<Vec<_>>(), vec![(floor, 4)], "{version}: {gaps:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_in_group_sequences_is_a_gap() {
    use moqt::transport::SendStream;
    use moqt::wire::SubscribeResponse;
    init_logs();
    for version in Version::ALL {
        let raw = raw::raw_server(version);
        let (_session, remote, peer, _announce) = raw.subscriber(SessionConfig::default()).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let options = SubscribeOptions { start: GroupStart::Floor(0), ..Default::default() };
        let subscribing = tokio::spawn(async move { broadcast.subscribe_track_with("video", options).await });
        let (subscribe, mut request) = peer.subscription().await;
        let mut track = timeout(WAIT, subscribing).await.unwrap().unwrap().unwrap();
        // Groups 0 and 3, then the end: 1 and 2 were never produced.
        peer.send_group(subscribe.id, 0, 0, &[payload(0, 0)]).await;
        peer.send_group(subscribe.id, 3, 0, &[payload(3, 0)]).await;
        if version >= Version::Lite05 {
            request.send(&SubscribeResponse::End { group: 4 }, version).await;
        }
        request.send.finish().unwrap();
        let (mut gaps, mut groups) = (Vec::new(), Vec::new());
        while groups.len() < 2 || gaps.is_empty() {
            match next_event(&mut track).await {
                TrackEvent::Group(group) => groups.push(group.sequence()),
                TrackEvent::Gap(gap) => gaps.push(gap),
            }
        }
        groups.sort();
        assert_eq!(groups, vec![0, 3], "{version}");
        assert_eq!(gaps, vec![model::Gap { start: 1, end: 2, reason: GapReason::Skipped }], "{version}");
    }
}

/// Group streams the publisher opened before it finished the track can reach us well after its
/// SUBSCRIBE_END and FIN: after an outage or under loss they are retransmitted, newest first, behind
/// a collapsed congestion window. While they keep arriving they are taken in, not refused at a
/// fixed grace after the FIN and reported as never produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_streams_still_arriving_after_the_publishers_fin_are_taken_in() {
    use moqt::wire::SubscribeResponse;
    init_logs();
    for version in SINCE_05 {
        let raw = raw::raw_server(version);
        let (_session, remote, peer, _announce) = raw.subscriber(SessionConfig::default()).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let options = SubscribeOptions { start: GroupStart::Floor(0), ..Default::default() };
        let subscribing = tokio::spawn(async move { broadcast.subscribe_track_with("video", options).await });
        let (subscribe, mut request) = peer.subscription().await;
        let mut track = timeout(WAIT, subscribing).await.unwrap().unwrap().unwrap();
        request.send(&SubscribeResponse::Ok { group: 0 }, version).await;
        peer.send_group(subscribe.id, 0, 0, &[payload(0, 0)]).await;
        // Groups 0 to 7 were written; the end and the FIN overtake 1 to 7, which then trickle in
        // newest first, 100 ms apart (never less): the last ones well past half a second after
        // the FIN, each well within half a second of the one before.
        request.send(&SubscribeResponse::End { group: 8 }, version).await;
        request.send.finish().unwrap();
        for sequence in (1..8).rev() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peer.send_group(subscribe.id, sequence, 0, &[payload(sequence, 0)]).await;
        }
        let mut groups = Vec::new();
        loop {
            match timeout(WAIT, track.next_group()).await.expect("an event in time") {
                Ok(Some(TrackEvent::Group(group))) => groups.push(group.sequence()),
                Ok(Some(TrackEvent::Gap(gap))) => panic!("{version}: {gap:?} after {groups:?}"),
                Ok(None) => break,
                Err(err) => panic!("{version}: {err}"),
            }
        }
        groups.sort();
        assert_eq!(groups, (0..8).collect::<Vec<_>>(), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_starting_past_frame_0_is_reported_partial() {
    init_logs();
    let version = Version::Lite06;
    let raw = raw::raw_server(version);
    let (_session, remote, peer, _announce) = raw.subscriber(SessionConfig::default()).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let subscribing = tokio::spawn(async move { broadcast.subscribe_track("video").await });
    let (subscribe, _request) = peer.subscription().await;
    let mut track = timeout(WAIT, subscribing).await.unwrap().unwrap().unwrap();
    // GROUP Frame Start 2: frames 0 and 1 are missing.
    peer.send_group(subscribe.id, 0, 2, &[payload(0, 2), payload(0, 3)]).await;
    let mut group = next_event(&mut track).await.into_group().expect("a group");
    assert_eq!((group.sequence(), group.frame_start()), (0, 2));
    let frames = read_group(&mut group).await;
    assert_eq!(frames.iter().map(|f| f.payload.clone()).collect::<Vec<_>>(), vec![payload(0, 2), payload(0, 3)]);
}

/// A group the publisher handed out and then cannot finish (its producer aborted it: on a relay,
/// the upstream stream was reset) has its stream reset, and is also reported with SUBSCRIBE_DROP:
/// a subscriber that had not read the GROUP header when the reset arrived cannot attribute the
/// reset to a sequence, and would wait for that group forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reset_by_the_publisher_is_also_reported_with_subscribe_drop() {
    use moqt::transport::{Connection, RecvStream};
    use moqt::wire::{StreamReader, SubscribeResponse, SubscribeWindow};
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        // The test is the subscriber, and never reads past a Group stream's type.
        let conn = raw_connect(&server, version).await;
        send_client_setup(&conn, version).await;
        let window = SubscribeWindow { priority: 1, max_age: 5000, ..Default::default() };
        let request = subscribe_request(version, 0, "video", window);
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write(bytes::Bytes::from(request)).await.unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        // Group 0 is handed out and its stream opened, then it is aborted.
        let mut group = published.track.append_group().unwrap();
        group.write(0, payload(0, 0)).unwrap();
        let _stream = next_group_stream(&conn, version).await.0;
        group.abort(Error::Aborted(StreamCode::InternalError));
        let mut reader = StreamReader::new(version, 1 << 16);
        let drop = timeout(WAIT, async {
            loop {
                while let Some(response) = reader.decode::<SubscribeResponse>().unwrap() {
                    if let SubscribeResponse::Drop { start, end, code } = response {
                        return (start, end, code);
                    }
                }
                let chunk = recv.read(4096).await.unwrap().expect("the subscription stays open");
                reader.push(&chunk).unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{version}: no SUBSCRIBE_DROP for the reset group"));
        assert_eq!(drop, (0, 0, StreamCode::InternalError.to_u64()), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_info_reaches_the_subscriber_from_lite_05_and_defaults_before() {
    init_logs();
    for version in Version::ALL {
        let published = publish("room/alice");
        // Every field away from its default, so a default cannot pass for a value that travelled.
        let info = model::TrackInfo { priority: 7, max_age: Duration::from_millis(1234), timescale: 90_000 };
        let _tuned = published.broadcast.create_track("tuned", info).unwrap();
        let server = serve(version, Some(published.origin.clone()), None);
        let (_session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let track = timeout(WAIT, broadcast.subscribe_track("tuned")).await.unwrap().unwrap();
        let expected = if version.has_track_info() { info } else { model::TrackInfo::default() };
        assert_eq!(track.info(), expected, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_max_age_in_subscribe_update_expires_a_group_the_old_one_kept() {
    use moqt::transport::{Connection, RecvStream, StreamError};
    use moqt::wire::{GroupHeader, StreamReader, SubscribeResponse, SubscribeUpdate, SubscribeWindow};
    init_logs();
    for version in Version::ALL {
        // The publisher keeps groups a minute; the subscriber first asks for a minute too.
        let info = model::TrackInfo { priority: 1, max_age: Duration::from_secs(60), timescale: 1000 };
        let mut published = publish_with("room/alice", info);
        let server = serve(version, Some(published.origin.clone()), None);
        let producer = &mut published.track;
        let conn = raw_connect(&server, version).await;
        send_client_setup(&conn, version).await;
        let window = SubscribeWindow { priority: 1, max_age: 60_000, ..Default::default() };
        let request = subscribe_request(version, 0, "video", window);
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write(bytes::Bytes::from(request)).await.unwrap();
        timeout(WAIT, producer.used()).await.unwrap();

        // Group 0 stays open after one frame; group 1 (from 200 to 500) ages it 300 ms. A minute
        // keeps it.
        let mut old = producer.append_group().unwrap();
        old.write(0, payload(0, 0)).unwrap();
        let (mut group0, mut reader) = next_group_stream(&conn, version).await;
        let header = loop {
            if let Some(header) = reader.decode::<GroupHeader>().unwrap() {
                break header;
            }
            let chunk = timeout(WAIT, group0.read(4096)).await.unwrap().unwrap().expect("a group header");
            reader.push(&chunk).unwrap();
        };
        assert_eq!(header.sequence, 0, "{version}");
        let mut new = producer.append_group().unwrap();
        new.write(200, payload(1, 0)).unwrap();
        new.write(500, payload(1, 1)).unwrap();
        if let Ok(end) = timeout(Duration::from_millis(300), end_of(&mut group0)).await {
            panic!("{version}: group 0 ended under the old max age: {end:?}");
        }
        // Narrowed live to 100 ms: group 0, 300 ms behind, is expired now. Its stream is reset
        // with OLD...
        let window = SubscribeWindow { priority: 1, max_age: 100, ..Default::default() };
        send.write(bytes::Bytes::from(SubscribeUpdate { window }.to_bytes(version).unwrap())).await.unwrap();
        let end = timeout(WAIT, end_of(&mut group0)).await;
        let end = end.unwrap_or_else(|_| panic!("{version}: group 0 was kept under the narrower max age"));
        assert_eq!(end, Err(StreamError::Reset(StreamCode::Old)), "{version}");
        // ...and reported with SUBSCRIBE_DROP carrying OLD.
        let mut replies = StreamReader::new(version, 1 << 16);
        let dropped = timeout(WAIT, async {
            loop {
                while let Some(response) = replies.decode::<SubscribeResponse>().unwrap() {
                    if let SubscribeResponse::Drop { start, end, code } = response {
                        return (start, end, code);
                    }
                }
                let chunk = recv.read(4096).await.unwrap().expect("the subscription stays open");
                replies.push(&chunk).unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{version}: no SUBSCRIBE_DROP for the group the new max age expired"));
        assert_eq!(dropped, (0, 0, StreamCode::Old.to_u64()), "{version}");
        drop(old);
    }
}

/// Reads a stream to its end: the FIN, or the error that ended it.
async fn end_of(
    uni: &mut moqt::transport::quic::QuicRecv,
) -> Result<Option<bytes::Bytes>, moqt::transport::StreamError> {
    use moqt::transport::RecvStream;
    loop {
        match uni.read(4096).await {
            Ok(Some(_)) => continue,
            other => return other,
        }
    }
}
