//! WebTransport over HTTP/3 through `web-transport-quinn` (spec 1.2, 7.7, 7.8): the QUIC ALPN is
//! `h3`, the URL path and query travel in the extended CONNECT request, and the moq-lite version is
//! negotiated as a WebTransport subprotocol: the client offers `wt-available-protocols`, the server
//! answers `wt-protocol`, and that string then stands for the ALPN of raw QUIC.
//!
//! Stream codes: WebTransport application codes are u32s that the library maps into (and back out
//! of) the HTTP/3 space itself, so a moq-lite [`StreamCode`] is passed as its plain number
//! ([`StreamCode::to_u64`] / [`StreamCode::from_peer`]); a received code outside the HTTP/3
//! WebTransport range is reported as [`StreamCode::Unmapped`] with the raw QUIC code. Session close
//! codes are raw: they travel in the CLOSE_WEBTRANSPORT_SESSION capsule, which holds a u32.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use web_transport_quinn::{ReadError, SessionError, WebTransportError, WriteError};

use super::credit::{Dir, StreamCredit};
use super::tls::{self, Certificate, ClientTrust, TlsError};
use super::{Connection, RecvStream, SendStream, StreamError, TransportError, TransportStats};
use crate::coding::StreamCode;

/// The QUIC ALPN of HTTP/3, which WebTransport runs over.
pub const ALPN: &[u8] = b"h3";

/// A quinn client config offering ALPN `h3` only, with the given trust.
pub fn client_config(trust: &ClientTrust) -> Result<quinn::ClientConfig, TlsError> {
    tls::client_config(trust, &[ALPN.to_vec()])
}

/// A quinn server config offering ALPN `h3` only, for a WebTransport-only endpoint. A server that
/// also takes raw QUIC on the same port lists `h3` next to the `moq-lite-0X` ALPNs instead and
/// hands the `h3` connections to [`accept`].
pub fn server_config(cert: &Certificate) -> Result<quinn::ServerConfig, TlsError> {
    tls::server_config(cert, &[ALPN.to_vec()])
}

/// An established WebTransport session as a moq-lite transport.
#[derive(Debug, Clone)]
pub struct WebTransportConnection {
    session: web_transport_quinn::Session,
    /// The code of our own `close`, reported by `closed` as [`TransportError::ClosedLocally`].
    local_close: Arc<OnceLock<u64>>,
    /// Raises the peer's stream allowance as it uses it (none: the allowance stays as set up).
    credit: Option<Arc<StreamCredit>>,
}

impl WebTransportConnection {
    /// Wraps an established session.
    pub fn new(session: web_transport_quinn::Session) -> Self {
        Self { session, local_close: Arc::new(OnceLock::new()), credit: None }
    }

    /// Grows the peer's allowance of concurrent streams (HTTP/3's own included), set up at
    /// `initial` of each kind, up to `max_bi` and `max_uni` as the peer opens streams (see
    /// `transport::credit`).
    pub(crate) fn with_stream_credit(mut self, initial: u32, max_bi: u32, max_uni: u32) -> Self {
        self.credit = Some(Arc::new(StreamCredit::new(initial, max_bi, max_uni)));
        self
    }

    fn opened(&self, dir: Dir) {
        if let Some(credit) = &self.credit {
            credit.opened(&self.session, dir);
        }
    }

    /// The underlying WebTransport session.
    pub fn session(&self) -> &web_transport_quinn::Session {
        &self.session
    }

    /// The underlying quinn connection (shared with HTTP/3's control streams).
    pub fn quinn(&self) -> &quinn::Connection {
        &self.session
    }

    /// The subprotocol the server selected (`wt-protocol`), if any: the moq-lite version.
    pub fn protocol(&self) -> Option<&str> {
        self.session.protocol()
    }

    /// The URL of the CONNECT request (`https://authority/path?query`).
    pub fn url(&self) -> Option<&url::Url> {
        self.session.request().map(|request| &request.url)
    }

    fn error(&self, err: SessionError) -> TransportError {
        session_error(err, &self.local_close)
    }
}

fn connection_error(err: quinn::ConnectionError, local_close: &OnceLock<u64>) -> TransportError {
    match err {
        // A peer that closed the QUIC connection itself rather than with the capsule: its code is
        // whatever it put there (the HTTP/3-mapped ones were decoded by the library already).
        quinn::ConnectionError::ApplicationClosed(close) => TransportError::ClosedByPeer {
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        // Also what the library records when the peer ends the CONNECT stream without a capsule.
        quinn::ConnectionError::LocallyClosed => {
            TransportError::ClosedLocally { code: local_close.get().copied().unwrap_or(0) }
        }
        quinn::ConnectionError::TimedOut => TransportError::TimedOut,
        other => TransportError::Other(other.to_string()),
    }
}

fn session_error(err: SessionError, local_close: &OnceLock<u64>) -> TransportError {
    match err {
        SessionError::WebTransportError(WebTransportError::Closed(code, reason)) => {
            TransportError::ClosedByPeer { code: u64::from(code), reason }
        }
        SessionError::ConnectionError(err) => connection_error(err, local_close),
        SessionError::SendDatagramError(quinn::SendDatagramError::ConnectionLost(err)) => {
            session_error(SessionError::from(err), local_close)
        }
        other => TransportError::Other(other.to_string()),
    }
}

/// A moq-lite stream code as a WebTransport application code (u32; larger values saturate).
fn wt_code(code: StreamCode) -> u32 {
    u32::try_from(code.to_u64()).unwrap_or(u32::MAX)
}

impl Connection for WebTransportConnection {
    type Send = WtSend;
    type Recv = WtRecv;

    async fn open_bi(&self) -> Result<(WtSend, WtRecv), TransportError> {
        let (send, recv) = self.session.open_bi().await.map_err(|e| self.error(e))?;
        Ok((WtSend::new(send, &self.local_close), WtRecv::new(recv, &self.local_close)))
    }

    async fn open_uni(&self) -> Result<WtSend, TransportError> {
        let send = self.session.open_uni().await.map_err(|e| self.error(e))?;
        Ok(WtSend::new(send, &self.local_close))
    }

    async fn accept_bi(&self) -> Result<(WtSend, WtRecv), TransportError> {
        let (send, recv) = self.session.accept_bi().await.map_err(|e| self.error(e))?;
        self.opened(Dir::Bi);
        Ok((WtSend::new(send, &self.local_close), WtRecv::new(recv, &self.local_close)))
    }

    async fn accept_uni(&self) -> Result<WtRecv, TransportError> {
        let recv = self.session.accept_uni().await.map_err(|e| self.error(e))?;
        self.opened(Dir::Uni);
        Ok(WtRecv::new(recv, &self.local_close))
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), TransportError> {
        self.session.send_datagram(payload).map_err(|e| self.error(e))
    }

    async fn recv_datagram(&self) -> Result<Bytes, TransportError> {
        loop {
            match self.session.read_datagram().await {
                Ok(payload) => return Ok(payload),
                // A datagram for another (or no) session ID: drop it, as HTTP/3 says to.
                Err(SessionError::WebTransportError(WebTransportError::UnknownSession)) => continue,
                Err(err) => return Err(self.error(err)),
            }
        }
    }

    fn max_datagram_size(&self) -> Option<usize> {
        // quinn's None means the peer does not take datagrams; the session subtracts its header.
        self.quinn().max_datagram_size().map(|_| self.session.max_datagram_size())
    }

    fn close(&self, code: u64, reason: &str) {
        let _ = self.local_close.set(code);
        self.session.close(u32::try_from(code).unwrap_or(u32::MAX), reason.as_bytes());
    }

    async fn closed(&self) -> TransportError {
        self.error(self.session.closed().await)
    }

    fn stats(&self) -> TransportStats {
        TransportStats::from_quinn(self.quinn())
    }
}

/// The sending half of a WebTransport stream.
#[derive(Debug)]
pub struct WtSend {
    inner: web_transport_quinn::SendStream,
    local_close: Arc<OnceLock<u64>>,
}

impl WtSend {
    fn new(inner: web_transport_quinn::SendStream, local_close: &Arc<OnceLock<u64>>) -> Self {
        Self { inner, local_close: local_close.clone() }
    }

    fn error(&self, err: WriteError) -> StreamError {
        match err {
            WriteError::Stopped(code) => StreamError::Stopped(StreamCode::from_peer(u64::from(code))),
            WriteError::InvalidStopped(code) => StreamError::Stopped(StreamCode::Unmapped(code.into_inner())),
            WriteError::SessionError(err) => StreamError::Connection(session_error(err, &self.local_close)),
            WriteError::ClosedStream => StreamError::ClosedStream,
        }
    }
}

/// The receiving half of a WebTransport stream.
#[derive(Debug)]
pub struct WtRecv {
    inner: web_transport_quinn::RecvStream,
    local_close: Arc<OnceLock<u64>>,
}

impl WtRecv {
    fn new(inner: web_transport_quinn::RecvStream, local_close: &Arc<OnceLock<u64>>) -> Self {
        Self { inner, local_close: local_close.clone() }
    }
}

impl SendStream for WtSend {
    async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        match self.inner.write_chunk(data).await {
            Ok(()) => Ok(()),
            Err(err) => Err(self.error(err)),
        }
    }

    fn set_priority(&mut self, priority: i32) {
        // Fails only on a stream that is already closed, where priority no longer matters.
        let _ = self.inner.set_priority(priority);
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        self.inner.finish().map_err(|_| StreamError::ClosedStream)
    }

    fn reset(&mut self, code: StreamCode) {
        let _ = self.inner.reset(wt_code(code));
    }

    async fn stopped(&mut self) -> Result<Option<StreamCode>, StreamError> {
        // The library reports a STOP_SENDING code outside the WebTransport range as `None` too.
        match self.inner.stopped().await {
            Ok(code) => Ok(code.map(|c| StreamCode::from_peer(u64::from(c)))),
            Err(err) => Err(StreamError::Connection(session_error(err, &self.local_close))),
        }
    }
}

impl RecvStream for WtRecv {
    async fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        match self.inner.read_chunk(max, true).await {
            Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
            Err(ReadError::Reset(code)) => Err(StreamError::Reset(StreamCode::from_peer(u64::from(code)))),
            Err(ReadError::InvalidReset(code)) => Err(StreamError::Reset(StreamCode::Unmapped(code.into_inner()))),
            Err(ReadError::SessionError(err)) => Err(StreamError::Connection(session_error(err, &self.local_close))),
            Err(ReadError::ClosedStream) => Err(StreamError::ClosedStream),
            Err(other) => Err(StreamError::Connection(TransportError::Other(other.to_string()))),
        }
    }

    fn stop(&mut self, code: StreamCode) {
        let _ = self.inner.stop(wt_code(code));
    }
}

/// Connects to `url` (`https://host[:port]/path?query`, default port 443) with `endpoint`'s default
/// client config, which must offer ALPN `h3` (see [`client_config`]), and opens a WebTransport
/// session offering `protocols` in `wt-available-protocols` (none: the header is left out).
/// Returns the session and the server's `wt-protocol`, which is always one of `protocols`.
///
/// Not bounded in time beyond the QUIC idle timeout: wrap it in a timeout.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    url: &url::Url,
    protocols: &[&str],
) -> Result<(WebTransportConnection, Option<String>), TransportError> {
    connect_inner(endpoint, None, url, protocols).await
}

/// [`connect`] with an explicit client config instead of the endpoint's default.
pub async fn connect_with(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    url: &url::Url,
    protocols: &[&str],
) -> Result<(WebTransportConnection, Option<String>), TransportError> {
    connect_inner(endpoint, Some(config), url, protocols).await
}

async fn connect_inner(
    endpoint: &quinn::Endpoint,
    config: Option<quinn::ClientConfig>,
    url: &url::Url,
    protocols: &[&str],
) -> Result<(WebTransportConnection, Option<String>), TransportError> {
    if url.scheme() != "https" {
        return Err(TransportError::Other(format!("WebTransport needs an https:// URL, not {url}")));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let (server_name, remote) = match url.host() {
        Some(url::Host::Domain(domain)) => (domain.to_owned(), resolve(endpoint, domain, port).await?),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), SocketAddr::from((ip, port))),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), SocketAddr::from((ip, port))),
        None => return Err(TransportError::Other(format!("no host in {url}"))),
    };
    let connecting = match config {
        Some(config) => endpoint.connect_with(config, remote, &server_name),
        None => endpoint.connect(remote, &server_name),
    }
    .map_err(|e| TransportError::Other(format!("cannot connect to {remote}: {e}")))?;
    let conn = connecting.await.map_err(|e| connection_error(e, &OnceLock::new()))?;

    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    if alpn.as_deref() != Some(ALPN) {
        conn.close(0u32.into(), b"WebTransport needs ALPN h3");
        let alpn = alpn.map(|a| String::from_utf8_lossy(&a).into_owned());
        return Err(TransportError::Other(format!("WebTransport needs ALPN h3, the handshake agreed on {alpn:?}")));
    }

    let request = web_transport_quinn::proto::ConnectRequest::new(url.clone())
        .with_protocols(protocols.iter().map(|p| (*p).to_owned()));
    let session = web_transport_quinn::Session::connect(conn.clone(), request).await.map_err(|err| {
        // Dropping the handle would close the connection too, but only once every clone is gone.
        conn.close(0u32.into(), b"");
        client_error(err)
    })?;
    let protocol = session.protocol().map(str::to_owned);
    Ok((WebTransportConnection::new(session), protocol))
}

/// Resolves `host`, preferring an address of the endpoint's own family (an endpoint bound to
/// 127.0.0.1 cannot reach ::1).
async fn resolve(endpoint: &quinn::Endpoint, host: &str, port: u16) -> Result<SocketAddr, TransportError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| TransportError::Other(format!("cannot resolve {host}: {e}")))?
        .collect();
    let ipv4 = endpoint.local_addr().map(|local| local.is_ipv4()).ok();
    addrs
        .iter()
        .find(|addr| ipv4.is_none_or(|ipv4| addr.is_ipv4() == ipv4))
        .or(addrs.first())
        .copied()
        .ok_or_else(|| TransportError::Other(format!("{host} resolves to no address")))
}

fn client_error(err: web_transport_quinn::ClientError) -> TransportError {
    use web_transport_quinn::{ClientError, ConnectError};
    match err {
        ClientError::Connection(err) => connection_error(err, &OnceLock::new()),
        ClientError::HttpError(ConnectError::ErrorStatus(status)) => {
            TransportError::Other(format!("server refused the WebTransport session: HTTP status {status}"))
        }
        ClientError::HttpError(ConnectError::ConnectionError(err)) => connection_error(err, &OnceLock::new()),
        other => TransportError::Other(format!("WebTransport handshake failed: {other}")),
    }
}

fn server_error(err: web_transport_quinn::ServerError) -> TransportError {
    use web_transport_quinn::{ConnectError, ServerError};
    match err {
        ServerError::Connection(err) | ServerError::ConnectError(ConnectError::ConnectionError(err)) => {
            connection_error(err, &OnceLock::new())
        }
        other => TransportError::Other(format!("WebTransport handshake failed: {other}")),
    }
}

/// Reads the HTTP/3 SETTINGS and the WebTransport CONNECT request on a server-side connection whose
/// ALPN is `h3`, without answering it yet: the caller looks at the path, query and offered
/// protocols, then [`WebTransportRequest::accept`]s or [`WebTransportRequest::reject`]s.
///
/// Not bounded in time beyond the QUIC idle timeout: wrap it in a timeout.
pub async fn accept(conn: quinn::Connection) -> Result<WebTransportRequest, TransportError> {
    let request = web_transport_quinn::Request::accept(conn).await.map_err(server_error)?;
    Ok(WebTransportRequest { request })
}

/// A WebTransport CONNECT request awaiting the server's answer.
pub struct WebTransportRequest {
    request: web_transport_quinn::Request,
}

impl std::fmt::Debug for WebTransportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTransportRequest")
            .field("url", &self.request.url.as_str())
            .field("protocols", &self.request.protocols)
            .finish_non_exhaustive()
    }
}

impl WebTransportRequest {
    /// The full request URL, `https://authority/path?query`.
    pub fn url(&self) -> &url::Url {
        &self.request.url
    }

    /// The request path, e.g. `/anon/room`.
    pub fn path(&self) -> &str {
        self.request.url.path()
    }

    /// The query string without `?`, e.g. `jwt=…`, if any.
    pub fn query(&self) -> Option<&str> {
        self.request.url.query()
    }

    /// The subprotocols the client offered in `wt-available-protocols`, in its order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.request.protocols
    }

    /// The other request headers (pseudo-headers and `wt-available-protocols` excluded).
    pub fn headers(&self) -> &web_transport_quinn::http::HeaderMap {
        &self.request.headers
    }

    /// The underlying quinn connection.
    pub fn quinn(&self) -> &quinn::Connection {
        self.request.conn()
    }

    /// Answers 200 with `wt-protocol: protocol` (or without the header for `None`, the legacy
    /// fallback of spec 1.2) and returns the session. A `protocol` the client did not offer is
    /// refused with an error, and the connection is closed.
    pub async fn accept(self, protocol: Option<&str>) -> Result<WebTransportConnection, TransportError> {
        let mut response = web_transport_quinn::proto::ConnectResponse::OK;
        if let Some(protocol) = protocol {
            if !self.request.protocols.iter().any(|offered| offered == protocol) {
                self.request.conn().close(0u32.into(), b"");
                return Err(TransportError::Other(format!(
                    "cannot select {protocol:?}: the client offered {:?}",
                    self.request.protocols
                )));
            }
            response = response.with_protocol(protocol);
        }
        let session = self.request.respond(response).await.map_err(server_error)?;
        Ok(WebTransportConnection::new(session))
    }

    /// Answers with an HTTP error `status` (e.g. 404), then closes the connection once the client
    /// has seen it (bounded by a short wait).
    pub async fn reject(self, status: u16) -> Result<(), TransportError> {
        let conn = self.request.conn().clone();
        let result = match web_transport_quinn::http::StatusCode::from_u16(status) {
            Ok(status) if !status.is_success() => self.request.reject(status).await.map_err(server_error),
            _ => Err(TransportError::Other(format!("{status} is not an HTTP error status"))),
        };
        if result.is_ok() {
            // The client closes on reading the status; don't cut the response off before that.
            let wait = (conn.rtt() * 3).clamp(Duration::from_millis(100), Duration::from_secs(2));
            let _ = tokio::time::timeout(wait, conn.closed()).await;
        }
        conn.close(0u32.into(), b"");
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(10);

    struct Server {
        endpoint: quinn::Endpoint,
        fingerprint: [u8; 32],
    }

    fn server() -> Server {
        let cert = Certificate::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("generate");
        let config = server_config(&cert).expect("server config");
        let endpoint = quinn::Endpoint::server(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
        Server { endpoint, fingerprint: cert.fingerprint() }
    }

    fn client(fingerprint: [u8; 32]) -> quinn::Endpoint {
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
        endpoint
            .set_default_client_config(client_config(&ClientTrust::Fingerprint(vec![fingerprint])).expect("config"));
        endpoint
    }

    fn url(server: &Server, path_and_query: &str) -> url::Url {
        let port = server.endpoint.local_addr().expect("addr").port();
        url::Url::parse(&format!("https://localhost:{port}{path_and_query}")).expect("url")
    }

    /// Accepts one QUIC connection and reads its CONNECT request.
    async fn accept_request(endpoint: &quinn::Endpoint) -> WebTransportRequest {
        let incoming = timeout(WAIT, endpoint.accept()).await.expect("accept timeout").expect("endpoint open");
        let conn = timeout(WAIT, incoming).await.expect("handshake timeout").expect("handshake");
        timeout(WAIT, accept(conn)).await.expect("request timeout").expect("request")
    }

    async fn read_all<R: RecvStream>(recv: &mut R) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = timeout(WAIT, recv.read(1024)).await.expect("read timeout").expect("read") {
            out.extend_from_slice(&chunk);
        }
        out
    }

    async fn read_chunk<R: RecvStream>(recv: &mut R) -> Bytes {
        timeout(WAIT, recv.read(1024)).await.expect("read timeout").expect("read").expect("data")
    }

    async fn pair(
        server: &Server,
        offered: &[&str],
    ) -> (WebTransportConnection, WebTransportConnection, Option<String>, WebTransportRequestInfo) {
        let endpoint = server.endpoint.clone();
        let server_task = tokio::spawn(async move {
            let request = accept_request(&endpoint).await;
            let info = WebTransportRequestInfo {
                path: request.path().to_owned(),
                query: request.query().map(str::to_owned),
                protocols: request.protocols().to_vec(),
            };
            let chosen = request.protocols().iter().find(|p| p.as_str() == "moq-lite-06").cloned();
            let conn = timeout(WAIT, request.accept(chosen.as_deref())).await.expect("accept timeout").expect("accept");
            (conn, info)
        });
        let client_endpoint = client(server.fingerprint);
        let (client, protocol) = timeout(WAIT, connect(&client_endpoint, &url(server, "/anon/room?jwt=x"), offered))
            .await
            .expect("connect timeout")
            .expect("connect");
        let (server_conn, info) = timeout(WAIT, server_task).await.expect("server timeout").expect("server task");
        (client, server_conn, protocol, info)
    }

    #[derive(Debug)]
    struct WebTransportRequestInfo {
        path: String,
        query: Option<String>,
        protocols: Vec<String>,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_negotiates_and_carries_streams_codes_datagrams_and_close() {
        let server = server();
        let (client, server_conn, protocol, info) = pair(&server, &["moq-lite-06", "moq-lite-05"]).await;

        // The CONNECT request carried the path, query and offered versions; the choice came back.
        assert_eq!(info.path, "/anon/room");
        assert_eq!(info.query.as_deref(), Some("jwt=x"));
        assert_eq!(info.protocols, vec!["moq-lite-06".to_owned(), "moq-lite-05".to_owned()]);
        assert_eq!(protocol.as_deref(), Some("moq-lite-06"));
        assert_eq!(client.protocol(), Some("moq-lite-06"));
        assert_eq!(server_conn.protocol(), Some("moq-lite-06"));
        assert_eq!(client.url().map(|u| u.path()), Some("/anon/room"));

        // Client-opened bidi stream: data and FIN both ways.
        let (mut send, mut recv) = timeout(WAIT, client.open_bi()).await.expect("timeout").expect("open_bi");
        send.set_priority(3);
        send.write(Bytes::from_static(b"hello ")).await.expect("write");
        send.write(Bytes::from_static(b"server")).await.expect("write");
        send.finish().expect("finish");
        let (mut peer_send, mut peer_recv) =
            timeout(WAIT, server_conn.accept_bi()).await.expect("timeout").expect("accept_bi");
        assert_eq!(read_all(&mut peer_recv).await, b"hello server");
        peer_send.write(Bytes::from_static(b"hello client")).await.expect("write");
        peer_send.finish().expect("finish");
        assert_eq!(read_all(&mut recv).await, b"hello client");
        assert_eq!(timeout(WAIT, send.stopped()).await.expect("timeout").expect("stopped"), None);
        assert_eq!(send.finish(), Err(StreamError::ClosedStream));

        // Server-opened bidi stream.
        let (mut send, mut recv) = timeout(WAIT, server_conn.open_bi()).await.expect("timeout").expect("open_bi");
        send.write(Bytes::from_static(b"ping")).await.expect("write");
        send.finish().expect("finish");
        let (mut peer_send, mut peer_recv) =
            timeout(WAIT, client.accept_bi()).await.expect("timeout").expect("accept_bi");
        assert_eq!(read_all(&mut peer_recv).await, b"ping");
        peer_send.write(Bytes::from_static(b"pong")).await.expect("write");
        peer_send.finish().expect("finish");
        assert_eq!(read_all(&mut recv).await, b"pong");

        // Uni stream.
        let mut send = timeout(WAIT, server_conn.open_uni()).await.expect("timeout").expect("open_uni");
        send.write(Bytes::from_static(b"group")).await.expect("write");
        send.finish().expect("finish");
        let mut peer_recv = timeout(WAIT, client.accept_uni()).await.expect("timeout").expect("accept_uni");
        assert_eq!(read_all(&mut peer_recv).await, b"group");

        // RESET_STREAM with NOT_FOUND (the reader has taken the first bytes, so the stream header
        // is through before the reset discards anything).
        let mut send = timeout(WAIT, client.open_uni()).await.expect("timeout").expect("open_uni");
        send.write(Bytes::from_static(b"partial")).await.expect("write");
        let mut peer_recv = timeout(WAIT, server_conn.accept_uni()).await.expect("timeout").expect("accept_uni");
        assert_eq!(read_chunk(&mut peer_recv).await, Bytes::from_static(b"partial"));
        send.reset(StreamCode::NotFound);
        let err = timeout(WAIT, peer_recv.read(1024)).await.expect("timeout").expect_err("reset");
        assert_eq!(err, StreamError::Reset(StreamCode::NotFound));

        // STOP_SENDING with NOT_FOUND: seen by stopped() and by the next write.
        let (mut send, _recv) = timeout(WAIT, client.open_bi()).await.expect("timeout").expect("open_bi");
        send.write(Bytes::from_static(b"unwanted")).await.expect("write");
        let (_peer_send, mut peer_recv) =
            timeout(WAIT, server_conn.accept_bi()).await.expect("timeout").expect("accept_bi");
        assert_eq!(read_chunk(&mut peer_recv).await, Bytes::from_static(b"unwanted"));
        peer_recv.stop(StreamCode::NotFound);
        let stopped = timeout(WAIT, send.stopped()).await.expect("timeout").expect("stopped");
        assert_eq!(stopped, Some(StreamCode::NotFound));
        let err = timeout(WAIT, send.write(Bytes::from_static(b"more"))).await.expect("timeout").expect_err("stopped");
        assert_eq!(err, StreamError::Stopped(StreamCode::NotFound));

        // Datagrams, resent until one arrives (loopback may still drop one).
        let max = client.max_datagram_size().expect("datagrams supported");
        assert!(max > 100, "max datagram size {max}");
        let received = timeout(WAIT, async {
            loop {
                client.send_datagram(Bytes::from_static(b"datagram")).expect("send_datagram");
                if let Ok(result) = timeout(Duration::from_millis(200), server_conn.recv_datagram()).await {
                    break result.expect("recv_datagram");
                }
            }
        })
        .await
        .expect("datagram timeout");
        assert_eq!(received, Bytes::from_static(b"datagram"));

        let stats = client.stats();
        assert!(stats.rtt > Duration::ZERO);
        assert!(stats.send_bitrate > 0);
        assert!(stats.bytes_sent > 0 && stats.bytes_received > 0);

        // Session close with a raw code.
        client.close(0x3, "protocol violation");
        let err = timeout(WAIT, server_conn.closed()).await.expect("server closed timeout");
        assert_eq!(err, TransportError::ClosedByPeer { code: 3, reason: "protocol violation".to_owned() });
        let err = timeout(WAIT, client.closed()).await.expect("client closed timeout");
        assert_eq!(err, TransportError::ClosedLocally { code: 3 });
        assert!(matches!(
            timeout(WAIT, server_conn.open_uni()).await.expect("timeout"),
            Err(TransportError::ClosedByPeer { code: 3, .. })
        ));

        server.endpoint.close(0u32.into(), b"test over");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_close_code_reaches_client() {
        let server = server();
        let (client, server_conn, _, _) = pair(&server, &["moq-lite-06"]).await;
        server_conn.close(0x10, "going away");
        let err = timeout(WAIT, client.closed()).await.expect("timeout");
        assert_eq!(err, TransportError::ClosedByPeer { code: 0x10, reason: "going away".to_owned() });
        server.endpoint.close(0u32.into(), b"test over");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_protocol_and_rejection() {
        let server = server();

        // No offered protocol: the server selects none (the legacy fallback path).
        let endpoint = server.endpoint.clone();
        let server_task = tokio::spawn(async move {
            let request = accept_request(&endpoint).await;
            assert!(request.protocols().is_empty());
            // Selecting a protocol the client did not offer is refused locally.
            let err = timeout(WAIT, request.accept(Some("moq-lite-06"))).await.expect("timeout").expect_err("mismatch");
            assert!(err.to_string().contains("moq-lite-06"), "{err}");

            let request = accept_request(&endpoint).await;
            timeout(WAIT, request.accept(None)).await.expect("timeout").expect("accept")
        });
        let client_endpoint = client(server.fingerprint);
        let target = url(&server, "/room");
        let err = timeout(WAIT, connect(&client_endpoint, &target, &[])).await.expect("timeout").expect_err("closed");
        assert!(!err.to_string().is_empty());
        let (client, protocol) =
            timeout(WAIT, connect(&client_endpoint, &target, &[])).await.expect("timeout").expect("connect");
        assert_eq!(protocol, None);
        let server_conn = timeout(WAIT, server_task).await.expect("timeout").expect("server task");
        assert_eq!(server_conn.protocol(), None);
        client.close(0, "");

        // A rejected request surfaces the HTTP status on the client.
        let endpoint = server.endpoint.clone();
        let server_task = tokio::spawn(async move {
            let request = accept_request(&endpoint).await;
            assert_eq!(request.path(), "/forbidden");
            timeout(WAIT, request.reject(404)).await.expect("timeout").expect("reject");
        });
        let err = timeout(WAIT, connect(&client_endpoint, &url(&server, "/forbidden"), &["moq-lite-06"]))
            .await
            .expect("timeout")
            .expect_err("rejected");
        assert!(err.to_string().contains("404"), "{err}");
        timeout(WAIT, server_task).await.expect("timeout").expect("server task");

        // Not an https URL.
        let err = timeout(WAIT, connect(&client_endpoint, &url::Url::parse("moql://localhost/x").expect("url"), &[]))
            .await
            .expect("timeout")
            .expect_err("scheme");
        assert!(err.to_string().contains("https"), "{err}");

        server.endpoint.close(0u32.into(), b"test over");
    }
}
