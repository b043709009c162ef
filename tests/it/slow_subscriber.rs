//! A slow subscriber beside fast ones. One publisher sends a live 30 fps track of about 4 Mbit/s
//! (16000-byte frames, one-second groups, max age 2 s) through `moqt relay` (its own process, so
//! its memory can be read) to five fast subscribers on loopback;
//! once they have run alone for a while, a subscriber behind a 256 kbit/s bottleneck (a bounded
//! queue that drops its tail, see common/netsim.rs) joins.
//!
//! Pass criteria:
//! - the fast subscribers get every frame of every group, in order, with no gap (the slow one
//!   holds nobody back), and their p99 latency (write to read, in this process) beside the slow
//!   one stays within [`GROSS`] of their p99 alone: a relay held back by the slow subscriber costs
//!   seconds. The finer target, within 1.5x (or [`NOISE`], whichever is larger), is a
//!   speed figure: on a loaded 2-core machine CPU scheduling alone moved p99 from 10 ms to 200 ms
//!   and back between the two phases, so it is asserted only with MOQT_LONG_SCENARIOS=1, for a
//!   run on a quiet machine, and printed always;
//! - the slow subscriber accounts for every group from its first on, whole or as a reported gap
//!   (it cannot take a quarter of the rate), never silently missing;
//! - the relay's memory for the slow one stays under [`SLOW_MEMORY_BOUND`]: its RSS while the slow
//!   one lags, minus its RSS just before the slow one joined. What bounds it: the relay resets a
//!   lagging subscriber's groups once they are past the track's max age (2 s, about 1 MB here),
//!   also those fully written but still queued in QUIC for it, so its backlog is a couple of
//!   seconds of media, not all it has not read (before that reset, the same run cost 6.4 MiB and
//!   grew with every second the slow one lagged).

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::netsim::{Dir, Impairment, NetSim};
use common::relay::{Relay, free_port};
use common::*;
use moqt::endpoint::Client;
use moqt::model::{OrderedConsumer, OrderedEvent, OriginProducer, TrackInfo};
use moqt::session::{Origins, Session};
use moqt::transport::tls::ClientTrust;
use moqt::wire::Version;
use tokio::time::{Instant, timeout};

const VERSION: Version = Version::Lite06;
const FPS: u64 = 30;
const FRAMES: u64 = 30;
const FRAME_BYTES: usize = 16000;
const FAST: usize = 5;
/// Groups (seconds) the fast subscribers run alone, then with the slow one.
const QUIET_GROUPS: u64 = 6;
const SLOW_GROUPS: u64 = 10;
/// The slow subscriber's bottleneck.
const SLOW_RATE: u64 = 256_000;
/// Latency noise allowed on top of the quiet p99 in the strict check (see the module doc).
const NOISE: Duration = Duration::from_millis(100);
/// What a fast subscriber's p99 may gain beside the slow one, loaded machine or not.
const GROSS: Duration = Duration::from_secs(1);
/// The most relay memory the slow subscriber may cost (see the module doc).
const SLOW_MEMORY_BOUND: u64 = 4 << 20;

/// A frame carrying its write time (microseconds since `epoch`) in its first 8 bytes.
fn frame(epoch: Instant, g: u64, f: u64) -> Bytes {
    let mut bytes = vec![(g * 31 + f) as u8; FRAME_BYTES];
    bytes[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
    Bytes::from(bytes)
}

fn written_at(epoch: Instant, payload: &[u8]) -> Instant {
    epoch + Duration::from_micros(u64::from_be_bytes(payload[..8].try_into().unwrap()))
}

/// What a reader saw: per frame (group, write time, latency), and the gaps.
#[derive(Default)]
struct Seen {
    frames: Vec<(u64, u64, Instant, Duration)>,
    gaps: Vec<(u64, u64)>,
    end: Option<String>,
}

/// Reads `ordered` to its end, checking frames come in order with gaps only where the next group
/// should be (nothing skipped silently), and recording each frame's latency.
async fn read(who: String, epoch: Instant, mut ordered: OrderedConsumer, seen: Arc<Mutex<Seen>>) {
    let mut next: Option<(u64, u64)> = None;
    loop {
        let event = timeout(Duration::from_secs(QUIET_GROUPS + SLOW_GROUPS) + 6 * WAIT, ordered.next_frame())
            .await
            .unwrap_or_else(|_| panic!("{who}: stuck after {next:?}"));
        match event {
            Ok(Some(OrderedEvent::Frame { group, index, frame: got })) => {
                let now = Instant::now();
                if let Some(expected) = next {
                    assert_eq!((group, index), expected, "{who}: frames out of order or silently missing");
                }
                assert_eq!(got.payload.len(), FRAME_BYTES, "{who}: frame {index} of group {group} intact");
                let at = written_at(epoch, &got.payload);
                seen.lock().unwrap().frames.push((group, index, at, now.saturating_duration_since(at)));
                next = Some(if index + 1 == FRAMES { (group + 1, 0) } else { (group, index + 1) });
            }
            Ok(Some(OrderedEvent::Gap(gap))) => {
                if let Some((group, _)) = next {
                    assert_eq!(gap.start, group, "{who}: gap {gap:?} skips ahead: groups silently missing");
                }
                seen.lock().unwrap().gaps.push((gap.start, gap.end));
                next = Some((gap.end + 1, 0));
            }
            Ok(None) => {
                seen.lock().unwrap().end = Some("finished".into());
                return;
            }
            Err(err) => {
                seen.lock().unwrap().end = Some(format!("aborted: {err}"));
                return;
            }
        }
    }
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    assert!(!latencies.is_empty(), "no latencies measured");
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// A client session to `addr` (the relay, or a proxy in front of it) trusting the relay's
/// certificate `fingerprint`.
async fn connect(fingerprint: [u8; 32], addr: std::net::SocketAddr, origins: Origins) -> Session {
    let trust = ClientTrust::Fingerprint(vec![fingerprint]);
    let client = Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(VERSION)).unwrap();
    timeout(4 * WAIT, client.connect(addr, "localhost", None, origins))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A subscriber of room/alice's video through `addr`: its session and its reader's record.
async fn subscriber(
    fingerprint: [u8; 32],
    addr: std::net::SocketAddr,
    who: String,
    epoch: Instant,
    max_latency: Duration,
) -> (Session, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let remote = OriginProducer::default();
    let session =
        connect(fingerprint, addr, Origins { subscribe: Some(remote.clone().into()), ..Default::default() }).await;
    let broadcast = timeout(4 * WAIT, remote.consume().announced(&path("room/alice")))
        .await
        .unwrap_or_else(|_| panic!("{who}: announcement in time"))
        .unwrap_or_else(|| panic!("{who}: origin closed"));
    let track = timeout(4 * WAIT, broadcast.subscribe_track("video"))
        .await
        .unwrap_or_else(|_| panic!("{who}: subscribed in time"))
        .unwrap_or_else(|e| panic!("{who}: subscribe: {e}"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reading = tokio::spawn(read(who, epoch, track.ordered(max_latency), seen.clone()));
    (session, seen, reading)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_costs_the_fast_ones_no_latency_and_the_relay_bounded_memory() {
    init_logs();
    let relay = Relay::start_moqt_on(free_port());
    let epoch = Instant::now();
    let info = TrackInfo { priority: 2, max_age: Duration::from_secs(2), timescale: 1000 };
    let mut published = publish_with("room/alice", info);
    let _publisher = connect(
        relay.fingerprint,
        relay.addr,
        Origins { publish: Some(published.origin.consume()), ..Default::default() },
    )
    .await;

    // The fast ones read with a generous ordering bound: a stall of the machine must not turn into
    // a gap (their latency is what is measured).
    let mut fast = Vec::new();
    for i in 0..FAST {
        fast.push(subscriber(relay.fingerprint, relay.addr, format!("fast subscriber {i}"), epoch, 4 * WAIT).await);
    }
    timeout(WAIT, published.track.used()).await.expect("the subscriptions reach the publisher");

    let sim = NetSim::start(
        relay.addr,
        0x51,
        Impairment::default(),
        Impairment { rate_bps: Some(SLOW_RATE), queue: 64, ..Default::default() },
    )
    .await;
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / FPS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slow = None;
    let mut joining = None;
    let (mut rss_before, mut rss_most, mut slow_from) = (0, 0, None);
    let mut g = 0;
    // Quiet groups, then groups with the slow subscriber until it has lagged for SLOW_GROUPS.
    loop {
        if g == QUIET_GROUPS {
            rss_before = relay.rss();
            // Joins while the media goes on; it reads with the default ordering bound, as a player.
            let latency = OrderedConsumer::DEFAULT_MAX_LATENCY;
            let join = subscriber(relay.fingerprint, sim.addr(), "the slow subscriber".into(), epoch, latency);
            joining = Some(tokio::spawn(join));
        }
        if let Some(join) = joining.take_if(|join| join.is_finished()) {
            slow = Some(join.await.unwrap());
            slow_from = Some(g);
        }
        if slow_from.is_some_and(|from| g >= from + SLOW_GROUPS) {
            break;
        }
        assert!(g < QUIET_GROUPS + SLOW_GROUPS + 60, "the slow subscriber never joined");
        let mut group = published.track.append_group().unwrap();
        for f in 0..FRAMES {
            tick.tick().await;
            group.write(stamp(g, f, FRAMES), frame(epoch, g, f)).unwrap();
        }
        group.finish().unwrap();
        if slow_from.is_some() {
            rss_most = rss_most.max(relay.rss());
        }
        g += 1;
    }
    published.track.finish();
    let groups = g;
    let slow_from = slow_from.unwrap();
    let (_slow_session, slow_seen, slow_reading) = slow.unwrap();

    for (i, (_, _, reading)) in fast.iter_mut().enumerate() {
        timeout(4 * WAIT, reading).await.unwrap_or_else(|_| panic!("fast subscriber {i} did not end")).unwrap();
    }
    timeout(Duration::from_secs(groups) + 4 * WAIT, slow_reading).await.expect("the slow subscriber ends").unwrap();

    // Every fast subscriber: every frame of every group, no gap.
    let (mut quiet, mut loaded) = (Vec::new(), Vec::new());
    for (i, (_, seen, _)) in fast.iter().enumerate() {
        let seen = seen.lock().unwrap();
        assert!(seen.gaps.is_empty(), "fast subscriber {i}: gaps {:?}", seen.gaps);
        assert_eq!(seen.frames.len() as u64, groups * FRAMES, "fast subscriber {i}: every frame ({:?})", seen.end);
        for (group, _, _, latency) in &seen.frames {
            if *group < QUIET_GROUPS {
                quiet.push(*latency);
            } else if *group > slow_from {
                loaded.push(*latency);
            }
        }
    }
    let (quiet_p99, loaded_p99) = (p99(quiet), p99(loaded));
    let strict = long_scenarios();
    let allowed = if strict { (quiet_p99 * 3 / 2).max(quiet_p99 + NOISE) } else { quiet_p99 + GROSS };

    // The slow one: behind, with reported gaps, nothing silently missing (checked while reading).
    let slow_seen = slow_seen.lock().unwrap();
    let slow_frames = slow_seen.frames.len();
    let slow_groups_whole = slow_seen.frames.iter().filter(|(_, index, _, _)| *index == FRAMES - 1).count();
    let slow_gapped: u64 = slow_seen.gaps.iter().map(|(a, b)| b.saturating_sub(*a) + 1).sum();
    let growth = rss_most.saturating_sub(rss_before);
    eprintln!(
        "slow subscriber scenario: {FAST} fast x {groups} groups; fast p99 {:.1} ms alone, {:.1} ms beside the slow \
         one (allowed {:.1} ms); slow one (from group {slow_from}): {slow_frames} frames, {slow_groups_whole} groups \
         whole, {slow_gapped} gapped, end {:?}; its bottleneck dropped {} of {} packets; relay RSS {:.1} MiB before it \
         joined, at most {:.1} MiB while it lagged (+{:.2} MiB, bound {} MiB)",
        quiet_p99.as_secs_f64() * 1e3,
        loaded_p99.as_secs_f64() * 1e3,
        allowed.as_secs_f64() * 1e3,
        slow_seen.end,
        sim.stats(Dir::Down).dropped(),
        sim.stats(Dir::Down).received,
        rss_before as f64 / 1048576.0,
        rss_most as f64 / 1048576.0,
        growth as f64 / 1048576.0,
        SLOW_MEMORY_BOUND >> 20,
    );
    assert!(loaded_p99 <= allowed, "the slow subscriber slowed the fast ones: p99 {loaded_p99:?} > {allowed:?}");
    assert!(slow_frames > 0, "the slow subscriber received nothing");
    assert!(slow_gapped > 0, "the slow subscriber kept up at a quarter of the rate: the bottleneck is not one");
    assert!(growth <= SLOW_MEMORY_BOUND, "the slow subscriber cost the relay {growth} bytes");
}
