//! Media on top of moq-lite: the hang format (moq-dev's catalog and containers), so a broadcast
//! published here plays in moq-dev's players and tools, and theirs can be consumed here.
//!
//! Sits above the I/O-free [`model`](crate::model): a media broadcast is a
//! [`BroadcastProducer`](crate::model::BroadcastProducer) with a `catalog.json` track that
//! describes its renditions, and media tracks whose frames carry a presentation time.

pub mod codec;
