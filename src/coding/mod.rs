//! The bottom layer: pure encoding primitives shared by every moq-lite message (varints, strings,
//! broadcast paths, zigzag, the "+1 optional" form, SETUP parameter lists) and the protocol
//! vocabulary every layer above speaks ([`code`]: error codes and group bounds). No I/O, no async.

pub mod code;
mod error;
pub mod optional;
pub mod params;
pub mod path;
pub mod string;
pub mod varint;
pub mod zigzag;

pub use code::{MAX_FRAME_LEN, MAX_GROUP_BYTES, MAX_GROUP_FRAMES, SessionCode, StreamCode};
pub use error::{DecodeError, EncodeError};
pub use optional::{decode_plus_one, encode_plus_one};
pub use params::Parameters;
pub use path::{MAX_PATH_SEGMENTS, Path, PathTooLong};
pub use string::{MAX_STRING_LEN, decode_string, encode_string};
pub use varint::{MAX_VARINT, decode_varint, encode_varint, varint_len};
pub use zigzag::{zigzag_decode, zigzag_encode};
