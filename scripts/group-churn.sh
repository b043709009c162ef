#!/usr/bin/env bash
# Relay memory per ingested group, moqt's relay and moq-relay side by side: one publisher sends
# GROUPS groups of one 16-byte frame each (1000 groups per second) to one subscriber through the
# relay; the relay's RSS is read before, at the end of the run and again after SETTLE seconds
# with no broadcast left, and the growth is divided by the number of groups.
#
# Usage: scripts/group-churn.sh [GROUPS]   (default 100000; SETTLE default 5)
# Builds moqt in release mode; installs moq-relay into ~/.cache/moqt if missing.
# Results: target/group-churn/summary.txt (and the bench JSON of each run).
set -euo pipefail
cd "$(dirname "$0")/.."

groups=${1:-100000}
settle=${SETTLE:-5}
fps=1000
seconds=$(((groups + fps - 1) / fps))
out=target/group-churn
mkdir -p "$out"

cargo build --release --quiet --bin moqt
./scripts/install-moq-relay.sh >/dev/null
moq_relay="${MOQ_RELAY_BIN:-${MOQT_CACHE:-$HOME/.cache/moqt}/moq-relay-0.17.10/bin/moq-relay}"
moqt=target/release/moqt

rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }

measure() {
  local name=$1 port=$((20000 + RANDOM % 20000))
  case $name in
    moqt) $moqt relay --listen "127.0.0.1:$port" --tls-generate localhost --http-listen "127.0.0.1:$port" \
      >"$out/$name-relay.log" 2>&1 & ;;
    moq-relay) "$moq_relay" --listen "127.0.0.1:$port" --listen-tls-generate localhost,127.0.0.1 \
      --web-http-listen "127.0.0.1:$port" --connect-bind 127.0.0.1:0 --auth-public '**' \
      >"$out/$name-relay.log" 2>&1 & ;;
  esac
  local pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local fp; fp=$(curl -s "http://127.0.0.1:$port/certificate.sha256")
  local url="moql://localhost:$port/anon"
  # A short warm-up run first, so the baseline includes what any first session allocates.
  $moqt bench "$url" --tls-fingerprint "$fp" --publishers 1 --subscribers 1 --frame-size 16 --fps 100 \
    --group-frames 1 --seconds 2 --json >/dev/null 2>&1 || true
  sleep "$settle"
  local before; before=$(rss "$pid")
  $moqt bench "$url" --tls-fingerprint "$fp" --publishers 1 --subscribers 1 --frame-size 16 --fps "$fps" \
    --group-frames 1 --seconds "$seconds" --relay-pid "$pid" --json >"$out/$name.json" 2>"$out/$name-bench.log"
  local at_end; at_end=$(rss "$pid")
  sleep "$settle"
  local after; after=$(rss "$pid")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local delivered; delivered=$(sed -n 's/.*"frames_delivered":\([0-9]*\).*/\1/p' "$out/$name.json")
  awk -v n="$name" -v g="$groups" -v b="$before" -v e="$at_end" -v a="$after" -v d="$delivered" 'BEGIN {
    printf "%-10s %8d groups (%s delivered)  RSS before %7d KiB, at the end %7d KiB, %ds later %7d KiB  ", n, g, d, b, e, '"$settle"', a
    printf "growth per group: %.1f bytes at the end, %.1f bytes after settling\n", (e - b) * 1024 / g, (a - b) * 1024 / g
  }'
}

{
  echo "group churn: $groups groups of one 16-byte frame at $fps groups/s, 1 publisher -> relay -> 1 subscriber"
  measure moqt
  measure moq-relay
} | tee "$out/summary.txt"
