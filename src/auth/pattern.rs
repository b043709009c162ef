//! Path patterns, the grammar of moq-auth grants and of the reference relay's `--auth-public`:
//! `/`-separated segments, each a literal, `*` (one whole segment), `pre*suf` (one `*` inside a
//! segment) or `**` (zero or more whole segments, at most once per pattern). `room/**` matches
//! `room` and everything under it, `**` matches every path, the empty pattern only the root.

use std::fmt;

use crate::coding::{MAX_PATH_SEGMENTS, Path};

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `pre*suf`; plain `*` is both empty.
    Wild {
        prefix: String,
        suffix: String,
    },
    /// `**`.
    Any,
}

impl Segment {
    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(literal) => literal == segment,
            Segment::Wild { prefix, suffix } => {
                segment.len() >= prefix.len() + suffix.len()
                    && segment.starts_with(prefix.as_str())
                    && segment.ends_with(suffix.as_str())
            }
            Segment::Any => true,
        }
    }
}

/// Why a pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A leading, trailing or doubled `/`.
    #[error("pattern {0:?} has an empty segment")]
    EmptySegment(String),
    /// More than one `*` in a segment, or `**` mixed with other bytes.
    #[error("pattern {0:?} has a malformed wildcard segment")]
    BadWildcard(String),
    /// More than one `**`.
    #[error("pattern {0:?} has more than one `**`")]
    TwoDoubleStars(String),
    /// More than [`MAX_PATH_SEGMENTS`](crate::MAX_PATH_SEGMENTS) segments.
    #[error("pattern {0:?} has more than {MAX_PATH_SEGMENTS} segments")]
    TooLong(String),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses `text` (the empty string is the root-only pattern).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Ok(Pattern { text: String::new(), segments: Vec::new() });
        }
        let mut segments = Vec::new();
        for part in text.split('/') {
            let segment = match part {
                "" => return Err(PatternError::EmptySegment(text.into())),
                "**" => Segment::Any,
                _ if part.contains("**") || part.matches('*').count() > 1 => {
                    return Err(PatternError::BadWildcard(text.into()));
                }
                _ => match part.split_once('*') {
                    Some((prefix, suffix)) => Segment::Wild { prefix: prefix.into(), suffix: suffix.into() },
                    None => Segment::Literal(part.into()),
                },
            };
            segments.push(segment);
        }
        if segments.iter().filter(|s| **s == Segment::Any).count() > 1 {
            return Err(PatternError::TwoDoubleStars(text.into()));
        }
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(PatternError::TooLong(text.into()));
        }
        Ok(Pattern { text: text.into(), segments })
    }

    /// The subtree under `prefix` (`prefix/**`): what a legacy moq-token `put`/`get` prefix grants.
    pub fn subtree(prefix: &str) -> Result<Self, PatternError> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() { Self::parse("**") } else { Self::parse(&format!("{prefix}/**")) }
    }

    /// This pattern under `root`: `root/pattern`.
    pub fn rooted(&self, root: &Path) -> Result<Self, PatternError> {
        match (root.is_root(), self.text.is_empty()) {
            (true, _) => Ok(self.clone()),
            (false, true) => Self::parse(root.as_str()),
            (false, false) => Self::parse(&format!("{root}/{}", self.text)),
        }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &Path) -> bool {
        let path: Vec<&str> = path.segments().collect();
        match self.segments.iter().position(|s| *s == Segment::Any) {
            None => self.segments.len() == path.len() && self.segments.iter().zip(&path).all(|(s, p)| s.matches(p)),
            Some(any) => {
                let (head, tail) = (&self.segments[..any], &self.segments[any + 1..]);
                path.len() >= head.len() + tail.len()
                    && head.iter().zip(&path).all(|(s, p)| s.matches(p))
                    && tail.iter().rev().zip(path.iter().rev()).all(|(s, p)| s.matches(p))
            }
        }
    }

    /// Whether `prefix` or some path under it matches: a session rooted at `prefix` can use this
    /// grant for something.
    pub fn reaches(&self, prefix: &Path) -> bool {
        let prefix: Vec<&str> = prefix.segments().collect();
        match self.segments.iter().position(|s| *s == Segment::Any) {
            // Without `**` the path has exactly this many segments, and its first ones are `prefix`.
            None => self.segments.len() >= prefix.len() && self.segments.iter().zip(&prefix).all(|(s, p)| s.matches(p)),
            // `**` can swallow whatever of `prefix` the head leaves, and the tail then matches the
            // path's extension: only the head has to agree with `prefix`.
            Some(any) => self.segments[..any].iter().zip(&prefix).all(|(s, p)| s.matches(p)),
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Pattern::parse(text)
    }
}

/// A union of patterns: a path is in it when any member matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    /// No pattern: matches nothing.
    pub fn none() -> Self {
        Patterns(Vec::new())
    }

    /// Whether there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any member matches `path`.
    pub fn matches(&self, path: &Path) -> bool {
        self.0.iter().any(|p| p.matches(path))
    }

    /// Whether any member reaches into the subtree at `prefix`.
    pub fn reaches(&self, prefix: &Path) -> bool {
        self.0.iter().any(|p| p.reaches(prefix))
    }

    /// Every member under `root`.
    pub fn rooted(&self, root: &Path) -> Result<Self, PatternError> {
        self.0.iter().map(|p| p.rooted(root)).collect()
    }

    /// The members.
    pub fn iter(&self) -> impl Iterator<Item = &Pattern> {
        self.0.iter()
    }
}

impl FromIterator<Pattern> for Patterns {
    fn from_iter<I: IntoIterator<Item = Pattern>>(iter: I) -> Self {
        Patterns(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Path {
        Path::new(text).unwrap()
    }

    fn pat(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn matching() {
        assert!(pat("**").matches(&p("")));
        assert!(pat("**").matches(&p("a/b")));
        assert!(pat("anon/**").matches(&p("anon")));
        assert!(pat("anon/**").matches(&p("anon/room/x")));
        assert!(!pat("anon/**").matches(&p("secret")));
        assert!(!pat("anon/**").matches(&p("anonymous")));
        assert!(pat("rooms/*").matches(&p("rooms/1")));
        assert!(!pat("rooms/*").matches(&p("rooms/1/2")));
        assert!(!pat("rooms/*").matches(&p("rooms")));
        assert!(pat("exact").matches(&p("exact")));
        assert!(!pat("exact").matches(&p("exactly")));
        assert!(pat("").matches(&p("")));
        assert!(!pat("").matches(&p("a")));
        assert!(pat("cam*").matches(&p("camera")));
        assert!(pat("*.hd").matches(&p("alice.hd")));
        assert!(pat("a*z").matches(&p("az")));
        assert!(!pat("a*z").matches(&p("z")));
        assert!(pat("**/chat").matches(&p("room/1/chat")));
        assert!(pat("**/chat").matches(&p("chat")));
        assert!(!pat("**/chat").matches(&p("room/chatter")));
        assert!(pat("a/**/b").matches(&p("a/b")));
        assert!(pat("a/**/b").matches(&p("a/x/y/b")));
        assert!(!pat("a/**/b").matches(&p("a/x/y")));
    }

    #[test]
    fn reaching_a_subtree() {
        assert!(pat("anon/**").reaches(&p("")));
        assert!(pat("anon/**").reaches(&p("anon/room")));
        assert!(!pat("anon/**").reaches(&p("secret")));
        assert!(pat("rooms/*").reaches(&p("rooms")));
        assert!(!pat("rooms/*").reaches(&p("rooms/1/2")));
        assert!(pat("**/chat").reaches(&p("anything/at/all")));
        assert!(pat("a/**/b").reaches(&p("a/x")));
        assert!(!pat("a/**/b").reaches(&p("x")));
        assert!(!pat("").reaches(&p("a")));
    }

    #[test]
    fn grammar_errors() {
        assert!(matches!(Pattern::parse("/a"), Err(PatternError::EmptySegment(_))));
        assert!(matches!(Pattern::parse("a//b"), Err(PatternError::EmptySegment(_))));
        assert!(matches!(Pattern::parse("a*b*c"), Err(PatternError::BadWildcard(_))));
        assert!(matches!(Pattern::parse("a**"), Err(PatternError::BadWildcard(_))));
        assert!(matches!(Pattern::parse("**/a/**"), Err(PatternError::TwoDoubleStars(_))));
        let long = vec!["a"; MAX_PATH_SEGMENTS + 1].join("/");
        assert!(matches!(Pattern::parse(&long), Err(PatternError::TooLong(_))));
    }

    #[test]
    fn subtrees_and_roots() {
        assert_eq!(Pattern::subtree("").unwrap().as_str(), "**");
        assert_eq!(Pattern::subtree("/demo/").unwrap().as_str(), "demo/**");
        assert_eq!(pat("bob").rooted(&p("room/1")).unwrap().as_str(), "room/1/bob");
        assert_eq!(pat("").rooted(&p("room")).unwrap().as_str(), "room");
        assert_eq!(pat("**").rooted(&p("")).unwrap().as_str(), "**");
    }
}
