//! Runs a relay as a process of its own on loopback: the reference relay (moq-relay 0.17.10) for
//! interop tests, or moqt's `moqt relay` command where a test must kill a relay (SIGKILL) and
//! start it again.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use moqt::wire::Version;

/// Where `scripts/install-moq-relay.sh` installs moq-relay: `$MOQT_CACHE/moq-relay-0.17.10/bin`,
/// `$MOQT_CACHE` defaulting to `~/.cache/moqt` (unset or empty, as the script's `${MOQT_CACHE:-…}`),
/// unless MOQ_RELAY_BIN names the binary.
pub fn relay_binary() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(path) = set("MOQ_RELAY_BIN") {
        return Some(PathBuf::from(path));
    }
    let cache = match set("MOQT_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME")?).join(".cache/moqt"),
    };
    let path = cache.join("moq-relay-0.17.10/bin/moq-relay");
    path.exists().then_some(path)
}

/// The binary, or `None` with a message when it is absent (shown by `cargo test -- --nocapture`;
/// `scripts/test.sh` prints a banner of its own, see there). Under CI=true its absence fails the
/// test: interop is never skipped silently there.
pub fn require_relay(test: &str) -> Option<PathBuf> {
    match relay_binary() {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{test}: moq-relay is not installed but CI=true: .ci/run must install it (scripts/install-moq-relay.sh)"
            )
        }
        None => {
            eprintln!("\n*** {test}: SKIPPED: moq-relay 0.17.10 not found (run scripts/install-moq-relay.sh) ***\n");
            None
        }
    }
}

/// A running relay process, killed (SIGKILL) on drop.
pub struct Relay {
    child: Child,
    pub addr: SocketAddr,
    pub http: SocketAddr,
    pub fingerprint: [u8; 32],
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    // The TCP side of the same number must be free too (the HTTP listener uses its own port).
    drop(udp);
    port
}

pub fn free_tcp_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.local_addr().unwrap().port()
}

/// GETs `path` from a plain-HTTP listener; the body, or `None` if it is not up yet.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

pub fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = text.trim().bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

impl Relay {
    /// Starts moq-relay on loopback, restricted to `version`, and waits until it serves its
    /// certificate fingerprint.
    pub fn start(binary: &PathBuf, version: Option<Version>) -> Relay {
        Self::start_on(binary, version, free_port())
    }

    /// Like [`start`](Self::start) on a given UDP port (a restart on the same address).
    pub fn start_on(binary: &PathBuf, version: Option<Version>, port: u16) -> Relay {
        Self::start_with(binary, version, port, &[])
    }

    /// Like [`start_on`](Self::start_on) with extra command-line arguments.
    pub fn start_with(binary: &PathBuf, version: Option<Version>, port: u16, extra: &[String]) -> Relay {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let mut command = Command::new(binary);
        command
            .args(["--listen", &addr.to_string()])
            .args(["--listen-tls-generate", "localhost,127.0.0.1"])
            .args(["--web-http-listen", &http.to_string()])
            .args(["--connect-bind", "127.0.0.1:0"])
            .args(["--auth-public", "**"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("MOQ_RELAY_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
        if let Some(version) = version {
            command.args(["--listen-version", version.alpn()]);
        }
        command.args(extra);
        Self::spawn(command, addr, http)
    }

    /// `moqt relay` (this crate's command) on loopback at `port` with a generated certificate,
    /// every version and every path open; its plain-HTTP listener (`/metrics`) on a free port.
    /// Its log goes to the test's stderr when MOQ_RELAY_LOG is set.
    pub fn start_moqt_on(port: u16) -> Relay {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_moqt"));
        command
            .args(["relay", "--listen", &addr.to_string(), "--tls-generate", "localhost"])
            .args(["--http-listen", &http.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("MOQ_RELAY_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
        Self::spawn(command, addr, http)
    }

    /// Starts `command` (a relay on `addr` answering HTTP on `http`) and waits until it serves its
    /// certificate fingerprint (both relays bind QUIC before HTTP).
    fn spawn(mut command: Command, addr: SocketAddr, http: SocketAddr) -> Relay {
        // Held in a Relay at once, so a failure below still kills and reaps the process.
        let child = command.spawn().unwrap_or_else(|e| panic!("{command:?}: {e}"));
        let mut relay = Relay { child, addr, http, fingerprint: [0; 32] };
        let started = Instant::now();
        loop {
            if let Some(body) = http_get(http, "/certificate.sha256") {
                relay.fingerprint = parse_hex(&body).expect("a hex SHA-256 from /certificate.sha256");
                return relay;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{command:?} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the relay with SIGTERM (it sends GOAWAY and drains).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    /// The relay process's resident set size, bytes (VmRSS in /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("the relay runs");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }
}
