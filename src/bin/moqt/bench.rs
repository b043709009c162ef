//! A load generator for relays (`moqt bench`): publishers and subscribers against any relay URL,
//! reporting delivered frames and throughput, end-to-end latency percentiles (the publish time
//! travels in each frame), frames and groups lost, and — given the relay's process ID — its CPU
//! seconds per delivered GB and peak memory, read from /proc.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::task::JoinSet;

use moqt::Path;
use moqt::endpoint::Client;
use moqt::model::{self, BroadcastProducer, OriginProducer, Route, TrackEvent, TrackInfo};
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
}

impl BenchReport {
    /// One JSON object (flat numbers; null where unknown).
    pub fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        format!(
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn connected(client: &mut PersistentClient) -> Result<()> {
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
}

/// Runs the load. `make_client` builds one client endpoint per session (trust and versions are
/// the caller's choice).
pub async fn run(target: Target, config: BenchConfig, make_client: impl Fn() -> Result<Client>) -> Result<BenchReport> {
    let frame_size = config.frame_size.max(8);
    let cpu_before = config.relay_pid.and_then(cpu_ticks);
    let mut sessions = Vec::new();
    let mut producers = Vec::new();
    for p in 0..config.publishers {
        let origin = OriginProducer::default();
        let broadcast = BroadcastProducer::default();
        let info = TrackInfo { priority: 1, max_age: Duration::from_secs(2), timescale: 1_000_000 };
        let track = broadcast.create_track("video", info)?;
        let path = Path::new(&format!("bench/{p}"))?;
        let published = origin.publish(path, broadcast.consume(), Route::local())?;
        let mut client = PersistentClient::start(
            make_client()?,
            target.clone(),
            Some(origin.consume()),
            None,
            ReconnectSettings::default(),
        );
        connected(&mut client).await?;
        sessions.push(client);
        // The origin stays alive with its routes: dropping its last producer withdraws them.
        producers.push((track, published, broadcast, origin));
    }
    // Subscribers: each on its own session, reading until the publishers stop.
    let mut readers = JoinSet::new();
    for p in 0..config.publishers {
        for _ in 0..config.subscribers {
            let remote = OriginProducer::default();
            let mut client = PersistentClient::start(
                make_client()?,
                target.clone(),
                None,
                Some(remote.clone()),
                ReconnectSettings::default(),
            );
            connected(&mut client).await?;
            let wanted = Path::new(&format!("bench/{p}"))?;
            let broadcast = tokio::time::timeout(Duration::from_secs(10), remote.consume().announced(&wanted))
                .await
                .ok()
                .flatten()
                .with_context(|| format!("bench/{p} was never announced"))?;
            let mut track = broadcast.subscribe_track("video").await?;
            readers.spawn(async move {
                let _client = client;
                let mut tally = SubscriberTally::default();
                while let Ok(Some(event)) = track.next_group().await {
                    match event {
                        TrackEvent::Group(mut group) => {
                            while let Ok(Some(frame)) = group.next_frame().await {
                                tally.frames += 1;
                                tally.bytes += frame.payload.len() as u64;
                                if let Some(sent) = frame.payload.get(..8) {
                                    let sent = u64::from_be_bytes(sent.try_into().unwrap_or_default());
                                    tally.latencies_us.push(now_us().saturating_sub(sent));
                                }
                            }
                        }
                        TrackEvent::Gap(gap) => tally.groups_lost += gap.end - gap.start + 1,
                    }
                }
                tally
            });
        }
    }
    // Wait until every subscription reached its publisher.
    for (track, ..) in &producers {
        tokio::time::timeout(Duration::from_secs(10), track.used())
            .await
            .map_err(|_| anyhow!("a subscription never reached its publisher"))?;
    }
    // Publish.
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.fps.max(1)));
    let mut ticker = tokio::time::interval(interval);
    let mut groups: Vec<Option<model::GroupProducer>> = producers.iter().map(|_| None).collect();
    let mut sent = 0u64;
    let mut index = 0u64;
    while started.elapsed() < config.duration {
        ticker.tick().await;
        for ((track, ..), group) in producers.iter_mut().zip(groups.iter_mut()) {
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
    for group in groups.into_iter().flatten() {
        let _ = group.finish();
    }
    // Let the last frames arrive, then end the tracks so readers finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (track, ..) in producers {
        track.finish();
    }
    let mut tallies = Vec::new();
    while let Ok(Some(result)) = tokio::time::timeout(Duration::from_secs(10), readers.join_next()).await {
        if let Ok(tally) = result {
            tallies.push(tally);
        }
    }
    readers.abort_all();
    drop(sessions);

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
    let expected = sent / config.publishers.max(1) as u64 * (config.publishers * config.subscribers) as u64;
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
    })
}
