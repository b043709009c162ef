//! The one trait every moq-lite message implements: encode and decode for a given version.

use bytes::BufMut;

use super::Version;
use crate::coding::{DecodeError, EncodeError};

/// A moq-lite message. Both directions take the version, because layouts differ per version and a
/// message that does not exist in a version is an error both ways.
pub trait Message: Sized {
    /// The name used in errors and logs, as the spec writes it (e.g. `SUBSCRIBE`).
    const NAME: &'static str;

    /// Appends the encoded message (with its Type and Message Length where it has them).
    fn encode<B: BufMut>(&self, buf: &mut B, version: Version) -> Result<(), EncodeError>;

    /// Decodes one message from the front of `buf`, advancing it past the message. Returns
    /// [`DecodeError::Short`] and leaves `buf` untouched while the message is incomplete.
    fn decode(buf: &mut &[u8], version: Version) -> Result<Self, DecodeError>;

    /// Encodes into a new vector; convenient for tests and one-off messages.
    #[cfg(any(test, feature = "testing"))]
    fn to_bytes(&self, version: Version) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out, version)?;
        Ok(out)
    }
}

/// Fails encoding when `version` is older than `since` for a message that first exists there.
pub(crate) fn encode_since(what: &'static str, version: Version, since: Version) -> Result<(), EncodeError> {
    if version < since {
        return Err(EncodeError::NotInVersion { what, version: version.alpn() });
    }
    Ok(())
}

/// Fails decoding when `version` is older than `since` for a message that first exists there.
pub(crate) fn decode_since(what: &'static str, version: Version, since: Version) -> Result<(), DecodeError> {
    if version < since {
        return Err(DecodeError::NotInVersion { what, version: version.alpn() });
    }
    Ok(())
}

/// Fails encoding a field that `version` cannot carry unless it holds its neutral value.
pub(crate) fn encode_only_default(what: &'static str, version: Version, is_default: bool) -> Result<(), EncodeError> {
    if !is_default {
        return Err(EncodeError::NotInVersion { what, version: version.alpn() });
    }
    Ok(())
}
