//! A moq-lite publisher the test plays by hand on a bare quinn server: it writes every message
//! itself, so it can send what a moqt publisher never would (SUBSCRIBE_OK past the requested start,
//! a jump in sequences, a group starting past frame 0, the same group twice, two GOAWAYs) and
//! observe what the moqt client answers on the wire (STOP_SENDING codes, session close codes).

use super::*;
use moqt::transport::quic::{QuicRecv, QuicSend};
use moqt::wire::{
    AnnounceOk, AnnounceRequest, AnnounceStatus, Announcement, Datagram, FrameHeader, FrameTimestamps, Setup,
    TrackRequest,
};

/// A bare QUIC server speaking one version's ALPN.
pub struct RawServer {
    pub addr: SocketAddr,
    pub cert: Certificate,
    pub version: Version,
    endpoint: quinn::Endpoint,
}

pub fn raw_server(version: Version) -> RawServer {
    let cert = cert();
    let server = moqt::transport::tls::server_config(&cert, &[version.alpn().as_bytes().to_vec()]).unwrap();
    let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    RawServer { addr: endpoint.local_addr().unwrap(), cert, version, endpoint }
}

impl RawServer {
    /// A moqt client trusting this server, offering its version only, with `session` settings.
    pub fn client(&self, session: SessionConfig) -> Client {
        let trust = ClientTrust::Fingerprint(vec![self.cert.fingerprint()]);
        let mut endpoint = config(self.version);
        endpoint.session = session;
        Client::new("127.0.0.1:0".parse().unwrap(), &trust, endpoint).unwrap()
    }

    /// Accepts the next connection and plays the server's side of SETUP (lite-05+).
    pub async fn accept(&self) -> RawPeer {
        let peer = self.accept_bare().await;
        peer.exchange_setup(&Setup::default()).await;
        peer
    }

    /// Accepts the next connection; SETUP is left to the test.
    pub async fn accept_bare(&self) -> RawPeer {
        let incoming = timeout(WAIT, self.endpoint.accept()).await.expect("a connection in time").unwrap();
        let conn = timeout(WAIT, incoming).await.expect("handshake in time").unwrap();
        RawPeer { conn: QuicConnection::new(conn), version: self.version }
    }

    /// Connects a moqt client session to this server with `origins`; returns it and the raw peer.
    pub async fn connect(&self, session: SessionConfig, origins: Origins) -> (Session, RawPeer) {
        let client = self.client(session);
        let (session, peer) = tokio::join!(
            async { timeout(WAIT, client.connect(self.addr, "localhost", None, origins)).await },
            self.accept()
        );
        (session.expect("connect in time").expect("connect"), peer)
    }

    /// Connects a moqt subscriber (the peer's broadcasts land in the returned origin) and answers
    /// its ANNOUNCE_REQUEST with room/alice.
    pub async fn subscriber(&self, session: SessionConfig) -> (Session, OriginProducer, RawPeer, Request) {
        let remote = OriginProducer::default();
        let origins = Origins { publish: None, subscribe: Some(remote.clone().into()), ..Default::default() };
        let (session, peer) = self.connect(session, origins).await;
        let announce = peer.announce(&["room/alice"]).await;
        (session, remote, peer, announce)
    }
}

/// One request stream the moqt client opened, its type already read.
pub struct Request {
    pub kind: BidiStream,
    pub send: QuicSend,
    pub recv: QuicRecv,
    pub reader: moqt::wire::StreamReader,
}

impl Request {
    /// The next message on the stream.
    pub async fn message<M: Message>(&mut self) -> M {
        loop {
            if let Some(message) = self.reader.decode::<M>().unwrap() {
                return message;
            }
            let chunk = timeout(WAIT, self.recv.read(4096)).await.expect("bytes in time").unwrap().expect("more bytes");
            self.reader.push(&chunk).unwrap();
        }
    }

    /// Sends one message.
    pub async fn send<M: Message>(&mut self, message: &M, version: Version) {
        self.send.write(Bytes::from(message.to_bytes(version).unwrap())).await.unwrap();
    }
}

/// The server's side of one connection.
pub struct RawPeer {
    pub conn: QuicConnection,
    pub version: Version,
}

impl RawPeer {
    /// Reads the client's SETUP and sends `ours` (lite-05+; nothing before).
    pub async fn exchange_setup(&self, ours: &Setup) {
        if !self.version.has_setup() {
            return;
        }
        let mut recv = timeout(WAIT, self.conn.accept_uni()).await.expect("SETUP in time").unwrap();
        let mut reader = moqt::wire::StreamReader::new(self.version, 1 << 16);
        while let Some(chunk) = timeout(WAIT, recv.read(4096)).await.unwrap().unwrap() {
            reader.push(&chunk).unwrap();
        }
        assert_eq!(reader.read_with(|b| UniStream::decode(b, self.version)).unwrap(), Some(UniStream::Setup));
        let mut out = Vec::new();
        UniStream::Setup.encode(&mut out, self.version).unwrap();
        ours.encode(&mut out, self.version).unwrap();
        send_uni(&self.conn, &out).await;
    }

    /// The client's next request stream.
    pub async fn request(&self) -> Request {
        let (send, mut recv) = timeout(WAIT, self.conn.accept_bi()).await.expect("a request in time").unwrap();
        let mut reader = moqt::wire::StreamReader::new(self.version, 1 << 16);
        loop {
            if let Some(kind) = reader.read_with(|b| BidiStream::decode(b, self.version)).unwrap() {
                return Request { kind, send, recv, reader };
            }
            let chunk = timeout(WAIT, recv.read(4096)).await.unwrap().unwrap().expect("a stream type");
            reader.push(&chunk).unwrap();
        }
    }

    /// Answers the client's ANNOUNCE_REQUEST with `paths`; the stream is returned to keep open.
    pub async fn announce(&self, paths: &[&str]) -> Request {
        let mut request = self.request().await;
        assert_eq!(request.kind, BidiStream::Announce);
        let _: AnnounceRequest = request.message().await;
        let mut out = Vec::new();
        if self.version.has_setup() {
            AnnounceOk { hop_id: 0, active_count: paths.len() as u64 }.encode(&mut out, self.version).unwrap();
        }
        for at in paths {
            let announcement = if self.version >= Version::Lite06 {
                Announcement::Start { suffix: path(at), hops: vec![], warm_cost: 0, cold_cost: 0 }
            } else {
                Announcement::Legacy { status: AnnounceStatus::Active, suffix: path(at), hops: vec![] }
            };
            announcement.encode(&mut out, self.version).unwrap();
        }
        request.send.write(Bytes::from(out)).await.unwrap();
        request
    }

    /// Answers TRACK (lite-05+) and reads the SUBSCRIBE that follows.
    pub async fn subscription(&self) -> (Subscribe, Request) {
        if self.version.has_track_info() {
            let mut track = self.request().await;
            assert_eq!(track.kind, BidiStream::Track);
            let _: TrackRequest = track.message().await;
            let info = moqt::wire::TrackInfo { priority: 1, ordered: false, max_age: 10_000, timescale: 1000 };
            track.send(&info, self.version).await;
            track.send.finish().unwrap();
            tokio::spawn(async move { while let Ok(Some(_)) = track.recv.read(1024).await {} });
        }
        let mut request = self.request().await;
        assert_eq!(request.kind, BidiStream::Subscribe);
        let subscribe: Subscribe = request.message().await;
        (subscribe, request)
    }

    /// Opens a Group stream with its header written.
    pub async fn group(&self, subscribe_id: u64, sequence: u64, frame_start: u64) -> QuicSend {
        let mut out = Vec::new();
        UniStream::Group.encode(&mut out, self.version).unwrap();
        GroupHeader { subscribe_id, sequence, frame_start }.encode(&mut out, self.version).unwrap();
        let mut send = self.conn.open_uni().await.unwrap();
        send.write(Bytes::from(out)).await.unwrap();
        send
    }

    /// One FRAME (header and payload); timestamps travel from lite-05 on.
    pub fn frame(&self, timestamps: &mut FrameTimestamps, timestamp: u64, payload: &[u8]) -> Bytes {
        let timestamp_delta = if self.version >= Version::Lite05 { timestamps.delta_for(timestamp) } else { 0 };
        let mut out = Vec::new();
        FrameHeader { timestamp_delta, payload_len: payload.len() as u64 }.encode(&mut out, self.version).unwrap();
        out.extend_from_slice(payload);
        Bytes::from(out)
    }

    /// A whole group on its own stream, then FIN: frames `payloads`, timestamps 1000 + 33 n.
    pub async fn send_group(&self, subscribe_id: u64, sequence: u64, frame_start: u64, payloads: &[Bytes]) {
        let mut send = self.group(subscribe_id, sequence, frame_start).await;
        let mut timestamps = FrameTimestamps::new();
        for (n, payload) in payloads.iter().enumerate() {
            let frame = self.frame(&mut timestamps, 1000 + 33 * n as u64, payload);
            send.write(frame).await.unwrap();
        }
        send.finish().unwrap();
    }

    /// A one-frame group as a DATAGRAM.
    pub fn datagram(&self, subscribe_id: u64, sequence: u64, timestamp: u64, payload: Bytes) {
        let mut out = Vec::new();
        Datagram { subscribe_id, sequence, timestamp, payload }.encode(&mut out, self.version).unwrap();
        self.conn.send_datagram(Bytes::from(out)).unwrap();
    }
}
