//! moqt: moq-lite (Media over QUIC, Lite) for Rust and C.
//!
//! Layers, bottom up: [`coding`] (varints, strings, paths), [`wire`] (every moq-lite message of
//! versions 03 to 06), [`model`] (the in-memory pub/sub graph of broadcasts, tracks, groups and frames
//! that sessions, the relay and the C API share). The C API lives in `ffi` and is described by the
//! generated header `include/moqt.h`.

pub mod auth;
pub mod coding;
pub mod endpoint;
pub mod ffi;
pub mod model;
pub mod reconnect;
pub mod relay;
pub mod session;
pub mod transport;
pub mod wire;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
