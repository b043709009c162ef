//! Priorities for real (spec 7.1) on a deliberately constrained connection: the publisher reaches
//! the subscriber through a throttled loopback link with a small drop-tail buffer, so its
//! congestion window stays small, the backlog waits in its send buffer, and what leaves next is
//! chosen by stream priority. A high-priority track's group must overtake a low-priority backlog,
//! and within one subscription the newest group must overtake older ones.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use moqt::coding::Path;
use moqt::model::TrackInfo;
use moqt::transport::quic::QuicConnection;
use moqt::transport::{Connection, RecvStream, SendStream};
use moqt::wire::{
    BidiStream, GroupHeader, Message, Setup, StreamReader, Subscribe, SubscribeWindow, UniStream, Version,
};
use tokio::time::timeout;

/// 400 KB/s through a 16-packet buffer.
const LINK_RATE: u64 = 400_000;
const LINK_QUEUE: usize = 16;

/// A raw subscriber reaching the server through the throttled link.
async fn constrained_subscriber(server: &TestServer, version: Version) -> QuicConnection {
    let link = throttled_link(server.addr, LINK_RATE, LINK_QUEUE).await;
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
    let mut client = moqt::transport::tls::client_config(&trust, &[version.alpn().as_bytes().to_vec()]).unwrap();
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(1000u32.into());
    client.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client);
    let connection = timeout(WAIT, endpoint.connect(link, "localhost").unwrap()).await.unwrap().unwrap();
    QuicConnection::new(connection)
}

async fn subscribe(conn: &QuicConnection, version: Version, id: u64, track: &str, priority: u8) -> impl Send {
    let mut out = Vec::new();
    BidiStream::Subscribe.encode(&mut out, version).unwrap();
    let window = SubscribeWindow { priority, max_age: 60_000, ..Default::default() };
    Subscribe { id, broadcast: Path::new("room/alice").unwrap(), track: track.into(), window }
        .encode(&mut out, version)
        .unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write(Bytes::from(out)).await.unwrap();
    (send, recv)
}

/// Accepts every Group stream and records (subscribe id, sequence) in the order streams complete.
fn record_completions(conn: QuicConnection, version: Version) -> Arc<Mutex<Vec<(u64, u64)>>> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let recorded = order.clone();
    tokio::spawn(async move {
        while let Ok(mut recv) = conn.accept_uni().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut reader = StreamReader::new(version, 1 << 24);
                let mut header = None;
                while let Ok(Some(chunk)) = recv.read(64 * 1024).await {
                    reader.push(&chunk).unwrap();
                    if header.is_none() {
                        if reader.read_with(|b| UniStream::decode(b, version)).unwrap() == Some(UniStream::Setup) {
                            return;
                        }
                        header = reader.decode::<GroupHeader>().unwrap();
                    }
                }
                if let Some(header) = header {
                    recorded.lock().unwrap().push((header.subscribe_id, header.sequence));
                }
            });
        }
    });
    order
}

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
        let conn = constrained_subscriber(&server, version).await;
        let order = record_completions(conn.clone(), version);
        if version.has_setup() {
            let mut out = Vec::new();
            UniStream::Setup.encode(&mut out, version).unwrap();
            Setup::default().encode(&mut out, version).unwrap();
            send_uni(&conn, &out).await;
        }
        let _low_sub = subscribe(&conn, version, 0, "video", 1).await;
        let _high_sub = subscribe(&conn, version, 1, "high", 200).await;
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
