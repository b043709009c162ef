//! Media on top of moq-lite: the hang format (moq-dev's catalog and containers), so a broadcast
//! published here plays in moq-dev's players and tools, and theirs can be consumed here.
//!
//! Sits above the I/O-free [`model`](crate::model): a media broadcast is a
//! [`BroadcastProducer`](crate::model::BroadcastProducer) with a `catalog.json` track that
//! describes its renditions ([`Catalog`]), and media tracks whose frames carry a presentation
//! time in microseconds, in the legacy container (a varint timestamp before the codec payload)
//! or CMAF (one moof+mdat fragment per frame).

pub mod catalog;
mod cmaf;
pub mod codec;
mod consume;
mod error;
mod export;
pub mod fmp4;
mod import;
pub mod legacy;
mod publish;

use std::time::Duration;

pub use catalog::{
    Audio, AudioConfig, CATALOG_TRACK, Catalog, CatalogGroupDecoder, CatalogSettings, Container, Rendition, Video,
    VideoConfig,
};
pub use consume::{CatalogReader, MediaEvent, MediaFrame, MediaTrackReader, ReadOptions};
pub use error::MediaError;
pub use export::{ExportUpdate, Fmp4Export, MAX_WAITING_FRAMES};
pub use import::{Fmp4Import, ImportContainer, ImportFrame};
pub use publish::{MediaBroadcast, MediaTrackWriter, NewRendition, priority};

/// Media timestamps are microseconds, on the wire too (lite-05+ frame timestamps use this
/// timescale, as the reference's media tracks do).
pub const TIMESCALE: u64 = 1_000_000;

/// How long a media track keeps a non-latest group, as the reference declares (30 s): players
/// that start behind the live edge can still fetch it.
pub const MEDIA_MAX_AGE: Duration = Duration::from_secs(30);

/// The TRACK_INFO of a media track at `priority`.
pub fn track_info(priority: u8) -> crate::model::TrackInfo {
    crate::model::TrackInfo { priority, max_age: MEDIA_MAX_AGE, timescale: TIMESCALE }
}
