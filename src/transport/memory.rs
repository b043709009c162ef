//! An in-process connection pair for tests: both ends of a [`Connection`] built from shared buffers
//! and tokio `Notify`s, no sockets. It keeps the QUIC behaviours sessions depend on — stream
//! credit, per-stream flow control, FIN, RESET_STREAM and STOP_SENDING codes, lossy bounded
//! datagrams, close codes — so session tests exercise them deterministically.
//!
//! Differences from QUIC, on purpose: a stream appears at the peer's accept as soon as it is opened
//! (not on its first byte); priorities are recorded but never reorder anything; stream codes pass
//! through unmapped; `stopped()` reports `Ok(None)` once the peer has *read* everything after the
//! FIN (QUIC: once everything was acknowledged).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Connection, RecvStream, SendStream, StreamError, TransportError, TransportStats};
use crate::coding::StreamCode;

/// Knobs of a [`pair`]; small values let tests hit the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySettings {
    /// Bytes a stream buffers before its writer waits for the reader (flow control); at least 1
    /// is used. Default 64 KiB.
    pub stream_buffer: usize,
    /// Bidirectional streams each side may have open at once (stream credit); opening more waits
    /// until one fully closes. Default 100.
    pub max_bi_streams: usize,
    /// Unidirectional streams each side may have open at once. Default 100.
    pub max_uni_streams: usize,
    /// Datagrams queued at a receiver; further ones are dropped silently. Default 64.
    pub datagram_queue: usize,
    /// The largest datagram accepted, or `None` to disable datagrams. Default `Some(1200)`.
    pub max_datagram_size: Option<usize>,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            stream_buffer: 64 * 1024,
            max_bi_streams: 100,
            max_uni_streams: 100,
            datagram_queue: 64,
            max_datagram_size: Some(1200),
        }
    }
}

/// Creates two connected ends.
pub fn pair(settings: MemorySettings) -> (MemoryConnection, MemoryConnection) {
    let shared = Arc::new(Shared {
        settings,
        close: OnceLock::new(),
        sides: Mutex::new([SideState::default(), SideState::default()]),
        events: [Notify::new(), Notify::new()],
        closed: Notify::new(),
        bytes_sent: [AtomicU64::new(0), AtomicU64::new(0)],
        bytes_received: [AtomicU64::new(0), AtomicU64::new(0)],
    });
    let end = |side| MemoryConnection { side: Arc::new(Side { shared: shared.clone(), side }) };
    (end(0), end(1))
}

/// A poisoned lock only means a test panicked elsewhere; the state itself stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `check` until it yields, re-running it whenever `a` or `b` is notified. Both are armed
/// before each check, so a notification between the check and the wait is not lost.
async fn wait_for<T>(a: &Notify, b: &Notify, mut check: impl FnMut() -> Option<T>) -> T {
    loop {
        let mut na = pin!(a.notified());
        let mut nb = pin!(b.notified());
        na.as_mut().enable();
        nb.as_mut().enable();
        if let Some(out) = check() {
            return out;
        }
        poll_fn(|cx| {
            if na.as_mut().poll(cx).is_ready() || nb.as_mut().poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

#[derive(Debug)]
struct Close {
    by: usize,
    code: u64,
    reason: String,
}

/// What one side has waiting for it, and the credit it has used.
#[derive(Debug, Default)]
struct SideState {
    /// Peer-opened bidi streams: (the pipe we read, the pipe we write).
    incoming_bi: VecDeque<(Arc<Pipe>, Arc<Pipe>)>,
    incoming_uni: VecDeque<Arc<Pipe>>,
    datagrams: VecDeque<Bytes>,
    /// Streams this side opened that have not fully closed yet.
    open_bi: usize,
    open_uni: usize,
}

#[derive(Debug)]
struct Shared {
    settings: MemorySettings,
    /// Set once, by the first close; lock-free so stream operations can check it cheaply.
    close: OnceLock<Close>,
    sides: Mutex<[SideState; 2]>,
    /// Per side: wakes its accept, open and datagram waiters.
    events: [Notify; 2],
    /// Wakes every waiter, streams included, when the connection closes.
    closed: Notify,
    bytes_sent: [AtomicU64; 2],
    bytes_received: [AtomicU64; 2],
}

impl Shared {
    fn error_for(&self, side: usize) -> Option<TransportError> {
        self.close.get().map(|close| {
            if close.by == side {
                TransportError::ClosedLocally { code: close.code }
            } else {
                TransportError::ClosedByPeer { code: close.code, reason: close.reason.clone() }
            }
        })
    }

    fn close(&self, by: usize, code: u64, reason: &str) {
        if self.close.set(Close { by, code, reason: reason.to_owned() }).is_err() {
            return;
        }
        // Unaccepted streams and queued datagrams die with the connection; dropped after unlocking.
        let abandoned = std::mem::take(&mut *lock(&self.sides));
        drop(abandoned);
        self.closed.notify_waiters();
        for events in &self.events {
            events.notify_waiters();
        }
    }

    fn count(&self, from: usize, bytes: usize) {
        let bytes = bytes as u64;
        self.bytes_sent[from].fetch_add(bytes, Ordering::Relaxed);
        self.bytes_received[1 - from].fetch_add(bytes, Ordering::Relaxed);
    }
}

/// One end's identity; the end closes with code 0 when its last handle (connection clone or
/// stream, as in quinn) is dropped.
#[derive(Debug)]
struct Side {
    shared: Arc<Shared>,
    side: usize,
}

impl Side {
    fn error(&self) -> Option<TransportError> {
        self.shared.error_for(self.side)
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.shared.close(self.side, 0, "");
    }
}

/// A stream's share of its opener's stream credit: returned when all its pipes are done.
#[derive(Debug)]
struct Credit {
    conn: Weak<Shared>,
    opener: usize,
    bi: bool,
    pipes_left: AtomicUsize,
}

impl Credit {
    fn release(&self) {
        if self.pipes_left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(conn) = self.conn.upgrade() else { return };
        {
            let mut sides = lock(&conn.sides);
            let side = &mut sides[self.opener];
            let open = if self.bi { &mut side.open_bi } else { &mut side.open_uni };
            *open = open.saturating_sub(1);
        }
        conn.events[self.opener].notify_waiters();
    }
}

/// One direction of a stream: the buffer between a writer and a reader.
#[derive(Debug)]
struct Pipe {
    state: Mutex<PipeState>,
    /// Wakes the writer and reader on any change.
    notify: Notify,
    credit: Arc<Credit>,
}

#[derive(Debug, Default)]
struct PipeState {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// The writer sent FIN.
    finished: bool,
    /// The writer reset the stream.
    reset: Option<StreamCode>,
    /// The reader sent STOP_SENDING.
    stopped: Option<StreamCode>,
    /// The reader consumed the FIN.
    read_end: bool,
    /// The reader was told about the reset.
    reset_seen: bool,
    reader_gone: bool,
    /// The credit for this pipe was returned.
    released: bool,
}

impl PipeState {
    /// Done as QUIC stream credit counts it: the receiver has reached a final state and the
    /// sender will send nothing more.
    fn done(&self) -> bool {
        let reader_done = self.read_end || self.reset_seen || self.stopped.is_some() || self.reader_gone;
        let writer_done = self.finished || self.reset.is_some() || self.stopped.is_some();
        reader_done && writer_done
    }

    fn discard(&mut self) {
        self.chunks.clear();
        self.buffered = 0;
    }
}

impl Pipe {
    fn new(credit: Arc<Credit>) -> Arc<Pipe> {
        Arc::new(Pipe { state: Mutex::new(PipeState::default()), notify: Notify::new(), credit })
    }

    /// Runs `f` under the lock; `f` sets the flag when it changed something, which wakes the other
    /// end (waking on every check would make two waiters wake each other forever).
    fn update<R>(&self, f: impl FnOnce(&mut PipeState, &mut bool) -> R) -> R {
        let mut changed = false;
        let (out, release) = {
            let mut state = lock(&self.state);
            let out = f(&mut state, &mut changed);
            let release = !state.released && state.done();
            state.released |= release;
            (out, release)
        };
        if changed {
            self.notify.notify_waiters();
        }
        if release {
            self.credit.release();
        }
        out
    }
}

/// One end of an in-memory connection.
#[derive(Debug, Clone)]
pub struct MemoryConnection {
    side: Arc<Side>,
}

impl MemoryConnection {
    fn shared(&self) -> &Arc<Shared> {
        &self.side.shared
    }

    /// Takes a stream credit (waiting for one), registers the pipes at the peer, returns them.
    async fn open(&self, bi: bool) -> Result<(Arc<Pipe>, Option<Arc<Pipe>>), TransportError> {
        let shared = self.shared();
        let (me, peer) = (self.side.side, 1 - self.side.side);
        let limit = if bi { shared.settings.max_bi_streams } else { shared.settings.max_uni_streams };
        let opened = wait_for(&shared.events[me], &shared.closed, || {
            let mut sides = lock(&shared.sides);
            // Checked under the lock so a racing close cannot miss the stream we queue.
            if let Some(err) = shared.error_for(me) {
                return Some(Err(err));
            }
            let open = if bi { &mut sides[me].open_bi } else { &mut sides[me].open_uni };
            if *open >= limit {
                return None;
            }
            *open += 1;
            let credit = Arc::new(Credit {
                conn: Arc::downgrade(shared),
                opener: me,
                bi,
                pipes_left: AtomicUsize::new(1 + usize::from(bi)),
            });
            let out = Pipe::new(credit.clone());
            if bi {
                let back = Pipe::new(credit);
                sides[peer].incoming_bi.push_back((out.clone(), back.clone()));
                Some(Ok((out, Some(back))))
            } else {
                sides[peer].incoming_uni.push_back(out.clone());
                Some(Ok((out, None)))
            }
        })
        .await;
        shared.events[peer].notify_waiters();
        opened
    }

    fn send(&self, pipe: Arc<Pipe>) -> MemorySend {
        MemorySend { pipe, conn: self.side.clone(), priority: 0 }
    }

    fn recv(&self, pipe: Arc<Pipe>) -> MemoryRecv {
        MemoryRecv { pipe, conn: self.side.clone() }
    }
}

impl Connection for MemoryConnection {
    type Send = MemorySend;
    type Recv = MemoryRecv;

    async fn open_bi(&self) -> Result<(MemorySend, MemoryRecv), TransportError> {
        match self.open(true).await? {
            (out, Some(back)) => Ok((self.send(out), self.recv(back))),
            (_, None) => Err(TransportError::Other("bidirectional stream without a return pipe".to_owned())),
        }
    }

    async fn open_uni(&self) -> Result<MemorySend, TransportError> {
        let (out, _) = self.open(false).await?;
        Ok(self.send(out))
    }

    async fn accept_bi(&self) -> Result<(MemorySend, MemoryRecv), TransportError> {
        let (shared, me) = (self.shared(), self.side.side);
        let (inbound, outbound) = wait_for(&shared.events[me], &shared.closed, || {
            if let Some(err) = shared.error_for(me) {
                return Some(Err(err));
            }
            lock(&shared.sides)[me].incoming_bi.pop_front().map(Ok)
        })
        .await?;
        Ok((self.send(outbound), self.recv(inbound)))
    }

    async fn accept_uni(&self) -> Result<MemoryRecv, TransportError> {
        let (shared, me) = (self.shared(), self.side.side);
        let inbound = wait_for(&shared.events[me], &shared.closed, || {
            if let Some(err) = shared.error_for(me) {
                return Some(Err(err));
            }
            lock(&shared.sides)[me].incoming_uni.pop_front().map(Ok)
        })
        .await?;
        Ok(self.recv(inbound))
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), TransportError> {
        let shared = self.shared();
        let (me, peer) = (self.side.side, 1 - self.side.side);
        if let Some(err) = shared.error_for(me) {
            return Err(err);
        }
        let Some(max) = shared.settings.max_datagram_size else {
            return Err(TransportError::Other("datagrams are disabled".to_owned()));
        };
        if payload.len() > max {
            return Err(TransportError::Other(format!("datagram of {} bytes exceeds {max}", payload.len())));
        }
        let len = payload.len();
        let queued = {
            let mut sides = lock(&shared.sides);
            let queue = &mut sides[peer].datagrams;
            let room = queue.len() < shared.settings.datagram_queue;
            if room {
                queue.push_back(payload);
            }
            room
        };
        if queued {
            shared.count(me, len);
            shared.events[peer].notify_waiters();
        } else {
            shared.bytes_sent[me].fetch_add(len as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn recv_datagram(&self) -> Result<Bytes, TransportError> {
        let (shared, me) = (self.shared(), self.side.side);
        wait_for(&shared.events[me], &shared.closed, || {
            if let Some(err) = shared.error_for(me) {
                return Some(Err(err));
            }
            lock(&shared.sides)[me].datagrams.pop_front().map(Ok)
        })
        .await
    }

    fn max_datagram_size(&self) -> Option<usize> {
        self.shared().settings.max_datagram_size
    }

    fn close(&self, code: u64, reason: &str) {
        self.shared().close(self.side.side, code, reason);
    }

    async fn closed(&self) -> TransportError {
        let shared = self.shared();
        wait_for(&shared.closed, &shared.closed, || shared.error_for(self.side.side)).await
    }

    fn stats(&self) -> TransportStats {
        let shared = self.shared();
        let side = self.side.side;
        TransportStats {
            rtt: Duration::ZERO,
            send_bitrate: 0,
            bytes_sent: shared.bytes_sent[side].load(Ordering::Relaxed),
            bytes_received: shared.bytes_received[side].load(Ordering::Relaxed),
            ..Default::default()
        }
    }
}

/// The sending half of an in-memory stream. Dropping it without `finish` or `reset` finishes
/// it, as quinn 0.11 does.
#[derive(Debug)]
pub struct MemorySend {
    pipe: Arc<Pipe>,
    conn: Arc<Side>,
    priority: i32,
}

impl MemorySend {
    /// The last priority set; recorded for tests, never used to reorder.
    pub fn priority(&self) -> i32 {
        self.priority
    }
}

impl SendStream for MemorySend {
    /// Writes in pieces as buffer room frees up. Dropping the future midway may leave a prefix of
    /// `data` written.
    async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        let (pipe, conn) = (&self.pipe, &self.conn);
        let capacity = conn.shared.settings.stream_buffer.max(1);
        let mut rest = data;
        wait_for(&pipe.notify, &conn.shared.closed, || {
            if let Some(err) = conn.error() {
                return Some(Err(StreamError::Connection(err)));
            }
            pipe.update(|state, changed| {
                if let Some(code) = state.stopped {
                    return Some(Err(StreamError::Stopped(code)));
                }
                if state.finished || state.reset.is_some() {
                    return Some(Err(StreamError::ClosedStream));
                }
                let room = capacity.saturating_sub(state.buffered).min(rest.len());
                if room > 0 {
                    let chunk = rest.split_to(room);
                    state.buffered += room;
                    state.chunks.push_back(chunk);
                    conn.shared.count(conn.side, room);
                    *changed = true;
                }
                rest.is_empty().then_some(Ok(()))
            })
        })
        .await
    }

    fn set_priority(&mut self, priority: i32) {
        self.priority = priority;
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        if let Some(err) = self.conn.error() {
            return Err(StreamError::Connection(err));
        }
        self.pipe.update(|state, changed| {
            if state.finished || state.reset.is_some() {
                return Err(StreamError::ClosedStream);
            }
            if let Some(code) = state.stopped {
                return Err(StreamError::Stopped(code));
            }
            state.finished = true;
            *changed = true;
            Ok(())
        })
    }

    fn reset(&mut self, code: StreamCode) {
        self.pipe.update(|state, changed| {
            // Nothing left to abort once the reader has everything or asked us to stop.
            if state.reset.is_none() && !state.read_end && state.stopped.is_none() {
                state.reset = Some(code);
                state.discard();
                *changed = true;
            }
        });
    }

    /// After a local `reset` this fails with `ClosedStream` (no stop or full read can follow).
    async fn stopped(&mut self) -> Result<Option<StreamCode>, StreamError> {
        let (pipe, conn) = (&self.pipe, &self.conn);
        wait_for(&pipe.notify, &conn.shared.closed, || {
            if let Some(err) = conn.error() {
                return Some(Err(StreamError::Connection(err)));
            }
            pipe.update(|state, _| {
                if let Some(code) = state.stopped {
                    Some(Ok(Some(code)))
                } else if state.reset.is_some() {
                    Some(Err(StreamError::ClosedStream))
                } else if state.finished && (state.read_end || state.reader_gone) {
                    Some(Ok(None))
                } else {
                    None
                }
            })
        })
        .await
    }
}

impl Drop for MemorySend {
    fn drop(&mut self) {
        self.pipe.update(|state, changed| {
            if !state.finished && state.reset.is_none() {
                state.finished = true;
                *changed = true;
            }
        });
    }
}

/// The receiving half of an in-memory stream. Dropping it before the end stops the stream with
/// the code a quinn peer sees in that case (raw 0, i.e. `StreamCode::from_transport(0)`).
#[derive(Debug)]
pub struct MemoryRecv {
    pipe: Arc<Pipe>,
    conn: Arc<Side>,
}

impl RecvStream for MemoryRecv {
    /// A reset is reported as soon as it arrives, discarding unread data, as in QUIC.
    async fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        let (pipe, conn) = (&self.pipe, &self.conn);
        wait_for(&pipe.notify, &conn.shared.closed, || {
            if let Some(err) = conn.error() {
                return Some(Err(StreamError::Connection(err)));
            }
            pipe.update(|state, changed| {
                if let Some(code) = state.reset {
                    *changed |= !state.reset_seen;
                    state.reset_seen = true;
                    return Some(Err(StreamError::Reset(code)));
                }
                if state.stopped.is_some() {
                    return Some(Err(StreamError::ClosedStream));
                }
                if let Some(mut chunk) = state.chunks.pop_front() {
                    if chunk.len() > max {
                        let head = chunk.split_to(max);
                        state.chunks.push_front(chunk);
                        chunk = head;
                    }
                    state.buffered -= chunk.len();
                    *changed = true;
                    return Some(Ok(Some(chunk)));
                }
                if state.finished {
                    *changed |= !state.read_end;
                    state.read_end = true;
                    return Some(Ok(None));
                }
                None
            })
        })
        .await
    }

    fn stop(&mut self, code: StreamCode) {
        self.pipe.update(|state, changed| {
            if !state.read_end && state.reset.is_none() && state.stopped.is_none() {
                state.stopped = Some(code);
                state.discard();
                *changed = true;
            }
        });
    }
}

impl Drop for MemoryRecv {
    fn drop(&mut self) {
        self.pipe.update(|state, changed| {
            if !state.read_end && state.reset.is_none() && state.stopped.is_none() {
                state.stopped = Some(StreamCode::from_transport(0));
                state.discard();
            }
            state.reader_gone = true;
            *changed = true;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    const PENDING: Duration = Duration::from_millis(50);

    fn small() -> MemorySettings {
        MemorySettings {
            stream_buffer: 8,
            max_bi_streams: 2,
            max_uni_streams: 2,
            datagram_queue: 2,
            ..Default::default()
        }
    }

    async fn read_all(recv: &mut MemoryRecv) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        while let Some(chunk) = recv.read(usize::MAX).await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn bi_and_uni_streams_both_directions() {
        let (a, b) = pair(MemorySettings::default());
        for (x, y) in [(&a, &b), (&b, &a)] {
            let (mut send, mut recv) = x.open_bi().await.unwrap();
            send.write(Bytes::from_static(b"hello")).await.unwrap();
            send.finish().unwrap();
            assert!(matches!(send.finish(), Err(StreamError::ClosedStream)));
            let (mut back, mut incoming) = y.accept_bi().await.unwrap();
            assert_eq!(read_all(&mut incoming).await.unwrap(), b"hello");
            back.write(Bytes::from_static(b"world")).await.unwrap();
            back.finish().unwrap();
            assert_eq!(read_all(&mut recv).await.unwrap(), b"world");
            assert_eq!(send.stopped().await, Ok(None));
            assert_eq!(back.stopped().await, Ok(None));

            // Uni streams arrive in the order they were opened.
            let mut first = x.open_uni().await.unwrap();
            let mut second = x.open_uni().await.unwrap();
            second.write(Bytes::from_static(b"2")).await.unwrap();
            first.write(Bytes::from_static(b"1")).await.unwrap();
            drop(second); // finishes, as in quinn
            first.finish().unwrap();
            assert_eq!(read_all(&mut y.accept_uni().await.unwrap()).await.unwrap(), b"1");
            assert_eq!(read_all(&mut y.accept_uni().await.unwrap()).await.unwrap(), b"2");
        }
        assert_eq!(a.stats().bytes_sent, 12);
        assert_eq!(a.stats().bytes_received, 12);
        assert_eq!(b.stats(), a.stats());
        assert_eq!(a.max_datagram_size(), Some(1200));
    }

    #[tokio::test]
    async fn read_max_splits_chunks() {
        let (a, b) = pair(MemorySettings::default());
        let mut send = a.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"abcdef")).await.unwrap();
        send.finish().unwrap();
        let mut recv = b.accept_uni().await.unwrap();
        assert_eq!(recv.read(4).await.unwrap().as_deref(), Some(&b"abcd"[..]));
        assert_eq!(recv.read(4).await.unwrap().as_deref(), Some(&b"ef"[..]));
        assert_eq!(recv.read(4).await.unwrap(), None);
        assert_eq!(recv.read(4).await.unwrap(), None);
    }

    #[tokio::test]
    async fn reset_and_stop_codes_pass_through() {
        let (a, b) = pair(MemorySettings::default());
        let mut send = a.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"data")).await.unwrap();
        send.reset(StreamCode::Cancelled);
        let mut recv = b.accept_uni().await.unwrap();
        assert_eq!(recv.read(100).await, Err(StreamError::Reset(StreamCode::Cancelled)));
        assert_eq!(send.stopped().await, Err(StreamError::ClosedStream));

        let code = StreamCode::Application(7);
        let (mut send, _recv) = a.open_bi().await.unwrap();
        send.write(Bytes::from_static(b"data")).await.unwrap();
        let (_back, mut incoming) = b.accept_bi().await.unwrap();
        let waiter = tokio::spawn(async move {
            let stopped = send.stopped().await;
            (stopped, send.write(Bytes::from_static(b"more")).await, send.finish())
        });
        tokio::task::yield_now().await;
        incoming.stop(code);
        let (stopped, write, finish) = waiter.await.unwrap();
        assert_eq!(stopped, Ok(Some(code)));
        assert_eq!(write, Err(StreamError::Stopped(code)));
        assert_eq!(finish, Err(StreamError::Stopped(code)));

        // Dropping an unfinished reader stops the stream.
        let mut send = a.open_uni().await.unwrap();
        drop(b.accept_uni().await.unwrap());
        assert_eq!(send.stopped().await, Ok(Some(StreamCode::from_transport(0))));
    }

    #[tokio::test]
    async fn writer_waits_for_buffer_room() {
        let (a, b) = pair(small());
        let mut send = a.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"12345678")).await.unwrap();
        assert!(timeout(PENDING, send.write(Bytes::from_static(b"9"))).await.is_err(), "buffer full");
        let mut recv = b.accept_uni().await.unwrap();
        assert_eq!(recv.read(3).await.unwrap().as_deref(), Some(&b"123"[..]));
        timeout(PENDING, send.write(Bytes::from_static(b"9"))).await.expect("room freed").unwrap();

        // A write larger than the buffer goes through in pieces while the reader drains.
        let big: Vec<u8> = (0..100u8).collect();
        let writer = tokio::spawn({
            let big = Bytes::from(big.clone());
            async move {
                send.write(big).await?;
                send.finish()
            }
        });
        let got = timeout(Duration::from_secs(5), read_all(&mut recv)).await.unwrap().unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(&got[..6], b"456789");
        assert_eq!(&got[6..], &big[..]);
    }

    #[tokio::test]
    async fn close_is_seen_by_both_sides() {
        let (a, b) = pair(MemorySettings::default());
        let (mut send, mut recv) = a.open_bi().await.unwrap();
        let (_, mut incoming) = b.accept_bi().await.unwrap();
        let pending_accept = tokio::spawn({
            let b = b.clone();
            async move { b.accept_uni().await.map(|_| ()) }
        });
        let pending_read = tokio::spawn(async move { incoming.read(10).await });
        tokio::task::yield_now().await;

        a.close(42, "bye");
        let by_peer = TransportError::ClosedByPeer { code: 42, reason: "bye".to_owned() };
        let local = TransportError::ClosedLocally { code: 42 };
        assert_eq!(b.closed().await, by_peer);
        assert_eq!(a.closed().await, local);
        assert_eq!(pending_accept.await.unwrap(), Err(by_peer.clone()));
        assert_eq!(pending_read.await.unwrap(), Err(StreamError::Connection(by_peer.clone())));
        assert_eq!(b.open_uni().await.err(), Some(by_peer.clone()));
        assert_eq!(b.send_datagram(Bytes::new()), Err(by_peer));
        assert_eq!(send.write(Bytes::from_static(b"x")).await, Err(StreamError::Connection(local.clone())));
        assert_eq!(recv.read(1).await, Err(StreamError::Connection(local.clone())));
        assert_eq!(a.recv_datagram().await, Err(local));

        // Dropping every handle of one side closes it with code 0.
        let (a, b) = pair(MemorySettings::default());
        let a2 = a.clone();
        drop(a);
        assert!(timeout(PENDING, b.closed()).await.is_err(), "a clone is still alive");
        drop(a2);
        assert_eq!(b.closed().await, TransportError::ClosedByPeer { code: 0, reason: String::new() });
    }

    #[tokio::test]
    async fn datagrams_are_bounded_and_lossy() {
        let (a, b) = pair(small());
        for n in 0..3u8 {
            a.send_datagram(Bytes::from(vec![n])).unwrap();
        }
        assert_eq!(b.recv_datagram().await.unwrap(), Bytes::from_static(&[0]));
        assert_eq!(b.recv_datagram().await.unwrap(), Bytes::from_static(&[1]));
        assert!(timeout(PENDING, b.recv_datagram()).await.is_err(), "the third was dropped");
        assert!(a.send_datagram(Bytes::from(vec![0; 1201])).is_err());
        b.send_datagram(Bytes::from_static(b"back")).unwrap();
        assert_eq!(a.recv_datagram().await.unwrap(), Bytes::from_static(b"back"));

        let (a, _b) = pair(MemorySettings { max_datagram_size: None, ..Default::default() });
        assert_eq!(a.max_datagram_size(), None);
        assert!(a.send_datagram(Bytes::from_static(b"x")).is_err());
    }

    #[tokio::test]
    async fn stream_limit_waits_for_a_stream_to_close() {
        let (a, b) = pair(small());
        let mut first = a.open_uni().await.unwrap();
        let _second = a.open_uni().await.unwrap();
        assert!(timeout(PENDING, a.open_uni()).await.is_err(), "limit of 2 reached");
        first.write(Bytes::from_static(b"x")).await.unwrap();
        first.finish().unwrap();
        assert!(timeout(PENDING, a.open_uni()).await.is_err(), "not read to the end yet");
        let mut recv = b.accept_uni().await.unwrap();
        assert_eq!(read_all(&mut recv).await.unwrap(), b"x");
        timeout(PENDING, a.open_uni()).await.expect("credit returned").unwrap();

        // A bidi stream holds its credit until both directions are done.
        let (mut send, mut recv) = a.open_bi().await.unwrap();
        let _other = a.open_bi().await.unwrap();
        let (mut back, mut incoming) = b.accept_bi().await.unwrap();
        send.finish().unwrap();
        assert_eq!(read_all(&mut incoming).await.unwrap(), b"");
        assert!(timeout(PENDING, a.open_bi()).await.is_err(), "return direction still open");
        back.reset(StreamCode::Cancelled);
        assert_eq!(recv.read(1).await, Err(StreamError::Reset(StreamCode::Cancelled)));
        timeout(PENDING, a.open_bi()).await.expect("credit returned").unwrap();
        // The peer's own credit is separate.
        timeout(PENDING, b.open_bi()).await.expect("b has its own credit").unwrap();
    }

    #[tokio::test]
    async fn priority_is_recorded() {
        let (a, _b) = pair(MemorySettings::default());
        let mut send = a.open_uni().await.unwrap();
        assert_eq!(send.priority(), 0);
        send.set_priority(-3);
        assert_eq!(send.priority(), -3);
    }
}
