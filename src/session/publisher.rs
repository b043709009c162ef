//! The publisher half of a session: answers the peer's requests from the origin we publish.
//! ANNOUNCE_REQUEST gets our routes, SUBSCRIBE gets Group streams, TRACK gets TRACK_INFO, FETCH gets
//! frames, PROBE gets reports. Each request lives on its own bidi stream and task.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use crate::wire::Message;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::{self, AbortHandle, JoinSet};

use super::flush::{ACK_WAIT, Outstanding, Pending};
use super::priority::{CONTROL_PRIORITY, group_priority};
use super::stream::{Reader, Writer};
use super::{Context, SessionError, Traffic};
use crate::coding::Path;
use crate::coding::StreamCode;
use crate::model::{self, GroupConsumer, GroupFetch, GroupStart, OriginConsumer, Route, SubscribeOptions, TrackEvent};
use crate::transport::Connection;
use crate::wire::{
    AnnounceOk, AnnounceRequest, AnnounceStatus, Announcement, Fetch, FrameHeader, FrameTimestamps, GroupHeader,
    MAX_HOPS, Probe, ProbeLevel, Subscribe, SubscribeOkLegacy, SubscribeResponse, SubscribeUpdate, TrackInfo,
    TrackRequest, UniStream, Version,
};

/// What the publisher half shares between its request tasks.
pub(crate) struct Publisher<C: Connection> {
    pub(crate) ctx: Arc<Context<C>>,
    /// What we publish; `None` answers every request with a reset.
    pub(crate) origin: Option<OriginConsumer>,
    pub(crate) subscriptions: Arc<Semaphore>,
    pub(crate) announces: Arc<Semaphore>,
    /// Tracks that TRACK requests had to subscribe to, held for the SUBSCRIBE that follows.
    pub(crate) lookups: Arc<Mutex<Lookups>>,
}

/// A track by its wire broadcast path and name.
type TrackKey = (Path, String);

/// The subscriptions TRACK lookups opened, and the SUBSCRIBEs that took them over, on one session.
///
/// A relay answering TRACK for a track that is not live here, in a broadcast whose upstream cannot
/// answer TRACK alone (lite-03/04), has to subscribe upstream to learn its info. Dropping that
/// consumer at once would cancel the upstream subscription and race the SUBSCRIBE that usually
/// follows into opening a second one; so it is held until a SUBSCRIBE for the same track on this
/// session has a consumer of its own, and released then, so the upstream subscription ends as soon
/// as that SUBSCRIBE does. A lookup no SUBSCRIBE claims is released after
/// `SessionConfig::track_lookup_hold`.
#[derive(Default)]
pub(crate) struct Lookups {
    /// Held lookup consumers, each with the id its release timer names.
    held: HashMap<TrackKey, Vec<(u64, model::TrackConsumer)>>,
    /// Live SUBSCRIBEs per track: a lookup for one of these need not be held.
    subscribed: HashMap<TrackKey, usize>,
    next_id: u64,
}

/// A SUBSCRIBE's claim on its track's lookups: while it lives, no lookup for the track is held.
struct LookupClaim {
    lookups: Arc<Mutex<Lookups>>,
    key: TrackKey,
}

impl Drop for LookupClaim {
    fn drop(&mut self) {
        let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = lookups.subscribed.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                lookups.subscribed.remove(&self.key);
            }
        }
    }
}

/// Resets a request stream: both halves, with one code.
fn refuse<C: Connection>(writer: &mut Writer<C::Send>, reader: &mut Reader<C::Recv>, code: StreamCode) {
    use crate::transport::RecvStream;
    writer.reset(code);
    reader.recv_mut().stop(code);
}

impl<C: Connection> Publisher<C> {
    fn version(&self) -> Version {
        self.ctx.version
    }

    /// Holds the consumer a TRACK lookup subscribed with until a SUBSCRIBE for the track claims
    /// it (see [`Lookups`]); dropped at once if one already has.
    fn hold_lookup(&self, key: TrackKey, consumer: model::TrackConsumer) {
        let id = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            if lookups.subscribed.contains_key(&key) {
                drop(lookups);
                drop(consumer);
                return;
            }
            let id = lookups.next_id;
            lookups.next_id += 1;
            lookups.held.entry(key.clone()).or_default().push((id, consumer));
            id
        };
        let lookups = Arc::downgrade(&self.lookups);
        let hold = self.ctx.config.track_lookup_hold;
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let Some(lookups) = lookups.upgrade() else { return };
            let released = {
                let mut lookups = lookups.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(held) = lookups.held.get_mut(&key) else { return };
                let released = held.iter().position(|(held_id, _)| *held_id == id).map(|at| held.remove(at));
                if held.is_empty() {
                    lookups.held.remove(&key);
                }
                released
            };
            if released.is_some() {
                tracing::debug!(broadcast = %key.0, track = %key.1, "TRACK lookup released: no SUBSCRIBE followed");
            }
        });
    }

    /// A SUBSCRIBE for `key` has its own consumer: the lookups held for it are released (outside
    /// the lock: dropping a consumer may end the track), and none is held while the claim lives.
    fn claim_lookups(&self, key: TrackKey) -> LookupClaim {
        let released = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            *lookups.subscribed.entry(key.clone()).or_default() += 1;
            lookups.held.remove(&key)
        };
        drop(released);
        LookupClaim { lookups: self.lookups.clone(), key }
    }

    /// Serves one Announce stream (the stream type is already read).
    pub(crate) async fn serve_announce(&self, mut reader: Reader<C::Recv>, mut writer: Writer<C::Send>) {
        let Ok(_permit) = self.announces.clone().try_acquire_owned() else {
            tracing::debug!("announce request over the limit of {}", self.ctx.config.max_announce_requests);
            return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled);
        };
        let request = match reader.decode::<AnnounceRequest>().await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled),
        };
        writer.set_priority(CONTROL_PRIORITY);
        let exclude = if request.exclude_hop != 0 { request.exclude_hop } else { self.ctx.peer_hop };
        let Ok(prefix) = self.ctx.local_path(&request.prefix) else {
            return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled);
        };
        let scoped = self
            .origin
            .as_ref()
            .and_then(|origin| origin.scoped(&prefix, exclude))
            .map(|origin| origin.excluding_session(self.ctx.session_id));
        match self.announce_loop(&prefix, scoped, &mut reader, &mut writer).await {
            Ok(()) => {
                writer.finish();
            }
            Err(err) => {
                tracing::debug!(prefix = %request.prefix, "announce stream ended: {err}");
                refuse::<C>(&mut writer, &mut reader, err.stream_code());
            }
        }
    }

    async fn announce_loop(
        &self,
        prefix: &Path,
        scoped: Option<OriginConsumer>,
        reader: &mut Reader<C::Recv>,
        writer: &mut Writer<C::Send>,
    ) -> Result<(), SessionError> {
        let mut encoder = AnnounceEncoder::new(self.version(), prefix.clone(), self.ctx.config.hop_id);
        let Some(mut origin) = scoped else {
            if self.version().has_setup() {
                writer.send(&AnnounceOk { hop_id: self.ctx.config.hop_id, active_count: 0 }).await?;
            }
            // Nothing will ever match: hold the stream until the subscriber closes it.
            return wait_for_close(reader).await;
        };
        let mut snapshot = Vec::new();
        while let Some(announcement) = origin.try_next_announcement() {
            snapshot.push(announcement);
        }
        let mut out = BytesMut::new();
        let active = snapshot.iter().filter(|a| encoder.accepts(a)).count() as u64;
        if self.version().has_setup() {
            AnnounceOk { hop_id: self.ctx.config.hop_id, active_count: active }.encode(&mut out, self.version())?;
        }
        for announcement in snapshot {
            encoder.encode(&announcement, &mut out)?;
        }
        if !out.is_empty() {
            writer.write(out.split().freeze()).await?;
        }
        loop {
            tokio::select! {
                next = origin.next_announcement() => match next {
                    Some(announcement) => {
                        encoder.encode(&announcement, &mut out)?;
                        if !out.is_empty() {
                            writer.write(out.split().freeze()).await?;
                        }
                    }
                    None => return Ok(()),
                },
                closed = wait_for_close(reader) => return closed,
            }
        }
    }

    /// Serves one Subscribe stream.
    pub(crate) async fn serve_subscribe(&self, mut reader: Reader<C::Recv>, mut writer: Writer<C::Send>) {
        let Ok(_permit) = self.subscriptions.clone().try_acquire_owned() else {
            tracing::debug!("subscription over the limit of {}", self.ctx.config.max_subscriptions);
            return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled);
        };
        let _counted = self.ctx.config.traffic.as_ref().map(|traffic| traffic.subscription());
        let subscribe = match reader.decode::<Subscribe>().await {
            Ok(Some(subscribe)) => subscribe,
            Ok(None) | Err(_) => return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled),
        };
        writer.set_priority(CONTROL_PRIORITY);
        let span = tracing::debug_span!("subscribe", id = subscribe.id, broadcast = %subscribe.broadcast, track = %subscribe.track);
        let _enter = span.enter();
        // Registered once the track is found: owed to the peer from when the track ends until
        // its end is acknowledged (a flush before closing waits for it).
        let mut pending = None;
        match self.subscribe_loop(&subscribe, &mut reader, &mut writer, &mut pending).await {
            Ok(()) => {
                writer.finish();
                if let Some(pending) = pending.take() {
                    // Delivered once the peer acknowledged our end and closed its own half,
                    // which it does after taking in the group streams (it waits for stragglers).
                    let delivered = async {
                        if !writer.acknowledged().await {
                            return Err("not acknowledged".to_string());
                        }
                        wait_for_subscribe_close(&mut reader).await.map_err(|err| format!("the peer's half: {err}"))
                    };
                    let outcome =
                        tokio::time::timeout(ACK_WAIT, delivered).await.unwrap_or(Err("no answer in time".into()));
                    if let Err(why) = outcome {
                        tracing::debug!(track = %subscribe.track, "the subscription's end was not delivered: {why}");
                        pending.undelivered();
                    }
                }
            }
            Err(err @ SessionError::Model(_)) if pending.is_some() => {
                // The track was aborted: owed until the peer has seen the reset, which it answers
                // by closing its half (a close right after would otherwise overtake the reset,
                // and the peer would take the track for cut off by the session's end).
                tracing::debug!("subscription ended: {err}");
                writer.reset(err.stream_code());
                if tokio::time::timeout(ACK_WAIT, wait_for_subscribe_close(&mut reader)).await.is_err()
                    && let Some(pending) = pending.take()
                {
                    tracing::debug!("the subscription's reset was not answered by the peer");
                    pending.undelivered();
                }
                crate::transport::RecvStream::stop(reader.recv_mut(), err.stream_code());
            }
            Err(err) => {
                tracing::debug!("subscription ended: {err}");
                refuse::<C>(&mut writer, &mut reader, err.stream_code());
            }
        }
    }

    fn find_broadcast(&self, wire: &Path) -> Result<model::BroadcastConsumer, SessionError> {
        let path = self.ctx.local_path(wire).map_err(|e| SessionError::Decode(e.into()))?;
        self.origin
            .as_ref()
            .and_then(|origin| origin.consume_broadcast(&path))
            .ok_or(SessionError::Model(model::Error::Aborted(StreamCode::Unroutable)))
    }

    async fn subscribe_loop(
        &self,
        subscribe: &Subscribe,
        reader: &mut Reader<C::Recv>,
        writer: &mut Writer<C::Send>,
        pending: &mut Option<Pending>,
    ) -> Result<(), SessionError> {
        let version = self.version();
        let broadcast = self.find_broadcast(&subscribe.broadcast)?;
        let window = subscribe.window;
        // No floor and Max Age 0 on lite-06 is how the live edge is asked for (spec 3.4): the
        // start is decided now, as the latest group, even if a SUBSCRIBE_UPDATE raises the Max Age
        // before the first group exists. That Max Age chose the start; the delivery bound stays the
        // publisher's until an update says otherwise, so groups written in the moment before the
        // subscriber's SUBSCRIBE_UPDATE (moqt sends one once SUBSCRIBE_OK told it the live edge)
        // are not dropped as old.
        let live_edge = version == Version::Lite06 && window.group_start.is_none() && window.max_age == 0;
        let start = match (version, window.group_start) {
            _ if live_edge => GroupStart::Latest,
            (Version::Lite06, start) => GroupStart::Floor(start.unwrap_or(0)),
            (_, None) => GroupStart::Latest,
            (_, Some(start)) => GroupStart::Floor(start),
        };
        let options = SubscribeOptions {
            start,
            end: window.group_end,
            max_age: (!live_edge).then(|| Duration::from_millis(window.max_age)),
            priority: Some(window.priority),
        };
        // Owed while it is set up: the consumer tells the track's writer it is used before the
        // entry below exists, and a writer that ends the track and flushes in that moment (on
        // another thread) must still wait for this subscription, not find nothing owed.
        let setting_up = self.ctx.outstanding.register(|| true);
        let mut track = broadcast.subscribe_track_with(&subscribe.track, options).await?;
        // Our consumer holds the track now: a TRACK lookup held for this SUBSCRIBE can go, so the
        // upstream subscription ends with this one.
        let _claim = self.claim_lookups((subscribe.broadcast.clone(), subscribe.track.clone()));
        *pending = Some(self.ctx.outstanding.register(track.ended_probe()));
        drop(setting_up);
        tracing::trace!(?options, next = ?track.next_sequence(), latest = ?track.latest_sequence(), "subscribed");
        if version < Version::Lite05 {
            // What the reference sends an older subscriber at once (spec section 5, 11.7).
            let ok =
                SubscribeOkLegacy { priority: window.priority, ordered: false, max_latency: 0, start: None, end: None };
            writer.send(&SubscribeResponse::OkLegacy(ok)).await?;
        }
        // What the group streams follow live: the priority and the max age of SUBSCRIBE_UPDATE.
        let (live_tx, live_rx) = watch::channel(Live { priority: window.priority, expired_through: None });
        let mut changes = track.track_changes();
        let mut groups = GroupTasks::default();
        let mut started = false;
        let mut next_sequence = 0u64;
        // The last group to deliver: narrowed live by SUBSCRIBE_UPDATE (widening past the original
        // end would need a new track subscription and is not honoured).
        let mut end = window.group_end;
        loop {
            tokio::select! {
                event = track.next_group() => match event? {
                    Some(TrackEvent::Group(group)) => {
                        let sequence = group.sequence();
                        if let Some(last) = end.filter(|last| sequence > *last) {
                            // Past the (narrowed) end: everything in range was handed out.
                            groups.drain(writer).await?;
                            if version >= Version::Lite05 {
                                writer.send(&SubscribeResponse::End { group: last.saturating_add(1) }).await?;
                            }
                            return Ok(());
                        }
                        if !started {
                            // The first group we will deliver: newest-first may hand out a later
                            // group before older ones that are still coming.
                            let first = track.next_sequence().unwrap_or(sequence).min(sequence);
                            send_start(writer, start, first, first).await?;
                            started = true;
                        }
                        next_sequence = next_sequence.max(sequence.saturating_add(1));
                        // The oldest stream is the least useful: abandon it (reset if it was open) and
                        // say so, since a stream never opened would be lost silently.
                        if let Some(abandoned) = groups.abandon_oldest(self.ctx.config.max_groups_in_flight) {
                            let code = StreamCode::TooFarBehind.to_u64();
                            writer.send(&SubscribeResponse::Drop { start: abandoned, end: abandoned, code }).await?;
                        }
                        if self.ctx.config.datagram_groups && self.try_datagram(subscribe.id, &group) {
                            continue;
                        }
                        let sender = GroupSender {
                            conn: self.ctx.conn.clone(),
                            outstanding: self.ctx.config.flush_group_streams.then(|| self.ctx.outstanding.clone()),
                            traffic: self.ctx.config.traffic.clone(),
                            version,
                            subscribe_id: subscribe.id,
                            live: live_rx.clone(),
                            frame_end: if Some(sequence) == window.group_end { window.frame_end } else { None },
                            frame_start: if Some(sequence) == window.group_start { window.frame_start } else { 0 },
                        };
                        groups.spawn(sender, group);
                    }
                    Some(TrackEvent::Gap(gap)) => {
                        if !started {
                            send_start(writer, start, gap.start, gap.end.saturating_add(1)).await?;
                            started = true;
                        }
                        next_sequence = next_sequence.max(gap.end.saturating_add(1));
                        if let Some(traffic) = &self.ctx.config.traffic {
                            traffic.dropped(gap.end.saturating_sub(gap.start).saturating_add(1));
                        }
                        let drop = SubscribeResponse::Drop { start: gap.start, end: gap.end, code: gap.reason.code().to_u64() };
                        writer.send(&drop).await?;
                    }
                    None => {
                        groups.drain(writer).await?;
                        if version >= Version::Lite05 {
                            writer.send(&SubscribeResponse::End { group: next_sequence }).await?;
                        }
                        return Ok(());
                    }
                },
                update = reader.decode::<SubscribeUpdate>() => match update {
                    Ok(Some(update)) => {
                        live_tx.send_if_modified(|live| {
                            let changed = live.priority != update.window.priority;
                            live.priority = update.window.priority;
                            changed
                        });
                        if let Some(narrower) = update.window.group_end.filter(|e| end.is_none_or(|current| *e < current)) {
                            end = Some(narrower);
                            if next_sequence > narrower {
                                groups.drain(writer).await?;
                                if version >= Version::Lite05 {
                                    writer.send(&SubscribeResponse::End { group: next_sequence }).await?;
                                }
                                return Ok(());
                            }
                        }
                        // Carried upstream too when this track is itself a subscription (a relay);
                        // a narrower max age may expire groups already handed out.
                        track.set_preferences(Some(update.window.priority), Some(Duration::from_millis(update.window.max_age)));
                        follow_expiry(&live_tx, &track);
                    }
                    Ok(None) => return Ok(()),
                    Err(SessionError::Decode(err)) => {
                        tracing::debug!("malformed SUBSCRIBE_UPDATE: {err}");
                        return Err(SessionError::Model(model::Error::Aborted(StreamCode::MalformedTrack)));
                    }
                    Err(err) => return Err(err),
                },
                Ok(()) = changes.changed() => {
                    changes.borrow_and_update();
                    follow_expiry(&live_tx, &track);
                }
                Some(ended) = groups.next_ended(), if !groups.is_empty() => {
                    if let Some(reset) = ended {
                        writer.send(&reset).await?;
                    }
                }
            }
        }
    }

    /// Sends a complete one-frame group as a DATAGRAM if the version and the path allow; false when
    /// it must go on a stream instead.
    fn try_datagram(&self, subscribe_id: u64, group: &GroupConsumer) -> bool {
        if self.version() < Version::Lite05 || group.frame_start() != 0 || group.status() != Some(Ok(())) {
            return false;
        }
        let mut reader = group.clone();
        let frame = match (reader.try_next_frame(), reader.try_next_frame()) {
            (Some(Ok(Some(frame))), Some(Ok(None))) => frame,
            _ => return false,
        };
        let datagram = crate::wire::Datagram {
            subscribe_id,
            sequence: group.sequence(),
            timestamp: frame.timestamp,
            payload: frame.payload,
        };
        let fits = self.ctx.conn.max_datagram_size().map(|max| max.min(crate::wire::MAX_DATAGRAM_LEN));
        if fits.is_none_or(|max| datagram.encoded_len() > max) {
            return false;
        }
        let mut out = BytesMut::new();
        if datagram.encode(&mut out, self.version()).is_err() {
            return false;
        }
        self.ctx.conn.send_datagram(out.freeze()).is_ok()
    }

    /// Serves one Track stream: TRACK_INFO then FIN.
    pub(crate) async fn serve_track(&self, mut reader: Reader<C::Recv>, mut writer: Writer<C::Send>) {
        let request = match reader.decode::<TrackRequest>().await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled),
        };
        writer.set_priority(CONTROL_PRIORITY);
        let result = async {
            let broadcast = self.find_broadcast(&request.broadcast)?;
            let info = match broadcast.track_info(&request.track) {
                Some(info) => info,
                // A relay asks its upstream for the info alone: the SUBSCRIBE that usually follows
                // opens the upstream subscription with its own start and max age (a lookup that
                // subscribed would fetch the whole backlog, and a latest-group SUBSCRIBE behind it
                // could not tell the live edge from backlog still in flight).
                None if let Some(info) = broadcast.upstream_track_info(&request.track).await => info?,
                // Not live yet: a relay's broadcast may fetch it from upstream on request. The
                // SUBSCRIBE that usually follows a TRACK reuses that upstream subscription: it is
                // held until that SUBSCRIBE has its own consumer (see `Lookups`).
                None => {
                    let consumer = broadcast.subscribe_track(&request.track).await?;
                    let info = consumer.info();
                    self.hold_lookup((request.broadcast.clone(), request.track.clone()), consumer);
                    info
                }
            };
            let reply = TrackInfo {
                priority: info.priority,
                ordered: false,
                max_age: info.max_age.as_millis().min(u128::from(crate::coding::MAX_VARINT)) as u64,
                timescale: info.timescale,
            };
            writer.send(&reply).await
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish();
            }
            Err(err) => {
                tracing::debug!(broadcast = %request.broadcast, track = %request.track, "TRACK refused: {err}");
                refuse::<C>(&mut writer, &mut reader, err.stream_code());
            }
        }
    }

    /// Serves one Fetch stream: the frames of one group, then FIN; a reset if the range cannot be
    /// served whole.
    pub(crate) async fn serve_fetch(&self, mut reader: Reader<C::Recv>, mut writer: Writer<C::Send>) {
        let fetch = match reader.decode::<Fetch>().await {
            Ok(Some(fetch)) => fetch,
            Ok(None) | Err(_) => return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled),
        };
        writer.set_priority(group_priority(fetch.priority, 0, fetch.group));
        match self.fetch_frames(&fetch, &mut writer).await {
            Ok(()) => {
                writer.finish();
            }
            Err(err) => {
                tracing::debug!(broadcast = %fetch.broadcast, track = %fetch.track, group = fetch.group, "FETCH refused: {err}");
                refuse::<C>(&mut writer, &mut reader, err.stream_code());
            }
        }
    }

    async fn fetch_frames(&self, fetch: &Fetch, writer: &mut Writer<C::Send>) -> Result<(), SessionError> {
        let broadcast = self.find_broadcast(&fetch.broadcast)?;
        let request = GroupFetch {
            track: fetch.track.clone(),
            group: fetch.group,
            frame_start: fetch.frame_start,
            frame_end: fetch.frame_end,
            priority: fetch.priority,
        };
        let mut group = broadcast.fetch_group(request).await?;
        let not_found = || SessionError::Model(model::Error::NotFound);
        if group.frame_start() > fetch.frame_start {
            return Err(not_found());
        }
        let mut index = group.frame_start();
        let mut timestamps = FrameTimestamps::new();
        let mut out = BytesMut::new();
        while let Some(frame) = group.next_frame().await? {
            if fetch.frame_end.is_some_and(|end| index > end) {
                return Ok(());
            }
            if index >= fetch.frame_start {
                write_frame(writer, &mut out, &mut timestamps, &frame).await?;
            }
            if Some(index) == fetch.frame_end {
                return Ok(());
            }
            index += 1;
        }
        match fetch.frame_end {
            Some(end) if end >= index => Err(not_found()),
            _ => Ok(()),
        }
    }

    /// Serves one Probe stream: periodic reports of our send bitrate and RTT from the transport's
    /// path stats; the subscriber's targets are handed to the application
    /// ([`super::Session::peer_probe_target`]; we do not pad).
    pub(crate) async fn serve_probe(&self, mut reader: Reader<C::Recv>, mut writer: Writer<C::Send>) {
        if self.ctx.config.probe == ProbeLevel::None {
            return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled);
        }
        writer.set_priority(CONTROL_PRIORITY);
        let mut interval = tokio::time::interval(self.ctx.config.probe_interval);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let stats = self.ctx.conn.stats();
                    let rtt = if self.version() >= Version::Lite04 { (stats.rtt.as_millis() as u64).max(1) } else { 0 };
                    let report = Probe { bitrate: stats.send_bitrate.max(1), rtt };
                    if writer.send(&report).await.is_err() {
                        return;
                    }
                }
                target = reader.decode::<Probe>() => match target {
                    Ok(Some(target)) => {
                        tracing::trace!(bitrate = target.bitrate, "PROBE target");
                        self.ctx.peer_probe_target.send_replace(Some(target.bitrate));
                    }
                    Ok(None) => {
                        writer.finish();
                        return;
                    }
                    Err(_) => return refuse::<C>(&mut writer, &mut reader, StreamCode::Cancelled),
                },
            }
        }
    }
}

/// What the Group streams of one subscription follow while they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Live {
    /// The subscriber priority, changed by SUBSCRIBE_UPDATE.
    priority: u8,
    /// The newest sequence the subscription's max age rules out (older ones are out too).
    expired_through: Option<u64>,
}

/// Resolves once the subscription's max age rules out group `sequence`; never if the subscription
/// ends first.
async fn expired(live: &mut watch::Receiver<Live>, sequence: u64) {
    loop {
        if live.borrow_and_update().expired_through.is_some_and(|expired| expired >= sequence) {
            return;
        }
        if live.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Publishes the newest group the subscription's max age now rules out, if it moved: the streams
/// of groups at or below it reset themselves with OLD.
fn follow_expiry(live: &watch::Sender<Live>, track: &model::TrackConsumer) {
    let expired = track.expired_through();
    live.send_if_modified(|live| {
        let moved = expired > live.expired_through;
        if moved {
            live.expired_through = expired;
        }
        moved
    });
}

/// Tells the subscriber where delivery starts, once the first group or gap is known: `anchor` is
/// the first sequence accounted for (delivered or reported), `first` the first group delivered.
/// lite-05+ says it with SUBSCRIBE_OK.Group, below which everything down to the requested floor
/// counts as dropped (spec 3.4). Older versions have no such field, so a skipped range between the
/// requested floor and the anchor goes out as SUBSCRIBE_DROP: a subscriber waiting at its floor
/// could not tell those sequences from groups still in flight.
async fn send_start<S: crate::transport::SendStream>(
    writer: &mut Writer<S>,
    start: GroupStart,
    anchor: u64,
    first: u64,
) -> Result<(), SessionError> {
    if writer.version() >= Version::Lite05 {
        return writer.send(&SubscribeResponse::Ok { group: first }).await;
    }
    match start {
        GroupStart::Floor(floor) if floor < anchor => {
            let code = StreamCode::NotFound.to_u64();
            writer.send(&SubscribeResponse::Drop { start: floor, end: anchor - 1, code }).await
        }
        _ => Ok(()),
    }
}

/// Waits until the peer finishes or resets the request stream; anything it sends meanwhile is a
/// protocol error for streams that carry nothing more.
async fn wait_for_close<R: crate::transport::RecvStream>(reader: &mut Reader<R>) -> Result<(), SessionError> {
    match reader
        .read_with(|cursor, _| if cursor.is_empty() { Err(crate::coding::DecodeError::Short) } else { Ok(()) })
        .await?
    {
        None => Ok(()),
        Some(()) => Err(SessionError::ProtocolViolation("unexpected bytes on a request stream".into())),
    }
}

/// Waits for the subscriber to close its half of a Subscribe stream after our end or reset.
/// SUBSCRIBE_UPDATEs it sent before it saw that end still arrive first (a relay sends one right
/// after SUBSCRIBE_OK on lite-06, and one whenever its own subscribers change): they are read and
/// dropped, since the track they would change is over. Anything else is a violation.
async fn wait_for_subscribe_close<R: crate::transport::RecvStream>(reader: &mut Reader<R>) -> Result<(), SessionError> {
    while reader.decode::<SubscribeUpdate>().await?.is_some() {}
    Ok(())
}

/// Payloads up to this many bytes are copied into one chunk with their FRAME header; larger ones
/// go to the stream as the shared `Bytes` itself, after a header chunk of their own, so a relay
/// fanning a frame out to N subscribers hands the same buffer to N streams and copies nothing.
/// Why 512: `benches/frame_write.rs` (a quinn stream on loopback, 256 frames a batch) has the
/// extra chunk, one more stream write under quinn's connection lock, cost more than the copy at
/// 160 B (0.63 µs a frame coalesced against 1.08 µs separate) and 512 B (1.15 against 1.39),
/// and the copy cost more from 1 KB up (2.36 against 2.03 µs; 8 % at 33 KB). BENCHMARKS.md has
/// the figures and the relay runs.
pub const COALESCE_MAX_PAYLOAD: usize = 512;

/// Writes one FRAME: the header, then the payload, coalesced into `out` when it is small (see
/// [`COALESCE_MAX_PAYLOAD`]) and otherwise handed over without a copy.
async fn write_frame<S: crate::transport::SendStream>(
    writer: &mut Writer<S>,
    out: &mut BytesMut,
    timestamps: &mut FrameTimestamps,
    frame: &model::Frame,
) -> Result<(), SessionError> {
    let version = writer.version();
    let timestamp_delta = if version >= Version::Lite05 { timestamps.delta_for(frame.timestamp) } else { 0 };
    let header = FrameHeader { timestamp_delta, payload_len: frame.payload.len() as u64 };
    Message::encode(&header, out, version)?;
    if frame.payload.len() <= COALESCE_MAX_PAYLOAD {
        out.put_slice(&frame.payload);
        writer.write(out.split().freeze()).await
    } else {
        writer.write(out.split().freeze()).await?;
        writer.write(frame.payload.clone()).await
    }
}

/// The Group streams of one subscription, each sent by its own task.
#[derive(Default)]
struct GroupTasks {
    tasks: JoinSet<Option<StreamCode>>,
    /// The tasks still running, in hand-out order, with their sequence and the signal that
    /// abandons them.
    in_flight: VecDeque<(u64, AbortHandle, oneshot::Sender<()>)>,
    /// Every task by its id, with its sequence, until it is joined.
    sequences: HashMap<task::Id, u64>,
    /// Tasks abandoned past the in-flight bound: their SUBSCRIBE_DROP is already sent.
    abandoned: HashSet<task::Id>,
}

impl GroupTasks {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn spawn<C: Connection>(&mut self, sender: GroupSender<C>, group: GroupConsumer) {
        let sequence = group.sequence();
        let (abandon, abandoned) = oneshot::channel();
        let handle = self.tasks.spawn(sender.send(group, abandoned));
        self.sequences.insert(handle.id(), sequence);
        self.in_flight.push_back((sequence, handle, abandon));
    }

    /// Abandons the oldest stream still running if `max` are (it resets with TOO_FAR_BEHIND, the
    /// reason its SUBSCRIBE_DROP gives); returns its sequence.
    fn abandon_oldest(&mut self, max: usize) -> Option<u64> {
        self.in_flight.retain(|(_, handle, _)| !handle.is_finished());
        if self.in_flight.len() < max {
            return None;
        }
        let (sequence, oldest, abandon) = self.in_flight.pop_front()?;
        let _ = abandon.send(());
        self.abandoned.insert(oldest.id());
        Some(sequence)
    }

    /// Waits for the next task to end. A stream it reset, not abandoned by us, comes back as the
    /// SUBSCRIBE_DROP that reports it: a reset alone reaches only a subscriber that already read
    /// the GROUP header, and any other would never learn that the sequence is gone.
    async fn next_ended(&mut self) -> Option<Option<SubscribeResponse>> {
        let (id, reset) = match self.tasks.join_next_with_id().await? {
            Ok((id, reset)) => (id, reset),
            Err(err) => (err.id(), None),
        };
        let sequence = self.sequences.remove(&id);
        if self.abandoned.remove(&id) {
            return Some(None);
        }
        Some(match (sequence, reset) {
            (Some(sequence), Some(code)) => {
                Some(SubscribeResponse::Drop { start: sequence, end: sequence, code: code.to_u64() })
            }
            _ => None,
        })
    }

    /// Waits for every stream to end, reporting the ones reset.
    async fn drain<S: crate::transport::SendStream>(&mut self, writer: &mut Writer<S>) -> Result<(), SessionError> {
        while let Some(ended) = self.next_ended().await {
            if let Some(reset) = ended {
                writer.send(&reset).await?;
            }
        }
        Ok(())
    }
}

/// Sends one group on its own uni stream.
struct GroupSender<C: Connection> {
    conn: C,
    /// Where the stream counts as owed to the peer from when its group is complete until the
    /// peer acknowledged it; `None` when the session does not track group streams
    /// (`SessionConfig::flush_group_streams`).
    outstanding: Option<Arc<Outstanding>>,
    traffic: Option<Arc<Traffic>>,
    version: Version,
    subscribe_id: u64,
    live: watch::Receiver<Live>,
    frame_start: u64,
    frame_end: Option<u64>,
}

impl<C: Connection> GroupSender<C> {
    /// Sends the group; returns the code it reset the stream with, if it could not send it whole.
    /// A signal on `abandoned` (the in-flight bound) resets it with TOO_FAR_BEHIND.
    async fn send(mut self, mut group: GroupConsumer, mut abandoned: oneshot::Receiver<()>) -> Option<StreamCode> {
        let sequence = group.sequence();
        let pending = self.outstanding.as_ref().map(|outstanding| {
            let group = group.clone();
            outstanding.register(move || group.status().is_some())
        });
        // Reported when this future ends, also when it is aborted.
        let mut tally = Tally { traffic: self.traffic.take(), frames: 0, bytes: 0, complete: false };
        let send = tokio::select! {
            send = self.conn.open_uni() => send,
            // Never opened: its SUBSCRIBE_DROP says all there is.
            Ok(()) = &mut abandoned => return None,
        };
        // The connection is gone: nothing more reaches the subscriber anyway.
        let Ok(send) = send else { return None };
        tracing::trace!(subscribe_id = self.subscribe_id, sequence, "group stream opened");
        let mut writer = Writer::new(send, self.version);
        let live = *self.live.borrow_and_update();
        let mut expiry = self.live.clone();
        let mut gone = Box::pin(group.aborted());
        self.set_priority(live.priority, &mut writer, sequence);
        let result = tokio::select! {
            // Expiry first: a group already past the subscription's max age is reset before any
            // of it is written. Also while a write waits for a slow subscriber's flow control:
            // the reset frees what is queued for a group past the max age or gone from the
            // cache, so a lagging subscriber costs the relay about max-age of media, not all it
            // has not read yet.
            biased;
            () = expired(&mut expiry, sequence) => Err(SessionError::Model(model::Error::Expired)),
            err = &mut gone => Err(SessionError::Model(err)),
            Ok(()) = &mut abandoned => Err(SessionError::Model(model::Error::Aborted(StreamCode::TooFarBehind))),
            result = self.write_group(&mut writer, &mut group, &mut tally) => result,
        };
        match result {
            Ok(()) => {
                tally.complete = true;
                writer.finish();
                // Written is not sent: QUIC queues what a slow subscriber has not taken yet. Until
                // the peer has it all, the stream is watched apart (the subscription's bound on
                // streams in flight counts only streams still being written): a group that
                // expires or leaves the cache first is reset, which frees its queue. A flush
                // gives up on it after ACK_WAIT.
                let give_up = pending.is_some().then(|| tokio::time::Instant::now() + ACK_WAIT);
                tokio::spawn(async move {
                    let (delivered, why) = tokio::select! {
                        acknowledged = writer.acknowledged() => (acknowledged, "the stream failed"),
                        () = expired(&mut expiry, sequence) => {
                            writer.reset(StreamCode::Old);
                            (false, "past the max age")
                        }
                        err = &mut gone => {
                            writer.reset(err.code());
                            (false, "gone from the cache")
                        }
                        () = crate::model::sleep_until_or_forever(give_up) => (false, "no acknowledgement in time"),
                    };
                    if !delivered {
                        tracing::debug!(sequence, "written group stream not delivered: {why}");
                    }
                    if let Some(pending) = pending.filter(|_| !delivered) {
                        pending.undelivered();
                    }
                });
                None
            }
            Err(err) => {
                tracing::trace!(sequence, "group stream ended early: {err}");
                let code = err.stream_code();
                writer.reset(code);
                Some(code)
            }
        }
    }

    async fn write_group(
        &mut self,
        writer: &mut Writer<C::Send>,
        group: &mut GroupConsumer,
        tally: &mut Tally,
    ) -> Result<(), SessionError> {
        let sequence = group.sequence();
        let first = group.frame_start().max(if self.version >= Version::Lite06 { self.frame_start } else { 0 });
        let mut out = BytesMut::new();
        UniStream::Group.encode(&mut out, self.version)?;
        let header = GroupHeader {
            subscribe_id: self.subscribe_id,
            sequence,
            frame_start: if self.version >= Version::Lite06 { first } else { 0 },
        };
        Message::encode(&header, &mut out, self.version)?;
        writer.write(out.split().freeze()).await?;
        let mut timestamps = FrameTimestamps::new();
        let mut index = group.frame_start();
        loop {
            tokio::select! {
                frame = group.next_frame() => {
                    let Some(frame) = frame? else { return Ok(()) };
                    if self.frame_end.is_some_and(|end| index > end) {
                        return Ok(());
                    }
                    if index >= first {
                        write_frame(writer, &mut out, &mut timestamps, &frame).await?;
                        tally.frames += 1;
                        tally.bytes += frame.payload.len() as u64;
                    }
                    if self.frame_end == Some(index) {
                        return Ok(());
                    }
                    index += 1;
                }
                // Expiry is watched by the caller; a SUBSCRIBE_UPDATE's priority applies here.
                Ok(()) = self.live.changed() => {
                    let priority = self.live.borrow_and_update().priority;
                    self.set_priority(priority, writer, sequence);
                }
            }
        }
    }

    /// Gives this group's stream the subscription's priority.
    fn set_priority(&self, priority: u8, writer: &mut Writer<C::Send>, sequence: u64) {
        writer.set_priority(group_priority(priority, self.subscribe_id, sequence));
    }
}

/// What one group stream sent, added to the shared counters once, when the stream ends.
struct Tally {
    traffic: Option<Arc<Traffic>>,
    frames: u64,
    bytes: u64,
    complete: bool,
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Some(traffic) = &self.traffic {
            traffic.sent(self.frames, self.bytes, self.complete);
        }
    }
}

/// Turns model announcements into the wire form of one version, keeping the per-stream state the
/// wire needs (lite-06 implicit IDs, the paths already announced).
struct AnnounceEncoder {
    version: Version,
    prefix: Path,
    hop_id: u64,
    ids: HashMap<Path, u64>,
    next_id: u64,
}

impl AnnounceEncoder {
    fn new(version: Version, prefix: Path, hop_id: u64) -> Self {
        Self { version, prefix, hop_id, ids: HashMap::new(), next_id: 0 }
    }

    /// Routes too long to forward are not announced (the hop list is bounded).
    fn accepts(&self, announcement: &model::Announcement) -> bool {
        match announcement {
            model::Announcement::Start { route, .. } | model::Announcement::Update { route, .. } => {
                self.hops(route).len() as u64 <= MAX_HOPS
            }
            model::Announcement::End { .. } => true,
        }
    }

    fn hops(&self, route: &Route) -> Vec<u64> {
        let mut hops = route.hops.clone();
        if self.version == Version::Lite04 && self.hop_id != 0 {
            // lite-04 senders append their own ID; later versions carry it in ANNOUNCE_OK.
            hops.push(self.hop_id);
        }
        if self.version < Version::Lite04 {
            hops.iter_mut().for_each(|h| *h = 0);
        }
        hops
    }

    fn encode(&mut self, announcement: &model::Announcement, out: &mut BytesMut) -> Result<(), SessionError> {
        if !self.accepts(announcement) {
            return Ok(());
        }
        let path = announcement.path();
        let Some(suffix) = path.strip_prefix(&self.prefix) else { return Ok(()) };
        let messages: Vec<Announcement> = match (announcement, self.version) {
            (model::Announcement::Start { route, .. }, Version::Lite06) => {
                if self.ids.contains_key(path) {
                    return Ok(());
                }
                self.ids.insert(path.clone(), self.next_id);
                self.next_id += 1;
                vec![Announcement::Start {
                    suffix,
                    hops: self.hops(route),
                    warm_cost: route.warm_cost,
                    cold_cost: route.cold_cost,
                }]
            }
            (model::Announcement::Update { route, .. }, Version::Lite06) => match self.ids.get(path) {
                Some(id) => vec![Announcement::Update {
                    id: *id,
                    hops: self.hops(route),
                    warm_cost: route.warm_cost,
                    cold_cost: route.cold_cost,
                }],
                None => return Ok(()),
            },
            (model::Announcement::End { .. }, Version::Lite06) => match self.ids.remove(path) {
                Some(id) => vec![Announcement::End { id }],
                None => return Ok(()),
            },
            (model::Announcement::Start { route, .. }, _) => {
                self.ids.insert(path.clone(), 0);
                vec![Announcement::Legacy { status: AnnounceStatus::Active, suffix, hops: self.hops(route) }]
            }
            (model::Announcement::Update { route, .. }, version) => {
                if !self.ids.contains_key(path) {
                    return Ok(());
                }
                let active = Announcement::Legacy {
                    status: AnnounceStatus::Active,
                    suffix: suffix.clone(),
                    hops: self.hops(route),
                };
                if version >= Version::Lite05 {
                    // A second active for the same path is a restart on lite-05.
                    vec![active]
                } else {
                    // lite-04 peers reject a second active: end it, then announce it again.
                    vec![Announcement::Legacy { status: AnnounceStatus::Ended, suffix, hops: Vec::new() }, active]
                }
            }
            (model::Announcement::End { .. }, _) => {
                if self.ids.remove(path).is_none() {
                    return Ok(());
                }
                vec![Announcement::Legacy { status: AnnounceStatus::Ended, suffix, hops: Vec::new() }]
            }
        };
        for message in messages {
            Message::encode(&message, out, self.version)?;
        }
        Ok(())
    }
}
