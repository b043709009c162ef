//! A broadcast: a set of tracks by name, with one (cloneable) producer and any number of consumers.
//!
//! A relay cannot know every track up front, so a consumer may ask for a track that does not exist
//! yet; when the producer opted in ([`BroadcastSettings::serve_requests`]) the request is queued
//! (bounded) for the producer, which accepts it with the track's info or rejects it with an error
//! that every waiting consumer sees.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{oneshot, watch};

use super::cache::CacheSettings;
use super::track::TrackShared;
use super::{Error, GroupConsumer, SubscribeOptions, TrackConsumer, TrackInfo, TrackProducer};

/// Bounds and behaviour of one broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastSettings {
    /// The most tracks (live tracks plus pending requests). Default 1024.
    pub max_tracks: usize,
    /// The most distinct track requests waiting for the producer. Default 64.
    pub max_requests: usize,
    /// Queue requests for missing tracks instead of failing them with [`Error::NotFound`].
    /// Default false (a plain publisher knows all its tracks; a relay sets it).
    pub serve_requests: bool,
    /// Cache settings of tracks created through the broadcast.
    pub cache: CacheSettings,
}

impl Default for BroadcastSettings {
    fn default() -> Self {
        Self { max_tracks: 1024, max_requests: 64, serve_requests: false, cache: CacheSettings::default() }
    }
}

type CloseHook = Box<dyn FnOnce() + Send + Sync>;

struct Waiter {
    options: SubscribeOptions,
    tx: oneshot::Sender<Result<TrackConsumer, Error>>,
}

/// What one lookup of a track found.
enum Found {
    Live(Box<TrackConsumer>),
    Requested(oneshot::Receiver<Result<TrackConsumer, Error>>),
}

struct BroadcastState {
    tracks: HashMap<Arc<str>, Arc<TrackShared>>,
    /// Requested names and who waits for them (queued or taken by the producer).
    requests: HashMap<Arc<str>, Vec<Waiter>>,
    /// Requested names the producer has not taken yet.
    queue: VecDeque<Arc<str>>,
    closed: bool,
    hooks: BTreeMap<u64, CloseHook>,
    next_hook: u64,
}

impl BroadcastState {
    fn live_track(&self, name: &str) -> Option<Arc<TrackShared>> {
        self.tracks.get(name).filter(|track| !track.is_aborted()).cloned()
    }

    /// Drops aborted tracks (their producer is gone) so they neither count nor shadow a new one.
    fn prune(&mut self) {
        self.tracks.retain(|_, track| !track.is_aborted());
    }

    fn take_waiters(&mut self, name: &str) -> Vec<Waiter> {
        self.queue.retain(|queued| &**queued != name);
        self.requests.remove(name).unwrap_or_default()
    }
}

pub(crate) struct BroadcastShared {
    settings: BroadcastSettings,
    state: watch::Sender<BroadcastState>,
    /// Where a group that is not cached here is fetched from (a relay's upstream session).
    upstream: Mutex<Option<UpstreamFetch>>,
    /// Where the TRACK_INFO of a track that is not live here is asked (a relay's upstream session).
    upstream_info: Mutex<Option<UpstreamInfo>>,
}

/// One past group wanted by FETCH, optionally a range of its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFetch {
    /// The track.
    pub track: String,
    /// The group sequence.
    pub group: u64,
    /// The first frame wanted.
    pub frame_start: u64,
    /// The last frame wanted (inclusive); `None` = to the end of the group.
    pub frame_end: Option<u64>,
    /// Subscriber priority of the transfer.
    pub priority: u8,
}

/// Asks where a broadcast comes from for a track's TRACK_INFO, without subscribing to it; set by
/// the session that mirrors it.
pub type UpstreamInfo =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<TrackInfo, Error>> + Send>> + Send + Sync>;

/// Fetches a group from where a broadcast comes from; set by the session that mirrors it.
pub type UpstreamFetch =
    Arc<dyn Fn(GroupFetch) -> Pin<Box<dyn Future<Output = Result<GroupConsumer, Error>> + Send>> + Send + Sync>;

impl BroadcastShared {
    fn close(&self) {
        let mut hooks = BTreeMap::new();
        let mut waiters = Vec::new();
        self.state.send_if_modified(|state| {
            if state.closed {
                return false;
            }
            state.closed = true;
            hooks = std::mem::take(&mut state.hooks);
            state.queue.clear();
            waiters = state.requests.drain().flat_map(|(_, w)| w).collect();
            true
        });
        for waiter in waiters {
            let _ = waiter.tx.send(Err(Error::Ended));
        }
        for hook in hooks.into_values() {
            hook();
        }
    }

    /// Registers a track and hands consumers to everyone who requested it.
    fn insert_track(&self, name: &str, info: TrackInfo, settings: CacheSettings) -> Result<TrackProducer, Error> {
        let track = TrackShared::new(name, info, settings)?;
        let max_tracks = self.settings.max_tracks;
        let mut result = Ok(());
        let mut waiters = Vec::new();
        self.state.send_if_modified(|state| {
            if state.closed {
                result = Err(Error::Ended);
                return false;
            }
            if state.live_track(name).is_some() {
                result = Err(Error::TrackExists);
                return false;
            }
            state.prune();
            let requested = usize::from(state.requests.contains_key(name));
            if state.tracks.len() + state.requests.len() - requested >= max_tracks {
                result = Err(Error::TooManyTracks(max_tracks));
                return false;
            }
            state.tracks.insert(track.name.clone(), track.clone());
            waiters = state.take_waiters(name);
            true
        });
        result?;
        let producer = TrackProducer::from_shared(track);
        for waiter in waiters {
            let _ = waiter.tx.send(Ok(producer.subscribe(waiter.options)));
        }
        Ok(producer)
    }

    fn reject(&self, name: &str, err: Error) {
        let mut waiters = Vec::new();
        self.state.send_if_modified(|state| {
            waiters = state.take_waiters(name);
            false
        });
        for waiter in waiters {
            let _ = waiter.tx.send(Err(err.clone()));
        }
    }
}

/// Ends the broadcast when the last producer clone goes away.
struct CloseGuard(Arc<BroadcastShared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Publishes a broadcast. Cloneable; the broadcast ends when [`finish`](Self::finish) is called or
/// the last clone is dropped, and consumers see it end.
#[derive(Clone)]
pub struct BroadcastProducer {
    shared: Arc<BroadcastShared>,
    _guard: Arc<CloseGuard>,
}

impl Default for BroadcastProducer {
    fn default() -> Self {
        Self::new(BroadcastSettings::default())
    }
}

impl BroadcastProducer {
    /// An empty broadcast.
    pub fn new(settings: BroadcastSettings) -> Self {
        let state = BroadcastState {
            tracks: HashMap::new(),
            requests: HashMap::new(),
            queue: VecDeque::new(),
            closed: false,
            hooks: BTreeMap::new(),
            next_hook: 0,
        };
        let shared = Arc::new(BroadcastShared {
            settings,
            state: watch::Sender::new(state),
            upstream: Mutex::new(None),
            upstream_info: Mutex::new(None),
        });
        Self { _guard: Arc::new(CloseGuard(shared.clone())), shared }
    }

    /// Creates a track with the broadcast's cache settings. Waiting requests for it are fulfilled.
    pub fn create_track(&self, name: &str, info: TrackInfo) -> Result<TrackProducer, Error> {
        self.shared.insert_track(name, info, self.shared.settings.cache)
    }

    /// Creates a track with its own cache settings.
    pub fn create_track_with(
        &self,
        name: &str,
        info: TrackInfo,
        settings: CacheSettings,
    ) -> Result<TrackProducer, Error> {
        self.shared.insert_track(name, info, settings)
    }

    /// The next track a consumer asked for that does not exist yet; `None` once the broadcast ended.
    /// Only used with [`BroadcastSettings::serve_requests`].
    pub async fn next_request(&self) -> Option<TrackRequest> {
        let mut rx = self.shared.state.subscribe();
        loop {
            drop(rx.borrow_and_update());
            let mut next = None;
            let mut closed = false;
            self.shared.state.send_if_modified(|state| {
                closed = state.closed;
                next = state.queue.pop_front();
                false
            });
            if let Some(name) = next {
                return Some(TrackRequest { name, shared: self.shared.clone(), done: false });
            }
            if closed || rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// A consumer of this broadcast.
    pub fn consume(&self) -> BroadcastConsumer {
        BroadcastConsumer { shared: self.shared.clone() }
    }

    /// Ends the broadcast for every clone.
    pub fn finish(self) {
        self.shared.close();
    }

    /// True once the broadcast ended.
    pub fn is_closed(&self) -> bool {
        self.shared.state.borrow().closed
    }

    /// Where FETCH goes for a group this broadcast does not cache (`None`: nowhere). A relay's
    /// session sets its upstream here, as the reference relay forwards such a FETCH.
    pub fn set_upstream_fetch(&self, upstream: Option<UpstreamFetch>) {
        *self.shared.upstream.lock().unwrap_or_else(PoisonError::into_inner) = upstream;
    }

    /// Where a TRACK request for a track that is not live goes (`None`: the track is requested,
    /// which subscribes). A relay's session sets its upstream here, so a TRACK lookup does not
    /// open an upstream subscription whose start the SUBSCRIBE behind it would then inherit.
    pub fn set_upstream_info(&self, upstream: Option<UpstreamInfo>) {
        *self.shared.upstream_info.lock().unwrap_or_else(PoisonError::into_inner) = upstream;
    }
}

impl fmt::Debug for BroadcastProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastProducer").finish_non_exhaustive()
    }
}

/// A consumer's request for a track that does not exist yet. Dropping it rejects the request with
/// [`Error::NotFound`].
pub struct TrackRequest {
    name: Arc<str>,
    shared: Arc<BroadcastShared>,
    done: bool,
}

impl TrackRequest {
    /// The requested track name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the waiting consumers asked for, aggregated (spec 7.1), so the track can be requested
    /// upstream with those parameters.
    pub fn options(&self) -> SubscribeOptions {
        let state = self.shared.state.borrow();
        let waiters = state.requests.get(&self.name);
        super::interest::aggregate(waiters.into_iter().flatten().map(|w| &w.options)).unwrap_or_default()
    }

    /// Creates the track; every waiting consumer gets a consumer of it.
    pub fn accept(self, info: TrackInfo) -> Result<TrackProducer, Error> {
        let settings = self.shared.settings.cache;
        self.accept_with(info, settings)
    }

    /// Like [`accept`](Self::accept) with explicit cache settings.
    pub fn accept_with(mut self, info: TrackInfo, settings: CacheSettings) -> Result<TrackProducer, Error> {
        self.done = true;
        let result = self.shared.insert_track(&self.name, info, settings);
        if let Err(err) = &result {
            self.shared.reject(&self.name, err.clone());
        }
        result
    }

    /// Refuses the track; every waiting consumer gets `err` (typically NOT_FOUND or UNROUTABLE).
    pub fn reject(mut self, err: Error) {
        self.done = true;
        self.shared.reject(&self.name, err);
    }
}

impl Drop for TrackRequest {
    fn drop(&mut self) {
        if !self.done {
            self.shared.reject(&self.name, Error::NotFound);
        }
    }
}

impl fmt::Debug for TrackRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackRequest").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Reads a broadcast: subscribes to its tracks. Cheap to clone.
#[derive(Clone)]
pub struct BroadcastConsumer {
    shared: Arc<BroadcastShared>,
}

impl BroadcastConsumer {
    /// A consumer of the named track with default options; see
    /// [`subscribe_track_with`](Self::subscribe_track_with).
    pub async fn subscribe_track(&self, name: &str) -> Result<TrackConsumer, Error> {
        self.subscribe_track_with(name, SubscribeOptions::default()).await
    }

    /// A consumer of the named track. An existing track answers at once; a missing one fails with
    /// [`Error::NotFound`], or, if the producer serves requests, waits until it is accepted or
    /// rejected.
    pub async fn subscribe_track_with(&self, name: &str, options: SubscribeOptions) -> Result<TrackConsumer, Error> {
        loop {
            match self.try_subscribe_track(name, options) {
                // Closed between the lookup and our registration (a relay cancelling an unused
                // upstream subscription): look again, which requests the track afresh.
                Ok(Found::Live(consumer)) if consumer.shared.is_aborted() => continue,
                Ok(Found::Live(consumer)) => return Ok(*consumer),
                Ok(Found::Requested(rx)) => return rx.await.unwrap_or(Err(Error::Cancelled)),
                Err(err) => return Err(err),
            }
        }
    }

    /// One lookup: the live track, or a request queued for the producer.
    fn try_subscribe_track(&self, name: &str, options: SubscribeOptions) -> Result<Found, Error> {
        let settings = self.shared.settings;
        let mut found = None;
        let mut result = Ok(());
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        self.shared.state.send_if_modified(|state| {
            if let Some(track) = state.live_track(name) {
                found = Some(track);
                return false;
            }
            if state.closed {
                result = Err(Error::Ended);
                return false;
            }
            if !settings.serve_requests {
                result = Err(Error::NotFound);
                return false;
            }
            if let Some(waiters) = state.requests.get_mut(name) {
                if let Some(tx) = tx.take() {
                    waiters.push(Waiter { options, tx });
                }
                return false;
            }
            state.prune();
            if state.requests.len() >= settings.max_requests {
                result = Err(Error::TooManyRequests(settings.max_requests));
                return false;
            }
            if state.tracks.len() + state.requests.len() >= settings.max_tracks {
                result = Err(Error::TooManyTracks(settings.max_tracks));
                return false;
            }
            let name: Arc<str> = Arc::from(name);
            if let Some(tx) = tx.take() {
                state.requests.insert(name.clone(), vec![Waiter { options, tx }]);
            }
            state.queue.push_back(name);
            true
        });
        if let Some(track) = found {
            return Ok(Found::Live(Box::new(TrackConsumer::new(track, options))));
        }
        result?;
        Ok(Found::Requested(rx))
    }

    /// One past group for FETCH: from this broadcast's cache if it holds the group, else from
    /// upstream if the producer set one, else [`Error::NotFound`]. FETCH reads the past, so a group
    /// that does not exist yet is not waited for; a group still being written is served as it
    /// grows. Fetching is not a subscription: it does not count as demand for the track.
    pub async fn fetch_group(&self, request: GroupFetch) -> Result<GroupConsumer, Error> {
        let cached = self.shared.state.borrow().live_track(&request.track).and_then(|track| {
            let state = track.state.borrow();
            state.cache.get(&request.group).map(|cached| cached.group.consume())
        });
        if let Some(group) = cached {
            return Ok(group);
        }
        let upstream = self.shared.upstream.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match upstream {
            Some(upstream) => upstream(request).await,
            None => Err(Error::NotFound),
        }
    }

    /// The TRACK_INFO of a live track, without subscribing to it: answering a TRACK request must not
    /// count as demand.
    pub fn track_info(&self, name: &str) -> Option<TrackInfo> {
        self.shared.state.borrow().live_track(name).map(|track| track.info)
    }

    /// The TRACK_INFO of a track that is not live here, asked upstream without subscribing;
    /// `None` when the broadcast has no upstream to ask.
    pub async fn upstream_track_info(&self, name: &str) -> Option<Result<TrackInfo, Error>> {
        let upstream = self.shared.upstream_info.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
        Some(upstream(name.to_string()).await)
    }

    /// Names of the live tracks (sorted).
    pub fn track_names(&self) -> Vec<String> {
        let state = self.shared.state.borrow();
        let mut names: Vec<String> =
            state.tracks.iter().filter(|(_, t)| !t.is_aborted()).map(|(n, _)| n.to_string()).collect();
        names.sort();
        names
    }

    /// True once the broadcast ended.
    pub fn is_closed(&self) -> bool {
        self.shared.state.borrow().closed
    }

    /// Resolves once the broadcast ended.
    pub async fn closed(&self) {
        let mut rx = self.shared.state.subscribe();
        let _ = rx.wait_for(|state| state.closed).await;
    }

    /// True if both consume the same broadcast.
    pub fn same_broadcast(&self, other: &BroadcastConsumer) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Runs `hook` once when the broadcast ends. Returns `None` (and drops the hook) if it already
    /// ended.
    pub(crate) fn on_close(&self, hook: CloseHook) -> Option<u64> {
        let mut id = None;
        self.shared.state.send_if_modified(|state| {
            if !state.closed {
                let next = state.next_hook;
                state.next_hook = next.wrapping_add(1);
                state.hooks.insert(next, hook);
                id = Some(next);
            }
            false
        });
        id
    }

    /// Forgets a hook registered with [`on_close`](Self::on_close).
    pub(crate) fn remove_close_hook(&self, id: u64) {
        let mut removed = None;
        self.shared.state.send_if_modified(|state| {
            removed = state.hooks.remove(&id);
            false
        });
        drop(removed);
    }
}

impl fmt::Debug for BroadcastConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastConsumer").field("closed", &self.is_closed()).finish_non_exhaustive()
    }
}
