//! Consuming a hang broadcast: the catalog as it changes, and a media track's frames with their
//! presentation times, in decode order.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::catalog::{CATALOG_TRACK, Catalog, CatalogGroupDecoder, CatalogSettings, Container, Rendition};
use super::cmaf::CmafUnpacker;
use super::{MediaError, legacy, priority};
use crate::coding::StreamCode;
use crate::model::{
    self, BroadcastConsumer, Gap, GapReason, GroupConsumer, GroupStart, OrderedConsumer, OrderedEvent,
    SubscribeOptions, TrackConsumer, TrackEvent,
};

/// Yields each complete catalog of a broadcast: the newest group's first frame, with the merge
/// patches that follow it applied in order. A newer group replaces the one being read.
pub struct CatalogReader {
    track: TrackConsumer,
    settings: CatalogSettings,
    group: Option<(GroupConsumer, CatalogGroupDecoder)>,
    track_ended: bool,
}

impl CatalogReader {
    /// Subscribes to `catalog.json` of `broadcast`, at the catalog's priority.
    pub async fn subscribe(broadcast: &BroadcastConsumer, settings: CatalogSettings) -> Result<Self, MediaError> {
        // The newest catalog is the whole truth: older groups are superseded.
        let options =
            SubscribeOptions { start: GroupStart::Latest, priority: Some(priority::CATALOG), ..Default::default() };
        let track = broadcast.subscribe_track_with(CATALOG_TRACK, options).await?;
        Ok(Self::new(track, settings))
    }

    /// Reads catalogs from an already subscribed catalog track.
    pub fn new(track: TrackConsumer, settings: CatalogSettings) -> Self {
        Self { track, settings, group: None, track_ended: false }
    }

    /// The next catalog; `None` once the catalog track ended. A malformed catalog is an error
    /// for that group only: the next call waits for a newer group.
    pub async fn next(&mut self) -> Result<Option<Catalog>, MediaError> {
        loop {
            let Self { track, settings, group, track_ended } = self;
            match group {
                Some((consumer, decoder)) if !*track_ended => {
                    tokio::select! {
                        biased;
                        event = track.next_group() => match event? {
                            Some(TrackEvent::Group(newer)) => *group = Some((newer, CatalogGroupDecoder::new(*settings))),
                            // A lost catalog group is superseded by the next one.
                            Some(TrackEvent::Gap(_)) => {}
                            None => *track_ended = true,
                        },
                        frame = consumer.next_frame() => match frame {
                            Ok(Some(frame)) => return decoder.push(&frame.payload).map(Some).inspect_err(|_| *group = None),
                            // Done (or lost): wait for a newer group.
                            Ok(None) | Err(_) => *group = None,
                        },
                    }
                }
                Some((consumer, decoder)) => match consumer.next_frame().await {
                    Ok(Some(frame)) => return decoder.push(&frame.payload).map(Some).inspect_err(|_| *group = None),
                    Ok(None) | Err(_) => *group = None,
                },
                None if *track_ended => return Ok(None),
                None => match track.next_group().await? {
                    Some(TrackEvent::Group(newer)) => *group = Some((newer, CatalogGroupDecoder::new(*settings))),
                    Some(TrackEvent::Gap(_)) => {}
                    None => *track_ended = true,
                },
            }
        }
    }
}

/// One media frame (one sample: an access unit or an audio packet).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFrame {
    /// The group it came in.
    pub group: u64,
    /// Presentation time in microseconds.
    pub pts_us: u64,
    /// A keyframe: the decoder can start here.
    pub keyframe: bool,
    /// The codec payload (for CMAF, the sample's bytes out of the fragment's mdat, not copied).
    pub payload: Bytes,
}

/// One step of a media track read.
#[derive(Debug)]
pub enum MediaEvent {
    /// A frame of the track.
    Frame(MediaFrame),
    /// Groups that will not be delivered; the next frame is a keyframe.
    Gap(Gap),
}

/// Where a media track read starts and how long a late group may hold it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Default [`GroupStart::Latest`]: a live player starts at the group in progress (from its
    /// keyframe). `Floor(0)` starts at the oldest group the publisher still keeps (a recorder).
    pub start: GroupStart,
    /// A group that has not completed this long after a newer one started is skipped and
    /// reported as a gap. Default [`OrderedConsumer::DEFAULT_MAX_LATENCY`] (1 s).
    pub max_latency: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { start: GroupStart::Latest, max_latency: OrderedConsumer::DEFAULT_MAX_LATENCY }
    }
}

/// Reads one rendition's frames in decode order, groups in ascending sequence, each starting
/// with a keyframe; a group later than the latency bound is skipped and reported as a gap.
pub struct MediaTrackReader {
    ordered: OrderedConsumer,
    container: Container,
    /// Samples of a CMAF fragment not handed out yet.
    pending: VecDeque<MediaFrame>,
    /// A group with a malformed frame: reported, the rest of it dropped.
    broken_group: Option<u64>,
    /// The fragment reader of a CMAF rendition.
    cmaf: Option<CmafUnpacker>,
    /// An audio rendition: every frame is a keyframe.
    audio: bool,
}

impl MediaTrackReader {
    /// Subscribes to rendition `name` of `catalog`, read in order as `options` say.
    pub async fn subscribe(
        broadcast: &BroadcastConsumer,
        catalog: &Catalog,
        name: &str,
        options: ReadOptions,
    ) -> Result<Self, MediaError> {
        let rendition = catalog.rendition(name).ok_or_else(|| MediaError::NoRendition(name.into()))?;
        let container = rendition.container().clone();
        if let Container::Unknown(_) = container {
            return Err(MediaError::UnsupportedContainer { name: name.into(), kind: container.kind().into() });
        }
        let priority = match rendition {
            Rendition::Video(_) => priority::VIDEO,
            Rendition::Audio(_) => priority::AUDIO,
        };
        let subscribe = SubscribeOptions { start: options.start, priority: Some(priority), ..Default::default() };
        let track = broadcast.subscribe_track_with(name, subscribe).await?;
        Self::new(track.ordered(options.max_latency), container, matches!(rendition, Rendition::Audio(_)))
    }

    /// Reads frames of an ordered track in `container`; a CMAF init segment that cannot be read
    /// is an error here, before any frame. `audio`: every frame is a keyframe (audio packets
    /// decode on their own), not only a group's first.
    pub fn new(ordered: OrderedConsumer, container: Container, audio: bool) -> Result<Self, MediaError> {
        let cmaf = match &container {
            Container::Cmaf { init } => Some(CmafUnpacker::new(init.clone())?),
            _ => None,
        };
        Ok(Self { ordered, container, audio, pending: VecDeque::new(), broken_group: None, cmaf })
    }

    /// Reads the frames from now on in `container`, for a catalog update that changed it (a new
    /// CMAF init segment); an unreadable one leaves the reader as it was.
    pub fn set_container(&mut self, container: Container) -> Result<(), MediaError> {
        if container == self.container {
            return Ok(());
        }
        self.cmaf = match &container {
            Container::Cmaf { init } => Some(CmafUnpacker::new(init.clone())?),
            Container::Legacy => None,
            Container::Unknown(_) => {
                let kind = container.kind().to_owned();
                return Err(MediaError::UnsupportedContainer { name: "a rendition".into(), kind });
            }
        };
        self.container = container;
        Ok(())
    }

    /// The next frame or gap; `None` once the track ended cleanly. A frame that does not fit its
    /// container ends its group: the group is reported as a gap (MALFORMED_TRACK) and its later
    /// frames, which depend on it, are dropped.
    pub async fn next(&mut self) -> Result<Option<MediaEvent>, MediaError> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(Some(MediaEvent::Frame(frame)));
            }
            let (group, index, frame) = match self.ordered.next_frame().await? {
                None => return Ok(None),
                Some(OrderedEvent::Gap(gap)) => return Ok(Some(MediaEvent::Gap(gap))),
                Some(OrderedEvent::Frame { group, index, frame }) => (group, index, frame),
            };
            if self.broken_group == Some(group) {
                continue;
            }
            match self.unpack(group, index, &frame.payload) {
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(group, index, "media frame dropped with the rest of its group: {err}");
                    self.broken_group = Some(group);
                    let reason = GapReason::Aborted(model::Error::Aborted(StreamCode::MalformedTrack));
                    return Ok(Some(MediaEvent::Gap(Gap { start: group, end: group, reason })));
                }
            }
        }
    }

    /// Queues the samples of one moq frame.
    fn unpack(&mut self, group: u64, index: u64, payload: &Bytes) -> Result<(), MediaError> {
        match &self.container {
            Container::Legacy => {
                let (pts_us, payload) = legacy::decode(payload)?;
                self.pending.push_back(MediaFrame { group, pts_us, keyframe: index == 0 || self.audio, payload });
            }
            Container::Cmaf { .. } => {
                let Some(cmaf) = self.cmaf.as_mut() else {
                    return Err(MediaError::Frame { container: "cmaf", reason: "no init segment".into() });
                };
                let samples = cmaf.samples(group, payload)?;
                if samples.is_empty() {
                    return Err(MediaError::Frame { container: "cmaf", reason: "a fragment with no sample".into() });
                }
                self.pending.extend(samples);
            }
            Container::Unknown(_) => {
                return Err(MediaError::Frame { container: "unknown", reason: "not readable".into() });
            }
        }
        Ok(())
    }
}
