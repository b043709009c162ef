#!/usr/bin/env bash
# The C library's size per build variant (BENCHMARKS.md, "Library size"). Each variant is its own
# release build of the library (`cargo build --release --lib`), the release profile overridden
# through cargo's CARGO_PROFILE_RELEASE_* variables, so Cargo.toml stays as it is; the last
# variant's build is what target/release holds afterwards. One markdown table row per variant, in
# MB (10^6 bytes): libmoqt.so as built, stripped (`strip --strip-unneeded`, what scripts/install.sh
# installs), libmoqt.a as built and without debug sections (`strip --strip-debug`, likewise).
# Cargo runs LTO only on a target whose crate types all can take it, and the library is also an
# rlib: `lto` in the profile alone leaves libmoqt.so as it was (and bloats libmoqt.a with bitcode).
# The lto variants therefore build the C library alone, `cargo rustc --lib --crate-type
# cdylib,staticlib`, as scripts/install.sh does.
# Usage: scripts/lib-size.sh [VARIANT...]   (default: all of them, one build each)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

# name|environment|flags of `cargo rustc --release --lib`
variants=(
  "current||"
  "no-cli||--no-default-features"
  "cgu1|CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1|"
  "lto-fat, rlib too|CARGO_PROFILE_RELEASE_LTO=fat|"
  "C only||--crate-type cdylib,staticlib"
  "C only, lto-thin|CARGO_PROFILE_RELEASE_LTO=thin|--crate-type cdylib,staticlib"
  "C only, lto-fat|CARGO_PROFILE_RELEASE_LTO=fat|--crate-type cdylib,staticlib"
  "C only, lto-fat+cgu1|CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1|--crate-type cdylib,staticlib"
  "C only, lto-fat+cgu1, no-cli|CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1|--no-default-features --crate-type cdylib,staticlib"
  "C only, lto-fat+cgu1, opt-s|CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_OPT_LEVEL=s|--crate-type cdylib,staticlib"
  "C only, lto-fat+cgu1, opt-z|CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_OPT_LEVEL=z|--crate-type cdylib,staticlib"
)
wanted=("$@")
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1e6 }'; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "| variant | .so as built | .so stripped | .a as built | .a without debug info |"
echo "|---|---:|---:|---:|---:|"
for variant in "${variants[@]}"; do
  IFS='|' read -r name environment flags <<<"$variant"
  if [ ${#wanted[@]} -gt 0 ] && ! printf '%s\n' "${wanted[@]}" | grep -qx -- "$name"; then continue; fi
  # shellcheck disable=SC2086 # word splitting intended: assignments and flags
  env $environment cargo rustc --release --quiet --lib $flags >&2
  cp "$target/release/libmoqt.so" "$target/release/libmoqt.a" "$scratch/"
  strip --strip-unneeded -o "$scratch/stripped.so" "$scratch/libmoqt.so"
  strip --strip-debug -o "$scratch/stripped.a" "$scratch/libmoqt.a"
  echo "| $name | $(mb "$scratch/libmoqt.so") | $(mb "$scratch/stripped.so") |" \
    "$(mb "$scratch/libmoqt.a") | $(mb "$scratch/stripped.a") |"
done
