//! Join time (`moqt bench --joins N`): how long a new viewer waits for its first frame of a live
//! track. One publisher sends a live track; then, one after another, N subscribers each start a
//! fresh session, wait for the broadcast's announcement, subscribe, and stop at their first frame.
//! Each join is timed from the session's start (its first packet) with the moment of each step,
//! so a slow join shows which round trip it spent.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::{BufMut, Bytes, BytesMut};

use moqt::Path;
use moqt::endpoint::Client;
use moqt::model::{GroupStart, OriginProducer, SubscribeOptions, TrackEvent};
use moqt::reconnect::{PersistentClient, ReconnectSettings, Target};

use crate::bench::{connected, publish};

/// What to measure.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// How many joins.
    pub joins: usize,
    /// The live track: bytes per frame, frames per second, frames per group.
    pub frame_size: usize,
    pub fps: u32,
    pub group_frames: u64,
    /// Every join reuses one client endpoint, so TLS resumes the previous session (no
    /// certificate verification and signature); otherwise each join is a new client, as a new
    /// viewer is.
    pub resume: bool,
    /// The broadcast is `PREFIX/join`.
    pub prefix: String,
}

/// Milliseconds from the start of one join to each of its steps.
#[derive(Debug, Clone, Copy, Default)]
struct Join {
    connected: f64,
    announced: f64,
    first_frame: f64,
    /// Groups that failed (reset, or reported as a gap) before the first frame arrived.
    failed_groups: u32,
}

/// Percentiles over the joins, milliseconds, and every join's total.
#[derive(Debug, Clone, Default)]
pub struct JoinReport {
    joins: Vec<Join>,
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(((values.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(0.0)
}

impl JoinReport {
    fn column(&self, pick: impl Fn(&Join) -> f64) -> Vec<f64> {
        self.joins.iter().map(pick).collect()
    }

    /// One JSON object: p50/p99 of the total and of each step, and every total.
    pub fn json(&self) -> String {
        let mut fields = vec![format!("\"joins\":{}", self.joins.len())];
        for (name, mut values) in [
            ("connected", self.column(|j| j.connected)),
            ("announced", self.column(|j| j.announced)),
            ("first_frame", self.column(|j| j.first_frame)),
        ] {
            fields.push(format!("\"{name}_p50_ms\":{:.3}", percentile(&mut values, 0.5)));
            fields.push(format!("\"{name}_p99_ms\":{:.3}", percentile(&mut values, 0.99)));
        }
        let failed: u32 = self.joins.iter().map(|j| j.failed_groups).sum();
        fields.push(format!("\"failed_groups\":{failed}"));
        let totals: Vec<String> = self.joins.iter().map(|j| format!("{:.3}", j.first_frame)).collect();
        fields.push(format!("\"join_ms\":[{}]", totals.join(",")));
        format!("{{{}}}", fields.join(","))
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!("joins              {}\n", self.joins.len());
        for (name, mut values) in [
            ("session up", self.column(|j| j.connected)),
            ("announced", self.column(|j| j.announced)),
            ("first frame", self.column(|j| j.first_frame)),
        ] {
            out.push_str(&format!(
                "{name:<18} p50 {:.2} ms, p99 {:.2} ms\n",
                percentile(&mut values, 0.5),
                percentile(&mut values, 0.99)
            ));
        }
        let failed: u32 = self.joins.iter().map(|j| j.failed_groups).sum();
        out.push_str(&format!("groups failed      {failed} (reset or skipped before a join's first frame)\n"));
        out
    }
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// One join: a session from `client`, timed to its first frame of `path`'s track.
async fn join(client: Client, target: Target, path: &Path) -> Result<Join> {
    let started = Instant::now();
    let remote = OriginProducer::default();
    let mut session = PersistentClient::start(client, target, None, Some(remote.clone()), ReconnectSettings::default());
    connected(&mut session).await?;
    let connected = millis(started);
    let broadcast = remote.consume().announced(path).await.with_context(|| format!("{path} was never announced"))?;
    let announced = millis(started);
    // A viewer joins at the live edge: the group in progress, from its first frame.
    let live_edge = SubscribeOptions { start: GroupStart::Latest, ..Default::default() };
    let mut track = broadcast.subscribe_track_with("video", live_edge).await?;
    let mut failed_groups = 0;
    loop {
        match track.next_group().await? {
            Some(TrackEvent::Group(mut group)) => match group.next_frame().await {
                Ok(Some(_)) => {
                    return Ok(Join { connected, announced, first_frame: millis(started), failed_groups });
                }
                // A group reset before its first frame: the join waits for the next one, and
                // the report counts it.
                Ok(None) | Err(_) => failed_groups += 1,
            },
            Some(TrackEvent::Gap(_)) => failed_groups += 1,
            None => return Err(anyhow!("the track ended before a frame arrived")),
        }
    }
}

/// Runs the joins against a live track this function publishes.
pub async fn run(target: Target, config: JoinConfig, make_client: impl Fn() -> Result<Client>) -> Result<JoinReport> {
    let path = Path::new(&format!("{}/join", config.prefix))?;
    let (mut track, publication) = publish(make_client()?, target.clone(), path.clone()).await?;
    let frame_size = config.frame_size.max(8);
    let group_frames = config.group_frames.max(1);
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.fps.max(1)));
    let live = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        let mut group = None;
        for index in 0u64.. {
            ticker.tick().await;
            if index % group_frames == 0 {
                if let Some(done) = group.take() {
                    let _ = moqt::model::GroupProducer::finish(done);
                }
                group = Some(track.append_group()?);
            }
            let mut payload = BytesMut::with_capacity(frame_size);
            payload.put_u64(index);
            payload.resize(frame_size, 0);
            if let Some(group) = group.as_mut() {
                group.write(index, Bytes::from(payload))?;
            }
        }
        anyhow::Ok(())
    });
    let shared = if config.resume { Some(make_client()?) } else { None };
    let mut report = JoinReport::default();
    for _ in 0..config.joins {
        let client = match &shared {
            Some(client) => client.clone(),
            None => make_client()?,
        };
        let one = tokio::time::timeout(Duration::from_secs(30), join(client, target.clone(), &path))
            .await
            .map_err(|_| anyhow!("a join took more than 30 s"))??;
        report.joins.push(one);
    }
    live.abort();
    drop(publication);
    Ok(report)
}
