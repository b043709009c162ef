//! A load generator for relays (`moqt bench`): publishers and subscribers against any relay URL,
//! reporting delivered frames and throughput, end-to-end latency percentiles (the publish time
//! travels in each frame), frames and groups lost, and — given the relay's process ID — its CPU
//! seconds per delivered GB and peak memory, read from /proc.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::task::JoinSet;

use moqt::Path;
use moqt::endpoint::Client;
use moqt::model::{self, BroadcastProducer, OriginProducer, Published, Route, TrackEvent, TrackInfo, TrackProducer};
use moqt::reconnect::{ClientState, PersistentClient, ReconnectSettings, Target};

/// The load to generate.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Publishers, one broadcast and track each.
    pub publishers: usize,
    /// Subscribers per publisher, each on its own session.
    pub subscribers: usize,
    /// Bytes per frame (at least 8: the publish time travels in the first 8).
    pub frame_size: usize,
    /// Frames per second per publisher.
    pub fps: u32,
    /// Frames per group.
    pub group_frames: u64,
    /// How long to publish.
    pub duration: Duration,
    /// The relay's process ID, for its CPU time and memory.
    pub relay_pid: Option<u32>,
    /// Broadcasts are `PREFIX/N`: two runs against one relay at once use different prefixes.
    pub prefix: String,
    /// Subscriber sessions set up at once.
    pub connect_concurrency: usize,
    /// Sessions sharing one client UDP socket (1: a socket each, as separate viewers have).
    pub sessions_per_socket: usize,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    /// Frames published in all.
    pub frames_sent: u64,
    /// Frames received by all subscribers together.
    pub frames_delivered: u64,
    /// Frames a subscriber should have had but did not get (sent × subscribers − delivered).
    pub frames_lost: u64,
    /// Groups reported lost to subscribers (gap events).
    pub groups_lost: u64,
    /// Payload bytes delivered.
    pub bytes_delivered: u64,
    /// Delivered payload rate, Gbit/s.
    pub gbit_per_sec: f64,
    /// End-to-end latency percentiles and maximum, milliseconds.
    pub latency_p50_ms: f64,
    /// 99th percentile.
    pub latency_p99_ms: f64,
    /// Maximum.
    pub latency_max_ms: f64,
    /// Relay CPU seconds (user + system) per delivered GB, if a PID was given.
    pub relay_cpu_sec_per_gb: Option<f64>,
    /// Relay peak resident memory (VmHWM), KiB, if a PID was given.
    pub relay_peak_rss_kib: Option<u64>,
    /// Frames lost from groups that no gap report covered and that did not end in an error,
    /// summed over subscribers: loss a subscriber was never told about (0 is the requirement).
    pub frames_lost_unreported: u64,
    /// Seconds from the first subscriber session's start until every subscription reached its
    /// publisher.
    pub connect_sec: f64,
    /// The relay's CPU use while publishing, percent of one core, if a PID was given.
    pub relay_cpu_percent: Option<f64>,
    /// This load generator's own CPU use while publishing, percent of one core: near the number
    /// of cores it may use, the generator and not the relay is the limit.
    pub bench_cpu_percent: f64,
    /// The relay's resident memory (KiB) as subscriber sessions came up: (sessions, KiB).
    pub relay_rss_by_sessions: Vec<(usize, u64)>,
}

impl BenchReport {
    /// One JSON object (flat numbers; null where unknown).
    pub fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let head = format!(
            concat!(
                "{{\"frames_sent\":{},\"frames_delivered\":{},\"frames_lost\":{},\"groups_lost\":{},",
                "\"bytes_delivered\":{},\"gbit_per_sec\":{:.4},\"latency_p50_ms\":{:.3},\"latency_p99_ms\":{:.3},",
                "\"latency_max_ms\":{:.3},\"relay_cpu_sec_per_gb\":{},\"relay_peak_rss_kib\":{}}}"
            ),
            self.frames_sent,
            self.frames_delivered,
            self.frames_lost,
            self.groups_lost,
            self.bytes_delivered,
            self.gbit_per_sec,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms,
            opt(self.relay_cpu_sec_per_gb),
            self.relay_peak_rss_kib.map_or("null".to_string(), |v| v.to_string()),
        );
        let samples: Vec<String> = self.relay_rss_by_sessions.iter().map(|(n, kib)| format!("[{n},{kib}]")).collect();
        format!(
            concat!(
                "{},\"frames_lost_unreported\":{},\"connect_sec\":{:.3},\"relay_cpu_percent\":{},",
                "\"bench_cpu_percent\":{:.1},\"relay_rss_by_sessions\":[{}]}}"
            ),
            head.trim_end_matches('}'),
            self.frames_lost_unreported,
            self.connect_sec,
            opt(self.relay_cpu_percent),
            self.bench_cpu_percent,
            samples.join(","),
        )
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("frames sent        {}\n", self.frames_sent));
        out.push_str(&format!("frames delivered   {}\n", self.frames_delivered));
        out.push_str(&format!("frames lost        {}\n", self.frames_lost));
        out.push_str(&format!("groups lost        {}\n", self.groups_lost));
        out.push_str(&format!("throughput         {:.4} Gbit/s\n", self.gbit_per_sec));
        out.push_str(&format!(
            "latency            p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            self.latency_p50_ms, self.latency_p99_ms, self.latency_max_ms
        ));
        if let Some(cpu) = self.relay_cpu_sec_per_gb {
            out.push_str(&format!("relay CPU          {cpu:.3} s per delivered GB\n"));
        }
        if let Some(rss) = self.relay_peak_rss_kib {
            out.push_str(&format!("relay peak RSS     {rss} KiB\n"));
        }
        out.push_str(&format!("unreported loss    {} frames\n", self.frames_lost_unreported));
        out.push_str(&format!("connect            {:.2} s\n", self.connect_sec));
        if let Some(cpu) = self.relay_cpu_percent {
            out.push_str(&format!("relay CPU use      {cpu:.0} % of a core\n"));
        }
        out.push_str(&format!("bench CPU use      {:.0} % of a core\n", self.bench_cpu_percent));
        out
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// CPU ticks (user + system) of a process, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident memory (VmHWM, KiB) of a process, from /proc/PID/status.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident memory now (VmRSS, KiB).
fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU ticks (user + system) of this process.
fn own_cpu_ticks() -> u64 {
    cpu_ticks(std::process::id()).unwrap_or(0)
}

/// Waits until `client` has a session (at most 10 s).
pub(crate) async fn connected(client: &mut PersistentClient) -> Result<()> {
    let wait = async {
        loop {
            match client.state() {
                ClientState::Connected { .. } => return Ok(()),
                ClientState::GaveUp { reason } => return Err(anyhow::Error::msg(reason)),
                _ => {}
            }
            client.next_state().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.map_err(|_| anyhow!("connect timed out"))?
}

#[derive(Default)]
struct SubscriberTally {
    frames: u64,
    bytes: u64,
    groups_lost: u64,
    latencies_us: Vec<u64>,
    /// Frames received per group sequence.
    group_frames: std::collections::HashMap<u64, u64>,
    /// Gap reports: (first, last) group, and groups that ended in an error after some of their
    /// frames (reset by the relay: the subscriber sees the error, so it knows).
    gaps: Vec<(u64, u64)>,
}

impl SubscriberTally {
    /// Frames of groups `0..groups` (each `per_group` frames, the last `last_group` frames) that
    /// neither arrived nor were covered by a gap report.
    fn unreported_loss(&self, groups: u64, per_group: u64, last_group: u64) -> u64 {
        (0..groups)
            .filter(|g| !self.gaps.iter().any(|(first, last)| (first..=last).contains(&g)))
            .map(|g| {
                let wanted = if g + 1 == groups { last_group } else { per_group };
                wanted.saturating_sub(self.group_frames.get(&g).copied().unwrap_or(0))
            })
            .sum()
    }
}

/// What keeps a bench publisher's broadcast up: dropping it withdraws the broadcast and ends its
/// session.
pub(crate) struct Publication {
    _published: Published,
    _broadcast: BroadcastProducer,
    _origin: OriginProducer,
    _session: PersistentClient,
}

/// Publishes a broadcast at `path` with one track, "video" (2 s max age, microsecond timestamps),
/// on a session of its own over `client`, once that session is up.
pub(crate) async fn publish(client: Client, target: Target, path: Path) -> Result<(TrackProducer, Publication)> {
    let origin = OriginProducer::default();
    let broadcast = BroadcastProducer::default();
    let info = TrackInfo { priority: 1, max_age: Duration::from_secs(2), timescale: 1_000_000 };
    let track = broadcast.create_track("video", info)?;
    let published = origin.publish(path, broadcast.consume(), Route::local())?;
    let mut session =
        PersistentClient::start(client, target, Some(origin.consume()), None, ReconnectSettings::default());
    connected(&mut session).await?;
    Ok((track, Publication { _published: published, _broadcast: broadcast, _origin: origin, _session: session }))
}

/// One subscriber: its own session (over `client`), subscribed to `PREFIX/publisher`, tallying
/// what arrives until the track ends.
async fn subscribe(
    client: Client,
    target: Target,
    path: Path,
    arrived: Arc<AtomicU64>,
) -> Result<tokio::task::JoinHandle<SubscriberTally>> {
    let remote = OriginProducer::default();
    let mut client = PersistentClient::start(client, target, None, Some(remote.clone()), ReconnectSettings::default());
    connected(&mut client).await?;
    let broadcast = tokio::time::timeout(Duration::from_secs(30), remote.consume().announced(&path))
        .await
        .ok()
        .flatten()
        .with_context(|| format!("{path} was never announced"))?;
    let mut track = broadcast.subscribe_track("video").await?;
    Ok(tokio::spawn(async move {
        let _client = client;
        let mut tally = SubscriberTally::default();
        while let Ok(Some(event)) = track.next_group().await {
            match event {
                TrackEvent::Group(mut group) => {
                    let sequence = group.sequence();
                    loop {
                        match group.next_frame().await {
                            Ok(Some(frame)) => {
                                tally.frames += 1;
                                *tally.group_frames.entry(sequence).or_default() += 1;
                                tally.bytes += frame.payload.len() as u64;
                                if let Some(sent) = frame.payload.get(..8) {
                                    let sent = u64::from_be_bytes(sent.try_into().unwrap_or_default());
                                    tally.latencies_us.push(now_us().saturating_sub(sent));
                                }
                                arrived.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(None) => break,
                            Err(_) => {
                                tally.gaps.push((sequence, sequence));
                                break;
                            }
                        }
                    }
                }
                TrackEvent::Gap(gap) => {
                    tally.groups_lost += gap.end - gap.start + 1;
                    tally.gaps.push((gap.start, gap.end));
                }
            }
        }
        tally
    }))
}

/// Runs the load. `make_client` builds one client endpoint (trust and versions are the caller's
/// choice); each serves `sessions_per_socket` sessions.
pub async fn run(target: Target, config: BenchConfig, make_client: impl Fn() -> Result<Client>) -> Result<BenchReport> {
    let frame_size = config.frame_size.max(8);
    let cpu_before = config.relay_pid.and_then(cpu_ticks);
    let per_socket = config.sessions_per_socket.max(1);
    let mut sockets = 0usize;
    let mut next_client = {
        let mut current: Option<Client> = None;
        move || -> Result<Client> {
            if sockets % per_socket == 0 || current.is_none() {
                current = Some(make_client()?);
            }
            sockets += 1;
            Ok(current.clone().expect("set above"))
        }
    };
    let mut publications = Vec::new();
    let mut producers = Vec::new();
    for p in 0..config.publishers {
        let path = Path::new(&format!("{}/{p}", config.prefix))?;
        let (track, publication) = publish(next_client()?, target.clone(), path).await?;
        producers.push(track);
        publications.push(publication);
    }
    // Subscribers: each on its own session, set up `connect_concurrency` at a time, reading
    // until the publishers stop.
    let connect_started = Instant::now();
    let total = config.publishers * config.subscribers;
    let sample_every = (total / 20).max(1);
    let mut rss_samples: Vec<(usize, u64)> =
        config.relay_pid.and_then(rss_kib).map(|kib| (0, kib)).into_iter().collect();
    let mut setting_up = JoinSet::new();
    // Frames received by every subscriber together, to see when delivery has drained.
    let arrived = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut started = 0usize;
    while readers.len() < total {
        while started < total && setting_up.len() < config.connect_concurrency.max(1) {
            let path = Path::new(&format!("{}/{}", config.prefix, started / config.subscribers.max(1)))?;
            setting_up.spawn(subscribe(next_client()?, target.clone(), path, arrived.clone()));
            started += 1;
        }
        let reader = setting_up.join_next().await.context("no subscriber in progress")???;
        readers.push(reader);
        if readers.len() % sample_every == 0
            && let Some(kib) = config.relay_pid.and_then(rss_kib)
        {
            rss_samples.push((readers.len(), kib));
        }
    }
    // Wait until every subscription reached its publisher.
    for track in &producers {
        tokio::time::timeout(Duration::from_secs(30), track.used())
            .await
            .map_err(|_| anyhow!("a subscription never reached its publisher"))?;
    }
    let connect_sec = connect_started.elapsed().as_secs_f64();
    // Publish.
    let relay_cpu_at_start = config.relay_pid.and_then(cpu_ticks);
    let own_cpu_at_start = own_cpu_ticks();
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.fps.max(1)));
    let mut ticker = tokio::time::interval(interval);
    let mut groups: Vec<Option<model::GroupProducer>> = producers.iter().map(|_| None).collect();
    let mut sent = 0u64;
    let mut index = 0u64;
    while started.elapsed() < config.duration {
        ticker.tick().await;
        for (track, group) in producers.iter_mut().zip(groups.iter_mut()) {
            if index % config.group_frames.max(1) == 0 {
                if let Some(done) = group.take() {
                    let _ = done.finish();
                }
                *group = Some(track.append_group()?);
            }
            let timestamp = now_us();
            let mut payload = BytesMut::with_capacity(frame_size);
            payload.put_u64(timestamp);
            payload.resize(frame_size, 0);
            if let Some(group) = group.as_mut() {
                group.write(timestamp, Bytes::from(payload))?;
            }
            sent += 1;
        }
        index += 1;
    }
    let elapsed = started.elapsed();
    let busy = |before: Option<u64>, after: Option<u64>| {
        before.zip(after).map(|(b, a)| a.saturating_sub(b) as f64 / 100.0 / elapsed.as_secs_f64() * 100.0)
    };
    let relay_cpu_percent = busy(relay_cpu_at_start, config.relay_pid.and_then(cpu_ticks));
    let bench_cpu_percent = busy(Some(own_cpu_at_start), Some(own_cpu_ticks())).unwrap_or(0.0);
    for group in groups.into_iter().flatten() {
        let _ = group.finish();
    }
    // Let the last frames arrive (until none has for a second, at most 20 s: an overloaded
    // relay may be far behind), then end the tracks so readers finish.
    let mut last = arrived.load(Ordering::Relaxed);
    let mut quiet = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = arrived.load(Ordering::Relaxed);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
        if quiet >= 10 {
            break;
        }
    }
    for track in producers {
        track.finish();
    }
    let mut tallies = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for reader in &mut readers {
        if let Ok(Ok(tally)) = tokio::time::timeout_at(deadline, reader).await {
            tallies.push(tally);
        }
    }
    for reader in &readers {
        reader.abort();
    }
    drop(publications);

    let mut latencies: Vec<u64> = tallies.iter().flat_map(|t| t.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i.min(latencies.len() - 1)] as f64 / 1000.0
    };
    let delivered: u64 = tallies.iter().map(|t| t.frames).sum();
    let bytes: u64 = tallies.iter().map(|t| t.bytes).sum();
    let per_publisher = sent / config.publishers.max(1) as u64;
    let expected = per_publisher * total as u64;
    // Frames per group as published: every group full but the last.
    let per_group = config.group_frames.max(1);
    let groups_sent = per_publisher.div_ceil(per_group);
    let last_group = per_publisher - per_group * groups_sent.saturating_sub(1);
    // A subscriber that never reported back lost everything, unreported.
    let silent = (total - tallies.len()) as u64 * per_publisher;
    let cpu = match (config.relay_pid, cpu_before) {
        (Some(pid), Some(before)) => cpu_ticks(pid).map(|after| after.saturating_sub(before) as f64 / 100.0),
        _ => None,
    };
    Ok(BenchReport {
        frames_sent: sent,
        frames_delivered: delivered,
        frames_lost: expected.saturating_sub(delivered),
        groups_lost: tallies.iter().map(|t| t.groups_lost).sum(),
        bytes_delivered: bytes,
        gbit_per_sec: bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9,
        latency_p50_ms: pick(0.5),
        latency_p99_ms: pick(0.99),
        latency_max_ms: latencies.last().map_or(0.0, |v| *v as f64 / 1000.0),
        relay_cpu_sec_per_gb: cpu.filter(|_| bytes > 0).map(|cpu| cpu / (bytes as f64 / 1e9)),
        relay_peak_rss_kib: config.relay_pid.and_then(peak_rss_kib),
        frames_lost_unreported: silent
            + tallies.iter().map(|t| t.unreported_loss(groups_sent, per_group, last_group)).sum::<u64>(),
        connect_sec,
        relay_cpu_percent,
        bench_cpu_percent,
        relay_rss_by_sessions: rss_samples,
    })
}
