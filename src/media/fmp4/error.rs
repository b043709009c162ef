//! The one error of fragmented MP4 reading, splitting and writing.

/// What went wrong reading, splitting or writing a fragmented MP4. The input is untrusted, so
/// every malformed or unsupported box ends up here rather than in a panic.
#[derive(Debug, thiserror::Error)]
pub enum Fmp4Error {
    /// mp4-atom refused to decode or encode a box.
    #[error("{context}: {source}")]
    Atom {
        /// The box or step that failed (`moov`, `moof`, `encode init segment`, ...).
        context: &'static str,
        /// The mp4-atom error.
        #[source]
        source: mp4_atom::Error,
    },
    /// A box declares more bytes than the reader may buffer.
    #[error("{kind} box of {size} bytes is over the {max}-byte limit (ReaderLimits::max_box_size)")]
    BoxTooLarge {
        /// The box type (fourcc), e.g. `mdat`.
        kind: String,
        /// The whole box, header included.
        size: usize,
        /// The limit in bytes (`ReaderLimits::max_box_size`).
        max: usize,
    },
    /// A box of size 0 ("to the end of the file") cannot be framed in a stream.
    #[error("{0} box without a size (extends to the end of the file) cannot be read from a stream")]
    UnsizedBox(String),
    /// A fragment arrived before the moov that describes its tracks.
    #[error("moof before the init segment (moov)")]
    FragmentBeforeInit,
    /// A moof must be followed directly by the mdat holding its samples.
    #[error("moof followed by a {0} box instead of its mdat")]
    MoofWithoutMdat(String),
    /// Media data outside a fragment: a progressive (non-fragmented) MP4.
    #[error("mdat outside a fragment: the input is not a fragmented MP4 (ffmpeg: -movflags frag_keyframe+empty_moov)")]
    NotFragmented,
    /// The moov or a fragment names a track in a way that cannot be used.
    #[error("track {track_id}: {reason}")]
    InvalidTrack {
        /// The track ID (from `tkhd`, or a fragment's `tfhd`).
        track_id: u32,
        /// What is wrong with the track.
        reason: &'static str,
    },
    /// A traf for a track the moov does not declare.
    #[error("fragment for track {0}, which the moov does not declare")]
    UnknownTrack(u32),
    /// A sample's bytes lie (partly) outside the fragment's mdat.
    #[error("track {track_id}: sample data at {offset}+{size} lies outside the mdat")]
    SampleOutsideMdat {
        /// The `tfhd` track ID.
        track_id: u32,
        /// Where the sample's data starts, in bytes from the start of the moof.
        offset: i128,
        /// The sample's size in bytes.
        size: u32,
    },
    /// More samples in one fragment than the reader accepts.
    #[error("fragment has more than {max} samples (ReaderLimits::max_samples_per_fragment)")]
    TooManySamples {
        /// The limit (`ReaderLimits::max_samples_per_fragment`).
        max: usize,
    },
    /// A timestamp that does not fit its type after adding durations, offsets or rescaling.
    #[error("track {track_id}: timestamp out of range")]
    TimestampOutOfRange {
        /// The `tfhd` track ID.
        track_id: u32,
    },
    /// The stream ended inside a box.
    #[error("stream ended inside a box ({0} bytes left over)")]
    Truncated(usize),
    /// Valid MP4 this module does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The writer was given something it cannot write.
    #[error("writer: {0}")]
    Writer(String),
}

impl Fmp4Error {
    pub(crate) fn atom(context: &'static str) -> impl FnOnce(mp4_atom::Error) -> Self {
        move |source| Self::Atom { context, source }
    }
}
