#!/usr/bin/env bash
# The long suites, kept out of CI's time budget: growth (100,000 audited changes), slowloris (thousands of slow TCP
# clients), and fuzzing runs of
# every fuzz target: `handle` (the whole DNS request handler), `api` (hostile requests through the real admin API
# routers on an in-memory store), `zonefile` (tenant zone-file text through the parser that refuses $INCLUDE) and
# `proxy` (PROXY v2 headers from a trusted front end, then the query behind them).
# Usage: scripts/test-extended.sh [fuzz seconds per target, default 1800] [targets…, default all four]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${1:-1800}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(handle api zonefile proxy)

if [ -z "${SKIP_GROWTH:-}" ]; then
  echo "== growth: 100,000 audited changes, start-up time and store size at each quarter"
  VPCDNS_GROWTH_CHANGES=100000 cargo test --release --test growth -- --nocapture 2>&1 | grep -E "after|round|test result"
fi

if [ -z "${SKIP_SLOWLORIS:-}" ]; then
  echo "== slowloris (release build)"
  cargo test --release --test slowloris -- --ignored --nocapture
fi

command -v cargo-fuzz >/dev/null 2>&1 || { echo "== installing cargo-fuzz (a few minutes, once)"; cargo install cargo-fuzz --locked --quiet; }
# cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP (no other toolchain can be
# fetched on our machines).
cd fuzz
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${fuzz_seconds} s"
  # New inputs go to a scratch corpus; the committed seeds in corpus/<target> are only read.
  scratch=$(mktemp -d)
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$scratch" "corpus/$target" -- -max_total_time="$fuzz_seconds" \
    -max_len=4096 2>&1 | grep -E "^#[0-9]+ *DONE|^Done|panicked|SUMMARY|crash-|Test unit written" || true
  [ -z "$(ls "artifacts/$target" 2>/dev/null)" ] || { echo "fuzzing $target found a crash: fuzz/artifacts/$target"; exit 1; }
  rm -rf "$scratch"
done
