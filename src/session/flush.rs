//! What the publisher half of a session still owes its peer, so an application can wait for it
//! before closing: closing a QUIC connection discards whatever the peer has not acknowledged, and
//! a track finished just before the close would otherwise reach the peer cut short (a relay, and
//! its subscribers, would see the session end instead of the track's end).
//!
//! Owed: every subscription whose track has ended (finished or aborted), until its Subscribe
//! stream is closed and, when finished, acknowledged; every Group stream whose group is complete,
//! until the peer acknowledged it. A group or track still being written is not owed: it cannot
//! complete by waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// How long a finished stream is watched for the peer's acknowledgement before it is given up as
/// undelivered (the connection is then most likely gone), so the task watching it ends.
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(10);

type Probe = Box<dyn Fn() -> bool + Send + Sync>;

/// The registry of what a session's publisher half is sending.
#[derive(Default)]
pub(crate) struct Outstanding {
    entries: Mutex<Entries>,
    /// Bumped whenever an entry leaves, so waiters look again.
    changed: watch::Sender<u64>,
}

/// What a flush found: everything acknowledged, or how much was given up unacknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Every entry the peer was owed was acknowledged.
    Delivered,
    /// Entries that left without the peer's acknowledgement since the last flush looked.
    Undelivered(usize),
}

#[derive(Default)]
struct Entries {
    next: u64,
    /// Each entry's probe: true while it is owed.
    owed: HashMap<u64, Probe>,
    /// Owed entries given up without the peer's acknowledgement, not yet reported by a flush.
    undelivered: usize,
}

/// Keeps one entry registered; dropping it removes the entry (the stream is done with).
pub(crate) struct Pending {
    registry: Arc<Outstanding>,
    id: u64,
}

impl Pending {
    /// Gives the entry up without the peer's acknowledgement: if it was owed, the next flush
    /// reports it as undelivered rather than as arrived.
    pub(crate) fn undelivered(self) {
        let mut entries = self.registry.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.owed.get(&self.id).is_some_and(|owed| owed()) {
            entries.undelivered = entries.undelivered.saturating_add(1);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.registry.entries.lock().unwrap_or_else(PoisonError::into_inner).owed.remove(&self.id);
        self.registry.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Outstanding {
    /// Registers something being sent that is owed whenever `owed` says so (a subscription once
    /// its track ended, a group once it is complete), until the returned guard drops.
    pub(crate) fn register(self: &Arc<Self>, owed: impl Fn() -> bool + Send + Sync + 'static) -> Pending {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let id = entries.next;
        entries.next = entries.next.wrapping_add(1);
        entries.owed.insert(id, Box::new(owed));
        Pending { registry: self.clone(), id }
    }

    /// How many entries are owed now.
    pub(crate) fn owed(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).owed.values().filter(|owed| owed()).count()
    }

    /// Resolves once nothing is owed, with what was given up unacknowledged meanwhile (or since
    /// the last flush), which it reports once.
    pub(crate) async fn flushed(&self) -> FlushOutcome {
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            if self.owed() == 0 {
                break;
            }
            // The sender lives in `self`, which we borrow, so this cannot fail.
            if changes.changed().await.is_err() {
                break;
            }
        }
        match std::mem::take(&mut self.entries.lock().unwrap_or_else(PoisonError::into_inner).undelivered) {
            0 => FlushOutcome::Delivered,
            lost => FlushOutcome::Undelivered(lost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn flushed_waits_for_owed_entries_only() {
        let registry = Arc::new(Outstanding::default());
        let live = registry.register(|| false);
        let done = Arc::new(AtomicBool::new(false));
        let owed = {
            let done = done.clone();
            registry.register(move || done.load(Ordering::SeqCst))
        };
        // Nothing owed yet: a live track and a group still open do not hold a flush.
        let outcome = tokio::time::timeout(Duration::from_secs(10), registry.flushed()).await.expect("nothing is owed");
        assert_eq!(outcome, FlushOutcome::Delivered);
        done.store(true, Ordering::SeqCst);
        assert_eq!(registry.owed(), 1);
        let waiting = tokio::spawn({
            let registry = registry.clone();
            async move { registry.flushed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "an owed entry holds the flush");
        drop(owed);
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("flushed once it left").unwrap();
        assert_eq!(registry.owed(), 0);
        drop(live);
    }

    #[tokio::test]
    async fn an_owed_entry_given_up_is_reported_undelivered_once() {
        let registry = Arc::new(Outstanding::default());
        // Not owed yet (a track still being written): giving it up loses nothing.
        registry.register(|| false).undelivered();
        registry.register(|| true).undelivered();
        registry.register(|| true).undelivered();
        let outcome = tokio::time::timeout(Duration::from_secs(10), registry.flushed()).await.unwrap();
        assert_eq!(outcome, FlushOutcome::Undelivered(2));
        let outcome = tokio::time::timeout(Duration::from_secs(10), registry.flushed()).await.unwrap();
        assert_eq!(outcome, FlushOutcome::Delivered, "reported once");
    }
}
