//! Who may do what on a relay, decided once per session from its URL path and query, the way the
//! reference relay does it: a JWT in `?jwt=` (moq-token format, verified with the relay's key) or,
//! without one, the anonymous grant of the public patterns. Either way a session gets a [`Grant`]:
//! the patterns it may publish and subscribe to, as absolute paths, and when it must end.

mod pattern;
mod token;

use std::sync::Arc;
use std::time::SystemTime;

pub use pattern::{Pattern, PatternError, Patterns};
pub use token::{Claims, Key, KeyAlgorithm, MAX_TOKEN_LEN, TokenError, UnknownAlgorithm};

use crate::coding::Path;
use crate::model::PathFilter;

/// How sessions are admitted.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Patterns (rooted at `/`) every session may publish without a token.
    pub public_publish: Patterns,
    /// Patterns (rooted at `/`) every session may subscribe to without a token.
    pub public_subscribe: Patterns,
    /// The key that verifies `?jwt=` tokens. `None`: tokens are refused.
    pub key: Option<Key>,
}

/// Why a session was refused (it is closed with UNAUTHORIZED).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token and nothing public.
    #[error("a token is required (?jwt=)")]
    TokenRequired,
    /// A token, but no key to verify it with.
    #[error("this relay does not accept tokens")]
    TokensNotAccepted,
    /// The token did not verify.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The session path is neither under the token's root nor above it.
    #[error("path {path:?} is outside the token's root {root:?}")]
    RootMismatch {
        /// The session path.
        path: String,
        /// The token's root.
        root: String,
    },
    /// The grant allows nothing at or under the session path.
    #[error("nothing at or under {0:?} is granted")]
    NoAccess(String),
    /// The URL path is not a valid broadcast path.
    #[error("bad session path: {0}")]
    BadPath(String),
}

/// What one session may do.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The session root (its URL path).
    pub root: Path,
    /// Absolute paths the session may publish.
    pub publish: Patterns,
    /// Absolute paths the session may subscribe to and see announced.
    pub subscribe: Patterns,
    /// The token's `exp`: the session is closed then.
    pub expires: Option<SystemTime>,
}

impl Grant {
    /// A filter admitting what this session may publish.
    pub fn publish_filter(&self) -> PathFilter {
        let patterns = self.publish.clone();
        Arc::new(move |path: &Path| patterns.matches(path))
    }

    /// A filter admitting what this session may subscribe to.
    pub fn subscribe_filter(&self) -> PathFilter {
        let patterns = self.subscribe.clone();
        Arc::new(move |path: &Path| patterns.matches(path))
    }
}

impl AuthConfig {
    /// Whether nothing is configured: every session may do everything (development).
    pub fn is_open(&self) -> bool {
        self.key.is_none() && self.public_publish.is_empty() && self.public_subscribe.is_empty()
    }

    /// The grant of a session that asked for `path_and_query` (a URL path, or SETUP Path, with an
    /// optional `?jwt=`).
    pub fn authorize(&self, path_and_query: &str) -> Result<Grant, AuthError> {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let root = Path::new(path).map_err(|e| AuthError::BadPath(e.to_string()))?;
        let jwt = url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name == "jwt" && !value.is_empty())
            .map(|(_, value)| value.into_owned());
        let claims = match (jwt, &self.key) {
            (Some(jwt), Some(key)) => key.verify(&jwt)?,
            // Public rules refuse a token, as the reference relay does: its holder expects it to
            // count. An open (development) relay has nothing to refuse and ignores it.
            _ if self.is_open() => {
                let all: Patterns = [Pattern::parse("**").map_err(TokenError::from)?].into_iter().collect();
                Claims { publish: all.clone(), subscribe: all, ..Default::default() }
            }
            (Some(_), None) => return Err(AuthError::TokensNotAccepted),
            (None, _) if self.public_publish.is_empty() && self.public_subscribe.is_empty() => {
                return Err(AuthError::TokenRequired);
            }
            (None, _) => Claims {
                publish: self.public_publish.clone(),
                subscribe: self.public_subscribe.clone(),
                ..Default::default()
            },
        };
        Self::grant(root, claims)
    }

    /// Scopes `claims` to a session at `root`: the session path and the token root must nest
    /// (either way round), and something at or under the session path must be granted.
    fn grant(root: Path, claims: Claims) -> Result<Grant, AuthError> {
        let claims_root = Path::new(&claims.root).map_err(|e| AuthError::BadPath(e.to_string()))?;
        if !root.has_prefix(&claims_root) && !claims_root.has_prefix(&root) {
            return Err(AuthError::RootMismatch { path: root.to_string(), root: claims_root.to_string() });
        }
        let publish = claims.publish.rooted(&claims_root).map_err(TokenError::from)?;
        let subscribe = claims.subscribe.rooted(&claims_root).map_err(TokenError::from)?;
        if !publish.reaches(&root) && !subscribe.reaches(&root) {
            return Err(AuthError::NoAccess(root.to_string()));
        }
        Ok(Grant { root, publish, subscribe, expires: claims.expires })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn patterns(texts: &[&str]) -> Patterns {
        texts.iter().map(|t| Pattern::parse(t).unwrap()).collect()
    }

    fn p(text: &str) -> Path {
        Path::new(text).unwrap()
    }

    #[test]
    fn public_patterns_are_rooted_at_slash() {
        let auth = AuthConfig {
            public_publish: patterns(&["anon/**"]),
            public_subscribe: patterns(&["anon/**", "*/chat"]),
            key: None,
        };
        let grant = auth.authorize("/").unwrap();
        assert!(grant.subscribe.matches(&p("anon/x")) && grant.subscribe.matches(&p("room/chat")));
        assert!(!grant.publish.matches(&p("room/chat")));
        let grant = auth.authorize("/anon/room?x=1").unwrap();
        assert_eq!(grant.root, p("anon/room"));
        assert!(matches!(auth.authorize("/secret/deep"), Err(AuthError::NoAccess(_))));
        assert!(matches!(auth.authorize("/anon?jwt=abc"), Err(AuthError::TokensNotAccepted)));
    }

    #[test]
    fn tokens_scope_to_their_root() {
        let key = Key::generate(KeyAlgorithm::Hs256, None).unwrap();
        let auth = AuthConfig { key: Some(key.clone()), ..Default::default() };
        let claims = Claims {
            root: "room/123".into(),
            publish: patterns(&["alice"]),
            subscribe: patterns(&[""]),
            expires: Some(SystemTime::now() + Duration::from_secs(60)),
            ..Default::default()
        };
        let token = key.sign(&claims).unwrap();
        // At the token root: publish room/123/alice, subscribe room/123 only.
        let grant = auth.authorize(&format!("/room/123?jwt={token}")).unwrap();
        assert!(grant.publish.matches(&p("room/123/alice")));
        assert!(!grant.publish.matches(&p("room/123/bob")));
        assert!(grant.expires.is_some());
        // Above the root the grant widens nothing; below it, only what reaches there stays usable.
        assert!(auth.authorize(&format!("/room?jwt={token}")).is_ok());
        assert!(auth.authorize(&format!("/room/123/alice?jwt={token}")).is_ok());
        assert!(matches!(auth.authorize(&format!("/room/123/bob?jwt={token}")), Err(AuthError::NoAccess(_))));
        assert!(matches!(auth.authorize(&format!("/secret?jwt={token}")), Err(AuthError::RootMismatch { .. })));
        assert!(matches!(auth.authorize("/room/123"), Err(AuthError::TokenRequired)));
        assert!(matches!(auth.authorize("/room/123?jwt=garbage"), Err(AuthError::Token(_))));
    }

    #[test]
    fn nothing_configured_is_open() {
        let grant = AuthConfig::default().authorize("/any/path").unwrap();
        assert!(grant.publish.matches(&p("any/path/x")) && grant.subscribe.matches(&p("other")));
        assert!(AuthConfig::default().authorize("/any?jwt=ignored").is_ok());
    }
}
