//! Priorities for real (spec 7.1) on a deliberately constrained connection: the publisher reaches
//! the subscriber through a throttled loopback link with a small drop-tail buffer, so its
//! congestion window stays small, the backlog waits in its send buffer, and what leaves next is
//! chosen by stream priority. A high-priority track's group must overtake a low-priority backlog,
//! within one subscription the newest group must overtake older ones, at equal priority the older
//! subscription goes first, and a SUBSCRIBE_UPDATE raising a subscription puts its next groups
//! ahead of another's backlog.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use moqt::model::{TrackInfo, TrackProducer};
use moqt::transport::SendStream;
use moqt::wire::{Message, SubscribeUpdate, SubscribeWindow, Version};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_overtakes_a_low_priority_backlog_and_new_groups_overtake_old() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let mut high = published
            .broadcast
            .create_track("high", TrackInfo { priority: 2, max_age: Duration::from_secs(60), timescale: 1000 })
            .unwrap();
        let server = serve(version, Some(published.origin.clone()), None);
        let conn = constrained_subscriber(server.addr, server.cert.fingerprint(), version).await;
        let order = record_completions(conn.clone(), version);
        send_client_setup(&conn, version).await;
        let _low_sub = raw_subscribe(&conn, version, 0, "video", 1).await;
        let _high_sub = raw_subscribe(&conn, version, 1, "high", 200).await;
        timeout(WAIT, published.track.used()).await.unwrap();
        timeout(WAIT, high.used()).await.unwrap();

        // A low-priority backlog far larger than the window: 12 groups of 32 KiB, written in order.
        let big = Bytes::from(vec![7u8; 32 * 1024]);
        for g in 0..12u64 {
            let mut group = published.track.append_group().unwrap();
            group.write(g * 100, big.clone()).unwrap();
            group.finish().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(order.lock().unwrap().len() < 6, "{version}: the link is too fast for this test");
        // Then one high-priority group of the same size: without priorities it would share the link
        // with the backlog and finish among the last.
        let mut group = high.append_group().unwrap();
        group.write(0, big.clone()).unwrap();
        group.finish().unwrap();

        timeout(WAIT, async {
            while order.lock().unwrap().len() < 13 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{version}: only {:?} completed", order.lock().unwrap()));
        let order = order.lock().unwrap().clone();
        let urgent = order.iter().position(|entry| *entry == (1, 0)).unwrap();
        let before = order.iter().take(urgent).count();
        let done_when_written = 6;
        // Only what was already on the wire when it was written may finish first.
        assert!(before <= done_when_written, "{version}: high priority finished at position {urgent} of {order:?}");
        // Within the backlog, newer groups finish before older ones (after what was in flight).
        let backlog: Vec<u64> = order.iter().filter(|(id, _)| *id == 0).map(|(_, seq)| *seq).collect();
        let tail = &backlog[done_when_written..];
        assert!(tail.windows(2).all(|w| w[0] > w[1]), "{version}: backlog completion order {backlog:?}");
    }
}

/// A raw subscriber behind the throttled link to a server publishing `published`, with SETUP sent;
/// the completion order of its Group streams is recorded.
async fn constrained(
    version: Version,
    published: &Published,
) -> (TestServer, moqt::transport::quic::QuicConnection, Arc<Mutex<Vec<(u64, u64)>>>) {
    let server = serve(version, Some(published.origin.clone()), None);
    let conn = constrained_subscriber(server.addr, server.cert.fingerprint(), version).await;
    let order = record_completions(conn.clone(), version);
    send_client_setup(&conn, version).await;
    (server, conn, order)
}

/// Appends `count` groups of one 32 KiB frame.
fn backlog(track: &mut TrackProducer, count: u64) {
    let big = Bytes::from(vec![7u8; 32 * 1024]);
    for _ in 0..count {
        let mut group = track.append_group().unwrap();
        group.write(group.sequence() * 100, big.clone()).unwrap();
        group.finish().unwrap();
    }
}

/// Waits until `n` Group streams completed; returns their order.
async fn completed(order: &Mutex<Vec<(u64, u64)>>, n: usize, version: Version) -> Vec<(u64, u64)> {
    timeout(WAIT, async {
        while order.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{version}: only {:?} completed", order.lock().unwrap()));
    order.lock().unwrap().clone()
}

/// How many streams of subscription `id` completed before the last one of subscription `other`.
fn before_last_of(order: &[(u64, u64)], id: u64, other: u64) -> usize {
    let last = order.iter().rposition(|(sub, _)| *sub == other).unwrap();
    order[..last].iter().filter(|(sub, _)| *sub == id).count()
}

/// What was already on the wire (in the link's queue and the congestion window) when the order
/// changed may still finish first: a few 32 KiB groups at most.
const IN_FLIGHT: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_update_raises_a_subscription_above_another_backlog_on_the_wire() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let info = TrackInfo { priority: 2, max_age: Duration::from_secs(60), timescale: 1000 };
        let mut other = published.broadcast.create_track("other", info).unwrap();
        let (_server, conn, order) = constrained(version, &published).await;
        // A (ID 0) below B (ID 1), both backlogged: B's backlog goes first.
        let (mut a, _a_recv) = raw_subscribe_stream(&conn, version, 0, "video", 1).await;
        let _b = raw_subscribe(&conn, version, 1, "other", 100).await;
        timeout(WAIT, published.track.used()).await.unwrap();
        timeout(WAIT, other.used()).await.unwrap();
        backlog(&mut published.track, 6);
        backlog(&mut other, 12);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b_done = order.lock().unwrap().iter().filter(|(id, _)| *id == 1).count();
        assert!(b_done < 4, "{version}: the link is too fast for this test: {:?}", order.lock().unwrap());
        // A SUBSCRIBE_UPDATE lifts A above B. Once the publisher has it (a moment on the
        // unthrottled uplink), A's next groups must overtake what is left of B's backlog; without
        // the update they would wait behind it. (What quinn already queued keeps the priority it
        // was queued with: its scheduler orders a stream when it enqueues it.)
        let window = SubscribeWindow { priority: 200, max_age: 60_000, ..Default::default() };
        a.write(Bytes::from(SubscribeUpdate { window }.to_bytes(version).unwrap())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let b_done = order.lock().unwrap().iter().filter(|(id, _)| *id == 1).count();
        backlog(&mut published.track, 3);
        let order = completed(&order, 21, version).await;
        let fresh: Vec<usize> = (6..9).map(|seq| order.iter().position(|entry| *entry == (0, seq)).unwrap()).collect();
        let b_before = order[..*fresh.iter().max().unwrap()].iter().filter(|(id, _)| *id == 1).count();
        assert!(
            b_before <= b_done + IN_FLIGHT,
            "{version}: {b_before} of B's groups finished before A's new ones ({b_done} when they were written): \
             {order:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_equal_priority_the_older_subscription_goes_first_on_the_wire() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let info = TrackInfo { priority: 2, max_age: Duration::from_secs(60), timescale: 1000 };
        let mut other = published.broadcast.create_track("other", info).unwrap();
        let (_server, conn, order) = constrained(version, &published).await;
        let _older = raw_subscribe(&conn, version, 0, "video", 5).await;
        let _newer = raw_subscribe(&conn, version, 1, "other", 5).await;
        timeout(WAIT, published.track.used()).await.unwrap();
        timeout(WAIT, other.used()).await.unwrap();
        // The newer subscription's backlog is written first and starts on the link; the older
        // one's, written after, must overtake what is left of it.
        backlog(&mut other, 12);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let newer_done = order.lock().unwrap().len();
        assert!(newer_done < 4, "{version}: the link is too fast for this test: {:?}", order.lock().unwrap());
        backlog(&mut published.track, 12);
        let order = completed(&order, 24, version).await;
        let newer_before = before_last_of(&order, 1, 0);
        assert!(
            newer_before <= newer_done + IN_FLIGHT,
            "{version}: {newer_before} of the newer subscription's groups finished before the older one's last \
             ({newer_done} before it was written): {order:?}"
        );
    }
}
