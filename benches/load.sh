#!/usr/bin/env bash
# Load benchmark: requests/s of a small GET through varco (a public route, and a SPID level 2
# route with a real session: identity headers and the signed JWT), through nginx as a plain
# reverse proxy, and to the back-end directly, with the same load tool on this machine. The
# session comes from a real login through the test IdP (`bench-login`).
#
#   benches/load.sh [seconds per run, default 10] [rounds, default 3]
#   VARCO_BASE=/path/to/an/older/varco benches/load.sh 8 3   # and that build, side by side
#
# With VARCO_BASE, a second varco (that binary, on its own ports, same configuration) is measured
# in the same rounds: the way to tell whether a change made the request path slower, as figures
# from another run (another hour, another load on the machine) are no evidence.
#
# The back-end is nginx answering "ok" (so the back-end is never what is measured). Everything
# listens on 127.0.0.1 only and every run is bounded in time. Needs nginx and wrk (Debian
# packages nginx-light, wrk); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
conns=${CONNS:-64}

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release --locked -p gateway -p benches >/dev/null 2>&1

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

BACKEND=18181 NGINX=18182 VARCO=18183 ADMIN=18184
mkdir -p "$work/nginx-b" "$work/nginx-p"
cat > "$work/nginx-b/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-b/pid; error_log $work/nginx-b/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok\n"; } } }
CONF
cat > "$work/nginx-p/nginx.conf" <<CONF
worker_processes 2; daemon off; pid $work/nginx-p/pid; error_log $work/nginx-p/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  upstream be { server 127.0.0.1:$BACKEND; keepalive 128; }
  server { listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header X-Forwarded-For \$remote_addr; } } }
CONF
# shellcheck source=benches/bench-config.sh
. benches/bench-config.sh
write_bench_config "$work" "$VARCO" "$ADMIN" "$BACKEND" "threads = ${VARCO_THREADS:-2}
access_log = ${ACCESS_LOG:-true}"

BASE=18185 BASE_ADMIN=18186
if [ -n "${VARCO_BASE:-}" ]; then
  write_bench_config "$work/base" "$BASE" "$BASE_ADMIN" "$BACKEND" "threads = ${VARCO_THREADS:-2}
access_log = ${ACCESS_LOG:-true}"
fi

nginx -p "$work/nginx-b" -c "$work/nginx-b/nginx.conf" & pids+=($!)
nginx -p "$work/nginx-p" -c "$work/nginx-p/nginx.conf" & pids+=($!)
target/release/varco run --config "$work/varco.toml" > "$work/varco.log" 2>&1 & pids+=($!)
for port in $BACKEND $NGINX $VARCO; do
  for _ in $(seq 50); do curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

hz=$(getconf CLK_TCK)
# CPU time (ticks) used so far by these processes and their children's threads.
ticks() { local t=0 p; for p in "$@"; do for q in $p $(pgrep -P "$p" || true); do
  t=$((t + $(awk '{print $14 + $15}' "/proc/$q/stat"))); done; done; echo $t; }
nginx_b=${pids[0]} nginx_p=${pids[1]} varco=${pids[2]}
if [ -n "${VARCO_BASE:-}" ]; then
  "$VARCO_BASE" run --config "$work/base/varco.toml" > "$work/base.log" 2>&1 & pids+=($!)
  base=${pids[3]}
  for _ in $(seq 50); do curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$BASE/" && break; sleep 0.1; done
  base_session=$(target/release/bench-login "http://bench.localhost:$BASE" "127.0.0.1:$BASE" "http://bench.localhost:$BASE/auth/")
fi

curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$VARCO/" || { echo "varco did not start:" >&2; cat "$work/varco.log" >&2; exit 1; }
session=$(target/release/bench-login "http://bench.localhost:$VARCO" "127.0.0.1:$VARCO" "http://bench.localhost:$VARCO/auth/")
curl -sf -o /dev/null -H "Host: bench.localhost" -H "Cookie: $session" "http://127.0.0.1:$VARCO/auth/" || { echo "authenticated request failed" >&2; exit 1; }

run() { # name port pid-of-the-proxy-measured [path] [cookie]
  local before after out reqs
  before=$(ticks "$3")
  local cookie=()
  if [ -n "${5:-}" ]; then cookie=(-H "Cookie: $5"); fi
  out=$(wrk -t2 -c"$conns" -d"${secs}s" -H "Host: bench.localhost" "${cookie[@]}" "http://127.0.0.1:$2${4:-/}")
  after=$(ticks "$3")
  reqs=$(awk '/requests in/ {print $1}' <<< "$out")
  awk -v n="$1" -v r="$reqs" -v t="$((after - before))" -v hz="$hz" \
    '/Requests\/sec/ {printf "%s %s %.1f\n", n, $2, t * 1e6 / hz / r}' <<< "$out"
}
echo "# wrk -t2 -c$conns -d${secs}s, $rounds rounds, keep-alive GET of a 3-byte body"
echo "# requests/s, and CPU microseconds per request of the measured process (the proxy; the back-end for backend-direct)"
for r in $(seq "$rounds"); do
  run backend-direct $BACKEND "$nginx_b"
  run nginx-proxy $NGINX "$nginx_p"
  run varco-public $VARCO "$varco" /pub/
  run varco-spid-l2 $VARCO "$varco" /auth/ "$session"
  if [ -n "${VARCO_BASE:-}" ]; then
    run base-public $BASE "$base" /pub/
    run base-spid-l2 $BASE "$base" /auth/ "$base_session"
  fi
done | awk '{sum[$1]+=$2; cpu[$1]+=$3; n[$1]++; all[$1]=all[$1] " " int($2)}
  END {for (k in sum) printf "%-15s %8.0f req/s  %5.1f us CPU/req   runs:%s\n", k, sum[k]/n[k], cpu[k]/n[k], all[k]}' | sort
