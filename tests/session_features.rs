//! Session mechanics over loopback QUIC, in every version that has them: FETCH, start groups,
//! SUBSCRIBE_UPDATE, refusals, gaps, GOAWAY with drain timeout, PROBE, datagrams, SETUP Path and
//! session rejection.

mod common;

use std::time::Duration;

use common::*;
use moqt::model::{self, Error, GapReason, GroupStart, SubscribeOptions, TrackEvent};
use moqt::session::{FetchRequest, SessionConfig, SessionError, SessionEvent};
use moqt::transport::TransportError;
use moqt::wire::{SessionCode, StreamCode, Version};
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
async fn probe_reports_bitrate_and_rtt() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        write_groups(&mut published.track, 2, 2);
        let server = serve(version, Some(published.origin.clone()), None);
        let (session, _remote) = server.subscriber(version).await;
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
        assert!(report.bitrate > 0, "{version}: {report:?}");
        if version >= Version::Lite04 {
            assert!(report.rtt_ms > 0, "{version}: RTT is reported from lite-04 on: {report:?}");
        } else {
            assert_eq!(report.rtt_ms, 0, "lite-03 has no RTT field");
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
        let (_session, remote) = server.subscriber(version).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        let mut received = Vec::new();
        // Datagrams may be lost even on loopback; send until three arrive.
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
            if received.len() >= 3 || round == 49 {
                break;
            }
        }
        assert!(received.len() >= 3, "{version}: only {received:?} arrived");
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
        let origin = model::OriginProducer::default();
        let broadcast = model::BroadcastProducer::default();
        let info = model::TrackInfo { priority: 1, max_age: Duration::from_millis(100), timescale: 1000 };
        let mut producer = broadcast.create_track("video", info).unwrap();
        let _published = origin.publish(path("room/alice"), broadcast.consume(), model::Route::local()).unwrap();
        let server = serve(version, Some(origin.clone()), None);
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
