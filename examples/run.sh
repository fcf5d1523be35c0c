#!/usr/bin/env bash
# The README's first command: builds varco and runs `varco demo`, the whole flow on this computer
# (the portal and catalog of three comuni of the Provincia di Lucca, a DEMO SPID/CIE identity
# provider with test citizens, back-ends that show the identity they receive). Open
# http://127.0.0.1:8080/ ; Ctrl-C stops it. Keys are generated once in .state/demo/.
#
# To run the example configuration with `varco run` instead (no IdP, your own back-ends):
#   target/release/varco run --config examples/varco.toml
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo build --release --locked -p gateway
exec target/release/varco demo "$@"
