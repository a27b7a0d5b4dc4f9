#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and lints, builds the binary
# from exactly the files the Dockerfile copies, then runs the unit and integration tests (which start their own tansu broker and redis-server).
# TEST_KAFKA_BROKERS=host:port and TEST_REDIS_URL=redis://host:port point them at running ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
scripts/validate-deploy.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
scripts/docker-context.sh
# The chaos and memory tests start several instances each and keep the machine busy: with other
# tests beside them a starved broker on two cores misses heartbeats, and groups never settle.
# They run after the rest, alone and one at a time.
cargo test --locked --tests -- --skip chaos:: --skip memory::
cargo test --locked --bench '*'
cargo test --locked --test it -- chaos:: memory:: --test-threads=1
