//! The README's main-job command, run as written (on the debug build the suite already has):
//! scripts/demo.sh installs the library into a scratch prefix, builds every C example through
//! the Makefile and pkg-config, starts `moqt relay`, and the C subscriber prints the C publisher's
//! frames with their latency, then the track's clean end; then the media demo, whose received MP4
//! ffprobe reads with the source's codecs, sizes, frame counts, presentation times and duration
//! (within one frame).

use std::path::Path;
use std::process::Command;

#[test]
fn the_readme_demo_runs() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(manifest.join("scripts/demo.sh"))
        .env("MOQT_PROFILE", "debug")
        .current_dir(manifest)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("built: publisher subscriber subscriber_poll relay"), "{stdout}");
    let frames = stdout.lines().filter(|line| line.contains("latency")).count();
    assert!(frames >= 90, "90 frames with their latency, saw {frames}:\n{stdout}");
    // The publisher finishes its track and leaves at once; the subscriber sees a clean end.
    assert!(stdout.contains("subscriber: track ended cleanly"), "{stdout}");
    assert!(stdout.contains("== done: 90 frames"), "{stdout}");
    // Then the media part: what came back has the source's streams and times (ffprobe).
    assert!(stdout.contains("v:0 received: h264,640,360,120"), "{stdout}");
    assert!(stdout.contains("a:0 received: opus,48000,2,201"), "{stdout}");
    assert!(stdout.contains("timestamps: the same 120 presentation times"), "{stdout}");
    // The script fails on a duration off by more than one frame; this is its report that it compared.
    assert!(stdout.contains("(within one frame, 1/30 s)"), "{stdout}");
    assert!(
        stdout.contains("== done: target/demo-media/received.mp4") || stdout.contains("received.mp4 plays"),
        "{stdout}"
    );
}
