//! What a client reports as callbacks: `moqt_announced` watches the broadcasts announced under
//! a prefix, `moqt_state_watch` the client's connection state (with `moqt_client_get_state`, its
//! state now). Both are a callback set fed by one engine task; they share this module because
//! their entry points interleave in the header, whose order follows the source.

use std::ffi::{CString, c_char, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use super::args::{Out, SizedStruct, copy_text, path_arg};
use super::callbacks::{CallbackSet, CallbacksStruct, ClosedFn, FedHandle, Feed, FreeFn, end_handle};
use super::client::moqt_client;
use super::error::{FfiError, guard, guard_void, moqt_status};
use super::handle::{Castable, OwnershipBox, try_ref};
use super::runtime::runtime;
use crate::coding::Path;
use crate::model::{self, OriginProducer};
use crate::reconnect::ClientState;

/// `on_announce` of `moqt_announce_callbacks`: a path became active (`active`) or ended.
#[allow(non_camel_case_types)]
pub type moqt_announce_fn = Option<extern "C" fn(user_data: *mut c_void, path: *const c_char, path_len: usize, active: bool)>;

/// Callbacks of `moqt_client_announced`. Zero-initialise, then set `struct_size`. They run on
/// the dispatcher thread, one at a time, in order, like a subscription's.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_announce_callbacks {
    /// `sizeof(moqt_announce_callbacks)`.
    pub struct_size: u32,
    /// Passed first to every callback.
    pub user_data: *mut c_void,
    /// Called exactly once, after the last other callback, even if watching failed.
    pub user_data_free: Option<extern "C" fn(user_data: *mut c_void)>,
    /// A broadcast under the prefix became available (`active`) or went away. `path` (relative
    /// to the session, `path_len` bytes, also NUL-terminated) is borrowed for the call.
    pub on_announce: moqt_announce_fn,
    /// The watch ended (the terminal callback), for example because the client was freed.
    pub on_closed: Option<extern "C" fn(user_data: *mut c_void, status: moqt_status)>,
}

// SAFETY: repr(C), struct_size first, every field a pointer or an optional function pointer.
unsafe impl SizedStruct for moqt_announce_callbacks {}

impl CallbacksStruct for moqt_announce_callbacks {
    type Events = moqt_announce_fn;
    fn parts(self) -> (*mut c_void, FreeFn, ClosedFn, moqt_announce_fn) {
        (self.user_data, self.user_data_free, self.on_closed, self.on_announce)
    }
}

/// A live watch of announcements; free it to stop.
#[allow(non_camel_case_types)]
pub struct moqt_announced {
    feed: Feed<moqt_announce_fn>,
}

impl Castable for moqt_announced {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "announced";
}

impl FedHandle for moqt_announced {
    type Events = moqt_announce_fn;
    fn feed(&self) -> &Feed<moqt_announce_fn> {
        &self.feed
    }
}

/// Watches the broadcasts the server announces under `prefix` ("" for all; `prefix_len` may be
/// SIZE_MAX for a NUL-terminated string): `on_announce` with `active` true for each one
/// available now and each that appears later, false for each that goes away.
///
/// Ownership: on success `*out` is a new watch; free it with `moqt_announced_free`. `callbacks`
/// is only read during the call. Thread-safety: any thread. Callbacks: on_announce, then
/// on_closed (terminal), then user_data_free, on the dispatcher thread; user_data_free also when
/// this call fails. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL client, callbacks
/// or out, a bad prefix), MOQT_STATUS_ERR_NO_MEMORY, MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_announced(
    client: *const moqt_client,
    prefix: *const c_char,
    prefix_len: usize,
    callbacks: *const moqt_announce_callbacks,
    out: *mut *mut moqt_announced,
) -> moqt_status {
    guard(|| {
        let set = CallbackSet::read(callbacks)?;
        set.starting(|set| {
            let client = try_ref(client)?;
            let out = Out::new(out)?;
            let prefix = path_arg(prefix, prefix_len)?;
            let runtime = runtime().ok_or_else(FfiError::no_engine)?;
            let task = run_announced(set.clone(), client.remote(), prefix);
            let task = client.unless_freed(task, set.closing(moqt_status::ErrClosed));
            out.set_boxed(moqt_announced { feed: Feed::spawn(&runtime, set.clone(), task) });
            Ok(())
        })
    })
}

async fn run_announced(set: Arc<CallbackSet<moqt_announce_fn>>, remote: OriginProducer, prefix: Path) {
    let mut announcements = remote.consume_scoped(prefix, 0);
    while let Some(announcement) = announcements.next_announcement().await {
        let (path, active) = match announcement {
            model::Announcement::Start { path, .. } => (path, true),
            model::Announcement::End { path } => (path, false),
            // Another route to a broadcast already announced: nothing changes for the host.
            model::Announcement::Update { .. } => continue,
        };
        let Ok(text) = CString::new(path.as_str()) else { continue };
        set.callback(move |on_announce, user_data| {
            if let Some(on_announce) = on_announce {
                on_announce(user_data, text.as_ptr(), text.as_bytes().len(), active);
            }
        })
        .await;
    }
    set.close(moqt_status::ErrClosed).await;
}

/// Stops watching announcements and frees the watch. NULL is accepted. After it returns no
/// callback runs any more except `user_data_free` (once, later, on the dispatcher). It may be
/// called from inside one of this watch's callbacks.
///
/// Thread-safety: any thread; blocks until a callback in progress on another thread returns.
/// Callbacks: only `user_data_free`, once, later, on the dispatcher thread.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_announced_free(announced: *mut moqt_announced) {
    guard_void(|| end_handle(announced, true))
}

/// Where a client's connection stands (`moqt_client_get_state`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moqt_client_state {
    /// The first attempt is under way.
    Connecting = 0,
    /// A session is up.
    Connected = 1,
    /// The server sent GOAWAY; the client is moving to the URI in the detail.
    Migrating = 2,
    /// The connection was lost or refused; the client retries by itself (reason in the detail).
    Reconnecting = 3,
    /// The client stopped retrying: no session for too long, or the server refused the
    /// credentials (reason in the detail). Free it.
    GaveUp = 4,
    /// The client was closed.
    Closed = 5,
}

/// The client's state now, and its detail (the version when connected, the reason when
/// reconnecting or given up, the URI when migrating) copied NUL-terminated into `detail`
/// (`detail_len` bytes, truncated to fit; NULL with 0 to skip it).
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK or
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `client` or `state_out`, NULL `detail` with a length).
///
/// Ownership: `state_out` and `detail` are the caller's, written during the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_get_state(
    client: *const moqt_client,
    state_out: *mut moqt_client_state,
    detail: *mut c_char,
    detail_len: usize,
) -> moqt_status {
    guard(|| {
        let client = try_ref(client)?;
        let detail = NonNull::new(detail);
        let (Some(state_out), true) = (Out::optional(state_out), detail.is_some() || detail_len == 0) else {
            return Err(FfiError::invalid("state_out is NULL, or detail is NULL with a length"));
        };
        let (state, text) = state_parts(client.client.state());
        state_out.write(state);
        if let (Some(detail), true) = (detail, detail_len > 0) {
            copy_text(&text, detail, detail_len);
        }
        Ok(())
    })
}

/// `on_state` of `moqt_state_callbacks`: the client's new state and a detail text.
#[allow(non_camel_case_types)]
pub type moqt_state_fn = Option<extern "C" fn(user_data: *mut c_void, state: moqt_client_state, detail: *const c_char)>;

/// Callbacks of `moqt_client_watch_state`. Zero-initialise, then set `struct_size`. They run on
/// the dispatcher thread, one at a time, in order, like a subscription's.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_state_callbacks {
    /// `sizeof(moqt_state_callbacks)`.
    pub struct_size: u32,
    /// Passed first to every callback.
    pub user_data: *mut c_void,
    /// Called exactly once, after the last other callback, even if watching failed.
    pub user_data_free: Option<extern "C" fn(user_data: *mut c_void)>,
    /// The client's state now (first call) and after each change, with its detail as
    /// `moqt_client_get_state` gives it (NUL-terminated, borrowed for the call).
    pub on_state: moqt_state_fn,
    /// The watch ended (the terminal callback): the client was freed or closed.
    pub on_closed: Option<extern "C" fn(user_data: *mut c_void, status: moqt_status)>,
}

// SAFETY: repr(C), struct_size first, every field a pointer or an optional function pointer.
unsafe impl SizedStruct for moqt_state_callbacks {}

impl CallbacksStruct for moqt_state_callbacks {
    type Events = moqt_state_fn;
    fn parts(self) -> (*mut c_void, FreeFn, ClosedFn, moqt_state_fn) {
        (self.user_data, self.user_data_free, self.on_closed, self.on_state)
    }
}

/// A live watch of a client's state; free it to stop.
#[allow(non_camel_case_types)]
pub struct moqt_state_watch {
    feed: Feed<moqt_state_fn>,
}

impl Castable for moqt_state_watch {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "watch";
}

impl FedHandle for moqt_state_watch {
    type Events = moqt_state_fn;
    fn feed(&self) -> &Feed<moqt_state_fn> {
        &self.feed
    }
}

/// The C form of a client state and its detail.
fn state_parts(state: ClientState) -> (moqt_client_state, String) {
    match state {
        ClientState::Connecting => (moqt_client_state::Connecting, String::new()),
        ClientState::Connected { version, .. } => (moqt_client_state::Connected, version.to_string()),
        ClientState::Migrating { uri } => (moqt_client_state::Migrating, uri),
        ClientState::Reconnecting { reason, .. } => (moqt_client_state::Reconnecting, reason),
        ClientState::GaveUp { reason } => (moqt_client_state::GaveUp, reason),
        ClientState::Closed => (moqt_client_state::Closed, String::new()),
    }
}

/// Reports the client's state now and every change after it, as callbacks: connected (with the
/// version), migrating after GOAWAY (with the URI), reconnecting (with the reason), given up,
/// closed. Changes that follow each other quickly may be coalesced into the latest.
///
/// Ownership: on success `*out` is a new watch; free it with `moqt_state_watch_free` (before or
/// after the client). `callbacks` is only read during the call. Thread-safety: any thread.
/// Callbacks: on_state, then on_closed (terminal), then user_data_free, on the dispatcher thread;
/// user_data_free also when this call fails. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG
/// (NULL client, callbacks or out), MOQT_STATUS_ERR_NO_MEMORY, MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_watch_state(
    client: *const moqt_client,
    callbacks: *const moqt_state_callbacks,
    out: *mut *mut moqt_state_watch,
) -> moqt_status {
    guard(|| {
        let set = CallbackSet::read(callbacks)?;
        set.starting(|set| {
            let client = try_ref(client)?;
            let out = Out::new(out)?;
            let runtime = runtime().ok_or_else(FfiError::no_engine)?;
            let task = run_state_watch(set.clone(), client.client.watch_state());
            out.set_boxed(moqt_state_watch { feed: Feed::spawn(&runtime, set.clone(), task) });
            Ok(())
        })
    })
}

async fn run_state_watch(
    set: Arc<CallbackSet<moqt_state_fn>>,
    mut states: tokio::sync::watch::Receiver<ClientState>,
) {
    loop {
        let (state, detail) = state_parts(states.borrow_and_update().clone());
        let detail = CString::new(detail.replace('\0', " ")).unwrap_or_default();
        set.callback(move |on_state, user_data| {
            if let Some(on_state) = on_state {
                on_state(user_data, state, detail.as_ptr());
            }
        })
        .await;
        if state == moqt_client_state::Closed || states.changed().await.is_err() {
            break;
        }
    }
    set.close(moqt_status::Ok).await;
}

/// Stops watching announcements without waiting for a running callback, as
/// `moqt_subscription_release` does for a subscription. NULL is accepted.
///
/// Thread-safety: any thread, callbacks included; never blocks. Callbacks: as
/// `moqt_subscription_release`.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_announced_release(announced: *mut moqt_announced) {
    guard_void(|| end_handle(announced, false))
}

/// Stops watching a client's state without waiting for a running callback, as
/// `moqt_subscription_release` does for a subscription. NULL is accepted.
///
/// Thread-safety: any thread, callbacks included; never blocks. Callbacks: as
/// `moqt_subscription_release`.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_state_watch_release(watch: *mut moqt_state_watch) {
    guard_void(|| end_handle(watch, false))
}

/// Stops watching a client's state and frees the watch. NULL is accepted. After it returns no
/// callback runs any more except `user_data_free` (once, later, on the dispatcher). It may be
/// called from inside one of this watch's callbacks.
///
/// Thread-safety: any thread; blocks until a callback in progress on another thread returns.
/// Callbacks: only `user_data_free`, once, later, on the dispatcher thread.
///
/// Ownership: ends the caller's handle.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_state_watch_free(watch: *mut moqt_state_watch) {
    guard_void(|| end_handle(watch, true))
}
