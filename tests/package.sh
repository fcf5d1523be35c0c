#!/usr/bin/env bash
# The Debian package, as ops get it: built with cargo-deb (pinned) from the production build
# (no DEMO identity provider; a debug build here, for time: `cargo deb -p gateway` after
# `cargo build --release -p gateway --no-default-features` makes the real one), inspected, then
# unpacked into a clean folder and run from there: the configuration it ships is refused until
# it is filled in, and once filled in (keys, a policy file) varco starts and serves.
# Prints "package: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$PWD
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 2.7.0'; then
  cargo install --locked --quiet cargo-deb --version 2.7.0
fi
cargo build --locked -q -p gateway --no-default-features --bin varco
cargo deb -p gateway --profile dev --no-build -q -o target/varco.deb 2>/dev/null

passed=0 failed=0
check() { # description command...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else echo "  FAILED: $what"; failed=$((failed + 1)); fi
}
root=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$root"; }
trap cleanup EXIT INT TERM
dpkg-deb -x target/varco.deb "$root"
dpkg-deb -e target/varco.deb "$root/DEBIAN"
info=$(dpkg-deb -I target/varco.deb)
check "the package is named varco" grep -q '^ Package: varco$' <<<"$info"
check "it depends on the libraries the binary links" grep -qE '^ Depends: .*libxmlsec1-openssl.*' <<<"$info"
check "it depends on OpenSSL 3" grep -qE '^ Depends: .*libssl3' <<<"$info"
check "the configuration is a conffile" grep -qx /etc/varco/varco.toml "$root/DEBIAN/conffiles"
for f in usr/bin/varco lib/systemd/system/varco.service etc/varco/varco.toml etc/varco/policies/README \
         usr/share/doc/varco/README.md usr/share/doc/varco/examples/policies/capannori.toml; do
  check "it installs /$f" test -f "$root/$f"
done
check "the configuration is not world-readable" test "$(stat -c %a "$root/etc/varco/varco.toml")" = 640
for script in postinst postrm prerm; do
  check "$script is a valid shell script" sh -n "$root/DEBIAN/$script"
done
check "postinst creates the varco user" grep -q 'adduser --system --group --home /var/lib/varco' "$root/DEBIAN/postinst"
# The unit, with its ExecStart pointing at the unpacked binary, passes systemd's own checks.
mkdir -p "$root/check"
sed "s#/usr/bin/varco#$root/usr/bin/varco#g" "$root/lib/systemd/system/varco.service" > "$root/check/varco.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  check "systemd-analyze verify accepts the unit" test -z "$(systemd-analyze verify "$root/check/varco.service" 2>&1)"
fi
for opt in ProtectSystem=strict NoNewPrivileges=yes User=varco "ExecReload=/bin/kill -HUP \$MAINPID" ReadWritePaths=/var/lib/varco; do
  check "the unit sets $opt" grep -qxF "$opt" "$root/lib/systemd/system/varco.service"
done
varco=$root/usr/bin/varco
help=$("$varco" --help)
# Every command of the README's command table is in --help, and the DEMO is not in this build.
for cmd in $(grep -oE '^\| `varco [a-z]+' README.md | awk '{print $3}' | sort -u); do
  if [ "$cmd" = demo ]; then
    check "the production build has no demo" bash -c "'$varco' demo --state '$root/demo' 2>&1 | grep -q 'this build has no demo'"
  else
    check "--help lists $cmd" grep -qE "^  $cmd( |$)" <<<"$help"
  fi
done
# As shipped, the configuration is refused, and the error names the missing key file.
out=$("$varco" check --config "$root/etc/varco/varco.toml" 2>&1 || true)
check "the shipped configuration is refused until filled in" grep -q '/etc/varco/keys/sp.key' <<<"$out"
# Filled in as the README's "Production" says, in the clean folder (its /etc and /var here).
install -d "$root/etc/varco/keys" "$root/var/lib/varco"
cp examples/keys/sp.key examples/keys/sp.crt examples/keys/audit.key examples/keys/jwt.pem "$root/etc/varco/keys/"
cp examples/policies/capannori.toml "$root/etc/varco/policies/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s#/etc/varco#$root/etc/varco#g; s#/var/lib/varco#$root/var/lib/varco#g" \
    -e "s#127.0.0.1:8080#127.0.0.1:$port#; s#127.0.0.1:9090#127.0.0.1:$admin#" \
    "$root/etc/varco/varco.toml" > "$root/etc/varco/filled.toml"
check "the filled-in configuration is valid" "$varco" check --config "$root/etc/varco/filled.toml"
"$varco" run --config "$root/etc/varco/filled.toml" > "$root/run.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$admin/healthz" && break; sleep 0.1; done
check "the installed varco answers /healthz" curl -sf "http://127.0.0.1:$admin/healthz"
check "and serves its SP metadata" curl -sf -o /dev/null "http://127.0.0.1:$port/.sso/metadata" -H "Host: accesso.regione.example"
check "it writes its audit trail under /var/lib/varco" test -d "$root/var/lib/varco/audit"
kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
pid=
echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
