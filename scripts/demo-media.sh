#!/usr/bin/env bash
# Real media through moqt: ffmpeg encodes a few seconds of test pattern and tone (H.264 + Opus,
# 1-second groups) as fragmented MP4, `moqt publish --media fmp4` publishes it as a hang broadcast
# (catalog + legacy container; CONTAINER=cmaf passes the fragments through instead), moqt's relay
# carries it, and `moqt subscribe --media fmp4` writes what it received to an MP4. ffprobe then
# shows that the received file has the source's codecs, resolution, frame counts, timestamps and
# duration (within one frame).
# Installs ffmpeg if missing. Run by scripts/demo.sh after the C demo; runnable on its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "== installing ffmpeg"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg
fi

profile=${MOQT_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
container=${CONTAINER:-legacy}
seconds=${SECONDS_OF_MEDIA:-4}
if [ "$profile" = release ]; then cargo build --release --quiet --bin moqt; else cargo build --quiet --bin moqt; fi
moqt=$target/$profile/moqt
work=$target/demo-media
rm -rf "$work" && mkdir -p "$work"

echo "== encoding ${seconds}s of H.264 640x360 30 fps + Opus 48 kHz stereo as fragmented MP4"
ffmpeg -v error -f lavfi -i "testsrc=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$seconds" -ac 2 -c:v libx264 -preset veryfast -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a libopus -b:a 64k -f mp4 -movflags cmaf+frag_keyframe+empty_moov+default_base_moof "$work/source.mp4"

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
port=$(free_port)
echo "== starting the relay on 127.0.0.1:$port (QUIC on UDP, its certificate fingerprint over HTTP on TCP)"
$moqt relay --listen "127.0.0.1:$port" --tls-generate localhost --http-listen "127.0.0.1:$port" 2> "$work/relay.log" &
relay=$!
trap 'kill $relay 2>/dev/null || true; wait $relay 2>/dev/null || true' EXIT
# http:// URLs pin the certificate fingerprint the relay serves over plain HTTP (development).
url="http://localhost:$port/demo-room"
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

echo "== subscriber: moqt subscribe --media fmp4 (from the oldest group the relay keeps)"
$moqt subscribe "$url" --broadcast clip --media fmp4 --start oldest > "$work/received.mp4" 2> "$work/subscribe.log" &
subscriber=$!
echo "== publisher: the fragmented MP4 | moqt publish --media fmp4 --container $container --realtime"
$moqt publish "$url" --broadcast clip --media fmp4 --container "$container" --realtime < "$work/source.mp4" \
  2> "$work/publish.log" || { echo "the publisher failed:"; cat "$work/publish.log"; exit 1; }
if ! wait $subscriber; then
  echo "the subscriber failed:"; cat "$work/subscribe.log"; exit 1
fi

probe() { # file stream -> "codec,width/rate,height/channels,frames"
  ffprobe -v error -select_streams "$2" -count_packets -show_entries stream=codec_name,width,height,sample_rate,channels,nb_read_packets \
    -of csv=p=0 "$1"
}
pts() { # file stream -> presentation times in ms, one per line, sorted
  ffprobe -v error -select_streams "$2" -show_entries packet=pts_time -of csv=p=0 "$1" | awk '{printf "%d\n", $1 * 1000 + 0.5}' | sort -n
}
status=0
for stream in v:0 a:0; do
  sent=$(probe "$work/source.mp4" $stream)
  got=$(probe "$work/received.mp4" $stream)
  echo "   $stream sent:     $sent"
  echo "   $stream received: $got"
  [ "$sent" = "$got" ] || { echo "   $stream differs"; status=1; }
  if ! diff <(pts "$work/source.mp4" $stream) <(pts "$work/received.mp4" $stream) > "$work/pts-$stream.diff"; then
    echo "   $stream timestamps differ (see $work/pts-$stream.diff)"; status=1
  else
    echo "   $stream timestamps: the same $(pts "$work/source.mp4" $stream | wc -l) presentation times"
  fi
done
duration() { ffprobe -v error -show_entries format=duration -of csv=p=0 "$1"; }
sent_duration=$(duration "$work/source.mp4")
got_duration=$(duration "$work/received.mp4")
# hang carries presentation times, not durations: the subscriber gives a track's last sample the
# duration of the one before it, so the end may move by less than one frame (1/30 s at 30 fps).
if awk -v a="$sent_duration" -v b="$got_duration" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1 / 30) }'; then
  echo "   duration: received $got_duration s, sent $sent_duration s (within one frame, 1/30 s)"
else
  echo "   duration differs: received $got_duration s, sent $sent_duration s (more than one frame, 1/30 s)"; status=1
fi
[ $status -eq 0 ] || exit 1
echo "== done: $work/received.mp4 plays with the source's codecs, sizes, frames, timestamps and duration"
