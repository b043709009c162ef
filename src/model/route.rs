//! Routes: how a broadcast path can be reached, and which route is best (spec 7.5).

use std::cmp::Ordering;

/// One way to reach a broadcast: the hop list and costs of an ANNOUNCE_START (spec 3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Hop IDs from the origin publisher onwards. 0 means unknown and never matches.
    pub hops: Vec<u64>,
    /// What one more subscription through this route costs now. Lower wins.
    pub warm_cost: u64,
    /// The same path priced as if nothing on it carried the content. The first tie-break.
    pub cold_cost: u64,
    /// The local session the route was learned from (0: published here). Never sent on the wire:
    /// it keeps a relay from announcing a session's own broadcasts back to it.
    pub via: u64,
}

impl Route {
    /// A direct route (no hops) at zero cost: a local publisher.
    pub fn local() -> Self {
        Self::default()
    }

    /// True if `hop` (non-zero) is on the route: the loop and split-horizon rules drop such routes.
    pub fn contains_hop(&self, hop: u64) -> bool {
        hop != 0 && self.hops.contains(&hop)
    }

    /// True if a consumer excluding `hop` (split horizon) and `via` (its own session) must not see
    /// this route.
    pub fn excluded(&self, hop: u64, via: u64) -> bool {
        self.contains_hop(hop) || (via != 0 && self.via == via)
    }

    /// Orders two routes, `Less` meaning `self` is preferred: lower warm cost, then lower cold cost,
    /// then fewer hops. Equal routes are left to recency (the caller prefers the newer).
    pub fn preference(&self, other: &Route) -> Ordering {
        self.warm_cost
            .cmp(&other.warm_cost)
            .then(self.cold_cost.cmp(&other.cold_cost))
            .then(self.hops.len().cmp(&other.hops.len()))
    }
}
