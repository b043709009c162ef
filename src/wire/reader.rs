//! Incremental decoding of one stream: bytes arrive in pieces, messages come out whole.
//!
//! Every decoder in this module consumes nothing until a whole message is buffered, and learns that a
//! message is incomplete from its length prefix (or FRAME header) alone, so each retry costs O(1):
//! feeding a message one byte at a time is linear, not quadratic. Frame payloads are split off the
//! buffer without copying.

use bytes::{Buf, Bytes, BytesMut};

use super::Version;
use super::group::{FrameHeader, FrameTimestamps};
use super::message::Message;
use crate::coding::DecodeError;

/// A decoded FRAME: its absolute timestamp and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameData {
    /// Absolute timestamp in the track's timescale (0 on versions without timestamps).
    pub timestamp: u64,
    /// The payload, shared with the receive buffer.
    pub payload: Bytes,
}

/// Buffers the bytes of one stream and decodes messages from them.
#[derive(Debug)]
pub struct StreamReader {
    buf: BytesMut,
    version: Version,
    max_buffered: usize,
}

impl StreamReader {
    /// A reader for `version` that refuses to hold more than `max_buffered` bytes (one message plus
    /// what arrived with it): a peer cannot make us buffer without bound.
    pub fn new(version: Version, max_buffered: usize) -> Self {
        Self { buf: BytesMut::new(), version, max_buffered }
    }

    /// Changes the buffer bound, once the kind of stream is known (a Group stream carries frames of
    /// up to [`MAX_FRAME_LEN`](super::MAX_FRAME_LEN), a control stream small messages).
    pub fn set_max_buffered(&mut self, max_buffered: usize) {
        self.max_buffered = max_buffered;
    }

    /// The version this reader decodes.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Appends received bytes. Fails when the buffer would exceed its bound.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        let total = self.buf.len() + chunk.len();
        if total > self.max_buffered {
            return Err(DecodeError::MessageTooLarge { length: total as u64, max: self.max_buffered as u64 });
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    #[cfg(any(test, feature = "testing"))]
    /// How many bytes are buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    #[cfg(any(test, feature = "testing"))]
    /// Decodes the next message, or `Ok(None)` while it is incomplete.
    pub fn decode<M: Message>(&mut self) -> Result<Option<M>, DecodeError> {
        let version = self.version;
        self.read_with(|cursor| M::decode(cursor, version))
    }

    /// Runs any decoder that follows the "consume nothing on Short" rule (stream types, typed
    /// messages chosen by the caller). `Ok(None)` while incomplete.
    pub fn read_with<T>(
        &mut self,
        decode: impl FnOnce(&mut &[u8]) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        let mut cursor: &[u8] = &self.buf;
        let before = cursor.len();
        match decode(&mut cursor) {
            Ok(value) => {
                let used = before - cursor.len();
                self.buf.advance(used);
                if self.buf.is_empty() {
                    // Release the allocation: an idle control stream (most of a session's life)
                    // then holds no buffer, and no pointer one past a dead allocation, which
                    // LeakSanitizer and Valgrind rightly cannot tell from a leak.
                    self.buf = BytesMut::new();
                }
                Ok(Some(value))
            }
            Err(DecodeError::Short) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Decodes the next FRAME with its payload, or `Ok(None)` while it is incomplete. `timestamps`
    /// carries the stream's running timestamp between calls.
    pub fn read_frame(&mut self, timestamps: &mut FrameTimestamps) -> Result<Option<FrameData>, DecodeError> {
        let mut cursor: &[u8] = &self.buf;
        let header = match FrameHeader::decode(&mut cursor, self.version) {
            Ok(header) => header,
            Err(DecodeError::Short) => return Ok(None),
            Err(err) => return Err(err),
        };
        let header_len = self.buf.len() - cursor.len();
        let payload_len = header.payload_len as usize;
        if cursor.len() < payload_len {
            return Ok(None);
        }
        let timestamp = if self.version >= Version::Lite05 { timestamps.apply(header.timestamp_delta)? } else { 0 };
        self.buf.advance(header_len);
        let payload = self.buf.split_to(payload_len).freeze();
        Ok(Some(FrameData { timestamp, payload }))
    }

    /// Fails if bytes are left when the stream ended (FIN inside a message).
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() { Ok(()) } else { Err(DecodeError::Short) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{GroupHeader, Subscribe, SubscribeWindow};

    #[test]
    fn message_split_at_every_byte_decodes_once() {
        let message = Subscribe {
            id: 3,
            broadcast: crate::coding::Path::new("room/alice").unwrap(),
            track: "video".into(),
            window: SubscribeWindow { priority: 2, max_age: 500, ..Default::default() },
        };
        for version in Version::ALL {
            let bytes = message.to_bytes(version).unwrap();
            let mut reader = StreamReader::new(version, 1 << 16);
            for (i, byte) in bytes.iter().enumerate() {
                reader.push(&[*byte]).unwrap();
                let got = reader.decode::<Subscribe>().unwrap();
                if i + 1 < bytes.len() {
                    assert_eq!(got, None, "{version}: decoded early at byte {i}");
                } else {
                    assert_eq!(got, Some(message.clone()));
                }
            }
            assert_eq!(reader.buffered(), 0);
            reader.finish().unwrap();
        }
    }

    #[test]
    fn frames_come_out_whole_with_absolute_timestamps() {
        // moq-lite.md V2: group 5 with "hi" at 1000 and "yo" at 1033.
        let stream = [0x03, 0x00, 0x05, 0x00, 0x47, 0xd0, 0x02, b'h', b'i', 0x40, 0x42, 0x02, b'y', b'o'];
        let mut reader = StreamReader::new(Version::Lite06, 1 << 16);
        let mut timestamps = FrameTimestamps::new();
        let mut frames = Vec::new();
        let mut header = None;
        for chunk in stream.chunks(3) {
            reader.push(chunk).unwrap();
            if header.is_none() {
                header = reader.decode::<GroupHeader>().unwrap();
            }
            if header.is_some() {
                while let Some(frame) = reader.read_frame(&mut timestamps).unwrap() {
                    frames.push(frame);
                }
            }
        }
        assert_eq!(header, Some(GroupHeader { subscribe_id: 0, sequence: 5, frame_start: 0 }));
        assert_eq!(
            frames,
            vec![
                FrameData { timestamp: 1000, payload: Bytes::from_static(b"hi") },
                FrameData { timestamp: 1033, payload: Bytes::from_static(b"yo") },
            ]
        );
    }

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
            broadcast: crate::coding::Path::new("room").unwrap(),
            track: "v".repeat(len),
            window: SubscribeWindow { priority: 1, ..Default::default() },
        }
    }

    /// Fed one byte at a time, a message is not decoded again and again as it grows: the decoder
    /// looks at the length prefix only until the whole body is there. Proof without a clock: an
    /// invalid UTF-8 byte in the broadcast path (complete after a dozen bytes) is reported only
    /// once the last byte of the 60 KB message arrives; a decoder that re-parsed the partial body
    /// on each push would have hit it at once.
    #[test]
    fn a_partial_message_is_not_parsed_before_its_last_byte() {
        for version in Version::ALL {
            let mut bytes = long_subscribe(60_000).to_bytes(version).unwrap();
            let at = bytes.windows(4).position(|w| w == b"room").expect("the path is in the encoding");
            bytes[at + 1] = 0xff;
            let mut reader = StreamReader::new(version, 1 << 20);
            for (i, byte) in bytes.iter().enumerate() {
                reader.push(&[*byte]).unwrap();
                let got = reader.decode::<Subscribe>();
                if i + 1 < bytes.len() {
                    assert_eq!(got, Ok(None), "{version}: the body was examined at byte {i} of {}", bytes.len());
                } else {
                    assert_eq!(got, Err(DecodeError::InvalidUtf8), "{version}");
                }
            }
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
        FrameHeader { timestamp_delta: 40, payload_len: payload_len as u64 }
            .encode(&mut stream, Version::Lite06)
            .unwrap();
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

    #[test]
    fn buffer_bound_holds() {
        let mut reader = StreamReader::new(Version::Lite06, 8);
        reader.push(&[0; 8]).unwrap();
        assert!(matches!(reader.push(&[0]), Err(DecodeError::MessageTooLarge { .. })));
    }

    #[test]
    fn fin_inside_a_message_is_an_error() {
        let mut reader = StreamReader::new(Version::Lite06, 64);
        reader.push(&[0x05, 0x01]).unwrap();
        assert_eq!(reader.decode::<Subscribe>().unwrap(), None);
        assert_eq!(reader.finish(), Err(DecodeError::Short));
    }
}
