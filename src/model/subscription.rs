//! A track consumer: one reader's cursor over a track, newest group first (spec 7.2), with every
//! missing sequence reported as an explicit gap (spec 7.4).
//!
//! Per-consumer state stays bounded: a floor (every sequence below it is accounted for) plus the
//! set of sequences above the floor already handed out. Newest-first delivery grows that set while
//! older groups wait; once it reaches the cache's group bound the consumer serves from the bottom
//! (oldest group or gap first) until it shrinks again.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cache::{AgeLimit, TrackState, Upstream, abort_victims};
use super::track::TrackShared;
use super::{Error, Gap, GapReason, GroupConsumer, TrackEvent, TrackInfo};

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// At the latest group (lite-05 Group Start 0).
    Latest,
    /// At the oldest group at or above this raw floor that the max age still allows (lite-06
    /// Group Start; 0 = no floor). A floor above the live edge waits there.
    Floor(u64),
}

/// A consumer's range and age bound (the model side of SUBSCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Where to start. Default `Floor(0)`.
    pub start: GroupStart,
    /// Last sequence to deliver (inclusive), `None` for unbounded. Default `None`.
    pub end: Option<u64>,
    /// Subscriber max age; clamped to the publisher's. `None` = the publisher's. Default `None`.
    pub max_age: Option<Duration>,
    /// Subscriber priority (higher first); `None` = the publisher's. Default `None`. Only carried
    /// upstream: a local consumer reads at its own pace.
    pub priority: Option<u8>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self { start: GroupStart::Floor(0), end: None, max_age: None, priority: None }
    }
}

/// The frame-level edges of a subscription: the first frame wanted of its start group and the
/// last of its end group. Applied by each consumer to the groups it hands out
/// ([`TrackConsumer::set_frame_bounds`]), because the upstream request is for whole groups that
/// several consumers may share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameBounds {
    /// The group whose leading frames are skipped; `None`: the first group handed out.
    pub start_group: Option<u64>,
    /// The first frame wanted of that group (0: from its start).
    pub start_frame: u64,
    /// The end group and its last frame wanted (inclusive), if the subscription stops mid-group.
    pub end: Option<(u64, u64)>,
}

/// Reads a track. Dropping it lowers the producer's consumer count.
pub struct TrackConsumer {
    pub(crate) shared: Arc<TrackShared>,
    rx: watch::Receiver<TrackState>,
    options: SubscribeOptions,
    /// This consumer's age bound (clamped to the publisher's).
    limit: AgeLimit,
    /// True when `limit` is stricter than the publisher's, so cached groups may be too old for us.
    narrower: bool,
    /// Every sequence below it has been handed out or reported; `None` until the start is known.
    floor: Option<u64>,
    /// The highest sequence that existed when we subscribed, for a start decided later.
    created_after: Option<u64>,
    /// Sequences at or above the floor already handed out (newest first leaves holes below).
    handed: BTreeSet<u64>,
    /// Set once the end of the range or of the track was returned.
    ended: bool,
    /// Our entry in the track's aggregated interest.
    interest_id: u64,
    /// The frame edges applied to the groups handed out.
    frames: FrameBounds,
    /// Set once a group was handed out (a start group of `None` means the first one).
    handed_any: bool,
    /// The first floor: where this consumer's range starts, once known.
    origin: Option<u64>,
}

type Step = Option<Result<Option<TrackEvent>, Error>>;

impl TrackConsumer {
    pub(crate) fn new(shared: Arc<TrackShared>, options: SubscribeOptions) -> Self {
        let (limit, narrower) = Self::age_limit(&shared, options.max_age);
        let rx = shared.state.subscribe();
        let mut consumer = Self {
            shared,
            rx,
            options,
            limit,
            narrower,
            floor: None,
            created_after: None,
            handed: BTreeSet::new(),
            ended: false,
            interest_id: 0,
            frames: FrameBounds::default(),
            handed_any: false,
            origin: None,
        };
        let (floor, created_after) = {
            let state = consumer.shared.state.borrow();
            // Waiting for the upstream to say which group is the latest: what arrived before that
            // answer is not "older than we subscribed".
            let deferred = options.start == GroupStart::Latest && state.upstream.latest_pending();
            (consumer.anchor(&state, Instant::now()), if deferred { None } else { state.max_seq })
        };
        consumer.floor = floor;
        consumer.origin = floor;
        consumer.created_after = created_after;
        // Counted as demand only once its start is fixed: a producer woken by the demand must not
        // write groups that move a Latest start past them.
        let mut interest_id = 0;
        consumer.shared.interests.send_modify(|interests| interest_id = interests.add(options));
        consumer.interest_id = interest_id;
        consumer.shared.demand.send_modify(|count| *count = count.saturating_add(1));
        consumer
    }

    /// The age bound for a subscriber max age (clamped to the publisher's), and whether it is
    /// stricter than the publisher's.
    fn age_limit(shared: &TrackShared, max_age: Option<Duration>) -> (AgeLimit, bool) {
        let info = shared.info;
        let max_age = max_age.map_or(info.max_age, |age| age.min(info.max_age));
        (AgeLimit::new(max_age, info.timescale, shared.settings.wall_clock_expiry), max_age < info.max_age)
    }

    /// The track name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The track's TRACK_INFO.
    pub fn info(&self) -> TrackInfo {
        self.shared.info
    }

    /// This consumer's options.
    pub fn options(&self) -> SubscribeOptions {
        self.options
    }

    /// Changes the priority and max age this consumer asks of the publisher. They travel upstream
    /// (a session sends SUBSCRIBE_UPDATE with the new aggregate), and the max age bounds this
    /// consumer's own reading from now on: a narrower one reports cached groups it makes too old
    /// as expired gaps instead of handing them out (groups already handed out are unaffected).
    pub fn set_preferences(&mut self, priority: Option<u8>, max_age: Option<Duration>) {
        self.options.priority = priority;
        self.options.max_age = max_age;
        (self.limit, self.narrower) = Self::age_limit(&self.shared, max_age);
        let (id, options) = (self.interest_id, self.options);
        self.shared.interests.send_if_modified(|interests| interests.set(id, options));
    }

    /// Trims the groups this consumer hands out from now on to `bounds`: the start group from
    /// its `start_frame`, the end group up to its last frame.
    pub fn set_frame_bounds(&mut self, bounds: FrameBounds) {
        self.frames = bounds;
    }

    /// The group about to be handed out, trimmed to the frame bounds.
    fn trim(&mut self, group: GroupConsumer) -> GroupConsumer {
        let sequence = group.sequence();
        let first = !std::mem::replace(&mut self.handed_any, true);
        let bounds = self.frames;
        let skip = match bounds.start_group {
            Some(start) if start == sequence => bounds.start_frame,
            None if first => bounds.start_frame,
            _ => 0,
        };
        let last = bounds.end.filter(|(end, _)| *end == sequence).map(|(_, last)| last);
        if skip == 0 && last.is_none() { group } else { group.bounded(skip, last) }
    }

    /// Applies the frame bounds to a group event.
    fn trimmed(&mut self, event: Result<Option<TrackEvent>, Error>) -> Result<Option<TrackEvent>, Error> {
        match event {
            Ok(Some(TrackEvent::Group(group))) => Ok(Some(TrackEvent::Group(self.trim(group)))),
            other => other,
        }
    }

    /// The newest cached group this consumer's max age rules out (spec 7.3), if any. Expiry rises
    /// with the sequence, so every older group is out too. A publisher uses it to reset the
    /// streams of groups it handed out before they expired.
    pub(crate) fn expired_through(&self) -> Option<u64> {
        let state = self.shared.state.borrow();
        let (latest, now) = (state.latest_ts(), Instant::now());
        state.cache.keys().take_while(|seq| state.is_expired(**seq, self.limit, latest, now)).last().copied()
    }

    /// A watch that changes whenever the track does (a group or frame written, a group dropped).
    pub(crate) fn track_changes(&self) -> watch::Receiver<TrackState> {
        self.shared.state.subscribe()
    }

    /// The lowest sequence not yet handed out or reported; `None` until the start is known.
    pub fn next_sequence(&self) -> Option<u64> {
        self.floor
    }

    /// The first sequence of this consumer's range (every sequence from it on is handed out or
    /// reported as a gap exactly once); `None` until the start is known.
    pub fn start_sequence(&self) -> Option<u64> {
        self.origin
    }

    /// The highest group sequence the producer has created.
    pub fn latest_sequence(&self) -> Option<u64> {
        self.shared.state.borrow().max_seq
    }

    /// The next event: a group (newest pending first), a gap, `Ok(None)` at the end of the range or
    /// of a finished track, `Err` once an aborted track is drained.
    pub async fn next_group(&mut self) -> Result<Option<TrackEvent>, Error> {
        loop {
            drop(self.rx.borrow_and_update());
            let (step, deadline) = self.poll_step();
            if let Some(result) = step {
                return self.trimmed(result);
            }
            let changed = match deadline {
                Some(deadline) => tokio::select! {
                    changed = self.rx.changed() => changed,
                    () = tokio::time::sleep_until(deadline) => Ok(()),
                },
                None => self.rx.changed().await,
            };
            // The sender lives in `shared`, which we hold, so this cannot fail.
            if changed.is_err() {
                return Err(Error::Dropped);
            }
        }
    }

    /// This consumer read in sequence order, a group late by more than `max_latency` after a
    /// newer one arrived skipped as a gap ([`OrderedConsumer`](super::OrderedConsumer)).
    pub fn ordered(self, max_latency: Duration) -> super::OrderedConsumer {
        super::OrderedConsumer::new(self, max_latency)
    }

    /// Like [`next_group`](Self::next_group) but never waits: `None` when nothing is ready.
    pub fn try_next_group(&mut self) -> Option<Result<Option<TrackEvent>, Error>> {
        let step = self.poll_step().0?;
        Some(self.trimmed(step))
    }

    /// Runs cache maintenance (expiry) and one delivery step under the track lock.
    fn poll_step(&mut self) -> (Step, Option<Instant>) {
        let now = Instant::now();
        let shared = self.shared.clone();
        let mut victims = Vec::new();
        let mut deadline = None;
        let mut step = None;
        shared.state.send_if_modified(|state| {
            let (removed, next) = state.maintain(&shared.settings, shared.limit, now);
            let changed = !removed.is_empty();
            victims = removed;
            deadline = next;
            step = self.step(state, now);
            changed
        });
        abort_victims(victims);
        (step, deadline)
    }

    /// The first sequence to deliver, decided at creation if the cache allows.
    fn anchor(&self, state: &TrackState, now: Instant) -> Option<u64> {
        let latest = state.latest_ts();
        // Checked against our own limit even when it equals the publisher's: expiry is lazy, so
        // the cache may still hold a group the publisher's bound already rules out.
        let oldest_allowed = |from: u64| {
            state.cache.range(from..).map(|(seq, _)| *seq).find(|seq| !state.is_expired(*seq, self.limit, latest, now))
        };
        match self.options.start {
            // The upstream was asked for the latest group and has not said which: wait for it.
            GroupStart::Latest if state.upstream.latest_pending() => None,
            GroupStart::Latest => state.cache.keys().next_back().copied(),
            GroupStart::Floor(floor) => {
                if let Some(seq) = self.in_flight_start(state, floor, latest, now) {
                    Some(seq)
                } else if let Some(seq) = oldest_allowed(floor) {
                    Some(seq)
                } else if floor > 0 && state.max_seq.is_none_or(|max| max < floor) {
                    // Above the live edge: wait there.
                    Some(floor)
                } else {
                    // Nothing cached to start from, but sequences at or above the floor are known
                    // lost (a relay's track that so far only heard SUBSCRIBE_DROPs from upstream):
                    // start at the first of them and report it, rather than after the newest known
                    // sequence, which would skip everything still in flight below it unreported.
                    state.gaps.range(floor..).next().map(|(seq, _)| *seq)
                }
            }
        }
    }

    /// The start of a track fed by a subscription when groups below the oldest one received are
    /// still in flight (sequences from the upstream's start up to the lowest one created that
    /// are neither recorded as lost nor too old for us): the lowest of them, so that a consumer
    /// joining a relay's track while its first groups arrive out of order misses none of them.
    fn in_flight_start(&self, state: &TrackState, floor: u64, latest: Option<u64>, now: Instant) -> Option<u64> {
        let from = state.upstream.in_flight_from()?;
        let below = state.min_seq?;
        let mut seq = from.max(floor).max(state.forgotten_below);
        // Bounded by the gap records: each turn skips one.
        while seq < below {
            if state.gaps.contains_key(&seq) {
                seq += 1;
                continue;
            }
            // Every sequence below the lowest created one has the same successor, so one check
            // decides for all of them.
            return (!state.is_expired(seq, self.limit, latest, now)).then_some(seq);
        }
        None
    }

    /// True when this consumer's age bound is zero: only the latest group (spec 3.4, Max Age 0).
    fn latest_only(&self) -> bool {
        self.limit.units == 0 && self.limit.wall.is_none_or(|wall| wall.is_zero())
    }

    /// The first sequence to account for when the start could not be decided at creation: the first
    /// sequence produced after we subscribed (so that groups evicted or expired before we looked
    /// are still reported as gaps).
    fn anchor_later(&self, state: &TrackState, now: Instant) -> Option<u64> {
        let max = state.max_seq?;
        let mut base = match (self.created_after, self.options.start) {
            // Still waiting for the upstream to say which group is the latest.
            (_, GroupStart::Latest) if state.upstream.latest_pending() => return None,
            // A max age of 0 starts at the live edge: the newest group once one arrived, never a
            // floor that older groups still in flight would be reported against.
            (None, GroupStart::Floor(floor)) if self.latest_only() => {
                let latest = state.latest_ts();
                return state
                    .cache
                    .range(floor..)
                    .map(|(seq, _)| *seq)
                    .find(|seq| !state.is_expired(*seq, self.limit, latest, now));
            }
            // Nothing existed when we subscribed: a floor holds from the start, so groups that
            // arrive out of order (separate streams) below the first arrival are still delivered.
            (None, GroupStart::Floor(floor)) => floor,
            // The upstream was asked for the latest group and answered which: start there, not at
            // whichever group's stream happened to arrive first.
            (None, GroupStart::Latest) => match state.upstream {
                Upstream::Started { from, latest: true } => from,
                _ => state.min_seq?,
            },
            (Some(before), _) => before.checked_add(1)?,
        };
        if let GroupStart::Floor(floor) = self.options.start {
            base = base.max(floor);
        }
        (base <= max).then_some(base)
    }

    /// Too old for this consumer's (narrower) max age, though still cached.
    fn too_old(&self, state: &TrackState, seq: u64, latest: Option<u64>, now: Instant) -> bool {
        self.narrower && state.is_expired(seq, self.limit, latest, now)
    }

    fn step(&mut self, state: &TrackState, now: Instant) -> Step {
        if self.ended {
            return Some(Ok(None));
        }
        let floor = match self.floor {
            Some(floor) => floor,
            None => match self.anchor_later(state, now) {
                Some(floor) => {
                    self.floor = Some(floor);
                    self.origin = Some(floor);
                    floor
                }
                None => return self.closed_outcome(state),
            },
        };
        let end = self.options.end.unwrap_or(u64::MAX);
        if floor > end {
            self.ended = true;
            return Some(Ok(None));
        }
        let latest = state.latest_ts();

        // Bounded cursor: too many out-of-order deliveries above the floor, so serve the bottom.
        if self.handed.len() >= self.shared.settings.max_groups.max(1) {
            if let Some(cached) = state.cache.get(&floor) {
                if !self.too_old(state, floor, latest, now) {
                    self.hand(floor);
                    return Some(Ok(Some(TrackEvent::Group(cached.group.consume()))));
                }
            }
            let limit = state.max_seq.unwrap_or(floor).min(end);
            return Some(Ok(Some(self.gap_run(state, floor, limit, latest, now))));
        }

        // Newest pending group first.
        for (&seq, cached) in state.cache.range(floor..=end).rev() {
            if self.handed.contains(&seq) || self.too_old(state, seq, latest, now) {
                continue;
            }
            self.hand(seq);
            return Some(Ok(Some(TrackEvent::Group(cached.group.consume()))));
        }

        // Nothing deliverable: report what is missing at the floor, if anything newer exists and
        // the loss is final. A sequence that is merely absent may still arrive (groups travel on
        // separate streams), so it is reported only once the track ended, it fell out of the cache
        // window, a newer group is already expired, or the producer recorded why it is missing.
        if let Some(max) = state.max_seq {
            if floor <= max {
                if state.closed.is_some() {
                    return Some(Ok(Some(self.gap_run(state, floor, max.min(end), latest, now))));
                }
                if self.loss_is_final(state, floor, max, latest, now) {
                    // A recorded run (a dropped range) is reported whole; anything else one by one,
                    // since the next sequence may still be in flight.
                    let mut last = floor;
                    while last < max.min(end) && state.gaps.contains_key(&(last + 1)) {
                        last += 1;
                    }
                    return Some(Ok(Some(self.gap_run(state, floor, last, latest, now))));
                }
                return None;
            }
        }
        self.closed_outcome(state)
    }

    /// True when `seq` (not deliverable now) can never become deliverable to this consumer.
    fn loss_is_final(&self, state: &TrackState, seq: u64, max: u64, latest: Option<u64>, now: Instant) -> bool {
        state.cache.contains_key(&seq)
            || state.gaps.contains_key(&seq)
            || seq < state.forgotten_below
            || max - seq >= self.shared.settings.max_groups.max(1) as u64
            || state.cache.range(seq..).any(|(newer, _)| state.is_expired(*newer, self.limit, latest, now))
    }

    fn closed_outcome(&mut self, state: &TrackState) -> Step {
        match &state.closed {
            None => None,
            Some(Ok(())) => {
                self.ended = true;
                Some(Ok(None))
            }
            Some(Err(err)) => Some(Err(err.clone())),
        }
    }

    /// Marks `seq` delivered and advances the floor over everything contiguous.
    fn hand(&mut self, seq: u64) {
        match self.floor {
            Some(floor) if floor == seq => self.advance(seq.saturating_add(1)),
            _ => {
                self.handed.insert(seq);
            }
        }
    }

    fn advance(&mut self, mut floor: u64) {
        while self.handed.remove(&floor) {
            floor = floor.saturating_add(1);
        }
        self.handed = self.handed.split_off(&floor);
        self.floor = Some(floor);
    }

    /// Why `seq` is not deliverable, or `None` if it is a cached group this consumer may have.
    fn reason_at(&self, state: &TrackState, seq: u64, latest: Option<u64>, now: Instant) -> Option<GapReason> {
        if state.cache.contains_key(&seq) {
            return self.too_old(state, seq, latest, now).then_some(GapReason::Expired);
        }
        if let Some(reason) = state.gaps.get(&seq) {
            return Some(reason.clone());
        }
        if seq < state.forgotten_below {
            return Some(GapReason::Evicted);
        }
        Some(GapReason::Skipped)
    }

    /// The next sequence after `seq` whose reason may differ from that of `seq`, a sequence that is
    /// neither cached nor recorded.
    fn next_boundary(&self, state: &TrackState, seq: u64) -> Option<u64> {
        let after = (Bound::Excluded(seq), Bound::Unbounded);
        [
            state.cache.range(after).next().map(|(s, _)| *s),
            state.gaps.range(after).next().map(|(s, _)| *s),
            self.handed.range(after).next().copied(),
            (state.forgotten_below > seq).then_some(state.forgotten_below),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Reports the longest run starting at `floor` (up to `limit`) that shares one reason.
    fn gap_run(&mut self, state: &TrackState, floor: u64, limit: u64, latest: Option<u64>, now: Instant) -> TrackEvent {
        let Some(reason) = self.reason_at(state, floor, latest, now) else {
            // Defensive: the floor is deliverable after all.
            self.hand(floor);
            return match state.cache.get(&floor) {
                Some(cached) => TrackEvent::Group(cached.group.consume()),
                None => TrackEvent::Gap(Gap { start: floor, end: floor, reason: GapReason::Skipped }),
            };
        };
        let mut last = floor;
        while last < limit {
            let single = state.cache.contains_key(&last) || state.gaps.contains_key(&last);
            let next = if single { last.checked_add(1) } else { self.next_boundary(state, last) };
            let Some(next) = next.filter(|next| *next <= limit) else {
                last = limit;
                break;
            };
            if self.handed.contains(&next) || self.reason_at(state, next, latest, now).as_ref() != Some(&reason) {
                last = next - 1;
                break;
            }
            last = next;
        }
        self.advance(last.saturating_add(1));
        TrackEvent::Gap(Gap { start: floor, end: last, reason })
    }
}

impl Clone for TrackConsumer {
    fn clone(&self) -> Self {
        let mut interest_id = 0;
        self.shared.interests.send_modify(|interests| interest_id = interests.add(self.options));
        self.shared.demand.send_modify(|count| *count = count.saturating_add(1));
        Self {
            shared: self.shared.clone(),
            rx: self.rx.clone(),
            options: self.options,
            limit: self.limit,
            narrower: self.narrower,
            floor: self.floor,
            created_after: self.created_after,
            handed: self.handed.clone(),
            ended: self.ended,
            interest_id,
            frames: self.frames,
            handed_any: self.handed_any,
            origin: self.origin,
        }
    }
}

impl Drop for TrackConsumer {
    fn drop(&mut self) {
        let id = self.interest_id;
        self.shared.interests.send_modify(|interests| interests.remove(id));
        self.shared.demand.send_modify(|count| *count = count.saturating_sub(1));
    }
}

impl fmt::Debug for TrackConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackConsumer")
            .field("name", &self.shared.name)
            .field("floor", &self.floor)
            .field("handed", &self.handed.len())
            .finish_non_exhaustive()
    }
}
