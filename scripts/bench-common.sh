# What the benchmark scripts share; sourced by scripts/bench-*.sh, not run. Set `profile` (a cargo
# profile) before sourcing to build with it (default release).

profile=${profile:-release}
target_dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
moqt=$target_dir/moqt
moq_relay="${MOQ_RELAY_BIN:-${MOQT_CACHE:-$HOME/.cache/moqt}/moq-relay-0.17.10/bin/moq-relay}"

# Builds the moqt command and the examples named. Apart: an example builds the library with the
# dev-dependencies' features, the command without.
build() {
  cargo build --profile "$profile" --quiet --bin moqt
  local example
  for example in "$@"; do cargo build --profile "$profile" --quiet --example "$example"; done
}

# Installs moq-relay into ~/.cache/moqt if one of the relays named is moq-relay.
need_moq_relay() {
  if [[ " $* " == *" moq-relay "* ]]; then ./scripts/install-moq-relay.sh >/dev/null; fi
}

# One port number for QUIC (UDP) and the fingerprint listener (TCP): the http:// URL form.
free_port() { echo $((20000 + RANDOM % 20000)); }
wait_tcp() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# A number field of a one-line JSON object: field FILE NAME.
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

# The command line of relay NAME (moqt or moq-relay) on 127.0.0.1:PORT, into the array relay_cmd.
relay_command() {
  case $1 in
    moqt) relay_cmd=("$moqt" relay --listen "127.0.0.1:$2" --tls-generate localhost --http-listen "127.0.0.1:$2") ;;
    moq-relay) relay_cmd=("$moq_relay" --listen "127.0.0.1:$2" --listen-tls-generate localhost,127.0.0.1
      --web-http-listen "127.0.0.1:$2" --connect-bind 127.0.0.1:0 --auth-public '**') ;;
    *) echo "unknown relay $1 (moqt, moq-relay)" >&2; return 2 ;;
  esac
}
