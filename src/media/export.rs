//! A hang broadcast out as fragmented MP4: what `moqt subscribe --media fmp4` writes. Each chosen
//! rendition becomes a track (sample entry from the catalog's codec and `description`), each
//! media frame a sample. Legacy frames carry presentation times only, in decode order: decode
//! times are rebuilt per group (the group's presentation times, sorted, in decode order), so
//! B-frames keep their presentation times through composition offsets.
//!
//! A live broadcast's catalog changes ([`update`](Fmp4Export::update)). The file keeps the tracks
//! of its first init segment, as MSE and ffmpeg require: a rendition taken out of the catalog ends
//! its track (once what was on its way has come); one added is not written. A changed configuration (codec, `description`, size,
//! rate) applies from the rendition's next keyframe (an Annex-B track's parameter sets are
//! followed in band as well) and is written as a new init segment (ftyp + moov, same track ids)
//! between whole groups, so every video track resumes with a keyframe, as MSE re-initialisation
//! and concatenated CMAF segments expect. Readers that keep only the first moov (ffmpeg, a file
//! read by GStreamer's qtdemux) still decode H.264/H.265 across the change: once its record
//! changed, a track carries its parameter sets in band before each keyframe (sample entry
//! avc3/hev1).

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
    /// Annex-B H.264 or H.265: the record is built from each keyframe's parameter sets and
    /// samples are rewritten length-prefixed.
    AnnexB { h265: bool },
}

/// What a rendition's catalog entry says about writing it: the sample entry's fields (`None`
/// for Annex-B until a keyframe gives them) and how its payload is written.
#[derive(Debug, Clone, PartialEq)]
struct Setup {
    info: Option<CodecInfo>,
    payload: Payload,
}

impl Setup {
    fn of(rendition: Rendition<'_>) -> Self {
        match rendition {
            Rendition::Video(config) => {
                let annexb = config.description.is_none()
                    && ["avc1", "avc3", "hev1", "hvc1"].iter().any(|prefix| config.codec.starts_with(prefix));
                if annexb {
                    let h265 = config.codec.starts_with("hev1") || config.codec.starts_with("hvc1");
                    return Self { info: None, payload: Payload::AnnexB { h265 } };
                }
                let info = CodecInfo::Video(VideoInfo {
                    codec: config.codec.clone(),
                    description: config.description.clone(),
                    coded_width: config.coded_width.unwrap_or(0),
                    coded_height: config.coded_height.unwrap_or(0),
                });
                Self { info: Some(info), payload: Payload::AsIs }
            }
            Rendition::Audio(config) => {
                let info = CodecInfo::Audio(AudioInfo {
                    codec: config.codec.clone(),
                    description: config.description.clone(),
                    sample_rate: config.sample_rate,
                    channels: config.number_of_channels,
                });
                Self { info: Some(info), payload: Payload::AsIs }
            }
        }
    }
}

struct ExportTrack {
    name: String,
    /// The configuration of the group being collected.
    setup: Setup,
    /// A catalog change, for the next keyframe.
    next: Option<Setup>,
    /// The configuration as the catalog last gave it, which updates are compared with.
    announced: Setup,
    /// Length-prefixed parameter sets written before each keyframe once a described H.264/H.265
    /// record changed (readers that keep the first moov need them in band).
    in_band: Option<Bytes>,
    /// The group being collected (decode times need its presentation times).
    group: Vec<MediaFrame>,
    last_dts: Option<u64>,
    /// Out of the catalog (reported once).
    removed: bool,
    /// Ended: nothing more is written.
    ended: bool,
}

/// What a catalog update means for the export (positions in the `names` given to `new`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExportUpdate {
    /// Tracks whose rendition left the catalog: what is on its way may still come, then
    /// [`Fmp4Export::end`] ends them.
    pub removed: Vec<usize>,
    /// Tracks whose configuration changed: a new init segment comes before their next group.
    pub changed: Vec<usize>,
    /// Renditions of the catalog the file does not have: not written.
    pub not_written: Vec<String>,
}

/// Writes renditions of a hang broadcast as one fragmented MP4.
pub struct Fmp4Export {
    tracks: Vec<ExportTrack>,
    writer: Option<Fmp4Writer>,
    /// Each track's configuration as the last init segment wrote it.
    written: Vec<Option<CodecInfo>>,
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
            tracks.push(ExportTrack {
                name: (*name).into(),
                setup: Setup::of(rendition),
                announced: Setup::of(rendition),
                next: None,
                in_band: None,
                group: Vec::new(),
                last_dts: None,
                removed: false,
                ended: false,
            });
        }
        Ok(Self { tracks, writer: None, written: Vec::new(), waiting: Vec::new() })
    }

    /// The track names, in track order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tracks.iter().map(|track| track.name.as_str())
    }

    /// Follows a newer catalog: a changed rendition takes its new configuration at its next
    /// keyframe; one gone from the catalog is reported once in `removed` (its caller ends it with
    /// [`end`](Self::end) when its frames stop); renditions the file does not have are listed.
    pub fn update(&mut self, catalog: &Catalog) -> Result<ExportUpdate, MediaError> {
        let mut update = ExportUpdate::default();
        for (index, track) in self.tracks.iter_mut().enumerate() {
            if track.ended || track.removed {
                continue;
            }
            match catalog.rendition(&track.name) {
                None => {
                    track.removed = true;
                    update.removed.push(index);
                }
                Some(rendition) => {
                    let setup = Setup::of(rendition);
                    if setup != track.announced {
                        track.announced = setup.clone();
                        // An Annex-B track's record comes from its keyframes.
                        if setup.payload != track.setup.payload || setup.info.is_some() {
                            track.next = Some(setup);
                        }
                        update.changed.push(index);
                    }
                }
            }
        }
        update.not_written = catalog
            .renditions()
            .map(|(name, _)| name)
            .filter(|name| !self.tracks.iter().any(|track| track.name == *name))
            .map(str::to_owned)
            .collect();
        Ok(update)
    }

    /// Ends track `index` (its rendition left the catalog, or its track ended): its last group
    /// and last sample are written now; later events of it are ignored.
    pub fn end(&mut self, index: usize) -> Result<Vec<Bytes>, MediaError> {
        let track = self.tracks.get_mut(index).ok_or_else(|| MediaError::NoRendition(format!("track {index}")))?;
        if track.ended {
            return Ok(Vec::new());
        }
        let samples = track.flush_group(index as u32 + 1)?;
        let mut out = self.write(index, samples)?;
        self.tracks[index].ended = true;
        if let Some(writer) = self.writer.as_mut() {
            out.extend(writer.finish_track(index as u32 + 1).map_err(fmp4_error)?);
        }
        // The others may have waited for this one's configuration.
        out.extend(self.write(index, Vec::new())?);
        Ok(out)
    }

    /// Takes the next event of track `index` (a position in the `names` given to `new`) and
    /// returns the bytes now ready: the init segment once every track is configured, then
    /// fragments (and a new init segment before the first group of a changed configuration).
    pub fn push(&mut self, index: usize, event: MediaEvent) -> Result<Vec<Bytes>, MediaError> {
        let track = self.tracks.get_mut(index).ok_or_else(|| MediaError::NoRendition(format!("track {index}")))?;
        if track.ended {
            return Ok(Vec::new());
        }
        let track_id = index as u32 + 1;
        let mut out = Vec::new();
        match event {
            // The group before the gap is complete as it is.
            MediaEvent::Gap(_) => {
                let samples = track.flush_group(track_id)?;
                out.extend(self.write(index, samples)?);
            }
            MediaEvent::Frame(frame) => {
                if track.setup.info.is_none() && !frame.keyframe {
                    tracing::debug!(track = %track.name, "frame before the first keyframe dropped");
                    return Ok(Vec::new());
                }
                if frame.keyframe {
                    // The group before is written under its own configuration, then the new one starts.
                    let samples = track.flush_group(track_id)?;
                    out.extend(self.write(index, samples)?);
                    self.tracks[index].begin_group(&frame)?;
                }
                let track = &mut self.tracks[index];
                let frame = track.sample_of(frame)?;
                track.group.push(frame);
                out.extend(self.write(index, Vec::new())?);
            }
        }
        Ok(out)
    }

    /// Writes what is left: every track's last group and last sample.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, MediaError> {
        let mut out = Vec::new();
        for index in 0..self.tracks.len() {
            if self.tracks[index].ended {
                continue;
            }
            let samples = self.tracks[index].flush_group(index as u32 + 1)?;
            out.extend(self.write(index, samples)?);
        }
        if self.writer.is_none() {
            let unconfigured: Vec<&str> =
                self.tracks.iter().filter(|t| !t.ended && t.setup.info.is_none()).map(|t| t.name.as_str()).collect();
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
            if self.tracks.iter().all(|t| t.ended || t.setup.info.is_some())
                && self.tracks.iter().any(|t| t.setup.info.is_some())
            {
                out.push(self.start_writer()?);
                let waiting = std::mem::take(&mut self.waiting);
                for (_, sample) in waiting {
                    out.extend(self.push_sample(sample)?);
                }
            }
            return Ok(out);
        }
        // The first samples of a changed configuration: the samples held for the old one are
        // written, then the new init segment.
        if !samples.is_empty() && self.written.get(index) != Some(&self.tracks[index].setup.info) {
            if let Some(writer) = self.writer.as_mut() {
                out.extend(writer.finish().map_err(fmp4_error)?);
            }
            out.push(self.start_writer()?);
        }
        for sample in samples {
            out.extend(self.push_sample(sample)?);
        }
        Ok(out)
    }

    /// A writer for the tracks' configurations as they are now; returns its init segment.
    fn start_writer(&mut self) -> Result<Bytes, MediaError> {
        let writer = Fmp4Writer::new(self.configs()?).map_err(fmp4_error)?;
        let init = writer.init_segment().map_err(fmp4_error)?;
        self.writer = Some(writer);
        self.written = self.tracks.iter().map(|track| track.setup.info.clone()).collect();
        Ok(init)
    }

    fn push_sample(&mut self, sample: TimedSample) -> Result<Option<Bytes>, MediaError> {
        match self.writer.as_mut() {
            Some(writer) => writer.push(sample).map_err(fmp4_error),
            None => Ok(None),
        }
    }

    /// The configured tracks' configs (a track that ended before its first keyframe has none).
    fn configs(&self) -> Result<Vec<TrackConfig>, MediaError> {
        let mut configs = Vec::new();
        for (i, track) in self.tracks.iter().enumerate() {
            let Some(info) = track.setup.info.as_ref() else { continue };
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
            configs.push(TrackConfig { track_id: i as u32 + 1, timescale: TIMESCALE as u32, codec, video, audio });
        }
        Ok(configs)
    }
}

impl ExportTrack {
    /// A keyframe starts a group: a catalog change waiting for it applies, an Annex-B track takes
    /// its record from the keyframe's parameter sets, and a described H.264/H.265 record that
    /// changed is carried in band from now on.
    fn begin_group(&mut self, keyframe: &MediaFrame) -> Result<(), MediaError> {
        if let Some(next) = self.next.take() {
            let old = std::mem::replace(&mut self.setup, next);
            if old.info.is_some() {
                self.in_band = None;
                if let Some(CodecInfo::Video(info)) = self.setup.info.as_mut() {
                    self.in_band = in_band_parameter_sets(info)?;
                }
            }
        }
        if let Payload::AnnexB { h265 } = self.setup.payload {
            let info = if h265 {
                codec::h265::info_from_annexb(&keyframe.payload, false)
            } else {
                codec::h264::info_from_annexb(&keyframe.payload, false)
            };
            match info {
                Ok(mut info) => {
                    // The sample entry stays the in-band kind (avc3/hev1): the samples keep their
                    // parameter sets.
                    for (out_of_band, in_band) in [("avc1.", "avc3."), ("hvc1.", "hev1.")] {
                        if let Some(rest) = info.codec.strip_prefix(out_of_band) {
                            info.codec = format!("{in_band}{rest}");
                        }
                    }
                    self.setup.info = Some(CodecInfo::Video(info));
                }
                // A keyframe without parameter sets keeps the ones before it.
                Err(err) if self.setup.info.is_some() => {
                    tracing::debug!(track = %self.name, "keyframe without a usable record, the last one kept: {err}");
                }
                Err(err) => return Err(codec_error(err)),
            }
        }
        Ok(())
    }

    /// A frame's payload as the file's sample: Annex-B rewritten length-prefixed, a keyframe
    /// after a record change with the parameter sets before it.
    fn sample_of(&self, mut frame: MediaFrame) -> Result<MediaFrame, MediaError> {
        if let Payload::AnnexB { .. } = self.setup.payload {
            frame.payload = codec::annexb::annexb_to_length_prefixed(&frame.payload, 4).map_err(codec_error)?.into();
        } else if let (Some(sets), true) = (&self.in_band, frame.keyframe) {
            frame.payload = [sets.as_ref(), frame.payload.as_ref()].concat().into();
        }
        Ok(frame)
    }

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

/// The parameter sets of a described H.264/H.265 record, length-prefixed as its samples are, for
/// carrying them in band; the codec string becomes the in-band kind (avc3/hev1) to say so.
/// `None` for other codecs.
fn in_band_parameter_sets(info: &mut VideoInfo) -> Result<Option<Bytes>, MediaError> {
    let Some(record) = info.description.as_ref() else { return Ok(None) };
    let (length_size, nals): (u8, Vec<Vec<u8>>) = if info.codec.starts_with("avc1") || info.codec.starts_with("avc3") {
        let avcc = codec::h264::parse_avcc(record).map_err(codec_error)?;
        (avcc.length_size, avcc.sequence_parameter_sets.into_iter().chain(avcc.picture_parameter_sets).collect())
    } else if info.codec.starts_with("hvc1") || info.codec.starts_with("hev1") {
        let hvcc = codec::h265::parse_hvcc(record).map_err(codec_error)?;
        (hvcc.length_size_minus_one + 1, hvcc.arrays.into_iter().flat_map(|array| array.nalus).collect())
    } else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for nal in nals {
        let size = usize::from(length_size.clamp(1, 4));
        let length = u32::try_from(nal.len()).ok().filter(|n| size == 4 || *n < 1 << (8 * size));
        let length =
            length.ok_or_else(|| MediaError::Catalog("a parameter set longer than its length field".into()))?;
        out.extend_from_slice(&length.to_be_bytes()[4 - size..]);
        out.extend_from_slice(&nal);
    }
    for (out_of_band, in_band) in [("avc1.", "avc3."), ("hvc1.", "hev1.")] {
        if let Some(rest) = info.codec.strip_prefix(out_of_band) {
            info.codec = format!("{in_band}{rest}");
        }
    }
    Ok(Some(out.into()))
}
