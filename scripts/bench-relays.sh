#!/usr/bin/env bash
# Side by side: the same `moqt bench` load through moqt's relay and through the reference
# moq-relay, both on loopback, alternating, with each relay's CPU per delivered GB and peak memory,
# and the ratio moqt / moq-relay of every figure.
#
# Usage: scripts/bench-relays.sh [SHAPE...]   (default: video hd audio)
#   video  1 publisher to 200 subscribers, 60 fps, 4 KB frames, 60-frame groups (video-like)
#   hd     1 publisher to 50 subscribers at 8 Mbit/s: 30 fps of 33 KB frames, 30-frame groups
#   audio  100 publishers each to 1 subscriber, 50 fps, 160-byte frames (audio/chat-like)
#   idle   1 publisher to 400 subscribers at 1 fps, 16-byte frames: memory per connection
#   custom from the environment: PUBLISHERS SUBSCRIBERS FRAME_SIZE FPS GROUP_FRAMES
# SECONDS_TO_RUN (default 10) is the length of every run; TRANSPORT=quic uses raw QUIC (moql://)
# instead of WebTransport. Builds moqt in release mode; installs moq-relay into ~/.cache/moqt if
# missing (~20 minutes once). Results: target/bench-relays/ (JSON per run, summary.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${SECONDS_TO_RUN:-10}
transport=${TRANSPORT:-webtransport}
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(video hd audio)

shape_load() {
  case $1 in
    video) echo "1 200 4096 60 60" ;;
    hd) echo "1 50 33334 30 30" ;;
    audio) echo "100 1 160 50 50" ;;
    idle) echo "1 400 16 1 1" ;;
    custom) echo "${PUBLISHERS:-1} ${SUBSCRIBERS:-20} ${FRAME_SIZE:-16384} ${FPS:-60} ${GROUP_FRAMES:-30}" ;;
    *) echo "unknown shape $1 (video, hd, audio, custom)" >&2; exit 2 ;;
  esac
}

profile=release
# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
build
need_moq_relay moq-relay
out=target/bench-relays
mkdir -p "$out"

run() { # NAME SHAPE: the shape's load through relay NAME
  local name=$1 shape=$2
  local port; port=$(free_port)
  relay_command "$name" "$port"
  "${relay_cmd[@]}" >"$out/$shape-$name.log" 2>&1 &
  local pid=$! status=0
  local url="http://localhost:$port/anon"
  # Raw QUIC: the fingerprint comes over plain HTTP, the session over moql://.
  if [ "$transport" = quic ] && wait_tcp "$port"; then
    url="moql://localhost:$port/anon --tls-fingerprint $(curl -s "http://127.0.0.1:$port/certificate.sha256")"
  fi
  if wait_tcp "$port"; then
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" >"$out/$shape-$name.baseline_kib"
    # shellcheck disable=SC2086
    "$moqt" bench $url --json --relay-pid "$pid" \
      --publishers "$publishers" --subscribers "$subscribers" --frame-size "$frame_size" \
      --fps "$fps" --group-frames "$group_frames" --seconds "$seconds" \
      >"$out/$shape-$name.json" 2>>"$out/$shape-$name.log" || status=$?
  else
    status=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$status" = 0 ] || echo "the bench through $name failed; see $out/$shape-$name.log" >&2
  return "$status"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "null" || b == "null") print "-"; else printf "%.2f", a / b }'; }
columns=(frames_sent frames_delivered frames_lost gbit_per_sec latency_p50_ms latency_p99_ms latency_max_ms relay_cpu_sec_per_gb relay_peak_rss_kib)
header=(sent delivered lost Gbit/s p50_ms p99_ms max_ms cpu_s/GB peak_KiB)
: >"$out/summary.txt"
for shape in "${shapes[@]}"; do
  read -r publishers subscribers frame_size fps group_frames <<<"$(shape_load "$shape")"
  {
    echo "== $shape: $publishers publisher(s) x $subscribers subscriber(s), $frame_size-byte frames at $fps fps," \
      "$group_frames-frame groups, ${seconds} s, $transport"
  } | tee -a "$out/summary.txt"
  run moqt "$shape"
  run moq-relay "$shape"
  {
    printf '%-16s' relay; printf ' %10s' "${header[@]}"; echo
    for name in moqt moq-relay; do
      printf '%-16s' "$name"
      for column in "${columns[@]}"; do printf ' %10s' "$(field "$out/$shape-$name.json" "$column")"; done
      echo
    done
    printf '%-16s' "moqt/moq-relay"
    for column in "${columns[@]}"; do
      printf ' %10s' "$(ratio "$(field "$out/$shape-moqt.json" "$column")" "$(field "$out/$shape-moq-relay.json" "$column")")"
    done
    echo
    # Memory per connection: peak resident memory above the relay's own at start, per session.
    sessions=$((publishers * (subscribers + 1)))
    for name in moqt moq-relay; do
      base=$(cat "$out/$shape-$name.baseline_kib"); peak=$(field "$out/$shape-$name.json" relay_peak_rss_kib)
      awk -v n="$name" -v b="$base" -v p="$peak" -v s="$sessions" \
        'BEGIN { printf "%s: %.0f KiB at start, %.1f KiB per session above it (%d sessions)\n", n, b, (p - b) / s, s }'
    done
  } | tee -a "$out/summary.txt"
done
echo "(JSON and logs in $out/, this table in $out/summary.txt)"
