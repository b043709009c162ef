//! TLS and URLs as clients meet them, over loopback QUIC: the platform trust store (with extra
//! roots), each failure mode with its own error (expired, a pinned key that is not ECDSA P-256
//! included), a certificate reloaded from its files without dropping sessions, the moqt:// URL
//! form with its path in SETUP, SNI from the URL host, and malformed URLs.

use crate::common;

use std::time::Duration;

use common::*;
use moqt::endpoint::{Client, EndpointConfig, Server};
use moqt::model::{OriginProducer, TrackEvent};
use moqt::reconnect::{ClientState, PersistentClient, ReconnectSettings, Target};
use moqt::session::{Origins, Session, SessionEvent};
use moqt::transport::tls::{Certificate, ClientTrust};
use moqt::wire::Version;
use tokio::time::timeout;

fn accept_all(server: Server) {
    tokio::spawn(async move {
        let mut sessions = Vec::new();
        while let Some(incoming) = server.accept().await {
            if let Ok(pending) = incoming.setup().await {
                if let Ok(session) = Session::accept(pending, Origins::default(), Default::default()).await {
                    sessions.push(session);
                }
            }
        }
    });
}

fn start(cert: &Certificate) -> std::net::SocketAddr {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), cert, EndpointConfig::default()).unwrap();
    let addr = server.local_addr().unwrap();
    accept_all(server);
    addr
}

async fn try_connect(trust: ClientTrust, addr: std::net::SocketAddr, name: &str) -> Result<Session, String> {
    let client =
        Client::new("127.0.0.1:0".parse().unwrap(), &trust, EndpointConfig::default()).map_err(|e| e.to_string())?;
    timeout(WAIT, client.connect(addr, name, None, Origins::default()))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_trust_with_extra_roots() {
    init_logs();
    // A name no system root can share a subject with.
    let name = "moqt-test.invalid";
    let cert = Certificate::generate(&[name.to_string()]).unwrap();
    let addr = start(&cert);
    // A self-signed certificate is not in the platform store...
    let err = try_connect(ClientTrust::default(), addr, name).await.err().expect("refused");
    assert!(err.to_lowercase().contains("issuer") || err.contains("UnknownIssuer"), "{err}");
    // ...but is trusted as an extra root.
    let extra = ClientTrust::Platform { extra_roots: vec![cert.chain[0].clone()] };
    try_connect(extra, addr, name).await.expect("trusted with the extra root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tls_failure_says_which() {
    init_logs();
    let cert = cert();
    let addr = start(&cert);
    let other = Certificate::generate(&["elsewhere.example".to_string()]).unwrap();
    let mismatch =
        try_connect(ClientTrust::Fingerprint(vec![other.fingerprint()]), addr, "localhost").await.err().unwrap();
    assert!(mismatch.contains("fingerprint"), "pin mismatch: {mismatch}");
    let unknown = try_connect(ClientTrust::CaPem(vec![other.chain[0].clone()]), addr, "localhost").await.err().unwrap();
    assert!(unknown.contains("UnknownIssuer") || unknown.to_lowercase().contains("issuer"), "unknown CA: {unknown}");
    let wrong_name =
        try_connect(ClientTrust::CaPem(vec![cert.chain[0].clone()]), addr, "other.example").await.err().unwrap();
    assert!(
        wrong_name.contains("NotValidForName") || wrong_name.to_lowercase().contains("name"),
        "wrong name: {wrong_name}"
    );
    assert!(mismatch != unknown && unknown != wrong_name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_reload_without_dropping_sessions() {
    init_logs();
    let dir = std::env::temp_dir().join(format!("moqt-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (chain, key) = (dir.join("chain.pem"), dir.join("key.pem"));
    let write = |cert: &Certificate| {
        let (chain_pem, key_pem) = cert.to_pem();
        std::fs::write(&key, key_pem).unwrap();
        std::fs::write(&chain, chain_pem).unwrap();
    };
    let first = cert();
    write(&first);
    let loaded = Certificate::from_pem_files(&chain, &key).unwrap();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), &loaded, EndpointConfig::default()).unwrap();
    let addr = server.local_addr().unwrap();
    let _watch = server.watch_certificate_files(chain.clone(), key.clone(), Duration::from_millis(50));
    accept_all(server);
    let old = try_connect(ClientTrust::Fingerprint(vec![first.fingerprint()]), addr, "localhost").await.unwrap();

    // A renewed certificate lands in the files (a new mtime); new connections get it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = cert();
    write(&second);
    let renewed = timeout(WAIT, async {
        loop {
            if try_connect(ClientTrust::Fingerprint(vec![second.fingerprint()]), addr, "localhost").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(renewed.is_ok(), "the renewed certificate was never served");
    assert_eq!(old.event(), SessionEvent::Active, "the session made with the old certificate is still up");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moqt_url_carries_its_path_in_setup_and_frames_flow() {
    init_logs();
    assert_eq!(Target::from_url("moql://127.0.0.1/x").await.unwrap().addr.port(), 443, "port 443 by default");
    assert!(Target::from_url("gopher://x/").await.unwrap_err().to_string().contains("unknown scheme"));
    assert!(Target::from_url("moql://").await.is_err(), "a URL without a host");
    for version in [Version::Lite06, Version::Lite05] {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let url = format!("moqt://localhost:{}/anon/room?jwt=x", server.addr.port());
        let target = Target::from_url(&url).await.unwrap();
        assert_eq!(target.path.as_deref(), Some("/anon/room?jwt=x"));
        let remote = OriginProducer::default();
        let mut persistent = PersistentClient::start(
            server.client(version),
            target,
            None,
            Some(remote.clone()),
            ReconnectSettings::default(),
        );
        timeout(WAIT, async {
            while !matches!(persistent.state(), ClientState::Connected { .. }) {
                persistent.next_state().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{version}: not connected over moqt://"));
        server.wait_sessions(1).await;
        // The server read the URL's path and query from SETUP Path.
        assert_eq!(*server.paths.lock().unwrap(), vec!["/anon/room?jwt=x".to_string()], "{version}");
        let broadcast = announced(&remote, &path("room/alice")).await;
        let mut track = timeout(WAIT, broadcast.subscribe_track("video")).await.unwrap().unwrap();
        timeout(WAIT, published.track.used()).await.unwrap();
        write_groups(&mut published.track, 2, 2);
        // Groups travel on concurrent streams (newest first): either order, each whole.
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match next_event(&mut track).await {
                TrackEvent::Group(mut group) => {
                    let g = group.sequence();
                    let frames = read_group(&mut group).await;
                    let payloads: Vec<_> = frames.iter().map(|f| f.payload.clone()).collect();
                    assert_eq!(payloads, vec![payload(g, 0), payload(g, 1)], "{version}");
                    seen.push(g);
                }
                TrackEvent::Gap(gap) => panic!("{version}: {gap:?}"),
            }
        }
        seen.sort();
        assert_eq!(seen, vec![0, 1], "{version}");
    }
}

/// A self-signed certificate for `localhost` with a key of `algorithm`, valid from `start` to `end`
/// (Unix seconds).
fn made(algorithm: &'static rcgen::SignatureAlgorithm, start: u64, end: u64) -> Certificate {
    let key_pair = rcgen::KeyPair::generate_for(algorithm).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(start);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(end);
    let der = params.self_signed(&key_pair).unwrap().der().clone();
    let key = rustls_pki_types::PrivatePkcs8KeyDer::from(key_pair.serialize_der()).into();
    Certificate { chain: vec![der], key }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

const DAY: u64 = 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_must_have_an_ecdsa_p256_key() {
    init_logs();
    let now = unix_now();
    for (algorithm, name) in [(&rcgen::PKCS_ED25519, "Ed25519"), (&rcgen::PKCS_ECDSA_P384_SHA384, "curve 1.3.132.0.34")]
    {
        // Valid now and for 7 days: only the key breaks the serverCertificateHashes rules.
        let cert = made(algorithm, now - 60, now + 7 * DAY);
        let addr = start(&cert);
        // The server works: without pinning the handshake completes.
        try_connect(ClientTrust::InsecureSkipVerify, addr, "localhost").await.expect("the server itself is usable");
        let err = try_connect(ClientTrust::Fingerprint(vec![cert.fingerprint()]), addr, "localhost")
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: a pinned non-P-256 key was accepted"));
        assert!(err.contains("requires ECDSA P-256") && err.contains(name), "{name}: {err}");
    }
    // The same rules with a P-256 key pass.
    let cert = made(&rcgen::PKCS_ECDSA_P256_SHA256, now - 60, now + 7 * DAY);
    let addr = start(&cert);
    try_connect(ClientTrust::Fingerprint(vec![cert.fingerprint()]), addr, "localhost").await.expect("P-256 pinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails_the_connect_saying_expired() {
    init_logs();
    let now = unix_now();
    // Valid for 2 days, ended yesterday: within the 14-day pinning limit, so only expiry applies.
    let cert = made(&rcgen::PKCS_ECDSA_P256_SHA256, now - 3 * DAY, now - DAY);
    let addr = start(&cert);
    let pinned = try_connect(ClientTrust::Fingerprint(vec![cert.fingerprint()]), addr, "localhost").await.err();
    let pinned = pinned.expect("an expired pinned certificate was accepted");
    assert!(pinned.to_lowercase().contains("expired"), "pinned: {pinned}");
    let ca = try_connect(ClientTrust::CaPem(vec![cert.chain[0].clone()]), addr, "localhost").await.err();
    let ca = ca.expect("an expired CA-trusted certificate was accepted");
    assert!(ca.to_lowercase().contains("expired"), "CA: {ca}");
    let platform = ClientTrust::Platform { extra_roots: vec![cert.chain[0].clone()] };
    let platform = try_connect(platform, addr, "localhost").await.err().expect("expired, platform trust");
    assert!(platform.to_lowercase().contains("expired"), "platform: {platform}");
    // Not yet valid is its own error, not "expired".
    let early = made(&rcgen::PKCS_ECDSA_P256_SHA256, now + DAY, now + 3 * DAY);
    let addr = start(&early);
    let err = try_connect(ClientTrust::Fingerprint(vec![early.fingerprint()]), addr, "localhost").await.err().unwrap();
    assert!(err.contains("not valid yet") && !err.contains("expired"), "not yet valid: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_comes_from_the_url_host() {
    init_logs();
    // A certificate for the name "localhost" only (no IP SAN), trusted as a CA.
    let cert = cert();
    let addr = start(&cert);
    let trust = ClientTrust::CaPem(vec![cert.chain[0].clone()]);
    let settings = ReconnectSettings {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(100),
        give_up_after: Some(Duration::from_secs(30)),
        linger: Duration::ZERO,
        ..Default::default()
    };
    let client = || Client::new("127.0.0.1:0".parse().unwrap(), &trust, EndpointConfig::default()).unwrap();
    let by_name = Target::from_url(&format!("moql://localhost:{}/", addr.port())).await.unwrap();
    assert_eq!(by_name.server_name, "localhost");
    let mut named = PersistentClient::start(client(), by_name, None, None, settings.clone());
    let state = timeout(WAIT, async {
        loop {
            match named.state() {
                state @ (ClientState::Connected { .. } | ClientState::Reconnecting { .. }) => return state,
                _ => named.next_state().await,
            };
        }
    })
    .await
    .expect("a state in time");
    assert!(matches!(state, ClientState::Connected { .. }), "moql://localhost: {state:?}");

    let by_ip = Target::from_url(&format!("moql://127.0.0.1:{}/", addr.port())).await.unwrap();
    assert_eq!((by_ip.addr, by_ip.server_name.as_str()), (addr, "127.0.0.1"));
    let mut numeric = PersistentClient::start(client(), by_ip, None, None, settings);
    let state = timeout(WAIT, async {
        loop {
            match numeric.state() {
                state @ (ClientState::Connected { .. } | ClientState::Reconnecting { .. }) => return state,
                _ => numeric.next_state().await,
            };
        }
    })
    .await
    .expect("a state in time");
    match state {
        ClientState::Reconnecting { reason, .. } => {
            assert!(reason.contains(r#"not valid for name "127.0.0.1""#), "{reason}")
        }
        other => panic!("moql://127.0.0.1 with a certificate for localhost only: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_says_malformed() {
    init_logs();
    for url in ["moql://[::1/room", "moqt://localhost:99999/", "https://exa mple.com/", "not a url"] {
        let err = Target::from_url(url).await.unwrap_err();
        assert!(matches!(err, moqt::UrlError::Malformed { .. }), "{url}: {err}");
        assert!(err.to_string().starts_with("malformed URL"), "{url}: {err}");
    }
    let client =
        Client::new("127.0.0.1:0".parse().unwrap(), &ClientTrust::InsecureSkipVerify, Default::default()).unwrap();
    let err = client.connect_webtransport("https://[::1/room", Origins::default()).await.err().unwrap().to_string();
    assert!(err.contains("malformed URL"), "{err}");
}
