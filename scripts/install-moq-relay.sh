#!/usr/bin/env bash
# Installs the reference relay, moq-relay 0.17.10, into a cache directory that survives between CI
# runs on the same machine (about 20 minutes on 2 cores the first time, nothing after). The interop
# tests find it there (or at $MOQ_RELAY_BIN).
set -euo pipefail
root="${MOQT_CACHE:-$HOME/.cache/moqt}/moq-relay-0.17.10"
if [ -x "$root/bin/moq-relay" ]; then
  echo "moq-relay 0.17.10: cached at $root/bin/moq-relay"
  exit 0
fi
echo "moq-relay 0.17.10: installing into $root (first time only; about 20 minutes on 2 cores)"
mkdir -p "$root"
# No --locked: the crate's own lock file is not published; this is the documented install.
cargo install moq-relay --version 0.17.10 --root "$root"
"$root/bin/moq-relay" --help >/dev/null
