//! Protocol vocabulary every layer shares: the moq-lite error registries (spec section 6), the
//! HTTP/3 mapping of stream codes that the reference implementation applies on raw QUIC as well as
//! WebTransport (spec 11.1), and the frame and group bounds. It sits at the bottom, beside the
//! encoding primitives, so the model and the transports speak it without depending on the codec.
//!
//! Two number spaces: session close codes (CONNECTION_CLOSE) and stream codes (RESET_STREAM /
//! STOP_SENDING). A code is always read in the space it was sent in. Unknown codes are kept as
//! numbers and treated as unspecified, never rejected.
//!
//! Peers of moq-net 0.2.x (relays up to 0.14) used one flat registry for both spaces instead (spec
//! 6.1), and the spec asks receivers to tolerate both (10.5): received codes go through the
//! `from_peer` readers, which also understand the flat numbers that lite-06 leaves unassigned.

/// The largest frame payload (32 MiB, the reference's per-frame and per-group cap).
pub const MAX_FRAME_LEN: u64 = 32 * 1024 * 1024;

/// The most frames one group may hold (the reference's limit).
pub const MAX_GROUP_FRAMES: u64 = 8192;

/// The most bytes one group may hold (32 MiB).
pub const MAX_GROUP_BYTES: u64 = 32 * 1024 * 1024;

/// A session close code (spec 6.1). Sent raw, unmapped, on every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionCode {
    /// 0x0: normal close.
    NoError,
    /// 0x1: an internal error.
    InternalError,
    /// 0x2: the peer is not allowed what it asked for.
    Unauthorized,
    /// 0x3: the peer broke the protocol.
    ProtocolViolation,
    /// 0x6: a malformed key-value parameter.
    KeyValueFormattingError,
    /// 0x10: the GOAWAY drain deadline passed.
    GoawayTimeout,
    /// 0x11: an expected control message did not arrive in time.
    ControlMessageTimeout,
    /// 0x15: no common version.
    VersionNegotiationFailed,
    /// Any other value, kept as sent.
    Other(u64),
}

impl SessionCode {
    /// The number on the wire.
    pub const fn to_u64(self) -> u64 {
        match self {
            SessionCode::NoError => 0x0,
            SessionCode::InternalError => 0x1,
            SessionCode::Unauthorized => 0x2,
            SessionCode::ProtocolViolation => 0x3,
            SessionCode::KeyValueFormattingError => 0x6,
            SessionCode::GoawayTimeout => 0x10,
            SessionCode::ControlMessageTimeout => 0x11,
            SessionCode::VersionNegotiationFailed => 0x15,
            SessionCode::Other(code) => code,
        }
    }

    /// The code a number names; unknown numbers are kept.
    pub const fn from_u64(code: u64) -> Self {
        match code {
            0x0 => SessionCode::NoError,
            0x1 => SessionCode::InternalError,
            0x2 => SessionCode::Unauthorized,
            0x3 => SessionCode::ProtocolViolation,
            0x6 => SessionCode::KeyValueFormattingError,
            0x10 => SessionCode::GoawayTimeout,
            0x11 => SessionCode::ControlMessageTimeout,
            0x15 => SessionCode::VersionNegotiationFailed,
            other => SessionCode::Other(other),
        }
    }

    /// Reads a close code a peer sent, tolerating the flat registry of moq-net 0.2.x peers: its
    /// Version (9) and ProtocolViolation (15) are unassigned in lite-06 and read by their flat
    /// meaning. Numbers both registries assign keep their lite-06 meaning, as current peers send.
    pub const fn from_peer(code: u64) -> Self {
        match code {
            9 => SessionCode::VersionNegotiationFailed,
            15 => SessionCode::ProtocolViolation,
            other => SessionCode::from_u64(other),
        }
    }
}

/// A stream reset / STOP_SENDING code (spec 6.1), including the provisional 0x31..0x39 codes the
/// reference already emits. Application codes are 64 and above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamCode {
    /// 0x0: an internal error (not a cancel).
    InternalError,
    /// 0x1: a routine cancel (unsubscribe); also what a malformed request is reset with.
    Cancelled,
    /// 0x2: delivery took too long.
    DeliveryTimeout,
    /// 0x3: the session closed under the stream.
    SessionClosed,
    /// 0x4: the session is going away.
    GoingAway,
    /// 0x5: the subscriber fell too far behind.
    TooFarBehind,
    /// 0x12: a malformed message on a live track stream.
    MalformedTrack,
    /// 0x31: a request was not answered in time.
    ControlTimeout,
    /// 0x32: a group over its size bound.
    GroupTooLarge,
    /// 0x33: no such broadcast or track.
    NotFound,
    /// 0x34: the group was superseded or expired.
    Old,
    /// 0x35: the group was evicted from a cache.
    Evicted,
    /// 0x36: no route to the broadcast.
    Unroutable,
    /// 0x37: a size did not match.
    WrongSize,
    /// 0x38: a frame over its size bound.
    FrameTooLarge,
    /// 0x39: a timestamp out of order.
    TimestampMismatch,
    /// An application code (wire value 64 + n), carried as n.
    Application(u64),
    /// Any other value, kept as sent and treated as unspecified.
    Other(u64),
    /// A transport code outside the HTTP/3 mapping (a peer that resets with a raw code on raw
    /// QUIC, spec 11.1): unknown, kept as received for the logs, and sent on as INTERNAL_ERROR, as
    /// the reference does (spec 11.8): what the raw number meant is not guessed.
    Unmapped(u64),
}

/// Where application stream codes start.
pub const APPLICATION_CODE_BASE: u64 = 64;

impl StreamCode {
    /// The number on the wire, before any HTTP/3 mapping.
    pub const fn to_u64(self) -> u64 {
        match self {
            StreamCode::InternalError => 0x0,
            StreamCode::Cancelled => 0x1,
            StreamCode::DeliveryTimeout => 0x2,
            StreamCode::SessionClosed => 0x3,
            StreamCode::GoingAway => 0x4,
            StreamCode::TooFarBehind => 0x5,
            StreamCode::MalformedTrack => 0x12,
            StreamCode::ControlTimeout => 0x31,
            StreamCode::GroupTooLarge => 0x32,
            StreamCode::NotFound => 0x33,
            StreamCode::Old => 0x34,
            StreamCode::Evicted => 0x35,
            StreamCode::Unroutable => 0x36,
            StreamCode::WrongSize => 0x37,
            StreamCode::FrameTooLarge => 0x38,
            StreamCode::TimestampMismatch => 0x39,
            StreamCode::Application(n) => APPLICATION_CODE_BASE.saturating_add(n),
            StreamCode::Other(code) => code,
            StreamCode::Unmapped(_) => 0x0,
        }
    }

    /// The code a number names; unknown numbers are kept.
    pub const fn from_u64(code: u64) -> Self {
        match code {
            0x0 => StreamCode::InternalError,
            0x1 => StreamCode::Cancelled,
            0x2 => StreamCode::DeliveryTimeout,
            0x3 => StreamCode::SessionClosed,
            0x4 => StreamCode::GoingAway,
            0x5 => StreamCode::TooFarBehind,
            0x12 => StreamCode::MalformedTrack,
            0x31 => StreamCode::ControlTimeout,
            0x32 => StreamCode::GroupTooLarge,
            0x33 => StreamCode::NotFound,
            0x34 => StreamCode::Old,
            0x35 => StreamCode::Evicted,
            0x36 => StreamCode::Unroutable,
            0x37 => StreamCode::WrongSize,
            0x38 => StreamCode::FrameTooLarge,
            0x39 => StreamCode::TimestampMismatch,
            n if n >= APPLICATION_CODE_BASE => StreamCode::Application(n - APPLICATION_CODE_BASE),
            other => StreamCode::Other(other),
        }
    }

    /// Reads a code a peer sent, tolerating the flat registry of moq-net 0.2.x peers: the flat
    /// numbers lite-06 leaves unassigned are read by their flat meaning (NotFound 13, WrongSize 14,
    /// Lagged 26, FrameTooLarge 27, TimestampMismatch 29, Unroutable 30, Evicted 31). Numbers both
    /// registries assign keep their lite-06 meaning, as current peers send: an old peer's cancel (0)
    /// reads as INTERNAL_ERROR, which ends that stream all the same.
    pub const fn from_peer(code: u64) -> Self {
        match code {
            13 => StreamCode::NotFound,
            14 => StreamCode::WrongSize,
            26 => StreamCode::TooFarBehind,
            27 => StreamCode::FrameTooLarge,
            29 => StreamCode::TimestampMismatch,
            30 => StreamCode::Unroutable,
            31 => StreamCode::Evicted,
            other => StreamCode::from_u64(other),
        }
    }

    /// The code as sent on a QUIC or WebTransport stream: mapped into the HTTP/3 space (spec 11.1).
    pub fn to_transport(self) -> u64 {
        http3_from_stream_code(self.to_u64())
    }

    /// Reads a code received on a stream ([`from_peer`](Self::from_peer) after the HTTP/3 mapping).
    /// Codes outside the HTTP/3 WebTransport range are unknown ([`StreamCode::Unmapped`]).
    pub fn from_transport(code: u64) -> Self {
        match stream_code_from_http3(code) {
            Some(n) => StreamCode::from_peer(n),
            None => StreamCode::Unmapped(code),
        }
    }
}

/// The first HTTP/3 error code of the WebTransport application range.
pub const HTTP3_WEBTRANSPORT_FIRST: u64 = 0x52e4_a40f_a8db;
/// The last HTTP/3 error code of the WebTransport application range (u32::MAX mapped).
pub const HTTP3_WEBTRANSPORT_LAST: u64 = 0x52e5_ac98_3162;

/// Maps a 32-bit application code into the HTTP/3 space, skipping the reserved `0x1f * N + 0x21`
/// codepoints: `first + n + n / 0x1e`. Values above u32::MAX are clamped, as WebTransport codes are
/// 32-bit.
pub const fn http3_from_stream_code(n: u64) -> u64 {
    let n = if n > u32::MAX as u64 { u32::MAX as u64 } else { n };
    HTTP3_WEBTRANSPORT_FIRST + n + n / 0x1e
}

/// The inverse of [`http3_from_stream_code`]; `None` outside the range or on a reserved codepoint.
pub const fn stream_code_from_http3(code: u64) -> Option<u64> {
    if code < HTTP3_WEBTRANSPORT_FIRST || code > HTTP3_WEBTRANSPORT_LAST {
        return None;
    }
    if (code - 0x21) % 0x1f == 0 {
        return None;
    }
    let offset = code - HTTP3_WEBTRANSPORT_FIRST;
    Some(offset - offset / 0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_11_1_mapped_values() {
        assert_eq!(StreamCode::Cancelled.to_transport(), 0x52e4a40fa8dc);
        assert_eq!(StreamCode::NotFound.to_transport(), 0x52e4a40fa90f);
        assert_eq!(StreamCode::Unroutable.to_transport(), 0x52e4a40fa912);
        assert_eq!(StreamCode::from_transport(0x52e4a40fa90f), StreamCode::NotFound);
        // A raw 0x33 from a peer that does not map is unknown, as the reference reads it, and is
        // passed on as INTERNAL_ERROR, not as the NOT_FOUND its number would name (spec 11.8).
        assert_eq!(StreamCode::from_transport(0x33), StreamCode::Unmapped(0x33));
        assert_eq!(StreamCode::Unmapped(0x33).to_u64(), StreamCode::InternalError.to_u64());
        assert_eq!(StreamCode::Unmapped(0x33).to_transport(), StreamCode::InternalError.to_transport());
        assert_eq!(http3_from_stream_code(u64::from(u32::MAX)), HTTP3_WEBTRANSPORT_LAST);
    }

    #[test]
    fn mapping_round_trips_every_small_code_and_skips_reserved() {
        for n in (0..100_000u64).chain([u64::from(u32::MAX) - 1, u64::from(u32::MAX)]) {
            let mapped = http3_from_stream_code(n);
            assert_ne!((mapped - 0x21) % 0x1f, 0, "{n} mapped onto a reserved codepoint");
            assert_eq!(stream_code_from_http3(mapped), Some(n));
        }
        assert_eq!(stream_code_from_http3(HTTP3_WEBTRANSPORT_FIRST - 1), None);
        assert_eq!(stream_code_from_http3(HTTP3_WEBTRANSPORT_LAST + 1), None);
    }

    #[test]
    fn codes_round_trip() {
        for n in (0..200).chain([u64::MAX - 1]) {
            assert_eq!(StreamCode::from_u64(n).to_u64(), n);
            assert_eq!(SessionCode::from_u64(n).to_u64(), n);
        }
        assert_eq!(StreamCode::from_u64(64 + 7), StreamCode::Application(7));
        assert_eq!(SessionCode::from_u64(0x11), SessionCode::ControlMessageTimeout);
    }

    #[test]
    fn peers_of_the_flat_registry_are_understood() {
        // Flat numbers that lite-06 leaves unassigned read by their flat meaning (spec 6.1, 10.5).
        for (flat, code) in [
            (13, StreamCode::NotFound),
            (14, StreamCode::WrongSize),
            (26, StreamCode::TooFarBehind),
            (27, StreamCode::FrameTooLarge),
            (29, StreamCode::TimestampMismatch),
            (30, StreamCode::Unroutable),
            (31, StreamCode::Evicted),
        ] {
            assert_eq!(StreamCode::from_u64(flat), StreamCode::Other(flat), "{flat} is unassigned in lite-06");
            assert_eq!(StreamCode::from_peer(flat), code, "flat {flat}");
            assert_eq!(StreamCode::from_transport(http3_from_stream_code(flat)), code, "mapped flat {flat}");
        }
        assert_eq!(SessionCode::from_u64(15), SessionCode::Other(15));
        assert_eq!(SessionCode::from_peer(15), SessionCode::ProtocolViolation);
        assert_eq!(SessionCode::from_peer(9), SessionCode::VersionNegotiationFailed);

        // Every number lite-06 assigns keeps its lite-06 meaning, whatever the flat registry said;
        // unassigned in both stays unknown.
        for n in (0..200).chain([u64::MAX - 1]) {
            if !matches!(StreamCode::from_u64(n), StreamCode::Other(_)) {
                assert_eq!(StreamCode::from_peer(n), StreamCode::from_u64(n), "stream {n}");
            }
            if !matches!(SessionCode::from_u64(n), SessionCode::Other(_)) {
                assert_eq!(SessionCode::from_peer(n), SessionCode::from_u64(n), "session {n}");
            }
        }
        assert_eq!(StreamCode::from_peer(0), StreamCode::InternalError);
        assert_eq!(StreamCode::from_peer(0x12), StreamCode::MalformedTrack);
        assert_eq!(StreamCode::from_peer(24), StreamCode::Other(24));
        assert_eq!(SessionCode::from_peer(6), SessionCode::KeyValueFormattingError);
    }
}
