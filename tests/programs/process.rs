//! Helpers for tests that run the `moqt` command and other processes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed and reaped when dropped, whatever the test did.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The body of GET `path` on http://127.0.0.1:`http` (the listener must be up).
pub fn http_get(http: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", http)).expect("the HTTP listener is up");
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The certificate fingerprint a relay serves at http://127.0.0.1:`http`/certificate.sha256,
/// waiting up to 10 s for the listener.
pub fn fingerprint(http: u16) -> String {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", http)) {
            write!(stream, "GET /certificate.sha256 HTTP/1.0\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            if let Some((_, body)) = response.split_once("\r\n\r\n") {
                return body.trim().to_string();
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the relay's HTTP listener never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `moqt relay` on 127.0.0.1 with a generated certificate: QUIC on `quic`, the plain-HTTP answers
/// (`/certificate.sha256`, `/metrics`) on `http`, its log to `log` (`Stdio::null()` for none),
/// and `extra` arguments.
pub fn moqt_relay_at(quic: u16, http: u16, log: Stdio, extra: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_moqt"))
            .args(["relay", "--listen", &format!("127.0.0.1:{quic}"), "--tls-generate", "localhost"])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// ffprobe, or `None` with a message (a failure under CI=true, where scripts/test.sh installs it).
pub fn require_ffprobe(test: &str) -> Option<()> {
    if Command::new("ffprobe").arg("-version").stdout(Stdio::null()).status().is_ok_and(|s| s.success()) {
        return Some(());
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: ffprobe is missing but CI=true");
    eprintln!("\n*** {test}: SKIPPED: ffprobe not found (scripts/test.sh installs ffmpeg) ***\n");
    None
}

/// ffprobe's output for `file` with `args` (errors only on stderr); the probe must succeed.
pub fn ffprobe(file: &Path, args: &[&str]) -> String {
    let output = Command::new("ffprobe").args(["-v", "error"]).args(args).arg(file).output().unwrap();
    assert!(output.status.success(), "ffprobe {file:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `command` to completion like [`Command::output`], but at most `bound`: a program still
/// running then is a hang, not a slow run (every wait inside the C programs is bounded well
/// below it). Its threads' stacks (gdb, when installed) and what it printed so far go into the
/// panic, so a hang seen once under load can be diagnosed from the log.
pub fn output_within(command: &mut Command, bound: Duration) -> std::process::Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the program starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let stacks = thread_stacks(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{command:?} still running after {bound:?}: a hang\nstdout:\n{stdout}\nstderr:\n{stderr}\n{stacks}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Every thread's stack of process `pid`, from gdb, or why there are none.
pub fn thread_stacks(pid: u32) -> String {
    match Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => format!("threads of {pid}:\n{}", String::from_utf8_lossy(&out.stdout)),
        Err(err) => format!("no stacks for {pid}: gdb: {err}"),
    }
}
