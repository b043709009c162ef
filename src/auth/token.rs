//! JWT tokens and JWK keys in the format of the reference implementation's `moq-token` tool (the
//! `moq-auth` crate): a key file is a JWK as JSON or as base64url-encoded JSON; a token's claims
//! are `root` plus either the legacy `put`/`get` prefixes (a string or a list) or `publish`/
//! `subscribe` pattern lists, with `exp`, `nbf` and `iat` in Unix seconds. jsonwebtoken verifies
//! and signs with ring, the crate's one crypto provider.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::pattern::{Pattern, PatternError, Patterns};

/// The longest key file or token read, far above any real one.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// base64url that accepts padded and unpadded input, as moq-token does.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a key or a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file does not hold a usable JWK.
    #[error("bad key: {0}")]
    BadKey(String),
    /// The token is malformed or its signature does not verify with the key.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// The claims grant neither publishing nor subscribing, or mix the two encodings.
    #[error("bad claims: {0}")]
    BadClaims(String),
    /// A grant pattern does not parse.
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// What a token grants, relative to its `root`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The root the patterns are relative to ("" = `/`).
    pub root: String,
    /// Broadcasts the holder may publish.
    pub publish: Patterns,
    /// Broadcasts the holder may subscribe to (and see announced).
    pub subscribe: Patterns,
    /// When the token, and any session it opened, ends.
    pub expires: Option<SystemTime>,
    /// When it was issued.
    pub issued: Option<SystemTime>,
    /// Not valid before.
    pub not_before: Option<SystemTime>,
}

/// A string or a list of strings, as moq-token writes a single prefix.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// The claims as they travel in the JWT payload.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct WireClaims {
    #[serde(skip_serializing_if = "String::is_empty")]
    root: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    put: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    get: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscribe: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

fn to_time(seconds: Option<i64>) -> Option<SystemTime> {
    seconds.map(|s| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64))
}

fn to_seconds(time: Option<SystemTime>) -> Option<i64> {
    time.map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64)
}

impl TryFrom<WireClaims> for Claims {
    type Error = TokenError;

    fn try_from(wire: WireClaims) -> Result<Self, TokenError> {
        let legacy = wire.put.is_some() || wire.get.is_some();
        if legacy && (wire.publish.is_some() || wire.subscribe.is_some()) {
            return Err(TokenError::BadClaims("mixes put/get with publish/subscribe".into()));
        }
        let parse = |field: Option<OneOrMany>, subtree: bool| -> Result<Patterns, TokenError> {
            let texts = field.map(OneOrMany::into_vec).unwrap_or_default();
            let parsed: Result<Patterns, PatternError> =
                texts.iter().map(|text| if subtree { Pattern::subtree(text) } else { Pattern::parse(text) }).collect();
            Ok(parsed?)
        };
        let (publish, subscribe) = if legacy {
            (parse(wire.put, true)?, parse(wire.get, true)?)
        } else {
            (parse(wire.publish, false)?, parse(wire.subscribe, false)?)
        };
        if publish.is_empty() && subscribe.is_empty() {
            return Err(TokenError::BadClaims("grants neither publish nor subscribe".into()));
        }
        Ok(Claims {
            root: wire.root,
            publish,
            subscribe,
            expires: to_time(wire.exp),
            issued: to_time(wire.iat),
            not_before: to_time(wire.nbf),
        })
    }
}

impl From<&Claims> for WireClaims {
    fn from(claims: &Claims) -> Self {
        let texts = |patterns: &Patterns| OneOrMany::Many(patterns.iter().map(|p| p.to_string()).collect());
        let some = |patterns: &Patterns| (!patterns.is_empty()).then(|| texts(patterns));
        WireClaims {
            root: claims.root.clone(),
            put: None,
            get: None,
            publish: some(&claims.publish),
            subscribe: some(&claims.subscribe),
            exp: to_seconds(claims.expires),
            iat: to_seconds(claims.issued),
            nbf: to_seconds(claims.not_before),
        }
    }
}

/// A JWK as moq-token writes it.
#[derive(Serialize, Deserialize, Clone)]
struct Jwk {
    alg: String,
    /// Absent in keys of older moq-token versions, which meant `oct`.
    #[serde(default = "default_kty")]
    kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_ops: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

fn default_kty() -> String {
    "oct".into()
}

/// Algorithms `moqt token generate` makes keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// HMAC-SHA256 with a 256-bit shared secret (the moq-token default).
    Hs256,
    /// Ed25519 signatures: the relay needs only the public key.
    EdDsa,
    /// ECDSA P-256 signatures.
    Es256,
}

/// A key algorithm name that is none of [`KeyAlgorithm`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?} (HS256, EdDSA or ES256)")]
pub struct UnknownAlgorithm(pub String);

impl std::str::FromStr for KeyAlgorithm {
    type Err = UnknownAlgorithm;

    fn from_str(text: &str) -> Result<Self, UnknownAlgorithm> {
        match text.to_ascii_uppercase().as_str() {
            "HS256" => Ok(KeyAlgorithm::Hs256),
            "EDDSA" => Ok(KeyAlgorithm::EdDsa),
            "ES256" => Ok(KeyAlgorithm::Es256),
            _ => Err(UnknownAlgorithm(text.to_string())),
        }
    }
}

/// The PKCS#8 wrappings ring and jsonwebtoken take, around the raw JWK scalars.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
const P256_PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
];
const P256_PKCS8_MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

/// A key that verifies tokens, and signs them when it holds the private half.
#[derive(Clone)]
pub struct Key {
    jwk: Jwk,
    algorithm: Algorithm,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("algorithm", &self.algorithm).field("kid", &self.jwk.kid).finish_non_exhaustive()
    }
}

fn bad_key(reason: impl std::fmt::Display) -> TokenError {
    TokenError::BadKey(reason.to_string())
}

fn field<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, TokenError> {
    value.as_deref().ok_or_else(|| bad_key(format!("missing \"{name}\"")))
}

fn decode_b64(value: &Option<String>, name: &str) -> Result<Vec<u8>, TokenError> {
    BASE64URL.decode(field(value, name)?).map_err(|e| bad_key(format!("\"{name}\": {e}")))
}

impl Key {
    /// Parses a key: JWK JSON, or base64url-encoded JWK JSON (what `moq-token generate` writes).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN {
            return Err(bad_key("longer than any JWK"));
        }
        let json = if text.starts_with('{') {
            text.to_string()
        } else {
            let bytes = BASE64URL.decode(text).map_err(|e| bad_key(format!("neither JSON nor base64url: {e}")))?;
            String::from_utf8(bytes).map_err(bad_key)?
        };
        let jwk: Jwk = serde_json::from_str(&json).map_err(bad_key)?;
        Self::from_jwk(jwk)
    }

    /// Reads a key file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad_key(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    fn from_jwk(jwk: Jwk) -> Result<Self, TokenError> {
        let algorithm: Algorithm = jwk.alg.parse().map_err(|_| bad_key(format!("unknown \"alg\" {:?}", jwk.alg)))?;
        let decoding = match (jwk.kty.as_str(), algorithm) {
            ("oct", Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
                let secret = decode_b64(&jwk.k, "k")?;
                if secret.is_empty() {
                    return Err(bad_key("empty secret"));
                }
                DecodingKey::from_secret(&secret)
            }
            ("EC", Algorithm::ES256 | Algorithm::ES384) => {
                DecodingKey::from_ec_components(field(&jwk.x, "x")?, field(&jwk.y, "y")?).map_err(bad_key)?
            }
            ("OKP", Algorithm::EdDSA) => DecodingKey::from_ed_components(field(&jwk.x, "x")?).map_err(bad_key)?,
            ("RSA", Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512)
            | ("RSA", Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) => {
                DecodingKey::from_rsa_components(field(&jwk.n, "n")?, field(&jwk.e, "e")?).map_err(bad_key)?
            }
            (kty, alg) => return Err(bad_key(format!("\"kty\" {kty:?} does not go with \"alg\" {alg:?}"))),
        };
        Ok(Key { jwk, algorithm, decoding })
    }

    /// A new random key that signs and verifies, with an optional key ID.
    pub fn generate(algorithm: KeyAlgorithm, kid: Option<String>) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let ops = Some(vec!["sign".to_string(), "verify".to_string()]);
        let blank = |alg: &str, kty: &str| Jwk {
            alg: alg.into(),
            kty: kty.into(),
            key_ops: ops.clone(),
            kid: kid.clone(),
            k: None,
            crv: None,
            x: None,
            y: None,
            d: None,
            n: None,
            e: None,
        };
        let jwk = match algorithm {
            KeyAlgorithm::Hs256 => {
                let mut secret = [0u8; 32];
                ring::rand::SecureRandom::fill(&rng, &mut secret).map_err(|_| bad_key("no randomness"))?;
                Jwk { k: Some(BASE64URL.encode(secret)), ..blank("HS256", "oct") }
            }
            KeyAlgorithm::EdDsa => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| bad_key("no randomness"))?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(bad_key)?;
                // ring's PKCS#8 v2 document holds the 32-byte seed right after the v1 prefix.
                let seed = &pkcs8.as_ref()[16..48];
                Jwk {
                    crv: Some("Ed25519".into()),
                    x: Some(BASE64URL.encode(pair.public_key().as_ref())),
                    d: Some(BASE64URL.encode(seed)),
                    ..blank("EdDSA", "OKP")
                }
            }
            KeyAlgorithm::Es256 => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| bad_key("no randomness"))?;
                let bytes = pkcs8.as_ref();
                // The scalar follows the fixed prefix; the uncompressed point (04 || x || y) ends it.
                let d = &bytes[P256_PKCS8_PREFIX.len()..P256_PKCS8_PREFIX.len() + 32];
                let point = &bytes[bytes.len() - 65..];
                Jwk {
                    crv: Some("P-256".into()),
                    x: Some(BASE64URL.encode(&point[1..33])),
                    y: Some(BASE64URL.encode(&point[33..])),
                    d: Some(BASE64URL.encode(d)),
                    ..blank("ES256", "EC")
                }
            }
        };
        Self::from_jwk(jwk)
    }

    /// The key as JWK JSON (with the private half when it has one).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.jwk).unwrap_or_default()
    }

    /// The key as base64url-encoded JWK JSON, the form `moq-token` writes to key files.
    pub fn to_base64(&self) -> String {
        BASE64URL.encode(self.to_json())
    }

    /// The verify-only half of an asymmetric key, for relays that should not be able to mint.
    pub fn public(&self) -> Result<Self, TokenError> {
        if self.jwk.kty == "oct" {
            return Err(bad_key("a shared secret has no public half"));
        }
        let jwk = Jwk { d: None, key_ops: Some(vec!["verify".into()]), ..self.jwk.clone() };
        Self::from_jwk(jwk)
    }

    fn allows(&self, operation: &str) -> bool {
        self.jwk.key_ops.as_ref().is_none_or(|ops| ops.iter().any(|op| op == operation))
    }

    /// Verifies `token`'s signature and times and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if !self.allows("verify") {
            return Err(bad_key("key_ops does not allow verify"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid("too long".into()));
        }
        let mut validation = Validation::new(self.algorithm);
        validation.required_spec_claims.clear();
        // Times are checked below, to the second and without leeway, as moq-token does.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = Claims::try_from(data.claims)?;
        let now = SystemTime::now();
        if claims.expires.is_some_and(|exp| exp <= now) {
            return Err(TokenError::Expired);
        }
        if claims.not_before.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Signs `claims` into a token (header `alg` and `kid` from the key).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        if !self.allows("sign") {
            return Err(bad_key("key_ops does not allow sign"));
        }
        if claims.publish.is_empty() && claims.subscribe.is_empty() {
            return Err(TokenError::BadClaims("grants neither publish nor subscribe".into()));
        }
        let encoding = match self.jwk.kty.as_str() {
            "oct" => EncodingKey::from_secret(&decode_b64(&self.jwk.k, "k")?),
            "OKP" => {
                let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
                der.extend(decode_b64(&self.jwk.d, "d")?);
                EncodingKey::from_ed_der(&der)
            }
            "EC" if self.algorithm == Algorithm::ES256 => {
                let mut der = P256_PKCS8_PREFIX.to_vec();
                der.extend(decode_b64(&self.jwk.d, "d")?);
                der.extend(P256_PKCS8_MIDDLE);
                der.push(0x04);
                der.extend(decode_b64(&self.jwk.x, "x")?);
                der.extend(decode_b64(&self.jwk.y, "y")?);
                EncodingKey::from_ec_der(&der)
            }
            kty => return Err(bad_key(format!("cannot sign with a {kty} {:?} key", self.algorithm))),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = self.jwk.kid.clone();
        jsonwebtoken::encode(&header, &WireClaims::from(claims), &encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(publish: &[&str], subscribe: &[&str]) -> Claims {
        Claims {
            root: "room/123".into(),
            publish: publish.iter().map(|p| Pattern::parse(p).unwrap()).collect(),
            subscribe: subscribe.iter().map(|p| Pattern::parse(p).unwrap()).collect(),
            expires: Some(SystemTime::now() + Duration::from_secs(3600)),
            ..Default::default()
        }
    }

    #[test]
    fn every_generated_key_signs_and_verifies() {
        for algorithm in [KeyAlgorithm::Hs256, KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
            let key = Key::generate(algorithm, Some("k1".into())).unwrap();
            let token = key.sign(&claims(&["alice/**"], &["**"])).unwrap();
            let got = key.verify(&token).unwrap();
            assert_eq!(got.publish.iter().next().unwrap().as_str(), "alice/**", "{algorithm:?}");
            // The key survives its file forms, and an asymmetric key's public half verifies.
            assert!(Key::parse(&key.to_base64()).unwrap().verify(&token).is_ok(), "{algorithm:?}");
            assert!(Key::parse(&key.to_json()).unwrap().verify(&token).is_ok(), "{algorithm:?}");
            if algorithm != KeyAlgorithm::Hs256 {
                let public = key.public().unwrap();
                assert!(public.verify(&token).is_ok(), "{algorithm:?}");
                assert!(public.sign(&claims(&["a"], &[])).is_err(), "{algorithm:?}: verify-only");
            }
        }
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let key = Key::generate(KeyAlgorithm::Hs256, None).unwrap();
        let other = Key::generate(KeyAlgorithm::Hs256, None).unwrap();
        let token = other.sign(&claims(&["a"], &[])).unwrap();
        assert!(matches!(key.verify(&token), Err(TokenError::Invalid(_))));
        assert!(matches!(key.verify("not.a.token"), Err(TokenError::Invalid(_))));
        assert!(matches!(key.verify(""), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let key = Key::generate(KeyAlgorithm::Hs256, None).unwrap();
        let mut expired = claims(&["a"], &[]);
        expired.expires = Some(SystemTime::now() - Duration::from_secs(1));
        assert!(matches!(key.verify(&key.sign(&expired).unwrap()), Err(TokenError::Expired)));
        let mut early = claims(&["a"], &[]);
        early.not_before = Some(SystemTime::now() + Duration::from_secs(60));
        assert!(matches!(key.verify(&key.sign(&early).unwrap()), Err(TokenError::NotYetValid)));
    }

    #[test]
    fn legacy_put_get_claims_are_subtrees() {
        let wire: WireClaims =
            serde_json::from_str(r#"{"root":"demo","put":"alice","get":["", "bob"],"cluster":false}"#).unwrap();
        let claims = Claims::try_from(wire).unwrap();
        let texts = |p: &Patterns| p.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(texts(&claims.publish), ["alice/**"]);
        assert_eq!(texts(&claims.subscribe), ["**", "bob/**"]);
        let mixed: WireClaims = serde_json::from_str(r#"{"put":"a","subscribe":["b"]}"#).unwrap();
        assert!(matches!(Claims::try_from(mixed), Err(TokenError::BadClaims(_))));
        let useless: WireClaims = serde_json::from_str(r#"{"root":"a"}"#).unwrap();
        assert!(matches!(Claims::try_from(useless), Err(TokenError::BadClaims(_))));
    }

    #[test]
    fn keys_in_moq_token_forms_load() {
        // An HS256 key as moq-token writes it, and an older one without "kty" or "key_ops".
        let json = r#"{"alg":"HS256","key_ops":["sign","verify"],"kty":"oct","k":"dGVzdC1zZWNyZXQtdGhhdC1pcy1sb25nLWVub3VnaC1mb3ItaG1hYy1zaGEyNTY","kid":"test-key-1"}"#;
        let key = Key::parse(json).unwrap();
        let old =
            Key::parse(r#"{"alg":"HS256","k":"dGVzdC1zZWNyZXQtdGhhdC1pcy1sb25nLWVub3VnaC1mb3ItaG1hYy1zaGEyNTY="}"#)
                .unwrap();
        let token = key.sign(&claims(&[], &["**"])).unwrap();
        assert!(old.verify(&token).is_ok());
        assert!(Key::parse(&BASE64URL.encode(json)).is_ok());
        assert!(matches!(Key::parse(r#"{"alg":"ES256","kty":"oct","k":"AA"}"#), Err(TokenError::BadKey(_))));
        assert!(matches!(Key::parse("%%%"), Err(TokenError::BadKey(_))));
    }
}
