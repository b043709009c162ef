//! Real media through the `moqt` command: the fixture clip (ffmpeg's fragmented MP4, H.264 +
//! Opus) published with `moqt publish --media fmp4` in the legacy and the CMAF container, carried
//! by moqt's relay or by moq-relay 0.17.10 in every version, and written back by `moqt subscribe
//! --media fmp4`. ffprobe must read
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

/// The hang containers `moqt publish --media fmp4 --container` offers: each round trip runs in both.
const CONTAINERS: [&str; 2] = ["legacy", "cmaf"];

/// Per stream: codec, width, height, sample rate, channels, packets.
fn streams(file: &Path) -> String {
    let entries = "stream=codec_name,width,height,sample_rate,channels,nb_read_packets";
    ffprobe(file, &["-count_packets", "-show_entries", entries, "-of", "csv=p=0"])
}

/// A stream's presentation times in milliseconds, sorted.
fn pts_ms(file: &Path, stream: &str) -> Vec<i64> {
    pts_in(file, stream, 1000.0)
}

/// A stream's presentation times in `units` per second, sorted.
fn pts_in(file: &Path, stream: &str, units: f64) -> Vec<i64> {
    let text = ffprobe(file, &["-select_streams", stream, "-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
    let mut times: Vec<i64> =
        text.lines().filter_map(|line| line.trim().parse::<f64>().ok()).map(|s| (s * units).round() as i64).collect();
    times.sort_unstable();
    times
}

/// Waits for `child` to succeed and returns what it wrote to stderr (for a failing check to show).
fn wait(mut child: std::process::Child, what: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            assert!(status.success(), "{what} failed: {status}: {err}");
            return err;
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
/// Also returns the label with both commands' stderr, for the checks' messages.
fn round_trip(url: &str, trust: &[&str], version: Version, container: &str, label: &str) -> (PathBuf, String) {
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
    let published = wait(publisher, &format!("{label}: moqt publish"), Duration::from_secs(60));
    let subscribed = wait(subscriber, &format!("{label}: moqt subscribe"), Duration::from_secs(60));
    (received, format!("{label}\n--- moqt publish:\n{published}--- moqt subscribe:\n{subscribed}"))
}

fn assert_same_media(received: &Path, label: &str) {
    let clip = Path::new(CLIP);
    assert_eq!(streams(received), streams(clip), "{label}: codecs, sizes and packet counts");
    for stream in ["v:0", "a:0"] {
        assert_eq!(pts_ms(received, stream), pts_ms(clip, stream), "{label}: {stream} presentation times");
    }
    let (sent, got) = (duration(clip), duration(received));
    assert!((got - sent).abs() <= DURATION_TOLERANCE, "{label}: duration {got} s, sent {sent} s");
}

/// How far a received file's duration may be from the source's, in seconds: one frame at the
/// clip's 30 fps. hang carries presentation times, not durations, so the export gives a track's
/// last sample the duration of the one before it: the end of a stream can move by less than one
/// sample (a video frame, 33 ms, or a shorter final Opus packet, at most 20 ms).
const DURATION_TOLERANCE: f64 = 1.0 / 30.0;

/// A file's duration in seconds as ffprobe reads it (the end of its longest stream).
fn duration(file: &Path) -> f64 {
    let text = ffprobe(file, &["-show_entries", "format=duration", "-of", "csv=p=0"]);
    text.trim().parse().unwrap_or_else(|_| panic!("a duration for {file:?}: {text:?}"))
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
        for container in CONTAINERS {
            let label = format!("moqt-relay-{version}-{container}");
            let (received, logged) = round_trip(&url, &["--tls-fingerprint", &fp], version, container, &label);
            assert_same_media(&received, &logged);
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
        for container in CONTAINERS {
            let label = format!("moq-relay-{version}-{container}");
            let (received, logged) = round_trip(&url, &["--tls-fingerprint", &fp], version, container, &label);
            assert_same_media(&received, &logged);
        }
    }
}

/// A few seconds of ffmpeg test pattern (30 fps, a keyframe a second, B-frames as libx264 makes
/// them) at `size` as fragmented MP4, with Opus when `audio`; written under `dir` as `name.mp4`.
fn encode(dir: &Path, name: &str, size: &str, audio: bool) -> PathBuf {
    let file = dir.join(format!("{name}.mp4"));
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-v", "error", "-y", "-f", "lavfi", "-i", &format!("testsrc=size={size}:rate=30")]);
    if audio {
        ffmpeg.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-c:a", "libopus"]);
    }
    ffmpeg.args(["-t", "2", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-keyint_min", "30"]);
    ffmpeg.args(["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "mp4"]);
    ffmpeg.args(["-movflags", "cmaf+frag_keyframe+empty_moov+default_base_moof"]).arg(&file);
    let status = ffmpeg.status().expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {name}: {status}");
    file
}

/// ffmpeg and ffprobe, or `None` with a message (a failure under CI=true).
fn require_ffmpeg(test: &str) -> Option<()> {
    require_ffprobe(test)?;
    let found = Command::new("ffmpeg").arg("-version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(found, "{test}: ffprobe is installed without ffmpeg");
    Some(())
}

/// One track of an encoded clip: its catalog fields and its samples (time µs, keyframe, bytes as
/// the MP4 holds them), in decode order.
struct ClipTrack {
    info: moqt::media::codec::CodecInfo,
    samples: Vec<(u64, bool, bytes::Bytes)>,
}

/// The video and (if any) audio track of a fragmented MP4.
fn tracks_of(file: &Path) -> (ClipTrack, Option<ClipTrack>) {
    use moqt::media::fmp4::{Fmp4Event, Fmp4Reader, TrackKind};
    let mut reader = Fmp4Reader::new();
    let events = reader.push(&std::fs::read(file).unwrap()).unwrap();
    let init = reader.init().expect("an init segment");
    let track = |kind: TrackKind| {
        let info = init.tracks.iter().find(|t| t.kind == kind)?;
        let samples = events
            .iter()
            .filter_map(|event| match event {
                Fmp4Event::Fragment(fragment) => Some(fragment.samples.iter()),
                Fmp4Event::Init(_) => None,
            })
            .flatten()
            .filter(|sample| sample.track_id == info.track_id)
            .map(|s| (u64::try_from(s.presentation_time_us).unwrap(), s.keyframe, s.data.clone()))
            .collect();
        Some(ClipTrack { info: moqt::media::codec::from_sample_entry(&info.codec).unwrap(), samples })
    };
    (track(TrackKind::Video).expect("a video track"), track(TrackKind::Audio))
}

fn video_config(info: &moqt::media::codec::CodecInfo) -> moqt::media::VideoConfig {
    let moqt::media::codec::CodecInfo::Video(info) = info else { panic!("not video: {info:?}") };
    moqt::media::VideoConfig {
        codec: info.codec.clone(),
        description: info.description.clone(),
        coded_width: Some(info.coded_width),
        coded_height: Some(info.coded_height),
        framerate: Some(30.0),
        ..Default::default()
    }
}

fn audio_config(info: &moqt::media::codec::CodecInfo) -> moqt::media::AudioConfig {
    let moqt::media::codec::CodecInfo::Audio(info) = info else { panic!("not audio: {info:?}") };
    moqt::media::AudioConfig {
        codec: info.codec.clone(),
        description: info.description.clone(),
        sample_rate: info.sample_rate,
        number_of_channels: info.channels,
        ..Default::default()
    }
}

/// A length-prefixed H.264 track as Annex-B with its parameter sets before each keyframe (what
/// an encoder writing a live stream emits), and its catalog fields for that form (avc3, no
/// description).
fn annexb(track: &ClipTrack) -> (moqt::media::VideoConfig, Vec<(u64, bool, bytes::Bytes)>) {
    use moqt::media::codec::{CodecInfo, annexb, h264};
    let CodecInfo::Video(info) = &track.info else { panic!("not video") };
    let avcc = h264::parse_avcc(info.description.as_ref().unwrap()).unwrap();
    let sets: Vec<u8> = avcc
        .sequence_parameter_sets
        .iter()
        .chain(&avcc.picture_parameter_sets)
        .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
        .collect();
    let samples: Vec<(u64, bool, bytes::Bytes)> = track
        .samples
        .iter()
        .map(|(pts, key, data)| {
            let body = annexb::length_prefixed_to_annexb(data, avcc.length_size).unwrap();
            let payload = if *key { [sets.as_slice(), &body].concat() } else { body };
            (*pts, *key, payload.into())
        })
        .collect();
    let info = h264::info_from_annexb(&samples[0].2, true).unwrap();
    (video_config(&CodecInfo::Video(info)), samples)
}

/// The top-level boxes of an MP4 file: (type, offset).
fn top_level_boxes(bytes: &[u8]) -> Vec<(String, usize)> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8, "a box of {size} bytes at {at}");
        boxes.push((String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned(), at));
        at += size;
    }
    assert_eq!(at, bytes.len(), "the file ends on a box boundary");
    boxes
}

/// The sizes of the video frames ffmpeg decodes from `file`, in order, run-length counted: what
/// a reader that keeps the first moov shows. Any decode error fails.
fn decoded_sizes(file: &Path) -> Vec<(String, usize)> {
    let output = Command::new("ffmpeg")
        .args(["-v", "info", "-nostats", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffmpeg decoding {file:?}: {log}");
    for bad in ["error while decoding", "corrupt", "non-existing PPS", "no frame!"] {
        assert!(!log.contains(bad), "{bad:?} decoding {file:?}: {log}");
    }
    let mut runs: Vec<(String, usize)> = Vec::new();
    for size in log
        .lines()
        .filter(|l| l.contains("Parsed_showinfo") && l.contains(" n:"))
        .filter_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix("s:")).map(str::to_owned))
    {
        match runs.last_mut() {
            Some((last, count)) if *last == size => *count += 1,
            _ => runs.push((size, 1)),
        }
    }
    runs
}

/// The part of `file` from its `n`th init segment (0-based) on, as a file of its own: what a
/// player that re-initialises reads after the change.
fn from_init_segment(file: &Path, n: usize) -> PathBuf {
    let bytes = std::fs::read(file).unwrap();
    let starts: Vec<usize> =
        top_level_boxes(&bytes).into_iter().filter(|(kind, _)| kind == "ftyp").map(|(_, at)| at).collect();
    let part = file.with_extension(format!("init{n}.mp4"));
    std::fs::write(&part, &bytes[starts[n]..]).unwrap();
    part
}

/// Lines a child prints, read by a thread, awaited with a bound.
struct Lines {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(pipe: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { rx, seen: Vec::new() }
    }

    /// The next line.
    async fn next(&mut self, what: &str) -> String {
        match tokio::time::timeout(LINE_WAIT, self.rx.recv()).await {
            Ok(Some(line)) => {
                self.seen.push(line.clone());
                line
            }
            Ok(None) => panic!("{what}: the output ended; it printed {:?}", self.seen),
            Err(_) => panic!("{what}: nothing in {LINE_WAIT:?}; it printed {:?}", self.seen),
        }
    }

    /// The first line from now on that contains `needle`.
    async fn until(&mut self, needle: &str) -> String {
        loop {
            let line = self.next(needle).await;
            if line.contains(needle) {
                return line;
            }
        }
    }
}

/// The bound on any line a test waits for.
const LINE_WAIT: Duration = Duration::from_secs(30);

/// Waits (without blocking the runtime) for a child to exit successfully.
async fn exits(child: &mut std::process::Child, what: &str) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what} did not finish in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An in-process publisher of `origin` connected to `relay` in `version`.
async fn connect_publisher(
    relay: &Relay,
    version: Version,
    origin: &moqt::model::OriginProducer,
) -> moqt::session::Session {
    use moqt::endpoint::{Client, EndpointConfig};
    use moqt::transport::tls::ClientTrust;
    let trust = ClientTrust::Fingerprint(vec![relay.fingerprint]);
    let config = EndpointConfig { versions: vec![version], ..Default::default() };
    let client = Client::new("127.0.0.1:0".parse().unwrap(), &trust, config).unwrap();
    let origins = moqt::session::Origins { publish: Some(origin.consume()), ..Default::default() };
    let root = version.has_setup().then(|| "/".to_string());
    tokio::time::timeout(LINE_WAIT, client.connect(relay.addr, "localhost", root, origins))
        .await
        .expect("connected in time")
        .expect("connected")
}

/// `moqt subscribe --media fmp4` follows a live broadcast's catalog through moqt's relay, while
/// `moqt catalog` prints each catalog in order: an Annex-B H.264 rendition that changes
/// resolution (a new init segment in the file, the frames after it decoded at the new size by
/// ffmpeg, which keeps the first moov), an audio rendition taken out of the catalog while its
/// track stays open (its track ends, the command still ends), and one added (left out of the
/// file, reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moqt_subscribe_follows_catalog_changes_through_a_relay() {
    use moqt::media::{MediaBroadcast, NewRendition};
    let test = "moqt_subscribe_follows_catalog_changes_through_a_relay";
    if require_ffmpeg(test).is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("media-catalog-changes");
    std::fs::create_dir_all(&dir).unwrap();
    let (small, audio_track) = tracks_of(&encode(&dir, "small", "160x120", true));
    let (large, _) = tracks_of(&encode(&dir, "large", "320x240", false));
    let audio_track = audio_track.expect("the small clip has audio");
    // Audio in a group a second, as a live publisher groups it (not a stream per packet).
    let audio_samples: Vec<(u64, bool, bytes::Bytes)> = audio_track
        .samples
        .iter()
        .enumerate()
        .map(|(i, (pts, _, data))| {
            let first_of_second = i == 0 || audio_track.samples[i - 1].0 / 1_000_000 != pts / 1_000_000;
            (*pts, first_of_second, data.clone())
        })
        .collect();
    let (small_config, small_video) = annexb(&small);
    let (large_config, large_video) = annexb(&large);
    // The second clip follows the first on one timeline.
    let shift = small_video.iter().map(|(pts, _, _)| *pts).max().unwrap() + 33_334;
    let written_video: Vec<u64> =
        small_video.iter().map(|s| s.0).chain(large_video.iter().map(|s| s.0 + shift)).collect();
    let written_audio: Vec<u64> =
        audio_track.samples.iter().map(|s| s.0).chain(audio_track.samples.iter().map(|s| s.0 + shift)).collect();

    let relay = Relay::start_moqt_on(crate::relay::free_port());
    let version = Version::Lite06;
    let origin = moqt::model::OriginProducer::default();
    let mut media = MediaBroadcast::new().unwrap();
    let mut writers = media
        .add_renditions(vec![
            NewRendition::Video("video".into(), small_config),
            NewRendition::Audio("audio".into(), audio_config(&audio_track.info)),
        ])
        .unwrap();
    let (mut audio, mut video) = (writers.pop().unwrap(), writers.pop().unwrap());
    let path = moqt::Path::new("clip").unwrap();
    let _published = origin.publish(path, media.consume(), moqt::model::Route::local()).unwrap();
    let _session = connect_publisher(&relay, version, &origin).await;

    let fp: String = relay.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    let url = format!("moql://localhost:{}/", relay.addr.port());
    let common = ["--tls-fingerprint", &fp, "--broadcast", "clip", "--version", version.alpn()];
    let received = dir.join("received.mp4");
    let mut subscriber = Killed(
        Command::new(MOQT)
            .args(["subscribe", &url])
            .args(common)
            .args(["--media", "fmp4", "--start", "oldest"])
            .stdout(Stdio::from(std::fs::File::create(&received).unwrap()))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut subscriber_log = Lines::of(subscriber.0.stderr.take().unwrap());
    let mut catalog_command = Killed(
        Command::new(MOQT)
            .args(["catalog", &url])
            .args(common)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut catalogs = Lines::of(catalog_command.0.stdout.take().unwrap());
    let mut printed = vec![catalogs.next("the first catalog").await];

    tokio::time::timeout(LINE_WAIT, video.used()).await.expect("the subscriber takes the video");
    tokio::time::timeout(LINE_WAIT, audio.used()).await.expect("the subscriber takes the audio");
    let write_all = |writer: &mut moqt::media::MediaTrackWriter, samples: &[(u64, bool, bytes::Bytes)], shift: u64| {
        for (pts, key, payload) in samples {
            writer.write(pts + shift, *key, payload.clone()).unwrap();
        }
    };
    write_all(&mut video, &small_video, 0);
    write_all(&mut audio, &audio_samples, 0);
    // The new size: in the catalog, and in band in the next keyframe's parameter sets.
    media.update_video("video", large_config).unwrap();
    printed.push(catalogs.next("the catalog with the new size").await);
    write_all(&mut video, &large_video, shift);
    write_all(&mut audio, &audio_samples, shift);
    // Out of the catalog, its writer still open.
    media.remove("audio").unwrap();
    printed.push(catalogs.next("the catalog without the audio").await);
    subscriber_log.until("audio left the catalog: its track ends").await;
    subscriber_log.until("audio ended").await;
    let commentary = media.add_audio("commentary", audio_config(&audio_track.info)).unwrap();
    printed.push(catalogs.next("the catalog with the commentary").await);
    subscriber_log.until("commentary joined the catalog: not written").await;
    video.finish().unwrap();
    exits(&mut subscriber.0, "moqt subscribe").await;
    drop((audio, commentary));
    media.finish().unwrap();
    exits(&mut catalog_command.0, "moqt catalog").await;
    assert!(catalogs.rx.recv().await.is_none(), "four catalogs, no more: {printed:?}");

    // Every catalog, in order.
    let catalog = |json: &str| moqt::media::Catalog::from_json(json.as_bytes(), &Default::default()).unwrap();
    let sizes: Vec<Option<u32>> =
        printed.iter().map(|json| catalog(json).video.renditions.get("video").and_then(|v| v.coded_width)).collect();
    assert_eq!(sizes, [Some(160), Some(320), Some(320), Some(320)], "{printed:?}");
    let audio_names: Vec<Vec<String>> =
        printed.iter().map(|json| catalog(json).audio.renditions.keys().cloned().collect()).collect();
    assert_eq!(audio_names, [vec!["audio"], vec!["audio"], vec![], vec!["commentary"]], "{printed:?}");

    // The file: the first init segment's tracks, every video frame, a second init segment
    // with the new size before the large frames.
    let bytes = std::fs::read(&received).unwrap();
    let kinds: Vec<String> = top_level_boxes(&bytes).into_iter().map(|(kind, _)| kind).collect();
    let count = |name: &str| kinds.iter().filter(|kind| *kind == name).count();
    assert_eq!((count("ftyp"), count("moov")), (2, 2), "two init segments");
    let video_count = written_video.len();
    assert_eq!(
        streams(&received),
        format!("h264,160,120,{video_count}\nopus,48000,2,{}\n", pts_ms(&received, "a:0").len()),
        "the first init segment's tracks"
    );
    assert_eq!(
        streams(&from_init_segment(&received, 1)).lines().next(),
        Some(format!("h264,320,240,{}", large_video.len()).as_str())
    );
    let to_ms = |us: &[u64]| {
        let mut ms: Vec<i64> = us.iter().map(|t| (*t as f64 / 1000.0).round() as i64).collect();
        ms.sort_unstable();
        ms
    };
    // Every video frame at its time, up to the one constant ffmpeg adds to a track with negative
    // composition offsets (B-frames) so that no frame is presented before it is decoded.
    let from_first = |times: Vec<i64>| times.iter().map(|t| t - times[0]).collect::<Vec<i64>>();
    let mut written_us: Vec<i64> = written_video.iter().map(|t| *t as i64).collect();
    written_us.sort_unstable();
    assert_eq!(from_first(pts_in(&received, "v:0", 1e6)), from_first(written_us), "every video frame");
    assert_eq!(
        decoded_sizes(&received),
        [("160x120".to_string(), small_video.len()), ("320x240".to_string(), large_video.len())],
        "ffmpeg decodes both sizes"
    );
    // The audio ended where the catalog dropped it: a prefix of what was written.
    let audio_ms = pts_ms(&received, "a:0");
    assert!(!audio_ms.is_empty() && audio_ms[..] == to_ms(&written_audio)[..audio_ms.len()], "{audio_ms:?}");
}

/// A described (avcC) H.264 rendition whose record changes in the catalog: `Fmp4Export` writes a
/// second init segment with the new record and size before the first group after the change,
/// and carries the new parameter sets in band from there, so ffmpeg, which keeps the first moov,
/// decodes every frame at its size; a re-initialising reader sees the new size.
#[test]
fn a_changed_video_record_gets_a_new_init_segment_and_its_parameter_sets_in_band() {
    use moqt::media::{Catalog, Fmp4Export, MediaEvent, MediaFrame};
    let test = "a_changed_video_record_gets_a_new_init_segment_and_its_parameter_sets_in_band";
    if require_ffmpeg(test).is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("media-record-change");
    std::fs::create_dir_all(&dir).unwrap();
    let (small, _) = tracks_of(&encode(&dir, "small", "160x120", false));
    let (large, _) = tracks_of(&encode(&dir, "large", "320x240", false));
    let catalog_with = |track: &ClipTrack| {
        let mut catalog = Catalog::default();
        catalog.video.renditions.insert("video".into(), video_config(&track.info));
        catalog
    };
    let shift = small.samples.iter().map(|s| s.0).max().unwrap() + 33_334;
    let mut export = Fmp4Export::new(&catalog_with(&small), &["video"]).unwrap();
    let mut out = Vec::new();
    let mut group = 0;
    let mut push = |export: &mut Fmp4Export, samples: &[(u64, bool, bytes::Bytes)], shift: u64| {
        let mut out = Vec::new();
        for (pts, keyframe, payload) in samples {
            group += u64::from(*keyframe);
            let frame = MediaFrame { group, pts_us: pts + shift, keyframe: *keyframe, payload: payload.clone() };
            out.extend(export.push(0, MediaEvent::Frame(frame)).unwrap());
        }
        out
    };
    out.extend(push(&mut export, &small.samples, 0));
    let update = export.update(&catalog_with(&large)).unwrap();
    assert_eq!(update, moqt::media::ExportUpdate { changed: vec![0], ..Default::default() });
    out.extend(push(&mut export, &large.samples, shift));
    out.extend(export.finish().unwrap());
    let file = dir.join("received.mp4");
    std::fs::write(&file, out.concat()).unwrap();

    let boxes = top_level_boxes(&std::fs::read(&file).unwrap());
    assert_eq!(boxes.iter().filter(|(kind, _)| kind == "moov").count(), 2, "{boxes:?}");
    let count = small.samples.len() + large.samples.len();
    assert_eq!(streams(&file), format!("h264,160,120,{count}\n"));
    assert_eq!(streams(&from_init_segment(&file, 1)), format!("h264,320,240,{}\n", large.samples.len()));
    assert_eq!(
        decoded_sizes(&file),
        [("160x120".to_string(), small.samples.len()), ("320x240".to_string(), large.samples.len())]
    );
}

/// `moqt catalog` prints the catalog as it changes, through moqt's relay: the first catalog, the
/// same group's RFC 7396 merge patch applied to it (a rendition resized, one added, a field
/// removed with null), then a newer group's whole catalog; each printed once, in order, and the
/// command ends with the broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moqt_catalog_prints_each_catalog_as_it_changes_merge_patches_included() {
    use moqt::media::{CATALOG_TRACK, Catalog, priority};
    use moqt::model::{BroadcastProducer, OriginProducer, Route, TrackInfo};
    let relay = Relay::start_moqt_on(crate::relay::free_port());
    let version = Version::Lite06;
    let origin = OriginProducer::default();
    let broadcast = BroadcastProducer::default();
    let info = TrackInfo { priority: priority::CATALOG, ..TrackInfo::default() };
    let mut track = broadcast.create_track(CATALOG_TRACK, info).unwrap();
    let path = moqt::Path::new("clip").unwrap();
    let _published = origin.publish(path, broadcast.consume(), Route::local()).unwrap();
    let _session = connect_publisher(&relay, version, &origin).await;

    let first = r#"{"video":{"renditions":{"video":{"codec":"avc1.64001e","codedWidth":640,"codedHeight":360,"bitrate":1000000}}}}"#;
    let patch = r#"{"video":{"renditions":{"video":{"codedWidth":1280,"codedHeight":720,"bitrate":null}}},"audio":{"renditions":{"audio":{"codec":"opus","sampleRate":48000,"numberOfChannels":2}}}}"#;
    let patched = r#"{"video":{"renditions":{"video":{"codec":"avc1.64001e","codedWidth":1280,"codedHeight":720}}},"audio":{"renditions":{"audio":{"codec":"opus","sampleRate":48000,"numberOfChannels":2}}}}"#;
    let newer = r#"{"audio":{"renditions":{"audio":{"codec":"opus","sampleRate":48000,"numberOfChannels":1}}}}"#;
    let mut group = track.append_group().unwrap();
    group.write(0, first).unwrap();

    let fp: String = relay.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    let url = format!("moql://localhost:{}/", relay.addr.port());
    let mut command = Killed(
        Command::new(MOQT)
            .args(["catalog", &url, "--tls-fingerprint", &fp, "--broadcast", "clip", "--version", version.alpn()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = Lines::of(command.0.stdout.take().unwrap());
    let mut printed = vec![lines.next("the first catalog").await];
    // Each change once the one before is printed: a newer catalog supersedes one not yet read.
    group.write(0, patch).unwrap();
    printed.push(lines.next("the patched catalog").await);
    group.finish().unwrap();
    let mut group = track.append_group().unwrap();
    group.write(0, newer).unwrap();
    group.finish().unwrap();
    printed.push(lines.next("the newer group's catalog").await);
    track.finish();
    broadcast.finish();
    exits(&mut command.0, "moqt catalog").await;
    assert!(lines.rx.recv().await.is_none(), "three catalogs, no more: {printed:?}");

    let parse = |json: &str| Catalog::from_json(json.as_bytes(), &Default::default()).unwrap();
    let expected: Vec<Catalog> = [first, patched, newer].into_iter().map(parse).collect();
    let printed: Vec<Catalog> = printed.iter().map(|json| parse(json)).collect();
    assert_eq!(printed, expected);
}
