//! Every moq-lite message of versions 03 to 06 (spec sections 3 to 5), byte-exact. Pure: bytes in,
//! messages out, no I/O. Each message encodes and decodes for a given [`Version`]; a message or
//! field the version does not have is an error both ways.

mod announce;
mod datagram;
mod fetch;
pub mod framing;
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
pub use fetch::Fetch;
pub use framing::MAX_SETUP_LEN;
#[cfg(any(test, feature = "testing"))]
pub use framing::MAX_MESSAGE_LEN;
pub use goaway::Goaway;
#[cfg(any(test, feature = "testing"))]
pub use goaway::MAX_GOAWAY_URI_LEN;
pub use group::{FrameHeader, FrameTimestamps, GroupHeader};
pub use message::Message;
pub use probe::Probe;
pub use reader::{FrameData, StreamReader};
pub use setup::{ProbeLevel, Role, Setup};
#[cfg(any(test, feature = "testing"))]
pub use setup::param as setup_param;
pub use stream::{BidiStream, UniStream};
pub use subscribe::{Subscribe, SubscribeOkLegacy, SubscribeResponse, SubscribeUpdate, SubscribeWindow};
pub use track::{TrackInfo, TrackRequest};
pub use version::Version;
#[cfg(any(test, feature = "testing"))]
pub use version::UnknownVersion;
