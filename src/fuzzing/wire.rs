//! The wire's fuzz entry points, one per decoder entry point: each bidi stream kind (both directions), Group
//! streams, SETUP and datagrams. Shared by the cargo-fuzz targets in `fuzz/` and by the test that
//! replays the committed seeds, so a seed that once crashed stays a regression test.
//!
//! Input layout: byte 0 picks the version (low 2 bits) and the direction (bit 2); byte 1 is the size
//! of the pieces the rest is fed in, so the incremental paths are exercised too. Every decoded
//! message must re-encode and decode to itself; a failure of that is a codec bug and panics, which is
//! what a fuzzer reports. Decode errors are expected and end the input.

use bytes::Bytes;

use crate::coding::{DecodeError, MAX_FRAME_LEN};
use crate::wire::*;

/// The most bytes a fuzzed stream buffers, like a session's bound.
const MAX_BUFFERED: usize = 1 << 20;

struct Input<'a> {
    version: Version,
    response: bool,
    chunk: usize,
    stream: &'a [u8],
}

fn split(data: &[u8]) -> Option<Input<'_>> {
    let [selector, chunk, stream @ ..] = data else {
        return None;
    };
    Some(Input {
        version: Version::ALL[usize::from(selector & 0x3)],
        response: selector & 0x4 != 0,
        chunk: usize::from(*chunk).max(1),
        stream,
    })
}

fn round_trip<M: Message + PartialEq + std::fmt::Debug>(message: &M, version: Version) {
    let bytes = message
        .to_bytes(version)
        .unwrap_or_else(|e| panic!("{version}: decoded {message:?} but cannot encode it: {e}"));
    let mut input = &bytes[..];
    let again = M::decode(&mut input, version).unwrap_or_else(|e| panic!("{version}: re-decoding {message:?}: {e}"));
    assert_eq!(&again, message, "{version}: round trip changed the message");
    assert!(input.is_empty(), "{version}: re-decoding left bytes");
}

/// Feeds the stream in pieces and calls `step` whenever bytes arrive, until it reports an error or
/// wants to stop. `step` returns Ok(true) to continue.
fn drive(input: &Input<'_>, mut step: impl FnMut(&mut StreamReader) -> Result<bool, DecodeError>) {
    let mut reader = StreamReader::new(input.version, MAX_BUFFERED);
    for piece in input.stream.chunks(input.chunk) {
        if reader.push(piece).is_err() {
            return;
        }
        match step(&mut reader) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
    let _ = reader.finish();
}

/// Decodes every message of type `M` available, checking each.
fn all<M: Message + PartialEq + std::fmt::Debug>(reader: &mut StreamReader) -> Result<bool, DecodeError> {
    while let Some(message) = reader.decode::<M>()? {
        round_trip(&message, reader.version());
    }
    Ok(true)
}

/// Announce stream: ANNOUNCE_REQUEST, or ANNOUNCE_OK (lite-05+) then announcements.
pub fn announce_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    if !input.response {
        return drive(&input, all::<AnnounceRequest>);
    }
    let mut ok_seen = !input.version.has_setup();
    drive(&input, |reader| {
        if !ok_seen {
            match reader.decode::<AnnounceOk>()? {
                Some(ok) => {
                    round_trip(&ok, reader.version());
                    ok_seen = true;
                }
                None => return Ok(true),
            }
        }
        while let Some(message) = reader.decode::<Announcement>()? {
            if !matches!(message, Announcement::Unknown { .. }) {
                round_trip(&message, reader.version());
            }
        }
        Ok(true)
    });
}

/// Subscribe stream: SUBSCRIBE then SUBSCRIBE_UPDATEs, or the publisher's responses.
pub fn subscribe_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    if input.response {
        return drive(&input, all::<SubscribeResponse>);
    }
    let mut subscribed = false;
    drive(&input, |reader| {
        if !subscribed {
            match reader.decode::<Subscribe>()? {
                Some(subscribe) => {
                    round_trip(&subscribe, reader.version());
                    subscribed = true;
                }
                None => return Ok(true),
            }
        }
        all::<SubscribeUpdate>(reader)
    });
}

/// Fetch stream: FETCH, or the reply of bare frames.
pub fn fetch_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    if input.response {
        return frames(&input, None);
    }
    drive(&input, all::<Fetch>);
}

/// Probe stream: PROBEs either way.
pub fn probe_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    drive(&input, all::<Probe>);
}

/// Goaway stream: GOAWAY.
pub fn goaway_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    drive(&input, all::<Goaway>);
}

/// Track stream: TRACK, or TRACK_INFO.
pub fn track_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    if input.response {
        drive(&input, all::<TrackInfo>);
    } else {
        drive(&input, all::<TrackRequest>);
    }
}

/// Group stream: GROUP then FRAMEs.
pub fn group_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    let mut header = None;
    frames(&input, Some(&mut header));
}

/// Reads the FRAMEs of a Group stream (after its GROUP header) or a Fetch reply. Each frame header
/// is decoded on its own first, because `read_frame` hands back only the timestamp and payload, so
/// that it is checked like every other message: it re-encodes to the bytes it came from (or to a
/// shorter, minimal form), and the sender's delta coding of the decoded timestamp gives it back.
fn frames(input: &Input<'_>, mut header: Option<&mut Option<GroupHeader>>) {
    let mut timestamps = FrameTimestamps::new();
    let mut sender = FrameTimestamps::new();
    drive(input, |reader| {
        if let Some(slot) = header.as_deref_mut() {
            if slot.is_none() {
                match reader.decode::<GroupHeader>()? {
                    Some(group) => {
                        round_trip(&group, reader.version());
                        *slot = Some(group);
                    }
                    None => return Ok(true),
                }
            }
        }
        let version = reader.version();
        loop {
            let peeked = reader.read_with(|cursor| {
                let mut rest = *cursor;
                let frame = FrameHeader::decode(&mut rest, version)?;
                Ok((frame, cursor[..cursor.len() - rest.len()].to_vec()))
            })?;
            let Some((frame_header, raw)) = peeked else { break };
            let Some(frame) = reader.read_frame(&mut timestamps)? else { break };
            round_trip(&frame_header, version);
            let again = frame_header.to_bytes(version).expect("a decoded frame header re-encodes");
            assert!(again.len() <= raw.len(), "{version}: {raw:02x?} re-encoded longer as {again:02x?}");
            if again.len() == raw.len() {
                assert_eq!(again, raw, "{version}: frame header re-encoded differently");
            }
            assert_eq!(frame.payload.len() as u64, frame_header.payload_len);
            assert!(frame_header.payload_len <= MAX_FRAME_LEN);
            assert_eq!(sender.delta_for(frame.timestamp), frame_header.timestamp_delta, "{version}: timestamp delta");
        }
        Ok(true)
    });
}

/// The SETUP uni stream.
pub fn setup_stream(data: &[u8]) {
    let Some(input) = split(data) else { return };
    drive(&input, |reader| {
        if let Some(setup) = reader.decode::<Setup>()? {
            round_trip(&setup, reader.version());
            return Ok(false);
        }
        Ok(true)
    });
}

/// One datagram.
pub fn datagram(data: &[u8]) {
    let Some(input) = split(data) else { return };
    if let Ok(datagram) = Datagram::decode(Bytes::copy_from_slice(input.stream), input.version) {
        let mut out = Vec::new();
        datagram.encode(&mut out, input.version).expect("a decoded datagram re-encodes");
        assert_eq!(Datagram::decode(Bytes::from(out), input.version).as_ref(), Ok(&datagram));
    }
}

/// The stream-type prefix of either kind of stream.
pub fn stream_type(data: &[u8]) {
    let Some(input) = split(data) else { return };
    let mut cursor = input.stream;
    let mut out = Vec::new();
    if input.response {
        if let Ok(kind) = UniStream::decode(&mut cursor, input.version) {
            kind.encode(&mut out, input.version).expect("a decoded stream type re-encodes");
            assert_eq!(UniStream::decode(&mut &out[..], input.version), Ok(kind));
        }
    } else if let Ok(kind) = BidiStream::decode(&mut cursor, input.version) {
        kind.encode(&mut out, input.version).expect("a decoded stream type re-encodes");
        assert_eq!(BidiStream::decode(&mut &out[..], input.version), Ok(kind));
    }
}
