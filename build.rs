//! Generates the C header from src/ffi with cbindgen, into OUT_DIR (a build script must not write the
//! source tree). The committed copy in include/moqt.h is checked against it by tests/programs/header.rs.

use std::env;
use std::path::PathBuf;

#[path = "build/nullability.rs"]
mod nullability;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build");

    // libmoqt.so carries a SONAME with the ABI version: during 0.x every minor release may break
    // the ABI, so the SONAME names 0.MINOR.
    if env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux" || os == "android") {
        let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmoqt.so.0.{minor}");
    }

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");

    // Only src/ffi is the C surface: parse its root, which pulls in its submodules, so nothing
    // else leaks into the header.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not generate the header from src/ffi");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("cbindgen writes UTF-8");
    let header = out_dir.join("moqt.h");
    std::fs::write(&header, nullability::annotate(&generated)).expect("OUT_DIR is writable");
    println!("cargo:rustc-env=MOQT_GENERATED_HEADER={}", header.display());
}
