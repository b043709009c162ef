//! moqt's in-process integration tests, in one binary so the crate is linked once, not once per
//! file: the codec (wire_*, fuzz seeds), sessions over memory pairs and loopback QUIC, the relay,
//! TLS and WebTransport, the C API called from Rust, and interop with the reference relay.

mod common;

mod auth_compat;
mod bad_peers;
mod fanout_copies;
mod ffi;
mod fuzz_seeds;
mod hostile;
mod impaired;
mod interop_relay;
mod media;
mod migration;
mod netsim;
mod relay;
mod session_features;
mod session_limits;
mod session_priority;
mod session_quic;
mod session_timeouts;
mod slow_subscriber;
mod tls;
mod webtransport;
mod wire_malformed;
mod wire_roundtrip;
mod wire_vectors;
