//! What push and pull subscriptions share: find the broadcast among the remote announcements,
//! subscribe to the track, and hand over its frames (numbered within their group) and gaps.

use std::future::Future;

use std::time::Duration;

use tokio::sync::watch;

use super::frame::moqt_frame;
use super::moqt_status;
use crate::coding::Path;
use crate::model::{self, FrameBounds, GroupStart, OriginProducer, SubscribeOptions, TrackEvent};

/// Options of `moqt_client_subscribe_with` and `moqt_client_subscribe_pull_with`.
/// Zero-initialise (every zero is the default), then set `struct_size = sizeof(...)`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_subscribe_options {
    /// `sizeof(moqt_subscribe_options)`: lets later versions append fields.
    pub struct_size: u32,
    /// Use `priority` instead of the publisher's (higher is delivered first under congestion).
    pub has_priority: bool,
    /// The subscriber priority, with `has_priority`.
    pub priority: u8,
    /// The oldest content wanted, milliseconds, narrower than the publisher's; 0: the publisher's.
    pub max_age_ms: u64,
    /// Where to start: 0 the oldest group the max age keeps; N > 0 group N; -1 the latest group.
    pub start_group: i64,
    /// Stop after `end_group` (inclusive).
    pub has_end_group: bool,
    /// The last group wanted, with `has_end_group`.
    pub end_group: u64,
    /// Skip the frames before this index in group `start_group` (in the first group delivered
    /// when `start_group` is -1). 0: from the group's start.
    pub frame_start: u64,
    /// End at frame `frame_end` (inclusive) of `end_group`; needs `has_end_group`.
    pub has_frame_end: bool,
    /// The last frame wanted of `end_group`, with `has_frame_end`.
    pub frame_end: u64,
}

// SAFETY: repr(C), struct_size first, every field an integer or a bool.
unsafe impl super::SizedStruct for moqt_subscribe_options {}

impl moqt_subscribe_options {
    /// The caller's options read up to its `struct_size` (the rest default), as model options and
    /// frame bounds.
    pub(crate) fn read(ptr: *const moqt_subscribe_options) -> Result<(SubscribeOptions, FrameBounds), moqt_status> {
        let Some(options) = super::read_sized(ptr) else {
            return Ok(Default::default());
        };
        if options.has_frame_end && !options.has_end_group {
            return Err(super::set_error(moqt_status::ErrInvalidArg, "frame_end needs has_end_group"));
        }
        let frames = FrameBounds {
            start_group: u64::try_from(options.start_group).ok(),
            start_frame: options.frame_start,
            end: options.has_frame_end.then_some((options.end_group, options.frame_end)),
        };
        let start = match options.start_group {
            -1 => GroupStart::Latest,
            n if n >= 0 => GroupStart::Floor(n as u64),
            other => {
                return Err(super::set_error(
                    moqt_status::ErrInvalidArg,
                    &format!("start_group {other}: use -1 (latest), 0 (oldest kept) or a group number"),
                ));
            }
        };
        let wanted = SubscribeOptions {
            start,
            end: options.has_end_group.then_some(options.end_group),
            max_age: (options.max_age_ms > 0).then(|| Duration::from_millis(options.max_age_ms)),
            priority: options.has_priority.then_some(options.priority),
        };
        Ok((wanted, frames))
    }
}

/// How a followed track ended, as C sees it: a status, and the moq-lite code of an abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackEnd {
    pub(crate) status: moqt_status,
    /// The stream error code, for MOQT_STATUS_ERR_ABORTED.
    pub(crate) code: Option<u64>,
}

impl From<moqt_status> for TrackEnd {
    fn from(status: moqt_status) -> Self {
        TrackEnd { status, code: None }
    }
}

impl TrackEnd {
    /// The end of a track consumer's run: `Ok` is the track finished (or the range complete);
    /// an abort with a stream code is the publisher's (or a relay's) abort, except that the
    /// session carrying the track closing reads as closed; NOT_FOUND is its own status.
    pub(crate) fn of(result: &Result<(), model::Error>) -> Self {
        use crate::coding::StreamCode;
        match result {
            Ok(()) => moqt_status::End.into(),
            Err(model::Error::NotFound | model::Error::Aborted(StreamCode::NotFound)) => {
                moqt_status::ErrNotFound.into()
            }
            Err(
                model::Error::Dropped
                | model::Error::Closed
                | model::Error::Ended
                | model::Error::Aborted(StreamCode::SessionClosed),
            ) => moqt_status::ErrClosed.into(),
            Err(err) => TrackEnd { status: moqt_status::ErrAborted, code: Some(err.code().to_u64()) },
        }
    }

    /// Sets this thread's last error to say how the track ended (the code for an abort) and
    /// returns the status: what `on_closed` and `moqt_pull_next_frame` report.
    pub(crate) fn report(self) -> moqt_status {
        let message = match (self.status, self.code) {
            (moqt_status::End, _) => "the track ended: every frame was delivered".to_string(),
            (moqt_status::ErrAborted, Some(code)) => {
                let name = crate::coding::StreamCode::from_u64(code);
                format!("the track was aborted with stream error code {code:#x} ({name:?})")
            }
            (status, _) => {
                // SAFETY: moqt_status_str returns a static NUL-terminated string.
                let text = unsafe { std::ffi::CStr::from_ptr(super::moqt_status_str(status as i32)) };
                format!("ended: {}", text.to_string_lossy())
            }
        };
        super::set_error_code(self.status, &message, self.code)
    }
}

/// One item of a followed track, in order.
pub(crate) enum Delivery {
    Frame(moqt_frame),
    Gap(model::Gap),
}

/// Follows `name` in the broadcast `wanted` until the track ends, passing each item to
/// `deliver`, which returns false to stop; `options` starts the subscription and then carries
/// live priority and max-age updates; `frames` trims the first and the end group. Returns how
/// it ended: END (the track finished, or the range is complete), ABORTED with the publisher's
/// code, NOT_FOUND, or CLOSED (the session or origin ended, or `deliver` stopped).
pub(crate) async fn follow_track<F, Fut>(
    remote: OriginProducer,
    wanted: Path,
    name: String,
    mut options: watch::Receiver<SubscribeOptions>,
    frames: FrameBounds,
    mut deliver: F,
) -> TrackEnd
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = bool>,
{
    super::test_panic_point(&name);
    let Some(broadcast) = remote.consume().announced(&wanted).await else { return moqt_status::ErrClosed.into() };
    let initial = *options.borrow_and_update();
    let Ok(mut track) = broadcast.subscribe_track_with(&name, initial).await else {
        return moqt_status::ErrNotFound.into();
    };
    track.set_frame_bounds(frames);
    loop {
        let next = tokio::select! {
            next = track.next_group() => next,
            // A live update from the host: priority and max age travel upstream (SUBSCRIBE_UPDATE).
            Ok(()) = options.changed() => {
                let wanted = *options.borrow_and_update();
                track.set_preferences(wanted.priority, wanted.max_age);
                continue;
            }
        };
        match next {
            Ok(Some(TrackEvent::Group(mut group))) => {
                let (sequence, timescale) = (group.sequence(), track.info().timescale);
                let timestamps = track.has_timestamps();
                loop {
                    let index = group.next_index();
                    let Ok(Some(frame)) = group.next_frame().await else { break };
                    let frame = moqt_frame::new(frame, timescale, sequence, index, timestamps);
                    if !deliver(Delivery::Frame(frame)).await {
                        return moqt_status::ErrClosed.into();
                    }
                }
            }
            Ok(Some(TrackEvent::Gap(gap))) => {
                if !deliver(Delivery::Gap(gap)).await {
                    return moqt_status::ErrClosed.into();
                }
            }
            Ok(None) => return TrackEnd::of(&Ok(())),
            Err(err) => return TrackEnd::of(&Err(err)),
        }
    }
}

/// Applies a live update from `options` (priority and max age only; NULL is an error).
pub(crate) fn update(updates: &watch::Sender<SubscribeOptions>, options: *const moqt_subscribe_options) -> moqt_status {
    if options.is_null() {
        return super::set_error(moqt_status::ErrInvalidArg, "options is NULL");
    }
    match moqt_subscribe_options::read(options) {
        Ok((wanted, _)) => {
            updates.send_modify(|current| {
                current.priority = wanted.priority;
                current.max_age = wanted.max_age;
            });
            moqt_status::Ok
        }
        Err(status) => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::StreamCode;

    #[test]
    fn a_track_end_reads_as_end_abort_with_code_or_closed() {
        assert_eq!(TrackEnd::of(&Ok(())), moqt_status::End.into());
        let aborted = TrackEnd::of(&Err(model::Error::Aborted(StreamCode::Application(7))));
        assert_eq!(aborted, TrackEnd { status: moqt_status::ErrAborted, code: Some(64 + 7) });
        let cancelled = TrackEnd::of(&Err(model::Error::Aborted(StreamCode::Cancelled)));
        assert_eq!(cancelled, TrackEnd { status: moqt_status::ErrAborted, code: Some(0x1) });
        // The session carrying the track ended, here or upstream: closed, not the publisher's word.
        for closed in [model::Error::Dropped, model::Error::Aborted(StreamCode::SessionClosed)] {
            assert_eq!(TrackEnd::of(&Err(closed)), moqt_status::ErrClosed.into());
        }
        assert_eq!(TrackEnd::of(&Err(model::Error::NotFound)), moqt_status::ErrNotFound.into());

        // report() leaves the code for moqt_last_error_code, and only for an abort.
        let mut code = 0;
        assert_eq!(aborted.report(), moqt_status::ErrAborted);
        assert!(super::super::moqt_last_error_code(&mut code));
        assert_eq!(code, 0x47);
        assert_eq!(TrackEnd::of(&Ok(())).report(), moqt_status::End);
        assert!(!super::super::moqt_last_error_code(&mut code));
    }
}
