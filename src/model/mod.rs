//! The in-memory pub/sub graph that sessions, the relay and the C API share: origins hold
//! broadcasts by path, broadcasts hold tracks by name, tracks hold a bounded cache of groups, groups
//! hold frames. No wire, no sockets.
//!
//! Every level is a producer/consumer pair. Producers write; any number of consumers read, each
//! with its own cursor, and payloads are shared `Bytes`, never copied per consumer. Dropping a
//! producer without finishing aborts what it produced, so consumers never hang. Every cache and
//! queue is bounded by a named setting ([`GroupSettings`], [`CacheSettings`],
//! [`BroadcastSettings`], [`OriginSettings`]).
//!
//! Semantics follow moq-lite (spec sections 3.3-3.5, 3.9, 7.1-7.5): newest group first, expiry by
//! max age on frame timestamps (optionally wall clock), explicit gaps for every missing sequence,
//! best-route selection with split horizon.

mod broadcast;
mod cache;
mod error;
mod frame;
mod gap;
mod group;
mod interest;
mod ordered;
mod origin;
mod route;
mod subscription;
mod track;
mod writer;

pub(crate) use ordered::sleep_until_or_forever;

#[cfg(test)]
mod tests;

pub use broadcast::{
    BroadcastConsumer, BroadcastProducer, BroadcastSettings, GroupFetch, TrackRequest, UpstreamFetch, UpstreamInfo,
};
pub use cache::CacheSettings;
pub use error::Error;
pub use frame::Frame;
pub use gap::{Gap, GapReason, TrackEvent};
pub use group::{GroupConsumer, GroupProducer, GroupSettings};
pub use interest::{InterestWatch, aggregate, duration_ms};
pub use ordered::{OrderedConsumer, OrderedEvent};
pub use origin::{Announcement, OriginConsumer, OriginProducer, OriginSettings, PathFilter, Published};
pub use route::Route;
pub use subscription::{FrameBounds, GroupStart, SubscribeOptions, TrackConsumer};
pub use track::{TrackInfo, TrackProducer};
pub use writer::{TrackWriter, WriterSettings};
