//! `moqt_relay`: an embedded relay. A C program (a media server, a GStreamer pipeline) becomes a moq-lite relay
//! on an address of its choosing, with the same relay, auth and TLS as `moqt relay`.

use std::ffi::{c_char, c_void};
use std::net::SocketAddr;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::args::{Out, SizedStruct, copy_text, optional_cstr, read_sized, str_arg, zeroed_sized};
use super::callbacks::CallbackSet;
use super::error::{FfiError, FfiResult, guard, guard_void, moqt_status};
use super::handle::{Castable, OwnershipBox, opt_ref, take_box, try_ref};
use super::moq_lite_number;
use super::runtime::runtime;
use crate::auth::{AuthConfig, Key, Pattern, Patterns};
use crate::endpoint::{EndpointConfig, Server};
use crate::relay::{Relay, RelayConfig};
use crate::transport::tls::Certificate;
use crate::wire::Version;

/// Options of `moqt_relay_start`. Zero-initialise, then set `struct_size = sizeof(...)`. Every
/// string is NUL-terminated and only read during the call.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct moqt_relay_options {
    /// `sizeof(moqt_relay_options)`: lets later versions append fields.
    pub struct_size: u32,
    /// Certificate chain (PEM file path), with `tls_key_path`; reloaded when the files change.
    /// NULL: generate a self-signed certificate (14 days) for `tls_generate_hosts`.
    pub tls_cert_path: *const c_char,
    /// Private key (PEM file path), with `tls_cert_path`.
    pub tls_key_path: *const c_char,
    /// Comma-separated host names for a generated certificate (default "localhost").
    pub tls_generate_hosts: *const c_char,
    /// Comma-separated path patterns anonymous sessions may publish and subscribe to: `**` for
    /// every path, a prefix, a slash and `**` for a subtree. NULL with no `auth_key_path`:
    /// everything is open (development).
    pub auth_public: *const c_char,
    /// A JWK key file (moq-token format) verifying `?jwt=` tokens, or NULL.
    pub auth_key_path: *const c_char,
    /// Decides on each session after its SETUP and before `auth_*`: `path` (not NUL-terminated,
    /// `path_len` bytes, borrowed for the call) is the path and query the client connected with
    /// (`/room?jwt=...`; empty on moq-lite-03/04 raw QUIC), `version` its moq-lite version (3 to
    /// 6). Return true to go on, false to refuse it with UNAUTHORIZED. Runs on the dispatcher
    /// thread, one call at a time, so it must answer quickly. NULL admits every session.
    pub on_session:
        Option<extern "C" fn(user_data: *mut c_void, path: *const c_char, path_len: usize, version: u32) -> bool>,
    /// Passed first to `on_session`.
    pub on_session_user_data: *mut c_void,
    /// Called exactly once with `on_session_user_data` after the last `on_session`: when the
    /// relay has stopped, or when `moqt_relay_start` fails.
    pub on_session_user_data_free: Option<extern "C" fn(user_data: *mut c_void)>,
}

// SAFETY: repr(C), struct_size first, every field a pointer, a bool or an optional function
// pointer.
unsafe impl SizedStruct for moqt_relay_options {}

/// `on_session` of `moqt_relay_options`: admits (true) or refuses a session by path and version.
#[allow(non_camel_case_types)]
pub type moqt_session_fn =
    Option<extern "C" fn(user_data: *mut c_void, path: *const c_char, path_len: usize, version: u32) -> bool>;

/// The host's `on_session` and its user data (no `on_closed`).
type Admission = CallbackSet<moqt_session_fn>;

/// Asks the host's `on_session` whether to admit a session: true without an `on_session`,
/// false once the set is finished (its relay is stopping).
async fn admit(admission: &Arc<Admission>, path: String, version: u32) -> bool {
    let (answer, answered) = tokio::sync::oneshot::channel();
    admission
        .callback(move |on_session, user_data| {
            let admitted =
                on_session.is_none_or(|on_session| on_session(user_data, path.as_ptr().cast(), path.len(), version));
            let _ = answer.send(admitted);
        })
        .await;
    answered.await.unwrap_or(false)
}

/// A running relay.
#[allow(non_camel_case_types)]
pub struct moqt_relay {
    relay: Relay,
    server: Server,
    addr: SocketAddr,
    fingerprint: String,
    task: tokio::task::JoinHandle<()>,
    reload: Option<tokio::task::JoinHandle<()>>,
    /// The host's `on_session`, finished when the relay stops.
    admission: Arc<Admission>,
}

impl Castable for moqt_relay {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "relay";
}

/// An optional NUL-terminated UTF-8 option.
fn optional_str(ptr: *const c_char) -> FfiResult<Option<String>> {
    optional_cstr(ptr).map(|_| str_arg(ptr, usize::MAX).map(str::to_string)).transpose()
}

fn auth(options: &moqt_relay_options) -> FfiResult<AuthConfig> {
    let public: Patterns = match optional_str(options.auth_public)? {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Pattern::parse(p).map_err(|e| FfiError::invalid(e.to_string())))
            .collect::<Result<_, _>>()?,
        None => Patterns::none(),
    };
    let key = match optional_str(options.auth_key_path)? {
        Some(path) => {
            Some(Key::from_file(std::path::Path::new(&path)).map_err(|e| FfiError::invalid(e.to_string()))?)
        }
        None => None,
    };
    Ok(AuthConfig { public_publish: public.clone(), public_subscribe: public, key })
}

/// Starts a relay listening on `listen` (`"127.0.0.1:4443"`, port 0 for any free port) for raw
/// QUIC and WebTransport. `listen_len` may be SIZE_MAX for a NUL-terminated string.
///
/// Ownership: on success `*out` is a new relay; stop and free it with `moqt_relay_stop`.
/// `options` (NULL for the defaults: a generated certificate for "localhost", everything open)
/// is only read during the call; `on_session_user_data_free` runs once, also when this call
/// fails. Thread-safety: any thread. Callbacks: `on_session` for each new session, on the
/// dispatcher thread, until `moqt_relay_stop`. Returns MOQT_STATUS_OK, MOQT_STATUS_ERR_INVALID_ARG (NULL `out`, a bad address, pattern,
/// certificate or key file), MOQT_STATUS_ERR_CONNECT (the address cannot be bound),
/// MOQT_STATUS_ERR_NO_MEMORY (no engine threads), MOQT_STATUS_ERR_PANIC.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_relay_start(
    listen: *const c_char,
    listen_len: usize,
    options: *const moqt_relay_options,
    out: *mut *mut moqt_relay,
) -> moqt_status {
    guard(|| {
        // NULL: the defaults (a generated certificate for "localhost", everything open).
        let options = read_sized(options).unwrap_or_else(zeroed_sized);
        let admission = CallbackSet::new(
            options.on_session_user_data,
            options.on_session_user_data_free,
            None,
            options.on_session,
        );
        // The on_session user data is released on the failing paths too.
        admission.starting(|admission| {
            let out = Out::new(out)?;
            out.set_boxed(start(listen, listen_len, &options, admission.clone())?);
            Ok(())
        })
    })
}

/// Everything `moqt_relay_start` does but the handle.
fn start(
    listen: *const c_char,
    listen_len: usize,
    options: &moqt_relay_options,
    admission: Arc<Admission>,
) -> FfiResult<moqt_relay> {
    let addr: SocketAddr =
        str_arg(listen, listen_len)?.parse().map_err(|err| FfiError::invalid(format!("bad listen address: {err}")))?;
    let (cert_path, key_path) = (optional_str(options.tls_cert_path)?, optional_str(options.tls_key_path)?);
    let cert = match (&cert_path, &key_path) {
        (Some(cert), Some(key)) => Certificate::from_pem_files(cert, key),
        (None, None) => {
            let hosts = optional_str(options.tls_generate_hosts)?.unwrap_or_else(|| "localhost".into());
            let hosts: Vec<String> = hosts.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
            Certificate::generate(&hosts)
        }
        _ => return Err(FfiError::invalid("set both tls_cert_path and tls_key_path, or neither")),
    };
    let cert = cert.map_err(|err| FfiError::invalid(err.to_string()))?;
    let auth = auth(options)?;
    let runtime = runtime().ok_or_else(FfiError::no_engine)?;
    let started = runtime.block_on(async {
        let server = Server::bind(addr, &cert, EndpointConfig::default()).map_err(|e| e.to_string())?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        let reload = match (cert_path, key_path) {
            (Some(chain), Some(key)) => {
                Some(server.watch_certificate_files(chain.into(), key.into(), Duration::from_secs(5)))
            }
            _ => None,
        };
        let relay = Relay::new(RelayConfig { auth, ..Default::default() });
        let (running, accepting, admitting) = (relay.clone(), server.clone(), admission.clone());
        let task = tokio::spawn(async move {
            let admit = move |path: &str, version: Version| {
                let (admission, path) = (admitting.clone(), path.to_string());
                async move { admit(&admission, path, moq_lite_number(version)).await }
            };
            running.run_with(accepting, admit).await
        });
        Ok::<_, String>(moqt_relay {
            relay,
            server,
            addr,
            fingerprint: cert.fingerprint_hex(),
            task,
            reload,
            admission,
        })
    });
    started.map_err(|reason| FfiError::new(moqt_status::ErrConnect, reason))
}

/// The UDP port the relay listens on (useful after listening on port 0).
///
/// Thread-safety: any thread. Callbacks: none. Returns the port, 0 for NULL.
///
/// Ownership: nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_relay_port(relay: *const moqt_relay) -> u16 {
    opt_ref(relay).map_or(0, |relay| relay.addr.port())
}

/// The SHA-256 fingerprint of the relay's certificate as 64 hex characters plus a NUL, written
/// to `buf` (at least 65 bytes), for clients to pin (`tls_fingerprint`).
///
/// Thread-safety: any thread. Callbacks: none. Returns MOQT_STATUS_OK or
/// MOQT_STATUS_ERR_INVALID_ARG (NULL `relay` or `buf`, or `buf_len` below 65).
///
/// Ownership: `buf` is the caller's, written during the call.
#[unsafe(no_mangle)]
#[must_use]
pub extern "C" fn moqt_relay_fingerprint(relay: *const moqt_relay, buf: *mut c_char, buf_len: usize) -> moqt_status {
    guard(|| {
        let text = &try_ref(relay)?.fingerprint;
        match NonNull::new(buf) {
            Some(buf) if buf_len > text.len() => copy_text(text, buf, buf_len),
            _ => return Err(FfiError::invalid("buf must hold 65 bytes")),
        }
        Ok(())
    })
}

/// Stops the relay and frees it. NULL is accepted. Every session gets GOAWAY (reconnect to
/// `goaway_uri`, a NUL-terminated URL such as another relay's, or NULL to come back here) and
/// up to `drain_ms` milliseconds to leave; then the listener closes.
///
/// Ownership: ends the caller's handle. Thread-safety: any thread; blocks until the relay has
/// stopped (at most about `drain_ms`). Callbacks: no `on_session` starts after it returns (one
/// running is waited for); `on_session_user_data_free` follows once, on the dispatcher thread.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_relay_stop(relay: *mut moqt_relay, goaway_uri: *const c_char, drain_ms: u64) {
    guard_void(|| {
        let Some(relay) = take_box(relay) else { return Ok(()) };
        let uri = optional_cstr(goaway_uri).map_or("", |uri| uri.to_str().unwrap_or(""));
        let Some(runtime) = runtime() else { return Ok(()) };
        runtime.block_on(async {
            relay.relay.shutdown(uri);
            let deadline = Instant::now() + Duration::from_millis(drain_ms.min(60_000));
            while relay.relay.metrics().sessions_active > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            relay.server.close();
            relay.task.abort();
            if let Some(reload) = &relay.reload {
                reload.abort();
            }
        });
        relay.admission.finish(true);
        Ok(())
    })
}
