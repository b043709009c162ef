//! `moqt_broadcast` and `moqt_track`: publishing broadcasts and writing their tracks' frames
//! (copied or zero-copy), finishing or aborting them.

use std::ffi::{c_char, c_void};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::args::{Out, SizedStruct, bytes_arg, path_arg, read_sized, str_arg};
use super::callbacks::UserData;
use super::client::moqt_client;
use super::error::{FfiError, FfiResult, guard, guard_void, moqt_status};
use super::handle::{Castable, OwnershipBox, take_box, try_ref};
use super::runtime::{on_dispatcher, runtime};
use crate::model::{self, BroadcastProducer, Published, Route, TrackWriter, WriterSettings};

/// Start a new group with this frame (the frame is a keyframe). Flag of `moqt_track_write_frame`:
/// the group being written is finished and the frame opens the next one. Needed on the track's
/// first frame when the track was created with `keyframe_groups`, and on the first frame after a
/// write failed with MOQT_STATUS_ERR_NO_MEMORY (a group past its bounds).
pub const MOQT_FRAME_NEW_GROUP: u32 = 1;

/// A broadcast this client publishes.
#[allow(non_camel_case_types)]
pub struct moqt_broadcast {
    producer: BroadcastProducer,
    _published: Published,
}

impl Castable for moqt_broadcast {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "broadcast";
}

/// A track of a published broadcast.
#[allow(non_camel_case_types)]
pub struct moqt_track {
    writer: Mutex<TrackWriter>,
}

impl Castable for moqt_track {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "track";
}

impl moqt_track {
    fn writer(&self) -> MutexGuard<'_, TrackWriter> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes a broadcast at `path` (relative to the client's URL path). `path_len` may be
/// SIZE_MAX for NUL-terminated.
///
/// Ownership: on success `*out` is new; free it with `moqt_broadcast_free`, which ends the
/// broadcast. Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG, MOQT_STATUS_ERR_NO_MEMORY (a bound), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_publish(
    client: *const moqt_client,
    path: *const c_char,
    path_len: usize,
    out: *mut *mut moqt_broadcast,
) -> moqt_status {
    guard(|| {
        let client = try_ref(client)?;
        let out = Out::new(out)?;
        let path = path_arg(path, path_len)?;
        super::test_panic_point(path.as_str());
        let producer = BroadcastProducer::default();
        let published = client
            .publish
            .publish(path, producer.consume(), Route::local())
            .map_err(|err| FfiError::new(moqt_status::ErrNoMemory, err.to_string()))?;
        out.set_boxed(moqt_broadcast { producer, _published: published });
        Ok(())
    })
}

/// Ends and frees a broadcast. NULL is accepted.
///
/// Thread-safety: any thread. Callbacks: none.
///
/// Ownership: ends the caller's handle; its tracks end with it.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_broadcast_free(broadcast: *mut moqt_broadcast) {
    guard_void(|| {
        if let Some(broadcast) = take_box(broadcast) {
            broadcast.producer.clone().finish();
        }
        Ok(())
    })
}

/// Adds a track to a broadcast. Timestamps are in microseconds.
///
/// Ownership: on success `*out` is new; free it with `moqt_track_free`, which ends the track.
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG
/// (NULL, a name already used), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_broadcast_create_track(
    broadcast: *const moqt_broadcast,
    name: *const c_char,
    name_len: usize,
    priority: u8,
    max_age_ms: u64,
    out: *mut *mut moqt_track,
) -> moqt_status {
    let info = model::TrackInfo { priority, max_age: Duration::from_millis(max_age_ms), timescale: 1_000_000 };
    guard(|| create_track(broadcast, name, name_len, info, Default::default(), out))
}

/// Options of `moqt_broadcast_create_track_with`. Zero-initialise (every zero is the default),
/// then set `struct_size = sizeof(...)`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_track_options {
    /// `sizeof(moqt_track_options)`: lets later versions append fields.
    pub struct_size: u32,
    /// Use `priority` instead of the default 127 (higher is delivered first under congestion).
    pub has_priority: bool,
    /// The publisher priority, with `has_priority`.
    pub priority: u8,
    /// How long a group stays worth delivering, milliseconds; older ones are dropped and
    /// reported as gaps. 0: 5000.
    pub max_age_ms: u64,
    /// Units per second of this track's timestamps (for example 90000 for a video clock or 48000
    /// for audio samples); `moqt_track_write_frame` takes timestamps in it and subscribers see it.
    /// 0: 1000000 (microseconds).
    pub timescale: u64,
    /// Groups are keyframe-aligned: every group starts with a frame written with
    /// `MOQT_FRAME_NEW_GROUP` (a keyframe), the track's first frame included. A first frame
    /// without the flag is refused with MOQT_STATUS_ERR_INVALID_ARG instead of opening the first
    /// group, so subscribers never see a delta frame as the start of a group. false: the first
    /// frame opens the first group whatever its flags (the behaviour of earlier versions).
    pub keyframe_groups: bool,
    /// The most frames one group may hold. 0: 8192 (the moq-lite bound, also the largest
    /// accepted). The frame that would pass it is refused (see `moqt_track_write_frame`).
    pub max_group_frames: u32,
    /// The most payload bytes one group may hold. 0: 32 MiB (the moq-lite bound, also the
    /// largest accepted).
    pub max_group_bytes: u64,
}

// SAFETY: repr(C), struct_size first, every field an integer or a bool.
unsafe impl SizedStruct for moqt_track_options {}

/// `moqt_broadcast_create_track` with options (NULL for the defaults): priority, max age and
/// the timescale of the track's timestamps, which travel to subscribers in TRACK_INFO; whether
/// groups are keyframe-aligned; the group bounds.
///
/// Ownership: on success `*out` is new; free it with `moqt_track_free`, which ends the track.
/// `options` is only read during the call. Thread-safety: any thread. Callbacks: none. Returns
/// MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, a name already used, a group bound above
/// the moq-lite one), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_broadcast_create_track_with(
    broadcast: *const moqt_broadcast,
    name: *const c_char,
    name_len: usize,
    options: *const moqt_track_options,
    out: *mut *mut moqt_track,
) -> moqt_status {
    guard(|| {
        let mut info = model::TrackInfo { timescale: 1_000_000, ..Default::default() };
        let mut group = model::GroupSettings::default();
        let mut writer = WriterSettings::default();
        if let Some(options) = read_sized(options) {
            if options.has_priority {
                info.priority = options.priority;
            }
            if options.max_age_ms > 0 {
                info.max_age = Duration::from_millis(options.max_age_ms);
            }
            if options.timescale > 0 {
                info.timescale = options.timescale;
            }
            writer.keyframe_groups = options.keyframe_groups;
            let frames = usize::try_from(options.max_group_frames).unwrap_or(usize::MAX);
            let bytes = usize::try_from(options.max_group_bytes).unwrap_or(usize::MAX);
            if frames > group.max_frames || bytes > group.max_bytes {
                return Err(FfiError::invalid(format!(
                    "group bounds above moq-lite's ({} frames, {} bytes): peers would refuse such groups",
                    group.max_frames, group.max_bytes
                )));
            }
            if frames > 0 {
                group.max_frames = frames;
            }
            if bytes > 0 {
                group.max_bytes = bytes;
            }
        }
        create_track(broadcast, name, name_len, info, (group, writer), out)
    })
}

fn create_track(
    broadcast: *const moqt_broadcast,
    name: *const c_char,
    name_len: usize,
    info: model::TrackInfo,
    (group, writer): (model::GroupSettings, WriterSettings),
    out: *mut *mut moqt_track,
) -> FfiResult {
    let broadcast = try_ref(broadcast)?;
    let out = Out::new(out)?;
    let name = str_arg(name, name_len)?;
    // The broadcast (from moqt_client_publish) has the default cache settings.
    let settings = model::CacheSettings { group, ..Default::default() };
    let producer =
        broadcast.producer.create_track_with(name, info, settings).map_err(|err| FfiError::invalid(err.to_string()))?;
    out.set_boxed(moqt_track { writer: Mutex::new(TrackWriter::new(producer, writer)) });
    Ok(())
}

/// Writes one frame, copying `len` bytes from `data`, with `timestamp` in the track's timescale
/// (microseconds for a track from `moqt_broadcast_create_track`). With `MOQT_FRAME_NEW_GROUP` in
/// `flags` the frame starts a new group (a keyframe) and the group being written is finished;
/// without it the frame joins the group being written. Group boundaries are only where the caller
/// puts them:
/// - The track's first frame: without the flag it opens the first group, unless the track was
///   created with `keyframe_groups`; then it is refused (MOQT_STATUS_ERR_INVALID_ARG, nothing
///   written, the track unchanged).
/// - A frame that would pass the group's bounds (`max_group_frames`, `max_group_bytes`) is not
///   written: MOQT_STATUS_ERR_NO_MEMORY, and the group is aborted (subscribers lose it, reported
///   as a gap with code GROUP_TOO_LARGE 0x32 where they had not started reading it). The next
///   write must start a new group: without the flag it is refused with
///   MOQT_STATUS_ERR_INVALID_ARG (nothing written) until a frame with the flag comes.
///
/// `moqt_last_error` says which case applies.
///
/// Thread-safety: any thread; calls on one track are ordered by the caller. Callbacks: none
/// (subscribers' on_frame follow on the dispatcher). Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `track`, NULL `data` with `len` > 0, or a frame that must
/// start a group and lacks the flag, as above), MOQT_STATUS_ERR_CLOSED (the track was finished or
/// aborted), MOQT_STATUS_ERR_NO_MEMORY (the group passed its bounds, as above),
/// MOQT_STATUS_ERR_PANIC.
///
/// Ownership: `data` is copied during the call; the caller keeps its buffer.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_track_write_frame(
    track: *const moqt_track,
    data: *const u8,
    len: usize,
    timestamp: u64,
    flags: u32,
) -> moqt_status {
    guard(|| write_payload(track, Bytes::copy_from_slice(bytes_arg(data, len)?), timestamp, flags))
}

/// Frees a C buffer handed over with `moqt_track_write_frame_zero_copy`.
#[allow(non_camel_case_types)]
pub type moqt_free_fn = Option<extern "C" fn(user_data: *mut c_void, data: *const u8)>;

/// A C buffer the frame's `Bytes` borrows until its last reader drops it.
struct ForeignBuffer {
    data: *const u8,
    len: usize,
    free: moqt_free_fn,
    user_data: UserData,
}

// SAFETY: the header documents that the buffer stays valid and unmodified until free_fn runs,
// and that free_fn may run on any thread.
unsafe impl Send for ForeignBuffer {}

impl ForeignBuffer {
    /// Owns C's buffer from here: `free` runs exactly once, when this is dropped.
    fn new(data: *const u8, len: usize, free: moqt_free_fn, user_data: *mut c_void) -> Self {
        ForeignBuffer { data, len, free, user_data: UserData(user_data) }
    }
}

impl AsRef<[u8]> for ForeignBuffer {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: data points to len readable bytes that live until free_fn runs (documented).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for ForeignBuffer {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            free(self.user_data.0, self.data);
        }
    }
}

/// Writes one frame without copying: the frame shares `data` (`len` bytes) with every
/// subscriber and cache that holds it, and `free_fn(free_user_data, data)` runs exactly once
/// when the last of them lets go, also when this call fails. Flags as `moqt_track_write_frame`.
///
/// Ownership: `data` stays the caller's memory but must stay valid and unmodified until
/// `free_fn` runs. Thread-safety: any thread. Callbacks: `free_fn`, once, on any thread,
/// including inside this call; it must not call moqt. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG
/// (NULL track, or NULL data with len > 0), MOQT_STATUS_ERR_CLOSED, MOQT_STATUS_ERR_NO_MEMORY
/// (the group passed its bound), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_track_write_frame_zero_copy(
    track: *const moqt_track,
    data: *const u8,
    len: usize,
    timestamp: u64,
    flags: u32,
    free_fn: moqt_free_fn,
    free_user_data: *mut c_void,
) -> moqt_status {
    guard_zero_copy(data, len, free_fn, free_user_data, |payload| write_payload(track, payload, timestamp, flags))
}

/// The body of every `_zero_copy` write: C's buffer is owned from the first line, so
/// `free_fn(user_data, data)` runs exactly once on every path (also when an argument is
/// refused), and `write` gets the buffer as `Bytes` without a copy.
pub(crate) fn guard_zero_copy(
    data: *const u8,
    len: usize,
    free_fn: moqt_free_fn,
    user_data: *mut c_void,
    write: impl FnOnce(Bytes) -> FfiResult,
) -> moqt_status {
    let buffer = ForeignBuffer::new(data, len, free_fn, user_data);
    guard(move || {
        bytes_arg(data, len)?;
        write(Bytes::from_owner(buffer))
    })
}

/// Appends `payload` to the track's current group, or to a new one where `flags` say.
fn write_payload(track: *const moqt_track, payload: Bytes, timestamp: u64, flags: u32) -> FfiResult {
    let track = try_ref(track)?;
    let new_group = flags & MOQT_FRAME_NEW_GROUP != 0;
    let Err(err) = track.writer().write(model::Frame::new(timestamp, payload), new_group) else { return Ok(()) };
    Err(match err {
        model::Error::NewGroupRequired(_) => FfiError::invalid(format!("{err} (set MOQT_FRAME_NEW_GROUP)")),
        model::Error::TooManyFrames { .. } | model::Error::TooManyBytes { .. } => FfiError::new(
            moqt_status::ErrNoMemory,
            format!("{err}: the frame was not written and the group was aborted; start the next group with MOQT_FRAME_NEW_GROUP"),
        ),
        model::Error::Closed | model::Error::SequenceOverflow => {
            FfiError::new(moqt_status::ErrClosed, format!("track is closed: {err}"))
        }
        // The group was dropped under the writer (expired or evicted from the cache).
        _ => FfiError::new(
            moqt_status::ErrNoMemory,
            format!("the group was dropped ({err}); start the next group with MOQT_FRAME_NEW_GROUP"),
        ),
    })
}

/// Ends a track with an error instead of finishing it: the group being written and the track
/// are aborted with the moq-lite stream error `code` (for example 0x1 cancelled, 0x0 internal
/// error), which subscribers see as the end of their subscription with an error rather than the
/// track's end. Later writes return MOQT_STATUS_ERR_CLOSED; free the handle as usual.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `track`), MOQT_STATUS_ERR_CLOSED (already ended).
///
/// Ownership: the handle stays the caller's; free it with `moqt_track_free` as usual.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_track_abort(track: *const moqt_track, code: u64) -> moqt_status {
    guard(|| {
        let reason = model::Error::Aborted(crate::coding::StreamCode::from_u64(code));
        try_ref(track)?.writer().abort(reason).map_err(|_| FfiError::new(moqt_status::ErrClosed, "track is closed"))
    })
}

/// Ends a track cleanly: the group being written is finished, then the track. Subscribers get
/// every frame written so far and then the end of the track: on_closed(MOQT_STATUS_END), or
/// MOQT_STATUS_END from `moqt_pull_next_frame`. Later writes return MOQT_STATUS_ERR_CLOSED. The
/// end still has to reach the relay: `moqt_client_flush` waits for it, and `moqt_client_free`
/// drains it (bounded) before closing the session. `moqt_track_free` finishes the track too.
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `track`), MOQT_STATUS_ERR_CLOSED (already finished or
/// aborted).
///
/// Ownership: the handle stays the caller's; free it with `moqt_track_free` as usual.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_track_finish(track: *const moqt_track) -> moqt_status {
    guard(|| {
        try_ref(track)?
            .writer()
            .finish()
            .map_err(|_| FfiError::new(moqt_status::ErrClosed, "track is already finished or aborted"))
    })
}

/// Waits until the track has a subscriber (a consumer in this process, or a session or relay that
/// subscribed to it), at most `timeout_ms` milliseconds: a publisher can start encoding once
/// someone watches, and the first group it writes then reaches that subscriber whole.
///
/// Thread-safety: any thread; blocks the caller, so not from a callback (refused there with
/// MOQT_STATUS_ERR_UNSUPPORTED). Callbacks: none. Returns MOQT_STATUS_OK (subscribed now or
/// before), MOQT_STATUS_ERR_TIMEOUT, MOQT_STATUS_ERR_INVALID_ARG (NULL `track`),
/// MOQT_STATUS_ERR_CLOSED (the track was finished or aborted), MOQT_STATUS_ERR_PANIC.
///
/// Ownership: borrows `track` for the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_track_wait_subscribed(track: *const moqt_track, timeout_ms: u64) -> moqt_status {
    guard(|| {
        let track = try_ref(track)?;
        if on_dispatcher() {
            return Err(FfiError::new(
                moqt_status::ErrUnsupported,
                "moqt_track_wait_subscribed blocks: not from a callback",
            ));
        }
        let until_used = match track.writer().track() {
            Some(producer) => producer.until_used(),
            None => return Err(FfiError::new(moqt_status::ErrClosed, "track is closed")),
        };
        let runtime = runtime().ok_or_else(FfiError::no_engine)?;
        let wait = async move { tokio::time::timeout(Duration::from_millis(timeout_ms), until_used).await };
        runtime.block_on(wait).map_err(|_| FfiError::new(moqt_status::ErrTimeout, "no subscriber within the timeout"))
    })
}

/// Finishes (as `moqt_track_finish`, unless it was finished or aborted already) and frees a
/// track. NULL is accepted.
///
/// Thread-safety: any thread. Callbacks: none.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_track_free(track: *mut moqt_track) {
    guard_void(|| {
        if let Some(track) = take_box(track) {
            let _ = track.writer().finish();
        }
        Ok(())
    })
}
