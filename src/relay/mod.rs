//! moqt's relay: every session publishes into, and is served from, one shared origin. What one
//! client announces, the others discover; a track many subscribers want is subscribed upstream
//! once (the model deduplicates requests and aggregates their parameters, spec 7.1) and fanned
//! out from one bounded cache, one `Bytes` per frame for every subscriber. Each session is scoped
//! to its root (the connection's path, spec 7.9) and never offered its own broadcasts back.
//!
//! The relay is a library type so C programs can embed it; the `moqt relay` command wraps it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tracing::Instrument;

use crate::auth::AuthConfig;
use crate::coding::SessionCode;
use crate::endpoint::{Client, EndpointConfig, EndpointError, Server};
use crate::model::{OriginProducer, OriginSettings};
use crate::reconnect::{PersistentClient, ReconnectSettings, Target, UrlError};
use crate::session::{
    Mirror, Origins, PendingSession, Session, SessionConfig, SessionError, SessionEvent, Traffic, TrafficSnapshot,
};
use crate::transport::tls::ClientTrust;
use crate::transport::{Connection, TransportError};
use crate::wire::Version;

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This relay's Hop ID (non-zero, below 2^53 for old JS clients), sent in SETUP and
    /// ANNOUNCE_OK; announcements that already passed through it are dropped (loops).
    pub hop_id: u64,
    /// Settings of every session (bounds, timeouts), the wait for SETUP included: [`Relay::run`]
    /// takes it from here, not from the server's [`EndpointConfig`].
    pub session: SessionConfig,
    /// Bounds of the shared origin.
    pub origin: OriginSettings,
    /// Who may publish and subscribe what: `?jwt=` tokens and public patterns. Nothing configured:
    /// every session may do everything (development).
    pub auth: AuthConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            hop_id: random_hop_id(),
            session: SessionConfig::default(),
            origin: OriginSettings::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// A Hop ID from the OS's randomness, in 1..2^53.
pub fn random_hop_id() -> u64 {
    let mut bytes = [0u8; 8];
    // ring's SystemRandom reads the OS generator; on failure fall back to the clock, which only
    // has to differ between relays that peer with each other.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = (now.as_nanos() as u64).to_le_bytes();
    }
    (u64::from_le_bytes(bytes) % ((1 << 53) - 1)) + 1
}

/// A relay: the shared origin and what it takes to serve sessions from it.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    origin: OriginProducer,
    config: RelayConfig,
    counters: Counters,
    traffic: Arc<Traffic>,
    /// `Some(uri)` once shutting down: every session gets GOAWAY with that URI.
    shutdown: watch::Sender<Option<String>>,
}

impl Relay {
    /// An empty relay.
    pub fn new(mut config: RelayConfig) -> Self {
        config.session.hop_id = config.hop_id;
        // Nothing flushes a relay's sessions: no per-group delivery tracking on the fan-out.
        config.session.flush_group_streams = false;
        // Every session of this relay, peers included, counts into one place for /metrics.
        let traffic = config.session.traffic.get_or_insert_with(Default::default).clone();
        let origin = OriginProducer::new(config.origin);
        let (shutdown, _) = watch::channel(None);
        Relay { inner: Arc::new(Inner { origin, config, counters: Counters::default(), traffic, shutdown }) }
    }

    /// The shared origin: an embedding application can publish into it or read from it directly.
    pub fn origin(&self) -> &OriginProducer {
        &self.inner.origin
    }

    /// This relay's Hop ID.
    pub fn hop_id(&self) -> u64 {
        self.inner.config.hop_id
    }

    /// A snapshot of the relay's counters.
    pub fn metrics(&self) -> RelayMetrics {
        let c = &self.inner.counters;
        RelayMetrics {
            sessions_active: c.active.load(Ordering::Relaxed),
            sessions_by_version: Version::ALL.map(|v| (v, c.by_version[version_index(v)].load(Ordering::Relaxed))),
            sessions_rejected: c.rejected.load(Ordering::Relaxed),
            broadcasts: self.inner.origin.broadcast_count() as u64,
            traffic: self.inner.traffic.snapshot(),
        }
    }

    /// Serves one session whose SETUP was read (and whose path the caller may have checked) until
    /// it ends. On shutdown the session gets GOAWAY and the drain timeout to leave.
    pub async fn serve<C: Connection>(&self, pending: PendingSession<C>) -> Result<(), SessionError> {
        let counters = &self.inner.counters;
        counters.by_version[version_index(pending.version())].fetch_add(1, Ordering::Relaxed);
        counters.active.fetch_add(1, Ordering::Relaxed);
        let result = self.serve_counted(pending).await;
        counters.active.fetch_sub(1, Ordering::Relaxed);
        if matches!(result, Err(SessionError::Unauthorized(_))) {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Logs, at info, the session's refusal, or its opening and its close: what an operator
    /// reads at `moqt relay -v`. The caller's span adds who (see [`Relay::run_with`]).
    async fn serve_counted<C: Connection>(&self, pending: PendingSession<C>) -> Result<(), SessionError> {
        let (version, path) = (pending.version(), log_path(pending.path()).to_string());
        let grant = match self.inner.config.auth.authorize(pending.path()) {
            Ok(grant) => grant,
            Err(err) => {
                let err = SessionError::Unauthorized(err.to_string());
                tracing::info!(%version, path, "session refused: {err}");
                pending.reject(&err.to_string());
                return Err(err);
            }
        };
        // What the session may subscribe to is what we offer it; what it may publish is what we
        // take from it. A grant without one side leaves that side off entirely.
        let origins = Origins {
            publish: (!grant.subscribe.is_empty())
                .then(|| self.inner.origin.consume().allowing(grant.subscribe_filter())),
            subscribe: (!grant.publish.is_empty())
                .then(|| Mirror::from(self.inner.origin.clone()).allowing(grant.publish_filter())),
            root: grant.root.clone(),
        };
        let mut session = match Session::accept(pending, origins, self.inner.config.session.clone()).await {
            Ok(session) => session,
            Err(err) => {
                tracing::info!(%version, path, "session failed to open: {err}");
                return Err(err);
            }
        };
        let opened = Instant::now();
        tracing::info!(%version, path, "session opened");
        let (result, ended) = self.drive(&mut session, grant.expires).await;
        let stats = session.stats();
        let (code, by) = close_code(&ended);
        tracing::info!(
            code = %format_args!("{:#x}", code.to_u64()),
            by,
            duration = ?Duration::from_millis(opened.elapsed().as_millis() as u64),
            bytes_in = stats.bytes_received,
            bytes_out = stats.bytes_sent,
            "session closed: {ended}"
        );
        result
    }

    /// Runs an open session until it ends: by itself, at its token's expiry, or after GOAWAY on
    /// shutdown. Returns the result for the caller and how the session ended, for the log.
    async fn drive(
        &self,
        session: &mut Session,
        expires: Option<SystemTime>,
    ) -> (Result<(), SessionError>, SessionError) {
        let mut shutdown = self.inner.shutdown.subscribe();
        let expired = async {
            match expires {
                Some(at) => tokio::time::sleep(at.duration_since(SystemTime::now()).unwrap_or_default()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            tokio::select! {
                event = session.next_event() => {
                    if let SessionEvent::Closed(err) = event {
                        return (Err(err.clone()), err);
                    }
                }
                () = &mut expired => {
                    session.close(SessionCode::Unauthorized, "token expired");
                    let err = SessionError::Unauthorized("token expired".into());
                    return (Err(err.clone()), err);
                }
                changed = shutdown.changed() => {
                    let uri = shutdown.borrow_and_update().clone();
                    if let (Ok(()), Some(uri)) = (changed, uri) {
                        // lite-03 has no GOAWAY: the session is closed at the end of the drain.
                        let _ = session.goaway(&uri).await;
                        let drain = self.inner.config.session.drain_timeout;
                        // Still here at the deadline: dropping the session closes it.
                        let ended = tokio::time::timeout(drain + drain / 2, session.closed())
                            .await
                            .unwrap_or(SessionError::Timeout("the peer to leave after GOAWAY"));
                        return (Ok(()), ended);
                    }
                }
            }
        }
    }

    /// Accepts sessions on `server` until it closes, each in its own task.
    pub async fn run(&self, server: Server) {
        self.run_with(server, |_: &str, _: Version| std::future::ready(true)).await
    }

    /// [`Relay::run`] with the application's say on each session: `admit` sees the session's path
    /// and query (SETUP Path, or the WebTransport URL) and its version, after SETUP and before the
    /// relay's own authorization; `false` refuses the session with UNAUTHORIZED.
    pub async fn run_with<F, Fut>(&self, server: Server, admit: F)
    where
        F: Fn(&str, Version) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send,
    {
        while let Some(incoming) = server.accept().await {
            let (relay, admit) = (self.clone(), admit.clone());
            let peer = incoming.remote_address();
            tokio::spawn(async move {
                // The SETUP wait is the relay's, as every other session setting. Boxed: the
                // handshake's future is freed once done instead of sizing this task for the
                // session's whole life.
                let pending = match Box::pin(incoming.setup_with(&relay.inner.config.session)).await {
                    Ok(pending) => pending,
                    Err(err @ EndpointError::NoCommonVersion { .. }) => {
                        return tracing::info!(%peer, "session refused: {err}");
                    }
                    Err(err) => return tracing::info!(%peer, "session failed to open: {err}"),
                };
                // Every line about this session from here on names the peer and the transport.
                let span = tracing::info_span!("session", %peer, transport = pending.connection().transport_name());
                async move {
                    if !admit(pending.path(), pending.version()).await {
                        relay.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        let (version, path) = (pending.version(), log_path(pending.path()));
                        tracing::info!(%version, path, "session refused by the application");
                        return pending.reject("refused");
                    }
                    // serve logs the refusal, or the open and the close.
                    let _ = relay.serve(pending).await;
                }
                .instrument(span)
                .await
            });
        }
    }

    /// Joins another relay (moqt or the reference moq-relay) into a cluster. `endpoint.session.cost`
    /// prices the link both ways (see [`SessionConfig::cost`] and [`peer_url_cost`]); every other
    /// session setting is the relay's. A client session to
    /// `target` that offers everything this relay has and mirrors everything the peer has into the
    /// shared origin. Hop IDs cut loops (an announcement that already passed through a relay is
    /// dropped there) and each side withholds what it learned from the other (split horizon), so
    /// any mesh of relays converges. The session reconnects by itself; drop the handle to leave.
    pub fn connect_peer(
        &self,
        bind: std::net::SocketAddr,
        trust: &ClientTrust,
        target: Target,
        mut endpoint: EndpointConfig,
    ) -> Result<PersistentClient, EndpointError> {
        let link_cost = endpoint.session.cost;
        endpoint.session = self.inner.config.session.clone();
        endpoint.session.cost = link_cost.or(endpoint.session.cost);
        let client = Client::new(bind, trust, endpoint)?;
        let origin = &self.inner.origin;
        Ok(PersistentClient::start(
            client,
            target,
            Some(origin.consume()),
            Some(origin.clone()),
            ReconnectSettings::default(),
        ))
    }

    /// Starts a graceful shutdown: every session gets GOAWAY with `uri` (empty: reconnect here)
    /// and the drain timeout to leave.
    pub fn shutdown(&self, uri: &str) {
        self.inner.shutdown.send_replace(Some(uri.to_string()));
    }
}

/// A session's path for the logs: without its query, which may carry a token (`?jwt=`).
fn log_path(path_and_query: &str) -> &str {
    path_and_query.split_once('?').map_or(path_and_query, |(path, _)| path)
}

/// The close code of a session that ended with `err`, and who sent it: the peer's code when the
/// peer closed it, else ours.
fn close_code(err: &SessionError) -> (SessionCode, &'static str) {
    if let Some(code) = err.peer_code() {
        return (code, "peer");
    }
    match err {
        SessionError::Transport(TransportError::ClosedLocally { code })
        | SessionError::Stream(crate::transport::StreamError::Connection(TransportError::ClosedLocally { code })) => {
            (SessionCode::from_u64(*code), "us")
        }
        // Nobody sent a code: the path went quiet.
        SessionError::Transport(TransportError::TimedOut) => (SessionCode::NoError, "idle timeout"),
        err => (err.session_code(), "us"),
    }
}

/// Splits a cluster peer URL's `?cost=N` (the link's price, as the reference relay takes it) from
/// the URL, which keeps its other query parameters (`?jwt=`).
pub fn peer_url_cost(url: &str) -> Result<(String, Option<u64>), UrlError> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| UrlError::Malformed { url: url.to_string(), reason: e.to_string() })?;
    let mut cost = None;
    let mut rest = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if key == "cost" {
            let price = value.parse::<u64>().ok().filter(|c| *c <= crate::coding::MAX_VARINT);
            let bad = || UrlError::BadParameter { url: url.to_string(), reason: "cost must be a number up to 2^62-1" };
            cost = Some(price.ok_or_else(bad)?);
        } else {
            rest.push((key.into_owned(), value.into_owned()));
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((parsed.to_string(), cost))
}

/// Session counters, updated as sessions come and go.
#[derive(Default)]
struct Counters {
    active: AtomicU64,
    by_version: [AtomicU64; 4],
    rejected: AtomicU64,
}

fn version_index(version: Version) -> usize {
    Version::ALL.iter().position(|v| *v == version).unwrap_or(0)
}

/// A snapshot of the relay's counters: what `moqt relay` serves on /metrics (in the Prometheus
/// text format, which the command writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMetrics {
    /// Sessions open now.
    pub sessions_active: u64,
    /// Sessions accepted since start, per version.
    pub sessions_by_version: [(Version, u64); 4],
    /// Sessions refused (bad path).
    pub sessions_rejected: u64,
    /// Broadcast paths with at least one route.
    pub broadcasts: u64,
    /// Frames, bytes, groups and subscriptions through the relay's sessions.
    pub traffic: TrafficSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_give_up_their_cost() {
        assert_eq!(peer_url_cost("moql://b:443/").unwrap(), ("moql://b:443/".to_string(), None));
        assert_eq!(peer_url_cost("moql://b:443/?cost=7").unwrap(), ("moql://b:443/".to_string(), Some(7)));
        assert_eq!(
            peer_url_cost("moql://b:443/x?jwt=t&cost=0").unwrap(),
            ("moql://b:443/x?jwt=t".to_string(), Some(0))
        );
        assert!(peer_url_cost("moql://b/?cost=-1").is_err());
        assert!(peer_url_cost("moql://b/?cost=9999999999999999999").is_err());
    }
}
