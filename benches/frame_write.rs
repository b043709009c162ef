//! What handing one frame to a QUIC stream costs, the two ways a publisher can: coalesced with its
//! header into one chunk (a copy of the payload) or as its own chunk after the header (no copy,
//! one more stream write). The crossover picks `session::COALESCE_MAX_PAYLOAD`; BENCHMARKS.md has
//! the figures. A real quinn connection on loopback, the receiver draining as fast as it can.
//! Run: `cargo bench --bench frame_write`.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moqt::transport::tls::{self, Certificate, ClientTrust};
use tokio::runtime::Runtime;

/// Frames per measured batch: enough that per-batch overhead disappears.
const BATCH: usize = 256;
/// A FRAME header as the publisher writes it (timestamp delta and length varints).
const HEADER: [u8; 4] = [0x40, 0x21, 0x80, 0x00];

struct Link {
    runtime: Runtime,
    send: quinn::SendStream,
    _endpoints: (quinn::Endpoint, quinn::Endpoint),
}

fn link() -> Link {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cert = Certificate::generate(&["localhost".to_string()]).unwrap();
    let alpn = vec![b"bench".to_vec()];
    let (send, endpoints) = runtime.block_on(async {
        let server_config = tls::server_config(&cert, &alpn).unwrap();
        let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let accepting = server.clone();
        tokio::spawn(async move {
            let conn = accepting.accept().await.unwrap().await.unwrap();
            let mut recv = conn.accept_uni().await.unwrap();
            while let Ok(Some(_)) = recv.read_chunk(usize::MAX, false).await {}
        });
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let trust = ClientTrust::Fingerprint(vec![cert.fingerprint()]);
        client.set_default_client_config(tls::client_config(&trust, &alpn).unwrap());
        let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
        let send = conn.open_uni().await.unwrap();
        (send, (server, client))
    });
    Link { runtime, send, _endpoints: endpoints }
}

fn frame_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_write");
    for size in [160usize, 512, 1024, 2048, 4096, 33_334] {
        let payload = Bytes::from(vec![7u8; size]);
        group.throughput(Throughput::Bytes((size * BATCH) as u64));
        let mut link = link();
        let mut out = BytesMut::new();
        group.bench_with_input(BenchmarkId::new("coalesced", size), &payload, |b, payload| {
            b.iter(|| {
                link.runtime.block_on(async {
                    for _ in 0..BATCH {
                        out.put_slice(&HEADER);
                        out.put_slice(payload);
                        link.send.write_chunk(out.split().freeze()).await.unwrap();
                    }
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("separate", size), &payload, |b, payload| {
            b.iter(|| {
                link.runtime.block_on(async {
                    for _ in 0..BATCH {
                        out.put_slice(&HEADER);
                        link.send.write_chunk(out.split().freeze()).await.unwrap();
                        link.send.write_chunk(payload.clone()).await.unwrap();
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, frame_write);
criterion_main!(benches);
