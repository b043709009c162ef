//! The C examples, compiled with -Wall -Wextra -Werror -pedantic against the generated header and
//! the real libmoqt.so, exchange frames through `moqt relay` on loopback: the README's demo, as a
//! test.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "common/process.rs"]
mod process;

use process::*;

const MOQT: &str = env!("CARGO_BIN_EXE_moqt");

/// Where cargo put the moqt command, and beside it libmoqt.so.
fn target_dir() -> PathBuf {
    Path::new(MOQT).parent().expect("the binary has a directory").to_path_buf()
}

fn compile(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = target_dir().join(format!("c-example-{name}"));
    let lib = target_dir();
    assert!(
        lib.join("libmoqt.so").exists(),
        "{} is missing: `cargo test` builds only the rlib; run `cargo build` first (scripts/test.sh does)",
        lib.join("libmoqt.so").display()
    );
    // Programs linked against libmoqt.so load it by its SONAME, as an installed library would be.
    let soname = lib.join("libmoqt.so.0.1");
    if !soname.exists() {
        let _ = std::os::unix::fs::symlink("libmoqt.so", &soname);
    }
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(manifest.join(format!("examples-c/{name}.c")))
        .arg("-L")
        .arg(&lib)
        .arg("-lmoqt")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cc runs (scripts/test.sh installs it)");
    assert!(status.success(), "{name}.c does not compile cleanly");
    out
}

#[test]
fn c_publisher_to_c_subscriber_through_the_relay() {
    run_demo("subscriber");
}

#[test]
fn c_publisher_to_a_polling_c_subscriber() {
    run_demo("subscriber_poll");
}

fn run_demo(subscriber_program: &str) {
    let publisher = compile("publisher");
    let subscriber = compile(subscriber_program);
    let quic = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _relay = Killed(
        Command::new(MOQT)
            .args(["relay", "--listen", &format!("127.0.0.1:{quic}"), "--tls-generate", "localhost"])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fp = fingerprint(http);
    let url = format!("moql://localhost:{quic}/test");
    let sub = Command::new(&subscriber).args([&url, &fp, "40"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pub_status = Command::new(&publisher).args([&url, &fp, "60"]).stdout(Stdio::null()).status().unwrap();
    assert!(pub_status.success(), "the C publisher failed");
    let output = sub.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the C subscriber failed:\n{text}");
    let frames: Vec<&str> = text.lines().filter(|l| l.contains(": frame ")).collect();
    assert_eq!(frames.len(), 40, "{text}");
    assert!(frames[0].contains("group 0 frame 0"), "the first frame starts a group: {}", frames[0]);
    assert!(text.contains("received 40 frames"), "{text}");
}

#[test]
fn the_shared_library_exports_only_moqt_symbols_and_has_a_soname() {
    let lib = target_dir().join("libmoqt.so");
    assert!(lib.exists(), "{} is missing: run `cargo build` first (scripts/test.sh does)", lib.display());
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
