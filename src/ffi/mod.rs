//! The C API. It holds no protocol logic: it maps opaque handles and callbacks onto the Rust API.
//! cbindgen reads this file to generate `include/moqt.h`; every item here needs a doc comment.

use std::ffi::c_char;

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
}

/// The library version as "MAJOR.MINOR.PATCH", NUL-terminated.
///
/// Lifetime: static; never free it. Thread-safety: callable from any thread. Returns never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library version as `(MAJOR << 16) | (MINOR << 8) | PATCH`, to compare with the header's
/// `MOQT_VERSION_NUMBER`.
///
/// Thread-safety: callable from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn moqt_version_number() -> u32 {
    version_number(env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH"))
}

/// A static, NUL-terminated description of a status code; unknown codes give "unknown status".
///
/// Lifetime: static; never free it. Thread-safety: callable from any thread. Returns never NULL.
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
        -99 => "internal panic\0",
        _ => "unknown status\0",
    };
    text.as_ptr().cast()
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
        for status in [0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -99, 12345] {
            // SAFETY: moqt_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(moqt_status_str(status)) };
            assert!(!text.to_bytes().is_empty());
        }
    }
}
