//! `moqt_client`: connecting (blocking or not), flushing and freeing a client. What a client
//! does once connected lives with its own handle families: publish, subscription, watch, pull
//! and session.

use std::ffi::c_char;
use std::future::Future;
use std::time::Duration;

use super::args::{Out, SizedStruct, optional_cstr, read_sized, str_arg};
use super::drain::{MOQT_CLIENT_FREE_DRAIN_MS, close_client, flush};
use super::error::{FfiError, FfiResult, guard, guard_void, moqt_status};
use super::handle::{Castable, OwnershipBox, take_box, try_ref};
use super::runtime::runtime;
use crate::endpoint::EndpointConfig;
use crate::model::OriginProducer;
use crate::reconnect::{ClientState, PersistentClient, ReconnectSettings};
use crate::transport::tls::{ClientTrust, TrustSettings};
use crate::wire::Version;


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
    /// How long one connection attempt may take (handshake, WebTransport CONNECT, SETUP) before
    /// it is abandoned and retried with the backoff, milliseconds; also how long
    /// `moqt_client_connect` waits. 0: 10000.
    pub connect_attempt_timeout_ms: u64,
    /// A session silent this long is taken as lost and the client reconnects, milliseconds: how
    /// long a pipeline stays frozen when its relay dies without a word. Keep-alives go out at a
    /// third of it. 0: 30000. QUIC uses the smaller of the two peers' values.
    pub idle_timeout_ms: u64,
}

// SAFETY: repr(C), struct_size first, every field an integer, bool or pointer.
unsafe impl SizedStruct for moqt_client_options {}

impl moqt_client_options {
    /// The versions to offer.
    fn versions(&self) -> FfiResult<Vec<Version>> {
        let known = |v: u32| (3..=6).contains(&v);
        match (self.version, self.versions_mask) {
            (0, 0) => Ok(Version::ALL.to_vec()),
            (0, mask) => {
                if mask & !0b111_1000 != 0 {
                    return Err(FfiError::invalid(format!("versions_mask {mask:#x} names unknown versions")));
                }
                Ok((3..=6).rev().filter(|v| mask & (1 << v) != 0).map(|v| Version::ALL[(6 - v) as usize]).collect())
            }
            (v, _) if known(v) => Ok(vec![Version::ALL[(6 - v) as usize]]),
            (other, _) => Err(FfiError::invalid(format!("unknown version {other}"))),
        }
    }

    /// The idle timeout and its keep-alive, defaults where 0.
    fn apply_idle_timeout(&self, config: &mut EndpointConfig) {
        if self.idle_timeout_ms > 0 {
            config.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
            config.keep_alive = (config.idle_timeout / 3).max(Duration::from_millis(50));
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
        if self.connect_attempt_timeout_ms > 0 {
            settings.attempt_timeout = Duration::from_millis(self.connect_attempt_timeout_ms);
        }
        settings
    }
}

/// A client connection to a relay or server. It reconnects by itself and follows GOAWAY.
#[allow(non_camel_case_types)]
pub struct moqt_client {
    pub(crate) client: PersistentClient,
    pub(crate) publish: OriginProducer,
    pub(crate) remote: OriginProducer,
    /// Dropped with the client: tasks behind its handles watch it to end when it is freed.
    pub(crate) gone: tokio::sync::watch::Sender<()>,
}

impl Castable for moqt_client {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "client";
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

/// Resolves once the sender of `gone` is dropped.
async fn wait_dropped(mut gone: tokio::sync::watch::Receiver<()>) {
    while gone.changed().await.is_ok() {}
}

fn trust(options: Option<&moqt_client_options>) -> FfiResult<ClientTrust> {
    let options =
        options.ok_or_else(|| FfiError::invalid("options are required (choose how to trust the server)"))?;
    let mut settings = TrustSettings { disable_verify: options.tls_disable_verify, ..Default::default() };
    if let Some(hex) = optional_cstr(options.tls_fingerprint) {
        settings.fingerprints.push(hex.to_str().unwrap_or("").to_owned());
    }
    if let Some(path) = optional_cstr(options.tls_root_pem_path) {
        settings.ca_file = Some(path.to_string_lossy().into_owned().into());
    }
    ClientTrust::from_settings(&settings).map_err(|e| FfiError::invalid(e.to_string()))
}

/// Everything `moqt_client_connect_async` checks and starts, without the handle: the options
/// read, the URL's form checked, the background connection started.
fn start_client(url: *const c_char, url_len: usize, options: *const moqt_client_options) -> FfiResult<moqt_client> {
    let url = str_arg(url, url_len)?.to_string();
    let options = read_sized(options);
    let trust = trust(options.as_ref())?;
    let mut config = EndpointConfig::default();
    let reconnect = options.as_ref().map(moqt_client_options::reconnect).unwrap_or_default();
    if let Some(options) = &options {
        options.apply_limits(&mut config.session);
        options.apply_idle_timeout(&mut config);
        let versions = options.versions()?;
        if !versions.is_empty() {
            config.versions = versions;
        }
    }
    let runtime = runtime().ok_or_else(FfiError::no_engine)?;
    // The background task is spawned on the engine; nothing here waits for the network.
    let _engine = runtime.enter();
    let publish = OriginProducer::default();
    let remote = OriginProducer::default();
    let client =
        PersistentClient::connect_url(&url, trust, config, Some(publish.consume()), Some(remote.clone()), reconnect)
            .map_err(|err| FfiError::invalid(err.to_string()))?;
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
        let out = Out::new(out)?;
        out.set_boxed(start_client(url, url_len, options)?);
        Ok(())
    })
}

/// Connects to `url` as `moqt_client_connect_async` does, then waits for the first session (one
/// attempt: up to the options' `connect_attempt_timeout_ms`, 10 s by default): a convenience for
/// programs that may block. The first failed attempt (unreachable,
/// TLS failure, refused) ends the wait with MOQT_STATUS_ERR_CONNECT and no client; use
/// `moqt_client_connect_async` to keep retrying instead. Once connected the client stays
/// connected as an asynchronous one does; `moqt_client_get_state` tells where it stands.
///
/// Ownership: on success `*out` is a new client; free it with `moqt_client_free`. `options` is
/// only read during the call. Thread-safety: any thread (blocks the caller; not from a
/// callback). Callbacks: none. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL, bad URL
/// or options), MOQT_STATUS_ERR_CONNECT (unreachable, TLS failure, refused, no session within the
/// options' `connect_attempt_timeout_ms`, 10 s by default), MOQT_STATUS_ERR_NO_MEMORY (no engine
/// threads), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_client_connect(
    url: *const c_char,
    url_len: usize,
    options: *const moqt_client_options,
    out: *mut *mut moqt_client,
) -> moqt_status {
    guard(|| {
        let out = Out::new(out)?;
        let client = start_client(url, url_len, options)?;
        // The first attempt ends by itself within its timeout (a failed attempt is reported as
        // Reconnecting); the margin only covers the report reaching us.
        let attempt = read_sized(options).map(|o| o.reconnect()).unwrap_or_default().attempt_timeout;
        let wait = attempt.saturating_add(Duration::from_secs(5));
        let runtime = runtime().ok_or_else(FfiError::no_engine)?;
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
        let outcome = match runtime.block_on(async { tokio::time::timeout(wait, first_session).await }) {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no session within {wait:?}")),
        };
        match outcome {
            Ok(()) => {
                out.set_boxed(client);
                Ok(())
            }
            Err(reason) => {
                close_client(client);
                Err(FfiError::new(moqt_status::ErrConnect, reason))
            }
        }
    })
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
        let Some(client) = take_box(client) else { return Ok(()) };
        // An engine thread must not block on the engine: there the client closes without a drain.
        if let (Some(runtime), Err(_)) = (runtime(), tokio::runtime::Handle::try_current()) {
            let drain = Duration::from_millis(u64::from(MOQT_CLIENT_FREE_DRAIN_MS));
            if let Err(unflushed) = flush(&runtime, &client, drain) {
                tracing::debug!(unflushed, "client freed before its ended tracks reached the relay");
            }
        }
        close_client(*client);
        Ok(())
    })
}

/// Waits until what this client's tracks have completed has reached the relay, or `timeout_ms`
/// passed (0: only check). Owed are, for each subscription the relay holds on one of this
/// client's tracks that has ended (`moqt_track_finish`, `moqt_track_abort`, `moqt_track_free`):
/// its remaining groups, then its end, sent and acknowledged by the relay, and the relay's own
/// end of the subscription received (moqt's relay sends it once it has taken the groups in, up
/// to half a second later); and every group stream of a completed group (one followed by
/// `MOQT_FRAME_NEW_GROUP`), acknowledged. Each of these is waited for at most 10 s, then given
/// up and reported by this call as not arrived (MOQT_STATUS_ERR_TIMEOUT). Groups and
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
        let client = try_ref(client)?;
        if client.client.session().is_none() {
            return Err(FfiError::new(moqt_status::ErrClosed, "no session is up: nothing can reach the relay"));
        }
        let runtime = runtime().ok_or_else(FfiError::no_engine)?;
        flush(&runtime, client, Duration::from_millis(timeout_ms)).map_err(|owed| {
            FfiError::new(
                moqt_status::ErrTimeout,
                format!(
                    "{owed} subscriptions or group streams have not reached the relay (still waiting, or given up \
                     unacknowledged after 10 s: the relay went silent)"
                ),
            )
        })
    })
}
