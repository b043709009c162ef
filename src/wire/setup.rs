//! SETUP (lite-05+): one per endpoint on its own uni Setup stream, capabilities only. Parameters are
//! key-value pairs in any order; unknown IDs are kept aside, duplicates are a protocol violation.

use bytes::{BufMut, Bytes};

use super::Version;
use super::framing::{MAX_SETUP_LEN, decode_framed, encode_framed};
use super::message::{Message, decode_since, encode_since};
use crate::coding::{DecodeError, EncodeError, Parameters};

/// SETUP parameter IDs (spec 3.2).
pub mod param {
    /// Probe level (varint).
    pub const PROBE: u64 = 0x1;
    /// Path and query (raw UTF-8), client only, raw QUIC only.
    pub const PATH: u64 = 0x2;
    /// Role hint (varint), client only.
    pub const ROLE: u64 = 0x3;
    /// Cost of subscribing from the sender (varint), -06.
    pub const COST: u64 = 0x4;
    /// The sender's Hop ID (varint), -06.
    pub const HOP: u64 = 0x5;
}

/// What the sender can do with PROBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum ProbeLevel {
    /// 0 or absent: no probing.
    #[default]
    None,
    /// 1: can measure and report its send bitrate.
    Report,
    /// 2 (and any higher value): can also pad toward a target.
    Increase,
}

impl ProbeLevel {
    fn from_u64(value: u64) -> Self {
        match value {
            0 => ProbeLevel::None,
            1 => ProbeLevel::Report,
            _ => ProbeLevel::Increase,
        }
    }

    fn to_u64(self) -> u64 {
        match self {
            ProbeLevel::None => 0,
            ProbeLevel::Report => 1,
            ProbeLevel::Increase => 2,
        }
    }
}

/// The client's role hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// 0, absent or unknown: publishes and subscribes.
    #[default]
    Both,
    /// 1: only publishes.
    Publisher,
    /// 2: only subscribes.
    Subscriber,
}

impl Role {
    fn from_u64(value: u64) -> Self {
        match value {
            1 => Role::Publisher,
            2 => Role::Subscriber,
            _ => Role::Both,
        }
    }

    fn to_u64(self) -> u64 {
        match self {
            Role::Both => 0,
            Role::Publisher => 1,
            Role::Subscriber => 2,
        }
    }
}

/// SETUP { Message Length (i), Parameter Count (i), { ID (i), Length (i), Value }... }.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Setup {
    /// Probe capability; `None` is not sent.
    pub probe: ProbeLevel,
    /// URI path and query (client, raw QUIC only). Empty is the same as absent (the root).
    pub path: Option<String>,
    /// Role hint (client only); `Both` is not sent.
    pub role: Role,
    /// Cost of subscribing from the sender; absent means 1.
    pub cost: Option<u64>,
    /// The sender's Hop ID; absent or 0 means no identity.
    pub hop: Option<u64>,
    /// Parameters with IDs moqt does not know, kept as received.
    pub unknown: Parameters,
}

impl Setup {
    /// The effective cost: 1 when absent.
    pub fn cost_or_default(&self) -> u64 {
        self.cost.unwrap_or(1)
    }
}

impl Message for Setup {
    const NAME: &'static str = "SETUP";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since(Self::NAME, version, Version::Lite05)?;
        let mut params = Parameters::new();
        if self.probe != ProbeLevel::None {
            params.set_varint(param::PROBE, self.probe.to_u64())?;
        }
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty()) {
            params.set(param::PATH, Bytes::copy_from_slice(path.as_bytes()));
        }
        if self.role != Role::Both {
            params.set_varint(param::ROLE, self.role.to_u64())?;
        }
        if let Some(cost) = self.cost {
            params.set_varint(param::COST, cost)?;
        }
        if let Some(hop) = self.hop {
            params.set_varint(param::HOP, hop)?;
        }
        for (id, value) in self.unknown.iter() {
            if (param::PROBE..=param::HOP).contains(&id) {
                return Err(EncodeError::InvalidValue { field: "unknown SETUP parameter ID", value: id });
            }
            params.set(id, value.clone());
        }
        let mut body = Vec::new();
        params.encode(&mut body)?;
        if body.len() as u64 > MAX_SETUP_LEN {
            return Err(EncodeError::TooLarge { what: "SETUP length", value: body.len() as u64, max: MAX_SETUP_LEN });
        }
        encode_framed(buf, |out| {
            out.put_slice(&body);
            Ok(())
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_since(Self::NAME, version, Version::Lite05)?;
        decode_framed(buf, MAX_SETUP_LEN, |body| {
            let mut params = Parameters::decode(body)?;
            let probe = params.take_varint(param::PROBE)?.map(ProbeLevel::from_u64).unwrap_or_default();
            let path = match params.take(param::PATH) {
                Some(raw) => {
                    let text = String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidUtf8)?;
                    Some(text).filter(|t| !t.is_empty())
                }
                None => None,
            };
            let role = params.take_varint(param::ROLE)?.map(Role::from_u64).unwrap_or_default();
            let cost = params.take_varint(param::COST)?;
            let hop = params.take_varint(param::HOP)?;
            Ok(Setup { probe, path, role, cost, hop, unknown: params })
        })
    }
}
