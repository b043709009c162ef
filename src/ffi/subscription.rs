//! `moqt_subscription`: push-mode subscriptions, whose frames and gaps arrive as callbacks on
//! the dispatcher thread (a FETCH, in session, uses the same handle and callbacks).

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::args::{Out, SizedStruct, path_arg, str_arg};
use super::callbacks::{CallbackSet, CallbacksStruct, ClosedFn, FedHandle, Feed, FreeFn, end_handle};
use super::client::moqt_client;
use super::error::{FfiError, guard, guard_void, moqt_status};
use super::follow::{Delivery, Order, follow_track, moqt_subscribe_options};
use super::frame::moqt_frame;
use super::handle::{Castable, OwnershipBox, try_ref};
use super::runtime::{FrameSink, dispatch_frame, runtime};
use crate::coding::Path;
use crate::model::{self, FrameBounds, OriginProducer};

/// Callbacks of `moqt_client_subscribe`. Zero-initialise, then set `struct_size`. NULL members mean
/// "not interested". Every callback runs on the library's dispatcher thread, one at a time, in
/// order; it must return quickly and must not unwind (no C++ exceptions, no longjmp).
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_subscribe_callbacks {
    /// `sizeof(moqt_subscribe_callbacks)`.
    pub struct_size: u32,
    /// Passed first to every callback.
    pub user_data: *mut c_void,
    /// Called exactly once, after the last other callback, even if subscribing failed.
    pub user_data_free: Option<extern "C" fn(user_data: *mut c_void)>,
    /// A frame arrived. The frame is borrowed for the call; `moqt_frame_ref` keeps it.
    pub on_frame: Option<extern "C" fn(user_data: *mut c_void, frame: *const moqt_frame)>,
    /// Groups `first..=last` will not arrive (expired, dropped, skipped), with a moq-lite code.
    pub on_gap: Option<extern "C" fn(user_data: *mut c_void, first: u64, last: u64, code: u64)>,
    /// The subscription ended (the terminal callback). A subscription: MOQT_STATUS_END when the
    /// publisher finished the track (or the end group was reached) and every frame was
    /// delivered, a clean end and not an error; MOQT_STATUS_ERR_ABORTED when the publisher or a
    /// relay aborted the track, with its moq-lite code in `moqt_last_error_code` (readable in
    /// this callback); MOQT_STATUS_ERR_NOT_FOUND; MOQT_STATUS_ERR_CLOSED when the client was
    /// freed or the session carrying the track closed. A FETCH: MOQT_STATUS_OK when the whole
    /// group arrived. `moqt_last_error` describes it during the call.
    pub on_closed: Option<extern "C" fn(user_data: *mut c_void, status: moqt_status)>,
}

// SAFETY: repr(C), struct_size first, every field a pointer or an optional function pointer.
unsafe impl SizedStruct for moqt_subscribe_callbacks {}

/// A live subscription; free it to stop.
#[allow(non_camel_case_types)]
pub struct moqt_subscription {
    pub(crate) feed: Feed<FrameEvents>,
    /// Live priority and max-age updates for the subscription's task; `None` for a FETCH.
    pub(crate) updates: Option<tokio::sync::watch::Sender<model::SubscribeOptions>>,
}

impl Castable for moqt_subscription {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "subscription";
}

/// The event callbacks of `moqt_subscribe_callbacks`: a subscription's or a FETCH's.
pub(crate) struct FrameEvents {
    on_frame: Option<extern "C" fn(*mut c_void, *const moqt_frame)>,
    on_gap: Option<extern "C" fn(*mut c_void, u64, u64, u64)>,
}

/// A subscription's or a FETCH's callback set.
pub(crate) type FrameCallbacks = CallbackSet<FrameEvents>;

impl CallbacksStruct for moqt_subscribe_callbacks {
    type Events = FrameEvents;
    fn parts(self) -> (*mut c_void, FreeFn, ClosedFn, FrameEvents) {
        (self.user_data, self.user_data_free, self.on_closed, FrameEvents { on_frame: self.on_frame, on_gap: self.on_gap })
    }
}

impl FedHandle for moqt_subscription {
    type Events = FrameEvents;
    fn feed(&self) -> &Feed<FrameEvents> {
        &self.feed
    }
}

/// Lends `frame` to on_frame for the call (C keeps it with `moqt_frame_ref`).
pub(crate) async fn deliver_frame(set: &Arc<FrameCallbacks>, frame: moqt_frame) {
    dispatch_frame(set.clone(), frame).await;
}

impl FrameSink for FrameCallbacks {
    fn deliver(&self, frame: moqt_frame) {
        self.run(|events, user_data| {
            if let Some(on_frame) = events.on_frame {
                let frame = frame.into_handle();
                on_frame(user_data, frame);
                moqt_frame::release_handle(frame);
            }
        });
    }
}

/// Subscribes to `track` of `broadcast` (paths relative to the client's URL path), waiting for the
/// broadcast to be announced. Frames arrive on `callbacks->on_frame`.
///
/// Ownership: `callbacks` is copied; `user_data` is released with `user_data_free` exactly once,
/// also when this call fails. On success `*out` is new; free it with `moqt_subscription_free`.
/// Thread-safety: any thread. Callbacks: on_frame, on_gap, then on_closed (terminal), then
/// user_data_free, all on the dispatcher thread. Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG, MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_subscribe(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    track: *const c_char,
    track_len: usize,
    callbacks: *const moqt_subscribe_callbacks,
    out: *mut *mut moqt_subscription,
) -> moqt_status {
    moqt_client_subscribe_with(client, broadcast, broadcast_len, track, track_len, std::ptr::null(), callbacks, out)
}

/// `moqt_client_subscribe` with options (`NULL` for the defaults): a subscriber priority, a
/// narrower max age, a start group (or the latest), an end group. Everything else, ownership,
/// callbacks and return codes included, is as `moqt_client_subscribe`; a bad `start_group` is
/// MOQT_STATUS_ERR_INVALID_ARG (user_data_free still runs once).
///
/// Thread-safety: any thread. Callbacks: as `moqt_client_subscribe`. Returns as
/// `moqt_client_subscribe`.
///
/// Ownership: as `moqt_client_subscribe`; `options` is only read during the call.
#[unsafe(no_mangle)]
#[must_use]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn moqt_client_subscribe_with(
    client: *const moqt_client,
    broadcast: *const c_char,
    broadcast_len: usize,
    track: *const c_char,
    track_len: usize,
    options: *const moqt_subscribe_options,
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
            let wanted = moqt_subscribe_options::read(options)?;
            let runtime = runtime().ok_or_else(FfiError::no_engine)?;
            let (updates, options) = tokio::sync::watch::channel(wanted.options);
            let task =
                run_subscription(set.clone(), client.remote(), broadcast, track, options, wanted.frames, wanted.order);
            let task = client.unless_freed(task, set.closing(moqt_status::ErrClosed));
            out.set_boxed(moqt_subscription { feed: Feed::spawn(&runtime, set.clone(), task), updates: Some(updates) });
            Ok(())
        })
    })
}

async fn run_subscription(
    set: Arc<FrameCallbacks>,
    remote: OriginProducer,
    wanted: Path,
    name: String,
    options: tokio::sync::watch::Receiver<model::SubscribeOptions>,
    frames: FrameBounds,
    order: Order,
) {
    let end = follow_track(remote, wanted, name, options, frames, order, |delivery| {
        let set = set.clone();
        async move {
            match delivery {
                Delivery::Frame(frame) => deliver_frame(&set, frame).await,
                Delivery::Gap(gap) => {
                    let code = gap.reason.code().to_u64();
                    set.callback(move |events, user_data| {
                        if let Some(on_gap) = events.on_gap {
                            on_gap(user_data, gap.start, gap.end, code);
                        }
                    })
                    .await
                }
            }
            true
        }
    })
    .await;
    set.close(end).await;
}

/// Stops a subscription and frees it. NULL is accepted. After it returns no callback of this
/// subscription runs any more, except `user_data_free` (once, later, on the dispatcher). It may
/// be called from inside one of this subscription's callbacks.
///
/// Thread-safety: any thread; blocks until a callback in progress on another thread returns.
/// Callbacks: only `user_data_free`, once, later, on the dispatcher thread.
///
/// Ownership: ends the caller's handle (a subscription or a FETCH).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_subscription_free(subscription: *mut moqt_subscription) {
    guard_void(|| end_handle(subscription, true))
}

/// Changes a live subscription's priority and max age (the other fields of `options` are
/// ignored): the new values go upstream as SUBSCRIBE_UPDATE, aggregated with other local
/// subscribers of the track. Applied between groups.
///
/// Thread-safety: any thread, callbacks included. Callbacks: none. Returns MOQT_STATUS_OK or
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `subscription` or `options`, or a FETCH's handle).
///
/// Ownership: `options` is only read during the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_subscription_update(
    subscription: *const moqt_subscription,
    options: *const moqt_subscribe_options,
) -> moqt_status {
    guard(|| match &try_ref(subscription)?.updates {
        Some(updates) => super::follow::update(updates, options),
        None => Err(FfiError::invalid("a FETCH has no live options")),
    })
}

/// Stops a subscription without waiting: no new callback starts, but one already running on
/// the dispatcher may still be finishing when this returns; `user_data_free` (once, later, on
/// the dispatcher) marks the end. For hosts that must not block (a GUI or audio thread).
/// NULL is accepted.
///
/// Thread-safety: any thread, callbacks included; never blocks. Callbacks: one already running
/// may finish; then only `user_data_free`, once, on the dispatcher thread.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_subscription_release(subscription: *mut moqt_subscription) {
    guard_void(|| end_handle(subscription, false))
}
