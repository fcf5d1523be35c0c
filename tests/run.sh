#!/usr/bin/env bash
# The test command: installs what the build needs, then runs every test of the workspace
# (unit, property and integration tests; the integration tests start real gateways and
# back-ends on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo test --workspace --locked "$@"
