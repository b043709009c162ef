//! Unusual but valid-to-moq-relay input sent by a raw client to moqt's relay and to the reference
//! moq-relay 0.17.10: moqt must answer each case as moq-relay does. Cases: a SETUP with an unknown
//! parameter, an unknown stream type, a 32-segment (maximum) and a 33-segment path, and a SUBSCRIBE
//! split across packets at every byte.

mod common;

#[path = "common/relay.rs"]
mod relay;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use moqt::coding::Path;
use moqt::transport::quic::QuicConnection;
use moqt::transport::tls::ClientTrust;
use moqt::transport::{Connection, RecvStream, SendStream, StreamError, TransportError};
use moqt::wire::{
    AnnounceRequest, BidiStream, Message, Setup, StreamCode, Subscribe, SubscribeWindow, UniStream, Version,
};
use relay::{Relay, require_relay};
use tokio::time::timeout;

const VERSION: Version = Version::Lite06;

/// How a peer answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Bytes came back (a reply) and the stream stayed open.
    Replied,
    /// Nothing within the wait, stream open.
    Quiet,
    /// The stream was reset with this code.
    Reset(StreamCode),
    /// The whole session was closed with this code.
    SessionClosed(u64),
}

async fn raw(addr: SocketAddr, fingerprint: [u8; 32]) -> QuicConnection {
    let trust = ClientTrust::Fingerprint(vec![fingerprint]);
    let config = moqt::transport::tls::client_config(&trust, &[VERSION.alpn().as_bytes().to_vec()]).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connection = timeout(WAIT, endpoint.connect(addr, "localhost").unwrap()).await.unwrap().unwrap();
    QuicConnection::new(connection)
}

async fn setup(conn: &QuicConnection, unknown_parameter: bool) {
    let mut setup = Setup::default();
    if unknown_parameter {
        setup.unknown.set(0x3f21, Bytes::from_static(b"something new"));
    }
    let mut out = Vec::new();
    UniStream::Setup.encode(&mut out, VERSION).unwrap();
    setup.encode(&mut out, VERSION).unwrap();
    send_uni(conn, &out).await;
}

/// Sends `bytes` on a new bidi stream, `piece` bytes per write (with a pause, so they leave as
/// separate packets), and reads what happens.
async fn ask(conn: &QuicConnection, bytes: &[u8], piece: usize) -> Answer {
    let Ok((mut send, mut recv)) = conn.open_bi().await else {
        return Answer::SessionClosed(close_code(conn).await);
    };
    for chunk in bytes.chunks(piece.max(1)) {
        if send.write(Bytes::copy_from_slice(chunk)).await.is_err() {
            break;
        }
        if piece < bytes.len() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut replied = false;
    loop {
        match timeout(Duration::from_millis(700), recv.read(4096)).await {
            Err(_) => return if replied { Answer::Replied } else { Answer::Quiet },
            Ok(Ok(Some(_))) => replied = true,
            Ok(Ok(None)) => return Answer::Replied,
            Ok(Err(StreamError::Reset(code))) => return Answer::Reset(code),
            Ok(Err(StreamError::Connection(TransportError::ClosedByPeer { code, .. }))) => {
                return Answer::SessionClosed(code);
            }
            Ok(Err(other)) => panic!("unexpected stream error {other}"),
        }
    }
}

fn announce(prefix: &str) -> Vec<u8> {
    let mut out = Vec::new();
    BidiStream::Announce.encode(&mut out, VERSION).unwrap();
    AnnounceRequest { prefix: Path::new(prefix).unwrap(), exclude_hop: 0 }.encode(&mut out, VERSION).unwrap();
    out
}

/// An ANNOUNCE_REQUEST whose prefix has `segments` segments, encoded by hand (the codec refuses
/// to build an over-long path).
fn announce_segments(segments: usize) -> Vec<u8> {
    let prefix = vec!["s"; segments].join("/");
    let mut body = Vec::new();
    moqt::coding::encode_string(&mut body, &prefix, moqt::coding::MAX_STRING_LEN).unwrap();
    let mut out = vec![BidiStream::Announce.id() as u8];
    moqt::coding::encode_varint(&mut out, body.len() as u64).unwrap();
    out.extend(body);
    out
}

fn subscribe_unknown() -> Vec<u8> {
    let mut out = Vec::new();
    BidiStream::Subscribe.encode(&mut out, VERSION).unwrap();
    let window = SubscribeWindow { priority: 1, max_age: 1000, ..Default::default() };
    Subscribe { id: 0, broadcast: Path::new("nobody/here").unwrap(), track: "video".into(), window }
        .encode(&mut out, VERSION)
        .unwrap();
    out
}

/// Plays every case against one relay and returns the answers in order.
async fn play(addr: SocketAddr, fingerprint: [u8; 32]) -> Vec<(&'static str, Answer)> {
    let conn = raw(addr, fingerprint).await;
    setup(&conn, true).await;
    let mut answers = Vec::new();
    answers.push(("unknown stream type", ask(&conn, &[0x3f, 0x00], 64).await));
    answers.push(("announce, 32-segment prefix", ask(&conn, &announce_segments(32), 4096).await));
    answers.push(("announce, 33-segment prefix", ask(&conn, &announce_segments(33), 4096).await));
    answers.push(("announce, split at every byte", ask(&conn, &announce("room"), 1).await));
    answers.push(("subscribe to nobody, split at every byte", ask(&conn, &subscribe_unknown(), 1).await));
    // The session survived all of it (and the unknown SETUP parameter).
    answers.push(("session still up", ask(&conn, &announce(""), 4096).await));
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moqt_relay_answers_unusual_input_as_moq_relay_does() {
    init_logs();
    let Some(binary) = require_relay("moqt_relay_answers_unusual_input_as_moq_relay_does") else { return };
    let reference = Relay::start(&binary, Some(VERSION));
    let expected = play(reference.addr, reference.fingerprint).await;

    let cert = cert();
    let server = moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, config(VERSION)).unwrap();
    let addr = server.local_addr().unwrap();
    let ours = moqt::relay::Relay::new(moqt::relay::RelayConfig::default());
    let running = ours.clone();
    tokio::spawn(async move { running.run(server).await });
    let got = play(addr, cert.fingerprint()).await;

    assert_eq!(expected.len(), got.len());
    for ((case, theirs), (_, mine)) in expected.iter().zip(&got) {
        assert_eq!(mine, theirs, "{case}: moq-relay answered {theirs:?}, moqt {mine:?}");
    }
}
