//! `moqt_status` and the per-thread last error. An entry point's body fails with an [`FfiError`];
//! [`FfiError::report`] is the one place that turns it into the status C gets and the detail
//! `moqt_last_error` and `moqt_last_error_code` read.

use std::cell::{Cell, RefCell};
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::args::Out;

/// Status codes returned by every fallible moqt function: 0 is success, negative is an error.
/// Values are never renumbered; retired values stay reserved.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum moqt_status {
    /// Success.
    Ok = 0,
    /// A NULL pointer, a bad length or an out-of-range value was passed.
    ErrInvalidArg = -1,
    /// Nothing is ready yet; try again later (non-blocking calls).
    ErrAgain = -2,
    /// A wait timed out.
    ErrTimeout = -3,
    /// A blocking wait was interrupted.
    ErrInterrupted = -4,
    /// The object is closed.
    ErrClosed = -5,
    /// The connection could not be established.
    ErrConnect = -6,
    /// The peer broke the moq-lite protocol.
    ErrProtocol = -7,
    /// No such broadcast or track.
    ErrNotFound = -8,
    /// The operation is not supported (for example by the negotiated version).
    ErrUnsupported = -9,
    /// A bound or an allocation failed.
    ErrNoMemory = -10,
    /// moqt panicked internally; the process is still usable.
    ErrPanic = -99,
    /// Not an error: the end of a stream. A subscription's track was finished by its publisher
    /// (or the subscription's end group was reached) and every frame was delivered. Positive, so
    /// `status < 0` still means "an error".
    End = 1,
    /// The publisher (or a relay on the way) aborted the track with a moq-lite stream error code,
    /// which `moqt_last_error_code` gives (and `moqt_last_error` names).
    ErrAborted = -11,
}

/// A static, NUL-terminated description of a status code; unknown codes give "unknown status".
///
/// Lifetime: static; never free it. Thread-safety: callable from any thread. Callbacks: none.
/// Returns never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_status_str(status: i32) -> *const c_char {
    status_text(status).as_ptr().cast()
}

/// The NUL-terminated text of `moqt_status_str`.
fn status_text(status: i32) -> &'static str {
    match status {
        0 => "ok\0",
        -1 => "invalid argument\0",
        -2 => "try again\0",
        -3 => "timed out\0",
        -4 => "interrupted\0",
        -5 => "closed\0",
        -6 => "connect failed\0",
        -7 => "protocol violation\0",
        -8 => "not found\0",
        -9 => "unsupported\0",
        -10 => "out of memory or over a limit\0",
        -11 => "aborted by the publisher\0",
        -99 => "internal panic\0",
        1 => "end of stream\0",
        _ => "unknown status\0",
    }
}

/// The description of `status` without its NUL, for messages.
pub(crate) fn status_name(status: moqt_status) -> &'static str {
    status_text(status as i32).trim_end_matches('\0')
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_ERROR_CODE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Why an entry point (or a handle's end) failed: the status C gets, the detail for
/// `moqt_last_error` and the moq-lite code for `moqt_last_error_code`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FfiError {
    status: moqt_status,
    message: String,
    code: Option<u64>,
}

/// What an entry point's body returns.
pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

impl FfiError {
    pub(crate) fn new(status: moqt_status, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into(), code: None }
    }

    /// MOQT_STATUS_ERR_INVALID_ARG: a NULL, a bad length or a bad value.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(moqt_status::ErrInvalidArg, message)
    }

    /// The engine's threads could not start.
    pub(crate) fn no_engine() -> Self {
        Self::new(moqt_status::ErrNoMemory, "cannot start the engine threads")
    }

    /// The moq-lite stream code that came with the failure.
    pub(crate) fn with_code(self, code: Option<u64>) -> Self {
        FfiError { code, ..self }
    }

    /// Records this as the calling thread's last error and returns its status: the one way a
    /// failure reaches C.
    pub(crate) fn report(self) -> moqt_status {
        let text = CString::new(self.message.replace('\0', " ")).unwrap_or_default();
        LAST_ERROR.with(|last| *last.borrow_mut() = text);
        LAST_ERROR_CODE.with(|last| last.set(self.code));
        self.status
    }
}

/// Runs an exported function's body: an `Err` or a panic (MOQT_STATUS_ERR_PANIC) becomes the
/// status returned and this thread's last error. Its logs go to the C log callback.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> moqt_status {
    tracing::dispatcher::with_default(super::log::dispatch(), || match contain(body) {
        Ok(()) => moqt_status::Ok,
        Err(err) => err.report(),
    })
}

/// Runs the body of an exported function that returns nothing: an `Err` or a panic only sets
/// this thread's last error.
pub(crate) fn guard_void(body: impl FnOnce() -> FfiResult) {
    if let Err(err) = contain(body) {
        err.report();
    }
}

/// `body`'s result, with a panic turned into MOQT_STATUS_ERR_PANIC instead of unwinding into C.
fn contain<T>(body: impl FnOnce() -> FfiResult<T>) -> FfiResult<T> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| Err(FfiError::new(moqt_status::ErrPanic, "internal panic")))
}

/// The detail of the last failure on this thread, NUL-terminated (empty if none).
///
/// Lifetime: valid until the next `moqt_*` call on the same thread. Thread-safety: per thread.
/// Callbacks: none. Returns never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The moq-lite stream error code that came with the last failure on this thread, if it carried
/// one: the code a publisher (or a relay) aborted a track with, for MOQT_STATUS_ERR_ABORTED.
/// Set before `on_closed` runs, so the callback can read it, and by `moqt_pull_next_frame`.
///
/// Ownership: `code_out` is the caller's, written only when this returns true. Lifetime: like
/// `moqt_last_error`, until the next `moqt_*` call on the same thread. Thread-safety: per thread.
/// Callbacks: none. Returns true with `*code_out` set, or false when the last failure carried no
/// code or `code_out` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_last_error_code(code_out: *mut u64) -> bool {
    let Some(code) = LAST_ERROR_CODE.with(Cell::get) else { return false };
    let Ok(out) = Out::new(code_out) else { return false };
    out.write(code);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_a_description() {
        for status in [0, 1, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -99, 12345] {
            // SAFETY: moqt_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(moqt_status_str(status)) };
            assert!(!text.to_bytes().is_empty());
            assert!(status == 12345 || text.to_bytes() != b"unknown status", "{status} has a description");
        }
    }

    fn last_error() -> String {
        // SAFETY: moqt_last_error returns a NUL-terminated string valid until the next call.
        unsafe { CStr::from_ptr(moqt_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn the_guard_turns_an_error_or_a_panic_into_a_status_and_a_detail() {
        assert_eq!(guard(|| Err(FfiError::invalid("bad thing"))), moqt_status::ErrInvalidArg);
        assert_eq!(last_error(), "bad thing");
        assert_eq!(guard(|| Ok(())), moqt_status::Ok);
        assert_eq!(last_error(), "bad thing", "a success leaves the last error alone");
        assert_eq!(guard(|| panic!("contained")), moqt_status::ErrPanic);
        assert_eq!(last_error(), "internal panic");
        guard_void(|| Err(FfiError::new(moqt_status::ErrUnsupported, "not here")));
        assert_eq!(last_error(), "not here");
    }

    #[test]
    fn the_last_error_code_goes_with_its_error_and_only_there() {
        let mut code = 0;
        FfiError::new(moqt_status::ErrAborted, "aborted").with_code(Some(0x47)).report();
        assert!(!moqt_last_error_code(std::ptr::null_mut()));
        assert!(moqt_last_error_code(&mut code));
        assert_eq!(code, 0x47);
        // A later failure without a code clears it.
        FfiError::new(moqt_status::ErrClosed, "closed").report();
        code = 5;
        assert!(!moqt_last_error_code(&mut code));
        assert_eq!(code, 5, "not written without a code");
    }
}
