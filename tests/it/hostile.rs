//! The hostile mix (issue 16): one moqt relay serves a live 30 fps track from one publisher to 20
//! well-behaved subscribers while, all at once, hostile peers push on every bound it has:
//!
//! * 1,000 half-open connections: the QUIC handshake completes, SETUP never comes;
//! * a SUBSCRIBE flood: [`SUBSCRIBE_FLOOD`] subscriptions to the live track on one session, eight
//!   times its `max_subscriptions`;
//! * an announce flood: [`ANNOUNCE_FLOOD`] ANNOUNCE_REQUESTs on one session, twice its
//!   `max_announce_requests` (the default, 64);
//! * oversized messages: a SUBSCRIBE longer than `max_message_size` (the default, 1 MiB) on one
//!   session, a SETUP longer than the codec's 64 KiB on another;
//! * a subscriber of the live track that never reads its group streams.
//!
//! First the 20 subscribers run alone (the quiet run, 5 s), then beside the hostile peers (the
//! hostile run, until the last of them has its answer: about 25 s). What must hold:
//!
//! * the well-behaved subscribers lose nothing (every frame of both runs, no gap, no session
//!   dropped) and their p99 latency (a frame's receive time minus its write time) in the hostile
//!   run stays within twice the quiet run's, or within the quiet p99 plus [`LATENCY_FLOOR`],
//!   whichever is larger (why the floor: see there), on a quiet machine (MOQT_LONG_SCENARIOS=1),
//!   and within [`GROSS_LATENCY`] of it in every run (why: see there);
//! * every hostile peer gets the documented answer (`SessionConfig`, spec 11.2/11.3): a half-open
//!   connection is closed with CONTROL_MESSAGE_TIMEOUT (0x11) at the setup timeout; a request
//!   over `max_subscriptions` or `max_announce_requests`, and a request whose message is over
//!   `max_message_size`, is reset with CANCELLED (0x1) while its session stays up and keeps what
//!   is within the bounds; an oversized SETUP closes the connection with
//!   PROTOCOL_VIOLATION (0x3); the non-reading subscriber's groups past `max_groups_in_flight` are
//!   abandoned, reported to it (SUBSCRIBE_DROP with TOO_FAR_BEHIND, 0x5) and counted in the
//!   relay's metrics;
//! * memory stays bounded: the process's RSS (the relay and every client live in this process)
//!   grows by at most [`PEAK_RSS_BOUND_KIB`] at the peak of the hostile run and, once the hostile
//!   peers are gone and the allocator has returned its free pages, is within
//!   [`AFTER_RSS_BOUND_KIB`] of where it was; the relay is back to the well-behaved sessions and
//!   subscriptions, and once those leave too its runtime has the tasks it had before the first
//!   session (none outlives its session).
//!
//! The relay runs on a runtime of its own, as in the `moqt relay` process, and the hostile peers
//! on another (one thread: the attackers' machine), so that neither the relay's tasks nor the
//! audience's wait in a queue behind the attackers' work; the three share the machine's cores, as
//! a relay shares its host. That also lets the test count the relay's tasks apart from the
//! clients'. Two bounds are lowered so the test sees them in seconds rather than minutes, the
//! mechanism unchanged: `max_groups_in_flight` to [`MAX_GROUPS_IN_FLIGHT`] (64 by default) and
//! `max_subscriptions` to [`MAX_SUBSCRIPTIONS`] (1024). One session cannot reach 1024 anyway:
//! QUIC allows it 256 bidi streams at once (`EndpointConfig::max_concurrent_bidi_streams`); and
//! every subscription held within the bound is real fan-out work for the relay. The setup timeout
//! is raised to [`SETUP_TIMEOUT`] (10 s by default), so that the 1,000 half-open connections are
//! all open at once.
//!
//! `cargo test --test it hostile -- --nocapture` prints the figures (RELIABILITY.md has them).

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use moqt::coding::{SessionCode, StreamCode, encode_varint};
use moqt::endpoint::{Client, Server};
use moqt::model::{TrackConsumer, TrackEvent, TrackProducer};
use moqt::relay::{Relay, RelayConfig};
use moqt::session::{Origins, Session, SessionConfig, SessionEvent};
use moqt::transport::quic::{QuicConnection, QuicRecv, QuicSend};
use moqt::transport::tls::ClientTrust;
use moqt::transport::{Connection, RecvStream, SendStream, StreamError};
use moqt::wire::{
    AnnounceOk, BidiStream, Message, StreamReader, SubscribeResponse, SubscribeWindow, UniStream, Version,
};
use tokio::task::JoinSet;
use tokio::time::timeout;

const VERSION: Version = Version::Lite06;
const SUBSCRIBERS: usize = 20;
const FPS: u64 = 30;
/// Frames per group: one group a second.
const FRAMES: u64 = 30;
/// Every frame's size: its phase and write time, then padding.
const FRAME_LEN: usize = 500;
/// Frames of the quiet run (5 s).
const QUIET_FRAMES: u64 = 150;

/// The half-open connections (the figure: affordable in CI, see [`HALF_OPEN_RATE`]).
const HALF_OPEN: usize = 1000;
/// New half-open connections a second, at most [`HANDSHAKES_AT_ONCE`] handshakes in progress.
/// Their TLS handshakes are the costliest part of the mix (about 5 ms of the relay's CPU each in
/// the unoptimised test build): at this rate the relay spends about a quarter of the 2 cores on
/// them. Twice the rate (1,000 in 5 s) kept the well-behaved p99 within bounds on an idle
/// machine but not beside two busy loops (73 and 460 ms); unpaced, 16 handshakes in flight (about
/// 300 a second), it rose from 5 to 75 ms even there: the CPU goes to handshakes as much as to
/// delivery, and no bound of the relay's shares it out (RELIABILITY.md).
const HALF_OPEN_RATE: u32 = 100;
/// How long the relay waits for a client's SETUP (default 10 s): longer than the 10 s the
/// arrivals take, so that all 1,000 are open at once.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Handshakes in progress at a time: also what slows the arrivals when the machine is busy. All
/// 1,000 at once overflow the UDP receive buffers (5,060 datagrams dropped in one try on the
/// development machine) and some handshakes never finish (129 of 1,000 within 30 s), so the relay
/// would see fewer half-open sessions, not more.
const HANDSHAKES_AT_ONCE: usize = 4;
/// The relay's `max_subscriptions` (default 1024).
const MAX_SUBSCRIPTIONS: usize = 8;
const SUBSCRIBE_FLOOD: usize = 64;
/// Twice the default `max_announce_requests`.
const ANNOUNCE_FLOOD: usize = 128;
/// The relay's `max_groups_in_flight` (default 64).
const MAX_GROUPS_IN_FLIGHT: usize = 4;
/// SUBSCRIBE_DROPs the non-reading subscriber must see.
const DROPS_WANTED: usize = 3;

/// The absolute allowance on the hostile p99. On loopback a quiet p99 is a few milliseconds,
/// where twice it is within the noise of a 2-core machine that runs the relay, 20 subscribers,
/// the hostile peers' TLS handshakes (both sides, in this process) and other tests at once: one
/// descheduled thread costs a scheduler slice or more. 50 ms is still far below what a viewer
/// would notice and far below what a starved subscriber would show (seconds, then gaps).
const LATENCY_FLOOR: Duration = Duration::from_millis(50);

/// What the hostile p99 may gain over the quiet one in every run. The 2x target (with its floor)
/// is a speed figure: in a suite run beside two busy loops, scheduling alone has moved another
/// scenario's p99 from 10 ms to 200 ms and 400 ms between two phases of one test. So the target
/// is asserted with MOQT_LONG_SCENARIOS=1, for a quiet machine, and printed always; every run
/// asserts that nobody was starved (a starved subscriber shows seconds, then gaps).
const GROSS_LATENCY: Duration = Duration::from_secs(1);

/// How far the process's RSS may grow at the peak of the hostile run: about twice the 130 MiB
/// measured (RELIABILITY.md), nearly all of it the 1,000 half-open connections, counted twice (the
/// relay's side and the clients' side both live in this process).
const PEAK_RSS_BOUND_KIB: u64 = 256 * 1024;

/// How far the process's RSS may stay above where it was once the hostile peers are gone (both
/// figures taken after `malloc_trim`). Measured: +13 MiB alone, +30 MiB in the whole `it` suite,
/// whose other tests share the process and allocate at the same time. The bound catches a gross
/// leak (the relay keeping its side of every half-open connection would hold about 65 MiB); the
/// exact check on the relay's state is its task count.
const AFTER_RSS_BOUND_KIB: u64 = 64 * 1024;

/// Frame phases: frames written before the quiet run, during it, during the hostile run, after.
const WARMUP: u8 = 0;
const QUIET: u8 = 1;
const HOSTILE: u8 = 2;
const AFTER: u8 = 3;

/// The process's resident set (VmRSS), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The process's RSS once the allocator has returned its free pages to the system: what is still
/// in use, not the high-water mark glibc keeps.
fn trimmed_rss_kib() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
    rss_kib()
}

/// CPU time (user and system) of this process's threads named `name`.
fn cpu_of_threads(name: &str) -> Duration {
    // SAFETY: sysconf reads a constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else { continue };
        // pid (comm) state ...: comm may hold spaces, the fields after it do not.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if &stat[open + 1..close] != name {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime: fields 14 and 15 of the line, 12 and 13 after the comm.
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// A runtime of its own, its threads named `name`; shut down without blocking when dropped
/// (dropping a runtime blocks, which an async context forbids).
struct Background(Option<tokio::runtime::Runtime>);

impl Background {
    fn new(name: &str, threads: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap();
        Background(Some(runtime))
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The relay under test, on a runtime of its own.
struct RelayUnderTest {
    relay: Relay,
    addr: SocketAddr,
    fingerprint: [u8; 32],
    runtime: Background,
}

impl RelayUnderTest {
    fn start() -> Self {
        let runtime = Background::new("relay", 2);
        let cert = cert();
        // The wait for SETUP, like every session setting, is the relay's.
        let endpoint = config(VERSION);
        let session = SessionConfig {
            setup_timeout: SETUP_TIMEOUT,
            max_subscriptions: MAX_SUBSCRIPTIONS,
            max_groups_in_flight: MAX_GROUPS_IN_FLIGHT,
            ..Default::default()
        };
        let relay = Relay::new(RelayConfig { session, ..Default::default() });
        let server = {
            let _inside = runtime.runtime().enter();
            Server::bind("127.0.0.1:0".parse().unwrap(), &cert, endpoint).unwrap()
        };
        let addr = server.local_addr().unwrap();
        let running = relay.clone();
        runtime.runtime().spawn(async move { running.run(server).await });
        RelayUnderTest { relay, addr, fingerprint: cert.fingerprint(), runtime }
    }

    /// Tasks alive in the relay's runtime.
    fn tasks(&self) -> usize {
        self.runtime.runtime().metrics().num_alive_tasks()
    }

    fn client(&self) -> Client {
        let trust = ClientTrust::Fingerprint(vec![self.fingerprint]);
        Client::new("127.0.0.1:0".parse().unwrap(), &trust, config(VERSION)).unwrap()
    }

    async fn connect(&self, origins: Origins) -> Session {
        timeout(WAIT, self.client().connect(self.addr, "localhost", None, origins))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    fn target(&self) -> Target {
        Target { addr: self.addr, fingerprint: self.fingerprint }
    }

    /// Waits until `done` holds for the relay's metrics.
    async fn wait_metrics(&self, what: &str, done: impl Fn(&moqt::relay::RelayMetrics) -> bool) {
        let waited = timeout(2 * WAIT, async {
            while !done(&self.relay.metrics()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what}: {:?}", self.relay.metrics());
    }
}

/// A frame: its phase, its write time (µs since `epoch`), padding.
fn frame(phase: u8, written: Duration) -> Bytes {
    let mut bytes = Vec::with_capacity(FRAME_LEN);
    bytes.push(phase);
    bytes.extend_from_slice(&(written.as_micros() as u64).to_le_bytes());
    bytes.resize(FRAME_LEN, 0x5a);
    Bytes::from(bytes)
}

fn read_frame(payload: &[u8]) -> (u8, Duration) {
    let micros = u64::from_le_bytes(payload[1..9].try_into().unwrap());
    (payload[0], Duration::from_micros(micros))
}

/// What the well-behaved subscribers saw.
struct Tally {
    epoch: Instant,
    /// Latencies by phase, every subscriber together.
    latencies: Mutex<[Vec<Duration>; 4]>,
    /// Frames received by subscriber and phase.
    frames: Vec<[AtomicU64; 4]>,
    gaps: AtomicU64,
}

impl Tally {
    fn frames(&self, subscriber: usize, phase: u8) -> u64 {
        self.frames[subscriber][phase as usize].load(Ordering::Relaxed)
    }

    /// The 99th percentile of a phase's latencies, and how many there are.
    fn p99(&self, phase: u8) -> (Duration, usize) {
        let mut all = self.latencies.lock().unwrap()[phase as usize].clone();
        assert!(!all.is_empty(), "no latency measured in phase {phase}");
        all.sort();
        let at = (all.len() * 99).div_ceil(100) - 1;
        (all[at], all.len())
    }
}

/// Reads a well-behaved subscriber's track: each group on its own task, each frame's latency
/// recorded as it arrives.
fn watch(mut track: TrackConsumer, tally: Arc<Tally>, subscriber: usize) -> TaskGuard {
    TaskGuard(tokio::spawn(async move {
        while let Ok(Some(event)) = track.next_group().await {
            match event {
                TrackEvent::Group(mut group) => {
                    let tally = tally.clone();
                    tokio::spawn(async move {
                        while let Ok(Some(frame)) = group.next_frame().await {
                            let received = tally.epoch.elapsed();
                            let (phase, written) = read_frame(&frame.payload);
                            tally.latencies.lock().unwrap()[phase as usize].push(received.saturating_sub(written));
                            tally.frames[subscriber][phase as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                TrackEvent::Gap(gap) => {
                    tracing::warn!(subscriber, ?gap, "a well-behaved subscriber saw a gap");
                    tally.gaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }))
}

/// The live track: a frame every 1/30 s tagged with the phase at its writing, a group a second.
fn write_live(
    mut track: TrackProducer,
    phase: Arc<AtomicU8>,
    written: Arc<[AtomicU64; 4]>,
    epoch: Instant,
) -> TaskGuard {
    TaskGuard(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / FPS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut group = track.append_group().unwrap();
            let g = group.sequence();
            for f in 0..FRAMES {
                tick.tick().await;
                let now = phase.load(Ordering::Relaxed);
                group.write(stamp(g, f, FRAMES), frame(now, epoch.elapsed())).unwrap();
                written[now as usize].fetch_add(1, Ordering::Relaxed);
            }
            group.finish().unwrap();
        }
    }))
}

/// How the relay answered one request stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Answer {
    /// The first answer message arrived (SUBSCRIBE_OK, ANNOUNCE_OK): the request is held.
    Served,
    /// The stream was reset with this code.
    Refused(StreamCode),
    /// Anything else.
    Other(String),
}

/// Reads a request stream until its first `M` or its reset.
async fn first_answer<M: Message>(recv: &mut QuicRecv) -> Answer {
    let mut reader = StreamReader::new(VERSION, 1 << 16);
    loop {
        match reader.decode::<M>() {
            Ok(Some(_)) => return Answer::Served,
            Ok(None) => {}
            Err(err) => return Answer::Other(format!("undecodable answer: {err}")),
        }
        match timeout(WAIT, recv.read(4096)).await {
            Err(_) => return Answer::Other("no answer in time".into()),
            Ok(Ok(Some(chunk))) => reader.push(&chunk).unwrap(),
            Ok(Ok(None)) => return Answer::Other("the stream ended".into()),
            Ok(Err(StreamError::Reset(code))) => return Answer::Refused(code),
            Ok(Err(err)) => return Answer::Other(err.to_string()),
        }
    }
}

/// Opens `count` request streams on `conn` at once, the `n`th carrying `request(n)`, and waits for
/// each one's first answer. The streams are returned to keep: a request ends with its stream.
async fn flood<M: Message>(
    conn: &QuicConnection,
    count: usize,
    request: impl Fn(u64) -> Vec<u8>,
) -> (HashMap<Answer, usize>, Vec<(QuicSend, QuicRecv)>) {
    let mut asking = JoinSet::new();
    for n in 0..count {
        let (mut send, mut recv) = timeout(WAIT, conn.open_bi()).await.expect("stream credit").unwrap();
        send.write(Bytes::from(request(n as u64))).await.unwrap();
        asking.spawn(async move {
            let answer = first_answer::<M>(&mut recv).await;
            (answer, send, recv)
        });
    }
    let mut answers = HashMap::new();
    let mut streams = Vec::new();
    while let Some(asked) = asking.join_next().await {
        let (answer, send, recv) = asked.unwrap();
        *answers.entry(answer).or_default() += 1;
        streams.push((send, recv));
    }
    (answers, streams)
}

/// Accepts every uni stream the relay opens and reads it to its end.
fn drain_uni(conn: QuicConnection) -> TaskGuard {
    TaskGuard(tokio::spawn(async move {
        while let Ok(mut recv) = conn.accept_uni().await {
            tokio::spawn(async move { while let Ok(Some(_)) = recv.read(64 * 1024).await {} });
        }
    }))
}

/// Where the hostile peers connect.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    fingerprint: [u8; 32],
}

impl Target {
    /// A bare QUIC connection with these client transport settings.
    async fn raw(self, transport: quinn::TransportConfig) -> QuicConnection {
        raw_connect_from(&raw_endpoint(self.fingerprint, VERSION, transport), self.addr).await
    }

    /// [`Target::raw`], SETUP sent and the relay's ANNOUNCE_REQUEST answered (nothing to
    /// announce): a session that does everything a session must, so what the
    /// relay does to it answers what it does beyond. (Unanswered, the relay closes a session with
    /// CONTROL_MESSAGE_TIMEOUT after its control timeout.)
    async fn session(self, transport: quinn::TransportConfig, held: &Mutex<Held>) -> QuicConnection {
        let conn = self.raw(transport).await;
        send_client_setup(&conn, VERSION).await;
        let answered = raw::RawPeer { conn: conn.clone(), version: VERSION }.announce(&[]).await;
        let mut held = held.lock().unwrap();
        held.requests.push(answered);
        held.conns.push(conn.clone());
        conn
    }
}

/// What the hostile peers hold open until they leave.
#[derive(Default)]
struct Held {
    conns: Vec<QuicConnection>,
    streams: Vec<(QuicSend, QuicRecv)>,
    requests: Vec<raw::Request>,
    tasks: Vec<TaskGuard>,
}

/// What the half-open connections got.
#[derive(Debug, Default)]
struct HalfOpen {
    /// Connections by the close code they got.
    codes: BTreeMap<u64, usize>,
    /// Handshake to close, the shortest and the longest.
    lived: (Duration, Duration),
    /// The shortest time from a connection attempt to its close: the relay's wait for SETUP starts
    /// once its side of the handshake is done, so this is never shorter than that wait.
    shortest_from_attempt: Duration,
    /// From the first connection attempt to the last handshake.
    all_open_after: Duration,
    /// The most connections open at once.
    most_at_once: u64,
}

/// What every hostile peer got.
#[derive(Debug)]
struct Report {
    half_open: HalfOpen,
    subscribe_flood: HashMap<Answer, usize>,
    announce_flood: HashMap<Answer, usize>,
    oversized_request: Answer,
    /// A request within the bounds on the oversized request's session, after it.
    after_oversized: Answer,
    /// The oversized SETUP's session close code.
    oversized_setup: u64,
    /// The non-reading subscriber's SUBSCRIBE_DROPs: (start, end, code).
    drops: Vec<(u64, u64, u64)>,
}

/// Every hostile peer at once; returns once each has its answer, with what they hold open.
async fn unleash(target: Target, half_open_count: usize) -> (Report, Held) {
    let held = Mutex::new(Held::default());
    let (half_open, subscribe_flood, announce_flood, oversized, oversized_setup, drops) = tokio::join!(
        half_open(target, half_open_count),
        subscribe_flood(target, &held),
        announce_flood(target, &held),
        oversized_request(target, &held),
        oversized_setup(target),
        never_reads(target, &held),
    );
    let (oversized_request, after_oversized) = oversized;
    let report = Report {
        half_open,
        subscribe_flood,
        announce_flood,
        oversized_request,
        after_oversized,
        oversized_setup,
        drops,
    };
    (report, held.into_inner().unwrap())
}

/// `count` connections that complete the handshake and never send SETUP, arriving at
/// [`HALF_OPEN_RATE`] with at most [`HANDSHAKES_AT_ONCE`] handshakes in progress: each waits for
/// the relay to close it.
async fn half_open(target: Target, count: usize) -> HalfOpen {
    let endpoint = raw_endpoint(target.fingerprint, VERSION, quinn::TransportConfig::default());
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
    let open = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let started = Instant::now();
    let mut arrivals = tokio::time::interval(Duration::from_secs(1) / HALF_OPEN_RATE);
    arrivals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting = JoinSet::new();
    for _ in 0..count {
        arrivals.tick().await;
        let handshake = handshakes.clone().acquire_owned().await.unwrap();
        let (endpoint, open) = (endpoint.clone(), open.clone());
        waiting.spawn(async move {
            let asked = Instant::now();
            let conn = raw_connect_from(&endpoint, target.addr).await;
            drop(handshake);
            let opened = Instant::now();
            let now = open.0.fetch_add(1, Ordering::Relaxed) + 1;
            open.1.fetch_max(now, Ordering::Relaxed);
            let code = close_code_within(&conn, SETUP_TIMEOUT + WAIT).await;
            open.0.fetch_sub(1, Ordering::Relaxed);
            (code, opened.elapsed(), asked.elapsed(), opened)
        });
    }
    let mut report =
        HalfOpen { lived: (Duration::MAX, Duration::ZERO), shortest_from_attempt: Duration::MAX, ..Default::default() };
    let mut last_opened = started;
    while let Some(closed) = waiting.join_next().await {
        let (code, after, from_attempt, opened) = closed.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        *report.codes.entry(code).or_default() += 1;
        report.lived = (report.lived.0.min(after), report.lived.1.max(after));
        report.shortest_from_attempt = report.shortest_from_attempt.min(from_attempt);
        last_opened = last_opened.max(opened);
    }
    report.all_open_after = last_opened - started;
    report.most_at_once = open.1.load(Ordering::Relaxed);
    report
}

/// A session that asks for [`SUBSCRIBE_FLOOD`] subscriptions to the live track at once (reading
/// what the ones it gets deliver).
async fn subscribe_flood(target: Target, held: &Mutex<Held>) -> HashMap<Answer, usize> {
    let conn = target.session(quinn::TransportConfig::default(), held).await;
    let drain = drain_uni(conn.clone());
    // The live edge (lite-06: no floor, Max Age 0).
    let window = SubscribeWindow { priority: 1, max_age: 0, ..Default::default() };
    let (answers, streams) =
        flood::<SubscribeResponse>(&conn, SUBSCRIBE_FLOOD, |id| subscribe_request(VERSION, id, "video", window)).await;
    let mut held = held.lock().unwrap();
    held.streams.extend(streams);
    held.tasks.push(drain);
    answers
}

/// A session that asks for announcements [`ANNOUNCE_FLOOD`] times at once.
async fn announce_flood(target: Target, held: &Mutex<Held>) -> HashMap<Answer, usize> {
    let conn = target.session(quinn::TransportConfig::default(), held).await;
    let (answers, streams) = flood::<AnnounceOk>(&conn, ANNOUNCE_FLOOD, |_| announce_request(VERSION, "")).await;
    held.lock().unwrap().streams.extend(streams);
    answers
}

/// A SUBSCRIBE whose Message Length is one past the relay's `max_message_size`, its bytes sent in
/// full (as far as the relay takes them); then a request within the bounds on the same session.
async fn oversized_request(target: Target, held: &Mutex<Held>) -> (Answer, Answer) {
    let conn = target.session(quinn::TransportConfig::default(), held).await;
    let length = SessionConfig::default().max_message_size + 1;
    let mut head = Vec::new();
    BidiStream::Subscribe.encode(&mut head, VERSION).unwrap();
    encode_varint(&mut head, length as u64).unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let writing = async move {
        send.write(Bytes::from(head)).await.unwrap();
        let chunk = Bytes::from(vec![0u8; 64 * 1024]);
        let mut sent = 0;
        while sent < length {
            let piece = chunk.slice(..chunk.len().min(length - sent));
            sent += piece.len();
            // STOP_SENDING ends the writing.
            if send.write(piece).await.is_err() {
                break;
            }
        }
    };
    let (answer, ()) = tokio::join!(first_answer::<SubscribeResponse>(&mut recv), writing);
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write(Bytes::from(announce_request(VERSION, ""))).await.unwrap();
    let after = first_answer::<AnnounceOk>(&mut recv).await;
    held.lock().unwrap().streams.push((send, recv));
    (answer, after)
}

/// A SETUP whose Message Length is past the codec's bound on SETUP (64 KiB), sent in full; returns
/// the code the relay closes the connection with.
async fn oversized_setup(target: Target) -> u64 {
    let conn = target.raw(quinn::TransportConfig::default()).await;
    let length = moqt::wire::MAX_SETUP_LEN as usize + 1;
    let mut bytes = Vec::new();
    UniStream::Setup.encode(&mut bytes, VERSION).unwrap();
    encode_varint(&mut bytes, length as u64).unwrap();
    bytes.resize(bytes.len() + length, 0);
    let mut send = conn.open_uni().await.unwrap();
    // The relay may close the connection before it has all of it.
    if send.write(Bytes::from(bytes)).await.is_ok() {
        let _ = send.finish();
    }
    close_code(&conn).await
}

/// A subscriber of the live track that never reads a group stream: it grants the relay two uni
/// streams (its SETUP's and one more), none of which it ever accepts, so every later group waits
/// for stream credit that never comes. (With quinn's default of 100 the same happens 100 groups
/// later.) It reads only its Subscribe stream, until [`DROPS_WANTED`] SUBSCRIBE_DROPs arrive.
async fn never_reads(target: Target, held: &Mutex<Held>) -> Vec<(u64, u64, u64)> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(2u32.into());
    let conn = target.session(transport, held).await;
    let window = SubscribeWindow { priority: 1, max_age: 0, ..Default::default() };
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write(Bytes::from(subscribe_request(VERSION, 0, "video", window))).await.unwrap();
    let mut reader = StreamReader::new(VERSION, 1 << 16);
    let mut drops = Vec::new();
    // The first drop comes once MAX_GROUPS_IN_FLIGHT groups wait (a group a second), then one
    // a group.
    let bound = WAIT + Duration::from_secs((MAX_GROUPS_IN_FLIGHT + DROPS_WANTED) as u64 + 2);
    let seen = timeout(bound, async {
        while drops.len() < DROPS_WANTED {
            while let Some(response) = reader.decode::<SubscribeResponse>().unwrap() {
                if let SubscribeResponse::Drop { start, end, code } = response {
                    drops.push((start, end, code));
                }
            }
            let chunk = recv.read(4096).await.expect("the Subscribe stream stays up").expect("more responses");
            reader.push(&chunk).unwrap();
        }
    })
    .await;
    assert!(seen.is_ok(), "the non-reading subscriber got {drops:?} within {bound:?}");
    held.lock().unwrap().streams.push((send, recv));
    drops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mix_leaves_well_behaved_subscribers_and_memory_alone() {
    init_logs();
    let relay = RelayUnderTest::start();
    // The relay's own tasks, before any session: the accept loop and the endpoint's driver.
    let idle_tasks = relay.tasks();
    let epoch = Instant::now();

    // The publisher and the audience.
    let published = publish("room/alice");
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let written: Arc<[AtomicU64; 4]> = Arc::default();
    let publisher = relay.connect(Origins { publish: Some(published.origin.consume()), ..Default::default() }).await;
    let tally = Arc::new(Tally {
        epoch,
        latencies: Mutex::default(),
        frames: (0..SUBSCRIBERS).map(|_| Default::default()).collect(),
        gaps: AtomicU64::new(0),
    });
    let mut sessions = Vec::new();
    let mut readers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let remote = moqt::model::OriginProducer::default();
        let session = relay.connect(Origins { subscribe: Some(remote.clone().into()), ..Default::default() }).await;
        let broadcast = announced(&remote, &path("room/alice")).await;
        let track = timeout(WAIT, broadcast.subscribe_track("video")).await.expect("subscribed in time").unwrap();
        readers.push(watch(track, tally.clone(), i));
        sessions.push(session);
    }
    let _writer = write_live(published.track, phase.clone(), written.clone(), epoch);
    let wait_written = |phase: u8, at_least: u64| {
        let written = written.clone();
        async move {
            let waited = timeout(2 * WAIT, async {
                while written[phase as usize].load(Ordering::Relaxed) < at_least {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            assert!(waited.is_ok(), "the publisher did not write {at_least} frames in phase {phase}");
        }
    };
    // Every subscriber receives frames before the quiet run starts.
    wait_written(WARMUP, 2 * FRAMES).await;
    let warm = timeout(WAIT, async {
        while (0..SUBSCRIBERS).any(|i| tally.frames(i, WARMUP) == 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(warm.is_ok(), "a subscriber received nothing before the quiet run");
    relay.wait_metrics("the audience's sessions", |m| m.sessions_active == 1 + SUBSCRIBERS as u64).await;

    // The quiet run.
    phase.store(QUIET, Ordering::Relaxed);
    wait_written(QUIET, QUIET_FRAMES).await;

    // The hostile run.
    let before = (trimmed_rss_kib(), relay.tasks(), relay.relay.metrics());
    let peak_rss = Arc::new(AtomicU64::new(before.0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak_rss, sampling) = (peak_rss.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak_rss.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let cpu = (cpu_of_threads("relay"), cpu_of_threads("hostile"));
    phase.store(HOSTILE, Ordering::Relaxed);
    let started = Instant::now();
    let attackers = Background::new("hostile", 1);
    let unleashed = attackers.runtime().spawn(unleash(relay.target(), HALF_OPEN));
    let (report, held) = timeout(6 * WAIT, unleashed)
        .await
        .expect("the hostile peers got their answers in time")
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let hostile_run = started.elapsed();
    phase.store(AFTER, Ordering::Relaxed);
    let during = (relay.tasks(), relay.relay.metrics());
    let cpu = (cpu_of_threads("relay") - cpu.0, cpu_of_threads("hostile") - cpu.1);
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak_rss = peak_rss.load(Ordering::Relaxed);

    // The hostile peers leave.
    for conn in &held.conns {
        conn.close(0, "done");
    }
    drop(held);
    relay
        .wait_metrics("only the well-behaved sessions left", |m| {
            m.sessions_active == 1 + SUBSCRIBERS as u64 && m.traffic.subscriptions_active == SUBSCRIBERS as u64
        })
        .await;
    let after = (trimmed_rss_kib(), relay.tasks(), relay.relay.metrics());

    // Every frame of both runs reached every well-behaved subscriber.
    let expected = [QUIET, HOSTILE].map(|p| written[p as usize].load(Ordering::Relaxed));
    let complete = timeout(2 * WAIT, async {
        while (0..SUBSCRIBERS).any(|i| tally.frames(i, QUIET) < expected[0] || tally.frames(i, HOSTILE) < expected[1]) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let received: Vec<_> = (0..SUBSCRIBERS).map(|i| (tally.frames(i, QUIET), tally.frames(i, HOSTILE))).collect();
    let (quiet, quiet_n) = tally.p99(QUIET);
    let (loaded, loaded_n) = tally.p99(HOSTILE);
    let strict = long_scenarios();
    let bound = if strict { (2 * quiet).max(quiet + LATENCY_FLOOR) } else { quiet + GROSS_LATENCY };
    let dropped = after.2.traffic.groups_dropped - before.2.traffic.groups_dropped;
    let half_open = &report.half_open;
    eprintln!(
        "hostile mix:\n  \
         p99 latency: quiet {quiet:.1?} ({quiet_n} frames), hostile {loaded:.1?} ({loaded_n} frames), \
         bound {bound:.1?}\n  \
         hostile run {hostile_run:.1?}; CPU: relay {:.1?}, hostile peers {:.1?}\n  \
         {HALF_OPEN} half-open: close codes {:?}, {:.1?}..{:.1?} after the handshake, all open after \
         {:.1?}, {} at once\n  \
         SUBSCRIBE flood {:?}\n  \
         announce flood {:?}\n  \
         oversized request {:?}, then a request within the bounds {:?}; oversized SETUP closed with \
         {:#x}\n  \
         non-reader's SUBSCRIBE_DROPs {:?}; relay's groups dropped +{dropped}\n  \
         RSS: {} KiB before, {} KiB peak (+{}), {} KiB after ({:+})\n  \
         relay sessions {} / {} / {}, tasks {} / {} / {} (before / end of the hostile run / after)\n  \
         relay tasks with no session {idle_tasks}",
        cpu.0,
        cpu.1,
        half_open.codes,
        half_open.lived.0,
        half_open.lived.1,
        half_open.all_open_after,
        half_open.most_at_once,
        report.subscribe_flood,
        report.announce_flood,
        report.oversized_request,
        report.after_oversized,
        report.oversized_setup,
        report.drops,
        before.0,
        peak_rss,
        peak_rss - before.0,
        after.0,
        after.0 as i64 - before.0 as i64,
        before.2.sessions_active,
        during.1.sessions_active,
        after.2.sessions_active,
        before.1,
        during.0,
        after.1,
    );

    // The well-behaved subscribers.
    assert!(complete.is_ok(), "frames missing: wrote {expected:?} (quiet, hostile), received {received:?}");
    assert_eq!(tally.gaps.load(Ordering::Relaxed), 0, "a well-behaved subscriber saw a gap");
    assert_eq!(publisher.event(), SessionEvent::Active, "the publisher's session");
    for (i, session) in sessions.iter().enumerate() {
        assert_eq!(session.event(), SessionEvent::Active, "subscriber {i}'s session");
    }
    assert!(loaded <= bound, "hostile p99 {loaded:?} against quiet p99 {quiet:?}: over {bound:?}");

    // The hostile peers, each with its documented answer.
    let timeout_code = SessionCode::ControlMessageTimeout.to_u64();
    assert_eq!(half_open.codes, BTreeMap::from([(timeout_code, HALF_OPEN)]), "half-open connections");
    assert!(half_open.shortest_from_attempt >= SETUP_TIMEOUT, "closed before the setup timeout: {half_open:?}");
    let refused = Answer::Refused(StreamCode::Cancelled);
    assert_eq!(
        report.subscribe_flood,
        HashMap::from([(Answer::Served, MAX_SUBSCRIPTIONS), (refused.clone(), SUBSCRIBE_FLOOD - MAX_SUBSCRIPTIONS)]),
        "the SUBSCRIBE flood"
    );
    let max_announce = SessionConfig::default().max_announce_requests;
    assert_eq!(
        report.announce_flood,
        HashMap::from([(Answer::Served, max_announce), (refused.clone(), ANNOUNCE_FLOOD - max_announce)]),
        "the announce flood"
    );
    assert_eq!(report.oversized_request, refused, "the oversized request");
    assert_eq!(report.after_oversized, Answer::Served, "the oversized request's session stays up");
    assert_eq!(report.oversized_setup, SessionCode::ProtocolViolation.to_u64(), "the oversized SETUP");
    let too_far_behind = StreamCode::TooFarBehind.to_u64();
    assert!(
        report.drops.iter().all(|&(start, end, code)| start == end && code == too_far_behind),
        "the non-reader's drops: {:?}",
        report.drops
    );
    assert!(dropped >= DROPS_WANTED as u64, "the relay counted {dropped} groups dropped");
    // The four sessions the relay keeps (floods, oversized request, non-reader) were up until
    // their peers left.
    assert_eq!(during.1.sessions_active, 1 + SUBSCRIBERS as u64 + 4, "sessions at the end of the hostile run");

    // Memory and the relay's own state.
    assert!(
        peak_rss.saturating_sub(before.0) <= PEAK_RSS_BOUND_KIB,
        "RSS grew from {} KiB to {peak_rss} KiB",
        before.0
    );
    assert!(
        after.0.saturating_sub(before.0) <= AFTER_RSS_BOUND_KIB,
        "RSS {} KiB before the hostile run, {} KiB after it",
        before.0,
        after.0
    );

    // Once the audience and the publisher leave too, the relay's runtime is back to the tasks it
    // had before any session (per-group tasks come and go with the live track, so only with no
    // track left is the count exact).
    drop((sessions, publisher, readers));
    relay.wait_metrics("no session left", |m| m.sessions_active == 0).await;
    let emptied = timeout(2 * WAIT, async {
        while relay.tasks() > idle_tasks {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(emptied.is_ok(), "relay tasks: {idle_tasks} before any session, {} after the last", relay.tasks());
}
