//! Fragmented MP4 in and out: what `ffmpeg -movflags cmaf+frag_keyframe+empty_moov` writes, what
//! players read, and the CMAF container of hang (one moof + mdat per moq frame, the init segment
//! in the catalog).
//!
//! - [`Fmp4Reader`] takes the stream in chunks of any size and yields the [`InitSegment`] (the
//!   raw ftyp + moov and each track's sample entry, timescale and size or format), then each
//!   [`Fragment`] (the raw moof + mdat and its samples, times in ticks and microseconds, data
//!   sliced from the mdat without a copy). Bounded by [`ReaderLimits`].
//! - [`Fragment::split_by_track`] and [`InitSegment::track_init`] give one track per fragment and
//!   per init segment, since hang carries each track on its own moq track.
//! - [`Fmp4Writer`] writes an init segment and fragments from per-track configs and samples.
//! - [`ticks_to_micros`] and friends convert times between a timescale and microseconds.
//!
//! Every box is decoded and encoded by the `mp4-atom` crate; codec strings are left to the codec
//! module, which reads the same [`mp4_atom::Codec`] sample entries.

mod error;
mod reader;
mod split;
mod time;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

pub use error::Fmp4Error;
pub use reader::{
    AudioFormat, DEFAULT_MAX_BOX_SIZE, DEFAULT_MAX_SAMPLES_PER_FRAGMENT, Fmp4Event, Fmp4Reader, Fragment, InitSegment,
    ReaderLimits, SAMPLE_IS_NON_SYNC, Sample, TrackInfo, TrackKind, VideoSize,
};
pub use split::TrackFragment;
pub use time::{MICROS_PER_SECOND, micros_to_ticks, signed_micros_to_ticks, signed_ticks_to_micros, ticks_to_micros};
pub use writer::{Fmp4Writer, FragmentSample, TimedSample, TrackConfig, default_ftyp};
