#!/usr/bin/env bash
# The long suites, kept out of CI's time budget: slowloris (thousands of slow TCP clients), and a fuzzing run of the
# whole request handler. Usage: scripts/test-extended.sh [fuzz seconds, default 1800]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${1:-1800}"

echo "== slowloris (release build)"
cargo test --release --test slowloris -- --ignored --nocapture

echo "== fuzzing respond::handle for ${fuzz_seconds} s"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
# cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP (no other toolchain can be
# fetched on our machines).
cd fuzz
# New inputs go to a scratch corpus; the committed seeds in corpus/handle are only read.
scratch=$(mktemp -d)
RUSTC_BOOTSTRAP=1 cargo fuzz run handle "$scratch" corpus/handle -- -max_total_time="$fuzz_seconds" -max_len=4096
