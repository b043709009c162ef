//! Priorities for real (spec 7.1) on a deliberately constrained connection: the publisher reaches
//! the subscriber through a throttled loopback link with a small drop-tail buffer, so its
//! congestion window stays small, the backlog waits in its send buffer, and what leaves next is
//! chosen by stream priority. A high-priority track's group must overtake a low-priority backlog,
//! and within one subscription the newest group must overtake older ones.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use moqt::model::TrackInfo;
use moqt::wire::{Message, Setup, UniStream, Version};
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
        if version.has_setup() {
            let mut out = Vec::new();
            UniStream::Setup.encode(&mut out, version).unwrap();
            Setup::default().encode(&mut out, version).unwrap();
            send_uni(&conn, &out).await;
        }
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
