#!/usr/bin/env bash
# The test command: installs what the build needs, runs every test of the workspace (unit,
# property and integration tests; the integration tests start real gateways, back-ends, a real
# OpenID provider and the reference OpenID Connect Federation on loopback ports), the SPID/CIE conformance suite (tests/spid-sp-test.sh) and the browser tests
# (tests/browser.sh: headless Chromium, axe-core), the fuzz smoke runs (tests/fuzz.sh: every
# target for FUZZ_SECONDS), the short soak (benches/soak.sh: SOAK_SECONDS with 200 clients) and
# the Debian package (tests/package.sh: built, inspected, unpacked into a clean folder and run)
# and the container image (tests/container.sh: built with podman, run read-only as its user).
# Ends with one summary line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The OpenID provider the OpenID Connect integration tests log in through (oidc-provider, pinned
# in tests/oidc/package-lock.json; Node.js from .ci/install-deps).
npm ci --prefix tests/oidc --no-audit --no-fund --silent
# The reference SPID/CIE OpenID Connect Federation (PyPI spid-cie-oidc, pinned in
# tests/federation/requirements.txt) the federation test logs in through.
tests/federation/setup.sh
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
tests/spid-sp-test.sh 2>&1 | tee -a "$log" || status=1
tests/browser.sh 2>&1 | tee -a "$log" || status=1
# 10 s per target keeps the whole run within CI's half hour (FUZZ_SECONDS=60 for a longer smoke).
FUZZ_SECONDS=${FUZZ_SECONDS:-10} tests/fuzz.sh 2>&1 | tee -a "$log" || status=1
SOAK_PROFILE=debug benches/soak.sh "${SOAK_SECONDS:-20}" 200 2>&1 | tee -a "$log" || status=1
# Last: they build the production variant of the binary (no demo) over target/debug/varco.
tests/package.sh 2>&1 | tee -a "$log" || status=1
tests/container.sh 2>&1 | tee -a "$log" || status=1
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^(spid-sp-test |browser: |fuzz: |soak: |package: |container: )/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
