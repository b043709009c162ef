//! Runs moqt's own relay as a separate process (`moqt relay`), for scenarios that measure its
//! memory or kill it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::relay::{free_port, free_tcp_port, http_get, parse_hex};

/// A running `moqt relay`, killed (SIGKILL) on drop.
pub struct MoqtRelay {
    child: Child,
    pub addr: SocketAddr,
    pub http: SocketAddr,
    pub fingerprint: [u8; 32],
}

impl Drop for MoqtRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MoqtRelay {
    /// Starts `moqt relay` on a free loopback port with a generated certificate and waits until
    /// it serves its fingerprint over HTTP.
    pub fn start() -> MoqtRelay {
        Self::start_on(free_port())
    }

    /// Like [`start`](Self::start) on a given UDP port (a restart on the same address).
    pub fn start_on(port: u16) -> MoqtRelay {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_moqt"))
            .args(["relay", "--listen", &addr.to_string(), "--tls-generate", "localhost"])
            .args(["--http-listen", &http.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("MOQT_RELAY_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("moqt relay starts");
        let mut relay = MoqtRelay { child, addr, http, fingerprint: [0; 32] };
        let started = Instant::now();
        loop {
            if let Some(body) = http_get(http, "/certificate.sha256") {
                relay.fingerprint = parse_hex(&body).expect("a hex SHA-256 from /certificate.sha256");
                return relay;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "moqt relay did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
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

    /// A line of the relay's /metrics, parsed as a number (`name value`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let body = http_get(self.http, "/metrics")?;
        body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}
