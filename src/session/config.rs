//! Session settings. Every bound a peer could push on is here, with a default and a test that it
//! holds.

use std::time::Duration;

use crate::coding::Path;
use crate::model::CacheSettings;
use crate::wire::{ProbeLevel, Role};

/// Settings of one moq-lite session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The largest control message we buffer on a request stream (bytes). Default 1 MiB: real
    /// control messages are a few hundred bytes; the reference's 64 MiB cap is a codec limit. A
    /// longer one resets that request stream with CANCELLED; the session stays up.
    pub max_message_size: usize,
    /// Subscriptions the peer may hold open on this session at once. Default 1024. One more is
    /// reset with CANCELLED; the session stays up.
    pub max_subscriptions: usize,
    /// Announce requests the peer may hold open at once. Default 64. One more is reset with
    /// CANCELLED; the session stays up.
    pub max_announce_requests: usize,
    /// Paths the peer may announce to us on one Announce stream. Default 4096. One more closes the
    /// session with PROTOCOL_VIOLATION (the table of its routes must not grow without bound).
    pub max_announced: usize,
    /// Group streams in flight per subscription before older ones are abandoned. Default 64.
    pub max_groups_in_flight: usize,
    /// How long a server waits for the client's SETUP (lite-05+). Default 10 s, as the reference.
    /// Past it the session is closed with CONTROL_MESSAGE_TIMEOUT.
    pub setup_timeout: Duration,
    /// How long we wait for the answer to a request we sent. Default 10 s. No ANNOUNCE_OK in time
    /// closes the session with CONTROL_MESSAGE_TIMEOUT; no TRACK_INFO resets that Track stream
    /// with CONTROL_TIMEOUT and fails only that subscription.
    pub control_timeout: Duration,
    /// After GOAWAY, how long the peer has to leave before the session is closed with
    /// GOAWAY_TIMEOUT. Default 10 s, as the reference.
    pub drain_timeout: Duration,
    /// What we can do with PROBE. Default Report.
    pub probe: ProbeLevel,
    /// How often a publisher sends PROBE reports on an open Probe stream. Default 1 s.
    pub probe_interval: Duration,
    /// Our Hop ID (0 = none): sent in SETUP and ANNOUNCE_OK (lite-05+; SETUP Hop on lite-05 too, as
    /// the reference does), and on lite-04 appended to our announcements and sent as Exclude Hop.
    pub hop_id: u64,
    /// This link's price (lite-06): sent in SETUP so the peer adds it to the routes we announce,
    /// and added to the routes the peer announces in place of the Cost it declares. `None`: not
    /// sent (the peer assumes 1) and the peer's declared Cost applies. A relay dialing a cluster
    /// peer sets it from the peer URL's `?cost=`.
    pub cost: Option<u64>,
    /// Role hint a client sends in SETUP.
    pub role: Role,
    /// The prefix a subscribing session asks announcements for. Default the root.
    pub announce_prefix: Path,
    /// Send a group as a DATAGRAM (lite-05+) when it is already complete with exactly one frame
    /// and fits: lowest latency, no retransmission. Default false.
    pub datagram_groups: bool,
    /// Cache bounds of each track received from the peer (groups, bytes, and per group frames and
    /// bytes: a group past them has its stream stopped with GROUP_TOO_LARGE).
    pub cache: CacheSettings,
    /// Where this session counts what it moves (a relay shares one across its sessions for
    /// /metrics). `None`: not counted.
    pub traffic: Option<std::sync::Arc<super::Traffic>>,
    /// How long a track resumed after a reconnect keeps asking when the new peer refuses it as not
    /// (yet) there (NOT_FOUND, UNROUTABLE): a relay that restarted can announce a broadcast a
    /// moment before it routes subscriptions to it. Retried with a growing pause; after this the
    /// refusal ends the track. Default 5 s.
    pub resume_retry_window: Duration,
    /// Whether [`Session::flushed`](super::Session::flushed) also waits for each completed Group
    /// stream to be acknowledged (default true). Tracking it costs a registration and a task per
    /// group and subscriber; a relay, whose sessions nobody flushes, turns it off on its fan-out.
    pub flush_group_streams: bool,
    /// How long a track that a TRACK request had to subscribe to stays subscribed waiting for the
    /// SUBSCRIBE that usually follows. It applies to a relay's broadcast whose upstream cannot
    /// answer TRACK without subscribing (a lite-03/04 publisher). A SUBSCRIBE for the track on the
    /// same session ends the wait at once, so the upstream subscription ends with that SUBSCRIBE;
    /// this bounds only a lookup no SUBSCRIBE follows. Default 2 s.
    pub track_lookup_hold: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_message_size: 1024 * 1024,
            max_subscriptions: 1024,
            max_announce_requests: 64,
            max_announced: 4096,
            max_groups_in_flight: 64,
            setup_timeout: Duration::from_secs(10),
            control_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            probe: ProbeLevel::Report,
            probe_interval: Duration::from_secs(1),
            hop_id: 0,
            cost: None,
            role: Role::Both,
            announce_prefix: Path::root(),
            datagram_groups: false,
            cache: CacheSettings::default(),
            traffic: None,
            resume_retry_window: Duration::from_secs(5),
            flush_group_streams: true,
            track_lookup_hold: Duration::from_secs(2),
        }
    }
}
