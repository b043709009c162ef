//! A client that keeps a session up: it follows GOAWAY to the new URI (or reconnects to the same
//! endpoint for an empty one), reconnects with exponential backoff when the connection is lost, and
//! carries what it publishes and subscribes across sessions. Broadcasts received from the server
//! stay in the application's origin through a reconnect (see [`Mirror`]): each live track is
//! re-subscribed from its next group, so readers see a gap, not an error.
//!
//! [`PersistentClient::connect_url`] returns at once: the host is resolved and the UDP endpoint
//! bound in the background, before each attempt, so a relay that is not up yet (or a name that does
//! not resolve yet) is a failed attempt retried with the backoff. What the application publishes or
//! subscribes to meanwhile starts with the first session.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::coding::Path;
use crate::coding::SessionCode;
use crate::endpoint::{Client, EndpointConfig, EndpointError};
use crate::model::{OriginConsumer, OriginProducer};
use crate::session::{Mirror, Origins, Session, SessionEvent, SessionLink};
use crate::transport::tls::ClientTrust;
use crate::wire::Version;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's UDP address.
    pub addr: SocketAddr,
    /// The TLS server name (SNI).
    pub server_name: String,
    /// Path and query sent in SETUP Path (lite-05+ raw QUIC).
    pub path: Option<String>,
    /// Set for WebTransport: the `https://` URL to CONNECT to (it carries the path itself).
    pub webtransport: Option<url::Url>,
}

/// Backoff and grace settings.
#[derive(Debug, Clone)]
pub struct ReconnectSettings {
    /// The first retry delay. Default 250 ms.
    pub initial_delay: Duration,
    /// The longest retry delay (the delay doubles up to it). Default 10 s.
    pub max_delay: Duration,
    /// Give up after this long without a session; `None` retries forever. Default 5 minutes.
    pub give_up_after: Option<Duration>,
    /// How long received broadcasts wait for the next session before they end. Default 30 s.
    pub linger: Duration,
    /// How long one attempt may take to get a session (handshake, WebTransport CONNECT, SETUP)
    /// before it is abandoned and retried with the backoff. Default 10 s. Without it an attempt
    /// caught by a server that dies mid-handshake (a relay killed while draining) waits out the
    /// QUIC idle timeout, while a restarted server on the same port would answer the next one.
    pub attempt_timeout: Duration,
}

impl Default for ReconnectSettings {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            give_up_after: Some(Duration::from_secs(300)),
            linger: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// What the client is doing, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// The first connection attempt.
    Connecting,
    /// A session is up.
    Connected {
        /// Its version.
        version: Version,
        /// How many sessions came before it.
        reconnects: u64,
    },
    /// The server sent GOAWAY: moving to `uri` (empty = the same endpoint).
    Migrating {
        /// Where to.
        uri: String,
    },
    /// The connection was lost or refused; the next attempt follows after `retry_in`.
    Reconnecting {
        /// Why.
        reason: String,
        /// Attempts since the last session.
        attempt: u32,
        /// The delay before the next attempt.
        retry_in: Duration,
    },
    /// No session for `give_up_after`, or the server refused the credentials (UNAUTHORIZED): the
    /// client stopped.
    GaveUp {
        /// The last failure.
        reason: String,
    },
    /// The application closed the client.
    Closed,
}

/// A client session that survives migration and connection loss.
pub struct PersistentClient {
    state: watch::Receiver<ClientState>,
    session: watch::Receiver<Option<SessionLink>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PersistentClient {
    /// Starts connecting to `target`. `publish` is offered to every session; the server's
    /// broadcasts appear in `subscribe`.
    pub fn start(
        client: Client,
        target: Target,
        publish: Option<OriginConsumer>,
        subscribe: Option<OriginProducer>,
        settings: ReconnectSettings,
    ) -> Self {
        let dialer = Dialer { url: None, target: Some(target), endpoint: Some(client), make: None };
        Self::spawn(dialer, publish, subscribe, settings)
    }

    /// Starts connecting to `url` (`moql://`, `moqt://` or `https://`, as [`Target::from_url`]
    /// takes it) and returns at once, without waiting for the network. Only the URL's form is
    /// checked here: its host is resolved, and a UDP endpoint with `trust` and `config` bound for
    /// the address family, by the background task before each attempt. A host that does not
    /// resolve or a server that does not answer yet is a failed attempt like any other: the state
    /// goes to [`ClientState::Reconnecting`] and the next attempt follows the backoff, until
    /// `give_up_after`. [`PersistentClient::close`] (or dropping the client) cancels an attempt in
    /// progress at once. Must be called within a tokio runtime.
    pub fn connect_url(
        url: &str,
        trust: ClientTrust,
        config: EndpointConfig,
        publish: Option<OriginConsumer>,
        subscribe: Option<OriginProducer>,
        settings: ReconnectSettings,
    ) -> Result<Self, UrlError> {
        UrlParts::parse(url)?;
        let dialer = Dialer { url: Some(url.to_string()), target: None, endpoint: None, make: Some((trust, config)) };
        Ok(Self::spawn(dialer, publish, subscribe, settings))
    }

    fn spawn(
        dialer: Dialer,
        publish: Option<OriginConsumer>,
        subscribe: Option<OriginProducer>,
        settings: ReconnectSettings,
    ) -> Self {
        let (state_tx, state) = watch::channel(ClientState::Connecting);
        let (stop, stopped) = watch::channel(false);
        let (session_tx, session) = watch::channel(None);
        let mirror = subscribe.map(|origin| Mirror::with_linger(origin, settings.linger));
        let shared = Shared { state: state_tx, session: session_tx, stopped };
        let task = tokio::spawn(run(dialer, publish, mirror, settings, shared));
        Self { state, session, stop, task }
    }

    /// The session up right now (for FETCH, PROBE and statistics), or `None` between sessions.
    pub fn session(&self) -> Option<SessionLink> {
        self.session.borrow().clone()
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state.borrow().clone()
    }

    /// A receiver of every state change, for watching from elsewhere (the C API's state callbacks).
    pub fn watch_state(&self) -> watch::Receiver<ClientState> {
        self.state.clone()
    }

    /// Waits for the next state change and returns the new state.
    pub async fn next_state(&mut self) -> ClientState {
        if self.state.changed().await.is_err() {
            return ClientState::Closed;
        }
        self.state.borrow_and_update().clone()
    }

    /// Closes the session and stops reconnecting; an attempt in progress (resolving, handshaking,
    /// waiting for SETUP) is abandoned at once, not waited out.
    pub fn close(&self) {
        self.stop.send_replace(true);
    }

    /// Closes as [`PersistentClient::close`] does and waits for the background task to end: when
    /// this returns, no attempt is in progress, the session (if any) is closed and the state is
    /// [`ClientState::Closed`] (or the [`ClientState::GaveUp`] that came first).
    pub async fn shutdown(mut self) {
        self.close();
        let _ = (&mut self.task).await;
    }
}

impl Drop for PersistentClient {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Why a connection URL cannot be used: its form, or its host that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("malformed URL {url:?}: {reason}")]
    Malformed {
        /// The text given.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// `http://`: the development form, whose certificate fingerprint is fetched over HTTP first
    /// (the `moqt` command does that; the library takes the `https://` URL and the fingerprint).
    #[error("{0:?}: http:// is the development form: fetch /certificate.sha256 first (the moqt command does)")]
    DevelopmentHttp(String),
    /// A scheme other than `https://`, `moql://` or `moqt://`.
    #[error("{url:?}: unknown scheme {scheme:?} (expected https://, moql:// or moqt://)")]
    UnknownScheme {
        /// The text given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// No host in the URL.
    #[error("URL {0:?} has no host")]
    NoHost(String),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Unresolved {
        /// The host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The host name resolved to no address.
    #[error("{0} resolves to nothing")]
    NoAddress(String),
    /// A query parameter with a value out of range (a cluster peer's `?cost=`).
    #[error("{url:?}: {reason}")]
    BadParameter {
        /// The text given.
        url: String,
        /// Which parameter and why.
        reason: &'static str,
    },
}

impl Target {
    /// A raw-QUIC connection URL: `moql://host[:port]/path?query` or `moqt://…` (default port
    /// 443). The host is resolved here; the path and query travel in SETUP Path.
    pub async fn from_url(text: &str) -> Result<Target, UrlError> {
        let UrlParts { host, port, path, webtransport } = UrlParts::parse(text)?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|err| UrlError::Unresolved { host: host.clone(), reason: err.to_string() })?
            .next()
            .ok_or_else(|| UrlError::NoAddress(host.clone()))?;
        Ok(Target { addr, server_name: host, path, webtransport })
    }
}

/// A connection URL checked for its form, its host not resolved yet.
struct UrlParts {
    host: String,
    port: u16,
    path: Option<String>,
    webtransport: Option<url::Url>,
}

impl UrlParts {
    fn parse(text: &str) -> Result<UrlParts, UrlError> {
        let url = url::Url::parse(text)
            .map_err(|err| UrlError::Malformed { url: text.to_string(), reason: err.to_string() })?;
        let webtransport = match url.scheme() {
            "moql" | "moqt" => None,
            "https" => Some(url.clone()),
            "http" => return Err(UrlError::DevelopmentHttp(text.to_string())),
            other => return Err(UrlError::UnknownScheme { url: text.to_string(), scheme: other.to_string() }),
        };
        let host = url.host_str().ok_or_else(|| UrlError::NoHost(text.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port().unwrap_or(443);
        let mut path = url.path().to_string();
        if let Some(query) = url.query() {
            path = format!("{path}?{query}");
        }
        let path = (path != "/" && !path.is_empty() && webtransport.is_none()).then_some(path);
        Ok(UrlParts { host, port, path, webtransport })
    }
}

/// How the reconnect task reaches the server: a target resolved by the application with its
/// endpoint ([`PersistentClient::start`]), or a URL resolved, and an endpoint bound, before each
/// attempt ([`PersistentClient::connect_url`]).
struct Dialer {
    /// Resolved again before each attempt, when set.
    url: Option<String>,
    /// Where the last attempt went.
    target: Option<Target>,
    /// The UDP endpoint; made (again) for the target's address family when `make` is set.
    endpoint: Option<Client>,
    /// The trust and settings to make an endpoint with.
    make: Option<(ClientTrust, EndpointConfig)>,
}

impl Dialer {
    /// One attempt: resolves the URL if there is one, makes the endpoint if needed, connects.
    async fn dial(&mut self, origins: Origins) -> Result<Session, EndpointError> {
        if let Some(url) = &self.url {
            self.target = Some(Target::from_url(url).await.map_err(|err| EndpointError::Connect(err.to_string()))?);
        }
        let Some(target) = self.target.clone() else {
            return Err(EndpointError::Config("no target to connect to".into()));
        };
        let client = self.endpoint_for(target.addr)?;
        match &target.webtransport {
            Some(url) => client.connect_webtransport(url.as_str(), origins).await,
            None => client.connect(target.addr, &target.server_name, target.path.clone(), origins).await,
        }
    }

    /// The endpoint to reach `addr` from: the application's, or one of ours bound to the
    /// wildcard address of `addr`'s family (made on first use and after a family change).
    fn endpoint_for(&mut self, addr: SocketAddr) -> Result<&Client, EndpointError> {
        if let Some((trust, config)) = &self.make {
            let local = self.endpoint.as_ref().and_then(|client| client.local_addr().ok());
            if local.is_none_or(|local| local.is_ipv6() != addr.is_ipv6()) {
                let bind = match addr {
                    SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
                    SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
                };
                self.endpoint = Some(Client::new(bind, trust, config.clone())?);
            }
        }
        self.endpoint.as_ref().ok_or_else(|| EndpointError::Config("no endpoint to connect from".into()))
    }

    /// Where to go after GOAWAY: `uri`, or the same endpoint for an empty one (or one that does
    /// not resolve, logged).
    async fn migrate(&mut self, uri: &str) {
        if uri.is_empty() {
            return;
        }
        if self.url.is_some() {
            // Checked for its form here; resolved by the next attempt, like the first URL.
            match UrlParts::parse(uri) {
                Ok(_) => self.url = Some(uri.to_string()),
                Err(err) => tracing::warn!("{err}; reconnecting to the same endpoint"),
            }
            return;
        }
        let Some(current) = &self.target else { return };
        match resolve_goaway(uri, current).await {
            Ok(next) => self.target = Some(next),
            Err(err) => tracing::warn!("{err}; reconnecting to the same endpoint"),
        }
    }
}

/// Resolves a GOAWAY New Session URI: empty means the same endpoint; otherwise a connection URL.
pub async fn resolve_goaway(uri: &str, current: &Target) -> Result<Target, UrlError> {
    if uri.is_empty() {
        return Ok(current.clone());
    }
    Target::from_url(uri).await
}

/// What the reconnect task shares with its [`PersistentClient`].
struct Shared {
    state: watch::Sender<ClientState>,
    /// The session up right now.
    session: watch::Sender<Option<SessionLink>>,
    stopped: watch::Receiver<bool>,
}

async fn run(
    mut dialer: Dialer,
    publish: Option<OriginConsumer>,
    mirror: Option<Mirror>,
    settings: ReconnectSettings,
    shared: Shared,
) {
    let Shared { state, session: current, mut stopped } = shared;
    let mut attempt: u32 = 0;
    let mut reconnects = 0u64;
    let mut last_up = Instant::now();
    // Why the last attempt failed, for a give-up that comes during the next one.
    let mut last_failure: Option<String> = None;
    loop {
        let origins = Origins {
            publish: publish.as_ref().and_then(|origin| origin.scoped(&Path::root(), 0)),
            subscribe: mirror.clone(),
            root: Path::root(),
        };
        let attempt_timeout = settings.attempt_timeout;
        let connect = async {
            tokio::time::timeout(attempt_timeout, dialer.dial(origins))
                .await
                .unwrap_or_else(|_| Err(EndpointError::Connect(format!("no session within {attempt_timeout:?}"))))
        };
        // An attempt that gets no answer (a server gone silent: QUIC waits out its handshake
        // timeout) must not outlast the give-up deadline.
        let give_up_at = settings.give_up_after.map(|limit| last_up + limit);
        let result = tokio::select! {
            result = connect => result,
            _ = stopped.wait_for(|stop| *stop) => break,
            () = crate::model::sleep_until_or_forever(give_up_at) => {
                let limit = settings.give_up_after.unwrap_or_default();
                let reason = last_failure
                    .take()
                    .unwrap_or_else(|| format!("no session for {limit:?}: the server did not answer"));
                state.send_replace(ClientState::GaveUp { reason });
                return;
            }
        };
        let reason = match result {
            Ok(mut session) => {
                let up_since = Instant::now();
                last_failure = None;
                current.send_replace(Some(session.link()));
                state.send_replace(ClientState::Connected { version: session.version(), reconnects });
                reconnects += 1;
                let event = loop {
                    let event = tokio::select! {
                        event = session.next_event() => event,
                        _ = stopped.wait_for(|stop| *stop) => {
                            current.send_replace(None);
                            session.close(SessionCode::NoError, "");
                            state.send_replace(ClientState::Closed);
                            return;
                        }
                    };
                    if !matches!(event, SessionEvent::Active) {
                        break event;
                    }
                };
                current.send_replace(None);
                last_up = Instant::now();
                // A session that lasted is a success; one that ended at once counts as a failed
                // attempt, so a server that sends GOAWAY right after SETUP is not hammered.
                if up_since.elapsed() >= MIN_HEALTHY_SESSION {
                    attempt = 0;
                } else {
                    attempt = attempt.saturating_add(1);
                    let retry_in = backoff(&settings, attempt);
                    tokio::select! {
                        _ = tokio::time::sleep(retry_in) => {}
                        _ = stopped.wait_for(|stop| *stop) => break,
                    }
                }
                match event {
                    SessionEvent::Closed(err) if err.peer_code() == Some(SessionCode::Unauthorized) => {
                        state.send_replace(ClientState::GaveUp { reason: format!("refused by the server: {err}") });
                        return;
                    }
                    SessionEvent::GoingAway { uri } => {
                        state.send_replace(ClientState::Migrating { uri: uri.clone() });
                        // Break before make: the old session's tracks are orphaned and adopted by
                        // the next one, which subscribes again from their next group.
                        drop(session);
                        dialer.migrate(&uri).await;
                        continue;
                    }
                    SessionEvent::Closed(err) => format!("session ended: {err}"),
                    other => format!("unexpected session event {other:?}"),
                }
            }
            // The server refused these credentials: asking again with the same ones cannot work.
            Err(EndpointError::Session(err)) if err.peer_code() == Some(SessionCode::Unauthorized) => {
                state.send_replace(ClientState::GaveUp { reason: format!("refused by the server: {err}") });
                return;
            }
            Err(err) => format!("connect failed: {err}"),
        };
        last_failure = Some(reason.clone());
        attempt = attempt.saturating_add(1);
        if settings.give_up_after.is_some_and(|limit| last_up.elapsed() >= limit) {
            state.send_replace(ClientState::GaveUp { reason });
            return;
        }
        let retry_in = backoff(&settings, attempt);
        tracing::debug!(attempt, ?retry_in, "reconnecting: {reason}");
        state.send_replace(ClientState::Reconnecting { reason, attempt, retry_in });
        tokio::select! {
            _ = tokio::time::sleep(retry_in) => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
    }
    state.send_replace(ClientState::Closed);
}

/// A session shorter than this counts as a failed attempt for the backoff.
const MIN_HEALTHY_SESSION: Duration = Duration::from_secs(1);

/// The delay before attempt `attempt` (1-based): doubling from the initial delay up to the max.
fn backoff(settings: &ReconnectSettings, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    settings.initial_delay.saturating_mul(factor).min(settings.max_delay)
}
