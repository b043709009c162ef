//! What sessions move, counted for a relay's /metrics: frames, bytes and groups each way, groups
//! given up, subscriptions served. One [`Traffic`] is shared by every session that is handed it;
//! group streams count locally and add once per group, so the hot path touches no shared line per
//! frame.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the sessions of one relay (or any application that asks).
#[derive(Debug, Default)]
pub struct Traffic {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    groups_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    groups_out: AtomicU64,
    groups_dropped: AtomicU64,
    subscriptions_active: AtomicU64,
    subscriptions_total: AtomicU64,
}

/// A snapshot of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Frames received from peers.
    pub frames_in: u64,
    /// Payload bytes received from peers.
    pub bytes_in: u64,
    /// Groups received complete from peers.
    pub groups_in: u64,
    /// Frames sent to peers.
    pub frames_out: u64,
    /// Payload bytes sent to peers.
    pub bytes_out: u64,
    /// Groups sent complete to peers.
    pub groups_out: u64,
    /// Groups not delivered whole to a subscriber: abandoned when too many were in flight,
    /// expired, reset, or reported missing (SUBSCRIBE_DROP).
    pub groups_dropped: u64,
    /// Subscriptions peers hold on us now.
    pub subscriptions_active: u64,
    /// Subscriptions peers opened on us since start.
    pub subscriptions_total: u64,
}

impl Traffic {
    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TrafficSnapshot {
            frames_in: get(&self.frames_in),
            bytes_in: get(&self.bytes_in),
            groups_in: get(&self.groups_in),
            frames_out: get(&self.frames_out),
            bytes_out: get(&self.bytes_out),
            groups_out: get(&self.groups_out),
            groups_dropped: get(&self.groups_dropped),
            subscriptions_active: get(&self.subscriptions_active),
            subscriptions_total: get(&self.subscriptions_total),
        }
    }

    pub(crate) fn received(&self, frames: u64, bytes: u64, complete: bool) {
        self.frames_in.fetch_add(frames, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        if complete {
            self.groups_in.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn sent(&self, frames: u64, bytes: u64, complete: bool) {
        self.frames_out.fetch_add(frames, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        if complete {
            self.groups_out.fetch_add(1, Ordering::Relaxed);
        } else {
            self.groups_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn dropped(&self, groups: u64) {
        self.groups_dropped.fetch_add(groups, Ordering::Relaxed);
    }

    /// Counts a subscription served until the guard drops.
    pub(crate) fn subscription(self: &std::sync::Arc<Self>) -> SubscriptionGuard {
        self.subscriptions_total.fetch_add(1, Ordering::Relaxed);
        self.subscriptions_active.fetch_add(1, Ordering::Relaxed);
        SubscriptionGuard(self.clone())
    }
}

/// Keeps a subscription counted as active.
pub(crate) struct SubscriptionGuard(std::sync::Arc<Traffic>);

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.0.subscriptions_active.fetch_sub(1, Ordering::Relaxed);
    }
}
