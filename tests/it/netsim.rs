//! The test network simulator itself (common/netsim.rs): its decisions repeat given the seed and
//! follow the settings, and the proxy applies them on real sockets. Bounds are generous and only
//! ever in the direction a busy machine cannot break (a delay is at least so long, never at most).

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::WAIT;
use common::netsim::{Decision, Dir, Impairment, Link, NetSim};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

/// Runs `count` packets of `len` bytes, all arriving at `now`, through a link.
fn decisions(link: &mut Link, now: Instant, count: usize, len: usize) -> Vec<Decision> {
    (0..count).map(|_| link.decide(now, len)).collect()
}

fn lossy() -> Impairment {
    Impairment {
        loss: 0.2,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        reorder: 0.05,
        duplicate: 0.05,
        ..Default::default()
    }
}

#[tokio::test]
async fn link_decisions_repeat_given_the_seed() {
    let now = Instant::now();
    let first = decisions(&mut Link::new(lossy(), 7), now, 2000, 1200);
    let again = decisions(&mut Link::new(lossy(), 7), now, 2000, 1200);
    let other = decisions(&mut Link::new(lossy(), 8), now, 2000, 1200);
    assert_eq!(first, again, "the same seed decides the same");
    assert_ne!(first, other, "another seed decides otherwise");
}

#[tokio::test]
async fn link_loss_duplication_and_reordering_follow_their_settings() {
    let now = Instant::now();
    for (loss, seed) in [(0.02, 1), (0.2, 2), (0.5, 3)] {
        let impairment = Impairment { loss, reorder: 0.01, duplicate: 0.03, ..Default::default() };
        let mut link = Link::new(impairment, seed);
        let count = 50_000;
        decisions(&mut link, now, count, 1200);
        let stats = link.stats();
        let rate = |n: u64| n as f64 / count as f64;
        assert!((rate(stats.lost) - loss).abs() < loss * 0.15, "loss {loss}: {stats:?}");
        let passed = (count as u64 - stats.lost) as f64;
        assert!((stats.duplicated as f64 / passed - 0.03).abs() < 0.006, "{stats:?}");
        assert!((stats.reordered as f64 / passed - 0.01).abs() < 0.003, "{stats:?}");
        assert_eq!(stats.forwarded, count as u64 - stats.lost + stats.duplicated, "{stats:?}");
    }
}

#[tokio::test]
async fn link_delay_jitter_and_reordering_set_release_times() {
    let start = Instant::now();
    let delay = Duration::from_millis(20);
    let jitter = Duration::from_millis(10);
    let impairment = Impairment { delay, jitter, reorder: 0.1, reorder_delay: Duration::from_millis(25), ..lossy() };
    let impairment = Impairment { loss: 0.0, duplicate: 0.0, ..impairment };
    let mut link = Link::new(impairment, 11);
    let mut in_order = Vec::new();
    for i in 0..5000u64 {
        let now = start + Duration::from_millis(i);
        let Decision::Send(times) = link.decide(now, 1200) else { panic!("nothing is lost") };
        let held = times[0] - now;
        assert!(held >= delay - jitter, "packet {i} held {held:?}");
        assert!(held <= delay + jitter + Duration::from_millis(25), "packet {i} held {held:?}");
        in_order.push((times[0], held > delay + jitter));
    }
    // Jitter alone keeps the order; only the packets held back (past delay + jitter, as the
    // hold is longer than the whole jitter range) are overtaken.
    let kept: Vec<Instant> = in_order.iter().filter(|(_, late)| !late).map(|(at, _)| *at).collect();
    assert!(kept.windows(2).all(|w| w[0] <= w[1]), "jitter reordered packets");
    let stats = link.stats();
    assert!((350..650).contains(&stats.reordered), "{stats:?}");
}

#[tokio::test]
async fn link_bandwidth_cap_paces_packets_and_drops_the_tail() {
    let now = Instant::now();
    // 8 Mbit/s: a 1000-byte packet takes 1 ms. One on the wire and 10 waiting; the rest of a
    // burst of 100 is dropped.
    let impairment = Impairment { rate_bps: Some(8_000_000), queue: 10, ..Default::default() };
    let mut link = Link::new(impairment, 1);
    let burst = decisions(&mut link, now, 100, 1000);
    let sent: Vec<Instant> = burst
        .iter()
        .filter_map(|d| match d {
            Decision::Send(times) => Some(times[0]),
            Decision::Drop => None,
        })
        .collect();
    assert_eq!(sent.len(), 11, "{:?}", link.stats());
    assert_eq!(link.stats().queue_drops, 89);
    for (i, at) in sent.iter().enumerate() {
        assert_eq!(*at - now, Duration::from_millis(i as u64 + 1), "packet {i} leaves after {i} others");
    }
    // Once the queue drained, packets pass again.
    let later = now + Duration::from_millis(20);
    assert!(matches!(link.decide(later, 1000), Decision::Send(_)));
}

#[tokio::test]
async fn link_blackhole_drops_everything_until_switched_off() {
    let now = Instant::now();
    let mut link = Link::new(Impairment::default(), 1);
    link.set_blackhole(true);
    assert!(decisions(&mut link, now, 100, 1000).iter().all(|d| *d == Decision::Drop));
    link.set_blackhole(false);
    assert!(decisions(&mut link, now, 100, 1000).iter().all(|d| matches!(d, Decision::Send(_))));
    let stats = link.stats();
    assert_eq!((stats.blackholed, stats.forwarded, stats.dropped()), (100, 100, 100), "{stats:?}");
}

/// A UDP server on loopback that echoes every packet and counts them.
async fn echo_server() -> (SocketAddr, Arc<AtomicU64>) {
    let (addr, count, _) = echo_at("127.0.0.1:0".parse().unwrap()).await;
    (addr, count)
}

/// [`echo_server`] on `bind`, and its task: aborted and awaited, the socket is closed.
async fn echo_at(bind: SocketAddr) -> (SocketAddr, Arc<AtomicU64>, JoinHandle<()>) {
    let socket = UdpSocket::bind(bind).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            counted.fetch_add(1, Ordering::Relaxed);
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    (addr, count, task)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what} in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delays_both_directions() {
    let (server, _) = echo_server().await;
    let one_way = Duration::from_millis(40);
    let impairment = Impairment { delay: one_way, ..Default::default() };
    let sim = NetSim::start(server, 1, impairment.clone(), impairment).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(sim.addr()).await.unwrap();
    let mut buf = [0u8; 64];
    for i in 0..5u8 {
        let sent = Instant::now();
        client.send(&[i; 32]).await.unwrap();
        let n = timeout(WAIT, client.recv(&mut buf)).await.expect("echo in time").unwrap();
        assert_eq!(&buf[..n], &[i; 32]);
        assert!(sent.elapsed() >= 2 * one_way, "round trip {i}: {:?}", sent.elapsed());
    }
    assert_eq!((sim.stats(Dir::Up).forwarded, sim.stats(Dir::Down).forwarded), (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_blackhole_drops_everything_until_switched_off() {
    let (server, echoed) = echo_server().await;
    let sim = NetSim::start(server, 1, Impairment::default(), Impairment::default()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(sim.addr()).await.unwrap();
    let mut buf = [0u8; 64];
    // The first packet makes the proxy's path to the server; its echo comes back.
    client.send(b"hello").await.unwrap();
    timeout(WAIT, client.recv(&mut buf)).await.expect("echo in time").unwrap();

    sim.set_blackhole(Dir::Up, true);
    for _ in 0..20 {
        client.send(b"into the hole").await.unwrap();
    }
    wait_until("20 packets at the proxy", || sim.stats(Dir::Up).received == 21).await;
    assert_eq!(sim.stats(Dir::Up).blackholed, 20);
    assert_eq!(echoed.load(Ordering::Relaxed), 1, "nothing passed the hole");

    // The other direction's hole: the server echoes, the client hears nothing.
    sim.set_blackhole(Dir::Up, false);
    sim.set_blackhole(Dir::Down, true);
    for _ in 0..20 {
        client.send(b"echo lost").await.unwrap();
    }
    wait_until("the echoes at the proxy", || sim.stats(Dir::Down).received == 21).await;
    assert_eq!(echoed.load(Ordering::Relaxed), 21);
    assert_eq!(sim.stats(Dir::Down).blackholed, 20);

    sim.set_blackhole(Dir::Down, false);
    client.send(b"back").await.unwrap();
    let n = timeout(WAIT, client.recv(&mut buf)).await.expect("echo after the hole").unwrap();
    assert_eq!(&buf[..n], b"back", "nothing from the hole came late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_bandwidth_cap_limits_throughput() {
    let (server, _) = echo_server().await;
    // 2 Mbit/s: a 1000-byte packet takes 4 ms; 40 of them at least 160 ms, whatever the machine.
    let capped = Impairment { rate_bps: Some(2_000_000), queue: 100, ..Default::default() };
    let sim = NetSim::start(server, 1, capped, Impairment::default()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(sim.addr()).await.unwrap();
    let started = Instant::now();
    for i in 0..40u8 {
        client.send(&[i; 1000]).await.unwrap();
    }
    let mut buf = [0u8; 2000];
    let mut got = 0;
    while got < 40 {
        let n = timeout(WAIT, client.recv(&mut buf)).await.expect("echo in time").unwrap();
        assert_eq!(n, 1000);
        got += 1;
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(160), "40 kB through 2 Mbit/s in {elapsed:?}");
    assert_eq!(sim.stats(Dir::Up).queue_drops, 0);

    // A burst far past the queue: the tail is dropped.
    sim.set_impairment(Dir::Up, Impairment { rate_bps: Some(1_000_000), queue: 4, ..Default::default() });
    for i in 0..50u8 {
        client.send(&[i; 1000]).await.unwrap();
    }
    wait_until("the burst at the proxy", || sim.stats(Dir::Up).received == 90).await;
    let stats = sim.stats(Dir::Up);
    assert!(stats.queue_drops >= 25, "a queue of 4 at 8 ms a packet took most of a burst: {stats:?}");
    assert_eq!(stats.forwarded + stats.queue_drops, 90, "{stats:?}");
}

/// A target that goes away and comes back on the same address (a relay killed with SIGKILL and
/// restarted) finds the client's path still there: the ICMP port unreachable its absence draws on
/// the proxy's connected socket towards it is counted, not the end of the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_paths_outlive_a_target_that_restarts() {
    let (server, _, task) = echo_at("127.0.0.1:0".parse().unwrap()).await;
    let sim = NetSim::start(server, 1, Impairment::default(), Impairment::default()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(sim.addr()).await.unwrap();
    let mut buf = [0u8; 64];
    client.send(b"before").await.unwrap();
    let n = timeout(WAIT, client.recv(&mut buf)).await.expect("echo in time").unwrap();
    assert_eq!(&buf[..n], b"before");

    // The target gone: packets into the void until the proxy has seen several refusals (each
    // one's error is reported on the next receive or send of the socket towards the target).
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let refused = timeout(WAIT, async {
        while sim.stats(Dir::Up).refused < 3 {
            client.send(b"nobody there").await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "no refusal counted: {:?}", sim.stats(Dir::Up));

    // Back on the same address: the same path carries the echo.
    let (again, echoed, _task) = echo_at(server).await;
    assert_eq!(again, server);
    client.send(b"after").await.unwrap();
    let n = timeout(WAIT, client.recv(&mut buf)).await.expect("echo after the restart").unwrap();
    assert_eq!(&buf[..n], b"after");
    assert_eq!(echoed.load(Ordering::Relaxed), 1);
}
