//! One track per fragment and per init segment: hang's CMAF container carries each track on its
//! own moq track, with its own init segment in the catalog.

use bytes::Bytes;
use mp4_atom::{Atom, Encode, Ftyp, Header, Mdat, Moof, Moov, Mvex};

use super::Fmp4Error;
use super::reader::{Fragment, InitSegment};
use super::writer::default_ftyp;

/// One track's part of a fragment, as a standalone moof + mdat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFragment {
    /// The `tfhd` track ID.
    pub track_id: u32,
    /// The standalone moof + mdat.
    pub bytes: Bytes,
}

impl Fragment {
    /// One moof + mdat per traf, each holding only its track's samples with the data offsets
    /// rewritten (relative to its own moof). A fragment of a single traf is returned as read.
    pub fn split_by_track(&self) -> Result<Vec<TrackFragment>, Fmp4Error> {
        if let [traf] = self.moof.traf.as_slice()
            && traf.tfhd.base_data_offset.is_none()
        {
            return Ok(vec![TrackFragment { track_id: traf.tfhd.track_id, bytes: self.bytes.clone() }]);
        }
        let mut parts = Vec::with_capacity(self.moof.traf.len());
        for (traf, samples) in self.moof.traf.iter().zip(&self.traf_samples) {
            let track_id = traf.tfhd.track_id;
            if !traf.saio.is_empty() || !traf.saiz.is_empty() || traf.senc.is_some() {
                return Err(Fmp4Error::Unsupported("splitting a fragment with sample auxiliary data (encryption)"));
            }
            let samples = &self.samples[samples.clone()];
            let mut traf = traf.clone();
            traf.tfhd.base_data_offset = None;
            traf.tfhd.default_base_is_moof = true;
            // Each run's data follows the previous run's in the new mdat; the offsets have a fixed
            // width, so the moof's size is known before their values are.
            for trun in &mut traf.trun {
                trun.data_offset = Some(0);
            }
            let mut moof = Moof { mfhd: self.moof.mfhd.clone(), traf: vec![traf] };
            let moof_size = encoded_len(&moof)?;
            let payload: usize = samples.iter().map(|s| s.data.len()).sum();
            let header = Header { kind: Mdat::KIND, size: Some(payload) };
            let header_size = encoded_len(&header)?;
            let mut run_offset = moof_size + header_size;
            let mut next_sample = 0;
            for trun in &mut moof.traf[0].trun {
                let run = next_sample..next_sample + trun.samples.len();
                let run_bytes: usize = samples.get(run).unwrap_or_default().iter().map(|s| s.data.len()).sum();
                let offset = i32::try_from(run_offset).map_err(|_| Fmp4Error::Unsupported("fragment over 2 GiB"))?;
                trun.data_offset = Some(offset);
                run_offset += run_bytes;
                next_sample += trun.samples.len();
            }
            let mut out = Vec::with_capacity(moof_size + header_size + payload);
            moof.encode(&mut out).map_err(Fmp4Error::atom("encode split moof"))?;
            header.encode(&mut out).map_err(Fmp4Error::atom("encode split mdat"))?;
            for sample in samples {
                out.extend_from_slice(&sample.data);
            }
            parts.push(TrackFragment { track_id, bytes: out.into() });
        }
        Ok(parts)
    }
}

impl InitSegment {
    /// An init segment (ftyp + moov) with just this track and its trex, for a catalog rendition.
    /// An init segment of that one track alone is returned as read.
    pub fn track_init(&self, track_id: u32) -> Result<Bytes, Fmp4Error> {
        let trak =
            self.moov.trak.iter().find(|t| t.tkhd.track_id == track_id).ok_or(Fmp4Error::UnknownTrack(track_id))?;
        if self.moov.trak.len() == 1 {
            return Ok(self.bytes.clone());
        }
        let mvex = self.moov.mvex.as_ref().map(|mvex| Mvex {
            mehd: mvex.mehd.clone(),
            trex: mvex.trex.iter().filter(|t| t.track_id == track_id).cloned().collect(),
        });
        let moov = Moov { mvhd: self.moov.mvhd.clone(), mvex, trak: vec![trak.clone()], ..Default::default() };
        let ftyp: Ftyp = self.ftyp.clone().unwrap_or_else(default_ftyp);
        let mut out = Vec::new();
        ftyp.encode(&mut out).map_err(Fmp4Error::atom("encode ftyp"))?;
        moov.encode(&mut out).map_err(Fmp4Error::atom("encode track moov"))?;
        Ok(out.into())
    }
}

fn encoded_len(atom: &impl Encode) -> Result<usize, Fmp4Error> {
    let mut out = Vec::new();
    atom.encode(&mut out).map_err(Fmp4Error::atom("encode"))?;
    Ok(out.len())
}
