//! The moq-lite versions moqt speaks. Raw QUIC picks one by ALPN, WebTransport by the
//! `wt-available-protocols` / `wt-protocol` headers; either way the string is the same.

use std::fmt;
use std::str::FromStr;

/// A moq-lite wire version. Ordered oldest to newest, so `version >= Version::Lite05` reads as
/// "has SETUP".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// draft-lcurley-moq-lite-03: no SETUP, no GOAWAY, hop counts only.
    Lite03,
    /// draft-lcurley-moq-lite-04: adds GOAWAY, PROBE RTT, hop-ID lists, Exclude Hop.
    Lite04,
    /// draft-lcurley-moq-lite-05: adds SETUP, TRACK, timestamps, datagrams, ANNOUNCE_OK.
    Lite05,
    /// draft-lcurley-moq-lite-06: typed announcements with costs, frame bounds, no Ordered byte.
    Lite06,
}

impl Version {
    /// Every version, in the order a client offers them (newest first).
    pub const ALL: [Version; 4] = [Version::Lite06, Version::Lite05, Version::Lite04, Version::Lite03];

    /// The ALPN / `wt-protocol` string, e.g. `moq-lite-06`.
    pub const fn alpn(self) -> &'static str {
        match self {
            Version::Lite03 => "moq-lite-03",
            Version::Lite04 => "moq-lite-04",
            Version::Lite05 => "moq-lite-05",
            Version::Lite06 => "moq-lite-06",
        }
    }

    /// The 32-bit version code of the reference implementation (`0xff0dad0X`).
    pub const fn code(self) -> u64 {
        match self {
            Version::Lite03 => 0xff0d_ad03,
            Version::Lite04 => 0xff0d_ad04,
            Version::Lite05 => 0xff0d_ad05,
            Version::Lite06 => 0xff0d_ad06,
        }
    }

    /// The version an ALPN string names, if moqt speaks it.
    pub fn from_alpn(alpn: &[u8]) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.alpn().as_bytes() == alpn)
    }

    /// lite-05 and later exchange SETUP on a uni stream.
    pub const fn has_setup(self) -> bool {
        matches!(self, Version::Lite05 | Version::Lite06)
    }

    /// lite-05 and later have the TRACK stream, FETCH, timestamps, datagrams and ANNOUNCE_OK.
    pub const fn has_track_info(self) -> bool {
        matches!(self, Version::Lite05 | Version::Lite06)
    }

    /// lite-05 and later carry a timestamp with each frame (lite-03/04 frames have none).
    pub const fn has_timestamps(self) -> bool {
        self.has_track_info()
    }

    /// lite-04 and later have GOAWAY.
    pub const fn has_goaway(self) -> bool {
        !matches!(self, Version::Lite03)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alpn())
    }
}

/// A version name that moqt does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown moq-lite version {0:?} (expected moq-lite-03, -04, -05 or -06)")]
pub struct UnknownVersion(pub String);

impl FromStr for Version {
    type Err = UnknownVersion;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Version::from_alpn(text.as_bytes()).ok_or_else(|| UnknownVersion(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_round_trip_and_order() {
        for v in Version::ALL {
            assert_eq!(Version::from_alpn(v.alpn().as_bytes()), Some(v));
            assert_eq!(v.alpn().parse::<Version>(), Ok(v));
        }
        assert_eq!(Version::ALL[0], Version::Lite06);
        assert!(Version::Lite03 < Version::Lite06);
        assert_eq!(Version::from_alpn(b"moql"), None);
        assert!("moq-lite-07-wip".parse::<Version>().is_err());
        assert_eq!(Version::Lite05.code(), 0xff0dad05);
    }
}
