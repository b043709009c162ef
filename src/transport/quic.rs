//! Raw QUIC through quinn: the moq-lite version is the negotiated ALPN. Stream codes are mapped into
//! the HTTP/3 space in both directions, as the reference does on raw QUIC too (spec 11.1); session
//! close codes stay raw.

use std::sync::Arc;

use bytes::Bytes;
use quinn::VarInt;

use super::credit::{Dir, StreamCredit};
use super::{Connection, RecvStream, SendStream, StreamError, TransportError, TransportStats};
use crate::coding::StreamCode;

/// A quinn connection as a moq-lite transport.
#[derive(Debug, Clone)]
pub struct QuicConnection {
    inner: quinn::Connection,
    /// Raises the peer's stream allowance as it uses it (none: the allowance stays as set up).
    credit: Option<Arc<StreamCredit>>,
}

impl QuicConnection {
    /// Wraps an established quinn connection.
    pub fn new(inner: quinn::Connection) -> Self {
        Self { inner, credit: None }
    }

    /// Grows the peer's allowance of concurrent streams, set up at `initial` of each kind, up to
    /// `max_bi` and `max_uni` as the peer opens streams (see `transport::credit`).
    pub(crate) fn with_stream_credit(mut self, initial: u32, max_bi: u32, max_uni: u32) -> Self {
        self.credit = Some(Arc::new(StreamCredit::new(initial, max_bi, max_uni)));
        self
    }

    fn opened(&self, dir: Dir) {
        if let Some(credit) = &self.credit {
            credit.opened(&self.inner, dir);
        }
    }

    /// The underlying quinn connection.
    pub fn quinn(&self) -> &quinn::Connection {
        &self.inner
    }

    /// The ALPN the handshake agreed on, if any.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.inner
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.protocol)
    }
}

fn connection_error(err: quinn::ConnectionError) -> TransportError {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => TransportError::ClosedByPeer {
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        quinn::ConnectionError::LocallyClosed => TransportError::ClosedLocally { code: 0 },
        quinn::ConnectionError::TimedOut => TransportError::TimedOut,
        other => TransportError::Other(other.to_string()),
    }
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

impl Connection for QuicConnection {
    type Send = QuicSend;
    type Recv = QuicRecv;

    async fn open_bi(&self) -> Result<(QuicSend, QuicRecv), TransportError> {
        let (send, recv) = self.inner.open_bi().await.map_err(connection_error)?;
        Ok((QuicSend(send), QuicRecv(recv)))
    }

    async fn open_uni(&self) -> Result<QuicSend, TransportError> {
        Ok(QuicSend(self.inner.open_uni().await.map_err(connection_error)?))
    }

    async fn accept_bi(&self) -> Result<(QuicSend, QuicRecv), TransportError> {
        let (send, recv) = self.inner.accept_bi().await.map_err(connection_error)?;
        self.opened(Dir::Bi);
        Ok((QuicSend(send), QuicRecv(recv)))
    }

    async fn accept_uni(&self) -> Result<QuicRecv, TransportError> {
        let recv = self.inner.accept_uni().await.map_err(connection_error)?;
        self.opened(Dir::Uni);
        Ok(QuicRecv(recv))
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), TransportError> {
        self.inner.send_datagram(payload).map_err(|err| match err {
            quinn::SendDatagramError::ConnectionLost(err) => connection_error(err),
            other => TransportError::Other(other.to_string()),
        })
    }

    async fn recv_datagram(&self) -> Result<Bytes, TransportError> {
        self.inner.read_datagram().await.map_err(connection_error)
    }

    fn max_datagram_size(&self) -> Option<usize> {
        self.inner.max_datagram_size()
    }

    fn close(&self, code: u64, reason: &str) {
        self.inner.close(varint(code), reason.as_bytes());
    }

    async fn closed(&self) -> TransportError {
        connection_error(self.inner.closed().await)
    }

    fn stats(&self) -> TransportStats {
        TransportStats::from_quinn(&self.inner)
    }
}

/// The sending half of a quinn stream.
#[derive(Debug)]
pub struct QuicSend(quinn::SendStream);

/// The receiving half of a quinn stream.
#[derive(Debug)]
pub struct QuicRecv(quinn::RecvStream);

fn write_error(err: quinn::WriteError) -> StreamError {
    match err {
        quinn::WriteError::Stopped(code) => StreamError::Stopped(StreamCode::from_transport(code.into_inner())),
        quinn::WriteError::ConnectionLost(err) => StreamError::Connection(connection_error(err)),
        quinn::WriteError::ClosedStream => StreamError::ClosedStream,
        other => StreamError::Connection(TransportError::Other(other.to_string())),
    }
}

impl SendStream for QuicSend {
    async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.0.write_chunk(data).await.map_err(write_error)
    }

    fn set_priority(&mut self, priority: i32) {
        // Fails only on a stream that is already closed, where priority no longer matters.
        let _ = self.0.set_priority(priority);
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        self.0.finish().map_err(|_| StreamError::ClosedStream)
    }

    fn reset(&mut self, code: StreamCode) {
        let _ = self.0.reset(varint(code.to_transport()));
    }

    async fn stopped(&mut self) -> Result<Option<StreamCode>, StreamError> {
        match self.0.stopped().await {
            Ok(code) => Ok(code.map(|c| StreamCode::from_transport(c.into_inner()))),
            Err(quinn::StoppedError::ConnectionLost(err)) => Err(StreamError::Connection(connection_error(err))),
            Err(other) => Err(StreamError::Connection(TransportError::Other(other.to_string()))),
        }
    }
}

impl RecvStream for QuicRecv {
    async fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        match self.0.read_chunk(max, true).await {
            Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
            Err(quinn::ReadError::Reset(code)) => {
                Err(StreamError::Reset(StreamCode::from_transport(code.into_inner())))
            }
            Err(quinn::ReadError::ConnectionLost(err)) => Err(StreamError::Connection(connection_error(err))),
            Err(quinn::ReadError::ClosedStream) => Err(StreamError::ClosedStream),
            Err(other) => Err(StreamError::Connection(TransportError::Other(other.to_string()))),
        }
    }

    fn stop(&mut self, code: StreamCode) {
        let _ = self.0.stop(varint(code.to_transport()));
    }
}
