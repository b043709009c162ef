//! Fragmented MP4 into a hang broadcast: what `moqt publish --media fmp4` does with ffmpeg's
//! output (`-movflags cmaf+frag_keyframe+empty_moov+default_base_moof`). Each track of the init
//! segment becomes a rendition; its samples become frames in the legacy container (the default:
//! the codec payload as the MP4 holds it, length-prefixed, with the decoder record as the
//! catalog's `description`), or its fragments pass through as CMAF.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;

use super::catalog::{AudioConfig, Container, VideoConfig};
use super::codec::{self, CodecInfo};
use super::fmp4::{Fmp4Event, Fmp4Reader, Fragment, InitSegment, TrackKind};
use super::{MediaBroadcast, MediaError, MediaTrackWriter, NewRendition};

/// How imported tracks carry their media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportContainer {
    /// One frame per sample: a varint timestamp, then the sample as the MP4 holds it.
    #[default]
    Legacy,
    /// One frame per fragment of the track, with the track's own init segment in the catalog.
    Cmaf,
}

/// One frame ready to write: where it goes, its time and whether it opens a group.
#[derive(Debug, Clone)]
pub struct ImportFrame {
    /// The MP4 track ID of the frame's rendition.
    pub track_id: u32,
    /// Presentation time in microseconds.
    pub pts_us: u64,
    /// Whether the frame opens a group: at each video keyframe, and at each fragment for audio.
    pub new_group: bool,
    /// The sample as the MP4 holds it (legacy), or the track's own moof + mdat (CMAF).
    pub payload: Bytes,
}

struct ImportTrack {
    writer: MediaTrackWriter,
    video: bool,
}

/// Reads a fragmented MP4 stream and publishes it into a [`MediaBroadcast`].
pub struct Fmp4Import {
    reader: Fmp4Reader,
    container: ImportContainer,
    /// The init segment until the first fragment adds its renditions.
    init: Option<Box<InitSegment>>,
    tracks: BTreeMap<u32, ImportTrack>,
}

fn codec_error(err: codec::CodecError) -> MediaError {
    MediaError::Catalog(format!("cannot describe the track: {err}"))
}

fn fmp4_error(err: super::fmp4::Fmp4Error) -> MediaError {
    MediaError::Frame { container: "fmp4", reason: err.to_string() }
}

impl Fmp4Import {
    /// An importer that publishes the tracks in `container`.
    pub fn new(container: ImportContainer) -> Self {
        Self { reader: Fmp4Reader::new(), container, init: None, tracks: BTreeMap::new() }
    }

    /// Reads the next bytes of the stream: with the first fragment, adds one rendition per audio
    /// or video track of the init segment to `media` (other tracks are skipped); returns the frames the bytes complete,
    /// in stream order, for [`write`](Self::write) (a caller may pace them by `pts_us`).
    pub fn push(&mut self, media: &mut MediaBroadcast, chunk: &[u8]) -> Result<Vec<ImportFrame>, MediaError> {
        let mut frames = Vec::new();
        for event in self.reader.push(chunk).map_err(fmp4_error)? {
            match event {
                // The renditions go into the catalog with the first fragment, which gives the
                // video frame rate (its first sample's duration).
                Fmp4Event::Init(init) => {
                    if self.init.is_some() || !self.tracks.is_empty() {
                        return Err(fmp4_error(super::fmp4::Fmp4Error::Unsupported("a second init segment")));
                    }
                    self.init = Some(init);
                }
                Fmp4Event::Fragment(fragment) => {
                    if let Some(init) = self.init.take() {
                        self.add_renditions(media, &init, &fragment)?;
                    }
                    frames.extend(self.frames_of(&fragment)?);
                }
            }
        }
        Ok(frames)
    }

    /// The frames of one fragment, for the tracks that are renditions.
    fn frames_of(&self, fragment: &Fragment) -> Result<Vec<ImportFrame>, MediaError> {
        let mut frames = Vec::new();
        match self.container {
            ImportContainer::Legacy => {
                // Audio groups follow the fragments (every audio sample is a sync sample; a group
                // per packet would be a stream per 20 ms).
                let mut first_of_track = HashSet::new();
                for sample in &fragment.samples {
                    let Some(track) = self.tracks.get(&sample.track_id) else { continue };
                    let first = first_of_track.insert(sample.track_id);
                    frames.push(ImportFrame {
                        track_id: sample.track_id,
                        pts_us: presentation_us(sample.presentation_time_us)?,
                        new_group: if track.video { sample.keyframe } else { first },
                        payload: sample.data.clone(),
                    });
                }
            }
            ImportContainer::Cmaf => {
                for part in fragment.split_by_track().map_err(fmp4_error)? {
                    let Some(track) = self.tracks.get(&part.track_id) else { continue };
                    let Some(first) = fragment.track_samples(part.track_id).next() else { continue };
                    frames.push(ImportFrame {
                        track_id: part.track_id,
                        pts_us: presentation_us(first.presentation_time_us)?,
                        new_group: !track.video || first.keyframe,
                        payload: part.bytes,
                    });
                }
            }
        }
        Ok(frames)
    }

    /// Writes one frame from [`push`](Self::push).
    pub fn write(&mut self, frame: ImportFrame) -> Result<u64, MediaError> {
        let track = self
            .tracks
            .get_mut(&frame.track_id)
            .ok_or_else(|| MediaError::NoRendition(format!("track {}", frame.track_id)))?;
        track.writer.write(frame.pts_us, frame.new_group, frame.payload)
    }

    /// The writers, to wait for subscribers before writing.
    pub fn writers(&self) -> impl Iterator<Item = &MediaTrackWriter> {
        self.tracks.values().map(|track| &track.writer)
    }

    /// Checks that the stream ended on a box boundary, then finishes every track.
    pub fn finish(self) -> Result<(), MediaError> {
        let complete = self.reader.finish().map_err(fmp4_error);
        for (_, track) in self.tracks {
            track.writer.finish()?;
        }
        complete
    }

    fn add_renditions(
        &mut self,
        media: &mut MediaBroadcast,
        init: &InitSegment,
        first: &Fragment,
    ) -> Result<(), MediaError> {
        let videos = init.tracks.iter().filter(|t| t.kind == TrackKind::Video).count();
        let audios = init.tracks.iter().filter(|t| t.kind == TrackKind::Audio).count();
        let mut renditions = Vec::new();
        let mut ids = Vec::new();
        for track in &init.tracks {
            let container = match self.container {
                ImportContainer::Legacy => Container::Legacy,
                ImportContainer::Cmaf => Container::Cmaf { init: init.track_init(track.track_id).map_err(fmp4_error)? },
            };
            let name = |kind: &str, count: usize| match count {
                1 => kind.to_owned(),
                _ => format!("{kind}{}", track.track_id),
            };
            let rendition = match (track.kind, codec::from_sample_entry(&track.codec).map_err(codec_error)?) {
                (TrackKind::Video, CodecInfo::Video(info)) => NewRendition::Video(
                    name("video", videos),
                    VideoConfig {
                        codec: info.codec,
                        description: info.description,
                        coded_width: Some(info.coded_width),
                        coded_height: Some(info.coded_height),
                        framerate: first
                            .track_samples(track.track_id)
                            .next()
                            .filter(|sample| sample.duration > 0)
                            .map(|sample| f64::from(track.timescale) / f64::from(sample.duration)),
                        container,
                        ..Default::default()
                    },
                ),
                (TrackKind::Audio, CodecInfo::Audio(info)) => NewRendition::Audio(
                    name("audio", audios),
                    AudioConfig {
                        codec: info.codec,
                        sample_rate: info.sample_rate,
                        number_of_channels: info.channels,
                        description: info.description,
                        container,
                        ..Default::default()
                    },
                ),
                (kind, _) => {
                    tracing::warn!(track = track.track_id, ?kind, "track skipped: neither audio nor video");
                    continue;
                }
            };
            ids.push((track.track_id, matches!(rendition, NewRendition::Video(..))));
            renditions.push(rendition);
        }
        // One catalog update for all of them: no subscriber sees the video without the audio.
        let writers = media.add_renditions(renditions)?;
        for ((track_id, video), writer) in ids.into_iter().zip(writers) {
            self.tracks.insert(track_id, ImportTrack { writer, video });
        }
        Ok(())
    }
}

/// A presentation time in microseconds; before zero is refused (an edit list would shift it,
/// and moq-lite timestamps are unsigned).
fn presentation_us(pts: i64) -> Result<u64, MediaError> {
    u64::try_from(pts).map_err(|_| MediaError::Timestamp(format!("presentation time {pts} µs is before zero")))
}
