//! The Subscribe stream (bidi 0x2): SUBSCRIBE and SUBSCRIBE_UPDATE from the subscriber, typed
//! SUBSCRIBE_OK / _END / _DROP from the publisher.
//!
//! Two traps live here (spec 10.2): lite-06 removed the Ordered byte from the middle of SUBSCRIBE,
//! and changed Group Start from "+1, 0 = latest" to a raw floor. Both are handled by version.

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_byte, decode_framed, decode_typed, encode_framed, encode_typed};
use super::message::{Message, encode_only_default};
use crate::coding::{
    DecodeError, EncodeError, MAX_STRING_LEN, Path, decode_plus_one, decode_string, decode_varint, encode_plus_one,
    encode_string, encode_varint,
};

/// The delivery window shared by SUBSCRIBE and SUBSCRIBE_UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeWindow {
    /// Subscriber priority; higher is sent first.
    pub priority: u8,
    /// lite-03..05 Ordered byte (1 = oldest first). Must be false on lite-06, which has no field.
    pub ordered: bool,
    /// Max Age (-06) / Max Latency (older) in milliseconds.
    pub max_age: u64,
    /// First group. lite-06: a raw floor where `None` and `Some(0)` are both "no floor" and decode as
    /// `None`. lite-03..05: `None` means "the latest group".
    pub group_start: Option<u64>,
    /// Last group, inclusive; `None` = unbounded.
    pub group_end: Option<u64>,
    /// lite-06: first frame within the Group Start group; must be 0 elsewhere.
    pub frame_start: u64,
    /// lite-06: last frame, inclusive, within the Group End group; `None` = whole group. Must be
    /// `None` when `group_end` is `None`, and on older versions.
    pub frame_end: Option<u64>,
}

impl SubscribeWindow {
    fn encode(&self, out: &mut Vec<u8>, version: Version) -> Result<(), EncodeError> {
        out.put_u8(self.priority);
        if version >= Version::Lite06 {
            encode_only_default("the Ordered byte", version, !self.ordered)?;
            if self.frame_end.is_some() && self.group_end.is_none() {
                return Err(EncodeError::InvalidValue { field: "Frame End without Group End", value: 0 });
            }
            encode_varint(out, self.max_age)?;
            encode_varint(out, self.group_start.unwrap_or(0))?;
            encode_plus_one(out, self.group_end)?;
            encode_varint(out, self.frame_start)?;
            encode_plus_one(out, self.frame_end)
        } else {
            encode_only_default("Frame Start", version, self.frame_start == 0)?;
            encode_only_default("Frame End", version, self.frame_end.is_none())?;
            out.put_u8(u8::from(self.ordered));
            encode_varint(out, self.max_age)?;
            encode_plus_one(out, self.group_start)?;
            encode_plus_one(out, self.group_end)
        }
    }

    fn decode(body: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        let priority = decode_byte(body)?;
        if version >= Version::Lite06 {
            let max_age = decode_varint(body)?;
            let group_start = Some(decode_varint(body)?).filter(|g| *g != 0);
            let group_end = decode_plus_one(body)?;
            let frame_start = decode_varint(body)?;
            let frame_end = decode_plus_one(body)?;
            if frame_end.is_some() && group_end.is_none() {
                return Err(DecodeError::InvalidValue { field: "Frame End without Group End", value: 0 });
            }
            Ok(SubscribeWindow { priority, ordered: false, max_age, group_start, group_end, frame_start, frame_end })
        } else {
            // The reference writes 0 and ignores what it reads; any non-zero byte means "ordered".
            let ordered = decode_byte(body)? != 0;
            let max_age = decode_varint(body)?;
            let group_start = decode_plus_one(body)?;
            let group_end = decode_plus_one(body)?;
            Ok(SubscribeWindow { priority, ordered, max_age, group_start, group_end, frame_start: 0, frame_end: None })
        }
    }
}

/// SUBSCRIBE { Message Length (i), Subscribe ID (i), Broadcast Path (s), Track Name (s), window }.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    /// Chosen by the subscriber, never reused within a session.
    pub id: u64,
    /// The broadcast, relative to the session root.
    pub broadcast: Path,
    /// The track name within the broadcast.
    pub track: String,
    /// Priority, max age and the group/frame range.
    pub window: SubscribeWindow,
}

impl Message for Subscribe {
    const NAME: &'static str = "SUBSCRIBE";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_framed(buf, |out| {
            encode_varint(out, self.id)?;
            self.broadcast.encode(out)?;
            encode_string(out, &self.track, MAX_STRING_LEN)?;
            self.window.encode(out, version)
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            Ok(Subscribe {
                id: decode_varint(body)?,
                broadcast: Path::decode(body)?,
                track: decode_string(body, MAX_STRING_LEN)?,
                window: SubscribeWindow::decode(body, version)?,
            })
        })
    }
}

/// SUBSCRIBE_UPDATE { Message Length (i), window }: changes a live subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeUpdate {
    /// The new priority, max age and range.
    pub window: SubscribeWindow,
}

impl Message for SubscribeUpdate {
    const NAME: &'static str = "SUBSCRIBE_UPDATE";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_framed(buf, |out| self.window.encode(out, version))
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            Ok(SubscribeUpdate { window: SubscribeWindow::decode(body, version)? })
        })
    }
}

/// The lite-03/04 SUBSCRIBE_OK, which repeats the publisher's track parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeOkLegacy {
    /// Publisher priority.
    pub priority: u8,
    /// Publisher Ordered byte.
    pub ordered: bool,
    /// Publisher Max Latency in milliseconds.
    pub max_latency: u64,
    /// First group, `None` = not known yet.
    pub start: Option<u64>,
    /// Last group, inclusive, `None` = unbounded.
    pub end: Option<u64>,
}

/// A publisher's message on the Subscribe stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeResponse {
    /// lite-05/06 SUBSCRIBE_OK (type 0x0): the first group that will be delivered.
    Ok {
        /// First group delivered; groups between the requested start and this are dropped.
        group: u64,
    },
    /// lite-03/04 SUBSCRIBE_OK (type 0x0).
    OkLegacy(SubscribeOkLegacy),
    /// lite-05/06 SUBSCRIBE_END (type 0x1): the first sequence that will never be sent (exclusive).
    End {
        /// Exclusive end; 0 = the track produced no groups.
        group: u64,
    },
    /// SUBSCRIBE_DROP (type 0x2 on lite-05/06, 0x1 on lite-03/04): groups that will not arrive.
    Drop {
        /// First dropped sequence.
        start: u64,
        /// Last dropped sequence, inclusive.
        end: u64,
        /// Why, as a stream error code.
        code: u64,
    },
}

impl SubscribeResponse {
    fn drop_type(version: Version) -> u64 {
        if version >= Version::Lite05 { 0x2 } else { 0x1 }
    }
}

impl Message for SubscribeResponse {
    const NAME: &'static str = "SUBSCRIBE response";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        let modern = version >= Version::Lite05;
        match (*self, modern) {
            (SubscribeResponse::Ok { group }, true) => encode_typed(buf, 0x0, |out| encode_varint(out, group)),
            (SubscribeResponse::OkLegacy(ok), false) => encode_typed(buf, 0x0, |out| {
                out.put_u8(ok.priority);
                out.put_u8(u8::from(ok.ordered));
                encode_varint(out, ok.max_latency)?;
                encode_plus_one(out, ok.start)?;
                encode_plus_one(out, ok.end)
            }),
            (SubscribeResponse::End { group }, true) => encode_typed(buf, 0x1, |out| encode_varint(out, group)),
            (SubscribeResponse::Drop { start, end, code }, _) => {
                if end < start {
                    return Err(EncodeError::InvalidValue { field: "SUBSCRIBE_DROP end before start", value: end });
                }
                encode_typed(buf, Self::drop_type(version), |out| {
                    encode_varint(out, start)?;
                    encode_varint(out, end)?;
                    encode_varint(out, code)
                })
            }
            (other, _) => Err(EncodeError::NotInVersion {
                what: match other {
                    SubscribeResponse::Ok { .. } => "SUBSCRIBE_OK with a group",
                    SubscribeResponse::OkLegacy(_) => "SUBSCRIBE_OK with publisher parameters",
                    _ => "SUBSCRIBE_END",
                },
                version: version.alpn(),
            }),
        }
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        let modern = version >= Version::Lite05;
        decode_typed(buf, MAX_MESSAGE_LEN, |kind, body| match (kind, modern) {
            (0x0, true) => Ok(SubscribeResponse::Ok { group: decode_varint(body)? }),
            (0x0, false) => Ok(SubscribeResponse::OkLegacy(SubscribeOkLegacy {
                priority: decode_byte(body)?,
                ordered: decode_byte(body)? != 0,
                max_latency: decode_varint(body)?,
                start: decode_plus_one(body)?,
                end: decode_plus_one(body)?,
            })),
            (0x1, true) => Ok(SubscribeResponse::End { group: decode_varint(body)? }),
            (kind, _) if kind == Self::drop_type(version) => {
                let start = decode_varint(body)?;
                let end = decode_varint(body)?;
                let code = decode_varint(body)?;
                if end < start {
                    return Err(DecodeError::InvalidValue { field: "SUBSCRIBE_DROP end before start", value: end });
                }
                Ok(SubscribeResponse::Drop { start, end, code })
            }
            (other, _) => Err(DecodeError::UnknownType { kind: "SUBSCRIBE response", value: other }),
        })
    }
}
