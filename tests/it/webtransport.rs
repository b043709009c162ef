//! WebTransport and raw QUIC on one server port: a WebTransport client (https:// URL, version
//! negotiated with wt-available-protocols / wt-protocol) and a raw-QUIC client read the same
//! broadcast from the same server, in every version; the server sees the CONNECT path and query.
//! A client offering every version gets the server's pick: its newest, or the one it is narrowed to.

use crate::common;

use common::*;
use moqt::model::{OriginProducer, TrackEvent};
use moqt::session::Origins;
use moqt::wire::Version;
use tokio::time::timeout;

async fn read_two_groups(remote: &OriginProducer, version: Version, label: &str) -> moqt::model::TrackConsumer {
    let broadcast = announced(remote, &path("room/alice")).await;
    timeout(WAIT, broadcast.subscribe_track("video"))
        .await
        .unwrap_or_else(|_| panic!("{version} {label}: subscribe timed out"))
        .unwrap_or_else(|e| panic!("{version} {label}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_and_raw_quic_share_one_port() {
    init_logs();
    for version in Version::ALL {
        let mut published = publish("room/alice");
        let server = serve(version, Some(published.origin.clone()), None);
        let client = server.client(version);
        let wt_remote = OriginProducer::default();
        let url = format!("https://localhost:{}/anon/room?jwt=x", server.addr.port());
        let wt_session = timeout(
            WAIT,
            client.connect_webtransport(
                &url,
                Origins { subscribe: Some(wt_remote.clone().into()), ..Default::default() },
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{version}: WebTransport connect timed out"))
        .unwrap_or_else(|e| panic!("{version}: WebTransport connect: {e}"));
        assert_eq!(wt_session.version(), version);
        let (_quic_session, quic_remote) = server.subscriber(version).await;
        server.wait_sessions(2).await;
        assert!(
            server.paths.lock().unwrap().iter().any(|p| p == "/anon/room?jwt=x"),
            "{version}: {:?}",
            server.paths.lock().unwrap()
        );

        let mut over_wt = read_two_groups(&wt_remote, version, "WebTransport").await;
        let mut over_quic = read_two_groups(&quic_remote, version, "raw QUIC").await;
        timeout(WAIT, published.track.used()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        write_groups(&mut published.track, 2, 2);
        for (label, track) in [("WebTransport", &mut over_wt), ("raw QUIC", &mut over_quic)] {
            let mut seen = 0;
            while seen < 2 {
                match next_event(track).await {
                    TrackEvent::Group(mut group) => {
                        let g = group.sequence();
                        let frames = read_group(&mut group).await;
                        assert_eq!(frames[1].payload, payload(g, 1), "{version} {label}");
                        if version >= Version::Lite05 {
                            assert_eq!(frames[1].timestamp, stamp(g, 1, 2), "{version} {label}");
                        }
                        seen += 1;
                    }
                    TrackEvent::Gap(gap) => panic!("{version} {label}: {gap:?}"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wt_available_protocols_picks_the_servers_version() {
    init_logs();
    // The client offers every version, moq-lite-06 first (the default configuration).
    let offer_all = |server: &TestServer| {
        let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![server.cert.fingerprint()]);
        moqt::endpoint::Client::new("127.0.0.1:0".parse().unwrap(), &trust, Default::default()).unwrap()
    };
    assert_eq!(moqt::endpoint::EndpointConfig::default().versions, Version::ALL.to_vec());
    // A server narrowed to moq-lite-04 answers wt-protocol: moq-lite-04; a default one, -06.
    let narrowed = serve(Version::Lite04, None, None);
    let default = serve_endpoint(Default::default(), None, None);
    for (server, expected) in [(&narrowed, Version::Lite04), (&default, Version::Lite06)] {
        let url = format!("https://localhost:{}/", server.addr.port());
        let session = timeout(WAIT, offer_all(server).connect_webtransport(&url, Origins::default()))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("to a server for {expected}: {e}"));
        assert_eq!(session.version(), expected);
        server.wait_sessions(1).await;
        assert_eq!(server.sessions.lock().unwrap()[0].version(), expected, "the server's side agrees");
    }
}

/// A CONNECT offering only protocols the server does not speak is refused, and the server's error
/// names both parties: what the client offered and what the server speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_with_no_common_version_is_refused_naming_both_sides() {
    init_logs();
    let cert = cert();
    let server = moqt::endpoint::Server::bind("127.0.0.1:0".parse().unwrap(), &cert, Default::default()).unwrap();
    let addr = server.local_addr().unwrap();
    let refused = tokio::spawn(async move {
        let incoming = server.accept().await.expect("a connection");
        assert_eq!(incoming.remote_address().ip(), std::net::Ipv4Addr::LOCALHOST);
        incoming.setup().await.err().expect("refused")
    });
    let trust = moqt::transport::tls::ClientTrust::Fingerprint(vec![cert.fingerprint()]);
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(moqt::transport::webtransport::client_config(&trust).unwrap());
    let url = url::Url::parse(&format!("https://localhost:{}/", addr.port())).unwrap();
    let client = timeout(WAIT, moqt::transport::webtransport::connect(&endpoint, &url, &["moql"])).await;
    assert!(!matches!(client, Ok(Ok(_))), "the CONNECT is refused");
    let err = timeout(WAIT, refused).await.unwrap().unwrap();
    assert_eq!(
        err.to_string(),
        "no common moq-lite version: client offered [moql]; we speak [moq-lite-06, moq-lite-05, moq-lite-04, moq-lite-03]"
    );
}
