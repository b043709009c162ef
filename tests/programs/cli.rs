//! The `moqt` command end to end on loopback: `moqt relay --tls-generate` plus `moqt publish` and
//! `moqt subscribe` against it, as the README shows; and usage errors exit with code 2.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process;

use process::*;

const MOQT: &str = env!("CARGO_BIN_EXE_moqt");

#[test]
fn relay_publish_subscribe() {
    let (quic, http) = (free_udp(), free_tcp());
    let _relay = start_relay(quic, http);
    let fp = fingerprint(http);
    assert_eq!(fp.len(), 64, "a hex SHA-256: {fp:?}");
    let metrics = http_get(http, "/metrics");
    assert!(metrics.contains("moqt_sessions_active 0"), "{metrics}");
    let url = format!("moql://localhost:{quic}/anon");
    let subscriber = Command::new(MOQT)
        .args(["subscribe", &url, "--broadcast", "demo", "--tls-fingerprint", &fp, "--count", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut publisher = Killed(
        Command::new(MOQT)
            .args(["publish", &url, "--broadcast", "demo", "--tls-fingerprint", &fp, "--group-frames", "2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = publisher.0.stdin.take().unwrap();
    // Frames go out as the subscriber asks; write slowly enough that it is there.
    for i in 1..=8 {
        writeln!(stdin, "frame {i}").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stdin);
    let output = wait_with_timeout(subscriber, Duration::from_secs(20));
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 5, "{output:?}");
    assert!(lines.iter().all(|l| l.starts_with("frame ")), "{output:?}");
}

/// The relay's plain-HTTP answers, errors included, carry `Access-Control-Allow-Origin: *`, so a
/// web player on another origin (moq-dev's, given an http:// URL) can read the fingerprint.
#[test]
fn http_answers_may_be_read_from_any_origin() {
    let (quic, http) = (free_udp(), free_tcp());
    let _relay = start_relay(quic, http);
    let fp = fingerprint(http);
    for (path, status) in [("/certificate.sha256", 200), ("/health", 200), ("/metrics", 200), ("/nothing", 404)] {
        let response = http_request(http, "GET", path);
        assert_eq!(response.status, status, "{path}: {response:?}");
        assert_eq!(response.header("access-control-allow-origin"), Some("*"), "{path}: {response:?}");
        match path {
            "/certificate.sha256" => assert_eq!(response.body, fp),
            "/health" => assert_eq!(response.body, "ok"),
            "/metrics" => {
                assert!(response.body.contains("moqt_sessions_active 0"), "{response:?}");
                assert!(response.header("content-type").is_some_and(|t| t.starts_with("text/plain")), "{response:?}");
            }
            _ => {}
        }
    }
    let refused = http_request(http, "POST", "/health");
    assert_eq!(refused.status, 405, "{refused:?}");
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"), "{refused:?}");
}

/// An http:// URL whose fingerprint cannot be fetched fails at once, saying from where.
#[test]
fn an_unreachable_fingerprint_server_is_a_clear_error() {
    let port = free_tcp();
    let output = Command::new(MOQT)
        .args(["subscribe", &format!("http://127.0.0.1:{port}/anon"), "--broadcast", "demo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot fetch the certificate fingerprint from 127.0.0.1:{port}")), "{stderr}");
}

/// `moqt relay -v` tells an operator, per session, when it was refused (why), opened (peer,
/// transport, version, path) and closed (code, who, duration, bytes). The session here is closed
/// by the relay when its token expires, so the close comes without waiting out an idle timeout.
#[test]
fn relay_v_logs_each_session_refusal_open_and_close() {
    let dir = std::env::temp_dir().join(format!("moqt-cli-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("relay.jwk");
    let status = Command::new(MOQT).args(["token", "generate", "--out"]).arg(&key).status().unwrap();
    assert!(status.success());
    let token = Command::new(MOQT)
        .args(["token", "sign", "--key"])
        .arg(&key)
        .args(["--root", "live", "--subscribe", "demo", "--expires", "2"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    let (quic, http) = (free_udp(), free_tcp());
    let mut relay = Killed(
        Command::new(MOQT)
            .args(["relay", "-v", "--listen", &format!("127.0.0.1:{quic}"), "--tls-generate", "localhost"])
            .args(["--http-listen", &format!("127.0.0.1:{http}"), "--auth-key", key.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = Log::new(relay.0.stderr.take().unwrap());
    let fp = fingerprint(http);
    let url = |query: &str| format!("moql://localhost:{quic}/live{query}");

    let refused = Command::new(MOQT).args(["announced", &url(""), "--tls-fingerprint", &fp]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let line = log.wait_for("session refused");
    for part in ["peer=127.0.0.1:", "transport=\"raw QUIC\"", "unauthorized"] {
        assert!(line.contains(part), "{part:?} in {line:?}");
    }

    let _watcher = Killed(
        Command::new(MOQT)
            .args(["announced", &url(&format!("?jwt={token}")), "--tls-fingerprint", &fp])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = log.wait_for("session opened");
    for part in ["peer=127.0.0.1:", "transport=\"raw QUIC\"", "version=moq-lite-06", "path=\"/live\""] {
        assert!(line.contains(part), "{part:?} in {line:?}");
    }
    assert!(!line.contains(&token), "the token stays out of the logs: {line:?}");
    let line = log.wait_for("session closed");
    for part in ["peer=127.0.0.1:", "token expired", "code=0x2", "by=\"us\"", "duration=", "bytes_in=", "bytes_out="] {
        assert!(line.contains(part), "{part:?} in {line:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines a child process writes to a pipe, read on a thread of their own.
struct Log {
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Log {
    fn new(pipe: impl Read + Send + 'static) -> Self {
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Log { lines, seen: Vec::new() }
    }

    /// The next line containing `needle`, waiting up to 20 s for it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(err) => panic!("no line with {needle:?} ({err}); the log so far:\n{}", self.seen.join("\n")),
            }
        }
    }
}

/// One HTTP/1.1 answer: status, headers, body.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    /// A header's value (names compared without case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `method path` as an HTTP/1.1 request from another origin to http://127.0.0.1:`http`, read to
/// the end (the request asks the server to close the connection).
fn http_request(http: u16, method: &str, path: &str) -> HttpResponse {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).expect("the HTTP listener is up");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{http}\r\nOrigin: https://player.example\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response head: {response:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    HttpResponse { status, headers, body: body.to_string() }
}

/// `moqt relay` on loopback with a generated certificate and its plain-HTTP listener.
fn start_relay(quic: u16, http: u16) -> Killed {
    start_relay_with(quic, http, &[])
}

fn start_relay_with(quic: u16, http: u16, extra: &[&str]) -> Killed {
    Killed(
        Command::new(MOQT)
            .args(["relay", "--listen", &format!("127.0.0.1:{quic}"), "--tls-generate", "localhost"])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            assert!(status.success(), "moqt subscribe failed: {status}: {out}");
            return out;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("moqt subscribe did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn usage_errors_exit_with_2_and_every_subcommand_has_help() {
    let status = Command::new(MOQT).arg("publish").stderr(Stdio::null()).status().unwrap();
    assert_eq!(status.code(), Some(2));
    for sub in ["relay", "publish", "subscribe", "announced", "bench", "token"] {
        let output = Command::new(MOQT).args([sub, "--help"]).output().unwrap();
        assert!(output.status.success(), "{sub} --help");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"), "{sub} --help prints usage");
    }
    // An unknown scheme is a runtime error (1) with a message that says what is expected.
    let output = Command::new(MOQT).args(["subscribe", "ftp://127.0.0.1:9/x", "--broadcast", "b"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected https://, moql:// or moqt://"));
}

#[test]
fn webtransport_and_development_urls() {
    // One port number for QUIC (UDP) and the plain-HTTP fingerprint listener (TCP), as the
    // reference relay's development setup has it.
    let port = loop {
        let udp = free_udp();
        if std::net::TcpListener::bind(("127.0.0.1", udp)).is_ok() {
            break udp;
        }
    };
    let _relay = start_relay(port, port);
    let fp = fingerprint(port);
    // The subscriber uses the development form (http:// → fingerprint → WebTransport), the
    // publisher WebTransport with an explicit pin.
    let subscriber = Command::new(MOQT)
        .args(["subscribe", &format!("http://localhost:{port}/anon"), "--broadcast", "demo", "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut publisher = Killed(
        Command::new(MOQT)
            .args(["publish", &format!("https://localhost:{port}/anon"), "--broadcast", "demo"])
            .args(["--tls-fingerprint", &fp, "--group-frames", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = publisher.0.stdin.take().unwrap();
    for i in 1..=6 {
        writeln!(stdin, "frame {i}").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stdin);
    let output = wait_with_timeout(subscriber, Duration::from_secs(20));
    assert_eq!(output.lines().count(), 3, "{output:?}");
}

#[test]
fn bench_reports_delivery_latency_and_relay_usage() {
    let (quic, http) = (free_udp(), free_tcp());
    let relay = start_relay(quic, http);
    let fp = fingerprint(http);
    let pid = relay.0.id().to_string();
    let bench = Command::new(MOQT)
        .args(["bench", &format!("moql://localhost:{quic}/anon"), "--tls-fingerprint", &fp, "--json"])
        .args(["--publishers", "2", "--subscribers", "3", "--fps", "50", "--seconds", "1"])
        .args(["--frame-size", "1000", "--relay-pid", &pid])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report = wait_with_timeout(bench, Duration::from_secs(60));
    let field = |name: &str| -> String {
        let start =
            report.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} in {report}")) + name.len() + 3;
        report[start..].split([',', '}']).next().unwrap().to_string()
    };
    let number = |name: &str| -> f64 { field(name).parse().unwrap_or_else(|_| panic!("{name} in {report}")) };
    let sent = number("frames_sent");
    // Two publishers for about a second at 50 fps, each frame to three subscribers, none lost
    // on loopback; every frame carries its publish time, so latency is measured.
    assert!(sent >= 60.0, "{report}");
    assert_eq!(number("frames_delivered"), sent * 3.0, "{report}");
    assert_eq!(number("frames_lost"), 0.0, "{report}");
    assert_eq!(number("bytes_delivered"), sent * 3.0 * 1000.0, "{report}");
    assert!(number("latency_p50_ms") > 0.0 && number("latency_p50_ms") <= number("latency_max_ms"), "{report}");
    assert!(number("relay_cpu_sec_per_gb") >= 0.0, "{report}");
    assert!(number("relay_peak_rss_kib") > 1000.0, "{report}");
}

/// `moqt token` makes a key and tokens; `moqt relay --auth-key` admits a token's holder and refuses
/// a client without one, which gives up at once (exit 1) rather than retrying.
#[test]
fn tokens_from_moqt_token_open_an_auth_key_relay() {
    let dir = std::env::temp_dir().join(format!("moqt-cli-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("relay.jwk");
    let status = Command::new(MOQT).args(["token", "generate", "--out"]).arg(&key).status().unwrap();
    assert!(status.success());
    let sign = |grant: &str| {
        let output = Command::new(MOQT)
            .args(["token", "sign", "--key"])
            .arg(&key)
            .args(["--root", "live", grant, "demo"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let (publish_token, subscribe_token) = (sign("--publish"), sign("--subscribe"));
    let verified =
        Command::new(MOQT).args(["token", "verify", "--key"]).arg(&key).arg(&publish_token).output().unwrap();
    assert!(String::from_utf8_lossy(&verified.stdout).contains("publish: [\"demo\"]"), "{verified:?}");

    let (quic, http) = (free_udp(), free_tcp());
    let _relay = start_relay_with(quic, http, &["--auth-key", key.to_str().unwrap()]);
    let fp = fingerprint(http);
    let refused = Command::new(MOQT)
        .args(["subscribe", &format!("moql://localhost:{quic}/live"), "--broadcast", "demo", "--tls-fingerprint", &fp])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused") && stderr.contains("token"), "{stderr}");

    let url = |token: &str| format!("moql://localhost:{quic}/live?jwt={token}");
    let subscriber = Command::new(MOQT)
        .args(["subscribe", &url(&subscribe_token), "--broadcast", "demo", "--tls-fingerprint", &fp, "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut publisher = Killed(
        Command::new(MOQT)
            .args(["publish", &url(&publish_token), "--broadcast", "demo", "--tls-fingerprint", &fp])
            .args(["--group-frames", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = publisher.0.stdin.take().unwrap();
    for i in 1..=6 {
        writeln!(stdin, "frame {i}").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stdin);
    let output = wait_with_timeout(subscriber, Duration::from_secs(20));
    assert_eq!(output.lines().count(), 2, "{output:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `moqt relay --config FILE.toml` takes its settings from the file (relative key paths beside it);
/// an unknown setting is an error that names it.
#[test]
fn relay_settings_from_a_config_file() {
    let dir = std::env::temp_dir().join(format!("moqt-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new(MOQT).args(["token", "generate", "--out"]).arg(dir.join("relay.jwk")).status().unwrap();
    assert!(status.success());
    let (quic, http) = (free_udp(), free_tcp());
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{quic}\"\nhttp_listen = \"127.0.0.1:{http}\"\n\n[tls]\ngenerate = [\"localhost\"]\n\n\
             [auth]\nkey = \"relay.jwk\"\npublic_subscribe = [\"anon/**\"]\n\n[limits]\nmax_subscriptions = 8\n"
        ),
    )
    .unwrap();
    let _relay =
        Killed(Command::new(MOQT).args(["relay", "--config"]).arg(&config).stderr(Stdio::null()).spawn().unwrap());
    let fp = fingerprint(http);
    // Anonymous sessions may watch anon/...; anything else needs a token.
    let url = |path: &str| format!("moql://localhost:{quic}/{path}");
    let refused = Command::new(MOQT).args(["announced", &url("secret"), "--tls-fingerprint", &fp]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let _watcher = Killed(
        Command::new(MOQT)
            .args(["announced", &url("anon"), "--tls-fingerprint", &fp])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admitted = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        http_get(http, "/metrics").contains("moqt_sessions_active 1")
    });
    assert!(admitted, "{}", http_get(http, "/metrics"));

    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nlisten_everywhere = true\n").unwrap();
    let bad = Command::new(MOQT).args(["relay", "--config"]).arg(&config).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("listen_everywhere"), "{bad:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM: `moqt relay --goaway-uri` sends its sessions to another relay, waits for them to
/// leave and exits well within the drain timeout.
#[test]
fn relay_shutdown_sends_clients_to_the_goaway_uri() {
    let (quic_a, http_a, quic_b, http_b) = (free_udp(), free_tcp(), free_udp(), free_tcp());
    let _b = start_relay(quic_b, http_b);
    let mut a = start_relay_with(quic_a, http_a, &["--goaway-uri", &format!("moql://localhost:{quic_b}/")]);
    let _watcher = Killed(
        Command::new(MOQT)
            // Both relays' certificates are generated: the watcher skips verification.
            .args(["announced", &format!("moql://localhost:{quic_a}/"), "--tls-disable-verify"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sessions = |http: u16, n: u32| {
        (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            http_get(http, "/metrics").contains(&format!("moqt_sessions_active {n}"))
        })
    };
    assert!(sessions(http_a, 1), "the watcher connects to A");
    let _ = Command::new("kill").args(["-TERM", &a.0.id().to_string()]).status();
    let started = Instant::now();
    assert!(sessions(http_b, 1), "the watcher moves to B");
    let status = loop {
        if let Some(status) = a.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "relay A did not exit after draining");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
