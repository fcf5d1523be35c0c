# Sourced by the load and soak scripts: writes into $1 a varco configuration for the host
# bench.localhost, listening on 127.0.0.1:$2 (admin $3), with two services on the back-end
# 127.0.0.1:$4: /pub/ (public) and /auth/ (SPID level 2, three attributes), trusting the test IdP.
# $5: further [server] lines (a [server.tls] table may follow them). $6: a slow back-end's port,
# for a third service /slow/ (SPID level 2, as /auth/). BENCH_PUBLIC: the public URL (default
# http://bench.localhost:$2).
write_bench_config() {
  local dir=$1 varco=$2 admin=$3 backend=$4 server_extra=${5:-} slow=${6:-}
  local public=${BENCH_PUBLIC:-http://bench.localhost:$varco}
  mkdir -p "$dir/policies" "$dir/keys"
  cp examples/keys/sp.key examples/keys/sp.crt examples/keys/audit.key "$dir/"
  cp examples/keys/jwt.pem "$dir/keys/"
  cat > "$dir/varco.toml" <<CONF
[server]
listen = "127.0.0.1:$varco"
admin_listen = "127.0.0.1:$admin"
public_url = "$public"
$server_extra
[sp]
entity_id = "$public/.sso/metadata"
key = "sp.key"
cert = "sp.crt"
audit_key = "audit.key"
organization = { name = "Bench", display_name = "Bench", url = "https://bench.example" }
contact = { ipa_code = "p_bench", email = "spid@bench.example", municipality = "046017" }
[[sp.attribute_set]]
index = 0
name = "Base"
attributes = ["fiscalNumber", "name", "familyName"]
[[idp]]
metadata = "$PWD/idp-bridge/test_vectors/spid-sp-test-idp.xml"
CONF
  cat > "$dir/policies/bench.toml" <<CONF
[comune]
name = "Comune di Bench"
ipa_code = "c_bench"
istat_code = "046999"
[[service]]
id = "pub"
name = "Servizio pubblico"
description = "bench"
category = "ambiente"
route = { host = "bench.localhost", path_prefix = "/pub/" }
upstream = "http://127.0.0.1:$backend"
level = "public"
[[service]]
id = "auth"
name = "Servizio con SPID"
description = "bench"
category = "ambiente"
route = { host = "bench.localhost", path_prefix = "/auth/" }
upstream = "http://127.0.0.1:$backend"
level = "SpidL2"
attributes = ["fiscalNumber", "name", "familyName"]
CONF
  if [ -n "$slow" ]; then
    cat >> "$dir/policies/bench.toml" <<CONF
[[service]]
id = "slow"
name = "Servizio lento"
description = "bench"
category = "ambiente"
route = { host = "bench.localhost", path_prefix = "/slow/" }
upstream = "http://127.0.0.1:$slow"
level = "SpidL2"
attributes = ["fiscalNumber", "name", "familyName"]
CONF
  fi
}
