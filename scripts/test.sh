#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it is missing (dig, from Debian's
# bind9-dnsutils), then checks formatting and lints, then runs unit, property and integration tests. The
# integration tests start their own vpcdns servers on loopback; nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."

# dig queries the servers the tests start; openssl makes the TLS test's certificate; named (BIND 9) is the
# reference of the differential test, which starts its own instance on a loopback port.
missing=""
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v dig >/dev/null 2>&1 || missing="$missing bind9-dnsutils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || missing="$missing bind9"
# ip (iproute2) makes the network namespace in which the IPv6 test runs its own hosts.
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing="$missing iproute2"
# The etcd store (cargo feature "etcd"): its client compiles etcd's protobufs (protoc), and tests/etcd.rs starts
# real etcd members on loopback ports (etcd, etcdctl).
command -v protoc >/dev/null 2>&1 || missing="$missing protobuf-compiler libprotobuf-dev"
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v etcdctl >/dev/null 2>&1 || missing="$missing etcd-client"
# dnsdist is the front end of tests/dnsdist.rs: PROXY v2 with vendor TLVs, as a cloud's private endpoints send.
command -v dnsdist >/dev/null 2>&1 || [ -x /usr/bin/dnsdist ] || missing="$missing dnsdist"
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # Keep the package scripts from starting a system-wide named on port 53: the tests run their own.
  policy=/usr/sbin/policy-rc.d
  created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && created_policy=1
  fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
  [ -z "$created_policy" ] || $sudo rm -f "$policy"
fi
export PATH="$PATH:/usr/sbin"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== layering (scripts/check-layers.py: no import cycle, every layer rule of ARCHITECTURE.md)"
python3 scripts/check-layers.py
echo "== cargo deny (bans, licenses, sources; deny.toml)"
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked --quiet
cargo deny check bans licenses sources
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --features etcd -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --features etcd --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo's own last line is the doc-test run's).
summary() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1);
                                                   if ($i ~ /^ignored;?$/) g += $(i-1) } }
       END { printf "tests: %d passed, %d failed, %d ignored (the extended suite: scripts/test-extended.sh)\n", p, f, g }' "$log"
}

# A short fuzzing run of the request handler, so that the fuzz target always builds and finds nothing easy. The long
# runs of every target are in scripts/test-extended.sh.
echo "== fuzz smoke: respond::handle for 60 s"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "   (installing cargo-fuzz: it compiles from crates.io, a few minutes, once per machine)"
  cargo install cargo-fuzz --locked --quiet
fi
scratch=$(mktemp -d)
if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run handle "$scratch" corpus/handle -- -max_total_time=60 -max_len=4096 \
      >"$scratch.log" 2>&1); then
  tail -40 "$scratch.log"
  echo "fuzz smoke: the handle target failed"
  status=1
else
  grep -E "^Done [0-9]+ runs" "$scratch.log" | sed 's/^/fuzz smoke: /' || true
fi
rm -rf "$scratch" "$scratch.log"
summary
exit "$status"
