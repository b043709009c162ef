//! Progress of long-running commands on stderr (frames, bytes, bitrate), redrawn once a second on
//! one line, and only when stderr is a terminal: pipes and logs stay clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_secs(1);

pub struct Progress {
    label: &'static str,
    enabled: bool,
    frames: u64,
    bytes: u64,
    /// Bytes since the last redraw, and when that was.
    window: (u64, Instant),
    drawn: bool,
}

impl Progress {
    /// A progress line for `label`, shown only if stderr is a terminal.
    pub fn new(label: &'static str) -> Self {
        Self::with_output(label, std::io::stderr().is_terminal())
    }

    fn with_output(label: &'static str, enabled: bool) -> Self {
        Progress { label, enabled, frames: 0, bytes: 0, window: (0, Instant::now()), drawn: false }
    }

    /// Counts one frame of `size` bytes and redraws when a second has passed.
    pub fn frame(&mut self, size: usize) {
        self.frames += 1;
        self.bytes += size as u64;
        self.window.0 += size as u64;
        let elapsed = self.window.1.elapsed();
        if self.enabled && elapsed >= EVERY {
            let line = self.line(elapsed);
            self.window = (0, Instant::now());
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.drawn = true;
        }
    }

    /// The text of the line: totals and the bitrate over the last window.
    fn line(&self, elapsed: Duration) -> String {
        let kbits = self.window.0 as f64 * 8.0 / 1000.0 / elapsed.as_secs_f64().max(1e-3);
        format!("{}: {} frames, {}, {:.1} kbit/s", self.label, self.frames, human_bytes(self.bytes), kbits)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Leave the terminal on a fresh line for whatever prints next.
        if self.drawn {
            eprintln!();
        }
    }
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_frames_bytes_and_bitrate() {
        let mut progress = Progress::with_output("moqt subscribe", false);
        for _ in 0..10 {
            progress.frame(12_500);
        }
        // 125 kB over the last half second: 2000 kbit/s.
        assert_eq!(progress.line(Duration::from_millis(500)), "moqt subscribe: 10 frames, 125.0 kB, 2000.0 kbit/s");
        assert!(!progress.drawn, "nothing drawn when stderr is not a terminal");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(3_500_000_000), "3.50 GB");
    }
}
