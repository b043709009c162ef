//! A track: a sequence of groups with one producer, a bounded cache, and any number of consumers.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cache::{AgeLimit, CacheSettings, CachedGroup, TrackState, Upstream, abort_victims};
use super::group::{GroupObserver, GroupProducer, GroupShared};
use super::{Error, GapReason, SubscribeOptions, TrackConsumer};

/// What TRACK_INFO carries (spec 3.5); fixed for the life of the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackInfo {
    /// Publisher priority, a tie-breaker between subscriptions (spec 7.1). Default 127.
    pub priority: u8,
    /// How long a non-latest group is retained (spec 7.3). Default 5000 ms.
    pub max_age: Duration,
    /// Timestamp units per second. Default 1000; never 0.
    pub timescale: u64,
}

impl Default for TrackInfo {
    fn default() -> Self {
        Self { priority: 127, max_age: Duration::from_millis(5000), timescale: 1000 }
    }
}

/// What the producer, the consumers and the broadcast share.
pub(crate) struct TrackShared {
    pub(crate) name: Arc<str>,
    pub(crate) info: TrackInfo,
    pub(crate) settings: CacheSettings,
    pub(crate) limit: AgeLimit,
    pub(crate) state: watch::Sender<TrackState>,
    /// Number of live [`TrackConsumer`]s.
    pub(crate) demand: watch::Sender<usize>,
    /// What the live consumers want, for an upstream subscription.
    pub(crate) interests: watch::Sender<super::interest::Interests>,
    /// False while the frames come from a peer whose version has no frame timestamps
    /// (moq-lite-03/04): their timestamps read 0 and mean nothing.
    pub(crate) timestamps: AtomicBool,
}

impl TrackShared {
    pub(crate) fn new(name: &str, info: TrackInfo, settings: CacheSettings) -> Result<Arc<Self>, Error> {
        if info.timescale == 0 {
            return Err(Error::InvalidTimescale);
        }
        let limit = AgeLimit::new(info.max_age, info.timescale, settings.wall_clock_expiry);
        Ok(Arc::new(Self {
            name: Arc::from(name),
            info,
            settings,
            limit,
            state: watch::Sender::new(TrackState::new()),
            demand: watch::Sender::new(0),
            interests: watch::Sender::new(Default::default()),
            timestamps: AtomicBool::new(true),
        }))
    }

    pub(crate) fn is_aborted(&self) -> bool {
        matches!(self.state.borrow().closed, Some(Err(_)))
    }

    /// Closes the track; returns false if it was already closed.
    fn close(&self, result: Result<(), Error>) -> bool {
        self.state.send_if_modified(|state| {
            if state.closed.is_some() {
                return false;
            }
            state.closed = Some(result);
            true
        })
    }
}

/// Feeds group progress back into the track cache without keeping the track alive.
struct CacheHook(Weak<TrackShared>);

impl GroupObserver for CacheHook {
    fn on_frame(&self, sequence: u64, timestamp: u64, size: usize) {
        let Some(track) = self.0.upgrade() else { return };
        let now = Instant::now();
        let mut victims = Vec::new();
        track.state.send_if_modified(|state| {
            let Some(cached) = state.cache.get_mut(&sequence) else { return false };
            let first = cached.first_ts.is_none();
            if first {
                cached.first_ts = Some(timestamp);
                cached.first_at = Some(now);
            }
            cached.newest_ts = Some(cached.newest_ts.map_or(timestamp, |t| t.max(timestamp)));
            cached.bytes = cached.bytes.saturating_add(size);
            state.bytes = state.bytes.saturating_add(size);
            victims = state.maintain(&track.settings, track.limit, now).0;
            // Consumers only care about groups appearing or leaving; a first frame can change which
            // groups a narrower consumer max age still allows.
            first || !victims.is_empty()
        });
        abort_victims(victims);
    }

    fn on_close(&self, sequence: u64, result: &Result<(), Error>) {
        let Err(err) = result else { return };
        let Some(track) = self.0.upgrade() else { return };
        let max_records = track.settings.max_gap_records;
        track.state.send_if_modified(|state| state.remove(sequence, GapReason::from_error(err), max_records).is_some());
    }
}

/// Writes a track: creates its groups and ends it. Dropping it without [`finish`](Self::finish)
/// aborts the track with [`Error::Dropped`]; groups already handed out live on independently.
pub struct TrackProducer {
    shared: Arc<TrackShared>,
    done: bool,
}

impl TrackProducer {
    /// A track with the default cache settings. Fails if the timescale is 0.
    pub fn new(name: &str, info: TrackInfo) -> Result<Self, Error> {
        Self::with_settings(name, info, CacheSettings::default())
    }

    /// A track with explicit cache settings. Fails if the timescale is 0.
    pub fn with_settings(name: &str, info: TrackInfo, settings: CacheSettings) -> Result<Self, Error> {
        Ok(Self::from_shared(TrackShared::new(name, info, settings)?))
    }

    pub(crate) fn from_shared(shared: Arc<TrackShared>) -> Self {
        Self { shared, done: false }
    }

    /// The track name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The track's TRACK_INFO.
    pub fn info(&self) -> TrackInfo {
        self.shared.info
    }

    /// The highest group sequence created so far.
    pub fn latest_sequence(&self) -> Option<u64> {
        self.shared.state.borrow().max_seq
    }

    /// Says whether the frames written from now on carry their publisher's timestamps (true, the
    /// default) or come from a source that has none (a peer on moq-lite-03/04, whose wire has no
    /// frame timestamps, so they read 0). Consumers see it with
    /// [`TrackConsumer::has_timestamps`].
    pub fn set_has_timestamps(&self, timestamps: bool) {
        self.shared.timestamps.store(timestamps, Ordering::Release);
    }

    /// How many groups the cache holds now.
    pub fn cached_groups(&self) -> usize {
        self.shared.state.borrow().cache.len()
    }

    /// How many payload bytes the cache holds now.
    pub fn cached_bytes(&self) -> usize {
        self.shared.state.borrow().bytes
    }

    /// Creates the group after the highest sequence so far (0 for the first).
    pub fn append_group(&mut self) -> Result<GroupProducer, Error> {
        let next = match self.latest_sequence() {
            None => 0,
            Some(seq) => seq.checked_add(1).ok_or(Error::SequenceOverflow)?,
        };
        self.create_group(next)
    }

    /// Creates the group with this sequence (relays receive groups out of order). A sequence that
    /// the track already holds or recently dropped is [`Error::DuplicateGroup`].
    pub fn create_group(&mut self, sequence: u64) -> Result<GroupProducer, Error> {
        self.create_partial_group(sequence, 0)
    }

    /// Records that the sequences `start..=end` will never arrive, and why (a SUBSCRIBE_DROP from
    /// upstream, or a publisher skipping on purpose). Consumers are told at once instead of waiting
    /// for the loss to become final. Cached sequences are left alone; only the newest
    /// `max_gap_records` of a long range are remembered, older ones read as evicted.
    pub fn drop_groups(&mut self, start: u64, end: u64, reason: Error) {
        if end < start {
            return;
        }
        let max_records = self.shared.settings.max_gap_records.max(1);
        let reason = GapReason::from_error(&reason);
        let first = start.max(end.saturating_sub(max_records as u64 - 1));
        self.shared.state.send_modify(|state| {
            if first > start {
                state.forgotten_below = state.forgotten_below.max(first);
            }
            for seq in first..=end {
                if !state.cache.contains_key(&seq) {
                    state.record_gap(seq, reason.clone(), max_records);
                }
            }
            state.max_seq = Some(state.max_seq.map_or(end, |m| m.max(end)));
            state.min_seq = Some(state.min_seq.map_or(start, |m| m.min(start)));
        });
    }

    /// Says that this track is fed by a subscription that asked for groups from `floor` on
    /// (`None`: from the latest group) and has not said yet where it starts. Groups then arrive on
    /// separate streams, in any order: a consumer that joins while some are in flight starts at
    /// the lowest one its max age allows instead of above it, and one that wants the latest group
    /// waits for [`upstream_started`](Self::upstream_started) when the subscription was asked for
    /// the latest group.
    pub fn expect_upstream(&mut self, floor: Option<u64>) {
        self.shared.state.send_modify(|state| state.upstream = Upstream::Requested(floor));
    }

    /// Says where the feeding subscription starts (SUBSCRIBE_OK.Group): nothing below `from` will
    /// arrive. `None` when the upstream does not say (lite-03/04): consumers then decide from what
    /// arrives.
    pub fn upstream_started(&mut self, from: Option<u64>) {
        self.shared.state.send_modify(|state| {
            let latest = state.upstream.latest_pending();
            state.upstream = match from {
                Some(from) => Upstream::Started { from, latest },
                None => Upstream::Local,
            };
        });
    }

    /// How many sequences of `from..end` (`from` `None`: from the lowest one created) are neither
    /// here nor recorded as lost: Group streams a finished subscription still owes. Only the
    /// newest `max_groups` below `end` count (older ones would read as evicted anyway).
    pub(crate) fn unaccounted(&self, from: Option<u64>, end: u64) -> u64 {
        let state = self.shared.state.borrow();
        let window = end.saturating_sub(self.shared.settings.max_groups.max(1) as u64);
        let from = from.or(state.min_seq).unwrap_or(window).max(window).max(state.forgotten_below);
        (from..end).filter(|seq| !state.cache.contains_key(seq) && !state.gaps.contains_key(seq)).count() as u64
    }

    /// Wakes on every change of the track's groups (created, removed, dropped).
    pub(crate) fn changes(&self) -> watch::Receiver<TrackState> {
        self.shared.state.subscribe()
    }

    /// Creates a group whose first `frame_start` frames are missing (spec 3.9).
    pub fn create_partial_group(&mut self, sequence: u64, frame_start: u64) -> Result<GroupProducer, Error> {
        let shared = &self.shared;
        let group = GroupShared::new(sequence, frame_start, shared.settings.group);
        let max_groups = shared.settings.max_groups.max(1);
        let max_records = shared.settings.max_gap_records;
        let mut result = Ok(());
        let mut victims = Vec::new();
        shared.state.send_if_modified(|state| {
            if state.closed.is_some() {
                result = Err(Error::Closed);
                return false;
            }
            if state.cache.contains_key(&sequence) || state.gaps.contains_key(&sequence) {
                result = Err(Error::DuplicateGroup(sequence));
                return false;
            }
            state.cache.insert(sequence, CachedGroup::new(group.clone()));
            state.max_seq = Some(state.max_seq.map_or(sequence, |m| m.max(sequence)));
            state.min_seq = Some(state.min_seq.map_or(sequence, |m| m.min(sequence)));
            while state.cache.len() > max_groups {
                let Some(oldest) = state.cache.keys().next().copied() else { break };
                if oldest == sequence {
                    result = Err(Error::Evicted);
                }
                if let Some(evicted) = state.remove(oldest, GapReason::Evicted, max_records) {
                    victims.push((evicted, Error::Evicted));
                }
            }
            true
        });
        abort_victims(victims);
        result?;
        let hook: Arc<dyn GroupObserver> = Arc::new(CacheHook(Arc::downgrade(shared)));
        Ok(GroupProducer::with_observer(group, hook))
    }

    /// Ends the track: no more groups. Consumers drain what is cached and then see the end.
    pub fn finish(mut self) {
        self.done = true;
        self.shared.close(Ok(()));
    }

    /// Aborts the track: consumers drain what is cached and then see `reason`.
    pub fn abort(mut self, reason: Error) {
        self.done = true;
        self.shared.close(Err(reason));
    }

    /// Aborts the track with `reason` unless a consumer reads it, as one step with consumers
    /// registering: a consumer that attached first keeps the track open (false), one that comes
    /// after finds it closed and asks its broadcast afresh. Returns true once the track is closed.
    /// A relay cancelling an upstream subscription nobody wants uses it, so a subscriber that
    /// arrives in that moment is not handed a track about to be cancelled.
    pub fn abort_if_unused(&mut self, reason: Error) -> bool {
        let mut unused = false;
        // Lock order: interests, then state (consumers never hold state while registering).
        self.shared.interests.send_if_modified(|interests| {
            unused = interests.aggregate().is_none();
            if unused {
                self.shared.close(Err(reason));
            }
            false
        });
        if unused {
            self.done = true;
        }
        unused
    }

    /// A consumer with the default options (oldest group the max age allows, no end).
    pub fn consume(&self) -> TrackConsumer {
        self.subscribe(SubscribeOptions::default())
    }

    /// A consumer with explicit start, end and max age.
    pub fn subscribe(&self, options: SubscribeOptions) -> TrackConsumer {
        TrackConsumer::new(self.shared.clone(), options)
    }

    /// How many consumers exist now.
    pub fn consumer_count(&self) -> usize {
        *self.shared.demand.borrow()
    }

    /// Resolves once there are no consumers (at once if there are none now), so a publisher can
    /// stop encoding.
    pub async fn unused(&self) {
        let mut rx = self.shared.demand.subscribe();
        let _ = rx.wait_for(|count| *count == 0).await;
    }

    /// Like [`unused`](Self::unused), but the future does not borrow the producer, so it can be
    /// awaited while the producer itself sits behind a lock (as a session's does).
    pub fn when_unused(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.demand.subscribe();
        async move {
            let _ = rx.wait_for(|count| *count == 0).await;
        }
    }

    /// Follows the aggregate of what the consumers want (spec 7.1), without borrowing the producer.
    pub fn interest(&self) -> super::InterestWatch {
        super::InterestWatch::new(self.shared.interests.subscribe())
    }

    /// Resolves once there is at least one consumer (at once if there is one now).
    pub async fn used(&self) {
        self.until_used().await
    }

    /// Like [`used`](Self::used), as a future that does not borrow the producer, so a caller
    /// can wait (with its own timeout) while the producer stays free for writing.
    pub fn until_used(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.demand.subscribe();
        async move {
            let _ = rx.wait_for(|count| *count > 0).await;
        }
    }
}

impl TrackConsumer {
    /// True when the track's frames carry their publisher's timestamps: a local producer, or a
    /// peer on moq-lite-05 or later. False for a track received over moq-lite-03/04, whose frames
    /// all read timestamp 0 (see [`TrackProducer::set_has_timestamps`]).
    pub fn has_timestamps(&self) -> bool {
        self.shared.timestamps.load(Ordering::Acquire)
    }

    /// A probe telling whether the track's producer has ended it (finished or aborted), for a
    /// session that must know what it still owes the peer without holding the consumer.
    pub(crate) fn ended_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.state.borrow().closed.is_some()
    }
}

impl Drop for TrackProducer {
    fn drop(&mut self) {
        if !self.done {
            self.shared.close(Err(Error::Dropped));
        }
    }
}

impl fmt::Debug for TrackProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackProducer").field("name", &self.shared.name).finish_non_exhaustive()
    }
}
