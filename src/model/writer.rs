//! Writes a track frame by frame with explicit group boundaries: the publisher says which frame
//! starts a group (in moq-lite, a keyframe), and the writer never starts one on its own where the
//! publisher did not ask, so a subscriber's "first frame of a group" is always a frame its
//! publisher marked. A group that passes its bounds is an error the caller sees, and the next frame
//! must start a new group.

use std::fmt;

use super::{Error, Frame, GroupProducer, TrackProducer};

/// How a [`TrackWriter`] treats group boundaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterSettings {
    /// Every group starts with a frame the caller marks as starting one (a keyframe): the track's
    /// first frame must be marked too, instead of opening the first group implicitly. Default
    /// false.
    pub keyframe_groups: bool,
}

/// Where the writer stands between two frames.
#[derive(Debug)]
enum State {
    /// Nothing written yet.
    Fresh,
    /// A group is open and takes the next frame.
    Open(GroupProducer),
    /// The last group passed its bounds and was aborted: the next frame must start a group.
    Overflowed,
    /// The track was finished or aborted.
    Ended,
}

/// Writes one track: frames into its current group, a new group where the caller says.
///
/// Dropping it finishes the open group and the track, as [`finish`](Self::finish) does.
pub struct TrackWriter {
    track: Option<TrackProducer>,
    state: State,
    settings: WriterSettings,
}

impl TrackWriter {
    /// A writer of `track` with these group rules.
    pub fn new(track: TrackProducer, settings: WriterSettings) -> Self {
        Self { track: Some(track), state: State::Fresh, settings }
    }

    /// The track written.
    pub fn track(&self) -> Option<&TrackProducer> {
        self.track.as_ref()
    }

    /// True once the track was finished or aborted.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Appends `frame`, starting a new group first when `new_group` is set (the frame is a
    /// keyframe; the open group, if any, is finished). Returns the sequence of the group it went
    /// to.
    ///
    /// Refused without writing, with [`Error::NewGroupRequired`], when the frame must start a group
    /// and `new_group` is not set: the first frame of a keyframe-aligned track, or the frame after
    /// a group passed its bounds. Without `keyframe_groups` the first frame opens the first group
    /// by itself. A frame that would pass the group's frame or byte bound is not written: the
    /// group is aborted (subscribers see it end with GROUP_TOO_LARGE), the error is
    /// [`Error::TooManyFrames`] or [`Error::TooManyBytes`], and the next frame must start a new
    /// group. [`Error::Closed`] once the track ended.
    pub fn write(&mut self, frame: Frame, new_group: bool) -> Result<u64, Error> {
        let start = match &self.state {
            State::Ended => return Err(Error::Closed),
            State::Fresh if !new_group && self.settings.keyframe_groups => {
                return Err(Error::NewGroupRequired(
                    "groups are keyframe-aligned, so the track's first frame must start a group",
                ));
            }
            State::Overflowed if !new_group => {
                return Err(Error::NewGroupRequired(
                    "the previous group passed its bounds and was aborted; start the next group at a keyframe",
                ));
            }
            State::Fresh | State::Overflowed => true,
            State::Open(_) => new_group,
        };
        if start {
            if let State::Open(done) = std::mem::replace(&mut self.state, State::Fresh) {
                // An already aborted group (expired, evicted) has nothing left to finish.
                let _ = done.finish();
            }
            let track = self.track.as_mut().ok_or(Error::Closed)?;
            self.state = State::Open(track.append_group()?);
        }
        let State::Open(group) = &mut self.state else { return Err(Error::Closed) };
        let sequence = group.sequence();
        match group.write_frame(frame) {
            Ok(()) => Ok(sequence),
            Err(err @ (Error::TooManyFrames { .. } | Error::TooManyBytes { .. })) => {
                // The group aborted itself; the next frame must open a new one.
                self.state = State::Overflowed;
                Err(err)
            }
            Err(err) => {
                // The group was closed under us (expired or evicted by the cache): the frame is
                // lost with it, and the next frame must start a group, as after an overflow.
                self.state = State::Overflowed;
                Err(err)
            }
        }
    }

    /// Ends the track cleanly: the open group is finished, then the track; consumers drain what
    /// is cached and then see the end. [`Error::Closed`] if it had already ended.
    pub fn finish(&mut self) -> Result<(), Error> {
        if let State::Open(group) = std::mem::replace(&mut self.state, State::Ended) {
            let _ = group.finish();
        }
        self.track.take().map(TrackProducer::finish).ok_or(Error::Closed)
    }

    /// Aborts the open group and the track with `reason`. [`Error::Closed`] if it had already
    /// ended.
    pub fn abort(&mut self, reason: Error) -> Result<(), Error> {
        if let State::Open(group) = std::mem::replace(&mut self.state, State::Ended) {
            group.abort(reason.clone());
        }
        self.track.take().map(|track| track.abort(reason)).ok_or(Error::Closed)
    }
}

impl Drop for TrackWriter {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl fmt::Debug for TrackWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackWriter").field("state", &self.state).field("settings", &self.settings).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CacheSettings, GroupSettings, TrackEvent, TrackInfo};

    fn writer(keyframe_groups: bool, max_frames: usize) -> (TrackWriter, crate::model::TrackConsumer) {
        let settings = CacheSettings {
            group: GroupSettings { max_frames, ..GroupSettings::default() },
            ..CacheSettings::default()
        };
        let track = TrackProducer::with_settings("t", TrackInfo::default(), settings).unwrap();
        let consumer = track.consume();
        (TrackWriter::new(track, WriterSettings { keyframe_groups }), consumer)
    }

    #[test]
    fn a_keyframe_aligned_track_refuses_an_unmarked_first_frame() {
        let (mut writer, consumer) = writer(true, 8);
        let err = writer.write(Frame::new(0, "delta"), false).unwrap_err();
        assert!(matches!(err, Error::NewGroupRequired(_)), "{err}");
        assert_eq!(consumer.latest_sequence(), None, "no group was opened");
        assert_eq!(writer.write(Frame::new(1, "key"), true), Ok(0));
        assert_eq!(writer.write(Frame::new(2, "delta"), false), Ok(0));
        assert_eq!(writer.write(Frame::new(3, "key"), true), Ok(1));
    }

    #[test]
    fn without_alignment_the_first_frame_opens_the_first_group() {
        let (mut writer, _consumer) = writer(false, 8);
        assert_eq!(writer.write(Frame::new(0, "a"), false), Ok(0));
        assert_eq!(writer.write(Frame::new(1, "b"), false), Ok(0));
    }

    #[tokio::test]
    async fn an_overflow_aborts_the_group_and_the_next_frame_must_start_one() {
        for keyframe_groups in [false, true] {
            let (mut writer, mut consumer) = writer(keyframe_groups, 2);
            assert_eq!(writer.write(Frame::new(0, "k0"), true), Ok(0));
            assert_eq!(writer.write(Frame::new(1, "d1"), false), Ok(0));
            let err = writer.write(Frame::new(2, "d2"), false).unwrap_err();
            assert_eq!(err, Error::TooManyFrames { limit: 2 });
            // Never a silent new group on whatever comes next.
            let err = writer.write(Frame::new(3, "d3"), false).unwrap_err();
            assert!(matches!(err, Error::NewGroupRequired(_)), "{err}");
            assert_eq!(consumer.latest_sequence(), Some(0));
            assert_eq!(writer.write(Frame::new(4, "k4"), true), Ok(1));
            writer.finish().unwrap();
            assert_eq!(writer.write(Frame::new(5, "late"), true), Err(Error::Closed));
            assert_eq!(writer.finish(), Err(Error::Closed));

            // Group 1 holds the keyframe; group 0 is gone with the bound's code.
            let mut seen = Vec::new();
            while let Some(event) = consumer.next_group().await.unwrap() {
                match event {
                    TrackEvent::Group(mut group) => {
                        let first = group.next_frame().await.unwrap().unwrap();
                        seen.push((group.sequence(), first.payload));
                    }
                    TrackEvent::Gap(gap) => {
                        assert_eq!(gap.reason.code(), crate::coding::StreamCode::GroupTooLarge);
                        seen.push((gap.start, bytes::Bytes::from_static(b"gap")));
                    }
                }
            }
            seen.sort();
            assert_eq!(seen, [(0, bytes::Bytes::from_static(b"gap")), (1, bytes::Bytes::from_static(b"k4"))]);
        }
    }

    #[tokio::test]
    async fn abort_reaches_consumers_and_ends_the_writer() {
        let (mut writer, mut consumer) = writer(true, 8);
        writer.write(Frame::new(0, "k"), true).unwrap();
        let reason = Error::Aborted(crate::coding::StreamCode::Application(7));
        writer.abort(reason.clone()).unwrap();
        assert!(writer.is_ended());
        assert_eq!(writer.abort(reason.clone()), Err(Error::Closed));
        loop {
            match consumer.next_group().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("an aborted track does not end cleanly"),
                Err(err) => {
                    assert_eq!(err, reason);
                    break;
                }
            }
        }
    }
}
