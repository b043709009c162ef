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

/// How long a finished stream is watched for the peer's acknowledgement before it counts as
/// delivered anyway (the connection is then most likely gone).
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(10);

type Probe = Box<dyn Fn() -> bool + Send + Sync>;

/// The registry of what a session's publisher half is sending.
#[derive(Default)]
pub(crate) struct Outstanding {
    entries: Mutex<Entries>,
    /// Bumped whenever an entry leaves, so waiters look again.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Entries {
    next: u64,
    /// Each entry's probe: true while it is owed.
    owed: HashMap<u64, Probe>,
}

/// Keeps one entry registered; dropping it removes the entry (the stream is done with).
pub(crate) struct Pending {
    registry: Arc<Outstanding>,
    id: u64,
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

    /// Resolves once nothing is owed.
    pub(crate) async fn flushed(&self) {
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            if self.owed() == 0 {
                return;
            }
            // The sender lives in `self`, which we borrow, so this cannot fail.
            if changes.changed().await.is_err() {
                return;
            }
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
        tokio::time::timeout(Duration::from_secs(10), registry.flushed()).await.expect("nothing is owed");
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
}
