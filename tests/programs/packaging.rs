//! The installed library as C users consume it: scripts/install.sh into a scratch prefix, then the
//! C examples built through pkg-config (examples-c/Makefile) and through CMake's find_package
//! (examples-c/CMakeLists.txt), and one of the programs run. scripts/test.sh installs make,
//! pkg-config and cmake.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moqt-packaging-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

/// The examples' sources in a directory of their own, so builds never write into the tree.
fn examples_copy(name: &str) -> PathBuf {
    let dir = scratch(name);
    for entry in std::fs::read_dir(manifest().join("examples-c")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// The relay example starts, prints its port and fingerprint, and stops on SIGTERM.
fn relay_runs(program: &Path) {
    let mut child = Command::new(program).args(["127.0.0.1:0", "30"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    // Read to the end: the program reports its stop, and a closed pipe would kill it.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(line.starts_with("relay: listening on port "), "{line:?}");
    assert!(status.success() && rest.contains("relay: stopped"), "{status}: {rest}");
}

#[test]
fn installed_library_builds_the_examples_with_pkg_config_and_cmake() {
    let prefix = scratch("prefix");
    run(Command::new("bash").arg(manifest().join("scripts/install.sh")).arg(&prefix).env("MOQT_PROFILE", "debug"));
    for file in [
        "lib/libmoqt.so",
        "lib/libmoqt.so.0.1",
        "lib/libmoqt.a",
        "include/moqt/moqt.h",
        "include/moqt/module.modulemap",
    ] {
        assert!(prefix.join(file).exists(), "{file} was not installed");
    }
    // Stripped, with its debug info split out beside it and linked by name for gdb (readelf is in
    // binutils, beside the objcopy and strip install.sh uses).
    let version = env!("CARGO_PKG_VERSION");
    assert!(prefix.join(format!("lib/.debug/libmoqt.so.{version}.debug")).exists(), "no split debug info");
    let sections = run(Command::new("readelf").arg("-SW").arg(prefix.join(format!("lib/libmoqt.so.{version}"))));
    assert!(sections.contains(".gnu_debuglink") && !sections.contains(".debug_info"), "{sections}");
    let pkg_config_path = prefix.join("lib/pkgconfig");

    let version =
        run(Command::new("pkg-config").args(["--modversion", "moqt"]).env("PKG_CONFIG_PATH", &pkg_config_path));
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    let make_dir = examples_copy("make");
    run(Command::new("make").arg("-C").arg(&make_dir).env("PKG_CONFIG_PATH", &pkg_config_path));
    relay_runs(&make_dir.join("relay"));

    let cmake_dir = examples_copy("cmake");
    let build = cmake_dir.join("build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(&cmake_dir)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())));
    run(Command::new("cmake").arg("--build").arg(&build));
    relay_runs(&build.join("relay"));

    for dir in [prefix, make_dir, cmake_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The examples build straight against a cargo build, without installing: `make
/// MOQT_BUILD=target/<profile>` takes the header from include/ and links the SONAME itself.
#[test]
fn the_examples_build_against_a_cargo_build_without_installing() {
    let build = crate::build::library_dir();
    let make_dir = examples_copy("cargo-build");
    run(Command::new("make")
        .arg("-C")
        .arg(&make_dir)
        .arg(format!("MOQT_BUILD={}", build.display()))
        .arg(format!("MOQT_INCLUDE={}", manifest().join("include").display())));
    relay_runs(&make_dir.join("relay"));
    let _ = std::fs::remove_dir_all(make_dir);
}
