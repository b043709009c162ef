//! A relay fans a frame out to N subscribers without copying its payload per subscriber: every
//! chunk the relay hands to its subscribers' streams is recorded at the transport boundary, and a
//! payload above the coalescing threshold must reach all N streams as the very same buffer.

use crate::common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use moqt::model::{OriginProducer, TrackEvent};
use moqt::relay::{Relay, RelayConfig};
use moqt::session::{Origins, Session, SessionConfig, accept_setup};
use moqt::transport::memory::{MemoryConnection, MemoryRecv, MemorySend, MemorySettings, pair};
use moqt::transport::{Connection, SendStream, StreamError, TransportError, TransportStats};
use moqt::wire::Version;
use tokio::time::timeout;

/// The chunks one connection's writer handed to its streams, in order.
type Chunks = Arc<Mutex<Vec<Bytes>>>;

/// A memory connection that records every chunk written to its streams.
#[derive(Clone)]
struct Recording {
    inner: MemoryConnection,
    chunks: Chunks,
}

struct RecordingSend {
    inner: MemorySend,
    chunks: Chunks,
}

impl Recording {
    fn wrap(&self, inner: MemorySend) -> RecordingSend {
        RecordingSend { inner, chunks: self.chunks.clone() }
    }
}

impl Connection for Recording {
    type Send = RecordingSend;
    type Recv = MemoryRecv;

    async fn open_bi(&self) -> Result<(RecordingSend, MemoryRecv), TransportError> {
        let (send, recv) = self.inner.open_bi().await?;
        Ok((self.wrap(send), recv))
    }

    async fn open_uni(&self) -> Result<RecordingSend, TransportError> {
        Ok(self.wrap(self.inner.open_uni().await?))
    }

    async fn accept_bi(&self) -> Result<(RecordingSend, MemoryRecv), TransportError> {
        let (send, recv) = self.inner.accept_bi().await?;
        Ok((self.wrap(send), recv))
    }

    async fn accept_uni(&self) -> Result<MemoryRecv, TransportError> {
        self.inner.accept_uni().await
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), TransportError> {
        self.inner.send_datagram(payload)
    }

    async fn recv_datagram(&self) -> Result<Bytes, TransportError> {
        self.inner.recv_datagram().await
    }

    fn max_datagram_size(&self) -> Option<usize> {
        self.inner.max_datagram_size()
    }

    fn close(&self, code: u64, reason: &str) {
        self.inner.close(code, reason)
    }

    async fn closed(&self) -> TransportError {
        self.inner.closed().await
    }

    fn stats(&self) -> TransportStats {
        self.inner.stats()
    }
}

impl SendStream for RecordingSend {
    async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.chunks.lock().unwrap().push(data.clone());
        self.inner.write(data).await
    }

    fn set_priority(&mut self, priority: i32) {
        self.inner.set_priority(priority)
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        self.inner.finish()
    }

    fn reset(&mut self, code: moqt::coding::StreamCode) {
        self.inner.reset(code)
    }

    async fn stopped(&mut self) -> Result<Option<moqt::coding::StreamCode>, StreamError> {
        self.inner.stopped().await
    }
}

const SUBSCRIBERS: usize = 4;

/// Frame sizes around the threshold: audio-like, just past it, video-like, HD-like.
const SIZES: [usize; 5] = [160, 512, 513, 4096, 33_334];

fn frame(index: usize, size: usize) -> Bytes {
    (0..size).map(|i| (i * 7 + index * 13) as u8).collect::<Vec<u8>>().into()
}

/// Accepts `conn` on the relay (server side) in its own task.
fn serve_on(relay: &Relay, conn: impl Connection) {
    let relay = relay.clone();
    tokio::spawn(async move {
        let pending = accept_setup(conn, Version::Lite06, &SessionConfig::default()).await.expect("setup");
        let _ = relay.serve(pending).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_fan_out_hands_every_subscriber_the_same_payload_buffer() {
    init_logs();
    let version = Version::Lite06;
    let relay = Relay::new(RelayConfig::default());

    // The publisher.
    let (publisher_end, relay_end) = pair(MemorySettings::default());
    serve_on(&relay, relay_end);
    let published = publish("fanout");
    let origins = Origins { publish: Some(published.origin.consume()), ..Default::default() };
    let _publisher = Session::connect(publisher_end, version, None, origins, SessionConfig::default()).await.unwrap();

    // The subscribers, each behind a recording relay-side connection.
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (subscriber_end, relay_end) = pair(MemorySettings { stream_buffer: 1 << 20, ..Default::default() });
        let chunks = Chunks::default();
        serve_on(&relay, Recording { inner: relay_end, chunks: chunks.clone() });
        let remote = OriginProducer::default();
        let origins = Origins { subscribe: Some(remote.clone().into()), ..Default::default() };
        let session = Session::connect(subscriber_end, version, None, origins, SessionConfig::default()).await.unwrap();
        let broadcast = announced(&remote, &path("fanout")).await;
        let track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        subscribers.push((session, track, chunks));
    }

    // One group of frames of every size, then every subscriber reads them all.
    let sent: Vec<Bytes> = SIZES.iter().enumerate().map(|(i, size)| frame(i, *size)).collect();
    let mut track = published.track;
    let mut group = track.append_group().unwrap();
    for (i, payload) in sent.iter().enumerate() {
        group.write(1000 + i as u64, payload.clone()).unwrap();
    }
    group.finish().unwrap();
    for (_, track, _) in &mut subscribers {
        let TrackEvent::Group(mut group) = next_event(track).await else { panic!("a gap instead of the group") };
        let received: Vec<Bytes> = read_group(&mut group).await.into_iter().map(|f| f.payload).collect();
        assert_eq!(received, sent, "every frame whole and in order");
    }

    // Per frame: the payload bytes each subscriber's stream got in a buffer of its own (a copy),
    // and the distinct buffers the payload was handed over in across the subscribers.
    let threshold = moqt::session::COALESCE_MAX_PAYLOAD;
    let mut report = Vec::new();
    for payload in &sent {
        let mut buffers = Vec::new();
        let mut copied_per_subscriber = 0usize;
        for (_, _, chunks) in &subscribers {
            let chunks = chunks.lock().unwrap();
            match chunks.iter().find(|chunk| chunk.len() == payload.len() && *chunk == payload) {
                Some(chunk) => buffers.push(chunk.as_ptr()),
                // Coalesced with its header into a chunk of its own: a copy for this subscriber.
                None => copied_per_subscriber += payload.len(),
            }
        }
        buffers.sort();
        buffers.dedup();
        report.push((payload.len(), copied_per_subscriber / SUBSCRIBERS, buffers.len()));
    }
    for &(size, copied, buffers) in &report {
        if size > threshold {
            assert_eq!(copied, 0, "a {size}-byte frame was copied per subscriber: {report:?}");
            assert_eq!(buffers, 1, "a {size}-byte frame reached {SUBSCRIBERS} subscribers in {buffers} buffers");
        } else {
            // Small frames are coalesced by design: one copy of the payload per subscriber.
            assert_eq!(copied, size, "a {size}-byte frame should be coalesced with its header: {report:?}");
        }
    }
}
