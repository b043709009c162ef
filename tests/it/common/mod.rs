//! Shared helpers for tests over real loopback QUIC with real TLS (127.0.0.1 only).
#![allow(dead_code)]

pub mod netsim;
pub mod raw;
pub mod relay;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use moqt::coding::Path;
use moqt::endpoint::{Client, EndpointConfig, Server};
use moqt::model::{self, BroadcastConsumer, BroadcastProducer, OriginProducer, Route, TrackInfo, TrackProducer};
use moqt::reconnect::{ClientState, PersistentClient};
use moqt::session::{Origins, Session, SessionConfig};
use moqt::transport::quic::QuicConnection;
use moqt::transport::tls::{Certificate, ClientTrust};
use moqt::transport::{Connection, RecvStream, SendStream};
use moqt::wire::{BidiStream, GroupHeader, Message, StreamReader, Subscribe, SubscribeWindow, UniStream, Version};
use tokio::time::{Instant, timeout};

pub const WAIT: Duration = Duration::from_secs(10);

/// Logs to the test output when RUST_LOG is set (e.g. RUST_LOG=moqt=debug).
/// True when MOQT_LONG_SCENARIOS is set (and not 0): scenarios run their long versions and
/// check their speed targets, for a quiet machine (RELIABILITY.md).
pub fn long_scenarios() -> bool {
    std::env::var("MOQT_LONG_SCENARIOS").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn path(text: &str) -> Path {
    Path::new(text).unwrap()
}

pub fn config(version: Version) -> EndpointConfig {
    EndpointConfig { versions: vec![version], ..Default::default() }
}

pub fn cert() -> Certificate {
    Certificate::generate(&["localhost".to_string()]).unwrap()
}

/// A server on 127.0.0.1:0 that accepts every session with the given origins and keeps them; the
/// sessions are shared so a test can act on them (GOAWAY, close).
pub struct TestServer {
    pub addr: SocketAddr,
    pub sessions: Arc<Mutex<Vec<Session>>>,
    pub paths: Arc<Mutex<Vec<String>>>,
    pub cert: Certificate,
}

pub fn serve_with(
    version: Version,
    session: SessionConfig,
    publish: Option<OriginProducer>,
    subscribe: Option<OriginProducer>,
) -> TestServer {
    let mut endpoint = config(version);
    endpoint.session = session;
    serve_endpoint(endpoint, publish, subscribe)
}

/// [`serve_with`] with every endpoint setting (stream bounds, timeouts, versions) chosen by the test.
pub fn serve_endpoint(
    endpoint: EndpointConfig,
    publish: Option<OriginProducer>,
    subscribe: Option<OriginProducer>,
) -> TestServer {
    serve_at("127.0.0.1:0".parse().unwrap(), endpoint, publish, subscribe)
}

/// [`serve_endpoint`] on a given address (a port chosen before the server starts).
pub fn serve_at(
    bind: SocketAddr,
    endpoint: EndpointConfig,
    publish: Option<OriginProducer>,
    subscribe: Option<OriginProducer>,
) -> TestServer {
    let cert = cert();
    let session = endpoint.session.clone();
    let server = Server::bind(bind, &cert, endpoint).unwrap();
    let addr = server.local_addr().unwrap();
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (kept, seen) = (sessions.clone(), paths.clone());
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let (kept, seen) = (kept.clone(), seen.clone());
            let (publish, subscribe, session) = (publish.clone(), subscribe.clone(), session.clone());
            tokio::spawn(async move {
                let Ok(pending) = incoming.setup().await else { return };
                seen.lock().unwrap().push(pending.path().to_string());
                if pending.path().contains("forbidden") {
                    return pending.reject("not allowed here");
                }
                let origins = Origins {
                    publish: publish.as_ref().map(|o| o.consume()),
                    subscribe: subscribe.map(Into::into),
                    ..Default::default()
                };
                if let Ok(session) = Session::accept(pending, origins, session).await {
                    kept.lock().unwrap().push(session);
                }
            });
        }
        drop(server);
    });
    TestServer { addr, sessions, paths, cert }
}

pub fn serve(version: Version, publish: Option<OriginProducer>, subscribe: Option<OriginProducer>) -> TestServer {
    serve_with(version, SessionConfig::default(), publish, subscribe)
}

impl TestServer {
    pub fn client(&self, version: Version) -> Client {
        let trust = ClientTrust::Fingerprint(vec![self.cert.fingerprint()]);
        Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(version)).unwrap()
    }

    /// Connects a client session that mirrors the server's broadcasts into a new origin.
    pub async fn subscriber(&self, version: Version) -> (Session, OriginProducer) {
        let remote = OriginProducer::default();
        let origins = Origins { publish: None, subscribe: Some(remote.clone().into()), ..Default::default() };
        let session = timeout(WAIT, self.client(version).connect(self.addr, "localhost", None, origins))
            .await
            .expect("connect in time")
            .expect("connect");
        (session, remote)
    }

    /// Waits until the server holds `n` sessions.
    pub async fn wait_sessions(&self, n: usize) {
        timeout(WAIT, async {
            while self.sessions.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("sessions in time");
    }
}

/// A broadcast at `at` in a new origin, with one track "video" (priority 2, max age 5 s, ms).
pub struct Published {
    pub origin: OriginProducer,
    pub broadcast: BroadcastProducer,
    pub track: TrackProducer,
    _published: model::Published,
}

pub fn publish(at: &str) -> Published {
    publish_with(at, TrackInfo { priority: 2, max_age: Duration::from_secs(5), timescale: 1000 })
}

/// [`publish`] with the track's own TRACK_INFO.
pub fn publish_with(at: &str, info: TrackInfo) -> Published {
    let origin = OriginProducer::default();
    let broadcast = BroadcastProducer::default();
    let track = broadcast.create_track("video", info).unwrap();
    let published = origin.publish(path(at), broadcast.consume(), Route::local()).unwrap();
    Published { origin, broadcast, track, _published: published }
}

/// The payload of frame `f` of group `g`.
pub fn payload(g: u64, f: u64) -> Bytes {
    Bytes::from(format!("group {g} frame {f}"))
}

/// The timestamp of frame `f` of group `g` when groups have `frames` frames.
pub fn stamp(g: u64, f: u64, frames: u64) -> u64 {
    1000 + (g * frames + f) * 33
}

/// Appends `count` groups of `frames` frames.
pub fn write_groups(track: &mut TrackProducer, count: u64, frames: u64) {
    for _ in 0..count {
        let mut group = track.append_group().unwrap();
        let g = group.sequence();
        for f in 0..frames {
            group.write(stamp(g, f, frames), payload(g, f)).unwrap();
        }
        group.finish().unwrap();
    }
}

/// Waits until `origin` announces `wanted` and returns its broadcast.
pub async fn announced(origin: &OriginProducer, wanted: &Path) -> BroadcastConsumer {
    let announced = timeout(WAIT, origin.consume().announced(wanted)).await.expect("announcement in time");
    announced.unwrap_or_else(|| panic!("origin closed before {wanted} was announced"))
}

/// The next track event, in time.
pub async fn next_event(track: &mut model::TrackConsumer) -> model::TrackEvent {
    timeout(WAIT, track.next_group()).await.expect("event in time").expect("no track error").expect("track open")
}

/// Reads a whole group's frames.
pub async fn read_group(group: &mut model::GroupConsumer) -> Vec<model::Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = timeout(WAIT, group.next_frame()).await.expect("frame in time").expect("no abort") {
        frames.push(frame);
    }
    frames
}

/// A bare QUIC connection to the server speaking `version`'s ALPN, with no session on it: the test
/// plays the peer byte by byte.
pub async fn raw_connect(server: &TestServer, version: Version) -> moqt::transport::quic::QuicConnection {
    let endpoint = raw_endpoint(server.cert.fingerprint(), version, quinn::TransportConfig::default());
    raw_connect_from(&endpoint, server.addr).await
}

/// A bare quinn client on loopback that trusts `fingerprint`, offers `version`'s ALPN and has the
/// `transport` settings (its own stream limits and windows). One endpoint carries any number of
/// connections ([`raw_connect_from`]) on one UDP socket.
pub fn raw_endpoint(fingerprint: [u8; 32], version: Version, transport: quinn::TransportConfig) -> quinn::Endpoint {
    let trust = ClientTrust::Fingerprint(vec![fingerprint]);
    let mut client = moqt::transport::tls::client_config(&trust, &[version.alpn().as_bytes().to_vec()]).unwrap();
    client.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client);
    endpoint
}

/// A bare QUIC connection from `endpoint` to the server at `addr`, with no session on it.
pub async fn raw_connect_from(endpoint: &quinn::Endpoint, addr: SocketAddr) -> QuicConnection {
    let connecting = endpoint.connect(addr, "localhost").unwrap();
    // Generous: a handshake competes with the relays and the rest of the suite for the CPU.
    QuicConnection::new(timeout(4 * WAIT, connecting).await.expect("handshake in time").expect("handshake"))
}

/// Sends `bytes` on a new uni stream and finishes it.
pub async fn send_uni<C: Connection>(conn: &C, bytes: &[u8]) {
    let mut send = conn.open_uni().await.unwrap();
    send.write(Bytes::copy_from_slice(bytes)).await.unwrap();
    send.finish().unwrap();
}

/// The close code the server ends a raw connection with.
pub async fn close_code(conn: &moqt::transport::quic::QuicConnection) -> u64 {
    close_code_within(conn, WAIT).await
}

/// [`close_code`], the server closing the connection within `bound`.
pub async fn close_code_within(conn: &moqt::transport::quic::QuicConnection, bound: Duration) -> u64 {
    use moqt::transport::{Connection, TransportError};
    match timeout(bound, conn.closed()).await.expect("closed in time") {
        TransportError::ClosedByPeer { code, .. } => code,
        other => panic!("closed by {other:?}"),
    }
}

/// A UDP relay on loopback in front of `upstream` that throttles the upstream-to-client direction
/// to `bytes_per_sec` through a drop-tail queue of `queue` packets: a narrow link with a small
/// buffer, so a sender's congestion window stays small and its own scheduler decides what goes
/// first. Client-to-upstream traffic passes unthrottled. Serves one client.
pub async fn throttled_link(upstream: SocketAddr, bytes_per_sec: u64, queue: usize) -> SocketAddr {
    use std::collections::VecDeque;
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(upstream).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let pending: Arc<Mutex<VecDeque<Vec<u8>>>> = Arc::default();
    let notify = Arc::new(tokio::sync::Notify::new());
    {
        let (front, back, client) = (front.clone(), back.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                let _ = back.send(&buf[..n]).await;
            }
        });
    }
    {
        let (back, pending, notify) = (back.clone(), pending.clone(), notify.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let mut queued = pending.lock().unwrap();
                if queued.len() < queue {
                    queued.push_back(buf[..n].to_vec());
                    notify.notify_one();
                }
            }
        });
    }
    tokio::spawn(async move {
        loop {
            let packet = pending.lock().unwrap().pop_front();
            let Some(packet) = packet else {
                notify.notified().await;
                continue;
            };
            let to = *client.lock().unwrap();
            if let Some(to) = to {
                let _ = front.send_to(&packet, to).await;
            }
            let micros = packet.len() as u64 * 1_000_000 / bytes_per_sec.max(1);
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
    });
    addr
}

/// 400 KB/s through a 16-packet buffer.
pub const LINK_RATE: u64 = 400_000;
pub const LINK_QUEUE: usize = 16;

/// A raw subscriber (the test speaks moq-lite itself) reaching `server` through a throttled link.
pub async fn constrained_subscriber(server: SocketAddr, fingerprint: [u8; 32], version: Version) -> QuicConnection {
    constrained_subscriber_with(server, fingerprint, version, quinn::TransportConfig::default()).await
}

/// [`constrained_subscriber`] whose QUIC receive windows are small as well: the sender's writes
/// block on flow control instead of filling its send buffer, so its group streams stay in flight
/// (quinn's default windows let a sender buffer about 10 MB).
pub async fn tightly_constrained_subscriber(
    server: SocketAddr,
    fingerprint: [u8; 32],
    version: Version,
) -> QuicConnection {
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window((64u32 * 1024).into());
    transport.receive_window((512u32 * 1024).into());
    constrained_subscriber_with(server, fingerprint, version, transport).await
}

async fn constrained_subscriber_with(
    server: SocketAddr,
    fingerprint: [u8; 32],
    version: Version,
    mut transport: quinn::TransportConfig,
) -> QuicConnection {
    let link = throttled_link(server, LINK_RATE, LINK_QUEUE).await;
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![fingerprint]);
    let mut client = moqt::transport::tls::client_config(&trust, &[version.alpn().as_bytes().to_vec()]).unwrap();
    transport.max_concurrent_uni_streams(1000u32.into());
    client.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client);
    let connection = timeout(WAIT, endpoint.connect(link, "localhost").unwrap()).await.unwrap().unwrap();
    QuicConnection::new(connection)
}

/// [`constrained_subscriber`] over WebTransport: an `https://` CONNECT through the throttled link,
/// offering only `version` in `wt-available-protocols`.
pub async fn constrained_wt_subscriber(
    server: SocketAddr,
    fingerprint: [u8; 32],
    version: Version,
) -> moqt::transport::webtransport::WebTransportConnection {
    let link = throttled_link(server, LINK_RATE, LINK_QUEUE).await;
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![fingerprint]);
    let mut client = moqt::transport::webtransport::client_config(&trust).unwrap();
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(1000u32.into());
    client.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client);
    let url = url::Url::parse(&format!("https://127.0.0.1:{}/", link.port())).unwrap();
    let (conn, chosen) = timeout(WAIT, moqt::transport::webtransport::connect(&endpoint, &url, &[version.alpn()]))
        .await
        .expect("WebTransport connect in time")
        .expect("WebTransport connect");
    assert_eq!(chosen.as_deref(), Some(version.alpn()), "wt-protocol");
    conn
}

pub async fn raw_subscribe<C: Connection>(conn: &C, version: Version, id: u64, track: &str, priority: u8) -> impl Send {
    raw_subscribe_stream(conn, version, id, track, priority).await
}

/// The next uni stream `conn` accepts that is a Group stream (the server's Setup stream and any
/// other kind skipped), with a reader holding what followed its stream type.
pub async fn next_group_stream<C: Connection>(conn: &C, version: Version) -> (C::Recv, StreamReader) {
    loop {
        let mut recv = timeout(WAIT, conn.accept_uni()).await.unwrap().unwrap();
        let mut reader = StreamReader::new(version, 1 << 16);
        let kind = loop {
            if let Some(kind) = reader.read_with(|b| UniStream::decode(b, version)).unwrap() {
                break kind;
            }
            let chunk = timeout(WAIT, recv.read(4096)).await.unwrap().unwrap().expect("a stream type");
            reader.push(&chunk).unwrap();
        };
        if kind == UniStream::Group {
            return (recv, reader);
        }
    }
}

/// What a raw client sends as its SETUP (default parameters) on lite-05+, stream type included.
pub fn client_setup_bytes(version: Version) -> Vec<u8> {
    let mut out = Vec::new();
    moqt::wire::UniStream::Setup.encode(&mut out, version).unwrap();
    moqt::wire::Setup::default().encode(&mut out, version).unwrap();
    out
}

/// Sends a raw client's SETUP on its own uni stream; nothing on versions without SETUP.
pub async fn send_client_setup<C: Connection>(conn: &C, version: Version) {
    if version.has_setup() {
        send_uni(conn, &client_setup_bytes(version)).await;
    }
}

/// A raw ANNOUNCE_REQUEST (stream type and message) for `prefix`.
pub fn announce_request(version: Version, prefix: &str) -> Vec<u8> {
    let mut out = Vec::new();
    BidiStream::Announce.encode(&mut out, version).unwrap();
    moqt::wire::AnnounceRequest { prefix: Path::new(prefix).unwrap(), exclude_hop: 0 }
        .encode(&mut out, version)
        .unwrap();
    out
}

/// A raw SUBSCRIBE request (stream type and message) for `track` of room/alice.
pub fn subscribe_request(version: Version, id: u64, track: &str, window: SubscribeWindow) -> Vec<u8> {
    let mut out = Vec::new();
    BidiStream::Subscribe.encode(&mut out, version).unwrap();
    Subscribe { id, broadcast: Path::new("room/alice").unwrap(), track: track.into(), window }
        .encode(&mut out, version)
        .unwrap();
    out
}

/// [`raw_subscribe`] returning the Subscribe stream's halves, to send SUBSCRIBE_UPDATE on.
pub async fn raw_subscribe_stream<C: Connection>(
    conn: &C,
    version: Version,
    id: u64,
    track: &str,
    priority: u8,
) -> (C::Send, C::Recv) {
    let window = SubscribeWindow { priority, max_age: 60_000, ..Default::default() };
    let out = subscribe_request(version, id, track, window);
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write(Bytes::from(out)).await.unwrap();
    (send, recv)
}

/// Accepts every Group stream and records (subscribe id, sequence) in the order streams complete.
pub fn record_completions<C: Connection>(conn: C, version: Version) -> Arc<Mutex<Vec<(u64, u64)>>> {
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

/// Aborts a spawned task when dropped.
pub struct TaskGuard(pub tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Another session on the same server, which keeps exchanging frames while a test pushes a
/// greedy peer past a bound: proof that the bound hurts that peer only.
pub struct Healthy {
    pub session: Session,
    received: Arc<std::sync::atomic::AtomicU64>,
    _tasks: Vec<TaskGuard>,
}

/// Writes a one-frame group to `track` every 20 ms.
fn keep_writing(mut track: TrackProducer) -> TaskGuard {
    TaskGuard(tokio::spawn(async move {
        loop {
            write_groups(&mut track, 1, 1);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }))
}

/// Counts the groups of `track` whose first frame arrives.
fn keep_reading(mut track: model::TrackConsumer, received: Arc<std::sync::atomic::AtomicU64>) -> TaskGuard {
    TaskGuard(tokio::spawn(async move {
        while let Ok(Some(event)) = track.next_group().await {
            if let model::TrackEvent::Group(mut group) = event {
                let received = received.clone();
                tokio::spawn(async move {
                    if let Ok(Some(_)) = group.next_frame().await {
                        received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        }
    }))
}

/// A client session subscribing to a new track "audio" of the server's broadcast `published`
/// (at room/alice), which gets a group every 20 ms. Returns once frames flow.
pub async fn healthy_subscriber(server: &TestServer, version: Version, published: &Published) -> Healthy {
    let info = TrackInfo { priority: 1, max_age: Duration::from_secs(5), timescale: 1000 };
    let audio = published.broadcast.create_track("audio", info).unwrap();
    let writer = keep_writing(audio);
    let (session, remote) = server.subscriber(version).await;
    let broadcast = announced(&remote, &path("room/alice")).await;
    let track = timeout(WAIT, broadcast.subscribe_track("audio")).await.unwrap().unwrap();
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = keep_reading(track, received.clone());
    let healthy = Healthy { session, received, _tasks: vec![writer, reader] };
    healthy.assert_flowing("before the test").await;
    healthy
}

/// A client session publishing room/bob with a track "audio" (a group every 20 ms) to a server
/// that subscribes into `inbox`. Returns once frames flow.
pub async fn healthy_publisher(server: &TestServer, version: Version, inbox: &OriginProducer) -> Healthy {
    let published = publish("room/bob");
    let info = TrackInfo { priority: 1, max_age: Duration::from_secs(5), timescale: 1000 };
    let audio = published.broadcast.create_track("audio", info).unwrap();
    let writer = keep_writing(audio);
    let origins = Origins { publish: Some(published.origin.consume()), subscribe: None, ..Default::default() };
    let session = timeout(WAIT, server.client(version).connect(server.addr, "localhost", None, origins))
        .await
        .expect("connect in time")
        .expect("connect");
    let broadcast = announced(inbox, &path("room/bob")).await;
    let track = timeout(WAIT, broadcast.subscribe_track("audio")).await.unwrap().unwrap();
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = keep_reading(track, received.clone());
    let keep = TaskGuard(tokio::spawn(async move {
        let _published = published;
        std::future::pending::<()>().await;
    }));
    let healthy = Healthy { session, received, _tasks: vec![writer, reader, keep] };
    healthy.assert_flowing("before the test").await;
    healthy
}

impl Healthy {
    /// Three more groups arrive and the session is still active.
    pub async fn assert_flowing(&self, when: &str) {
        use std::sync::atomic::Ordering;
        let start = self.received.load(Ordering::Relaxed);
        let flowed = timeout(WAIT, async {
            while self.received.load(Ordering::Relaxed) < start + 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(flowed.is_ok(), "{when}: the other session stopped receiving frames");
        assert_eq!(self.session.event(), moqt::session::SessionEvent::Active, "{when}: the other session");
    }
}

/// A UDP relay on loopback in front of `upstream` that delays every packet, both ways, by
/// `one_way`: a long path whose RTT (about twice `one_way`) is far above loopback's. Serves one
/// client.
pub async fn delayed_link(upstream: SocketAddr, one_way: Duration) -> SocketAddr {
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(upstream).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    {
        let (front, back, client) = (front.clone(), back.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                let (back, packet) = (back.clone(), buf[..n].to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(one_way).await;
                    let _ = back.send(&packet).await;
                });
            }
        });
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let to = *client.lock().unwrap();
            let (front, packet) = (front.clone(), buf[..n].to_vec());
            if let Some(to) = to {
                tokio::spawn(async move {
                    tokio::time::sleep(one_way).await;
                    let _ = front.send_to(&packet, to).await;
                });
            }
        }
    });
    addr
}

/// A client's states, each with when it entered it: see [`record_states`].
pub type States = Arc<Mutex<Vec<(Instant, ClientState)>>>;

/// Every state a client goes through, with when it entered it, recorded by a task from
/// [`PersistentClient::watch_state`]: a quick Migrating between two Connected states is seen even
/// if the test is not polling at that moment.
pub fn record_states(client: &PersistentClient) -> States {
    let mut watch = client.watch_state();
    let states = Arc::new(Mutex::new(vec![(Instant::now(), watch.borrow_and_update().clone())]));
    let recorded = states.clone();
    tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let state = watch.borrow_and_update().clone();
            recorded.lock().unwrap().push((Instant::now(), state));
        }
    });
    states
}
