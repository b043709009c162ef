#!/usr/bin/env bash
# Side by side: the same `moqt bench` load through moqt's relay and through the reference
# moq-relay, both on loopback, with each relay's CPU per delivered GB and peak memory.
# Load from the environment: PUBLISHERS SUBSCRIBERS FRAME_SIZE FPS SECONDS_TO_RUN (defaults below).
# Builds moqt in release mode; installs moq-relay into ~/.cache/moqt if missing (~20 minutes once).
set -euo pipefail
cd "$(dirname "$0")/.."

publishers=${PUBLISHERS:-1}
subscribers=${SUBSCRIBERS:-20}
frame_size=${FRAME_SIZE:-16384}
fps=${FPS:-60}
seconds=${SECONDS_TO_RUN:-10}

cargo build --release --quiet --bin moqt
./scripts/install-moq-relay.sh >/dev/null
moq_relay="${MOQ_RELAY_BIN:-${MOQT_CACHE:-$HOME/.cache/moqt}/moq-relay-0.17.10/bin/moq-relay}"
out=target/bench-relays
mkdir -p "$out"

# One port number for QUIC (UDP) and the fingerprint listener (TCP): the http:// URL form.
free_port() { echo $((20000 + RANDOM % 20000)); }
wait_tcp() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

run() {
  local name=$1; shift
  local port; port=$(free_port)
  "$@" "$port" >"$out/$name.log" 2>&1 &
  local pid=$! status=0
  if wait_tcp "$port"; then
    target/release/moqt bench "http://localhost:$port/anon" --json --relay-pid "$pid" \
      --publishers "$publishers" --subscribers "$subscribers" --frame-size "$frame_size" \
      --fps "$fps" --seconds "$seconds" >"$out/$name.json" 2>>"$out/$name.log" || status=$?
  else
    status=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$status" = 0 ] || echo "the bench through $name failed; see $out/$name.log" >&2
  return "$status"
}

start_moqt() { exec target/release/moqt relay --listen "127.0.0.1:$1" --tls-generate localhost \
  --http-listen "127.0.0.1:$1"; }
start_moq_relay() { exec "$moq_relay" --listen "127.0.0.1:$1" --listen-tls-generate localhost,127.0.0.1 \
  --web-http-listen "127.0.0.1:$1" --connect-bind 127.0.0.1:0 --auth-public '**'; }

echo "== load: $publishers publisher(s) x $subscribers subscribers, $frame_size-byte frames at $fps fps, ${seconds} s"
run moqt start_moqt
run moq-relay start_moq_relay

field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$out/$1.json"; }
printf '%-10s %10s %10s %8s %10s %9s %9s %9s %12s %12s\n' relay sent delivered lost Gbit/s p50_ms p99_ms max_ms cpu_s/GB peak_rss_KiB
for name in moqt moq-relay; do
  printf '%-10s %10s %10s %8s %10s %9s %9s %9s %12s %12s\n' "$name" \
    "$(field "$name" frames_sent)" "$(field "$name" frames_delivered)" "$(field "$name" frames_lost)" \
    "$(field "$name" gbit_per_sec)" "$(field "$name" latency_p50_ms)" "$(field "$name" latency_p99_ms)" \
    "$(field "$name" latency_max_ms)" "$(field "$name" relay_cpu_sec_per_gb)" "$(field "$name" relay_peak_rss_kib)"
done
echo "(JSON and logs in $out/)"
