//! Clients, publishing and subscribing from C. Each handle is a box around what the engine shares
//! (Arc-backed model objects); freeing a handle releases only the caller's part.

use std::ffi::{CStr, c_char, c_void};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::follow::{Delivery, TrackEnd, follow_track, moqt_subscribe_options};
use crate::model::FrameBounds;
use super::frame::moqt_frame;
use super::runtime::{dispatch, on_dispatcher, runtime, spawn_task};
use super::{client_for, guard, guard_void, moqt_status, path_arg, set_error, str_arg};
use crate::coding::Path;
use crate::endpoint::EndpointConfig;
use crate::model::{self, BroadcastProducer, OriginProducer, Published, Route, TrackWriter, WriterSettings};
use crate::reconnect::{ClientState, PersistentClient, ReconnectSettings};
use crate::transport::tls::{ClientTrust, TrustSettings};
use crate::wire::Version;

/// Start a new group with this frame (the frame is a keyframe). Flag of `moqt_track_write_frame`:
/// the group being written is finished and the frame opens the next one. Needed on the track's
/// first frame when the track was created with `keyframe_groups`, and on the first frame after a
/// write failed with MOQT_STATUS_ERR_NO_MEMORY (a group past its bounds).
pub const MOQT_FRAME_NEW_GROUP: u32 = 1;

/// How long `moqt_client_free` waits at most, in milliseconds, for what the client's ended tracks
/// still owe the relay (see `moqt_client_flush`) before it closes the session.
pub const MOQT_CLIENT_FREE_DRAIN_MS: u32 = 5000;

/// How long `moqt_client_connect` waits for the first session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `moqt_client_connect`. Zero-initialise, then set `struct_size = sizeof(...)`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_client_options {
    /// `sizeof(moqt_client_options)`: lets later versions append fields.
    pub struct_size: u32,
    /// Trust only a server certificate with this SHA-256 (NUL-terminated hex), or NULL.
    pub tls_fingerprint: *const c_char,
    /// Skip certificate verification (development only; logged as a warning).
    pub tls_disable_verify: bool,
    /// Offer only moq-lite-0X (3 to 6); 0 offers every version (or `versions_mask`).
    pub version: u32,
    /// Also trust the CA certificates in this PEM file (a NUL-terminated path), besides the
    /// platform's trust store; used when neither `tls_fingerprint` nor `tls_disable_verify` is set.
    pub tls_root_pem_path: *const c_char,
    /// The versions to offer when `version` is 0: bit N offers moq-lite-0N (N = 3 to 6), for
    /// example `(1 << 6) | (1 << 5)`; 0 offers every version.
    pub versions_mask: u32,
    /// First reconnection delay, milliseconds (doubling up to `reconnect_max_ms`). 0: 250.
    pub reconnect_initial_ms: u64,
    /// Longest reconnection delay, milliseconds. 0: 10000.
    pub reconnect_max_ms: u64,
    /// Give up after this long without a session, milliseconds; UINT64_MAX never gives up.
    /// 0: 300000 (5 minutes).
    pub give_up_after_ms: u64,
    /// Subscriptions the server may hold on this client's broadcasts at once. 0: 1024.
    pub max_subscriptions: u32,
    /// Announce requests the server may hold open at once. 0: 64.
    pub max_announce_requests: u32,
    /// Group streams in flight per subscription before the oldest is abandoned (and reported).
    /// 0: 64.
    pub max_groups_in_flight: u32,
    /// The largest control message accepted, bytes. 0: 1 MiB.
    pub max_message_size: u64,
}

// SAFETY: repr(C), struct_size first, every field an integer, bool or pointer.
unsafe impl super::SizedStruct for moqt_client_options {}

impl moqt_client_options {
    /// The versions to offer.
    fn versions(&self) -> Result<Vec<Version>, moqt_status> {
        let known = |v: u32| (3..=6).contains(&v);
        match (self.version, self.versions_mask) {
            (0, 0) => Ok(Version::ALL.to_vec()),
            (0, mask) => {
                if mask & !0b111_1000 != 0 {
                    return Err(set_error(
                        moqt_status::ErrInvalidArg,
                        &format!("versions_mask {mask:#x} names unknown versions"),
                    ));
                }
                Ok((3..=6).rev().filter(|v| mask & (1 << v) != 0).map(|v| Version::ALL[(6 - v) as usize]).collect())
            }
            (v, _) if known(v) => Ok(vec![Version::ALL[(6 - v) as usize]]),
            (other, _) => Err(set_error(moqt_status::ErrInvalidArg, &format!("unknown version {other}"))),
        }
    }

    /// The session bounds, defaults where 0.
    fn apply_limits(&self, session: &mut crate::session::SessionConfig) {
        let set = |value: u64, target: &mut usize| {
            if value > 0 {
                *target = usize::try_from(value).unwrap_or(usize::MAX);
            }
        };
        set(u64::from(self.max_subscriptions), &mut session.max_subscriptions);
        set(u64::from(self.max_announce_requests), &mut session.max_announce_requests);
        set(u64::from(self.max_groups_in_flight), &mut session.max_groups_in_flight);
        set(self.max_message_size, &mut session.max_message_size);
    }

    /// The reconnection settings, defaults where 0.
    fn reconnect(&self) -> ReconnectSettings {
        let mut settings = ReconnectSettings::default();
        if self.reconnect_initial_ms > 0 {
            settings.initial_delay = Duration::from_millis(self.reconnect_initial_ms);
        }
        if self.reconnect_max_ms > 0 {
            settings.max_delay = Duration::from_millis(self.reconnect_max_ms).max(settings.initial_delay);
        }
        match self.give_up_after_ms {
            0 => {}
            u64::MAX => settings.give_up_after = None,
            ms => settings.give_up_after = Some(Duration::from_millis(ms)),
        }
        settings
    }
}

/// A client connection to a relay or server. It reconnects by itself and follows GOAWAY.
#[allow(non_camel_case_types)]
pub struct moqt_client {
    client: PersistentClient,
    publish: OriginProducer,
    remote: OriginProducer,
    /// Dropped with the client: tasks behind its handles watch it to end when it is freed.
    gone: tokio::sync::watch::Sender<()>,
}

impl moqt_client {
    /// Where the server's broadcasts appear.
    pub(crate) fn remote(&self) -> OriginProducer {
        self.remote.clone()
    }

    /// Runs `task` until it ends or this client is freed, whichever comes first; on the free,
    /// `on_freed` ends the handle's callbacks, so nothing behind a freed client waits for a
    /// session that will not come back (received broadcasts otherwise linger for a reconnect).
    pub(crate) fn unless_freed<T, F>(&self, task: T, on_freed: F) -> impl Future<Output = ()> + Send + 'static
    where
        T: Future<Output = ()> + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let gone = self.gone.subscribe();
        async move {
            tokio::select! {
                () = task => {}
                () = wait_dropped(gone) => on_freed.await,
            }
        }
    }

    /// The session up right now, for FETCH, PROBE and statistics.
    pub(crate) fn session(&self) -> Option<crate::session::SessionLink> {
        self.client.session()
    }
}

/// A broadcast this client publishes.
#[allow(non_camel_case_types)]
pub struct moqt_broadcast {
    producer: BroadcastProducer,
    _published: Published,
}

/// A track of a published broadcast.
#[allow(non_camel_case_types)]
pub struct moqt_track {
    writer: Mutex<TrackWriter>,
}

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
unsafe impl super::SizedStruct for moqt_subscribe_callbacks {}

/// A live subscription; free it to stop.
#[allow(non_camel_case_types)]
pub struct moqt_subscription {
    pub(crate) shared: Arc<Subscription>,
    pub(crate) task: tokio::task::AbortHandle,
    /// Live priority and max-age updates for the subscription's task; `None` for a FETCH.
    pub(crate) updates: Option<tokio::sync::watch::Sender<model::SubscribeOptions>>,
}

/// C's user data: a pointer the C contract lets the dispatcher thread use.
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: the header documents that user_data is handed to callbacks on the dispatcher thread;
// the library only passes it through, never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer is only ever passed to C, one callback at a time.
unsafe impl Sync for UserData {}

pub(crate) struct Subscription {
    pub(crate) user_data: UserData,
    user_data_free: Option<extern "C" fn(*mut c_void)>,
    pub(crate) on_frame: Option<extern "C" fn(*mut c_void, *const moqt_frame)>,
    pub(crate) on_gap: Option<extern "C" fn(*mut c_void, u64, u64, u64)>,
    on_closed: Option<extern "C" fn(*mut c_void, moqt_status)>,
    /// Announcement watchers only (`moqt_client_announced`).
    on_announce: moqt_announce_fn,
    /// State watchers only (`moqt_client_watch_state`).
    on_state: moqt_state_fn,
    /// Session admission only (`moqt_relay_options`).
    pub(crate) on_session: moqt_session_fn,
    /// Held while a callback runs, so `moqt_subscription_free` can wait for it.
    gate: Mutex<()>,
    freed: AtomicBool,
    closed: AtomicBool,
    user_data_freed: AtomicBool,
}

impl Subscription {
    /// A callback set with only the lifecycle members; the caller fills in its event callbacks.
    pub(crate) fn new(
        user_data: *mut c_void,
        user_data_free: Option<extern "C" fn(*mut c_void)>,
        on_closed: Option<extern "C" fn(*mut c_void, moqt_status)>,
    ) -> Self {
        Subscription {
            user_data: UserData(user_data),
            user_data_free,
            on_frame: None,
            on_gap: None,
            on_closed,
            on_announce: None,
            on_state: None,
            on_session: None,
            gate: Mutex::new(()),
            freed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            user_data_freed: AtomicBool::new(false),
        }
    }

    /// The callback set of a subscription or a FETCH.
    pub(crate) fn for_frames(callbacks: &moqt_subscribe_callbacks) -> Self {
        Subscription {
            on_frame: callbacks.on_frame,
            on_gap: callbacks.on_gap,
            ..Subscription::new(callbacks.user_data, callbacks.user_data_free, callbacks.on_closed)
        }
    }

    /// The callback set of a relay's session admission.
    pub(crate) fn for_admission(
        on_session: moqt_session_fn,
        user_data: *mut c_void,
        user_data_free: Option<extern "C" fn(*mut c_void)>,
    ) -> Self {
        Subscription { on_session, ..Subscription::new(user_data, user_data_free, None) }
    }

    /// Fails the call that was creating this subscription: user data is released all the same
    /// (the contract is exactly once on every path), and `status` is returned with `message`.
    pub(crate) fn refuse(self: &Arc<Self>, status: moqt_status, message: &str) -> moqt_status {
        match runtime() {
            Some(runtime) => {
                let shared = self.clone();
                runtime.spawn(async move { shared.release_user_data().await });
            }
            None => self.release_user_data_now(),
        }
        set_error(status, message)
    }

    /// Runs `call` on the dispatcher unless the subscription was freed meanwhile.
    pub(crate) async fn callback(self: &Arc<Self>, call: impl FnOnce(&Subscription) + Send + 'static) {
        let this = self.clone();
        dispatch(move || {
            let _gate = this.gate.lock().unwrap_or_else(PoisonError::into_inner);
            if !this.freed.load(Ordering::Acquire) {
                call(&this);
            }
        })
        .await;
    }

    /// Lends `frame` to on_frame for the call (C keeps it with `moqt_frame_ref`).
    pub(crate) async fn frame(self: &Arc<Self>, frame: moqt_frame) {
        self.callback(move |s| {
            if let Some(on_frame) = s.on_frame {
                let frame = Arc::into_raw(Arc::new(frame));
                on_frame(s.user_data.0, frame);
                // SAFETY: balances the into_raw above; refs C took are its own.
                drop(unsafe { Arc::from_raw(frame) });
            }
        })
        .await
    }

    /// Ends the set: on_closed(status), then user_data_free, exactly once. Both are queued by a
    /// task of their own: the caller may be cancelled (its handle freed, its client gone) while
    /// the dispatcher queue is full, and a flag already set must not leave them unqueued.
    /// Before on_closed, this (dispatcher) thread's last error says how it ended, with the
    /// stream code of an abort for `moqt_last_error_code`.
    pub(crate) async fn close(self: &Arc<Self>, end: impl Into<TrackEnd>) {
        let end = end.into();
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let ending = tokio::spawn(async move {
            this.callback(move |s| {
                if let Some(on_closed) = s.on_closed {
                    let status = end.report();
                    on_closed(s.user_data.0, status);
                }
            })
            .await;
            this.release_user_data().await;
        });
        let _ = ending.await;
    }

    /// No callback of this set starts after this (one running on another thread is waited for
    /// if `wait`); then `user_data_free` is queued, to run after any callback in progress.
    pub(crate) fn finish(self: &Arc<Self>, wait: bool) {
        self.freed.store(true, Ordering::Release);
        if wait && !on_dispatcher() {
            // Wait for a callback that is running right now.
            drop(self.gate.lock().unwrap_or_else(PoisonError::into_inner));
        }
        match runtime() {
            Some(runtime) => {
                let shared = self.clone();
                runtime.spawn(async move { shared.release_user_data().await });
            }
            None => self.release_user_data_now(),
        }
    }

    /// Asks the host's `on_session` whether to admit a session: true without an `on_session`,
    /// false once the set is finished (its relay is stopping).
    pub(crate) async fn admit(self: &Arc<Self>, path: String, version: u32) -> bool {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.callback(move |s| {
            let admitted = s
                .on_session
                .is_none_or(|on_session| on_session(s.user_data.0, path.as_ptr().cast(), path.len(), version));
            let _ = answer.send(admitted);
        })
        .await;
        answered.await.unwrap_or(false)
    }

    /// Queues `user_data_free`, exactly once, after everything already queued (by a task of its
    /// own, so cancelling the caller cannot lose it once the flag is set).
    async fn release_user_data(self: &Arc<Self>) {
        if self.user_data_freed.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let queued = tokio::spawn(dispatch(move || {
            if let Some(free) = this.user_data_free {
                free(this.user_data.0);
            }
        }));
        let _ = queued.await;
    }

    /// Releases the user data here and now: the engine could not start, so there is no
    /// dispatcher to run it on (the contract is still exactly once).
    fn release_user_data_now(&self) {
        if !self.user_data_freed.swap(true, Ordering::AcqRel)
            && let Some(free) = self.user_data_free
        {
            free(self.user_data.0);
        }
    }
}

fn trust(options: Option<&moqt_client_options>) -> Result<ClientTrust, moqt_status> {
    let Some(options) = options else {
        return Err(set_error(moqt_status::ErrInvalidArg, "options are required (choose how to trust the server)"));
    };
    let mut settings = TrustSettings { disable_verify: options.tls_disable_verify, ..Default::default() };
    if !options.tls_fingerprint.is_null() {
        // SAFETY: a non-NULL tls_fingerprint is a NUL-terminated string (documented).
        let hex = unsafe { CStr::from_ptr(options.tls_fingerprint) }.to_str().unwrap_or("");
        settings.fingerprints.push(hex.to_owned());
    }
    if !options.tls_root_pem_path.is_null() {
        // SAFETY: a non-NULL tls_root_pem_path is a NUL-terminated string (documented).
        let path = unsafe { CStr::from_ptr(options.tls_root_pem_path) }.to_string_lossy().into_owned();
        settings.ca_file = Some(path.into());
    }
    ClientTrust::from_settings(&settings).map_err(|e| set_error(moqt_status::ErrInvalidArg, &e.to_string()))
}

/// Everything `moqt_client_connect_async` checks and starts, without the handle: the options
/// read, the URL's form checked, the background connection started. Errors have set the last
/// error.
fn start_client(url: *const c_char, url_len: usize, options: *const moqt_client_options) -> Result<moqt_client, moqt_status> {
    let url = str_arg(url, url_len)?.to_string();
    let options = super::read_sized(options);
    let trust = trust(options.as_ref())?;
    let mut config = EndpointConfig::default();
    let reconnect = options.as_ref().map(moqt_client_options::reconnect).unwrap_or_default();
    if let Some(options) = &options {
        options.apply_limits(&mut config.session);
        let versions = options.versions()?;
        if !versions.is_empty() {
            config.versions = versions;
        }
    }
    let Some(runtime) = runtime() else {
        return Err(set_error(moqt_status::ErrNoMemory, "cannot start the engine threads"));
    };
    // The background task is spawned on the engine; nothing here waits for the network.
    let _engine = runtime.enter();
    let publish = OriginProducer::default();
    let remote = OriginProducer::default();
    let client =
        PersistentClient::connect_url(&url, trust, config, Some(publish.consume()), Some(remote.clone()), reconnect)
            .map_err(|reason| set_error(moqt_status::ErrInvalidArg, &reason))?;
    Ok(moqt_client { client, publish, remote, gone: tokio::sync::watch::Sender::new(()) })
}

/// Starts a client for `url` (`moql://host:port/path` or `moqt://` for raw QUIC, `https://` for
/// WebTransport) and returns at once, without waiting for the network: the host is resolved and
/// the session set up in the background, and a server that is not up yet (or unreachable, or
/// refusing) is retried with the options' backoff until `give_up_after_ms`. Later the client
/// reconnects after a loss and follows GOAWAY by itself. `url_len` may be SIZE_MAX for a
/// NUL-terminated string. The server is trusted by `tls_fingerprint`, or `tls_disable_verify`, or
/// else the platform's trust store plus `tls_root_pem_path`.
///
/// The client is usable at once: broadcasts and tracks published before the first session
/// (`moqt_client_publish`, `moqt_broadcast_create_track`, writes) are announced when it comes up,
/// and subscriptions (`moqt_client_subscribe`, `moqt_client_subscribe_pull`) wait for their
/// broadcast to be announced, then start. Only requests on the session itself
/// (`moqt_client_fetch`, `moqt_client_probe`, `moqt_client_get_stats`) return
/// MOQT_STATUS_ERR_CLOSED while none is up. Progress is reported by `moqt_client_watch_state`
/// (connecting, then connected, or reconnecting with the reason of each failure, or given up)
/// and `moqt_client_get_state`. `moqt_client_free` cancels an attempt in progress at once.
///
/// Ownership: on success `*out` is a new client; free it with `moqt_client_free`. `options` is
/// only read during the call. Thread-safety: any thread; never blocks on the network. Callbacks:
/// none from this call (state watches report the attempts). Returns MOQT_STATUS_OK,
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `url` or `out`, a malformed URL or an unknown scheme, bad
/// options), MOQT_STATUS_ERR_NO_MEMORY (no engine threads), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_connect_async(
    url: *const c_char,
    url_len: usize,
    options: *const moqt_client_options,
    out: *mut *mut moqt_client,
) -> moqt_status {
    guard(|| {
        if out.is_null() {
            return set_error(moqt_status::ErrInvalidArg, "out is NULL");
        }
        match start_client(url, url_len, options) {
            Ok(client) => {
                // SAFETY: out was checked non-NULL; the caller owns the box from here.
                unsafe { *out = Box::into_raw(Box::new(client)) };
                moqt_status::Ok
            }
            Err(status) => status,
        }
    })
}

/// Connects to `url` as `moqt_client_connect_async` does, then waits up to 10 s for the first
/// session: a convenience for programs that may block. The first failed attempt (unreachable,
/// TLS failure, refused) ends the wait with MOQT_STATUS_ERR_CONNECT and no client; use
/// `moqt_client_connect_async` to keep retrying instead. Once connected the client stays
/// connected as an asynchronous one does; `moqt_client_get_state` tells where it stands.
///
/// Ownership: on success `*out` is a new client; free it with `moqt_client_free`. `options` is
/// only read during the call. Thread-safety: any thread (blocks the caller; not from a
/// callback). Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, bad URL
/// or options), MOQT_STATUS_ERR_CONNECT (unreachable, TLS failure, refused, no session within
/// 10 s), MOQT_STATUS_ERR_NO_MEMORY (no engine threads), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_connect(
    url: *const c_char,
    url_len: usize,
    options: *const moqt_client_options,
    out: *mut *mut moqt_client,
) -> moqt_status {
    guard(|| {
        if out.is_null() {
            return set_error(moqt_status::ErrInvalidArg, "out is NULL");
        }
        let client = match start_client(url, url_len, options) {
            Ok(client) => client,
            Err(status) => return status,
        };
        let Some(runtime) = runtime() else {
            return set_error(moqt_status::ErrNoMemory, "cannot start the engine threads");
        };
        let mut states = client.client.watch_state();
        let first_session = async {
            loop {
                match &*states.borrow_and_update() {
                    ClientState::Connected { .. } => return Ok(()),
                    ClientState::Reconnecting { reason, .. } | ClientState::GaveUp { reason } => {
                        return Err(reason.clone());
                    }
                    ClientState::Closed => return Err("closed".to_string()),
                    ClientState::Connecting | ClientState::Migrating { .. } => {}
                }
                if states.changed().await.is_err() {
                    return Err("closed".to_string());
                }
            }
        };
        let outcome = match runtime.block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, first_session).await }) {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no session within {CONNECT_TIMEOUT:?}")),
        };
        match outcome {
            Ok(()) => {
                // SAFETY: out was checked non-NULL; the caller owns the box from here.
                unsafe { *out = Box::into_raw(Box::new(client)) };
                moqt_status::Ok
            }
            Err(reason) => {
                close_client(client);
                set_error(moqt_status::ErrConnect, &reason)
            }
        }
    })
}

/// How long `moqt_client_free` waits for the client's background task to end. It ends as soon as
/// it sees the close (an attempt in progress is dropped, a session closed without waiting for the
/// peer), so this only bounds a stalled engine.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Closes a client and waits (up to [`CLOSE_WAIT`]) for its background task to end, unless the
/// caller's thread is inside a runtime (an engine thread), which must not block on the engine:
/// there the task ends by itself after the close.
fn close_client(client: moqt_client) {
    let moqt_client { client, publish, remote, gone } = client;
    let Some(runtime) = runtime() else {
        client.close();
        return;
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        client.close();
    } else {
        let _ = runtime.block_on(async { tokio::time::timeout(CLOSE_WAIT, client.shutdown()).await });
    }
    // Handles behind the client (subscriptions, watches) end when `gone` goes.
    let _engine = runtime.enter();
    drop((publish, remote, gone));
}

/// Closes the client's session, or cancels the connection attempt in progress at once (a server
/// that does not answer is not waited out), and frees it. NULL is accepted; freeing twice is
/// undefined. First it drains, as `moqt_client_flush` with a timeout of MOQT_CLIENT_FREE_DRAIN_MS:
/// what the client's ended tracks owe the relay is delivered before the session closes, so a track
/// finished (`moqt_track_finish`, `moqt_track_free`) just before this call reaches the relay's
/// subscribers as finished (MOQT_STATUS_END), not cut off. Tracks still live are not waited for;
/// their subscribers see the session end. Without anything owed it does not wait.
///
/// Ownership: ends the caller's handle; broadcasts, tracks and subscriptions made from it must be
/// freed too (before or after). Thread-safety: any thread, callbacks included; it blocks up to
/// MOQT_CLIENT_FREE_DRAIN_MS while tracks it ended are still on their way (call
/// `moqt_client_flush` first to choose that bound; from a callback, the drain holds the other
/// callbacks back), then until the client's background work has stopped (promptly). Callbacks:
/// subscriptions of this client end with on_closed(MOQT_STATUS_ERR_CLOSED); state watches see
/// MOQT_CLIENT_STATE_CLOSED, then on_closed.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_client_free(client: *mut moqt_client) {
    guard_void(|| {
        if client.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_connect(_async) and is freed once (documented).
        let client = unsafe { Box::from_raw(client) };
        // An engine thread must not block on the engine: there the client closes without a drain.
        if let (Some(runtime), Err(_)) = (runtime(), tokio::runtime::Handle::try_current()) {
            let drain = Duration::from_millis(u64::from(MOQT_CLIENT_FREE_DRAIN_MS));
            if let Err(unflushed) = flush(&runtime, &client, drain) {
                tracing::debug!(unflushed, "client freed before its ended tracks reached the relay");
            }
        }
        close_client(*client);
    })
}

/// Waits up to `timeout` until the client's session owes its peer nothing more (see
/// [`SessionLink::flushed`](crate::session::SessionLink::flushed)); `Err` with how many
/// subscriptions and streams are still owed at the deadline. Without a session, nothing is owed.
fn flush(runtime: &tokio::runtime::Handle, client: &moqt_client, timeout: Duration) -> Result<(), usize> {
    let Some(session) = client.client.session() else { return Ok(()) };
    if session.unflushed() == 0 {
        return Ok(());
    }
    runtime.block_on(async {
        match tokio::time::timeout(timeout, session.flushed()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(session.unflushed()),
        }
    })
}

/// Waits until what this client's tracks have completed has reached the relay, or `timeout_ms`
/// passed (0: only check). Owed are, for each subscription the relay holds on one of this
/// client's tracks that has ended (`moqt_track_finish`, `moqt_track_abort`, `moqt_track_free`):
/// its remaining groups, then its end, sent and acknowledged by the relay, and the relay's own
/// end of the subscription received (moqt's relay sends it once it has taken the groups in, up
/// to half a second later); and every group stream of a completed group (one followed by
/// `MOQT_FRAME_NEW_GROUP`), acknowledged. Each of these is waited for at most 10 s. Groups and
/// tracks still being written are not waited for: finish a track first to flush all of it.
/// Call it before `moqt_client_free` (which drains for at most MOQT_CLIENT_FREE_DRAIN_MS by
/// itself) to choose the bound, or to learn that something did not arrive.
///
/// Ownership: nothing changes hands. Thread-safety: any thread; blocks the caller up to
/// `timeout_ms`. Do not call it from a callback with a long timeout: it would hold every other
/// callback back meanwhile. Callbacks: none. Returns MOQT_STATUS_OK (nothing is owed any more),
/// MOQT_STATUS_ERR_TIMEOUT (something still is; `moqt_last_error` says how much),
/// MOQT_STATUS_ERR_CLOSED (no session is up: nothing can reach the relay now),
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `client`), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_flush(client: *const moqt_client, timeout_ms: u64) -> moqt_status {
    guard(|| {
        // SAFETY: a non-NULL client came from moqt_client_connect and is alive (documented).
        let Some(client) = (unsafe { client.as_ref() }) else {
            return set_error(moqt_status::ErrInvalidArg, "client is NULL");
        };
        if client.client.session().is_none() {
            return set_error(moqt_status::ErrClosed, "no session is up: nothing can reach the relay");
        }
        let Some(runtime) = runtime() else {
            return set_error(moqt_status::ErrNoMemory, "cannot start the engine threads");
        };
        match flush(&runtime, client, Duration::from_millis(timeout_ms)) {
            Ok(()) => moqt_status::Ok,
            Err(owed) => set_error(
                moqt_status::ErrTimeout,
                &format!("{owed} subscriptions or group streams have not reached the relay yet"),
            ),
        }
    })
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
        let client = match client_for(client, out) {
            Ok(client) => client,
            Err((status, message)) => return set_error(status, message),
        };
        let path = match path_arg(path, path_len) {
            Ok(path) => path,
            Err(status) => return status,
        };
        super::test_panic_point(path.as_str());
        let producer = BroadcastProducer::default();
        match client.publish.publish(path, producer.consume(), Route::local()) {
            Ok(published) => {
                // SAFETY: out was checked non-NULL.
                unsafe { *out = Box::into_raw(Box::new(moqt_broadcast { producer, _published: published })) };
                moqt_status::Ok
            }
            Err(err) => set_error(moqt_status::ErrNoMemory, &err.to_string()),
        }
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
        if broadcast.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_publish and is freed once.
        let broadcast = unsafe { Box::from_raw(broadcast) };
        broadcast.producer.clone().finish();
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
unsafe impl super::SizedStruct for moqt_track_options {}

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
        if let Some(options) = super::read_sized(options) {
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
                return set_error(
                    moqt_status::ErrInvalidArg,
                    &format!(
                        "group bounds above moq-lite's ({} frames, {} bytes): peers would refuse such groups",
                        group.max_frames, group.max_bytes
                    ),
                );
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
) -> moqt_status {
    // SAFETY: a non-NULL broadcast came from moqt_client_publish and is alive.
    let Some(broadcast) = (unsafe { broadcast.as_ref() }) else {
        return set_error(moqt_status::ErrInvalidArg, "broadcast is NULL");
    };
    if out.is_null() {
        return set_error(moqt_status::ErrInvalidArg, "out is NULL");
    }
    let name = match str_arg(name, name_len) {
        Ok(name) => name,
        Err(status) => return status,
    };
    // The broadcast (from moqt_client_publish) has the default cache settings.
    let settings = model::CacheSettings { group, ..Default::default() };
    match broadcast.producer.create_track_with(name, info, settings) {
        Ok(producer) => {
            let track = moqt_track { writer: Mutex::new(TrackWriter::new(producer, writer)) };
            // SAFETY: out was checked non-NULL.
            unsafe { *out = Box::into_raw(Box::new(track)) };
            moqt_status::Ok
        }
        Err(err) => set_error(moqt_status::ErrInvalidArg, &err.to_string()),
    }
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
    guard(|| {
        if data.is_null() && len > 0 {
            return set_error(moqt_status::ErrInvalidArg, "data is NULL");
        }
        let payload = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: data points to len readable bytes for the duration of the call (documented).
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, len) })
        };
        write_payload(track, payload, timestamp, flags)
    })
}

/// Frees a C buffer handed over with `moqt_track_write_frame_zero_copy`.
#[allow(non_camel_case_types)]
pub type moqt_free_fn = Option<extern "C" fn(user_data: *mut c_void, data: *const u8)>;

/// A C buffer the frame's `Bytes` borrows until its last reader drops it.
struct ForeignBuffer {
    data: *const u8,
    len: usize,
    free: moqt_free_fn,
    user_data: *mut c_void,
}

// SAFETY: the header documents that the buffer stays valid and unmodified until free_fn runs,
// and that free_fn may run on any thread.
unsafe impl Send for ForeignBuffer {}

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
            free(self.user_data, self.data);
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
    // Owns the buffer from here: every path below drops it exactly once.
    let buffer = ForeignBuffer { data, len, free: free_fn, user_data: free_user_data };
    guard(move || {
        if data.is_null() && len > 0 {
            return set_error(moqt_status::ErrInvalidArg, "data is NULL");
        }
        write_payload(track, Bytes::from_owner(buffer), timestamp, flags)
    })
}

/// Appends `payload` to the track's current group, or to a new one where `flags` say.
fn write_payload(track: *const moqt_track, payload: Bytes, timestamp: u64, flags: u32) -> moqt_status {
    // SAFETY: a non-NULL track came from moqt_broadcast_create_track and is alive.
    let Some(track) = (unsafe { track.as_ref() }) else {
        return set_error(moqt_status::ErrInvalidArg, "track is NULL");
    };
    let mut writer = track.writer.lock().unwrap_or_else(PoisonError::into_inner);
    let new_group = flags & MOQT_FRAME_NEW_GROUP != 0;
    match writer.write(model::Frame::new(timestamp, payload), new_group) {
        Ok(_) => moqt_status::Ok,
        Err(err @ model::Error::NewGroupRequired(_)) => {
            set_error(moqt_status::ErrInvalidArg, &format!("{err} (set MOQT_FRAME_NEW_GROUP)"))
        }
        Err(err @ (model::Error::TooManyFrames { .. } | model::Error::TooManyBytes { .. })) => set_error(
            moqt_status::ErrNoMemory,
            &format!("{err}: the frame was not written and the group was aborted; start the next group with MOQT_FRAME_NEW_GROUP"),
        ),
        Err(err @ (model::Error::Closed | model::Error::SequenceOverflow)) => {
            set_error(moqt_status::ErrClosed, &format!("track is closed: {err}"))
        }
        // The group was dropped under the writer (expired or evicted from the cache).
        Err(err) => set_error(
            moqt_status::ErrNoMemory,
            &format!("the group was dropped ({err}); start the next group with MOQT_FRAME_NEW_GROUP"),
        ),
    }
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
        // SAFETY: a non-NULL track came from moqt_broadcast_create_track and is alive.
        let Some(track) = (unsafe { track.as_ref() }) else {
            return set_error(moqt_status::ErrInvalidArg, "track is NULL");
        };
        let reason = model::Error::Aborted(crate::coding::StreamCode::from_u64(code));
        match track.writer.lock().unwrap_or_else(PoisonError::into_inner).abort(reason) {
            Ok(()) => moqt_status::Ok,
            Err(_) => set_error(moqt_status::ErrClosed, "track is closed"),
        }
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
        // SAFETY: a non-NULL track came from moqt_broadcast_create_track and is alive.
        let Some(track) = (unsafe { track.as_ref() }) else {
            return set_error(moqt_status::ErrInvalidArg, "track is NULL");
        };
        match track.writer.lock().unwrap_or_else(PoisonError::into_inner).finish() {
            Ok(()) => moqt_status::Ok,
            Err(_) => set_error(moqt_status::ErrClosed, "track is already finished or aborted"),
        }
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
        // SAFETY: a non-NULL track came from moqt_broadcast_create_track and is alive.
        let Some(track) = (unsafe { track.as_ref() }) else {
            return set_error(moqt_status::ErrInvalidArg, "track is NULL");
        };
        if on_dispatcher() {
            return set_error(moqt_status::ErrUnsupported, "moqt_track_wait_subscribed blocks: not from a callback");
        }
        let until_used = match track.writer.lock().unwrap_or_else(PoisonError::into_inner).track() {
            Some(producer) => producer.until_used(),
            None => return set_error(moqt_status::ErrClosed, "track is closed"),
        };
        let Some(runtime) = runtime() else {
            return set_error(moqt_status::ErrNoMemory, "cannot start the engine threads");
        };
        let wait = async move { tokio::time::timeout(Duration::from_millis(timeout_ms), until_used).await };
        match runtime.block_on(wait) {
            Ok(()) => moqt_status::Ok,
            Err(_) => set_error(moqt_status::ErrTimeout, "no subscriber within the timeout"),
        }
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
        if track.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_broadcast_create_track and is freed once.
        let track = unsafe { Box::from_raw(track) };
        let _ = track.writer.lock().unwrap_or_else(PoisonError::into_inner).finish();
    })
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
        let Some(callbacks) = super::read_sized(callbacks) else {
            return set_error(moqt_status::ErrInvalidArg, "callbacks is NULL");
        };
        let shared = Arc::new(Subscription::for_frames(&callbacks));
        let fail = |status: moqt_status, message: &str| shared.refuse(status, message);
        let client = match client_for(client, out) {
            Ok(client) => client,
            Err((status, message)) => return fail(status, message),
        };
        let broadcast = match path_arg(broadcast, broadcast_len) {
            Ok(path) => path,
            Err(status) => return fail(status, &last_error_text()),
        };
        let track = match str_arg(track, track_len) {
            Ok(track) => track.to_string(),
            Err(_) => return fail(moqt_status::ErrInvalidArg, "bad track string"),
        };
        let wanted = match moqt_subscribe_options::read(options) {
            Ok(read) => read,
            Err(_) => return fail(moqt_status::ErrInvalidArg, &last_error_text()),
        };
        let Some(runtime) = runtime() else {
            return fail(moqt_status::ErrNoMemory, "cannot start the engine threads");
        };
        let remote = client.remote.clone();
        let (updates, options) = tokio::sync::watch::channel(wanted.options);
        let task = run_subscription(shared.clone(), remote, broadcast, track, options, wanted.frames, wanted.order);
        let task = client.unless_freed(task, closing(&shared, moqt_status::ErrClosed));
        let task = spawn_task(&runtime, task, panicked(&shared));
        let handle = moqt_subscription { shared, task, updates: Some(updates) };
        // SAFETY: out was checked non-NULL.
        unsafe { *out = Box::into_raw(Box::new(handle)) };
        moqt_status::Ok
    })
}

async fn run_subscription(
    shared: Arc<Subscription>,
    remote: OriginProducer,
    wanted: Path,
    name: String,
    options: tokio::sync::watch::Receiver<model::SubscribeOptions>,
    frames: FrameBounds,
    order: super::follow::Order,
) {
    let status = follow_track(remote, wanted, name, options, frames, order, |delivery| {
        let shared = shared.clone();
        async move {
            match delivery {
                Delivery::Frame(frame) => shared.frame(frame).await,
                Delivery::Gap(gap) => {
                    let code = gap.reason.code().to_u64();
                    shared
                        .callback(move |s| {
                            if let Some(on_gap) = s.on_gap {
                                on_gap(s.user_data.0, gap.start, gap.end, code);
                            }
                        })
                        .await
                }
            }
            true
        }
    })
    .await;
    shared.close(status).await;
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
    guard_void(|| {
        if subscription.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_subscribe and is freed once.
        let subscription = unsafe { Box::from_raw(subscription) };
        stop(&subscription.shared, &subscription.task);
    })
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
    guard(|| {
        // SAFETY: a non-NULL subscription came from moqt_client_subscribe and is alive.
        match unsafe { subscription.as_ref() }.map(|subscription| &subscription.updates) {
            Some(Some(updates)) => super::follow::update(updates, options),
            Some(None) => set_error(moqt_status::ErrInvalidArg, "a FETCH has no live options"),
            None => set_error(moqt_status::ErrInvalidArg, "subscription is NULL"),
        }
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
    guard_void(|| {
        if subscription.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_subscribe and is freed or released once.
        let subscription = unsafe { Box::from_raw(subscription) };
        end(&subscription.shared, &subscription.task, false);
    })
}

/// Stops a subscription's task: no callback runs after this returns (one running on another
/// thread is waited for), then `user_data_free` is queued.
fn stop(shared: &Arc<Subscription>, task: &tokio::task::AbortHandle) {
    end(shared, task, true);
}

/// Ends a subscription's task, waiting for a running callback if `wait`; then queues
/// `user_data_free`, which the dispatcher runs after any callback in progress.
fn end(shared: &Arc<Subscription>, task: &tokio::task::AbortHandle, wait: bool) {
    task.abort();
    shared.finish(wait);
}

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
unsafe impl super::SizedStruct for moqt_announce_callbacks {}

/// A live watch of announcements; free it to stop.
#[allow(non_camel_case_types)]
pub struct moqt_announced {
    shared: Arc<Subscription>,
    task: tokio::task::AbortHandle,
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
        let Some(callbacks) = super::read_sized(callbacks) else {
            return set_error(moqt_status::ErrInvalidArg, "callbacks is NULL");
        };
        let shared = Arc::new(Subscription {
            on_announce: callbacks.on_announce,
            ..Subscription::new(callbacks.user_data, callbacks.user_data_free, callbacks.on_closed)
        });
        let fail = |status: moqt_status, message: &str| shared.refuse(status, message);
        let client = match client_for(client, out) {
            Ok(client) => client,
            Err((status, message)) => return fail(status, message),
        };
        let prefix = match path_arg(prefix, prefix_len) {
            Ok(prefix) => prefix,
            Err(status) => return fail(status, &last_error_text()),
        };
        let Some(runtime) = runtime() else {
            return fail(moqt_status::ErrNoMemory, "cannot start the engine threads");
        };
        let task = run_announced(shared.clone(), client.remote.clone(), prefix);
        let task = client.unless_freed(task, closing(&shared, moqt_status::ErrClosed));
        let task = spawn_task(&runtime, task, panicked(&shared));
        let handle = moqt_announced { shared, task };
        // SAFETY: out was checked non-NULL.
        unsafe { *out = Box::into_raw(Box::new(handle)) };
        moqt_status::Ok
    })
}

async fn run_announced(shared: Arc<Subscription>, remote: OriginProducer, prefix: Path) {
    let mut announcements = remote.consume_scoped(prefix, 0);
    while let Some(announcement) = announcements.next_announcement().await {
        let (path, active) = match announcement {
            model::Announcement::Start { path, .. } => (path, true),
            model::Announcement::End { path } => (path, false),
            // Another route to a broadcast already announced: nothing changes for the host.
            model::Announcement::Update { .. } => continue,
        };
        let Ok(text) = std::ffi::CString::new(path.as_str()) else { continue };
        shared
            .callback(move |s| {
                if let Some(on_announce) = s.on_announce {
                    on_announce(s.user_data.0, text.as_ptr(), text.as_bytes().len(), active);
                }
            })
            .await;
    }
    shared.close(moqt_status::ErrClosed).await;
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
    guard_void(|| {
        if announced.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_announced and is freed once.
        let announced = unsafe { Box::from_raw(announced) };
        stop(&announced.shared, &announced.task);
    })
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
        // SAFETY: a non-NULL client came from moqt_client_connect and is alive.
        let Some(client) = (unsafe { client.as_ref() }) else {
            return set_error(moqt_status::ErrInvalidArg, "client is NULL");
        };
        if state_out.is_null() || (detail.is_null() && detail_len > 0) {
            return set_error(moqt_status::ErrInvalidArg, "state_out is NULL, or detail is NULL with a length");
        }
        let (state, text) = state_parts(client.client.state());
        // SAFETY: state_out was checked non-NULL and points to a moqt_client_state (documented).
        unsafe { *state_out = state };
        if detail_len > 0 {
            let bytes = text.as_bytes();
            // Truncate on a character boundary so the copy stays UTF-8.
            let mut n = bytes.len().min(detail_len - 1);
            while n > 0 && !text.is_char_boundary(n) {
                n -= 1;
            }
            // SAFETY: detail holds detail_len >= n + 1 writable bytes (documented).
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), detail.cast::<u8>(), n);
                *detail.add(n) = 0;
            }
        }
        moqt_status::Ok
    })
}

/// The text `set_error` last stored on this thread.
pub(crate) fn last_error_text() -> String {
    // SAFETY: moqt_last_error returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(super::moqt_last_error()) }.to_string_lossy().into_owned()
}

/// Resolves once the sender of `gone` is dropped.
async fn wait_dropped(mut gone: tokio::sync::watch::Receiver<()>) {
    while gone.changed().await.is_ok() {}
}

/// Ends a callback set with `status` (on_closed, then user_data_free): the terminal callback the
/// contract promises on every path.
pub(crate) fn closing(shared: &Arc<Subscription>, status: moqt_status) -> impl Future<Output = ()> + Send + 'static {
    let shared = shared.clone();
    async move { shared.close(status).await }
}

/// What a callback set's task does if it panics: end with MOQT_STATUS_ERR_PANIC.
pub(crate) fn panicked(shared: &Arc<Subscription>) -> impl Future<Output = ()> + Send + 'static {
    closing(shared, moqt_status::ErrPanic)
}

/// `on_session` of `moqt_relay_options`: admits (true) or refuses a session by path and version.
#[allow(non_camel_case_types)]
pub type moqt_session_fn =
    Option<extern "C" fn(user_data: *mut c_void, path: *const c_char, path_len: usize, version: u32) -> bool>;

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
unsafe impl super::SizedStruct for moqt_state_callbacks {}

/// A live watch of a client's state; free it to stop.
#[allow(non_camel_case_types)]
pub struct moqt_state_watch {
    shared: Arc<Subscription>,
    task: tokio::task::AbortHandle,
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
        let Some(callbacks) = super::read_sized(callbacks) else {
            return set_error(moqt_status::ErrInvalidArg, "callbacks is NULL");
        };
        let shared = Arc::new(Subscription {
            on_state: callbacks.on_state,
            ..Subscription::new(callbacks.user_data, callbacks.user_data_free, callbacks.on_closed)
        });
        let fail = |status: moqt_status, message: &str| shared.refuse(status, message);
        let client = match client_for(client, out) {
            Ok(client) => client,
            Err((status, message)) => return fail(status, message),
        };
        let Some(runtime) = runtime() else {
            return fail(moqt_status::ErrNoMemory, "cannot start the engine threads");
        };
        let task =
            spawn_task(&runtime, run_state_watch(shared.clone(), client.client.watch_state()), panicked(&shared));
        let handle = moqt_state_watch { shared, task };
        // SAFETY: out was checked non-NULL.
        unsafe { *out = Box::into_raw(Box::new(handle)) };
        moqt_status::Ok
    })
}

async fn run_state_watch(shared: Arc<Subscription>, mut states: tokio::sync::watch::Receiver<ClientState>) {
    loop {
        let (state, detail) = state_parts(states.borrow_and_update().clone());
        let detail = std::ffi::CString::new(detail.replace('\0', " ")).unwrap_or_default();
        shared
            .callback(move |s| {
                if let Some(on_state) = s.on_state {
                    on_state(s.user_data.0, state, detail.as_ptr());
                }
            })
            .await;
        if state == moqt_client_state::Closed || states.changed().await.is_err() {
            break;
        }
    }
    shared.close(moqt_status::Ok).await;
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
    guard_void(|| {
        if announced.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_announced and is freed or released once.
        let announced = unsafe { Box::from_raw(announced) };
        end(&announced.shared, &announced.task, false);
    })
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
    guard_void(|| {
        if watch.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_watch_state and is freed or released once.
        let watch = unsafe { Box::from_raw(watch) };
        end(&watch.shared, &watch.task, false);
    })
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
    guard_void(|| {
        if watch.is_null() {
            return;
        }
        // SAFETY: the pointer came from moqt_client_watch_state and is freed once.
        let watch = unsafe { Box::from_raw(watch) };
        stop(&watch.shared, &watch.task);
    })
}
