//! Sessions over real loopback QUIC with real TLS: a publisher and a subscriber exchange frames in
//! each of the four versions, in both directions (server publishes, client publishes).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use moqt::coding::Path;
use moqt::endpoint::{Client, EndpointConfig, Server};
use moqt::model::{self, BroadcastConsumer, BroadcastProducer, OriginProducer, Route, TrackInfo, TrackProducer};
use moqt::session::{Origins, Session};
use moqt::transport::tls::{Certificate, ClientTrust};
use moqt::wire::Version;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn path(text: &str) -> Path {
    Path::new(text).unwrap()
}

/// Logs to the test output when RUST_LOG is set (e.g. RUST_LOG=moqt=debug).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(version: Version) -> EndpointConfig {
    EndpointConfig { versions: vec![version], ..Default::default() }
}

/// A server on 127.0.0.1 that accepts every session with the given origins, keeping them alive.
fn serve(
    version: Version,
    cert: &Certificate,
    publish: Option<OriginProducer>,
    subscribe: Option<OriginProducer>,
) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), cert, config(version)).unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut sessions = Vec::new();
        while let Some(incoming) = server.accept().await {
            let pending = incoming.setup().await.expect("client SETUP");
            let origins = Origins { publish: publish.as_ref().map(|o| o.consume()), subscribe: subscribe.clone() };
            sessions.push(Session::accept(pending, origins, config(version).session).await.expect("accept"));
        }
    });
    addr
}

fn client(version: Version, cert: &Certificate) -> Client {
    let trust = ClientTrust::Fingerprint(vec![cert.fingerprint()]);
    Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(version)).unwrap()
}

/// Waits until `origin` announces `path` and returns its broadcast.
async fn announced(origin: &OriginProducer, wanted: &Path) -> BroadcastConsumer {
    let mut announcements = origin.consume();
    loop {
        match timeout(WAIT, announcements.next_announcement()).await.expect("announcement in time") {
            Some(model::Announcement::Start { path, broadcast, .. }) if &path == wanted => return broadcast,
            Some(_) => continue,
            None => panic!("origin closed before {wanted} was announced"),
        }
    }
}

/// Writes `groups` groups of `frames` frames once the track has a consumer; frame payloads name
/// their group and index, timestamps advance by 33 per frame.
async fn produce(mut track: TrackProducer, groups: u64, frames: u64) -> TrackProducer {
    timeout(WAIT, track.used()).await.expect("a subscriber arrives");
    for g in 0..groups {
        let mut group = track.append_group().unwrap();
        for f in 0..frames {
            group.write(1000 + (g * frames + f) * 33, Bytes::from(format!("group {g} frame {f}"))).unwrap();
        }
        group.finish().unwrap();
    }
    track
}

/// Reads `groups` groups and checks every byte, group boundaries, order within groups and
/// timestamps (lite-05+ carries them; older versions deliver 0).
async fn check_received(broadcast: BroadcastConsumer, version: Version, groups: u64, frames: u64) {
    let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.expect("subscribe in time").expect("track");
    let mut seen = Vec::new();
    while seen.len() < groups as usize {
        let event = timeout(WAIT, track.next_group()).await.expect("group in time").expect("no error").expect("open");
        let mut group = match event {
            model::TrackEvent::Group(group) => group,
            model::TrackEvent::Gap(gap) => panic!("{version}: unexpected gap {gap:?}"),
        };
        let g = group.sequence();
        for f in 0..frames {
            let frame =
                timeout(WAIT, group.next_frame()).await.expect("frame in time").expect("no abort").expect("frame");
            assert_eq!(frame.payload, Bytes::from(format!("group {g} frame {f}")), "{version}");
            let expected_ts = if version >= Version::Lite05 { 1000 + (g * frames + f) * 33 } else { 0 };
            assert_eq!(frame.timestamp, expected_ts, "{version}: timestamp of group {g} frame {f}");
        }
        assert_eq!(timeout(WAIT, group.next_frame()).await.unwrap().unwrap(), None, "{version}: group {g} ends");
        seen.push(g);
    }
    seen.sort();
    assert_eq!(seen, (0..groups).collect::<Vec<_>>(), "{version}");
}

fn video_track(broadcast: &BroadcastProducer) -> TrackProducer {
    broadcast
        .create_track("video", TrackInfo { priority: 2, max_age: Duration::from_secs(5), timescale: 1000 })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_publishes_client_subscribes_each_version() {
    init_logs();
    for version in Version::ALL {
        let cert = Certificate::generate(&["localhost".to_string()]).unwrap();
        let origin = OriginProducer::default();
        let broadcast = BroadcastProducer::default();
        let track = video_track(&broadcast);
        let _published = origin.publish(path("room/alice"), broadcast.consume(), Route::local()).unwrap();
        let addr = serve(version, &cert, Some(origin), None);

        let remote = OriginProducer::default();
        let client = client(version, &cert);
        let origins = Origins { publish: None, subscribe: Some(remote.clone()) };
        let session = timeout(WAIT, client.connect(addr, "localhost", None, origins)).await.unwrap().unwrap();
        assert_eq!(session.version(), version);

        let remote_broadcast = announced(&remote, &path("room/alice")).await;
        let producer = tokio::spawn(produce(track, 3, 4));
        check_received(remote_broadcast, version, 3, 4).await;
        drop(producer.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_publishes_server_subscribes_each_version() {
    init_logs();
    for version in Version::ALL {
        let cert = Certificate::generate(&["localhost".to_string()]).unwrap();
        let remote = OriginProducer::default();
        let addr = serve(version, &cert, None, Some(remote.clone()));

        let origin = OriginProducer::default();
        let broadcast = BroadcastProducer::default();
        let track = video_track(&broadcast);
        let _published = origin.publish(path("room/bob"), broadcast.consume(), Route::local()).unwrap();
        let client = client(version, &cert);
        let origins = Origins { publish: Some(origin.consume()), subscribe: None };
        let _session = timeout(WAIT, client.connect(addr, "localhost", None, origins)).await.unwrap().unwrap();

        let remote_broadcast = announced(&remote, &path("room/bob")).await;
        let producer = tokio::spawn(produce(track, 2, 3));
        check_received(remote_broadcast, version, 2, 3).await;
        drop(producer.await.unwrap());
    }
}
