//! `moqt_client_stats` and requests on a client's current session: FETCH of a past group, PROBE, and path statistics. A
//! reconnecting client's session changes under it; each call uses the one up when it is made.

use std::sync::Arc;

use super::args::{Out, SizedOut, SizedStruct, path_arg, read_sized, str_arg};
use super::callbacks::Feed;
use super::client::moqt_client;
use super::error::{FfiError, FfiResult, guard, moqt_status};
use super::frame::moqt_frame;
use super::handle::try_ref;
use super::moq_lite_number;
use super::runtime::runtime;
use super::subscription::{FrameCallbacks, deliver_frame, moqt_subscribe_callbacks, moqt_subscription};
use crate::coding::StreamCode;
use crate::model;
use crate::session::{FetchRequest, SessionError, SessionLink};

/// Statistics of a client's current session (`moqt_client_get_stats`). Set `struct_size =
/// sizeof(moqt_client_stats)` before the call; the library fills in what that size holds.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_client_stats {
    /// `sizeof(moqt_client_stats)`, set by the caller: lets later versions append fields.
    pub struct_size: u32,
    /// The negotiated moq-lite version (3 to 6).
    pub version: u32,
    /// Our smoothed round-trip time, microseconds (from QUIC's path statistics).
    pub rtt_us: u64,
    /// Our send-rate estimate, bit/s: the congestion window over the RTT; 0 while unknown.
    pub send_bitrate: u64,
    /// Bytes sent on the connection so far.
    pub bytes_sent: u64,
    /// Bytes received on the connection so far.
    pub bytes_received: u64,
    /// True once the peer sent a PROBE report (after `moqt_client_probe`).
    pub has_probe: bool,
    /// The peer's latest PROBE report: its send bitrate toward us, bit/s (0 = unknown).
    pub peer_bitrate: u64,
    /// The peer's latest PROBE report: its smoothed RTT, milliseconds (0 = unknown; always 0 on
    /// moq-lite-03, whose PROBE has no RTT).
    pub peer_rtt_ms: u64,
    /// The bitrate the peer asked us to probe toward (its PROBE target), bit/s; 0 until it asks.
    /// What an encoder or a padding sender would aim for.
    pub peer_target_bitrate: u64,
}

// SAFETY: repr(C), struct_size first, every field an integer or a bool.
unsafe impl SizedStruct for moqt_client_stats {}

/// The session up right now, or the error to fail with between sessions.
fn current_session(client: &moqt_client) -> FfiResult<SessionLink> {
    client.session().ok_or_else(|| FfiError::new(moqt_status::ErrClosed, "no session right now (reconnecting)"))
}

/// Fills `*stats` (up to its `struct_size`) with the current session's version, path statistics
/// (RTT, send-rate estimate, bytes) and the peer's latest PROBE report.
///
/// Thread-safety: any thread, callbacks included. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `client` or `stats`, or `struct_size` below 8),
/// MOQT_STATUS_ERR_CLOSED (no session right now: the client is reconnecting or closed),
/// MOQT_STATUS_ERR_PANIC.
///
/// Ownership: `stats` is the caller's, written up to its `struct_size` during the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_get_stats(client: *const moqt_client, stats: *mut moqt_client_stats) -> moqt_status {
    guard(|| {
        let stats = SizedOut::new(stats).ok_or_else(|| FfiError::invalid("stats is NULL"))?;
        if stats.size() < 8 {
            return Err(FfiError::invalid("set stats->struct_size = sizeof(moqt_client_stats)"));
        }
        let session = current_session(try_ref(client)?)?;
        let path = session.stats();
        let probe = session.probe_report();
        let struct_size = stats.struct_size();
        stats.write(moqt_client_stats {
            struct_size,
            version: moq_lite_number(session.version()),
            rtt_us: u64::try_from(path.rtt.as_micros()).unwrap_or(u64::MAX),
            send_bitrate: path.send_bitrate,
            bytes_sent: path.bytes_sent,
            bytes_received: path.bytes_received,
            has_probe: probe.is_some(),
            peer_bitrate: probe.map_or(0, |p| p.bitrate),
            peer_rtt_ms: probe.map_or(0, |p| p.rtt_ms),
            peer_target_bitrate: session.peer_probe_target().unwrap_or(0),
        });
        Ok(())
    })
}

/// Opens moq-lite PROBE toward the peer with `target_bitrate` bit/s as the bitrate we would like
/// it to probe toward: the peer then reports its send bitrate and RTT every probe interval, which
/// `moqt_client_get_stats` shows (`has_probe`). The target is a hint: a peer may pad its sending
/// toward it; moqt peers and relays report without padding. Calling again changes the target.
///
/// Thread-safety: any thread, callbacks included. Callbacks: none. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `client`), MOQT_STATUS_ERR_CLOSED (no session right now),
/// MOQT_STATUS_ERR_UNSUPPORTED (the peer's SETUP says it does not probe), MOQT_STATUS_ERR_PANIC.
///
/// Ownership: nothing changes hands.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_probe(client: *const moqt_client, target_bitrate: u64) -> moqt_status {
    guard(|| {
        let session = current_session(try_ref(client)?)?;
        let runtime = runtime().ok_or_else(FfiError::no_engine)?;
        runtime
            .block_on(session.set_probe_target(target_bitrate))
            .map_err(|err| FfiError::new(session_status(&err), err.to_string()))
    })
}

/// Options of `moqt_client_fetch`. Zero-initialise (every zero is the default), then set
/// `struct_size = sizeof(...)`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_fetch_options {
    /// `sizeof(moqt_fetch_options)`: lets later versions append fields.
    pub struct_size: u32,
    /// Subscriber priority of the transfer against the session's other streams (higher first).
    pub priority: u8,
    /// The first frame wanted (moq-lite-06; earlier versions fetch from frame 0).
    pub frame_start: u64,
    /// Stop after `frame_end` (inclusive; moq-lite-06).
    pub has_frame_end: bool,
    /// The last frame wanted, with `has_frame_end`.
    pub frame_end: u64,
}

// SAFETY: repr(C), struct_size first, every field an integer or a bool.
unsafe impl SizedStruct for moqt_fetch_options {}

/// Reads one past group of a track with FETCH (moq-lite-05 and later): the group's frames arrive
/// on `callbacks->on_frame` in order (each with its group sequence and index), then
/// `on_closed(MOQT_STATUS_OK)` after the last one. `options` may be NULL for the whole group at
/// priority 0. `broadcast_len` and `track_len` may be SIZE_MAX for NUL-terminated strings.
///
/// Ownership: `callbacks` and `options` are only read during the call; `user_data` is released
/// with `user_data_free` exactly once, also when this call fails. On success `*out` is new; free
/// it with `moqt_subscription_free` (or `moqt_subscription_release`) to cancel or after the end;
/// `moqt_subscription_update` does not apply to it. Thread-safety: any thread. Callbacks:
/// on_frame, then on_closed (terminal: MOQT_STATUS_OK, MOQT_STATUS_ERR_NOT_FOUND when the peer
/// does not have the group, MOQT_STATUS_ERR_UNSUPPORTED before moq-lite-05,
/// MOQT_STATUS_ERR_CLOSED when the session ended first), then user_data_free, on the dispatcher
/// thread. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG, MOQT_STATUS_ERR_CLOSED (no
/// session right now: the client is reconnecting), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn moqt_client_fetch(
    client: *const moqt_client,
    broadcast: *const std::ffi::c_char,
    broadcast_len: usize,
    track: *const std::ffi::c_char,
    track_len: usize,
    group: u64,
    options: *const moqt_fetch_options,
    callbacks: *const moqt_subscribe_callbacks,
    out: *mut *mut moqt_subscription,
) -> moqt_status {
    guard(|| {
        let set = FrameCallbacks::read(callbacks)?;
        set.starting(|set| {
            let client = try_ref(client)?;
            let out = Out::new(out)?;
            let broadcast = path_arg(broadcast, broadcast_len)?;
            let track = str_arg(track, track_len).map_err(|_| FfiError::invalid("bad track string"))?.to_string();
            let options = read_sized(options);
            let request = FetchRequest {
                broadcast,
                track,
                group,
                frame_start: options.as_ref().map_or(0, |o| o.frame_start),
                frame_end: options.as_ref().filter(|o| o.has_frame_end).map(|o| o.frame_end),
                priority: options.as_ref().map_or(0, |o| o.priority),
            };
            let session = current_session(client)?;
            let runtime = runtime().ok_or_else(FfiError::no_engine)?;
            let task = client.unless_freed(run_fetch(set.clone(), session, request), set.closing(moqt_status::ErrClosed));
            out.set_boxed(moqt_subscription { feed: Feed::spawn(&runtime, set.clone(), task), updates: None });
            Ok(())
        })
    })
}

async fn run_fetch(set: Arc<FrameCallbacks>, session: SessionLink, request: FetchRequest) {
    // The frames' timestamps are in the track's timescale, which only TRACK_INFO tells.
    let timescale = match session.track_info(request.broadcast.clone(), &request.track).await {
        Ok(info) => info.timescale,
        Err(err) => return set.close(session_status(&err)).await,
    };
    let status = match session.fetch(request).await {
        Ok(mut group) => {
            let (sequence, mut index) = (group.sequence(), group.frame_start());
            loop {
                match group.next_frame().await {
                    Ok(Some(frame)) => {
                        // FETCH exists from moq-lite-05 on, whose frames carry timestamps.
                        let frame = moqt_frame::new(frame, timescale, sequence, index, true);
                        index += 1;
                        deliver_frame(&set, frame).await;
                    }
                    Ok(None) => break moqt_status::Ok,
                    Err(err) => break model_status(&err),
                }
            }
        }
        Err(err) => session_status(&err),
    };
    set.close(status).await;
}

/// The C status of a session request's failure.
fn session_status(err: &SessionError) -> moqt_status {
    match err {
        SessionError::Unsupported(_) => moqt_status::ErrUnsupported,
        SessionError::Model(err) => model_status(err),
        SessionError::Decode(_) | SessionError::ProtocolViolation(_) => moqt_status::ErrProtocol,
        _ => moqt_status::ErrClosed,
    }
}

/// The C status of a group or track that ended with an error.
fn model_status(err: &model::Error) -> moqt_status {
    match err {
        model::Error::NotFound | model::Error::Aborted(StreamCode::NotFound) => moqt_status::ErrNotFound,
        _ => moqt_status::ErrClosed,
    }
}
