//! The fuzz entry point for what a session's URL brings to auth: the path and query, patterns,
//! and key files.

use crate::auth::{AuthConfig, Key, Pattern, Patterns};
use crate::coding::Path;

/// The key the fuzz config verifies with: HS256, secret `moqt-fuzz-secret`.
pub const FUZZ_KEY: &str = r#"{"alg":"HS256","kty":"oct","k":"bW9xdC1mdXp6LXNlY3JldA"}"#;

/// Byte 0 picks what the rest (as UTF-8, lossily) is fed to: 0 a session path and query with
/// a key and public patterns configured, 1 a pattern (then matched against a path), 2 a key.
/// Nothing may panic; a granted session must be rooted at the path it asked for.
pub fn session_auth(data: &[u8]) {
    let [selector, rest @ ..] = data else { return };
    let text = String::from_utf8_lossy(rest);
    match selector % 3 {
        0 => {
            let Ok(key) = Key::parse(FUZZ_KEY) else { return };
            let public: Patterns = ["anon/**", "*/chat"].iter().filter_map(|p| Pattern::parse(p).ok()).collect();
            let config = AuthConfig { public_publish: public.clone(), public_subscribe: public, key: Some(key) };
            if let Ok(grant) = config.authorize(&text) {
                let path = text.split('?').next().unwrap_or("");
                assert_eq!(Some(&grant.root), Path::new(path).ok().as_ref(), "granted a different root");
            }
        }
        1 => {
            let (pattern, path) = text.split_once(' ').unwrap_or((&text, ""));
            if let (Ok(pattern), Ok(path)) = (Pattern::parse(pattern), Path::new(path)) {
                // Whatever matches a path reaches that path's subtree.
                assert!(!pattern.matches(&path) || pattern.reaches(&path), "{pattern} {path}");
            }
        }
        _ => {
            let _ = Key::parse(&text);
        }
    }
}
