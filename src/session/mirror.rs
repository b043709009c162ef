//! Where a subscribing session puts the peer's broadcasts, kept across sessions: when a session
//! ends without the publisher ending a broadcast (a lost connection, GOAWAY), the broadcast and its
//! live tracks stay in the origin for a grace period (`linger`). A later session that announces
//! the same path adopts them and re-subscribes each track from its next group, so local consumers
//! keep reading the same track through a migration, seeing only a gap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::coding::Path;
use crate::coding::StreamCode;
use crate::model::{
    self, BroadcastProducer, BroadcastSettings, OriginProducer, PathFilter, Published, Route, TrackProducer,
    UpstreamFetch, UpstreamInfo,
};
use tokio::sync::mpsc;

/// Session identities, so a session only ever detaches what it owns.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

pub(crate) fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// A track whose session ended while local consumers still read it.
pub(crate) struct Orphan {
    pub(crate) name: String,
    pub(crate) info: model::TrackInfo,
    pub(crate) producer: TrackProducer,
}

struct Entry {
    producer: BroadcastProducer,
    published: Published,
    owner: u64,
    /// Set while no session owns the entry; bumped on every detach so an old timer does nothing.
    orphaned: Option<u64>,
    orphans: Vec<Orphan>,
    /// Where the owning session takes tracks orphaned after it adopted the broadcast.
    late: mpsc::UnboundedSender<Orphan>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        for orphan in self.orphans.drain(..) {
            orphan.producer.abort(model::Error::Aborted(StreamCode::SessionClosed));
        }
        self.producer.clone().finish();
    }
}

struct Inner {
    origin: OriginProducer,
    linger: Duration,
    entries: Mutex<HashMap<Path, Entry>>,
    epochs: AtomicU64,
}

/// The origin a session mirrors the peer's broadcasts into. Cheap to clone; sessions that share
/// one hand broadcasts over to each other.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
    /// Paths this mirror refuses to publish (outside a session's grant).
    allow: Option<PathFilter>,
}

impl From<OriginProducer> for Mirror {
    /// A mirror whose broadcasts end as soon as their session does.
    fn from(origin: OriginProducer) -> Self {
        Mirror::with_linger(origin, Duration::ZERO)
    }
}

/// How the announcing session answers for its broadcast's tracks that are not live here: TRACK
/// and FETCH forwarded to the peer (lite-05+; `None` on older sessions).
#[derive(Default, Clone)]
pub(crate) struct UpstreamHooks {
    pub(crate) fetch: Option<UpstreamFetch>,
    pub(crate) info: Option<UpstreamInfo>,
}

impl UpstreamHooks {
    fn install(self, producer: &BroadcastProducer) {
        producer.set_upstream_fetch(self.fetch);
        producer.set_upstream_info(self.info);
    }
}

/// What a session gets when it attaches to a path.
pub(crate) struct Attached {
    pub(crate) producer: BroadcastProducer,
    pub(crate) orphans: Vec<Orphan>,
    /// Tracks of an earlier session orphaned only after this one attached: the old session's
    /// subscriptions notice the end of their connection on their own time, and may do so after the
    /// next session already adopted the broadcast (a client that follows GOAWAY drops the old
    /// session and connects at once). The session resumes these as it does `orphans`.
    pub(crate) late: mpsc::UnboundedReceiver<Orphan>,
}

impl Mirror {
    /// A mirror whose broadcasts outlive their session by `linger`, waiting to be adopted.
    pub fn with_linger(origin: OriginProducer, linger: Duration) -> Self {
        let inner = Inner { origin, linger, entries: Mutex::new(HashMap::new()), epochs: AtomicU64::new(0) };
        Mirror { inner: Arc::new(inner), allow: None }
    }

    /// This mirror, publishing only the paths `filter` allows: a peer's other announcements are
    /// ignored (an auth grant's publish patterns).
    pub fn allowing(mut self, filter: PathFilter) -> Self {
        self.allow = Some(filter);
        self
    }

    /// The origin the broadcasts appear in.
    pub fn origin(&self) -> &OriginProducer {
        &self.inner.origin
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Path, Entry>> {
        self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `path` for session `owner`, adopting a lingering broadcast (and its orphaned
    /// tracks) if there is one. `None` if the path is already served by another live session or
    /// the origin refuses it.
    ///
    /// `upstream` is installed before the broadcast is visible (or, when adopting, before the new
    /// owner is recorded): a downstream TRACK that follows the announcement at once must be
    /// forwarded, not answered by the lookup subscription a broadcast without hooks falls back
    /// to, which would fetch the backlog and move a live-edge SUBSCRIBE behind it to group 0.
    pub(crate) fn attach(
        &self,
        path: &Path,
        route: Route,
        owner: u64,
        settings: BroadcastSettings,
        upstream: UpstreamHooks,
    ) -> Option<Attached> {
        if self.allow.as_ref().is_some_and(|allow| !allow(path)) {
            tracing::debug!(%path, "announced outside the session's grant: ignored");
            return None;
        }
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(path) {
            if entry.orphaned.is_none() {
                tracing::debug!(%path, "already served by another session");
                return None;
            }
            upstream.install(&entry.producer);
            entry.orphaned = None;
            entry.owner = owner;
            entry.published.update_route(route);
            let (late_tx, late) = mpsc::unbounded_channel();
            entry.late = late_tx;
            tracing::debug!(%path, tracks = entry.orphans.len(), "adopted a lingering broadcast");
            let orphans = std::mem::take(&mut entry.orphans);
            return Some(Attached { producer: entry.producer.clone(), orphans, late });
        }
        let producer = BroadcastProducer::new(settings);
        upstream.install(&producer);
        let published = match self.inner.origin.publish(path.clone(), producer.consume(), route) {
            Ok(published) => published,
            Err(err) => {
                tracing::warn!(%path, "cannot publish announced broadcast: {err}");
                return None;
            }
        };
        let (late_tx, late) = mpsc::unbounded_channel();
        let entry =
            Entry { producer: producer.clone(), published, owner, orphaned: None, orphans: Vec::new(), late: late_tx };
        entries.insert(path.clone(), entry);
        Some(Attached { producer, orphans: Vec::new(), late })
    }

    /// A new route for a path `owner` serves.
    pub(crate) fn update_route(&self, path: &Path, owner: u64, route: Route) {
        if let Some(entry) = self.entries().get(path).filter(|e| e.owner == owner) {
            entry.published.update_route(route);
        }
    }

    /// The publisher ended the broadcast: it goes now.
    pub(crate) fn remove(&self, path: &Path, owner: u64) {
        let removed = {
            let mut entries = self.entries();
            match entries.get(path) {
                Some(entry) if entry.owner == owner => entries.remove(path),
                _ => None,
            }
        };
        drop(removed);
    }

    /// The session ended without the publisher ending the broadcast: it lingers for adoption.
    pub(crate) fn detach(&self, path: &Path, owner: u64) {
        if self.inner.linger.is_zero() {
            return self.remove(path, owner);
        }
        let epoch = self.inner.epochs.fetch_add(1, Ordering::Relaxed);
        match self.entries().get_mut(path) {
            Some(entry) if entry.owner == owner && entry.orphaned.is_none() => entry.orphaned = Some(epoch),
            _ => return,
        }
        let (mirror, path, linger) = (self.clone(), path.clone(), self.inner.linger);
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            let expired = {
                let mut entries = mirror.entries();
                match entries.get(&path) {
                    Some(entry) if entry.orphaned == Some(epoch) => entries.remove(&path),
                    _ => None,
                }
            };
            if expired.is_some() {
                tracing::debug!(%path, "lingering broadcast was not adopted in time");
            }
        });
    }

    /// Keeps a track whose session ended for whoever adopts its broadcast: lingering with it, or
    /// handed to the session that already adopted it. Ends it if the broadcast is gone.
    pub(crate) fn orphan_track(&self, path: &Path, owner: u64, orphan: Orphan) {
        let mut entries = self.entries();
        let orphan = match entries.get_mut(path) {
            Some(_) if self.inner.linger.is_zero() => orphan,
            Some(entry) if entry.owner == owner || entry.orphaned.is_some() => return entry.orphans.push(orphan),
            // A later session adopted the broadcast before this track was orphaned.
            Some(entry) => match entry.late.send(orphan) {
                Ok(()) => return tracing::debug!(%path, "late orphan handed to the adopting session"),
                Err(mpsc::error::SendError(orphan)) => orphan,
            },
            None => orphan,
        };
        drop(entries);
        orphan.producer.abort(model::Error::Aborted(StreamCode::SessionClosed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(name: &str) -> Orphan {
        let info = model::TrackInfo::default();
        Orphan { name: name.to_owned(), info, producer: TrackProducer::new(name, info).unwrap() }
    }

    #[tokio::test]
    async fn a_track_orphaned_after_the_next_session_adopted_its_broadcast_goes_to_that_session() {
        let mirror = Mirror::with_linger(OriginProducer::default(), Duration::from_secs(30));
        let path = Path::new("room/alice").unwrap();
        let (first, second) = (new_owner(), new_owner());
        let _a = mirror
            .attach(&path, Route::local(), first, BroadcastSettings::default(), UpstreamHooks::default())
            .unwrap();
        // The first session's broadcast detaches; the next session adopts it before the first
        // session's subscription has let go of its track.
        mirror.detach(&path, first);
        let mut b = mirror
            .attach(&path, Route::local(), second, BroadcastSettings::default(), UpstreamHooks::default())
            .unwrap();
        assert!(b.orphans.is_empty());
        let late = orphan("video");
        let consumer = late.producer.consume();
        mirror.orphan_track(&path, first, late);
        let handed = b.late.try_recv().expect("the late orphan reaches the adopting session");
        assert_eq!(handed.name, "video");
        drop(handed);
        drop(consumer);

        // While lingering (no live owner), a late orphan waits with the broadcast for the next one.
        mirror.detach(&path, second);
        mirror.orphan_track(&path, first, orphan("audio"));
        let third = mirror
            .attach(&path, Route::local(), new_owner(), BroadcastSettings::default(), UpstreamHooks::default())
            .unwrap();
        assert_eq!(third.orphans.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["audio"]);
    }

    /// Hooks whose TRACK answer carries `priority`, to tell sessions apart.
    fn hooks(priority: u8) -> UpstreamHooks {
        let info: UpstreamInfo = Arc::new(move |_track: String| {
            Box::pin(async move { Ok(model::TrackInfo { priority, ..Default::default() }) })
        });
        UpstreamHooks { fetch: None, info: Some(info) }
    }

    async fn upstream_priority(mirror: &Mirror, path: &Path) -> Option<u8> {
        let broadcast = mirror.origin().consume_broadcast(path).expect("published");
        Some(broadcast.upstream_track_info("video").await?.expect("answered").priority)
    }

    #[tokio::test]
    async fn a_broadcast_is_visible_only_with_its_sessions_upstream_hooks() {
        let mirror = Mirror::with_linger(OriginProducer::default(), Duration::from_secs(30));
        let path = Path::new("room/alice").unwrap();
        let (first, second, third) = (new_owner(), new_owner(), new_owner());
        let _a = mirror.attach(&path, Route::local(), first, BroadcastSettings::default(), hooks(1)).unwrap();
        // Installed by attach itself: nothing the session does afterwards can race a TRACK that
        // follows the announcement.
        assert_eq!(upstream_priority(&mirror, &path).await, Some(1));

        // The adopting session's hooks replace the departed session's before it owns the entry.
        mirror.detach(&path, first);
        let _b = mirror.attach(&path, Route::local(), second, BroadcastSettings::default(), hooks(2)).unwrap();
        assert_eq!(upstream_priority(&mirror, &path).await, Some(2));

        // A session that cannot forward TRACK (lite-03/04) leaves none behind.
        mirror.detach(&path, second);
        let _c = mirror.attach(&path, Route::local(), third, BroadcastSettings::default(), UpstreamHooks::default());
        assert_eq!(upstream_priority(&mirror, &path).await, None);
    }
}
