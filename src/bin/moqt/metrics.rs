//! The relay's `/metrics`: the counters of [`Relay::metrics`] in the Prometheus text format
//! (0.0.4), written by the prometheus-client crate. The library hands out the numbers as a plain
//! struct (for C and embedding programs too); the text format is this command's business.

use std::fmt;

use moqt::relay::{Relay, RelayMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A registry whose metrics (all prefixed `moqt_`) are read from `relay` at each scrape, and the
/// tasks alive in the runtime it is created on (what a leak of sessions or subscriptions would
/// leave behind).
pub fn registry(relay: Relay) -> Registry {
    let mut registry = Registry::with_prefix("moqt");
    let runtime = tokio::runtime::Handle::try_current().ok();
    registry.register_collector(Box::new(RelayCollector(relay, runtime)));
    registry
}

/// The registry's metrics now, as Prometheus text.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

/// Reads a fresh [`RelayMetrics`] snapshot at each scrape.
struct RelayCollector(Relay, Option<tokio::runtime::Handle>);

impl fmt::Debug for RelayCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayCollector").field("hop_id", &self.0.hop_id()).finish()
    }
}

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        if let Some(runtime) = &self.1 {
            let tasks = runtime.metrics().num_alive_tasks() as u64;
            gauge(&mut encoder, "tasks_alive", "Tasks alive in the relay's runtime.", tasks)?;
        }
        encode(&self.0.metrics(), encoder)
    }
}

/// One metric per field of `m`, in the order the hand-written text had them; counters get
/// prometheus-client's `_total` suffix.
fn encode(m: &RelayMetrics, mut encoder: DescriptorEncoder) -> fmt::Result {
    let e = &mut encoder;
    let t = &m.traffic;
    gauge(e, "sessions_active", "Sessions open now.", m.sessions_active)?;
    let by_version = m.sessions_by_version.map(|(version, count)| (version.alpn(), count));
    counters(e, "sessions", "Sessions accepted, by version.", "version", &by_version)?;
    counter(e, "sessions_rejected", "Sessions refused.", m.sessions_rejected)?;
    gauge(e, "broadcasts", "Broadcast paths with a route.", m.broadcasts)?;
    let in_out = |received, sent| [("in", received), ("out", sent)];
    counters(e, "frames", "Frames received from and sent to peers.", "direction", &in_out(t.frames_in, t.frames_out))?;
    counters(
        e,
        "bytes",
        "Payload bytes received from and sent to peers.",
        "direction",
        &in_out(t.bytes_in, t.bytes_out),
    )?;
    counters(
        e,
        "groups",
        "Whole groups received from and sent to peers.",
        "direction",
        &in_out(t.groups_in, t.groups_out),
    )?;
    counter(
        e,
        "groups_dropped",
        "Groups not delivered whole to a subscriber (abandoned, expired, reset, dropped).",
        t.groups_dropped,
    )?;
    gauge(e, "subscriptions_active", "Subscriptions peers hold on this relay now.", t.subscriptions_active)?;
    counter(e, "subscriptions", "Subscriptions peers opened on this relay.", t.subscriptions_total)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
}

/// One counter with a row per value of `label`.
fn counters(encoder: &mut DescriptorEncoder, name: &str, help: &str, label: &str, rows: &[(&str, u64)]) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, ConstCounter::<u64>::default().metric_type())?;
    for &(value, count) in rows {
        ConstCounter::new(count).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use moqt::relay::RelayConfig;

    use super::*;

    /// Every metric, its type and its labels, as the relay's scrapers and tests read them.
    #[test]
    fn the_text_names_every_metric() {
        let text = render(&registry(Relay::new(RelayConfig::default()))).unwrap();
        for line in [
            "# TYPE moqt_sessions_active gauge",
            "moqt_sessions_active 0",
            "# TYPE moqt_sessions_total counter",
            "moqt_sessions_total{version=\"moq-lite-03\"} 0",
            "moqt_sessions_total{version=\"moq-lite-06\"} 0",
            "# TYPE moqt_sessions_rejected_total counter",
            "moqt_sessions_rejected_total 0",
            "# TYPE moqt_broadcasts gauge",
            "moqt_broadcasts 0",
            "# TYPE moqt_frames_total counter",
            "moqt_frames_total{direction=\"in\"} 0",
            "moqt_frames_total{direction=\"out\"} 0",
            "moqt_bytes_total{direction=\"in\"} 0",
            "moqt_bytes_total{direction=\"out\"} 0",
            "moqt_groups_total{direction=\"in\"} 0",
            "moqt_groups_total{direction=\"out\"} 0",
            "# TYPE moqt_groups_dropped_total counter",
            "moqt_groups_dropped_total 0",
            "# TYPE moqt_subscriptions_active gauge",
            "moqt_subscriptions_active 0",
            "# TYPE moqt_subscriptions_total counter",
            "moqt_subscriptions_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
    }

    /// On the relay's runtime, the tasks alive there are a gauge too (a churn test watches it).
    #[tokio::test]
    async fn the_tasks_alive_in_the_runtime_are_a_gauge() {
        let held = tokio::spawn(std::future::pending::<()>());
        let text = render(&registry(Relay::new(RelayConfig::default()))).unwrap();
        let line = text.lines().find(|l| l.starts_with("moqt_tasks_alive ")).unwrap_or_else(|| panic!("{text}"));
        let tasks: u64 = line["moqt_tasks_alive ".len()..].parse().unwrap();
        assert!(tasks >= 1, "the task spawned above is alive: {line}");
        held.abort();
    }

    /// The numbers are the snapshot's, each in its own metric.
    #[test]
    fn values_come_from_the_snapshot() {
        let registry = Registry::default();
        let mut m = Relay::new(RelayConfig::default()).metrics();
        m.sessions_active = 3;
        m.sessions_by_version[1].1 = 7;
        m.traffic.frames_out = 18;
        m.traffic.bytes_in = 1 << 40;
        m.traffic.subscriptions_total = 5;
        let mut text = String::new();
        #[derive(Debug)]
        struct Fixed(RelayMetrics);
        impl Collector for Fixed {
            fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
                encode(&self.0, encoder)
            }
        }
        let mut registry = registry;
        registry.register_collector(Box::new(Fixed(m.clone())));
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        let version = m.sessions_by_version[1].0.alpn();
        for line in [
            "sessions_active 3".to_string(),
            format!("sessions_total{{version=\"{version}\"}} 7"),
            "frames_total{direction=\"out\"} 18".to_string(),
            format!("bytes_total{{direction=\"in\"}} {}", 1u64 << 40),
            "subscriptions_total 5".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from:\n{text}");
        }
    }
}
