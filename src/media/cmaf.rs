//! The CMAF container: each moq frame is one moof+mdat fragment of the rendition's init segment
//! (ftyp+moov, base64 in the catalog). Read with the fMP4 reader, which keeps each track's decode
//! time across fragments.

use bytes::Bytes;

use super::codec::{self, CodecInfo};
use super::fmp4::{Fmp4Event, Fmp4Reader, Fmp4Writer, FragmentSample, MICROS_PER_SECOND, TrackConfig};
use super::{MediaError, MediaFrame};

/// The track id of a packed rendition's init segment (one track each).
const PACKED_TRACK_ID: u32 = 1;

/// Packs a rendition's samples as CMAF for a host that has samples, not fragments: an init
/// segment made from the codec fields (in microseconds), then one moof+mdat per sample, so each
/// moq frame is one fragment as hang's CMAF container has it. A sample's duration is not known
/// until the next one: each takes the interval before it (the first, `first_duration_us`), so
/// nothing waits for the next sample. Each fragment's tfdt is the sample's decode time and its
/// trun (version 1, signed) the composition offset to the presentation time, so streams with
/// B-frames keep both; durations are decode-time intervals.
#[derive(Debug)]
pub(crate) struct CmafPacker {
    writer: Fmp4Writer,
    init: Bytes,
    /// Annex-B samples (H.264/H.265 with parameter sets in band), written length-prefixed.
    annexb: bool,
    last_dts: Option<u64>,
    duration: u32,
}

impl CmafPacker {
    /// A packer for `info`, which needs its decoder record (avcC, hvcC) for H.264/H.265.
    pub(crate) fn new(info: &CodecInfo, annexb: bool, first_duration_us: u32) -> Result<Self, MediaError> {
        let entry = codec::sample_entry(info)
            .map_err(|err| MediaError::Catalog(format!("cannot pack CMAF: the sample entry: {err}")))?;
        let timescale = MICROS_PER_SECOND;
        let config = TrackConfig { track_id: PACKED_TRACK_ID, timescale, codec: entry, video: None, audio: None };
        let writer = Fmp4Writer::new(vec![config]).map_err(cmaf_error)?;
        let init = writer.init_segment().map_err(cmaf_error)?;
        Ok(Self { writer, init, annexb, last_dts: None, duration: first_duration_us })
    }

    /// The init segment (ftyp+moov) for the catalog.
    pub(crate) fn init(&self) -> &Bytes {
        &self.init
    }

    /// True if it converts Annex-B samples.
    pub(crate) fn annexb(&self) -> bool {
        self.annexb
    }

    /// One sample as one fragment: decoded at `dts_us`, presented at `pts_us` (the same time
    /// without B-frames). Decode times must not go backwards, and the two times must lie within
    /// ±35 minutes of each other (a 32-bit offset in microseconds): otherwise
    /// [`MediaError::Timestamp`] and nothing is packed.
    pub(crate) fn pack(
        &mut self,
        pts_us: u64,
        dts_us: u64,
        keyframe: bool,
        payload: Bytes,
    ) -> Result<Bytes, MediaError> {
        let composition_offset = i128::from(pts_us) - i128::from(dts_us);
        let composition_offset = i32::try_from(composition_offset).map_err(|_| {
            MediaError::Timestamp(format!("presentation time {pts_us} µs is too far from decode time {dts_us} µs"))
        })?;
        if let Some(last) = self.last_dts.filter(|last| dts_us < *last) {
            return Err(MediaError::Timestamp(format!(
                "decode time {dts_us} µs after {last} µs goes backwards (with B-frames, give each sample its decode time)"
            )));
        }
        let data = if self.annexb {
            codec::annexb::annexb_to_length_prefixed(&payload, 4).map_err(cmaf_error)?.into()
        } else {
            payload
        };
        if let Some(interval) = self.last_dts.and_then(|last| dts_us.checked_sub(last)).filter(|d| *d > 0) {
            self.duration = u32::try_from(interval).unwrap_or(u32::MAX);
        }
        self.last_dts = Some(dts_us);
        let sample = FragmentSample { duration: self.duration, composition_offset, keyframe, data };
        self.writer.fragment(PACKED_TRACK_ID, dts_us, &[sample]).map_err(cmaf_error)
    }
}

/// Turns a CMAF rendition's fragments into samples.
pub(crate) struct CmafUnpacker {
    init: Bytes,
    reader: Fmp4Reader,
}

fn cmaf_error(reason: impl ToString) -> MediaError {
    MediaError::Frame { container: "cmaf", reason: reason.to_string() }
}

impl CmafUnpacker {
    /// Checks the init segment once; every fragment is read against it.
    pub(crate) fn new(init: Bytes) -> Result<Self, MediaError> {
        let reader = Self::fresh_reader(&init)?;
        Ok(Self { init, reader })
    }

    fn fresh_reader(init: &Bytes) -> Result<Fmp4Reader, MediaError> {
        let mut reader = Fmp4Reader::new();
        let events = reader.push(init).map_err(|err| cmaf_error(format!("init segment: {err}")))?;
        if reader.init().is_none() || !events.iter().all(|event| matches!(event, Fmp4Event::Init(_))) {
            return Err(cmaf_error("the init segment is not ftyp+moov alone"));
        }
        Ok(reader)
    }

    /// The samples of one fragment of group `group`, with presentation times in microseconds
    /// and the keyframe flag from the sample flags. A fragment that is not exactly one
    /// moof+mdat is an error, and the reader starts afresh from the init segment.
    pub(crate) fn samples(&mut self, group: u64, fragment: &[u8]) -> Result<Vec<MediaFrame>, MediaError> {
        let result = self.read(group, fragment);
        if result.is_err() {
            self.reader = Self::fresh_reader(&self.init)?;
        }
        result
    }

    fn read(&mut self, group: u64, fragment: &[u8]) -> Result<Vec<MediaFrame>, MediaError> {
        let events = self.reader.push(fragment).map_err(cmaf_error)?;
        if self.reader.buffered() != 0 {
            return Err(cmaf_error("a fragment cut short"));
        }
        let [Fmp4Event::Fragment(fragment)] = <[Fmp4Event; 1]>::try_from(events)
            .map_err(|events| cmaf_error(format!("{} boxes where one moof+mdat was expected", events.len())))?
        else {
            return Err(cmaf_error("an init segment where a fragment was expected"));
        };
        fragment
            .samples
            .into_iter()
            .map(|sample| {
                let pts_us = u64::try_from(sample.presentation_time_us)
                    .map_err(|_| MediaError::Timestamp("a presentation time before zero".into()))?;
                Ok(MediaFrame { group, pts_us, keyframe: sample.keyframe, payload: sample.data })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::media::codec::{AudioInfo, VideoInfo};

    #[test]
    fn packed_samples_unpack_with_their_time_keyframe_flag_and_bytes() {
        let info =
            CodecInfo::Audio(AudioInfo { codec: "opus".into(), description: None, sample_rate: 48000, channels: 2 });
        let mut packer = CmafPacker::new(&info, false, 20_000).unwrap();
        let mut unpacker = CmafUnpacker::new(packer.init().clone()).unwrap();
        for (i, pts) in [0u64, 20_000, 40_000, 60_000].into_iter().enumerate() {
            let payload = Bytes::from(vec![i as u8; 10 + i]);
            let fragment = packer.pack(pts, pts, i == 0, payload.clone()).unwrap();
            let samples = unpacker.samples(0, &fragment).unwrap();
            assert_eq!(samples.len(), 1);
            assert_eq!((samples[0].pts_us, samples[0].keyframe, &samples[0].payload), (pts, i == 0, &payload));
        }
    }

    #[test]
    fn annexb_samples_are_packed_length_prefixed() {
        // The fixture's SPS and PPS (640x360 High).
        let sps: &[u8] = &[
            0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00,
            0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
        ];
        let pps: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        let mut sets = Vec::new();
        for nal in [sps, pps] {
            sets.extend_from_slice(&[0, 0, 0, 1]);
            sets.extend_from_slice(nal);
        }
        let video = codec::h264::info_from_annexb(&sets, true).unwrap();
        assert_eq!(video.codec, "avc3.64001e");
        let record = codec::h264::info_from_annexb(&sets, false).unwrap().description;
        let info = CodecInfo::Video(VideoInfo { description: record, ..video });
        let mut packer = CmafPacker::new(&info, true, 33_333).unwrap();
        let mut unpacker = CmafUnpacker::new(packer.init().clone()).unwrap();
        let mut access_unit = sets.clone();
        access_unit.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84]);
        let fragment = packer.pack(0, 0, true, Bytes::from(access_unit)).unwrap();
        let samples = unpacker.samples(0, &fragment).unwrap();
        let mut expected = Vec::new();
        for nal in [sps, pps, &[0x65, 0x88, 0x84][..]] {
            expected.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            expected.extend_from_slice(nal);
        }
        assert_eq!(samples[0].payload, Bytes::from(expected));
    }

    use super::*;

    const CLIP: &[u8] = include_bytes!("../../tests/fixtures/h264-opus-cmaf.mp4");

    /// The fixture's video samples: (decode time, presentation time) in microseconds, keyframe
    /// flag and bytes. Frames 58 and 59 are reordered (a B-frame), as ffprobe shows.
    fn clip_video() -> (Bytes, Vec<(u64, u64, bool, Bytes)>) {
        let mut reader = Fmp4Reader::new();
        let events = reader.push(CLIP).unwrap();
        let init = reader.init().unwrap().track_init(1).unwrap();
        let samples = events
            .into_iter()
            .filter_map(|e| match e {
                Fmp4Event::Fragment(f) => Some(f),
                Fmp4Event::Init(_) => None,
            })
            .flat_map(|fragment| fragment.samples)
            .filter(|sample| sample.track_id == 1)
            .map(|s| (s.decode_time_us, u64::try_from(s.presentation_time_us).unwrap(), s.keyframe, s.data))
            .collect();
        (init, samples)
    }

    /// Packed with their decode times, the B-frame clip's samples come back with their own
    /// presentation times and bytes, each fragment's tfdt the sample's decode time (never going
    /// back) and its composition offset PTS - DTS, negative for the reordered frame.
    #[test]
    fn b_frames_pack_with_their_decode_times_and_composition_offsets() {
        let (clip_init, samples) = clip_video();
        assert_eq!(samples.len(), 60);
        let reordered: Vec<usize> =
            samples.windows(2).enumerate().filter(|(_, w)| w[1].1 < w[0].1).map(|(i, _)| i + 1).collect();
        assert_eq!(reordered, [59], "the fixture has one frame presented before the one decoded ahead of it");
        let info = CodecInfo::Video(crate::media::codec::h264::info_from_avcc(&avcc(&clip_init), false).unwrap());
        let mut packer = CmafPacker::new(&info, false, 33_333).unwrap();
        let mut reader = Fmp4Reader::new();
        reader.push(packer.init()).unwrap();
        let mut unpacker = CmafUnpacker::new(packer.init().clone()).unwrap();
        let mut last_dts = None;
        for (index, (dts, pts, keyframe, data)) in samples.iter().cloned().enumerate() {
            let fragment = packer.pack(pts, dts, keyframe, data.clone()).unwrap();
            let events = reader.push(&fragment).unwrap();
            let [Fmp4Event::Fragment(read)] = &events[..] else { panic!("one fragment: {events:?}") };
            let sample = &read.samples[0];
            assert_eq!(sample.decode_time_us, dts, "frame {index}: tfdt is the decode time");
            assert!(last_dts.is_none_or(|last| sample.decode_time_us > last), "frame {index}: decode times go forward");
            last_dts = Some(sample.decode_time_us);
            assert_eq!(sample.composition_offset(), pts as i64 - dts as i64, "frame {index}");
            let unpacked = unpacker.samples(0, &fragment).unwrap();
            assert_eq!(
                (unpacked[0].pts_us, unpacked[0].keyframe, &unpacked[0].payload),
                (pts, keyframe, &data),
                "frame {index}"
            );
        }
        // ffmpeg reads the packed stream (init segment and fragments) as it reads the clip: the
        // same (pts, dts) per packet, to the millisecond (ffmpeg shifts both streams' presentation
        // times by their largest negative offset, one frame), decode times strictly increasing.
        let mut stream = packer.init().to_vec();
        let mut repacker = CmafPacker::new(&info, false, 33_333).unwrap();
        for (dts, pts, keyframe, data) in samples.iter().cloned() {
            stream.extend_from_slice(&repacker.pack(pts, dts, keyframe, data).unwrap());
        }
        let probe = |name: &str, bytes: &[u8]| {
            let args = ["-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time"];
            let text = crate::media::fmp4::tests::ffprobe(name, bytes, &args)?;
            let millis = |field: &str| (field.parse::<f64>().unwrap() * 1000.0).round() as i64;
            let times = text.lines().map(|line| line.split_once(',').unwrap()).map(|(p, d)| (millis(p), millis(d)));
            Some(times.collect::<Vec<_>>())
        };
        if let (Some(packed), Some(clip)) = (probe("packed-b-frames", &stream), probe("b-frame-clip", CLIP)) {
            assert_eq!(packed.len(), 60);
            assert_eq!(packed, clip, "ffprobe's (pts, dts) per packet, packed and in the clip");
            assert!(packed.windows(2).all(|w| w[1].1 > w[0].1), "decode times go forward");
        }
        // Decode times that go back (what B-frames give with DTS = PTS) are refused, not packed.
        let (_, pts, keyframe, data) = samples[59].clone();
        assert!(matches!(packer.pack(pts, pts, keyframe, data), Err(MediaError::Timestamp(_))));
    }

    /// The avcC record of an init segment's H.264 sample entry.
    fn avcc(init: &Bytes) -> Bytes {
        let at = init.windows(4).position(|w| w == b"avcC").unwrap();
        let size = u32::from_be_bytes(init[at - 4..at].try_into().unwrap()) as usize;
        init.slice(at + 4..at - 4 + size)
    }

    /// The fixture's video track, as a CMAF rendition: its own init segment and one fragment per
    /// group (the clip's fragments start at keyframes).
    #[test]
    fn a_rendition_reads_back_as_samples_with_times_and_keyframes() {
        let mut reader = Fmp4Reader::new();
        let events = reader.push(CLIP).unwrap();
        let init = reader.init().unwrap().track_init(1).unwrap();
        let mut unpacker = CmafUnpacker::new(init).unwrap();
        let mut frames = Vec::new();
        for (group, event) in events
            .into_iter()
            .filter_map(|e| match e {
                Fmp4Event::Fragment(f) => Some(f),
                Fmp4Event::Init(_) => None,
            })
            .enumerate()
        {
            let video = event.split_by_track().unwrap().into_iter().find(|t| t.track_id == 1).unwrap();
            frames.extend(unpacker.samples(group as u64, &video.bytes).unwrap());
        }
        assert_eq!(frames.len(), 60);
        let keyframes: Vec<usize> = frames.iter().enumerate().filter(|(_, f)| f.keyframe).map(|(i, _)| i).collect();
        assert_eq!(keyframes, [0, 30]);
        assert_eq!((frames[30].group, frames[30].pts_us), (1, 1_000_000));
        assert_eq!(frames[58].pts_us, 1_966_667);
        // A broken fragment is an error, and the next good one still reads.
        assert!(unpacker.samples(2, &[0, 0, 0, 8, b'm', b'o', b'o']).is_err());
        assert!(unpacker.samples(2, b"\0\0\0\x08free").is_err());
    }
}
