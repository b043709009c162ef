//! What can go wrong reading or writing hang media.

use crate::model;

/// An error of the media layer. Malformed input from the network or from C is one of these,
/// never a panic.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    /// The catalog is not valid hang JSON, or a merge patch broke it.
    #[error("bad catalog: {0}")]
    Catalog(String),
    /// A catalog group passed [`CatalogSettings::max_bytes`](super::CatalogSettings::max_bytes).
    #[error("catalog larger than {max} bytes")]
    CatalogTooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// More renditions than [`CatalogSettings::max_renditions`](super::CatalogSettings::max_renditions).
    #[error("{count} renditions, more than the {max} allowed")]
    TooManyRenditions {
        /// Video plus audio renditions in the catalog.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A media frame does not fit its container (a truncated timestamp, a bad fragment).
    #[error("bad {container} frame: {reason}")]
    Frame {
        /// The container read or written (`legacy`, `cmaf`, `fmp4`, ...).
        container: &'static str,
        /// What is wrong with the frame.
        reason: String,
    },
    /// The catalog has no rendition by that name.
    #[error("no rendition named {0:?}")]
    NoRendition(String),
    /// A rendition of this name already exists.
    #[error("a rendition named {0:?} already exists")]
    DuplicateRendition(String),
    /// The rendition's container kind is not one moqt reads.
    #[error("rendition {name:?} uses container {kind:?}, which moqt does not read")]
    UnsupportedContainer {
        /// The rendition's track name.
        name: String,
        /// The container's `kind`.
        kind: String,
    },
    /// A media track's first frame, or the first frame after a loss, must be a keyframe.
    #[error("a group must start with a keyframe")]
    KeyframeRequired,
    /// Presentation times of one track go backwards past a keyframe or overflow microseconds.
    #[error("bad timestamp: {0}")]
    Timestamp(String),
    /// From the tracks underneath.
    #[error(transparent)]
    Model(#[from] model::Error),
}
