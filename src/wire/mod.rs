//! Every moq-lite message of versions 03 to 06 (spec sections 3 to 5), byte-exact. Pure: bytes in,
//! messages out, no I/O. Each message encodes and decodes for a given [`Version`]; a message or
//! field the version does not have is an error both ways.

mod announce;
mod datagram;
pub mod error_code;
mod fetch;
pub mod framing;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod goaway;
mod group;
mod message;
mod probe;
mod reader;
mod setup;
mod stream;
mod subscribe;
mod track;
mod version;

pub use announce::{AnnounceOk, AnnounceRequest, AnnounceStatus, Announcement, MAX_HOPS};
pub use datagram::{Datagram, MAX_DATAGRAM_LEN};
pub use error_code::{SessionCode, StreamCode};
pub use fetch::Fetch;
pub use framing::{MAX_MESSAGE_LEN, MAX_SETUP_LEN};
pub use goaway::{Goaway, MAX_GOAWAY_URI_LEN};
pub use group::{FrameHeader, FrameTimestamps, GroupHeader, MAX_FRAME_LEN, MAX_GROUP_BYTES, MAX_GROUP_FRAMES};
pub use message::Message;
pub use probe::Probe;
pub use reader::{FrameData, StreamReader};
pub use setup::{ProbeLevel, Role, Setup, param as setup_param};
pub use stream::{BidiStream, UniStream};
pub use subscribe::{Subscribe, SubscribeOkLegacy, SubscribeResponse, SubscribeUpdate, SubscribeWindow};
pub use track::{TrackInfo, TrackRequest};
pub use version::{UnknownVersion, Version};
