//! TLS as clients meet it, over loopback QUIC: the platform trust store (with extra roots), each
//! failure mode with its own error, a certificate reloaded from its files without dropping
//! sessions, and the moqt:// URL form.

mod common;

use std::time::Duration;

use common::*;
use moqt::endpoint::{Client, EndpointConfig, Server};
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
async fn moqt_scheme_and_default_port() {
    init_logs();
    let cert = cert();
    let addr = start(&cert);
    let target = Target::from_url(&format!("moqt://localhost:{}/room", addr.port())).await.unwrap();
    assert_eq!(target.path.as_deref(), Some("/room"));
    assert_eq!(Target::from_url("moql://127.0.0.1/x").await.unwrap().addr.port(), 443, "port 443 by default");
    assert!(Target::from_url("gopher://x/").await.unwrap_err().contains("unknown scheme"));
    assert!(Target::from_url("moql://").await.is_err(), "a URL without a host");
    let client = Client::new(
        "127.0.0.1:0".parse().unwrap(),
        &ClientTrust::Fingerprint(vec![cert.fingerprint()]),
        EndpointConfig { versions: vec![Version::Lite06], ..Default::default() },
    )
    .unwrap();
    let mut persistent = PersistentClient::start(client, target, None, None, ReconnectSettings::default());
    timeout(WAIT, async {
        while !matches!(persistent.state(), ClientState::Connected { .. }) {
            persistent.next_state().await;
        }
    })
    .await
    .expect("connected over moqt://");
}
