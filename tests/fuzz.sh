#!/usr/bin/env bash
# Fuzz smoke runs: every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each (default 15), with
# libFuzzer on the nightly toolchain. A panic, a hang or running out of memory fails the run and
# leaves its input in fuzz/artifacts/TARGET/ (turn it into a regression test).
# FUZZ_FLAGS picks the build: by default an unoptimised build without sanitizer (3.5 minutes to
# build on 2 cores instead of 9; the crates forbid unsafe code and the C libraries are not
# instrumented either way); FUZZ_FLAGS="--release -s address" for long runs.
# Prints one line per target with its executions, then "fuzz: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-15}
read -r -a flags <<< "${FUZZ_FLAGS:---dev -s none}"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo +nightly fuzz build "${flags[@]}" >/dev/null 2>&1 || cargo +nightly fuzz build "${flags[@]}"
passed=0 failed=0
for target in $(cargo +nightly fuzz list); do
  # Committed seeds (fuzz/seeds/TARGET/) start the corpus, which itself is not kept in git.
  if [ -d "seeds/$target" ]; then
    mkdir -p "corpus/$target" && cp seeds/"$target"/* "corpus/$target/"
  fi
  log=$(mktemp)
  if cargo +nightly fuzz run "${flags[@]}" "$target" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
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
