#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): writes the seeds,
# builds the targets once with cargo-fuzz on the nightly toolchain, then
# runs them one after another. Exits non-zero on the first crash, leak,
# timeout or out-of-memory; libFuzzer then prints the input's file under
# fuzz/artifacts/TARGET/, which `cargo +nightly fuzz run TARGET FILE`
# runs again.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#
# A release check runs each target for an hour: fuzz/run.sh 3600
set -euo pipefail

cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=(redact_diff cli_args checkpoint kafka_settings follow_pattern)
if (($# > 0)); then
  TARGETS=("$@")
fi

die() {
  printf 'fuzz/run.sh: error: %s\n' "$*" >&2
  exit 1
}

[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] ||
  die "invalid SECONDS '$SECONDS_PER_TARGET': expected a whole number above 0"
cargo +nightly --version >/dev/null 2>&1 ||
  die "the nightly toolchain is missing: run scripts/setup-test-deps.sh"
cargo fuzz --version >/dev/null 2>&1 ||
  die "cargo-fuzz is missing: run scripts/setup-test-deps.sh"

started="$SECONDS"
./seeds.sh
cargo +nightly fuzz build

for target in "${TARGETS[@]}"; do
  printf 'fuzz/run.sh: running %s for %s s\n' "$target" "$SECONDS_PER_TARGET" >&2
  # -timeout fails an input that runs longer than 10 s: a hang, not a
  # measure of speed. -max_len bounds each input at 16 KiB before
  # redact_diff expands its splices, which keeps its brute-force
  # reference fast.
  cargo +nightly fuzz run "$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" \
    -max_len=16384 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -print_final_stats=1 ||
    die "fuzz target $target failed (the crash and its input are above)"
done
printf 'fuzz/run.sh: every target ran %s s without a crash; build and runs took %s s\n' \
  "$SECONDS_PER_TARGET" "$((SECONDS - started))" >&2
