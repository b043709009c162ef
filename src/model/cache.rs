//! Track cache bounds and the bookkeeping of what the cache holds, what it dropped and why.
//!
//! The cache is the only memory a track keeps: groups beyond its bounds are evicted, groups older
//! than the max age are expired (spec 7.3), and a small bounded record of why each recent sequence
//! left lets consumers be told about every gap with its real reason.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::group::{GroupSettings, GroupShared};
use super::{Error, GapReason};

/// Bounds on one track's cache of recent groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// The most groups kept. The oldest is evicted past it. Default 1024 (enough for a 5 s max age
    /// of one-frame audio groups at 200 groups/s). 0 is treated as 1.
    pub max_groups: usize,
    /// The most payload bytes kept across all cached groups. The oldest groups are evicted past it,
    /// never the newest one (a single group is capped by [`GroupSettings::max_bytes`]).
    /// Default 64 MiB.
    pub max_bytes: usize,
    /// How many recently removed sequences remember why they left (expired, evicted, aborted), so a
    /// lagging consumer gets the right gap reason. Older unknown sequences are reported as
    /// [`GapReason::Evicted`]. Default 1024.
    pub max_gap_records: usize,
    /// Also expire on wall-clock arrival age (lite-05 semantics): a group expires once the next
    /// group's first frame arrived at least max age ago. Default false (lite-06: timestamps only).
    pub wall_clock_expiry: bool,
    /// Bounds applied to every group of the track.
    pub group: GroupSettings,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_groups: 1024,
            max_bytes: 64 * 1024 * 1024,
            max_gap_records: 1024,
            wall_clock_expiry: false,
            group: GroupSettings::default(),
        }
    }
}

/// One cached group and what expiry and the byte bound need to know about it.
pub(crate) struct CachedGroup {
    pub(crate) group: Arc<GroupShared>,
    pub(crate) bytes: usize,
    pub(crate) first_ts: Option<u64>,
    pub(crate) newest_ts: Option<u64>,
    pub(crate) first_at: Option<Instant>,
}

impl CachedGroup {
    pub(crate) fn new(group: Arc<GroupShared>) -> Self {
        Self { group, bytes: 0, first_ts: None, newest_ts: None, first_at: None }
    }
}

/// An age bound in timestamp units and, optionally, wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AgeLimit {
    pub(crate) units: u64,
    pub(crate) wall: Option<Duration>,
}

impl AgeLimit {
    pub(crate) fn new(max_age: Duration, timescale: u64, wall_clock: bool) -> Self {
        Self { units: duration_to_units(max_age, timescale), wall: wall_clock.then_some(max_age) }
    }
}

/// Converts a duration to timescale units, rounding down and saturating.
pub(crate) fn duration_to_units(duration: Duration, timescale: u64) -> u64 {
    let units = duration.as_nanos().saturating_mul(u128::from(timescale)) / 1_000_000_000;
    u64::try_from(units).unwrap_or(u64::MAX)
}

/// A group removed from the cache that must be aborted once the track lock is released.
pub(crate) type Victim = (Arc<GroupShared>, Error);

/// Everything a track keeps, behind its watch channel.
pub(crate) struct TrackState {
    pub(crate) cache: BTreeMap<u64, CachedGroup>,
    pub(crate) bytes: usize,
    /// Why recently removed sequences left; bounded by `max_gap_records`.
    pub(crate) gaps: BTreeMap<u64, GapReason>,
    /// Sequences below this whose record was dropped: reported as evicted.
    pub(crate) forgotten_below: u64,
    /// The highest sequence ever created.
    pub(crate) max_seq: Option<u64>,
    /// The lowest sequence ever created.
    pub(crate) min_seq: Option<u64>,
    /// `None` while live, `Some(Ok)` finished, `Some(Err)` aborted.
    pub(crate) closed: Option<Result<(), Error>>,
    /// Where the groups come from, for consumers deciding where to start.
    pub(crate) upstream: Upstream,
}

/// Where a track's groups come from. A local producer creates each group in place, so a sequence
/// not created does not exist yet; a track fed by a subscription receives groups on separate
/// streams, so sequences at or above the subscription's start may still be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// Written here (or the upstream's start is unknown, as on lite-03/04).
    Local,
    /// Fed by a subscription that asked for this floor (`None`: the latest group) and has not said
    /// yet where it starts.
    Requested(Option<u64>),
    /// Fed by a subscription whose first group is `from`; `latest` when it was asked for the
    /// latest group (so `from` is the live edge when it answered).
    Started { from: u64, latest: bool },
}

impl Upstream {
    /// The lowest sequence the upstream may still deliver, if groups come from one.
    pub(crate) fn in_flight_from(self) -> Option<u64> {
        match self {
            Upstream::Local | Upstream::Requested(None) => None,
            Upstream::Requested(Some(floor)) => Some(floor),
            Upstream::Started { from, .. } => Some(from),
        }
    }

    /// True while the upstream was asked for the latest group and has not said which it is.
    pub(crate) fn latest_pending(self) -> bool {
        self == Upstream::Requested(None)
    }
}

impl TrackState {
    pub(crate) fn new() -> Self {
        Self {
            cache: BTreeMap::new(),
            bytes: 0,
            gaps: BTreeMap::new(),
            forgotten_below: 0,
            max_seq: None,
            min_seq: None,
            closed: None,
            upstream: Upstream::Local,
        }
    }

    /// Remembers why `seq` is missing, forgetting the oldest record past the bound.
    pub(crate) fn record_gap(&mut self, seq: u64, reason: GapReason, max_records: usize) {
        self.gaps.insert(seq, reason);
        while self.gaps.len() > max_records.max(1) {
            if let Some((old, _)) = self.gaps.pop_first() {
                self.forgotten_below = self.forgotten_below.max(old.saturating_add(1));
            }
        }
    }

    /// Removes `seq` from the cache, recording why.
    pub(crate) fn remove(&mut self, seq: u64, reason: GapReason, max_records: usize) -> Option<Arc<GroupShared>> {
        let cached = self.cache.remove(&seq)?;
        self.bytes = self.bytes.saturating_sub(cached.bytes);
        self.record_gap(seq, reason, max_records);
        Some(cached.group)
    }

    /// The newest frame timestamp of the latest group that has a frame (spec 7.3).
    pub(crate) fn latest_ts(&self) -> Option<u64> {
        self.cache.values().rev().find_map(|g| g.newest_ts)
    }

    /// Whether `seq` is expired under `limit`: never before a later group has produced a frame;
    /// then when `latest_ts − reach ≥ limit`, reach being the next group's first timestamp, or
    /// (wall clock) when that first frame arrived at least `limit.wall` ago.
    pub(crate) fn is_expired(&self, seq: u64, limit: AgeLimit, latest_ts: Option<u64>, now: Instant) -> bool {
        let Some(next) = self.next_with_frame(seq) else {
            return false;
        };
        if let (Some(latest), Some(reach)) = (latest_ts, next.first_ts) {
            if latest.saturating_sub(reach) >= limit.units {
                return true;
            }
        }
        if let (Some(wall), Some(at)) = (limit.wall, next.first_at) {
            if now.saturating_duration_since(at) >= wall {
                return true;
            }
        }
        false
    }

    /// When `seq` will expire by wall clock, if that is already determined.
    fn wall_deadline(&self, seq: u64, limit: AgeLimit) -> Option<Instant> {
        let wall = limit.wall?;
        let at = self.next_with_frame(seq)?.first_at?;
        at.checked_add(wall)
    }

    fn next_with_frame(&self, seq: u64) -> Option<&CachedGroup> {
        self.cache.range((Bound::Excluded(seq), Bound::Unbounded)).map(|(_, g)| g).find(|g| g.first_ts.is_some())
    }

    /// Applies the byte bound and the publisher's max age. Returns the groups to abort and the next
    /// wall-clock instant at which something may expire.
    pub(crate) fn maintain(
        &mut self,
        settings: &CacheSettings,
        limit: AgeLimit,
        now: Instant,
    ) -> (Vec<Victim>, Option<Instant>) {
        let mut victims = Vec::new();
        while self.bytes > settings.max_bytes && self.cache.len() > 1 {
            let Some(seq) = self.cache.keys().next().copied() else { break };
            if let Some(group) = self.remove(seq, GapReason::Evicted, settings.max_gap_records) {
                victims.push((group, Error::Evicted));
            }
        }
        // Expiry goes oldest first and stops at the first survivor: with timestamps that rise with
        // the sequence, reach rises too, so no later group can be expired either.
        let latest = self.latest_ts();
        let mut deadline = None;
        while let Some(seq) = self.cache.keys().next().copied() {
            if self.is_expired(seq, limit, latest, now) {
                if let Some(group) = self.remove(seq, GapReason::Expired, settings.max_gap_records) {
                    victims.push((group, Error::Expired));
                }
            } else {
                deadline = self.wall_deadline(seq, limit);
                break;
            }
        }
        (victims, deadline)
    }
}

/// Aborts groups removed from a cache (called with no track lock held).
pub(crate) fn abort_victims(victims: Vec<Victim>) {
    for (group, err) in victims {
        group.force_abort(err);
    }
}
