//! The incremental reader: bytes in, an init segment and then fragments out.

use std::collections::HashMap;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use mp4_atom::{Atom, Codec, Decode, DecodeMaybe, FourCC, Ftyp, Header, Mdat, Moof, Moov, Trex};

use super::Fmp4Error;
use super::time::{signed_ticks_to_micros, ticks_to_micros};

/// Largest box the reader buffers by default: 64 MiB. With `frag_keyframe` a whole group of
/// pictures is one mdat, and a 10 s group of 4K video at 40 Mbit/s is 50 MB.
pub const DEFAULT_MAX_BOX_SIZE: usize = 64 << 20;

/// Most samples one fragment may carry by default. A trun may declare four billion samples in
/// twelve bytes; this keeps the sample list, not the input, deciding memory.
pub const DEFAULT_MAX_SAMPLES_PER_FRAGMENT: usize = 1 << 18;

/// The sample flag that marks a sample as not a sync sample (ISO/IEC 14496-12 §8.8.3.1).
pub const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// What the reader buffers at most, so a hostile stream cannot make it allocate without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// The largest box (header included) the reader accepts; a fragment buffers a moof and an mdat.
    pub max_box_size: usize,
    /// The most samples a fragment may hold, across its tracks.
    pub max_samples_per_fragment: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self { max_box_size: DEFAULT_MAX_BOX_SIZE, max_samples_per_fragment: DEFAULT_MAX_SAMPLES_PER_FRAGMENT }
    }
}

/// A track's media kind, from its handler (`hdlr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// A video track (`vide` handler).
    Video,
    /// An audio track (`soun` handler).
    Audio,
    /// Any other handler (subtitles, metadata, ...): read, but not video or audio.
    Other(FourCC),
}

impl TrackKind {
    fn from_handler(handler: FourCC) -> Self {
        match &handler.into() {
            b"vide" => Self::Video,
            b"soun" => Self::Audio,
            _ => Self::Other(handler),
        }
    }
}

/// A video track's coded frame size, from its sample entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSize {
    /// Width in pixels, from the visual sample entry.
    pub width: u16,
    /// Height in pixels, from the visual sample entry.
    pub height: u16,
}

/// An audio track's format, from its sample entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Sample rate in Hz (the integer part of the sample entry's 16.16 rate).
    pub sample_rate: u32,
    /// Channel count: the sample entry's, unless the AAC or Opus configuration says otherwise.
    pub channels: u16,
}

/// One track of an init segment: what a catalog rendition and a decoder need.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    /// The `tkhd` track ID.
    pub track_id: u32,
    /// Video, audio or other, from the `hdlr` handler.
    pub kind: TrackKind,
    /// Ticks per second of every time of this track.
    pub timescale: u32,
    /// The sample entry, for codec strings and decoder configuration.
    pub codec: Codec,
    /// Set for video sample entries.
    pub video: Option<VideoSize>,
    /// Set for audio sample entries.
    pub audio: Option<AudioFormat>,
    /// The track's sample defaults from the moov (`trex`), zero when it has none.
    pub defaults: Trex,
}

/// The init segment (ftyp + moov) and the tracks it declares.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSegment {
    /// The ftyp and moov bytes as read, for pass-through.
    pub bytes: Bytes,
    /// The ftyp, if the stream had one before the moov.
    pub ftyp: Option<Ftyp>,
    /// The parsed moov.
    pub moov: Moov,
    /// The tracks the moov declares, in `trak` order.
    pub tracks: Vec<TrackInfo>,
}

impl InitSegment {
    /// Reads the tracks of a moov; `bytes` are the raw ftyp + moov.
    pub fn new(bytes: Bytes, ftyp: Option<Ftyp>, moov: Moov) -> Result<Self, Fmp4Error> {
        let mvex = moov.mvex.as_ref().ok_or(Fmp4Error::Unsupported(
            "moov without mvex: not a fragmented MP4 (ffmpeg: -movflags frag_keyframe+empty_moov)",
        ))?;
        let mut tracks: Vec<TrackInfo> = Vec::with_capacity(moov.trak.len());
        for trak in &moov.trak {
            let track_id = trak.tkhd.track_id;
            let invalid = |reason| Fmp4Error::InvalidTrack { track_id, reason };
            if tracks.iter().any(|t| t.track_id == track_id) {
                return Err(invalid("declared twice"));
            }
            let timescale = trak.mdia.mdhd.timescale;
            if timescale == 0 {
                return Err(invalid("timescale 0"));
            }
            let codec = match trak.mdia.minf.stbl.stsd.codecs.as_slice() {
                [codec] => codec.clone(),
                [] => return Err(invalid("no sample entry")),
                _ => return Err(invalid("several sample entries (stsd); one per track is supported")),
            };
            let video = codec.visual().map(|v| VideoSize { width: v.width, height: v.height });
            let audio = codec.audio().map(|a| AudioFormat {
                sample_rate: u32::from(a.sample_rate.integer()),
                channels: channel_count(&codec, a.channel_count),
            });
            let defaults = mvex.trex.iter().find(|t| t.track_id == track_id).cloned().unwrap_or(Trex {
                track_id,
                default_sample_description_index: 1,
                ..Default::default()
            });
            tracks.push(TrackInfo {
                track_id,
                kind: TrackKind::from_handler(trak.mdia.hdlr.handler),
                timescale,
                codec,
                video,
                audio,
                defaults,
            });
        }
        Ok(Self { bytes, ftyp, moov, tracks })
    }

    /// The track with this id.
    pub fn track(&self, track_id: u32) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

/// The channels a decoder outputs: the sample entry's count, unless the codec configuration
/// says otherwise (ffmpeg writes 2 in every AAC sample entry, mono included).
fn channel_count(codec: &Codec, sample_entry: u16) -> u16 {
    match codec {
        Codec::Mp4a(mp4a) => {
            let config = &mp4a.esds.es_desc.dec_config;
            // AAC (ISO/IEC 14496-3): channel configurations 1 to 6 are that many, 7 is 7.1.
            match config.dec_specific.as_ref().map(|d| d.chan_conf) {
                Some(channels @ 1..=6) if config.object_type_indication == 0x40 => channels.into(),
                Some(7) if config.object_type_indication == 0x40 => 8,
                _ => sample_entry,
            }
        }
        Codec::Opus(opus) if opus.dops.output_channel_count > 0 => opus.dops.output_channel_count.into(),
        _ => sample_entry,
    }
}

/// One sample (a video frame or a block of audio) of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The `tfhd` track ID of the sample's traf.
    pub track_id: u32,
    /// Decode time in the track's timescale.
    pub decode_time: u64,
    /// Presentation time (decode time + composition offset) in the track's timescale; negative
    /// only for a stream that presents a sample before time zero.
    pub presentation_time: i64,
    /// [`decode_time`](Self::decode_time) in microseconds.
    pub decode_time_us: u64,
    /// [`presentation_time`](Self::presentation_time) in microseconds.
    pub presentation_time_us: i64,
    /// Duration in the track's timescale.
    pub duration: u32,
    /// A sync sample: decoding can start here.
    pub keyframe: bool,
    /// The sample's bytes, a slice of the fragment's mdat (no copy).
    pub data: Bytes,
}

impl Sample {
    /// Presentation time minus decode time, in the track's timescale.
    pub fn composition_offset(&self) -> i64 {
        self.presentation_time - self.decode_time as i64
    }
}

/// A moof and its mdat, with the samples they carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    /// The moof + mdat bytes as read, for pass-through.
    pub bytes: Bytes,
    /// The parsed moof.
    pub moof: Moof,
    /// Bytes of the moof (the mdat follows).
    pub moof_size: usize,
    /// Every sample, traf by traf, in the order of their runs.
    pub samples: Vec<Sample>,
    /// The samples of each traf of the moof, by index into `samples`.
    pub(crate) traf_samples: Vec<Range<usize>>,
}

impl Fragment {
    /// The samples of one track.
    pub fn track_samples(&self, track_id: u32) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.track_id == track_id)
    }

    /// The track ids of the fragment's trafs, in order.
    pub fn track_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.moof.traf.iter().map(|t| t.tfhd.track_id)
    }
}

/// What the reader found in the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Fmp4Event {
    /// The ftyp + moov; comes first, and again if the stream starts over with a new moov.
    Init(Box<InitSegment>),
    /// A moof and its mdat, with their samples.
    Fragment(Fragment),
}

/// A box header found at the start of the buffer.
struct BoxHeader {
    kind: FourCC,
    /// Header plus body.
    total: usize,
}

/// Reads a fragmented MP4 from byte chunks of any size, I/O-free: the caller reads (a file,
/// stdin, a socket) and pushes what it got; complete boxes come out as events. It buffers at most
/// one moof and one mdat, each within [`ReaderLimits::max_box_size`] (plus the part of the last
/// chunk pushed that it has not consumed yet). After an error the stream cannot be resumed.
#[derive(Debug, Default)]
pub struct Fmp4Reader {
    limits: ReaderLimits,
    buffer: BytesMut,
    /// Stream offset of the first buffered byte, for absolute base data offsets.
    consumed: u64,
    ftyp: Option<(Bytes, Ftyp)>,
    init: Option<InitSegment>,
    /// Where each track's next decode time continues when a traf has no tfdt.
    next_decode_time: HashMap<u32, u64>,
}

impl Fmp4Reader {
    /// A reader with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader with these limits.
    pub fn with_limits(limits: ReaderLimits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// The latest init segment read, if any.
    pub fn init(&self) -> Option<&InitSegment> {
        self.init.as_ref()
    }

    /// Bytes buffered, waiting for the rest of their box.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Appends a chunk of the stream and returns the events of every box it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Fmp4Event>, Fmp4Error> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(event) = self.next_event()? {
            events.extend(event);
        }
        Ok(events)
    }

    /// Call at the end of the stream: an error if it ended inside a box.
    pub fn finish(&self) -> Result<(), Fmp4Error> {
        match self.buffer.len() {
            0 => Ok(()),
            left => Err(Fmp4Error::Truncated(left)),
        }
    }

    /// The header of the box starting at `at`, once it is buffered.
    fn peek(&self, at: usize) -> Result<Option<BoxHeader>, Fmp4Error> {
        let Some(mut rest) = self.buffer.get(at..) else { return Ok(None) };
        let before = rest.len();
        let Some(header) = Header::decode_maybe(&mut rest).map_err(Fmp4Error::atom("box header"))? else {
            return Ok(None);
        };
        let header_len = before - rest.len();
        let kind = header.kind;
        let size = header.size.ok_or_else(|| Fmp4Error::UnsizedBox(kind.to_string()))?;
        let total = size.saturating_add(header_len);
        if total > self.limits.max_box_size {
            return Err(Fmp4Error::BoxTooLarge { kind: kind.to_string(), size: total, max: self.limits.max_box_size });
        }
        Ok(Some(BoxHeader { kind, total }))
    }

    /// Consumes the next complete box (or moof + mdat pair): `None` when more bytes are needed,
    /// `Some(None)` for a box that yields no event.
    fn next_event(&mut self) -> Result<Option<Option<Fmp4Event>>, Fmp4Error> {
        let Some(first) = self.peek(0)? else { return Ok(None) };
        if first.kind == Moof::KIND {
            if self.buffer.len() < first.total {
                return Ok(None);
            }
            let Some(second) = self.peek(first.total)? else { return Ok(None) };
            if second.kind != Mdat::KIND {
                return Err(Fmp4Error::MoofWithoutMdat(second.kind.to_string()));
            }
            let total = first.total + second.total;
            if self.buffer.len() < total {
                return Ok(None);
            }
            let offset = self.consumed;
            let bytes = self.take(total);
            return Ok(Some(Some(Fmp4Event::Fragment(self.fragment(bytes, first.total, offset)?))));
        }
        if self.buffer.len() < first.total {
            return Ok(None);
        }
        let bytes = self.take(first.total);
        Ok(Some(match &first.kind.into() {
            b"ftyp" => {
                let ftyp = Ftyp::decode(&mut bytes.as_ref()).map_err(Fmp4Error::atom("ftyp"))?;
                self.ftyp = Some((bytes, ftyp));
                None
            }
            b"moov" => {
                let moov = Moov::decode(&mut bytes.as_ref()).map_err(Fmp4Error::atom("moov"))?;
                let (raw, ftyp) = match self.ftyp.take() {
                    Some((ftyp_bytes, ftyp)) => ([ftyp_bytes, bytes].concat().into(), Some(ftyp)),
                    None => (bytes, None),
                };
                let init = InitSegment::new(raw, ftyp, moov)?;
                self.next_decode_time.clear();
                self.init = Some(init.clone());
                Some(Fmp4Event::Init(Box::new(init)))
            }
            b"mdat" => return Err(Fmp4Error::NotFragmented),
            // styp, sidx, prft, emsg, free, skip, mfra, ...: nothing a sample needs.
            _ => None,
        }))
    }

    fn take(&mut self, len: usize) -> Bytes {
        self.consumed += len as u64;
        self.buffer.split_to(len).freeze()
    }

    /// Parses a moof + mdat (`bytes`, the moof first) into samples.
    fn fragment(&mut self, bytes: Bytes, moof_size: usize, stream_offset: u64) -> Result<Fragment, Fmp4Error> {
        let init = self.init.as_ref().ok_or(Fmp4Error::FragmentBeforeInit)?;
        let moof = Moof::decode(&mut &bytes[..moof_size]).map_err(Fmp4Error::atom("moof"))?;
        // The mdat payload, relative to the moof's first byte like every data offset.
        let mdat_header = {
            let mut rest = &bytes[moof_size..];
            let before = rest.len();
            Header::decode(&mut rest).map_err(Fmp4Error::atom("mdat header"))?;
            before - rest.len()
        };
        let mdat = (moof_size + mdat_header) as i128..bytes.len() as i128;

        let mut samples = Vec::new();
        let mut traf_samples = Vec::with_capacity(moof.traf.len());
        // Where the data of a traf without an explicit base starts: after the previous traf's.
        let mut previous_traf_end: i128 = 0;
        for traf in &moof.traf {
            let tfhd = &traf.tfhd;
            let track_id = tfhd.track_id;
            let track = init.track(track_id).ok_or(Fmp4Error::UnknownTrack(track_id))?;
            if tfhd.sample_description_index.is_some_and(|index| index != 1) {
                return Err(Fmp4Error::InvalidTrack { track_id, reason: "sample description index other than 1" });
            }
            let base: i128 = match tfhd.base_data_offset {
                Some(absolute) => i128::from(absolute) - i128::from(stream_offset),
                None if tfhd.default_base_is_moof => 0,
                None => previous_traf_end,
            };
            let out_of_range = || Fmp4Error::TimestampOutOfRange { track_id };
            let mut decode_time = match &traf.tfdt {
                Some(tfdt) => tfdt.base_media_decode_time,
                None => self.next_decode_time.get(&track_id).copied().unwrap_or(0),
            };
            let default_duration = tfhd.default_sample_duration.unwrap_or(track.defaults.default_sample_duration);
            let default_size = tfhd.default_sample_size.unwrap_or(track.defaults.default_sample_size);
            let default_flags = tfhd.default_sample_flags.unwrap_or(track.defaults.default_sample_flags);

            let first_sample = samples.len();
            let mut position = base;
            for trun in &traf.trun {
                if let Some(data_offset) = trun.data_offset {
                    position = base + i128::from(data_offset);
                }
                if samples.len() + trun.samples.len() > self.limits.max_samples_per_fragment {
                    return Err(Fmp4Error::TooManySamples { max: self.limits.max_samples_per_fragment });
                }
                for entry in trun.samples.iter() {
                    let size = entry.size.unwrap_or(default_size);
                    let duration = entry.duration.unwrap_or(default_duration);
                    let flags = entry.flags.unwrap_or(default_flags);
                    let end = position + i128::from(size);
                    if position < mdat.start || end > mdat.end {
                        return Err(Fmp4Error::SampleOutsideMdat { track_id, offset: position, size });
                    }
                    // Both within the mdat, itself within `bytes`: the casts are exact.
                    let data = bytes.slice(position as usize..end as usize);
                    let presentation_time = i64::try_from(i128::from(decode_time) + i128::from(entry.cts.unwrap_or(0)))
                        .map_err(|_| out_of_range())?;
                    samples.push(Sample {
                        track_id,
                        decode_time,
                        presentation_time,
                        decode_time_us: ticks_to_micros(decode_time, track.timescale).ok_or_else(out_of_range)?,
                        presentation_time_us: signed_ticks_to_micros(presentation_time, track.timescale)
                            .ok_or_else(out_of_range)?,
                        duration,
                        keyframe: flags & SAMPLE_IS_NON_SYNC == 0,
                        data,
                    });
                    position = end;
                    decode_time = decode_time.checked_add(duration.into()).ok_or_else(out_of_range)?;
                }
            }
            previous_traf_end = position;
            traf_samples.push(first_sample..samples.len());
            self.next_decode_time.insert(track_id, decode_time);
        }
        Ok(Fragment { bytes, moof, moof_size, samples, traf_samples })
    }
}
