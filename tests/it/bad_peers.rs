//! Unusual but valid-to-moq-relay input sent by a raw client to moqt's relay and to the reference
//! moq-relay 0.17.10: moqt must answer each case as moq-relay does, on lite-05 and lite-06 (the
//! versions with SETUP) and on lite-04 and lite-03 for the cases without it. Cases: a SETUP with an
//! unknown parameter, whole or split across packets at every byte; an unknown stream type on a
//! bidi and on a uni stream; a 32-segment (maximum) and a 33-segment path; a path of the maximum
//! string length (65535 bytes) as an announce prefix and as a subscribed broadcast; an
//! ANNOUNCE_REQUEST and a SUBSCRIBE split at every byte. Then peer mistakes that must not kill a
//! session, played against both relays on every version: an ANNOUNCE `ended` for a path that was
//! never active, and a publisher refusing a SUBSCRIBE with a raw (unmapped) stream code. Last, a
//! subscription made before its track has any group: the relay's SUBSCRIBE_OK waits for the first
//! group and names it (lite-05/06).

use crate::common;

use crate::common::relay;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use moqt::coding::Path;
use moqt::coding::StreamCode;
use moqt::transport::quic::QuicConnection;
use moqt::transport::tls::ClientTrust;
use moqt::transport::{Connection, RecvStream, SendStream, StreamError, TransportError};
use moqt::wire::{
    AnnounceOk, AnnounceRequest, AnnounceStatus, Announcement, BidiStream, Message, Setup, Subscribe, SubscribeWindow,
    TrackInfo, TrackRequest, UniStream, Version,
};
use relay::{Relay, require_relay};
use tokio::time::timeout;

/// How a peer answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Bytes came back (a reply) and the stream stayed open.
    Replied,
    /// Nothing within the wait, stream open.
    Quiet,
    /// The stream was reset with this code.
    Reset(StreamCode),
    /// The peer asked us to stop sending on the stream (STOP_SENDING) with this code.
    Stopped(StreamCode),
    /// The whole session was closed with this code.
    SessionClosed(u64),
}

async fn raw(addr: SocketAddr, fingerprint: [u8; 32], version: Version) -> QuicConnection {
    raw_connect_from(&raw_endpoint(fingerprint, version, quinn::TransportConfig::default()), addr).await
}

/// Writes `bytes`, `piece` bytes per write with a pause after each, so they leave as separate
/// packets.
async fn write_in_pieces<S: SendStream>(send: &mut S, bytes: &[u8], piece: usize) {
    for chunk in bytes.chunks(piece.max(1)) {
        if send.write(Bytes::copy_from_slice(chunk)).await.is_err() {
            break;
        }
        if piece < bytes.len() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Sends the client's SETUP (lite-05+) with an unknown parameter, `piece` bytes per packet.
async fn setup(conn: &QuicConnection, version: Version, piece: usize) {
    if !version.has_setup() {
        return;
    }
    let mut setup = Setup::default();
    setup.unknown.set(0x3f21, Bytes::from_static(b"something new"));
    let mut out = Vec::new();
    UniStream::Setup.encode(&mut out, version).unwrap();
    setup.encode(&mut out, version).unwrap();
    let mut send = conn.open_uni().await.unwrap();
    write_in_pieces(&mut send, &out, piece).await;
    send.finish().unwrap();
}

/// Sends `bytes` on a new bidi stream, `piece` bytes per packet, and reads what happens.
async fn ask(conn: &QuicConnection, bytes: &[u8], piece: usize) -> Answer {
    let Ok((mut send, mut recv)) = conn.open_bi().await else {
        return Answer::SessionClosed(close_code(conn).await);
    };
    write_in_pieces(&mut send, bytes, piece).await;
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

/// Sends `bytes` on a new uni stream, left open, and waits to see whether the peer stops it.
async fn ask_uni(conn: &QuicConnection, bytes: &[u8]) -> Answer {
    let Ok(mut send) = conn.open_uni().await else {
        return Answer::SessionClosed(close_code(conn).await);
    };
    write_in_pieces(&mut send, bytes, bytes.len()).await;
    match timeout(Duration::from_millis(700), send.stopped()).await {
        Err(_) => Answer::Quiet,
        Ok(Ok(Some(code))) => Answer::Stopped(code),
        Ok(Ok(None)) => Answer::Quiet,
        Ok(Err(StreamError::Connection(TransportError::ClosedByPeer { code, .. }))) => Answer::SessionClosed(code),
        Ok(Err(other)) => panic!("unexpected stream error {other}"),
    }
}

/// An ANNOUNCE_REQUEST whose prefix has `segments` segments, encoded by hand (the codec refuses
/// to build an over-long path).
fn announce_segments(version: Version, segments: usize) -> Vec<u8> {
    let prefix = vec!["s"; segments].join("/");
    let mut body = Vec::new();
    moqt::coding::encode_string(&mut body, &prefix, moqt::coding::MAX_STRING_LEN).unwrap();
    if matches!(version, Version::Lite04 | Version::Lite05) {
        moqt::coding::encode_varint(&mut body, 0).unwrap(); // Exclude Hop
    }
    let mut out = Vec::new();
    BidiStream::Announce.encode(&mut out, version).unwrap();
    moqt::coding::encode_varint(&mut out, body.len() as u64).unwrap();
    out.extend(body);
    out
}

fn subscribe_unknown(version: Version) -> Vec<u8> {
    subscribe_to(version, "nobody/here")
}

fn subscribe_to(version: Version, broadcast: &str) -> Vec<u8> {
    let mut out = Vec::new();
    BidiStream::Subscribe.encode(&mut out, version).unwrap();
    let window = SubscribeWindow { priority: 1, max_age: 1000, ..Default::default() };
    Subscribe { id: 0, broadcast: Path::new(broadcast).unwrap(), track: "video".into(), window }
        .encode(&mut out, version)
        .unwrap();
    out
}

/// The longest path the codec carries: exactly MAX_STRING_LEN (65535) bytes, in the maximum 32
/// segments.
fn max_length_path() -> String {
    let (max, segments) = (moqt::coding::MAX_STRING_LEN as usize, moqt::coding::MAX_PATH_SEGMENTS);
    let mut path = vec!["s".repeat((max - (segments - 1)) / segments); segments].join("/");
    path.push_str(&"t".repeat(max - path.len()));
    assert_eq!((path.len(), path.split('/').count()), (max, segments));
    path
}

/// Plays every case against one relay and returns the answers in order. `setup_piece` is how many
/// bytes of the SETUP go per packet.
async fn play(addr: SocketAddr, fingerprint: [u8; 32], version: Version, setup_piece: usize) -> Vec<(String, Answer)> {
    let conn = raw(addr, fingerprint, version).await;
    setup(&conn, version, setup_piece).await;
    let mut answers = Vec::new();
    let mut case = |name: &str, answer: Answer| answers.push((name.to_string(), answer));
    case("unknown bidi stream type", ask(&conn, &[0x3f, 0x00], 64).await);
    case("unknown uni stream type", ask_uni(&conn, &[0x3f, 0x00]).await);
    case("announce, 32-segment prefix", ask(&conn, &announce_segments(version, 32), 4096).await);
    case("announce, 33-segment prefix", ask(&conn, &announce_segments(version, 33), 4096).await);
    let longest = max_length_path();
    case("announce, maximum-length prefix", ask(&conn, &announce_request(version, &longest), 4096).await);
    case("subscribe, maximum-length broadcast path", ask(&conn, &subscribe_to(version, &longest), 4096).await);
    case("announce, split at every byte", ask(&conn, &announce_request(version, "room"), 1).await);
    case("subscribe to nobody, split at every byte", ask(&conn, &subscribe_unknown(version), 1).await);
    // The session survived all of it (and the unknown SETUP parameter, however it was split).
    case("session still up", ask(&conn, &announce_request(version, ""), 4096).await);
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moqt_relay_answers_unusual_input_as_moq_relay_does() {
    init_logs();
    let Some(binary) = require_relay("moqt_relay_answers_unusual_input_as_moq_relay_does") else { return };
    for version in Version::ALL {
        let reference = Relay::start(&binary, Some(version));
        let cert = cert();
        let server = moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, config(version)).unwrap();
        let addr = server.local_addr().unwrap();
        let ours = moqt::relay::Relay::new(moqt::relay::RelayConfig::default());
        let running = ours.clone();
        tokio::spawn(async move { running.run(server).await });
        // SETUP whole, then split at every byte (lite-05+; earlier versions have none).
        let pieces: &[usize] = if version.has_setup() { &[4096, 1] } else { &[4096] };
        for &piece in pieces {
            let expected = play(reference.addr, reference.fingerprint, version, piece).await;
            let got = play(addr, cert.fingerprint(), version, piece).await;
            assert_eq!(expected.len(), got.len());
            for ((case, theirs), (_, mine)) in expected.iter().zip(&got) {
                assert_eq!(
                    mine, theirs,
                    "{version}, SETUP in {piece}-byte pieces, {case}: moq-relay {theirs:?}, moqt {mine:?}"
                );
            }
            tracing::info!(%version, piece, ?got, "answers");
        }
    }
}

/// A raw client's request stream (or one the relay opened to it), its type already read.
struct Raw {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    reader: moqt::wire::StreamReader,
}

impl Raw {
    fn new(send: quinn::SendStream, recv: quinn::RecvStream, version: Version) -> Self {
        Raw { send, recv, reader: moqt::wire::StreamReader::new(version, 1 << 16) }
    }

    /// Reads more bytes into the reader: `Err` with the code if the peer reset the stream, `Ok(false)`
    /// at its end.
    async fn fill(&mut self) -> Result<bool, StreamCode> {
        match timeout(WAIT, self.recv.read_chunk(4096, true)).await.expect("bytes in time") {
            Ok(Some(chunk)) => {
                self.reader.push(&chunk.bytes).unwrap();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(quinn::ReadError::Reset(code)) => Err(StreamCode::from_transport(code.into_inner())),
            Err(other) => panic!("unexpected stream error {other}"),
        }
    }

    /// The next message; `Err` with the code if the stream was reset first.
    async fn message<M: Message>(&mut self) -> Result<M, StreamCode> {
        loop {
            if let Some(message) = self.reader.decode::<M>().unwrap() {
                return Ok(message);
            }
            assert!(self.fill().await?, "the stream ended before a {}", M::NAME);
        }
    }

    /// The stream type of a stream the peer opened.
    async fn kind(&mut self) -> Option<BidiStream> {
        let version = self.reader.version();
        loop {
            if let Some(kind) = self.reader.read_with(|b| BidiStream::decode(b, version)).unwrap() {
                return Some(kind);
            }
            if !matches!(self.fill().await, Ok(true)) {
                return None;
            }
        }
    }

    async fn write(&mut self, bytes: Vec<u8>) {
        self.send.write_all(&bytes).await.unwrap();
    }
}

/// Opens a request stream of `kind` carrying `message`.
async fn open<M: Message>(conn: &QuicConnection, version: Version, kind: BidiStream, message: &M) -> Raw {
    let (send, recv) = timeout(WAIT, conn.quinn().open_bi()).await.unwrap().unwrap();
    let mut raw = Raw::new(send, recv, version);
    let mut out = Vec::new();
    kind.encode(&mut out, version).unwrap();
    message.encode(&mut out, version).unwrap();
    raw.write(out).await;
    raw
}

/// Plays the publisher's side of the Announce stream the relay opens to a raw client: reads its
/// ANNOUNCE_REQUEST and answers ANNOUNCE_OK (lite-05+) with `active` paths. Other streams the relay
/// opens first (a PROBE to a lite-04 publisher) are left alone.
async fn answer_announce_request(conn: &QuicConnection, version: Version, active: &[&str]) -> Raw {
    loop {
        let (send, recv) = timeout(WAIT, conn.quinn().accept_bi()).await.expect("a request in time").unwrap();
        let mut stream = Raw::new(send, recv, version);
        if stream.kind().await != Some(BidiStream::Announce) {
            continue;
        }
        let _: AnnounceRequest = stream.message().await.expect("an ANNOUNCE_REQUEST");
        let mut out = Vec::new();
        if version.has_setup() {
            AnnounceOk { hop_id: 0, active_count: active.len() as u64 }.encode(&mut out, version).unwrap();
        }
        for at in active {
            active_announcement(version, at).encode(&mut out, version).unwrap();
        }
        stream.write(out).await;
        return stream;
    }
}

fn active_announcement(version: Version, at: &str) -> Announcement {
    if version >= Version::Lite06 {
        Announcement::Start { suffix: path(at), hops: vec![], warm_cost: 0, cold_cost: 0 }
    } else {
        Announcement::Legacy { status: AnnounceStatus::Active, suffix: path(at), hops: vec![] }
    }
}

/// Asks the relay for every announcement and waits until `wanted` is active.
async fn wait_announced(conn: &QuicConnection, version: Version, wanted: &str) -> Raw {
    let request = AnnounceRequest { prefix: Path::root(), exclude_hop: 0 };
    let mut stream = open(conn, version, BidiStream::Announce, &request).await;
    if version.has_setup() {
        let _: AnnounceOk = stream.message().await.expect("ANNOUNCE_OK");
    }
    loop {
        match stream.message::<Announcement>().await.expect("announcements") {
            Announcement::Start { suffix, .. } if suffix == path(wanted) => return stream,
            Announcement::Legacy { status: AnnounceStatus::Active | AnnounceStatus::Restart, suffix, .. }
                if suffix == path(wanted) =>
            {
                return stream;
            }
            _ => {}
        }
    }
}

/// What became of a publisher's session after an ANNOUNCE ended for a path it never announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterEnded {
    /// Kept: the active announcement the publisher sent next reached another client.
    Kept,
    /// Closed with this code.
    Closed(u64),
}

/// A raw publisher sends `ended` for a path it never announced, then announces room/alice.
async fn announce_ended_for_a_path_never_active(
    addr: SocketAddr,
    fingerprint: [u8; 32],
    version: Version,
) -> AfterEnded {
    let publisher = raw(addr, fingerprint, version).await;
    setup(&publisher, version, 4096).await;
    let mut announce = answer_announce_request(&publisher, version, &[]).await;
    let mut out = Vec::new();
    let ended = if version >= Version::Lite06 {
        // lite-06 names routes by implicit ID: an END for an ID never given.
        Announcement::End { id: 0 }
    } else {
        Announcement::Legacy { status: AnnounceStatus::Ended, suffix: path("never/active"), hops: vec![] }
    };
    ended.encode(&mut out, version).unwrap();
    active_announcement(version, "room/alice").encode(&mut out, version).unwrap();
    announce.write(out).await;

    let subscriber = raw(addr, fingerprint, version).await;
    setup(&subscriber, version, 4096).await;
    let outcome = timeout(WAIT, async {
        tokio::select! {
            closed = publisher.closed() => match closed {
                TransportError::ClosedByPeer { code, .. } => AfterEnded::Closed(code),
                other => panic!("{version}: publisher closed by {other:?}"),
            },
            _ = wait_announced(&subscriber, version, "room/alice") => AfterEnded::Kept,
        }
    })
    .await
    .expect("an outcome in time");
    if outcome == AfterEnded::Kept {
        assert!(publisher.quinn().close_reason().is_none(), "{version}: the publisher's session is still up");
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announce_ended_for_a_path_never_active_is_answered_as_moq_relay_does() {
    init_logs();
    let Some(binary) = require_relay("an_announce_ended_for_a_path_never_active_is_answered_as_moq_relay_does") else {
        return;
    };
    for version in Version::ALL {
        let reference = Relay::start(&binary, Some(version));
        let theirs = announce_ended_for_a_path_never_active(reference.addr, reference.fingerprint, version).await;
        let (addr, fingerprint) = start_moqt_relay(version);
        let mine = announce_ended_for_a_path_never_active(addr, fingerprint, version).await;
        tracing::info!(%version, ?theirs, ?mine, "after an ANNOUNCE ended for a path never active");
        // Ignored up to lite-05 (spec 11.9; lite-03 shares lite-04's rules); lite-06's END for an
        // ID never given is a violation.
        let expected = if version >= Version::Lite06 { AfterEnded::Closed(0x3) } else { AfterEnded::Kept };
        assert_eq!(theirs, expected, "{version}: moq-relay");
        assert_eq!(mine, expected, "{version}: moqt");
    }
}

/// moqt's relay on loopback, `version` only; its address and certificate fingerprint.
fn start_moqt_relay(version: Version) -> (SocketAddr, [u8; 32]) {
    let cert = cert();
    let server = moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, config(version)).unwrap();
    let addr = server.local_addr().unwrap();
    let relay = moqt::relay::Relay::new(moqt::relay::RelayConfig::default());
    tokio::spawn(async move { relay.run(server).await });
    (addr, cert.fingerprint())
}

/// A raw publisher of room/alice that answers TRACK and refuses every SUBSCRIBE with a reset: a
/// raw QUIC 0x33 for track "raw", the mapped NOT_FOUND (spec 11.1) for any other.
async fn refusing_publisher(addr: SocketAddr, fingerprint: [u8; 32], version: Version) -> (QuicConnection, Raw) {
    let publisher = raw(addr, fingerprint, version).await;
    setup(&publisher, version, 4096).await;
    let announce = answer_announce_request(&publisher, version, &["room/alice"]).await;
    let conn = publisher.quinn().clone();
    tokio::spawn(async move {
        while let Ok((send, recv)) = conn.accept_bi().await {
            tokio::spawn(async move {
                let mut stream = Raw::new(send, recv, version);
                match stream.kind().await {
                    Some(BidiStream::Track) => {
                        let Ok(_) = stream.message::<TrackRequest>().await else { return };
                        let info = TrackInfo { priority: 1, ordered: false, max_age: 10_000, timescale: 1000 };
                        stream.write(info.to_bytes(version).unwrap()).await;
                        let _ = stream.send.finish();
                        let _ = stream.send.stopped().await;
                    }
                    Some(BidiStream::Subscribe) => {
                        let Ok(subscribe) = stream.message::<Subscribe>().await else { return };
                        let code = if subscribe.track == "raw" { 0x33 } else { StreamCode::NotFound.to_transport() };
                        let code = quinn::VarInt::from_u64(code).unwrap();
                        let _ = stream.send.reset(code);
                        let _ = stream.recv.stop(code);
                        // Held until the relay closes its half.
                        let _ = stream.send.stopped().await;
                    }
                    _ => {}
                }
            });
        }
    });
    (publisher, announce)
}

/// The code a subscriber's SUBSCRIBE to room/alice `track` is reset with (after a SUBSCRIBE_OK on
/// lite-03/04, which the relay sends before asking the publisher).
async fn refusal_seen(conn: &QuicConnection, version: Version, track: &str) -> StreamCode {
    let window = SubscribeWindow { priority: 1, max_age: 1000, ..Default::default() };
    let subscribe = Subscribe { id: 0, broadcast: path("room/alice"), track: track.into(), window };
    let mut stream = open(conn, version, BidiStream::Subscribe, &subscribe).await;
    loop {
        match stream.message::<moqt::wire::SubscribeResponse>().await {
            Err(code) => return code,
            Ok(response) => tracing::debug!(%version, ?response, "before the refusal"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_with_a_raw_stream_code_is_forwarded_as_internal_error_as_moq_relay_does() {
    init_logs();
    let Some(binary) =
        require_relay("a_refusal_with_a_raw_stream_code_is_forwarded_as_internal_error_as_moq_relay_does")
    else {
        return;
    };
    for version in Version::ALL {
        let reference = Relay::start(&binary, Some(version));
        let (moqt_addr, moqt_fingerprint) = start_moqt_relay(version);
        for (relay, addr, fingerprint) in
            [("moq-relay", reference.addr, reference.fingerprint), ("moqt", moqt_addr, moqt_fingerprint)]
        {
            let (_publisher, _announce) = refusing_publisher(addr, fingerprint, version).await;
            let subscriber = raw(addr, fingerprint, version).await;
            setup(&subscriber, version, 4096).await;
            let _announced = wait_announced(&subscriber, version, "room/alice").await;
            // The raw number is not guessed at: it arrives as INTERNAL_ERROR (spec 11.8) ...
            let raw_code = refusal_seen(&subscriber, version, "raw").await;
            assert_eq!(raw_code, StreamCode::InternalError, "{version}, {relay}: a raw 0x33");
            // ... while the mapped form passes through unchanged.
            let mapped = refusal_seen(&subscriber, version, "mapped").await;
            assert_eq!(mapped, StreamCode::NotFound, "{version}, {relay}: a mapped NOT_FOUND");
            assert!(subscriber.quinn().close_reason().is_none(), "{version}, {relay}: the session stays up");
        }
    }
}

/// What a raw subscriber to room/alice "video" (no floor, `max_age` ms) saw once the publisher wrote
/// its first group, numbered `first`, after the subscription was in place: the first message on the
/// Subscribe stream and the sequence of the first Group stream.
async fn first_answer_to_a_subscription_before_any_group(
    addr: SocketAddr,
    fingerprint: [u8; 32],
    version: Version,
    max_age: u64,
    first: u64,
) -> (moqt::wire::SubscribeResponse, u64) {
    let mut published = publish("room/alice");
    let trust = ClientTrust::Fingerprint(vec![fingerprint]);
    let client = moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(version)).unwrap();
    let origins = moqt::session::Origins { publish: Some(published.origin.consume()), ..Default::default() };
    let _publisher = timeout(WAIT, client.connect(addr, "localhost", None, origins)).await.unwrap().unwrap();

    let subscriber = raw(addr, fingerprint, version).await;
    setup(&subscriber, version, 4096).await;
    let _announced = wait_announced(&subscriber, version, "room/alice").await;
    let window = SubscribeWindow { priority: 1, max_age, ..Default::default() };
    let subscribe = Subscribe { id: 0, broadcast: path("room/alice"), track: "video".into(), window };
    let mut stream = open(&subscriber, version, BidiStream::Subscribe, &subscribe).await;
    // The relay asked the publisher: the subscription is in place, and no group exists yet.
    timeout(WAIT, published.track.used()).await.expect("the relay subscribes upstream");
    assert_eq!(published.track.latest_sequence(), None);
    let mut group = published.track.create_group(first).unwrap();
    group.write(1000, payload(first, 0)).unwrap();
    group.finish().unwrap();

    let response = stream.message::<moqt::wire::SubscribeResponse>().await.expect("SUBSCRIBE_OK");
    let (mut recv, mut reader) = next_group_stream(&subscriber, version).await;
    let header = loop {
        if let Some(header) = reader.decode::<moqt::wire::GroupHeader>().unwrap() {
            break header;
        }
        let chunk = timeout(WAIT, recv.read(4096)).await.expect("bytes in time").unwrap().expect("a GROUP header");
        reader.push(&chunk).unwrap();
    };
    (response, header.sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_ok_waits_for_the_first_group_and_names_it_as_moq_relay_does() {
    init_logs();
    let Some(binary) = require_relay("subscribe_ok_waits_for_the_first_group_and_names_it_as_moq_relay_does") else {
        return;
    };
    use moqt::wire::SubscribeResponse::Ok as SubscribeOk;
    // lite-05/06 only: on lite-03/04 the relay answers SUBSCRIBE_OK at once (spec 11.7). The first
    // group is numbered 5, written once the relay has subscribed upstream: a SUBSCRIBE_OK naming
    // it was sent after it existed (one sent before could not have known the number).
    let cases = [
        // lite-05, the latest group.
        (Version::Lite05, 1000, SubscribeOk { group: 5 }),
        // lite-06, the live edge (no floor, Max Age 0).
        (Version::Lite06, 0, SubscribeOk { group: 5 }),
        // lite-06, no floor with a Max Age: moq-relay names the floor, 0, though group 5 is the
        // first it delivers (what was below counts as dropped). moqt answers the same.
        (Version::Lite06, 1000, SubscribeOk { group: 0 }),
    ];
    for (version, max_age, expected) in cases {
        let reference = Relay::start(&binary, Some(version));
        let (moqt_addr, moqt_fingerprint) = start_moqt_relay(version);
        for (relay, addr, fingerprint) in
            [("moq-relay", reference.addr, reference.fingerprint), ("moqt", moqt_addr, moqt_fingerprint)]
        {
            let (response, sequence) =
                first_answer_to_a_subscription_before_any_group(addr, fingerprint, version, max_age, 5).await;
            tracing::info!(%version, max_age, relay, ?response, sequence, "first answer");
            assert_eq!(response, expected, "{version}, max age {max_age}, {relay}: SUBSCRIBE_OK");
            assert_eq!(sequence, 5, "{version}, max age {max_age}, {relay}: the first group stream");
        }
    }
}
