//! The GStreamer plugin (gst/): built with its Makefile against libmoqt.so (C11, -Wall -Wextra
//! -Werror), listed by gst-inspect-1.0, and run in gst-launch-1.0 pipelines: x264enc (+ opusenc)
//! into moqtsink, through moqt's relay and through moq-relay, out of moqtsrc into the decoders
//! (every buffer, caps, PTS, keyframe flags, EOS at the end); moqtsink into `moqt subscribe --media
//! fmp4` (a valid MP4 by ffprobe); `moqt publish --media fmp4` (legacy and CMAF) into moqtsrc.
//!
//! Skipped with a message when GStreamer is not installed, except under CI=true, where
//! scripts/test.sh installs it and its absence fails the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::build::{library_dir, target_dir};
use crate::process::*;
use crate::relay::{Relay, require_relay};

const MOQT: &str = env!("CARGO_BIN_EXE_moqt");
const CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h264-opus-cmaf.mp4");
/// Every pipeline ends well within this, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(90);

/// The elements the pipelines use besides moqt's.
const ELEMENTS: &[&str] = &[
    "videotestsrc",
    "audiotestsrc",
    "x264enc",
    "h264parse",
    "avdec_h264",
    "opusenc",
    "tee",
    "queue",
    "fakesink",
    "matroskamux",
    "filesink",
];

/// GStreamer with its development files and the elements above, or `None` with a message (a
/// failure under CI=true).
fn require_gst(test: &str) -> Option<()> {
    let quiet = |program: &str, args: &[&str]| {
        Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    let mut missing: Vec<String> = Vec::new();
    if !quiet("pkg-config", &["--exists", "gstreamer-1.0", "gstreamer-base-1.0", "gstreamer-pbutils-1.0"]) {
        missing.push("the GStreamer development files".into());
    }
    if !quiet("gst-launch-1.0", &["--version"]) {
        missing.push("gst-launch-1.0".into());
    }
    for element in ELEMENTS {
        if !quiet("gst-inspect-1.0", &["--exists", element]) {
            missing.push((*element).into());
        }
    }
    if missing.is_empty() {
        return Some(());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: GStreamer is missing ({}) but CI=true: scripts/test.sh installs it",
        missing.join(", ")
    );
    eprintln!(
        "\n*** {test}: SKIPPED: GStreamer not installed ({}); scripts/test.sh installs it ***\n",
        missing.join(", ")
    );
    None
}

/// The directory holding libgstmoqt.so, built once per run with gst/Makefile.
fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = target_dir().join("gst-plugin");
        let output = Command::new("make")
            .arg("-C")
            .arg(manifest.join("gst"))
            .arg(format!("MOQT_BUILD={}", library_dir().display()))
            .arg(format!("MOQT_INCLUDE={}", manifest.join("include").display()))
            .arg(format!("OUT={}", out.display()))
            .output()
            .expect("make runs (scripts/test.sh installs it)");
        assert!(
            output.status.success(),
            "gst/ does not build cleanly: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(out.join("libgstmoqt.so").exists());
        // Build the registry once, before any pipeline runs.
        let status = gst_command(&out, "gst-inspect-1.0").arg("moqt").stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "gst-inspect-1.0 does not load the plugin");
        out
    })
}

fn gst_command(dir: &Path, program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("GST_PLUGIN_PATH", dir).env("GST_REGISTRY", dir.join("registry.bin"));
    command
}

fn gst(program: &str) -> Command {
    gst_command(plugin_dir(), program)
}

/// Where a test's logs and files go.
fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gst");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child whose stdout and stderr go to `log`, killed if the test fails first.
fn spawn_logged(mut command: Command, log: &Path) -> Killed {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Killed(command.stdout(Stdio::from(out)).stderr(Stdio::from(err)).spawn().unwrap())
}

/// Waits (bounded) for the child to exit successfully; the log explains a failure.
fn finish(mut child: Killed, what: &str, log: &Path) -> String {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!("{what} did not finish in {LIMIT:?}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "{what} failed ({status}): {text}");
    text
}

/// Waits (bounded) until the log contains `needle` (the child is still running).
fn wait_for_log(child: &mut Child, log: &Path, needle: &str, what: &str) {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited ({status}) before {needle:?}: {text}");
        }
        assert!(started.elapsed() < LIMIT, "{what}: no {needle:?} in {LIMIT:?}: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One packet of a stream as the container holds it.
#[derive(Debug, Clone, Copy)]
struct Packet {
    pts_ms: i64,
    keyframe: bool,
}

/// A stream's packets (`v:0`, `a:0`) in file order.
fn packets(file: &Path, stream: &str) -> Vec<Packet> {
    let text = ffprobe(file, &["-select_streams", stream, "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"]);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (pts, flags) = line.split_once(',').unwrap_or_else(|| panic!("{line}"));
            Packet { pts_ms: (pts.parse::<f64>().unwrap() * 1000.0).round() as i64, keyframe: flags.starts_with('K') }
        })
        .collect()
}

/// How many frames of a stream decode.
fn decoded_frames(file: &Path, stream: &str) -> usize {
    let text = ffprobe(
        file,
        &["-count_frames", "-select_streams", stream, "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"],
    );
    text.trim().parse().unwrap_or_else(|_| panic!("nb_read_frames: {text}"))
}

/// Codec, width, height, sample rate and channels of each stream, one line each.
fn stream_info(file: &Path) -> String {
    ffprobe(file, &["-show_entries", "stream=codec_name,width,height,sample_rate,channels", "-of", "csv=p=0"])
}

fn assert_pts_increasing(packets: &[Packet], what: &str) {
    let pts: Vec<i64> = packets.iter().map(|p| p.pts_ms).collect();
    assert!(pts.windows(2).all(|w| w[0] < w[1]), "{what}: PTS not increasing: {pts:?}");
}

/// A `moqt relay` on loopback: the URL prefix to use and the certificate fingerprint.
fn moqt_relay() -> (Killed, String, String) {
    let (quic, http) = (free_udp(), free_tcp());
    let child = moqt_relay_at(quic, http, Stdio::null(), &[]);
    let fp = fingerprint(http);
    (child, format!("moql://localhost:{quic}/gst"), fp)
}

/// The sending pipeline: 60 frames of 320x240 H.264 at 30 fps, a keyframe every 30, in real
/// time; with `audio`, also 100 Opus packets of 20 ms (opusenc adds one at the end for its
/// lookahead: 101).
fn sender(url: &str, fp: &str, broadcast: &str, audio: bool, container: &str) -> Command {
    sender_with_bframes(url, fp, broadcast, audio, container, 0)
}

/// [`sender`] with `bframes` B-frames between reference frames (0: none, the low-latency tuning).
fn sender_with_bframes(url: &str, fp: &str, broadcast: &str, audio: bool, container: &str, bframes: u32) -> Command {
    let mut command = gst("gst-launch-1.0");
    command.args(["moqtsink", "name=s", &format!("url={url}"), &format!("broadcast={broadcast}")]);
    command.arg(format!("container={container}"));
    command.arg(format!("tls-fingerprint={fp}"));
    command.args(["videotestsrc", "num-buffers=60", "is-live=true", "!"]);
    command.args(["video/x-raw,format=I420,width=320,height=240,framerate=30/1", "!"]);
    command.args(["x264enc", "key-int-max=30", "speed-preset=ultrafast"]);
    if bframes == 0 {
        command.arg("tune=zerolatency");
    } else {
        command.arg(format!("bframes={bframes}"));
    }
    command.arg("!");
    command.args(["h264parse", "!", "s.video_0"]);
    if audio {
        command.args(["audiotestsrc", "num-buffers=100", "samplesperbuffer=960", "is-live=true", "!"]);
        command.args(["audio/x-raw,rate=48000,channels=2", "!", "opusenc", "!", "s.audio_0"]);
    }
    command
}

/// The receiving pipeline: moqtsrc from the oldest group kept; video through h264parse into a
/// tee, one branch decoded (avdec_h264, any decoding error fails the pipeline), one written with
/// the audio (with `audio`) into `out` (Matroska) for ffprobe to read every packet's PTS and
/// keyframe flag as moqtsrc gave them.
fn receiver(url: &str, fp: &str, broadcast: &str, audio: bool, out: &Path) -> Command {
    let mut command = gst("gst-launch-1.0");
    command.args(["moqtsrc", "name=s", &format!("url={url}"), &format!("broadcast={broadcast}")]);
    command.args([&format!("tls-fingerprint={fp}"), "start=oldest", "latency=5000"]);
    command.args(["s.", "!", "video/x-h264", "!", "h264parse", "!", "tee", "name=t"]);
    command.args(["t.", "!", "queue", "!", "avdec_h264", "!", "fakesink"]);
    // Caps before the muxer: gst-launch picks its request pad (video_%u, audio_%u) from them.
    command.args(["t.", "!", "queue", "!", "video/x-h264", "!", "mux."]);
    if audio {
        command.args(["s.", "!", "audio/x-opus", "!", "queue", "!", "audio/x-opus", "!", "mux."]);
    }
    command.args(["matroskamux", "name=mux", "!", "filesink", &format!("location={}", out.display())]);
    command
}

/// moqtsink to moqtsrc through the relay at `url`: every frame, with its caps, PTS and keyframe
/// flags, decoded; EOS at both ends.
fn sink_to_src(url: &str, fp: &str, audio: bool, container: &str, label: &str) {
    let dir = work_dir();
    let (recv_log, send_log) = (dir.join(format!("{label}-recv.log")), dir.join(format!("{label}-send.log")));
    let out = dir.join(format!("{label}.mkv"));
    let mut recv = spawn_logged(receiver(url, fp, label, audio, &out), &recv_log);
    // moqtsrc is connecting and waiting for the broadcast before anything is sent.
    wait_for_log(&mut recv.0, &recv_log, "Setting pipeline to PLAYING", &format!("{label}: receiver"));
    let send = spawn_logged(sender(url, fp, label, audio, container), &send_log);
    let sent = finish(send, &format!("{label}: sender"), &send_log);
    assert!(sent.contains("Got EOS from element"), "{label}: the sender did not end with EOS: {sent}");
    let log = finish(recv, &format!("{label}: receiver"), &recv_log);
    assert!(log.contains("Got EOS from element"), "{label}: the receiver did not end with EOS: {log}");

    let info = stream_info(&out);
    assert!(info.lines().any(|line| line == "h264,320,240"), "{label}: {info}");
    let video = packets(&out, "v:0");
    assert_eq!(video.len(), 60, "{label}: video buffers out of moqtsrc");
    assert_pts_increasing(&video, label);
    let keyframes: Vec<usize> = video.iter().enumerate().filter(|(_, p)| p.keyframe).map(|(i, _)| i).collect();
    assert_eq!(keyframes, vec![0, 30], "{label}: keyframes (buffers without DELTA_UNIT)");
    // 30 fps: 59 intervals of 33.3 ms, as sent.
    let span = video[59].pts_ms - video[0].pts_ms;
    assert!((1965..=1968).contains(&span), "{label}: 59 frame intervals span {span} ms");
    assert_eq!(decoded_frames(&out, "v:0"), 60, "{label}: video frames decoded");
    if audio {
        assert!(info.lines().any(|line| line == "opus,48000,2"), "{label}: {info}");
        let audio = packets(&out, "a:0");
        assert!((100..=101).contains(&audio.len()), "{label}: {} audio buffers", audio.len());
        assert_pts_increasing(&audio, label);
        assert_eq!(decoded_frames(&out, "a:0"), audio.len(), "{label}: audio packets decoded");
    }
}

#[test]
fn gst_inspect_lists_moqtsink_and_moqtsrc_with_properties_and_pads() {
    if require_gst("gst_inspect_lists_moqtsink_and_moqtsrc_with_properties_and_pads").is_none() {
        return;
    }
    let inspect = |what: &str| {
        let output = gst("gst-inspect-1.0").arg(what).output().unwrap();
        assert!(output.status.success(), "gst-inspect-1.0 {what}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let plugin = inspect("moqt");
    assert!(
        plugin.contains("moqtsink: Media over QUIC sink") && plugin.contains("moqtsrc: Media over QUIC source"),
        "{plugin}"
    );
    let connection =
        ["url", "broadcast", "tls-fingerprint", "tls-root", "tls-disable-verify", "idle-timeout", "status", "version"];
    let sink = inspect("moqtsink");
    for text in connection.iter().chain(&["container", "send-bitrate", "flush-timeout", "video_%u", "audio_%u"]) {
        assert!(sink.contains(text), "moqtsink: no {text}: {sink}");
    }
    for text in
        ["video/x-h264", "video/x-h265", "video/x-av1", "video/x-vp8", "video/x-vp9", "audio/x-opus", "audio/mpeg"]
    {
        assert!(sink.contains(text), "moqtsink: no {text} in its pad templates: {sink}");
    }
    let src = inspect("moqtsrc");
    for text in
        connection.iter().chain(&["latency", "renditions", "start", "video_%s", "audio_%s", "Availability: Sometimes"])
    {
        assert!(src.contains(text), "moqtsrc: no {text}: {src}");
    }
}

#[test]
fn h264_from_moqtsink_to_moqtsrc_through_moqts_relay() {
    let test = "h264_from_moqtsink_to_moqtsrc_through_moqts_relay";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    sink_to_src(&url, &fp, false, "legacy", "moqt-relay-h264");
}

#[test]
fn h264_and_opus_from_moqtsink_to_moqtsrc_through_moqts_relay() {
    let test = "h264_and_opus_from_moqtsink_to_moqtsrc_through_moqts_relay";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    sink_to_src(&url, &fp, true, "legacy", "moqt-relay-av");
}

/// The same A/V pair with moqtsink's container=cmaf: libmoqt packs each sample in its own
/// moof+mdat against init segments it builds from the caps.
#[test]
fn h264_and_opus_as_cmaf_from_moqtsink_to_moqtsrc_through_moqts_relay() {
    let test = "h264_and_opus_as_cmaf_from_moqtsink_to_moqtsrc_through_moqts_relay";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    sink_to_src(&url, &fp, true, "cmaf", "moqt-relay-av-cmaf");
}

#[test]
fn h264_and_opus_from_moqtsink_to_moqtsrc_through_moq_relay() {
    let test = "h264_and_opus_from_moqtsink_to_moqtsrc_through_moq_relay";
    let Some(binary) = require_relay(test) else { return };
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let relay = Relay::start(&binary, None);
    let fp: String = relay.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    let url = format!("moql://localhost:{}/", relay.addr.port());
    sink_to_src(&url, &fp, true, "legacy", "moq-relay-av");
}

/// moqtsink's broadcast comes out of `moqt subscribe --media fmp4` as an MP4 ffprobe reads with
/// the sent codecs, size, rate and packet counts; with B-frames too, where moqtsink hands each
/// sample's decode time to the CMAF libmoqt packs (without it, decode times went backwards and
/// the frames after each keyframe were refused).
#[test]
fn moqtsink_into_moqt_subscribe_fmp4_gives_a_valid_mp4() {
    let test = "moqtsink_into_moqt_subscribe_fmp4_gives_a_valid_mp4";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    let dir = work_dir();
    for (container, bframes) in [("legacy", 0), ("cmaf", 0), ("cmaf", 2)] {
        let case = if bframes > 0 { format!("{container}-bframes") } else { container.to_string() };
        let broadcast = format!("tomp4-{case}");
        let received = dir.join(format!("moqtsink-subscribe-{case}.mp4"));
        let sub_log = dir.join(format!("moqtsink-subscribe-{case}.log"));
        let send_log = dir.join(format!("moqtsink-subscribe-{case}-send.log"));
        let subscriber = Killed(
            Command::new(MOQT)
                .args(["subscribe", &url, "--tls-fingerprint", &fp, "--broadcast", &broadcast, "--media", "fmp4"])
                // Not named: moqtsink holds the catalog until both pads' renditions are in it, and
                // the command writes the renditions of the first catalog it reads.
                .args(["--start", "oldest"])
                .stdout(Stdio::from(std::fs::File::create(&received).unwrap()))
                .stderr(Stdio::from(std::fs::File::create(&sub_log).unwrap()))
                .spawn()
                .unwrap(),
        );
        let send = spawn_logged(sender_with_bframes(&url, &fp, &broadcast, true, container, bframes), &send_log);
        finish(send, "moqtsink", &send_log);
        finish(subscriber, "moqt subscribe --media fmp4", &sub_log);
        let entries = "stream=codec_name,width,height,sample_rate,channels,nb_read_packets";
        let streams = ffprobe(&received, &["-count_packets", "-show_entries", entries, "-of", "csv=p=0"]);
        let lines: Vec<&str> = streams.lines().collect();
        assert_eq!(lines.len(), 2, "{case}: {streams}");
        assert!(lines.contains(&"h264,320,240,60"), "{case}: {streams}");
        assert!(lines.contains(&"opus,48000,2,100") || lines.contains(&"opus,48000,2,101"), "{case}: {streams}");
        if bframes > 0 {
            // B-frames show after the frames they are decoded after: some packet's presentation
            // time differs from its decode time, as the encoder gave them.
            let packets =
                ffprobe(&received, &["-select_streams", "v", "-show_entries", "packet=pts,dts", "-of", "csv=p=0"]);
            let reordered = packets.lines().filter(|line| line.split_once(',').is_some_and(|(pts, dts)| pts != dts));
            assert!(reordered.count() > 0, "{case}: no composition offsets: {packets}");
        }
    }
}

/// The fixture clip published by `moqt publish --media fmp4` (legacy and CMAF containers) plays
/// through moqtsrc: every video frame (60) and audio packet (101), with the clip's codecs, size and
/// keyframes, PTS spaced as in the clip (moqtsrc starts them at the running time of the first
/// arrival), every frame decoded.
#[test]
fn moqt_publish_fmp4_plays_through_moqtsrc() {
    let test = "moqt_publish_fmp4_plays_through_moqtsrc";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    let dir = work_dir();
    let clip = Path::new(CLIP);
    // The clip's times relative to its first packet, and its keyframes, in decode order.
    let relative = |packets: &[Packet]| -> Vec<(i64, bool)> {
        let first = packets.first().map_or(0, |p| p.pts_ms);
        packets.iter().map(|p| (p.pts_ms - first, p.keyframe)).collect()
    };
    let (clip_video, clip_audio) = (relative(&packets(clip, "v:0")), relative(&packets(clip, "a:0")));
    assert_eq!((clip_video.len(), clip_audio.len()), (60, 101));
    for container in ["legacy", "cmaf"] {
        let broadcast = format!("clip-{container}");
        let recv_log = dir.join(format!("publish-{container}-recv.log"));
        let out = dir.join(format!("publish-{container}.mkv"));
        let mut command = gst("gst-launch-1.0");
        command.args(["moqtsrc", "name=s", &format!("url={url}"), &format!("broadcast={broadcast}")]);
        command.args([&format!("tls-fingerprint={fp}"), "start=oldest", "latency=5000"]);
        command.args(["s.", "!", "video/x-h264", "!", "queue", "!", "h264parse", "!", "tee", "name=t"]);
        command.args([
            "t.",
            "!",
            "queue",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
            "t.",
            "!",
            "queue",
            "!",
            "video/x-h264",
            "!",
            "mux.",
        ]);
        command.args(["s.", "!", "audio/x-opus", "!", "queue", "!", "audio/x-opus", "!", "mux."]);
        command.args(["matroskamux", "name=mux", "!", "filesink", &format!("location={}", out.display())]);
        let mut recv = spawn_logged(command, &recv_log);
        wait_for_log(&mut recv.0, &recv_log, "Setting pipeline to PLAYING", "moqtsrc");
        let mut publisher = Command::new(MOQT);
        publisher
            .args(["publish", &url, "--tls-fingerprint", &fp, "--broadcast", &broadcast, "--media", "fmp4"])
            .args(["--container", container, "--realtime"])
            .stdin(Stdio::from(std::fs::File::open(CLIP).unwrap()));
        let publish_log = dir.join(format!("publish-{container}.log"));
        let publisher = spawn_logged(publisher, &publish_log);
        finish(publisher, "moqt publish --media fmp4", &publish_log);
        let log = finish(recv, &format!("moqtsrc ({container})"), &recv_log);
        assert!(log.contains("Got EOS from element"), "{container}: no EOS: {log}");
        let info = stream_info(&out);
        assert!(
            info.lines().any(|l| l == "h264,160,120") && info.lines().any(|l| l == "opus,48000,1"),
            "{container}: {info}"
        );
        let (video, audio) = (packets(&out, "v:0"), packets(&out, "a:0"));
        // Matroska keeps milliseconds: allow 1 ms of rounding on each side.
        let close = |got: &[(i64, bool)], want: &[(i64, bool)]| {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g.0 - w.0).abs() <= 1 && g.1 == w.1)
        };
        assert!(
            close(&relative(&video), &clip_video),
            "{container}: video {:?} vs the clip's {clip_video:?}",
            relative(&video)
        );
        assert!(
            close(&relative(&audio), &clip_audio),
            "{container}: audio {:?} vs the clip's {clip_audio:?}",
            relative(&audio)
        );
        assert_eq!(decoded_frames(&out, "v:0"), 60, "{container}: video frames decoded");
        assert_eq!(decoded_frames(&out, "a:0"), 101, "{container}: audio packets decoded");
    }
}

/// Interrupts a gst-launch-1.0 (SIGINT: it sets the pipeline to NULL) and waits, bounded, for it to
/// exit successfully.
fn interrupt(child: Killed, what: &str, log: &Path) {
    let status = Command::new("kill").args(["-INT", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    finish(child, what, log);
}

/// Both elements stop mid-stream when the pipeline does (moqtsrc's streaming task waiting for a
/// frame from a stalled publisher is woken by moqt_pull_set_flushing before its pad is
/// deactivated; the sink's client is freed), and moqtsrc also while it still waits for a
/// broadcast that never comes.
#[test]
fn pipelines_stop_mid_stream_and_while_waiting() {
    if require_gst("pipelines_stop_mid_stream_and_while_waiting").is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    let dir = work_dir();
    let logged = |name: &str, mut command: Command| {
        let log = dir.join(format!("stop-{name}.log"));
        command.env("GST_DEBUG", "moqt:4");
        (spawn_logged(command, &log), log)
    };
    let source = |broadcast: &str| {
        let mut command = gst("gst-launch-1.0");
        command.args(["moqtsrc", &format!("url={url}"), &format!("broadcast={broadcast}")]);
        command.args([&format!("tls-fingerprint={fp}"), "!", "h264parse", "!", "avdec_h264", "!", "fakesink"]);
        command
    };
    // Waiting for a broadcast nobody publishes.
    let (mut waiting, waiting_log) = logged("waiting", source("nobody"));
    wait_for_log(&mut waiting.0, &waiting_log, "Setting pipeline to PLAYING", "moqtsrc waiting");
    interrupt(waiting, "moqtsrc waiting for its broadcast", &waiting_log);
    // Mid-stream: a 20 s sender, stopped once frames flow.
    let (mut recv, recv_log) = logged("recv", source("long"));
    wait_for_log(&mut recv.0, &recv_log, "Setting pipeline to PLAYING", "moqtsrc");
    let mut sender = gst("gst-launch-1.0");
    sender.args(["moqtsink", "name=s", &format!("url={url}"), "broadcast=long", &format!("tls-fingerprint={fp}")]);
    sender.args(["videotestsrc", "num-buffers=600", "is-live=true", "!"]);
    sender.args(["video/x-raw,format=I420,width=320,height=240,framerate=30/1", "!", "x264enc", "key-int-max=30"]);
    sender.args(["tune=zerolatency", "speed-preset=ultrafast", "!", "h264parse", "!", "s.video_0"]);
    let (send, send_log) = logged("send", sender);
    wait_for_log(&mut recv.0, &recv_log, "pad video_video_0", "moqtsrc");
    // The sender stalls (SIGSTOP): moqtsrc's task now waits for a frame that does not come, and
    // must still stop at once (a pad's deactivation waits for the task's stream lock).
    let signal = |name: &str, child: &Killed| {
        assert!(Command::new("kill").args([name, &child.0.id().to_string()]).status().unwrap().success());
    };
    signal("-STOP", &send);
    interrupt(recv, "moqtsrc mid-stream, its publisher stalled", &recv_log);
    signal("-CONT", &send);
    interrupt(send, "moqtsink mid-stream", &send_log);
}

/// moqtsrc and moqtsink in one gst-launch-1.0 under Valgrind, re-publishing a live broadcast
/// (x264enc + opusenc into moqtsink, outside Valgrind) as another that a third pipeline records:
/// no invalid access, no use of uninitialised memory, no memory definitely lost, in the plugin or
/// in libmoqt (tests/valgrind-gst.supp names the GLib report it hides). Valgrind is slow to start
/// and to join, so the origin runs 10 s and the copy is checked for content, not a frame count.
#[test]
fn moqtsrc_into_moqtsink_under_valgrind() {
    let test = "moqtsrc_into_moqtsink_under_valgrind";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    if !Command::new("valgrind").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: valgrind is missing but CI=true");
        eprintln!("\n*** {test}: SKIPPED: valgrind not found (scripts/test.sh installs it) ***\n");
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    let dir = work_dir();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (check_log, vg_log, origin_log) =
        (dir.join("valgrind-check.log"), dir.join("valgrind.log"), dir.join("valgrind-origin.log"));
    let out = dir.join("valgrind-copy.mkv");
    let mut check = spawn_logged(receiver(&url, &fp, "copy", true, &out), &check_log);
    wait_for_log(&mut check.0, &check_log, "Setting pipeline to PLAYING", "the copy's receiver");

    let mut republish = gst("valgrind");
    republish.env("G_SLICE", "always-malloc");
    republish.args(["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite"]);
    for supp in ["tests/valgrind.supp", "tests/valgrind-gst.supp"] {
        republish.arg(format!("--suppressions={}", manifest.join(supp).display()));
    }
    republish.args(["gst-launch-1.0", "moqtsrc", "name=s", &format!("url={url}"), "broadcast=origin"]);
    republish.args([&format!("tls-fingerprint={fp}"), "start=oldest", "latency=5000"]);
    republish.args(["s.", "!", "video/x-h264", "!", "queue", "!", "m.video_0"]);
    republish.args(["s.", "!", "audio/x-opus", "!", "queue", "!", "m.audio_0"]);
    republish.args(["moqtsink", "name=m", &format!("url={url}"), "broadcast=copy", &format!("tls-fingerprint={fp}")]);
    let mut republish = spawn_logged(republish, &vg_log);
    wait_for_log(&mut republish.0, &vg_log, "Setting pipeline to PLAYING", "the pipeline under Valgrind");

    // 20 s of live media: the pipeline under Valgrind, on a loaded machine, has taken over 10 s to
    // read the catalog and subscribe to the renditions, and a subscription that comes after the
    // broadcast ended is refused (UNROUTABLE), as by moq-relay.
    let mut origin = gst("gst-launch-1.0");
    origin.args(["moqtsink", "name=s", &format!("url={url}"), "broadcast=origin", &format!("tls-fingerprint={fp}")]);
    origin.args(["videotestsrc", "num-buffers=600", "is-live=true", "!"]);
    origin.args(["video/x-raw,format=I420,width=320,height=240,framerate=30/1", "!", "x264enc", "key-int-max=30"]);
    origin.args(["tune=zerolatency", "speed-preset=ultrafast", "!", "h264parse", "!", "s.video_0"]);
    origin.args(["audiotestsrc", "num-buffers=1000", "samplesperbuffer=960", "is-live=true", "!"]);
    origin.args(["audio/x-raw,rate=48000,channels=2", "!", "opusenc", "!", "s.audio_0"]);
    finish(spawn_logged(origin, &origin_log), "the origin", &origin_log);
    let log = finish(republish, "moqtsrc ! moqtsink under Valgrind", &vg_log);
    assert!(log.contains("Got EOS from element") && log.contains("ERROR SUMMARY: 0 errors"), "{log}");
    finish(check, "the copy's receiver", &check_log);
    let (video, audio) = (decoded_frames(&out, "v:0"), decoded_frames(&out, "a:0"));
    assert!(video > 0 && audio > 0, "the copy: {video} video frames, {audio} audio packets decoded");
    assert!(packets(&out, "v:0")[0].keyframe, "the copy starts with a keyframe");
}

/// tests/c/gst_elements.c, GstCheck unit tests in C (-Wall -Wextra -Werror): properties and
/// defaults, refused settings, state changes with no relay listening (the client connects in the
/// background), a sink pad's caps, buffers and EOS, caps the sink refuses, the source to PLAYING
/// and back to NULL while it waits.
#[test]
fn gstcheck_unit_tests_in_c() {
    let test = "gstcheck_unit_tests_in_c";
    if require_gst(test).is_none() {
        return;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pkg = Command::new("pkg-config")
        .args(["--cflags", "--libs", "gstreamer-check-1.0", "gstreamer-1.0"])
        .output()
        .unwrap();
    assert!(pkg.status.success(), "{test}: pkg-config gstreamer-check-1.0 (libgstreamer1.0-dev)");
    let flags = String::from_utf8(pkg.stdout).unwrap();
    let binary = plugin_dir().join("gst_elements");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(manifest.join("tests/c/gst_elements.c"))
        .arg("-o")
        .arg(&binary)
        .args(flags.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "tests/c/gst_elements.c does not compile cleanly");
    let output = gst_command(plugin_dir(), binary.to_str().unwrap())
        .env("MOQT_TEST_URL", format!("moql://127.0.0.1:{}/test", free_udp()))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && text.contains("100%: Checks: 6, Failures: 0, Errors: 0"), "{text}");
}

/// Each codec of moqtsink's templates, one at a time through moqt's relay into moqtsrc and its
/// decoder: H.264 as byte-stream (the catalog from the first keyframe's parameter sets, frames in
/// band), H.265, VP8, VP9, AV1 (av1parse, obu-stream) and AAC; every buffer arrives, with the caps
/// its catalog entry gives. A codec whose encoder or decoder is missing is skipped with a message
/// (never under CI=true, where scripts/test.sh installs them).
#[test]
fn every_codec_from_moqtsink_to_moqtsrc() {
    let test = "every_codec_from_moqtsink_to_moqtsrc";
    if require_gst(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    let dir = work_dir();
    let raw = "videotestsrc num-buffers=30 is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=30/1";
    let cases: &[(&str, String, &str, &str, usize)] = &[
        (
            "h264-byte-stream",
            format!(
                "{raw} ! x264enc key-int-max=15 tune=zerolatency speed-preset=ultrafast ! video/x-h264,stream-format=byte-stream"
            ),
            "h264parse ! avdec_h264",
            "caps = video/x-h264, stream-format=(string)byte-stream",
            30,
        ),
        (
            "h265",
            format!("{raw} ! x265enc key-int-max=15 tune=zerolatency speed-preset=ultrafast ! h265parse"),
            "h265parse ! avdec_h265",
            "caps = video/x-h265",
            30,
        ),
        (
            "vp8",
            format!("{raw} ! vp8enc keyframe-max-dist=15 deadline=1"),
            "vp8dec",
            "caps = video/x-vp8, width=(int)320",
            30,
        ),
        (
            "vp9",
            format!("{raw} ! vp9enc keyframe-max-dist=15 deadline=1"),
            "vp9dec",
            "caps = video/x-vp9, width=(int)320",
            30,
        ),
        (
            "av1",
            "videotestsrc num-buffers=10 is-live=true ! video/x-raw,format=I420,width=160,height=120,framerate=10/1 ! \
             av1enc cpu-used=8 end-usage=cbr target-bitrate=200 ! av1parse"
                .to_string(),
            "av1parse ! av1dec",
            "caps = video/x-av1, stream-format=(string)obu-stream",
            10,
        ),
        (
            "aac",
            "audiotestsrc num-buffers=50 is-live=true ! avenc_aac ! aacparse".to_string(),
            "aacparse ! avdec_aac",
            "caps = audio/mpeg, mpegversion=(int)4",
            0,
        ),
    ];
    for container in ["legacy", "cmaf"] {
        for (codec, encode, decode, caps, count) in cases {
            let name = &format!("{codec}-{container}");
            let elements: Vec<&str> = encode
                .split('!')
                .chain(decode.split('!'))
                .filter_map(|part| part.split_whitespace().next())
                .filter(|element| !element.contains('/'))
                .collect();
            let missing: Vec<&&str> = elements
                .iter()
                .filter(|e| !Command::new("gst-inspect-1.0").args(["--exists", e]).status().is_ok_and(|s| s.success()))
                .collect();
            if !missing.is_empty() {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{test}: {name}: {missing:?} missing but CI=true"
                );
                eprintln!("\n*** {test}: {name} SKIPPED: {missing:?} not installed ***\n");
                continue;
            }
            let (recv_log, send_log) =
                (dir.join(format!("codec-{name}-recv.log")), dir.join(format!("codec-{name}-send.log")));
            let mut recv = gst("gst-launch-1.0");
            recv.env("GST_DEBUG", "moqt:4").arg("-v");
            recv.args([
                "moqtsrc",
                &format!("url={url}"),
                &format!("broadcast={name}"),
                &format!("tls-fingerprint={fp}"),
            ]);
            recv.args(["start=oldest", "latency=5000", "!"]).args(decode.split_whitespace()).args(["!", "fakesink"]);
            let mut recv = spawn_logged(recv, &recv_log);
            wait_for_log(&mut recv.0, &recv_log, "Setting pipeline to PLAYING", name);
            let mut send = gst("gst-launch-1.0");
            send.args(encode.split_whitespace()).arg("!");
            send.args([
                "moqtsink",
                &format!("url={url}"),
                &format!("broadcast={name}"),
                &format!("tls-fingerprint={fp}"),
            ]);
            send.arg(format!("container={container}"));
            finish(spawn_logged(send, &send_log), &format!("{name}: sender"), &send_log);
            let log = finish(recv, &format!("{name}: receiver"), &recv_log);
            // Packed as CMAF, byte-stream H.264 comes out length-prefixed (avc3: the parameter sets
            // stay in band, and the init segment's record gives codec_data).
            let caps = match (*codec, container) {
                ("h264-byte-stream", "cmaf") => "caps = video/x-h264, stream-format=(string)avc3",
                _ => caps,
            };
            assert!(log.contains(caps), "{name}: no {caps:?}: {log}");
            if *count > 0 {
                assert!(log.contains(&format!("after {count} buffers")), "{name}: not {count} buffers: {log}");
            } else {
                assert!(log.contains("end of audio_0 after"), "{name}: no clean end: {log}");
            }
        }
    }
}

/// The relay's `moqt_frames_total{direction="out"}` (0 while it does not answer).
fn frames_out(http: u16) -> u64 {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", http)) else { return 0 };
    use std::io::{Read, Write};
    if stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_err() {
        return 0;
    }
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .find_map(|line| line.strip_prefix("moqt_frames_total{direction=\"out\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the relay at `http` delivered at least `count` frames.
fn wait_frames_out(http: u16, count: u64, what: &str) {
    let started = Instant::now();
    while frames_out(http) < count {
        assert!(started.elapsed() < LIMIT, "{what}: the relay did not deliver {count} frames in {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The relay is killed (SIGKILL, no GOAWAY) mid-stream and started again on the same ports: both
/// pipelines survive (each client notices the silence after its `idle-timeout` and reconnects by
/// itself), moqtsrc resumes at a keyframe after the gap, every buffer it pushes decodes, PTS keep
/// increasing, and both end with EOS.
#[test]
fn pipelines_survive_a_relay_restart_mid_stream() {
    let test = "pipelines_survive_a_relay_restart_mid_stream";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (quic, http) = (free_udp(), free_tcp());
    // Fixed ports: the restart comes back where the pipelines look for it.
    let relay = moqt_relay_at(quic, http, Stdio::null(), &[]);
    let url = format!("moql://localhost:{quic}/gst");
    let dir = work_dir();
    let (recv_log, send_log, out) =
        (dir.join("restart-recv.log"), dir.join("restart-send.log"), dir.join("restart.mkv"));
    // A new certificate comes with each start: verification is off on both sides.
    let mut receiver = gst("gst-launch-1.0");
    receiver.args(["moqtsrc", "name=s", &format!("url={url}"), "broadcast=restart", "tls-disable-verify=true"]);
    receiver.arg("idle-timeout=3000");
    receiver.args(["s.", "!", "video/x-h264", "!", "h264parse", "!", "tee", "name=t"]);
    receiver.args(["t.", "!", "queue", "!", "avdec_h264", "!", "fakesink"]);
    receiver.args(["t.", "!", "queue", "!", "video/x-h264", "!", "matroskamux", "!"]);
    receiver.args(["filesink", &format!("location={}", out.display())]);
    let mut recv = spawn_logged(receiver, &recv_log);
    wait_for_log(&mut recv.0, &recv_log, "Setting pipeline to PLAYING", "receiver");
    // 20 s of live video, a keyframe every second: the clients notice the vanished relay only by
    // its silence (3 s of it, their idle-timeout), and the stream goes on well past that.
    let mut sender = gst("gst-launch-1.0");
    sender.args(["moqtsink", "name=s", &format!("url={url}"), "broadcast=restart", "tls-disable-verify=true"]);
    sender.arg("idle-timeout=3000");
    sender.args(["videotestsrc", "num-buffers=600", "is-live=true", "!"]);
    sender.args(["video/x-raw,format=I420,width=320,height=240,framerate=30/1", "!"]);
    sender.args(["x264enc", "key-int-max=30", "tune=zerolatency", "speed-preset=ultrafast", "!"]);
    sender.args(["h264parse", "!", "s.video_0"]);
    let send = spawn_logged(sender, &send_log);

    // Mid-stream: frames are flowing to the receiver.
    wait_frames_out(http, 30, "before the restart");
    drop(relay);
    let _relay = moqt_relay_at(quic, http, Stdio::null(), &[]);
    // Both clients found the new relay: it delivers again.
    wait_frames_out(http, 30, "after the restart");

    let sent = finish(send, "sender", &send_log);
    assert!(sent.contains("Got EOS from element"), "the sender did not end with EOS: {sent}");
    let log = finish(recv, "receiver", &recv_log);
    assert!(log.contains("Got EOS from element"), "the receiver did not end with EOS: {log}");
    let video = packets(&out, "v:0");
    assert_pts_increasing(&video, test);
    assert!(video[0].keyframe, "the first buffer is a keyframe");
    assert_eq!(decoded_frames(&out, "v:0"), video.len(), "every buffer decodes (resumed at a keyframe)");
    // Some of the 600 frames may be lost in the outage; the stream went on to its end after it.
    let span = video.last().unwrap().pts_ms - video[0].pts_ms;
    assert!(video.len() >= 60 && video.len() <= 600, "{} buffers", video.len());
    assert!(span >= 15000, "the buffers span {span} ms: the stream did not go on after the restart");
    eprintln!("{test}: {} of 600 buffers, spanning {span} ms", video.len());
}

/// A caps change mid-stream (concat switches from 320x240 to 640x480 after 60 frames; x264enc
/// starts again with new parameter sets): moqtsink publishes the catalog again, moqtsrc gives its
/// pad the new caps from the next keyframe, and all 90 frames arrive and decode.
#[test]
fn a_caps_change_mid_stream_reaches_moqtsrc_as_new_caps() {
    let test = "a_caps_change_mid_stream_reaches_moqtsrc_as_new_caps";
    if require_gst(test).is_none() || require_ffprobe(test).is_none() {
        return;
    }
    let (_relay, url, fp) = moqt_relay();
    let dir = work_dir();
    for container in ["legacy", "cmaf"] {
        let broadcast = format!("renegotiate-{container}");
        let recv_log = dir.join(format!("renegotiate-{container}-recv.log"));
        let send_log = dir.join(format!("renegotiate-{container}-send.log"));
        let mut receiver = gst("gst-launch-1.0");
        receiver.env("GST_DEBUG", "moqt:4").arg("-v");
        receiver.args(["moqtsrc", &format!("url={url}"), &format!("broadcast={broadcast}")]);
        receiver.args([&format!("tls-fingerprint={fp}"), "start=oldest", "latency=5000", "!", "h264parse", "!"]);
        receiver.args(["avdec_h264", "!", "fakesink"]);
        let mut recv = spawn_logged(receiver, &recv_log);
        wait_for_log(&mut recv.0, &recv_log, "Setting pipeline to PLAYING", "receiver");
        let mut sender = gst("gst-launch-1.0");
        sender.env("GST_DEBUG", "moqt:4");
        sender.args(["concat", "name=c", "!", "videoconvert", "!", "x264enc", "key-int-max=15", "tune=zerolatency"]);
        sender.args(["speed-preset=ultrafast", "!", "h264parse", "!", "moqtsink", &format!("url={url}")]);
        sender.args([
            &format!("broadcast={broadcast}"),
            &format!("tls-fingerprint={fp}"),
            &format!("container={container}"),
        ]);
        // Live, so the receiver reads the first catalog before the second exists (a subscriber
        // joining later starts from the newest catalog).
        for (width, height, frames) in [(320, 240, 60), (640, 480, 30)] {
            sender.args(["videotestsrc", "is-live=true", &format!("num-buffers={frames}"), "!"]);
            sender.arg(format!("video/x-raw,format=I420,width={width},height={height},framerate=30/1"));
            sender.args(["!", "c."]);
        }
        let sent = finish(spawn_logged(sender, &send_log), &format!("{container}: sender"), &send_log);
        assert!(sent.contains("rendition video_0 updated in the catalog"), "{container}: no catalog update: {sent}");
        let log = finish(recv, &format!("{container}: receiver"), &recv_log);
        let caps_line = |width: u32| {
            log.lines().any(|line| {
                line.contains("GstMoqtSrc")
                    && line.contains("caps = video/x-h264")
                    && line.contains(&format!("width=(int){width}"))
            })
        };
        assert!(caps_line(320) && caps_line(640), "{container}: moqtsrc's pad caps went 320 then 640: {log}");
        assert!(log.contains("after 90 buffers"), "{container}: not 90 buffers: {log}");
    }
}
