//! The Announce stream (bidi 0x1): the subscriber sends ANNOUNCE_REQUEST with a prefix, the
//! publisher answers ANNOUNCE_OK (lite-05+) and then announcements: typed ANNOUNCE_START / _END /
//! _UPDATE with implicit IDs and route costs on lite-06, ANNOUNCE (status + suffix + hops) before.

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_byte, decode_framed, decode_typed, encode_framed, encode_typed};
use super::message::{Message, decode_since, encode_only_default, encode_since};
use crate::coding::{DecodeError, EncodeError, Path, decode_varint, encode_varint};

/// The most entries a hop list may have (the reference's limit).
pub const MAX_HOPS: u64 = 32;

/// ANNOUNCE_REQUEST { Message Length (i), Broadcast Path Prefix (s) [, Exclude Hop (i) on -04/-05] }.
/// (ANNOUNCE_PLEASE in the lite-03 draft.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceRequest {
    /// Only broadcasts under this prefix are announced.
    pub prefix: Path,
    /// lite-04/05: the subscriber's own Hop ID, routes through it are skipped. 0 = none; must be 0
    /// on other versions (lite-06 carries it in SETUP Hop).
    pub exclude_hop: u64,
}

impl Message for AnnounceRequest {
    const NAME: &'static str = "ANNOUNCE_REQUEST";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        let has_exclude = matches!(version, Version::Lite04 | Version::Lite05);
        if !has_exclude {
            encode_only_default("ANNOUNCE_REQUEST Exclude Hop", version, self.exclude_hop == 0)?;
        }
        encode_framed(buf, |out| {
            self.prefix.encode(out)?;
            if has_exclude {
                encode_varint(out, self.exclude_hop)?;
            }
            Ok(())
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            let prefix = Path::decode(body)?;
            let exclude_hop = match version {
                Version::Lite04 | Version::Lite05 => decode_varint(body)?,
                _ => 0,
            };
            Ok(AnnounceRequest { prefix, exclude_hop })
        })
    }
}

/// ANNOUNCE_OK { Message Length (i), Hop ID (i), Active Count (i) } (lite-05+): the publisher's
/// first reply, with its own Hop ID (the implicit last hop of every list on the stream) and how many
/// announcements make up the initial snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnnounceOk {
    /// The publisher's Hop ID; 0 = unknown.
    pub hop_id: u64,
    /// How many announcements follow as the initial snapshot.
    pub active_count: u64,
}

impl Message for AnnounceOk {
    const NAME: &'static str = "ANNOUNCE_OK";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since(Self::NAME, version, Version::Lite05)?;
        encode_framed(buf, |out| {
            encode_varint(out, self.hop_id)?;
            encode_varint(out, self.active_count)
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_since(Self::NAME, version, Version::Lite05)?;
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            Ok(AnnounceOk { hop_id: decode_varint(body)?, active_count: decode_varint(body)? })
        })
    }
}

/// The status byte of a pre-06 ANNOUNCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceStatus {
    /// 0: the broadcast is gone.
    Ended,
    /// 1: the broadcast is available.
    Active,
    /// 2: a restart; lite-05 treats it as active, lite-04 peers reject it.
    Restart,
}

/// One message on the publisher side of an Announce stream, after ANNOUNCE_OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// lite-06 ANNOUNCE_START (type 0x0): a new route; takes the next implicit Announce ID.
    Start {
        /// The route's path relative to the requested prefix (may be empty: a wider route).
        suffix: Path,
        /// Hop IDs from the origin publisher, without the implicit last hop of ANNOUNCE_OK.
        hops: Vec<u64>,
        /// What one more subscription through this route costs now.
        warm_cost: u64,
        /// The cost as if nothing along the route carried the content.
        cold_cost: u64,
    },
    /// lite-06 ANNOUNCE_END (type 0x1): the route with this Announce ID is gone.
    End {
        /// The implicit ID given by the ANNOUNCE_START.
        id: u64,
    },
    /// lite-06 ANNOUNCE_UPDATE (type 0x2): new hops and costs for an existing route.
    Update {
        /// The implicit ID given by the ANNOUNCE_START.
        id: u64,
        /// The new hop list.
        hops: Vec<u64>,
        /// The new warm cost.
        warm_cost: u64,
        /// The new cold cost.
        cold_cost: u64,
    },
    /// lite-06: a typed announcement of a type moqt does not know, skipped by its length.
    Unknown {
        /// The type that was skipped.
        kind: u64,
    },
    /// lite-03..05 ANNOUNCE { Message Length (i), Status, Suffix (s), Hop Count (i), Hop ID (i)... }.
    /// On lite-03 only the count is on the wire; the IDs decode as zeros (unknown).
    Legacy {
        /// Active, ended or restart.
        status: AnnounceStatus,
        /// The broadcast path relative to the requested prefix.
        suffix: Path,
        /// The hop IDs (all 0 on lite-03, where only their number travels).
        hops: Vec<u64>,
    },
}

const TYPE_START: u64 = 0x0;
const TYPE_END: u64 = 0x1;
const TYPE_UPDATE: u64 = 0x2;

fn encode_hops(out: &mut Vec<u8>, hops: &[u64], ids: bool) -> Result<(), EncodeError> {
    let count = hops.len() as u64;
    if count > MAX_HOPS {
        return Err(EncodeError::TooLarge { what: "hop count", value: count, max: MAX_HOPS });
    }
    encode_varint(out, count)?;
    if ids {
        for (i, hop) in hops.iter().enumerate() {
            if *hop != 0 && hops[..i].contains(hop) {
                return Err(EncodeError::InvalidValue { field: "duplicate hop ID", value: *hop });
            }
            encode_varint(out, *hop)?;
        }
    }
    Ok(())
}

fn decode_hops(body: &mut &[u8], ids: bool) -> Result<Vec<u64>, DecodeError> {
    let count = decode_varint(body)?;
    if count > MAX_HOPS {
        return Err(DecodeError::TooManyHops { count, max: MAX_HOPS });
    }
    if !ids {
        return Ok(vec![0; count as usize]);
    }
    let mut hops = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let hop = decode_varint(body)?;
        if hop != 0 && hops.contains(&hop) {
            return Err(DecodeError::DuplicateHop(hop));
        }
        hops.push(hop);
    }
    Ok(hops)
}

impl Message for Announcement {
    const NAME: &'static str = "ANNOUNCE";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        let typed = version >= Version::Lite06;
        match (self, typed) {
            (Announcement::Start { suffix, hops, warm_cost, cold_cost }, true) => {
                encode_typed(buf, TYPE_START, |out| {
                    suffix.encode(out)?;
                    encode_hops(out, hops, true)?;
                    encode_varint(out, *warm_cost)?;
                    encode_varint(out, *cold_cost)
                })
            }
            (Announcement::End { id }, true) => encode_typed(buf, TYPE_END, |out| encode_varint(out, *id)),
            (Announcement::Update { id, hops, warm_cost, cold_cost }, true) => encode_typed(buf, TYPE_UPDATE, |out| {
                encode_varint(out, *id)?;
                encode_hops(out, hops, true)?;
                encode_varint(out, *warm_cost)?;
                encode_varint(out, *cold_cost)
            }),
            (Announcement::Legacy { status, suffix, hops }, false) => {
                if *status == AnnounceStatus::Restart && version < Version::Lite05 {
                    return Err(EncodeError::NotInVersion { what: "ANNOUNCE status restart", version: version.alpn() });
                }
                encode_framed(buf, |out| {
                    out.put_u8(match status {
                        AnnounceStatus::Ended => 0,
                        AnnounceStatus::Active => 1,
                        AnnounceStatus::Restart => 2,
                    });
                    suffix.encode(out)?;
                    let with_ids = version >= Version::Lite04;
                    if !with_ids && hops.iter().any(|h| *h != 0) {
                        return Err(EncodeError::NotInVersion { what: "hop IDs", version: version.alpn() });
                    }
                    encode_hops(out, hops, with_ids)
                })
            }
            (Announcement::Unknown { .. }, _) => {
                Err(EncodeError::InvalidValue { field: "announcement type (unknown)", value: 0 })
            }
            (_, _) => Err(EncodeError::NotInVersion { what: "this announcement form", version: version.alpn() }),
        }
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        if version >= Version::Lite06 {
            return decode_typed(buf, MAX_MESSAGE_LEN, |kind, body| match kind {
                TYPE_START => Ok(Announcement::Start {
                    suffix: Path::decode(body)?,
                    hops: decode_hops(body, true)?,
                    warm_cost: decode_varint(body)?,
                    cold_cost: decode_varint(body)?,
                }),
                TYPE_END => Ok(Announcement::End { id: decode_varint(body)? }),
                TYPE_UPDATE => Ok(Announcement::Update {
                    id: decode_varint(body)?,
                    hops: decode_hops(body, true)?,
                    warm_cost: decode_varint(body)?,
                    cold_cost: decode_varint(body)?,
                }),
                other => {
                    // Skipped by its length, as the spec requires of a lite-06 receiver.
                    *body = &[];
                    Ok(Announcement::Unknown { kind: other })
                }
            });
        }
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            // The reference reads the status as one byte (the draft says varint; 0..=2 agree).
            let status = match decode_byte(body)? {
                0 => AnnounceStatus::Ended,
                1 => AnnounceStatus::Active,
                2 if version >= Version::Lite05 => AnnounceStatus::Restart,
                other => return Err(DecodeError::InvalidValue { field: "ANNOUNCE status", value: u64::from(other) }),
            };
            let suffix = Path::decode(body)?;
            let hops = decode_hops(body, version >= Version::Lite04)?;
            Ok(Announcement::Legacy { status, suffix, hops })
        })
    }
}
