//! The CMAF container: each moq frame is one moof+mdat fragment of the rendition's init segment.

use bytes::Bytes;

use super::{MediaError, MediaFrame};

/// The samples of one fragment, with presentation times in microseconds.
pub(crate) fn samples(_init: &Bytes, _group: u64, _fragment: &Bytes) -> Result<Vec<MediaFrame>, MediaError> {
    Err(MediaError::Frame { container: "cmaf", reason: "not read yet".into() })
}
