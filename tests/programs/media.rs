//! Real media through the `moqt` command: the fixture clip (ffmpeg's fragmented MP4, H.264 +
//! Opus) published with `moqt publish --media fmp4`, carried by moqt's relay or by moq-relay
//! 0.17.10 in every version, and written back by `moqt subscribe --media fmp4`. ffprobe must read
//! the same codecs, sizes, packet counts and presentation times in what came back as in what
//! went in (on lite-03/04 the times travel in the container, the wire has none).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::*;
use crate::relay::{Relay, require_relay};
use moqt::wire::Version;

const MOQT: &str = env!("CARGO_BIN_EXE_moqt");
const CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h264-opus-cmaf.mp4");

/// Per stream: codec, width, height, sample rate, channels, packets.
fn streams(file: &Path) -> String {
    let entries = "stream=codec_name,width,height,sample_rate,channels,nb_read_packets";
    ffprobe(file, &["-count_packets", "-show_entries", entries, "-of", "csv=p=0"])
}

/// A stream's presentation times in milliseconds, sorted.
fn pts_ms(file: &Path, stream: &str) -> Vec<i64> {
    let text = ffprobe(file, &["-select_streams", stream, "-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
    let mut times: Vec<i64> =
        text.lines().filter_map(|line| line.trim().parse::<f64>().ok()).map(|s| (s * 1000.0).round() as i64).collect();
    times.sort_unstable();
    times
}

fn wait(mut child: std::process::Child, what: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            assert!(status.success(), "{what} failed: {status}: {err}");
            return;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes the clip at `clip` through `url` and returns the file the subscriber wrote.
fn round_trip(url: &str, trust: &[&str], version: Version, container: &str, label: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("media");
    std::fs::create_dir_all(&dir).unwrap();
    let received = dir.join(format!("{label}.mp4"));
    let out = std::fs::File::create(&received).unwrap();
    let version = version.alpn();
    let common = ["--broadcast", "clip", "--media", "fmp4", "--version", version];
    let subscriber = Command::new(MOQT)
        .args(["subscribe", url])
        .args(trust)
        .args(common)
        .args(["--start", "oldest"])
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let publisher = Command::new(MOQT)
        .args(["publish", url])
        .args(trust)
        .args(common)
        .args(["--container", container, "--realtime"])
        .stdin(Stdio::from(std::fs::File::open(CLIP).unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(publisher, &format!("{label}: moqt publish"), Duration::from_secs(60));
    wait(subscriber, &format!("{label}: moqt subscribe"), Duration::from_secs(60));
    received
}

fn assert_same_media(received: &Path, label: &str) {
    let clip = Path::new(CLIP);
    assert_eq!(streams(received), streams(clip), "{label}: codecs, sizes and packet counts");
    for stream in ["v:0", "a:0"] {
        assert_eq!(pts_ms(received, stream), pts_ms(clip, stream), "{label}: {stream} presentation times");
    }
}

#[test]
fn an_fmp4_clip_comes_back_whole_through_moqts_relay_in_every_version() {
    if require_ffprobe("an_fmp4_clip_comes_back_whole_through_moqts_relay_in_every_version").is_none() {
        return;
    }
    let (quic, http) = (free_udp(), free_tcp());
    let _relay = moqt_relay_at(quic, http, Stdio::null(), &[]);
    let fp = fingerprint(http);
    let url = format!("moql://localhost:{quic}/media");
    // `moqt catalog` prints the first catalog of the first broadcast as one line of JSON.
    let catalog = Command::new(MOQT)
        .args(["catalog", &url, "--tls-fingerprint", &fp, "--broadcast", "clip", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for version in Version::ALL {
        let containers: &[&str] = if version == Version::Lite06 { &["legacy", "cmaf"] } else { &["legacy"] };
        for container in containers {
            let label = format!("moqt-relay-{version}-{container}");
            let received = round_trip(&url, &["--tls-fingerprint", &fp], version, container, &label);
            assert_same_media(&received, &label);
        }
    }
    let output = catalog.wait_with_output().unwrap();
    assert!(output.status.success(), "moqt catalog failed");
    let json = String::from_utf8(output.stdout).unwrap();
    assert_eq!(json.lines().count(), 1, "{json}");
    for field in [
        r#""video":{"renditions":{"video":{"codec":"avc1.64000b""#,
        r#""codedWidth":160"#,
        r#""framerate":30.0"#,
        r#""codec":"opus""#,
    ] {
        assert!(json.contains(field), "{field} in {json}");
    }
}

#[test]
fn an_fmp4_clip_comes_back_whole_through_moq_relay_in_every_version() {
    let test = "an_fmp4_clip_comes_back_whole_through_moq_relay_in_every_version";
    let Some(binary) = require_relay(test) else { return };
    if require_ffprobe(test).is_none() {
        return;
    }
    for version in Version::ALL {
        let relay = Relay::start(&binary, Some(version));
        let fp: String = relay.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        let url = format!("moql://localhost:{}/", relay.addr.port());
        let label = format!("moq-relay-{version}");
        let received = round_trip(&url, &["--tls-fingerprint", &fp], version, "legacy", &label);
        assert_same_media(&received, &label);
    }
}
