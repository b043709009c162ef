//! Errors of the pure codec. Every decode failure names what was wrong, so the session layer can pick
//! the moq-lite error code and a log line can say why.

use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ends before the value does. On a stream this only means "wait for more bytes";
    /// inside a complete length-delimited message it becomes [`DecodeError::BodyTooShort`].
    #[error("need more bytes")]
    Short,
    /// A message's fields need more bytes than its Message Length gave.
    #[error("message body of {length} bytes ends before its fields do")]
    BodyTooShort {
        /// The length in bytes.
        length: u64,
    },
    /// A message's fields ended with bytes of its Message Length left over.
    #[error("message body of {length} bytes has {extra} bytes left after its fields")]
    BodyTooLong {
        /// The length in bytes.
        length: u64,
        /// Bytes left over.
        extra: u64,
    },
    /// A Message Length above the limit for that message.
    #[error("message length {length} is over the limit of {max} bytes")]
    MessageTooLarge {
        /// The length in bytes.
        length: u64,
        /// The limit.
        max: u64,
    },
    /// A string or path that is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A string longer than the limit.
    #[error("string of {length} bytes is over the limit of {max}")]
    StringTooLong {
        /// The length in bytes.
        length: u64,
        /// The limit.
        max: u64,
    },
    /// A broadcast path with more segments than allowed.
    #[error("path has {segments} segments, more than the limit of {max}")]
    TooManySegments {
        /// Its segment count.
        segments: usize,
        /// The limit.
        max: usize,
    },
    /// The same SETUP parameter ID twice.
    #[error("SETUP parameter {0:#x} appears twice")]
    DuplicateParameter(u64),
    /// More SETUP parameters than allowed.
    #[error("{count} SETUP parameters, more than the limit of {max}")]
    TooManyParameters {
        /// How many there are.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A type value that names no message of this kind.
    #[error("unknown {kind} type {value:#x}")]
    UnknownType {
        /// Which kind of type (stream, message, ...).
        kind: &'static str,
        /// The value found.
        value: u64,
    },
    /// A message or stream that the negotiated version does not have.
    #[error("{what} does not exist in {version}")]
    NotInVersion {
        /// What it was.
        what: &'static str,
        /// The version.
        version: &'static str,
    },
    /// A field whose value is outside what the protocol allows.
    #[error("invalid {field}: {value}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A hop list longer than allowed.
    #[error("hop list of {count} entries is over the limit of {max}")]
    TooManyHops {
        /// How many there are.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A non-zero hop ID that appears twice in one list.
    #[error("hop ID {0} appears twice in one hop list")]
    DuplicateHop(u64),
    /// A frame payload above the limit.
    #[error("frame payload of {length} bytes is over the limit of {max}")]
    FrameTooLarge {
        /// The length in bytes.
        length: u64,
        /// The limit.
        max: u64,
    },
    /// A datagram above the limit.
    #[error("datagram of {length} bytes is over the limit of {max}")]
    DatagramTooLarge {
        /// The length in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A varint above 2^62 - 1.
    #[error("{0} does not fit a QUIC varint (at most 2^62 - 1)")]
    VarintTooLarge(u64),
    /// A message or field that the chosen version cannot carry.
    #[error("{what} cannot be expressed in {version}")]
    NotInVersion {
        /// What it was.
        what: &'static str,
        /// The version.
        version: &'static str,
    },
    /// A value past a protocol limit (string length, hop count, datagram size, ...).
    #[error("{what} is {value}, over the limit of {max}")]
    TooLarge {
        /// What it was.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// A field whose value the protocol forbids.
    #[error("invalid {field}: {value}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}
