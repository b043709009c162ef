//! What the consumers of a track want, aggregated as the reference does for an upstream
//! subscription (spec 7.1): the highest priority, the longest max age, the loosest start and the
//! latest end. A session subscribing on behalf of local consumers sends this aggregate, and a
//! SUBSCRIBE_UPDATE whenever it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use super::{GroupStart, SubscribeOptions};

/// Every live consumer's options, by consumer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interests {
    entries: BTreeMap<u64, SubscribeOptions>,
    next_id: u64,
}

impl Interests {
    pub(crate) fn add(&mut self, options: SubscribeOptions) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(id, options);
        id
    }

    pub(crate) fn set(&mut self, id: u64, options: SubscribeOptions) -> bool {
        match self.entries.get_mut(&id) {
            Some(entry) if *entry != options => {
                *entry = options;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// The aggregate, or `None` when nobody is interested.
    pub(crate) fn aggregate(&self) -> Option<SubscribeOptions> {
        aggregate(self.entries.values())
    }
}

/// Aggregates options per spec 7.1. `None` for an empty set.
pub fn aggregate<'a>(options: impl IntoIterator<Item = &'a SubscribeOptions>) -> Option<SubscribeOptions> {
    let mut iter = options.into_iter();
    let first = *iter.next()?;
    Some(iter.fold(first, |acc, next| SubscribeOptions {
        priority: match (acc.priority, next.priority) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        // No preference (the publisher's max age) is the widest there is.
        max_age: match (acc.max_age, next.max_age) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
        start: match (acc.start, next.start) {
            (GroupStart::Latest, GroupStart::Latest) => GroupStart::Latest,
            (GroupStart::Floor(a), GroupStart::Floor(b)) => GroupStart::Floor(a.min(b)),
            (GroupStart::Floor(a), GroupStart::Latest) | (GroupStart::Latest, GroupStart::Floor(a)) => {
                GroupStart::Floor(a)
            }
        },
        end: match (acc.end, next.end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
    }))
}

/// Follows the aggregate interest in a track without borrowing its producer.
#[derive(Debug, Clone)]
pub struct InterestWatch {
    rx: watch::Receiver<Interests>,
    /// The aggregate last returned by `changed` (or seen at creation).
    last: Option<SubscribeOptions>,
}

impl InterestWatch {
    pub(crate) fn new(rx: watch::Receiver<Interests>) -> Self {
        let last = rx.borrow().aggregate();
        Self { rx, last }
    }

    /// The current aggregate; `None` when no consumer is left.
    pub fn current(&self) -> Option<SubscribeOptions> {
        self.rx.borrow().aggregate()
    }

    /// Waits until the aggregate differs from the one last returned (or seen at creation) and
    /// returns it; `None` when no consumer is left or the track is gone.
    pub async fn changed(&mut self) -> Option<SubscribeOptions> {
        loop {
            let now = self.rx.borrow_and_update().aggregate();
            if now != self.last {
                self.last = now;
                return now;
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Max age as a whole number of milliseconds for the wire, saturating.
pub fn duration_ms(duration: Duration) -> u64 {
    duration.as_millis().min(u128::from(crate::coding::MAX_VARINT)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(priority: Option<u8>, max_age_ms: Option<u64>, start: GroupStart, end: Option<u64>) -> SubscribeOptions {
        SubscribeOptions { priority, max_age: max_age_ms.map(Duration::from_millis), start, end }
    }

    #[test]
    fn aggregate_follows_spec_7_1() {
        assert_eq!(aggregate([]), None);
        let a = opts(Some(1), Some(100), GroupStart::Floor(5), Some(10));
        let b = opts(Some(7), Some(50), GroupStart::Floor(3), Some(20));
        assert_eq!(aggregate([&a, &b]), Some(opts(Some(7), Some(100), GroupStart::Floor(3), Some(20))));
        // One consumer without an end makes it unbounded; one without a max age widens it fully.
        let c = opts(None, None, GroupStart::Latest, None);
        assert_eq!(aggregate([&a, &c]), Some(opts(Some(1), None, GroupStart::Floor(5), None)));
        assert_eq!(aggregate([&c, &c]).unwrap().start, GroupStart::Latest);
    }
}
