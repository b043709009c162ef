#!/usr/bin/env bash
# Soak: a relay under the video shape with subscriber churn for MINUTES, sampled every 10 s.
#
# Usage: scripts/soak.sh MINUTES [moqt|moq-relay]   (default: moqt)
#
# Load: `moqt bench` publishes 1 broadcast of 4 KB frames at 30 fps in 1 s groups to 20 steady
# subscribers for the whole run, while churn subscribers come and go: one joins every
# CHURN_INTERVAL seconds (default 1), reads 30 frames and leaves; every other one is killed with
# SIGKILL after its first frames instead (an abrupt leave: the relay only learns of it from the
# idle timeout). Every 10 s the relay's RSS, open file descriptors and (moqt's relay)
# /metrics sessions are written to a CSV. At the end: the RSS slope after a warm-up (the first
# fifth of the run, at least 2 minutes when the run is long enough), the first and last samples,
# and an SVG of RSS and fds over time.
#
# Builds moqt in release mode; installs moq-relay into ~/.cache/moqt if it is asked for and
# missing. Results: target/soak/<relay>-<minutes>min.{csv,svg,txt}.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:?usage: scripts/soak.sh MINUTES [moqt|moq-relay]}
relay=${2:-moqt}
interval=${CHURN_INTERVAL:-1}
seconds=$((minutes * 60))
out=target/soak
mkdir -p "$out"
name="$relay-${minutes}min"
csv="$out/$name.csv"

cargo build --release --quiet --bin moqt
moqt=target/release/moqt
port=$((20000 + RANDOM % 20000))
case $relay in
  moqt)
    $moqt relay --listen "127.0.0.1:$port" --tls-generate localhost --http-listen "127.0.0.1:$port" \
      >"$out/$name-relay.log" 2>&1 &
    ;;
  moq-relay)
    ./scripts/install-moq-relay.sh >/dev/null
    moq_relay="${MOQ_RELAY_BIN:-${MOQT_CACHE:-$HOME/.cache/moqt}/moq-relay-0.17.10/bin/moq-relay}"
    "$moq_relay" --listen "127.0.0.1:$port" --listen-tls-generate localhost,127.0.0.1 \
      --web-http-listen "127.0.0.1:$port" --connect-bind 127.0.0.1:0 --auth-public '**' \
      >"$out/$name-relay.log" 2>&1 &
    ;;
  *) echo "unknown relay $relay (moqt or moq-relay)" >&2; exit 2 ;;
esac
relay_pid=$!
pids=()
cleanup() {
  for pid in "${pids[@]}" "$relay_pid"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fp=$(curl -s "http://127.0.0.1:$port/certificate.sha256")
url="moql://localhost:$port/anon"

# The steady audience: the whole run plus a margin, so churn never outlives it.
$moqt bench "$url" --tls-fingerprint "$fp" --publishers 1 --subscribers 20 --frame-size 4096 --fps 30 \
  --group-frames 30 --seconds $((seconds + 30)) --json >"$out/$name-bench.json" 2>"$out/$name-bench.log" &
pids+=($!)

# Churn: clean and abrupt leaves, alternating.
(
  n=0
  end=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$end" ]; do
    n=$((n + 1))
    if [ $((n % 2)) = 0 ]; then
      timeout 10 $moqt subscribe "$url" --tls-fingerprint "$fp" --broadcast bench/0 --count 30 >/dev/null 2>&1 || true
    else
      $moqt subscribe "$url" --tls-fingerprint "$fp" --broadcast bench/0 >/dev/null 2>&1 &
      sub=$!
      sleep 0.5
      kill -9 "$sub" 2>/dev/null || true
      wait "$sub" 2>/dev/null || true
    fi
    echo "$n" >"$out/$name.cycles"
    sleep "$interval"
  done
) &
pids+=($!)

metric() { curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null | sed -n "s/^$1 \([0-9]*\)$/\1/p"; }
echo "seconds,rss_kib,fds,sessions,churn_cycles" >"$csv"
start=$SECONDS
while [ $((SECONDS - start)) -le "$seconds" ]; do
  rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$relay_pid/status")
  fds=$(ls "/proc/$relay_pid/fd" | wc -l)
  sessions=$([ "$relay" = moqt ] && metric moqt_sessions_active || true)
  cycles=$(cat "$out/$name.cycles" 2>/dev/null || echo 0)
  echo "$((SECONDS - start)),$rss,$fds,${sessions:-},$cycles" >>"$csv"
  sleep 10
done

# Least-squares slope of RSS over the samples after the warm-up, in KiB per hour.
warmup=$((seconds / 5))
[ "$seconds" -lt 600 ] || [ "$warmup" -ge 120 ] || warmup=120
summary=$(awk -F, -v warmup="$warmup" 'NR > 1 && $1 >= warmup {
    n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2
  }
  NR == 2 { first_rss = $2; first_fds = $3 }
  NR > 1 { last_t = $1; last_rss = $2; last_fds = $3; last_sessions = $4; cycles = $5; if ($2 > peak) peak = $2 }
  END {
    slope = (n > 1 && n * sxx - sx * sx != 0) ? (n * sxy - sx * sy) / (n * sxx - sx * sx) * 3600 : 0
    printf "samples %d (after a %d s warm-up: %d)\n", NR - 1, warmup, n
    printf "RSS: first %d KiB, last %d KiB, peak %d KiB; slope after warm-up %+.0f KiB/hour\n", first_rss, last_rss, peak, slope
    printf "fds: first %d, last %d; sessions at the end: %s; churn cycles: %d over %d s\n", first_fds, last_fds, last_sessions, cycles, last_t
  }' "$csv")

# RSS (MiB, left axis) and fds (right axis) over time.
awk -F, -v title="$relay soak: $minutes min, video shape + churn" 'NR > 1 { t[NR] = $1; r[NR] = $2 / 1024; f[NR] = $3; n = NR
    if ($1 > tmax) tmax = $1; if ($2 / 1024 > rmax) rmax = $2 / 1024; if ($3 > fmax) fmax = $3 }
  END {
    w = 800; h = 300; l = 60; b = 40; rmax *= 1.1; fmax *= 1.1; if (tmax == 0) tmax = 1
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", w + 2 * l, h + 2 * b
    printf "<text x=\"%d\" y=\"20\">%s</text>\n", l, title
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", l, b, w, h
    printf "<text x=\"5\" y=\"%d\" fill=\"#1f77b4\">RSS MiB</text><text x=\"5\" y=\"%d\" fill=\"#1f77b4\">%.0f</text>\n", b - 5, b + 12, rmax
    printf "<text x=\"%d\" y=\"%d\" fill=\"#d62728\">fds (max %.0f)</text>\n", w + l - 90, b - 5, fmax
    printf "<text x=\"%d\" y=\"%d\">0</text><text x=\"%d\" y=\"%d\">%d s</text>\n", l, h + b + 15, w + l - 40, h + b + 15, tmax
    printf "<polyline fill=\"none\" stroke=\"#1f77b4\" points=\""
    for (i = 2; i <= n; i++) printf "%.1f,%.1f ", l + t[i] / tmax * w, b + h - r[i] / rmax * h
    printf "\"/>\n<polyline fill=\"none\" stroke=\"#d62728\" points=\""
    for (i = 2; i <= n; i++) printf "%.1f,%.1f ", l + t[i] / tmax * w, b + h - f[i] / fmax * h
    printf "\"/>\n</svg>\n"
  }' "$csv" >"$out/$name.svg"

{
  echo "$name: $summary" | sed '2,$s/^/  /'
  echo "  data: $csv; picture: $out/$name.svg"
} | tee "$out/$name.txt"
