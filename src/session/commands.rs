//! Requests the application makes of a running session that are not expressed through the model:
//! FETCH of one past group, TRACK for a track's TRACK_INFO, a PROBE target, and GOAWAY. Each runs
//! as its own task.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{oneshot, watch};

use super::priority::{CONTROL_PRIORITY, group_priority};
use super::stream::{Reader, Writer};
use super::{Context, SessionError};
use crate::coding::Path;
use crate::coding::{SessionCode, StreamCode};
use crate::model::{self, GroupConsumer, GroupProducer};
use crate::transport::Connection;
use crate::wire::{BidiStream, Fetch, FrameTimestamps, Goaway, Message, Probe, TrackInfo, TrackRequest, Version};

/// What the peer reports on the Probe stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// The peer's estimated send bitrate in bit/s (0 = unknown).
    pub bitrate: u64,
    /// The peer's smoothed RTT in ms (0 = unknown, and always on lite-03).
    pub rtt_ms: u64,
}

/// One past group to read with FETCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The broadcast, relative to the session root.
    pub broadcast: Path,
    /// The track.
    pub track: String,
    /// The group sequence.
    pub group: u64,
    /// First frame (lite-06; 0 elsewhere).
    pub frame_start: u64,
    /// Last frame, inclusive (lite-06); `None` = to the end of the group.
    pub frame_end: Option<u64>,
    /// Subscriber priority of the transfer.
    pub priority: u8,
}

pub(crate) enum Command {
    Fetch(FetchRequest, oneshot::Sender<Result<GroupConsumer, SessionError>>),
    TrackInfo(Path, String, oneshot::Sender<Result<model::TrackInfo, SessionError>>),
    Probe(u64),
    Goaway(String),
}

/// Opens a Fetch stream and returns the group as it arrives. A reset by the publisher aborts the
/// group with its code; the range is never silently truncated.
pub(crate) async fn fetch<C: Connection>(
    ctx: Arc<Context<C>>,
    request: FetchRequest,
) -> Result<GroupConsumer, SessionError> {
    let version = ctx.version;
    if version < Version::Lite05 {
        return Err(SessionError::Unsupported("FETCH needs moq-lite-05 or later"));
    }
    let (send, recv) = ctx.conn.open_bi().await?;
    let mut writer = Writer::new(send, version);
    writer.set_priority(group_priority(request.priority, 0, request.group));
    let mut out = BytesMut::new();
    BidiStream::Fetch.encode(&mut out, version)?;
    let fetch = Fetch {
        broadcast: request.broadcast,
        track: request.track,
        priority: request.priority,
        group: request.group,
        frame_start: request.frame_start,
        frame_end: request.frame_end,
    };
    fetch.encode(&mut out, version)?;
    writer.write(out.freeze()).await?;
    let mut group = GroupProducer::new(fetch.group, fetch.frame_start, model::GroupSettings::default());
    let consumer = group.consume();
    let mut reader = Reader::new(recv, version, super::stream::GROUP_STREAM_BUFFER);
    tokio::spawn(async move {
        let mut timestamps = FrameTimestamps::new();
        loop {
            match reader.read_frame(&mut timestamps).await {
                Ok(Some(frame)) => {
                    if group.write(frame.timestamp, frame.payload).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    // Our half ends after the reply: the reference reads an early FIN as a cancel.
                    writer.finish();
                    let _ = group.finish();
                    return;
                }
                Err(err) => return group.abort(model::Error::Aborted(err.stream_code())),
            }
        }
    });
    Ok(consumer)
}

/// Keeps a Probe stream open: sends targets as the application sets them and publishes the peer's
/// reports.
pub(crate) async fn probe<C: Connection>(
    ctx: Arc<Context<C>>,
    mut targets: watch::Receiver<u64>,
    reports: watch::Sender<Option<ProbeReport>>,
) -> Result<(), SessionError> {
    let version = ctx.version;
    let (send, recv) = ctx.conn.open_bi().await?;
    let mut writer = Writer::new(send, version);
    writer.set_priority(CONTROL_PRIORITY);
    let mut out = BytesMut::new();
    BidiStream::Probe.encode(&mut out, version)?;
    Probe { bitrate: *targets.borrow_and_update(), rtt: 0 }.encode(&mut out, version)?;
    writer.write(out.freeze()).await?;
    let mut reader = Reader::new(recv, version, ctx.config.max_message_size);
    loop {
        tokio::select! {
            report = reader.decode::<Probe>() => match report? {
                Some(report) => {
                    reports.send_replace(Some(ProbeReport { bitrate: report.bitrate, rtt_ms: report.rtt }));
                }
                None => return Ok(()),
            },
            changed = targets.changed() => {
                if changed.is_err() {
                    writer.finish();
                    return Ok(());
                }
                let target = *targets.borrow_and_update();
                writer.send(&Probe { bitrate: target, rtt: 0 }).await?;
            }
        }
    }
}

/// Sends GOAWAY, then gives the peer the drain timeout to leave before closing the session with
/// GOAWAY_TIMEOUT.
pub(crate) async fn goaway<C: Connection>(ctx: Arc<Context<C>>, uri: String) -> Result<(), SessionError> {
    let version = ctx.version;
    let (send, recv) = ctx.conn.open_bi().await?;
    let mut writer = Writer::new(send, version);
    writer.set_priority(CONTROL_PRIORITY);
    let mut out = BytesMut::new();
    BidiStream::Goaway.encode(&mut out, version)?;
    Goaway { uri }.encode(&mut out, version)?;
    writer.write(out.freeze()).await?;
    let mut reader = Reader::new(recv, version, ctx.config.max_message_size);
    let drained = async {
        // The peer may answer on the stream (its own empty GOAWAY) or just leave.
        while let Ok(Some(_)) = reader.decode::<Goaway>().await {}
        ctx.conn.closed().await
    };
    if tokio::time::timeout(ctx.config.drain_timeout, drained).await.is_err() {
        tracing::debug!("peer did not leave within the drain timeout");
        ctx.conn.close(SessionCode::GoawayTimeout.to_u64(), "GOAWAY drain timeout");
    }
    writer.finish();
    Ok(())
}

/// Asks the peer for a track's TRACK_INFO (priority, max age, timescale) on a Track stream
/// (lite-05+; earlier versions have none, and the reference's defaults stand in).
pub(crate) async fn track_info<C: Connection>(
    ctx: &Context<C>,
    broadcast: &Path,
    track: &str,
) -> Result<model::TrackInfo, SessionError> {
    if !ctx.version.has_track_info() {
        // lite-03/04 have no TRACK stream: the reference's defaults stand in.
        return Ok(model::TrackInfo::default());
    }
    let (send, recv) = ctx.conn.open_bi().await?;
    let mut writer = Writer::new(send, ctx.version);
    writer.set_priority(CONTROL_PRIORITY);
    let mut out = BytesMut::new();
    BidiStream::Track.encode(&mut out, ctx.version)?;
    TrackRequest { broadcast: broadcast.clone(), track: track.to_string() }.encode(&mut out, ctx.version)?;
    writer.write(out.freeze()).await?;
    let mut reader = Reader::new(recv, ctx.version, ctx.config.max_message_size);
    let reply = match tokio::time::timeout(ctx.config.control_timeout, reader.decode::<TrackInfo>()).await {
        Ok(reply) => reply?,
        Err(_) => {
            writer.reset(StreamCode::ControlTimeout);
            return Err(SessionError::Timeout("TRACK_INFO"));
        }
    };
    // Our half ends only after the answer: the reference reads an early FIN as a cancel.
    writer.finish();
    let info = reply.ok_or_else(|| SessionError::ProtocolViolation("Track stream ended without TRACK_INFO".into()))?;
    Ok(model::TrackInfo {
        priority: info.priority,
        max_age: Duration::from_millis(info.max_age),
        timescale: info.timescale,
    })
}
