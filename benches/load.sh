#!/usr/bin/env bash
# Load benchmark, like against like: a small keep-alive GET through varco (a public route, and a
# SPID level 2 route with a real session: identity headers and the signed JWT), each with its
# access log on (the default) and off, and the level 2 route with `fast_path = false` (every
# request through pingora's proxy, as before the fast path); through nginx as a plain reverse proxy, with its access
# log off and with its default access log on; through a bare pingora `ProxyHttp` (the reference
# row: what pingora itself costs); and to the back-end directly. Then the same over HTTPS (TLS
# terminated by nginx and by varco, both with their access log on), and through each proxy to a
# back-end that answers after 2 ms (where connection reuse and the pool show). Same load tool,
# same machine, rounds interleaved, and only ratios measured in the same round count.
#
#   benches/load.sh [seconds per run, default 10] [rounds, default 3]
#   VARCO_BASE=/path/to/an/older/varco benches/load.sh 8 3   # and that build, side by side
#   BENCH_ONLY='varco-spid-l2|bare-pingora' benches/load.sh 10 3   # only these rows (and nginx's)
#
# Per target: requests/s, CPU microseconds per request of the proxy (from /proc), latency p50
# and p99 (wrk --latency), the upstream connections the proxy opened during the run (the back-end
# nginx's accepted connections: pool reuse), and per-round ratios to nginx (log off and log on);
# the summary gives the median of each over the rounds. A 2 s warm-up precedes each run.
#
# The back-end is nginx answering "ok" (so the back-end is never what is measured). Everything
# listens on 127.0.0.1 only and every run is bounded in time. Needs nginx and wrk (Debian
# packages nginx-light, wrk); installs them if missing. SLOW_MS sets the slow back-end's delay
# (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
conns=${CONNS:-64}
threads=${VARCO_THREADS:-$(nproc)}

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

BACKEND=18181 NGINX=18182 VARCO=18183 ADMIN=18184 BASE=18185 BASE_ADMIN=18186
NGINX_LOG=18187 BARE=18188 NOLOG=18189 NOLOG_ADMIN=18190
SLOW=18191 NGINX_SLOW=18192 BARE_SLOW=18193 NGINX_TLS=18194 VARCO_TLS=18195 TLS_PLAIN=18196
TLS_ADMIN=18197 PINGORA_PATH=18198 PINGORA_PATH_ADMIN=18199
slow_ms=${SLOW_MS:-2}
mkdir -p "$work/nginx-b" "$work/nginx-p" "$work/nginx-l"
cat > "$work/nginx-b/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-b/pid; error_log $work/nginx-b/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$BACKEND;
    location = /nginx_status { stub_status; }
    location / { return 200 "ok\n"; } } }
CONF
proxy_conf() { # port access-log-line [backend port] [listen options]
  cat <<CONF
worker_processes $threads; daemon off; error_log /dev/null;
events { worker_connections 4096; }
http { $2 keepalive_requests 100000;
  upstream be { server 127.0.0.1:${3:-$BACKEND}; keepalive 128; }
  server { listen 127.0.0.1:$1 ${4:-};
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header X-Forwarded-For \$remote_addr; } } }
CONF
}
{ echo "pid $work/nginx-p/pid;"; proxy_conf $NGINX "access_log off;"; } > "$work/nginx-p/nginx.conf"
# nginx's default: the combined format, buffered by the kernel's page cache like varco's log.
{ echo "pid $work/nginx-l/pid;"; proxy_conf $NGINX_LOG "access_log $work/nginx-l/access.log combined;"; } > "$work/nginx-l/nginx.conf"
mkdir -p "$work/nginx-s" "$work/nginx-t" "$work/tls"
{ echo "pid $work/nginx-s/pid;"; proxy_conf $NGINX_SLOW "access_log $work/nginx-s/access.log combined;" $SLOW; } > "$work/nginx-s/nginx.conf"
# HTTPS: one self-signed certificate for both; TLS 1.2 and 1.3, each server's default ciphers.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench.localhost" \
  -addext "subjectAltName=DNS:bench.localhost" -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null
{ echo "pid $work/nginx-t/pid;"
  proxy_conf $NGINX_TLS "access_log $work/nginx-t/access.log combined; ssl_certificate $work/tls/cert.pem; ssl_certificate_key $work/tls/key.pem; ssl_protocols TLSv1.2 TLSv1.3;" $BACKEND ssl
} > "$work/nginx-t/nginx.conf"
# shellcheck source=benches/bench-config.sh
. benches/bench-config.sh
write_bench_config "$work" "$VARCO" "$ADMIN" "$BACKEND" "threads = $threads
access_log = true" "$SLOW"
BENCH_PUBLIC="https://bench.localhost:$VARCO_TLS" write_bench_config "$work/tls-varco" "$TLS_PLAIN" "$TLS_ADMIN" "$BACKEND" "threads = $threads
access_log = true
[server.tls]
listen = \"127.0.0.1:$VARCO_TLS\"
default = { cert = \"$work/tls/cert.pem\", key = \"$work/tls/key.pem\" }"
# The same varco with its fast path switched off: every request through pingora's proxy.
write_bench_config "$work/pingora-path" "$PINGORA_PATH" "$PINGORA_PATH_ADMIN" "$BACKEND" "threads = $threads
access_log = true
fast_path = false"
write_bench_config "$work/nolog" "$NOLOG" "$NOLOG_ADMIN" "$BACKEND" "threads = $threads
access_log = false"
if [ -n "${VARCO_BASE:-}" ]; then
  write_bench_config "$work/base" "$BASE" "$BASE_ADMIN" "$BACKEND" "threads = $threads
access_log = true"
fi

nginx -p "$work/nginx-b" -c "$work/nginx-b/nginx.conf" & pids+=($!); nginx_b=$!
nginx -p "$work/nginx-p" -c "$work/nginx-p/nginx.conf" & pids+=($!); nginx_p=$!
nginx -p "$work/nginx-l" -c "$work/nginx-l/nginx.conf" & pids+=($!); nginx_l=$!
nginx -p "$work/nginx-s" -c "$work/nginx-s/nginx.conf" & pids+=($!); nginx_s=$!
nginx -p "$work/nginx-t" -c "$work/nginx-t/nginx.conf" & pids+=($!); nginx_t=$!
target/release/slow-backend "127.0.0.1:$SLOW" "$slow_ms" > "$work/slow.log" 2>&1 & pids+=($!)
target/release/bare-pingora "127.0.0.1:$BARE" "127.0.0.1:$BACKEND" "$threads" > "$work/bare.log" 2>&1 & pids+=($!); bare=$!
target/release/bare-pingora "127.0.0.1:$BARE_SLOW" "127.0.0.1:$SLOW" "$threads" > "$work/bare-slow.log" 2>&1 & pids+=($!); bare_slow=$!
target/release/varco run --config "$work/tls-varco/varco.toml" > "$work/tls-varco.log" 2>&1 & pids+=($!); varco_tls=$!
target/release/varco run --config "$work/varco.toml" > "$work/varco.log" 2>&1 & pids+=($!); varco=$!
target/release/varco run --config "$work/nolog/varco.toml" > "$work/nolog.log" 2>&1 & pids+=($!); nolog=$!
target/release/varco run --config "$work/pingora-path/varco.toml" > "$work/pingora-path.log" 2>&1 & pids+=($!); pingora_path=$!
if [ -n "${VARCO_BASE:-}" ]; then
  "$VARCO_BASE" run --config "$work/base/varco.toml" > "$work/base.log" 2>&1 & pids+=($!); base=$!
fi
wait_up() { for _ in $(seq 100); do curl -sfk -o /dev/null -H "Host: bench.localhost" "${3:-http}://127.0.0.1:$1${2:-/}" && return 0; sleep 0.1; done
  echo "nothing answers on $1:" >&2; cat "$work"/*.log >&2; exit 1; }
for port in $BACKEND $NGINX $NGINX_LOG $BARE $SLOW $NGINX_SLOW $BARE_SLOW; do wait_up "$port"; done
wait_up $NGINX_TLS / https; wait_up $VARCO_TLS /pub/ https
wait_up $VARCO /pub/; wait_up $NOLOG /pub/; wait_up $PINGORA_PATH /pub/
login() { target/release/bench-login "${2:-http}://bench.localhost:$1" "127.0.0.1:$1" "${2:-http}://bench.localhost:$1/auth/"; }
session=$(login $VARCO)
nolog_session=$(login $NOLOG)
pingora_session=$(login $PINGORA_PATH)
tls_session=$(BENCH_CA="$work/tls/cert.pem" login $VARCO_TLS https)
curl -sf -o /dev/null -H "Host: bench.localhost" -H "Cookie: $session" "http://127.0.0.1:$VARCO/auth/" || { echo "authenticated request failed" >&2; exit 1; }
if [ -n "${VARCO_BASE:-}" ]; then wait_up $BASE /pub/; base_session=$(login $BASE); fi

hz=$(getconf CLK_TCK)
# CPU time (ticks) used so far by these processes and their children's threads.
ticks() { local t=0 p; for p in "$@"; do for q in $p $(pgrep -P "$p" || true); do
  t=$((t + $(awk '{print $14 + $15}' "/proc/$q/stat"))); done; done; echo $t; }
accepts() { # the back-end's accepted connections so far
  if [ "${1:-}" = slow ]; then curl -s "http://127.0.0.1:$SLOW/accepts"
  else curl -s "http://127.0.0.1:$BACKEND/nginx_status" | awk 'NR == 3 {print $1}'; fi; }

run() { # round name port pid-of-the-proxy-measured [path] [cookie] [scheme] [back-end: fast|slow]
  # BENCH_ONLY (a regular expression of row names) runs only those rows, and nginx's two.
  if [ -n "${BENCH_ONLY:-}" ] && ! [[ $2 =~ ^(nginx-log-off|nginx-log-on|$BENCH_ONLY)$ ]]; then return 0; fi
  local cookie=()
  if [ -n "${6:-}" ]; then cookie=(-H "Cookie: $6"); fi
  local url="${7:-http}://127.0.0.1:$3${5:-/}" be=${8:-fast}
  wrk -t2 -c"$conns" -d2s -H "Host: bench.localhost" "${cookie[@]}" "$url" >/dev/null
  local before after a0 a1 out
  a0=$(accepts "$be"); before=$(ticks "$4")
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Host: bench.localhost" "${cookie[@]}" "$url")
  after=$(ticks "$4"); a1=$(accepts "$be")
  # The two status requests are the back-end's own connections, not the proxy's.
  python3 - "$1" "$2" "$((after - before))" "$hz" "$((a1 - a0 - 1))" "$out" <<'PY'
import re, sys
rnd, name, ticks, hz, conns, out = sys.argv[1:7]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
def ms(label):
    m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
cpu = int(ticks) * 1e6 / int(hz) / max(reqs, 1)
bad = errors + (int(non2xx.group(1)) if non2xx else 0)
print(f"{rnd} {name} {rps:.0f} {cpu:.1f} {ms('50'):.3f} {ms('99'):.3f} {conns} {bad}")
PY
}

echo "# wrk -t2 -c$conns -d${secs}s --latency after a 2 s warm-up, $rounds interleaved rounds,"
echo "# keep-alive GET of a 3-byte body; proxies with $threads threads/workers; $(nproc) CPUs"
for r in $(seq "$rounds"); do
  run "$r" backend-direct $BACKEND "$nginx_b"
  run "$r" nginx-log-off $NGINX "$nginx_p"
  run "$r" nginx-log-on $NGINX_LOG "$nginx_l"
  run "$r" bare-pingora $BARE "$bare"
  run "$r" varco-public $VARCO "$varco" /pub/
  run "$r" varco-spid-l2 $VARCO "$varco" /auth/ "$session"
  run "$r" varco-public-nolog $NOLOG "$nolog" /pub/
  run "$r" varco-spid-l2-nolog $NOLOG "$nolog" /auth/ "$nolog_session"
  run "$r" varco-l2-pingora-path $PINGORA_PATH "$pingora_path" /auth/ "$pingora_session"
  run "$r" nginx-tls-log-on $NGINX_TLS "$nginx_t" / "" https
  run "$r" varco-tls-spid-l2 $VARCO_TLS "$varco_tls" /auth/ "$tls_session" https
  run "$r" nginx-log-on-${slow_ms}ms $NGINX_SLOW "$nginx_s" / "" http slow
  run "$r" bare-pingora-${slow_ms}ms $BARE_SLOW "$bare_slow" / "" http slow
  run "$r" varco-spid-l2-${slow_ms}ms $VARCO "$varco" /slow/ "$session" http slow
  if [ -n "${VARCO_BASE:-}" ]; then
    run "$r" base-public $BASE "$base" /pub/
    run "$r" base-spid-l2 $BASE "$base" /auth/ "$base_session"
  fi
done > "$work/runs.txt"
python3 - "$work/runs.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for rnd, name, rps, cpu, p50, p99, conns, bad in rows:
    by.setdefault(rnd, {})[name] = (float(rps), float(cpu), float(p50), float(p99), int(conns), int(bad))
names = []
for rnd in by:
    for n in by[rnd]:
        if n not in names:
            names.append(n)
med = statistics.median
def like(n):
    """The nginx row measured like `n`: over TLS, to the slow back-end, or plain (log on)."""
    if "tls" in n:
        return "nginx-tls-log-on"
    slow = [m for m in names if m.startswith("nginx-log-on-") and m.endswith("ms")]
    if n.endswith("ms") and slow:
        return slow[0]
    return "nginx-log-on"
head = ("target", "req/s", "x log-off", "x log-on", "x like", "CPU us/req", "p50 ms", "p99 ms", "upstream conns", "errors")
print("%-22s %8s %9s %8s %7s %10s %7s %7s %14s %6s" % head)
for n in names:
    runs = [by[r][n] for r in by if n in by[r]]
    off = [by[r][n][0] / by[r]["nginx-log-off"][0] for r in by if n in by[r]]
    on = [by[r][n][0] / by[r]["nginx-log-on"][0] for r in by if n in by[r]]
    lk = [by[r][n][0] / by[r][like(n)][0] for r in by if n in by[r] and like(n) in by[r]]
    print("%-22s %8.0f %9.2f %8.2f %7.2f %10.1f %7.3f %7.3f %14.0f %6d" % (
        n, med([x[0] for x in runs]), med(off), med(on), med(lk) if lk else float("nan"),
        med([x[1] for x in runs]), med([x[2] for x in runs]), med([x[3] for x in runs]),
        med([x[4] for x in runs]), sum(x[5] for x in runs)))
print("# x log-off / x log-on: median over the rounds of the per-round ratio to nginx with its access log off / on;")
print("# x like: to the nginx row measured the same way (log on; over TLS for TLS rows; to the slow back-end for its rows)")
print("# req/s per round: " + "; ".join(n + " " + " ".join(str(int(by[r][n][0])) for r in by if n in by[r]) for n in names))
PY
