//! `moqt_frame`: received frames, immutable and refcounted (an `Arc` C holds references to),
//! shared with the engine without a copy.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;

use super::args::Out;
use super::handle::{Castable, OwnershipArc, add_ref, arc_ptr, opt_ref, take_arc};

/// Frame handles a thread keeps for reuse once C let go of them, so that in the steady state a
/// delivered frame allocates nothing: the dispatcher lends a frame to `on_frame` and gets it back
/// when the callback did not keep it; a pull thread unrefs a frame and takes the next one.
const SPARE_FRAME_HANDLES: usize = 8;

thread_local! {
    static SPARE: RefCell<Vec<Arc<moqt_frame>>> = const { RefCell::new(Vec::new()) };
}

/// A received frame. Borrowed for the duration of `on_frame`; `moqt_frame_ref` keeps it.
#[allow(non_camel_case_types)]
pub struct moqt_frame {
    pub(crate) payload: Bytes,
    /// In the track's timescale, as on the wire.
    pub(crate) timestamp: u64,
    /// Units per second of `timestamp` (the track's TRACK_INFO; never 0).
    pub(crate) timescale: u64,
    pub(crate) group: u64,
    pub(crate) index: u64,
    /// False when the frame came over a version without frame timestamps (moq-lite-03/04).
    pub(crate) has_timestamp: bool,
    /// Where a decoder can start: index 0 for a plain track, the sample's flag for media.
    pub(crate) keyframe: bool,
}

impl Castable for moqt_frame {
    type Ownership = OwnershipArc;
    const NAME: &'static str = "frame";
}

impl moqt_frame {
    /// A frame of group `group` at `index`, its timestamp in `timescale` units (0 is taken as
    /// microseconds rather than dividing by it); `has_timestamp` false when the version it came
    /// over carries none.
    pub(crate) fn new(
        frame: crate::model::Frame,
        timescale: u64,
        group: u64,
        index: u64,
        has_timestamp: bool,
    ) -> Self {
        let timescale = if timescale == 0 { 1_000_000 } else { timescale };
        let keyframe = index == 0;
        moqt_frame { payload: frame.payload, timestamp: frame.timestamp, timescale, group, index, has_timestamp, keyframe }
    }

    /// A new reference for C to this frame, in a handle this thread got back earlier if it has
    /// one (no allocation).
    pub(crate) fn into_handle(self) -> *const moqt_frame {
        let spare = SPARE.try_with(|spare| spare.borrow_mut().pop()).ok().flatten();
        let handle = match spare {
            Some(mut handle) => match Arc::get_mut(&mut handle) {
                Some(slot) => {
                    *slot = self;
                    handle
                }
                None => Arc::new(self),
            },
            None => Arc::new(self),
        };
        arc_ptr(handle)
    }

    /// Ends one of C's references to `frame` (NULL is accepted). The last one releases the
    /// payload at once and keeps the handle for this thread's next frame.
    pub(crate) fn release_handle(frame: *const moqt_frame) {
        let Some(mut handle) = take_arc(frame) else { return };
        let Some(last) = Arc::get_mut(&mut handle) else { return };
        last.payload = Bytes::new();
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_FRAME_HANDLES {
                spare.push(handle);
            }
        });
    }

    /// A media sample, `index` within its group: the codec payload, its presentation time in
    /// microseconds (from the container, so on every version) and its own keyframe flag.
    pub(crate) fn media(frame: crate::media::MediaFrame, index: u64) -> Self {
        moqt_frame {
            payload: frame.payload,
            timestamp: frame.pts_us,
            timescale: crate::media::TIMESCALE,
            group: frame.group,
            index,
            has_timestamp: true,
            keyframe: frame.keyframe,
        }
    }
}

/// Keeps `frame` alive past the callback that lent it; balance with `moqt_frame_unref`.
///
/// Ownership: returns a new reference to the same frame (the same pointer). Thread-safety: any
/// thread. Callbacks: none. Returns `frame`, or NULL for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_ref(frame: *const moqt_frame) -> *const moqt_frame {
    add_ref(frame)
}

/// Releases a reference taken with `moqt_frame_ref`. NULL is accepted.
///
/// Ownership: the caller's reference ends; the data pointer is invalid after the last one.
/// Thread-safety: any thread. Callbacks: none.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_unref(frame: *const moqt_frame) {
    moqt_frame::release_handle(frame);
}

/// The frame's bytes; `len_out` (if not NULL) receives their length.
///
/// Lifetime: valid while the frame is (the callback, or until the last unref). Thread-safety:
/// any thread. Callbacks: none. Returns NULL for a NULL frame (and a length of 0).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_data(frame: *const moqt_frame, len_out: *mut usize) -> *const u8 {
    let (ptr, len) = opt_ref(frame).map_or((std::ptr::null(), 0), |f| (f.payload.as_ptr(), f.payload.len()));
    if let Some(len_out) = Out::optional(len_out) {
        len_out.write(len);
    }
    ptr
}

/// The frame's timestamp in microseconds: its publisher's timestamp converted from the track's
/// timescale (rounded down; saturating).
///
/// A media sample (`moqt_media_subscribe`) reads its presentation time, from the container, on
/// every version. By version, for other frames: a frame received over moq-lite-05 or later
/// carries its publisher's timestamp.
/// moq-lite-03/04 have no frame timestamps on the wire: such a frame reads 0 here, and
/// `moqt_frame_has_timestamp` is false (carry presentation times in the payload on those
/// versions). A relay that itself received the track over moq-lite-03/04 forwards zeros on any
/// version, which no subscriber can tell from real ones.
///
/// Thread-safety: any thread. Callbacks: none. Returns the timestamp, 0 for NULL.
///
/// Lifetime: `frame` must be alive (lent to a callback, or referenced).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_timestamp_us(frame: *const moqt_frame) -> u64 {
    opt_ref(frame).map_or(0, |f| {
        let micros = u128::from(f.timestamp) * 1_000_000 / u128::from(f.timescale.max(1));
        u64::try_from(micros).unwrap_or(u64::MAX)
    })
}

/// The frame's timestamp exactly as its publisher wrote it, in the track's timescale, which is
/// written to `*timescale` (units per second, for example 90000 or 48000) unless it is NULL.
///
/// By version: over moq-lite-05 or later, the publisher's timestamp and the timescale of its
/// TRACK_INFO. Over moq-lite-03/04, which carry neither, 0 with the default timescale 1000, and
/// `moqt_frame_has_timestamp` is false.
///
/// Thread-safety: any thread. Callbacks: none. Returns the timestamp, 0 (and a timescale of 0)
/// for NULL.
///
/// Lifetime: `frame` must be alive (lent to a callback, or referenced); `timescale` is the
/// caller's.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_timestamp(frame: *const moqt_frame, timescale: *mut u64) -> u64 {
    let frame = opt_ref(frame);
    if let Some(timescale) = Out::optional(timescale) {
        timescale.write(frame.map_or(0, |f| f.timescale));
    }
    frame.map_or(0, |f| f.timestamp)
}

/// Whether the frame carries its publisher's timestamp: true for a frame received over
/// moq-lite-05 or later, and for a media sample (`moqt_media_subscribe`: its presentation time
/// comes from the container, on every version); false for one received over moq-lite-03/04,
/// whose wire has no frame timestamps (its `moqt_frame_timestamp` and `moqt_frame_timestamp_us`
/// read 0), and for NULL.
///
/// Thread-safety: any thread. Callbacks: none. Returns true or false as above.
///
/// Lifetime: `frame` must be alive (lent to a callback, or referenced).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_has_timestamp(frame: *const moqt_frame) -> bool {
    opt_ref(frame).is_some_and(|f| f.has_timestamp)
}

/// The sequence number of the frame's group.
///
/// Thread-safety: any thread. Callbacks: none. Returns the sequence, 0 for NULL.
///
/// Lifetime: `frame` must be alive (lent to a callback, or referenced).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_group(frame: *const moqt_frame) -> u64 {
    opt_ref(frame).map_or(0, |f| f.group)
}

/// The frame's position within its group (0 = the group's first frame, a keyframe).
///
/// Thread-safety: any thread. Callbacks: none. Returns the index, 0 for NULL.
///
/// Lifetime: `frame` must be alive (lent to a callback, or referenced).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_index(frame: *const moqt_frame) -> u64 {
    opt_ref(frame).map_or(0, |f| f.index)
}

/// True where a decoder can start. For a plain track, the first frame of a group (index 0):
/// moq-lite groups begin at a keyframe, so this is the publisher's word, not a guess. A moqt
/// publisher starts a group only where the caller says (`MOQT_FRAME_NEW_GROUP`; with
/// `keyframe_groups` even the track's first frame must say so) and never on its own after a group
/// passed its bounds. False for every later frame, including the first frame delivered of a group
/// joined past its start. For a media sample (`moqt_media_subscribe`), the sample's own flag: the
/// first frame of a legacy group, or a CMAF sample marked as a sync sample.
///
/// Thread-safety: any thread. Callbacks: none. Returns false for NULL.
///
/// Lifetime: `frame` must be alive (lent to a callback, or referenced).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_frame_is_keyframe(frame: *const moqt_frame) -> bool {
    opt_ref(frame).is_some_and(|frame| frame.keyframe)
}
