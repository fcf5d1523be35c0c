#!/usr/bin/env bash
# Soak test: hundreds of keep-alive clients for a bounded time against a real varco (release
# build) in front of an echo back-end, with a mix of public, authenticated (a real session from a
# login through the test IdP), catalog and login traffic. Passes with 0 errors and RSS flat from
# the end of the warm-up to the end (the `soak` driver, benches/src/bin/soak.rs).
#
#   benches/soak.sh [seconds, default 120] [clients, default 300]
#
# CI runs a short form on the debug build (tests/run.sh: SOAK_PROFILE=debug, 20 s, 200 clients):
# the build the tests already made, since what counts here is errors and memory, not speed.
# Everything listens on 127.0.0.1 only, and the run ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
clients=${2:-300}
profile=${SOAK_PROFILE:-release}
if [ "$profile" = release ]; then
  build=(cargo build --release --locked -p gateway --bin varco -p benches --bin bench-login --bin soak)
else
  build=(cargo build --locked --workspace --bins)
fi
"${build[@]}" >/dev/null 2>&1 || "${build[@]}"
bin=target/$profile

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND=$(free_port) VARCO=$(free_port) ADMIN=$(free_port)

# shellcheck source=benches/bench-config.sh
. benches/bench-config.sh
write_bench_config "$work" "$VARCO" "$ADMIN" "$BACKEND" 'trusted_proxies = ["127.0.0.1/32"]
threads = 2
access_log = false'

$bin/varco echo --listen "127.0.0.1:$BACKEND" --name soak > /dev/null 2>&1 & pids+=($!)
$bin/varco run --config "$work/varco.toml" > "$work/varco.log" 2>&1 & pids+=($!)
varco=${pids[1]}
for _ in $(seq 100); do curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$VARCO/pub/" && break; sleep 0.1; done
curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$VARCO/pub/" || { echo "varco did not start:" >&2; cat "$work/varco.log" >&2; exit 1; }
session=$($bin/bench-login "http://bench.localhost:$VARCO" "127.0.0.1:$VARCO" "http://bench.localhost:$VARCO/auth/")
$bin/soak "127.0.0.1:$VARCO" bench.localhost "$session" "$varco" "$secs" "$clients"
