//! The fuzz entry point for fragmented MP4 input: what `moqt publish --media fmp4` reads from
//! stdin and what a CMAF track carries.

use crate::media::fmp4::{Fmp4Event, Fmp4Reader, Fmp4Writer, FragmentSample, ReaderLimits, TrackConfig};

/// Byte 0 sets the chunk size (its value + 1) the rest is pushed in. Each init segment read is
/// also cut into per-track init segments and written again from its tracks; each fragment is
/// split by track and its samples written again: the paths a publisher takes. Nothing may
/// panic, and sample data must lie in the fragment it came from.
pub fn fmp4_reader(data: &[u8]) {
    let [selector, rest @ ..] = data else { return };
    // Small limits, so the fuzzer also reaches them.
    let limits = ReaderLimits { max_box_size: 1 << 16, max_samples_per_fragment: 1024 };
    let mut reader = Fmp4Reader::with_limits(limits);
    let mut writer = None;
    for chunk in rest.chunks(usize::from(*selector) + 1) {
        let Ok(events) = reader.push(chunk) else { return };
        for event in events {
            match event {
                Fmp4Event::Init(init) => {
                    for track in &init.tracks {
                        let _ = init.track_init(track.track_id);
                    }
                    let configs = init.tracks.iter().map(TrackConfig::from_track).collect();
                    writer = Fmp4Writer::new(configs).ok();
                    if let Some(writer) = &writer {
                        let _ = writer.init_segment();
                    }
                }
                Fmp4Event::Fragment(fragment) => {
                    let bytes = fragment.bytes.as_ptr_range();
                    for sample in &fragment.samples {
                        assert!(sample.data.is_empty() || bytes.contains(&sample.data.as_ptr()), "copied sample");
                    }
                    let _ = fragment.split_by_track();
                    let Some(writer) = &mut writer else { continue };
                    for track_id in fragment.track_ids() {
                        let samples: Vec<FragmentSample> = fragment
                            .track_samples(track_id)
                            .map(|s| FragmentSample {
                                duration: s.duration,
                                composition_offset: i32::try_from(s.composition_offset()).unwrap_or(0),
                                keyframe: s.keyframe,
                                data: s.data.clone(),
                            })
                            .collect();
                        let start = fragment.track_samples(track_id).next().map_or(0, |s| s.decode_time);
                        let _ = writer.fragment(track_id, start, &samples);
                    }
                }
            }
        }
    }
    let _ = reader.finish();
}
