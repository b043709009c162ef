#!/usr/bin/env bash
# The whole test suite: formatting, lints, the C header checks, and every Rust test (unit,
# integration, property, fuzz-seed replay). Installs what it needs on a fresh Debian machine that
# has only the Rust toolchain. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v c++ >/dev/null || need_apt+=(g++)
command -v valgrind >/dev/null || need_apt+=(valgrind)
# The stacks of a C test program that hangs (tests/programs/process.rs, output_within).
command -v gdb >/dev/null || need_apt+=(gdb)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v make >/dev/null || need_apt+=(make)
# The benchmark scripts' smoke run: fingerprints over HTTP (curl) and their SVG plots (python3).
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
# The Swift module-map check (Clang modules) and the Kotlin/Java JNI smoke test.
command -v clang >/dev/null || need_apt+=(clang)
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
# Real media: the fMP4 round trips of tests/programs/media.rs and the media demo (ffprobe).
command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
# The GStreamer plugin (gst/) and its pipelines (tests/programs/gst.rs): headers to build it,
# gst-launch-1.0 and gst-inspect-1.0, and the elements the test pipelines use (x264enc is in
# -ugly, avdec_h264 in -libav, h264parse in -bad).
if ! pkg-config --exists gstreamer-1.0 gstreamer-base-1.0 gstreamer-pbutils-1.0 2>/dev/null ||
  ! command -v gst-launch-1.0 >/dev/null ||
  ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 avdec_h264 >/dev/null 2>&1 ||
  ! gst-inspect-1.0 h264parse >/dev/null 2>&1 || ! gst-inspect-1.0 opusenc >/dev/null 2>&1; then
  need_apt+=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

# The interop tests (tests/it/interop_relay.rs, tests/it/bad_peers.rs) need the reference relay. Under
# CI=true it must be there; elsewhere a failed install (offline, say) lets the rest run and the
# skip is announced by a banner, here and again at the end, never only in hidden test output.
step "moq-relay 0.17.10 for the interop tests"
relay_bin="${MOQ_RELAY_BIN:-${MOQT_CACHE:-$HOME/.cache/moqt}/moq-relay-0.17.10/bin/moq-relay}"
if [ -z "${MOQ_RELAY_BIN:-}" ]; then
  ./scripts/install-moq-relay.sh || echo "moq-relay: install failed" >&2
fi
relay_missing=""
if [ ! -x "$relay_bin" ]; then
  if [ "${CI:-}" = true ]; then
    echo "CI=true and moq-relay is not at $relay_bin: the interop tests cannot be skipped in CI" >&2
    exit 1
  fi
  relay_missing=1
fi
relay_banner() {
  [ -n "$relay_missing" ] || return 0
  printf '\n%s\n' "************************************************************************"
  printf '%s\n' "*** INTEROP SKIPPED: moq-relay 0.17.10 not found at $relay_bin"
  printf '%s\n' "*** tests/it/interop_relay.rs and tests/it/bad_peers.rs passed WITHOUT running."
  printf '%s\n' "*** Install it with scripts/install-moq-relay.sh (or set MOQ_RELAY_BIN)."
  printf '%s\n\n' "************************************************************************"
}
relay_banner

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo clippy for the other builds: the C library without the command, the fuzz entry points"
cargo clippy --lib --no-default-features -- -D warnings
cargo clippy --lib --no-default-features --features fuzzing -- -D warnings

step "cargo doc (the public API documented, no broken or private links)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

# The C tests build libmoqt.so themselves when it is missing (tests/programs/build.rs), so a bare
# `cargo test` passes too; building it here first keeps that build out of the timed test run.
step "cargo build (libmoqt.so and the moqt command, which the C tests link and run)"
cargo build

step "cargo test"
# --no-fail-fast: one run reports every failing test, not only those of the first binary.
cargo test --all-targets --no-fail-fast 2>&1 | tee /tmp/moqt-test.log
# Doc tests separately: --all-targets skips them.
cargo test --doc

# Each benchmark script end to end on the debug build with a tiny load: that they run and write
# their results, not what they measure (BENCHMARKS.md has the real runs).
step "the benchmark scripts, briefly"
smoke() { # SCRIPT RESULT_FILE [ARGS...]: runs the script with the environment given, checks its file
  local script=$1 result=$2; shift 2
  rm -f "$result"
  "$script" "$@" >/tmp/moqt-bench-smoke.log 2>&1 || { cat /tmp/moqt-bench-smoke.log; echo "$script failed" >&2; exit 1; }
  [ -s "$result" ] || { cat /tmp/moqt-bench-smoke.log; echo "$script wrote no $result" >&2; exit 1; }
  tail -n 4 /tmp/moqt-bench-smoke.log
}
PROFILE=dev SECONDS_TO_RUN=1 FPS_STEPS=30 PAST_FAILURE=0 SUBSCRIBERS=4 \
  smoke scripts/bench-saturate.sh target/bench-saturate/saturation.svg 4096
PROFILE=dev SESSIONS=40 PER_SOCKET=10 ACTIVE_SECONDS=4 smoke scripts/bench-sessions.sh target/bench-sessions/sessions.svg
PROFILE=dev JOINS=3 RTT_MS=20 smoke scripts/bench-join.sh target/bench-join/join.svg

passed=$(grep -Eo '[0-9]+ passed' /tmp/moqt-test.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/moqt-test.log | awk '{s+=$1} END {print s+0}')
echo
echo "all: $passed passed, $failed failed"
relay_banner
