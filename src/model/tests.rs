//! Behaviour tests for the model, on tokio's paused clock.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::{advance, timeout};

use super::*;
use crate::coding::Path;
use crate::coding::StreamCode;

const WAIT: Duration = Duration::from_secs(30);

fn path(text: &str) -> Path {
    Path::new(text).unwrap()
}

fn info_ms(max_age_ms: u64) -> TrackInfo {
    TrackInfo { max_age: Duration::from_millis(max_age_ms), ..TrackInfo::default() }
}

fn track_with(max_age_ms: u64, settings: CacheSettings) -> TrackProducer {
    TrackProducer::with_settings("t", info_ms(max_age_ms), settings).unwrap()
}

/// Appends a finished group holding one frame.
fn one_frame(track: &mut TrackProducer, timestamp: u64, payload: &'static [u8]) -> u64 {
    let mut group = track.append_group().unwrap();
    group.write(timestamp, Bytes::from_static(payload)).unwrap();
    let seq = group.sequence();
    group.finish().unwrap();
    seq
}

async fn next(consumer: &mut TrackConsumer) -> TrackEvent {
    timeout(WAIT, consumer.next_group()).await.expect("no event").expect("track error").expect("track ended")
}

async fn next_group_seq(consumer: &mut TrackConsumer) -> u64 {
    match next(consumer).await {
        TrackEvent::Group(group) => group.sequence(),
        TrackEvent::Gap(gap) => panic!("expected a group, got {gap:?}"),
    }
}

async fn next_gap(consumer: &mut TrackConsumer) -> Gap {
    match next(consumer).await {
        TrackEvent::Gap(gap) => gap,
        TrackEvent::Group(group) => panic!("expected a gap, got group {}", group.sequence()),
    }
}

fn gap(start: u64, end: u64, reason: GapReason) -> Gap {
    Gap { start, end, reason }
}

async fn announce(consumer: &mut OriginConsumer) -> Announcement {
    timeout(WAIT, consumer.next_announcement()).await.expect("no announcement").expect("origin closed")
}

// ---------- groups ----------

#[tokio::test(start_paused = true)]
async fn group_consumers_share_frames_without_copying() {
    let mut group = GroupProducer::new(3, 0, GroupSettings::default());
    let mut a = group.consume();
    let payload = Bytes::from(vec![7u8; 100]);
    group.write(10, payload.clone()).unwrap();
    let mut b = group.consume();
    group.write(20, Bytes::from_static(b"x")).unwrap();
    group.finish().unwrap();

    for consumer in [&mut a, &mut b] {
        let first = consumer.next_frame().await.unwrap().unwrap();
        assert_eq!(first.timestamp, 10);
        assert_eq!(first.payload.as_ptr(), payload.as_ptr(), "payload was copied");
        assert_eq!(consumer.next_frame().await.unwrap().unwrap().timestamp, 20);
        assert_eq!(consumer.next_frame().await.unwrap(), None);
    }
}

#[tokio::test(start_paused = true)]
async fn group_consumer_waits_for_frames() {
    let mut group = GroupProducer::new(0, 0, GroupSettings::default());
    let mut consumer = group.consume();
    let reader = tokio::spawn(async move {
        let mut stamps = Vec::new();
        while let Some(frame) = consumer.next_frame().await.unwrap() {
            stamps.push(frame.timestamp);
        }
        stamps
    });
    for ts in 0..3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        group.write(ts, Bytes::new()).unwrap();
    }
    group.finish().unwrap();
    assert_eq!(reader.await.unwrap(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn group_drop_and_abort_reach_consumers() {
    let mut group = GroupProducer::new(0, 0, GroupSettings::default());
    let mut consumer = group.consume();
    group.write(0, Bytes::from_static(b"a")).unwrap();
    let waiter = tokio::spawn(async move {
        consumer.next_frame().await.unwrap();
        consumer.next_frame().await
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(group);
    assert_eq!(timeout(WAIT, waiter).await.unwrap().unwrap(), Err(Error::Dropped));

    let group = GroupProducer::new(1, 0, GroupSettings::default());
    let mut consumer = group.consume();
    group.abort(Error::Aborted(StreamCode::Application(0x99)));
    assert_eq!(consumer.next_frame().await, Err(Error::Aborted(StreamCode::Application(0x99))));
    assert_eq!(Error::Aborted(StreamCode::Application(0x99)).code(), StreamCode::Application(0x99));
}

#[tokio::test(start_paused = true)]
async fn group_frame_and_byte_bounds() {
    let mut group = GroupProducer::new(0, 0, GroupSettings { max_frames: 2, max_bytes: 1000 });
    let mut consumer = group.consume();
    group.write(0, Bytes::new()).unwrap();
    group.write(1, Bytes::new()).unwrap();
    assert_eq!(group.write(2, Bytes::new()), Err(Error::TooManyFrames { limit: 2 }));
    assert_eq!(consumer.next_frame().await, Err(Error::TooManyFrames { limit: 2 }));
    assert_eq!(group.finish(), Err(Error::TooManyFrames { limit: 2 }));

    let mut group = GroupProducer::new(0, 0, GroupSettings { max_frames: 10, max_bytes: 5 });
    group.write(0, Bytes::from_static(b"abc")).unwrap();
    assert_eq!(group.write(1, Bytes::from_static(b"abc")), Err(Error::TooManyBytes { limit: 5 }));
    assert_eq!(Error::TooManyBytes { limit: 5 }.code(), StreamCode::GroupTooLarge);
}

#[tokio::test(start_paused = true)]
async fn default_group_bounds_are_the_wire_bounds() {
    let frames = crate::coding::MAX_GROUP_FRAMES as usize;
    let mut group = GroupProducer::new(0, 0, GroupSettings::default());
    for ts in 0..frames as u64 {
        group.write(ts, Bytes::new()).unwrap();
    }
    assert_eq!(group.write(frames as u64, Bytes::new()), Err(Error::TooManyFrames { limit: frames }));

    let bytes = crate::coding::MAX_GROUP_BYTES as usize;
    let mut group = GroupProducer::new(0, 0, GroupSettings::default());
    group.write(0, Bytes::from(vec![0; bytes])).unwrap();
    assert_eq!(group.write(1, Bytes::from_static(b"x")), Err(Error::TooManyBytes { limit: bytes }));
}

#[tokio::test(start_paused = true)]
async fn group_bound_in_a_track_is_an_aborted_gap() {
    let settings = CacheSettings { group: GroupSettings { max_frames: 1, max_bytes: 100 }, ..Default::default() };
    let mut track = track_with(5000, settings);
    let mut consumer = track.consume();
    let mut group = track.append_group().unwrap();
    group.write(0, Bytes::new()).unwrap();
    assert!(group.write(1, Bytes::new()).is_err());
    one_frame(&mut track, 2, b"ok");
    assert_eq!(next_group_seq(&mut consumer).await, 1);
    assert_eq!(next_gap(&mut consumer).await, gap(0, 0, GapReason::Aborted(Error::TooManyFrames { limit: 1 })));
}

// ---------- tracks: delivery ----------

#[tokio::test(start_paused = true)]
async fn track_consumers_have_own_cursors_and_share_payloads() {
    let mut track = TrackProducer::new("video", TrackInfo::default()).unwrap();
    let mut a = track.consume();
    let mut b = track.consume();
    let payload = Bytes::from(vec![1u8; 64]);
    let mut group = track.append_group().unwrap();
    group.write(0, payload.clone()).unwrap();
    group.finish().unwrap();

    let mut ga = next(&mut a).await.into_group().unwrap();
    let fa = ga.next_frame().await.unwrap().unwrap();
    // `a` reading does not move `b`.
    let mut gb = next(&mut b).await.into_group().unwrap();
    let fb = gb.next_frame().await.unwrap().unwrap();
    assert_eq!(fa.payload.as_ptr(), payload.as_ptr());
    assert_eq!(fb.payload.as_ptr(), payload.as_ptr());
    assert_eq!(ga.next_frame().await.unwrap(), None);
    assert_eq!(gb.next_frame().await.unwrap(), None);
    assert_eq!(a.info().timescale, 1000);
    assert_eq!(a.name(), "video");
}

#[tokio::test(start_paused = true)]
async fn newest_group_first_under_contention() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = track.consume();
    for seq in 0..3 {
        assert_eq!(one_frame(&mut track, seq * 10, b"x"), seq);
    }
    assert_eq!(next_group_seq(&mut consumer).await, 2);
    one_frame(&mut track, 30, b"x");
    assert_eq!(next_group_seq(&mut consumer).await, 3);
    assert_eq!(next_group_seq(&mut consumer).await, 1);
    assert_eq!(next_group_seq(&mut consumer).await, 0);
    track.finish();
    assert!(consumer.next_group().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn skipped_sequences_are_a_gap() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = track.consume();
    track.create_group(7).unwrap().finish().unwrap();
    assert_eq!(next_group_seq(&mut consumer).await, 7);
    track.create_group(10).unwrap().finish().unwrap();
    assert_eq!(next_group_seq(&mut consumer).await, 10);
    // 8 and 9 may still arrive (groups travel on separate streams): no gap yet.
    assert!(consumer.try_next_group().is_none());
    assert_eq!(track.create_group(10).err(), Some(Error::DuplicateGroup(10)));
    // Once the track ends, the missing sequences are final and reported, oldest first.
    track.finish();
    assert_eq!(next_gap(&mut consumer).await, gap(0, 6, GapReason::Skipped));
    assert_eq!(next_gap(&mut consumer).await, gap(8, 9, GapReason::Skipped));
    assert_eq!(consumer.next_sequence(), Some(11));
    assert!(consumer.next_group().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn evicted_by_group_count_is_a_gap() {
    let mut track = track_with(60_000, CacheSettings { max_groups: 2, ..Default::default() });
    let mut consumer = track.consume();
    for seq in 0..4 {
        one_frame(&mut track, seq, b"x");
    }
    assert_eq!(track.cached_groups(), 2);
    assert_eq!(next_group_seq(&mut consumer).await, 3);
    assert_eq!(next_group_seq(&mut consumer).await, 2);
    assert_eq!(next_gap(&mut consumer).await, gap(0, 1, GapReason::Evicted));
}

#[tokio::test(start_paused = true)]
async fn evicted_by_bytes_is_a_gap_and_aborts_readers() {
    let mut track = track_with(60_000, CacheSettings { max_bytes: 10, ..Default::default() });
    let mut early = track.consume();
    let mut late = track.consume();
    let mut g0 = track.append_group().unwrap();
    g0.write(0, Bytes::from_static(b"123456")).unwrap();
    let mut reader = next(&mut early).await.into_group().unwrap();
    one_frame(&mut track, 1, b"abcdef");
    assert_eq!(track.cached_groups(), 1);
    assert_eq!(track.cached_bytes(), 6);
    assert_eq!(reader.next_frame().await, Err(Error::Evicted));
    assert_eq!(g0.write(2, Bytes::new()), Err(Error::Evicted));
    assert_eq!(next_group_seq(&mut late).await, 1);
    assert_eq!(next_gap(&mut late).await, gap(0, 0, GapReason::Evicted));
}

#[tokio::test(start_paused = true)]
async fn aborted_groups_are_gaps_or_errors() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut reader_side = track.consume();
    let mut late = track.consume();
    let mut g0 = track.append_group().unwrap();
    g0.write(0, Bytes::from_static(b"a")).unwrap();
    let mut reader = next(&mut reader_side).await.into_group().unwrap();
    g0.abort(Error::Aborted(StreamCode::Old));
    let g1 = track.append_group().unwrap();
    drop(g1);
    one_frame(&mut track, 5, b"c");
    assert_eq!(reader.next_frame().await, Err(Error::Aborted(StreamCode::Old)));
    assert_eq!(next_group_seq(&mut late).await, 2);
    assert_eq!(next_gap(&mut late).await, gap(0, 0, GapReason::Aborted(Error::Aborted(StreamCode::Old))));
    assert_eq!(next_gap(&mut late).await, gap(1, 1, GapReason::Aborted(Error::Dropped)));
}

/// `GroupConsumer::aborted` resolves when a finished group leaves the cache by expiry (its frames
/// freed), whatever the consumer read, and stays pending for a group that is only finished.
#[tokio::test(start_paused = true)]
async fn a_finished_group_reports_its_expiry_to_whoever_still_sends_it() {
    let mut track = track_with(100, CacheSettings::default());
    let mut reader = track.consume();
    one_frame(&mut track, 0, b"old");
    let old = next(&mut reader).await.into_group().unwrap();
    let expiry = old.aborted();
    one_frame(&mut track, 50, b"newer");
    let still = next(&mut reader).await.into_group().unwrap().aborted();
    assert!(timeout(Duration::from_millis(10), still).await.is_err(), "a finished group is not aborted");
    // Timestamp 200 puts group 0 past the 100 ms max age behind group 1's first frame.
    one_frame(&mut track, 200, b"newest");
    assert_eq!(timeout(WAIT, expiry).await, Ok(Error::Expired));
    assert_eq!(old.status(), Some(Err(Error::Expired)));
}

#[tokio::test(start_paused = true)]
async fn partial_group_shows_frame_start() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = track.consume();
    let mut group = track.create_partial_group(5, 3).unwrap();
    group.write(30, Bytes::from_static(b"f3")).unwrap();
    let mut reader = next(&mut consumer).await.into_group().unwrap();
    assert_eq!(reader.sequence(), 5);
    assert_eq!(reader.frame_start(), 3);
    assert_eq!(reader.next_index(), 3);
    assert_eq!(reader.next_frame().await.unwrap().unwrap().timestamp, 30);
    assert_eq!(reader.next_index(), 4);
}

// ---------- tracks: expiry ----------

#[tokio::test(start_paused = true)]
async fn expiry_by_timestamp_at_the_boundary() {
    // max age 100 ms at timescale 1000 = 100 units.
    let mut track = track_with(100, CacheSettings::default());
    let mut early = track.consume();
    let mut late = track.consume();
    one_frame(&mut track, 0, b"a");
    let mut old = next(&mut early).await.into_group().unwrap();
    let mut g1 = track.append_group().unwrap();
    g1.write(50, Bytes::from_static(b"b")).unwrap(); // reach of group 0 = 50
    g1.write(149, Bytes::new()).unwrap(); // age 99: kept
    assert_eq!(track.cached_groups(), 2);
    g1.write(150, Bytes::new()).unwrap(); // age 100: expired
    assert_eq!(track.cached_groups(), 1);
    assert_eq!(old.next_frame().await, Err(Error::Expired));
    assert_eq!(next_group_seq(&mut late).await, 1);
    assert_eq!(next_gap(&mut late).await, gap(0, 0, GapReason::Expired));
}

#[tokio::test(start_paused = true)]
async fn latest_group_never_expires() {
    let mut track = track_with(0, CacheSettings::default());
    let mut group = track.append_group().unwrap();
    group.write(0, Bytes::new()).unwrap();
    group.write(1_000_000, Bytes::new()).unwrap();
    assert_eq!(track.cached_groups(), 1);
    // Max age 0: a later group's first frame expires every older group.
    let mut next_group = track.append_group().unwrap();
    assert_eq!(track.cached_groups(), 2);
    next_group.write(1_000_001, Bytes::new()).unwrap();
    assert_eq!(track.cached_groups(), 1);
}

#[tokio::test(start_paused = true)]
async fn expiry_by_wall_clock() {
    let settings = CacheSettings { wall_clock_expiry: true, ..Default::default() };
    let mut track = track_with(1000, settings);
    let mut consumer = track.consume();
    one_frame(&mut track, 0, b"a");
    one_frame(&mut track, 0, b"b"); // same timestamp: no timestamp age
    assert_eq!(next_group_seq(&mut consumer).await, 1);
    let mut old = next(&mut consumer).await.into_group().unwrap();
    assert_eq!(old.sequence(), 0);
    assert_eq!(old.next_frame().await.unwrap().unwrap().payload, Bytes::from_static(b"a"));

    advance(Duration::from_millis(999)).await;
    assert!(consumer.try_next_group().is_none());
    assert_eq!(track.cached_groups(), 2);
    // The waiting consumer wakes at the deadline by itself and expires group 0.
    assert!(timeout(Duration::from_secs(5), consumer.next_group()).await.is_err());
    assert_eq!(track.cached_groups(), 1);
    assert_eq!(old.next_frame().await, Err(Error::Expired));

    let mut late = track.consume();
    assert_eq!(next_group_seq(&mut late).await, 1);
    assert!(late.try_next_group().is_none());
}

#[tokio::test(start_paused = true)]
async fn consumer_max_age_is_narrower_and_clamped() {
    let mut track = track_with(10_000, CacheSettings::default());
    let narrow = SubscribeOptions { max_age: Some(Duration::from_millis(100)), ..Default::default() };
    let mut consumer = track.subscribe(narrow);
    let wide = SubscribeOptions { max_age: Some(Duration::from_secs(3600)), ..Default::default() };
    let mut clamped = track.subscribe(wide);
    for ts in [0, 100, 200] {
        one_frame(&mut track, ts, b"x");
    }
    assert_eq!(track.cached_groups(), 3);
    assert_eq!(next_group_seq(&mut consumer).await, 2);
    assert_eq!(next_group_seq(&mut consumer).await, 1);
    assert_eq!(next_gap(&mut consumer).await, gap(0, 0, GapReason::Expired));
    for expected in [2, 1, 0] {
        assert_eq!(next_group_seq(&mut clamped).await, expected);
    }
    // The publisher's 10 s still applies to everyone: at 10 300 groups 0 and 1 are 10 s past their
    // reach; at 20 300 group 2 is too. The wide consumer could not keep them.
    one_frame(&mut track, 10_300, b"y");
    assert_eq!(track.cached_groups(), 2);
    one_frame(&mut track, 20_300, b"z");
    assert_eq!(track.cached_groups(), 2);
    assert_eq!(next_group_seq(&mut clamped).await, 4);
    assert_eq!(next_group_seq(&mut clamped).await, 3);
    assert!(clamped.try_next_group().is_none());
}

// ---------- tracks: range and end ----------

#[tokio::test(start_paused = true)]
async fn start_latest_floor_and_end() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    for ts in 0..3 {
        one_frame(&mut track, ts, b"x");
    }
    let mut latest = track.subscribe(SubscribeOptions { start: GroupStart::Latest, ..Default::default() });
    assert_eq!(next_group_seq(&mut latest).await, 2);
    assert!(latest.try_next_group().is_none());

    let mut bounded =
        track.subscribe(SubscribeOptions { start: GroupStart::Floor(1), end: Some(3), ..Default::default() });
    assert_eq!(next_group_seq(&mut bounded).await, 2);
    assert_eq!(next_group_seq(&mut bounded).await, 1);
    assert!(bounded.try_next_group().is_none());
    one_frame(&mut track, 3, b"x");
    one_frame(&mut track, 4, b"x");
    assert_eq!(next_group_seq(&mut bounded).await, 3);
    assert!(bounded.next_group().await.unwrap().is_none());

    // A floor above the live edge waits there.
    let mut ahead = track.subscribe(SubscribeOptions { start: GroupStart::Floor(6), ..Default::default() });
    one_frame(&mut track, 5, b"x");
    assert!(ahead.try_next_group().is_none());
    one_frame(&mut track, 6, b"x");
    assert_eq!(next_group_seq(&mut ahead).await, 6);
}

#[tokio::test(start_paused = true)]
async fn track_finish_drains_then_ends() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = track.consume();
    one_frame(&mut track, 0, b"x");
    one_frame(&mut track, 1, b"x");
    track.finish();
    assert_eq!(next_group_seq(&mut consumer).await, 1);
    assert_eq!(next_group_seq(&mut consumer).await, 0);
    assert!(consumer.next_group().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn track_producer_drop_never_hangs_consumers() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = track.consume();
    one_frame(&mut track, 0, b"x");
    let open = track.append_group().unwrap();
    let waiter = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            match consumer.next_group().await {
                Ok(Some(TrackEvent::Group(group))) => events.push(Ok(group.sequence())),
                Ok(Some(TrackEvent::Gap(gap))) => events.push(Err(gap)),
                Ok(None) => return (events, None),
                Err(err) => return (events, Some(err)),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(open);
    drop(track);
    let (events, end) = timeout(WAIT, waiter).await.unwrap().unwrap();
    assert_eq!(end, Some(Error::Dropped));
    assert!(events.contains(&Ok(0)));
}

#[tokio::test(start_paused = true)]
async fn track_errors() {
    assert_eq!(
        TrackProducer::new("t", TrackInfo { timescale: 0, ..TrackInfo::default() }).err(),
        Some(Error::InvalidTimescale)
    );
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    track.create_group(3).unwrap().finish().unwrap();
    assert_eq!(track.create_group(3).err(), Some(Error::DuplicateGroup(3)));
    assert_eq!(track.append_group().unwrap().sequence(), 4);
}

#[tokio::test(start_paused = true)]
async fn consumer_state_stays_bounded_under_contention() {
    let mut track = track_with(600_000, CacheSettings { max_groups: 4, ..Default::default() });
    let mut consumer = track.consume();
    let mut seen = Vec::new();
    // Every time the consumer reads, two new groups exist: newest-first alone would never let the
    // floor move; the bounded cursor makes it account for older sequences too.
    for round in 0..50u64 {
        one_frame(&mut track, round * 2, b"x");
        one_frame(&mut track, round * 2 + 1, b"x");
        match next(&mut consumer).await {
            TrackEvent::Group(group) => seen.push((group.sequence(), group.sequence())),
            TrackEvent::Gap(gap) => seen.push((gap.start, gap.end)),
        }
        assert!(format!("{consumer:?}").len() < 200);
    }
    track.finish();
    while let Some(event) = timeout(WAIT, consumer.next_group()).await.unwrap().unwrap() {
        match event {
            TrackEvent::Group(group) => seen.push((group.sequence(), group.sequence())),
            TrackEvent::Gap(gap) => seen.push((gap.start, gap.end)),
        }
    }
    // Every sequence 0..100 is accounted for exactly once.
    let mut covered = vec![0u32; 100];
    for (start, end) in seen {
        for seq in start..=end {
            covered[seq as usize] += 1;
        }
    }
    assert!(covered.iter().all(|count| *count == 1), "{covered:?}");
}

// ---------- demand ----------

#[tokio::test(start_paused = true)]
async fn demand_used_and_unused() {
    let track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    assert_eq!(track.consumer_count(), 0);
    timeout(WAIT, track.unused()).await.unwrap();
    assert!(timeout(Duration::from_secs(1), track.used()).await.is_err());

    let a = track.consume();
    timeout(WAIT, track.used()).await.unwrap();
    let b = a.clone();
    assert_eq!(track.consumer_count(), 2);
    drop(a);
    assert!(timeout(Duration::from_secs(1), track.unused()).await.is_err());
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(b);
    });
    timeout(WAIT, track.unused()).await.unwrap();
    release.await.unwrap();
    assert_eq!(track.consumer_count(), 0);
}

// ---------- broadcasts ----------

#[tokio::test(start_paused = true)]
async fn broadcast_existing_and_missing_tracks() {
    let broadcast = BroadcastProducer::default();
    let mut video = broadcast.create_track("video", TrackInfo::default()).unwrap();
    let consumer = broadcast.consume();
    let mut sub = consumer.subscribe_track("video").await.unwrap();
    one_frame(&mut video, 0, b"x");
    assert_eq!(next_group_seq(&mut sub).await, 0);
    assert_eq!(consumer.subscribe_track("audio").await.err(), Some(Error::NotFound));
    assert_eq!(broadcast.create_track("video", TrackInfo::default()).err(), Some(Error::TrackExists));
    assert_eq!(consumer.track_names(), vec!["video".to_string()]);

    // A dropped track producer frees the name.
    drop(video);
    assert!(consumer.track_names().is_empty());
    assert!(broadcast.create_track("video", TrackInfo::default()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn broadcast_track_bound() {
    let broadcast = BroadcastProducer::new(BroadcastSettings { max_tracks: 1, ..Default::default() });
    let _a = broadcast.create_track("a", TrackInfo::default()).unwrap();
    assert_eq!(broadcast.create_track("b", TrackInfo::default()).err(), Some(Error::TooManyTracks(1)));
}

#[tokio::test(start_paused = true)]
async fn broadcast_track_requests_fulfilled_and_rejected() {
    let settings = BroadcastSettings { serve_requests: true, max_requests: 2, ..Default::default() };
    let broadcast = BroadcastProducer::new(settings);
    let consumer = broadcast.consume();

    let c1 = consumer.clone();
    let c2 = consumer.clone();
    let first = tokio::spawn(async move { c1.subscribe_track("video").await });
    let second = tokio::spawn(async move { c2.subscribe_track("video").await });
    let request = timeout(WAIT, broadcast.next_request()).await.unwrap().unwrap();
    assert_eq!(request.name(), "video");
    tokio::time::sleep(Duration::from_millis(1)).await; // let the second waiter join
    let info = TrackInfo { priority: 9, ..TrackInfo::default() };
    let mut track = request.accept(info).unwrap();
    assert_eq!(track.consumer_count(), 2);
    let mut s1 = first.await.unwrap().unwrap();
    let s2 = second.await.unwrap().unwrap();
    assert_eq!(s2.info().priority, 9);
    one_frame(&mut track, 0, b"x");
    assert_eq!(next_group_seq(&mut s1).await, 0);

    let c3 = consumer.clone();
    let rejected = tokio::spawn(async move { c3.subscribe_track("nope").await });
    let request = timeout(WAIT, broadcast.next_request()).await.unwrap().unwrap();
    request.reject(Error::Aborted(StreamCode::Unroutable));
    assert_eq!(rejected.await.unwrap().err(), Some(Error::Aborted(StreamCode::Unroutable)));

    let c4 = consumer.clone();
    let dropped = tokio::spawn(async move { c4.subscribe_track("gone").await });
    drop(timeout(WAIT, broadcast.next_request()).await.unwrap().unwrap());
    assert_eq!(dropped.await.unwrap().err(), Some(Error::NotFound));

    // The request queue is bounded.
    let waiting: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|name| {
            let c = consumer.clone();
            tokio::spawn(async move { c.subscribe_track(name).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(consumer.subscribe_track("z").await.err(), Some(Error::TooManyRequests(2)));

    // Ending the broadcast fails the waiters instead of leaving them hanging.
    broadcast.finish();
    for waiter in waiting {
        assert_eq!(timeout(WAIT, waiter).await.unwrap().unwrap().err(), Some(Error::Ended));
    }
    assert!(consumer.is_closed());
}

#[tokio::test(start_paused = true)]
async fn broadcast_ends_when_last_producer_drops() {
    let broadcast = BroadcastProducer::default();
    let clone = broadcast.clone();
    let consumer = broadcast.consume();
    drop(broadcast);
    assert!(!consumer.is_closed());
    drop(clone);
    timeout(WAIT, consumer.closed()).await.unwrap();
}

// ---------- origins ----------

fn route(warm: u64, cold: u64, hops: &[u64]) -> Route {
    Route { hops: hops.to_vec(), warm_cost: warm, cold_cost: cold, via: 0 }
}

#[tokio::test(start_paused = true)]
async fn origin_route_selection_order() {
    let origin = OriginProducer::default();
    let p = path("live/cam");
    let sources: Vec<BroadcastProducer> = (0..5).map(|_| BroadcastProducer::default()).collect();
    let routes = [route(5, 0, &[]), route(1, 9, &[]), route(1, 3, &[1, 2]), route(1, 3, &[1]), route(1, 3, &[4])];
    let mut handles = Vec::new();
    for (source, r) in sources.iter().zip(routes.iter()) {
        handles.push(origin.publish(p.clone(), source.consume(), r.clone()).unwrap());
    }
    // Lowest warm, then cold, then fewest hops, then most recent: the last one.
    assert_eq!(origin.best_route(&p), Some(route(1, 3, &[4])));
    assert!(origin.consume_broadcast(&p).unwrap().same_broadcast(&sources[4].consume()));
    drop(handles.pop());
    assert_eq!(origin.best_route(&p), Some(route(1, 3, &[1])));
    drop(handles.pop());
    assert_eq!(origin.best_route(&p), Some(route(1, 3, &[1, 2])));
    drop(handles.pop());
    assert_eq!(origin.best_route(&p), Some(route(1, 9, &[])));
    drop(handles.pop());
    assert_eq!(origin.best_route(&p), Some(route(5, 0, &[])));
}

#[tokio::test(start_paused = true)]
async fn origin_updates_and_ends() {
    let origin = OriginProducer::default();
    let mut consumer = origin.consume();
    let p = path("room/alice");
    let slow = BroadcastProducer::default();
    let fast = BroadcastProducer::default();

    let slow_handle = origin.publish(p.clone(), slow.consume(), route(5, 5, &[])).unwrap();
    match announce(&mut consumer).await {
        Announcement::Start { path, route: r, broadcast } => {
            assert_eq!(path, p);
            assert_eq!(r.warm_cost, 5);
            assert!(broadcast.same_broadcast(&slow.consume()));
        }
        other => panic!("{other:?}"),
    }
    let fast_handle = origin.publish(p.clone(), fast.consume(), route(1, 1, &[])).unwrap();
    match announce(&mut consumer).await {
        Announcement::Update { route: r, broadcast, .. } => {
            assert_eq!(r.warm_cost, 1);
            assert!(broadcast.same_broadcast(&fast.consume()));
        }
        other => panic!("{other:?}"),
    }
    // A worse route appearing changes nothing for the consumer.
    let other = BroadcastProducer::default();
    let worse = origin.publish(p.clone(), other.consume(), route(9, 9, &[])).unwrap();
    drop(worse);
    assert!(consumer.try_next_announcement().is_none());

    // Cost update on the best route is an Update.
    fast_handle.update_route(route(2, 1, &[]));
    assert!(matches!(announce(&mut consumer).await, Announcement::Update { route: r, .. } if r.warm_cost == 2));

    drop(fast_handle);
    assert!(matches!(announce(&mut consumer).await, Announcement::Update { route: r, .. } if r.warm_cost == 5));
    drop(slow_handle);
    assert!(matches!(announce(&mut consumer).await, Announcement::End { path } if path == p));
    assert!(consumer.try_next_announcement().is_none());
}

#[tokio::test(start_paused = true)]
async fn origin_broadcast_end_withdraws_route() {
    let origin = OriginProducer::default();
    let mut consumer = origin.consume();
    let broadcast = BroadcastProducer::default();
    let _handle = origin.publish(path("a"), broadcast.consume(), Route::local()).unwrap();
    assert!(matches!(announce(&mut consumer).await, Announcement::Start { .. }));
    broadcast.finish();
    assert!(matches!(announce(&mut consumer).await, Announcement::End { .. }));
    assert!(origin.consume_broadcast(&path("a")).is_none());
    let ended = BroadcastProducer::default();
    let ended_consumer = ended.consume();
    drop(ended);
    assert_eq!(origin.publish(path("b"), ended_consumer, Route::local()).err(), Some(Error::Ended));
}

#[tokio::test(start_paused = true)]
async fn origin_snapshot_prefix_scoping_and_close() {
    let origin = OriginProducer::default();
    let b = BroadcastProducer::default();
    let _h1 = origin.publish(path("room/a"), b.consume(), Route::local()).unwrap();
    let _h2 = origin.publish(path("roomy/b"), b.consume(), Route::local()).unwrap();
    let _h3 = origin.publish(path("room/c/d"), b.consume(), Route::local()).unwrap();
    let mut scoped = origin.consume_scoped(path("room"), 0);
    let mut snapshot = Vec::new();
    while let Some(a) = scoped.try_next_announcement() {
        assert!(matches!(a, Announcement::Start { .. }));
        snapshot.push(a.path().clone());
    }
    assert_eq!(snapshot, vec![path("room/a"), path("room/c/d")]);
    let _h4 = origin.publish(path("other"), b.consume(), Route::local()).unwrap();
    let _h5 = origin.publish(path("room/e"), b.consume(), Route::local()).unwrap();
    assert_eq!(announce(&mut scoped).await.path(), &path("room/e"));
    assert!(scoped.consume_broadcast(&path("other")).is_none());
    assert!(scoped.consume_broadcast(&path("room/a")).is_some());

    // Dropping the origin ends every path, then the stream.
    drop(origin);
    let mut ended = Vec::new();
    while let Some(a) = timeout(WAIT, scoped.next_announcement()).await.unwrap() {
        assert!(matches!(a, Announcement::End { .. }));
        ended.push(a.path().clone());
    }
    assert_eq!(ended.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn origin_consumer_scoped_narrows_and_never_widens() {
    let origin = OriginProducer::default();
    let b = BroadcastProducer::default();
    let _h1 = origin.publish(path("room/a"), b.consume(), Route::local()).unwrap();
    let _h2 = origin.publish(path("room/b/c"), b.consume(), route(0, 0, &[9])).unwrap();
    let _h3 = origin.publish(path("other"), b.consume(), Route::local()).unwrap();
    let room = origin.consume_scoped(path("room"), 0);
    let drain = |mut c: OriginConsumer| {
        let mut paths = Vec::new();
        while let Some(a) = c.try_next_announcement() {
            paths.push(a.path().clone());
        }
        paths
    };
    // Narrower than the scope: narrowed. Wider (root): clamped to the scope. Disjoint: none.
    assert_eq!(drain(room.scoped(&path("room/b"), 0).unwrap()), vec![path("room/b/c")]);
    assert_eq!(drain(room.scoped(&Path::root(), 0).unwrap()), vec![path("room/a"), path("room/b/c")]);
    assert!(room.scoped(&path("other"), 0).is_none());
    // The exclusion applies to the new consumer.
    assert_eq!(drain(room.scoped(&Path::root(), 9).unwrap()), vec![path("room/a")]);
}

#[tokio::test(start_paused = true)]
async fn origin_split_horizon() {
    let origin = OriginProducer::default();
    let via_peer = BroadcastProducer::default();
    let standby = BroadcastProducer::default();
    let p = path("x");
    let _a = origin.publish(p.clone(), via_peer.consume(), route(0, 0, &[7, 3])).unwrap();
    let mut peer = origin.consume_scoped(Path::root(), 7);
    assert!(peer.try_next_announcement().is_none(), "route through the peer's own hop leaked");
    assert!(peer.consume_broadcast(&p).is_none());
    let _b = origin.publish(p.clone(), standby.consume(), route(10, 10, &[3])).unwrap();
    match announce(&mut peer).await {
        Announcement::Start { route: r, .. } => assert_eq!(r.hops, vec![3]),
        other => panic!("{other:?}"),
    }
    // Everyone else still prefers the cheaper route; hop 0 never matches.
    assert_eq!(origin.best_route(&p).unwrap().hops, vec![7, 3]);
    assert!(!route(0, 0, &[0]).contains_hop(0));
}

#[tokio::test(start_paused = true)]
async fn origin_slow_consumer_is_bounded_and_resyncs() {
    let origin = OriginProducer::new(OriginSettings { max_announcement_log: 4, ..Default::default() });
    let mut slow = origin.consume();
    let b = BroadcastProducer::default();
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(origin.publish(path(&format!("p{i:02}")), b.consume(), Route::local()).unwrap());
    }
    // Withdraw the even ones before the consumer reads anything.
    let mut kept = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        if i % 2 == 1 {
            kept.push(handle);
        }
    }
    let mut started = Vec::new();
    while let Some(a) = slow.try_next_announcement() {
        match a {
            Announcement::Start { path, .. } => started.push(path),
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<Path> = (0..20).filter(|i| i % 2 == 1).map(|i| path(&format!("p{i:02}"))).collect();
    assert_eq!(started, expected);
    drop(kept);
    let mut ends = 0;
    while let Some(a) = slow.try_next_announcement() {
        assert!(matches!(a, Announcement::End { .. }));
        ends += 1;
    }
    assert_eq!(ends, 10);
}

#[tokio::test(start_paused = true)]
async fn origin_bounds() {
    let settings = OriginSettings { max_broadcasts: 1, max_routes_per_path: 1, ..Default::default() };
    let origin = OriginProducer::new(settings);
    let b = BroadcastProducer::default();
    let _h = origin.publish(path("a"), b.consume(), Route::local()).unwrap();
    assert_eq!(origin.publish(path("b"), b.consume(), Route::local()).err(), Some(Error::TooManyBroadcasts(1)));
    assert_eq!(origin.publish(path("a"), b.consume(), Route::local()).err(), Some(Error::TooManyRoutes(1)));
}

#[tokio::test(start_paused = true)]
async fn latest_start_before_any_group_gets_the_first_groups() {
    let mut producer = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = producer.subscribe(SubscribeOptions { start: GroupStart::Latest, ..Default::default() });
    for _ in 0..3 {
        let mut group = producer.append_group().unwrap();
        group.write(0, Bytes::from_static(b"x")).unwrap();
        group.finish().unwrap();
    }
    // Every group produced after subscribing is delivered, newest first, none reported as a gap.
    let mut seen = Vec::new();
    for _ in 0..3 {
        match timeout(WAIT, consumer.next_group()).await.expect("a group arrives").unwrap().unwrap() {
            TrackEvent::Group(group) => seen.push(group.sequence()),
            TrackEvent::Gap(gap) => panic!("unexpected {gap:?}"),
        }
    }
    assert_eq!(seen, vec![2, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn latest_start_with_timestamped_groups() {
    let info = TrackInfo { priority: 2, max_age: Duration::from_secs(5), timescale: 1000 };
    let mut producer = TrackProducer::new("t", info).unwrap();
    let mut consumer = producer.subscribe(SubscribeOptions {
        start: GroupStart::Latest,
        end: None,
        max_age: Some(Duration::from_millis(5000)),
        priority: None,
    });
    for g in 0..3u64 {
        let mut group = producer.append_group().unwrap();
        for f in 0..4u64 {
            group.write(1000 + (g * 4 + f) * 33, Bytes::from_static(b"x")).unwrap();
        }
        group.finish().unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        match timeout(WAIT, consumer.next_group()).await.expect("a group arrives").unwrap().unwrap() {
            TrackEvent::Group(group) => seen.push(group.sequence()),
            TrackEvent::Gap(gap) => panic!("unexpected {gap:?}"),
        }
    }
    assert_eq!(seen, vec![2, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn floor_start_on_an_empty_track_tolerates_out_of_order_arrival() {
    // A subscriber's track receives groups on separate streams, in any order.
    let mut producer = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = producer.subscribe(SubscribeOptions::default());
    for seq in [1, 0, 2] {
        let mut group = producer.create_group(seq).unwrap();
        group.write(seq, Bytes::from_static(b"x")).unwrap();
        group.finish().unwrap();
        if seq == 1 {
            // The consumer looks before the older group arrives.
            let first = timeout(WAIT, consumer.next_group()).await.unwrap().unwrap().unwrap();
            assert!(matches!(first, TrackEvent::Group(ref g) if g.sequence() == 1), "{first:?}");
        }
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        match timeout(WAIT, consumer.next_group()).await.expect("a group arrives").unwrap().unwrap() {
            TrackEvent::Group(group) => seen.push(group.sequence()),
            TrackEvent::Gap(gap) => panic!("unexpected {gap:?}"),
        }
    }
    assert_eq!(seen, vec![2, 0]);
}

#[tokio::test(start_paused = true)]
async fn interest_aggregates_live_consumers_and_follows_updates() {
    let track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut interest = track.interest();
    assert_eq!(interest.current(), None);
    let mut a = track.subscribe(SubscribeOptions { priority: Some(1), ..Default::default() });
    let b = track.subscribe(SubscribeOptions { priority: Some(5), start: GroupStart::Floor(3), ..Default::default() });
    assert_eq!(interest.current().unwrap().priority, Some(5));
    assert_eq!(interest.current().unwrap().start, GroupStart::Floor(0));
    // A live update is seen by a watcher.
    a.set_preferences(Some(9), None);
    assert_eq!(timeout(WAIT, interest.changed()).await.unwrap().unwrap().priority, Some(9));
    // Clones count; dropping every consumer leaves no interest.
    let c = a.clone();
    drop(a);
    assert_eq!(interest.current().unwrap().priority, Some(9));
    drop(c);
    assert_eq!(interest.current().unwrap().priority, Some(5));
    drop(b);
    assert_eq!(interest.current(), None);
}

#[tokio::test(start_paused = true)]
async fn track_request_carries_the_waiters_options() {
    let broadcast = BroadcastProducer::new(BroadcastSettings { serve_requests: true, ..Default::default() });
    let consumer = broadcast.consume();
    let wanted = SubscribeOptions { priority: Some(200), start: GroupStart::Floor(4), ..Default::default() };
    let waiting = tokio::spawn(async move { consumer.subscribe_track_with("video", wanted).await });
    let request = timeout(WAIT, broadcast.next_request()).await.unwrap().unwrap();
    assert_eq!(request.options().priority, Some(200));
    assert_eq!(request.options().start, GroupStart::Floor(4));
    let producer = request.accept(TrackInfo::default()).unwrap();
    let track = waiting.await.unwrap().unwrap();
    assert_eq!(producer.interest().current().unwrap().priority, Some(200));
    drop(track);
}

#[tokio::test(start_paused = true)]
async fn dropped_groups_are_reported_at_once_and_refused_later() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut consumer = track.consume();
    track.create_group(0).unwrap().finish().unwrap();
    assert_eq!(next_group_seq(&mut consumer).await, 0);
    // Upstream says 1..=3 will never come (SUBSCRIBE_DROP): reported without waiting for the end.
    track.drop_groups(1, 3, Error::Aborted(StreamCode::TooFarBehind));
    assert_eq!(next_gap(&mut consumer).await, gap(1, 3, GapReason::Aborted(Error::Aborted(StreamCode::TooFarBehind))));
    assert_eq!(track.create_group(2).err(), Some(Error::DuplicateGroup(2)));
    track.drop_groups(5, 4, Error::Expired);
    track.create_group(4).unwrap().finish().unwrap();
    assert_eq!(next_group_seq(&mut consumer).await, 4);
}

#[tokio::test(start_paused = true)]
async fn a_floor_consumer_of_a_track_that_only_heard_drops_reports_them() {
    // A relay's upstream track: SUBSCRIBE_DROP for 5..=9 arrived before any group did. A consumer
    // that subscribes now starts at the first known loss and reports it, instead of anchoring after
    // the newest known sequence (10, which may never come) and skipping what is still in flight.
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    track.drop_groups(5, 9, Error::Aborted(StreamCode::TooFarBehind));
    let mut consumer = track.consume();
    assert_eq!(next_gap(&mut consumer).await, gap(5, 9, GapReason::Aborted(Error::Aborted(StreamCode::TooFarBehind))));
    track.create_group(10).unwrap().finish().unwrap();
    assert_eq!(next_group_seq(&mut consumer).await, 10);
}

/// A relay cancels an upstream subscription nobody reads only if that is still true as it
/// cancels: a consumer that attached first keeps the track, one that comes after asks afresh.
#[tokio::test(start_paused = true)]
async fn a_track_is_cancelled_for_lack_of_demand_only_while_unused() {
    let broadcast = BroadcastProducer::new(BroadcastSettings { serve_requests: true, ..Default::default() });
    let consumer = broadcast.consume();
    let c = consumer.clone();
    let waiting = tokio::spawn(async move { c.subscribe_track("video").await });
    let mut producer =
        timeout(WAIT, broadcast.next_request()).await.unwrap().unwrap().accept(TrackInfo::default()).unwrap();
    let first = waiting.await.unwrap().unwrap();
    // Read by `first`: not cancelled.
    assert!(!producer.abort_if_unused(Error::Cancelled));
    drop(first);
    // Unused now: cancelled, and a later subscriber is not handed the cancelled track.
    assert!(producer.abort_if_unused(Error::Cancelled));
    let c = consumer.clone();
    let again = tokio::spawn(async move { c.subscribe_track("video").await });
    let request = timeout(WAIT, broadcast.next_request()).await.expect("requested afresh").unwrap();
    let mut fresh = request.accept(TrackInfo::default()).unwrap();
    let mut track = again.await.unwrap().unwrap();
    let mut group = fresh.append_group().unwrap();
    group.write(0, Bytes::from_static(b"x")).unwrap();
    group.finish().unwrap();
    let event = timeout(WAIT, track.next_group()).await.unwrap();
    assert!(matches!(event, Ok(Some(TrackEvent::Group(_)))), "the fresh track delivers: {event:?}");
}

// ---------- tracks fed by a subscription: where a consumer starts ----------

/// Writes a finished one-frame group with this sequence.
fn group_at(track: &mut TrackProducer, sequence: u64, timestamp: u64) {
    let mut group = track.create_group(sequence).unwrap();
    group.write(timestamp, Bytes::from_static(b"x")).unwrap();
    group.finish().unwrap();
}

/// A relay's track: groups 0 and 5 are in flight from upstream and 5 arrives first. A consumer
/// that joins then (a downstream SUBSCRIBE with no floor) still gets group 0 when it lands: it
/// was in flight, not missing. Before the upstream was known, the consumer started at 5 and
/// group 0 was neither delivered nor reported.
#[tokio::test(start_paused = true)]
async fn a_consumer_joining_while_older_groups_are_in_flight_gets_them() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let _first = track.consume();
    track.expect_upstream(Some(0));
    group_at(&mut track, 5, 0);
    let mut late = track.subscribe(SubscribeOptions::default());
    assert_eq!(late.start_sequence(), Some(0), "in flight from the upstream's floor");
    assert_eq!(next_group_seq(&mut late).await, 5);
    group_at(&mut track, 0, 0);
    assert_eq!(next_group_seq(&mut late).await, 0);
    // 1..=4 never come: reported once the track ends, never skipped silently.
    track.finish();
    assert_eq!(next_gap(&mut late).await, gap(1, 4, GapReason::Skipped));
    assert!(late.next_group().await.unwrap().is_none());

    // A local track has nothing in flight: a consumer starts at the oldest group kept.
    let mut local = TrackProducer::new("t", TrackInfo::default()).unwrap();
    group_at(&mut local, 5, 0);
    assert_eq!(local.consume().start_sequence(), Some(5));
}

/// Sequences the upstream said it will not send (below SUBSCRIBE_OK.Group), or too old for the
/// consumer's max age, are not waited for.
#[tokio::test(start_paused = true)]
async fn in_flight_sequences_respect_the_upstream_start_and_the_max_age() {
    let mut track = TrackProducer::new("t", info_ms(1000)).unwrap();
    track.expect_upstream(Some(0));
    track.upstream_started(Some(3));
    group_at(&mut track, 5, 0);
    assert_eq!(track.consume().start_sequence(), Some(3));
    // A newer group 2 s on: 3 and 4, if they came, would be older than the max age (5 reaches
    // until 6 starts, so it is still fresh).
    group_at(&mut track, 6, 2000);
    assert_eq!(track.consume().start_sequence(), Some(5));
}

/// A latest-group start on a track fed by a subscription waits for the upstream to say which
/// group is the latest, instead of taking whichever group's stream arrived first.
#[tokio::test(start_paused = true)]
async fn a_latest_start_waits_for_the_upstream_answer() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut latest = track.subscribe(SubscribeOptions { start: GroupStart::Latest, ..Default::default() });
    track.expect_upstream(None);
    // Group 20 (a newer one, on a faster stream) lands before the answer and before group 19.
    group_at(&mut track, 20, 0);
    assert!(latest.try_next_group().is_none(), "no start before the upstream answers");
    let mut joined = track.subscribe(SubscribeOptions { start: GroupStart::Latest, ..Default::default() });
    track.upstream_started(Some(19));
    group_at(&mut track, 19, 0);
    let mut seen = vec![next_group_seq(&mut latest).await, next_group_seq(&mut latest).await];
    seen.sort();
    assert_eq!(seen, [19, 20]);
    assert_eq!(latest.start_sequence(), Some(19));
    assert_eq!(joined.start_sequence(), None);
    assert_eq!(next_group_seq(&mut joined).await, 20);
    assert_eq!(joined.start_sequence(), Some(19), "joined before the answer: from the answer on");
    assert_eq!(next_group_seq(&mut joined).await, 19);
}

/// A max age of 0 (only the latest group) starts at the newest group once one arrives, not at a
/// floor that older groups still in flight would be reported against.
#[tokio::test(start_paused = true)]
async fn a_zero_max_age_starts_at_the_live_edge() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    track.expect_upstream(Some(0));
    let options = SubscribeOptions { max_age: Some(Duration::ZERO), ..Default::default() };
    let mut edge = track.subscribe(options);
    group_at(&mut track, 18, 10);
    group_at(&mut track, 19, 20);
    assert_eq!(next_group_seq(&mut edge).await, 19);
    assert_eq!(edge.start_sequence(), Some(19));
    group_at(&mut track, 0, 0);
    assert!(edge.try_next_group().is_none(), "nothing older than the start");
}

// ---------- ordered reading ----------

/// Writes group `sequence` with `frames` frames (timestamps `timestamp..`), finished or not.
fn frames_at(track: &mut TrackProducer, sequence: u64, timestamp: u64, frames: u8, finish: bool) -> GroupProducer {
    let mut group = track.create_group(sequence).unwrap();
    for index in 0..frames {
        group.write(timestamp + u64::from(index), vec![sequence as u8, index]).unwrap();
    }
    if finish {
        group.finish().unwrap();
        // A finished producer is inert; return a fresh placeholder nobody reads.
        return GroupProducer::new(u64::MAX, 0, GroupSettings::default());
    }
    group
}

/// What an ordered reader delivered: (group, index) of each frame, (start, end, why) of each gap.
type Drained = (Vec<(u64, u64)>, Vec<(u64, u64, GapReason)>);

/// Everything an ordered reader has ready now.
fn drain_ordered(reader: &mut OrderedConsumer) -> Drained {
    let (mut frames, mut gaps) = (Vec::new(), Vec::new());
    while let Some(Ok(Some(event))) = reader.try_next_frame() {
        match event {
            OrderedEvent::Frame { group, index, frame } => {
                assert_eq!(&frame.payload[..], &[group as u8, index as u8], "the frame's own bytes");
                frames.push((group, index));
            }
            OrderedEvent::Gap(gap) => gaps.push((gap.start, gap.end, gap.reason)),
        }
    }
    (frames, gaps)
}

/// A cached backlog comes out in ascending sequence, frames in order, then live groups follow.
#[tokio::test(start_paused = true)]
async fn ordered_reading_delivers_a_backlog_in_sequence() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    for sequence in 0..4 {
        frames_at(&mut track, sequence, sequence * 10, 2, true);
    }
    let mut reader = track.consume().ordered(Duration::from_millis(500));
    let (frames, gaps) = drain_ordered(&mut reader);
    let expected: Vec<(u64, u64)> = (0..4).flat_map(|g| [(g, 0), (g, 1)]).collect();
    assert_eq!((frames, gaps), (expected, vec![]));
    // Live groups arriving newest first still come out in order.
    let mut six = frames_at(&mut track, 5, 50, 1, false);
    frames_at(&mut track, 4, 40, 1, true);
    assert_eq!(drain_ordered(&mut reader), (vec![(4, 0), (5, 0)], vec![]));
    six.write(51, vec![5, 1]).unwrap();
    six.finish().unwrap();
    track.finish();
    assert_eq!(drain_ordered(&mut reader), (vec![(5, 1)], vec![]));
    assert!(matches!(reader.next_frame().await, Ok(None)));
}

/// A group that has not arrived within the bound after a newer one did is skipped as late, and
/// dropped if it turns up afterwards; one that arrives in time is delivered in its place.
#[tokio::test(start_paused = true)]
async fn ordered_reading_skips_a_late_group_and_reports_it() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut reader = track.consume().ordered(Duration::from_millis(500));
    frames_at(&mut track, 0, 0, 1, true);
    frames_at(&mut track, 2, 20, 1, true);
    assert_eq!(drain_ordered(&mut reader), (vec![(0, 0)], vec![]), "group 2 waits for group 1");
    advance(Duration::from_millis(400)).await;
    assert_eq!(drain_ordered(&mut reader), (vec![], vec![]), "still within the bound");
    advance(Duration::from_millis(100)).await;
    assert_eq!(drain_ordered(&mut reader), (vec![(2, 0)], vec![(1, 1, GapReason::Late)]));
    frames_at(&mut track, 1, 10, 1, true);
    assert_eq!(drain_ordered(&mut reader), (vec![], vec![]), "a group skipped as late is dropped");
    // Within the bound: group 4 lands before 3 but 3 follows in time.
    frames_at(&mut track, 4, 40, 1, true);
    advance(Duration::from_millis(300)).await;
    frames_at(&mut track, 3, 30, 1, true);
    assert_eq!(drain_ordered(&mut reader), (vec![(3, 0), (4, 0)], vec![]));
}

/// A group that stalls mid-way while a newer one runs is cut after the bound: its frames so far
/// were delivered, the rest is reported as a gap for that group, and reading goes on in order.
#[tokio::test(start_paused = true)]
async fn ordered_reading_cuts_a_stalled_group() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut reader = track.consume().ordered(Duration::from_millis(200));
    let mut stalled = frames_at(&mut track, 0, 0, 1, false);
    assert_eq!(drain_ordered(&mut reader), (vec![(0, 0)], vec![]));
    frames_at(&mut track, 1, 10, 2, true);
    // The wait ends by itself at the deadline (the paused clock jumps there).
    let event = timeout(WAIT, reader.next_frame()).await.unwrap().unwrap().unwrap();
    assert!(
        matches!(&event, OrderedEvent::Gap(gap) if (gap.start, gap.end, &gap.reason) == (0, 0, &GapReason::Late)),
        "{event:?}"
    );
    stalled.write(1, vec![0, 1]).unwrap();
    assert_eq!(drain_ordered(&mut reader), (vec![(1, 0), (1, 1)], vec![]), "nothing more of the cut group");
}

/// Gaps the consumer underneath reports come out in their place in the sequence, and a track
/// that ends with sequences missing reports them before the end.
#[tokio::test(start_paused = true)]
async fn ordered_reading_places_reported_gaps_in_sequence() {
    let mut track = TrackProducer::new("t", TrackInfo::default()).unwrap();
    let mut reader = track.consume().ordered(Duration::from_secs(60));
    frames_at(&mut track, 0, 0, 1, true);
    track.drop_groups(1, 2, Error::Aborted(StreamCode::NotFound));
    frames_at(&mut track, 5, 50, 1, true);
    let (frames, gaps) = drain_ordered(&mut reader);
    assert_eq!(frames, vec![(0, 0)]);
    assert_eq!(gaps.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(), vec![(1, 2)]);
    track.finish();
    let (frames, gaps) = drain_ordered(&mut reader);
    assert_eq!((frames, gaps), (vec![(5, 0)], vec![(3, 4, GapReason::Skipped)]));
    assert!(matches!(reader.next_frame().await, Ok(None)));
}
