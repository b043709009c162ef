//! What push and pull subscriptions share: find the broadcast among the remote announcements,
//! subscribe to the track, and hand over its frames (numbered within their group) and gaps.

use std::future::Future;

use std::time::Duration;

use tokio::sync::watch;

use super::args::{SizedStruct, read_sized};
use super::error::{FfiError, FfiResult, moqt_status, status_name};
use super::frame::moqt_frame;
use crate::coding::Path;
use crate::model::{self, FrameBounds, GroupStart, OrderedConsumer, OrderedEvent, OriginProducer, SubscribeOptions, TrackEvent};

/// `start_group`: the live edge, the newest group the publisher (or relay) has, the one in
/// progress; nothing older is delivered. 0 means the same and is the default.
pub const MOQT_START_LATEST: i64 = -1;

/// `start_group`: the oldest group the max age keeps (everything cached), then live.
pub const MOQT_START_OLDEST: i64 = -2;

/// `delivery`: groups reach the application in ascending sequence and frames in order; a group
/// that has not arrived or not completed within `max_latency_ms` after a newer group arrived is
/// skipped and reported as a gap (code MOQT_GAP_LATE). The default (0), what a decoder needs.
pub const MOQT_DELIVERY_ORDERED: u32 = 0;

/// `delivery`: groups in arrival order, newest pending group first (moq-lite's own order), each
/// read to its end before the next; nothing is skipped for lateness.
pub const MOQT_DELIVERY_ARRIVAL: u32 = 1;

/// The ordered-delivery latency bound used when `max_latency_ms` is 0, in milliseconds.
pub const MOQT_DEFAULT_MAX_LATENCY_MS: u64 = 1000;

/// The gap code of a group an ordered subscription skipped for lateness (moq-lite TOO_FAR_BEHIND).
pub const MOQT_GAP_LATE: u64 = 0x5;

/// The code the model gives a late gap is the one the header names.
#[cfg(test)]
#[test]
fn the_late_gap_code_is_the_header_constant() {
    assert_eq!(model::GapReason::Late.code().to_u64(), MOQT_GAP_LATE);
}

// Used by the C side only; keep the compiler from calling it dead.
const _: u64 = MOQT_GAP_LATE;

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
    /// Where to start. 0 (the default) or MOQT_START_LATEST (-1): the live edge, the newest group
    /// the publisher or relay has (the one in progress), nothing older. MOQT_START_OLDEST (-2):
    /// the oldest group the max age keeps, then live. N > 0: group N (or the oldest kept above
    /// it), waiting there if it does not exist yet.
    pub start_group: i64,
    /// Stop after `end_group` (inclusive).
    pub has_end_group: bool,
    /// The last group wanted, with `has_end_group`.
    pub end_group: u64,
    /// Skip the frames before this index in the start group: group N for N > 0, group 0 with
    /// MOQT_START_OLDEST, the first group delivered at the live edge. 0: from the group's start.
    pub frame_start: u64,
    /// End at frame `frame_end` (inclusive) of `end_group`; needs `has_end_group`.
    pub has_frame_end: bool,
    /// The last frame wanted of `end_group`, with `has_frame_end`.
    pub frame_end: u64,
    /// MOQT_DELIVERY_ORDERED (0, the default) or MOQT_DELIVERY_ARRIVAL.
    pub delivery: u32,
    /// With MOQT_DELIVERY_ORDERED: how long, in milliseconds, a group may lag once a newer group
    /// arrived before it is skipped as a gap; 0: MOQT_DEFAULT_MAX_LATENCY_MS.
    pub max_latency_ms: u64,
}

/// How a followed track reaches the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// In sequence, with this latency bound.
    Ordered(Duration),
    /// As groups arrive, newest pending first.
    Arrival,
}

impl Default for Order {
    fn default() -> Self {
        Order::Ordered(Duration::from_millis(MOQT_DEFAULT_MAX_LATENCY_MS))
    }
}

/// What a subscription's options say: the model options, the frame bounds and the order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    pub(crate) options: SubscribeOptions,
    pub(crate) frames: FrameBounds,
    pub(crate) order: Order,
}

impl Default for Wanted {
    /// NULL options: the live edge, in order.
    fn default() -> Self {
        Self {
            options: SubscribeOptions { start: GroupStart::Latest, ..Default::default() },
            frames: FrameBounds::default(),
            order: Order::default(),
        }
    }
}

// SAFETY: repr(C), struct_size first, every field an integer or a bool.
unsafe impl SizedStruct for moqt_subscribe_options {}

impl moqt_subscribe_options {
    /// The caller's options read up to its `struct_size` (the rest default): model options,
    /// frame bounds and delivery order.
    pub(crate) fn read(ptr: *const moqt_subscribe_options) -> FfiResult<Wanted> {
        let Some(options) = read_sized(ptr) else {
            return Ok(Wanted::default());
        };
        if options.has_frame_end && !options.has_end_group {
            return Err(FfiError::invalid("frame_end needs has_end_group"));
        }
        let (start, start_group) = match options.start_group {
            0 | MOQT_START_LATEST => (GroupStart::Latest, None),
            MOQT_START_OLDEST => (GroupStart::Floor(0), Some(0)),
            n if n > 0 => (GroupStart::Floor(n as u64), Some(n as u64)),
            other => {
                return Err(FfiError::invalid(format!(
                    "start_group {other}: use 0 or MOQT_START_LATEST (the live edge), MOQT_START_OLDEST or a group number"
                )));
            }
        };
        let frames = FrameBounds {
            start_group,
            start_frame: options.frame_start,
            end: options.has_frame_end.then_some((options.end_group, options.frame_end)),
        };
        let order = match options.delivery {
            MOQT_DELIVERY_ORDERED if options.max_latency_ms == 0 => Order::default(),
            MOQT_DELIVERY_ORDERED => Order::Ordered(Duration::from_millis(options.max_latency_ms)),
            MOQT_DELIVERY_ARRIVAL => Order::Arrival,
            other => {
                return Err(FfiError::invalid(format!(
                    "delivery {other}: use MOQT_DELIVERY_ORDERED or MOQT_DELIVERY_ARRIVAL"
                )));
            }
        };
        let options = SubscribeOptions {
            start,
            end: options.has_end_group.then_some(options.end_group),
            max_age: (options.max_age_ms > 0).then(|| Duration::from_millis(options.max_age_ms)),
            priority: options.has_priority.then_some(options.priority),
        };
        Ok(Wanted { options, frames, order })
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

}

/// How a track ended, as the status and detail `on_closed` and `moqt_pull_next_frame` report (an
/// END is not an error, but like one it ends the call with a status and a detail).
impl From<TrackEnd> for FfiError {
    fn from(end: TrackEnd) -> Self {
        let message = match (end.status, end.code) {
            (moqt_status::End, _) => "the track ended: every frame was delivered".to_string(),
            (moqt_status::ErrAborted, Some(code)) => {
                let name = crate::coding::StreamCode::from_u64(code);
                format!("the track was aborted with stream error code {code:#x} ({name:?})")
            }
            (status, _) => format!("ended: {}", status_name(status)),
        };
        FfiError::new(end.status, message).with_code(end.code)
    }
}

/// One item of a followed track, in order.
pub(crate) enum Delivery {
    Frame(moqt_frame),
    Gap(model::Gap),
}

/// Follows `name` in the broadcast `wanted` until the track ends, passing each item to
/// `deliver`, which returns false to stop; `options` starts the subscription and then carries
/// live priority and max-age updates; `frames` trims the first and the end group; `order` says
/// in which order items come. Returns how it ended: END (the track finished, or the range is
/// complete), ABORTED with the publisher's code, NOT_FOUND, or CLOSED (the session or origin
/// ended, or `deliver` stopped).
pub(crate) async fn follow_track<F, Fut>(
    remote: OriginProducer,
    wanted: Path,
    name: String,
    mut options: watch::Receiver<SubscribeOptions>,
    frames: FrameBounds,
    order: Order,
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
    let latency = match order {
        Order::Ordered(latency) => latency,
        Order::Arrival => return follow_arrival(track, options, deliver).await,
    };
    let (timescale, timestamps) = (track.info().timescale, track.has_timestamps());
    let mut reader = OrderedConsumer::new(track, latency);
    loop {
        let next = tokio::select! {
            next = reader.next_frame() => next,
            Ok(()) = options.changed() => {
                let wanted = *options.borrow_and_update();
                reader.consumer_mut().set_preferences(wanted.priority, wanted.max_age);
                continue;
            }
        };
        let delivery = match next {
            Ok(Some(OrderedEvent::Frame { group, index, frame })) => {
                Delivery::Frame(moqt_frame::new(frame, timescale, group, index, timestamps))
            }
            Ok(Some(OrderedEvent::Gap(gap))) => Delivery::Gap(gap),
            Ok(None) => return TrackEnd::of(&Ok(())),
            Err(err) => return TrackEnd::of(&Err(err)),
        };
        if !deliver(delivery).await {
            return moqt_status::ErrClosed.into();
        }
    }
}

/// `follow_track` in arrival order: each group as the consumer hands it out (newest pending
/// first), read to its end.
async fn follow_arrival<F, Fut>(
    mut track: model::TrackConsumer,
    mut options: watch::Receiver<SubscribeOptions>,
    mut deliver: F,
) -> TrackEnd
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = bool>,
{
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
pub(crate) fn update(updates: &watch::Sender<SubscribeOptions>, options: *const moqt_subscribe_options) -> FfiResult {
    if options.is_null() {
        return Err(FfiError::invalid("options is NULL"));
    }
    let Wanted { options: wanted, .. } = moqt_subscribe_options::read(options)?;
    updates.send_modify(|current| {
        current.priority = wanted.priority;
        current.max_age = wanted.max_age;
    });
    Ok(())
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

        // The report leaves the code for moqt_last_error_code, and only for an abort.
        let mut code = 0;
        assert_eq!(FfiError::from(aborted).report(), moqt_status::ErrAborted);
        assert!(crate::ffi::moqt_last_error_code(&mut code));
        assert_eq!(code, 0x47);
        assert_eq!(FfiError::from(TrackEnd::of(&Ok(()))).report(), moqt_status::End);
        assert!(!crate::ffi::moqt_last_error_code(&mut code));
    }
}
