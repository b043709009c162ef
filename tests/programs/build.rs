//! The shared library the C programs link, built by the tests themselves: `cargo test` builds
//! the rlib and the moqt command but not libmoqt.so, so the first test that needs it runs the
//! same `cargo build --lib` scripts/test.sh runs, once per run of this binary, into the same
//! target directory. A fresh clone's `cargo test` passes on its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where cargo put the moqt command (target/debug or target/release): libmoqt.so goes beside it.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_moqt")).parent().expect("the binary has a directory").to_path_buf()
}

/// The directory holding an up-to-date libmoqt.so, built on first use.
pub fn library_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = target_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut build = Command::new(cargo);
        build.args(["build", "--lib", "--quiet"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "`cargo build --lib` failed ({status}): the C programs need libmoqt.so");
        let lib = dir.join("libmoqt.so");
        assert!(lib.exists(), "cargo build --lib left no {}", lib.display());
        dir
    })
}
