#!/usr/bin/env bash
# The container recipe (gateway/container/Containerfile) as ops run it: built with podman, then
# started with a read-only root file system, the configuration mounted read-only and one state
# volume, against an echo back-end on the host's loopback. This machine reaches no image
# registry, so the base is Debian bookworm made by mmdebstrap from Debian's mirror (the recipe's
# RUNTIME_IMAGE; ops get docker.io's), and the build stage is replaced by the production binary
# the tests already built (`cargo build -p gateway --no-default-features`): a cold release build
# inside a container takes longer than CI allows. The runtime stage is the recipe's, verbatim.
# Prints "container: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$PWD
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "container: needs $tool (.ci/install-deps)" >&2; echo "container: 0 passed, 1 failed"; exit 1; }
done
# This machine's kernel mixes cgroup versions and caps the open-file limit: runc with cgroupfs
# runs there, and every container gets limits the machine allows.
# Root's podman (rootless needs subordinate IDs that a CI machine may not have).
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
pod() { "${sudo_cmd[@]}" podman --runtime runc --cgroup-manager cgroupfs "$@"; }
limits=(--ulimit nofile=8192:8192 --ulimit nproc=4096:4096)
base=localhost/varco-test-debian:bookworm
image=localhost/varco-test:latest
work=$(mktemp -d)
ctr=varco-test-$$
echo_pid=
cleanup() {
  pod rm -f "$ctr" >/dev/null 2>&1 || true
  [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null
  "${sudo_cmd[@]}" rm -rf "$work"
}
trap cleanup EXIT INT TERM

cargo build --locked -q -p gateway --no-default-features --bin varco
if ! pod image exists "$base"; then
  "${sudo_cmd[@]}" mmdebstrap --quiet --variant=minbase bookworm "$work/rootfs.tar" http://deb.debian.org/debian
  pod import -q "$work/rootfs.tar" "$base" >/dev/null
  rm -f "$work/rootfs.tar"
fi
mkdir -p "$work/ctx"
cp target/debug/varco "$work/ctx/varco"
awk '/^FROM \$\{RUST_IMAGE\} AS build/ { print "FROM ${RUNTIME_IMAGE} AS build"; print "COPY varco /out/varco"; skip = 1; next }
     skip && /^FROM / { skip = 0 }
     !skip' gateway/container/Containerfile > "$work/Containerfile"
pod build -q "${limits[@]}" --build-arg RUNTIME_IMAGE="$base" -f "$work/Containerfile" -t "$image" "$work/ctx" >/dev/null

passed=0 failed=0
check() { # description command...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else echo "  FAILED: $what"; failed=$((failed + 1)); fi
}
inspect() { pod image inspect --format "$1" "$image"; }
check "it runs as the varco user, not root" test "$(inspect '{{.Config.User}}')" = 10001:10001
check "its command is varco run with /etc/varco/varco.toml" test "$(inspect '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')" = '["/usr/bin/varco"] ["run","--config","/etc/varco/varco.toml"]'
check "/var/lib/varco is its volume" grep -q '/var/lib/varco' <<<"$(inspect '{{json .Config.Volumes}}')"
# What the recipe adds to its base besides the binary (a debug build here; a release build's is
# ~20 MB): the libraries varco links (libxml2 brings ICU's 35 MB), no compiler or build files.
base_size=$(pod image inspect --format '{{.Size}}' "$base")
size=$(( $(inspect '{{.Size}}') - base_size - $(stat -c %s target/debug/varco) ))
check "it adds $((size / 1000000)) MB to its base besides varco (the libraries it links)" test "$size" -lt 80000000
check "it has no compiler or cargo" pod run --rm "${limits[@]}" --entrypoint /bin/sh "$image" -c '! command -v cc && ! command -v cargo && ! command -v rustc && ! test -d /src'
check "it has no package lists" test -z "$(pod run --rm "${limits[@]}" --entrypoint /bin/sh "$image" -c 'ls /var/lib/apt/lists | grep -v -e lock -e partial' 2>/dev/null)"

# A configuration like an operator's: the examples, their back-ends at one echo server on the
# host's loopback, everything varco writes under /var/lib/varco.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) admin=$(free_port) back=$(free_port)
mkdir -p "$work/etc/policies" "$work/etc/keys" "$work/state"
cp examples/keys/sp.key examples/keys/sp.crt examples/keys/audit.key examples/keys/jwt.pem "$work/etc/keys/"
for f in examples/policies/*.toml; do
  sed -E "s/127\.0\.0\.1:910[0-9]/127.0.0.1:$back/g" "$f" > "$work/etc/policies/$(basename "$f")"
done
sed -e "s/127.0.0.1:8080/127.0.0.1:$port/g" -e "s/127.0.0.1:9090/127.0.0.1:$admin/g" \
    -e 's|^audit_key = .*|&\naudit_log = "/var/lib/varco/audit/saml-audit.log"|' \
    examples/varco.toml > "$work/etc/varco.toml"
chmod -R a+rX "$work/etc"
"${sudo_cmd[@]}" chown 10001:10001 "$work/state"
target/debug/varco echo --listen "127.0.0.1:$back" --name container >/dev/null 2>&1 &
echo_pid=$!
volumes=(-v "$work/etc:/etc/varco:ro" -v "$work/state:/var/lib/varco")
check "varco check passes inside the image" pod run --rm "${limits[@]}" --network host "${volumes[@]}" "$image" check --config /etc/varco/varco.toml

pod run -d --name "$ctr" --read-only --network host "${limits[@]}" "${volumes[@]}" "$image" >/dev/null
ready=0
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
check "it starts with a read-only root file system and answers /readyz" test "$ready" = 1
check "the portal answers" curl -fsS -o /dev/null "http://127.0.0.1:$port/"
check "a public service is proxied to the back-end" grep -q '"container"' <<<"$(curl -fsS -H 'Host: capannori.localhost' "http://127.0.0.1:$port/bandi/")"
check "the process runs as uid 10001" test "$(pod exec "$ctr" id -u)" = 10001
check "the root file system is read-only" bash -c "! ${sudo_cmd[*]} podman --runtime runc --cgroup-manager cgroupfs exec $ctr sh -c 'echo x > /usr/bin/x' 2>/dev/null"
check "the audit trail is written to the state volume" test -f "$work/state/audit/saml-audit.log"
pod kill -s HUP "$ctr" >/dev/null
reloaded=0
for _ in $(seq 1 50); do
  if pod logs "$ctr" 2>&1 | grep -q 'policy reloaded.*trigger="SIGHUP"\|trigger="SIGHUP".*policy reloaded'; then reloaded=1; break; fi
  sleep 0.1
done
check "SIGHUP reloads the policies" test "$reloaded" = 1
start=$(date +%s)
pod stop -t 20 "$ctr" >/dev/null
code=$(pod inspect --format '{{.State.ExitCode}}' "$ctr")
check "SIGTERM stops it cleanly (exit $code in $(( $(date +%s) - start )) s)" test "$code" = 0
if [ "$failed" -gt 0 ]; then pod logs "$ctr" 2>&1 | tail -20; fi
echo "container: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
