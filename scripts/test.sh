#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it is missing (dig, from Debian's
# bind9-dnsutils), then checks formatting and lints, then runs unit, property and integration tests. The
# integration tests start their own vpcdns servers on loopback; nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."

# dig queries the servers the tests start; openssl makes the TLS test's certificate.
missing=""
command -v dig >/dev/null 2>&1 || missing="$missing bind9-dnsutils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo's own last line is the doc-test run's).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
