//! moqt: moq-lite (Media over QUIC, Lite) for Rust and C, publisher, subscriber and relay.
//!
//! Layers, bottom up; no module imports one above it:
//! 1. `coding`: varints, strings, paths, and the vocabulary all share ([`StreamCode`], bounds).
//! 2. `wire` (every message of lite-03..06), [`model`] (broadcasts, tracks, groups, frames; no
//!    I/O) and [`transport`] (raw QUIC, WebTransport, TLS) side by side, none importing another.
//! 3. [`auth`] and [`media`] (hang catalogs and containers over the model), then [`session`]
//!    (one moq-lite session), then [`endpoint`] and [`reconnect`].
//! 4. [`relay`] on top of sessions; the C API (`include/moqt.h`) and the `moqt` command above all.
//!
//! Publish by writing a [`BroadcastProducer`] into an [`OriginProducer`] that a [`Session`]
//! offers; subscribe by reading the origin a session fills. See README.md for the whole tour.

#![warn(missing_docs)]

pub mod auth;
pub mod endpoint;
pub mod media;
pub mod model;
pub mod reconnect;
pub mod relay;
pub mod session;
pub mod transport;

/// Declares a module that is part of the implementation, not of the API: public only with the
/// `testing` feature, for this crate's own tests, fuzzers and benchmarks.
macro_rules! internal {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        mod $name;
    };
}

internal!(
    /// Encoding primitives and the shared protocol vocabulary.
    coding
);
internal!(
    /// The C API; its symbols are exported from the library whatever the module's visibility.
    ffi
);
internal!(
    /// Every moq-lite message, byte-exact.
    wire
);

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use coding::{
    DecodeError, EncodeError, MAX_FRAME_LEN, MAX_GROUP_BYTES, MAX_GROUP_FRAMES, MAX_PATH_SEGMENTS, Path, PathTooLong,
    SessionCode, StreamCode,
};
pub use endpoint::{Client, EndpointConfig, EndpointError, Server};
pub use model::{
    BroadcastConsumer, BroadcastProducer, FrameBounds, GroupConsumer, GroupProducer, OriginConsumer, OriginProducer,
    SubscribeOptions, TrackConsumer, TrackEvent, TrackInfo, TrackProducer,
};
pub use reconnect::{ClientState, PersistentClient, ReconnectSettings, Target, UrlError};
pub use relay::{Relay, RelayConfig};
pub use session::{Origins, Session, SessionConfig, SessionError, SessionEvent};
pub use transport::tls::{Certificate, ClientTrust};
pub use wire::Version;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
