//! The subscriber half of a session: asks the peer for announcements and mirrors every announced
//! broadcast into our origin, subscribing to a track (TRACK, then SUBSCRIBE; both at once for a
//! live-edge start on lite-06) only when a local consumer asks for it, and feeding arriving Group
//! streams into the model.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;

use super::mirror::{Attached, Mirror, Orphan, UpstreamHooks};
use super::priority::CONTROL_PRIORITY;
use super::stream::{Reader, Writer};
use super::{Context, FetchRequest, SessionError};
use crate::coding::StreamCode;
use crate::coding::{MAX_VARINT, Path};
use crate::model::{self, BroadcastSettings, GroupStart, Route, SubscribeOptions, TrackProducer};
use crate::transport::{Connection, RecvStream, StreamError};
use crate::wire::{
    AnnounceOk, AnnounceRequest, AnnounceStatus, Announcement, BidiStream, FrameTimestamps, GroupHeader, Message,
    Subscribe, SubscribeResponse, SubscribeUpdate, SubscribeWindow, Version,
};

/// One broadcast learned from the peer, held in the mirror for as long as this session serves it.
/// Dropping it (the session or its Announce stream ended) lets the broadcast linger for adoption.
struct Remote {
    /// The broadcast's path in our origin (under the session root).
    path: Path,
    /// Its path on the wire (relative to the session root).
    wire: Path,
    mirror: Mirror,
    owner: u64,
    ended: bool,
}

impl Remote {
    /// The publisher ended the broadcast: it goes now, no lingering.
    fn end(mut self) {
        self.ended = true;
        self.mirror.remove(&self.path, self.owner);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if !self.ended {
            self.mirror.detach(&self.path, self.owner);
        }
    }
}

/// Where a track goes if its session ends under it.
struct OrphanTarget {
    mirror: Mirror,
    path: Path,
    owner: u64,
    name: String,
    info: model::TrackInfo,
}

/// A live subscription's local track, shared with the Group streams that feed it. The track ends
/// when the last holder lets go, with the subscription's outcome: a Group stream still arriving
/// after SUBSCRIBE_END is still delivered.
struct SinkInner {
    producer: Mutex<Option<TrackProducer>>,
    outcome: Mutex<Option<Result<(), model::Error>>>,
    orphan: OrphanTarget,
}

type Sink = Arc<SinkInner>;

/// A SUBSCRIBE sent together with its TRACK, before the TRACK_INFO it would otherwise wait for
/// (spec 3.5 allows both at once): a viewer joining the live edge saves a round trip on every
/// hop. Only for a live-edge start on lite-06, where the SUBSCRIBE needs nothing from TRACK_INFO
/// (it travels with Max Age 0 until SUBSCRIBE_OK, and the SUBSCRIBE_UPDATE after it carries the
/// publisher's priority and Max Age as it always did).
struct EarlySubscription<C: Connection> {
    id: u64,
    streams: SubscribeStreams<C>,
    /// Hands the track to Group streams that arrived before it existed.
    ready: watch::Sender<Option<Sink>>,
}

/// A Subscribe stream with its SUBSCRIBE sent.
type SubscribeStreams<C> = (Writer<<C as Connection>::Send>, Reader<<C as Connection>::Recv>);

impl SinkInner {
    fn new(producer: TrackProducer, orphan: OrphanTarget) -> Sink {
        Arc::new(Self { producer: Mutex::new(Some(producer)), outcome: Mutex::new(None), orphan })
    }

    /// Runs `f` on the track while it is live.
    fn with<T>(&self, f: impl FnOnce(&mut TrackProducer) -> T) -> Option<T> {
        self.producer.lock().unwrap_or_else(PoisonError::into_inner).as_mut().map(f)
    }

    fn set_outcome(&self, outcome: Result<(), model::Error>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

impl Drop for SinkInner {
    fn drop(&mut self) {
        let producer = self.producer.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        let outcome = self.outcome.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        match (producer, outcome) {
            (Some(producer), Some(Ok(()))) => producer.finish(),
            (Some(producer), Some(Err(err))) => producer.abort(err),
            // The session went away under the track: keep it for a session that adopts it.
            (Some(producer), None) => {
                let OrphanTarget { mirror, path, owner, name, info } = &self.orphan;
                let orphan = Orphan { name: name.clone(), info: *info, producer };
                mirror.orphan_track(path, *owner, orphan);
            }
            (None, _) => {}
        }
    }
}

/// What the subscriber half shares between its tasks.
pub(crate) struct Subscriber<C: Connection> {
    pub(crate) ctx: Arc<Context<C>>,
    /// Where announced broadcasts go, kept across sessions.
    pub(crate) mirror: Mirror,
    /// This session's identity in the mirror.
    owner: u64,
    subscriptions: Mutex<HashMap<u64, Sink>>,
    /// Subscriptions sent before their TRACK_INFO came back (see [`EarlySubscription`]): Group
    /// streams that arrive for one wait here for its track, or are refused if it never comes.
    pending: Mutex<HashMap<u64, watch::Receiver<Option<Sink>>>>,
    next_id: AtomicU64,
    tasks: tokio_util_lite::TaskSet,
}

/// A minimal task set that aborts its tasks when dropped, so nothing outlives the session.
mod tokio_util_lite {
    use std::sync::{Mutex, PoisonError};
    use tokio::task::JoinSet;

    #[derive(Default)]
    pub(crate) struct TaskSet(Mutex<JoinSet<()>>);

    impl TaskSet {
        /// Aborts every task (their futures, and what they hold, are dropped).
        pub(crate) fn abort_all(&self) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).abort_all();
        }

        pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
            let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Reap finished tasks so the set does not grow with the session's history.
            while set.try_join_next().is_some() {}
            set.spawn(task);
        }
    }
}

impl<C: Connection> Subscriber<C> {
    pub(crate) fn new(ctx: Arc<Context<C>>, mirror: Mirror) -> Self {
        Self {
            mirror,
            owner: ctx.session_id,
            ctx,
            subscriptions: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            tasks: tokio_util_lite::TaskSet::default(),
        }
    }

    fn version(&self) -> Version {
        self.ctx.version
    }

    /// Ends every task of this half. Tasks hold the subscriber, so dropping it would not.
    pub(crate) fn abort_tasks(&self) {
        self.tasks.abort_all();
    }

    /// Opens the Announce stream and mirrors the peer's routes until it closes. A malformed or
    /// contradictory announcement ends the session with a protocol violation (spec 11.3).
    pub(crate) async fn run_announce(self: Arc<Self>) -> Result<(), SessionError> {
        let (send, recv) = self.ctx.conn.open_bi().await?;
        let mut writer = Writer::new(send, self.version());
        writer.set_priority(CONTROL_PRIORITY);
        let mut out = BytesMut::new();
        BidiStream::Announce.encode(&mut out, self.version())?;
        let exclude_hop =
            if matches!(self.version(), Version::Lite04 | Version::Lite05) { self.ctx.config.hop_id } else { 0 };
        AnnounceRequest { prefix: self.ctx.config.announce_prefix.clone(), exclude_hop }
            .encode(&mut out, self.version())?;
        writer.write(out.freeze()).await?;
        let mut reader = Reader::new(recv, self.version(), self.ctx.config.max_message_size);

        let mut publisher_hop = 0;
        if self.version().has_setup() {
            let ok = tokio::time::timeout(self.ctx.config.control_timeout, reader.decode::<AnnounceOk>())
                .await
                .map_err(|_| SessionError::Timeout("ANNOUNCE_OK"))??;
            let Some(ok) = ok else { return Ok(()) };
            publisher_hop = ok.hop_id;
        }
        let mut table = AnnounceTable::default();
        let result = loop {
            let deadline = table.ending.first().map(|(at, _)| *at + END_GRACE);
            let decoded = tokio::select! {
                decoded = reader.decode::<Announcement>() => decoded,
                _ = crate::model::sleep_until_or_forever(deadline) => {
                    table.flush_ended(tokio::time::Instant::now());
                    continue;
                }
            };
            let announcement = match decoded {
                Ok(Some(announcement)) => announcement,
                Ok(None) => break Ok(()),
                Err(SessionError::Stream(err)) => {
                    tracing::debug!("announce stream ended: {err}");
                    break Ok(());
                }
                Err(err) => break Err(err),
            };
            if let Err(err) = self.apply(&mut table, announcement, publisher_hop) {
                break Err(err);
            }
        };
        // Every route learned on the stream is gone with it (dropping the entries withdraws them).
        drop(table);
        result
    }

    fn route(&self, hops: Vec<u64>, publisher_hop: u64, warm: u64, cold: u64) -> Option<Route> {
        let mut hops = hops;
        if publisher_hop != 0 && self.version() >= Version::Lite05 {
            hops.push(publisher_hop);
        }
        let own = self.ctx.config.hop_id;
        if own != 0 && hops.contains(&own) {
            // A reflection of our own announcement: dropped silently (spec 11.9).
            return None;
        }
        let link = self.ctx.peer_cost;
        let add = |cost: u64| cost.saturating_add(link).min(MAX_VARINT);
        Some(Route { hops, warm_cost: add(warm), cold_cost: add(cold), via: self.owner })
    }

    fn apply(
        self: &Arc<Self>,
        table: &mut AnnounceTable,
        announcement: Announcement,
        publisher_hop: u64,
    ) -> Result<(), SessionError> {
        let prefix = &self.ctx.config.announce_prefix;
        let violation = |what: &str| SessionError::ProtocolViolation(what.to_string());
        match announcement {
            Announcement::Start { suffix, hops, warm_cost, cold_cost } => {
                let id = table.next_id;
                table.next_id += 1;
                let path = prefix.join(&suffix).map_err(|e| SessionError::Decode(e.into()))?;
                if table.by_path.contains_key(&path) {
                    return Err(violation("a second ANNOUNCE_START for an advertised path"));
                }
                table.ids.insert(id, path.clone());
                let route = self.route(hops, publisher_hop, warm_cost, cold_cost);
                let remote = match (table.take_ended(&path), route) {
                    // Ended a moment ago and back: keep the same broadcast.
                    (Some(remote), Some(route)) => {
                        self.mirror.update_route(&remote.path, self.owner, route);
                        Some(remote)
                    }
                    (_, route) => route.and_then(|route| self.start_remote(path.clone(), route)),
                };
                table.insert(path, remote, self.ctx.config.max_announced)?;
            }
            Announcement::Update { id, hops, warm_cost, cold_cost } => {
                let path = table.ids.get(&id).ok_or_else(|| violation("ANNOUNCE_UPDATE for an unknown ID"))?;
                if let Some(Some(remote)) = table.by_path.get(path) {
                    match self.route(hops, publisher_hop, warm_cost, cold_cost) {
                        Some(route) => self.mirror.update_route(&remote.path, self.owner, route),
                        None => {
                            table.by_path.insert(path.clone(), None);
                        }
                    }
                }
            }
            Announcement::End { id } => {
                let path = table.ids.remove(&id).ok_or_else(|| violation("ANNOUNCE_END for an unknown ID"))?;
                if let Some(Some(remote)) = table.by_path.remove(&path) {
                    table.end_later(remote);
                }
            }
            Announcement::Unknown { kind } => tracing::debug!(kind, "skipped an unknown announcement type"),
            Announcement::Legacy { status, suffix, hops } => {
                let path = prefix.join(&suffix).map_err(|e| SessionError::Decode(e.into()))?;
                match status {
                    AnnounceStatus::Active | AnnounceStatus::Restart => {
                        if table.by_path.contains_key(&path) && self.version() < Version::Lite05 {
                            return Err(violation("a second active ANNOUNCE for the same path"));
                        }
                        match (table.by_path.get(&path), self.route(hops, publisher_hop, 0, 0)) {
                            // A restart on lite-05 replaces the advertisement in place.
                            (Some(Some(remote)), Some(route)) => {
                                self.mirror.update_route(&remote.path, self.owner, route)
                            }
                            (_, Some(route)) => {
                                // Ended a moment ago and back (lite-04 encodes an update that way).
                                let remote = match table.take_ended(&path) {
                                    Some(remote) => {
                                        self.mirror.update_route(&remote.path, self.owner, route);
                                        Some(remote)
                                    }
                                    None => self.start_remote(path.clone(), route),
                                };
                                table.insert(path, remote, self.ctx.config.max_announced)?;
                            }
                            (_, None) => {
                                table.insert(path, None, self.ctx.config.max_announced)?;
                            }
                        }
                    }
                    AnnounceStatus::Ended => match table.by_path.remove(&path) {
                        Some(Some(remote)) => table.end_later(remote),
                        Some(None) => {}
                        // The drafts call it a violation; the reference relay ignores it on
                        // lite-04 and lite-05 and keeps the session (spec 11.9), and lite-03
                        // shares lite-04's announcement rules (spec 5). (lite-06 has no such
                        // message: an ANNOUNCE_END for an unknown ID stays a violation.)
                        None => tracing::debug!(%path, "ANNOUNCE ended for a path that is not active: ignored"),
                    },
                }
            }
        }
        Ok(())
    }

    /// Publishes a remote broadcast through the mirror (adopting a lingering one), serves local
    /// track requests for it and resumes its orphaned tracks.
    /// FETCH of a group the local cache lacks, forwarded to the peer on this session (held
    /// weakly: once the session is gone, such a fetch is cancelled).
    fn upstream_fetch(&self, broadcast: Path) -> model::UpstreamFetch {
        let ctx = Arc::downgrade(&self.ctx);
        Arc::new(move |request: model::GroupFetch| {
            let (ctx, broadcast) = (ctx.upgrade(), broadcast.clone());
            Box::pin(async move {
                let ctx = ctx.ok_or(model::Error::Aborted(StreamCode::SessionClosed))?;
                let request = FetchRequest {
                    broadcast,
                    track: request.track,
                    group: request.group,
                    frame_start: request.frame_start,
                    frame_end: request.frame_end,
                    priority: request.priority,
                };
                super::commands::fetch(ctx, request).await.map_err(|err| match err {
                    SessionError::Model(err) => err,
                    err => model::Error::Aborted(err.stream_code()),
                })
            })
        })
    }

    /// TRACK of a track that is not live here, forwarded to the peer on this session (held
    /// weakly, like [`Self::upstream_fetch`]).
    fn upstream_info(&self, broadcast: Path) -> model::UpstreamInfo {
        let ctx = Arc::downgrade(&self.ctx);
        Arc::new(move |track: String| {
            let (ctx, broadcast) = (ctx.upgrade(), broadcast.clone());
            Box::pin(async move {
                let ctx = ctx.ok_or(model::Error::Aborted(StreamCode::SessionClosed))?;
                super::commands::track_info(&ctx, &broadcast, &track).await.map_err(|err| match err {
                    SessionError::Model(err) => err,
                    err => model::Error::Aborted(err.stream_code()),
                })
            })
        })
    }

    fn start_remote(self: &Arc<Self>, wire: Path, route: Route) -> Option<Remote> {
        let path = self.ctx.local_path(&wire).ok()?;
        let settings = BroadcastSettings { serve_requests: true, cache: self.ctx.config.cache, ..Default::default() };
        let upstream = if self.version() >= Version::Lite05 {
            UpstreamHooks {
                fetch: Some(self.upstream_fetch(wire.clone())),
                info: Some(self.upstream_info(wire.clone())),
            }
        } else {
            UpstreamHooks::default()
        };
        let Attached { producer, orphans, mut late } =
            self.mirror.attach(&path, route, self.owner, settings, upstream)?;
        tracing::debug!(%path, "broadcast announced by peer");
        let this = self.clone();
        let broadcast = wire.clone();
        self.tasks.spawn(async move {
            while let Some(request) = producer.next_request().await {
                let this = this.clone();
                let broadcast = broadcast.clone();
                this.clone().tasks.spawn(async move { this.subscribe_remote(broadcast, request).await });
            }
        });
        for orphan in orphans {
            self.resume_orphan(wire.clone(), orphan);
        }
        let this = self.clone();
        let broadcast = wire.clone();
        self.tasks.spawn(async move {
            while let Some(orphan) = late.recv().await {
                this.resume_orphan(broadcast.clone(), orphan);
            }
        });
        Some(Remote { path, wire, mirror: self.mirror.clone(), owner: self.owner, ended: false })
    }

    /// Subscribes again to a track an earlier session left, from the group after the last it got.
    fn resume_orphan(self: &Arc<Self>, broadcast: Path, orphan: Orphan) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let from = orphan.producer.latest_sequence().map(|seq| seq.saturating_add(1).min(MAX_VARINT - 1));
            this.run_track(broadcast, orphan.name, orphan.info, orphan.producer, Some(Resume { from }), None).await
        });
    }

    /// Subscribes to one remote track for local consumers: TRACK (lite-05+), then SUBSCRIBE, or
    /// both at once for a live-edge start on lite-06 ([`EarlySubscription`]).
    async fn subscribe_remote(self: Arc<Self>, broadcast: Path, request: model::TrackRequest) {
        let track = request.name().to_string();
        if self.ctx.is_going_away() {
            // After GOAWAY no new requests go to this peer; the application reconnects.
            return request.reject(model::Error::Aborted(StreamCode::GoingAway));
        }
        let wanted = request.options();
        let (info, early) = if self.version() >= Version::Lite06 && wanted.start == GroupStart::Latest {
            let (info, early) =
                tokio::join!(self.track_info(&broadcast, &track), self.subscribe_early(&broadcast, &track, &wanted));
            (info, early.ok())
        } else {
            (self.track_info(&broadcast, &track).await, None)
        };
        let info = match info {
            Ok(info) => info,
            Err(err) => {
                tracing::debug!(%broadcast, %track, "TRACK failed: {err}");
                if let Some(early) = early {
                    self.abandon_early(early);
                }
                return request.reject(model::Error::Aborted(err.stream_code()));
            }
        };
        match request.accept(info) {
            Ok(producer) => self.run_track(broadcast, track, info, producer, None, early).await,
            Err(err) => {
                tracing::debug!(%broadcast, %track, "track request gone: {err}");
                if let Some(early) = early {
                    self.abandon_early(early);
                }
            }
        }
    }

    /// Sends a live-edge SUBSCRIBE before TRACK_INFO is known; its Group streams wait for the track.
    async fn subscribe_early(
        &self,
        broadcast: &Path,
        track: &str,
        wanted: &SubscribeOptions,
    ) -> Result<EarlySubscription<C>, SessionError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (ready, waiting) = watch::channel(None);
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(id, waiting);
        // What TRACK_INFO would give only matters here for the priority of the first round trip;
        // the SUBSCRIBE_UPDATE after SUBSCRIBE_OK sends the publisher's.
        let window = self.window(&model::TrackInfo::default(), wanted, None);
        match self.open_subscription(id, broadcast, track, window).await {
            Ok(streams) => Ok(EarlySubscription { id, streams, ready }),
            Err(err) => {
                self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                tracing::debug!(%broadcast, %track, "early SUBSCRIBE failed: {err}");
                Err(err)
            }
        }
    }

    /// Cancels a SUBSCRIBE sent early for a track that did not come to be (TRACK failed, or
    /// nobody wants it any more); its waiting Group streams are refused.
    fn abandon_early(&self, early: EarlySubscription<C>) {
        let EarlySubscription { id, streams: (mut writer, mut reader), ready } = early;
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        drop(ready);
        writer.reset(StreamCode::Cancelled);
        reader.recv_mut().stop(StreamCode::Cancelled);
    }

    /// Feeds `producer` from a subscription with what its consumers want, resumed (from the group
    /// after the last it got, if any) when it continues after a migration, with SUBSCRIBE_UPDATE when that changes, cancelled when no
    /// local consumer is left. If the session ends under it, the track is orphaned, not ended.
    async fn run_track(
        self: Arc<Self>,
        broadcast: Path,
        track: String,
        info: model::TrackInfo,
        producer: TrackProducer,
        resume: Option<Resume>,
        early: Option<EarlySubscription<C>>,
    ) {
        let mut producer = producer;
        let mut early = early;
        // moq-lite-03/04 frames carry no timestamp: say so, rather than let 0 pass for one.
        producer.set_has_timestamps(self.version().has_timestamps());
        let interest = producer.interest();
        let mut wanted = loop {
            if let Some(wanted) = interest.current() {
                break wanted;
            }
            // Nobody reads it any more (the requester left before the TRACK answer): it ends as
            // cancelled, not finished, so a later consumer requests it afresh rather than finding a
            // track that looks ended. Unless a consumer attached meanwhile: then it goes on.
            if producer.abort_if_unused(model::Error::Cancelled) {
                if let Some(early) = early {
                    self.abandon_early(early);
                }
                return;
            }
            tokio::task::yield_now().await;
        };
        if let Some(Resume { from: Some(next) }) = resume {
            wanted.start = GroupStart::Floor(next);
        }
        // A consumer that asked for another start meanwhile gets the SUBSCRIBE it asked for.
        if wanted.start != GroupStart::Latest
            && let Some(stale) = early.take()
        {
            self.abandon_early(stale);
        }
        let id = match &early {
            Some(early) => early.id,
            None => self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let Ok(local) = self.ctx.local_path(&broadcast) else {
            return producer.abort(model::Error::Aborted(StreamCode::InternalError));
        };
        let orphan =
            OrphanTarget { mirror: self.mirror.clone(), path: local, owner: self.owner, name: track.clone(), info };
        // Groups arrive on separate streams from here on: consumers joining meanwhile must know
        // which sequences may still be in flight, and a latest-group start waits for SUBSCRIBE_OK.
        producer.expect_upstream(match wanted.start {
            GroupStart::Floor(floor) => Some(floor),
            GroupStart::Latest => None,
        });
        let sink = SinkInner::new(producer, orphan);
        let retry_until = resume.map(|_| tokio::time::Instant::now() + self.ctx.config.resume_retry_window);
        let mut id = id;
        let mut pause = RESUME_RETRY_PAUSE;
        let result = loop {
            self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).insert(id, sink.clone());
            // Group streams that came before the track go on into it. The pending entry (and the
            // sender behind it) stays until the subscription ends: a stream that missed the track
            // a moment ago finds it there.
            let (opened, _ready) = match early.take() {
                Some(EarlySubscription { streams, ready, .. }) => {
                    ready.send_replace(Some(sink.clone()));
                    (Some(streams), Some(ready))
                }
                None => (None, None),
            };
            let result =
                self.run_subscription(id, &broadcast, &track, info, wanted, interest.clone(), &sink, opened).await;
            self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            // A resumed track refused as not there yet is asked for again, within the window.
            let not_there = matches!(&result, Err(err) if is_not_there(err));
            match retry_until {
                Some(until)
                    if not_there && !self.ctx.is_going_away() && tokio::time::Instant::now() + pause < until =>
                {
                    tracing::debug!(%broadcast, %track, id, "resumed subscription refused as not there yet; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RESUME_RETRY_PAUSE * 8);
                    id = self.next_id.fetch_add(1, Ordering::Relaxed);
                }
                _ => break result,
            }
        };
        match result {
            // The outcome was set when the publisher's FIN arrived.
            Ok(()) => {}
            // The connection is gone: leave the outcome open so the track is orphaned.
            Err(SessionError::Transport(_)) | Err(SessionError::Stream(StreamError::Connection(_))) => {
                tracing::debug!(%broadcast, %track, id, "session ended under the subscription");
            }
            // A relay shutting down resets its subscriptions just before closing the session
            // (moq-relay sends INTERNAL_ERROR): a reset followed by the end of the session is the
            // session ending, not the track.
            Err(
                err @ SessionError::Stream(StreamError::Reset(
                    StreamCode::InternalError | StreamCode::SessionClosed | StreamCode::GoingAway,
                )),
            ) if self.session_ending().await => {
                tracing::debug!(%broadcast, %track, id, "subscription reset as the session ended: {err}");
            }
            // A resumed track refused by a peer that is going away (a draining relay whose
            // publisher session is gone no longer routes it) waits for the next session.
            Err(err) if resume.is_some() && is_not_there(&err) && self.session_ending().await => {
                tracing::debug!(%broadcast, %track, id, "resumed subscription refused as the session ended: {err}");
            }
            Err(err) => {
                tracing::debug!(%broadcast, %track, id, "subscription ended: {err}");
                sink.set_outcome(Err(model::Error::Aborted(err.stream_code())));
            }
        }
    }

    /// True if the session is going away or ends within a short grace period.
    async fn session_ending(&self) -> bool {
        const GRACE: Duration = Duration::from_millis(500);
        self.ctx.is_going_away() || tokio::time::timeout(GRACE, self.ctx.conn.closed()).await.is_ok()
    }

    async fn track_info(&self, broadcast: &Path, track: &str) -> Result<model::TrackInfo, SessionError> {
        super::commands::track_info(&self.ctx, broadcast, track).await
    }

    /// The wire window for what the local consumers want; `resolved` is the publisher's answer to
    /// a latest-group start (SUBSCRIBE_OK.Group), once known.
    ///
    /// Lite-06 has no "latest group" start: Group Start is a floor, and the publisher starts at the
    /// oldest group the subscriber's Max Age allows (spec 3.4). A latest-group start is asked as
    /// Max Age 0 with no floor, the live edge; once SUBSCRIBE_OK says which group that is, a
    /// SUBSCRIBE_UPDATE restores the real Max Age with that group as the floor. (An update sent
    /// before the answer would let a publisher that resolves the start lazily, as moq-relay does,
    /// resolve it with the real Max Age: the whole backlog.)
    fn window(&self, info: &model::TrackInfo, wanted: &SubscribeOptions, resolved: Option<u64>) -> SubscribeWindow {
        let latest_pending = wanted.start == GroupStart::Latest && resolved.is_none();
        let group_start = match (wanted.start, resolved) {
            (GroupStart::Latest, Some(from)) => Some(from),
            (GroupStart::Latest, None) => None,
            (GroupStart::Floor(0), _) if self.version() >= Version::Lite06 => None,
            (GroupStart::Floor(floor), _) => Some(floor),
        };
        let max_age = if latest_pending && self.version() >= Version::Lite06 {
            0
        } else {
            model::duration_ms(wanted.max_age.unwrap_or(info.max_age))
        };
        SubscribeWindow {
            priority: wanted.priority.unwrap_or(info.priority),
            ordered: false,
            max_age,
            group_start,
            group_end: wanted.end,
            ..Default::default()
        }
    }

    /// Opens a Subscribe stream and sends SUBSCRIBE with `window`.
    async fn open_subscription(
        &self,
        id: u64,
        broadcast: &Path,
        track: &str,
        window: SubscribeWindow,
    ) -> Result<SubscribeStreams<C>, SessionError> {
        let version = self.version();
        let (send, recv) = self.ctx.conn.open_bi().await?;
        let mut writer = Writer::new(send, version);
        writer.set_priority(CONTROL_PRIORITY);
        let mut out = BytesMut::new();
        BidiStream::Subscribe.encode(&mut out, version)?;
        Subscribe { id, broadcast: broadcast.clone(), track: track.to_string(), window }.encode(&mut out, version)?;
        writer.write(out.freeze()).await?;
        Ok((writer, Reader::new(recv, version, self.ctx.config.max_message_size)))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_subscription(
        &self,
        id: u64,
        broadcast: &Path,
        track: &str,
        info: model::TrackInfo,
        wanted: SubscribeOptions,
        mut interest: model::InterestWatch,
        sink: &Sink,
        opened: Option<SubscribeStreams<C>>,
    ) -> Result<(), SessionError> {
        let version = self.version();
        let mut resolved = None;
        // The floor we asked for. On lite-06 a floor of 0 travels as "no floor" (Group Start 0), yet
        // SUBSCRIBE_OK.Group above it still means everything below was skipped (spec 3.4).
        let requested = match wanted.start {
            GroupStart::Floor(floor) => Some(floor),
            GroupStart::Latest => None,
        };
        let (mut writer, mut reader) = match opened {
            Some(streams) => streams,
            None => self.open_subscription(id, broadcast, track, self.window(&info, &wanted, resolved)).await?,
        };
        // SUBSCRIBE_END's exclusive end (lite-05+): sequences below it never seen were lost.
        let mut end_group = None;
        // SUBSCRIBE_OK's first group (lite-05+): where the sequences owed to us start.
        let mut first_group = None;
        loop {
            tokio::select! {
                response = reader.decode::<SubscribeResponse>() => match response? {
                    Some(SubscribeResponse::Ok { group }) => {
                        tracing::trace!(id, group, "SUBSCRIBE_OK");
                        first_group = Some(group);
                        // Anything between the requested start and the first delivered group is dropped.
                        if let Some(start) = requested.filter(|start| *start < group) {
                            sink.with(|track| track.drop_groups(start, group - 1, model::Error::Aborted(StreamCode::NotFound)));
                        }
                        sink.with(|track| track.upstream_started(Some(group)));
                        if requested.is_none() && resolved.is_none() {
                            // Later updates name the live edge it answered as their floor.
                            resolved = Some(group);
                            if version >= Version::Lite06 {
                                // The live edge is known: the real Max Age from it on.
                                let wanted = interest.current().unwrap_or(wanted);
                                let update = SubscribeUpdate { window: self.window(&info, &wanted, resolved) };
                                tracing::trace!(id, ?update, "SUBSCRIBE_UPDATE after the live edge");
                                writer.send(&update).await?;
                            }
                        }
                    }
                    Some(SubscribeResponse::OkLegacy(_)) => {
                        tracing::trace!(id, "SUBSCRIBE_OK");
                        // No group in it: a latest-group start is decided from what arrives.
                        if requested.is_none() {
                            sink.with(|track| track.upstream_started(None));
                        }
                    }
                    Some(SubscribeResponse::End { group }) => {
                        tracing::trace!(id, group, "SUBSCRIBE_END");
                        end_group = Some(group);
                    }
                    Some(SubscribeResponse::Drop { start, end, code }) => {
                        tracing::debug!(id, start, end, code, "SUBSCRIBE_DROP");
                        let reason = model::Error::from_code(StreamCode::from_peer(code));
                        sink.with(|track| track.drop_groups(start, end, reason));
                    }
                    None => {
                        // The publisher finished the track: that is its outcome from now on, also
                        // if the session closes during the grace below (a publisher that finishes,
                        // flushes and disconnects at once), which would otherwise orphan the
                        // track and end it as closed.
                        sink.set_outcome(Ok(()));
                        // The FIN means every group stream was opened; give the last ones time to
                        // deliver their GROUP header before late arrivals are refused. Our own FIN
                        // follows, so a publisher that waits for it (a flush before closing) knows
                        // they were taken in.
                        match end_group {
                            Some(end) => await_stragglers(sink, first_group.or(requested), end).await,
                            None => tokio::time::sleep(STRAGGLER_GRACE).await,
                        }
                        if let Some(end) = end_group {
                            // Sequences past the newest one seen and below SUBSCRIBE_END never
                            // arrived: say so rather than end as if they had not existed.
                            sink.with(|track| {
                                let first = track.latest_sequence().map_or(0, |seq| seq.saturating_add(1));
                                if first < end {
                                    track.drop_groups(first, end - 1, model::Error::Aborted(StreamCode::DeliveryTimeout));
                                }
                            });
                        }
                        writer.finish();
                        return Ok(());
                    }
                },
                changed = interest.changed() => match changed {
                    Some(wanted) => {
                        let update = SubscribeUpdate { window: self.window(&info, &wanted, resolved) };
                        tracing::trace!(id, ?update, "SUBSCRIBE_UPDATE");
                        writer.send(&update).await?;
                    }
                    None => {
                        // Demand: no local consumer is left, so the subscription is cancelled and
                        // the local track ends with it (a later consumer requests it afresh). A
                        // consumer may have attached since we looked (a relay's TRACK lookup and
                        // the SUBSCRIBE behind it race here): then the subscription goes on.
                        if sink.with(|track| track.abort_if_unused(model::Error::Cancelled)) == Some(false) {
                            continue;
                        }
                        writer.reset(StreamCode::Cancelled);
                        reader.recv_mut().stop(StreamCode::Cancelled);
                        return Err(SessionError::Model(model::Error::Cancelled));
                    }
                },
            }
        }
    }

    /// Feeds one DATAGRAM (a one-frame group) into the subscription it names. Unknown
    /// subscriptions, malformed or duplicate datagrams are dropped silently, as the spec asks.
    pub(crate) fn recv_datagram(&self, bytes: bytes::Bytes) {
        let Ok(datagram) = crate::wire::Datagram::decode(bytes, self.version()) else { return };
        let sink =
            self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).get(&datagram.subscribe_id).cloned();
        let Some(sink) = sink else { return };
        let created = sink.with(|track| track.create_group(datagram.sequence));
        if let Some(Ok(mut group)) = created {
            let bytes = datagram.payload.len() as u64;
            if group.write(datagram.timestamp, datagram.payload).is_ok() {
                let _ = group.finish();
                if let Some(traffic) = &self.ctx.config.traffic {
                    traffic.received(1, bytes, true);
                }
            }
        }
    }

    /// The track of a subscription sent before its TRACK_INFO, once it exists; `None` if there is
    /// no such subscription or it was abandoned.
    async fn track_of_early(&self, id: u64) -> Option<Sink> {
        let waiting = self.pending.lock().unwrap_or_else(PoisonError::into_inner).get(&id).cloned();
        let mut waiting = waiting?;
        let ready = waiting.wait_for(Option::is_some).await.ok()?;
        ready.clone()
    }

    /// Feeds one Group stream (its type already read) into the subscription it names.
    pub(crate) async fn recv_group(&self, mut reader: Reader<C::Recv>) {
        reader.set_max_buffered(super::stream::GROUP_STREAM_BUFFER);
        let header = match reader.decode::<GroupHeader>().await {
            Ok(Some(header)) => header,
            _ => return reader.recv_mut().stop(StreamCode::Cancelled),
        };
        tracing::trace!(subscribe_id = header.subscribe_id, sequence = header.sequence, "group stream received");
        let sink = self.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).get(&header.subscribe_id).cloned();
        let sink = match sink {
            Some(sink) => Some(sink),
            None => self.track_of_early(header.subscribe_id).await,
        };
        let Some(sink) = sink else {
            // A late group of a subscription we already ended.
            return reader.recv_mut().stop(StreamCode::Cancelled);
        };
        let group = sink.with(|track| track.create_partial_group(header.sequence, header.frame_start));
        drop(sink);
        let mut group = match group.unwrap_or(Err(model::Error::Closed)) {
            Ok(group) => group,
            Err(err) => {
                tracing::debug!(sequence = header.sequence, "group refused: {err}");
                return reader.recv_mut().stop(err.code());
            }
        };
        let mut timestamps = FrameTimestamps::new();
        let (mut frames, mut bytes) = (0u64, 0u64);
        let count = |frames, bytes, complete| {
            if let Some(traffic) = &self.ctx.config.traffic {
                traffic.received(frames, bytes, complete);
            }
        };
        loop {
            match reader.read_frame(&mut timestamps).await {
                Ok(Some(frame)) => {
                    let size = frame.payload.len() as u64;
                    if let Err(err) = group.write(frame.timestamp, frame.payload) {
                        tracing::debug!(sequence = header.sequence, frames, "group stream refused mid-way: {err}");
                        count(frames, bytes, false);
                        return reader.recv_mut().stop(err.code());
                    }
                    frames += 1;
                    bytes += size;
                }
                Ok(None) => {
                    tracing::trace!(sequence = header.sequence, frames, "group stream finished");
                    let _ = group.finish();
                    return count(frames, bytes, true);
                }
                Err(err) => {
                    let code = match &err {
                        SessionError::Decode(_) => StreamCode::MalformedTrack,
                        other => other.stream_code(),
                    };
                    tracing::debug!(sequence = header.sequence, frames, ?code, "group stream cut short: {err}");
                    reader.recv_mut().stop(code);
                    count(frames, bytes, false);
                    return group.abort(model::Error::from_code(code));
                }
            }
        }
    }
}

/// The routes learned on one Announce stream, by path and by lite-06 Announce ID.
#[derive(Default)]
struct AnnounceTable {
    ids: HashMap<u64, Path>,
    next_id: u64,
    /// `None` for a path announced to us that we do not route (a reflection).
    by_path: HashMap<Path, Option<Remote>>,
    /// Broadcasts the peer just ended, held for [`END_GRACE`]: a relay shutting down ends every
    /// broadcast right before it closes the session, and that end must read as the session ending
    /// (the broadcast lingers for the next session) rather than the publisher stopping.
    ending: Vec<(tokio::time::Instant, Remote)>,
}

/// How long a subscription stays registered after the publisher's FIN without SUBSCRIBE_END
/// (lite-03/04), for Group streams whose header has not been read yet: nothing says whether any
/// are still coming, so every such track end waits this long.
const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

/// With SUBSCRIBE_END, how long after the last group that arrived the sequences still owed below
/// it are waited for before they are reported lost. Longer than [`STRAGGLER_GRACE`] because it
/// costs nothing when all arrive (the wait ends with the last), and a relay process starved of
/// CPU can open its last group streams more than half a second after the FIN (the likely cause
/// of a loaded suite run that lost a clip's last audio packet at the end of its track).
const STRAGGLER_QUIET: Duration = Duration::from_secs(2);

/// The longest a subscription waits after the publisher's FIN for Group streams still arriving.
const STRAGGLER_MAX: Duration = Duration::from_secs(5);

/// After the publisher's FIN and SUBSCRIBE_END `end`: waits until every sequence from `first`
/// (SUBSCRIBE_OK's group, else the floor asked for) below `end` arrived or was reported lost, or
/// until none arrived for [`STRAGGLER_QUIET`], and [`STRAGGLER_MAX`] at most. Streams opened before the FIN can trail it
/// by much more than a fixed grace: after an outage or under loss they are retransmitted newest
/// first behind a collapsed congestion window, the oldest last, and a fixed cut-off refused
/// groups that did arrive and reported them as never produced. A sequence the publisher skipped
/// without a word is still reported as such, one grace after the last arrival.
async fn await_stragglers(sink: &Sink, first: Option<u64>, end: u64) {
    let Some(mut changes) = sink.with(|track| track.changes()) else { return };
    let started = tokio::time::Instant::now();
    let mut quiet_until = started + STRAGGLER_QUIET;
    let mut owed = None;
    loop {
        let Some(now_owed) = sink.with(|track| track.unaccounted(first, end)) else { return };
        if now_owed == 0 {
            return;
        }
        if owed.is_some_and(|before| now_owed < before) {
            quiet_until = tokio::time::Instant::now() + STRAGGLER_QUIET;
        }
        owed = Some(now_owed);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(quiet_until.min(started + STRAGGLER_MAX)) => return,
        }
    }
}

/// How long an ended broadcast waits to see whether its session ends too.
const END_GRACE: Duration = Duration::from_millis(500);

/// A track taken over from an earlier session: `from` is the group after the last it got.
#[derive(Clone, Copy)]
struct Resume {
    from: Option<u64>,
}

/// A refusal that says the track is not there (yet): worth asking again for a resumed track.
fn is_not_there(err: &SessionError) -> bool {
    matches!(err.stream_code(), StreamCode::NotFound | StreamCode::Unroutable)
}

/// The first pause before a resumed track asks again (doubling, at most 8 times this), within
/// `SessionConfig::resume_retry_window`.
const RESUME_RETRY_PAUSE: Duration = Duration::from_millis(100);

impl AnnounceTable {
    /// Records a path announced on the stream; a peer past `max` paths is in violation (the table
    /// must not grow without bound, whether or not the paths are routed).
    fn insert(&mut self, path: Path, remote: Option<Remote>, max: usize) -> Result<(), SessionError> {
        if !self.by_path.contains_key(&path) && self.by_path.len() >= max {
            return Err(SessionError::Limit(format!("more than {max} announced paths on one stream")));
        }
        self.by_path.insert(path, remote);
        Ok(())
    }

    fn end_later(&mut self, remote: Remote) {
        self.ending.push((tokio::time::Instant::now(), remote));
    }

    fn take_ended(&mut self, wire: &Path) -> Option<Remote> {
        let index = self.ending.iter().position(|(_, remote)| &remote.wire == wire)?;
        Some(self.ending.remove(index).1)
    }

    /// Ends for good what has waited out the grace period.
    fn flush_ended(&mut self, now: tokio::time::Instant) {
        while self.ending.first().is_some_and(|(at, _)| now.duration_since(*at) >= END_GRACE) {
            let (_, remote) = self.ending.remove(0);
            remote.end();
        }
    }
}
