//! The small transport trait the session is written against, once: open and accept bidi and uni
//! streams, stream priorities, datagrams, close with a code, stats. Implemented for raw QUIC
//! ([`quic`]), for WebTransport over HTTP/3 ([`webtransport`]), for either behind one type
//! ([`any`]), and for an in-memory pair used by tests (`memory`, feature `testing`). [`tls`] holds the
//! certificates and trust settings both network transports use.
//!
//! Stream codes cross this boundary as moq-lite [`StreamCode`]s: each implementation maps them onto
//! its wire (raw QUIC maps them into the HTTP/3 space exactly as WebTransport does, spec 11.1).
//! Session close codes are raw on every transport.

pub mod any;
pub(crate) mod credit;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod quic;
pub mod tls;
pub mod webtransport;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::coding::StreamCode;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer closed the session with a code.
    #[error("closed by peer with code {code:#x}: {reason}")]
    ClosedByPeer {
        /// The raw session close code.
        code: u64,
        /// The peer's reason text.
        reason: String,
    },
    /// We closed the session.
    #[error("closed locally with code {code:#x}")]
    ClosedLocally {
        /// The code we sent.
        code: u64,
    },
    /// No packets for the idle timeout.
    #[error("connection timed out")]
    TimedOut,
    /// Anything else the transport reports (TLS failure, version mismatch, reset).
    #[error("transport error: {0}")]
    Other(String),
}

/// Why a stream ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The peer reset the stream we read.
    #[error("stream reset by peer: {0:?}")]
    Reset(StreamCode),
    /// The peer asked us to stop sending.
    #[error("peer stopped the stream: {0:?}")]
    Stopped(StreamCode),
    /// We already finished or reset this stream.
    #[error("stream already closed")]
    ClosedStream,
    /// The whole connection ended.
    #[error(transparent)]
    Connection(#[from] TransportError),
}

/// What the transport knows about the path, for PROBE and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TransportStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Estimated send rate in bits per second (congestion window over RTT); 0 = unknown.
    pub send_bitrate: u64,
    /// Bytes sent on the connection so far.
    pub bytes_sent: u64,
    /// Bytes received on the connection so far.
    pub bytes_received: u64,
    /// DATAGRAM frames sent on the connection so far (QUIC only; 0 in memory).
    pub datagrams_sent: u64,
    /// DATAGRAM frames received on the connection so far (QUIC only; 0 in memory).
    pub datagrams_received: u64,
}

impl TransportStats {
    /// The path statistics of a quinn connection (raw QUIC, or the one under WebTransport): the
    /// send rate estimate is the congestion window over the smoothed RTT.
    pub fn from_quinn(connection: &quinn::Connection) -> Self {
        let stats = connection.stats();
        let rtt = stats.path.rtt;
        let send_bitrate = match rtt.as_micros() {
            0 => 0,
            micros => (u128::from(stats.path.cwnd) * 8 * 1_000_000 / micros).min(u128::from(u64::MAX)) as u64,
        };
        TransportStats {
            rtt,
            send_bitrate,
            bytes_sent: stats.udp_tx.bytes,
            bytes_received: stats.udp_rx.bytes,
            datagrams_sent: stats.frame_tx.datagram,
            datagrams_received: stats.frame_rx.datagram,
        }
    }
}

/// One established session's connection.
pub trait Connection: Clone + Send + Sync + 'static {
    /// The sending half of a stream.
    type Send: SendStream;
    /// The receiving half of a stream.
    type Recv: RecvStream;

    /// Opens a bidirectional stream.
    fn open_bi(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), TransportError>> + Send;
    /// Opens a unidirectional stream.
    fn open_uni(&self) -> impl Future<Output = Result<Self::Send, TransportError>> + Send;
    /// Waits for the peer's next bidirectional stream.
    fn accept_bi(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), TransportError>> + Send;
    /// Waits for the peer's next unidirectional stream.
    fn accept_uni(&self) -> impl Future<Output = Result<Self::Recv, TransportError>> + Send;
    /// Sends one datagram; unreliable, may be dropped.
    fn send_datagram(&self, payload: Bytes) -> Result<(), TransportError>;
    /// Waits for the next datagram.
    fn recv_datagram(&self) -> impl Future<Output = Result<Bytes, TransportError>> + Send;
    /// The largest datagram the path takes now, or `None` if datagrams are unsupported.
    fn max_datagram_size(&self) -> Option<usize>;
    /// Closes the connection with a raw session code.
    fn close(&self, code: u64, reason: &str);
    /// Resolves when the connection has ended, with why.
    fn closed(&self) -> impl Future<Output = TransportError> + Send;
    /// Path statistics.
    fn stats(&self) -> TransportStats;
}

/// The sending half of a stream.
pub trait SendStream: Send + 'static {
    /// Writes all of `data`, waiting for flow control.
    fn write(&mut self, data: Bytes) -> impl Future<Output = Result<(), StreamError>> + Send;
    /// Sets the stream's send priority: higher goes first.
    fn set_priority(&mut self, priority: i32);
    /// Ends the stream gracefully (FIN).
    fn finish(&mut self) -> Result<(), StreamError>;
    /// Aborts the stream with a code (RESET_STREAM).
    fn reset(&mut self, code: StreamCode);
    /// Resolves when the peer no longer reads: `Some(code)` for STOP_SENDING, `None` once all data
    /// was acknowledged after a finish.
    fn stopped(&mut self) -> impl Future<Output = Result<Option<StreamCode>, StreamError>> + Send;
}

/// The receiving half of a stream.
pub trait RecvStream: Send + 'static {
    /// Reads the next chunk of at most `max` bytes; `None` at the end of the stream.
    fn read(&mut self, max: usize) -> impl Future<Output = Result<Option<Bytes>, StreamError>> + Send;
    /// Asks the peer to stop sending (STOP_SENDING).
    fn stop(&mut self, code: StreamCode);
}
