//! Publishing a hang broadcast: the catalog track, kept in step with the renditions, and one
//! writer per media track that opens a group at each keyframe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::catalog::{AudioConfig, CATALOG_TRACK, Catalog, CatalogSettings, Container, VideoConfig};
use super::cmaf::CmafPacker;
use super::codec::{AudioInfo, CodecInfo, VideoInfo};
use super::{MediaError, legacy, track_info};
use crate::model::{self, BroadcastConsumer, BroadcastProducer, Frame, TrackInfo, TrackWriter, WriterSettings};

/// Track priorities, as the reference sets them: the catalog above audio above video, so a
/// congested link drops video first.
pub mod priority {
    /// The catalog track's priority.
    pub const CATALOG: u8 = 100;
    /// An audio track's priority.
    pub const AUDIO: u8 = 80;
    /// A video track's priority.
    pub const VIDEO: u8 = 60;
}

/// A broadcast in the hang format: publish [`consume`](Self::consume) in an origin, add
/// renditions, write their frames. Every change of the renditions publishes the catalog again, as
/// a new group of `catalog.json`.
pub struct MediaBroadcast {
    broadcast: BroadcastProducer,
    catalog: Catalog,
    catalog_track: TrackWriter,
    settings: CatalogSettings,
    /// Catalog publication is held (see [`hold_catalog`](MediaBroadcast::hold_catalog)).
    held: bool,
    /// A change made while held, not yet published.
    unpublished: bool,
    /// The renditions moqt packs as CMAF, shared with their writers so an update's new init
    /// segment applies from the next sample.
    packers: HashMap<String, SharedPacker>,
}

type SharedPacker = Arc<Mutex<CmafPacker>>;

fn lock_packer(packer: &SharedPacker) -> std::sync::MutexGuard<'_, CmafPacker> {
    packer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The packer for a video rendition described as for the legacy container.
fn video_packer(config: &VideoConfig, annexb: bool) -> Result<CmafPacker, MediaError> {
    let info = CodecInfo::Video(VideoInfo {
        codec: config.codec.clone(),
        description: config.description.clone(),
        coded_width: config.coded_width.unwrap_or(0),
        coded_height: config.coded_height.unwrap_or(0),
    });
    let first = config.framerate.filter(|fps| *fps > 0.0).map_or(0, |fps| (1e6 / fps).round() as u32);
    CmafPacker::new(&info, annexb, first)
}

/// The packer for an audio rendition described as for the legacy container.
fn audio_packer(config: &AudioConfig) -> Result<CmafPacker, MediaError> {
    let info = CodecInfo::Audio(AudioInfo {
        codec: config.codec.clone(),
        description: config.description.clone(),
        sample_rate: config.sample_rate,
        channels: config.number_of_channels,
    });
    // Until the second packet says: Opus's usual 20 ms, AAC's 1024 samples.
    let first = match config.codec.as_str() {
        "opus" => 20_000,
        codec if codec.starts_with("mp4a.") && config.sample_rate > 0 => {
            (1_024_000_000 / u64::from(config.sample_rate)) as u32
        }
        _ => 0,
    };
    CmafPacker::new(&info, false, first)
}

impl MediaBroadcast {
    /// An empty broadcast; its catalog is published with the first renditions added.
    pub fn new() -> Result<Self, MediaError> {
        Self::with_catalog(Catalog::default(), CatalogSettings::default())
    }

    /// A broadcast that starts from `catalog`'s other sections and fields (kept as they are);
    /// its renditions are added with [`add_video`](Self::add_video) / [`add_audio`](Self::add_audio).
    pub fn with_catalog(mut catalog: Catalog, settings: CatalogSettings) -> Result<Self, MediaError> {
        catalog.video.renditions.clear();
        catalog.audio.renditions.clear();
        let broadcast = BroadcastProducer::default();
        let info = TrackInfo { priority: priority::CATALOG, ..TrackInfo::default() };
        let track = broadcast.create_track(CATALOG_TRACK, info)?;
        let catalog_track = TrackWriter::new(track, WriterSettings { keyframe_groups: true });
        Ok(Self {
            broadcast,
            catalog,
            catalog_track,
            settings,
            held: false,
            unpublished: false,
            packers: HashMap::new(),
        })
    }

    /// The broadcast to publish in an origin.
    pub fn consume(&self) -> BroadcastConsumer {
        self.broadcast.consume()
    }

    /// The catalog as last published.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Adds a video rendition on track `name` and publishes the catalog.
    pub fn add_video(&mut self, name: &str, config: VideoConfig) -> Result<MediaTrackWriter, MediaError> {
        let mut writers = self.add_renditions(vec![NewRendition::Video(name.into(), config)])?;
        writers.pop().ok_or_else(|| MediaError::NoRendition(name.into()))
    }

    /// Adds an audio rendition on track `name` and publishes the catalog.
    pub fn add_audio(&mut self, name: &str, config: AudioConfig) -> Result<MediaTrackWriter, MediaError> {
        let mut writers = self.add_renditions(vec![NewRendition::Audio(name.into(), config)])?;
        writers.pop().ok_or_else(|| MediaError::NoRendition(name.into()))
    }

    /// Adds several renditions with one catalog update, so no subscriber sees a catalog with
    /// only some of them (an MP4's video without its audio). All or none: on an error nothing
    /// is added. The writers come in the order given.
    pub fn add_renditions(&mut self, renditions: Vec<NewRendition>) -> Result<Vec<MediaTrackWriter>, MediaError> {
        let mut names = std::collections::HashSet::new();
        for rendition in &renditions {
            let (name, container) = rendition.name_and_container();
            self.check_new(name, container)?;
            if !names.insert(name) {
                return Err(MediaError::DuplicateRendition(name.into()));
            }
        }
        let mut tracks = Vec::with_capacity(renditions.len());
        for rendition in &renditions {
            let (name, container) = rendition.name_and_container();
            let priority = match rendition {
                NewRendition::Video(..) => priority::VIDEO,
                NewRendition::Audio(..) => priority::AUDIO,
            };
            tracks.push((self.broadcast.create_track(name, track_info(priority))?, container.clone()));
        }
        let names: Vec<String> = renditions.iter().map(|r| r.name_and_container().0.to_owned()).collect();
        for rendition in renditions {
            match rendition {
                NewRendition::Video(name, config) => self.catalog.video.renditions.insert(name, config).map(|_| ()),
                NewRendition::Audio(name, config) => self.catalog.audio.renditions.insert(name, config).map(|_| ()),
            };
        }
        if let Err(err) = self.publish_catalog() {
            for name in &names {
                self.catalog.video.renditions.remove(name);
                self.catalog.audio.renditions.remove(name);
            }
            return Err(err);
        }
        Ok(tracks.into_iter().map(|(track, container)| MediaTrackWriter::new(track, container)).collect())
    }

    /// Adds a video rendition whose samples moqt packs as CMAF, for a host that has samples,
    /// not fragments: `config` describes the codec as for the legacy container, with the decoder
    /// record in `description` for H.264/H.265 (the init segment needs it even when the
    /// parameter sets travel in band); its `container` is replaced by the CMAF container with
    /// the init segment built from it. The writer takes samples, as for the legacy container,
    /// and wraps each in its own moof+mdat; `annexb` says they are Annex-B (H.264/H.265 with
    /// parameter sets in band), written length-prefixed as ISO BMFF requires.
    pub fn add_packed_cmaf_video(
        &mut self,
        name: &str,
        mut config: VideoConfig,
        annexb: bool,
    ) -> Result<MediaTrackWriter, MediaError> {
        let packer = video_packer(&config, annexb)?;
        config.container = Container::Cmaf { init: packer.init().clone() };
        let writer = self.add_video(name, config)?;
        Ok(self.packed(name, writer, packer))
    }

    /// Adds an audio rendition whose samples moqt packs as CMAF, as
    /// [`add_packed_cmaf_video`](Self::add_packed_cmaf_video).
    pub fn add_packed_cmaf_audio(
        &mut self,
        name: &str,
        mut config: AudioConfig,
    ) -> Result<MediaTrackWriter, MediaError> {
        let packer = audio_packer(&config)?;
        config.container = Container::Cmaf { init: packer.init().clone() };
        let writer = self.add_audio(name, config)?;
        Ok(self.packed(name, writer, packer))
    }

    fn packed(&mut self, name: &str, mut writer: MediaTrackWriter, packer: CmafPacker) -> MediaTrackWriter {
        let packer = Arc::new(Mutex::new(packer));
        self.packers.insert(name.to_owned(), packer.clone());
        writer.packer = Some(packer);
        writer
    }

    /// True if moqt packs rendition `name` as CMAF.
    pub fn is_packed(&self, name: &str) -> bool {
        self.packers.contains_key(name)
    }

    /// Changes a video rendition's configuration (a new resolution, new parameter sets) and
    /// publishes the catalog. Its container kind cannot change: that takes a new rendition. For
    /// a rendition moqt packs as CMAF, `config` describes the codec as when it was added: a new
    /// init segment is built from it and used from the next sample.
    pub fn update_video(&mut self, name: &str, mut config: VideoConfig) -> Result<(), MediaError> {
        let repacked = self.repack(name, |annexb| video_packer(&config, annexb))?;
        if let Some(packer) = &repacked {
            config.container = Container::Cmaf { init: packer.init().clone() };
        }
        self.replace_video(name, config)?;
        self.install_packer(name, repacked);
        Ok(())
    }

    /// Changes an audio rendition's configuration and publishes the catalog (a packed CMAF
    /// rendition as [`update_video`](Self::update_video)).
    pub fn update_audio(&mut self, name: &str, mut config: AudioConfig) -> Result<(), MediaError> {
        let repacked = self.repack(name, |_| audio_packer(&config))?;
        if let Some(packer) = &repacked {
            config.container = Container::Cmaf { init: packer.init().clone() };
        }
        self.replace_audio(name, config)?;
        self.install_packer(name, repacked);
        Ok(())
    }

    /// A new packer for rendition `name` if moqt packs it (`build` gets whether its samples are
    /// Annex-B); `None` for a rendition given fragments or legacy frames.
    fn repack(
        &self,
        name: &str,
        build: impl FnOnce(bool) -> Result<CmafPacker, MediaError>,
    ) -> Result<Option<CmafPacker>, MediaError> {
        self.packers.get(name).map(|shared| build(lock_packer(shared).annexb())).transpose()
    }

    /// Puts an updated rendition's packer in place: its writer uses it from the next sample.
    fn install_packer(&self, name: &str, packer: Option<CmafPacker>) {
        if let (Some(packer), Some(shared)) = (packer, self.packers.get(name)) {
            *lock_packer(shared) = packer;
        }
    }

    fn replace_video(&mut self, name: &str, config: VideoConfig) -> Result<(), MediaError> {
        let old = self.catalog.video.renditions.get_mut(name).ok_or_else(|| MediaError::NoRendition(name.into()))?;
        if old.container.kind() != config.container.kind() {
            return Err(MediaError::Catalog(format!("rendition {name:?} cannot change its container kind")));
        }
        let old = std::mem::replace(old, config);
        self.publish_catalog().inspect_err(|_| {
            self.catalog.video.renditions.insert(name.to_owned(), old);
        })
    }

    fn replace_audio(&mut self, name: &str, config: AudioConfig) -> Result<(), MediaError> {
        let old = self.catalog.audio.renditions.get_mut(name).ok_or_else(|| MediaError::NoRendition(name.into()))?;
        if old.container.kind() != config.container.kind() {
            return Err(MediaError::Catalog(format!("rendition {name:?} cannot change its container kind")));
        }
        let old = std::mem::replace(old, config);
        self.publish_catalog().inspect_err(|_| {
            self.catalog.audio.renditions.insert(name.to_owned(), old);
        })
    }

    /// Takes a rendition out of the catalog and publishes it. Its writer finishes the track
    /// (or dropping the writer does).
    pub fn remove(&mut self, name: &str) -> Result<(), MediaError> {
        let removed =
            self.catalog.video.renditions.remove(name).is_some() | self.catalog.audio.renditions.remove(name).is_some();
        if !removed {
            return Err(MediaError::NoRendition(name.into()));
        }
        self.packers.remove(name);
        self.publish_catalog()
    }

    /// Holds catalog publication: renditions added, updated or removed from now on are checked at
    /// once (each call still fails as it would) but published together, as one catalog update,
    /// by [`release_catalog`](Self::release_catalog). For a host whose renditions become known
    /// one at a time (a GStreamer element's pads, each configured by its own first buffer): a
    /// subscriber that takes the first catalog then sees them all, not the video without its
    /// audio. Frames may be written meanwhile; they wait in their tracks' caches.
    pub fn hold_catalog(&mut self) {
        self.held = true;
    }

    /// Publishes the changes made since [`hold_catalog`](Self::hold_catalog), if any, and
    /// publishes each later change at once again.
    pub fn release_catalog(&mut self) -> Result<(), MediaError> {
        self.held = false;
        if std::mem::take(&mut self.unpublished) {
            self.publish_catalog()?;
        }
        Ok(())
    }

    /// True while catalog publication is held.
    pub fn catalog_held(&self) -> bool {
        self.held
    }

    /// Ends the catalog track and the broadcast: subscribers see both end cleanly once they
    /// have read what was written. Finish the media writers first. A held catalog is published
    /// first, so the renditions written are described.
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.release_catalog()?;
        self.catalog_track.finish()?;
        self.broadcast.finish();
        Ok(())
    }

    fn check_new(&self, name: &str, container: &Container) -> Result<(), MediaError> {
        if self.catalog.rendition(name).is_some() || name == CATALOG_TRACK {
            return Err(MediaError::DuplicateRendition(name.into()));
        }
        if let Container::Unknown(_) = container {
            let kind = container.kind().to_owned();
            return Err(MediaError::UnsupportedContainer { name: name.into(), kind });
        }
        Ok(())
    }

    /// Checks the catalog after a change and publishes it, or notes it for
    /// [`release_catalog`](Self::release_catalog) while held.
    fn publish_catalog(&mut self) -> Result<(), MediaError> {
        let json = self.checked_json()?;
        if self.held {
            self.unpublished = true;
            return Ok(());
        }
        self.catalog_track.write(Frame::new(0, json), true)?;
        Ok(())
    }

    fn checked_json(&self) -> Result<Bytes, MediaError> {
        self.catalog.check(&self.settings)?;
        let json = self.catalog.to_json();
        if json.len() > self.settings.max_bytes {
            return Err(MediaError::CatalogTooLarge { max: self.settings.max_bytes });
        }
        Ok(json)
    }
}

/// A rendition for [`MediaBroadcast::add_renditions`]: its track name and configuration.
#[derive(Debug, Clone)]
pub enum NewRendition {
    /// A video rendition: its track name and configuration.
    Video(String, VideoConfig),
    /// An audio rendition: its track name and configuration.
    Audio(String, AudioConfig),
}

impl NewRendition {
    fn name_and_container(&self) -> (&str, &Container) {
        match self {
            NewRendition::Video(name, config) => (name, &config.container),
            NewRendition::Audio(name, config) => (name, &config.container),
        }
    }
}

/// Writes one media track: a frame with its presentation time, a new group at each keyframe.
pub struct MediaTrackWriter {
    writer: TrackWriter,
    container: Container,
    /// Set for a rendition moqt packs as CMAF: each sample becomes a fragment.
    packer: Option<SharedPacker>,
}

impl MediaTrackWriter {
    fn new(track: model::TrackProducer, container: Container) -> Self {
        Self { writer: TrackWriter::new(track, WriterSettings { keyframe_groups: true }), container, packer: None }
    }

    /// The track's name.
    pub fn name(&self) -> Option<&str> {
        self.writer.track().map(model::TrackProducer::name)
    }

    /// Waits until someone subscribes to the track (a relay or a direct subscriber), so the
    /// first group written is not written to nobody. Returns at once if the track ended.
    pub async fn used(&self) {
        if let Some(track) = self.writer.track() {
            track.used().await;
        }
    }

    /// What [`used`](Self::used) waits for, as a future that borrows nothing (to wait without
    /// holding the writer); `None` once the track ended.
    pub fn until_used(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.writer.track().map(model::TrackProducer::until_used)
    }

    /// Writes one frame in decode order: `payload` is the codec payload for the legacy container
    /// (Annex-B or length-prefixed video as the catalog says, raw audio packets) and for a
    /// rendition moqt packs as CMAF, or one moof+mdat fragment for CMAF otherwise. A keyframe
    /// starts a new group; the track's first frame, and the first after a group passed its
    /// bounds, must be one ([`MediaError::KeyframeRequired`]). Returns the group the frame went to.
    pub fn write(&mut self, pts_us: u64, keyframe: bool, payload: Bytes) -> Result<u64, MediaError> {
        self.write_with_dts(pts_us, pts_us, keyframe, payload)
    }

    /// [`write`](Self::write) with the sample's decode time `dts_us` (microseconds), for streams
    /// whose decode order differs from presentation order (B-frames). A rendition moqt packs as
    /// CMAF writes it as the fragment's decode time, with `pts_us - dts_us` as the composition
    /// offset; decode times must not go backwards there ([`MediaError::Timestamp`]). The legacy
    /// container carries presentation times only, and given fragments carry their own, so they
    /// do not use it.
    pub fn write_with_dts(
        &mut self,
        pts_us: u64,
        dts_us: u64,
        keyframe: bool,
        payload: Bytes,
    ) -> Result<u64, MediaError> {
        let frame = match (&self.packer, &self.container) {
            (Some(packer), _) => lock_packer(packer).pack(pts_us, dts_us, keyframe, payload)?,
            (None, Container::Legacy) => legacy::encode(pts_us, &payload)?,
            (None, _) => payload,
        };
        self.writer.write(Frame::new(pts_us, frame), keyframe).map_err(|err| match err {
            model::Error::NewGroupRequired(_) => MediaError::KeyframeRequired,
            err => MediaError::Model(err),
        })
    }

    /// Ends the track cleanly.
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.writer.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::CatalogGroupDecoder;
    use crate::model::{GroupStart, SubscribeOptions, TrackEvent};

    fn video() -> VideoConfig {
        VideoConfig { codec: "vp8".into(), coded_width: Some(64), coded_height: Some(64), ..Default::default() }
    }

    fn audio() -> AudioConfig {
        AudioConfig { codec: "opus".into(), sample_rate: 48000, number_of_channels: 2, ..Default::default() }
    }

    /// The catalogs published so far, oldest first, from a consumer that started at group 0.
    fn catalogs(track: &mut crate::model::TrackConsumer) -> Vec<Catalog> {
        let mut out = Vec::new();
        while let Some(Ok(Some(TrackEvent::Group(mut group)))) = track.try_next_group() {
            let Some(Ok(Some(frame))) = group.try_next_frame() else { panic!("a catalog group without its frame") };
            out.push(CatalogGroupDecoder::new(CatalogSettings::default()).push(&frame.payload).unwrap());
        }
        out.sort_by_key(|catalog| catalog.video.renditions.len() + catalog.audio.renditions.len());
        out
    }

    #[tokio::test]
    async fn a_held_catalog_publishes_every_change_as_one_update() {
        let mut media = MediaBroadcast::new().unwrap();
        let options = SubscribeOptions { start: GroupStart::Floor(0), ..Default::default() };
        let mut track = media.consume().subscribe_track_with(CATALOG_TRACK, options).await.unwrap();
        media.hold_catalog();
        assert!(media.catalog_held());
        let mut v = media.add_video("video", video()).unwrap();
        let _a = media.add_audio("audio", audio()).unwrap();
        // Still checked at once while held.
        assert!(matches!(media.add_audio("audio", audio()), Err(MediaError::DuplicateRendition(_))));
        // Frames may flow before the catalog describes them.
        v.write(0, true, Bytes::from_static(b"key")).unwrap();
        assert_eq!(track.latest_sequence(), None, "nothing published while held");

        media.release_catalog().unwrap();
        let published = catalogs(&mut track);
        assert_eq!(published.len(), 1, "one update for both renditions");
        assert_eq!(published[0].video.renditions.len() + published[0].audio.renditions.len(), 2);
        // Nothing held, nothing changed: releasing again publishes nothing.
        media.release_catalog().unwrap();
        assert_eq!(track.latest_sequence(), Some(0));

        // Released: each change is published at once again.
        media.update_video("video", VideoConfig { coded_width: Some(128), ..video() }).unwrap();
        assert_eq!(track.latest_sequence(), Some(1));

        // Held at the end: finishing publishes what was held before the catalog track ends.
        media.hold_catalog();
        media.remove("audio").unwrap();
        assert_eq!(track.latest_sequence(), Some(1));
        media.finish().unwrap();
        assert_eq!(track.latest_sequence(), Some(2), "the held removal was published at the finish");
    }
}
