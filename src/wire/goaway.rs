//! The Goaway stream (bidi 0x5, lite-04+): GOAWAY tells the peer to stop opening streams and, from a
//! server, where to reconnect. An empty URI means "the same endpoint" (the reference's reading).

use bytes::BufMut;

use super::Version;
use super::framing::{MAX_MESSAGE_LEN, decode_framed, encode_framed};
use super::message::{Message, decode_since, encode_since};
use crate::coding::{DecodeError, EncodeError, decode_string, encode_string};

/// The longest New Session URI (a wire rule in -06).
pub const MAX_GOAWAY_URI_LEN: u64 = 8192;

/// GOAWAY { Message Length (i), New Session URI (s) }.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Goaway {
    /// Where to reconnect; empty = the same endpoint. Clients must send it empty.
    pub uri: String,
}

impl Message for Goaway {
    const NAME: &'static str = "GOAWAY";

    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError> {
        encode_since(Self::NAME, version, Version::Lite04)?;
        encode_framed(buf, |out| encode_string(out, &self.uri, MAX_GOAWAY_URI_LEN))
    }

    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError> {
        decode_since(Self::NAME, version, Version::Lite04)?;
        decode_framed(buf, MAX_MESSAGE_LEN, |body| Ok(Goaway { uri: decode_string(body, MAX_GOAWAY_URI_LEN)? }))
    }
}
