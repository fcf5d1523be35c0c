#!/usr/bin/env bash
# SPID/CIE conformance with spid-sp-test, the official tool (PyPI), fully offline on loopback.
# Starts varco with a configuration that trusts the spid-sp-test IdP (test vectors of idp-bridge),
# then checks the SP metadata and the AuthnRequest (HTTP-Redirect, from /.sso/login) for the
# spid-sp-public and cie-sp-public profiles (--extra).
# Then the same varco as a SPID aggregator (sp.mode = "aggregator"): the metadata of the three
# example comuni with the spid-sp-ag-public-full profile, and for Capannori also the AuthnRequest
# of one of its services and the 111 responses to its own ACS; and Capannori's CIE metadata.
# Guards against the tool's silent skips: each JSON report must hold the expected categories,
# every check in it must have succeeded, and the counts are printed as
#   spid-sp-test PROFILE: N passed, M failed
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=target/spid-sp-test-venv
if [ ! -x "$venv/bin/spid_sp_test" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "spid-sp-test==1.2.18"
fi
cargo build --locked -p gateway --bin varco >/dev/null 2>&1 || cargo build --locked -p gateway --bin varco

work=$(mktemp -d)
pid=
pid2=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$pid2" ] && kill "$pid2" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/policies"
cp examples/keys/sp.key examples/keys/sp.crt examples/keys/audit.key "$work/"
mkdir -p "$work/keys" && cp examples/keys/jwt.pem "$work/keys/"
cp examples/policies/*.toml "$work/policies/"
cat > "$work/varco.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
public_url = "http://localhost:$port"
access_log = false

[sp]
entity_id = "http://localhost:$port/.sso/metadata"
key = "sp.key"
cert = "sp.crt"
audit_key = "audit.key"
organization = { name = "Provincia di Lucca", display_name = "Provincia di Lucca", url = "https://www.provincia.lucca.it" }
contact = { ipa_code = "p_lu", email = "spid@provincia.lucca.it", public = true, municipality = "046017" }

[[sp.attribute_set]]
index = 0
name = "Identità di base"
attributes = ["fiscalNumber", "name", "familyName"]

[[sp.attribute_set]]
index = 1
name = "Identità e contatti"
attributes = ["fiscalNumber", "name", "familyName", "email", "mobilePhone"]

[[idp]]
metadata = "$root/idp-bridge/test_vectors/spid-sp-test-idp.xml"
kind = "spid"
CONF
target/debug/varco run --config "$work/varco.toml" > "$work/varco.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/.sso/metadata" && break; sleep 0.1; done

export IDP_CERT_PATH=$root/idp-bridge/test_vectors/spid-sp-test-idp
failed_any=0
authn="http://localhost:$port/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443"
run() { # profile metadata-path expected-responses [extra args] [login URL | "none": metadata only]
  local profile=$1 path=$2 expected=$3 report="$work/$1${report_name:+-$report_name}.json"
  local extra=${4:-} url=${5:-$authn} at=${at_port:-$port}
  local login=(--authn-url "$url" -tr)
  [ "$url" = none ] && login=()
  (cd "$work" && "$root/$venv/bin/spid_sp_test" --metadata-url "http://localhost:$at$path" \
      "${login[@]}" --profile "$profile" --extra $extra -rf json -o "$report" -d ERROR >"$work/$profile.out" 2>&1) || true
  python3 - "$report" "$profile" "$expected" "${report_name:-}" "$url" <<'PY' || failed_any=1
import json, sys
report, profile, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
label = sys.argv[4] if len(sys.argv) > 4 else ""
metadata_only = len(sys.argv) > 5 and sys.argv[5] == "none"
try:
    sp = json.load(open(report))["test"]["sp"]
except Exception as e:
    print(f"spid-sp-test {profile}: no report ({e}): 0 passed, 1 failed"); sys.exit(1)
results = [r for cat in sp.values() for checks in cat.values() for r in checks]
ok = sum(r["result"] == "success" for r in results)
bad = [r for r in results if r["result"] != "success"]
wanted = ("metadata_extra",) if metadata_only else ("metadata_extra", "authnrequest_extra", "response")
missing = [c for c in wanted if c not in sp]
responses = [r for checks in sp.get("response", {}).values() for r in checks]
if "response" in sp and len(responses) != expected:
    missing.append(f"response ({len(responses)} of {expected} tests ran)")
for r in bad:
    print(f"  FAILED {r.get('test')}: {r.get('value')}")
for c in missing:
    print(f"  MISSING category {c}: the tool skipped it")
print(f"spid-sp-test {profile}{' (' + label + ')' if label else ''}: {ok} passed, {len(bad) + len(missing)} failed")
sys.exit(1 if bad or missing or not results else 0)
PY
}
run spid-sp-public /.sso/metadata 111
# The same with the HTTP-POST binding for the AuthnRequest (an auto-submitting form).
report_name=post run spid-sp-public /.sso/metadata 111 "" "$authn&binding=post"
# spid-sp-test 1.2.18 crashes on the CIE profile unless 70 and 71 are named (SPID-CIE.md §1.5).
run cie-sp-public /.sso/metadata/cie 109

# The Region as SPID aggregator of the same comuni: every comune an aggregated SP of its own.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/127.0.0.1:$port/127.0.0.1:$port2/; s/127.0.0.1:$admin/127.0.0.1:$admin2/" \
    -e "s#localhost:$port#localhost:$port2#g" \
    -e "s#^audit_key = \"audit.key\"#audit_key = \"audit.key\"\naudit_log = \"audit/aggregator.log\"\nmode = \"aggregator\"#" \
    "$work/varco.toml" > "$work/aggregator.toml"
cat >> "$work/aggregator.toml" <<CONF

[sp.aggregator]
ipa_code = "r_toscan"
vat_number = "IT01386030488"
company = "Regione Toscana"
email = "spid@regione.toscana.example"
phone = "+390554381111"
CONF
target/debug/varco run --config "$work/aggregator.toml" > "$work/aggregator.log" 2>&1 &
pid2=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port2/.sso/metadata/c_b648" && break; sleep 0.1; done
capannori="http://localhost:$port2/.sso/login?idp=https%3A%2F%2Flocalhost%3A8443&return_to=http%3A%2F%2Fcapannori.localhost%3A$port2%2Ftari%2F"
at_port=$port2 report_name=c_b648 run spid-sp-ag-public-full /.sso/metadata/c_b648 111 "" "$capannori"
at_port=$port2 report_name=c_e715 run spid-sp-ag-public-full /.sso/metadata/c_e715 0 "" none
at_port=$port2 report_name=c_g882 run spid-sp-ag-public-full /.sso/metadata/c_g882 0 "" none
# Each comune's CIE metadata, with its own entityID.
at_port=$port2 report_name=c_b648 run cie-sp-public /.sso/metadata/cie/c_b648 0 "" none
exit $failed_any
