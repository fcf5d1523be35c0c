#!/usr/bin/env bash
# What one request costs the kernel and the scheduler, for varco (a SPID level 2 route with a
# session, access log on) and for nginx (plain reverse proxy, default access log on), side by
# side: system calls by name (strace -c), context switches and CPU time (perf stat), per request,
# under the same keep-alive load as benches/load.sh. strace slows the process it watches, so its
# run is short and only its counts are used, never its times.
#
#   benches/profile.sh [seconds, default 5]
#
# Needs strace, linux-perf, nginx and wrk (Debian packages); everything on 127.0.0.1, bounded in
# time.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${CONNS:-64}
threads=${VARCO_THREADS:-$(nproc)}
for tool in strace perf nginx wrk; do
  command -v "$tool" >/dev/null || { echo "profile.sh: needs $tool" >&2; exit 1; }
done
cargo build --release --locked -p gateway -p benches >/dev/null 2>&1

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM
BACKEND=18281 NGINX=18282 VARCO=18283 ADMIN=18284
mkdir -p "$work/nginx-b" "$work/nginx-p"
cat > "$work/nginx-b/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-b/pid; error_log $work/nginx-b/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok\n"; } } }
CONF
cat > "$work/nginx-p/nginx.conf" <<CONF
worker_processes $threads; daemon off; error_log /dev/null; pid $work/nginx-p/pid;
events { worker_connections 4096; }
http { access_log $work/nginx-p/access.log combined; keepalive_requests 100000;
  upstream be { server 127.0.0.1:$BACKEND; keepalive 128; }
  server { listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header X-Forwarded-For \$remote_addr; } } }
CONF
# shellcheck source=benches/bench-config.sh
. benches/bench-config.sh
write_bench_config "$work" "$VARCO" "$ADMIN" "$BACKEND" "threads = $threads
access_log = true"
nginx -p "$work/nginx-b" -c "$work/nginx-b/nginx.conf" & pids+=($!)
nginx -p "$work/nginx-p" -c "$work/nginx-p/nginx.conf" & pids+=($!); nginx_p=$!
target/release/varco run --config "$work/varco.toml" > "$work/varco.log" 2>&1 & pids+=($!); varco=$!
for _ in $(seq 100); do curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$VARCO/pub/" && break; sleep 0.1; done
session=$(target/release/bench-login "http://bench.localhost:$VARCO" "127.0.0.1:$VARCO" "http://bench.localhost:$VARCO/auth/")

# Every thread of these processes and of their children (nginx's workers).
tids() { for p in "$@"; do for q in $p $(pgrep -P "$p" || true); do ls "/proc/$q/task"; done; done | paste -sd, -; }
requests() { python3 -c 'import re,sys; print(re.search(r"(\d+) requests in", sys.stdin.read()).group(1))'; }

measure() { # name port pid path [cookie]
  local cookie=() t
  if [ -n "${5:-}" ]; then cookie=(-H "Cookie: $5"); fi
  wrk -t2 -c"$conns" -d2s -H "Host: bench.localhost" "${cookie[@]}" "http://127.0.0.1:$2$4" >/dev/null
  t=$(tids "$3")
  # perf stat over a plain run: context switches, migrations and CPU time per request.
  perf stat -x, -e task-clock,context-switches,cpu-migrations -t "$t" -o "$work/$1.perf" -- \
    wrk -t2 -c"$conns" -d"${secs}s" -H "Host: bench.localhost" "${cookie[@]}" "http://127.0.0.1:$2$4" > "$work/$1.wrk"
  # strace -c over a short run: the system calls by name.
  strace -c -f -q -o "$work/$1.strace" -p "$t" 2>>"$work/strace.err" &
  local st=$!
  sleep 1
  wrk -t2 -c"$conns" -d2s -H "Host: bench.localhost" "${cookie[@]}" "http://127.0.0.1:$2$4" > "$work/$1.swrk"
  kill -INT "$st"; wait "$st" 2>/dev/null || true
  python3 - "$1" "$(requests < "$work/$1.wrk")" "$(requests < "$work/$1.swrk")" "$work/$1.perf" "$work/$1.strace" <<'PY'
import sys
name, reqs, sreqs, perf, strace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
stats = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) > 2 and f[0] and not line.startswith("#"):
        try:
            stats[f[2]] = float(f[0])
        except ValueError:
            pass
calls = {}
for line in open(strace):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
print(f"{name}: {reqs} requests; CPU {stats.get('task-clock', 0) * 1000 / reqs:.1f} us/req, "
      f"context switches {stats.get('context-switches', 0) / reqs:.2f}/req, "
      f"migrations {stats.get('cpu-migrations', 0) / reqs:.3f}/req; "
      f"system calls {total / sreqs:.2f}/req: " + ", ".join(f"{k} {v / sreqs:.2f}" for k, v in top))
PY
}
echo "# wrk -t2 -c$conns, keep-alive GETs of a 3-byte body; proxies with $threads threads/workers; $(nproc) CPUs"
measure nginx-log-on $NGINX "$nginx_p" /
measure varco-spid-l2 $VARCO "$varco" /auth/ "$session"
