//! One moq-lite session over any [`Connection`]: the SETUP exchange, the publisher half (answers the
//! peer's requests from the origin we publish) and the subscriber half (mirrors the peer's
//! broadcasts into an origin we consume), both at once on one connection.

mod commands;
mod config;
mod error;
mod flush;
mod mirror;
mod priority;
mod publisher;
mod stream;
mod subscriber;
mod traffic;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// The wire types sessions expose: the peer's SETUP and the settings it carries.
pub use crate::wire::{ProbeLevel, Role, Setup};
pub use commands::{FetchRequest, ProbeReport};
pub use config::SessionConfig;
pub use error::SessionError;
pub use flush::FlushOutcome;
pub use mirror::Mirror;
pub use priority::group_priority;
pub use publisher::COALESCE_MAX_PAYLOAD;
pub use traffic::{Traffic, TrafficSnapshot};

use crate::coding::{DecodeError, Path};
use crate::coding::{SessionCode, StreamCode};
use crate::model::{GroupConsumer, OriginConsumer};
use crate::transport::{Connection, RecvStream, SendStream, TransportStats};
use crate::wire::{BidiStream, Goaway, Message, UniStream, Version};
use publisher::Publisher;
use stream::{Reader, Writer};
use subscriber::Subscriber;

/// What a session publishes and where it puts what it receives.
#[derive(Default)]
pub struct Origins {
    /// Broadcasts we offer to the peer (answered from this consumer's scope). `None`: we publish
    /// nothing and refuse the peer's requests.
    pub publish: Option<OriginConsumer>,
    /// Where the peer's announced broadcasts appear (an `OriginProducer` converts into a mirror
    /// whose broadcasts end with the session). `None`: we do not ask for announcements.
    pub subscribe: Option<Mirror>,
    /// The session root (spec 7.9): every path on the wire is relative to it. A relay sets it to
    /// the connection's URL path; clients leave it empty.
    pub root: crate::coding::Path,
}

/// What one side of a session shares with every task of the session.
pub(crate) struct Context<C: Connection> {
    pub(crate) conn: C,
    pub(crate) version: Version,
    pub(crate) config: SessionConfig,
    /// The peer's Hop ID from its SETUP (0 = none): routes through it are not offered back.
    pub(crate) peer_hop: u64,
    /// The link's price, added to the routes the peer announces: our configured cost if set,
    /// else the peer's SETUP Cost (1 when absent).
    pub(crate) peer_cost: u64,
    /// Set once the peer sent GOAWAY: no new requests are opened (shared with [`SessionLink`]).
    pub(crate) going_away: Arc<AtomicBool>,
    /// The latest bitrate target the peer asked us to probe toward on its Probe stream.
    pub(crate) peer_probe_target: watch::Sender<Option<u64>>,
    /// This session's identity: routes it learned carry it, and it is not offered them back.
    pub(crate) session_id: u64,
    /// The session root: wire paths are relative to it.
    pub(crate) root: crate::coding::Path,
    /// True on the accepting side.
    pub(crate) is_server: bool,
    /// What the publisher half still owes the peer (shared with [`SessionLink`] for flushing).
    pub(crate) outstanding: Arc<flush::Outstanding>,
}

impl<C: Connection> Context<C> {
    /// The origin path of a wire path (the session root joined with it).
    pub(crate) fn local_path(
        &self,
        wire: &crate::coding::Path,
    ) -> Result<crate::coding::Path, crate::coding::PathTooLong> {
        self.root.join(wire)
    }

    pub(crate) fn is_going_away(&self) -> bool {
        self.going_away.load(Ordering::Relaxed)
    }
}

/// Session events the application can watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The session is up.
    Active,
    /// The peer sent GOAWAY: no new requests; reconnect to `uri` (empty = the same endpoint).
    GoingAway {
        /// Where to reconnect.
        uri: String,
    },
    /// The session ended.
    Closed(SessionError),
}

/// Closes the connection under a session; the session handle is not generic over the transport.
type Closer = Arc<dyn Fn(SessionCode, &str) + Send + Sync>;

/// Reads the path statistics of the connection under a session.
type StatsReader = Arc<dyn Fn() -> TransportStats + Send + Sync>;

/// A running session. Dropping it closes the connection with NO_ERROR.
pub struct Session {
    peer_setup: Setup,
    events: watch::Receiver<SessionEvent>,
    close: Closer,
    link: SessionLink,
    goaway_sent: AtomicBool,
    _task: AbortOnDrop,
}

/// A cloneable handle on a running session for requests that are not about its lifetime (FETCH,
/// PROBE, statistics): held by whoever needs them while the [`Session`] owner keeps the session
/// alive. Requests fail with [`SessionError::Closed`] once the session has ended.
#[derive(Clone)]
pub struct SessionLink {
    version: Version,
    peer_probe: ProbeLevel,
    /// Boxed: a channel allocates its first block of 32 slots up front, once per session.
    commands: mpsc::Sender<Box<commands::Command>>,
    probe_reports: watch::Receiver<Option<ProbeReport>>,
    peer_probe_target: watch::Receiver<Option<u64>>,
    going_away: Arc<AtomicBool>,
    stats: StatsReader,
    outstanding: Arc<flush::Outstanding>,
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLink").field("version", &self.version).finish_non_exhaustive()
    }
}

impl SessionLink {
    /// The negotiated version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Reads one past group with FETCH (lite-05+). The group's frames arrive on the returned
    /// consumer; a publisher that cannot serve the whole range resets, which aborts the group.
    pub async fn fetch(&self, request: FetchRequest) -> Result<GroupConsumer, SessionError> {
        self.check_not_going_away()?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Box::new(commands::Command::Fetch(request, reply)))
            .await
            .map_err(|_| SessionError::Closed)?;
        answer.await.map_err(|_| SessionError::Closed)?
    }

    /// The peer's TRACK_INFO for a track (priority, max age, timescale), asked on a Track stream
    /// (lite-05+; the reference's defaults on earlier versions). Not a subscription.
    pub async fn track_info(&self, broadcast: Path, track: &str) -> Result<crate::model::TrackInfo, SessionError> {
        self.check_not_going_away()?;
        let (reply, answer) = oneshot::channel();
        let command = commands::Command::TrackInfo(broadcast, track.to_string(), reply);
        self.commands.send(Box::new(command)).await.map_err(|_| SessionError::Closed)?;
        answer.await.map_err(|_| SessionError::Closed)?
    }

    /// Sets the bitrate (bit/s) we would like the peer to probe toward, opening the Probe stream
    /// on first use. Fails when the peer's SETUP says it cannot probe (lite-05+). After the peer's
    /// GOAWAY no Probe stream is opened any more (one already open keeps taking targets).
    pub async fn set_probe_target(&self, bitrate: u64) -> Result<(), SessionError> {
        if self.version.has_setup() && self.peer_probe == ProbeLevel::None {
            return Err(SessionError::Unsupported("the peer does not probe (SETUP Probe level None)"));
        }
        self.commands.send(Box::new(commands::Command::Probe(bitrate))).await.map_err(|_| SessionError::Closed)
    }

    /// The peer's latest PROBE report (its send bitrate and RTT), once a Probe stream is open.
    pub fn probe_report(&self) -> Option<ProbeReport> {
        *self.probe_reports.borrow()
    }

    /// The latest bitrate (bit/s) the peer asked us to probe toward on its Probe stream, if it
    /// opened one: what a publisher's encoder or padding would aim for.
    pub fn peer_probe_target(&self) -> Option<u64> {
        *self.peer_probe_target.borrow()
    }

    /// [`SessionError::GoingAway`] once the peer sent GOAWAY: no new streams are opened (spec 3.8).
    fn check_not_going_away(&self) -> Result<(), SessionError> {
        if self.going_away.load(Ordering::Relaxed) {
            return Err(SessionError::GoingAway);
        }
        Ok(())
    }

    /// Our side's path statistics (RTT, send-rate estimate, bytes), read from the transport now.
    pub fn stats(&self) -> TransportStats {
        (self.stats)()
    }

    /// Resolves once what this session's tracks have completed is with the peer: every
    /// subscription the peer holds on a track that has ended has sent all its groups and its end
    /// (SUBSCRIBE_END where the version has it, then FIN), had that acknowledged and received
    /// the peer's FIN in return (a moqt subscriber sends it after taking in the stragglers among
    /// the Group streams), or reset its stream for an aborted track; and every Group stream of a
    /// completed group has been acknowledged. Groups and tracks still being written are not
    /// waited for: finish them first. Each stream is watched for at most 10 s, then given up:
    /// the outcome counts what was given up unacknowledged since the last flush (a peer that
    /// went silent). Await it, with a timeout of your own, before closing the session so a
    /// finished track reaches the peer as finished.
    pub async fn flushed(&self) -> FlushOutcome {
        self.outstanding.flushed().await
    }

    /// How many subscriptions and Group streams [`flushed`](Self::flushed) is waiting for now.
    pub fn unflushed(&self) -> usize {
        self.outstanding.owed()
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Session {
    /// Starts a client session on an established connection: sends our SETUP (lite-05+, with
    /// `path` on raw QUIC), waits for the server's, then runs.
    pub async fn connect<C: Connection>(
        conn: C,
        version: Version,
        path: Option<String>,
        origins: Origins,
        config: SessionConfig,
    ) -> Result<Session, SessionError> {
        let mut backlog = Vec::new();
        let peer_setup = if version.has_setup() {
            let setup = Setup {
                probe: config.probe,
                path,
                role: config.role,
                cost: config.cost,
                hop: (config.hop_id != 0).then_some(config.hop_id),
                ..Default::default()
            };
            let exchanged = async {
                send_setup(&conn, version, &setup).await?;
                read_setup(&conn, version, &config, &mut backlog).await
            };
            closing_on_error(&conn, exchanged.await)?
        } else {
            Setup::default()
        };
        Ok(Self::start(conn, version, peer_setup, backlog, origins, config, false))
    }

    /// Starts a server session whose client SETUP was already read by [`accept_setup`].
    pub async fn accept<C: Connection>(
        pending: PendingSession<C>,
        origins: Origins,
        config: SessionConfig,
    ) -> Result<Session, SessionError> {
        let PendingSession { conn, version, peer_setup, backlog, .. } = pending;
        if version.has_setup() {
            let setup = Setup {
                probe: config.probe,
                cost: config.cost,
                hop: (config.hop_id != 0).then_some(config.hop_id),
                ..Default::default()
            };
            send_setup(&conn, version, &setup).await?;
        }
        Ok(Self::start(conn, version, peer_setup, backlog, origins, config, true))
    }

    fn start<C: Connection>(
        conn: C,
        version: Version,
        peer_setup: Setup,
        backlog: Vec<Reader<C::Recv>>,
        origins: Origins,
        config: SessionConfig,
        is_server: bool,
    ) -> Session {
        let going_away = Arc::new(AtomicBool::new(false));
        let outstanding = Arc::new(flush::Outstanding::default());
        let (peer_probe_target_tx, peer_probe_target) = watch::channel(None);
        let ctx = Arc::new(Context {
            conn: conn.clone(),
            version,
            peer_hop: peer_setup.hop.unwrap_or(0),
            // A price we set for this link wins over the one the peer declares (the dialer knows
            // what the link costs), as in the reference implementation.
            peer_cost: config.cost.unwrap_or_else(|| peer_setup.cost_or_default()),
            going_away: going_away.clone(),
            peer_probe_target: peer_probe_target_tx,
            session_id: mirror::new_owner(),
            root: origins.root.clone(),
            is_server,
            config,
            outstanding: outstanding.clone(),
        });
        let (events_tx, events) = watch::channel(SessionEvent::Active);
        let closer = conn.clone();
        let close: Closer = Arc::new(move |code: SessionCode, reason: &str| closer.close(code.to_u64(), reason));
        let stats: StatsReader = Arc::new(move || conn.stats());
        let (commands, command_rx) = mpsc::channel(16);
        let (reports_tx, probe_reports) = watch::channel(None);
        let task = tokio::spawn(run(ctx, origins, backlog, events_tx, command_rx, reports_tx));
        let link = SessionLink {
            version,
            peer_probe: peer_setup.probe,
            commands,
            probe_reports,
            peer_probe_target,
            going_away,
            stats,
            outstanding,
        };
        Session {
            peer_setup,
            events,
            close,
            link,
            goaway_sent: AtomicBool::new(false),
            _task: AbortOnDrop(task.abort_handle()),
        }
    }

    /// A handle for FETCH, PROBE and statistics that others may hold while this session lives.
    pub fn link(&self) -> SessionLink {
        self.link.clone()
    }

    /// The negotiated version.
    pub fn version(&self) -> Version {
        self.link.version
    }

    /// The peer's SETUP (empty on lite-03/04).
    pub fn peer_setup(&self) -> &Setup {
        &self.peer_setup
    }

    /// The latest event.
    pub fn event(&self) -> SessionEvent {
        self.events.borrow().clone()
    }

    /// Waits for the next event after the latest one seen.
    pub async fn next_event(&mut self) -> SessionEvent {
        if self.events.changed().await.is_err() {
            return SessionEvent::Closed(SessionError::Closed);
        }
        self.events.borrow_and_update().clone()
    }

    /// Resolves when the session has ended, with why.
    pub async fn closed(&mut self) -> SessionError {
        loop {
            if let SessionEvent::Closed(err) = &*self.events.borrow_and_update() {
                return err.clone();
            }
            if self.events.changed().await.is_err() {
                return SessionError::Closed;
            }
        }
    }

    /// Closes the session with a code.
    pub fn close(&self, code: SessionCode, reason: &str) {
        (self.close)(code, reason);
    }

    /// Reads one past group with FETCH (lite-05+); see [`SessionLink::fetch`].
    pub async fn fetch(&self, request: FetchRequest) -> Result<GroupConsumer, SessionError> {
        self.link.fetch(request).await
    }

    /// Sets the bitrate to probe toward; see [`SessionLink::set_probe_target`].
    pub async fn set_probe_target(&self, bitrate: u64) -> Result<(), SessionError> {
        self.link.set_probe_target(bitrate).await
    }

    /// The peer's latest PROBE report (its send bitrate and RTT), once a Probe stream is open.
    pub fn probe_report(&self) -> Option<ProbeReport> {
        self.link.probe_report()
    }

    /// The bitrate the peer asked us to probe toward; see [`SessionLink::peer_probe_target`].
    pub fn peer_probe_target(&self) -> Option<u64> {
        self.link.peer_probe_target()
    }

    /// Our side's path statistics (RTT, send-rate estimate, bytes).
    pub fn stats(&self) -> TransportStats {
        self.link.stats()
    }

    /// Resolves once what this session's ended tracks and completed groups owe the peer has been
    /// delivered; see [`SessionLink::flushed`].
    pub async fn flushed(&self) -> FlushOutcome {
        self.link.flushed().await
    }

    /// Sends GOAWAY (lite-04+) with where to reconnect (empty = here), then closes the session
    /// with GOAWAY_TIMEOUT if the peer has not left within the drain timeout.
    pub async fn goaway(&self, uri: &str) -> Result<(), SessionError> {
        if !self.link.version.has_goaway() {
            return Err(SessionError::Unsupported("GOAWAY needs moq-lite-04 or later"));
        }
        if self.goaway_sent.swap(true, Ordering::Relaxed) {
            // A second GOAWAY would be a protocol violation of ours.
            return Err(SessionError::Unsupported("GOAWAY was already sent on this session"));
        }
        self.link
            .commands
            .send(Box::new(commands::Command::Goaway(uri.to_string())))
            .await
            .map_err(|_| SessionError::Closed)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        (self.close)(SessionCode::NoError, "");
    }
}

/// A server-side session whose client SETUP has been read: the application looks at the path and
/// accepts ([`Session::accept`]) or rejects ([`PendingSession::reject`]).
pub struct PendingSession<C: Connection> {
    conn: C,
    version: Version,
    peer_setup: Setup,
    backlog: Vec<Reader<C::Recv>>,
    /// The path and query of the WebTransport CONNECT request, which stands in for SETUP Path.
    url_path: Option<String>,
}

impl<C: Connection> PendingSession<C> {
    /// The path and query the client asked for: the CONNECT URL on WebTransport, SETUP Path on
    /// lite-05+ raw QUIC, empty otherwise.
    pub fn path(&self) -> &str {
        self.url_path.as_deref().or(self.peer_setup.path.as_deref()).unwrap_or("")
    }

    /// Records the WebTransport CONNECT path and query (the transport carries it, not SETUP).
    pub fn with_url_path(mut self, path_and_query: String) -> Self {
        self.url_path = Some(path_and_query);
        self
    }

    /// The client's SETUP.
    pub fn peer_setup(&self) -> &Setup {
        &self.peer_setup
    }

    /// The negotiated version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The connection the session runs on (e.g. to tell raw QUIC from WebTransport).
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// Refuses the session with UNAUTHORIZED.
    pub fn reject(self, reason: &str) {
        self.conn.close(SessionCode::Unauthorized.to_u64(), reason);
    }
}

/// Server side: waits for the client's SETUP (lite-05+) before anything else, as the reference
/// does (spec 11.2). No SETUP within the setup timeout closes the session with
/// CONTROL_MESSAGE_TIMEOUT; a malformed one with PROTOCOL_VIOLATION.
pub async fn accept_setup<C: Connection>(
    conn: C,
    version: Version,
    config: &SessionConfig,
) -> Result<PendingSession<C>, SessionError> {
    let mut backlog = Vec::new();
    let peer_setup = if version.has_setup() {
        closing_on_error(&conn, read_setup(&conn, version, config, &mut backlog).await)?
    } else {
        Setup::default()
    };
    Ok(PendingSession { conn, version, peer_setup, backlog, url_path: None })
}

/// Closes the connection with the error's session code when the SETUP exchange failed.
fn closing_on_error<C: Connection, T>(conn: &C, result: Result<T, SessionError>) -> Result<T, SessionError> {
    if let Err(err) = &result {
        conn.close(err.session_code().to_u64(), &err.to_string());
    }
    result
}

async fn send_setup<C: Connection>(conn: &C, version: Version, setup: &Setup) -> Result<(), SessionError> {
    let mut send = conn.open_uni().await?;
    let mut out = BytesMut::new();
    UniStream::Setup.encode(&mut out, version)?;
    setup.encode(&mut out, version)?;
    send.write(out.freeze()).await?;
    // A peer that has read our SETUP may stop the stream before we finish it: the SETUP is
    // delivered and that peer is done with the stream, so only the write decides.
    let _ = send.finish();
    Ok(())
}

/// Reads the peer's SETUP from its Setup stream. Other uni streams that arrive first are kept for
/// the session (bounded: a peer that opens many before its SETUP is in violation).
async fn read_setup<C: Connection>(
    conn: &C,
    version: Version,
    config: &SessionConfig,
    backlog: &mut Vec<Reader<C::Recv>>,
) -> Result<Setup, SessionError> {
    const MAX_EARLY_STREAMS: usize = 16;
    let wait = async {
        loop {
            let recv = conn.accept_uni().await?;
            let mut reader = Reader::new(recv, version, wire_setup_limit());
            match reader.read_with(UniStream::decode).await {
                Ok(Some(UniStream::Setup)) => {
                    let setup = reader.decode::<Setup>().await?;
                    return setup
                        .ok_or_else(|| SessionError::ProtocolViolation("Setup stream ended without SETUP".into()));
                }
                Ok(Some(UniStream::Group)) => {
                    if backlog.len() >= MAX_EARLY_STREAMS {
                        return Err(SessionError::ProtocolViolation("too many streams before SETUP".into()));
                    }
                    // Keep the stream (its type already read); the session reads the rest.
                    backlog.push(reader);
                }
                Ok(None) | Err(_) => refuse_unknown_uni(reader),
            }
        }
    };
    tokio::time::timeout(config.setup_timeout, wait).await.map_err(|_| SessionError::Timeout("SETUP"))?
}

fn wire_setup_limit() -> usize {
    crate::wire::MAX_SETUP_LEN as usize + 16
}

/// The session's main loop: accepts the peer's streams and dispatches them, runs the subscriber's
/// Announce stream, and ends everything together.
async fn run<C: Connection>(
    ctx: Arc<Context<C>>,
    origins: Origins,
    backlog: Vec<Reader<C::Recv>>,
    events: watch::Sender<SessionEvent>,
    mut commands: mpsc::Receiver<Box<commands::Command>>,
    probe_reports: watch::Sender<Option<ProbeReport>>,
) {
    let publisher = Arc::new(Publisher {
        ctx: ctx.clone(),
        origin: origins.publish,
        subscriptions: Arc::new(Semaphore::new(ctx.config.max_subscriptions)),
        announces: Arc::new(Semaphore::new(ctx.config.max_announce_requests)),
        lookups: Default::default(),
    });
    let subscriber = origins.subscribe.map(|origin| Arc::new(Subscriber::new(ctx.clone(), origin)));
    // Boxed: a channel allocates its first block of 32 slots up front, once per session.
    let (fatal_tx, mut fatal) = mpsc::channel::<Box<SessionError>>(4);
    let mut tasks = JoinSet::new();
    if let Some(subscriber) = &subscriber {
        let subscriber = subscriber.clone();
        let fatal_tx = fatal_tx.clone();
        tasks.spawn(async move {
            if let Err(err) = subscriber.run_announce().await {
                let _ = fatal_tx.send(Box::new(err)).await;
            }
        });
    }
    for reader in backlog {
        if let Some(subscriber) = subscriber.clone() {
            tasks.spawn(async move { subscriber.recv_group(reader).await });
        }
    }
    let mut probe_target: Option<watch::Sender<u64>> = None;
    let error = loop {
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            bi = ctx.conn.accept_bi() => {
                let (send, recv) = match bi { Ok(streams) => streams, Err(err) => break SessionError::Transport(err) };
                let mut reader = Reader::new(recv, ctx.version, ctx.config.max_message_size);
                let writer = Writer::new(send, ctx.version);
                let publisher = publisher.clone();
                let fatal_tx = fatal_tx.clone();
                let events = events.clone();
                // The stream type is read inside the task, so a slow peer cannot stall the loop.
                tasks.spawn(async move {
                    let kind = match reader.read_with(BidiStream::decode).await {
                        Ok(Some(kind)) => kind,
                        Ok(None) => return,
                        Err(err) => return refuse_unknown(writer, reader, &err),
                    };
                    // Each kind's future boxed: the task is as large as the kind it serves, not
                    // the largest (a session holds one task per open request).
                    match kind {
                        BidiStream::Announce => Box::pin(publisher.serve_announce(reader, writer)).await,
                        BidiStream::Subscribe => Box::pin(publisher.serve_subscribe(reader, writer)).await,
                        BidiStream::Track => Box::pin(publisher.serve_track(reader, writer)).await,
                        BidiStream::Fetch => Box::pin(publisher.serve_fetch(reader, writer)).await,
                        BidiStream::Probe => Box::pin(publisher.serve_probe(reader, writer)).await,
                        BidiStream::Goaway => {
                            let ctx = publisher.ctx.clone();
                            match receive_goaway(&mut reader, &events, &ctx).await {
                                // Both halves stay open until the session ends, as the spec has the
                                // sender FIN when it is about to close. A second GOAWAY on the same
                                // stream is a violation like one on a new stream.
                                Ok(()) => {
                                    tokio::select! {
                                        _ = ctx.conn.closed() => {}
                                        Ok(Some(_)) = reader.decode::<Goaway>() => {
                                            let err = SessionError::ProtocolViolation("a second GOAWAY".into());
                                            let _ = fatal_tx.send(Box::new(err)).await;
                                            return;
                                        }
                                    }
                                    let mut writer = writer;
                                    writer.finish();
                                }
                                Err(err) => {
                                    let _ = fatal_tx.send(Box::new(err)).await;
                                }
                            }
                        }
                    }
                });
            }
            uni = ctx.conn.accept_uni() => {
                let recv = match uni { Ok(recv) => recv, Err(err) => break SessionError::Transport(err) };
                let mut reader = Reader::new(recv, ctx.version, ctx.config.max_message_size);
                let subscriber = subscriber.clone();
                let fatal_tx = fatal_tx.clone();
                tasks.spawn(async move {
                    match reader.read_with(UniStream::decode).await {
                        Ok(Some(UniStream::Group)) => match subscriber {
                            Some(subscriber) => subscriber.recv_group(reader).await,
                            None => reader.recv_mut().stop(StreamCode::Cancelled),
                        },
                        // The peer's SETUP was read before the session started: this is a second.
                        Ok(Some(UniStream::Setup)) => {
                            let _ = fatal_tx.send(Box::new(SessionError::ProtocolViolation("a second Setup stream".into()))).await;
                        }
                        Ok(None) | Err(_) => refuse_unknown_uni(reader),
                    }
                });
            }
            datagram = ctx.conn.recv_datagram(), if subscriber.is_some() && ctx.version.has_track_info() => {
                match (datagram, &subscriber) {
                    (Ok(bytes), Some(subscriber)) => subscriber.recv_datagram(bytes),
                    (Err(err), _) => break SessionError::Transport(err),
                    _ => {}
                }
            }
            Some(command) = commands.recv() => match *command {
                commands::Command::Fetch(request, reply) => {
                    let ctx = ctx.clone();
                    tasks.spawn(async move {
                        let _ = reply.send(commands::fetch(ctx, request).await);
                    });
                }
                commands::Command::TrackInfo(broadcast, track, reply) => {
                    let ctx = ctx.clone();
                    tasks.spawn(async move {
                        let _ = reply.send(commands::track_info(&ctx, &broadcast, &track).await);
                    });
                }
                commands::Command::Probe(bitrate) => match probe_target.as_ref().filter(|t| !t.is_closed()) {
                    Some(target) => {
                        target.send_replace(bitrate);
                    }
                    None if ctx.is_going_away() => tracing::debug!("no Probe stream opened after GOAWAY"),
                    None => {
                        let (target, targets) = watch::channel(bitrate);
                        probe_target = Some(target);
                        let (ctx, reports) = (ctx.clone(), probe_reports.clone());
                        tasks.spawn(async move {
                            if let Err(err) = commands::probe(ctx, targets, reports).await {
                                tracing::debug!("probe stream ended: {err}");
                            }
                        });
                    }
                },
                commands::Command::Goaway(uri) => {
                    let ctx = ctx.clone();
                    tasks.spawn(async move {
                        if let Err(err) = commands::goaway(ctx, uri).await {
                            tracing::debug!("GOAWAY failed: {err}");
                        }
                    });
                }
            },
            Some(err) = fatal.recv() => {
                ctx.conn.close(err.session_code().to_u64(), &err.to_string());
                break *err;
            }
            err = ctx.conn.closed() => break SessionError::Transport(err),
        }
    };
    tracing::debug!(version = %ctx.version, "session ended: {error}");
    events.send_replace(SessionEvent::Closed(error));
    tasks.abort_all();
    if let Some(subscriber) = &subscriber {
        subscriber.abort_tasks();
    }
}

/// A uni stream of an unknown type: STOP_SENDING only, not fatal (spec 11.4). The stream is
/// dropped unread, as moq-relay does, so the code is the transport's implicit one: QUIC code 0,
/// outside the HTTP/3 range the moq-lite codes are mapped into (tests/it/bad_peers.rs compares).
fn refuse_unknown_uni<R: RecvStream>(reader: Reader<R>) {
    tracing::debug!("refused a uni stream of unknown type");
    drop(reader);
}

/// A bidi stream of an unknown type, or of one the version lacks: RESET_STREAM CANCELLED and
/// STOP_SENDING, not fatal (spec 11.4).
fn refuse_unknown<S: SendStream, R: RecvStream>(mut writer: Writer<S>, mut reader: Reader<R>, err: &SessionError) {
    if let SessionError::Decode(DecodeError::UnknownType { value, .. }) = err {
        tracing::debug!(value, "refused a bidi stream of unknown type");
    }
    writer.reset(StreamCode::Cancelled);
    reader.recv_mut().stop(StreamCode::Cancelled);
}

async fn receive_goaway<C: Connection>(
    reader: &mut Reader<C::Recv>,
    events: &watch::Sender<SessionEvent>,
    ctx: &Context<C>,
) -> Result<(), SessionError> {
    let Some(goaway) = reader.decode::<Goaway>().await? else { return Ok(()) };
    if ctx.going_away.swap(true, Ordering::Relaxed) {
        return Err(SessionError::ProtocolViolation("a second GOAWAY".into()));
    }
    // The empty-URI rule for clients is a lite-06 addition (spec 3.8, section 4).
    if ctx.is_server && ctx.version >= Version::Lite06 && !goaway.uri.is_empty() {
        return Err(SessionError::ProtocolViolation("a client's GOAWAY must have an empty URI".into()));
    }
    tracing::info!(uri = %goaway.uri, "peer sent GOAWAY");
    events.send_replace(SessionEvent::GoingAway { uri: goaway.uri });
    Ok(())
}
