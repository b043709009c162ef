//! The C API. It holds no protocol logic: it maps opaque handles and callbacks onto the Rust API.
//! cbindgen reads these files to generate `include/moqt.h`; every exported item needs a doc
//! comment saying ownership, lifetime, thread-safety, callbacks and return codes.
//!
//! Threads: the engine runs on its own runtime ("moqt-io"); every callback runs on one dispatcher
//! thread ("moqt-cb"), one at a time, never inside a `moqt_*` call. Every function catches panics
//! and returns MOQT_STATUS_ERR_PANIC (or does nothing) instead of unwinding into C.

// The re-exports below let this crate's tests call the C API from Rust (feature `testing`); the
// C symbols are exported from the library either way.
#![cfg_attr(not(feature = "testing"), allow(unused_imports))]

// The order of the modules, and of the items in each, is the header's: cbindgen emits functions
// and constants as it parses them, a module's own items before its children's.
mod error;
mod args;
mod callbacks;
mod handle;
mod client;
mod publish;
mod subscription;
mod watch;
mod drain;
mod follow;
mod frame;
mod log;
mod pull;
mod media_publish;
mod media_consume;
mod relay;
mod runtime;
mod session;

use std::ffi::c_char;

pub use client::*;
pub use drain::MOQT_CLIENT_FREE_DRAIN_MS;
pub use error::{moqt_last_error, moqt_last_error_code, moqt_status, moqt_status_str};
pub use follow::{
    MOQT_DEFAULT_MAX_LATENCY_MS, MOQT_DELIVERY_ARRIVAL, MOQT_DELIVERY_ORDERED, MOQT_GAP_LATE, MOQT_START_LATEST, MOQT_START_OLDEST,
    moqt_subscribe_options,
};
pub use frame::*;
pub use log::*;
pub use media_consume::*;
pub use media_publish::*;
pub use publish::*;
pub use pull::*;
pub use relay::*;
pub use runtime::{moqt_set_thread_hooks, moqt_shutdown, moqt_thread_fn};
pub use session::*;
pub use subscription::*;
pub use watch::*;

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

/// The name that makes a test build panic where this is called (feature "test-hooks", which only
/// the test suite enables), so tests can show a panic is contained and reported.
pub const TEST_PANIC_NAME: &str = "moqt-test-panic";

/// Panics on [`TEST_PANIC_NAME`] in test builds; nothing otherwise.
pub(crate) fn test_panic_point(name: &str) {
    if cfg!(feature = "test-hooks") && name == TEST_PANIC_NAME {
        panic!("test panic requested by name");
    }
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
}
