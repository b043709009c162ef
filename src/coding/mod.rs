//! Pure encoding primitives shared by every moq-lite message: varints, strings, broadcast paths,
//! zigzag, the "+1 optional" form and SETUP parameter lists. No I/O, no async.

mod error;
pub mod optional;
pub mod params;
pub mod path;
pub mod string;
pub mod varint;
pub mod zigzag;

pub use error::{DecodeError, EncodeError};
pub use optional::{decode_plus_one, encode_plus_one};
pub use params::Parameters;
pub use path::{MAX_PATH_SEGMENTS, Path, PathTooLong};
pub use string::{MAX_STRING_LEN, decode_string, encode_string};
pub use varint::{MAX_VARINT, decode_varint, encode_varint, peek_varint, varint_len};
pub use zigzag::{zigzag_decode, zigzag_encode};
