//! TLS for raw QUIC and WebTransport: certificates (generated, or loaded from PEM), the server
//! config, and the ways a client trusts a server ([`ClientTrust`]): the platform's trust store plus
//! extra roots (the default), a pinned SHA-256 fingerprint as WebTransport's
//! `serverCertificateHashes`, only a given CA bundle, or nothing at all for development.
//!
//! Every config is built with rustls' ring provider passed explicitly, never the process default,
//! so the crate works whatever provider (if any) the application installed. QUIC needs TLS 1.3, so
//! only TLS 1.3 is offered.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The longest validity period a pinned certificate may have (WebTransport
/// `serverCertificateHashes`: at most two weeks).
pub const MAX_PINNED_VALIDITY: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// How far back a generated certificate's `notBefore` is set, to tolerate a peer's clock skew.
const GENERATED_BACKDATE: Duration = Duration::from_secs(60);

/// A generated certificate's validity: one minute under the limit, so a peer that compares with
/// `<` rather than `<=` accepts it too.
const GENERATED_VALIDITY: Duration = Duration::from_secs(14 * 24 * 60 * 60 - 60);

/// Why building a TLS configuration or loading a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The input held no `CERTIFICATE` PEM section.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// The input held no private key PEM section.
    #[error("no private key found in {0}")]
    NoPrivateKey(String),
    /// The input was not well-formed PEM.
    #[error("malformed PEM in {what}: {source}")]
    Pem {
        /// Which input.
        what: String,
        /// The decoder's complaint.
        source: pem::Error,
    },
    /// A certificate could not be used (bad DER, not a usable trust anchor).
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The private key is not one the ring provider can sign with.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(String),
    /// The trust configuration is unusable (no pinned fingerprint, no CA).
    #[error("invalid trust configuration: {0}")]
    InvalidTrust(String),
    /// rcgen failed to generate a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration (for example a key that does not match the certificate).
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The rustls config cannot drive QUIC (no TLS 1.3 cipher suite usable for Initial packets).
    #[error("TLS config unusable for QUIC: {0}")]
    Quic(String),
}

/// Why a pinned certificate was refused during the handshake. Carried inside
/// `rustls::Error::Other`, so it can be downcast from the handshake error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinnedCertError {
    /// The leaf's SHA-256 is not one of the pinned fingerprints.
    #[error("certificate fingerprint mismatch: server presented sha256 {presented}, not a pinned fingerprint")]
    FingerprintMismatch {
        /// The presented leaf's SHA-256, lowercase hex.
        presented: String,
    },
    /// The leaf is valid for longer than WebTransport allows for a pinned certificate.
    #[error("pinned certificate validity period of {seconds} s exceeds the 14-day limit")]
    ValidityTooLong {
        /// `notAfter - notBefore` in seconds.
        seconds: i64,
    },
    /// The leaf's key is not ECDSA P-256, the one key type every browser accepts through
    /// `serverCertificateHashes` (the W3C rules require it and forbid RSA).
    #[error("pinned certificate has a {found} key: serverCertificateHashes requires ECDSA P-256")]
    KeyNotEcdsaP256 {
        /// The key's algorithm as found in the certificate (a name, or the OID).
        found: String,
    },
}

/// A certificate chain (leaf first) and its private key.
pub struct Certificate {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Certificate {
    fn clone(&self) -> Self {
        Self { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl fmt::Debug for Certificate {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("chain_len", &self.chain.len())
            .field("fingerprint", &self.fingerprint_hex())
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Generates a self-signed ECDSA P-256 certificate valid from a minute ago for just under 14
    /// days, so browsers accept it through `serverCertificateHashes`. Each hostname becomes a SAN
    /// (an IP SAN when it parses as an IP address).
    pub fn generate(hostnames: &[String]) -> Result<Certificate, TlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(hostnames.to_vec())?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, hostnames.first().map_or("moqt", String::as_str));
        params.distinguished_name = name;
        // Whole seconds, so the DER times (second precision) keep the exact period.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let start = Duration::from_secs(now.saturating_sub(GENERATED_BACKDATE.as_secs()));
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + start;
        params.not_after = params.not_before + GENERATED_VALIDITY;
        let cert = params.self_signed(&key_pair)?;
        let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der()).into();
        Ok(Certificate { chain: vec![cert.der().clone()], key })
    }

    /// Loads a PEM chain (leaf first) and a PEM private key (PKCS#8, SEC1 or PKCS#1) from files.
    pub fn from_pem_files(chain_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Certificate, TlsError> {
        let (chain_path, key_path) = (chain_path.as_ref(), key_path.as_ref());
        let read =
            |path: &Path| std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source });
        let chain = read(chain_path)?;
        let key = read(key_path)?;
        Self::from_pem_labeled(&chain, &key, &chain_path.display().to_string(), &key_path.display().to_string())
    }

    /// Parses a PEM chain (leaf first) and a PEM private key from memory.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Certificate, TlsError> {
        Self::from_pem_labeled(chain, key, "certificate PEM", "key PEM")
    }

    fn from_pem_labeled(chain: &[u8], key: &[u8], chain_what: &str, key_what: &str) -> Result<Certificate, TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem { what: chain_what.to_owned(), source })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(chain_what.to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|source| match source {
            pem::Error::NoItemsFound => TlsError::NoPrivateKey(key_what.to_owned()),
            source => TlsError::Pem { what: key_what.to_owned(), source },
        })?;
        // Fail at load time rather than at the first handshake.
        rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TlsError::InvalidPrivateKey(e.to_string()))?;
        Ok(Certificate { chain, key })
    }

    /// The chain and key as PEM text, e.g. to save a generated certificate.
    pub fn to_pem(&self) -> (String, String) {
        let chain = self.chain.iter().map(|c| pem_encode("CERTIFICATE", c.as_ref())).collect();
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        (chain, pem_encode(label, self.key.secret_der()))
    }

    /// SHA-256 of the leaf certificate's DER: what a client pins (`serverCertificateHashes`).
    /// An empty chain hashes the empty string.
    pub fn fingerprint(&self) -> [u8; 32] {
        sha256(self.chain.first().map_or(&[][..], |c| c.as_ref()))
    }

    /// [`Self::fingerprint`] as lowercase hex.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint())
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding, 64 columns, between BEGIN/END lines, `\n` line ends.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    ::pem::encode_config(&::pem::Pem::new(label, der), config)
}

/// The crypto provider every config here uses: ring, never the process default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server config: TLS 1.3, ring, no client auth, the given ALPNs. Exposed for callers
/// that wrap it themselves (e.g. WebTransport).
pub fn server_crypto(cert: &Certificate, alpns: &[Vec<u8>]) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())?;
    config.alpn_protocols = alpns.to_vec();
    Ok(config)
}

/// A quinn server config for raw QUIC with `cert` and the given ALPNs; quinn's default transport
/// config (tune it with `transport_config`).
pub fn server_config(cert: &Certificate, alpns: &[Vec<u8>]) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto(cert, alpns)?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// How a client decides to trust the server's certificate.
#[derive(Debug, Clone)]
pub enum ClientTrust {
    /// Accept only a leaf whose SHA-256 is one of these, with an ECDSA P-256 key, valid now and
    /// for at most 14 days (WebTransport `serverCertificateHashes` rules). The server name is not
    /// checked.
    Fingerprint(Vec<[u8; 32]>),
    /// Trust chains to these roots (WebPKI path validation, name checked).
    CaPem(Vec<CertificateDer<'static>>),
    /// Accept any certificate. Development only: anyone on the path can impersonate the server.
    InsecureSkipVerify,
    /// The platform's trust store (the OS verifier on Android, iOS, macOS and Windows; the system
    /// roots on Linux), plus `extra_roots`. The default for clients: what users of other TLS
    /// software on the machine already trust, enterprise CAs included.
    Platform {
        /// CA certificates trusted in addition to the platform's.
        extra_roots: Vec<CertificateDer<'static>>,
    },
}

impl Default for ClientTrust {
    fn default() -> Self {
        ClientTrust::Platform { extra_roots: Vec::new() }
    }
}

/// The trust choices a user makes, as the `moqt` command's flags and the C API's client options
/// give them; [`ClientTrust::from_settings`] turns them into a [`ClientTrust`] the one way both
/// share.
#[derive(Debug, Clone, Default)]
pub struct TrustSettings {
    /// Accept any certificate (development only). Wins over everything else.
    pub disable_verify: bool,
    /// SHA-256 fingerprints in hex (colons allowed). If any is given, only a certificate with one
    /// of them is trusted.
    pub fingerprints: Vec<String>,
    /// A PEM file of CA certificates trusted besides the platform's store (when neither of the
    /// above applies).
    pub ca_file: Option<PathBuf>,
}

impl ClientTrust {
    /// The trust `settings` ask for: [`ClientTrust::InsecureSkipVerify`] if verification is
    /// disabled, else [`ClientTrust::Fingerprint`] with every fingerprint given, else the
    /// platform's trust store plus the CA file's certificates. A fingerprint that is not hex
    /// SHA-256, or a CA file that cannot be read or holds no certificate, is an error naming it.
    pub fn from_settings(settings: &TrustSettings) -> Result<ClientTrust, TlsError> {
        if settings.disable_verify {
            return Ok(ClientTrust::InsecureSkipVerify);
        }
        if !settings.fingerprints.is_empty() {
            let pins = settings.fingerprints.iter().map(|hex| parse_fingerprint(hex)).collect::<Result<_, _>>()?;
            return Ok(ClientTrust::Fingerprint(pins));
        }
        let extra_roots = match &settings.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| TlsError::Io { path: path.clone(), source })?;
                pem_roots(&pem, &path.display().to_string())?
            }
            None => Vec::new(),
        };
        Ok(ClientTrust::Platform { extra_roots })
    }

    /// [`ClientTrust::CaPem`] from PEM text holding one or more root certificates.
    pub fn ca_from_pem(pem: &[u8]) -> Result<ClientTrust, TlsError> {
        Ok(ClientTrust::CaPem(pem_roots(pem, "CA PEM")?))
    }

    /// [`ClientTrust::Fingerprint`] from a lowercase or uppercase hex SHA-256 (colons allowed).
    pub fn fingerprint_from_hex(hex: &str) -> Result<ClientTrust, TlsError> {
        Ok(ClientTrust::Fingerprint(vec![parse_fingerprint(hex)?]))
    }
}

/// The root certificates in PEM text; `what` names the input in errors.
fn pem_roots(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let roots = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what: what.to_owned(), source })?;
    if roots.is_empty() {
        return Err(TlsError::NoCertificate(what.to_owned()));
    }
    Ok(roots)
}

/// A lowercase or uppercase hex SHA-256 (colons allowed).
fn parse_fingerprint(hex: &str) -> Result<[u8; 32], TlsError> {
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    let bad = || TlsError::InvalidTrust(format!("not a hex SHA-256 fingerprint: {hex:?}"));
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The rustls client config: TLS 1.3, ring, the given trust and ALPNs. Exposed for callers that
/// wrap it themselves (e.g. WebTransport).
pub fn client_crypto(trust: &ClientTrust, alpns: &[Vec<u8>]) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        ClientTrust::Fingerprint(pins) => {
            if pins.is_empty() {
                return Err(TlsError::InvalidTrust("no pinned fingerprint".to_owned()));
            }
            Arc::new(CustomVerifier { pins: Some(pins.clone()), algorithms })
        }
        ClientTrust::CaPem(roots) => {
            let mut store = RootCertStore::empty();
            for root in roots {
                store.add(root.clone()).map_err(|e| TlsError::InvalidCertificate(e.to_string()))?;
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| TlsError::InvalidTrust(e.to_string()))?
        }
        ClientTrust::InsecureSkipVerify => {
            tracing::warn!("TLS certificate verification is disabled (InsecureSkipVerify): development only");
            Arc::new(CustomVerifier { pins: None, algorithms })
        }
        ClientTrust::Platform { extra_roots } => Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots.iter().cloned(), provider.clone())
                .map_err(|e| TlsError::InvalidTrust(format!("platform trust store: {e}")))?,
        ),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpns.to_vec();
    Ok(config)
}

/// A quinn client config for raw QUIC with the given trust and ALPNs.
pub fn client_config(trust: &ClientTrust, alpns: &[Vec<u8>]) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto(trust, alpns)?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Our own certificate checks: a leaf accepted by SHA-256 pin, as browsers do for
/// `serverCertificateHashes`, or (no pins) any leaf at all for development. Either way the
/// handshake signature is checked against the presented key.
#[derive(Debug)]
struct CustomVerifier {
    /// `None` accepts any certificate (InsecureSkipVerify).
    pins: Option<Vec<[u8; 32]>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for CustomVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pins) = &self.pins else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = sha256(end_entity.as_ref());
        if !pins.contains(&presented) {
            let err = PinnedCertError::FingerprintMismatch { presented: hex(&presented) };
            return Err(rustls::Error::Other(rustls::OtherError(Arc::new(err))));
        }
        let (not_before, not_after) =
            validity(end_entity.as_ref()).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now_secs < not_before {
            let not_before = UnixTime::since_unix_epoch(Duration::from_secs(not_before.max(0).unsigned_abs()));
            return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
        }
        if now_secs > not_after {
            let not_after = UnixTime::since_unix_epoch(Duration::from_secs(not_after.max(0).unsigned_abs()));
            return Err(CertificateError::ExpiredContext { time: now, not_after }.into());
        }
        let seconds = not_after.saturating_sub(not_before);
        if seconds > MAX_PINNED_VALIDITY.as_secs() as i64 {
            let err = PinnedCertError::ValidityTooLong { seconds };
            return Err(rustls::Error::Other(rustls::OtherError(Arc::new(err))));
        }
        let key = key_algorithm(end_entity.as_ref())
            .ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if key != KeyAlgorithm::EcdsaP256 {
            let err = PinnedCertError::KeyNotEcdsaP256 { found: key.to_string() };
            return Err(rustls::Error::Other(rustls::OtherError(Arc::new(err))));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The `(notBefore, notAfter)` of an X.509 certificate in Unix seconds.
fn validity(cert_der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let validity = cert.validity();
    Some((validity.not_before.timestamp(), validity.not_after.timestamp()))
}

/// A certificate's public key algorithm, as far as pinning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyAlgorithm {
    EcdsaP256,
    /// Anything else, named when known (RSA, Ed25519, another curve), else the dotted OID.
    Other(String),
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::Other(name) => f.write_str(name),
        }
    }
}

/// The subjectPublicKeyInfo algorithm of an X.509 certificate (and its named curve for EC keys).
fn key_algorithm(cert_der: &[u8]) -> Option<KeyAlgorithm> {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_SIG_ED448,
        OID_SIG_ED25519,
    };
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let algorithm = &cert.public_key().algorithm;
    let oid = &algorithm.algorithm;
    let curve = algorithm.parameters.as_ref().and_then(|parameters| parameters.as_oid().ok());
    Some(if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        match curve {
            Some(curve) if curve == OID_EC_P256 => KeyAlgorithm::EcdsaP256,
            Some(curve) => KeyAlgorithm::Other(format!("ECDSA (curve {curve})")),
            None => KeyAlgorithm::Other("ECDSA (no named curve)".to_owned()),
        }
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        KeyAlgorithm::Other("RSA".to_owned())
    } else if *oid == OID_PKCS1_RSASSAPSS {
        KeyAlgorithm::Other("RSA-PSS".to_owned())
    } else if *oid == OID_SIG_ED25519 {
        KeyAlgorithm::Other("Ed25519".to_owned())
    } else if *oid == OID_SIG_ED448 {
        KeyAlgorithm::Other("Ed448".to_owned())
    } else {
        KeyAlgorithm::Other(format!("OID {oid}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};
    use tokio::time::timeout;

    const ALPN: &[u8] = b"moq-lite-06";
    const WAIT: Duration = Duration::from_secs(10);

    fn generated() -> Certificate {
        Certificate::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("generate")
    }

    fn unix_now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
    }

    #[test]
    fn fingerprint_is_sha256_of_leaf_der() {
        let cert = generated();
        let expected = ring::digest::digest(&ring::digest::SHA256, cert.chain[0].as_ref());
        assert_eq!(&cert.fingerprint()[..], expected.as_ref());
        assert_eq!(cert.fingerprint_hex().len(), 64);
        assert_eq!(cert.fingerprint_hex(), cert.fingerprint_hex().to_lowercase());
        assert!(matches!(
            ClientTrust::fingerprint_from_hex(&cert.fingerprint_hex()),
            Ok(ClientTrust::Fingerprint(pins)) if pins == vec![cert.fingerprint()]
        ));
    }

    #[test]
    fn generated_validity_is_current_and_at_most_14_days() {
        let cert = generated();
        let (not_before, not_after) = validity(cert.chain[0].as_ref()).expect("validity");
        let now = unix_now();
        assert!(not_before <= now && now - not_before <= 120, "not_before {not_before} now {now}");
        assert!(not_after > now);
        assert!(not_after - not_before <= MAX_PINNED_VALIDITY.as_secs() as i64);
        assert_eq!(not_after - not_before, GENERATED_VALIDITY.as_secs() as i64);
    }

    #[test]
    fn malformed_certificates_have_no_validity() {
        assert_eq!(validity(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(validity(b""), None);
    }

    #[test]
    fn pem_round_trip_keeps_fingerprint() {
        let cert = generated();
        let (chain, key) = cert.to_pem();
        assert!(chain.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let loaded = Certificate::from_pem(chain.as_bytes(), key.as_bytes()).expect("from_pem");
        assert_eq!(loaded.fingerprint(), cert.fingerprint());
        assert_eq!(loaded.key.secret_der(), cert.key.secret_der());

        let dir = std::env::temp_dir().join(format!("moqt-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (chain_path, key_path) = (dir.join("chain.pem"), dir.join("key.pem"));
        std::fs::write(&chain_path, &chain).expect("write");
        std::fs::write(&key_path, &key).expect("write");
        let loaded = Certificate::from_pem_files(&chain_path, &key_path).expect("from_pem_files");
        assert_eq!(loaded.fingerprint(), cert.fingerprint());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The PEM text is byte for byte what rcgen writes for the same certificate and key (64
    /// columns, `\n` line ends).
    #[cfg(unix)]
    #[test]
    fn pem_text_matches_rcgen() {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key_pair)
            .expect("cert");
        let ours = Certificate {
            chain: vec![cert.der().clone(), cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()).into(),
        };
        let (chain, key) = ours.to_pem();
        assert_eq!(chain, cert.pem().repeat(2));
        assert_eq!(key, key_pair.serialize_pem());
    }

    #[test]
    fn pem_errors_name_the_failure() {
        let (chain, key) = generated().to_pem();
        let missing = Path::new("/nonexistent/moqt/chain.pem");
        match Certificate::from_pem_files(missing, missing) {
            Err(TlsError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(matches!(Certificate::from_pem(b"", key.as_bytes()), Err(TlsError::NoCertificate(_))));
        assert!(matches!(Certificate::from_pem(key.as_bytes(), key.as_bytes()), Err(TlsError::NoCertificate(_))));
        assert!(matches!(Certificate::from_pem(chain.as_bytes(), b""), Err(TlsError::NoPrivateKey(_))));
        assert!(matches!(Certificate::from_pem(chain.as_bytes(), chain.as_bytes()), Err(TlsError::NoPrivateKey(_))));
        assert!(matches!(ClientTrust::ca_from_pem(b"nothing"), Err(TlsError::NoCertificate(_))));
        assert!(matches!(client_config(&ClientTrust::Fingerprint(vec![]), &[]), Err(TlsError::InvalidTrust(_))));
    }

    #[test]
    fn trust_settings_choose_in_order_insecure_pins_platform() {
        let cert = generated();
        let fp = cert.fingerprint_hex();
        let missing = PathBuf::from("/nonexistent/moqt/ca.pem");
        let settings = |disable_verify, fingerprints: &[&str], ca_file: Option<&PathBuf>| TrustSettings {
            disable_verify,
            fingerprints: fingerprints.iter().map(|s| s.to_string()).collect(),
            ca_file: ca_file.cloned(),
        };
        // Disabling verification wins, even over a bad pin or a missing CA file.
        let insecure = ClientTrust::from_settings(&settings(true, &["zz"], Some(&missing)));
        assert!(matches!(insecure, Ok(ClientTrust::InsecureSkipVerify)));
        // Pins win over the CA file, which is then not read.
        let pinned = ClientTrust::from_settings(&settings(false, &[&fp, &"ab".repeat(32)], Some(&missing)));
        assert!(matches!(pinned, Ok(ClientTrust::Fingerprint(pins)) if pins == vec![cert.fingerprint(), [0xab; 32]]));
        let bad = ClientTrust::from_settings(&settings(false, &[&fp, "zz"], None)).expect_err("bad pin");
        assert!(bad.to_string().contains("\"zz\""), "{bad}");
        // Else the platform's store, plus the CA file's roots; a file's errors name it.
        assert!(matches!(
            ClientTrust::from_settings(&TrustSettings::default()),
            Ok(ClientTrust::Platform { extra_roots }) if extra_roots.is_empty()
        ));
        let err = ClientTrust::from_settings(&settings(false, &[], Some(&missing))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/moqt/ca.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("moqt-tls-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (ca, empty) = (dir.join("ca.pem"), dir.join("empty.pem"));
        std::fs::write(&ca, cert.to_pem().0).expect("write");
        std::fs::write(&empty, "nothing").expect("write");
        assert!(matches!(
            ClientTrust::from_settings(&settings(false, &[], Some(&ca))),
            Ok(ClientTrust::Platform { extra_roots }) if extra_roots == cert.chain
        ));
        let err = ClientTrust::from_settings(&settings(false, &[], Some(&empty))).expect_err("empty");
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pinned_verifier_checks_validity_window() {
        let cert = generated();
        let verifier = CustomVerifier {
            pins: Some(vec![cert.fingerprint()]),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from("localhost").expect("name");
        let at = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs as u64));
        let check = |secs| verifier.verify_server_cert(&cert.chain[0], &[], &name, &[], at(secs));
        assert!(check(unix_now()).is_ok());
        let expired = check(unix_now() + 15 * 86_400).expect_err("expired");
        assert!(expired.to_string().contains("expired"), "{expired}");
        let early = check(unix_now() - 3600).expect_err("not yet valid");
        assert!(early.to_string().contains("not valid yet"), "{early}");

        // rcgen's default params are valid for millennia: pinned, but refused as overlong.
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let long = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key_pair)
            .expect("cert");
        let verifier = CustomVerifier { pins: Some(vec![sha256(long.der())]), ..verifier };
        let err = verifier.verify_server_cert(long.der(), &[], &name, &[], at(unix_now())).expect_err("overlong");
        assert!(err.to_string().contains("14-day"), "{err}");
    }

    #[test]
    fn key_algorithm_names_the_key() {
        let cert = |alg: &'static rcgen::SignatureAlgorithm| {
            let key_pair = rcgen::KeyPair::generate_for(alg).expect("key");
            let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
            params.self_signed(&key_pair).expect("cert").der().to_vec()
        };
        assert_eq!(key_algorithm(generated().chain[0].as_ref()), Some(KeyAlgorithm::EcdsaP256));
        assert_eq!(key_algorithm(&cert(&rcgen::PKCS_ED25519)), Some(KeyAlgorithm::Other("Ed25519".to_owned())));
        assert_eq!(
            key_algorithm(&cert(&rcgen::PKCS_ECDSA_P384_SHA384)),
            Some(KeyAlgorithm::Other("ECDSA (curve 1.3.132.0.34)".to_owned()))
        );
        assert_eq!(key_algorithm(b"\x30\x03\x02\x01\x00"), None);
    }

    async fn connect(
        server_addr: SocketAddr,
        trust: &ClientTrust,
    ) -> Result<quinn::Connection, Box<dyn std::error::Error + Send + Sync>> {
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        endpoint.set_default_client_config(client_config(trust, &[ALPN.to_vec()])?);
        let connecting = endpoint.connect(server_addr, "localhost")?;
        Ok(timeout(WAIT, connecting).await??)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loopback_handshake_with_each_trust() {
        let cert = generated();
        let server_config = server_config(&cert, &[ALPN.to_vec()]).expect("server config");
        let server = quinn::Endpoint::server(server_config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
        let addr = server.local_addr().expect("addr");
        let acceptor = server.clone();
        let accept_task = tokio::spawn(async move {
            // Handshakes that fail on the client fail here too; keep accepting.
            while let Some(incoming) = acceptor.accept().await {
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        let _ = conn.closed().await;
                    }
                });
            }
        });

        let conn = connect(addr, &ClientTrust::Fingerprint(vec![[7u8; 32], cert.fingerprint()]))
            .await
            .expect("pinned handshake");
        let alpn = conn.handshake_data().and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok());
        assert_eq!(alpn.and_then(|d| d.protocol).as_deref(), Some(ALPN));
        conn.close(0u32.into(), b"done");

        let err = connect(addr, &ClientTrust::Fingerprint(vec![[7u8; 32]])).await.expect_err("wrong pin");
        assert!(err.to_string().contains("fingerprint"), "{err}");

        // A different subject, so webpki finds no issuer at all (the same subject would be tried and
        // fail as BadSignature).
        let unrelated = Certificate::generate(&["unrelated.example".to_owned()]).expect("generate");
        let err = connect(addr, &ClientTrust::CaPem(unrelated.chain.clone())).await.expect_err("unrelated CA");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");

        // The self-signed certificate itself works as a trust anchor.
        let conn = connect(addr, &ClientTrust::CaPem(cert.chain.clone())).await.expect("CA handshake");
        conn.close(0u32.into(), b"done");

        let conn = connect(addr, &ClientTrust::InsecureSkipVerify).await.expect("insecure handshake");
        conn.close(0u32.into(), b"done");

        server.close(0u32.into(), b"test over");
        accept_task.abort();
        let _ = timeout(WAIT, server.wait_idle()).await;
    }
}
