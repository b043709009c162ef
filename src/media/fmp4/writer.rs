//! The writer: per-track configs in, an init segment and moof + mdat fragments out.

use bytes::Bytes;
use mp4_atom::{
    Atom, Codec, Dinf, Dref, DrefEntry, Encode, FixedPoint, Ftyp, Hdlr, Header, Mdat, Mdhd, Mdia, Mfhd, Minf, Moof,
    Moov, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Url, Vmhd,
};

use super::Fmp4Error;
use super::reader::{AudioFormat, TrackInfo, TrackKind, VideoSize};

/// Sample flags of a sync sample: depends on no other sample (ISO/IEC 14496-12 §8.8.3.1).
const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: depends on others, sample_is_non_sync_sample set.
const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// The ftyp of written init segments (and of split ones whose input had none): ISO BMFF v6, the
/// brand that covers movie fragments.
pub fn default_ftyp() -> Ftyp {
    Ftyp { major_brand: b"iso6".into(), minor_version: 0, compatible_brands: vec![b"iso6".into(), b"mp41".into()] }
}

/// What the writer needs to know about a track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// Nonzero and unique within the writer.
    pub track_id: u32,
    /// Ticks per second of the sample times given for this track.
    pub timescale: u32,
    /// The sample entry; video or audio.
    pub codec: Codec,
    /// The display size for the track header; the sample entry's size when `None`.
    pub video: Option<VideoSize>,
    /// The audio format; the sample entry's when `None` (informational, the entry is written as is).
    pub audio: Option<AudioFormat>,
}

impl TrackConfig {
    /// The config that writes a track like the one read.
    pub fn from_track(track: &TrackInfo) -> Self {
        Self {
            track_id: track.track_id,
            timescale: track.timescale,
            codec: track.codec.clone(),
            video: track.video,
            audio: track.audio,
        }
    }

    fn kind(&self) -> TrackKind {
        if self.codec.visual().is_some() {
            TrackKind::Video
        } else if self.codec.audio().is_some() {
            TrackKind::Audio
        } else {
            TrackKind::Other(b"meta".into())
        }
    }
}

/// A sample of a fragment the caller builds itself, with its duration known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentSample {
    /// In the track's timescale.
    pub duration: u32,
    /// Presentation time minus decode time, in the track's timescale.
    pub composition_offset: i32,
    /// A sync sample: decoding can start here.
    pub keyframe: bool,
    /// The sample's bytes, written to the mdat.
    pub data: Bytes,
}

/// A sample with its time, for [`Fmp4Writer::push`], which derives durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedSample {
    /// The [`TrackConfig::track_id`] of the sample's track.
    pub track_id: u32,
    /// Decode time in the track's timescale; must not go backwards within a track.
    pub decode_time: u64,
    /// Presentation time minus decode time, in the track's timescale (0 without B-frames).
    pub composition_offset: i32,
    /// A sync sample: decoding can start here.
    pub keyframe: bool,
    /// The sample's bytes, written to the mdat.
    pub data: Bytes,
}

#[derive(Debug)]
struct WriterTrack {
    config: TrackConfig,
    /// The last sample pushed: written once the next one gives its duration.
    pending: Option<TimedSample>,
    /// The last duration written, reused by the track's final sample.
    last_duration: u32,
}

/// Writes a fragmented MP4: [`init_segment`](Self::init_segment) once, then fragments. I/O-free:
/// every call returns the bytes to write.
#[derive(Debug)]
pub struct Fmp4Writer {
    tracks: Vec<WriterTrack>,
    sequence_number: u32,
}

impl Fmp4Writer {
    /// A writer for these tracks, which must have nonzero unique ids, nonzero timescales and a
    /// video or audio sample entry.
    pub fn new(tracks: Vec<TrackConfig>) -> Result<Self, Fmp4Error> {
        if tracks.is_empty() {
            return Err(Fmp4Error::Writer("no tracks".into()));
        }
        for (index, track) in tracks.iter().enumerate() {
            let id = track.track_id;
            if id == 0 || tracks[..index].iter().any(|t| t.track_id == id) {
                return Err(Fmp4Error::Writer(format!("track id {id} is 0 or repeated")));
            }
            if track.timescale == 0 {
                return Err(Fmp4Error::Writer(format!("track {id}: timescale 0")));
            }
            if matches!(track.kind(), TrackKind::Other(_)) {
                return Err(Fmp4Error::Writer(format!("track {id}: the sample entry is neither video nor audio")));
            }
        }
        let tracks = tracks.into_iter().map(|config| WriterTrack { config, pending: None, last_duration: 0 }).collect();
        Ok(Self { tracks, sequence_number: 1 })
    }

    /// The ftyp + moov (empty sample tables, an mvex with a trex per track).
    pub fn init_segment(&self) -> Result<Bytes, Fmp4Error> {
        let next_track_id = self.tracks.iter().map(|t| t.config.track_id).max().unwrap_or(0).saturating_add(1);
        let moov = Moov {
            mvhd: Mvhd { timescale: 1000, rate: 1.into(), volume: 1.into(), next_track_id, ..Default::default() },
            mvex: Some(Mvex {
                mehd: None,
                trex: self
                    .tracks
                    .iter()
                    .map(|t| Trex {
                        track_id: t.config.track_id,
                        default_sample_description_index: 1,
                        ..Default::default()
                    })
                    .collect(),
            }),
            trak: self.tracks.iter().map(|t| trak(&t.config)).collect(),
            ..Default::default()
        };
        let mut out = Vec::new();
        default_ftyp().encode(&mut out).map_err(Fmp4Error::atom("encode ftyp"))?;
        moov.encode(&mut out).map_err(Fmp4Error::atom("encode moov"))?;
        Ok(out.into())
    }

    /// One moof + mdat with these samples of one track, the first decoded at `base_decode_time`.
    pub fn fragment(
        &mut self,
        track_id: u32,
        base_decode_time: u64,
        samples: &[FragmentSample],
    ) -> Result<Bytes, Fmp4Error> {
        if !self.tracks.iter().any(|t| t.config.track_id == track_id) {
            return Err(Fmp4Error::UnknownTrack(track_id));
        }
        let any_offset = samples.iter().any(|s| s.composition_offset != 0);
        let mut entries = Vec::with_capacity(samples.len());
        for sample in samples {
            let size = u32::try_from(sample.data.len()).map_err(|_| Fmp4Error::Writer("sample over 4 GiB".into()))?;
            entries.push(TrunEntry {
                duration: Some(sample.duration),
                size: Some(size),
                flags: Some(if sample.keyframe { SYNC_SAMPLE_FLAGS } else { NON_SYNC_SAMPLE_FLAGS }),
                cts: any_offset.then_some(i64::from(sample.composition_offset)),
            });
        }
        let mut moof = Moof {
            mfhd: Mfhd { sequence_number: self.sequence_number },
            traf: vec![Traf {
                tfhd: Tfhd { track_id, default_base_is_moof: true, ..Default::default() },
                tfdt: Some(Tfdt { base_media_decode_time: base_decode_time }),
                trun: vec![Trun { data_offset: Some(0), samples: entries.into() }],
                ..Default::default()
            }],
        };
        let payload: usize = samples.iter().map(|s| s.data.len()).sum();
        let header = Header { kind: Mdat::KIND, size: Some(payload) };
        let mut head = Vec::new();
        moof.encode(&mut head).map_err(Fmp4Error::atom("encode moof"))?;
        let moof_size = head.len();
        head.clear();
        header.encode(&mut head).map_err(Fmp4Error::atom("encode mdat header"))?;
        let data_offset =
            i32::try_from(moof_size + head.len()).map_err(|_| Fmp4Error::Writer("moof over 2 GiB".into()))?;
        moof.traf[0].trun[0].data_offset = Some(data_offset);

        let mut out = Vec::with_capacity(moof_size + head.len() + payload);
        moof.encode(&mut out).map_err(Fmp4Error::atom("encode moof"))?;
        out.extend_from_slice(&head);
        for sample in samples {
            out.extend_from_slice(&sample.data);
        }
        self.sequence_number = self.sequence_number.wrapping_add(1);
        Ok(out.into())
    }

    /// Takes the next sample of a track and returns the fragment of the previous one, whose
    /// duration is the gap between the two; `None` for a track's first sample.
    pub fn push(&mut self, sample: TimedSample) -> Result<Option<Bytes>, Fmp4Error> {
        let track_id = sample.track_id;
        let track =
            self.tracks.iter_mut().find(|t| t.config.track_id == track_id).ok_or(Fmp4Error::UnknownTrack(track_id))?;
        let Some(previous) = track.pending.take() else {
            track.pending = Some(sample);
            return Ok(None);
        };
        let Some(duration) = sample.decode_time.checked_sub(previous.decode_time) else {
            let message = format!(
                "track {track_id}: decode time {} after {} goes backwards",
                sample.decode_time, previous.decode_time
            );
            track.pending = Some(previous);
            return Err(Fmp4Error::Writer(message));
        };
        let Ok(duration) = u32::try_from(duration) else {
            track.pending = Some(previous);
            return Err(Fmp4Error::Writer(format!("track {track_id}: a gap of {duration} ticks between samples")));
        };
        track.last_duration = duration;
        track.pending = Some(sample);
        self.write_timed(previous, duration).map(Some)
    }

    /// Writes each track's last sample, with the duration of the one before it (0 if it was the
    /// only one). Call at the end of the stream.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, Fmp4Error> {
        let mut last = Vec::new();
        for track in &mut self.tracks {
            if let Some(sample) = track.pending.take() {
                last.push((sample, track.last_duration));
            }
        }
        last.into_iter().map(|(sample, duration)| self.write_timed(sample, duration)).collect()
    }

    /// Writes one track's last sample as [`finish`](Self::finish) does, for a track that ends
    /// before the others; `None` if it holds none.
    pub fn finish_track(&mut self, track_id: u32) -> Result<Option<Bytes>, Fmp4Error> {
        let track =
            self.tracks.iter_mut().find(|t| t.config.track_id == track_id).ok_or(Fmp4Error::UnknownTrack(track_id))?;
        let duration = track.last_duration;
        match track.pending.take() {
            Some(sample) => self.write_timed(sample, duration).map(Some),
            None => Ok(None),
        }
    }

    fn write_timed(&mut self, sample: TimedSample, duration: u32) -> Result<Bytes, Fmp4Error> {
        let fragment = FragmentSample {
            duration,
            composition_offset: sample.composition_offset,
            keyframe: sample.keyframe,
            data: sample.data,
        };
        self.fragment(sample.track_id, sample.decode_time, std::slice::from_ref(&fragment))
    }
}

/// The trak of one track: header, media header, handler and a sample table with only the
/// sample entry (every sample is in the fragments).
fn trak(config: &TrackConfig) -> Trak {
    let kind = config.kind();
    let video = config.video.or_else(|| config.codec.visual().map(|v| VideoSize { width: v.width, height: v.height }));
    let (width, height) = match (kind, video) {
        (TrackKind::Video, Some(size)) => (size.width, size.height),
        _ => (0, 0),
    };
    let (handler, name) = match kind {
        TrackKind::Video => (b"vide", "VideoHandler"),
        _ => (b"soun", "SoundHandler"),
    };
    Trak {
        tkhd: Tkhd {
            track_id: config.track_id,
            enabled: true,
            in_movie: true,
            volume: if kind == TrackKind::Audio { 1.into() } else { 0.into() },
            width: FixedPoint::from(width),
            height: FixedPoint::from(height),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd { timescale: config.timescale, language: "und".into(), ..Default::default() },
            hdlr: Hdlr { handler: handler.into(), name: name.into() },
            minf: Minf {
                vmhd: (kind == TrackKind::Video).then(Vmhd::default),
                smhd: (kind == TrackKind::Audio).then(Smhd::default),
                dinf: Dinf { dref: Dref { entries: vec![DrefEntry::Url(Url::default())] } },
                stbl: Stbl {
                    stsd: Stsd { codecs: vec![config.codec.clone()] },
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}
