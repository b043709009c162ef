//! Decoding work stays linear in the input: a counting global allocator (this binary's own, so
//! no other test's allocations pass through it) measures what feeding a reader one byte at a time
//! allocates, a clock-free proof that nothing is copied or parsed again on every push.

use moqt::wire::*;

/// Counts, on the threads that ask for it, the bytes and calls of every allocation and
/// reallocation: a deterministic measure of the work done while feeding a reader (copies of
/// the buffer, payloads or fields decoded again and again all allocate), with no clock.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static BYTES: Cell<u64> = const { Cell::new(0) };
        static CALLS: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn note(size: usize) {
        // try_with: an allocation during thread teardown is simply not counted.
        if ON.try_with(Cell::get).unwrap_or(false) {
            let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
            let _ = CALLS.try_with(|c| c.set(c.get() + 1));
        }
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: as above.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: as above.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as above.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// Runs `f` with counting on for this thread; returns its result, the bytes allocated
    /// and the number of allocation calls.
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
        BYTES.with(|b| b.set(0));
        CALLS.with(|c| c.set(0));
        ON.with(|on| on.set(true));
        let value = f();
        ON.with(|on| on.set(false));
        (value, BYTES.with(Cell::get), CALLS.with(Cell::get))
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// A SUBSCRIBE whose track name has `len` bytes and whose broadcast path is "room".
fn long_subscribe(len: usize) -> Subscribe {
    Subscribe {
        id: 1,
        broadcast: moqt::coding::Path::new("room").unwrap(),
        track: "v".repeat(len),
        window: SubscribeWindow { priority: 1, ..Default::default() },
    }
}

/// The work of feeding a message one byte at a time is linear in its size: a 60 KB SUBSCRIBE
/// and a 1 MiB FRAME, each pushed byte by byte with a decode attempt after every push,
/// allocate a small multiple of their size in a few dozen allocations (the buffer doubling as
/// it grows, then the decoded message). Buffer copies per push, or a payload or field copied
/// on each attempt, would cost time and allocations quadratic in the size and fail the bounds.
#[test]
fn feeding_a_large_message_byte_by_byte_is_linear() {
    let message = long_subscribe(60_000);
    let bytes = message.to_bytes(Version::Lite06).unwrap();
    let mut reader = StreamReader::new(Version::Lite06, 1 << 20);
    let ((decoded, attempts), allocated, calls) = counting::measure(|| {
        let mut attempts = 0u64;
        for byte in &bytes {
            reader.push(&[*byte]).unwrap();
            attempts += 1;
            if let Some(message) = reader.decode::<Subscribe>().unwrap() {
                return (Some(message), attempts);
            }
        }
        (None, attempts)
    });
    assert_eq!(decoded, Some(message));
    assert_eq!(attempts, bytes.len() as u64, "one decode attempt per byte, the last one succeeding");
    let n = bytes.len() as u64;
    assert!(allocated <= 8 * n, "{allocated} bytes allocated to decode a {n}-byte message");
    assert!(calls <= 64, "{calls} allocations to decode a {n}-byte message");

    // One FRAME with a 1 MiB payload (after its group header), byte by byte.
    let payload_len = 1usize << 20;
    let mut stream = Vec::new();
    GroupHeader { subscribe_id: 0, sequence: 9, frame_start: 0 }.encode(&mut stream, Version::Lite06).unwrap();
    let header_len = stream.len();
    FrameHeader { timestamp_delta: 40, payload_len: payload_len as u64 }.encode(&mut stream, Version::Lite06).unwrap();
    stream.extend((0..payload_len).map(|i| (i % 251) as u8));
    let mut reader = StreamReader::new(Version::Lite06, 2 << 20);
    reader.push(&stream[..header_len]).unwrap();
    assert!(reader.decode::<GroupHeader>().unwrap().is_some());
    let mut timestamps = FrameTimestamps::new();
    let (frame, allocated, calls) = counting::measure(|| {
        for (i, byte) in stream[header_len..].iter().enumerate() {
            reader.push(&[*byte]).unwrap();
            if let Some(frame) = reader.read_frame(&mut timestamps).unwrap() {
                assert_eq!(i, stream.len() - header_len - 1, "the frame came out early");
                return Some(frame);
            }
        }
        None
    });
    let frame = frame.expect("the frame came out");
    assert_eq!(frame.timestamp, 40);
    assert_eq!(frame.payload.len(), payload_len);
    assert!(frame.payload.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    let n = (stream.len() - header_len) as u64;
    assert!(allocated <= 8 * n, "{allocated} bytes allocated to read a {n}-byte frame");
    assert!(calls <= 64, "{calls} allocations to read a {n}-byte frame");
    assert_eq!(reader.buffered(), 0);
}

/// The fragmented MP4 reader too: a moof + mdat of 64 samples, 1 MiB in all, pushed byte by byte
/// after the fixture's init segment, allocates a small multiple of its size in a few dozen
/// allocations (the buffer doubling, then the decoded moof and the sample list; the samples are
/// slices of the buffer).
#[test]
fn feeding_a_large_mp4_fragment_byte_by_byte_is_linear() {
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader, Fmp4Writer, FragmentSample, TrackConfig};

    let fixture = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h264-opus-cmaf.mp4")).unwrap();
    let mut reader = Fmp4Reader::new();
    let events = reader.push(&fixture[..28 + 1195]).unwrap();
    let [Fmp4Event::Init(init)] = events.as_slice() else { panic!("not the init segment: {events:?}") };
    let mut writer = Fmp4Writer::new(vec![TrackConfig::from_track(&init.tracks[0])]).unwrap();
    let samples: Vec<FragmentSample> = (0..64u8)
        .map(|i| FragmentSample {
            duration: 512,
            composition_offset: 0,
            keyframe: i == 0,
            data: vec![i; 16 << 10].into(),
        })
        .collect();
    let fragment = writer.fragment(1, 0, &samples).unwrap();

    let (events, allocated, calls) = counting::measure(|| {
        let mut events = Vec::new();
        for byte in fragment.iter() {
            events.extend(reader.push(&[*byte]).unwrap());
        }
        events
    });
    let [Fmp4Event::Fragment(read)] = events.as_slice() else { panic!("not one fragment: {} events", events.len()) };
    assert_eq!(read.samples.len(), 64);
    assert!(read.samples.iter().enumerate().all(|(i, s)| s.data == samples[i].data));
    let n = fragment.len() as u64;
    assert!(allocated <= 8 * n, "{allocated} bytes allocated to read a {n}-byte fragment");
    assert!(calls <= 64, "{calls} allocations to read a {n}-byte fragment");
    assert_eq!(reader.buffered(), 0);
}
