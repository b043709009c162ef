//! Broadcast paths: `/`-separated segments, normalised (no leading or trailing `/`, no empty
//! segment), at most [`MAX_PATH_SEGMENTS`]. The empty path is the root. Prefix matching works on whole
//! segments, so `room` is a prefix of `room/alice` but not of `roomy`.
//!
//! Paths are normalised on receipt rather than rejected, as the reference relay does (spec 11.5):
//! `"/a//b/"` is `a/b`. Only the segment limit is an error.

use std::fmt;
use std::sync::Arc;

use bytes::{Buf, BufMut};

use super::string::{MAX_STRING_LEN, decode_string, encode_string};
use super::{DecodeError, EncodeError};

/// The most `/`-separated segments a path may have (spec section 2).
pub const MAX_PATH_SEGMENTS: usize = 32;

/// A normalised broadcast path. Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path(Arc<str>);

/// A path with more than [`MAX_PATH_SEGMENTS`](crate::MAX_PATH_SEGMENTS) segments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path has {segments} segments, more than the limit of {MAX_PATH_SEGMENTS}")]
pub struct PathTooLong {
    /// How many segments the path had.
    pub segments: usize,
}

impl From<PathTooLong> for DecodeError {
    fn from(err: PathTooLong) -> Self {
        DecodeError::TooManySegments { segments: err.segments, max: MAX_PATH_SEGMENTS }
    }
}

impl Path {
    /// The root: no segments.
    pub fn root() -> Self {
        Self::default()
    }

    /// Normalises `text` into a path: drops empty segments (leading, trailing and doubled `/`).
    pub fn new(text: &str) -> Result<Self, PathTooLong> {
        let segments = text.split('/').filter(|s| !s.is_empty()).count();
        if segments > MAX_PATH_SEGMENTS {
            return Err(PathTooLong { segments });
        }
        let normalised = !text.starts_with('/') && !text.ends_with('/') && !text.contains("//");
        if normalised {
            return Ok(Self(Arc::from(text)));
        }
        let joined = text.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/");
        Ok(Self(Arc::from(joined)))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The segments in order; none for the root.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// How many segments the path has.
    pub fn segment_count(&self) -> usize {
        self.segments().count()
    }

    /// True if `prefix` is this path or one of its ancestors, on whole segments.
    pub fn has_prefix(&self, prefix: &Path) -> bool {
        self.strip_prefix(prefix).is_some()
    }

    /// The rest of this path after `prefix` (the root if they are equal), or `None` if `prefix` is not
    /// a whole-segment prefix.
    pub fn strip_prefix(&self, prefix: &Path) -> Option<Path> {
        if prefix.is_root() {
            return Some(self.clone());
        }
        let rest = self.0.strip_prefix(&*prefix.0)?;
        if rest.is_empty() { Some(Path::root()) } else { rest.strip_prefix('/').map(|r| Path(Arc::from(r))) }
    }

    /// This path followed by `suffix`.
    pub fn join(&self, suffix: &Path) -> Result<Path, PathTooLong> {
        if suffix.is_root() {
            return Ok(self.clone());
        }
        if self.is_root() {
            return Ok(suffix.clone());
        }
        let segments = self.segment_count() + suffix.segment_count();
        if segments > MAX_PATH_SEGMENTS {
            return Err(PathTooLong { segments });
        }
        Ok(Path(Arc::from(format!("{}/{}", self.0, suffix.0))))
    }

    /// Writes the path as a string.
    pub fn encode<B: BufMut>(&self, buf: &mut B) -> Result<(), EncodeError> {
        encode_string(buf, &self.0, MAX_STRING_LEN)
    }

    /// Reads a string and normalises it into a path.
    pub fn decode<B: Buf>(buf: &mut B) -> Result<Self, DecodeError> {
        let text = decode_string(buf, MAX_STRING_LEN)?;
        Ok(Path::new(&text)?)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl TryFrom<&str> for Path {
    type Error = PathTooLong;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Path::new(text)
    }
}

impl AsRef<str> for Path {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Path {
        Path::new(text).unwrap()
    }

    #[test]
    fn normalises_slashes() {
        assert_eq!(p("/a//b/").as_str(), "a/b");
        assert_eq!(p("a/b").as_str(), "a/b");
        assert_eq!(p("///").as_str(), "");
        assert!(p("").is_root());
        assert_eq!(p("room/alice").segment_count(), 2);
    }

    #[test]
    fn segment_limit() {
        let ok = vec!["s"; 32].join("/");
        assert_eq!(p(&ok).segment_count(), 32);
        let long = vec!["s"; 33].join("/");
        assert_eq!(Path::new(&long), Err(PathTooLong { segments: 33 }));
        assert_eq!(p(&ok).join(&p("x")), Err(PathTooLong { segments: 33 }));
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let path = p("room/alice/video");
        assert!(path.has_prefix(&p("room")));
        assert!(path.has_prefix(&p("room/alice")));
        assert!(path.has_prefix(&p("room/alice/video")));
        assert!(path.has_prefix(&Path::root()));
        assert!(!path.has_prefix(&p("roo")));
        assert!(!path.has_prefix(&p("room/ali")));
        assert!(!p("roomy").has_prefix(&p("room")));
        assert_eq!(path.strip_prefix(&p("room")), Some(p("alice/video")));
        assert_eq!(path.strip_prefix(&path), Some(Path::root()));
        assert_eq!(p("room").join(&p("alice")).unwrap(), p("room/alice"));
        assert_eq!(Path::root().join(&p("alice")).unwrap(), p("alice"));
    }

    #[test]
    fn decode_normalises_and_limits() {
        let mut wire = Vec::new();
        encode_string(&mut wire, "/a//b/", MAX_STRING_LEN).unwrap();
        assert_eq!(Path::decode(&mut wire.as_slice()).unwrap(), p("a/b"));
        let mut wire = Vec::new();
        encode_string(&mut wire, &vec!["s"; 33].join("/"), MAX_STRING_LEN).unwrap();
        assert_eq!(Path::decode(&mut wire.as_slice()), Err(DecodeError::TooManySegments { segments: 33, max: 32 }));
    }
}
