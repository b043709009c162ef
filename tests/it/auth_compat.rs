//! moqt reads keys and tokens exactly as the reference implementation's `moq-auth` crate writes
//! them (fixtures minted by moq-auth 0.2.2, see tests/fixtures/moq-auth/README.md).

use std::path::PathBuf;

use moqt::auth::{Key, Patterns, TokenError};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moq-auth").join(name)
}

fn token(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn texts(patterns: &Patterns) -> Vec<String> {
    patterns.iter().map(|p| p.to_string()).collect()
}

#[test]
fn moq_auth_tokens_verify_with_moq_auth_keys() {
    for alg in ["hs256", "eddsa", "es256"] {
        let mut keys = vec![Key::from_file(&fixture(&format!("{alg}.jwk"))).unwrap()];
        if alg != "hs256" {
            keys.push(Key::from_file(&fixture(&format!("{alg}.pub.jwk"))).unwrap());
        }
        for key in &keys {
            let prefixes = key.verify(&token(&format!("{alg}.prefixes.jwt"))).unwrap();
            assert_eq!(prefixes.root, "room/123", "{alg}");
            assert_eq!(texts(&prefixes.publish), ["alice/**"], "{alg}: put prefixes are subtrees");
            assert_eq!(texts(&prefixes.subscribe), ["**"], "{alg}");
            assert_eq!(prefixes.expires, None, "{alg}");
            let patterns = key.verify(&token(&format!("{alg}.patterns.jwt"))).unwrap();
            assert_eq!(texts(&patterns.publish), ["alice"], "{alg}");
            assert_eq!(texts(&patterns.subscribe), ["*/video"], "{alg}");
            let expired = key.verify(&token(&format!("{alg}.expired.jwt")));
            assert!(matches!(expired, Err(TokenError::Expired)), "{alg}: {expired:?}");
        }
    }
}

#[test]
fn a_moq_auth_token_does_not_verify_with_another_key() {
    let hs = Key::from_file(&fixture("hs256.jwk")).unwrap();
    let ed = Key::from_file(&fixture("eddsa.pub.jwk")).unwrap();
    assert!(matches!(hs.verify(&token("es256.prefixes.jwt")), Err(TokenError::Invalid(_))));
    assert!(matches!(ed.verify(&token("hs256.prefixes.jwt")), Err(TokenError::Invalid(_))));
    // A public half cannot sign.
    assert!(ed.sign(&hs.verify(&token("hs256.prefixes.jwt")).unwrap()).is_err());
}
