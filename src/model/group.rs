//! A group: an ordered run of frames with one producer and any number of independent readers.
//!
//! Frames are stored once and shared; each [`GroupConsumer`] only keeps an index. Aborting a group
//! (by its producer, or by the track cache on expiry or eviction) frees the frames at once and makes
//! every reader that has not seen the end fail with the reason: the moq-lite equivalent of a
//! Group-stream reset.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::{Error, Frame};
use crate::coding::{MAX_GROUP_BYTES, MAX_GROUP_FRAMES};

/// Bounds on one group, so a runaway producer cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    /// The most frames a group may hold. Default [`MAX_GROUP_FRAMES`](crate::MAX_GROUP_FRAMES) (8192, the reference's bound).
    pub max_frames: usize,
    /// The most payload bytes a group may hold. Default [`MAX_GROUP_BYTES`](crate::MAX_GROUP_BYTES) (32 MiB, the reference's
    /// bound).
    pub max_bytes: usize,
}

impl Default for GroupSettings {
    /// The wire bounds, so the model and the codec cannot drift apart.
    fn default() -> Self {
        Self { max_frames: MAX_GROUP_FRAMES as usize, max_bytes: MAX_GROUP_BYTES as usize }
    }
}

/// Told about a group's progress; the track cache uses it for byte accounting and expiry.
pub(crate) trait GroupObserver: Send + Sync {
    /// A frame was appended.
    fn on_frame(&self, sequence: u64, timestamp: u64, size: usize);
    /// The producer finished (`Ok`) or aborted the group.
    fn on_close(&self, sequence: u64, result: &Result<(), Error>);
}

#[derive(Debug, Default)]
pub(crate) struct GroupState {
    frames: Vec<Frame>,
    bytes: usize,
    /// `None` while open, `Some(Ok)` when finished, `Some(Err)` when aborted.
    closed: Option<Result<(), Error>>,
}

/// What producers and consumers of one group share.
pub(crate) struct GroupShared {
    sequence: u64,
    frame_start: u64,
    settings: GroupSettings,
    state: watch::Sender<GroupState>,
}

impl GroupShared {
    pub(crate) fn new(sequence: u64, frame_start: u64, settings: GroupSettings) -> Arc<Self> {
        Arc::new(Self { sequence, frame_start, settings, state: watch::Sender::new(GroupState::default()) })
    }

    /// Aborts the group even if it was finished, so readers that have not reached the end learn
    /// it is gone (used for expiry and eviction). Frees the frames. Returns false if already aborted.
    pub(crate) fn force_abort(&self, err: Error) -> bool {
        self.state.send_if_modified(|state| {
            if matches!(state.closed, Some(Err(_))) {
                return false;
            }
            state.closed = Some(Err(err));
            state.frames = Vec::new();
            state.bytes = 0;
            true
        })
    }

    pub(crate) fn consume(self: &Arc<Self>) -> GroupConsumer {
        GroupConsumer { rx: self.state.subscribe(), shared: self.clone(), index: 0, last: None }
    }
}

/// Writes one group. Dropping it without [`finish`](Self::finish) aborts the group with
/// [`Error::Dropped`], so consumers never hang.
pub struct GroupProducer {
    shared: Arc<GroupShared>,
    observer: Option<Arc<dyn GroupObserver>>,
    done: bool,
}

impl GroupProducer {
    /// A standalone group (not in a track). `frame_start` > 0 means the leading frames are missing
    /// (spec 3.9).
    pub fn new(sequence: u64, frame_start: u64, settings: GroupSettings) -> Self {
        Self { shared: GroupShared::new(sequence, frame_start, settings), observer: None, done: false }
    }

    pub(crate) fn with_observer(shared: Arc<GroupShared>, observer: Arc<dyn GroupObserver>) -> Self {
        Self { shared, observer: Some(observer), done: false }
    }

    /// The group sequence number.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// Index of the first frame this group holds; > 0 means leading frames are missing.
    pub fn frame_start(&self) -> u64 {
        self.shared.frame_start
    }

    /// How many frames have been written.
    pub fn frame_count(&self) -> usize {
        self.shared.state.borrow().frames.len()
    }

    /// Appends a frame. Fails if the group was closed (for example expired or evicted by the track
    /// cache) or if the frame would pass a bound, in which case the group is aborted with that error.
    pub fn write_frame(&mut self, frame: Frame) -> Result<(), Error> {
        let settings = self.shared.settings;
        let size = frame.payload.len();
        let timestamp = frame.timestamp;
        let mut result = Ok(());
        self.shared.state.send_if_modified(|state| {
            if let Some(closed) = &state.closed {
                result = Err(closed.clone().err().unwrap_or(Error::Closed));
                return false;
            }
            let err = if state.frames.len() >= settings.max_frames {
                Some(Error::TooManyFrames { limit: settings.max_frames })
            } else if state.bytes.saturating_add(size) > settings.max_bytes {
                Some(Error::TooManyBytes { limit: settings.max_bytes })
            } else {
                None
            };
            if let Some(err) = err {
                state.closed = Some(Err(err.clone()));
                state.frames = Vec::new();
                state.bytes = 0;
                result = Err(err);
                return true;
            }
            state.bytes += size;
            state.frames.push(frame);
            true
        });
        match &result {
            Ok(()) => {
                if let Some(observer) = &self.observer {
                    observer.on_frame(self.shared.sequence, timestamp, size);
                }
            }
            Err(err @ (Error::TooManyFrames { .. } | Error::TooManyBytes { .. })) => {
                self.done = true;
                if let Some(observer) = &self.observer {
                    observer.on_close(self.shared.sequence, &Err(err.clone()));
                }
            }
            Err(_) => self.done = true,
        }
        result
    }

    /// Convenience for [`write_frame`](Self::write_frame).
    pub fn write(&mut self, timestamp: u64, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.write_frame(Frame::new(timestamp, payload))
    }

    /// Ends the group cleanly. Fails if it had already been aborted (for example evicted).
    pub fn finish(mut self) -> Result<(), Error> {
        self.close(Ok(()))
    }

    /// Aborts the group; consumers see `reason`.
    pub fn abort(mut self, reason: Error) {
        let _ = self.close(Err(reason));
    }

    /// A reader starting at the first stored frame.
    pub fn consume(&self) -> GroupConsumer {
        self.shared.consume()
    }

    fn close(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        self.done = true;
        let mut outcome = Ok(());
        self.shared.state.send_if_modified(|state| {
            if let Some(closed) = &state.closed {
                outcome = Err(closed.clone().err().unwrap_or(Error::Closed));
                return false;
            }
            if result.is_err() {
                state.frames = Vec::new();
                state.bytes = 0;
            }
            state.closed = Some(result.clone());
            true
        });
        if outcome.is_ok() {
            if let Some(observer) = &self.observer {
                observer.on_close(self.shared.sequence, &result);
            }
        }
        outcome
    }
}

impl Drop for GroupProducer {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.close(Err(Error::Dropped));
        }
    }
}

impl fmt::Debug for GroupProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupProducer").field("sequence", &self.shared.sequence).finish_non_exhaustive()
    }
}

/// Reads one group with its own cursor. Cloning copies the cursor.
#[derive(Clone)]
pub struct GroupConsumer {
    shared: Arc<GroupShared>,
    rx: watch::Receiver<GroupState>,
    index: usize,
    /// The last absolute frame index this consumer reads (inclusive), from [`Self::bounded`].
    last: Option<u64>,
}

impl GroupConsumer {
    /// The group sequence number.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// Index of the group's first stored frame; > 0 means leading frames are missing (spec 3.9).
    pub fn frame_start(&self) -> u64 {
        self.shared.frame_start
    }

    /// Absolute index (counting from the group's true first frame) of the next frame to be read.
    pub fn next_index(&self) -> u64 {
        self.shared.frame_start.saturating_add(self.index as u64)
    }

    /// This consumer reading only frames `first..=last` (absolute indexes; `None`: to the end):
    /// frames before `first` are skipped as they arrive, and the group reads as finished after
    /// `last`. Subscriptions apply their [`FrameBounds`](super::FrameBounds) this way.
    pub fn bounded(mut self, first: u64, last: Option<u64>) -> Self {
        let skip = first.saturating_sub(self.shared.frame_start);
        self.index = self.index.max(usize::try_from(skip).unwrap_or(usize::MAX));
        self.last = last;
        self
    }

    /// True once the cursor is past the consumer's last frame.
    fn past_last(&self) -> bool {
        self.last.is_some_and(|last| self.next_index() > last)
    }

    /// The next frame: `Ok(Some)` a frame, `Ok(None)` the group finished, `Err` it was aborted
    /// (an abort is immediate, like a stream reset: unread frames are discarded).
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.past_last() {
            return Ok(None);
        }
        loop {
            {
                let state = self.rx.borrow_and_update();
                if let Some(Err(err)) = &state.closed {
                    return Err(err.clone());
                }
                if let Some(frame) = state.frames.get(self.index) {
                    self.index += 1;
                    return Ok(Some(frame.clone()));
                }
                if let Some(Ok(())) = state.closed {
                    return Ok(None);
                }
            }
            // The sender lives in `shared`, which we hold, so this cannot fail.
            if self.rx.changed().await.is_err() {
                return Err(Error::Dropped);
            }
        }
    }

    /// Like [`next_frame`](Self::next_frame) but does not wait: `None` when nothing is ready yet.
    pub fn try_next_frame(&mut self) -> Option<Result<Option<Frame>, Error>> {
        if self.past_last() {
            return Some(Ok(None));
        }
        let state = self.rx.borrow_and_update();
        if let Some(Err(err)) = &state.closed {
            return Some(Err(err.clone()));
        }
        if let Some(frame) = state.frames.get(self.index) {
            self.index += 1;
            return Some(Ok(Some(frame.clone())));
        }
        match state.closed {
            Some(Ok(())) => Some(Ok(None)),
            _ => None,
        }
    }

    /// `None` while open, `Some(Ok)` when finished, `Some(Err)` when aborted.
    pub fn status(&self) -> Option<Result<(), Error>> {
        self.shared.state.borrow().closed.clone()
    }

    /// Resolves with the reason once the group is aborted (expired or evicted from its track's
    /// cache included); never if it is not. Independent of this consumer's cursor, so a sender
    /// blocked on a slow peer can stop as soon as its group is gone. The future keeps the group
    /// alive (an abort frees its frames).
    pub fn aborted(&self) -> impl std::future::Future<Output = Error> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let mut rx = shared.state.subscribe();
            loop {
                if let Some(Err(err)) = &rx.borrow_and_update().closed {
                    return err.clone();
                }
                // The sender lives in `shared`, which this future holds, so this cannot fail.
                if rx.changed().await.is_err() {
                    return Error::Dropped;
                }
            }
        }
    }
}

impl fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("sequence", &self.shared.sequence)
            .field("frame_start", &self.shared.frame_start)
            .field("index", &self.index)
            .finish()
    }
}
