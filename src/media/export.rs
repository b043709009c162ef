//! A hang broadcast out as fragmented MP4: what `moqt subscribe --media fmp4` writes. Each chosen
//! rendition becomes a track (sample entry from the catalog's codec and `description`), each
//! media frame a sample. Legacy frames carry presentation times only, in decode order: decode
//! times are rebuilt per group (the group's presentation times, sorted, in decode order), so
//! B-frames keep their presentation times through composition offsets.

use bytes::Bytes;

use super::catalog::{Catalog, Rendition};
use super::codec::{self, AudioInfo, CodecInfo, VideoInfo};
use super::fmp4::{AudioFormat, Fmp4Writer, TimedSample, TrackConfig, VideoSize};
use super::{MediaError, MediaEvent, MediaFrame, TIMESCALE};

/// Frames a track may hold while it waits for its configuration (an Annex-B track's first
/// keyframe) or for the other tracks' before the init segment can be written.
pub const MAX_WAITING_FRAMES: usize = 1024;

/// How a track's samples reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// As received (length-prefixed video with its record in the catalog, audio packets).
    AsIs,
    /// Annex-B H.264 or H.265: the record is built from the first keyframe's parameter sets and
    /// samples are rewritten length-prefixed.
    AnnexB { h265: bool },
}

struct ExportTrack {
    name: String,
    info: Option<CodecInfo>,
    payload: Payload,
    /// The group being collected (decode times need its presentation times).
    group: Vec<MediaFrame>,
    last_dts: Option<u64>,
}

/// Writes renditions of a hang broadcast as one fragmented MP4.
pub struct Fmp4Export {
    tracks: Vec<ExportTrack>,
    writer: Option<Fmp4Writer>,
    /// Samples that came before the init segment could be written: (track index, sample).
    waiting: Vec<(usize, TimedSample)>,
}

fn codec_error(err: codec::CodecError) -> MediaError {
    MediaError::Catalog(format!("cannot write an MP4 sample entry: {err}"))
}

fn fmp4_error(err: super::fmp4::Fmp4Error) -> MediaError {
    MediaError::Frame { container: "fmp4", reason: err.to_string() }
}

impl Fmp4Export {
    /// An export of the renditions `names` of `catalog`, track `i + 1` for `names[i]`.
    pub fn new(catalog: &Catalog, names: &[&str]) -> Result<Self, MediaError> {
        let mut tracks = Vec::new();
        for name in names {
            let rendition = catalog.rendition(name).ok_or_else(|| MediaError::NoRendition((*name).into()))?;
            let (info, payload) = match rendition {
                Rendition::Video(config) => {
                    let annexb = config.description.is_none()
                        && ["avc1", "avc3", "hev1", "hvc1"].iter().any(|prefix| config.codec.starts_with(prefix));
                    let payload = if annexb {
                        Payload::AnnexB { h265: config.codec.starts_with("hev1") || config.codec.starts_with("hvc1") }
                    } else {
                        Payload::AsIs
                    };
                    let info = (!annexb).then(|| {
                        CodecInfo::Video(VideoInfo {
                            codec: config.codec.clone(),
                            description: config.description.clone(),
                            coded_width: config.coded_width.unwrap_or(0),
                            coded_height: config.coded_height.unwrap_or(0),
                        })
                    });
                    (info, payload)
                }
                Rendition::Audio(config) => {
                    let info = CodecInfo::Audio(AudioInfo {
                        codec: config.codec.clone(),
                        description: config.description.clone(),
                        sample_rate: config.sample_rate,
                        channels: config.number_of_channels,
                    });
                    (Some(info), Payload::AsIs)
                }
            };
            tracks.push(ExportTrack { name: (*name).into(), info, payload, group: Vec::new(), last_dts: None });
        }
        Ok(Self { tracks, writer: None, waiting: Vec::new() })
    }

    /// Takes the next event of track `index` (a position in the `names` given to `new`) and
    /// returns the bytes now ready: the init segment once every track is configured, then
    /// fragments.
    pub fn push(&mut self, index: usize, event: MediaEvent) -> Result<Vec<Bytes>, MediaError> {
        let track = self.tracks.get_mut(index).ok_or_else(|| MediaError::NoRendition(format!("track {index}")))?;
        let track_id = index as u32 + 1;
        let mut samples = Vec::new();
        match event {
            // The group before the gap is complete as it is.
            MediaEvent::Gap(_) => samples.extend(track.flush_group(track_id)?),
            MediaEvent::Frame(mut frame) => {
                if let Payload::AnnexB { h265 } = track.payload {
                    if track.info.is_none() {
                        if !frame.keyframe {
                            tracing::debug!(track = %track.name, "frame before the first keyframe dropped");
                            return Ok(Vec::new());
                        }
                        // The record from the keyframe's parameter sets; the sample entry stays the
                        // in-band kind (avc3/hev1), since the samples keep their parameter sets.
                        let info = if h265 {
                            codec::h265::info_from_annexb(&frame.payload, false)
                        } else {
                            codec::h264::info_from_annexb(&frame.payload, false)
                        };
                        let mut info = info.map_err(codec_error)?;
                        for (out_of_band, in_band) in [("avc1.", "avc3."), ("hvc1.", "hev1.")] {
                            if let Some(rest) = info.codec.strip_prefix(out_of_band) {
                                info.codec = format!("{in_band}{rest}");
                            }
                        }
                        track.info = Some(CodecInfo::Video(info));
                    }
                    frame.payload =
                        codec::annexb::annexb_to_length_prefixed(&frame.payload, 4).map_err(codec_error)?.into();
                }
                if frame.keyframe {
                    samples.extend(track.flush_group(track_id)?);
                }
                track.group.push(frame);
            }
        }
        self.write(index, samples)
    }

    /// Writes what is left: every track's last group and last sample.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, MediaError> {
        let mut out = Vec::new();
        for index in 0..self.tracks.len() {
            let samples = self.tracks[index].flush_group(index as u32 + 1)?;
            out.extend(self.write(index, samples)?);
        }
        if self.writer.is_none() {
            let unconfigured: Vec<&str> =
                self.tracks.iter().filter(|t| t.info.is_none()).map(|t| t.name.as_str()).collect();
            return Err(MediaError::Catalog(format!("no keyframe came for {unconfigured:?}")));
        }
        if let Some(writer) = self.writer.as_mut() {
            out.extend(writer.finish().map_err(fmp4_error)?);
        }
        Ok(out)
    }

    fn write(&mut self, index: usize, samples: Vec<TimedSample>) -> Result<Vec<Bytes>, MediaError> {
        let mut out = Vec::new();
        if self.writer.is_none() {
            self.waiting.extend(samples.into_iter().map(|sample| (index, sample)));
            if self.waiting.len() > MAX_WAITING_FRAMES {
                return Err(MediaError::Catalog(format!(
                    "more than {MAX_WAITING_FRAMES} frames before every track had its configuration"
                )));
            }
            if self.tracks.iter().all(|t| t.info.is_some()) {
                let writer = Fmp4Writer::new(self.configs()?).map_err(fmp4_error)?;
                out.push(writer.init_segment().map_err(fmp4_error)?);
                self.writer = Some(writer);
                let waiting = std::mem::take(&mut self.waiting);
                for (_, sample) in waiting {
                    out.extend(self.push_sample(sample)?);
                }
            }
            return Ok(out);
        }
        for sample in samples {
            out.extend(self.push_sample(sample)?);
        }
        Ok(out)
    }

    fn push_sample(&mut self, sample: TimedSample) -> Result<Option<Bytes>, MediaError> {
        match self.writer.as_mut() {
            Some(writer) => writer.push(sample).map_err(fmp4_error),
            None => Ok(None),
        }
    }

    fn configs(&self) -> Result<Vec<TrackConfig>, MediaError> {
        self.tracks
            .iter()
            .enumerate()
            .map(|(i, track)| {
                let info = track.info.as_ref().ok_or_else(|| MediaError::Catalog("an unconfigured track".into()))?;
                let codec = codec::sample_entry(info).map_err(codec_error)?;
                let (video, audio) = match info {
                    CodecInfo::Video(v) => {
                        let size = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
                        (Some(VideoSize { width: size(v.coded_width), height: size(v.coded_height) }), None)
                    }
                    CodecInfo::Audio(a) => (
                        None,
                        Some(AudioFormat {
                            sample_rate: a.sample_rate,
                            channels: u16::try_from(a.channels).unwrap_or(u16::MAX),
                        }),
                    ),
                };
                Ok(TrackConfig { track_id: i as u32 + 1, timescale: TIMESCALE as u32, codec, video, audio })
            })
            .collect()
    }
}

impl ExportTrack {
    /// The collected group as samples of `track_id` with decode times: the group's presentation times sorted
    /// give the decode times in decode order (never going back, never past the presentation).
    fn flush_group(&mut self, track_id: u32) -> Result<Vec<TimedSample>, MediaError> {
        let group = std::mem::take(&mut self.group);
        let mut sorted: Vec<u64> = group.iter().map(|frame| frame.pts_us).collect();
        sorted.sort_unstable();
        let mut samples = Vec::with_capacity(group.len());
        for (frame, candidate) in group.into_iter().zip(sorted) {
            let dts = match self.last_dts {
                Some(last) if candidate <= last => last + 1,
                _ => candidate,
            };
            self.last_dts = Some(dts);
            let offset = frame.pts_us as i128 - dts as i128;
            let composition_offset = i32::try_from(offset)
                .map_err(|_| MediaError::Timestamp(format!("presentation {offset} µs away from decode")))?;
            samples.push(TimedSample {
                track_id,
                decode_time: dts,
                composition_offset,
                keyframe: frame.keyframe,
                data: frame.payload,
            });
        }
        Ok(samples)
    }
}
