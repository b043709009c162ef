//! The C examples, compiled with -Wall -Wextra -Werror -pedantic against the generated header and
//! the real libmoqt.so, exchange frames through `moqt relay` on loopback: the README's demo, as a
//! test; also one example compiled as C++, both under AddressSanitizer (with LeakSanitizer), and
//! the subscriber under Valgrind.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process;
use crate::relay::{Relay, require_relay};
use moqt::wire::Version;

use process::*;

const MOQT: &str = env!("CARGO_BIN_EXE_moqt");

/// A C program still running after this is hung: their own waits are bounded at 30 s each, and
/// even a Valgrind run on a loaded machine ends in a few minutes.
const HANG: std::time::Duration = std::time::Duration::from_secs(600);

use crate::build::{library_dir, target_dir};

/// How an example is built.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// C11 with the strict warning set.
    C,
    /// The same source compiled as C++17: the header and the examples work from C++.
    Cxx,
    /// C11 with AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer.
    Asan,
}

/// An example (examples-c/), a C test (tests/c/) or a C benchmark (benches/c/).
fn source(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["examples-c", "tests/c", "tests/bindings", "benches/c"]
        .iter()
        .map(|dir| manifest.join(format!("{dir}/{name}.c")))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no {name}.c in examples-c/, tests/c/, tests/bindings/ or benches/c/"))
}

fn compile(name: &str, build: Build) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suffix = match build {
        Build::C => "",
        Build::Cxx => "-cxx",
        Build::Asan => "-asan",
    };
    // One binary per test (tests run in parallel): no test runs a file another is rewriting.
    let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
    let out = target_dir().join(format!("c-example-{name}{suffix}-{test}"));
    let lib = library_dir();
    // Programs linked against libmoqt.so load it by its SONAME, as an installed library would be.
    let soname = lib.join("libmoqt.so.0.1");
    if !soname.exists() {
        let _ = std::os::unix::fs::symlink("libmoqt.so", &soname);
    }
    let mut command = match build {
        Build::Cxx => {
            let mut c = Command::new("c++");
            c.args(["-x", "c++", "-std=c++17"]);
            c
        }
        _ => {
            let mut c = Command::new("cc");
            c.arg("-std=c11");
            c
        }
    };
    if build == Build::Asan {
        // UndefinedBehaviorSanitizer too, with every report fatal.
        command.args([
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer",
            "-g",
        ]);
    }
    let status = command
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(source(name))
        .arg("-L")
        .arg(lib)
        .arg("-lmoqt")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cc and c++ run (scripts/test.sh installs them)");
    assert!(status.success(), "{name}.c does not compile cleanly ({suffix})");
    out
}

#[test]
fn c_publisher_to_c_subscriber_through_the_relay() {
    run_demo(compile("publisher", Build::C), vec![compile("subscriber", Build::C).into()]);
}

/// relay.c embeds a relay (moqt_relay_start): the C publisher and subscriber meet there, and
/// SIGTERM stops it cleanly (GOAWAY, drain, exit 0).
#[test]
fn c_publisher_to_c_subscriber_through_a_relay_embedded_in_c() {
    let relay = compile("relay", Build::C);
    let mut child = Killed(Command::new(&relay).args(["127.0.0.1:0", "60"]).stdout(Stdio::piped()).spawn().unwrap());
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // "relay: listening on port P, fingerprint FP"
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(line.starts_with("relay: listening on port "), "{line:?}");
    let port = words[4].trim_end_matches(',');
    let fp = words[6];
    let url = format!("moql://localhost:{port}/test");
    run_demo_at(&url, fp, compile("publisher", Build::C), vec![compile("subscriber", Build::C).into()]);
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success() && rest.contains("relay: stopped"), "{status}: {rest}");
}

#[test]
fn c_publisher_to_a_polling_c_subscriber() {
    run_demo(compile("publisher", Build::C), vec![compile("subscriber_poll", Build::C).into()]);
}

#[test]
fn c_publisher_to_a_polling_subscriber_compiled_as_cxx() {
    run_demo(compile("publisher", Build::C), vec![compile("subscriber_poll", Build::Cxx).into()]);
}

/// Both programs under AddressSanitizer: no invalid access, and (LeakSanitizer, on by default)
/// nothing leaked once every handle is freed.
#[test]
fn c_examples_under_address_sanitizer() {
    run_demo(compile("publisher", Build::Asan), vec![compile("subscriber", Build::Asan).into()]);
}

/// The subscriber under Valgrind: no invalid reads or writes, no use of uninitialised memory, no
/// memory definitely lost. `tests/valgrind.supp` names the third-party reports it hides and why.
#[test]
fn c_subscriber_under_valgrind() {
    let mut command = valgrind();
    command.push(compile("subscriber", Build::C).into());
    run_demo(compile("publisher", Build::C), command);
}

/// The Valgrind command line the C programs run under (definite leaks are errors).
fn valgrind() -> Vec<std::ffi::OsString> {
    let supp = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valgrind.supp");
    vec![
        "valgrind".into(),
        "--error-exitcode=99".into(),
        "--leak-check=full".into(),
        "--errors-for-leak-kinds=definite".into(),
        format!("--suppressions={}", supp.display()).into(),
    ]
}

/// Runs a C test program as C, as C++, under AddressSanitizer + UndefinedBehaviorSanitizer and
/// under Valgrind: every run must succeed and print each of `expected`.
fn run_everywhere(name: &str, expected: &[&str]) {
    let mut runs: Vec<Vec<std::ffi::OsString>> =
        [Build::C, Build::Cxx, Build::Asan].iter().map(|b| vec![compile(name, *b).into()]).collect();
    let mut under_valgrind = valgrind();
    under_valgrind.push(compile(name, Build::C).into());
    runs.push(under_valgrind);
    for run in runs {
        let output = output_within(Command::new(&run[0]).args(&run[1..]), HANG);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{run:?}: {stdout}\n{stderr}");
        for text in expected {
            assert!(stdout.contains(text), "{run:?}: {stdout}");
        }
    }
}

/// tests/c/lifecycle.c (invalid arguments, user_data_free exactly once, free inside a callback
/// and during a burst, a frame kept past its client, a two-thread subscribe/unsubscribe stress,
/// moqt_shutdown): as C, as C++, under AddressSanitizer + UndefinedBehaviorSanitizer and under
/// Valgrind.
#[test]
fn lifecycle_edge_cases_from_c() {
    run_everywhere("lifecycle", &["lifecycle: ok (50 stress subscriptions)"]);
}

/// tests/c/connect.c: moqt_client_connect_async returns at once, and moqt_client_free cancels an
/// attempt on a server that never answers promptly; an element-style client subscribes (pull and
/// push) and another publishes and writes before their relay exists, then an embedded relay starts
/// on the chosen port and the frames arrive, the early one first. As C, as C++, under
/// AddressSanitizer + UndefinedBehaviorSanitizer and under Valgrind.
#[test]
fn connect_before_the_relay_exists_from_c() {
    run_everywhere("connect", &["connect: ok (a client before its relay, free while connecting)"]);
}

/// tests/c/delivery_order.c: a cached backlog then live groups, for each start (default, latest,
/// oldest, group N), each delivery (ordered, arrival) and each mode (push, pull), with exact
/// sequences and no gap, and from the live edge once another session warmed the relay's cache; flushing, the readiness fd (close-on-exec, gaps and the end wake it), a
/// free while another thread waits, and 200 frees racing another thread's entry into
/// `moqt_pull_next_frame` (no read of freed memory). As C, as C++, under AddressSanitizer +
/// UndefinedBehaviorSanitizer and under Valgrind.
#[test]
fn delivery_order_and_pull_controls_from_c() {
    run_everywhere("delivery_order", &["delivery_order: ok (20 backlog cases, 200 frees racing a wait)"]);
}

/// tests/c/delivery_order.c against moq-relay 0.17.10 in moq-lite-03, -04 and -05: the
/// cached-backlog cases (each start, delivery and mode, exact sequences, no gap) and the warm
/// cache (the relay already holds the backlog when a subscriber joins at the live edge: group 19
/// on, nothing older, no gap), all through the C API.
///
/// Not lite-06, where this program found two things about moq-relay it cannot pin down
/// deterministically: with a warm cache it answers the live-edge SUBSCRIBE (Max Age 0) with
/// SUBSCRIBE_OK group 0 and then sends only group 19 on, so moqt reports 0..18 as a gap (every
/// run); and in about one run of three a few live groups written in a burst are dropped
/// (reported, code 0x33), in order and in arrival order alike. The Rust interop test covers
/// lite-06 (cold cache, ordered).
#[test]
fn delivery_order_through_moq_relay_from_c() {
    let Some(binary) = require_relay("delivery_order_through_moq_relay_from_c") else { return };
    let program = compile("delivery_order", Build::C);
    for version in [Version::Lite05, Version::Lite04, Version::Lite03] {
        let relay = Relay::start(&binary, Some(version));
        let fingerprint: String = relay.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        // At the relay's root: lite-03/04 have no SETUP to carry a session path.
        let url = format!("moql://localhost:{}", relay.addr.port());
        let number = (version.code() & 0xff).to_string();
        let output = output_within(Command::new(&program).args([&url, &fingerprint, &number]), HANG);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{version}: {stdout}\n{stderr}");
        let done = format!(
            "delivery_order: ok (20 backlog cases through {url} on moq-lite-0{number}, 0 of 4 warm-cache gaps below \
             the live edge)"
        );
        assert!(stdout.contains(&done), "{version}: {stdout}");
    }
}

/// A fresh `moqt relay` on loopback: its URL, certificate fingerprint and process.
fn start_relay() -> (String, String, Killed) {
    let quic = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let relay = Killed(
        Command::new(MOQT)
            .args(["relay", "--listen", &format!("127.0.0.1:{quic}"), "--tls-generate", "localhost"])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (format!("moql://localhost:{quic}/test"), fingerprint(http), relay)
}

/// The C delivery benchmark (benches/c/delivery.c) compiles cleanly and measures in both modes;
/// `scripts/bench-ffi.sh` runs it at full size against a release build.
#[test]
fn the_c_delivery_benchmark_runs() {
    let program = compile("delivery", Build::C);
    let (url, fp, _relay) = start_relay();
    for mode in ["callback", "pull"] {
        let output = output_within(Command::new(&program).args([&url, &fp, mode, "4000"]), HANG);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{mode}: {stdout} {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains(&format!("delivery {mode}: ")) && stdout.contains("ns per frame"), "{stdout}");
    }
}

/// Runs `subscriber` (a program, possibly behind a wrapper such as valgrind) and the publisher
/// for 60 frames through a fresh `moqt relay`, and checks what the subscriber printed: every
/// frame, then the track's clean end.
fn run_demo(publisher: PathBuf, subscriber: Vec<std::ffi::OsString>) {
    let (url, fp, _relay) = start_relay();
    run_demo_at(&url, &fp, publisher, subscriber);
}

/// The demo against a relay already running at `url` with certificate `fp`.
fn run_demo_at(url: &str, fp: &str, publisher: PathBuf, subscriber: Vec<std::ffi::OsString>) {
    let (url, fp) = (url.to_string(), fp.to_string());
    let mut sub = Command::new(&subscriber[0])
        .args(&subscriber[1..])
        .args([&url, &fp, "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the subscriber (or its wrapper: valgrind is installed by scripts/test.sh) starts");
    // Publish once the subscriber says it is waiting (slow under Valgrind): the publisher writes
    // its first frame only when the subscription has reached it (moqt_track_wait_subscribed), so
    // group 0 arrives whole however late that is.
    let mut stdout = BufReader::new(sub.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("waiting for"), "the subscriber did not start: {first:?}");
    // The publisher finishes its track and frees its client right after its last frame: no
    // sleep, yet the subscriber gets every frame and then a clean end.
    let published = output_within(Command::new(&publisher).args([&url, &fp, "60"]), HANG);
    let pub_text = String::from_utf8_lossy(&published.stdout);
    assert!(published.status.success(), "the C publisher failed: {pub_text}");
    assert!(pub_text.contains("publisher: finished; flush: ok"), "{pub_text}");
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    let status = sub.wait().unwrap();
    assert!(status.success(), "the C subscriber failed ({status}):\n{text}");
    let frames: Vec<&str> = text.lines().filter(|l| l.contains(": frame ")).collect();
    assert_eq!(frames.len(), 60, "{text}");
    assert!(frames[0].contains("group 0 frame 0"), "the first frame starts a group: {}", frames[0]);
    assert!(text.contains("received 60 frames"), "{text}");
    assert!(text.contains("track ended cleanly (end of stream)"), "a clean end, not an error: {text}");
}

#[test]
fn the_shared_library_exports_only_moqt_symbols_and_has_a_soname() {
    let lib = library_dir().join("libmoqt.so");
    let output = Command::new("nm").args(["-D", "--defined-only"]).arg(&lib).output().expect("nm runs");
    let symbols = String::from_utf8_lossy(&output.stdout);
    let exported: Vec<&str> = symbols.lines().filter_map(|line| line.split_whitespace().last()).collect();
    assert!(exported.contains(&"moqt_client_connect"), "{symbols}");
    let foreign: Vec<&&str> = exported.iter().filter(|s| !s.starts_with("moqt_")).collect();
    assert!(foreign.is_empty(), "symbols outside moqt_: {foreign:?}");
    let dynamic = Command::new("readelf").arg("-d").arg(&lib).output().expect("readelf runs");
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(dynamic.contains("libmoqt.so.0.1"), "no SONAME libmoqt.so.0.1:\n{dynamic}");
}

/// tests/c/thread_hooks.c: hooks run on every engine thread with its name, are refused once
/// the engine runs, and on_stop runs on each of them at moqt_shutdown. Also as C++, under
/// AddressSanitizer and under Valgrind.
#[test]
fn thread_hooks_from_c() {
    run_everywhere("thread_hooks", &["1 moqt-cb, 0 other", "threads stopped"]);
}

/// tests/c/server.c: an embedded relay admitting and refusing sessions by path from C, FETCH of a
/// past group and of a missing one, path statistics and PROBE; as C, as C++, under
/// AddressSanitizer + UndefinedBehaviorSanitizer and under Valgrind.
#[test]
fn server_admission_fetch_and_probe_from_c() {
    run_everywhere("server", &["server: ok (fetched 3 frames"]);
}

/// tests/c/publish.c: keyframe-aligned groups and their bounds, timestamps on moq-lite-04 (none)
/// and -06, a finished track ending as MOQT_STATUS_END and an aborted one as
/// MOQT_STATUS_ERR_ABORTED with its code, in push and pull mode, with a publisher that frees its
/// client right after finishing; as C, as C++, under AddressSanitizer + UndefinedBehaviorSanitizer
/// and under Valgrind.
#[test]
fn publishing_keyframes_timestamps_and_a_clean_end_from_c() {
    run_everywhere("publish", &["publish: ok", "clean end and abort code 0x47"]);
}

/// tests/c/media.c: a media broadcast published from C (H.264 from raw parameter sets, Opus from
/// a config), its catalog consumed by pull and by callbacks, both renditions read back sample by
/// sample (bytes, PTS, keyframe flag) on moq-lite-06 and -04, an update, a removal and the clean
/// end, and misuse (NULLs, bad parameter sets, a delta frame first); as C, as C++, under
/// AddressSanitizer + UndefinedBehaviorSanitizer and under Valgrind.
#[test]
fn media_publish_and_consume_from_c() {
    run_everywhere("media", &["media: ok"]);
}

/// Finds `program` on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// include/module.modulemap works the way Swift uses it: tests/bindings/module_import.c does
/// `@import moqt;` with Clang modules (Swift's ClangImporter builds the same module), then calls
/// through it.
#[test]
fn the_module_map_imports_as_a_clang_module() {
    let clang = on_path("clang").expect("clang (scripts/test.sh installs it)");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir().to_path_buf();
    compile("relay", Build::C); // the library and its SONAME link are in place
    let out = lib.join("c-example-module_import");
    let status = Command::new(clang)
        .args(["-fmodules", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-fmodules-cache-path={}", lib.join("clang-module-cache").display()))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(source("module_import"))
        .arg("-L")
        .arg(&lib)
        .arg("-lmoqt")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "module_import.c does not build with -fmodules");
    let output = output_within(&mut Command::new(&out), HANG);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("module: ok"), "{stdout}");
}

/// What a Kotlin or Java binding does: a JNI shim (tests/bindings/smoke_jni.c) linked against
/// libmoqt.so, loaded by the JVM (tests/bindings/Smoke.java), sends a frame through an embedded
/// relay and reads it back in pull mode.
#[test]
fn a_jni_binding_loads_and_round_trips_a_frame() {
    let javac = on_path("javac").expect("a JDK (scripts/test.sh installs it)");
    // JAVA_HOME is javac's bin/.. once symlinks (Debian's alternatives) are resolved.
    let java_home = std::fs::canonicalize(&javac).unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir().to_path_buf();
    compile("relay", Build::C); // the library and its SONAME link are in place
    let dir = lib.join("jni-smoke");
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("cc")
        .args(["-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(manifest.join("include"))
        .arg("-I")
        .arg(java_home.join("include"))
        .arg("-I")
        .arg(java_home.join("include/linux"))
        .arg(source("smoke_jni"))
        .arg("-L")
        .arg(&lib)
        .arg("-lmoqt")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(dir.join("libmoqt_smoke_jni.so"))
        .status()
        .unwrap();
    assert!(status.success(), "smoke_jni.c does not compile");
    let status =
        Command::new(&javac).arg("-d").arg(&dir).arg(manifest.join("tests/bindings/Smoke.java")).status().unwrap();
    assert!(status.success(), "Smoke.java does not compile");
    let output = Command::new(java_home.join("bin/java"))
        .arg(format!("-Djava.library.path={}", dir.display()))
        .arg("-cp")
        .arg(&dir)
        .arg("Smoke")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("jni: ok"), "{stdout}");
}
