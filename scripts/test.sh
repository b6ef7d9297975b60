#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it is missing (dig, from Debian's
# bind9-dnsutils), then checks formatting and lints, then runs unit, property and integration tests. The
# integration tests start their own vpcdns servers on loopback; nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each tool the tests need, the Debian package that has it, and why: the list is printed before anything is
# installed.
missing=""
why=""
need() { # need <present?> <package(s)> <why>
  if ! eval "$1" >/dev/null 2>&1; then
    missing="$missing $2"
    why="$why\n  $2: $3"
  fi
}
need "command -v python3" python3 "scripts/check-layers.py checks the import layering"
need "command -v dig" bind9-dnsutils "dig is the DNS client of every integration test"
need "command -v openssl" openssl "the TLS tests make their certificates with it"
need "command -v named || [ -x /usr/sbin/named ]" bind9 "BIND 9 is the reference of tests/differential.rs and an upstream"
need "command -v ip || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]" iproute2 "ip netns: the IPv6 and differential tests' own network namespaces"
need "command -v protoc" "protobuf-compiler libprotobuf-dev" "the etcd client compiles etcd's protobufs"
need "command -v etcd" etcd-server "tests/etcd.rs and tests/faults.rs start real etcd members"
need "command -v etcdctl" etcd-client "the etcd tests read the cluster's state with it"
need "command -v dnsdist || [ -x /usr/bin/dnsdist ]" dnsdist "the PROXY v2 front end of tests/dnsdist.rs"
if [ -n "$missing" ]; then
  printf '== installing with apt-get (Debian packages):%b\n' "$why"
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
if ! command -v cargo-deny >/dev/null 2>&1; then
  # No registry we can reach serves a prebuilt cargo-deny: it is compiled from crates.io, once, without
  # optimizations (it only reads Cargo.lock and deny.toml, so a debug build is fast enough and much quicker to make).
  echo "== installing cargo-deny: compiled once from crates.io (cargo install --debug; a few minutes)"
  cargo install cargo-deny --locked --debug --quiet
fi
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
