#!/usr/bin/env bash
# Creates tests/federation/.venv (python3 -m venv) and installs the exact pins of
# requirements.txt into it. Idempotent: does nothing when the venv already holds
# this requirements.txt (sha256 stamp) for this python3 and its python still runs.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
venv=.venv
stamp=$venv/.requirements.stamp
pyver=$("$PY" -c 'import sys; print(sys.version.split()[0])')
want="$(sha256sum requirements.txt | cut -d' ' -f1) $pyver"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python" -c 'import spid_cie_oidc, django, bootstrap_italia_template' 2>/dev/null; then
  exit 0
fi
if [ "$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" != "$pyver" ]; then
  rm -rf "$venv"
  "$PY" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt
echo "$want" > "$stamp"
