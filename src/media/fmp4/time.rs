//! Timestamps between a track's timescale (ticks per second) and microseconds, the unit of hang's
//! frame timestamps.
//!
//! Each conversion works on an absolute time in 128-bit arithmetic and rounds to the nearest
//! unit once, so nothing overflows on the way and nothing drifts the way summed rounded durations
//! would. For any timescale up to 1 MHz, ticks -> µs -> ticks gives back the ticks exactly.

/// Microseconds in a second.
pub const MICROS_PER_SECOND: u32 = 1_000_000;

/// `value * to / from`, rounded to the nearest integer (halves away from zero).
fn rescale(value: i128, from: u32, to: u32) -> Option<i128> {
    if from == 0 || to == 0 {
        return None;
    }
    let numerator = value * i128::from(to);
    let from = i128::from(from);
    let half = from / 2;
    Some(if numerator >= 0 { (numerator + half) / from } else { (numerator - half) / from })
}

/// A time in `timescale` ticks as microseconds; `None` if the timescale is 0 or the result does
/// not fit.
pub fn ticks_to_micros(ticks: u64, timescale: u32) -> Option<u64> {
    rescale(ticks.into(), timescale, MICROS_PER_SECOND).and_then(|v| u64::try_from(v).ok())
}

/// A time in microseconds as `timescale` ticks; `None` if the timescale is 0 or the result does
/// not fit.
pub fn micros_to_ticks(micros: u64, timescale: u32) -> Option<u64> {
    rescale(micros.into(), MICROS_PER_SECOND, timescale).and_then(|v| u64::try_from(v).ok())
}

/// [`ticks_to_micros`] for times that may be negative (a presentation time before its decode time).
pub fn signed_ticks_to_micros(ticks: i64, timescale: u32) -> Option<i64> {
    rescale(ticks.into(), timescale, MICROS_PER_SECOND).and_then(|v| i64::try_from(v).ok())
}

/// [`micros_to_ticks`] for times that may be negative.
pub fn signed_micros_to_ticks(micros: i64, timescale: u32) -> Option<i64> {
    rescale(micros.into(), MICROS_PER_SECOND, timescale).and_then(|v| i64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_timescales_round_trip_exactly() {
        for timescale in [1, 1000, 15360, 44100, 48000, 90000, 1_000_000] {
            for ticks in [0u64, 1, 2, 511, 1023, 1024, 90_000 * 3600 * 24, u64::MAX / 1_000_000] {
                let micros = ticks_to_micros(ticks, timescale).unwrap();
                assert_eq!(micros_to_ticks(micros, timescale), Some(ticks), "{ticks} at {timescale}");
            }
        }
    }

    #[test]
    fn rounds_to_nearest_without_drift() {
        // 1024-sample AAC frames at 48 kHz are 21333.33 µs: each absolute time rounds on its own.
        assert_eq!(ticks_to_micros(1024, 48000), Some(21333));
        assert_eq!(ticks_to_micros(2048, 48000), Some(42667));
        assert_eq!(ticks_to_micros(48000 * 3600, 48000), Some(3_600_000_000));
        assert_eq!(signed_ticks_to_micros(-1024, 48000), Some(-21333));
        assert_eq!(signed_micros_to_ticks(-21333, 48000), Some(-1024));
    }

    #[test]
    fn overflow_and_zero_timescale_are_none() {
        assert_eq!(ticks_to_micros(u64::MAX, 1), None);
        assert_eq!(ticks_to_micros(u64::MAX, 0), None);
        assert_eq!(micros_to_ticks(1, 0), None);
        assert_eq!(micros_to_ticks(u64::MAX, u32::MAX), None);
        assert_eq!(ticks_to_micros(u64::MAX, u32::MAX), Some(4_294_967_297_000_000));
        assert_eq!(signed_ticks_to_micros(i64::MIN, 1), None);
    }
}
