//! Clients and servers over raw QUIC and WebTransport. On raw QUIC the client offers the ALPNs
//! moq-lite-06, -05, -04, -03 (a setting narrows them) and the server picks; over WebTransport the
//! same strings travel in `wt-available-protocols` / `wt-protocol`. A server takes both on one UDP
//! port (ALPN `h3` for WebTransport) and can reload its certificate without dropping sessions.
//! TLS comes from [`crate::transport::tls`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::session::{Origins, PendingSession, Session, SessionConfig, SessionError, accept_setup};
use crate::transport::any::AnyConnection;
use crate::transport::quic::QuicConnection;
use crate::transport::tls::{self, Certificate, ClientTrust, TlsError};
use crate::transport::webtransport::{self, WebTransportConnection};
use crate::wire::Version;

/// Settings of a client or server (raw QUIC, and WebTransport on the same endpoint).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Versions offered (client) or accepted (server), in preference order. Default all, newest first.
    pub versions: Vec<Version>,
    /// A connection with no packets for this long is closed. Default 30 s. Also how long a peer
    /// that vanished without a word (a relay killed, a path gone) takes to notice, and so how
    /// long a live picture stays frozen before the client reconnects; QUIC uses the smaller of
    /// the two peers' values.
    pub idle_timeout: Duration,
    /// Ping interval that keeps an idle session alive. Default 10 s (below the idle timeout).
    pub keep_alive: Duration,
    /// Bidirectional streams the peer may have open at once (requests), at most. Default 256.
    pub max_concurrent_bidi_streams: u32,
    /// Unidirectional streams the peer may have open at once (groups in flight), at most.
    /// Default 1024.
    pub max_concurrent_uni_streams: u32,
    /// Streams of each kind a new connection's peer may have open at once to start with: the
    /// allowance doubles each time the peer has opened half of it, up to the two maximums above.
    /// quinn keeps state for every stream a peer may open, so a viewer that opens a handful costs
    /// a few KiB instead of ~57 KiB. Default 16.
    pub initial_concurrent_streams: u32,
    /// A server also accepts WebTransport (ALPN h3) on the same port. Default true.
    pub webtransport: bool,
    /// Settings of each session.
    pub session: SessionConfig,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            versions: Version::ALL.to_vec(),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            max_concurrent_bidi_streams: 256,
            max_concurrent_uni_streams: 1024,
            initial_concurrent_streams: 16,
            webtransport: true,
            session: SessionConfig::default(),
        }
    }
}

impl EndpointConfig {
    fn alpns(&self) -> Vec<Vec<u8>> {
        self.versions.iter().map(|v| v.alpn().as_bytes().to_vec()).collect()
    }

    /// What a server offers: the moq-lite ALPNs, then h3 for WebTransport.
    fn server_alpns(&self) -> Vec<Vec<u8>> {
        let mut alpns = self.alpns();
        if self.webtransport {
            alpns.push(webtransport::ALPN.to_vec());
        }
        alpns
    }

    /// The `wt-available-protocols` a client offers, newest first.
    fn protocols(&self) -> Vec<&'static str> {
        self.versions.iter().map(|v| v.alpn()).collect()
    }

    fn transport(&self) -> Result<Arc<quinn::TransportConfig>, EndpointError> {
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| EndpointError::Config(format!("idle timeout {:?} is too long", self.idle_timeout)))?;
        transport.max_idle_timeout(Some(idle));
        transport.keep_alive_interval(Some(self.keep_alive));
        let initial = |max: u32| self.initial_concurrent_streams.min(max).into();
        transport.max_concurrent_bidi_streams(initial(self.max_concurrent_bidi_streams));
        transport.max_concurrent_uni_streams(initial(self.max_concurrent_uni_streams));
        Ok(Arc::new(transport))
    }

    /// `quic` with its stream allowance growing from the initial one up to the maximums.
    fn credit_quic(&self, quic: QuicConnection) -> QuicConnection {
        quic.with_stream_credit(
            self.initial_concurrent_streams,
            self.max_concurrent_bidi_streams,
            self.max_concurrent_uni_streams,
        )
    }

    /// `session` with its stream allowance growing from the initial one up to the maximums.
    fn credit_webtransport(&self, session: WebTransportConnection) -> WebTransportConnection {
        session.with_stream_credit(
            self.initial_concurrent_streams,
            self.max_concurrent_bidi_streams,
            self.max_concurrent_uni_streams,
        )
    }
}

/// Why a client or server could not be set up or connect.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A TLS configuration problem.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The QUIC handshake failed (including certificate verification).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The server picked no version we offered (client side).
    #[error("no common moq-lite version (server chose ALPN {0:?})")]
    NoVersion(Option<String>),
    /// The client offered no version we accept (server side): a WebTransport CONNECT whose
    /// `wt-available-protocols` names none of ours, or a raw-QUIC handshake without a moq-lite ALPN.
    #[error("no common moq-lite version: client offered [{}]; we speak [{}]", offered.join(", "), ours.join(", "))]
    NoCommonVersion {
        /// What the client offered (WebTransport subprotocols, or the handshake's ALPN), its order.
        offered: Vec<String>,
        /// What this server accepts, in its order of preference.
        ours: Vec<String>,
    },
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The session could not start.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// A moq-lite client: raw QUIC by address, or WebTransport by `https://` URL. A clone shares the
/// UDP socket (and TLS session cache): any number of sessions can run over one client.
#[derive(Clone)]
pub struct Client {
    endpoint: quinn::Endpoint,
    /// The client config for WebTransport (ALPN h3) with the same trust and transport settings.
    h3: quinn::ClientConfig,
    config: EndpointConfig,
}

impl Client {
    /// A client on a local UDP address (use `127.0.0.1:0` or `[::]:0`), trusting servers by `trust`.
    pub fn new(bind: SocketAddr, trust: &ClientTrust, config: EndpointConfig) -> Result<Self, EndpointError> {
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|source| EndpointError::Bind { addr: bind, source })?;
        let mut client = tls::client_config(trust, &config.alpns())?;
        client.transport_config(config.transport()?);
        endpoint.set_default_client_config(client);
        let mut h3 = webtransport::client_config(trust)?;
        h3.transport_config(config.transport()?);
        Ok(Self { endpoint, h3, config })
    }

    /// Connects over WebTransport to an `https://host[:port]/path?query` URL (the path and query
    /// travel in the CONNECT request), offering every configured version as a subprotocol.
    pub async fn connect_webtransport(&self, url: &str, origins: Origins) -> Result<Session, EndpointError> {
        let parsed = url::Url::parse(url).map_err(|e| EndpointError::Config(format!("malformed URL {url:?}: {e}")))?;
        let protocols = self.config.protocols();
        let (conn, chosen) = webtransport::connect_with(&self.endpoint, self.h3.clone(), &parsed, &protocols)
            .await
            .map_err(|e| EndpointError::Connect(e.to_string()))?;
        let version = chosen
            .as_deref()
            .and_then(|p| Version::from_alpn(p.as_bytes()))
            .filter(|v| self.config.versions.contains(v))
            .ok_or_else(|| EndpointError::NoVersion(chosen.clone()))?;
        tracing::debug!(%url, %version, "connected over WebTransport");
        // The path is the CONNECT URL's; SETUP Path must not be sent on WebTransport.
        Ok(Session::connect(
            AnyConnection::WebTransport(Box::new(self.config.credit_webtransport(conn))),
            version,
            None,
            origins,
            self.config.session.clone(),
        )
        .await?)
    }

    /// Connects to `addr` (TLS server name `server_name`) and starts a session. `path` travels in
    /// SETUP Path on lite-05+; lite-03/04 raw QUIC cannot carry it (spec 10.9).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        path: Option<String>,
        origins: Origins,
    ) -> Result<Session, EndpointError> {
        let connecting = self.endpoint.connect(addr, server_name).map_err(|e| EndpointError::Connect(e.to_string()))?;
        let connection = connecting.await.map_err(|e| EndpointError::Connect(e.to_string()))?;
        let conn = self.config.credit_quic(QuicConnection::new(connection));
        let alpn = conn.alpn();
        let version = alpn
            .as_deref()
            .and_then(Version::from_alpn)
            .filter(|v| self.config.versions.contains(v))
            .ok_or_else(|| EndpointError::NoVersion(alpn.map(|a| String::from_utf8_lossy(&a).into_owned())))?;
        tracing::debug!(%addr, %version, "connected");
        Ok(Session::connect(AnyConnection::Quic(conn), version, path, origins, self.config.session.clone()).await?)
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// A handle on the underlying quinn endpoint (the same socket and connections). An
    /// application that learns its network changed (Wi-Fi to cellular, a new address) can move
    /// the live connections to a new UDP socket with [`quinn::Endpoint::rebind`]: QUIC connection
    /// migration carries the sessions over to the new path without a reconnect.
    pub fn quinn_endpoint(&self) -> quinn::Endpoint {
        self.endpoint.clone()
    }
}

/// A moq-lite server: raw QUIC and, unless [`EndpointConfig::webtransport`] is off, WebTransport on
/// the same port. Clones are handles on the same endpoint (one can accept while another closes it).
#[derive(Clone)]
pub struct Server {
    endpoint: quinn::Endpoint,
    config: Arc<EndpointConfig>,
}

impl Server {
    /// Listens on `bind` with `cert`.
    pub fn bind(bind: SocketAddr, cert: &Certificate, config: EndpointConfig) -> Result<Self, EndpointError> {
        let mut server = tls::server_config(cert, &config.server_alpns())?;
        server.transport_config(config.transport()?);
        let endpoint =
            quinn::Endpoint::server(server, bind).map_err(|source| EndpointError::Bind { addr: bind, source })?;
        Ok(Self { endpoint, config: Arc::new(config) })
    }

    /// The local UDP address (useful after binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The next incoming connection; `None` once the server is closed. Finish it with
    /// [`Incoming::setup`] in its own task so one slow client does not hold up the others.
    pub async fn accept(&self) -> Option<Incoming> {
        let incoming = self.endpoint.accept().await?;
        Some(Incoming { incoming, config: self.config.clone() })
    }

    /// Serves new connections with `cert` from now on; sessions already up keep theirs.
    pub fn reload_certificate(&self, cert: &Certificate) -> Result<(), EndpointError> {
        let mut server = tls::server_config(cert, &self.config.server_alpns())?;
        server.transport_config(self.config.transport()?);
        self.endpoint.set_server_config(Some(server));
        Ok(())
    }

    /// Reloads the certificate whenever either PEM file changes (checked every `interval`), so a
    /// renewed certificate is picked up without dropping sessions. A file that does not load (a
    /// renewal half-written) is logged and the previous certificate stays. Ends with the server.
    pub fn watch_certificate_files(
        &self,
        chain: std::path::PathBuf,
        key: std::path::PathBuf,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let endpoint = self.endpoint.clone();
        let config = self.config.clone();
        let server = Server { endpoint, config };
        tokio::spawn(async move {
            let stamp = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let mut seen = (stamp(&chain), stamp(&key));
            loop {
                tokio::time::sleep(interval).await;
                let now = (stamp(&chain), stamp(&key));
                if now == seen {
                    continue;
                }
                seen = now;
                match Certificate::from_pem_files(&chain, &key) {
                    Ok(cert) => match server.reload_certificate(&cert) {
                        Ok(()) => tracing::info!(fingerprint = %cert.fingerprint_hex(), "certificate reloaded"),
                        Err(err) => tracing::warn!("certificate not reloaded: {err}"),
                    },
                    Err(err) => tracing::warn!("certificate not reloaded: {err}"),
                }
            }
        })
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.endpoint.close(quinn::VarInt::from_u32(0), b"server closed");
    }

    /// Waits until every connection has finished closing, after which the UDP port is free again
    /// (a restart can bind it).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// A connection attempt on a [`Server`].
pub struct Incoming {
    incoming: quinn::Incoming,
    config: Arc<EndpointConfig>,
}

impl Incoming {
    /// The client's address (as the server sees it, before the handshake).
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Completes the handshake (raw QUIC or WebTransport, by ALPN) and reads the client's SETUP, so
    /// the application can look at the path before accepting ([`Session::accept`]) or rejecting.
    /// The wait for SETUP is the server's [`EndpointConfig::session`] setup timeout.
    pub async fn setup(self) -> Result<PendingSession<AnyConnection>, EndpointError> {
        let session = self.config.session.clone();
        self.setup_with(&session).await
    }

    /// [`Incoming::setup`] with the SETUP wait of `session` (the settings the session will run
    /// with, when they are not the server's: a relay's).
    pub async fn setup_with(self, session: &SessionConfig) -> Result<PendingSession<AnyConnection>, EndpointError> {
        let connection = self.incoming.await.map_err(|e| EndpointError::Connect(e.to_string()))?;
        let quic = QuicConnection::new(connection);
        let alpn = quic.alpn();
        if alpn.as_deref() == Some(webtransport::ALPN) && self.config.webtransport {
            let request =
                webtransport::accept(quic.quinn().clone()).await.map_err(|e| EndpointError::Connect(e.to_string()))?;
            // The server picks: our preference order among what the client offered.
            let chosen =
                self.config.versions.iter().copied().find(|v| request.protocols().iter().any(|p| p == v.alpn()));
            let Some(version) = chosen else {
                let offered = request.protocols().to_vec();
                let _ = request.reject(400).await;
                return Err(no_common_version(&self.config, offered));
            };
            let path = match request.query() {
                Some(query) => format!("{}?{query}", request.path()),
                None => request.path().to_string(),
            };
            let conn = request.accept(Some(version.alpn())).await.map_err(|e| EndpointError::Connect(e.to_string()))?;
            let conn = self.config.credit_webtransport(conn);
            let pending = accept_setup(AnyConnection::WebTransport(Box::new(conn)), version, session).await?;
            return Ok(pending.with_url_path(path));
        }
        let Some(version) = alpn.as_deref().and_then(Version::from_alpn) else {
            quic.quinn().close(quinn::VarInt::from_u32(0x15), b"no common version");
            let offered = alpn.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            return Err(no_common_version(&self.config, offered));
        };
        Ok(accept_setup(AnyConnection::Quic(self.config.credit_quic(quic)), version, session).await?)
    }
}

/// The server's refusal of a client with no version in common, naming both sides' versions.
fn no_common_version(config: &EndpointConfig, offered: Vec<String>) -> EndpointError {
    let ours = config.versions.iter().map(|v| v.alpn().to_string()).collect();
    EndpointError::NoCommonVersion { offered, ours }
}
