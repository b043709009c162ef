//! Fuzz entry points for every decoder that reads network or file input, and their registry.
//! Shared by the cargo-fuzz targets in `fuzz/` and by the test that replays the committed seeds, so
//! a seed that once crashed stays a regression test. The top of the crate: it reaches into the
//! layers it exercises (`wire`, `auth`, `media`) and none of them knows it exists. Feature
//! `fuzzing` only.

mod auth;
mod codec;
mod fmp4;
mod wire;

pub use auth::session_auth;
pub use codec::{media_annexb, media_audio, media_sample_entry, media_video};
pub use fmp4::fmp4_reader;
pub use wire::{
    announce_stream, datagram, fetch_stream, goaway_stream, group_stream, probe_stream, setup_stream, stream_type,
    subscribe_stream, track_stream,
};

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the seed replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("announce_stream", announce_stream),
    ("subscribe_stream", subscribe_stream),
    ("fetch_stream", fetch_stream),
    ("probe_stream", probe_stream),
    ("goaway_stream", goaway_stream),
    ("track_stream", track_stream),
    ("group_stream", group_stream),
    ("setup_stream", setup_stream),
    ("datagram", datagram),
    ("stream_type", stream_type),
    ("session_auth", session_auth),
    ("fmp4_reader", fmp4_reader),
    ("media_video", media_video),
    ("media_audio", media_audio),
    ("media_annexb", media_annexb),
    ("media_sample_entry", media_sample_entry),
];
