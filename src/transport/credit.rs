//! Stream credit that grows with use. quinn sets aside a map entry for every stream id a peer may
//! open at once, when the connection is set up, whether the peer ever opens them or not: at
//! moq-lite's 256 requests and 1024 groups that was about 57 KiB of each connection's memory
//! (BENCHMARKS.md, "10,000 sessions"), and most connections are viewers that open a handful. So a
//! connection starts with a small allowance per direction and, whenever the peer has opened half of
//! it (counted as streams are accepted), doubles it up to the configured maximum: a publisher with
//! many groups in flight reaches the maximum within a few round trips, an idle viewer never costs
//! more than the start.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which kind of stream a peer opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Bi,
    Uni,
}

/// One direction's allowance.
#[derive(Debug)]
struct Allowance {
    /// Streams of this kind the peer opened so far.
    opened: AtomicU64,
    /// What the peer may have open at once now.
    limit: AtomicU64,
    /// The ceiling: the endpoint's configured maximum.
    max: u64,
}

impl Allowance {
    fn new(initial: u64, max: u64) -> Self {
        Self { opened: AtomicU64::new(0), limit: AtomicU64::new(initial.min(max)), max }
    }

    /// Counts one stream; the new limit if this one reached half of the current limit.
    fn opened(&self) -> Option<u64> {
        let opened = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.limit.load(Ordering::Relaxed);
        if limit >= self.max || opened * 2 < limit {
            return None;
        }
        let raised = limit.saturating_mul(2).clamp(1, self.max);
        // One raise per threshold, even when streams are accepted on several threads at once.
        self.limit.compare_exchange(limit, raised, Ordering::Relaxed, Ordering::Relaxed).ok().map(|_| raised)
    }
}

/// The allowances of one connection.
#[derive(Debug)]
pub(crate) struct StreamCredit {
    bi: Allowance,
    uni: Allowance,
}

impl StreamCredit {
    /// Credit for a connection set up allowing `initial` streams of each kind (the endpoint's
    /// transport settings): up to `max_bi` and `max_uni` as the peer uses them.
    pub(crate) fn new(initial: u32, max_bi: u32, max_uni: u32) -> Self {
        Self { bi: Allowance::new(initial.into(), max_bi.into()), uni: Allowance::new(initial.into(), max_uni.into()) }
    }

    /// The peer opened a stream on `connection` (it was just accepted).
    pub(crate) fn opened(&self, connection: &quinn::Connection, dir: Dir) {
        let count = |limit: u64| quinn::VarInt::from_u64(limit).unwrap_or(quinn::VarInt::MAX);
        match dir {
            Dir::Bi => {
                if let Some(raised) = self.bi.opened() {
                    connection.set_max_concurrent_bi_streams(count(raised));
                }
            }
            Dir::Uni => {
                if let Some(raised) = self.uni.opened() {
                    connection.set_max_concurrent_uni_streams(count(raised));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_doubles_at_half_use_up_to_its_maximum() {
        let allowance = Allowance::new(4, 20);
        assert_eq!(allowance.opened(), None, "1 of 4");
        assert_eq!(allowance.opened(), Some(8), "2 of 4: half");
        assert_eq!(allowance.opened(), None);
        assert_eq!(allowance.opened(), Some(16), "4 of 8");
        let raises: Vec<u64> = (0..20).filter_map(|_| allowance.opened()).collect();
        assert_eq!(raises, vec![20], "8 of 16, then never above the maximum");
        assert_eq!(Allowance::new(64, 3).opened(), None, "an initial above the maximum is the maximum");
    }
}
