//! What push and pull subscriptions share: find the broadcast among the remote announcements,
//! subscribe to the track, and hand over its frames (numbered within their group) and gaps.

use std::future::Future;

use super::frame::moqt_frame;
use super::moqt_status;
use crate::coding::Path;
use crate::model::{self, OriginProducer, TrackEvent};

/// One item of a followed track, in order.
pub(crate) enum Delivery {
    Frame(moqt_frame),
    Gap(model::Gap),
}

/// Follows `name` in the broadcast `wanted` until the track ends, passing each item to
/// `deliver`, which returns false to stop. Returns how it ended: OK (the track finished),
/// NOT_FOUND, or CLOSED (the session or origin ended, or `deliver` stopped).
pub(crate) async fn follow_track<F, Fut>(
    remote: OriginProducer,
    wanted: Path,
    name: String,
    mut deliver: F,
) -> moqt_status
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut announcements = remote.consume();
    let broadcast = loop {
        match announcements.next_announcement().await {
            Some(model::Announcement::Start { path, broadcast, .. }) if path == wanted => break broadcast,
            Some(_) => continue,
            None => return moqt_status::ErrClosed,
        }
    };
    let Ok(mut track) = broadcast.subscribe_track(&name).await else { return moqt_status::ErrNotFound };
    loop {
        match track.next_group().await {
            Ok(Some(TrackEvent::Group(mut group))) => {
                let sequence = group.sequence();
                let mut index = group.frame_start();
                while let Ok(Some(frame)) = group.next_frame().await {
                    let frame =
                        moqt_frame { payload: frame.payload, timestamp_us: frame.timestamp, group: sequence, index };
                    index += 1;
                    if !deliver(Delivery::Frame(frame)).await {
                        return moqt_status::ErrClosed;
                    }
                }
            }
            Ok(Some(TrackEvent::Gap(gap))) => {
                if !deliver(Delivery::Gap(gap)).await {
                    return moqt_status::ErrClosed;
                }
            }
            Ok(None) => return moqt_status::Ok,
            Err(_) => return moqt_status::ErrClosed,
        }
    }
}
