//! An origin: broadcasts by path, each reachable by one or more routes, with announcements of the
//! best route per path to any number of (prefix-scoped) consumers.
//!
//! Announcements are not queued per consumer. The origin keeps one bounded log of which paths
//! changed; each consumer keeps a cursor into it and the route it last announced per path, and
//! turns a logged path into Start, Update or End by comparing with the current best route. So
//! changes to one path coalesce, and a consumer that falls behind the log's bound resyncs by diffing
//! every path: memory stays bounded however slow a consumer is, and the consumer still ends up with
//! the right state.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Weak};

use tokio::sync::watch;

use super::{BroadcastConsumer, Error, Route};
use crate::coding::Path;

/// Which paths a consumer or a mirror may touch (an auth grant); the rest stay invisible.
pub type PathFilter = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Bounds of one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginSettings {
    /// The most distinct broadcast paths. Default 4096.
    pub max_broadcasts: usize,
    /// The most routes (sources) for one path. Default 16.
    pub max_routes_per_path: usize,
    /// How many path changes the shared announcement log keeps; a consumer further behind resyncs.
    /// Default 1024.
    pub max_announcement_log: usize,
}

impl Default for OriginSettings {
    fn default() -> Self {
        Self { max_broadcasts: 4096, max_routes_per_path: 16, max_announcement_log: 1024 }
    }
}

/// A change in the best route to a path, as seen by one origin consumer.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// The path became reachable.
    Start {
        /// Full broadcast path.
        path: Path,
        /// The best route.
        route: Route,
        /// The broadcast behind it.
        broadcast: BroadcastConsumer,
    },
    /// The best route changed (another source, or new costs); the path stays reachable.
    Update {
        /// Full broadcast path.
        path: Path,
        /// The new best route.
        route: Route,
        /// The broadcast behind it.
        broadcast: BroadcastConsumer,
    },
    /// The path is no longer reachable.
    End {
        /// Full broadcast path.
        path: Path,
    },
}

impl Announcement {
    /// The path the announcement is about.
    pub fn path(&self) -> &Path {
        match self {
            Announcement::Start { path, .. } | Announcement::Update { path, .. } | Announcement::End { path } => path,
        }
    }
}

struct RouteEntry {
    id: u64,
    route: Route,
    broadcast: BroadcastConsumer,
}

struct OriginState {
    paths: BTreeMap<Path, Vec<RouteEntry>>,
    /// (log sequence, path) of recent changes.
    log: VecDeque<(u64, Path)>,
    /// Log sequence of the next change.
    log_next: u64,
    next_id: u64,
    closed: bool,
}

impl OriginState {
    fn log(&mut self, path: Path, max: usize) {
        self.log.push_back((self.log_next, path));
        self.log_next += 1;
        while self.log.len() > max.max(1) {
            self.log.pop_front();
        }
    }

    /// The best route to `path` that does not contain `exclude_hop`: spec 7.5 order, then the most
    /// recently published.
    fn best(&self, path: &Path, exclude_hop: u64, exclude_via: u64) -> Option<&RouteEntry> {
        self.paths
            .get(path)?
            .iter()
            .filter(|entry| !entry.route.excluded(exclude_hop, exclude_via))
            .min_by(|a, b| a.route.preference(&b.route).then(b.id.cmp(&a.id)))
    }

    fn unpublish(&mut self, path: &Path, id: u64, max_log: usize) -> bool {
        let Some(routes) = self.paths.get_mut(path) else { return false };
        let before = routes.len();
        routes.retain(|entry| entry.id != id);
        if routes.len() == before {
            return false;
        }
        if routes.is_empty() {
            self.paths.remove(path);
        }
        self.log(path.clone(), max_log);
        true
    }
}

struct OriginShared {
    settings: OriginSettings,
    state: watch::Sender<OriginState>,
}

impl OriginShared {
    fn unpublish(&self, path: &Path, id: u64) {
        let max_log = self.settings.max_announcement_log;
        self.state.send_if_modified(|state| state.unpublish(path, id, max_log));
    }

    /// Removes every route; consumers see End for each path, then the end of announcements.
    fn close(&self) {
        let max_log = self.settings.max_announcement_log;
        self.state.send_if_modified(|state| {
            if state.closed {
                return false;
            }
            state.closed = true;
            let paths = std::mem::take(&mut state.paths);
            for path in paths.into_keys() {
                state.log(path, max_log);
            }
            true
        });
    }
}

struct CloseGuard(Arc<OriginShared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Publishes broadcasts into an origin. Cloneable; when the last clone is dropped every route is
/// removed and consumers' announcement streams end.
#[derive(Clone)]
pub struct OriginProducer {
    shared: Arc<OriginShared>,
    _guard: Arc<CloseGuard>,
}

impl Default for OriginProducer {
    fn default() -> Self {
        Self::new(OriginSettings::default())
    }
}

impl OriginProducer {
    /// An empty origin.
    pub fn new(settings: OriginSettings) -> Self {
        let state =
            OriginState { paths: BTreeMap::new(), log: VecDeque::new(), log_next: 0, next_id: 0, closed: false };
        let shared = Arc::new(OriginShared { settings, state: watch::Sender::new(state) });
        Self { _guard: Arc::new(CloseGuard(shared.clone())), shared }
    }

    /// Adds a route to `path` served by `broadcast`. The route lasts until the returned handle is
    /// dropped or the broadcast ends; then consumers see an Update to the next best route, or End.
    pub fn publish(&self, path: Path, broadcast: BroadcastConsumer, route: Route) -> Result<Published, Error> {
        if broadcast.is_closed() {
            return Err(Error::Ended);
        }
        let settings = self.shared.settings;
        let mut result = Ok(0);
        let entry_broadcast = broadcast.clone();
        self.shared.state.send_if_modified(|state| {
            if state.closed {
                result = Err(Error::Ended);
                return false;
            }
            match state.paths.get(&path) {
                None if state.paths.len() >= settings.max_broadcasts => {
                    result = Err(Error::TooManyBroadcasts(settings.max_broadcasts));
                    return false;
                }
                Some(routes) if routes.len() >= settings.max_routes_per_path => {
                    result = Err(Error::TooManyRoutes(settings.max_routes_per_path));
                    return false;
                }
                _ => {}
            }
            let id = state.next_id;
            state.next_id = id.wrapping_add(1);
            state.paths.entry(path.clone()).or_default().push(RouteEntry { id, route, broadcast: entry_broadcast });
            state.log(path.clone(), settings.max_announcement_log);
            result = Ok(id);
            true
        });
        let id = result?;
        let weak: Weak<OriginShared> = Arc::downgrade(&self.shared);
        let hook_path = path.clone();
        let hook = Box::new(move || {
            if let Some(origin) = weak.upgrade() {
                origin.unpublish(&hook_path, id);
            }
        });
        let Some(hook_id) = broadcast.on_close(hook) else {
            // The broadcast ended while we were adding it.
            self.shared.unpublish(&path, id);
            return Err(Error::Ended);
        };
        Ok(Published { origin: Arc::downgrade(&self.shared), path, id, broadcast, hook_id })
    }

    /// A consumer of every path, with nothing excluded.
    pub fn consume(&self) -> OriginConsumer {
        self.consume_scoped(Path::root(), 0)
    }

    /// A consumer of the paths under `prefix` that ignores routes through `exclude_hop` (split
    /// horizon: the peer's own Hop ID; 0 excludes nothing).
    pub fn consume_scoped(&self, prefix: Path, exclude_hop: u64) -> OriginConsumer {
        OriginConsumer::new(self.shared.clone(), prefix, exclude_hop)
    }

    /// The broadcast behind the best route to `path`.
    pub fn consume_broadcast(&self, path: &Path) -> Option<BroadcastConsumer> {
        self.shared.state.borrow().best(path, 0, 0).map(|entry| entry.broadcast.clone())
    }

    /// The best route to `path`.
    pub fn best_route(&self, path: &Path) -> Option<Route> {
        self.shared.state.borrow().best(path, 0, 0).map(|entry| entry.route.clone())
    }

    /// How many paths have at least one route.
    pub fn broadcast_count(&self) -> usize {
        self.shared.state.borrow().paths.len()
    }
}

impl fmt::Debug for OriginProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginProducer").field("broadcasts", &self.broadcast_count()).finish_non_exhaustive()
    }
}

/// One published route. Dropping it withdraws the route.
pub struct Published {
    origin: Weak<OriginShared>,
    path: Path,
    id: u64,
    broadcast: BroadcastConsumer,
    hook_id: u64,
}

impl Published {
    /// The path the route serves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the route's hops or costs (an ANNOUNCE_UPDATE from upstream). Consumers see an Update
    /// if the best route changes.
    pub fn update_route(&self, route: Route) {
        let Some(origin) = self.origin.upgrade() else { return };
        let max_log = origin.settings.max_announcement_log;
        origin.state.send_if_modified(|state| {
            let Some(entry) = state.paths.get_mut(&self.path).and_then(|r| r.iter_mut().find(|e| e.id == self.id))
            else {
                return false;
            };
            if entry.route == route {
                return false;
            }
            entry.route = route;
            state.log(self.path.clone(), max_log);
            true
        });
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        self.broadcast.remove_close_hook(self.hook_id);
        if let Some(origin) = self.origin.upgrade() {
            origin.unpublish(&self.path, self.id);
        }
    }
}

impl fmt::Debug for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Published").field("path", &self.path).field("id", &self.id).finish_non_exhaustive()
    }
}

/// Follows the best route per path under a prefix. Starts with a snapshot (Start for every
/// existing path), then reports changes in order.
pub struct OriginConsumer {
    shared: Arc<OriginShared>,
    rx: watch::Receiver<OriginState>,
    prefix: Path,
    exclude_hop: u64,
    /// Routes learned from this local session are not shown (0: none excluded).
    exclude_via: u64,
    /// Paths outside this filter are never announced or served.
    allow: Option<PathFilter>,
    /// Next log sequence to read.
    cursor: u64,
    /// Paths still to compare (the snapshot, or a resync after falling behind).
    pending: VecDeque<Path>,
    /// The route id and route last announced per path.
    announced: HashMap<Path, (u64, Route)>,
}

impl OriginConsumer {
    fn new(shared: Arc<OriginShared>, prefix: Path, exclude_hop: u64) -> Self {
        let rx = shared.state.subscribe();
        let (cursor, pending) = {
            let state = shared.state.borrow();
            let pending = state.paths.keys().filter(|p| p.has_prefix(&prefix)).cloned().collect();
            (state.log_next, pending)
        };
        Self {
            shared,
            rx,
            prefix,
            exclude_hop,
            exclude_via: 0,
            allow: None,
            cursor,
            pending,
            announced: HashMap::new(),
        }
    }

    /// A new consumer, starting with its own snapshot, narrowed to `prefix` within this one's scope
    /// and also ignoring routes through `exclude_hop` (or this one's exclusion when 0). `None` when
    /// `prefix` and this scope do not overlap. Sessions use it to answer each ANNOUNCE_REQUEST.
    pub fn scoped(&self, prefix: &Path, exclude_hop: u64) -> Option<OriginConsumer> {
        let narrowed = if prefix.has_prefix(&self.prefix) {
            prefix.clone()
        } else if self.prefix.has_prefix(prefix) {
            self.prefix.clone()
        } else {
            return None;
        };
        let exclude_hop = if exclude_hop == 0 { self.exclude_hop } else { exclude_hop };
        let mut consumer = OriginConsumer::new(self.shared.clone(), narrowed, exclude_hop);
        consumer.exclude_via = self.exclude_via;
        consumer.allow = self.allow.clone();
        Some(consumer)
    }

    /// This consumer, also hiding the routes learned from local session `via`: a session is never
    /// offered its own broadcasts back. Applies before any announcement is read.
    pub fn excluding_session(mut self, via: u64) -> OriginConsumer {
        // The snapshot lists paths only; routes are filtered when each is compared.
        self.exclude_via = via;
        self
    }

    /// This consumer, showing only the paths `filter` allows (and everything scoped from it too).
    /// Applies before any announcement is read.
    pub fn allowing(mut self, filter: PathFilter) -> OriginConsumer {
        self.allow = Some(filter);
        self
    }

    fn allows(&self, path: &Path) -> bool {
        self.allow.as_ref().is_none_or(|allow| allow(path))
    }

    /// The prefix this consumer is scoped to.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The next announcement; `None` once the origin closed and every End was delivered.
    pub async fn next_announcement(&mut self) -> Option<Announcement> {
        loop {
            drop(self.rx.borrow_and_update());
            let shared = self.shared.clone();
            let (next, closed) = {
                let state = shared.state.borrow();
                (self.step(&state), state.closed)
            };
            if next.is_some() || closed {
                return next;
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Like [`next_announcement`](Self::next_announcement) but never waits: `None` when nothing is
    /// ready. Draining it right after creation yields the initial snapshot (ANNOUNCE_OK's count).
    pub fn try_next_announcement(&mut self) -> Option<Announcement> {
        let shared = self.shared.clone();
        let state = shared.state.borrow();
        self.step(&state)
    }

    /// Waits until `path` is announced and returns its broadcast: the one way to "subscribe to a
    /// broadcast by name" when it may not be there yet (before the publisher connects, or after a
    /// relay restart, before it re-announces). `None` once the origin closed first. Callers bound
    /// the wait with a timeout of their own.
    pub async fn announced(&mut self, path: &Path) -> Option<BroadcastConsumer> {
        loop {
            match self.next_announcement().await? {
                Announcement::Start { path: announced, broadcast, .. } if announced == *path => return Some(broadcast),
                _ => continue,
            }
        }
    }

    /// The broadcast behind this consumer's best route to `path` (scope and exclusion apply).
    pub fn consume_broadcast(&self, path: &Path) -> Option<BroadcastConsumer> {
        if !path.has_prefix(&self.prefix) || !self.allows(path) {
            return None;
        }
        self.shared.state.borrow().best(path, self.exclude_hop, self.exclude_via).map(|entry| entry.broadcast.clone())
    }

    fn step(&mut self, state: &OriginState) -> Option<Announcement> {
        loop {
            while let Some(path) = self.pending.pop_front() {
                if let Some(announcement) = self.diff(state, path) {
                    return Some(announcement);
                }
            }
            let oldest = state.log.front().map_or(state.log_next, |(seq, _)| *seq);
            if self.cursor < oldest {
                // Fell behind the bounded log: compare every path we know or announced.
                let mut all: BTreeSet<Path> =
                    state.paths.keys().filter(|p| p.has_prefix(&self.prefix)).cloned().collect();
                all.extend(self.announced.keys().cloned());
                self.pending = all.into_iter().collect();
                self.cursor = state.log_next;
                continue;
            }
            if self.cursor == state.log_next {
                return None;
            }
            let index = usize::try_from(self.cursor - oldest).unwrap_or(usize::MAX);
            self.cursor += 1;
            if let Some((_, path)) = state.log.get(index) {
                if path.has_prefix(&self.prefix) {
                    self.pending.push_back(path.clone());
                }
            }
        }
    }

    fn diff(&mut self, state: &OriginState, path: Path) -> Option<Announcement> {
        let best = if self.allows(&path) { state.best(&path, self.exclude_hop, self.exclude_via) } else { None };
        match (self.announced.get(&path), best) {
            (None, None) => None,
            (Some(_), None) => {
                self.announced.remove(&path);
                Some(Announcement::End { path })
            }
            (None, Some(entry)) => {
                self.announced.insert(path.clone(), (entry.id, entry.route.clone()));
                Some(Announcement::Start { path, route: entry.route.clone(), broadcast: entry.broadcast.clone() })
            }
            (Some((id, route)), Some(entry)) => {
                if *id == entry.id && *route == entry.route {
                    return None;
                }
                self.announced.insert(path.clone(), (entry.id, entry.route.clone()));
                Some(Announcement::Update { path, route: entry.route.clone(), broadcast: entry.broadcast.clone() })
            }
        }
    }
}

impl fmt::Debug for OriginConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginConsumer")
            .field("prefix", &self.prefix)
            .field("exclude_hop", &self.exclude_hop)
            .finish_non_exhaustive()
    }
}
