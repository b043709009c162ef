//! Logs for C hosts: the library is silent unless the host installs a callback. Events from the
//! engine's threads and from inside `moqt_*` calls go to the callback; no global tracing default
//! is installed, so another Rust component in the process keeps its own.

use std::ffi::{CString, c_char, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use super::callbacks::UserData;
use super::error::guard_void;

/// Log levels, most severe first. `MOQT_LOG_LEVEL_OFF` disables logging.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
// Read by C through the header; the Rust side takes the level as a plain integer.
#[allow(dead_code)]
pub enum moqt_log_level {
    /// Nothing.
    Off = 0,
    /// Errors.
    Error = 1,
    /// Warnings (for example: certificate verification disabled).
    Warn = 2,
    /// Connections, sessions, GOAWAY.
    Info = 3,
    /// Requests and streams.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

/// A log callback: `target` (the module) and `message` are NUL-terminated and borrowed for the
/// call. It may run on any thread, including the caller's during a `moqt_*` call, and must not
/// call `moqt_set_log_callback`.
#[allow(non_camel_case_types)]
pub type moqt_log_fn =
    Option<extern "C" fn(user_data: *mut c_void, level: u32, target: *const c_char, message: *const c_char)>;

struct Sink {
    callback: extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
    user_data: UserData,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);

fn level_number(level: &Level) -> u32 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Sends logs at `max_level` and more severe to `callback` (NULL or MOQT_LOG_LEVEL_OFF silences
/// the library, the default).
///
/// Thread-safety: any thread. Callbacks: `callback`, from any thread, until it is replaced.
///
/// Ownership: `user_data` stays the caller's and must stay valid until the callback is replaced;
/// moqt never frees it.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_set_log_callback(callback: moqt_log_fn, user_data: *mut c_void, max_level: u32) {
    guard_void(|| {
        let sink = callback.map(|callback| Sink { callback, user_data: UserData(user_data) });
        *SINK.write().unwrap_or_else(PoisonError::into_inner) = sink;
        MAX_LEVEL.store(max_level.min(5), Ordering::Relaxed);
        Ok(())
    })
}

/// Changes the most detailed level that reaches the callback. Cheap.
///
/// Thread-safety: any thread. Callbacks: none (later log callbacks obey the new level).
///
/// Ownership: nothing changes hands.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_set_log_level(max_level: u32) {
    MAX_LEVEL.store(max_level.min(5), Ordering::Relaxed);
}

/// The dispatcher the library's threads and calls log through.
pub(crate) fn dispatch() -> &'static tracing::Dispatch {
    static DISPATCH: OnceLock<tracing::Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| tracing::Dispatch::new(CallbackSubscriber))
}

/// Forwards events to the C callback; spans are not tracked.
struct CallbackSubscriber;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for CallbackSubscriber {
    /// The level changes at run time (`moqt_set_log_level`), so no callsite's answer is cached.
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        level_number(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        let Some(sink) = sink.as_ref() else { return };
        let mut message = Message(String::new());
        event.record(&mut message);
        let target = CString::new(event.metadata().target().replace('\0', " ")).unwrap_or_default();
        let text = CString::new(message.0.replace('\0', " ")).unwrap_or_default();
        (sink.callback)(
            sink.user_data.0,
            level_number(event.metadata().level()),
            target.as_ptr(),
            text.as_ptr(),
        );
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
