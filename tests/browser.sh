#!/usr/bin/env bash
# Browser tests: varco's pages in Debian's headless Chromium, driven by Playwright (playwright-core,
# pinned in tests/browser/package-lock.json), with axe-core accessibility checks. Uses the debug
# build of varco and of the Tuscany generator (built here if missing). Ends with
# "browser: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -q -p gateway --bin varco -p benches --bin tuscany-config
(cd tests/browser && npm ci --no-audit --no-fund --silent)
log=$(mktemp)
pki=$(mktemp -d)
trap 'rm -rf "$log" "$pki"' EXIT
# The HTTPS and CNS certificates (tests/browser/cns.test.mjs), before Node starts: Node reads
# NODE_EXTRA_CA_CERTS only then.
tests/browser/pki.sh "$pki"
# Beside the CAs Node is already told of, if any (a proxy's, say).
cat ${NODE_EXTRA_CA_CERTS:+"$NODE_EXTRA_CA_CERTS"} "$pki/server-ca.pem" > "$pki/node-cas.pem"
export VARCO_TEST_PKI="$pki" NODE_EXTRA_CA_CERTS="$pki/node-cas.pem"
status=0
(cd tests/browser && node --test --test-reporter=spec) 2>&1 | tee "$log" || status=$?
pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
echo "browser: ${pass:-0} passed, ${fail:-1} failed"
exit "$status"
