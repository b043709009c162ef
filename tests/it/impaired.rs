//! Scenarios over impaired networks (common/netsim.rs): a live 30 fps track with one-second groups
//! from one publisher to many subscribers through a relay, every session on its own impaired path.
//! Whatever the network does, each subscriber's ordered reader accounts for every group, whole or
//! as a gap, never silently missing, in ascending order with frames in order, and no session drops.
//!
//! A: 2 % loss, 20 ms each way ± 10 ms, 1 % reordering, 20 subscribers.
//! B: a 3-second blackhole on the publisher's path (both ways), then recovery.
//!
//! Each runs through moqt's relay and through the reference relay (moq-relay 0.17.10; skipped with
//! a banner when it is not installed, except under CI=true). The CI versions last 8 s of media;
//! MOQT_LONG_SCENARIOS=1 runs 30 s.
//!
//! Sessions outlive the blackhole on their own: QUIC's idle timeout is 30 s with keep-alives every
//! 10 s (`EndpointConfig`'s defaults), and nothing reconnects. After the hole the publisher's
//! group streams are retransmitted newest first behind a collapsed congestion window, so the
//! oldest groups of the hole can reach the relay after the track's end; moqt's relay takes them in
//! while they keep coming (moq-relay does too). Either relay may still deliver the newest group
//! more than the ordered reader's latency bound (1 s) before the older ones complete: those are
//! then reported Late, which the criteria allow (seen once through moq-relay under load).

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::netsim::{Dir, Impairment, NetSim};
use common::relay::require_relay;
use common::*;
use moqt::endpoint::{Client, Server};
use moqt::model::{
    BroadcastProducer, GapReason, OrderedConsumer, OrderedEvent, OriginProducer, Route, TrackInfo, TrackProducer,
};
use moqt::relay::{Relay, RelayConfig};
use moqt::session::{Origins, Session, SessionEvent};
use moqt::transport::tls::ClientTrust;
use moqt::wire::Version;
use tokio::time::{Instant, timeout};

const VERSION: Version = Version::Lite06;
const FPS: u64 = 30;
/// One group a second.
const FRAMES: u64 = 30;

/// Seconds of media: 8 in CI, 30 with MOQT_LONG_SCENARIOS=1.
fn seconds() -> u64 {
    if std::env::var("MOQT_LONG_SCENARIOS").is_ok_and(|v| !v.is_empty() && v != "0") { 30 } else { 8 }
}

/// Frame `f` of group `g`: a 3000-byte key frame, then 600-byte frames (about 150 kbit/s), its
/// bytes telling group and frame apart.
fn frame(g: u64, f: u64) -> Bytes {
    let len = if f == 0 { 3000 } else { 600 };
    let mut bytes = format!("group {g} frame {f} ").into_bytes();
    bytes.resize(len, (g * 31 + f) as u8);
    Bytes::from(bytes)
}

/// The relay under test.
enum Under {
    Moqt(Relay),
    /// Held to keep the process running (killed on drop).
    #[allow(dead_code)]
    Reference(common::relay::Relay),
}

struct Target {
    under: Under,
    addr: SocketAddr,
    fingerprint: [u8; 32],
    name: &'static str,
}

impl Target {
    fn moqt() -> Target {
        let cert = cert();
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), &cert, config(VERSION)).unwrap();
        let addr = server.local_addr().unwrap();
        let relay = Relay::new(RelayConfig::default());
        let running = relay.clone();
        tokio::spawn(async move { running.run(server).await });
        Target { under: Under::Moqt(relay), addr, fingerprint: cert.fingerprint(), name: "moqt relay" }
    }

    fn reference(binary: &PathBuf) -> Target {
        let relay = common::relay::Relay::start(binary, Some(VERSION));
        let (addr, fingerprint) = (relay.addr, relay.fingerprint);
        Target { under: Under::Reference(relay), addr, fingerprint, name: "moq-relay" }
    }

    /// A session through `sim` (already in front of this relay).
    async fn connect(&self, sim: &NetSim, origins: Origins) -> Session {
        let trust = ClientTrust::Fingerprint(vec![self.fingerprint]);
        let client = Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(VERSION)).unwrap();
        let path = matches!(self.under, Under::Reference(_)).then(|| "/".to_string());
        // Handshake packets are lost too: a generous bound.
        timeout(4 * WAIT, client.connect(sim.addr(), "localhost", path, origins))
            .await
            .unwrap_or_else(|_| panic!("{}: connect through the impaired path in time", self.name))
            .unwrap_or_else(|e| panic!("{}: connect: {e}", self.name))
    }
}

struct Scenario {
    name: &'static str,
    subscribers: usize,
    groups: u64,
    /// Each path's impairment, both directions.
    path: Impairment,
    seed: u64,
    /// A blackhole on the publisher's path, both ways: from (group, frame) written, for how long.
    blackhole: Option<((u64, u64), Duration)>,
}

/// What one subscriber's ordered reader handed over.
#[derive(Debug, Default)]
struct Account {
    /// Groups delivered whole, in order.
    whole: Vec<u64>,
    /// Groups reported as gaps (a group cut short included), with the reason.
    gapped: Vec<(u64, GapReason)>,
    frames: u64,
    /// The reader's end, if it ended before every group was accounted for.
    ended: Option<String>,
}

impl Account {
    /// Everything accounted for: each of `0..groups` exactly once.
    fn covered(&self) -> u64 {
        (self.whole.len() + self.gapped.len()) as u64
    }
}

/// Reads `groups` groups in order and checks each step: ascending groups, frames in order and
/// intact within a group, gaps where the next group should be, nothing skipped silently. Stops
/// once every group is accounted for, at the end of the track, or at a violation (a panic).
async fn read_ordered(who: String, mut ordered: OrderedConsumer, groups: u64) -> Account {
    let mut account = Account::default();
    // The group every sequence below is accounted for, and the frame index expected in it.
    let (mut next, mut index) = (0u64, 0u64);
    while next < groups {
        let event = timeout(Duration::from_secs(groups) + 6 * WAIT, ordered.next_frame())
            .await
            .unwrap_or_else(|_| panic!("{who}: stuck at group {next} frame {index}: {account:?}"));
        match event {
            Ok(Some(OrderedEvent::Frame { group, index: at, frame: got })) => {
                assert_eq!((group, at), (next, index), "{who}: frames out of order");
                assert_eq!(got.payload, frame(group, at), "{who}: frame {at} of group {group} intact");
                account.frames += 1;
                index += 1;
                if index == FRAMES {
                    account.whole.push(group);
                    (next, index) = (next + 1, 0);
                }
            }
            Ok(Some(OrderedEvent::Gap(gap))) => {
                // A gap starts at the group being read (cut short) or the next one.
                assert_eq!(gap.start, next, "{who}: gap {gap:?} skips ahead: groups silently missing");
                assert!(gap.end >= gap.start, "{who}: {gap:?}");
                let end = gap.end.min(groups - 1);
                account.gapped.extend((gap.start..=end).map(|g| (g, gap.reason.clone())));
                (next, index) = (gap.end.saturating_add(1), 0);
            }
            Ok(None) => {
                account.ended = Some("finished".into());
                break;
            }
            Err(err) => {
                account.ended = Some(format!("aborted: {err}"));
                break;
            }
        }
    }
    account
}

/// A broadcast room/alice with one track "video" (30 fps, max age 5 s, ms), kept alive.
struct Publishing {
    origin: OriginProducer,
    _broadcast: BroadcastProducer,
    track: TrackProducer,
    _published: moqt::model::Published,
}

fn publishing() -> Publishing {
    let origin = OriginProducer::default();
    let broadcast = BroadcastProducer::default();
    let info = TrackInfo { priority: 2, max_age: Duration::from_secs(5), timescale: 1000 };
    let track = broadcast.create_track("video", info).unwrap();
    let published = origin.publish(path("room/alice"), broadcast.consume(), Route::local()).unwrap();
    Publishing { origin, _broadcast: broadcast, track, _published: published }
}

/// Runs `scenario` through `target`; returns each subscriber's account after checking the pass
/// criteria common to every relay.
async fn run(target: &Target, scenario: &Scenario) -> Vec<Account> {
    let started = Instant::now();
    let who = format!("{} through {}", scenario.name, target.name);
    // Path `n` (0 the publisher's) gets its own seed: a run repeats given the scenario's.
    let sim = |n: u64| {
        let seed = scenario.seed.wrapping_mul(1000).wrapping_add(n);
        NetSim::start(target.addr, seed, scenario.path.clone(), scenario.path.clone())
    };

    // The publisher, on its own impaired path.
    let mut publishing = publishing();
    let publisher_sim = sim(0).await;
    let origins = Origins { publish: Some(publishing.origin.consume()), ..Default::default() };
    let publisher = target.connect(&publisher_sim, origins).await;

    // The subscribers, each on its own path, connected and subscribed at once.
    let mut joining = tokio::task::JoinSet::new();
    for i in 0..scenario.subscribers {
        let sim = sim(1 + i as u64).await;
        let trust = ClientTrust::Fingerprint(vec![target.fingerprint]);
        let client = Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(VERSION)).unwrap();
        let path = matches!(target.under, Under::Reference(_)).then(|| "/".to_string());
        let who = format!("{who}, subscriber {i}");
        joining.spawn(async move {
            let remote = OriginProducer::default();
            let origins = Origins { subscribe: Some(remote.clone().into()), ..Default::default() };
            let session = timeout(4 * WAIT, client.connect(sim.addr(), "localhost", path, origins))
                .await
                .unwrap_or_else(|_| panic!("{who}: connect in time"))
                .unwrap_or_else(|e| panic!("{who}: connect: {e}"));
            let broadcast = timeout(4 * WAIT, remote.consume().announced(&common::path("room/alice")))
                .await
                .unwrap_or_else(|_| panic!("{who}: announcement in time"))
                .unwrap_or_else(|| panic!("{who}: origin closed"));
            let track = timeout(4 * WAIT, broadcast.subscribe_track("video"))
                .await
                .unwrap_or_else(|_| panic!("{who}: subscribed in time"))
                .unwrap_or_else(|e| panic!("{who}: subscribe: {e}"));
            (i, sim, session, track.ordered(OrderedConsumer::DEFAULT_MAX_LATENCY))
        });
    }
    let mut subscribers = Vec::new();
    while let Some(joined) = joining.join_next().await {
        subscribers.push(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    subscribers.sort_by_key(|(i, ..)| *i);
    timeout(WAIT, publishing.track.used()).await.unwrap_or_else(|_| panic!("{who}: no subscription upstream"));
    let ready = started.elapsed();

    // The readers, each on its own task, then the live track: 30 frames a second.
    let mut reading = tokio::task::JoinSet::new();
    let mut sims = Vec::new();
    let mut sessions = Vec::new();
    for (i, sim, session, ordered) in subscribers {
        reading.spawn(read_ordered(format!("{who}, subscriber {i}"), ordered, scenario.groups).into_future_with(i));
        sims.push(sim);
        sessions.push(session);
    }
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / FPS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hole_until = None;
    for g in 0..scenario.groups {
        let mut group = publishing.track.append_group().unwrap();
        assert_eq!(group.sequence(), g);
        for f in 0..FRAMES {
            tick.tick().await;
            if let Some(((hg, hf), length)) = scenario.blackhole
                && (g, f) == (hg, hf)
            {
                publisher_sim.set_blackhole(Dir::Up, true);
                publisher_sim.set_blackhole(Dir::Down, true);
                hole_until = Some(Instant::now() + length);
            }
            if hole_until.is_some_and(|until| until <= Instant::now()) {
                publisher_sim.set_blackhole(Dir::Up, false);
                publisher_sim.set_blackhole(Dir::Down, false);
                hole_until = None;
            }
            group.write(stamp(g, f, FRAMES), frame(g, f)).unwrap();
        }
        group.finish().unwrap();
    }
    assert!(hole_until.is_none(), "{who}: the blackhole outlasted the media");
    publishing.track.finish();
    let written = started.elapsed();

    let mut accounts: Vec<(usize, Account)> = Vec::new();
    while let Some(read) = reading.join_next().await {
        accounts.push(read.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    accounts.sort_by_key(|(i, _)| *i);
    let accounts: Vec<Account> = accounts.into_iter().map(|(_, a)| a).collect();

    // Every group of every subscriber accounted for, whole or as a gap.
    for (i, account) in accounts.iter().enumerate() {
        assert_eq!(account.covered(), scenario.groups, "{who}, subscriber {i}: groups silently missing: {account:?}");
    }
    // No session dropped.
    assert_eq!(publisher.event(), SessionEvent::Active, "{who}: the publisher's session");
    for (i, session) in sessions.iter().enumerate() {
        assert_eq!(session.event(), SessionEvent::Active, "{who}: subscriber {i}'s session");
    }
    if let Under::Moqt(relay) = &target.under {
        let active = relay.metrics().sessions_active;
        assert_eq!(active, 1 + scenario.subscribers as u64, "{who}: the relay's sessions");
    }

    // The summary.
    let whole: usize = accounts.iter().map(|a| a.whole.len()).sum();
    let gapped: usize = accounts.iter().map(|a| a.gapped.len()).sum();
    let frames: u64 = accounts.iter().map(|a| a.frames).sum();
    let per: Vec<String> = accounts.iter().map(|a| format!("{}/{}", a.whole.len(), a.gapped.len())).collect();
    let (up, down) = (publisher_sim.stats(Dir::Up), publisher_sim.stats(Dir::Down));
    let sub_drops: u64 = sims.iter().map(|s| s.stats(Dir::Up).dropped() + s.stats(Dir::Down).dropped()).sum();
    let sub_packets: u64 = sims.iter().map(|s| s.stats(Dir::Up).received + s.stats(Dir::Down).received).sum();
    eprintln!(
        "{who}: {} subscribers x {} groups: {whole} whole, {gapped} gapped, {frames} frames; \
         whole/gapped per subscriber [{}]; publisher path {}/{} packets dropped up, {}/{} down; \
         subscriber paths {sub_drops}/{sub_packets} dropped; ready {:.1} s, written {:.1} s, read {:.1} s",
        scenario.subscribers,
        scenario.groups,
        per.join(" "),
        up.dropped(),
        up.received,
        down.dropped(),
        down.received,
        ready.as_secs_f64(),
        written.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    for (i, account) in accounts.iter().enumerate().filter(|(_, a)| !a.gapped.is_empty()) {
        eprintln!("{who}, subscriber {i}: gaps {:?}", account.gapped);
    }
    drop(sims);
    accounts
}

/// A lossy network, not a broken one: most groups arrive whole (a floor so that a relay gapping
/// everything cannot pass for one that delivers).
fn assert_mostly_whole(accounts: &[Account], what: &str) {
    let whole: usize = accounts.iter().map(|a| a.whole.len()).sum();
    let total: u64 = accounts.iter().map(Account::covered).sum();
    assert!(2 * whole as u64 >= total, "{what}: only {whole} of {total} groups whole");
}

/// Tags a future's output with an index.
trait WithIndex: std::future::Future + Sized {
    fn into_future_with(self, i: usize) -> impl std::future::Future<Output = (usize, Self::Output)> {
        async move { (i, self.await) }
    }
}
impl<F: std::future::Future> WithIndex for F {}

fn scenario_a() -> Scenario {
    Scenario {
        name: "scenario A (2 % loss, 40 ms RTT ± 10 ms, 1 % reordering)",
        subscribers: 20,
        groups: seconds(),
        path: Impairment {
            loss: 0.02,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            reorder: 0.01,
            reorder_delay: Duration::from_millis(25),
            ..Default::default()
        },
        seed: 0xA,
        blackhole: None,
    }
}

fn scenario_b() -> Scenario {
    Scenario {
        name: "scenario B (3 s blackhole on the publisher's path)",
        subscribers: 10,
        groups: seconds(),
        path: Impairment { delay: Duration::from_millis(20), jitter: Duration::from_millis(5), ..Default::default() },
        seed: 0xB,
        // From the middle of group 2: groups 2 to 5 are written into the hole.
        blackhole: Some(((2, 15), Duration::from_secs(3))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_paths_through_moqt_relay_lose_no_group_silently() {
    init_logs();
    let scenario = scenario_a();
    let accounts = run(&Target::moqt(), &scenario).await;
    assert_mostly_whole(&accounts, "through moqt relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_paths_through_moq_relay_lose_no_group_silently() {
    init_logs();
    let Some(binary) = require_relay("lossy_paths_through_moq_relay_lose_no_group_silently") else { return };
    let scenario = scenario_a();
    let accounts = run(&Target::reference(&binary), &scenario).await;
    assert_mostly_whole(&accounts, "through moq-relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_blackhole_through_moqt_relay_is_delivered_late_or_reported() {
    init_logs();
    let scenario = scenario_b();
    run(&Target::moqt(), &scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_blackhole_through_moq_relay_is_delivered_late_or_reported() {
    init_logs();
    let Some(binary) = require_relay("a_publisher_blackhole_through_moq_relay_is_delivered_late_or_reported") else {
        return;
    };
    let scenario = scenario_b();
    run(&Target::reference(&binary), &scenario).await;
}
