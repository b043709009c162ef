//! Control-message timeouts, against a peer the test plays by hand over the in-memory transport:
//! an unanswered ANNOUNCE_REQUEST ends the session with CONTROL_MESSAGE_TIMEOUT, an unanswered
//! TRACK fails only that subscription with CONTROL_TIMEOUT.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::{WAIT, init_logs, path};
use moqt::coding::{SessionCode, StreamCode};
use moqt::model::{Error, OriginProducer};
use moqt::session::{Origins, Session, SessionConfig, SessionError, SessionEvent};
use moqt::transport::memory::{MemoryConnection, MemorySettings, pair};
use moqt::transport::{Connection, RecvStream, SendStream, TransportError};
use moqt::wire::{AnnounceOk, Announcement, BidiStream, Message, Setup, StreamReader, UniStream, Version};
use tokio::time::timeout;

const VERSION: Version = Version::Lite06;

fn config() -> SessionConfig {
    SessionConfig { control_timeout: Duration::from_millis(200), ..Default::default() }
}

/// Plays the server's side of the SETUP exchange.
async fn peer_setup(peer: &MemoryConnection) {
    let mut recv = peer.accept_uni().await.unwrap();
    while recv.read(1024).await.unwrap().is_some() {}
    let mut out = Vec::new();
    UniStream::Setup.encode(&mut out, VERSION).unwrap();
    Setup::default().encode(&mut out, VERSION).unwrap();
    let mut send = peer.open_uni().await.unwrap();
    send.write(Bytes::from(out)).await.unwrap();
    send.finish().unwrap();
}

/// Reads the stream type and first message of the client's next bidi stream.
async fn next_request(peer: &MemoryConnection) -> (BidiStream, moqt::transport::memory::MemorySend, StreamReader) {
    let (send, mut recv) = peer.accept_bi().await.unwrap();
    let mut reader = StreamReader::new(VERSION, 1 << 16);
    loop {
        if let Some(kind) = reader.read_with(|b| BidiStream::decode(b, VERSION)).unwrap() {
            tokio::spawn(async move { while let Ok(Some(_)) = recv.read(1024).await {} });
            return (kind, send, reader);
        }
        let chunk = recv.read(1024).await.unwrap().expect("more bytes");
        reader.push(&chunk).unwrap();
    }
}

async fn connect(client: MemoryConnection) -> (Session, OriginProducer) {
    let remote = OriginProducer::default();
    let origins = Origins { publish: None, subscribe: Some(remote.clone().into()), ..Default::default() };
    let session = Session::connect(client, VERSION, None, origins, config()).await.unwrap();
    (session, remote)
}

#[tokio::test]
async fn unanswered_announce_request_closes_with_control_message_timeout() {
    init_logs();
    let (client, peer) = pair(MemorySettings::default());
    let (session, _remote) = tokio::join!(connect(client), peer_setup(&peer)).0;
    let (kind, _send, _reader) = timeout(WAIT, next_request(&peer)).await.unwrap();
    assert_eq!(kind, BidiStream::Announce);
    let mut session = session;
    let closed = timeout(WAIT, session.closed()).await.unwrap();
    assert_eq!(closed, SessionError::Timeout("ANNOUNCE_OK"));
    let seen_by_peer = timeout(WAIT, peer.closed()).await.unwrap();
    assert!(
        matches!(seen_by_peer, TransportError::ClosedByPeer { code, .. } if code == SessionCode::ControlMessageTimeout.to_u64()),
        "{seen_by_peer:?}"
    );
}

#[tokio::test]
async fn unanswered_track_request_fails_that_subscription_only() {
    init_logs();
    let (client, peer) = pair(MemorySettings::default());
    let (session, remote) = tokio::join!(connect(client), peer_setup(&peer)).0;
    // Answer the announce request with one broadcast.
    let (kind, mut announce, _reader) = timeout(WAIT, next_request(&peer)).await.unwrap();
    assert_eq!(kind, BidiStream::Announce);
    let mut out = Vec::new();
    AnnounceOk { hop_id: 0, active_count: 1 }.encode(&mut out, VERSION).unwrap();
    let start = Announcement::Start { suffix: path("room/alice"), hops: vec![], warm_cost: 0, cold_cost: 0 };
    start.encode(&mut out, VERSION).unwrap();
    announce.write(Bytes::from(out)).await.unwrap();
    let broadcast = common::announced(&remote, &path("room/alice")).await;
    // Subscribe locally: the client sends TRACK, which the peer never answers.
    let subscribing = tokio::spawn(async move { broadcast.subscribe_track("video").await.map(|_| ()) });
    let (kind, _track_send, mut reader) = timeout(WAIT, next_request(&peer)).await.unwrap();
    assert_eq!(kind, BidiStream::Track);
    let _ = reader.decode::<moqt::wire::TrackRequest>();
    let result = timeout(WAIT, subscribing).await.unwrap().unwrap();
    assert_eq!(result, Err(Error::Aborted(StreamCode::ControlTimeout)));
    assert_eq!(session.event(), SessionEvent::Active, "only the request failed");
}
