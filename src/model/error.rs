//! Why a group, track or broadcast ended early, and why an operation was refused.
//!
//! One enum serves both: an abort reason travels from a producer to every consumer, and the same
//! value can be turned into a moq-lite stream reset code ([`Error::code`]) by the session layer.

use crate::coding::StreamCode;

/// An abort reason or a refused operation. Cheap to clone: it is handed to every consumer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Cancelled on purpose (an unsubscribe, a rejected request without a better reason).
    #[error("cancelled")]
    Cancelled,
    /// The producer was dropped without finishing: consumers must not wait for it.
    #[error("producer dropped without finishing")]
    Dropped,
    /// Older than the max age (spec 7.3).
    #[error("expired: older than the max age")]
    Expired,
    /// Pushed out of a bounded cache.
    #[error("evicted from the cache")]
    Evicted,
    /// Aborted with a moq-lite stream error code (from a peer's reset, or chosen by the application).
    #[error("aborted with stream error code {0:?}")]
    Aborted(StreamCode),
    /// No such track or broadcast.
    #[error("not found")]
    NotFound,
    /// A group passed its frame-count bound.
    #[error("group has more than {limit} frames")]
    TooManyFrames {
        /// The bound that was passed.
        limit: usize,
    },
    /// A group passed its byte bound.
    #[error("group has more than {limit} payload bytes")]
    TooManyBytes {
        /// The bound that was passed.
        limit: usize,
    },
    /// A group with this sequence already exists (or existed) in the track.
    #[error("duplicate group sequence {0}")]
    DuplicateGroup(u64),
    /// A track with this name already exists in the broadcast.
    #[error("track already exists")]
    TrackExists,
    /// The producer already finished or aborted.
    #[error("already closed")]
    Closed,
    /// The broadcast has ended; no new tracks can be requested from it.
    #[error("broadcast ended")]
    Ended,
    /// The track-per-broadcast bound was reached.
    #[error("too many tracks (limit {0})")]
    TooManyTracks(usize),
    /// The pending track request bound was reached.
    #[error("too many pending track requests (limit {0})")]
    TooManyRequests(usize),
    /// The broadcast-per-origin bound was reached.
    #[error("too many broadcasts (limit {0})")]
    TooManyBroadcasts(usize),
    /// The routes-per-path bound was reached.
    #[error("too many routes for one path (limit {0})")]
    TooManyRoutes(usize),
    /// A timescale of 0 (spec 3.5 forbids it).
    #[error("timescale must not be 0")]
    InvalidTimescale,
    /// The group sequence space is exhausted.
    #[error("group sequence overflow")]
    SequenceOverflow,
    /// A frame written without starting a group where one must start: the track's first frame
    /// when groups are keyframe-aligned, or the frame after a group passed its bounds.
    #[error("this frame must start a new group: {0}")]
    NewGroupRequired(&'static str),
}

impl Error {
    /// The error a stream code from the peer stands for, so that a reset with OLD reads as
    /// [`Error::Expired`] whether the expiry happened here or upstream.
    pub fn from_code(code: StreamCode) -> Self {
        match code {
            StreamCode::Old => Error::Expired,
            StreamCode::Evicted => Error::Evicted,
            StreamCode::Cancelled => Error::Cancelled,
            other => Error::Aborted(other),
        }
    }

    /// The moq-lite stream reset code (spec 6.1) a session should send for this error.
    pub fn code(&self) -> StreamCode {
        match self {
            Error::Cancelled | Error::Ended => StreamCode::Cancelled,
            Error::Expired => StreamCode::Old,
            Error::Evicted => StreamCode::Evicted,
            Error::Aborted(c) => *c,
            Error::NotFound => StreamCode::NotFound,
            Error::TooManyFrames { .. } | Error::TooManyBytes { .. } => StreamCode::GroupTooLarge,
            Error::Dropped
            | Error::DuplicateGroup(_)
            | Error::TrackExists
            | Error::Closed
            | Error::TooManyTracks(_)
            | Error::TooManyRequests(_)
            | Error::TooManyBroadcasts(_)
            | Error::TooManyRoutes(_)
            | Error::InvalidTimescale
            | Error::SequenceOverflow
            | Error::NewGroupRequired(_) => StreamCode::InternalError,
        }
    }
}
