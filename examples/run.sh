#!/usr/bin/env bash
# Runs varco with the example configuration (three comuni of the Provincia di Lucca) in front of
# three echo back-ends. Open http://127.0.0.1:8080/ ; metrics at http://127.0.0.1:9090/metrics.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo build --release --locked -p gateway
varco=target/release/varco
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for i in 1 2 3; do
  name=$(sed -n "${i}p" <<< $'capannori\nlucca\nporcari')
  "$varco" echo --listen "127.0.0.1:910$i" --name "$name" &
  pids+=($!)
done
"$varco" check --config examples/varco.toml
echo
echo "Portal:    http://127.0.0.1:8080/"
echo "Services:  http://capannori.localhost:8080/bandi/  (public)"
echo "           http://capannori.localhost:8080/tari/   (SPID level 2: login required)"
echo "Metrics:   http://127.0.0.1:9090/metrics"
echo
"$varco" run --config examples/varco.toml &
pids+=($!)
wait "${pids[-1]}"
