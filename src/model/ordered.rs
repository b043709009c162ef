//! An ordered reader over a track consumer: groups in ascending sequence and frames in order,
//! what a decoder needs, with a latency bound so one stalled group cannot hold the track back.
//!
//! The track consumer underneath reports every sequence of its range exactly once, as a group or
//! a gap, newest first. This reader puts them back in sequence: it reads the group it is at to
//! its end, then moves to the next sequence. A group that has not arrived, or has not completed,
//! within `max_latency` after a newer group arrived is skipped and reported as a gap
//! ([`GapReason::Late`]); a group that arrives after it was skipped is dropped. Every sequence
//! of the range is thus still accounted for exactly once (a group cut short is reported as a
//! gap after the frames it did deliver).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Error, Frame, Gap, GapReason, GroupConsumer, TrackConsumer, TrackEvent, TrackInfo};

/// One step of an ordered read.
#[derive(Debug)]
pub enum OrderedEvent {
    /// The next frame: of group `group`, at absolute index `index` within it.
    Frame {
        /// The group sequence.
        group: u64,
        /// The frame's index within its group (counting from the group's true first frame).
        index: u64,
        /// The frame.
        frame: Frame,
    },
    /// Sequences that will not be delivered (or, for a group cut short, not delivered further).
    Gap(Gap),
}

/// Reads a track in sequence order; see the module documentation.
#[derive(Debug)]
pub struct OrderedConsumer {
    inner: TrackConsumer,
    max_latency: Duration,
    /// The sequence being read or waited for; `None` until the range's start is known.
    next: Option<u64>,
    /// Groups handed out by the consumer above `next`, waiting for their turn, with when they
    /// arrived here. Bounded by the track cache's group bound.
    waiting: BTreeMap<u64, (GroupConsumer, Instant)>,
    /// Gaps reported by the consumer above `next`, waiting for their turn: start -> (end, why).
    lost: BTreeMap<u64, (u64, GapReason)>,
    /// The group at `next`, being read.
    current: Option<GroupConsumer>,
    /// How the consumer underneath ended, once it did.
    inner_end: Option<Result<(), Error>>,
    /// Set once the end was returned.
    done: bool,
}

impl OrderedConsumer {
    /// The bound used when none is given: how long a group may lag once a newer one arrived.
    pub const DEFAULT_MAX_LATENCY: Duration = Duration::from_millis(1000);

    /// Reads `consumer` in order; a group later than `max_latency` after a newer one arrived is
    /// skipped as [`GapReason::Late`].
    pub fn new(consumer: TrackConsumer, max_latency: Duration) -> Self {
        Self {
            inner: consumer,
            max_latency,
            next: None,
            waiting: BTreeMap::new(),
            lost: BTreeMap::new(),
            current: None,
            inner_end: None,
            done: false,
        }
    }

    /// The track's TRACK_INFO.
    pub fn info(&self) -> TrackInfo {
        self.inner.info()
    }

    /// The consumer underneath (for its preferences and frame bounds).
    pub fn consumer_mut(&mut self) -> &mut TrackConsumer {
        &mut self.inner
    }

    /// The sequence being read or waited for; `None` until the start is known.
    pub fn next_sequence(&self) -> Option<u64> {
        self.next
    }

    /// The next frame or gap in sequence order; `Ok(None)` at the end of the range or of a
    /// finished track, `Err` once an aborted track is drained.
    pub async fn next_frame(&mut self) -> Result<Option<OrderedEvent>, Error> {
        loop {
            self.absorb();
            if let Some(result) = self.ready(Instant::now()) {
                return logged(result);
            }
            let deadline = self.deadline();
            let open = self.inner_end.is_none();
            let index = self.current.as_ref().map(GroupConsumer::next_index);
            tokio::select! {
                event = self.inner.next_group(), if open => self.take(event, Instant::now()),
                frame = next_frame_of(&mut self.current) => {
                    if let Some(result) = self.frame_read(frame, index.unwrap_or(0)) {
                        return logged(result);
                    }
                }
                () = sleep_until_or_forever(deadline) => {}
            }
        }
    }

    /// Like [`next_frame`](Self::next_frame) but never waits: `None` when nothing is ready.
    pub fn try_next_frame(&mut self) -> Option<Result<Option<OrderedEvent>, Error>> {
        self.absorb();
        self.ready(Instant::now()).map(logged)
    }

    /// Takes everything the consumer underneath has ready now.
    fn absorb(&mut self) {
        let now = Instant::now();
        while self.inner_end.is_none() {
            match self.inner.try_next_group() {
                Some(event) => self.take(event, now),
                None => break,
            }
        }
    }

    /// Files one event of the consumer underneath.
    fn take(&mut self, event: Result<Option<TrackEvent>, Error>, now: Instant) {
        let next = self.next.or(self.inner.start_sequence()).unwrap_or(0);
        match event {
            Ok(Some(TrackEvent::Group(group))) => {
                // A group older than where we are was skipped already (reported late): drop it.
                if group.sequence() >= next {
                    self.waiting.insert(group.sequence(), (group, now));
                }
            }
            Ok(Some(TrackEvent::Gap(gap))) if gap.end >= next => {
                self.lost.insert(gap.start.max(next), (gap.end, gap.reason));
            }
            Ok(Some(TrackEvent::Gap(_))) => {}
            Ok(None) => self.inner_end = Some(Ok(())),
            Err(err) => self.inner_end = Some(Err(err)),
        }
    }

    /// A frame read while waiting: the frame, or the end of the current group.
    fn frame_read(
        &mut self,
        frame: Result<Option<Frame>, Error>,
        index: u64,
    ) -> Option<Result<Option<OrderedEvent>, Error>> {
        let next = self.next?;
        match frame {
            Ok(Some(frame)) => Some(Ok(Some(OrderedEvent::Frame { group: next, index, frame }))),
            Ok(None) => {
                self.finish_current(next);
                None
            }
            Err(err) => {
                self.finish_current(next);
                Some(Ok(Some(OrderedEvent::Gap(Gap { start: next, end: next, reason: GapReason::from_error(&err) }))))
            }
        }
    }

    fn finish_current(&mut self, next: u64) {
        self.current = None;
        self.next = Some(next.saturating_add(1));
    }

    /// When the wait for `next` ends for lateness: the earliest arrival of a newer group plus the
    /// bound; `None` while no newer group arrived.
    fn deadline(&self) -> Option<Instant> {
        let earliest = self.waiting.values().map(|(_, at)| *at).min()?;
        earliest.checked_add(self.max_latency)
    }

    /// True when the wait for `next` is over: a newer group arrived more than the bound ago, or
    /// more groups wait than the track cache holds.
    fn overdue(&self, now: Instant) -> bool {
        self.waiting.len() > self.inner.shared.settings.max_groups.max(1)
            || self.deadline().is_some_and(|deadline| deadline <= now)
    }

    /// One step in sequence order, if one is ready.
    fn ready(&mut self, now: Instant) -> Option<Result<Option<OrderedEvent>, Error>> {
        loop {
            if self.done {
                return Some(Ok(None));
            }
            let next = match self.next.or(self.inner.start_sequence()) {
                Some(next) => next,
                None => return self.end_if_ended(),
            };
            self.next = Some(next);
            // Anything filed below `next` (before the start was known) is out of range.
            self.waiting.retain(|seq, _| *seq >= next);
            if let Some(group) = &mut self.current {
                let index = group.next_index();
                match group.try_next_frame() {
                    Some(frame) => match self.frame_read(frame, index) {
                        Some(result) => return Some(result),
                        None => continue,
                    },
                    None if self.overdue(now) => {
                        self.finish_current(next);
                        return Some(Ok(Some(OrderedEvent::Gap(Gap {
                            start: next,
                            end: next,
                            reason: GapReason::Late,
                        }))));
                    }
                    None => return None,
                }
            }
            if let Some((group, _)) = self.waiting.remove(&next) {
                self.current = Some(group);
                continue;
            }
            // A reported gap covering `next`.
            let covering = self.lost.range(..=next).next_back().map(|(start, (end, _))| (*start, *end));
            if let Some((start, end)) = covering.filter(|(_, end)| *end >= next) {
                let (_, reason) = self.lost.remove(&start).unwrap_or((end, GapReason::Skipped));
                self.lost = self.lost.split_off(&end.saturating_add(1));
                self.next = Some(end.saturating_add(1));
                return Some(Ok(Some(OrderedEvent::Gap(Gap { start: next, end, reason }))));
            }
            self.lost = self.lost.split_off(&next);
            // `next` has not arrived: skip it once it is late, or once the track is over.
            let lowest = [self.waiting.keys().next(), self.lost.keys().next()].into_iter().flatten().min().copied();
            let ended = self.inner_end.is_some();
            match lowest {
                Some(lowest) if ended || self.overdue(now) => {
                    let reason = match &self.inner_end {
                        Some(Err(err)) => GapReason::Aborted(err.clone()),
                        Some(Ok(())) => GapReason::Skipped,
                        None => GapReason::Late,
                    };
                    let end = lowest - 1;
                    self.next = Some(lowest);
                    return Some(Ok(Some(OrderedEvent::Gap(Gap { start: next, end, reason }))));
                }
                Some(_) => return None,
                None => return self.end_if_ended(),
            }
        }
    }

    /// The end, once the consumer underneath ended and nothing is left in order.
    fn end_if_ended(&mut self) -> Option<Result<Option<OrderedEvent>, Error>> {
        let end = self.inner_end.clone()?;
        self.done = true;
        Some(end.map(|()| None))
    }
}

/// Passes `result` through, logging a gap: the reader decides these itself (a late group), so
/// the log is where a reader of a trace learns why a group was not delivered.
fn logged(result: Result<Option<OrderedEvent>, Error>) -> Result<Option<OrderedEvent>, Error> {
    if let Ok(Some(OrderedEvent::Gap(gap))) = &result {
        tracing::debug!(start = gap.start, end = gap.end, reason = ?gap.reason, "ordered read: gap");
    }
    result
}

/// The next frame of the group being read; never resolves without one.
async fn next_frame_of(current: &mut Option<GroupConsumer>) -> Result<Option<Frame>, Error> {
    match current {
        Some(group) => group.next_frame().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one: an optional deadline in a `select!`.
pub(crate) async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
