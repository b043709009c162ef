//! The C API. It holds no protocol logic: it maps opaque handles and callbacks onto the Rust API.
//! cbindgen reads these files to generate `include/moqt.h`; every exported item needs a doc
//! comment saying ownership, lifetime, thread-safety, callbacks and return codes.
//!
//! Threads: the engine runs on its own runtime ("moqt-io"); every callback runs on one dispatcher
//! thread ("moqt-cb"), one at a time, never inside a `moqt_*` call. Every function catches panics
//! and returns MOQT_STATUS_ERR_PANIC (or does nothing) instead of unwinding into C.

// These functions are called from C, where Rust's `unsafe` marker means nothing: the pointer
// contracts are in the header's documentation, and each dereference has its SAFETY line.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// The re-exports below let this crate's tests call the C API from Rust (feature `testing`); the
// C symbols are exported from the library either way.
#![cfg_attr(not(feature = "testing"), allow(unused_imports))]

mod client;
mod follow;
mod frame;
mod log;
mod pull;
mod relay;
mod runtime;
mod session;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use client::*;
pub use follow::{
    MOQT_DEFAULT_MAX_LATENCY_MS, MOQT_DELIVERY_ARRIVAL, MOQT_DELIVERY_ORDERED, MOQT_GAP_LATE, MOQT_START_LATEST, MOQT_START_OLDEST,
    moqt_subscribe_options,
};
pub use frame::*;
pub use log::*;
pub use pull::*;
pub use relay::*;
pub use runtime::{moqt_set_thread_hooks, moqt_shutdown, moqt_thread_fn};
pub use session::*;

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

/// The library version as "MAJOR.MINOR.PATCH", NUL-terminated.
///
/// Lifetime: static; never free it. Thread-safety: callable from any thread. Callbacks: none.
/// Returns never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library version as `(MAJOR << 16) | (MINOR << 8) | PATCH`, to compare with the header's
/// `MOQT_VERSION_NUMBER`.
///
/// Thread-safety: callable from any thread. Callbacks: none. Returns the number; never fails.
///
/// Ownership: nothing to free (a value).
#[unsafe(no_mangle)]
pub extern "C" fn moqt_version_number() -> u32 {
    version_number(env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH"))
}

/// A static, NUL-terminated description of a status code; unknown codes give "unknown status".
///
/// Lifetime: static; never free it. Thread-safety: callable from any thread. Callbacks: none.
/// Returns never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_status_str(status: i32) -> *const c_char {
    let text: &'static str = match status {
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
    };
    text.as_ptr().cast()
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_ERROR_CODE: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Records `message` as this thread's last error detail and returns `status`.
pub(crate) fn set_error(status: moqt_status, message: &str) -> moqt_status {
    set_error_code(status, message, None)
}

/// Records `message` and the moq-lite code that came with the failure (if any) as this thread's
/// last error, and returns `status`.
pub(crate) fn set_error_code(status: moqt_status, message: &str, code: Option<u64>) -> moqt_status {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
    LAST_ERROR_CODE.with(|last| last.set(code));
    status
}

/// Runs an exported function's body, turning a panic into MOQT_STATUS_ERR_PANIC; its logs go to
/// the C log callback.
pub(crate) fn guard(body: impl FnOnce() -> moqt_status) -> moqt_status {
    tracing::dispatcher::with_default(log::dispatch(), || {
        catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| set_error(moqt_status::ErrPanic, "internal panic"))
    })
}

/// Runs an exported function's body that returns nothing, swallowing a panic.
pub(crate) fn guard_void(body: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        set_error(moqt_status::ErrPanic, "internal panic");
    }
}

/// An options or callbacks struct that starts with `u32 struct_size` and for which all-zero bytes
/// are valid (integers, bools, pointers, optional function pointers): later library versions
/// append fields, and a caller compiled against an older header passes a smaller struct.
///
/// # Safety
/// Implement only for `#[repr(C)]` structs whose first field is `struct_size: u32` and whose
/// every field is valid when zeroed.
pub(crate) unsafe trait SizedStruct {}

/// The caller's struct read up to its `struct_size`: fields a smaller (older) struct does not
/// have read as zero, their default. `None` for NULL.
pub(crate) fn read_sized<T: SizedStruct>(ptr: *const T) -> Option<T> {
    if ptr.is_null() {
        return None;
    }
    let mut value: T = zeroed_sized();
    // SAFETY: a non-NULL ptr points to at least struct_size initialised bytes, struct_size first
    // (documented on every such struct); only the overlap with T is copied.
    unsafe {
        let size = (ptr.cast::<u32>().read_unaligned() as usize).min(std::mem::size_of::<T>());
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut value).cast::<u8>(), size);
    }
    Some(value)
}

/// The name that makes a test build panic where this is called (feature "test-hooks", which only
/// the test suite enables), so tests can show a panic is contained and reported.
pub const TEST_PANIC_NAME: &str = "moqt-test-panic";

/// Panics on [`TEST_PANIC_NAME`] in test builds; nothing otherwise.
pub(crate) fn test_panic_point(name: &str) {
    if cfg!(feature = "test-hooks") && name == TEST_PANIC_NAME {
        panic!("test panic requested by name");
    }
}

/// An all-zero `T`: the defaults of a sized struct.
pub(crate) fn zeroed_sized<T: SizedStruct>() -> T {
    // SAFETY: T is valid when zeroed (the trait's contract).
    unsafe { std::mem::zeroed() }
}

/// The number of a moq-lite version (3 to 6), as C sees it.
pub(crate) fn moq_lite_number(version: crate::wire::Version) -> u32 {
    match version {
        crate::wire::Version::Lite03 => 3,
        crate::wire::Version::Lite04 => 4,
        crate::wire::Version::Lite05 => 5,
        crate::wire::Version::Lite06 => 6,
    }
}

/// The live client behind `client`, for a call that writes a new handle to `out`; the status
/// and detail to fail with when either pointer is NULL.
pub(crate) fn client_for<'a, T>(
    client: *const moqt_client,
    out: *mut *mut T,
) -> Result<&'a moqt_client, (moqt_status, &'static str)> {
    // SAFETY: a non-NULL client came from moqt_client_connect and is alive (documented).
    let client = unsafe { client.as_ref() }.ok_or((moqt_status::ErrInvalidArg, "client is NULL"))?;
    if out.is_null() {
        return Err((moqt_status::ErrInvalidArg, "out is NULL"));
    }
    Ok(client)
}

/// A `(pointer, length)` broadcast path argument, normalised; errors set the last error.
pub(crate) fn path_arg(ptr: *const c_char, len: usize) -> Result<crate::coding::Path, moqt_status> {
    crate::coding::Path::new(str_arg(ptr, len)?).map_err(|err| set_error(moqt_status::ErrInvalidArg, &err.to_string()))
}

/// A `(pointer, length)` string argument; `len == SIZE_MAX` means NUL-terminated.
pub(crate) fn str_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, moqt_status> {
    if ptr.is_null() {
        return Err(set_error(moqt_status::ErrInvalidArg, "string is NULL"));
    }
    let bytes = if len == usize::MAX {
        // SAFETY: the caller passed a NUL-terminated string (len == SIZE_MAX, documented).
        unsafe { CStr::from_ptr(ptr) }.to_bytes()
    } else {
        // SAFETY: the caller passed len readable bytes (documented).
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
    };
    std::str::from_utf8(bytes).map_err(|_| set_error(moqt_status::ErrInvalidArg, "string is not UTF-8"))
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
    let Some(code) = LAST_ERROR_CODE.with(std::cell::Cell::get) else { return false };
    if code_out.is_null() {
        return false;
    }
    // SAFETY: code_out was checked non-NULL and points to a uint64_t the caller owns (documented).
    unsafe { *code_out = code };
    true
}

fn version_number(major: &str, minor: &str, patch: &str) -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0) & 0xff;
    (part(major) << 16) | (part(minor) << 8) | part(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_matches_cargo() {
        // SAFETY: moqt_version returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(moqt_version()) };
        assert_eq!(text.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(moqt_version_number(), 0x00_01_00);
    }

    #[test]
    fn every_status_has_a_description() {
        for status in [0, 1, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -99, 12345] {
            // SAFETY: moqt_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(moqt_status_str(status)) };
            assert!(!text.to_bytes().is_empty());
            assert!(status == 12345 || text.to_bytes() != b"unknown status", "{status} has a description");
        }
    }

    #[test]
    fn the_last_error_code_goes_with_its_error_and_only_there() {
        let mut code = 0;
        set_error_code(moqt_status::ErrAborted, "aborted", Some(0x47));
        assert!(!moqt_last_error_code(std::ptr::null_mut()));
        assert!(moqt_last_error_code(&mut code));
        assert_eq!(code, 0x47);
        // A later failure without a code clears it.
        set_error(moqt_status::ErrClosed, "closed");
        code = 5;
        assert!(!moqt_last_error_code(&mut code));
        assert_eq!(code, 5, "not written without a code");
    }
}
