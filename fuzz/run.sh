#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another, seeded from the committed
# corpus in fuzz/seeds/<target>. cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable
# toolchain (the only one this project assumes) provide them.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "== $target: ${seconds}s"
  cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::peak_rss|Done|SUMMARY|panicked|ERROR" || true
  # A finding leaves an artifact: keep it as a regression seed and fail.
  if compgen -G "fuzz/artifacts/$target/crash-*" >/dev/null; then
    for crash in fuzz/artifacts/"$target"/crash-*; do cp "$crash" "fuzz/seeds/$target/"; done
    echo "FINDING in $target: copied to fuzz/seeds/$target/"; exit 1
  fi
done
