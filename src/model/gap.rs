//! What a track consumer is told: a group to read, or an explicit gap (spec 7.4). A consumer learns
//! of every sequence in its range exactly once, as one or the other.

use super::{Error, GroupConsumer};

/// Why a range of group sequences will not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapReason {
    /// The sequence was never produced (for example 7 then 10 skips 8 and 9).
    Skipped,
    /// Older than the max age (publisher's, or the consumer's narrower one).
    Expired,
    /// Pushed out of the cache by its group or byte bound, or the consumer fell too far behind.
    Evicted,
    /// The group's producer aborted it with this reason before the consumer got it.
    Aborted(Error),
    /// An ordered reader skipped it: it had not arrived, or not completed, within the reader's
    /// latency bound after a newer group arrived ([`OrderedConsumer`](super::OrderedConsumer)).
    Late,
}

impl GapReason {
    /// The reason a removed group carries, from the error it was aborted with.
    pub(crate) fn from_error(err: &Error) -> Self {
        match err {
            Error::Expired => GapReason::Expired,
            Error::Evicted => GapReason::Evicted,
            other => GapReason::Aborted(other.clone()),
        }
    }

    /// The stream error code a session would put in SUBSCRIBE_DROP for this gap.
    pub fn code(&self) -> crate::coding::StreamCode {
        match self {
            GapReason::Skipped => crate::coding::StreamCode::NotFound,
            GapReason::Expired => Error::Expired.code(),
            GapReason::Evicted => Error::Evicted.code(),
            GapReason::Aborted(err) => err.code(),
            GapReason::Late => crate::coding::StreamCode::TooFarBehind,
        }
    }
}

/// An inclusive range of sequences that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// First missing sequence.
    pub start: u64,
    /// Last missing sequence (inclusive, like SUBSCRIBE_DROP).
    pub end: u64,
    /// Why.
    pub reason: GapReason,
}

/// One step of a track subscription.
#[derive(Debug)]
pub enum TrackEvent {
    /// A group to read.
    Group(GroupConsumer),
    /// Sequences that will not be delivered.
    Gap(Gap),
}

impl TrackEvent {
    /// The group, if this is one.
    pub fn into_group(self) -> Option<GroupConsumer> {
        match self {
            TrackEvent::Group(group) => Some(group),
            TrackEvent::Gap(_) => None,
        }
    }

    /// The gap, if this is one.
    pub fn into_gap(self) -> Option<Gap> {
        match self {
            TrackEvent::Group(_) => None,
            TrackEvent::Gap(gap) => Some(gap),
        }
    }
}
