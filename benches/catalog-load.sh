#!/usr/bin/env bash
# Catalog load benchmark on the whole of Tuscany (273 comuni × 40 services): requests/s of
# /catalog.json (whole, gzip and plain; one comune), of a search results page and of the home,
# through varco (release build), with wrk on 127.0.0.1, every run bounded in time.
#
#   benches/catalog-load.sh [seconds per run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -q -p gateway --bin varco -p benches --bin tuscany-config
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
PORT=18283 ADMIN=18284
main=$(target/release/tuscany-config "$work" 40 http://127.0.0.1:9 "127.0.0.1:$PORT" "127.0.0.1:$ADMIN")
started=$(date +%s%N)
target/release/varco run --config "$main" > "$work/varco.log" 2>&1 & pid=$!
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$ADMIN/readyz" && break; sleep 0.05; done
ready=$(( ($(date +%s%N) - started) / 1000000 ))
echo "# varco ready in ${ready} ms (load, validate, compile routes, build the catalog of 10 920 services)"
size() { curl -s -o /dev/null -w '%{size_download}' "$@"; }
echo "# /catalog.json: $(size "http://127.0.0.1:$PORT/catalog.json") bytes, gzip $(size -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PORT/catalog.json") bytes"
run() { # name path [header]
  local h=()
  [ -n "${3:-}" ] && h=(-H "$3")
  wrk -t2 -c32 -d"${secs}s" "${h[@]}" "http://127.0.0.1:$PORT$2" | awk -v n="$1" '/Requests\/sec/ {printf "%-34s %10.0f req/s\n", n, $2} /Transfer\/sec/ {print "    " $0}'
}
run "catalog.json whole, gzip" /catalog.json "Accept-Encoding: gzip"
run "catalog.json whole, plain" /catalog.json
run "catalog.json?comune=c_b648" "/catalog.json?comune=c_b648"
run "catalog.json?q=permesso+ztl&page=2" "/catalog.json?q=permesso+ztl&page=2"
run "catalog?q=ztl (HTML)" "/catalog?q=ztl"
run "home (HTML, 273 comuni)" /
