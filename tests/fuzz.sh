#!/usr/bin/env bash
# Fuzz smoke runs: every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each (default 15), with
# libFuzzer and AddressSanitizer on the nightly toolchain. A crash, a leak or a timeout fails
# the run and leaves its input in fuzz/artifacts/TARGET/ (turn it into a regression test).
# Prints one line per target with its executions, then "fuzz: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-15}
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo +nightly fuzz build >/dev/null 2>&1 || cargo +nightly fuzz build
passed=0 failed=0
for target in $(cargo +nightly fuzz list); do
  log=$(mktemp)
  if cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | awk '{print $2}' | tail -1)
    echo "fuzz $target: ${runs:-?} executions in $secs s, no crash"
    passed=$((passed + 1))
  else
    echo "fuzz $target: FAILED"
    tail -40 "$log"
    failed=$((failed + 1))
  fi
  rm -f "$log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
