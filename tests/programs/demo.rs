//! The README's main-job command, run as written (on the debug build the suite already has):
//! scripts/demo.sh installs the library into a scratch prefix, builds every C example through
//! the Makefile and pkg-config, starts `moqt relay`, and the C subscriber prints the C publisher's
//! frames with their latency, then the track's clean end.

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
}
