#!/usr/bin/env bash
# Runs every test of cfscrub: installs what the tests need, checks format and
# lints, starts a Kafka broker on loopback, runs the test suite, the
# benchmarks in test mode and the comparison script on small corpora,
# stops the broker again, and runs each fuzz target for 60 seconds.
#
# Usage: scripts/test.sh [extra arguments for `cargo test`]
#
# With CI=true a test that needs a missing component fails instead of
# skipping. The broker listens on 127.0.0.1:${KAFKA_PORT:-9092}.
set -euo pipefail

cd "$(dirname "$0")/.."

step() {
  printf '\n==> %s\n' "$*" >&2
}

step "installing test dependencies"
scripts/setup-test-deps.sh

step "checking format and lints"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --release --all-targets --locked -- -D warnings
# The build without the Kafka client, which the fuzz targets use.
cargo clippy --release --locked --no-default-features --lib --bins -- \
  -D warnings

step "starting the Kafka broker"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
scripts/kafka.sh stop >/dev/null 2>&1 || true
scripts/kafka.sh start
trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
export CFSCRUB_TEST_KAFKA="127.0.0.1:${KAFKA_PORT}"
# The broker's SASL_PLAINTEXT listener, at kafka.sh's default port.
export CFSCRUB_TEST_KAFKA_SASL="127.0.0.1:${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"

step "running the test suite"
cargo test --release --locked "$@"

step "running the benchmarks once, in test mode"
cargo bench --locked --bench engine -- --test

step "running the comparison script once, on 8 MiB corpora"
benches/compare.sh --size 8 --scale-size 16 --rounds 1 >/dev/null

step "stopping the Kafka broker"
scripts/kafka.sh stop
trap - EXIT

step "running each fuzz target for 60 s"
fuzz/run.sh 60
