//! Either transport behind one type: a server port that takes raw QUIC and WebTransport, and a
//! client that dials either by URL, hand the session one kind of connection. Pure delegation.

use bytes::Bytes;

use super::quic::{QuicConnection, QuicRecv, QuicSend};
use super::webtransport::{WebTransportConnection, WtRecv, WtSend};
use super::{Connection, RecvStream, SendStream, StreamError, TransportError, TransportStats};
use crate::coding::StreamCode;

/// A raw-QUIC or WebTransport connection.
#[derive(Debug, Clone)]
pub enum AnyConnection {
    /// Raw QUIC, ALPN `moq-lite-0X`.
    Quic(QuicConnection),
    /// WebTransport over HTTP/3, ALPN `h3`.
    WebTransport(Box<WebTransportConnection>),
}

/// The sending half of either kind of stream.
pub enum AnySend {
    /// Raw QUIC.
    Quic(QuicSend),
    /// WebTransport.
    WebTransport(WtSend),
}

/// The receiving half of either kind of stream.
pub enum AnyRecv {
    /// Raw QUIC.
    Quic(QuicRecv),
    /// WebTransport.
    WebTransport(WtRecv),
}

impl AnyConnection {
    /// Which transport this is, for logs: `raw QUIC` or `WebTransport`.
    pub fn transport_name(&self) -> &'static str {
        match self {
            AnyConnection::Quic(_) => "raw QUIC",
            AnyConnection::WebTransport(_) => "WebTransport",
        }
    }
}

impl Connection for AnyConnection {
    type Send = AnySend;
    type Recv = AnyRecv;

    async fn open_bi(&self) -> Result<(AnySend, AnyRecv), TransportError> {
        Ok(match self {
            AnyConnection::Quic(c) => c.open_bi().await.map(|(s, r)| (AnySend::Quic(s), AnyRecv::Quic(r)))?,
            AnyConnection::WebTransport(c) => {
                c.open_bi().await.map(|(s, r)| (AnySend::WebTransport(s), AnyRecv::WebTransport(r)))?
            }
        })
    }

    async fn open_uni(&self) -> Result<AnySend, TransportError> {
        Ok(match self {
            AnyConnection::Quic(c) => AnySend::Quic(c.open_uni().await?),
            AnyConnection::WebTransport(c) => AnySend::WebTransport(c.open_uni().await?),
        })
    }

    async fn accept_bi(&self) -> Result<(AnySend, AnyRecv), TransportError> {
        Ok(match self {
            AnyConnection::Quic(c) => c.accept_bi().await.map(|(s, r)| (AnySend::Quic(s), AnyRecv::Quic(r)))?,
            AnyConnection::WebTransport(c) => {
                c.accept_bi().await.map(|(s, r)| (AnySend::WebTransport(s), AnyRecv::WebTransport(r)))?
            }
        })
    }

    async fn accept_uni(&self) -> Result<AnyRecv, TransportError> {
        Ok(match self {
            AnyConnection::Quic(c) => AnyRecv::Quic(c.accept_uni().await?),
            AnyConnection::WebTransport(c) => AnyRecv::WebTransport(c.accept_uni().await?),
        })
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), TransportError> {
        match self {
            AnyConnection::Quic(c) => c.send_datagram(payload),
            AnyConnection::WebTransport(c) => c.send_datagram(payload),
        }
    }

    async fn recv_datagram(&self) -> Result<Bytes, TransportError> {
        match self {
            AnyConnection::Quic(c) => c.recv_datagram().await,
            AnyConnection::WebTransport(c) => c.recv_datagram().await,
        }
    }

    fn max_datagram_size(&self) -> Option<usize> {
        match self {
            AnyConnection::Quic(c) => c.max_datagram_size(),
            AnyConnection::WebTransport(c) => c.max_datagram_size(),
        }
    }

    fn close(&self, code: u64, reason: &str) {
        match self {
            AnyConnection::Quic(c) => c.close(code, reason),
            AnyConnection::WebTransport(c) => c.close(code, reason),
        }
    }

    async fn closed(&self) -> TransportError {
        match self {
            AnyConnection::Quic(c) => c.closed().await,
            AnyConnection::WebTransport(c) => c.closed().await,
        }
    }

    fn stats(&self) -> TransportStats {
        match self {
            AnyConnection::Quic(c) => c.stats(),
            AnyConnection::WebTransport(c) => c.stats(),
        }
    }
}

impl SendStream for AnySend {
    async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        match self {
            AnySend::Quic(s) => s.write(data).await,
            AnySend::WebTransport(s) => s.write(data).await,
        }
    }

    fn set_priority(&mut self, priority: i32) {
        match self {
            AnySend::Quic(s) => s.set_priority(priority),
            AnySend::WebTransport(s) => s.set_priority(priority),
        }
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        match self {
            AnySend::Quic(s) => s.finish(),
            AnySend::WebTransport(s) => s.finish(),
        }
    }

    fn reset(&mut self, code: StreamCode) {
        match self {
            AnySend::Quic(s) => s.reset(code),
            AnySend::WebTransport(s) => s.reset(code),
        }
    }

    async fn stopped(&mut self) -> Result<Option<StreamCode>, StreamError> {
        match self {
            AnySend::Quic(s) => s.stopped().await,
            AnySend::WebTransport(s) => s.stopped().await,
        }
    }
}

impl RecvStream for AnyRecv {
    async fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        match self {
            AnyRecv::Quic(r) => r.read(max).await,
            AnyRecv::WebTransport(r) => r.read(max).await,
        }
    }

    fn stop(&mut self, code: StreamCode) {
        match self {
            AnyRecv::Quic(r) => r.stop(code),
            AnyRecv::WebTransport(r) => r.stop(code),
        }
    }
}
