//! The physical reference for the relay benchmarks (scripts/bench-saturate.sh): quinn's own bulk
//! transfer over loopback, one stream, no moq, frames of a given size written as `Bytes` the way
//! a relay forwards them. What one core can send through QUIC and TLS here bounds what any relay
//! on that core can deliver.
//!
//! ```text
//! quinn_bulk send ADDR CERT_FILE FRAME_SIZE SECONDS   listens on ADDR, writes the certificate
//!                                                     (DER) to CERT_FILE, sends to the first
//!                                                     connection for SECONDS
//! quinn_bulk recv ADDR CERT_FILE                      connects, reads to the end, prints JSON:
//!                                                     {"bytes":..,"seconds":..,"gbit_per_sec":..}
//! ```
//! Quinn's default transport settings and rustls with ring, as moqt uses them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ALPN: &[u8] = b"bulk";

fn usage() -> ! {
    eprintln!("usage: quinn_bulk send ADDR CERT_FILE FRAME_SIZE SECONDS | quinn_bulk recv ADDR CERT_FILE");
    std::process::exit(2)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["send", addr, cert, size, seconds] => {
            let duration = Duration::from_secs_f64(seconds.parse()?);
            runtime.block_on(send(addr.parse()?, cert, size.parse()?, duration))
        }
        ["recv", addr, cert] => runtime.block_on(recv(addr.parse()?, cert)),
        _ => usage(),
    }
}

async fn send(addr: SocketAddr, cert_file: &str, frame_size: usize, duration: Duration) -> Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let der = cert.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let endpoint = quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), addr)?;
    // The certificate goes out only once the socket is bound: the receiver may start then.
    std::fs::write(format!("{cert_file}.tmp"), der.as_ref())?;
    std::fs::rename(format!("{cert_file}.tmp"), cert_file)?;
    let connection = endpoint.accept().await.ok_or("the endpoint closed")?.await?;
    let mut stream = connection.open_uni().await?;
    let frame = Bytes::from(vec![7u8; frame_size.max(1)]);
    let started = Instant::now();
    while started.elapsed() < duration {
        // A clone of the same buffer, as a relay forwards one frame to many: no copy.
        stream.write_chunk(frame.clone()).await?;
    }
    stream.finish()?;
    // Wait for the receiver to have read everything before closing.
    let _ = stream.stopped().await;
    connection.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(())
}

async fn recv(addr: SocketAddr, cert_file: &str) -> Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(std::fs::read(cert_file)?))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint.connect(addr, "localhost")?.await?;
    let mut stream = connection.accept_uni().await?;
    let mut bytes = 0u64;
    let mut started = None;
    while let Some(chunk) = stream.read_chunk(usize::MAX, true).await? {
        started.get_or_insert_with(Instant::now);
        bytes += chunk.bytes.len() as u64;
    }
    let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let gbit = if seconds > 0.0 { bytes as f64 * 8.0 / seconds / 1e9 } else { 0.0 };
    println!("{{\"bytes\":{bytes},\"seconds\":{seconds:.3},\"gbit_per_sec\":{gbit:.4}}}");
    drop(stream);
    connection.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(())
}
