//! The Probe stream (bidi 0x4): the subscriber sends a target bitrate, the publisher reports its
//! estimated send bitrate and (lite-04+) smoothed RTT. 0 means unknown in both fields.

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_framed, encode_framed};
use super::message::{Message, encode_only_default};
use crate::coding::{DecodeError, EncodeError, decode_varint, encode_varint};

/// PROBE { Message Length (i), Bitrate (i), [RTT (i) on lite-04+] }.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probe {
    /// Bits per second: a target from the subscriber, an estimate from the publisher; 0 = unknown.
    pub bitrate: u64,
    /// Smoothed round-trip time in milliseconds (lite-04+); 0 = unknown, and must be 0 on lite-03.
    pub rtt: u64,
}

impl Message for Probe {
    const NAME: &'static str = "PROBE";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        let has_rtt = version >= Version::Lite04;
        if !has_rtt {
            encode_only_default("PROBE RTT", version, self.rtt == 0)?;
        }
        encode_framed(buf, |out| {
            encode_varint(out, self.bitrate)?;
            if has_rtt {
                encode_varint(out, self.rtt)?;
            }
            Ok(())
        })
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_framed(buf, MAX_MESSAGE_LEN, |body| {
            let bitrate = decode_varint(body)?;
            let rtt = if version >= Version::Lite04 { decode_varint(body)? } else { 0 };
            Ok(Probe { bitrate, rtt })
        })
    }
}
