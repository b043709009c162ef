//! One frame: a timestamp and a payload shared by every consumer.

use bytes::Bytes;

/// A frame of a group. Cloning shares the payload (`Bytes` is reference counted), so fan-out to
/// any number of consumers never copies media.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Presentation timestamp in the track's timescale units (spec 3.5).
    pub timestamp: u64,
    /// The payload. May be empty (spec 3.9 allows zero-length frames as gap markers).
    pub payload: Bytes,
}

impl Frame {
    /// A frame from a timestamp and anything that converts into `Bytes`.
    pub fn new(timestamp: u64, payload: impl Into<Bytes>) -> Self {
        Self { timestamp, payload: payload.into() }
    }
}
