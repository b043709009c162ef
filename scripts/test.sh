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
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v make >/dev/null || need_apt+=(make)
# The Swift module-map check (Clang modules) and the Kotlin/Java JNI smoke test.
command -v clang >/dev/null || need_apt+=(clang)
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

step "moq-relay 0.17.10 for the interop tests"
./scripts/install-moq-relay.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo build (libmoqt.so and the moqt command, which the C tests link and run)"
cargo build

step "cargo test"
cargo test --all-targets 2>&1 | tee /tmp/moqt-test.log
# Doc tests separately: --all-targets skips them.
cargo test --doc

passed=$(grep -Eo '[0-9]+ passed' /tmp/moqt-test.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/moqt-test.log | awk '{s+=$1} END {print s+0}')
echo
echo "all: $passed passed, $failed failed"
