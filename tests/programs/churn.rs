//! Subscriber churn against `moqt relay`, a process of its own so that its memory, descriptors
//! and tasks are its alone: a steady audience (one publisher, five subscribers) is served while
//! 2,000 sessions connect, subscribe, receive a frame and leave, every other one abruptly (its
//! runtime is torn down under it: no CONNECTION_CLOSE, the relay only learns from the idle
//! timeout). After a first such pass (the warm-up, see below), a second one leaves the relay
//! where it was: RSS within 10 % of its value before it, as many open descriptors and alive
//! tasks, and `/metrics` shows no session or subscription beyond the steady audience; the
//! steady subscribers received frames throughout. `MOQT_CHURN_CYCLES` changes the number of
//! cycles per pass.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moqt::coding::SessionCode;
use moqt::endpoint::{Client, EndpointConfig};
use moqt::model::{GroupStart, OriginProducer, SubscribeOptions, TrackEvent, TrackInfo};
use moqt::session::{Origins, Session};
use moqt::transport::tls::ClientTrust;

use crate::process::*;

/// Every wait ends well within this, even on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);
const STEADY_SUBSCRIBERS: u64 = 5;

/// The relay's `/metrics` as name (with labels) -> value.
fn metrics(http: u16) -> HashMap<String, u64> {
    let text = http_get(http, "/metrics");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// What the relay holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    sessions: u64,
    subscriptions: u64,
    tasks: u64,
    fds: usize,
}

fn held(pid: u32, http: u16) -> Held {
    let m = metrics(http);
    let get = |name: &str| *m.get(name).unwrap_or_else(|| panic!("no {name} in /metrics: {m:?}"));
    Held {
        sessions: get("moqt_sessions_active"),
        subscriptions: get("moqt_subscriptions_active"),
        tasks: get("moqt_tasks_alive"),
        fds: fds(pid),
    }
}

/// Waits (bounded) until `done` holds for what the relay holds; returns it.
fn wait_held(pid: u32, http: u16, what: &str, done: impl Fn(&Held) -> bool) -> Held {
    let started = Instant::now();
    loop {
        let now = held(pid, http);
        if done(&now) {
            return now;
        }
        assert!(started.elapsed() < WAIT, "{what}: the relay still holds {now:?} after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn client(fingerprint: [u8; 32]) -> Client {
    let trust = ClientTrust::Fingerprint(vec![fingerprint]);
    Client::new("127.0.0.1:0".parse().unwrap(), &trust, EndpointConfig::default()).unwrap()
}

/// Handshakes that timed out and were tried again (a starved machine can take longer than the
/// 10 s idle timeout a handshake gets); the test bounds how many there may be.
static RETRIED_CONNECTS: AtomicU64 = AtomicU64::new(0);

/// A session that mirrors the relay's broadcasts, and its origin.
async fn subscriber(client: &Client, relay: SocketAddr) -> (Session, OriginProducer) {
    for attempt in 0.. {
        let remote = OriginProducer::default();
        let origins = Origins { publish: None, subscribe: Some(remote.clone().into()), ..Default::default() };
        match tokio::time::timeout(WAIT, client.connect(relay, "localhost", None, origins)).await {
            Ok(Ok(session)) => return (session, remote),
            Ok(Err(err)) if attempt == 0 => {
                eprintln!("churn: a connect failed ({err}); trying once more");
                RETRIED_CONNECTS.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(err)) => panic!("connect, twice: {err}"),
            Err(_) => panic!("no connect in {WAIT:?}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// Subscribes to the steady track at the live edge and waits for one frame.
async fn one_frame(remote: &OriginProducer) {
    let path = moqt::coding::Path::new("steady").unwrap();
    let stage = std::sync::Mutex::new("waiting for the announcement");
    let set = |what| *stage.lock().unwrap() = what;
    let read = async {
        let broadcast = remote.consume().announced(&path).await.expect("the steady broadcast");
        set("subscribing");
        let options = SubscribeOptions { start: GroupStart::Latest, ..Default::default() };
        let mut track = broadcast.subscribe_track_with("video", options).await.expect("the steady track");
        set("waiting for a group");
        loop {
            match track.next_group().await {
                Ok(Some(TrackEvent::Group(mut group))) => {
                    set("waiting for a frame");
                    if let Ok(Some(_)) = group.next_frame().await {
                        return;
                    }
                }
                Ok(Some(TrackEvent::Gap(_))) => {}
                other => panic!("the steady track ended: {other:?}"),
            }
        }
    };
    if tokio::time::timeout(WAIT, read).await.is_err() {
        panic!("no frame in {WAIT:?}: {}", stage.lock().unwrap());
    }
}

/// The relay's log (info level: each session's open and close), for a failure's explanation.
fn log_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("churn-relay.log")
}

#[test]
fn churn_leaves_the_relay_as_it_found_it() {
    let cycles: u64 = std::env::var("MOQT_CHURN_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let (quic, http) = (free_udp(), free_tcp());
    let log = Stdio::from(std::fs::File::create(log_path()).unwrap());
    let relay_process = moqt_relay_at(quic, http, log, &["-v"]);
    let pid = relay_process.0.id();
    let hex = fingerprint(http);
    let mut fp = [0u8; 32];
    for (i, byte) in fp.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let relay: SocketAddr = format!("127.0.0.1:{quic}").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // The steady audience: a publisher writing 30 frames a second in 1 s groups, five readers.
    let steady_frames = Arc::new(AtomicU64::new(0));
    let steady = runtime.block_on(async {
        let published = OriginProducer::default();
        let broadcast = moqt::model::BroadcastProducer::default();
        let mut track = broadcast.create_track("video", TrackInfo::default()).unwrap();
        let _announced = published
            .publish(moqt::coding::Path::new("steady").unwrap(), broadcast.consume(), moqt::model::Route::local())
            .unwrap();
        let origins = Origins { publish: Some(published.consume()), subscribe: None, ..Default::default() };
        let publisher_client = client(fp);
        let publisher = publisher_client.connect(relay, "localhost", None, origins).await.expect("the publisher");
        let writer = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(33));
            let mut group: Option<moqt::model::GroupProducer> = None;
            for n in 0u64.. {
                interval.tick().await;
                if n % 30 == 0 {
                    if let Some(done) = group.take() {
                        let _ = done.finish();
                    }
                    group = Some(track.append_group().unwrap());
                }
                if let Some(group) = group.as_mut() {
                    let _ = group.write(n * 33_000, bytes::Bytes::from(vec![0u8; 1000]));
                }
            }
        });
        let steady_client = client(fp);
        let mut readers = Vec::new();
        for _ in 0..STEADY_SUBSCRIBERS {
            let (session, remote) = subscriber(&steady_client, relay).await;
            let count = steady_frames.clone();
            let path = moqt::coding::Path::new("steady").unwrap();
            readers.push(tokio::spawn(async move {
                let _session = session;
                let broadcast = remote.consume().announced(&path).await.expect("the steady broadcast");
                let mut track = broadcast.subscribe_track("video").await.expect("the steady track");
                while let Ok(Some(event)) = track.next_group().await {
                    if let TrackEvent::Group(mut group) = event {
                        while let Ok(Some(_)) = group.next_frame().await {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // The origin too: dropping its producer would end the announcement (new sessions would
        // no longer see the broadcast, while the subscriptions already open go on).
        (published, broadcast, _announced, publisher, publisher_client, steady_client, writer, readers)
    });
    let steady_sessions = 1 + STEADY_SUBSCRIBERS;
    let started = Instant::now();
    while steady_frames.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < WAIT, "the steady subscribers received nothing in {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let churn_client = Arc::new(runtime.block_on(async { client(fp) }));
    let cycle = |n: u64| {
        if n % 2 == 0 {
            // Clean: the session closes, the relay hears CONNECTION_CLOSE.
            let client = churn_client.clone();
            runtime
                .block_on(runtime.spawn(async move {
                    let (session, remote) = subscriber(&client, relay).await;
                    one_frame(&remote).await;
                    session.close(SessionCode::NoError, "done");
                }))
                .unwrap();
        } else {
            // Abrupt: the runtime carrying the session is torn down under it, and its socket with
            // it; nothing more is sent.
            let own = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (session, client) = own.block_on(async {
                let client = client(fp);
                let (session, remote) = subscriber(&client, relay).await;
                one_frame(&remote).await;
                (session, client)
            });
            drop(own);
            drop((session, client));
        }
    };

    // Warm-up: one whole churn pass first. Abrupt leavers linger until the idle timeout, so a
    // pass peaks at hundreds of sessions at once, and the allocator keeps that high-water mark
    // as RSS; the question is whether a further pass adds to it (a leak) or not.
    for n in 0..cycles {
        cycle(n);
    }
    let before = wait_held(pid, http, "before the churn", |h| h.sessions == steady_sessions);
    std::thread::sleep(Duration::from_secs(1));
    let before = held(pid, http).min_tasks(before);
    let rss_before = rss_kib(pid);
    let frames_before = steady_frames.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut frames_seen = frames_before;
    for n in 0..cycles {
        cycle(n);
        if n % 200 == 199 {
            // The steady audience is still served while the churn goes on.
            let now = steady_frames.load(Ordering::Relaxed);
            assert!(now > frames_seen, "the steady subscribers received nothing during cycles {}..{n}", n - 199);
            frames_seen = now;
        }
    }
    let churn = started.elapsed();
    // Abrupt leavers go at the relay's idle timeout; then only the steady audience is left.
    let after = wait_held(pid, http, "after the churn", |h| {
        h.sessions == steady_sessions
            && h.subscriptions == before.subscriptions
            && h.tasks <= before.tasks
            && h.fds <= before.fds
    });
    let rss_after = rss_kib(pid);
    eprintln!(
        "churn: {cycles} cycles in {churn:.1?}; relay RSS {rss_before} -> {rss_after} KiB, {before:?} -> {after:?}; \
         steady frames {frames_before} -> {}",
        steady_frames.load(Ordering::Relaxed)
    );
    let retried = RETRIED_CONNECTS.load(Ordering::Relaxed);
    assert!(retried * 100 <= 2 * cycles, "{retried} of {} connects had to be tried again", 2 * cycles);
    assert!(
        rss_after * 10 <= rss_before * 11,
        "relay RSS after the churn {rss_after} KiB is more than 10 % above {rss_before} KiB"
    );
    drop(steady);
    drop(relay_process);
}

impl Held {
    /// The fewer tasks of two readings (timers come and go; the baseline is the quiet one).
    fn min_tasks(self, other: Held) -> Held {
        Held { tasks: self.tasks.min(other.tasks), ..self }
    }
}
