//! The CMAF container: each moq frame is one moof+mdat fragment of the rendition's init segment
//! (ftyp+moov, base64 in the catalog). Read with the fMP4 reader, which keeps each track's decode
//! time across fragments.

use bytes::Bytes;

use super::fmp4::{Fmp4Event, Fmp4Reader};
use super::{MediaError, MediaFrame};

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
    use super::*;

    const CLIP: &[u8] = include_bytes!("../../tests/fixtures/h264-opus-cmaf.mp4");

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
